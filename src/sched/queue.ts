import type { Packet } from '../packet/packet.js';

/** A FIFO of packets (a ring that grows): O(1) at both ends, no allocation once grown. */
export class PacketQueue {
  private ring: (Packet | null)[] = new Array<Packet | null>(16).fill(null);
  private head = 0;
  length = 0;
  /** Bytes queued (qdisc_pkt_len of each). */
  bytes = 0;

  push(p: Packet): void {
    if (this.length === this.ring.length) this.grow();
    this.ring[(this.head + this.length) & (this.ring.length - 1)] = p;
    this.length++;
    this.bytes += p.end - p.start;
  }

  peek(): Packet | null {
    return this.length === 0 ? null : this.ring[this.head];
  }

  shift(): Packet | null {
    if (this.length === 0) return null;
    const p = this.ring[this.head]!;
    this.ring[this.head] = null;
    this.head = (this.head + 1) & (this.ring.length - 1);
    this.length--;
    this.bytes -= p.end - p.start;
    return p;
  }

  /** Takes the newest packet (head drop from the tail end). */
  pop(): Packet | null {
    if (this.length === 0) return null;
    const i = (this.head + this.length - 1) & (this.ring.length - 1);
    const p = this.ring[i]!;
    this.ring[i] = null;
    this.length--;
    this.bytes -= p.end - p.start;
    return p;
  }

  /** Packet i from the head (0 = oldest). */
  at(i: number): Packet {
    return this.ring[(this.head + i) & (this.ring.length - 1)]!;
  }

  /** Empties the queue, handing each packet to `fn`. */
  drain(fn: (p: Packet) => void): void {
    let p: Packet | null;
    while ((p = this.shift()) !== null) fn(p);
  }

  private grow(): void {
    const n = this.ring.length;
    const r = new Array<Packet | null>(n * 2).fill(null);
    for (let i = 0; i < this.length; i++) r[i] = this.ring[(this.head + i) & (n - 1)];
    this.ring = r;
    this.head = 0;
  }
}
