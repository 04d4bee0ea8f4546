import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BatonError } from './errors.js';

/** A regular file this process may execute. Looked up without a thrown ENOENT: a PATH lookup misses often. */
function executable(path: string): boolean {
  try {
    if (!statSync(path, { throwIfNoEntry: false })?.isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false; // EACCES: a directory of PATH this user may not search
  }
}

/** Checks before anything starts that the command can be executed, as execvp would find it. */
export function resolveCommand(file: string): string {
  const hint = 'check the spelling, install it, or give its full path';
  const notFound = () => new BatonError('ERR_BATON_COMMAND', `command not found: ${file}`, hint);
  if (file.includes('/')) {
    if (executable(file)) return file;
    try {
      statSync(file);
    } catch {
      throw notFound();
    }
    const fix = `chmod +x ${file}, or run it through its interpreter`;
    throw new BatonError('ERR_BATON_COMMAND', `not an executable file: ${file}`, fix);
  }
  const path = commandPath(file, process.env.PATH);
  if (path === undefined) throw notFound();
  return path;
}

/** Where execvp would find `file` (no slash in it) in `PATH`; undefined when it is nowhere. A path is itself. */
export function commandPath(file: string, PATH = '/usr/bin:/bin'): string | undefined {
  if (file.includes('/')) return file;
  for (const dir of PATH.split(delimiter)) {
    const path = join(dir || '.', file);
    if (executable(path)) return path;
  }
  return undefined;
}
