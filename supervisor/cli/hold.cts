// CommonJS, so that a self-upgrade can `--require` it: Node runs it before it sets up the ESM loader.
import { Signals } from './signals.cjs';

/** Resuming a self-upgrade: every signal is held from here until the supervisor runs (see cli.ts). */
export const held = process.env.BATON_RESUME ? new Signals() : undefined;
