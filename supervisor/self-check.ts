import { spawn } from 'node:child_process';
import { track } from './children.js';
import { BatonError } from './errors.js';
import { nodeFlags, preloadEnv } from './preload.js';
import { withChildOomScore } from './sys/oom.js';

/** How long the build a self-upgrade would exec may take to load all of its modules. */
export const SELF_CHECK_TIMEOUT = 10_000;

/** With this set to 1, cli.ts only loads every module, prints selfCheckLine() and exits 0. */
export const SELF_CHECK_ENV = 'BATON_SELF_CHECK';
/** The running baton's arguments (JSON), which the checked build parses as its options. */
export const SELF_CHECK_ARGS = 'BATON_SELF_CHECK_ARGS';

/**
 * What this build takes from a self-upgrade beyond the first BATON_RESUME format: `control`, the
 * control socket's fd; `preload`, cli/hold.cjs as a `--require` (preload.ts); `hold`, sys/native/hold.c in
 * LD_PRELOAD, with the signals blocked and forwarded across the execve; `canary`, a canary window in flight and the
 * connections of `reload --wait` clients (the state's `canary` and `clients`).
 */
const FEATURES = ['control', 'preload', 'hold', 'oom-fd', 'canary'];

/** The line a build prints in check mode. */
export function selfCheckLine(): string {
  return JSON.stringify({ baton: 'self-check', features: FEATURES });
}

/** What the checked build said of itself: the features of its BATON_RESUME (none for a build before the check). */
export interface CheckedBuild {
  features: string[];
}

function features(stdout: string): string[] {
  for (const line of stdout.split('\n')) {
    try {
      const said = JSON.parse(line) as { baton?: unknown; features?: unknown };
      if (said.baton === 'self-check' && Array.isArray(said.features)) return said.features.map(String);
    } catch {
      // a build before the check mode prints its --help
    }
  }
  return [];
}

/** What a failed start printed: Node's `XxxError: ...` line and where (its first line), else the last lines. */
function reason(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const error = lines.find((l) => /^[A-Z]\w*(Error|Exception)\b/.test(l));
  return error ? `${error} (${lines[0]})` : lines.slice(-5).join(' | ');
}

/**
 * Starts the program a self-upgrade would exec (the same node, node flags and script) in check mode
 * and resolves once it exited 0; rejects with ERR_BATON_SELF_CHECK if it failed, was killed or took
 * longer than `timeout`. It gets `--help` so that a build from before the check mode prints its help
 * instead of starting a second baton.
 */
export function checkBuild(timeout = SELF_CHECK_TIMEOUT): Promise<CheckedBuild> {
  const script = process.argv[1]!;
  const args = [...nodeFlags(), script, '--help'];
  // With the preload the program would get: a broken one fails the check, not the execve.
  const options = JSON.stringify(process.argv.slice(2));
  const env = { ...process.env, ...preloadEnv(script), [SELF_CHECK_ENV]: '1', [SELF_CHECK_ARGS]: options };
  const child = withChildOomScore(() => spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let [stdout, stderr] = ['', ''];
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-65536)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-65536)));
  const refused = (why: string) => {
    const hint = 'baton goes on with the build it runs; fix the deploy and send SIGUSR2 again';
    return new BatonError('ERR_BATON_SELF_CHECK', `self-upgrade refused: ${script} ${why}`, hint, { script });
  };
  const result = new Promise<CheckedBuild>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(refused(`did not load within ${timeout}ms: ${reason(stderr)}`));
    }, timeout);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(refused(`cannot be started: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ features: features(stdout) });
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(refused(`does not start (${how}): ${reason(stderr)}`));
    });
  });
  track(child.pid, new Promise((resolve) => child.once('exit', resolve)));
  return result;
}
