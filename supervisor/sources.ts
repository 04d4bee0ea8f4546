import { readFileSync } from 'node:fs';
import { usageError } from './errors.js';

export interface OptionShape {
  type: 'string' | 'number' | 'boolean';
  array?: boolean;
}

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

function asArgs(name: string, shape: OptionShape, value: unknown): string[] {
  if (shape.type === 'boolean') return [value === true || value === 'true' || value === '1' ? `--${name}` : `--no-${name}`];
  const values = Array.isArray(value) ? value : shape.array && typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : [value];
  return values.flatMap((v) => [`--${name}`, String(v)]);
}

/**
 * Adds, for every option not given as a flag, its value from BATON_<NAME> in the environment or
 * else from the JSON config file (--config or BATON_CONFIG): flags win, then the environment.
 * Array options take several values separated by spaces in the environment.
 */
export function layered(args: string[], options: Record<string, OptionShape>, env: NodeJS.ProcessEnv = process.env): string[] {
  const flags = given(args);
  const end = args.includes('--') ? args.indexOf('--') : args.length;
  const i = args.slice(0, end).findIndex((a) => a === '--config' || a.startsWith('--config='));
  const path = i < 0 ? env.BATON_CONFIG : args[i]!.includes('=') ? args[i]!.slice(9) : args[i + 1];
  let file: Record<string, unknown> = {};
  if (path) {
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw usageError(`cannot read --config ${path}: ${(err as Error).message}`, 'give a JSON file whose keys are option names, e.g. {"listen": ["127.0.0.1:8080"], "drain": "5s"}');
    }
    const known = new Set(Object.keys(options).flatMap((k) => [k, camel(k)]));
    const unknown = Object.keys(file).filter((k) => !known.has(k) && k !== 'command');
    if (unknown.length) throw usageError(`unknown option in ${path}: ${unknown.join(', ')}`, 'config keys are the long option names, e.g. "ready-timeout" or "readyTimeout"');
  }
  const extra: string[] = [];
  for (const [name, shape] of Object.entries(options)) {
    if (flags.has(name) || name === 'config') continue;
    const fromEnv = env[`BATON_${name.toUpperCase().replace(/-/g, '_')}`];
    const fromFile = file[name] ?? file[camel(name)];
    if (fromEnv !== undefined && fromEnv !== '') extra.push(...asArgs(name, shape, fromEnv));
    else if (fromFile !== undefined) extra.push(...asArgs(name, shape, fromFile));
  }
  const command = Array.isArray(file.command) && !args.includes('--') ? ['--', ...(file.command as string[]).map(String)] : [];
  return [...extra, ...args, ...command];
}
