import { lstatSync, type Stats, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Address, formatAddress, overlap, parseAddress } from './address.js';
import { BatonError, SysError, usageError } from './errors.js';
import { checkDirectory } from './files.js';
import { closeFd } from './sys/fd.js';
import { commandLine, socketHoldersAnywhere } from './sys/proc.js';
import { listeningSockets } from './sys/proc-net.js';
import { createListener, socketAddress, unixSocketOwner } from './sys/socket.js';

/** A listening socket that baton owns for its whole life and never accepts on. */
export interface Listener {
  name: string;
  /** The address as bound (port 0 resolved). */
  address: Address;
  fd: number;
  /** Handed to baton by socket activation: its unix socket file is not baton's to remove. */
  adopted?: boolean;
  /** Copied from the generations of a baton that died (takeover), not bound. */
  taken?: boolean;
}

export interface ListenSpec {
  name: string;
  address: Address;
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const OVERLAP_HINT =
  'give only one of them: [::]:PORT (or :PORT) listens on every address, 0.0.0.0:PORT on every IPv4 one';

/** `--listen [NAME=]ADDRESS`; NAME defaults to listener<i> and is what LISTEN_FDNAMES carries. */
export function parseListen(values: string[]): ListenSpec[] {
  const specs = values.map((value, i) => {
    const eq = value.indexOf('=');
    const named = eq > 0 && !value.startsWith('unix:') && !value.startsWith('[');
    const name = named ? value.slice(0, eq) : `listener${i}`;
    if (!NAME.test(name))
      throw usageError(`bad listener name "${name}"`, 'a name is 1-64 letters, digits, "_", "." or "-"');
    return { name, address: parseAddress(named ? value.slice(eq + 1) : value) };
  });
  const seen = new Set<string>();
  for (const s of specs) {
    const key = formatAddress(s.address);
    const anyPort = s.address.kind === 'tcp' && s.address.port === 0;
    if ((seen.has(key) && !anyPort) || seen.has(`name:${s.name}`))
      throw usageError(`--listen ${key} (${s.name}) is given twice`, 'give each address and name once');
    seen.add(key).add(`name:${s.name}`);
  }
  // Bound one after the other, the second would fail with EADDRINUSE, blamed on "another process".
  for (const [i, b] of specs.entries()) {
    const a = specs.slice(0, i).find((s) => overlap(s.address, b.address));
    if (!a) continue;
    const [x, y] = [a, b].map((s) => `--listen ${formatAddress(s.address)} (${s.name})`);
    const port = (b.address as { port: number }).port;
    throw usageError(`${x} and ${y} overlap: they cannot both listen on port ${port}`, OVERLAP_HINT);
  }
  return specs;
}

/** Removes a unix socket file at `path` that no process listens on; true if it did. Refuses any other file. */
export function clearStaleUnixSocket(path: string): boolean {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isSocket()) {
    throw new BatonError('ERR_BATON_LISTEN', `${path} exists and is not a socket`, 'remove it or choose another path', {
      listener: `unix:${path}`,
    });
  }
  if (unixSocketOwner(path) !== undefined) return false; // bind reports EADDRINUSE with its hint
  unlinkSync(path);
  return true;
}

/** EADDRINUSE, with the processes that hold the address named (those baton may see). */
export function inUse(err: unknown, a: Address): unknown {
  if (!(err instanceof SysError) || err.code !== 'EADDRINUSE') return err;
  const port = a.kind === 'tcp' ? a.port : undefined;
  const owner = a.kind === 'unix' ? unixSocketOwner(a.path) : undefined;
  const sockets = listeningSockets().flatMap((s) => (s.port === port ? [`socket:[${s.inode}]`] : []));
  const pids = owner ? [owner] : [...new Set(socketHoldersAnywhere(sockets).map((h) => h.pid))];
  if (pids.length === 0) return err;
  const who = pids.map((pid) => `pid ${pid} (${commandLine(pid) || '?'})`).join(', ');
  return err.withHint(
    `another process listens on this address: ${who}; stop it (kill ${pids.join(' ')}), or choose another address`,
  );
}

/**
 * Opens every listener, or none: on failure the ones already opened are closed again. Listeners
 * in `adopted` (socket activation) and `taken` (takeover) are used as they are.
 */
export function openListeners(
  specs: ListenSpec[],
  backlog: number,
  onStale: (path: string) => void,
  adopted = new Map<ListenSpec, number>(),
  taken = new Map<ListenSpec, number>(),
): Listener[] {
  const open: Listener[] = [];
  try {
    for (const spec of specs) {
      const inherited = adopted.get(spec);
      if (inherited !== undefined) {
        open.push({ name: spec.name, address: socketAddress(inherited) ?? spec.address, fd: inherited, adopted: true });
        continue;
      }
      const copy = taken.get(spec);
      if (copy !== undefined) {
        open.push({ name: spec.name, address: spec.address, fd: copy, taken: true });
        continue;
      }
      const text = formatAddress(spec.address);
      if (spec.address.kind === 'unix') {
        // As the control socket's: nobody else may swap the directory, and baton bind or unlink elsewhere.
        checkDirectory(dirname(spec.address.path), `listener ${text}`);
        if (clearStaleUnixSocket(spec.address.path)) onStale(spec.address.path);
      }
      let made: { fd: number; port: number };
      try {
        made = createListener(spec.address, backlog, { listener: text });
      } catch (err) {
        throw inUse(err, spec.address);
      }
      const { fd, port } = made;
      const address = spec.address.kind === 'tcp' ? { ...spec.address, port } : spec.address;
      open.push({ name: spec.name, address, fd });
    }
    return open;
  } catch (err) {
    closeListeners(open);
    for (const fd of [...adopted.values(), ...taken.values()]) if (!open.some((l) => l.fd === fd)) closeFd(fd);
    throw err;
  }
}

/** Closes the listeners and removes their unix socket files, except those `others` still serve from. */
export function closeListeners(listeners: Listener[], others = false): void {
  for (const l of listeners) {
    closeFd(l.fd);
    if (l.address.kind === 'unix' && !l.adopted && !(l.taken && others)) {
      try {
        unlinkSync(l.address.path);
      } catch {
        // already gone
      }
    }
  }
}

/** The listeners' addresses in order, for BATON_LISTENERS. */
export function addressList(listeners: Listener[]): string {
  return listeners.map((l) => formatAddress(l.address)).join(',');
}
