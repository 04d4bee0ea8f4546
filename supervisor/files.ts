import { randomBytes } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  rmdirSync,
  type Stats,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { spawnPending } from './children.js';
import { BatonError } from './errors.js';

const me = () => process.geteuid?.() ?? 0;

/** Why someone other than root or baton's own user may change this file or directory (sticky ones excepted). */
export function othersMayChange(st: Stats): string | undefined {
  if (st.uid !== 0 && st.uid !== me()) return `it belongs to uid ${st.uid}`;
  // A symlink's own mode means nothing; the directory that holds it is what can be changed.
  if (!st.isSymbolicLink() && st.mode & 0o022 && !(st.mode & 0o1000))
    return `it is writable by others (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/** Why `path` (lstat `st`) lets someone other than root or the euid swap what is under it, or undefined. */
function unsafe(path: string, st: Stats, self: boolean): string | undefined {
  const it = self ? 'it' : `its parent ${path}`;
  if (st.uid !== 0 && st.uid !== me()) return `${it} belongs to uid ${st.uid}`;
  // A symlink parent is safe when its owner and its own directory are (checked too); its target is checked.
  if (st.isSymbolicLink() && !self) return undefined;
  if (!st.isDirectory()) return `${it} is not a directory${self ? ' (a symlink?)' : ''}`;
  return othersMayChange(st)?.replace(/^it/, it);
}

/** `dir` and every directory above it, both as written and as the symlinks in it resolve. */
export function lineage(dir: string): string[] {
  const up = (p: string): string[] => (p === dirname(p) ? [p] : [p, ...up(dirname(p))]);
  return [...new Set([...up(resolve(dir)), ...up(realpathSync(dir))])];
}

/**
 * Refuses a directory in which someone other than root or baton's own user could swap files under
 * baton (plant a symlink, rename a socket away): it must be a real directory (not a symlink), owned
 * by root or the euid, and not group- or world-writable unless sticky (as /tmp is); so must every
 * directory above it, or the whole directory could be renamed away and replaced.
 */
export function checkDirectory(
  dir: string,
  what: string,
  fix = `use a directory that only root or uid ${me()} can write, e.g. under /run`,
): void {
  let why: string | undefined;
  try {
    for (const p of lineage(dir)) why ??= unsafe(p, lstatSync(p), p === resolve(dir));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const hint = `create ${dir}, or choose another path`;
    throw new BatonError('ERR_BATON_UNSAFE_DIR', `cannot use ${dir} for the ${what}: ${code}`, hint);
  }
  if (why) {
    throw new BatonError('ERR_BATON_UNSAFE_DIR', `refusing ${dir} for the ${what}: ${why}`, fix);
  }
}

/**
 * A directory that `check` makes or refuses, looked at again only when it is no longer the one that passed:
 * another device, inode, owner or mode (a tmp cleaner removed it and someone re-made it, a chmod). Its parents
 * passed too, and only root or baton's own user could have changed them since.
 */
export class CheckedDirectory {
  private passed?: string;

  constructor(
    private readonly dir: string,
    private readonly check: () => void,
  ) {}

  ensure(): void {
    if (this.passed !== undefined && this.passed === identity(this.dir)) return;
    this.check();
    this.passed = identity(this.dir);
  }
}

function identity(dir: string): string | undefined {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  return st && `${st.dev}:${st.ino}:${st.uid}:${st.mode}`;
}

/**
 * Runs `fn` with the process umask set to `mask`. Nothing else of baton's runs meanwhile, but a spawn on a worker
 * thread (sys/spawn.ts) would give its child this umask: none may be under way (a launch waits for them first).
 */
export function withUmask<T>(mask: number, fn: () => T): T {
  if (spawnPending()) throw new Error('a umask change while a spawn is under way would reach its child');
  const before = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(before);
  }
}

/**
 * Makes `dir` with exactly `mode` in a checked parent, or finds it as baton made it: a real directory
 * of the euid with that mode. Anything else (a directory someone else made at that name) is refused.
 */
export function makeDirectory(dir: string, mode: number, what: string): void {
  checkDirectory(dirname(dir), what);
  // Looked at first: an upgrade finds it there, and a thrown EEXIST would cost more than the lstat.
  if (!lstatSync(dir, { throwIfNoEntry: false })) {
    try {
      withUmask(0, () => mkdirSync(dir, { mode }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const st = lstatSync(dir);
  const why = !st.isDirectory()
    ? 'it is not a directory (a symlink?)'
    : st.uid !== me()
      ? `it belongs to uid ${st.uid}`
      : (st.mode & 0o7777) !== mode
        ? `its mode is ${(st.mode & 0o7777).toString(8)}, not ${mode.toString(8)}`
        : undefined;
  if (why) {
    const hint = `remove ${dir} (someone else made it after it was removed), or restart baton`;
    throw new BatonError('ERR_BATON_UNSAFE_DIR', `refusing ${dir} for the ${what}: ${why}`, hint);
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
    writeFileSync(fd, data); // all of it: one write(2) may take less (a nearly full file system)
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
