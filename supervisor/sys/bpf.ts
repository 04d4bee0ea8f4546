import { constants } from 'node:os';
import koffi from 'koffi';
import { BatonError, type Context } from '../errors.js';
import { dupCloexec } from './fd.js';
import { libc, sysError } from './libc.js';

/** The attach type of sk_lookup programs. */
export const BPF_SK_LOOKUP = 36;
const BPF_ANY = 0;

export type Lib = {
  open: (path: string, opts: null) => unknown;
  load: (obj: unknown) => number;
  close: (obj: unknown) => void;
  findProgram: (obj: unknown, name: string) => unknown;
  programFd: (prog: unknown) => number;
  findMapFd: (obj: unknown, name: string) => number;
  pin: (fd: number, path: string) => number;
  get: (path: string) => number;
  linkCreate: (prog: number, target: number, type: number, opts: null) => number;
  linkDetach: (link: number) => number;
  update: (fd: number, key: Buffer, value: Buffer, flags: number) => number;
  lookup: (fd: number, key: Buffer, value: Buffer) => number;
  remove: (fd: number, key: Buffer) => number;
  nextKey: (fd: number, key: Buffer | null, next: Buffer) => number;
  info: (fd: number, info: Buffer, len: Buffer) => number;
  linkNextId: (start: number, next: Buffer) => number;
  linkById: (id: number) => number;
  progById: (id: number) => number;
  cpus: () => number;
};

let lib: Lib | undefined;

/** libbpf.so.1, loaded on first use (steering mode only). BATON_LIBBPF overrides the path. */
export function libbpf(): Lib {
  if (lib) return lib;
  const path = process.env.BATON_LIBBPF ?? 'libbpf.so.1';
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load(path);
  } catch (err) {
    throw new BatonError(
      'ERR_BATON_LIBBPF',
      `cannot load ${path}: ${(err as Error).message.split('\n')[0]}`,
      'install libbpf 1.x (Debian/Ubuntu: apt-get install libbpf1; Fedora: dnf install libbpf)',
    );
  }
  so.func('void *libbpf_set_print(void *)')(null); // libbpf's own warnings would bypass baton's log
  lib = {
    open: so.func('void *bpf_object__open_file(const char *, void *)'),
    load: so.func('int bpf_object__load(void *)'),
    close: so.func('void bpf_object__close(void *)'),
    findProgram: so.func('void *bpf_object__find_program_by_name(void *, const char *)'),
    programFd: so.func('int bpf_program__fd(void *)'),
    findMapFd: so.func('int bpf_object__find_map_fd_by_name(void *, const char *)'),
    pin: so.func('int bpf_obj_pin(int, const char *)'),
    get: so.func('int bpf_obj_get(const char *)'),
    linkCreate: so.func('int bpf_link_create(int, int, int, void *)'),
    linkDetach: so.func('int bpf_link_detach(int)'),
    update: so.func('int bpf_map_update_elem(int, const void *, const void *, uint64)'),
    lookup: so.func('int bpf_map_lookup_elem(int, const void *, void *)'),
    remove: so.func('int bpf_map_delete_elem(int, const void *)'),
    nextKey: so.func('int bpf_map_get_next_key(int, const void *, void *)'),
    info: so.func('int bpf_obj_get_info_by_fd(int, void *, void *)'),
    linkNextId: so.func('int bpf_link_get_next_id(uint32, void *)'),
    linkById: so.func('int bpf_link_get_fd_by_id(uint32)'),
    progById: so.func('int bpf_prog_get_fd_by_id(uint32)'),
    cpus: so.func('int libbpf_num_possible_cpus()'),
  } as Lib;
  return lib;
}

/** libbpf 1.x returns -errno. */
export function ok(ret: number, call: string, hints: Record<string, string> = {}, context: Context = {}): number {
  if (ret >= 0) return ret;
  throw sysError(-ret, call, { default: 'see the kernel log (dmesg) for the verifier output', ...hints }, context);
}

