import { BatonError } from './errors.js';
import { preloadEnv } from './preload.js';
import { runScript, saidLine } from './run-script.js';

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

/** The line a build prints in check mode, with the options it read from the running baton's (absent without). */
export function selfCheckLine(argv?: object): string {
  return JSON.stringify({ baton: 'self-check', features: FEATURES, ...(argv ? { argv } : {}) });
}

/**
 * What the checked build said of itself: the features of its BATON_RESUME (none for a build before the check), and
 * the running baton's options as it read them (none for a build before it printed them): its daemon takes those.
 */
export interface CheckedBuild {
  features: string[];
  argv?: object;
}

/**
 * Starts the program a self-upgrade would exec (the same node, node flags and script) in check mode
 * and resolves once it exited 0; rejects with ERR_BATON_SELF_CHECK if it failed, was killed or took
 * longer than `timeout`. It gets `--help` so that a build from before the check mode prints its help
 * instead of starting a second baton.
 */
export async function checkBuild(timeout = SELF_CHECK_TIMEOUT): Promise<CheckedBuild> {
  const script = process.argv[1]!;
  // With the preload the program would get: a broken one fails the check, not the execve.
  const options = JSON.stringify(process.argv.slice(2));
  const env = { ...preloadEnv(script), [SELF_CHECK_ENV]: '1', [SELF_CHECK_ARGS]: options };
  const refused = (why: string) => {
    const hint = 'baton goes on with the build it runs; fix the deploy and send SIGUSR2 again';
    return new BatonError('ERR_BATON_SELF_CHECK', `self-upgrade refused: ${script} ${why}`, hint, { script });
  };
  const said = saidLine(await runScript(['--help'], env, timeout, refused), 'baton', 'self-check');
  const features = Array.isArray(said?.features) ? said.features.map(String) : [];
  return { features, ...(typeof said?.argv === 'object' && said.argv ? { argv: said.argv } : {}) };
}
