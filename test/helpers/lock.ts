import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const path = join(tmpdir(), `baton-test-load-${process.getuid?.() ?? 0}.lock`);

/**
 * Holds the machine for one test under load at a time, across ava's worker processes: on two cores a
 * second load test (or its generations starting) would show up as the first one's gaps. Resolves with
 * the release function. The lock is flock(1)'s, held by a child that lives as long as its stdin: the
 * kernel releases it when the test releases it or its worker dies, so no stale lock can stay.
 */
export function exclusive(): Promise<() => void> {
  const hold = 'echo held; exec cat >/dev/null';
  const holder = spawn('flock', ['-x', path, '-c', hold], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    holder.once('error', reject);
    holder.once('exit', (code) => reject(new Error(`flock ${path} exited with ${code} before it held the lock`)));
    holder.stdout.once('data', () => {
      holder.removeAllListeners('exit');
      resolve(() => holder.stdin.end());
    });
  });
}
