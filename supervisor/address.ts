import { isIPv4, isIPv6 } from 'node:net';
import { usageError } from './errors.js';

export type Address =
  | { kind: 'tcp'; family: 4 | 6; host: string; port: number; v6only: boolean }
  | { kind: 'unix'; path: string };

const hintFor = (flag: string) =>
  `use HOST:PORT, [IPV6]:PORT, :PORT (all addresses) or unix:/path, e.g. ${flag} 127.0.0.1:` +
  (flag === '--listen' ? '8080' : '9464');

const ZONE_HINT = 'drop the %ZONE: listen on [::]:PORT (every address), or on an address that is not link-local';

function parsePort(text: string, spec: string, flag: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw usageError(`bad port "${text}" in ${flag} ${spec}`, 'a port is a number from 0 to 65535');
  }
  return Number(text);
}

/** sun_path holds 108 bytes with the terminating NUL: the kernel (and libuv) would cut a longer path silently. */
export function checkUnixPath(path: string, what: string, hint: string): string {
  if (Buffer.byteLength(path) > 107) throw usageError(`${what} path too long (max 107 bytes): ${path}`, hint);
  return path;
}

/** Parses one --listen (or `flag`) value. `:PORT` is dual-stack (IPv6 and IPv4), like Node's listen(PORT). */
export function parseAddress(spec: string, flag = '--listen'): Address {
  const hint = hintFor(flag);
  if (spec.startsWith('unix:')) {
    const path = spec.slice(5);
    if (!path.startsWith('/')) throw usageError(`unix socket path must be absolute: ${flag} ${spec}`, hint);
    return { kind: 'unix', path: checkUnixPath(path, 'unix socket', 'choose a shorter path') };
  }
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(spec);
  if (v6) {
    if (v6[1]!.includes('%')) throw usageError(`IPv6 zone ids are not supported: ${flag} ${spec}`, ZONE_HINT);
    if (!isIPv6(v6[1]!)) throw usageError(`bad IPv6 address "${v6[1]}" in ${flag} ${spec}`, hint);
    return { kind: 'tcp', family: 6, host: v6[1]!, port: parsePort(v6[2]!, spec, flag), v6only: false };
  }
  const v4 = /^([^:]*):([^:]*)$/.exec(spec);
  if (!v4) throw usageError(`malformed ${flag} ${spec}`, hint);
  const port = parsePort(v4[2]!, spec, flag);
  if (v4[1] === '') return { kind: 'tcp', family: 6, host: '::', port, v6only: false };
  if (!isIPv4(v4[1]!)) throw usageError(`"${v4[1]}" is not an IP address in ${flag} ${spec}`, hint);
  return { kind: 'tcp', family: 4, host: v4[1]!, port, v6only: false };
}

export function formatAddress(a: Address): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The address in one spelling (a v4-mapped IPv6 address as IPv4), to compare two of them. */
function canonical(a: Extract<Address, { kind: 'tcp' }>): string {
  if (a.family === 4) return a.host;
  const host = new URL(`http://[${a.host}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return host;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** The same address, in any spelling. */
export function sameAddress(a: Address, b: Address): boolean {
  if (a.kind === 'unix' || b.kind === 'unix') return a.kind === 'unix' && b.kind === 'unix' && a.path === b.path;
  return a.port === b.port && canonical(a) === canonical(b);
}

/**
 * Two listeners that cannot both be bound: the same TCP port (not 0) and an address in common. `[::]` takes
 * every address of its port (dual-stack, as baton binds it), `0.0.0.0` every IPv4 one.
 */
export function overlap(a: Address, b: Address): boolean {
  if (a.kind !== 'tcp' || b.kind !== 'tcp' || a.port !== b.port || a.port === 0) return false;
  const [x, y] = [canonical(a), canonical(b)];
  const covers = (any: string, v6only: boolean, other: string) =>
    any === '::' ? !v6only || other.includes(':') : any === '0.0.0.0' && !other.includes(':');
  return x === y || covers(x, a.v6only, y) || covers(y, b.v6only, x);
}
