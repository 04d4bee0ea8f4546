import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `native/NAME-ARCH` (+ `ext`) built for this machine, under a build's supervisor/sys directory;
 * undefined where there is none (only x86_64 is built).
 */
export function nativeFile(
  name: string,
  ext = '',
  sysDir = dirname(fileURLToPath(import.meta.url)),
): string | undefined {
  const path = join(sysDir, 'native', `${name}-${process.arch === 'x64' ? 'x86_64' : process.arch}${ext}`);
  return existsSync(path) ? path : undefined;
}
