import { readFileSync } from 'node:fs';
import { usageError } from '../errors.js';

export interface OptionShape {
  type: 'string' | 'number' | 'boolean';
  array?: boolean;
}

const CONFIG_HINT = 'give a JSON file whose keys are option names, e.g. {"listen": ["127.0.0.1:8080"], "drain": "5s"}';

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

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

function asArgs(name: string, shape: OptionShape, value: unknown): string[] {
  if (shape.type === 'boolean')
    return [value === true || value === 'true' || value === '1' ? `--${name}` : `--no-${name}`];
  const values = Array.isArray(value)
    ? value
    : shape.array && typeof value === 'string'
      ? value.split(/\s+/).filter(Boolean)
      : [value];
  return values.flatMap((v) => [`--${name}`, String(v)]);
}

/**
 * Adds, for every option not given as a flag, its value from BATON_<NAME> in the environment or
 * else from the JSON config file (--config or BATON_CONFIG): flags win, then the environment.
 * Array options take several values separated by spaces in the environment.
 */
export function layered(
  args: string[],
  options: Record<string, OptionShape>,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const flags = given(args);
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  const i = args.slice(0, end).findIndex((a) => a === '--config' || a.startsWith('--config='));
  const path = i < 0 ? env.BATON_CONFIG : args[i]!.includes('=') ? args[i]!.slice(9) : args[i + 1];
  if (i >= 0 && !args[i]!.includes('=') && (path === undefined || path.startsWith('--'))) {
    throw usageError('--config needs a value', CONFIG_HINT);
  }
  let file: Record<string, unknown> = {};
  if (path) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
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
    const scalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
    const words = (v: unknown) => typeof v === 'string' || typeof v === 'number';
    for (const [key, value] of Object.entries(file)) {
      const repeatable = options[kebab(key)]?.array === true;
      const list = Array.isArray(value) && value.every(key === 'command' ? words : scalar);
      const ok = key === 'command' ? list : scalar(value) || (repeatable && list);
      if (ok) continue;
      const hint = key === 'command' ? 'give the command as a list, e.g. ["node", "server.js"]' : CONFIG_HINT;
      throw usageError(`bad value for "${key}" in ${path}: ${JSON.stringify(value)}`, hint);
    }
  }
  const extra: string[] = [];
  for (const [name, shape] of Object.entries(options)) {
    if (flags.has(name) || name === 'config') continue;
    const fromEnv = env[`BATON_${name.toUpperCase().replace(/-/g, '_')}`];
    const fromFile = file[name] ?? file[camel(name)];
    if (fromEnv !== undefined && fromEnv !== '') extra.push(...asArgs(name, shape, fromEnv));
    else if (fromFile !== undefined) extra.push(...asArgs(name, shape, fromFile));
  }
  const command =
    Array.isArray(file.command) && !args.includes('--') ? ['--', ...(file.command as string[]).map(String)] : [];
  return [...extra, ...args, ...command];
}
