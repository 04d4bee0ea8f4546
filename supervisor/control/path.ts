import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatonError } from '../errors.js';

/**
 * Where control sockets live when no path is given: $XDG_RUNTIME_DIR/baton, /run/baton for root,
 * else a per-user temp dir.
 */
export function runtimeBase(): string {
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'baton');
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/baton' : join(tmpdir(), `baton-${uid}`);
}

/** The control socket of a baton: --control, else beside --pid-file, else NAME.sock in the runtime base. */
export function controlPath(o: { control?: string; pidFile?: string; name?: string }): string | undefined {
  if (o.control) return o.control;
  if (o.pidFile) return `${o.pidFile.replace(/\.pid$/, '')}.sock`;
  return o.name ? join(runtimeBase(), `${o.name}.sock`) : undefined;
}

/** For `baton reload|status|stop` given nothing: the one control socket in the runtime base. */
export function onlyControlSocket(): string {
  const base = runtimeBase();
  const found = existsSync(base) ? readdirSync(base).filter((f) => f.endsWith('.sock')) : [];
  if (found.length === 1) return join(base, found[0]!);
  throw new BatonError(
    'ERR_BATON_NOT_RUNNING',
    found.length === 0
      ? `no baton is running (no control socket in ${base})`
      : `several batons run here: ${found.join(', ')}`,
    found.length === 0
      ? 'start one, or give --control PATH or --pid-file PATH of the baton you mean'
      : 'give --name, --control PATH or --pid-file PATH of the baton you mean',
  );
}
