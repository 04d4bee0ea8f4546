import { constants } from 'node:os';
import { BPF_SK_LOOKUP, libbpf, ok } from './bpf.js';
import { closeFd } from './fd.js';

const BPF_LINK_TYPE_NETNS = 5;
const LINK_INFO_SIZE = 48;
const LINK_INFO_NETNS = 16; // netns_ino, attach_type: after type, id, prog_id and padding (the union is 8-byte aligned)
const PROG_INFO_SIZE = 232;
const PROG_INFO_TAG = 8;
const PROG_INFO_NAME = 64;

/** struct bpf_link_info or bpf_prog_info of `fd`, `size` bytes of it. */
function info(fd: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  ok(libbpf().info(fd, buf, len), 'bpf_obj_get_info_by_fd');
  return buf;
}

/** What baton needs of a BPF link: its id, its program's, and for a netns link the namespace and attach type. */
export interface LinkInfo {
  id: number;
  progId: number;
  netns?: { ino: number; attachType: number };
}

export function linkInfo(fd: number): LinkInfo {
  const b = info(fd, LINK_INFO_SIZE);
  const netns = b.readUInt32LE(0) === BPF_LINK_TYPE_NETNS;
  return {
    id: b.readUInt32LE(4),
    progId: b.readUInt32LE(8),
    ...(netns
      ? { netns: { ino: b.readUInt32LE(LINK_INFO_NETNS), attachType: b.readUInt32LE(LINK_INFO_NETNS + 4) } }
      : {}),
  };
}

/** The network namespace inode a netns BPF link is attached to. */
export function linkNetns(fd: number): number {
  return linkInfo(fd).netns?.ino ?? 0;
}

/** A program as bpftool names it: id, name (the first 15 bytes of the function's) and tag. */
export interface ProgInfo {
  id: number;
  name: string;
  tag: string;
}

export function progInfo(fd: number): ProgInfo {
  const b = info(fd, PROG_INFO_SIZE);
  const name = b.subarray(PROG_INFO_NAME, PROG_INFO_NAME + 16);
  return {
    id: b.readUInt32LE(4),
    name: name.subarray(0, Math.max(0, name.indexOf(0))).toString(),
    tag: b.subarray(PROG_INFO_TAG, PROG_INFO_TAG + 8).toString('hex'),
  };
}

/** The program's tag: a hash of its instructions, equal for equal programs. */
export function progTag(fd: number): string {
  return progInfo(fd).tag;
}

/** Calls `use` with an fd for BPF object `id` got by `get`; undefined when the object is gone. */
function byId<T>(id: number, get: (id: number) => number, call: string, use: (fd: number) => T): T | undefined {
  const fd = get(id);
  if (fd === -constants.errno.ENOENT) return undefined;
  ok(fd, call);
  try {
    return use(fd);
  } finally {
    closeFd(fd);
  }
}

/** An sk_lookup link and its program (undefined if it went meanwhile). */
export interface SkLookupLink {
  id: number;
  prog?: ProgInfo;
}

/**
 * Every sk_lookup link attached to the network namespace with inode `netnsIno`, pinned or not.
 * Walking the ids needs CAP_SYS_ADMIN: EPERM without it.
 */
export function skLookupLinks(netnsIno: number): SkLookupLink[] {
  const l = libbpf();
  const found: SkLookupLink[] = [];
  const next = Buffer.alloc(4);
  for (let id = 0; ; ) {
    const r = l.linkNextId(id, next);
    if (r === -constants.errno.ENOENT) return found;
    ok(r, 'bpf_link_get_next_id', { EPERM: 'listing BPF links needs CAP_SYS_ADMIN' });
    id = next.readUInt32LE(0);
    const link = byId(id, l.linkById, 'bpf_link_get_fd_by_id', linkInfo);
    if (link?.netns?.ino !== netnsIno || link.netns.attachType !== BPF_SK_LOOKUP) continue;
    const prog = byId(link.progId, l.progById, 'bpf_prog_get_fd_by_id', progInfo);
    found.push({ id, ...(prog ? { prog } : {}) });
  }
}
