import { type Config, optionName } from './config.js';
import { BatonError } from './errors.js';
import { formatReady } from './ready/index.js';
import { type Refusal, type Release, resolveRelease } from './release.js';

/** The options that shape a generation: --config read again at an upgrade changes them for the new one. */
const SHAPING = [
  'command',
  'cwd',
  'envFiles',
  'ready',
  'readyTimeout',
  'drain',
  'stopSignal',
  'killTimeout',
  'maxDraining',
  'workers',
  'surge',
  'check',
  'checkTimeout',
  'health',
] as const;

type Shaping = (typeof SHAPING)[number];

/**
 * What baton set up at its start and holds until it exits, by option name: a change needs a restart. Typed so that
 * every option of Config is either here or shaping (bpffs is BATON_BPFFS, not an option).
 */
const FIXED: Record<Exclude<keyof Config, Shaping | 'bpffs'>, string> = {
  listen: 'listen',
  backlog: 'backlog',
  handover: 'handover',
  pidFile: 'pid-file',
  control: 'control',
  metrics: 'metrics',
  subreaper: 'subreaper',
  logFormat: 'log-format',
  user: 'user/--group',
  steer: 'steer',
  name: 'name',
  stateDir: 'state-dir',
  force: 'force',
  keepSteering: 'keep-steering',
  sharedSocket: 'shared-socket',
};

const DURATIONS = new Set<Shaping>(['readyTimeout', 'drain', 'killTimeout', 'checkTimeout']);

/** What to do about a --config that an upgrade could not apply, where the error has no better hint. */
export const REREAD_HINT = 'see the message; the file is read at each upgrade';

/** The configuration as the options read now: --config (and BATON_*, and the flags) parsed again. */
export type Reread = () => Promise<Config>;

/** What an upgrade runs under: its configuration, the release it starts, and what changed from the running one. */
export interface Plan {
  config: Config;
  release: Release;
  /** One line per shaping option that changed, e.g. `--drain from 5000ms to 2000ms`. */
  changes: string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The plan of the next upgrade: `current`, or with `reread` (--config given) the options as they read now. An
 * invalid file, a changed option that needs a restart, or a release that cannot be used refuses the upgrade; nothing
 * of `current` changes before the upgrade succeeds (adopt).
 */
export async function planUpgrade(current: Config, reread?: Reread): Promise<Plan | Refusal> {
  let next = current;
  if (reread) {
    try {
      next = await reread();
    } catch (err) {
      const hint = err instanceof BatonError ? err.hint : REREAD_HINT;
      return { reason: `--config not applied: ${(err as Error).message}`, hint };
    }
    const fixed = (Object.keys(FIXED) as Array<keyof typeof FIXED>).filter((k) => !same(current[k], next[k]));
    if (fixed.length > 0) {
      const names = fixed.map((k) => `--${FIXED[k]}`).join(', ');
      return {
        reason: `--config not applied: ${names} changed, which baton sets up only at its start`,
        hint: `restart baton to change ${names}, or put back its value to upgrade`,
      };
    }
  }
  const release = resolveRelease(next);
  if ('reason' in release) return release;
  const changes = SHAPING.filter((k) => !same(current[k], next[k])).map(
    (k) => `${label(k)} from ${shown(k, current[k])} to ${shown(k, next[k])}`,
  );
  return { config: next, release, changes };
}

/** The upgrade under `next` succeeded: its shaping options are the running ones from now on. */
export function adoptConfig(current: Config, next: Config): void {
  for (const key of SHAPING) Object.assign(current, { [key]: next[key] });
}

/** A shaping option as the user names it (envFiles is the repeatable --env-file). */
function label(key: Shaping): string {
  return key === 'command' ? 'the command' : key === 'envFiles' ? '--env-file' : `--${optionName(key)}`;
}

/** How the values that are not plain text read in a `changes` line. */
const TEXT: { [K in Shaping]?: (value: NonNullable<Config[K]>) => string } = {
  command: (words) => words.join(' '),
  envFiles: (files) => files.join(' '),
  ready: formatReady,
  health: (h) => `probe:${h.command} every ${h.intervalMs}ms, ${h.failures} failures in a row`,
};

/** A value as the `changes` lines show it: text quoted as JSON (no control character reaches a terminal). */
function shown(key: Shaping, value: Config[Shaping]): string {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return 'none';
  if (DURATIONS.has(key)) return `${value}ms`;
  if (typeof value === 'number') return String(value);
  const text = TEXT[key] as ((v: typeof value) => string) | undefined;
  return JSON.stringify(text ? text(value) : String(value));
}
