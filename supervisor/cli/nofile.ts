import { BatonError } from '../errors.js';
import { openFiles } from '../sys/limits.js';

/**
 * Free file descriptors baton needs when it starts: loading its modules opens many at once (more
 * with each module). Measured with Node 20's own 18 open: it starts, serves and upgrades at
 * `ulimit -n` 69, not 68; 56 makes that 74.
 */
const FREE_AT_START = 56;

const LIMIT_HINT = 'systemd: LimitNOFILE=';

/** Refuses to start where Node would fail to load baton's modules with EMFILE. */
export function checkOpenFiles(): void {
  const { limit, open } = openFiles();
  if (limit - open >= FREE_AT_START) return;
  const need = open + FREE_AT_START;
  throw new BatonError(
    'ERR_BATON_NOFILE',
    `too few file descriptors (ulimit -n ${limit}, ${open} open): baton needs at least ${need}`,
    `raise the limit (ulimit -n ${need} or more; ${LIMIT_HINT})`,
    { limit, open },
  );
}

/** Node's own EMFILE/ENFILE (loading a module, say) as baton's error; anything else as it is. */
export function openFilesError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof BatonError || (code !== 'EMFILE' && code !== 'ENFILE')) return err;
  return code === 'EMFILE'
    ? new BatonError(
        'ERR_BATON_NOFILE',
        'too few file descriptors (EMFILE): every one that ulimit -n allows is open',
        `raise the limit (ulimit -n; ${LIMIT_HINT}), or close the descriptors baton inherits`,
      )
    : new BatonError(
        'ERR_BATON_NOFILE',
        'the system is out of file descriptors (ENFILE)',
        'stop what holds them, or raise the system limit (sysctl fs.file-max)',
      );
}
