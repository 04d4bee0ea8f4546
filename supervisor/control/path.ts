import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runtimeBase } from '../config.js';
import { BatonError } from '../errors.js';

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
