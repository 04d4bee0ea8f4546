import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatonError } from '../errors.js';
import { checkDirectory, removeKnown } from '../files.js';
import {
  attachSkLookup,
  detachLink,
  getPinned,
  loadObject,
  mapDelete,
  mapKeys,
  mapLookup,
  mapUpdate,
  pinObject,
  possibleCpus,
} from '../sys/bpf.js';
import { linkNetns, progTag } from '../sys/bpf-info.js';
import { ensureBpffs } from '../sys/bpffs.js';
import { CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN, hasCapability } from '../sys/capability.js';
import { closeFd } from '../sys/fd.js';
import { netnsInode, withNetns } from '../sys/proc.js';
import { entries, KEY_SIZE, type Rule } from './rules.js';

export const PROGRAM = 'baton_steer';
const MAPS = ['rules', 'slots', 'counters'] as const;
/** Every pin baton makes in its directory; only these are ever removed. */
const PINS = ['prog', 'link', ...MAPS];
const SLOT = 0;

/** bpf/steer.o of this package, from source (supervisor/) or build (dist/supervisor/). */
function objectPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bpf', 'steer.o'))) {
    if (dir === dirname(dir))
      throw new BatonError('ERR_BATON_BPF', 'bpf/steer.o is missing', 'rebuild it with npm run build:bpf');
    dir = dirname(dir);
  }
  return join(dir, 'bpf', 'steer.o');
}

/** Where steering `name` pins its program, link and maps. */
export function pinDir(bpffs: string, name: string): string {
  return join(bpffs, 'baton', name);
}

/**
 * Makes (0700) or checks `baton/` and `baton/NAME`: in a directory others may write, pins could be
 * moved away under baton (and outlive its clean stop) or planted for it.
 */
function pinDirectories(bpffs: string, name: string): void {
  for (const dir of [join(bpffs, 'baton'), pinDir(bpffs, name)]) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new BatonError(
          'ERR_BATON_PINS',
          `cannot create ${dir}: ${code}`,
          'steering needs root, or CAP_BPF and CAP_NET_ADMIN with write access to bpffs',
        );
      }
    }
    checkDirectory(dir, 'steering pins', `remove ${dir} (and what is in it), or choose another --name`);
  }
}

export interface RuleCounters {
  rule: string;
  steered: number;
  nosock: number;
}

/**
 * The steering: baton's sk_lookup program attached to this network namespace by a BPF link,
 * with its maps (rules, a SOCKMAP of slots, per-rule counters), all pinned under bpffs so that
 * steering outlives a crash of baton.
 */
export class Steering {
  readonly dir: string;
  /** True when the pins were there already (a previous baton's). */
  readonly reused: boolean;
  private readonly rules: Rule[];
  private readonly fds: { prog: number; link: number; rules: number; slots: number; counters: number };

  private constructor(dir: string, reused: boolean, rules: Rule[], fds: Steering['fds']) {
    this.dir = dir;
    this.reused = reused;
    this.rules = rules;
    this.fds = fds;
  }

