/**
 * Offloads at the device boundary, as Linux's net/core does them in software
 * when a device can't: completing a partial checksum (skb_checksum_help) and
 * cutting a TCP or UDP super-packet into wire-sized segments (GSO:
 * tcp_gso_segment, udp4_ufo/__udp_gso_segment, inet_gso_segment), plus the
 * per-link feature switches (`ethtool -K`) and counters.
 */
import { CHECKSUM_NONE, CHECKSUM_PARTIAL, GSO_TCPV4, GSO_UDP_L4, type Packet } from '../packet/packet.js';
import { fold, pseudoHeaderSum, sum16 } from '../wire/checksum.js';
import { fillIpv4Checksum } from '../wire/ipv4.js';

/** Feature names as `ethtool -k` prints them, with the short names `ethtool -K` takes. */
export const OFFLOAD_FEATURES = [
  ['rx', 'rx-checksumming'],
  ['tx', 'tx-checksumming'],
  ['tso', 'tcp-segmentation-offload'],
  ['uso', 'tx-udp-segmentation'],
  ['gso', 'generic-segmentation-offload'],
  ['gro', 'generic-receive-offload'],
  ['lro', 'large-receive-offload'],
] as const;
export type OffloadFeature = (typeof OFFLOAD_FEATURES)[number][0];

/** One link's offload state: what it may do (`fixed` off when the device can't) and what is on. */
export class Offloads {
  /** Trust the device's checksum verdicts (virtio DATA_VALID / NEEDS_CSUM). */
  rx = false;
  /** Leave checksums partial for the device to finish. */
  tx = false;
  /** Hand TCP super-packets to the device whole. */
  tso = false;
  /**
   * UDP super-packets (UDP_SEGMENT, gso_type UDP_L4) cross the device whole, both
   * ways: handed to it for the kernel to cut, and asked of it (TUN_F_USO4, which
   * the kernel shows as tx-udp-segmentation on its TAP).
   */
  uso = false;
  /** Build super-packets and cut them in software before the device when it has no TSO. */
  gso = true;
  /** Merge consecutive TCP segments of a flow within a receive batch. */
  gro = true;
  /** Take TCP super-packets from the device (TUN_F_TSO4). */
  lro = false;
  /** `ip link set DEV gso_max_size N`: the largest super-packet TCP builds for this link. */
  gsoMaxSize = 65536;
  /** gso_max_segs. */
  gsoMaxSegs = 65535;
  /** Which features the device can have on at all (the rest show `[fixed]`). */
  readonly can: Record<OffloadFeature, boolean> = { rx: false, tx: false, tso: false, uso: false, gso: true, gro: true, lro: false };

  // Counters (`ethtool -S`).
  /** Super-packets received from the device. */
  rxGsoPackets = 0;
  /** Segments those stood for. */
  rxGsoSegments = 0;
  /** Received segments merged into another by GRO, and the merged packets handed up. */
  groMergedSegments = 0;
  groPackets = 0;
  /** Super-packets handed to the device whole, and their segments. */
  txGsoPackets = 0;
  txGsoSegments = 0;
  /** Super-packets cut in software before the device, and the segments made. */
  txSwGsoPackets = 0;
  txSwGsoSegments = 0;
  /** Partial checksums finished in software before the device. */
  txSwCsum = 0;
  /** Received packets whose partial checksum was finished on arrival (rx off). */
  rxSwCsum = 0;
  /** Received super-packets that could not be taken (bad offsets or type), dropped. */
  rxGsoBad = 0;

  get(f: OffloadFeature): boolean {
    return this[f];
  }

  /** Switches a feature; false if the device can't have it (ethtool: "Could not change any device features"). */
  set(f: OffloadFeature, on: boolean): boolean {
    if (on && !this.can[f]) return false;
    this[f] = on;
    // netdev_fix_features: TSO needs checksum offload, LRO needs the receive checksums.
    // USO needs both: the kernel's UDP_L4 frames come and go with NEEDS_CSUM only
    // (virtio_net_hdr_to_skb refuses one without it; TUN_F_USO4 needs TUN_F_CSUM).
    if (f === 'tx' && !on) this.tso = this.uso = false;
    if (f === 'tso' && on) this.tx = true;
    if (f === 'rx' && !on) this.lro = this.uso = false;
    if (f === 'lro' && on) this.rx = true;
    if (f === 'uso' && on) this.rx = this.tx = true;
    return true;
  }
}

