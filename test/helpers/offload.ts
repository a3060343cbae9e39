import { GSO_TCPV4, GSO_UDP_L4, Packet } from '../../src/packet/packet.js';
import { checksum, pseudoHeaderSum } from '../../src/wire/checksum.js';
import { fillIpv4Checksum } from '../../src/wire/ipv4.js';
import { setU32 } from '../../src/wire/bytes.js';
import { ip } from './ct.js';

export { ip };
export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const PSH = 0x08;
export const CWR_FLAG = 0x80;

/** An IPv4 TCP segment (ID `id`, DF set) with a correct checksum, payload bytes i & 0xff. */
export function tcp(src: string, sport: number, dst: string, dport: number, s: { seq: number; ack?: number; flags: number; data?: number; opts?: number[]; id?: number }): Packet {
  const opts = s.opts ?? [];
  const thl = 20 + opts.length;
  const len = 20 + thl + (s.data ?? 0);
  const p = Packet.alloc(len);
  const b = p.buf;
  const o = p.start;
  b[o] = 0x45;
  b[o + 2] = len >> 8;
  b[o + 3] = len & 0xff;
  b[o + 4] = ((s.id ?? 0) >> 8) & 0xff;
  b[o + 5] = (s.id ?? 0) & 0xff;
  b[o + 6] = 0x40;
  b[o + 8] = 64;
  b[o + 9] = 6;
  setU32(b, o + 12, ip(src));
  setU32(b, o + 16, ip(dst));
  fillIpv4Checksum(b, o, 20);
  const t = o + 20;
  b[t] = sport >> 8;
  b[t + 1] = sport & 0xff;
  b[t + 2] = dport >> 8;
  b[t + 3] = dport & 0xff;
  setU32(b, t + 4, s.seq >>> 0);
  setU32(b, t + 8, (s.ack ?? 0) >>> 0);
  b[t + 12] = (thl / 4) << 4;
  b[t + 13] = s.flags;
  b[t + 14] = 0xff;
  b[t + 15] = 0xff;
  b.set(opts, t + 20);
  for (let i = 0; i < (s.data ?? 0); i++) b[t + thl + i] = (s.seq + i) & 0xff;
  const c = checksum(b, t, len - 20, pseudoHeaderSum(ip(src), ip(dst), 6, len - 20));
  b[t + 16] = c >> 8;
  b[t + 17] = c & 0xff;
  return p;
}

/** A TCP (or UDP) super-packet of `payload` bytes with gso_size `mss`, complete checksum, optionally behind an Ethernet header. */
export function superTcp(o: { payload: number; mss: number; seq: number; id: number; flags: number; ether: boolean; udp?: boolean }): Packet {
  let p: Packet;
  if (o.udp) {
    const len = 20 + 8 + o.payload;
    p = tcp('10.1.0.1', 4000, '10.2.0.2', 5000, { seq: 0, flags: 0, data: o.payload - 12, id: o.id });
    const b = p.buf;
    const s = p.start;
    b[s + 9] = 17;
    b[s + 2] = len >> 8;
    b[s + 3] = len & 0xff;
    p.end = s + len;
    for (let i = 0; i < o.payload; i++) b[s + 28 + i] = (i * 7) & 0xff;
    b[s + 24] = (8 + o.payload) >> 8;
    b[s + 25] = (8 + o.payload) & 0xff;
    b[s + 26] = 0;
    b[s + 27] = 0;
    b[s + 10] = 0;
    b[s + 11] = 0;
    fillIpv4Checksum(b, s, 20);
    const c = checksum(b, s + 20, 8 + o.payload, pseudoHeaderSum(ip('10.1.0.1'), ip('10.2.0.2'), 17, 8 + o.payload));
    b[s + 26] = c >> 8;
    b[s + 27] = c & 0xff;
    p.gsoType = GSO_UDP_L4;
  } else {
    p = tcp('10.1.0.1', 4000, '10.2.0.2', 5000, { seq: o.seq, ack: 77, flags: o.flags, data: o.payload, id: o.id });
    p.gsoType = GSO_TCPV4;
  }
  p.gsoSize = o.mss;
  p.gsoSegs = Math.ceil(o.payload / o.mss);
  if (o.ether) {
    const e = p.push(14);
    for (let i = 0; i < 12; i++) p.buf[e + i] = i + 1;
    p.buf[e + 12] = 0x08;
    p.buf[e + 13] = 0x00;
  }
  return p;
}
