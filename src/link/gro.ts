/**
 * Generic receive offload for TCP over IPv4, per interface and per receive
 * batch: consecutive in-order segments of one flow are held until the batch
 * ends (or the flow can't grow) and handed up as one super-packet, as Linux's
 * napi_gro_receive does for a device's poll. The rules are
 * inet_gro_receive's and tcp_gro_receive's (net/ipv4/af_inet.c,
 * net/ipv4/tcp_offload.c):
 *
 * - only an IPv4 header without options (0x45), not a fragment, with a
 *   correct header checksum and a correct TCP checksum (or one the device
 *   vouched for);
 * - one flow: addresses and ports; TTL, TOS and DF equal; the IP ID counting
 *   up by one per segment, or fixed while DF is set;
 * - the same ACK number and byte-identical TCP options (timestamps
 *   included: a new TSval ends the merge); flags equal apart from CWR, FIN
 *   and PSH, and CWR in a later segment ends it;
 * - the segment starts where the held data ends, carries data, and is not
 *   longer than the first (gso_size); a shorter one, or one with PSH, FIN,
 *   URG, RST or SYN, is merged last; a segment with no data is never held;
 * - at most 64 KB of IP datagram.
 *
 * A merged packet is CHECKSUM_PARTIAL with gso_size = the first segment's
 * payload (tcp4_gro_complete), so forwarding it out a device with TSO passes
 * it whole and anything else cuts it again. As in Linux, GRO runs before tc
 * ingress and netfilter: rules and conntrack see the merged packet once; a
 * link where every segment must be seen turns it off (`gro off`).
 */
import { CHECKSUM_NONE, GSO_TCPV4, Packet } from '../packet/packet.js';
import { clearList } from '../packet/list.js';
import { fold, pseudoHeaderSum, sum16 } from '../wire/checksum.js';
import { fillIpv4Checksum } from '../wire/ipv4.js';
import type { Offloads } from './offload.js';

const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_PSH = 0x08;
const TCP_URG = 0x20;
const TCP_CWR = 0x80;
/** Held flows per interface (Linux: MAX_GRO_SKBS = 8 per bucket). */
const MAX_FLOWS = 8;
/** Bytes before the IP header of a merged packet: Ethernet and a virtio_net_hdr fit, TCP stays 4-aligned. */
const HEADROOM = 32;
const ARENA = 1 << 20;

class Flow {
  readonly pkts: Packet[] = [];
  src = 0;
  dst = 0;
  ports = 0;
  /** Payload bytes held and the next sequence number expected. */
  len = 0;
  nextSeq = 0;
  /** The first segment's payload length (gso_size). */
  mss = 0;
  /** IP ID of the first segment; whether the IDs stay fixed. */
  id = 0;
  fixedId = false;
  thl = 0;
}

export interface GroOwner {
  readonly offload: Offloads;
}

export class Gro {
  private readonly flows: Flow[] = [];
  private readonly free: Flow[] = [];
  private arena = new Uint8Array(0);
  private arenaAt = 0;

  constructor(
    private readonly owner: GroOwner,
    /** Hands a packet (IP header at `start`) on up. */
    private readonly deliver: (pkt: Packet) => void,
  ) {
    for (let i = 0; i < MAX_FLOWS; i++) this.free.push(new Flow());
  }

