// CommonJS, so that a self-upgrade can `--require` it: Node runs it before it sets up the ESM loader.
import { Signals } from './signals.cjs';

// A self-upgrade preloaded sys/native/hold.c (preload.ts): LD_PRELOAD as it was before, for every child.
const before = process.env.BATON_LD_PRELOAD;
if (before !== undefined) {
  if (before) process.env.LD_PRELOAD = before;
  else delete process.env.LD_PRELOAD;
  delete process.env.BATON_LD_PRELOAD;
}

/** Resuming a self-upgrade: every signal is held from here until the supervisor runs (see cli.ts). */
export const held = process.env.BATON_RESUME ? new Signals() : undefined;
