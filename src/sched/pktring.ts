/**
 * The qdiscs' packet queue: a growable ring (a power of two long), O(1) at
 * both ends, with a time beside each packet for the kinds that need one (the
 * enqueue time for CoDel, the departure time for netem: the qdisc's part of
 * the kernel's skb->cb, kept outside the packet so the packet layer stays
 * untouched). Nothing is allocated once the ring has grown.
 */
import type { Packet } from '../packet/packet.js';
import { pktLen } from './qdisc.js';

export class PktRing {
  private pkts: (Packet | null)[];
  private times: Float64Array;
  private head = 0;
  length = 0;
  /** Sum of qdisc_pkt_len of the queued packets. */
  bytes = 0;

  constructor(capacity = 16) {
    let n = 1;
    while (n < capacity) n *= 2;
    this.pkts = new Array<Packet | null>(n).fill(null);
    this.times = new Float64Array(n);
  }

  private grow(): void {
    const cap = this.pkts.length * 2;
    const p = new Array<Packet | null>(cap).fill(null);
    const t = new Float64Array(cap);
    for (let i = 0; i < this.length; i++) {
      const j = (this.head + i) & (this.pkts.length - 1);
      p[i] = this.pkts[j];
      t[i] = this.times[j];
    }
    this.pkts = p;
    this.times = t;
    this.head = 0;
  }

  private idx(i: number): number {
    return (this.head + i) & (this.pkts.length - 1);
  }

  push(pkt: Packet, time = 0): void {
    if (this.length === this.pkts.length) this.grow();
    const j = this.idx(this.length);
    this.pkts[j] = pkt;
    this.times[j] = time;
    this.length++;
    this.bytes += pktLen(pkt);
  }

  unshift(pkt: Packet, time: number): void {
    if (this.length === this.pkts.length) this.grow();
    this.head = (this.head - 1) & (this.pkts.length - 1);
    this.pkts[this.head] = pkt;
    this.times[this.head] = time;
    this.length++;
    this.bytes += pktLen(pkt);
  }

  /**
   * Inserts in time order, after every packet with a time <= `time` (so equal
   * times stay first-in first-out), walking from the tail: netem's tfifo.
   */
  insertByTime(pkt: Packet, time: number): void {
    if (this.length === 0 || this.times[this.idx(this.length - 1)] <= time) {
      this.push(pkt, time);
      return;
    }
    if (this.length === this.pkts.length) this.grow();
    let i = this.length;
    while (i > 0 && this.times[this.idx(i - 1)] > time) {
      const from = this.idx(i - 1);
      const to = this.idx(i);
      this.pkts[to] = this.pkts[from];
      this.times[to] = this.times[from];
      i--;
    }
    const j = this.idx(i);
    this.pkts[j] = pkt;
    this.times[j] = time;
    this.length++;
    this.bytes += pktLen(pkt);
  }

  peek(): Packet | null {
    return this.length === 0 ? null : this.pkts[this.head];
  }

  peekTime(): number {
    return this.times[this.head];
  }

  lastTime(): number {
    return this.times[this.idx(this.length - 1)];
  }

  shift(): Packet | null {
    if (this.length === 0) return null;
    const p = this.pkts[this.head] as Packet;
    this.pkts[this.head] = null;
    this.head = (this.head + 1) & (this.pkts.length - 1);
    this.length--;
    this.bytes -= pktLen(p);
    return p;
  }

  pop(): Packet | null {
    if (this.length === 0) return null;
    const j = this.idx(this.length - 1);
    const p = this.pkts[j] as Packet;
    this.pkts[j] = null;
    this.length--;
    this.bytes -= pktLen(p);
    return p;
  }

  /** Packet i from the head (0 = oldest). */
  at(i: number): Packet {
    return this.pkts[this.idx(i)] as Packet;
  }

  /** Empties the queue, handing each packet to `fn`. */
  drain(fn: (p: Packet) => void): void {
    let p: Packet | null;
    while ((p = this.shift()) !== null) fn(p);
  }
}
