import type { Config } from './config.js';
import type { GenerationSocket, GenerationSockets } from './gen-socket.js';
import type { Generation } from './generation.js';
import type { Health } from './health.js';
import type { Helpers } from './helpers.js';
import type { Launch } from './launch.js';
import type { Logger } from './log.js';
import type { Reread } from './reconfig.js';
import type { Release } from './release.js';
import type { Retirement } from './retire.js';
import type { Slots } from './slots.js';
import type { History } from './upgrade.js';

/** What a wave needs from the supervisor. */
export interface WaveParts {
  /** The running configuration: an upgrade under a changed --config updates what shapes a generation. */
  config: Config;
  /** With --config: the options read again, at each upgrade. */
  reread?: Reread;
  log: Logger;
  slots: Slots;
  retirement: Retirement;
  live: ReadonlySet<Generation>;
  /** Generation `number` in `slot`, run in `release`, serving from `socket` (under --steer). */
  launch(number: number, slot: number, release: Release, socket?: GenerationSocket): Promise<Launch>;
  /** Under --steer (not --shared-socket, not port mode): a socket of its own for each generation. */
  sockets?: GenerationSockets;
  /** The next generation number (each launch of a new run takes one). */
  nextNumber(): number;
  /** Every upgrade's outcome goes here, and the count of failed ones. */
  history: History;
  /** --check and probes: killed when baton stops. */
  helpers: Helpers;
  /** --health: the canary window hears of each new worker's failures. */
  health: Health;
  stopping(): boolean;
}
