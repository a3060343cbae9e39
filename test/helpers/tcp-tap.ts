/**
 * Watches (and may change or drop) the TCP segments a sim device sends: for tests
 * that look at flags, the IP ECN field and options segment by segment.
 */
import type { SimDevice } from '../../src/link/sim.js';
import { TcpOptions, parseTcpOptions } from '../../src/wire/tcp.js';
import { fillIpv4Checksum } from '../../src/wire/ipv4.js';

/** A TCP segment as it left a device. */
export interface Seen {
  /** The IP header's ECN field. */
  ecn: number;
  flags: number;
  seq: number;
  ack: number;
  sport: number;
  dport: number;
  len: number;
  /** The Fast Open option: null absent, empty a request, else the cookie (a copy). */
  fastOpen: Uint8Array | null;
  fastOpenExp: boolean;
  data: Buffer;
}

/** `fn` sees each TCP segment (Ethernet frames, IP at 14) and returns false to drop it. */
export function tap(dev: SimDevice, fn: (f: Uint8Array, ipOff: number, s: Seen) => boolean | void = () => {}): Seen[] {
  const seen: Seen[] = [];
  const opts = new TcpOptions();
  const send = dev.sendBatch.bind(dev);
  dev.sendBatch = (frames: readonly Uint8Array[], count: number): number => {
    const keep: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const f = frames[i];
      if (f.length >= 54 && f[12] === 0x08 && f[13] === 0x00 && f[23] === 6) {
        const ihl = (f[14] & 0x0f) * 4;
        const t = 14 + ihl;
        const total = (f[16] << 8) | f[17];
        const hl = (f[t + 12] >> 4) * 4;
        const u32 = (o: number): number => ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
        parseTcpOptions(f, t + 20, hl - 20, opts);
        const s: Seen = {
          ecn: f[15] & 3,
          flags: f[t + 13],
          seq: u32(t + 4),
          ack: u32(t + 8),
          sport: (f[t] << 8) | f[t + 1],
          dport: (f[t + 2] << 8) | f[t + 3],
          len: total - ihl - hl,
          fastOpen: opts.fastOpen === null ? null : opts.fastOpen.slice(),
          fastOpenExp: opts.fastOpenExp,
          data: Buffer.from(f.subarray(t + hl, 14 + total)),
        };
        seen.push(s);
        if (fn(f, 14, s) === false) continue;
      }
      keep.push(f);
    }
    send(keep, keep.length);
    return count;
  };
  return seen;
}

/** Marks CE on an ECT datagram, as a router would (RFC 3168 §5). */
export function markCe(f: Uint8Array, ipOff: number): void {
  if ((f[ipOff + 1] & 3) === 0) return;
  f[ipOff + 1] |= 3;
  fillIpv4Checksum(f, ipOff, (f[ipOff] & 0x0f) * 4);
}
