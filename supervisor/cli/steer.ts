import yargs from 'yargs';
import { bpffsRoot, NAME, stateDirFor } from '../config.js';
import { alreadyRunning, usageError } from '../errors.js';
import { readState, removeState } from '../steering/state.js';
import { Steering } from '../steering/steering.js';
import { startTime } from '../sys/proc.js';
import { strictParser } from './parser.js';

/** `baton steer clean --name NAME [--state-dir DIR]`: removes the pins and state a baton left. */
export function steerCommand(args: string[]): string {
  const parser = yargs(args)
    .scriptName('baton steer')
    .usage(
      '$0 clean --name NAME [--state-dir DIR]\n\n' +
        'Removes the steering pins and state of NAME (left by --keep-steering or a crash).',
    )
    .option('name', { type: 'string', describe: 'the steering name (see --name)' })
    .option('state-dir', { type: 'string', describe: 'its state directory [default: /run/baton/NAME]' });
  const argv = strictParser(parser, 'run baton steer --help').parseSync();
  if (argv.help) return '';
  if (argv._[0] !== 'clean' || argv._.length !== 1)
    throw usageError(`unknown steer command "${argv._.join(' ')}"`, 'use: baton steer clean --name NAME');
  if (!argv.name) throw usageError('baton steer clean needs --name', 'give the --name the steering was started with');
  if (!NAME.test(argv.name))
    throw usageError(`bad --name "${argv.name}"`, 'a name is 1-64 letters, digits, "_" or "-"');
  const stateDir = argv.stateDir ?? stateDirFor(argv.name);
  const state = readState(stateDir);
  if (state && startTime(state.pid) !== undefined) {
    throw alreadyRunning(`steering ${argv.name} belongs to a running baton`, state.pid);
  }
  const removed = Steering.clean(argv.name, bpffsRoot());
  removeState(stateDir);
  return removed ? `removed the pins and state of ${argv.name}` : `no pins named ${argv.name}; state removed`;
}
