// What a generation, a --check and a probe get from baton (issue 17: M3, M6, L3, L4): only what is handed
// to them. Each test is the attack: a hostile generation (or helper) looks for what baton had.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Baton, fixture } from './helpers/baton.js';
import { get } from './helpers/load.js';
import { needs } from './helpers/needs.js';
import { fdsOn, until } from './helpers/procs.js';

const NOBODY = 65534;
/** --inh-caps/--ambient-caps as systemd's AmbientCapabilities= gives them to a non-root service. */
const capable = [
  'setpriv',
  `--reuid=${NOBODY}`,
  `--regid=${NOBODY}`,
  '--clear-groups',
  '--inh-caps=+net_admin,+bpf',
  '--ambient-caps=+net_admin,+bpf',
];
const NET_ADMIN_BPF = '0000008000001000';
const ZERO = '0000000000000000';

/** A directory anyone may write into: generations running as nobody report there. */
function dropbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-inh-'));
  chmodSync(dir, 0o777);
  return dir;
}

function statusField(file: string, field: string): string {
  return (new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(file, 'utf8'))?.[1] ?? '').trim();
}

/** `env` output as a map. */
function envOf(file: string): Map<string, string> {
  return new Map(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** nobody's passwd fields. */
function nobody(): { home: string; shell: string } {
  const [, , , , , home, shell] = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' })
    .stdout.trim()
    .split(':');
  return { home: home!, shell: shell! };
}

needs('setpriv')(
  'a generation of a baton with ambient capabilities gets none of them; baton keeps its own (M3)',
  async (t) => {
    const dir = dropbox();
    const control = mkdtempSync(join(tmpdir(), 'baton-inh-ctl-'));
    chownSync(control, NOBODY, NOBODY);
    const report = `grep Cap /proc/self/status > ${dir}/gen$BATON_GENERATION; exec node ${fixture}`;
    const args = ['--control', join(control, 'c.sock'), '--listen', '127.0.0.1:0', '--handover', 'inherit'];
    const b = new Baton([...args, '--ready', 'notify', '--', 'sh', '-c', report], {}, capable);
    try {
      await b.event('active', 1);
      t.is(statusField(`${dir}/gen1`, 'CapAmb'), ZERO);
      t.is(statusField(`${dir}/gen1`, 'CapEff'), ZERO, 'the generation cannot reconfigure the network or load BPF');
      t.is(statusField(`/proc/${b.pid}/status`, 'CapEff'), NET_ADMIN_BPF, 'baton keeps what it needs');
      // A self-upgraded baton starts with its capabilities again, and withholds them again.
      b.signal('SIGUSR2');
      await b.event('resumed');
      t.is(statusField(`/proc/${b.pid}/status`, 'CapEff'), NET_ADMIN_BPF);
      t.is(statusField(`/proc/${b.pid}/status`, 'CapAmb'), ZERO);
      await b.upgradeTo(2);
      t.is(statusField(`${dir}/gen2`, 'CapEff'), ZERO);
    } finally {
      await b.stop();
    }
  },
);

needs('setpriv')(
  '--handover pidfd under a baton with capabilities: the generation, with none, pulls from the keeper (M2, M3)',
  async (t) => {
    const dir = dropbox();
    const control = mkdtempSync(join(tmpdir(), 'baton-inh-ctl-'));
    chownSync(control, NOBODY, NOBODY);
    const args = ['--control', join(control, 'c.sock'), '--listen', '127.0.0.1:0', '--handover', 'pidfd'];
    const report = `grep Cap /proc/self/status > ${dir}/gen1; exec node ${fixture}`;
    // Before the keeper it could not: the kernel lets a process without CAP_SYS_PTRACE pull only from
    // one whose capabilities it has all of, and baton's are withheld from generations.
    const b = new Baton([...args, '--', 'sh', '-c', report], {}, capable);
    try {
      await b.event('active', 1);
      t.is(statusField(`${dir}/gen1`, 'CapEff'), ZERO);
      t.regex(await get(await b.port()), /generation=1/);
    } finally {
      await b.stop();
    }
  },
);

needs('root')('an fd baton inherited from its launcher reaches no generation (L3)', async (t) => {
  const dir = dropbox();
  const secret = join(mkdtempSync(join(tmpdir(), 'baton-inh-root-')), 'secret');
  writeFileSync(secret, 'root-only secret\n', { mode: 0o600 });
  // The launcher leaves fd 40 open on a root-only file (a careless shell, a leaked pipe). Node marks
  // the low fds it finds close-on-exec by itself, not those above.
  const launcher = ['bash', '-c', `exec 40<${secret}; exec "$@"`, 'bash'];
  const steal = `bash -c 'cat <&40' > ${dir}/stolen 2> ${dir}/error; exec node ${fixture}`;
  const as = ['--user', 'nobody', '--handover', 'inherit', '--ready', 'notify'];
  const b = new Baton(['--listen', '127.0.0.1:0', ...as, '--', 'sh', '-c', steal], {}, launcher);
  try {
    const { pid } = await b.event('active', 1);
    t.true(fdsOn(b.pid, secret) > 0, 'baton itself still has it');
    t.is(readFileSync(`${dir}/stolen`, 'utf8'), '');
    t.regex(readFileSync(`${dir}/error`, 'utf8'), /40/);
    t.false(fdsOn(pid, secret) > 0, 'nor does the generation hold it');
  } finally {
    await b.stop();
  }
});

needs('root', 'unshare')(
  "--user: the generation gets the user's groups and environment, not root's (L4)",
  async (t) => {
    const dir = dropbox();
    // nobody in one more group, in a mount namespace of this test's own.
    const groups = join(dir, 'group');
    writeFileSync(groups, `${readFileSync('/etc/group', 'utf8')}batontest:x:4242:nobody\n`);
    const ns = ['unshare', '-m', 'sh', '-c', `mount --bind ${groups} /etc/group && exec "$@"`, 'sh'];
    // Written, then renamed into place: `--ready delay:0` may count it active before the shell wrote.
    const report =
      `grep Groups /proc/self/status > ${dir}/s; env > ${dir}/e; ` +
      `mv ${dir}/s ${dir}/status; mv ${dir}/e ${dir}/env; exec sleep 60`;
    const as = ['--user', 'nobody', '--handover', 'inherit', '--ready', 'delay:0'];
    const session = { SSH_AUTH_SOCK: '/tmp/agent.1', SUDO_USER: 'alice', MAIL: '/var/mail/root', HOME: '/root' };
    const env = { ...session, XDG_RUNTIME_DIR: '/run/user/0', BATON_KILL_TIMEOUT: '5s' };
    const b = new Baton(['--listen', '127.0.0.1:0', ...as, '--', 'sh', '-c', report], env, ns);
    try {
      await b.event('active', 1);
      await until('the report', () => (existsSync(`${dir}/env`) ? true : undefined));
      t.deepEqual(statusField(`${dir}/status`, 'Groups').split(/\s+/).sort(), ['4242', String(NOBODY)]);
      const seen = envOf(`${dir}/env`);
      const { home, shell } = nobody();
      t.is(seen.get('HOME'), home);
      t.is(seen.get('USER'), 'nobody');
      t.is(seen.get('LOGNAME'), 'nobody');
      t.is(seen.get('SHELL'), shell);
      for (const k of ['SSH_AUTH_SOCK', 'SUDO_USER', 'MAIL', 'XDG_RUNTIME_DIR', 'BATON_KILL_TIMEOUT'])
        t.false(seen.has(k), k);
      t.is(seen.get('BATON_GENERATION'), '1', 'what baton hands it stays');
    } finally {
      await b.stop();
    }
  },
);

needs('root')(
  "--user: what an env file sets for ld.so reaches the user's processes, never root's setpriv before the drop",
  async (t) => {
    const dir = dropbox();
    // LD_DEBUG_OUTPUT: each process whose ld.so takes it writes a file of its own there, as whoever it runs as.
    const envFile = join(dir, 'release.env');
    writeFileSync(envFile, `LD_DEBUG=files\nLD_DEBUG_OUTPUT=${dir}/ld\nMALLOC_ARENA_MAX=2\nA=1\n`);
    const report = `env > ${dir}/e; mv ${dir}/e ${dir}/env; exec sleep 60`;
    const as = ['--user', 'nobody', '--env-file', envFile, '--handover', 'inherit', '--ready', 'delay:0'];
    const b = new Baton(['--listen', '127.0.0.1:0', ...as, '--check', 'true', '--', 'sh', '-c', report]);
    try {
      await b.event('active', 1);
      await until('the report', () => (existsSync(`${dir}/env`) ? true : undefined));
      const seen = envOf(`${dir}/env`);
      t.like(Object.fromEntries(seen), {
        LD_DEBUG: 'files',
        LD_DEBUG_OUTPUT: `${dir}/ld`,
        MALLOC_ARENA_MAX: '2',
        A: '1',
      });
      const written = readdirSync(dir).filter((f) => f.startsWith('ld.'));
      t.true(written.length > 0, 'the variables reached processes');
      t.deepEqual(
        written.filter((f) => statSync(join(dir, f)).uid !== NOBODY),
        [],
        'no process running as root took them',
      );
    } finally {
      await b.stop();
    }
  },
);

needs('setpriv')(
  '--user: an env file is read as the user: a link to a file only root may read is refused',
  async (t) => {
    const dir = dropbox();
    // Another service's secrets, in a directory only root may enter.
    const secret = join(mkdtempSync(join(tmpdir(), 'baton-secret-')), 'other.env');
    writeFileSync(secret, 'SECRET=hunter2\n', { mode: 0o600 });
    symlinkSync(secret, join(dir, 'release.env'));
    const as = ['--user', 'nobody', '--cwd', dir, '--env-file', 'release.env'];
    const b = new Baton(['--listen', '127.0.0.1:0', ...as, '--', 'sleep', '60']);
    t.is((await b.exited).code, 2);
    t.regex(b.stderr, /release\.env: cannot be read as user nobody \(Permission denied\)/);
    t.false(b.stderr.includes('hunter2'));
  },
);

needs('root')(
  '--user: --check, readiness and --health probes run as the user with its environment, not as root (M6)',
  async (t) => {
    const dir = dropbox();
    const as = ['--user', 'nobody', '--handover', 'inherit', '--check', `id -u > ${dir}/check; env > ${dir}/check-env`];
    const probe = `probe:id -u > ${dir}/probe$BATON_GENERATION; env > ${dir}/probe-env`;
    // Renamed into place: the test never reads a file a run is rewriting.
    const health = [
      '--health',
      `probe:id -u > ${dir}/h.tmp && mv ${dir}/h.tmp ${dir}/health`,
      '--health-interval',
      '200ms',
    ];
    const env = { SSH_AUTH_SOCK: '/tmp/agent.1', HOME: '/root', BATON_CHECK_TIMEOUT: '30s' };
    const b = new Baton(['--listen', '127.0.0.1:0', ...as, '--ready', probe, ...health, '--', 'sleep', '60'], env);
    try {
      await b.event('active', 1);
      await until('a --health run', () => (existsSync(`${dir}/health`) ? true : undefined));
      await b.upgradeTo(2);
      const { home } = nobody();
      for (const what of ['check', 'probe2', 'health'])
        t.is(readFileSync(`${dir}/${what}`, 'utf8'), `${NOBODY}\n`, what);
      for (const file of ['check-env', 'probe-env']) {
        const seen = envOf(`${dir}/${file}`);
        t.is(seen.get('HOME'), home, file);
        for (const k of ['SSH_AUTH_SOCK', 'BATON_CHECK_TIMEOUT']) t.false(seen.has(k), `${file}: ${k}`);
      }
      t.is(envOf(`${dir}/probe-env`).get('BATON_CHILD_PID') !== undefined, true, 'its own variables stay');
    } finally {
      await b.stop();
    }
  },
);
