import type { UpgradeResult } from './upgrade.js';

/** Moments of the supervisor that the world outside (systemd, metrics) hears of. */
export interface Hooks {
  started?(gen: { number: number; pid: number }): void;
  reloading?(): void;
  upgraded?(result: UpgradeResult): void;
  stopping?(): void;
  /** The outcome of an upgrade for a `reload --wait` client whose connection, `fd`, a self-upgrade carried on. */
  answer?(fd: number, result: UpgradeResult): void;
}

/** Hooks that call each of `all`'s, in order. */
export function allHooks(...all: Hooks[]): Hooks {
  const each =
    <K extends keyof Hooks>(k: K) =>
    (...args: Parameters<NonNullable<Hooks[K]>>) => {
      for (const h of all) (h[k] as ((...a: typeof args) => void) | undefined)?.(...args);
    };
  return {
    started: each('started'),
    reloading: each('reloading'),
    upgraded: each('upgraded'),
    stopping: each('stopping'),
    ...(all.some((h) => h.answer) ? { answer: each('answer') } : {}),
  };
}