/** Offset of the transport header and its length field positions, checked; -1 when the packet is not IPv4 TCP/UDP. */
function l4Of(buf: Uint8Array, l3: number, end: number): number {
  if (end - l3 < 20 || buf[l3] >> 4 !== 4) return -1;
  const hl = (buf[l3] & 0x0f) << 2;
  if (hl < 20 || end - l3 < hl) return -1;
  return l3 + hl;
}

/**
 * skb_checksum_help: sums csumStart..end (the field holds the pseudo-header sum
 * already) and stores the complement at csumStart + csumOffset. The packet is
 * then CHECKSUM_NONE. False when the offsets lie outside the packet.
 */
export function finishChecksum(pkt: Packet): boolean {
  const b = pkt.buf;
  const s = pkt.csumStart;
  const at = s + pkt.csumOffset;
  if (s < pkt.start || at + 2 > pkt.end) return false;
  let c = ~fold(sum16(b, s, pkt.end - s)) & 0xffff;
  // A UDP checksum that comes out 0 goes as 0xffff (RFC 768); the field sits at offset 6.
  if (c === 0 && pkt.csumOffset === 6) c = 0xffff;
  b[at] = c >> 8;
  b[at + 1] = c & 0xff;
  pkt.ipSummed = CHECKSUM_NONE;
  return true;
}

/**
 * Makes a packet's transport checksum partial: the field holds the folded
 * pseudo-header sum for `l4len` bytes of transport header and data
 * (tcp_v4_send_check), and csumStart/csumOffset say where the rest goes.
 */
export function setPartialChecksum(pkt: Packet, l4: number, csumOffset: number, src: number, dst: number, proto: number, l4len: number): void {
  const p = fold(pseudoHeaderSum(src, dst, proto, l4len));
  const b = pkt.buf;
  b[l4 + csumOffset] = p >> 8;
  b[l4 + csumOffset + 1] = p & 0xff;
  pkt.ipSummed = CHECKSUM_PARTIAL;
  pkt.csumStart = l4;
  pkt.csumOffset = csumOffset;
}

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/**
 * Cuts a super-packet (frame at pkt.start, its IP header at `l3`) into segments
 * of gsoSize payload bytes, written one after another into `arena` from `at`,
 * each after `pre` bytes that the caller fills (a virtio_net_hdr). Each
 * segment's frame (its `pre` bytes included) is pushed on `out`.
 *
 * TCP (tcp_gso_segment): every segment carries the headers with its own
 * sequence number; CWR only on the first, FIN and PSH only on the last. IPv4
 * (inet_gso_segment): total length per segment, the identification counting
 * up from the super-packet's, the header checksum anew. UDP (__udp_gso_segment):
 * each segment its own datagram with its own length. The transport checksum is
 * complete when `partial` is false, else left partial (the pseudo-header sum
 * for the segment's length) for a device that finishes it.
 *
 * Returns the arena offset after the last segment, or -1 when the packet can't
 * be cut (headers out of bounds, an unknown type) and must be dropped.
 */
