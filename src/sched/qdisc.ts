/**
 * Queueing disciplines: the contract between the egress path (sched.ts, one
 * root qdisc per Interface between IP output and the device), the qdisc kinds
 * (one module each, registered in kinds.ts) and `tc` (src/control/tc*.ts).
 *
 * Time is the stack clock in nanoseconds (a float: exact to the ns for 104
 * days). Rates are bytes per second; a kind computes departure times from the
 * clock, never by counting timer ticks.
 */
import type { Packet } from '../packet/packet.js';
import type { FilterList } from './filter.js';
import type { SizeTable } from './stab.js';
import type { RateEstimator } from './estimator.js';

export type Ns = number;

/** Return values of enqueue (NET_XMIT_*). */
export const NET_XMIT_SUCCESS = 0;
export const NET_XMIT_DROP = 1;
export const NET_XMIT_CN = 2;

/** Handles as Linux packs them: major << 16 | minor. */
export const TC_H_ROOT = 0xffffffff;
export const TC_H_INGRESS = 0xfffffff1;
export const TC_H_UNSPEC = 0;
/** clsact shares ingress's parent; its two hook points are ffff:fff2 (ingress) and ffff:fff3 (egress). */
export const TC_H_CLSACT = TC_H_INGRESS;
export const TC_H_MIN_INGRESS = 0xfff2;
export const TC_H_MIN_EGRESS = 0xfff3;
export const tcHandle = (major: number, minor: number): number => ((major << 16) | minor) >>> 0;
export const tcMajor = (h: number): number => h >>> 16;
export const tcMinor = (h: number): number => h & 0xffff;

/** gnet_stats_basic + gnet_stats_queue, as `tc -s` prints them. */
export class QdiscStats {
  bytes = 0;
  packets = 0;
  drops = 0;
  overlimits = 0;
  requeues = 0;
  /** Bytes and packets queued now. */
  backlog = 0;
  qlen = 0;
}

/** What a qdisc needs from the device it sits on. */
export interface SchedHost {
  now(): Ns;
  random(): number;
  /**
   * The qdisc holds packets it may not send before `at`: dequeue is tried
   * again then (one timer per device, the earliest request wins;
   * qdisc_watchdog_schedule_ns).
   */
  watchdog(at: Ns): void;
  /** Device MTU (without the link header) and link header length. */
  readonly mtu: number;
  readonly hardHeaderLen: number;
  readonly txQueueLen: number;
  /** The device's name (messages). */
  readonly devName: string;
  /** The link's speed in Mbit/s as /sys/class/net/DEV/speed gives it (tc's `rate N%`), or null when unknown. */
  readonly speedMbit?: number | null;
}

/**
 * One qdisc instance. Lengths are qdisc_pkt_len: the frame's bytes with the
 * link header (pkt.end - pkt.start at enqueue time).
 */
export interface Qdisc {
  readonly kind: string;
  handle: number;
  parent: number;
  readonly stats: QdiscStats;
  /** Takes `pkt` or drops it (counting the drop and calling pkt.sent()). */
  enqueue(pkt: Packet, host: SchedHost): number;
  /** The next packet allowed to leave now, or null (then watchdog() was called if packets wait). */
  dequeue(host: SchedHost): Packet | null;
  /** The packet dequeue would return, without taking it (qdisc_peek_dequeued). */
  peek(host: SchedHost): Packet | null;
  /** Drops everything queued (counted as drops only where Linux counts them). */
  reset(): void;
  /** `tc qdisc change|replace` with the same kind: new parameters (from the kind's parse). */
  change(params: unknown, host: SchedHost): void;
  /** Options as `tc qdisc show` prints them after the handle and parent (q_KIND.c print_opt), no leading space. */
  printOptions(details: boolean): string;
  /** Extra `tc -s` lines after the standard ones (print_xstats), each ending in '\n'; '' if none. */
  printXstats(): string;
  /** `tc -j`: the "options" object (`details`: as with -d), and the xstats fields to merge (or null). */
  jsonOptions(details?: boolean): Record<string, unknown>;
  jsonXstats(): Record<string, unknown> | null;
  /** Classful kinds: their classes and child qdiscs (null for classless). */
  readonly classes: QdiscClasses | null;
  /** `tc qdisc ... stab ...`: the size table (stab.ts; set by tc, applied at the root only, as __dev_xmit_skb does). */
  stab?: SizeTable | null;
  /** `tc qdisc ... estimator I T`: the rate estimator over stats (estimator.ts), or none. */
  est?: RateEstimator | null;
  /**
   * Optional: how many more full-size packets (mtu + link header) the qdisc
   * takes before it drops, and how many it takes when empty (TCP paces itself
   * on them through Interface.txRoom/txCapacity, keeping a reserve for other
   * traffic). Without them: txqueuelen less the packets queued, txqueuelen.
   */
  room?(host: SchedHost): number;
  capacity?(host: SchedHost): number;
}

/**
 * qdisc_pkt_len: the length a qdisc accounts for a packet, set by the egress
 * path (and by a size table) before enqueue; a packet enqueued without it
 * counts its bytes.
 */
export function pktLen(pkt: Packet): number {
  return pkt.qlen > 0 ? pkt.qlen : pkt.end - pkt.start;
}

/** Counts a drop on `q` and gives the packet back (qdisc_drop). */
export function qdiscDrop(q: Qdisc, pkt: Packet): number {
  q.stats.drops++;
  pkt.sent();
  return NET_XMIT_DROP;
}

/** A classful qdisc's side (prio, htb): classes with leaf qdiscs, and filters. */
export interface QdiscClasses {
  /** classid → leaf qdisc (a class may hold one). */
  leaf(classid: number): Qdisc | null;
  graft(classid: number, q: Qdisc | null, host: SchedHost): void;
  list(): number[];
  /** Optional: cops->find, whether `classid` names a class (without it: a class of list() or one with a leaf). */
  find?(classid: number): boolean;
  /**
   * Optional, for kinds whose classes tc configures (htb): `tc class
   * add|change|replace` with the kind's arguments; returns the kernel's
   * warning for stderr ('' if none), or throws TcParseError.
   */
  changeClass?(classid: number, parent: number, args: string[], host: SchedHost, create: boolean): string;
  /** `tc class del`. */
  deleteClass?(classid: number): void;
  /** `tc [-s] [-d] class show`: one entry per class in dump order (classid 0: all), each ending '\n'. */
  showClasses?(details: boolean, stats: boolean, classid: number): string;
  /** The filters at `classid` (the qdisc's own for minor 0), made when `create`; null if there are none or no such class. */
  filterList?(classid: number, create: boolean, host: SchedHost): FilterList | null;
}

/**
 * tc's ingress hook (net/core/dev.c sch_handle_ingress): sees each received
 * IPv4 packet (IP header at pkt.start) before the IP layer; true when it
 * consumed the packet (a filter's action dropped or stole it).
 */
export interface IngressHook {
  ingress(pkt: Packet): boolean;
}

/** clsact's egress hook (net/core/dev.c sch_handle_egress): true when it consumed the packet. */
export interface EgressHook {
  egress(pkt: Packet): boolean;
}

/** One kind: its name, how tc's arguments are read, how an instance is made. */
export interface QdiscKind {
  readonly name: string;
  /** Reads the kind's arguments (tc's parse_qopt), or throws TcParseError. */
  parse(args: string[], host: SchedHost): unknown;
  create(params: unknown, host: SchedHost, handle: number, parent: number): Qdisc;
}

/** A tc argument that does not parse: tc's exit code and message. */
export class TcParseError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
