import type { Hooks } from './hooks.js';
import type { Logger } from './log.js';
import { printable } from './printable.js';
import { sendNotify } from './sys/socket.js';

/**
 * sd_notify for baton itself (Type=notify or Type=notify-reload): READY=1 and MAINPID once
 * generation 1 serves; RELOADING=1 with MONOTONIC_USEC on each reload, READY=1 when it ends;
 * STOPPING=1 on stop. The socket is baton's alone: generations get a private one.
 */
export function systemdHooks(target: string | undefined, log: Logger): Hooks {
  if (!target) return {};
  const send = (message: string) => {
    try {
      sendNotify(target, message);
    } catch (err) {
      log.event('warning', { message: `NOTIFY_SOCKET ${target}: ${(err as Error).message}` });
    }
  };
  return {
    started: (gen) => send(`READY=1\nMAINPID=${process.pid}\nSTATUS=generation ${gen.number} active (pid ${gen.pid})`),
    // CLOCK_MONOTONIC, as systemd compares it with its own reload request.
    reloading: () => send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}\nSTATUS=upgrading`),
    upgraded: (r) => {
      const serving = r.serving ? `; generation ${r.serving} serving` : '';
      // The reason may hold a release's text (a --config key, a command): a newline in it would be an assignment.
      const failed = () => `upgrade failed: ${printable(r.reason ?? '')}${serving}`;
      send(`READY=1\nSTATUS=${r.ok ? `generation ${r.generation} active` : failed()}`);
    },
    stopping: () => send('STOPPING=1\nSTATUS=stopping'),
  };
}