export function gsoSegment(pkt: Packet, l3: number, arena: Uint8Array, at: number, pre: number, partial: boolean, out: Uint8Array[]): number {
  const b = pkt.buf;
  const end = pkt.end;
  const l4 = l4Of(b, l3, end);
  if (l4 < 0) return -1;
  const tcp = pkt.gsoType === GSO_TCPV4;
  if (!tcp && pkt.gsoType !== GSO_UDP_L4) return -1;
  if (b[l3 + 9] !== (tcp ? 6 : 17)) return -1;
  const thl = tcp ? (b[l4 + 12] >> 4) << 2 : 8;
  if (thl < (tcp ? 20 : 8) || l4 + thl > end) return -1;
  const hdrs = l4 + thl - pkt.start; // link + IP + transport header bytes
  const ipOff = l3 - pkt.start;
  const l4Off = l4 - pkt.start;
  const mss = pkt.gsoSize;
  let payload = end - (l4 + thl);
  if (mss <= 0 || payload <= 0) return -1;
  const src = ((b[l3 + 12] << 24) | (b[l3 + 13] << 16) | (b[l3 + 14] << 8) | b[l3 + 15]) >>> 0;
  const dst = ((b[l3 + 16] << 24) | (b[l3 + 17] << 16) | (b[l3 + 18] << 8) | b[l3 + 19]) >>> 0;
  let id = (b[l3 + 4] << 8) | b[l3 + 5];
  let seq = tcp ? ((b[l4 + 4] << 24) | (b[l4 + 5] << 16) | (b[l4 + 6] << 8) | b[l4 + 7]) >>> 0 : 0;
  const flags = tcp ? b[l4 + 13] : 0;
  const segs = Math.ceil(payload / mss);
  const need = at + segs * ((pre + hdrs + mss + 3) & ~3);
  if (need > arena.length) return -1;
  let from = l4 + thl;
  const proto = tcp ? 6 : 17;
  const csumAt = tcp ? 16 : 6;
  for (let i = 0; i < segs; i++) {
    const len = payload < mss ? payload : mss;
    const f = at + pre; // frame start
    arena.set(b.subarray(pkt.start, pkt.start + hdrs), f);
    arena.set(b.subarray(from, from + len), f + hdrs);
    const ip = f + ipOff;
    const t = f + l4Off;
    const tot = hdrs - ipOff + len;
    arena[ip + 2] = tot >> 8;
    arena[ip + 3] = tot & 0xff;
    arena[ip + 4] = id >> 8;
    arena[ip + 5] = id & 0xff;
    arena[ip + 10] = 0;
    arena[ip + 11] = 0;
    fillIpv4Checksum(arena, ip, l4Off - ipOff);
    const l4len = thl + len;
    if (tcp) {
      arena[t + 4] = seq >>> 24;
      arena[t + 5] = (seq >>> 16) & 0xff;
      arena[t + 6] = (seq >>> 8) & 0xff;
      arena[t + 7] = seq & 0xff;
      let fl = flags;
      if (i > 0) fl &= ~TCP_CWR;
      if (i < segs - 1) fl &= ~(TCP_FIN | TCP_PSH);
      arena[t + 13] = fl;
    } else {
      arena[t + 4] = l4len >> 8;
      arena[t + 5] = l4len & 0xff;
    }
    const ph = pseudoHeaderSum(src, dst, proto, l4len);
    if (partial) {
      const p = fold(ph);
      arena[t + csumAt] = p >> 8;
      arena[t + csumAt + 1] = p & 0xff;
    } else {
      arena[t + csumAt] = 0;
      arena[t + csumAt + 1] = 0;
      let c = ~fold(sum16(arena, t, l4len, ph)) & 0xffff;
      if (c === 0 && !tcp) c = 0xffff;
      arena[t + csumAt] = c >> 8;
      arena[t + csumAt + 1] = c & 0xff;
    }
    out.push(arena.subarray(at, f + hdrs + len));
    at = f + hdrs + len;
    // Keep every segment's start 4-aligned for the checksum's wide path.
    at = (at + 3) & ~3;
    from += len;
    payload -= len;
    seq = (seq + len) >>> 0;
    id = (id + 1) & 0xffff;
  }
  return at;
}

/** Bytes of headers (link + IP + transport) of a super-packet whose IP header is at `l3`, or -1. */
export function gsoHeaderLen(pkt: Packet, l3: number): number {
  const b = pkt.buf;
  const l4 = l4Of(b, l3, pkt.end);
  if (l4 < 0) return -1;
  const thl = pkt.gsoType === GSO_TCPV4 ? (b[l4 + 12] >> 4) << 2 : 8;
  return l4 + thl - pkt.start;
}

/**
 * skb_gso_validate_network_len: a super-packet (IP header at pkt.start) whose
 * every segment fits `mtu` is not fragmented; it is cut at the device.
 */
export function gsoFits(pkt: Packet, mtu: number): boolean {
  if (pkt.gsoSize === 0) return false;
  const hdrs = gsoHeaderLen(pkt, pkt.start);
  return hdrs > 0 && hdrs + pkt.gsoSize <= mtu;
}

/** A packet that is about to be fragmented or copied out as plain bytes: its checksum complete, no GSO. */
export function plainPacket(pkt: Packet): void {
  if (pkt.ipSummed === CHECKSUM_PARTIAL) finishChecksum(pkt);
  pkt.gsoSize = 0;
  pkt.gsoType = 0;
  pkt.gsoSegs = 0;
}
