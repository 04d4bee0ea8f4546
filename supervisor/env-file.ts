import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { asUser, type RunAs } from './run-as.js';
import { withChildOomScore } from './sys/oom.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Biggest env file read: a settings file, not data. */
const MAX_BYTES = 1 << 20;
/** How long a read as the user may take (a file swapped for a FIFO after the check would never end). */
const READ_AS_MS = 5000;

/** Why a file cannot be read as an environment: the file, the line (1-based; 0 for the whole file). */
export class EnvFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${reason}`);
  }
}

/**
 * systemd's EnvironmentFile= syntax: `KEY=VALUE` lines; empty lines, lines starting with `#` or `;`
 * and lines without `=` are ignored. Unquoted values keep interior whitespace, lose the outer, and
 * take shell-like backslash escapes (a trailing backslash continues the line); 'single quotes' are
 * verbatim and "double quotes" take \" \\ \` \$ and a line continuation; both may span lines.
 */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  if (text.includes('\0')) throw new EnvFileError(file, 0, 'it holds a NUL byte');
  const env: Record<string, string> = {};
  let i = 0;
  let line = 1;
  const fail = (reason: string): never => {
    throw new EnvFileError(file, line, reason);
  };
  while (i < text.length) {
    const end = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i);
    const raw = text.slice(i, end);
    const trimmed = raw.trimStart();
    const eq = raw.indexOf('=');
    if (trimmed === '' || trimmed[0] === '#' || trimmed[0] === ';' || eq < 0) {
      i = end + 1;
      line++;
      continue;
    }
    const key = raw.slice(0, eq).trim();
    if (!NAME.test(key)) fail(`"${key}" is not a variable name (letters, digits and _, not first a digit)`);
    const started = line; // a value's errors name the line it starts on
    const parsed = value(
      text,
      i + eq + 1,
      () => line++,
      (reason) => {
        throw new EnvFileError(file, started, reason);
      },
    );
    env[key] = parsed.value;
    i = parsed.next;
    line++;
  }
  return env;
}

/** One value from `at` to the end of its (possibly continued) line: the value and where the next line starts. */
function value(
  text: string,
  at: number,
  newline: () => void,
  fail: (reason: string) => never,
): { value: string; next: number } {
  let i = at;
  while (text[i] === ' ' || text[i] === '\t') i++;
  let out = '';
  const quote = text[i] === "'" || text[i] === '"' ? text[i] : undefined;
  if (quote) {
    i++;
    for (;;) {
      if (i >= text.length) fail(`the ${quote === '"' ? 'double' : 'single'} quote is never closed`);
      const c = text[i]!;
      if (c === quote) break;
      if (c === '\n') newline();
      if (quote === '"' && c === '\\' && i + 1 < text.length) {
        const n = text[i + 1]!;
        if (n === '\n') newline();
        else out += '"\\`$'.includes(n) ? n : `\\${n}`;
        i += 2;
        continue;
      }
      out += c;
      i++;
    }
    i++;
    while (text[i] === ' ' || text[i] === '\t' || text[i] === '\r') i++;
    if (i < text.length && text[i] !== '\n') fail('text after the closing quote');
    return { value: out, next: i + 1 };
  }
  for (; i < text.length && text[i] !== '\n'; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      i++;
      if (text[i] === '\n') newline();
      else out += text[i];
      continue;
    }
    out += c;
  }
  return { value: out.replace(/[ \t\r]+$/, ''), next: i + 1 };
}

/**
 * The variables of `files` (`--env-file`, in order, later ones win), read now: a relative path is
 * the release's (`dir`), a leading `-` makes a missing file no error. With --user, read as the user.
 */
export function readEnvFiles(files: string[], dir: string, user?: RunAs): Record<string, string> {
  const env: Record<string, string> = {};
  for (const spec of files) {
    const optional = spec.startsWith('-');
    const given = optional ? spec.slice(1) : spec;
    const path = isAbsolute(given) ? given : resolve(dir, given);
    let text: string;
    try {
      // Not a FIFO or a device (a read would block or never end), and bounded.
      const st = statSync(path);
      if (!st.isFile()) throw new EnvFileError(path, 0, 'it is not a regular file');
      if (st.size > MAX_BYTES) throw new EnvFileError(path, 0, `it is over ${MAX_BYTES} bytes`);
      text = user ? readAs(user, path) : readFileSync(path, 'utf8');
    } catch (err) {
      if (err instanceof EnvFileError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (optional && code === 'ENOENT') continue;
      throw new EnvFileError(path, 0, `cannot be read (${code ?? (err as Error).message})`);
    }
    Object.assign(env, parseEnvFile(text, path));
  }
  return env;
}

/**
 * `path` read by cat(1) as the user: a release's env file may be a link to any file root can read (another
 * service's secrets), which would reach the user's generations.
 */
function readAs(user: RunAs, path: string): string {
  const { file, args } = asUser(user, 'cat', ['--', path], {});
  const env = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };
  const options = { env, encoding: 'utf8', timeout: READ_AS_MS, maxBuffer: MAX_BYTES } as const;
  const r = withChildOomScore(() => spawnSync(file, args, options)); // born with the children's oom_score_adj
  const as = `as user ${user.name ?? user.uid}`;
  if (r.error) throw new EnvFileError(path, 0, `cannot be read ${as} (${(r.error as NodeJS.ErrnoException).code})`);
  // cat says `cat: PATH: Permission denied`.
  const why = r.stderr.trim().split(': ').pop() || `exit ${r.status ?? r.signal}`;
  if (r.status !== 0) throw new EnvFileError(path, 0, `cannot be read ${as} (${why})`);
  return r.stdout;
}
