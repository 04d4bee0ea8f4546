import { setFlagsFromString } from 'node:v8';

/** How long baton is quiet (no start, reload or upgrade) before it gives back what the last ones left. */
const QUIET_MS = 10_000;

/**
 * V8 keeps what a burst of upgrades made it take: its old space stays at its high-water mark, mostly free but in
 * fragments, and an idle baton allocates nothing that would run a collection. Measured over 1,000 upgrades
 * (`--lite-mode`): private memory from 10.1 MB idle to 19.0 MB, still so 40 s later, with the old space's live
 * objects back at their idle 5.3 MB. Once baton is quiet: a full collection that compacts (survivors moved
 * together, emptied pages freed) brings it to 11.4 MB; V8's last-resort collection after it (the pooled pages
 * and the young generation's given back) to 10.5-10.7 MB; the two take 30-36 ms of baton's time while nothing is
 * under way. `gc` is V8's, given by `--expose-gc` (cli/parsed.ts); without it (a self-upgrade from a build that
 * did not pass it) nothing is done.
 */
export function memoryTrimmer(gc = globalThis.gc, quietMs = QUIET_MS): { activity(): void; close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const trim = () => {
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc!();
      gc!({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
  };
  return {
    /** Something happened: the trim waits until QUIET_MS after the last such moment. */
    activity: () => {
      if (!gc) return;
      clearTimeout(timer);
      timer = setTimeout(trim, quietMs).unref();
    },
    close: () => clearTimeout(timer),
  };
}
