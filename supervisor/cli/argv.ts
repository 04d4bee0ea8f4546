import yargs from 'yargs';
import type { Config } from '../config.js';
import { batonVersion } from '../install.js';
import { logicalCwd } from '../release.js';
import { OPTIONS } from './option-table.js';
import { type Argv, HELP_HINT, toConfig } from './options.js';
import { strictParser } from './parser.js';
import { layered } from './sources.js';

const VERSION = batonVersion();

const USAGE = [
  '$0 --listen ADDRESS [options] -- COMMAND [ARGS...]',
  '$0 reload|status|stop [--control PATH | --pid-file PATH]',
  '$0 steer clean --name NAME',
  '',
  `baton ${VERSION}: runs COMMAND as generation 1, owns its listeners, and upgrades it with zero downtime on SIGHUP.`,
  'Every option can also be set by BATON_<OPTION> (e.g. BATON_DRAIN=10s) or in --config.',
].join('\n');

function parser(args: string[]) {
  let y = yargs(args)
    .scriptName('baton')
    .usage(USAGE)
    // The command is passed on as written: no number parsing of it.
    .parserConfiguration({
      'halt-at-non-option': true,
      'populate--': true,
      'camel-case-expansion': true,
      'parse-positional-numbers': false,
      'parse-numbers': false,
    });
  for (const [name, { type, ...o }] of Object.entries(OPTIONS)) {
    // A number option is read as written (yargs would turn "abc" into NaN and 1e3 into 1000): untyped,
    // it stays a string ('parse-numbers': false), and toConfig checks it.
    // An option given without its value is refused rather than left at its default.
    y = y.option(name, { ...o, ...(type === 'number' ? {} : { type }), requiresArg: type !== 'boolean' && !o.array });
  }
  return strictParser(
    y
      .help()
      .version(VERSION)
      .wrap(Math.min(120, process.stdout.columns || 100)),
    HELP_HINT,
  );
}

/**
 * The flags, BATON_* and the --config file (relative to `here`) as yargs reads them; undefined when --help or
 * --version was answered. The one place baton loads yargs: a daemon gets what it read (parsed.ts), not yargs.
 */
export function readArgv(args: string[], here = logicalCwd()): Argv | undefined {
  const argv = parser(layered(args, OPTIONS, process.env, here)).parseSync() as unknown as Argv;
  return argv.help || argv.version ? undefined : argv; // yargs printed the answer
}

/** argv → Config; undefined when --help or --version was answered. */
export function parseOptions(args: string[], here = logicalCwd()): Config | undefined {
  const argv = readArgv(args, here);
  return argv && toConfig(argv, here);
}
