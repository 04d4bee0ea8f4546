import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

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

/** Where a new generation runs: `path` resolved now (the release a link names at this moment), or why not. */
export function resolveRelease(path: string): { dir: string } | { reason: string; hint: string } {
  const dir = realDirectory(path);
  if (dir) return { dir };
  return {
    reason: `the working directory ${path} does not lead to a directory`,
    hint: `point it at a release (ln -sfn RELEASE ${path}), then reload again`,
  };
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