  receive(pkt: Packet): void {
    if (!this.owner.offload.gro) return this.deliver(pkt);
    const b = pkt.buf;
    const o = pkt.start;
    const len = pkt.end - o;
    // inet_gro_receive: 0x45 only, TCP, not a fragment, the IP checksum right.
    if (len < 40 || b[o] !== 0x45 || b[o + 9] !== 6 || ((b[o + 6] & 0x3f) | b[o + 7]) !== 0) return this.pass(pkt);
    const tot = (b[o + 2] << 8) | b[o + 3];
    const t = o + 20;
    const thl = (b[t + 12] >> 4) << 2;
    const src = ((b[o + 12] << 24) | (b[o + 13] << 16) | (b[o + 14] << 8) | b[o + 15]) >>> 0;
    const dst = ((b[o + 16] << 24) | (b[o + 17] << 16) | (b[o + 18] << 8) | b[o + 19]) >>> 0;
    const ports = ((b[t] << 24) | (b[t + 1] << 16) | (b[t + 2] << 8) | b[t + 3]) >>> 0;
    const f = this.find(src, dst, ports);
    if (tot !== len || thl < 20 || 20 + thl > len || pkt.gsoSize !== 0 || fold(sum16(b, o, 20)) !== 0xffff) {
      if (f !== null) this.flushFlow(f);
      return this.deliver(pkt);
    }
    const dataLen = len - 20 - thl;
    // tcp4_gro_receive: a segment whose checksum fails is not merged; TCP drops and counts it.
    if (dataLen === 0 || (pkt.ipSummed === CHECKSUM_NONE && fold(sum16(b, t, len - 20, pseudoHeaderSum(src, dst, 6, len - 20))) !== 0xffff)) {
      if (f !== null) this.flushFlow(f);
      return this.deliver(pkt);
    }
    const flags = b[t + 13];
    const seq = ((b[t + 4] << 24) | (b[t + 5] << 16) | (b[t + 6] << 8) | b[t + 7]) >>> 0;
    const last = (flags & (TCP_URG | TCP_PSH | TCP_RST | TCP_SYN | TCP_FIN)) !== 0;
    if (f !== null) {
      if (this.canMerge(f, b, o, t, thl, flags, seq, dataLen)) {
        f.pkts.push(pkt);
        f.len += dataLen;
        f.nextSeq = (seq + dataLen) >>> 0;
        if (last || dataLen < f.mss) this.flushFlow(f);
        return;
      }
      this.flushFlow(f);
    }
    if (last) return this.deliver(pkt);
    this.hold(pkt, src, dst, ports, seq, dataLen, thl, (b[o + 4] << 8) | b[o + 5]);
  }

  /** A packet GRO does not take: its flow (if held) goes first, keeping the flow's order. */
  private pass(pkt: Packet): void {
    const b = pkt.buf;
    const o = pkt.start;
    if (this.flows.length > 0 && pkt.end - o >= 24 && b[o + 9] === 6 && b[o] >> 4 === 4) {
      const hl = (b[o] & 0x0f) << 2;
      if (pkt.end - o >= hl + 4) {
        const src = ((b[o + 12] << 24) | (b[o + 13] << 16) | (b[o + 14] << 8) | b[o + 15]) >>> 0;
        const dst = ((b[o + 16] << 24) | (b[o + 17] << 16) | (b[o + 18] << 8) | b[o + 19]) >>> 0;
        const t = o + hl;
        const f = this.find(src, dst, ((b[t] << 24) | (b[t + 1] << 16) | (b[t + 2] << 8) | b[t + 3]) >>> 0);
        if (f !== null) this.flushFlow(f);
      }
    }
    this.deliver(pkt);
  }

  private find(src: number, dst: number, ports: number): Flow | null {
    const fl = this.flows;
    for (let i = 0; i < fl.length; i++) {
      const f = fl[i];
      if (f.ports === ports && f.src === src && f.dst === dst) return f;
    }
    return null;
  }

  private canMerge(f: Flow, b: Uint8Array, o: number, t: number, thl: number, flags: number, seq: number, dataLen: number): boolean {
    const p = f.pkts[0];
    const pb = p.buf;
    const po = p.start;
    const pt = po + 20;
    if (thl !== f.thl) return false;
    // Network: TTL, TOS, DF equal; IDs counting up (or fixed under DF).
    if (b[o + 8] !== pb[po + 8] || b[o + 1] !== pb[po + 1] || (b[o + 6] & 0x40) !== (pb[po + 6] & 0x40)) return false;
    const id = (b[o + 4] << 8) | b[o + 5];
    const count = f.pkts.length;
    if (id !== ((f.id + count) & 0xffff)) {
      if (!((b[o + 6] & 0x40) !== 0 && id === f.id && (count === 1 || f.fixedId))) return false;
      f.fixedId = true;
    } else if (f.fixedId) return false;
    // Transport: CWR ends a merge; other flags but FIN/PSH equal; same ACK; same options.
    if ((flags & TCP_CWR) !== 0) return false;
    if (((flags ^ pb[pt + 13]) & ~(TCP_CWR | TCP_FIN | TCP_PSH)) !== 0) return false;
    for (let i = 8; i < 12; i++) if (b[t + i] !== pb[pt + i]) return false;
    for (let i = 20; i < thl; i++) if (b[t + i] !== pb[pt + i]) return false;
    if (dataLen > f.mss) return false;
    if (seq !== f.nextSeq) return false;
    // gro_max_size: the merged datagram fits 64 KB.
    if (20 + thl + f.len + dataLen > 0xffff) return false;
    return true;
  }

