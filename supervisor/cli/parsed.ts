import { activatedFds } from '../activation.js';
import type { Config } from '../config.js';
import { BatonError, usageError } from '../errors.js';
import { execNode } from '../exec-self.js';
import { batonVersion } from '../install.js';
import { REREAD_HINT } from '../reconfig.js';
import { runScript, saidLine } from '../run-script.js';
import { type Argv, toConfig } from './options.js';

// yargs costs baton 4 MB of private memory it never gives back (measured idle: 16.0 MB with it, 11.7 MB without),
// for a job done once. So the program that reads the command line is not the one that runs: it execs baton again
// in place (same pid) with what it read in PARSED_ENV, and with --config an upgrade reads the file again in a
// short-lived baton of its own (READ_ENV), never in the daemon.

/** What the command line read (JSON: the arguments and yargs' argv), for the daemon that runs them. */
export const PARSED_ENV = 'BATON_PARSED_OPTIONS';
/**
 * Set, baton reads the options it names (JSON: the arguments and the working directory as the user named it),
 * prints them and exits. They are not its arguments, which are `--help`: a build from before the read mode prints
 * its help instead of starting a second baton.
 */
const READ_ENV = 'BATON_READ_OPTIONS';
/**
 * V8's flags for the daemon. `--lite-mode`: baton's code is never hot, so no optimizing compilers: measured, their
 * code and memory is 1.3 MB less idle and 9-10 MB less after 1,000 upgrades, baton's CPU per upgrade the same (3.0 ms).
 * `--no-expose-wasm`: lite mode has no WebAssembly, and unsaid V8 warns so on stderr at each setFlagsFromString.
 * `--expose-gc`: for memory.ts.
 */
const DAEMON_FLAGS = ['--lite-mode', '--no-expose-wasm', '--expose-gc'];
/** How long a read of the options (a node start and a parse) may take. */
const READ_TIMEOUT = 10_000;

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
  return execNode(daemonFlags(process.execArgv), parsedEnv(process.argv.slice(2), argv), activatedFds());
}

/** `flags` with DAEMON_FLAGS, each once (a program resumed from a build that did not give them gets them next). */
export function daemonFlags(flags: string[]): string[] {
  return [...flags, ...DAEMON_FLAGS.filter((f) => !flags.includes(f))];
}

/** In read mode (READ_ENV set), what to read: the arguments and the directory; undefined otherwise. */
export function readMode(): { args: string[]; here: string } | undefined {
  const text = process.env[READ_ENV];
  return text ? (JSON.parse(text) as { args: string[]; here: string }) : undefined;
}

/** Read mode's one line: the options as `read` gives them, or its usage error; and this build's version. */
export function readLine(read: () => Argv | undefined): string {
  const version = batonVersion();
  try {
    return JSON.stringify({ baton: 'options', version, argv: read() });
  } catch (err) {
    if (!(err instanceof BatonError)) throw err;
    return JSON.stringify({ baton: 'options', version, error: err.message, hint: err.hint });
  }
}

/** The options as `args`, BATON_* and the --config file read now, from `here`: read by a baton in read mode. */
export async function rereadOptions(args: string[], here: string): Promise<Config> {
  const failed = (why: string, hint = REREAD_HINT) =>
    new BatonError('ERR_BATON_CONFIG', `the options could not be read: ${why}`, hint);
  const env = { [READ_ENV]: JSON.stringify({ args, here }) };
  const said = saidLine(await runScript(['--help'], env, READ_TIMEOUT, failed), 'baton', 'options');
  if (!said) throw failed(`${process.argv[1]} has no read mode (a build from before it)`, UPGRADE_HINT);
  // The options as another build reads them need not be this one's.
  const version = batonVersion();
  if (said.version !== version)
    throw failed(`${process.argv[1]} is baton ${said.version}, not ${version}`, UPGRADE_HINT);
  if (typeof said.error === 'string') throw usageError(said.error, String(said.hint ?? REREAD_HINT));
  return toConfig(said.argv as Argv, here);
}

const UPGRADE_HINT = 'baton reads --config with its own build: upgrade baton itself (SIGUSR2) or put its build back';
