import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckedDirectory, checkDirectory, removeKnown, writeFileAtomic } from '../files.js';
import { int, list, pid, record, starttime, text } from '../schema.js';

/** What a restarted baton needs to find the generation that serves: written on every switch. */
export interface SteeringState {
  name: string;
  /** baton's pid. */
  pid: number;
  /** Port mode: the generation whose listener is in the slot. */
  generation?: { number: number; pid: number; starttime: string; port: number };
  /** Port mode: generations that left the slot and may still run (draining, or rolled back): a restart retires them. */
  retiring?: Retiring[];
}

/** A generation that left the slot: known again by its pid and start time. */
export interface Retiring {
  number: number;
  pid: number;
  starttime: string;
}

const STATE = 'state.json';

export function stateFile(dir: string): string {
  return join(dir, STATE);
}

// baton itself may be pid 1 (a container's init); its generation never is.
const valid = record(
  { name: text, pid: (v) => int(v) && (v as number) > 0 },
  {
    generation: record({ number: int, pid, starttime, port: int }),
    retiring: list(record({ number: int, pid, starttime })),
  },
);

/**
 * The state as written, or undefined when there is none or a field is missing or malformed. Throws for a directory
 * another user could write in: a state planted there could name any process to take over.
 */
export function readState(dir: string): SteeringState | undefined {
  if (!existsSync(dir)) return undefined;
  checkDirectory(dir, 'steering state');
  let s: unknown;
  try {
    s = JSON.parse(readFileSync(stateFile(dir), 'utf8'));
  } catch {
    return undefined;
  }
  return valid(s) ? (s as SteeringState) : undefined;
}

/** Where one steering name writes its state: atomically, in a checked directory, so a crash never leaves half one. */
export class StateWriter {
  private readonly checked: CheckedDirectory;

  constructor(private readonly dir: string) {
    this.checked = new CheckedDirectory(dir, () => {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      checkDirectory(dir, 'steering state');
    });
  }

  write(state: SteeringState): void {
    this.checked.ensure();
    writeFileAtomic(stateFile(this.dir), JSON.stringify(state) + '\n', 0o600);
  }
}

/** Removes the state file, and the directory if nothing else is in it. */
export function removeState(dir: string): void {
  removeKnown(dir, [STATE]);
}
