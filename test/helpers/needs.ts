import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import test, { type ImplementationFn } from 'ava';
import { BASELINE_COMMIT, hasCommit } from './releases.js';

export type Need =
  | 'root'
  | 'netns'
  | 'bpf'
  | 'python3'
  | 'setpriv'
  | 'unshare'
  | 'busybox'
  | 'systemd-socket-activate'
  | 'git-history'
  | 'ansible-playbook'
  | 'prometheus'
  | 'script'
  | 'chattr';

/** What a test may need beyond Node: each check names what is missing, or nothing. */
const checks: Record<Need, () => string | undefined> = {
  root: () => (process.getuid?.() === 0 ? undefined : 'root'),
  netns: () => checks.root() ?? (onPath('ip') ? undefined : 'ip (iproute2)'),
  bpf: () => checks.netns() ?? (libbpf() ? undefined : 'libbpf.so.1 (libbpf1)'),
  python3: () => (onPath('python3') ? undefined : 'python3'),
  setpriv: () => checks.root() ?? (onPath('setpriv') ? undefined : 'setpriv (util-linux)'),
  unshare: () => checks.root() ?? (onPath('unshare') ? undefined : 'unshare (util-linux)'),
  busybox: () => checks.unshare() ?? (onPath('busybox') ? undefined : 'busybox'),
  'systemd-socket-activate': () =>
    onPath('systemd-socket-activate') ? undefined : 'systemd-socket-activate (systemd)',
  'ansible-playbook': () => (onPath('ansible-playbook') ? undefined : 'ansible-playbook (ansible-core)'),
  script: () => (onPath('script') ? undefined : 'script (bsdutils)'),
  chattr: () => checks.root() ?? (onPath('chattr') ? undefined : 'chattr (e2fsprogs)'),
  prometheus: () => (onPath('prometheus') && onPath('promtool') ? undefined : 'prometheus and promtool (prometheus)'),
  // A shallow clone lacks the commit the cross-version self-upgrade tests build.
  'git-history': () => (hasCommit(BASELINE_COMMIT) ? undefined : `git history with commit ${BASELINE_COMMIT}`),
};

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function libbpf(): boolean {
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'].some((d) =>
    existsSync(`${d}/libbpf.so.1`),
  );
}

/** What of `needs` this machine lacks, each named once. */
export function missing(...needs: Need[]): string[] {
  return [...new Set(needs.map((n) => checks[n]()).filter((m): m is string => m !== undefined))];
}

type Declare = (title: string, fn: ImplementationFn<[]>) => void;

/**
 * ava's `test` for tests that need more than Node. Where something is missing the test is declared
 * skipped, and its title says what is missing (one line per test in every reporter).
 */
export function needs(...what: Need[]): Declare & { serial: Declare } {
  const lacking = missing(...what);
  const title = (t: string) => (lacking.length ? `${t} [skipped: needs ${lacking.join(', ')}]` : t);
  const gate =
    (run: Declare, skip: Declare): Declare =>
    (t, fn) =>
      (lacking.length ? skip : run)(title(t), fn);
  return Object.assign(gate(test, test.skip), { serial: gate(test.serial, test.serial.skip) });
}
