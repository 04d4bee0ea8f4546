import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Config } from './config.js';
import { EnvFileError, readEnvFiles } from './env-file.js';

/**
 * baton's working directory as the user named it, symlinks kept: the shell's logical $PWD where it leads to the
 * real working directory, else that directory. Taken once at start: baton's own directory stays the inode it
 * started in, which a deploy's re-pointed `current` link no longer leads to.
 */
export function logicalCwd(pwd = process.env.PWD): string {
  const here = process.cwd();
  return pwd && isAbsolute(pwd) && realDirectory(pwd) === here ? pwd : here;
}

/**
 * Where generations run, as the user named it: `--cwd` (relative to `here`), else `here`. A deploy that re-points
 * a `current` link then reaches the next generation (each upgrade resolves it again).
 */
export function workingPath(cwd: string | undefined, here = logicalCwd()): string {
  return cwd === undefined ? here : resolve(here, cwd);
}

/** What a generation keeps of the configuration it was launched under, for its whole life. */
export type Shape = Pick<Config, 'command' | 'ready' | 'readyTimeout' | 'stopSignal' | 'killTimeout'>;

/** What a generation runs: the options it was launched under, where (the cwd), and its env files' variables. */
export interface Release extends Shape {
  dir: string;
  env: Record<string, string>;
}

/** Why a release cannot be used, and the fix. */
export interface Refusal {
  reason: string;
  hint: string;
}

/** The release a new generation of `o` runs now: `cwd` resolved (a link followed at this moment), env files read. */
export function resolveRelease(o: Shape & Pick<Config, 'cwd' | 'envFiles' | 'user'>): Release | Refusal {
  const dir = realDirectory(o.cwd);
  if (!dir) {
    return {
      reason: `the working directory ${o.cwd} does not lead to a directory`,
      hint: `point it at a release directory (ln -sfn RELEASE ${o.cwd})`,
    };
  }
  return releaseIn(dir, o);
}

/** What a generation launched under `config` keeps of it. */
export function shapeOf(config: Shape): Shape {
  const { command, ready, readyTimeout, stopSignal, killTimeout } = config;
  return { command, ready, readyTimeout, stopSignal, killTimeout };
}

/** The release of `o` in `dir`: its --env-files read now (relative ones are the release's). */
export function releaseIn(dir: string, o: Shape & Pick<Config, 'envFiles' | 'user'>): Release | Refusal {
  try {
    return { ...shapeOf(o), dir, env: readEnvFiles(o.envFiles, dir, o.user) };
  } catch (err) {
    if (!(err instanceof EnvFileError)) throw err;
    const hint = 'write KEY=VALUE lines (systemd EnvironmentFile= syntax); an optional file: --env-file=-PATH';
    return { reason: `--env-file ${err.message}`, hint };
  }
}

/** `path` with every link resolved, if it leads to a directory. */
function realDirectory(path: string): string | undefined {
  try {
    const dir = realpathSync(path);
    return statSync(dir).isDirectory() ? dir : undefined;
  } catch {
    return undefined;
  }
}
