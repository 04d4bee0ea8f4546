import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { BatonError } from '../errors.js';
import { check, libc } from './libc.js';

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => {
      const [, where, type] = line.split(' ');
      return type === 'bpf' && where === path;
    });
}

/**
 * Mounts bpffs at `path` unless it is mounted there already: mode 0700 (the kernel's default, 1777,
 * would let any user claim the directories baton pins in).
 */
export function ensureBpffs(path: string): void {
  if (mounted(path)) return;
  try {
    // Not recursive: Node's recursive mkdir spins forever under /proc.
    if (!existsSync(path)) mkdirSync(path);
    check(libc.mount('bpf', path, 'bpf', 0, Buffer.from('mode=0700\0')), 'mount', {}, { path });
  } catch (err) {
    throw new BatonError(
      'ERR_BATON_BPFFS',
      `bpffs is not mounted at ${path} and cannot be mounted: ${(err as Error).message}`,
      `mount it first (mount -t bpf bpf ${path}), or run baton with CAP_SYS_ADMIN`,
    );
  }
}
