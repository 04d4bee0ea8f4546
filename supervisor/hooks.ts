import type { UpgradeResult } from './upgrade.js';

/** Moments of the supervisor that the world outside (systemd) hears of. */
export interface Hooks {
  started?(gen: { number: number; pid: number }): void;
  reloading?(): void;
  upgraded?(result: UpgradeResult): void;
  stopping?(): void;
  /** The outcome of an upgrade for a `reload --wait` client whose connection, `fd`, a self-upgrade carried on. */
  answer?(fd: number, result: UpgradeResult): void;
}
