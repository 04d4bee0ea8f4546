import { type ChildProcess, spawn } from 'node:child_process';
import { track } from './children.js';
import { nodeFlags } from './preload.js';
import { withChildOomScore } from './sys/oom.js';

/** What a failed start printed: Node's `XxxError: ...` line and where (its first line), else the last lines. */
function reason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const error = lines.find((l) => /^[A-Z]\w*(Error|Exception)\b/.test(l));
  return error ? `${error} (${lines[0]})` : lines.slice(-5).join(' | ');
}

/** The scripts running now: a stop kills them (a --config read blocked on a FIFO held the stop for its bound). */
const running = new Set<ChildProcess>();

/** baton stops: every script still running is killed now. */
export function stopScripts(): void {
  for (const child of running) child.kill('SIGKILL');
}

/**
 * Runs baton's script again (the same node and node flags) with `args` and `env` over baton's own environment, in a
 * mode the environment names, and resolves with its stdout once it exited 0. Rejects with `refused(why)` if it could
 * not start, failed, was killed or took longer than `timeout` ms (then it is killed).
 */
export function runScript(
  args: string[],
  env: Record<string, string>,
  timeout: number,
  refused: (why: string) => Error,
): Promise<string> {
  // `--`: Node 20 would take an --env-file among the arguments for its own (see cli.ts).
  const argv = [...nodeFlags(), '--', process.argv[1]!, ...args];
  const child = withChildOomScore(() =>
    spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let [stdout, stderr] = ['', ''];
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-65536)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-65536)));
  const result = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(refused(`did not answer within ${timeout}ms: ${reason(stderr)}`));
    }, timeout);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(refused(`cannot be started: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(refused(`does not start (${how}): ${reason(stderr)}`));
    });
  });
  if (child.pid !== undefined) running.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve)).finally(() => running.delete(child));
  track(child.pid, exited);
  return result;
}

/** The first line of `stdout` that is a JSON object with `key` set to `value`, else undefined. */
export function saidLine(stdout: string, key: string, value: string): Record<string, unknown> | undefined {
  for (const line of stdout.split('\n')) {
    try {
      const said = JSON.parse(line) as Record<string, unknown>;
      if (said?.[key] === value) return said;
    } catch {
      // not a line of the answer (a build before the mode prints its --help)
    }
  }
  return undefined;
}
