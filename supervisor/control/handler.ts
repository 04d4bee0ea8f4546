import type { Tap } from '../log.js';
import type { Supervisor } from '../supervisor.js';
import type { UpgradeResult } from '../upgrade.js';
import { Progress } from './progress.js';
import type { Handler, Reply } from './server.js';

const DEFAULT_WAIT = 120_000;

/** What a control request may ask of baton. */
export interface Controlled {
  supervisor: Supervisor;
  log: Tap;
  /** Where --metrics serves, for `baton status`. */
  metrics?: () => string | undefined;
}

/** Answers control requests from the supervisor. */
export function controlHandler(c: Controlled): Handler {
  const { supervisor } = c;
  return async (req, client) => {
    switch (req.command) {
      case 'status': {
        const metrics = c.metrics?.();
        return { ok: true, status: { ...supervisor.status(), ...(metrics ? { metrics } : {}) } };
      }
      case 'stop':
        setImmediate(() => supervisor.stop());
        return { ok: true, stopping: true };
      case 'reload': {
        const source = { readings: () => supervisor.readings(), processes: () => supervisor.processes(), log: c.log };
        const progress = req.wait && req.progress ? new Progress(source, client) : undefined;
        const waiter = req.wait ? { fd: client.fd, ...(progress ? { began: progress.begin } : {}) } : undefined;
        const outcome = supervisor.reload('baton reload', waiter);
        if (!req.wait) return { ok: true, requested: true };
        const deadline = performance.now() + (req.timeout ?? DEFAULT_WAIT);
        try {
          const result = await within(outcome, deadline);
          // With --progress the story ends when the processes the upgrade stopped have exited.
          if (result) await progress?.drained(deadline - performance.now());
          return result ? upgradeReply(result) : timedOut(req.timeout ?? DEFAULT_WAIT);
        } finally {
          progress?.end();
        }
      }
    }
  };
}

/** `outcome`, or undefined once `deadline` (performance.now()) has passed. */
async function within<T>(outcome: Promise<T>, deadline: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), deadline - performance.now())));
  try {
    return await Promise.race([outcome, late]);
  } finally {
    clearTimeout(timer);
  }
}

function timedOut(timeout: number): Reply {
  return {
    ok: false,
    error: {
      code: 'ERR_BATON_TIMEOUT',
      message: `the upgrade did not finish within ${timeout}ms`,
      hint: 'it goes on; see baton status',
    },
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
