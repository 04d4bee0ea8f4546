import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

let count = 0;

/** A network namespace of the test's own, with loopback up; remove() deletes it. */
export class Netns {
  readonly name: string;
  readonly path: string;

  constructor() {
    this.name = `baton-t${process.pid}-${++count}`;
    this.path = `/run/netns/${this.name}`;
    execFileSync('ip', ['netns', 'add', this.name]);
    execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }

  /** Prefix that runs a command inside (nsenter keeps /sys, and so bpffs pins, visible). */
  get prefix(): string[] {
    return ['nsenter', `--net=${this.path}`];
  }

  /** The namespace's inode, as /proc/PID/ns/net and BPF link info name it. */
  get inode(): number {
    return statSync(this.path).ino;
  }

  remove(): void {
    execFileSync('ip', ['netns', 'del', this.name]);
  }
}
