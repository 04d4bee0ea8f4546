import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatAddress } from './address.js';
import { runtimeBase } from './config.js';
import { checkDirectory, removeKnown, writeFileAtomic } from './files.js';
import type { ListenSpec } from './listener.js';
import { int, list, num, pid, record, starttime, text } from './schema.js';
import { netnsInode, startTime } from './sys/proc.js';

/** A process of a generation, as a restarted baton finds and checks it. */
export interface RecordedProcess {
  number: number;
  worker: number;
  pid: number;
  /** Field 22 of /proc/PID/stat: the same pid in a later process is not this one. */
  starttime: string;
  /** Epoch ms of its spawn. */
  startedAt: number;
  /** Its NOTIFY_SOCKET, which only baton's own generation has in its environment. */
  notify: string;
}

/** What baton keeps on disk so that a baton started after its death can take over its generations. */
export interface RunState {
  pid: number;
  starttime: string;
  /** baton's runtime directory (notify sockets): the dead baton's is removed by the one taking over. */
  runtimeDir: string;
  generations: RecordedProcess[];
}

/** One process of a record, as written. */
export const recordedProcess = record({ number: int, worker: int, pid, starttime, startedAt: num, notify: text });

const valid = record({ pid, starttime, runtimeDir: text, generations: list(recordedProcess) });

/** The state as written, or undefined when a field is missing or malformed: nothing in it is trusted unchecked. */
function parse(raw: string): RunState | undefined {
  const s: unknown = JSON.parse(raw);
  return valid(s) ? (s as RunState) : undefined;
}

/**
 * The run record of one set of --listen addresses in one network namespace, in baton's runtime base (its own, checked
 * directory): written on every spawn and exit, removed by a clean stop. A listener on port 0 has
 * no stable address, so such a configuration has no record.
 */
export class RunRecord {
  private constructor(readonly path: string) {}

  /** The record for `specs`, or undefined when they cannot have one. */
  static of(specs: ListenSpec[]): RunRecord | undefined {
    if (specs.some((s) => s.address.kind === 'tcp' && s.address.port === 0)) return undefined;
    // The same address in another network namespace is another listener.
    const addresses = specs.map((s) => formatAddress(s.address)).sort();
    const key = [`netns:${netnsInode()}`, ...addresses].join('\n');
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
    return new RunRecord(join(runtimeBase(), `listen-${hash}.json`));
  }

  read(): RunState | undefined {
    try {
      // A record in a directory another user could write in could name any process to take over: not read.
      checkDirectory(dirname(this.path), 'run record');
      return parse(readFileSync(this.path, 'utf8'));
    } catch {
      return undefined;
    }
  }

  save(runtimeDir: string, generations: RecordedProcess[]): void {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    checkDirectory(dir, 'run record');
    const state: RunState = { pid: process.pid, starttime: startTime(process.pid) ?? '', runtimeDir, generations };
    writeFileAtomic(this.path, JSON.stringify(state) + '\n', 0o600);
  }

  remove(): void {
    removeKnown(dirname(this.path), [basename(this.path)]);
  }
}
