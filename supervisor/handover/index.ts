import type { Handover, HandoverName } from './handover.js';
import { inherit } from './inherit.js';
import { pidfd } from './pidfd.js';
import { port } from './port.js';

/** Every handover strategy, by the name --handover gives. */
export const handovers: Record<HandoverName, Handover> = { pidfd, inherit, port };
