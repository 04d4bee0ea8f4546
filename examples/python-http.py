#!/usr/bin/env python3
"""An HTTP server that takes its listener from baton, standard library only.

    npx baton --listen 127.0.0.1:8080 -- python3 examples/python-http.py
    npx baton --listen 127.0.0.1:8080 --handover inherit --ready notify -- python3 examples/python-http.py

Under the pidfd handover it pulls baton's socket with pidfd_open + pidfd_getfd (_PID, _FD);
under the inherit handover it takes fd 3 (LISTEN_FDS, LISTEN_PID); alone it binds $PORT.
It says READY=1 on $NOTIFY_SOCKET and, on SIGTERM, stops accepting and finishes what it serves.
"""
import ctypes
import http.server
import os
import selectors
import signal
import socket

SYS_PIDFD_GETFD = 438


def notify(message):
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    if target.startswith("@"):
        target = "\0" + target[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(message.encode(), target)
        except OSError:
            pass


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(ctypes.c_long(SYS_PIDFD_GETFD), ctypes.c_long(pidfd), ctypes.c_long(fd), ctypes.c_long(0))
        if got < 0:
            err = ctypes.get_errno()
            hint = "use --handover inherit for a child in a restricted container" if err == 1 else ""
            notify(f"STATUS=pidfd_getfd: {os.strerror(err)}\nERRNO={err}\nBATON_HINT={hint}")
            raise OSError(err, f"pidfd_getfd: {os.strerror(err)}")
        return got
    finally:
        os.close(pidfd)


def listener():
    env = os.environ
    if env.get("_PID") and env.get("_FD"):
        fd = pidfd_getfd(int(env["_PID"]), int(env["_FD"].split(",")[0]))
    elif env.get("LISTEN_FDS") and env.get("LISTEN_PID") == str(os.getpid()):
        fd = 3
    else:
        s = socket.create_server(("127.0.0.1", int(env.get("PORT", "8080"))))
        return s
    for k in ("_PID", "_FD", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(k, None)
    return socket.socket(fileno=fd)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pid={os.getpid()} generation={os.environ.get('BATON_GENERATION', '0')} python\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
server.socket = listener()
server.daemon_threads = False
# The listener is shared with other generations and non-blocking: a lost accept race is not an error.
server.socket.setblocking(False)

stopping = False


def stop(*_):
    # Only a flag. A Python signal handler runs in the main thread between two bytecodes, possibly while
    # that thread holds one of threading's locks (socketserver reaps finished threads on each accept,
    # under one). Starting a thread here, as server.shutdown() needs, then deadlocks: the new thread
    # waits for that lock, the handler waits for the new thread, and an accepted connection is never served.
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
notify("READY=1")
with selectors.PollSelector() as selector:
    selector.register(server.socket, selectors.EVENT_READ)
    while not stopping:
        if selector.select(0.1):
            server.handle_request()  # accepts one connection, unless another process took it first
server.server_close()  # closes this process's copy of the listener; waits for the connections it serves
