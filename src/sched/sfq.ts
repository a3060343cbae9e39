/**
 * sfq: stochastic fairness queueing (net/sched/sch_sfq.c). Packets are
 * hashed by flow, with a perturbation that changes every `perturb` seconds,
 * into `divisor` buckets; each busy bucket owns one of `flows` slots of at
 * most `depth` packets; the busy slots are served round robin, `quantum`
 * bytes per turn. Over `limit`, a packet leaves the longest slot (its tail,
 * or its head with `headdrop`).
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_CN, NET_XMIT_DROP, NET_XMIT_SUCCESS, QdiscStats, TcParseError, type Qdisc, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { flowHash } from './flowhash.js';
import { getS32, getSize, getU32, illegal, incomplete, sprintSize } from './tcnum.js';
import { pktLen } from './qdisc.js';

/** SFQ_MAX_DEPTH, SFQ_MAX_FLOWS, SFQ_DEFAULT_FLOWS, SFQ_DEFAULT_HASH_DIVISOR. */
export const SFQ_MAX_DEPTH = 127;
export const SFQ_MAX_FLOWS = 0x10000 - SFQ_MAX_DEPTH - 1;
export const SFQ_DEFAULT_FLOWS = 128;
export const SFQ_DEFAULT_HASH_DIVISOR = 1024;

export interface SfqOpts {
  quantum?: number;
  /** Seconds. */
  perturb?: number;
  limit?: number;
  divisor?: number;
  flows?: number;
  depth?: number;
  headdrop?: boolean;
}

const USAGE =
  'Usage: ... sfq\t[ limit NUMBER ] [ perturb SECS ] [ quantum BYTES ]\n' +
  '\t\t[ divisor NUMBER ] [ flows NUMBER] [ depth NUMBER ]\n' +
  '\t\t[ headdrop ]\n' +
  '\t\t[ redflowlimit BYTES ] [ min BYTES ] [ max BYTES ]\n' +
  '\t\t[ avpkt BYTES ] [ burst PACKETS ] [ probability P ]\n' +
  '\t\t[ ecn ] [ harddrop ]';

function next(args: string[], i: number): string {
  if (i + 1 >= args.length) throw incomplete();
  return args[i + 1];
}

/** q_sfq.c sfq_parse_opt (without the RED options, which are refused). */
export function parseSfq(args: string[]): SfqOpts {
  const o: SfqOpts = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'quantum') {
      const v = getSize(next(args, i++));
      // q_sfq.c names "limit" here.
      if (v === null) throw illegal('Illegal "limit"');
      o.quantum = v;
    } else if (a === 'perturb') {
      const v = getS32(next(args, i++));
      if (v === null) throw illegal('Illegal "perturb"');
      o.perturb = v;
    } else if (a === 'limit') {
      const v = getU32(next(args, i++));
      if (v === null) throw illegal('Illegal "limit"');
      if (v < 2) throw illegal('Illegal "limit", must be > 1');
      o.limit = v;
    } else if (a === 'divisor') {
      const v = getU32(next(args, i++));
      if (v === null) throw illegal('Illegal "divisor"');
      o.divisor = v;
    } else if (a === 'flows') {
      const v = getU32(next(args, i++));
      if (v === null) throw illegal('Illegal "flows"');
      o.flows = v;
    } else if (a === 'depth') {
      const v = getU32(next(args, i++));
      // q_sfq.c names "flows" here.
      if (v === null) throw illegal('Illegal "flows"');
      o.depth = v;
    } else if (a === 'headdrop') o.headdrop = true;
    else if (['redflowlimit', 'min', 'max', 'burst', 'avpkt', 'probability', 'ecn', 'harddrop'].includes(a)) {
      throw new TcParseError(`Error: sfq RED mode ("${a}") is not supported.`, 2);
    } else if (a === 'help') throw new TcParseError(USAGE, 1);
    else throw new TcParseError(`What is "${a}"?\n${USAGE}`, 1);
  }
  return o;
}

const einval = (msg?: string): TcParseError =>
  new TcParseError(msg !== undefined ? `Error: sch_sfq: ${msg}.` : 'RTNETLINK answers: Invalid argument', 2);

class Slot {
  readonly q = new PktRing(4);
  /** Next active slot in the round robin ring. */
  next = -1;
  allot = 0;
  hash = 0;
}

export class SfqQdisc implements Qdisc {
  readonly kind = 'sfq';
  readonly stats = new QdiscStats();
  readonly classes = null;
  limit = SFQ_MAX_DEPTH;
  maxdepth = SFQ_MAX_DEPTH;
  maxflows = SFQ_DEFAULT_FLOWS;
  divisor = SFQ_DEFAULT_HASH_DIVISOR;
  quantum: number;
  headdrop = false;
  /** Seconds (0: no perturbation). */
  perturbPeriod = 0;
  perturbation: number;
  private nextPerturb = 0;
  private ht = new Int32Array(SFQ_DEFAULT_HASH_DIVISOR).fill(-1);
  private slots: Slot[] = [];
  private free: number[] = [];
  private tail = -1;
  private host: SchedHost;

