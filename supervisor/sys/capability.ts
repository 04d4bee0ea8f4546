import { readFileSync } from 'node:fs';

export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_BPF = 39;

/** One capability set of this process (CapEff, CapPrm, CapAmb, ...) from /proc/self/status; 0 if absent. */
function capabilitySet(name: string): bigint {
  const hex = new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return BigInt(`0x${hex ?? '0'}`);
}

/** True when this process's effective set holds capability `cap`. */
export function hasCapability(cap: number): boolean {
  return ((capabilitySet('CapEff') >> BigInt(cap)) & 1n) === 1n;
}

/** True when this process's permitted set holds any capability. */
export function holdsCapabilities(): boolean {
  return capabilitySet('CapPrm') !== 0n;
}

/** The capabilities in this process's ambient set: those its children get across execve. */
export function ambientCapabilities(): number[] {
  const set = capabilitySet('CapAmb');
  return Array.from({ length: 64 }, (_, cap) => cap).filter((cap) => ((set >> BigInt(cap)) & 1n) === 1n);
}
