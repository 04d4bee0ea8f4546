import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from './baton.js';

const path = join(tmpdir(), `baton-test-load-${process.getuid?.() ?? 0}.lock`);

/**
 * Holds the machine for one test under load at a time, across ava's worker processes: on two cores a
 * second load test (or its generations starting) would show up as the first one's gaps. Resolves with
 * the release function.
 */
export async function exclusive(): Promise<() => void> {
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(path, 'utf8') || 0);
    // A worker that died holding it (ava killed it on a timeout) leaves the file behind.
    if (holder > 0 && holder !== process.pid && !alive(holder)) unlinkSync(path);
    else await new Promise((r) => setTimeout(r, 50));
  }
}
