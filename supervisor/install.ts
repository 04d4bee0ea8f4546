import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineage, othersMayChange } from './files.js';

/** The package baton runs from: the nearest directory above its code with a package.json. */
function packageRoot(code: string): string {
  let dir = code;
  while (!existsSync(join(dir, 'package.json')) && dir !== dirname(dir)) dir = dirname(dir);
  return dir;
}

/** The directory of baton's own code. */
const ownCode = () => dirname(fileURLToPath(import.meta.url));

/** baton's own version, from its own package.json (not the working directory's, nor the app's); else 'unknown'. */
export function batonVersion(): string {
  try {
    const { version } = JSON.parse(readFileSync(join(packageRoot(ownCode()), 'package.json'), 'utf8'));
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The first file in `dir` (recursively, not following links) that others may change, and why. */
function changeable(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    const why = othersMayChange(lstatSync(path));
    const found = why ? `${path}: ${why}` : entry.isDirectory() ? changeable(path) : undefined;
    if (found) return found;
  }
  return undefined;
}

export const INSTALL_HINT =
  'whoever can change them can run code as root (at a self-upgrade, a steering start): install baton root-owned ' +
  'outside the application, e.g. npm install -g as root or /opt/baton (docs/security.md)';

/**
 * Why someone other than root could replace the code a root baton runs (at a self-upgrade, or on
 * reading bpf/steer.o): its package files and every directory above them must be root's or baton's
 * own, writable by no one else. Undefined when they are; checked only for a baton running as root.
 */
export function replaceableCode(): string | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  const code = ownCode();
  const root = packageRoot(code);
  for (const dir of lineage(root)) {
    const why = othersMayChange(lstatSync(dir));
    if (why) return `baton's code is in ${dir}: ${why}`;
  }
  const file = changeable(code) ?? changeable(join(root, 'bpf'));
  return file ? `baton's code: ${file}` : undefined;
}
