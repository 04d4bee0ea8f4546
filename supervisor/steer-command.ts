import yargs from 'yargs';
import { NAME } from './config.js';
import { BatonError, usageError } from './errors.js';
import { readState, removeState, startTime } from './steering/state.js';
import { Steering } from './steering/steering.js';

/** `baton steer clean --name NAME [--state-dir DIR]`: removes the pins and state a baton left. */
export function steerCommand(args: string[]): string {
  const argv = yargs(args)
    .scriptName('baton steer')
    .usage('$0 clean --name NAME [--state-dir DIR]\n\nRemoves the steering pins and state of NAME (left by --keep-steering or a crash).')
    .option('name', { type: 'string', describe: 'the steering name (see --name)' })
    .option('state-dir', { type: 'string', describe: 'its state directory [default: /run/baton/NAME]' })
    .strictOptions()
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? usageError(msg, 'run baton steer --help');
    })
    .parseSync();
  if (argv.help) return '';
  if (argv._[0] !== 'clean' || argv._.length !== 1) throw usageError(`unknown steer command "${argv._.join(' ')}"`, 'use: baton steer clean --name NAME');
  if (!argv.name) throw usageError('baton steer clean needs --name', 'give the --name the steering was started with');
  if (!NAME.test(argv.name)) throw usageError(`bad --name "${argv.name}"`, 'a name is 1-64 letters, digits, "_" or "-"');
  const stateDir = argv.stateDir ?? `/run/baton/${argv.name}`;
  const state = readState(stateDir);
  if (state && startTime(state.pid) !== undefined) {
    throw new BatonError('ERR_BATON_RUNNING', `steering ${argv.name} belongs to a running baton (pid ${state.pid})`, `stop it first (kill ${state.pid})`, { pid: state.pid });
  }
  const removed = Steering.clean(argv.name, process.env.BATON_BPFFS ?? '/sys/fs/bpf');
  removeState(stateDir);
  return removed ? `removed the pins and state of ${argv.name}` : `no pins named ${argv.name}; state removed`;
}
