import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BatonError } from '../errors.js';
import { getPinned } from '../sys/bpf.js';
import { linkInfo, type SkLookupLink, skLookupLinks } from '../sys/bpf-info.js';
import { closeFd } from '../sys/fd.js';
import { netnsInode } from '../sys/proc.js';
import { PROGRAM, pinDir } from './steering.js';

/** What the split-brain check needs of the plane. */
export interface SplitCheck {
  name: string;
  bpffs: string;
  force: boolean;
  /** The live generation the state file names as serving (port mode, a previous baton's). */
  serving?: { number: number; pid: number };
}

/**
 * Refuses steering that would not get the connections (split-brain): a program attached before
 * baton's runs first and keeps what it takes. Either the state names a live generation whose pins
 * baton cannot see (a private mount namespace, as `ip netns exec` makes, or another bpffs), or an
 * sk_lookup link that no pin under bpffs/baton/ holds is attached to this namespace (--force
 * steers alongside it). Returns the warnings to log once steering is open.
 */
export function refuseSplit(c: SplitCheck): string[] {
  const dir = pinDir(c.bpffs, c.name);
  if (c.serving && !existsSync(join(dir, 'link'))) {
    const { number, pid } = c.serving;
    throw new BatonError(
      'ERR_BATON_PINS_MISSING',
      `generation ${number} (pid ${pid}) of a previous baton still serves, but its steering pins are not at ${dir}`,
      'start baton where they are visible (its mount namespace and bpffs: nsenter --net= keeps them, ' +
        `ip netns exec does not), or stop that generation (kill ${pid}) first`,
      { generation: number, pid, pins: dir },
    );
  }
  let links: SkLookupLink[];
  try {
    links = skLookupLinks(netnsInode());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    return ['without CAP_SYS_ADMIN baton cannot look for other sk_lookup programs in this network namespace'];
  }
  const known = pinnedLinks(c.bpffs);
  const others = links.filter((l) => !known.has(l.id));
  if (others.length === 0) return [];
  const what = others.map(describe).join(', ');
  if (c.force) return [`steering alongside ${what}, which runs before baton's and keeps the connections it takes`];
  const detach = others.map((l) => `bpftool link detach id ${l.id}`).join('; ');
  const hint = others.some((l) => l.prog?.name === PROGRAM)
    ? "it is a baton's steering whose pins are not visible here (another mount namespace, as ip netns exec " +
      `makes, or another bpffs): start baton where they are, or detach it (${detach})`
    : `detach it if it is stale (${detach}), or pass --force to steer alongside it`;
  throw new BatonError(
    'ERR_BATON_FOREIGN_LINK',
    `another sk_lookup program is attached to this network namespace: ${what}`,
    hint,
    { links: others.map((l) => l.id).join(',') },
  );
}

/** `link 12 (program 34 name, tag 0123456789abcdef)`, as bpftool names them. */
function describe(l: SkLookupLink): string {
  return l.prog ? `link ${l.id} (program ${l.prog.id} ${l.prog.name}, tag ${l.prog.tag})` : `link ${l.id}`;
}

/** Ids of the links pinned under bpffs/baton/: this steering's own and other batons' (other names). */
function pinnedLinks(bpffs: string): Set<number> {
  const ids = new Set<number>();
  const root = join(bpffs, 'baton');
  const names = existsSync(root) ? readdirSync(root) : [];
  for (const link of names.map((n) => join(root, n, 'link')).filter((p) => existsSync(p))) {
    const fd = getPinned(link);
    try {
      ids.add(linkInfo(fd).id);
    } finally {
      closeFd(fd);
    }
  }
  return ids;
}
