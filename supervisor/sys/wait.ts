import { constants } from 'node:os';
import { libc } from './libc.js';

const WNOHANG = 1;
const signalNames = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/** waitpid(pid, WNOHANG): how the child ended, or undefined if it has not (or is not ours). */
export function reapStatus(pid: number): { code: number | null; signal: NodeJS.Signals | null } | undefined {
  const status = Buffer.alloc(4);
  if (Number(libc.waitpid(pid, status, WNOHANG)) !== pid) return undefined;
  const s = status.readInt32LE(0);
  const sig = s & 0x7f;
  return sig === 0
    ? { code: (s >> 8) & 0xff, signal: null }
    : { code: null, signal: (signalNames.get(sig) ?? 'SIGKILL') as NodeJS.Signals };
}
