import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDirectory, removeKnown, writeFileAtomic } from '../files.js';
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

/** The state as written, or undefined when there is none or a field is missing or malformed. */
export function readState(dir: string): SteeringState | undefined {
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
  /**
   * The directory as last checked: a switch checks it again (its parents too) unless it is the same directory,
   * with the same owner and mode. Only root and baton's user could have changed its parents meanwhile.
   */
  private checked?: string;

  constructor(private readonly dir: string) {}

  write(state: SteeringState): void {
    if (this.checked === undefined || this.checked !== identity(this.dir)) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      checkDirectory(this.dir, 'steering state');
      this.checked = identity(this.dir);
    }
    writeFileAtomic(stateFile(this.dir), JSON.stringify(state) + '\n', 0o600);
  }
}

function identity(dir: string): string | undefined {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  return st && `${st.dev}:${st.ino}:${st.uid}:${st.mode}`;
}

/** Removes the state file, and the directory if nothing else is in it. */
export function removeState(dir: string): void {
  removeKnown(dir, [STATE]);
}
