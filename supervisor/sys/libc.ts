import { constants } from 'node:os';
import koffi from 'koffi';
import { type Context, type Errno, SysError } from '../errors.js';

/** libc.so.6, loaded once: every libc function baton calls is declared through this handle. */
export const library = koffi.load('libc.so.6');

/** libc entry points; buffers are passed as `void *`. */
export const libc = {
  syscall: library.func('long syscall(long, ...)'),
  socket: library.func('int socket(int, int, int)'),
  bind: library.func('int bind(int, const void *, uint32)'),
  connect: library.func('int connect(int, const void *, uint32)'),
  listen: library.func('int listen(int, int)'),
  setsockopt: library.func('int setsockopt(int, int, int, const void *, uint32)'),
  getsockopt: library.func('int getsockopt(int, int, int, void *, void *)'),
  getsockname: library.func('int getsockname(int, void *, void *)'),
  sendto: library.func('long sendto(int, const void *, size_t, int, const void *, uint32)'),
  recv: library.func('long recv(int, void *, size_t, int)'),
  close: library.func('int close(int)'),
  read: library.func('long read(int, void *, size_t)'),
  pipe2: library.func('int pipe2(void *, int)'),
  clock_gettime: library.func('int clock_gettime(int, void *)'),
  fcntl: library.func('int fcntl(int, int, ...)'),
  prctl: library.func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)'),
  mount: library.func('int mount(const char *, const char *, const char *, unsigned long, const void *)'),
  waitpid: library.func('int waitpid(int, void *, int)'),
  execve: library.func('int execve(const char *, const char **, const char **)'),
  sigaction: library.func('int sigaction(int, const void *, void *)'),
  sigqueue: library.func('int sigqueue(int, int, intptr_t)'),
  inet_ntop: library.func('const char *inet_ntop(int, const void *, char *, uint32)'),
  inet_pton: library.func('int inet_pton(int, const char *, void *)'),
  strerror: library.func('const char *strerror(int)'),
};

// First name wins for aliases (EAGAIN over EWOULDBLOCK).
const names = new Map<number, Errno>();
for (const [name, n] of Object.entries(constants.errno) as [Errno, number][]) if (!names.has(n)) names.set(n, name);

export type Hints = Partial<Record<string, string>> & { default?: string };

/**
 * Checks a libc return value. errno is read at once, before any other call can overwrite it.
 * Hints map an errno name (EPERM, ...) to a one-line fix.
 */
export function check(ret: number | bigint, syscall: string, hints: Hints = {}, context: Context = {}): number {
  const n = Number(ret);
  if (n !== -1) return n;
  throw sysError(koffi.errno(), syscall, { default: `see man 2 ${syscall}`, ...hints }, context);
}

/** The SysError for `errno`, with the hint for its name (or hints.default). */
export function sysError(errno: number, syscall: string, hints: Hints, context: Context = {}): SysError {
  const code = names.get(errno) ?? `E${errno}`;
  return new SysError(syscall, code, errno, String(libc.strerror(errno)), hints[code] ?? hints.default ?? '', context);
}

/** True when the last failed call set errno to `code` (for calls whose failure is expected, e.g. EAGAIN). */
export function errnoIs(code: string): boolean {
  return names.get(koffi.errno()) === code;
}
