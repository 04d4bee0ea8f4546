import { chmodSync, lstatSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CheckedDirectory, checkDirectory, makeDirectory, removeKnown } from './files.js';

// baton's runtime directory, `$TMPDIR/baton-XXXXXX`: the notify sockets of its generations, nothing else.

const WHAT = 'runtime directory';
/** With --user, a generation may reach its notify socket (0711) but never create files beside it. */
const modeFor = (user: boolean) => (user ? 0o711 : 0o700);
const NOTIFY = /^notify-\d+-\d+\.sock$/;
/** Each runtime directory (and mode) as it was last made or found: a launch looks again only when it changed. */
const made = new Map<string, CheckedDirectory>();

/** A new runtime directory, with a random name in a checked $TMPDIR. */
export function makeRuntimeDir(user: boolean): string {
  checkDirectory(tmpdir(), WHAT);
  const dir = mkdtempSync(join(tmpdir(), 'baton-'));
  chmodSync(dir, modeFor(user)); // just made, in a directory no one else may rename in
  return dir;
}

/**
 * The runtime directory `dir` once more, as made: a tmp cleaner may have removed it, and then anyone may
 * have made a directory at its (visible) name. Re-made if gone; refused if it is not baton's.
 */
export function ensureRuntimeDir(dir: string, user: boolean): void {
  const mode = modeFor(user);
  const key = `${mode}:${dir}`;
  let checked = made.get(key);
  if (!checked) {
    checked = new CheckedDirectory(dir, () => makeDirectory(dir, mode, WHAT));
    made.set(key, checked);
  }
  checked.ensure();
}

/** `dir` is one a baton of this user makes (`$TMPDIR/baton-XXXXXX`, a real directory of the euid). */
export function isRuntimeDir(dir: string): boolean {
  if (dirname(dir) !== tmpdir() || !/^baton-[A-Za-z0-9]{6}$/.test(basename(dir))) return false;
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === (process.geteuid?.() ?? 0);
  } catch {
    return false;
  }
}

/** Removes the runtime directory `dir` (this baton's, or a dead one's from its record) if it is one baton makes. */
export function removeRuntimeDir(dir: string): void {
  if (!isRuntimeDir(dir)) return;
  try {
    removeKnown(
      dir,
      readdirSync(dir).filter((f) => NOTIFY.test(f)),
    );
  } catch {
    // gone already
  }
}
