import { activatedFds } from '../activation.js';
import type { Config } from '../config.js';
import { BatonError, usageError } from '../errors.js';
import { execNode } from '../exec-self.js';
import { runScript, saidLine } from '../run-script.js';
import { type Argv, toConfig } from './options.js';

// yargs costs baton 4 MB of private memory it never gives back (measured idle: 16.0 MB with it, 11.7 MB without),
// for a job done once. So the program that reads the command line is not the one that runs: it execs baton again
// in place (same pid) with what it read in PARSED_ENV, and with --config an upgrade reads the file again in a
// short-lived baton of its own (READ_ENV), never in the daemon.

/** What the command line read (JSON: the arguments and yargs' argv), for the daemon that runs them. */
export const PARSED_ENV = 'BATON_PARSED_OPTIONS';
/** Set (to baton's working directory as the user named it), baton prints the options it reads and exits. */
const READ_ENV = 'BATON_READ_OPTIONS';
/**
 * V8's flags for the daemon. `--lite-mode`: baton's code is never hot, so no optimizing compilers: measured, their
 * code and memory is 1.3 MB less idle and 8 MB less after 1,000 upgrades, baton's CPU per upgrade the same (3.0 ms).
 * `--no-expose-wasm`: lite mode has no WebAssembly, and unsaid V8 warns so on stderr at each setFlagsFromString.
 * `--expose-gc`: for memory.ts.
 */
const DAEMON_FLAGS = ['--lite-mode', '--no-expose-wasm', '--expose-gc'];
/** How long a read of the options (a node start and a parse) may take. */
const READ_TIMEOUT = 10_000;
const HINT = 'see the message; the file is read at each upgrade';

/**
 * The options a program before this one read from these very `args`, taken out of the environment (no child gets
 * them); undefined without, or when they were read from other arguments (then this program reads its own).
 */
export function takeParsed(args: string[]): Argv | undefined {
  const text = process.env[PARSED_ENV];
  delete process.env[PARSED_ENV];
  try {
    const parsed = JSON.parse(text ?? 'null') as { args?: unknown; argv?: Argv } | null;
    return JSON.stringify(parsed?.args) === JSON.stringify(args) ? parsed?.argv : undefined;
  } catch {
    return undefined;
  }
}

/** The environment that gives a program started with `args` what was read from them. */
export function parsedEnv(args: string[], argv: object): Record<string, string> {
  return { [PARSED_ENV]: JSON.stringify({ args, argv }) };
}

/**
 * Becomes the daemon (execve in place, nothing started yet) with what was read from baton's arguments. The fds of
 * socket activation go with it: Node marked every inherited fd close-on-exec at its start.
 */
export function execDaemon(argv: Argv): never {
  const flags = [...process.execArgv, ...DAEMON_FLAGS.filter((f) => !process.execArgv.includes(f))];
  return execNode(flags, parsedEnv(process.argv.slice(2), argv), activatedFds());
}

/** In read mode (READ_ENV set), the directory the options are read from; undefined otherwise. */
export function readMode(): string | undefined {
  return process.env[READ_ENV] || undefined;
}

/** Read mode's one line: the options as `read` gives them, or its usage error. */
export function readLine(read: () => Argv | undefined): string {
  try {
    return JSON.stringify({ baton: 'options', argv: read() });
  } catch (err) {
    if (!(err instanceof BatonError)) throw err;
    return JSON.stringify({ baton: 'options', error: err.message, hint: err.hint });
  }
}

/** The options as `args`, BATON_* and the --config file read now, from `here`: read by a baton in read mode. */
export async function rereadOptions(args: string[], here: string): Promise<Config> {
  const failed = (why: string) => new BatonError('ERR_BATON_CONFIG', `the options could not be read: ${why}`, HINT);
  const said = saidLine(await runScript(args, { [READ_ENV]: here }, READ_TIMEOUT, failed), 'baton', 'options');
  if (typeof said?.error === 'string') throw usageError(said.error, String(said.hint));
  if (!said?.argv) throw failed('no answer');
  return toConfig(said.argv as Argv, here);
}
