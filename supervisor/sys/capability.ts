import { readFileSync } from 'node:fs';

export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_BPF = 39;

/** True when this process's effective set holds capability `cap`. */
export function hasCapability(cap: number): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${hex}`) >> BigInt(cap)) & 1n) === 1n;
}
