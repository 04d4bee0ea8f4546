import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a restarted baton needs to find the generation that serves: written on every switch. */
export interface SteeringState {
  name: string;
  /** baton's pid. */
  pid: number;
  /** Port mode: the generation whose listener is in the slot. */
  generation?: { number: number; pid: number; starttime: string; port: number };
}

/** Field 22 of /proc/PID/stat: tells a process from a later one that reused its pid. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[2] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

export function stateFile(dir: string): string {
  return join(dir, 'state.json');
}

export function readState(dir: string): SteeringState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as SteeringState;
  } catch {
    return undefined;
  }
}

/** Atomic: a temp file renamed over the old one, so a crash never leaves half a state. */
export function writeState(dir: string, state: SteeringState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${stateFile(dir)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
  renameSync(tmp, stateFile(dir));
}

export function removeState(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
