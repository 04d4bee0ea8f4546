import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { EnvFileError, readEnvFiles } from './env-file.js';

/**
 * The working directory as the user named it, symlinks kept: `--cwd` (relative to it), else the
 * shell's logical $PWD where it leads to the real working directory, else that directory. A deploy
 * that re-points a `current` link then reaches the next generation (each upgrade resolves it again).
 */
export function workingPath(cwd: string | undefined, pwd = process.env.PWD): string {
  const here = process.cwd();
  const logical = pwd && isAbsolute(pwd) && realDirectory(pwd) === here ? pwd : here;
  return cwd === undefined ? logical : resolve(logical, cwd);
}

/** Where a generation runs, and the variables its --env-files gave it. */
export interface Release {
  dir: string;
  env: Record<string, string>;
}

/** Why a release cannot be used, and the fix. */
export interface Refusal {
  reason: string;
  hint: string;
}

/** The release a new generation runs now: `cwd` resolved (a link followed at this moment) and its env files read. */
export function resolveRelease(o: { cwd: string; envFiles: string[] }): Release | Refusal {
  const dir = realDirectory(o.cwd);
  if (!dir) {
    return {
      reason: `the working directory ${o.cwd} does not lead to a directory`,
      hint: `point it at a release directory (ln -sfn RELEASE ${o.cwd})`,
    };
  }
  return releaseIn(dir, o.envFiles);
}

/** The release in `dir`: its --env-files read now (relative ones are the release's). */
export function releaseIn(dir: string, envFiles: string[]): Release | Refusal {
  try {
    return { dir, env: readEnvFiles(envFiles, dir) };
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
