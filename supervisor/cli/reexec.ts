import type { Logger } from '../log.js';
import { checkBuild } from '../self-check.js';
import { execSelf } from '../self-upgrade.js';
import type { Supervisor } from '../supervisor.js';

/** What a self-upgrade works with. */
export interface SelfUpgradeParts {
  sup: Supervisor;
  log: Logger;
  /** The control socket is closed before the execve, and opened again if that fails. */
  closeControl: () => void;
  reopenControl: () => void;
}

/**
 * SIGUSR2: check the new build, freeze, execve in place (same pid, so systemd's main pid and the
 * children stay); a failed check or exec goes on as before. One at a time.
 */
export function selfUpgrader(p: SelfUpgradeParts): () => void {
  let underway = false;
  const go = async (): Promise<void> => {
    if (underway) return;
    underway = true;
    try {
      await selfUpgrade(p);
    } finally {
      underway = false;
    }
  };
  return () => void go();
}

async function selfUpgrade(p: SelfUpgradeParts): Promise<void> {
  const started = performance.now();
  try {
    await checkBuild();
  } catch (err) {
    return void p.log.event('self-upgrade-failed', { message: (err as Error).message });
  }
  p.log.event('self-check', { message: `${process.argv[1]} loads`, ms: Math.round(performance.now() - started) });
  const state = await p.sup.freeze();
  if (!state) return;
  const message = `execve ${process.execPath} ${process.argv[1]}`;
  p.log.event('self-upgrade', { message, generations: state.generations.length });
  try {
    p.closeControl();
    execSelf(state);
  } catch (err) {
    p.log.event('self-upgrade-failed', { message: (err as Error).message });
    p.reopenControl();
    p.sup.thaw(state);
  }
}
