#!/bin/sh
//bin/true; exec node -- "$0" "$@"
// Run as a shell script first, for that line: Node 20 takes `--env-file PATH` anywhere in its argv, also
// after the script's name (and exits when PATH is missing), and `--` ends its options. For Node a comment.
// Resuming a self-upgrade, every signal until here was deadly (Node starts with default dispositions):
// hold.cjs holds them, first thing (or earlier: the self-upgrade `--require`s it). The rest of baton is
// imported only after these lines, but for what reports a start that fails (fail.js, with errors.js) and
// nofile.js: loading the rest may fail for want of file descriptors.
import { setFlagsFromString } from 'node:v8';
import { fail } from './cli/fail.js';
import { held } from './cli/hold.cjs';
import { checkOpenFiles, openFilesError } from './cli/nofile.js';

// A young generation kept at its first 1 MB keeps V8 from growing baton's small, long-lived heap (and its RSS) over
// many upgrades: measured 5 MB instead of 17 MB of growth over 300 upgrades, as with --max-semi-space-size=1. Set
// here, not by `env -S node --max-semi-space-size=1` in the shebang: BusyBox's env (Alpine) has no -S. V8 reads
// that flag only as it makes the heap; the growth factor it reads at each growth.
setFlagsFromString('--semi-space-growth-factor=1');

async function main(): Promise<void> {
  if (process.env.BATON_SELF_CHECK === '1') return selfCheck();
  const args = process.argv.slice(2);
  const [first, ...rest] = args;
  if (first === 'steer') return void print((await import('./cli/steer.js')).steerCommand(rest));
  if (first === 'reload' || first === 'status' || first === 'stop') {
    return void print(await (await import('./cli/control.js')).controlCommand(first, rest));
  }
  checkOpenFiles();
  const parsed = await import('./cli/parsed.js');
  const asked = parsed.readMode();
  if (asked) {
    const { readArgv } = await reader();
    return print(parsed.readLine(() => readArgv(asked.args, asked.here)));
  }
  // What a program before this one read (or, resuming a self-upgrade from a build that did not pass it, nothing).
  const argv = parsed.takeParsed(args);
  if (argv || held) return (await import('./cli/run.js')).run(args, held, argv);
  const read = (await reader()).readArgv(args);
  if (read) parsed.execDaemon(read);
}

/** yargs, which only a program that does not stay loads (see cli/parsed.ts). */
const reader = () => import('./cli/argv.js');

/**
 * A self-upgrade's check of this build (self-check.ts): every module loads, and the running baton's options (its
 * arguments, BATON_*, --config as they read now) are valid here: else the new program would fail after the execve.
 * What it read of them goes to that program.
 */
async function selfCheck(): Promise<void> {
  checkOpenFiles(); // refused here, not after the execve
  await Promise.all([
    import('./cli/run.js'),
    import('./cli/control.js'),
    import('./cli/steer.js'),
    import('./metrics/registry.js'),
    import('./metrics/server.js'),
  ]);
  const { SELF_CHECK_ARGS, selfCheckLine } = await import('./self-check.js');
  const args = process.env[SELF_CHECK_ARGS];
  const argv = args ? (await reader()).readArgv(JSON.parse(args) as string[]) : undefined;
  if (argv) (await import('./cli/options.js')).toConfig(argv);
  print(selfCheckLine(argv));
}

function print(text: string): void {
  if (text) process.stdout.write(text + '\n');
}

main().catch((err: unknown) => fail(openFilesError(err)));
