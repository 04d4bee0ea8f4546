import { constants } from 'node:os';
import koffi from 'koffi';
import { nativeFile } from './native.js';

/** native/hold.c built for this machine, under a build's supervisor/sys directory; undefined where there is none. */
export function holdObject(sysDir?: string): string | undefined {
  return nativeFile('hold', '.so', sysDir);
}

/** The object's entry points, loaded once (into a program that has it in LD_PRELOAD, the same copy). */
function entries(path: string) {
  const lib = koffi.load(path);
  return {
    forward: lib.func('int baton_forward(void)'),
    unforward: lib.func('int baton_unforward(void)'),
    held: lib.func('int baton_held(_Out_ uint8_t *out, int max)'),
  };
}

/**
 * Just before the execve of a self-upgrade: this thread blocks baton's signals and the others send
 * theirs on to it, so that every signal from here on waits, pending, for the next program (whose
 * LD_PRELOAD records it). Returns what undoes it if the execve fails; undefined where it cannot.
 */
export function forwardSignals(path: string): (() => void) | undefined {
  const lib = entries(path);
  if (lib.forward() !== 0) {
    lib.unforward();
    return undefined;
  }
  return () => void lib.unforward();
}

/** The signals this program received before it had handlers of its own, in order (names). */
export function heldAtStart(path = holdObject()): NodeJS.Signals[] {
  if (!path) return [];
  const out = Buffer.alloc(64);
  const n = entries(path).held(out, out.length) as number;
  const names = Object.entries(constants.signals) as Array<[NodeJS.Signals, number]>;
  return [...out.subarray(0, n)].flatMap((sig) => names.find(([, v]) => v === sig)?.[0] ?? []);
}
