import { existsSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const HOLD = join('cli', 'hold.cjs');

/** `script` with links of its own name followed (npm's .bin/baton), its directories as given (a deploy's `current`). */
function scriptFile(script: string): string {
  let path = script;
  for (let i = 0; i < 8; i++) {
    try {
      path = resolve(dirname(path), readlinkSync(path));
    } catch {
      return path; // not a link
    }
  }
  return path;
}

/**
 * What a self-upgrade `--require`s in the program it execs, when that build has it: cli/hold.cjs beside the
 * script baton runs (through the same directories, e.g. a deploy's `current` link). A preload runs before
 * Node sets up its ESM loader: signals are held that much sooner. Nothing if the file is not there.
 */
export function preload(script = process.argv[1]!): string[] {
  const path = join(dirname(scriptFile(script)), HOLD);
  return existsSync(path) ? ['--require', path] : [];
}

/** This program's node flags, less that preload: the build a self-upgrade execs may not have it. */
export function nodeFlags(): string[] {
  const flags = [...process.execArgv];
  for (let i = flags.length - 2; i >= 0; i--) {
    if ((flags[i] === '--require' || flags[i] === '-r') && flags[i + 1]!.endsWith(`/${HOLD}`)) flags.splice(i, 2);
  }
  return flags;
}
