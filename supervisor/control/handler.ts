import type { Supervisor } from '../supervisor.js';
import type { UpgradeResult } from '../upgrade.js';
import type { Handler, Reply } from './server.js';

const DEFAULT_WAIT = 120_000;

/** Answers control requests from the supervisor. */
export function controlHandler(supervisor: Supervisor): Handler {
  return async (req, client) => {
    switch (req.command) {
      case 'status':
        return { ok: true, status: supervisor.status() };
      case 'stop':
        setImmediate(() => supervisor.stop());
        return { ok: true, stopping: true };
      case 'reload': {
        const outcome = supervisor.reload('baton reload', req.wait ? client.fd : undefined);
        if (!req.wait) return { ok: true, requested: true };
        let timer: NodeJS.Timeout | undefined;
        const timeout = req.timeout ?? DEFAULT_WAIT;
        const result = await Promise.race([
          outcome,
          new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeout))),
        ]);
        clearTimeout(timer);
        if (!result)
          return {
            ok: false,
            error: {
              code: 'ERR_BATON_TIMEOUT',
              message: `the upgrade did not finish within ${timeout}ms`,
              hint: 'it goes on; see baton status',
            },
          };
        return upgradeReply(result);
      }
    }
  };
}

/** What `reload --wait` hears of the upgrade that served it (also on a connection a self-upgrade carried on). */
export function upgradeReply(result: UpgradeResult): Reply {
  if (result.ok) return { ok: true, result };
  const to = result.generation ? ` to generation ${result.generation}` : '';
  const again = result.rollback === 'canary' ? 'serves again' : 'still serves';
  const serving = result.serving ? `generation ${result.serving} ${again}` : 'nothing serves';
  return {
    ok: false,
    result,
    error: {
      code: 'ERR_BATON_UPGRADE',
      message: `upgrade${to} failed: ${result.reason}`,
      hint: `${result.hint ? `${result.hint}; ` : ''}${serving}; see baton's log`,
    },
  };
}
