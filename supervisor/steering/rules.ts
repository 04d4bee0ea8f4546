import { isIPv4, isIPv6 } from 'node:net';
import type { Address } from '../address.js';
import { usageError } from '../errors.js';
import { ipBytes } from '../sys/socket.js';

const AF_INET = 2;
const AF_INET6 = 10;
// The program matches UDP too, but a UDP rule needs a UDP socket in its slot and baton's listeners are TCP.
const PROTOCOLS = { tcp: 6 } as const;
export const MAX_RULES = 1024;
/** max_entries of the rules map in bpf/steer.c. */
export const MAX_ENTRIES = 65536;
/** Bytes of the BPF rules map key and value (struct rule_key, struct rule_value in bpf/steer.c). */
export const KEY_SIZE = 24;
export const VALUE_SIZE = 8;

/** One address range of a --steer rule. */
export interface Range {
  family: 4 | 6;
  addr: Buffer; // 16 bytes, masked to prefix
  prefix: number;
}

/** One --steer value: a protocol, address ranges and ports, all to one slot. */
export interface Rule {
  text: string;
  index: number;
  protocol: 'tcp';
  ranges: Range[];
  ports: number[];
}

const HINT = 'use [tcp:]ADDRESS[/PREFIX]:PORTS, e.g. 127.0.0.1:7,77,777, 127.0.0.0/8:8000-8099, [::1]:7 or :8080';

function mask(addr: Buffer, prefix: number): Buffer {
  const out = Buffer.alloc(16);
  for (let bit = 0; bit < prefix; bit++) if (addr[bit >> 3]! & (0x80 >> (bit & 7))) out[bit >> 3]! |= 0x80 >> (bit & 7);
  return out;
}

function range(text: string, spec: string): Range {
  const [host = '', len] = text.split('/');
  if (host.includes('%')) throw usageError(`IPv6 zone ids are not supported: --steer ${spec}`, HINT);
  const family = isIPv4(host) ? 4 : isIPv6(host) ? 6 : 0;
  if (!family) throw usageError(`"${host}" is not an IP address in --steer ${spec}`, HINT);
  const bits = family === 4 ? 32 : 128;
  const wildcard = host === '0.0.0.0' || host === '::';
  const prefix = len === undefined ? (wildcard ? 0 : bits) : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits || (len !== undefined && !/^\d+$/.test(len))) {
    throw usageError(`bad prefix length "/${len}" in --steer ${spec}`, `an IPv${family} prefix is 0 to ${bits}`);
  }
  return { family, addr: mask(ipBytes(host), prefix), prefix };
}

function ports(text: string, spec: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    const lo = Number(m?.[1]);
    const hi = Number(m?.[2] ?? m?.[1]);
    if (!m || lo < 1 || hi > 65535 || lo > hi)
      throw usageError(`bad port or range "${part}" in --steer ${spec}`, 'ports are 1-65535; a range is LOW-HIGH');
    for (let p = lo; p <= hi; p++) out.add(p);
  }
  return [...out];
}

export function parseRule(spec: string, index: number): Rule {
  if (spec.startsWith('udp:'))
    throw usageError(
      `UDP steering is not supported: --steer ${spec}`,
      'baton steers TCP; a UDP server needs a UDP socket in the slot, which baton does not create',
    );
  const proto = /^tcp:/.exec(spec);
  const rest = proto ? spec.slice(proto[0].length) : spec;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([\d,-]+)$/.exec(rest);
  if (!m) throw usageError(`malformed --steer ${spec}`, HINT);
  const host = m[1] ?? m[2]!;
  const ranges = host === '' ? [range('0.0.0.0', spec), range('::', spec)] : [range(host, spec)];
  if (m[1] !== undefined && ranges[0]!.family !== 6)
    throw usageError(`"${host}" in brackets is not IPv6 in --steer ${spec}`, HINT);
  return { text: spec, index, protocol: 'tcp', ranges, ports: ports(m[3]!, spec) };
}

function contains(a: Range, b: Range): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return a.family === b.family && mask(a.addr, p).equals(mask(b.addr, p));
}

/** Parses every --steer; rules that claim the same port on overlapping addresses are refused. */
export function parseRules(specs: string[]): Rule[] {
  if (specs.length > MAX_RULES)
    throw usageError(`at most ${MAX_RULES} --steer rules`, 'merge rules with port ranges and prefixes');
  const rules = specs.map(parseRule);
  const count = rules.reduce((n, r) => n + r.ranges.length * r.ports.length, 0);
  if (count > MAX_ENTRIES)
    throw usageError(
      `--steer rules make ${count} map entries, more than ${MAX_ENTRIES}`,
      'narrow the port ranges (each port of each address family is one entry)',
    );
  for (let i = 0; i < rules.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = rules[i]!;
      const b = rules[j]!;
      const shared = a.ports.find((p) => b.ports.includes(p));
      if (shared !== undefined && a.ranges.some((ra) => b.ranges.some((rb) => contains(ra, rb)))) {
        throw usageError(
          `--steer ${a.text} overlaps --steer ${b.text} on port ${shared}`,
          'give each address and port to one rule only',
        );
      }
    }
  }
  return rules;
}

/** The BPF map entries for a rule: key (struct rule_key) and value (struct rule_value). */
export function* entries(rule: Rule, slot: number): Generator<[Buffer, Buffer]> {
  const value = Buffer.alloc(VALUE_SIZE);
  value.writeUInt32LE(slot, 0);
  value.writeUInt32LE(rule.index, 4);
  for (const r of rule.ranges) {
    for (const port of rule.ports) {
      const key = Buffer.alloc(KEY_SIZE);
      key.writeUInt32LE(32 + r.prefix, 0);
      key.writeUInt8(PROTOCOLS[rule.protocol], 4);
      key.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 5);
      key.writeUInt16BE(port, 6);
      r.addr.copy(key, 8);
      yield [key, value];
    }
  }
}

/** Whether a rule covers a local address (16 bytes, IPv4 in the first 4) and port. */
export function covers(rule: Rule, family: 4 | 6, addr: Buffer, port: number): boolean {
  return (
    rule.ports.includes(port) && rule.ranges.some((r) => contains(r, { family, addr, prefix: family === 4 ? 32 : 128 }))
  );
}

/** The rule that would take connections to `a` (a wildcard address: any rule on its port), if one would. */
export function steersTo(rules: Rule[], a: Address): Rule | undefined {
  if (a.kind !== 'tcp') return undefined;
  const wildcard = a.host === '0.0.0.0' || a.host === '::';
  return rules.find((r) => (wildcard && r.ports.includes(a.port)) || covers(r, a.family, ipBytes(a.host), a.port));
}
