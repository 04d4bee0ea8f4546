import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BatonError } from './errors.js';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
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
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const path = join(dir || '.', file);
    if (executable(path)) return path;
  }
  throw notFound();
}
