import { formatAddress } from '../address.js';
import { listeningSockets } from '../sys/proc-net.js';
import { covers, type Rule } from './rules.js';

/** Listening sockets of other processes that a rule would take connections from, each with its owner's uid. */
export function shadowed(rules: Rule[], ownInodes: Set<number>): string[] {
  const out: string[] = [];
  for (const s of listeningSockets()) {
    if (ownInodes.has(s.inode)) continue;
    // A wildcard listener (0.0.0.0, ::) takes every address of its port, so any rule on that port shadows it.
    const wildcard = s.addr.equals(Buffer.alloc(16));
    const rule = rules.find((r) => covers(r, s.family, s.addr, s.port) || (wildcard && r.ports.includes(s.port)));
    if (!rule) continue;
    const host = s.family === 4 ? [...s.addr.subarray(0, 4)].join('.') : formatV6(s.addr);
    out.push(
      `${formatAddress({ kind: 'tcp', family: s.family, host, port: s.port, v6only: false })} ` +
        `(uid ${s.uid}, --steer ${rule.text})`,
    );
  }
  return out;
}

function formatV6(addr: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => addr.readUInt16BE(i * 2).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
