import { parseDuration } from '../duration.js';
import { usageError } from '../errors.js';
import type { NotifySocket } from '../notify-socket.js';
import { delay } from './delay.js';
import { type ProbeContext, probe } from './probe.js';

export type ReadySpec =
  | { kind: 'notify' }
  | { kind: 'grab' }
  | { kind: 'probe'; command: string }
  | { kind: 'delay'; ms: number };

export interface ReadyContext extends ProbeContext {
  notify: NotifySocket;
  /** Resolves when the child holds its listeners (handovers that grab: pidfd, port). */
  grabbed?: Promise<void>;
}

export function parseReady(text: string): ReadySpec {
  if (text === 'notify' || text === 'grab') return { kind: text };
  if (text.startsWith('probe:') && text.length > 6) return { kind: 'probe', command: text.slice(6) };
  if (text.startsWith('delay:')) return { kind: 'delay', ms: parseDuration('ready', text.slice(6)) };
  throw usageError(`unknown --ready "${text}"`, 'use notify, grab, probe:<command> or delay:<duration>');
}

export function formatReady(r: ReadySpec): string {
  return r.kind === 'probe' ? `probe:${r.command}` : r.kind === 'delay' ? `delay:${r.ms}ms` : r.kind;
}

/** Resolves when the generation is ready by `spec`; the caller races it against exit and timeout. */
export function waitReady(spec: ReadySpec, ctx: ReadyContext): Promise<void> {
  switch (spec.kind) {
    case 'notify':
      return ctx.notify.ready();
    case 'grab':
      return ctx.grabbed ?? Promise.reject(new Error('grab readiness needs the pidfd handover'));
    case 'probe':
      return probe(ctx, spec.command);
    case 'delay':
      return delay(spec.ms, ctx.signal);
  }
}
