import { dirname, join } from 'node:path';

const HOLD = join('cli', 'hold.cjs');

/**
 * What a self-upgrade `--require`s in the program it execs, when that build has it: cli/hold.cjs beside the
 * script baton runs (through the same path, e.g. a deploy's `current` link). A preload runs before Node
 * sets up its ESM loader: signals are held that much sooner.
 */
export function preload(script = process.argv[1]!): string[] {
  return ['--require', join(dirname(script), HOLD)];
}

/** This program's node flags, less that preload: the build a self-upgrade execs may not have it. */
export function nodeFlags(): string[] {
  const flags = [...process.execArgv];
  for (let i = flags.length - 2; i >= 0; i--) {
    if ((flags[i] === '--require' || flags[i] === '-r') && flags[i + 1]!.endsWith(`/${HOLD}`)) flags.splice(i, 2);
  }
  return flags;
}
