import { constants } from 'node:os';
import { usageError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The longest timer Node keeps (2^31-1 ms, about 24.8 days): a longer one fires after 1 ms. */
export const MAX_DURATION = 2 ** 31 - 1;

/** `500`, `500ms`, `5s`, `1.5m`, `2h`, `1d` → milliseconds, at most MAX_DURATION. */
export function parseDuration(option: string, text: string, max = MAX_DURATION): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(text).trim());
  if (!m)
    throw usageError(`bad duration for --${option}: "${text}"`, 'use milliseconds or a unit: 500ms, 5s, 1m, 2h, 1d');
  const ms = Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
  if (ms > max) {
    throw usageError(
      `--${option} ${text} is longer than baton can time (${max}ms)`,
      `use at most ${max}ms (about 24d)`,
    );
  }
  return ms;
}

/** `TERM`, `SIGTERM`, `sigterm` or `15` → 'SIGTERM'. */
export function parseSignal(option: string, text: string): NodeJS.Signals {
  const t = String(text).trim().toUpperCase();
  const byNumber = Object.entries(constants.signals).find(([, n]) => String(n) === t)?.[0];
  const name = byNumber ?? (t.startsWith('SIG') ? t : `SIG${t}`);
  if (!(name in constants.signals)) {
    throw usageError(
      `unknown signal for --${option}: "${text}"`,
      'use a name such as SIGTERM, SIGINT, SIGQUIT or SIGUSR1 (see kill -l)',
    );
  }
  return name as NodeJS.Signals;
}

export function signalNumber(name: NodeJS.Signals): number {
  return constants.signals[name];
}

/** Digits only (no 1e3, 0x10 or 1.0), from `min` to `max`: a number option as given, or its default. */
export function wholeNumber(
  option: string,
  value: string | number,
  min: number,
  max?: number,
  or = '',
  hint = 'run baton --help for the options',
) {
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= (max ?? Number.MAX_SAFE_INTEGER))) {
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    const given = JSON.stringify(String(value));
    throw usageError(`--${option} must be a whole number ${range}${or}, not ${given}`, hint);
  }
  return n;
}
