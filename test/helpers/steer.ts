import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton, root } from './baton.js';
import type { LoadResult } from './load.js';
import { Netns } from './netns.js';

const netclient = `${root}test/helpers/netclient.ts`;
export const bpffs = process.env.BATON_BPFFS ?? '/sys/fs/bpf';
let names = 0;

/** A steering test's world: its own network namespace, steering name and state directory. */
export class SteerWorld {
  readonly ns = new Netns();
  readonly name = `t${process.pid}_${++names}`;
  readonly stateDir = mkdtempSync(join(tmpdir(), 'baton-state-'));
  readonly batons: Baton[] = [];

  get pins(): string {
    return join(bpffs, 'baton', this.name);
  }

  pinned(): boolean {
    return existsSync(this.pins);
  }

  baton(args: string[], env: NodeJS.ProcessEnv = {}): Baton {
    const b = new Baton(['--name', this.name, '--state-dir', this.stateDir, ...args], env, this.ns.prefix);
    this.batons.push(b);
    return b;
  }

  /** One echo round trip to each target from inside the namespace. */
  echo(targets: string[]): Promise<Record<string, string>> {
    const c = spawn(this.ns.prefix[0]!, [...this.ns.prefix.slice(1), process.execPath, '--import', 'tsx', netclient, 'echo', ...targets], { cwd: root });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    return new Promise((resolve) => c.once('exit', () => resolve(JSON.parse(out) as Record<string, string>)));
  }

  /** HTTP load on `port` inside the namespace until stop(). */
  async hammer(port: number, keepAlive = false, maxMs = 60_000): Promise<{ stop: () => Promise<LoadResult> }> {
    const c = spawn(this.ns.prefix[0]!, [...this.ns.prefix.slice(1), process.execPath, '--import', 'tsx', netclient, 'hammer', String(port), String(keepAlive), String(maxMs)], { cwd: root });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    await new Promise<void>((resolve) => c.stdout.on('data', () => out.includes('started') && resolve()));
    const done = new Promise<LoadResult>((resolve) => c.once('exit', () => resolve(JSON.parse(out.split('\n')[1]!) as LoadResult)));
    return {
      stop: () => {
        c.kill('SIGTERM');
        return done;
      },
    };
  }

  /** Kills what is left, removes the namespace, the pins and the state. */
  async close(): Promise<void> {
    for (const b of this.batons) {
      if (b.child.exitCode === null && b.child.signalCode === null) b.signal('SIGKILL');
      await b.exited;
    }
    this.ns.remove();
    rmSync(this.pins, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
