/**
 * What the flow-queueing kinds need from a packet's headers: where its IPv4
 * header is, a hash of its 5-tuple with a perturbation (skb_get_hash with a
 * per-qdisc seed, sfq_hash / fq_codel_hash), and ECN CE marking
 * (INET_ECN_set_ce) with the header checksum fixed.
 */
import type { Packet } from '../packet/packet.js';
import type { SchedHost } from './qdisc.js';
import { fillIpv4Checksum } from '../wire/ipv4.js';

/** Offset of the IPv4 header in pkt.buf, or -1 if the frame does not carry one. */
export function ipv4At(pkt: Packet, host: SchedHost): number {
  const b = pkt.buf;
  let off: number;
  if (pkt.l3 >= pkt.start) off = pkt.l3;
  else if (host.hardHeaderLen === 14) {
    if (pkt.end - pkt.start < 34 || b[pkt.start + 12] !== 0x08 || b[pkt.start + 13] !== 0x00) return -1;
    off = pkt.start + 14;
  } else off = pkt.start + host.hardHeaderLen;
  if (off + 20 > pkt.end || b[off] >> 4 !== 4) return -1;
  return off;
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** jhash_3words-style final mix of three words and a seed. */
function mix3(a: number, b: number, c: number, seed: number): number {
  a = (a + 0xdeadbeef + seed) >>> 0;
  b = (b + 0xdeadbeef + seed) >>> 0;
  c = (c + 0xdeadbeef + seed) >>> 0;
  c ^= b; c = (c - rotl(b, 14)) >>> 0;
  a ^= c; a = (a - rotl(c, 11)) >>> 0;
  b ^= a; b = (b - rotl(a, 25)) >>> 0;
  c ^= b; c = (c - rotl(b, 16)) >>> 0;
  a ^= c; a = (a - rotl(c, 4)) >>> 0;
  b ^= a; b = (b - rotl(a, 14)) >>> 0;
  c ^= b; c = (c - rotl(b, 24)) >>> 0;
  return c >>> 0;
}

/**
 * A 32-bit hash of the flow: addresses, protocol and (for TCP, UDP, UDP-Lite,
 * SCTP, DCCP, not for fragments after the first) the ports. Non-IPv4 frames
 * hash by their link protocol.
 */
export function flowHash(pkt: Packet, host: SchedHost, seed: number): number {
  const b = pkt.buf;
  const ip = ipv4At(pkt, host);
  if (ip < 0) {
    const proto = host.hardHeaderLen === 14 && pkt.end - pkt.start >= 14 ? (b[pkt.start + 12] << 8) | b[pkt.start + 13] : 0;
    return mix3(proto, 0, 0, seed);
  }
  const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
  const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
  const proto = b[ip + 9];
  let ports = 0;
  const ihl = (b[ip] & 0x0f) * 4;
  const fragOff = ((b[ip + 6] & 0x1f) << 8) | b[ip + 7];
  if (fragOff === 0 && (proto === 6 || proto === 17 || proto === 136 || proto === 132 || proto === 33)) {
    const l4 = ip + ihl;
    if (l4 + 4 <= pkt.end) ports = ((b[l4] << 24) | (b[l4 + 1] << 16) | (b[l4 + 2] << 8) | b[l4 + 3]) >>> 0;
  }
  return mix3(src, dst ^ proto, ports, seed);
}

/** reciprocal_scale: maps a 32-bit hash onto 0..n-1. */
export function scale(hash: number, n: number): number {
  return Math.floor((hash * n) / 4294967296);
}

/**
 * INET_ECN_set_ce for IPv4 (include/net/inet_ecn.h IP_ECN_set_ce): an ECT(0)
 * or ECT(1) packet becomes CE with its checksum fixed; true if the packet is
 * CE now, false for Not-ECT (and for non-IPv4 frames).
 */
export function setCe(pkt: Packet, host: SchedHost): boolean {
  const ip = ipv4At(pkt, host);
  if (ip < 0) return false;
  const b = pkt.buf;
  const ecn = b[ip + 1] & 3;
  if (ecn === 3) return true;
  if (ecn === 0) return false;
  b[ip + 1] |= 3;
  fillIpv4Checksum(b, ip, (b[ip] & 0x0f) * 4);
  return true;
}