  constructor(opts: SfqOpts, host: SchedHost, public handle: number, public parent: number) {
    this.host = host;
    this.quantum = host.mtu + host.hardHeaderLen;
    this.perturbation = this.newSeed(host);
    this.change(opts, host);
  }

  private newSeed(host: SchedHost): number {
    return Math.floor(host.random() * 4294967296) >>> 0;
  }

  // sch_sfq.c sfq_change: new slots and buckets (the queue must be empty to resize).
  change(params: unknown, host: SchedHost): void {
    const o = params as SfqOpts;
    this.host = host;
    if (o.divisor && (o.divisor & (o.divisor - 1) || o.divisor > 65536)) throw einval();
    if (o.perturb !== undefined && (o.perturb < 0 || o.perturb > 0x7fffffff / 1000)) throw einval('invalid perturb period');
    let limit = this.limit;
    let maxdepth = this.maxdepth;
    let maxflows = this.maxflows;
    let divisor = this.divisor;
    if (o.flows) maxflows = Math.min(o.flows, SFQ_MAX_FLOWS);
    if (o.divisor) divisor = o.divisor;
    if (o.depth) maxdepth = Math.min(o.depth, SFQ_MAX_DEPTH);
    if (o.limit) {
      limit = Math.min(o.limit, maxdepth * maxflows);
      maxflows = Math.min(maxflows, limit);
    }
    if (limit === 1) throw einval('invalid limit');
    if (o.quantum) this.quantum = o.quantum;
    if (o.perturb !== undefined) this.perturbPeriod = o.perturb;
    if (o.headdrop !== undefined) this.headdrop = o.headdrop;
    this.limit = limit;
    this.maxdepth = maxdepth;
    const resized = maxflows !== this.maxflows || divisor !== this.divisor || this.slots.length === 0;
    this.maxflows = maxflows;
    this.divisor = divisor;
    if (resized) {
      const queued: Packet[] = [];
      for (const s of this.slots) for (let p = s.q.shift(); p !== null; p = s.q.shift()) queued.push(p);
      this.ht = new Int32Array(divisor).fill(-1);
      this.slots = [];
      this.free = [];
      for (let i = 0; i < maxflows; i++) this.slots.push(new Slot());
      for (let i = maxflows - 1; i >= 0; i--) this.free.push(i);
      this.tail = -1;
      this.stats.qlen = 0;
      this.stats.backlog = 0;
      for (const p of queued) this.requeue(p, host);
    }
    this.nextPerturb = this.perturbPeriod ? host.now() + this.perturbPeriod * 1e9 : 0;
    // Over the new limit: sfq_drop until it fits.
    while (this.stats.qlen > this.limit) this.dropLongest();
  }

  private bucket(pkt: Packet, host: SchedHost): number {
    return flowHash(pkt, host, this.perturbation) & (this.divisor - 1);
  }

  /** sfq_rehash's re-enqueue, and resizing: no counters but the queue's. */
  private requeue(pkt: Packet, host: SchedHost): void {
    const hash = this.bucket(pkt, host);
    let x = this.ht[hash];
    if (x < 0) {
      if (this.free.length === 0) {
        pkt.sent();
        return;
      }
      x = this.free.pop() as number;
      this.ht[hash] = x;
      this.slots[x].hash = hash;
    }
    const slot = this.slots[x];
    if (slot.q.length >= this.maxdepth) {
      pkt.sent();
      return;
    }
    this.link(x, pkt);
    this.stats.qlen++;
  }

  /** Adds to a slot; a slot that was empty joins the ring behind the tail. */
  private link(x: number, pkt: Packet): void {
    const slot = this.slots[x];
    slot.q.push(pkt, 0);
    this.stats.backlog += pktLen(pkt);
    if (slot.q.length === 1) {
      if (this.tail < 0) slot.next = x;
      else {
        slot.next = this.slots[this.tail].next;
        this.slots[this.tail].next = x;
      }
      this.tail = x;
      slot.allot = this.quantum;
    }
  }

  private maybePerturb(host: SchedHost): void {
    if (this.nextPerturb === 0 || host.now() < this.nextPerturb) return;
    // sfq_perturbation: a new seed, and the queued packets rehashed.
    const period = this.perturbPeriod * 1e9;
    while (this.nextPerturb <= host.now()) this.nextPerturb += period;
    this.perturbation = this.newSeed(host);
    if (this.tail < 0) return;
    const queued: Packet[] = [];
    for (let i = 0; i < this.maxflows; i++) {
      const s = this.slots[i];
      if (s.q.length === 0) continue;
      for (let p = s.q.shift(); p !== null; p = s.q.shift()) queued.push(p);
      this.ht[s.hash] = -1;
      this.free.push(i);
    }
    this.tail = -1;
    this.stats.qlen = 0;
    this.stats.backlog = 0;
    for (const p of queued) this.requeue(p, host);
  }

  /** Removes slot `x` (empty now) from the ring; `prev` is the slot before it. */
  private unlinkEmpty(x: number, prev: number): void {
    const slot = this.slots[x];
    this.ht[slot.hash] = -1;
    this.free.push(x);
    if (slot.next === x) this.tail = -1;
    else {
      this.slots[prev].next = slot.next;
      if (this.tail === x) this.tail = prev;
    }
  }

