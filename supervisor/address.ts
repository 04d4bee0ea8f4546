import { isIPv4, isIPv6 } from 'node:net';
import { usageError } from './errors.js';

export type Address =
  | { kind: 'tcp'; family: 4 | 6; host: string; port: number; v6only: boolean }
  | { kind: 'unix'; path: string };

const LISTEN_HINT = 'use HOST:PORT, [IPV6]:PORT, :PORT (all addresses) or unix:/path, e.g. --listen 127.0.0.1:8080';

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw usageError(`bad port "${text}" in --listen ${spec}`, 'a port is a number from 0 to 65535');
  }
  return Number(text);
}

/** sun_path holds 108 bytes with the terminating NUL: the kernel (and libuv) would cut a longer path silently. */
export function checkUnixPath(path: string, what: string, hint: string): string {
  if (Buffer.byteLength(path) > 107) throw usageError(`${what} path too long (max 107 bytes): ${path}`, hint);
  return path;
}

/** Parses one --listen value. `:PORT` is dual-stack (IPv6 and IPv4), like Node's listen(PORT). */
export function parseAddress(spec: string): Address {
  if (spec.startsWith('unix:')) {
    const path = spec.slice(5);
    if (!path.startsWith('/')) throw usageError(`unix socket path must be absolute: --listen ${spec}`, LISTEN_HINT);
    return { kind: 'unix', path: checkUnixPath(path, 'unix socket', 'choose a shorter path') };
  }
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(spec);
  if (v6) {
    if (!isIPv6(v6[1]!)) throw usageError(`bad IPv6 address "${v6[1]}" in --listen ${spec}`, LISTEN_HINT);
    return { kind: 'tcp', family: 6, host: v6[1]!, port: parsePort(v6[2]!, spec), v6only: false };
  }
  const v4 = /^([^:]*):([^:]*)$/.exec(spec);
  if (!v4) throw usageError(`malformed --listen ${spec}`, LISTEN_HINT);
  const port = parsePort(v4[2]!, spec);
  if (v4[1] === '') return { kind: 'tcp', family: 6, host: '::', port, v6only: false };
  if (!isIPv4(v4[1]!)) throw usageError(`"${v4[1]}" is not an IP address in --listen ${spec}`, LISTEN_HINT);
  return { kind: 'tcp', family: 4, host: v4[1]!, port, v6only: false };
}

export function formatAddress(a: Address): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.family === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