  private hold(pkt: Packet, src: number, dst: number, ports: number, seq: number, dataLen: number, thl: number, id: number): void {
    if (this.free.length === 0) this.flushFlow(this.flows[0]);
    const f = this.free.pop()!;
    f.src = src;
    f.dst = dst;
    f.ports = ports;
    f.len = dataLen;
    f.mss = dataLen;
    f.nextSeq = (seq + dataLen) >>> 0;
    f.id = id;
    f.fixedId = false;
    f.thl = thl;
    f.pkts.push(pkt);
    this.flows.push(f);
  }

  /** The batch ended: every held flow goes up. */
  flush(): void {
    while (this.flows.length > 0) this.flushFlow(this.flows[0]);
    this.arenaAt = 0;
  }

  private flushFlow(f: Flow): void {
    // Out of the list in order, without splice's array of removed elements.
    const fl = this.flows;
    for (let i = fl.indexOf(f); i < fl.length - 1; i++) fl[i] = fl[i + 1];
    fl.pop();
    this.free.push(f);
    const pkts = f.pkts;
    if (pkts.length === 1) {
      const p = pkts[0];
      clearList(pkts);
      return this.deliver(p);
    }
    const merged = this.merge(f);
    clearList(pkts);
    this.deliver(merged);
  }

  /** tcp_gro_complete: one packet of the flow's headers and all its data. */
  private merge(f: Flow): Packet {
    const pkts = f.pkts;
    const first = pkts[0];
    const hdrs = 20 + f.thl;
    const size = HEADROOM + hdrs + f.len;
    let at = this.arenaAt;
    if (at + size > this.arena.length) {
      // Packets merged earlier in this batch keep the old arena alive.
      this.arena = new Uint8Array(Math.max(ARENA, size));
      at = 0;
    }
    const a = this.arena;
    const o = at + HEADROOM;
    a.set(first.buf.subarray(first.start, first.start + hdrs), o);
    let w = o + hdrs;
    let fl = 0;
    for (let i = 0; i < pkts.length; i++) {
      const p = pkts[i];
      a.set(p.buf.subarray(p.start + hdrs, p.end), w);
      w += p.end - p.start - hdrs;
      fl |= p.buf[p.start + 33];
    }
    this.arenaAt = (w + 63) & ~63;
    const tot = hdrs + f.len;
    a[o + 2] = tot >> 8;
    a[o + 3] = tot & 0xff;
    fillIpv4Checksum(a, o, 20);
    const t = o + 20;
    // The first segment's flags, with FIN and PSH of those merged after it.
    a[t + 13] |= fl & (TCP_FIN | TCP_PSH);
    // tcp4_gro_complete: the checksum field holds the pseudo-header sum; the rest is partial.
    const ph = fold(pseudoHeaderSum(f.src, f.dst, 6, tot - 20));
    a[t + 16] = ph >> 8;
    a[t + 17] = ph & 0xff;
    const m = new Packet(a, o, o + tot);
    m.ifindex = first.ifindex;
    m.linkBroadcast = first.linkBroadcast;
    m.ipSummed = 3; // CHECKSUM_PARTIAL
    m.csumStart = t;
    m.csumOffset = 16;
    m.gsoSize = f.mss;
    m.gsoType = GSO_TCPV4;
    m.gsoSegs = pkts.length;
    const off = this.owner.offload;
    off.groPackets++;
    off.groMergedSegments += pkts.length;
    return m;
  }
}