  /** sfq_drop: one packet from the longest slot. */
  private dropLongest(): number {
    let x = -1;
    let d = 0;
    for (let i = 0; i < this.maxflows; i++) {
      if (this.slots[i].q.length > d) {
        d = this.slots[i].q.length;
        x = i;
      }
    }
    if (x < 0) return 0;
    // All slots one packet long: the one after the tail goes (sfq_drop).
    if (d === 1) x = this.slots[this.tail].next;
    const slot = this.slots[x];
    const p = (this.headdrop ? slot.q.shift() : slot.q.pop()) as Packet;
    const len = pktLen(p);
    this.stats.qlen--;
    this.stats.backlog -= len;
    this.stats.drops++;
    p.sent();
    if (slot.q.length === 0) {
      // All slots were one packet long: the one after the tail goes.
      let prev = this.tail;
      while (this.slots[prev].next !== x) prev = this.slots[prev].next;
      this.unlinkEmpty(x, prev);
    }
    return len;
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    this.maybePerturb(host);
    const hash = this.bucket(pkt, host);
    let x = this.ht[hash];
    if (x < 0) {
      if (this.free.length === 0) {
        this.stats.drops++;
        pkt.sent();
        return NET_XMIT_DROP;
      }
      x = this.free.pop() as number;
      this.ht[hash] = x;
      this.slots[x].hash = hash;
    } else if (this.slots[x].q.length >= this.maxdepth) {
      const slot = this.slots[x];
      if (!this.headdrop) {
        this.stats.drops++;
        pkt.sent();
        return NET_XMIT_DROP;
      }
      // headdrop: the oldest packet of the flow makes room.
      const head = slot.q.shift() as Packet;
      this.stats.backlog -= pktLen(head);
      this.stats.drops++;
      head.sent();
      slot.q.push(pkt, 0);
      this.stats.backlog += pktLen(pkt);
      return NET_XMIT_CN;
    }
    const slot = this.slots[x];
    this.link(x, pkt);
    if (++this.stats.qlen <= this.limit) return NET_XMIT_SUCCESS;
    const before = slot.q.length;
    this.dropLongest();
    // Congestion notification only if this flow lost a packet.
    return before !== slot.q.length ? NET_XMIT_CN : NET_XMIT_SUCCESS;
  }

  dequeue(host: SchedHost): Packet | null {
    this.maybePerturb(host);
    if (this.tail < 0) return null;
    for (;;) {
      const a = this.slots[this.tail].next;
      const slot = this.slots[a];
      if (slot.allot <= 0) {
        this.tail = a;
        slot.allot += this.quantum;
        continue;
      }
      const p = slot.q.shift() as Packet;
      const len = pktLen(p);
      this.stats.qlen--;
      this.stats.backlog -= len;
      this.stats.packets++;
      this.stats.bytes += len;
      if (slot.q.length === 0) this.unlinkEmpty(a, this.tail);
      else slot.allot -= len;
      return p;
    }
  }

  peek(): Packet | null {
    // The packet dequeue would take, without touching the allotments: pass k
    // around the ring sees every slot's allotment raised by k quanta.
    if (this.tail < 0) return null;
    const start = this.slots[this.tail].next;
    for (let k = 0; ; k++) {
      let a = start;
      do {
        if (this.slots[a].allot + k * this.quantum > 0) return this.slots[a].q.peek();
        a = this.slots[a].next;
      } while (a !== start);
    }
  }

  reset(): void {
    for (const s of this.slots) for (let p = s.q.shift(); p !== null; p = s.q.shift()) p.sent();
    this.ht.fill(-1);
    this.free = [];
    for (let i = this.maxflows - 1; i >= 0; i--) this.free.push(i);
    this.tail = -1;
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  printOptions(details: boolean): string {
    // q_sfq.c sfq_print_opt over what sfq_dump sends.
    let s = `limit ${this.limit}p quantum ${sprintSize(this.quantum)} `;
    if (this.maxdepth) s += `depth ${this.maxdepth} `;
    if (this.headdrop) s += 'headdrop ';
    if (details) s += `flows ${this.maxflows} `;
    s += `divisor ${this.divisor} `;
    if (this.perturbPeriod) s += `perturb ${this.perturbPeriod}sec `;
    return s;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    const o: Record<string, unknown> = { limit: this.limit, quantum: this.quantum, depth: this.maxdepth };
    if (this.headdrop) o.headdrop = true;
    // (tc -j shows flows only with -d; the kind is not told.)
    o.divisor = this.divisor;
    if (this.perturbPeriod) o.perturb = this.perturbPeriod;
    return o;
  }

  jsonXstats(): Record<string, unknown> | null {
    return null;
  }
}

export const sfqKind: QdiscKind = {
  name: 'sfq',
  parse: (args) => parseSfq(args),
  create: (params, host, handle, parent) => new SfqQdisc(params as SfqOpts, host, handle, parent),
};