  /** Loads (or re-opens the pins of) the program and writes the rules; all or nothing. */
  static open(name: string, bpffs: string, rules: Rule[]): Steering {
    if (!hasCapability(CAP_NET_ADMIN) || !(hasCapability(CAP_BPF) || hasCapability(CAP_SYS_ADMIN))) {
      throw new BatonError(
        'ERR_BATON_STEER_PRIVILEGE',
        'steering needs CAP_BPF and CAP_NET_ADMIN, which baton does not have',
        'run baton as root, or grant the capabilities (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN)',
      );
    }
    ensureBpffs(bpffs);
    const dir = pinDir(bpffs, name);
    const reusing = Steering.pinned(name, bpffs);
    const ours = loadObject(objectPath(), PROGRAM, [...MAPS]);
    const opened: number[] = [];
    let pinned = false;
    try {
      pinDirectories(bpffs, name);
      pinned = !reusing;
      const tag = progTag(ours.prog);
      if (reusing) {
        const prog = getPinned(join(dir, 'prog'));
        opened.push(prog);
        const theirs = progTag(prog);
        if (theirs !== tag) {
          throw new BatonError(
            'ERR_BATON_PINS',
            `the pins at ${dir} belong to a different program (tag ${theirs}, baton's is ${tag})`,
            `remove them with baton steer clean --name ${name}, or choose another --name`,
          );
        }
        const fds = {
          prog,
          link: getPinned(join(dir, 'link')),
          rules: getPinned(join(dir, 'rules')),
          slots: getPinned(join(dir, 'slots')),
          counters: getPinned(join(dir, 'counters')),
        };
        opened.push(fds.link, fds.rules, fds.slots, fds.counters);
        const here = netnsInode();
        const there = linkNetns(fds.link);
        if (there !== here) {
          throw new BatonError(
            'ERR_BATON_PINS',
            `the pins at ${dir} steer another network namespace (inode ${there}, this one is ${here})`,
            `remove them with baton steer clean --name ${name}, or choose another --name`,
          );
        }
        ours.close();
        const s = new Steering(dir, true, rules, fds);
        s.writeRules();
        return s;
      }
      pinObject(ours.prog, join(dir, 'prog'));
      for (const m of MAPS) pinObject(ours.maps[m]!, join(dir, m));
      const link = withNetns((netns) => attachSkLookup(ours.prog, netns));
      opened.push(link);
      pinObject(link, join(dir, 'link'));
      const s = new Steering(dir, false, rules, {
        prog: ours.prog,
        link,
        rules: ours.maps.rules!,
        slots: ours.maps.slots!,
        counters: ours.maps.counters!,
      });
      s.writeRules();
      return s;
    } catch (err) {
      for (const fd of opened) closeFd(fd);
      ours.close();
      if (pinned) removeKnown(dir, PINS);
      throw err;
    }
  }

  /** The pins of steering `name` are there (a restart re-opens them). */
  static pinned(name: string, bpffs: string): boolean {
    return existsSync(join(pinDir(bpffs, name), 'link'));
  }

  /** Removes the pins of steering `name` (and so, once no one holds them, the program and link). */
  static clean(name: string, bpffs: string): boolean {
    const dir = pinDir(bpffs, name);
    if (!existsSync(dir)) return false;
    removeKnown(dir, PINS);
    return true;
  }

  /** Puts a listening socket into the slot: from now on, new connections for the rules go to it. */
  setSlot(fd: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(SLOT);
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(fd));
    mapUpdate(this.fds.slots, key, value, { fd });
  }

  /** The socket cookie in the slot, or undefined when it is empty. */
  slotCookie(): string | undefined {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(SLOT);
    const value = Buffer.alloc(8);
    return mapLookup(this.fds.slots, key, value) ? value.readBigUInt64LE().toString() : undefined;
  }

  counters(): RuleCounters[] {
    const cpus = possibleCpus();
    return this.rules.map((r) => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(r.index);
      const value = Buffer.alloc(16 * cpus);
      let steered = 0;
      let nosock = 0;
      if (mapLookup(this.fds.counters, key, value)) {
        for (let i = 0; i < cpus; i++) {
          steered += Number(value.readBigUInt64LE(i * 16));
          nosock += Number(value.readBigUInt64LE(i * 16 + 8));
        }
      }
      return { rule: r.text, steered, nosock };
    });
  }

  /**
   * Closes baton's fds; unless `keep`, detaches the program through baton's own link fd (so that
   * steering ends even if the pins were moved away), then removes the pins.
   */
  close(keep: boolean): void {
    if (!keep) detachLink(this.fds.link);
    for (const fd of Object.values(this.fds)) closeFd(fd);
    if (!keep) removeKnown(this.dir, PINS);
  }

  /** Replaces whatever rules the map holds with ours, all pointing at the one slot. */
  private writeRules(): void {
    const wanted = new Map<string, Buffer>();
    for (const rule of this.rules) {
      for (const [key, value] of entries(rule, SLOT)) {
        mapUpdate(this.fds.rules, key, value, { rule: rule.text });
        wanted.set(key.toString('hex'), key);
      }
    }
    for (const key of mapKeys(this.fds.rules, KEY_SIZE))
      if (!wanted.has(key.toString('hex'))) mapDelete(this.fds.rules, key);
  }
}