const privilegeHints = {
  EPERM: 'steering needs root, or CAP_BPF and CAP_NET_ADMIN',
  EACCES: 'steering needs root, or CAP_BPF and CAP_NET_ADMIN',
};

export interface LoadedObject {
  prog: number;
  maps: Record<string, number>;
  close(): void;
}

/** Opens and loads a BPF object file; returns the fds of one program and the named maps. */
export function loadObject(path: string, program: string, mapNames: string[]): LoadedObject {
  const l = libbpf();
  const obj = l.open(path, null);
  if (!obj)
    throw new BatonError(
      'ERR_BATON_BPF',
      `cannot open BPF object ${path}`,
      'reinstall baton, or rebuild it with npm run build:bpf',
    );
  try {
    ok(l.load(obj), 'bpf_object__load', {
      ...privilegeHints,
      EINVAL: 'this kernel lacks sk_lookup programs or SOCKMAP listeners: steering needs Linux 5.9 or newer',
    });
    const p = l.findProgram(obj, program);
    if (!p)
      throw new BatonError('ERR_BATON_BPF', `${path} has no program ${program}`, 'rebuild it with npm run build:bpf');
    const prog = dupCloexec(l.programFd(p));
    const maps: Record<string, number> = {};
    for (const m of mapNames) {
      const fd = l.findMapFd(obj, m);
      if (fd < 0) throw new BatonError('ERR_BATON_BPF', `${path} has no map ${m}`, 'rebuild it with npm run build:bpf');
      maps[m] = dupCloexec(fd);
    }
    return {
      prog,
      maps,
      close: () => {
        libc.close(prog);
        for (const fd of Object.values(maps)) libc.close(fd);
      },
    };
  } finally {
    // The object's own fds go; the F_DUPFD_CLOEXEC copies above keep program and maps alive.
    l.close(obj);
  }
}

export function pinObject(fd: number, path: string): void {
  ok(libbpf().pin(fd, path), 'bpf_obj_pin', privilegeHints, { path });
}

export function getPinned(path: string): number {
  return ok(libbpf().get(path), 'bpf_obj_get', privilegeHints, { path });
}

/** A BPF link of an sk_lookup program to the network namespace behind `netnsFd`. */
export function attachSkLookup(prog: number, netnsFd: number): number {
  return ok(libbpf().linkCreate(prog, netnsFd, BPF_SK_LOOKUP, null), 'bpf_link_create', {
    ...privilegeHints,
    EINVAL: 'this kernel lacks sk_lookup: steering needs Linux 5.9 or newer',
  });
}

/** Ends the link's attachment now, whoever else holds it or its pin (the link object lives on, detached). */
export function detachLink(link: number): void {
  ok(libbpf().linkDetach(link), 'bpf_link_detach');
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, context: Context = {}): void {
  ok(
    libbpf().update(fd, key, value, BPF_ANY),
    'bpf_map_update_elem',
    {
      EOPNOTSUPP: 'the socket cannot go into a SOCKMAP: it must be a listening TCP socket (Linux 5.10+)',
      ...privilegeHints,
    },
    context,
  );
}

/** False when the key is absent. */
export function mapLookup(fd: number, key: Buffer, value: Buffer): boolean {
  const r = libbpf().lookup(fd, key, value);
  if (r === -constants.errno.ENOENT) return false;
  ok(r, 'bpf_map_lookup_elem');
  return true;
}

export function mapDelete(fd: number, key: Buffer): void {
  const r = libbpf().remove(fd, key);
  if (r !== -constants.errno.ENOENT) ok(r, 'bpf_map_delete_elem');
}

/** Every key of a map (keySize bytes each). */
export function mapKeys(fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const r = libbpf().nextKey(fd, prev, next);
    if (r === -constants.errno.ENOENT) return keys;
    ok(r, 'bpf_map_get_next_key');
    keys.push(next);
    prev = next;
  }
}

export function possibleCpus(): number {
  return ok(libbpf().cpus(), 'libbpf_num_possible_cpus');
}
