import { isIPv4 } from 'node:net';
import type { Address } from '../address.js';
import { check, errnoIs, libc } from './libc.js';

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const SUN_LEN = 110;

/** The 16 bytes of an IP address (an IPv4 one in the first 4). */
export function ipBytes(host: string): Buffer {
  const ip = Buffer.alloc(16);
  // inet_pton returns 0 (not -1 with errno) for a malformed address; the caller checked it already.
  if (libc.inet_pton(isIPv4(host) ? AF_INET : AF_INET6, host, ip) !== 1) throw new Error(`not an IP address: ${host}`);
  return ip;
}

function sockaddr(a: Address): Buffer {
  if (a.kind === 'unix') {
    const b = Buffer.alloc(SUN_LEN);
    b.writeUInt16LE(AF_UNIX, 0);
    b.write(a.path, 2);
    return b;
  }
  const b = Buffer.alloc(a.family === 4 ? 16 : 28);
  b.writeUInt16LE(a.family === 4 ? AF_INET : AF_INET6, 0);
  b.writeUInt16BE(a.port, 2);
  ipBytes(a.host).copy(b, a.family === 4 ? 4 : 8, 0, a.family === 4 ? 4 : 16);
  return b;
}

function intOpt(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return b;
}

/** The address a socket is bound to, or undefined for a family baton does not listen on. */
export function socketAddress(fd: number): Address | undefined {
  const b = Buffer.alloc(128);
  check(libc.getsockname(fd, b, intOpt(128)), 'getsockname', {}, { fd });
  const family = b.readUInt16LE(0);
  if (family === AF_UNIX) return { kind: 'unix', path: b.toString('utf8', 2, b.indexOf(0, 2)) };
  if (family !== AF_INET && family !== AF_INET6) return undefined;
  const text = Buffer.alloc(64);
  libc.inet_ntop(family, b.subarray(family === AF_INET ? 4 : 8), text, text.length);
  const host = text.toString('utf8', 0, text.indexOf(0));
  return { kind: 'tcp', family: family === AF_INET ? 4 : 6, host, port: b.readUInt16BE(2), v6only: false };
}

const SO_ACCEPTCONN = 30;

/** True for a listening socket; false for anything else (another socket, a non-socket fd). */
export function isListening(fd: number): boolean {
  const v = intOpt(0);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, v, intOpt(4)) !== 0) return false;
  return v.readInt32LE(0) === 1;
}

/** The port a TCP socket is bound to (resolves port 0). */
export function boundPort(fd: number): number {
  const b = Buffer.alloc(128);
  const len = intOpt(128);
  check(libc.getsockname(fd, b, len), 'getsockname', {}, { fd });
  return b.readUInt16BE(2);
}

const bindHints = {
  EADDRINUSE: 'another process listens on this address: stop it, or choose another port',
  EACCES:
    'ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)); ' +
    'or use a port >= 1024',
  EADDRNOTAVAIL: 'this address is not configured on any interface of this host',
};

/**
 * A listening socket, non-blocking and close-on-exec, never SO_REUSEPORT: a closing member of a
 * reuseport group resets the connections queued on it, which would break a handover.
 */
export function createListener(
  a: Address,
  backlog: number,
  context: Record<string, string>,
): { fd: number; port: number } {
  const family = a.kind === 'unix' ? AF_UNIX : a.family === 4 ? AF_INET : AF_INET6;
  const fd = check(libc.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket', {}, context);
  try {
    if (a.kind === 'tcp') {
      check(libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, intOpt(1), 4), 'setsockopt', {}, context);
      if (a.family === 6) {
        check(libc.setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, intOpt(a.v6only ? 1 : 0), 4), 'setsockopt', {}, context);
      }
    }
    const addr = sockaddr(a);
    check(libc.bind(fd, addr, addr.length), 'bind', bindHints, context);
    check(libc.listen(fd, backlog), 'listen', {}, context);
    return { fd, port: a.kind === 'tcp' ? boundPort(fd) : 0 };
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/** A datagram socket bound at `path`, for sd_notify messages. */
export function createNotifySocket(path: string): number {
  const fd = check(libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket');
  try {
    const addr = sockaddr({ kind: 'unix', path });
    check(libc.bind(fd, addr, addr.length), 'bind', {}, { path });
    return fd;
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/** The datagrams waiting on a non-blocking socket, at most `max` of them. */
export function receiveAll(fd: number, max = Number.POSITIVE_INFINITY): string[] {
  const out: string[] = [];
  const b = Buffer.alloc(4096);
  while (out.length < max) {
    const n = Number(libc.recv(fd, b, b.length, MSG_DONTWAIT));
    if (n < 0) {
      if (errnoIs('EAGAIN')) return out;
      check(n, 'recv', {}, { fd });
    }
    out.push(b.toString('utf8', 0, n));
  }
  return out;
}

/** send() that never waits (whatever the socket's own mode): the bytes taken, 0 when its buffer is full. */
export function sendNow(fd: number, data: Buffer): number {
  const n = Number(libc.sendto(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, null, 0));
  if (n < 0 && errnoIs('EAGAIN')) return 0;
  return check(n, 'send', {}, { fd });
}

/** sd_notify: one datagram to `target` (a path, or @name for the abstract namespace). */
export function sendNotify(target: string, message: string): void {
  const fd = check(libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket');
  try {
    const addr = Buffer.alloc(SUN_LEN);
    addr.writeUInt16LE(AF_UNIX, 0);
    const abstract = target.startsWith('@');
    addr.write(abstract ? target.slice(1) : target, abstract ? 3 : 2);
    const len = abstract ? 3 + Buffer.byteLength(target) - 1 : SUN_LEN;
    const data = Buffer.from(message);
    check(libc.sendto(fd, data, data.length, 0, addr, len), 'sendto', {}, { path: target });
  } finally {
    libc.close(fd);
  }
}

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const TCPI_UNACKED = 24;

/** Connections waiting in a listening socket's accept queue (tcp_info.tcpi_unacked for LISTEN). */
export function acceptQueue(fd: number): number {
  const info = Buffer.alloc(232);
  const len = intOpt(info.length);
  check(libc.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len), 'getsockopt', {}, { fd });
  return info.readUInt32LE(TCPI_UNACKED);
}

const SO_PEERCRED = 17;

/** The pid, uid and gid of the process at the other end of a unix socket. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } {
  const cred = Buffer.alloc(12);
  check(libc.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, intOpt(cred.length)), 'getsockopt', {}, { fd });
  return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
}

/** The pid of the process listening on the unix socket at `path`, or undefined if none does. */
export function unixSocketOwner(path: string): number | undefined {
  const fd = check(libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 'socket');
  try {
    const addr = sockaddr({ kind: 'unix', path });
    if (libc.connect(fd, addr, addr.length) !== 0) {
      if (errnoIs('ECONNREFUSED') || errnoIs('ENOENT')) return undefined; // stale: nobody listens
      check(
        -1,
        'connect',
        { EACCES: `baton may not connect to ${path}: run it as that socket's owner, or choose another path` },
        { path },
      );
    }
    return peerCredentials(fd).pid;
  } finally {
    libc.close(fd);
  }
}
