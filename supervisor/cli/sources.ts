import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { optionName } from '../config.js';
import { usageError } from '../errors.js';

export interface OptionShape {
  type: 'string' | 'number' | 'boolean';
  array?: boolean;
}

const CONFIG_HINT = 'give a JSON file whose keys are option names, e.g. {"listen": ["127.0.0.1:8080"], "drain": "5s"}';

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Option names given on the command line (before `--`). */
function given(args: string[]): Set<string> {
  const out = new Set<string>();
  for (const a of args) {
    if (a === '--') break;
    const m = /^--(?:no-)?([a-z][a-z0-9-]*)/.exec(a);
    if (m) out.add(m[1]!);
  }
  return out;
}

const TRUE = ['true', 'yes', 'on', '1'];
const FALSE = ['false', 'no', 'off', '0'];
const BOOLEAN_HINT = 'a boolean is true or false (also yes/no, on/off, 1/0)';

/** A boolean as text (BATON_*, --flag=VALUE): true/yes/on/1 or false/no/off/0, any case; `what` names where from. */
export function parseBoolean(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (TRUE.includes(t) || FALSE.includes(t)) return TRUE.includes(t);
  throw usageError(`bad value for ${what}: ${JSON.stringify(text)}`, BOOLEAN_HINT);
}

/** `--flag=VALUE` of a boolean option as `--flag` or `--no-flag` (yargs took anything but "true" as false). */
function flagValue(arg: string, options: Record<string, OptionShape>): string {
  const m = /^--([a-z][a-z0-9-]*)=(.*)$/s.exec(arg);
  if (!m || options[m[1]!]?.type !== 'boolean') return arg;
  return parseBoolean(m[2]!, `--${m[1]}`) ? `--${m[1]}` : `--no-${m[1]}`;
}

function asArgs(name: string, shape: OptionShape, value: unknown, where: string): string[] {
  if (shape.type === 'boolean') {
    const on = typeof value === 'boolean' ? value : parseBoolean(String(value), where);
    return [on ? `--${name}` : `--no-${name}`];
  }
  const values = Array.isArray(value)
    ? value
    : shape.array && typeof value === 'string'
      ? value.split(/\s+/).filter(Boolean)
      : [value];
  return values.flatMap((v) => [`--${name}`, String(v)]);
}

/** The JSON config file, as given by --config or else BATON_CONFIG; undefined without one. */
export function configPath(args: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  const i = args.slice(0, end).findIndex((a) => a === '--config' || a.startsWith('--config='));
  const path = i < 0 ? env.BATON_CONFIG : args[i]!.includes('=') ? args[i]!.slice(9) : args[i + 1];
  if (i >= 0 && !args[i]!.includes('=') && (path === undefined || path.startsWith('--'))) {
    throw usageError('--config needs a value', CONFIG_HINT);
  }
  return path || undefined;
}

/**
 * Adds, for every option not given as a flag, its value from BATON_<NAME> in the environment or
 * else from the JSON config file (--config or BATON_CONFIG, relative to `here`): flags win, then the
 * environment. Array options take several values separated by spaces in the environment.
 */
export function layered(
  args: string[],
  options: Record<string, OptionShape>,
  env: NodeJS.ProcessEnv = process.env,
  here = process.cwd(),
): string[] {
  const flags = given(args);
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  const path = configPath(args, env);
  let file: Record<string, unknown> = {};
  if (path) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(resolve(here, path), 'utf8'));
    } catch (err) {
      // one line: JSON.parse quotes the text it choked on, newlines and all
      throw usageError(`cannot read --config ${path}: ${(err as Error).message.replace(/\s+/g, ' ')}`, CONFIG_HINT);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      const what = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`;
      throw usageError(`--config ${path} is not a JSON object: ${what}`, CONFIG_HINT);
    }
    file = parsed as Record<string, unknown>;
    const known = new Set(Object.keys(options).flatMap((k) => [k, camel(k)]));
    const unknown = Object.keys(file).filter((k) => !known.has(k) && k !== 'command');
    if (unknown.length)
      throw usageError(
        `unknown option in ${path}: ${unknown.join(', ')}`,
        'config keys are the long option names, e.g. "ready-timeout" or "readyTimeout"',
      );
    // Each value a string, number or boolean; a list of them for a repeatable option; the command a list.
    // A boolean option takes JSON's true or false only: "no" in a JSON file is a string, not a no.
    const scalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
    const words = (v: unknown) => typeof v === 'string' || typeof v === 'number';
    for (const [key, value] of Object.entries(file)) {
      const shape = options[optionName(key)];
      const list = Array.isArray(value) && value.every(key === 'command' ? words : scalar);
      const boolean = shape?.type === 'boolean';
      const ok =
        key === 'command' ? list : boolean ? typeof value === 'boolean' : scalar(value) || (shape?.array && list);
      if (ok) continue;
      const hint =
        key === 'command'
          ? 'give the command as a list, e.g. ["node", "server.js"]'
          : boolean
            ? `give true or false (a JSON boolean, not a string), e.g. {"${key}": true}`
            : CONFIG_HINT;
      throw usageError(`bad value for "${key}" in ${path}: ${JSON.stringify(value)}`, hint);
    }
  }
  const extra: string[] = [];
  for (const [name, shape] of Object.entries(options)) {
    if (flags.has(name) || name === 'config') continue;
    const variable = `BATON_${name.toUpperCase().replace(/-/g, '_')}`;
    const fromEnv = env[variable];
    const fromFile = file[name] ?? file[camel(name)];
    if (fromEnv !== undefined && fromEnv !== '') extra.push(...asArgs(name, shape, fromEnv, variable));
    else if (fromFile !== undefined) extra.push(...asArgs(name, shape, fromFile, `"${name}" in ${path}`));
  }
  const command =
    Array.isArray(file.command) && !args.includes('--') ? ['--', ...(file.command as string[]).map(String)] : [];
  const written = args.map((a, k) => (k < end ? flagValue(a, options) : a));
  return [...extra, ...written, ...command];
}
