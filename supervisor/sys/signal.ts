import { constants } from 'node:os';
import { check, libc } from './libc.js';

/** glibc's struct sigaction on 64-bit Linux (x86_64, aarch64): the handler is its first 8 bytes. */
const SIGACTION_SIZE = 152;
const SIG_IGN = 1n;

/**
 * Sets `signals` to SIG_IGN, the one disposition that survives execve, and returns what puts back
 * the handlers they had (libuv's). A signal that arrives meanwhile is discarded, not fatal.
 */
export function ignoreSignals(signals: readonly NodeJS.Signals[]): () => void {
  const ignore = Buffer.alloc(SIGACTION_SIZE);
  ignore.writeBigUInt64LE(SIG_IGN, 0);
  const saved: Array<[number, Buffer]> = [];
  const restore = () => {
    for (const [n, old] of saved.splice(0)) check(libc.sigaction(n, old, null), 'sigaction', {}, { signal: n });
  };
  try {
    for (const name of signals) {
      const old = Buffer.alloc(SIGACTION_SIZE);
      check(libc.sigaction(constants.signals[name], ignore, old), 'sigaction', {}, { signal: name });
      saved.push([constants.signals[name], old]);
    }
  } catch (err) {
    restore();
    throw err;
  }
  return restore;
}

/**
 * sigqueue(3): `sig` to `pid` with `value` (its sigval's int, passed in one register on x86_64 and
 * aarch64). False where the process is gone or refuses it.
 */
export function queueSignal(pid: number, sig: NodeJS.Signals, value: number): boolean {
  return libc.sigqueue(pid, constants.signals[sig], value) === 0;
}
