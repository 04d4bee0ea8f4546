import { readFileSync } from 'node:fs';

const TCP_ESTABLISHED = '01';
const TCP_LISTEN = '0A';

export interface ListeningSocket {
  family: 4 | 6;
  /** 16 bytes; an IPv4 address in the first 4. */
  addr: Buffer;
  port: number;
  inode: number;
  /** The uid of the process that made it. */
  uid: number;
}

/** /proc/net prints each 32-bit word of the address in host (little-endian) order. */
function address(hex: string): Buffer {
  const out = Buffer.alloc(16);
  for (let w = 0; w < hex.length / 8; w++) out.writeUInt32LE(parseInt(hex.slice(w * 8, w * 8 + 8), 16) >>> 0, w * 4);
  return out;
}

/** TCP sockets in LISTEN state in this network namespace. */
export function listeningSockets(): ListeningSocket[] {
  return sockets(TCP_LISTEN);
}

/** Inodes of established TCP connections in this network namespace. */
export function establishedInodes(): Set<number> {
  return new Set(sockets(TCP_ESTABLISHED).map((s) => s.inode));
}

function sockets(state: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const [file, family] of [
    ['/proc/net/tcp', 4],
    ['/proc/net/tcp6', 6],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== state) continue;
      const [hex, port] = f[1]!.split(':');
      out.push({ family, addr: address(hex!), port: parseInt(port!, 16), inode: Number(f[9]), uid: Number(f[7]) });
    }
  }
  return out;
}
