import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, openSync, renameSync, rmdirSync, type Stats, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BatonError } from './errors.js';

const me = () => process.geteuid?.() ?? 0;

/**
 * Refuses a directory in which someone other than root or baton's own user could swap files under
 * baton (plant a symlink, rename a socket away): it must be a real directory (not a symlink), owned
 * by root or the euid, and not group- or world-writable unless sticky (as /tmp is).
 */
export function checkDirectory(
  dir: string,
  what: string,
  fix = `use a directory that only root or uid ${me()} can write, e.g. under /run`,
): void {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const hint = `create ${dir}, or choose another path`;
    throw new BatonError('ERR_BATON_UNSAFE_DIR', `cannot use ${dir} for the ${what}: ${code}`, hint);
  }
  const why = !st.isDirectory()
    ? 'it is not a directory (a symlink?)'
    : st.uid !== 0 && st.uid !== me()
      ? `it belongs to uid ${st.uid}`
      : st.mode & 0o022 && !(st.mode & 0o1000)
        ? `it is writable by others (mode ${(st.mode & 0o7777).toString(8)})`
        : undefined;
  if (why) {
    throw new BatonError('ERR_BATON_UNSAFE_DIR', `refusing ${dir} for the ${what}: ${why}`, fix);
  }
}

/**
 * Writes `data` to `path` atomically in a checked directory: a temp file with a random name created
 * with O_EXCL (which never follows a planted symlink), then renamed over `path` (rename replaces a
 * symlink at `path`, it does not follow it).
 */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  let open = true;
  try {
    writeSync(fd, data);
    open = false;
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    if (open) closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
}

/** Removes the files named `names` in `dir` (each one baton made), then `dir` if that left it empty. */
export function removeKnown(dir: string, names: readonly string[]): void {
  for (const name of names) {
    try {
      unlinkSync(join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  try {
    rmdirSync(dir);
  } catch (err) {
    if (!['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
}
