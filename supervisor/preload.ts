import { existsSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { holdObject } from './sys/hold.js';

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

/**
 * For the program a self-upgrade execs: its build's native signal holder (sys/native/hold.c) in LD_PRELOAD,
 * with what LD_PRELOAD was before in BATON_LD_PRELOAD (hold.cjs puts it back, so that no child gets it).
 * Empty where that build has none for this machine.
 */
export function preloadEnv(script = process.argv[1]!): Record<string, string> {
  const object = holdObject(join(dirname(scriptFile(script)), 'sys'));
  if (!object) return {};
  const before = process.env.LD_PRELOAD ?? '';
  return { LD_PRELOAD: before ? `${object} ${before}` : object, BATON_LD_PRELOAD: before };
}

/** This program's node flags, less that preload: the build a self-upgrade execs may not have it. */
export function nodeFlags(): string[] {
  const flags = [...process.execArgv];
  for (let i = flags.length - 2; i >= 0; i--) {
    if ((flags[i] === '--require' || flags[i] === '-r') && flags[i + 1]!.endsWith(`/${HOLD}`)) flags.splice(i, 2);
  }
  return flags;
}
