/**
 * HTB, the hierarchical token bucket (net/sched/sch_htb.c): classes with a
 * guaranteed `rate` that may borrow from their parents up to `ceil`, served
 * level by level, by priority within a level and by deficit round robin
 * (quantum) within a priority; a direct queue for unclassified packets.
 *
 * Tokens are kept in nanoseconds of transmission time, as the kernel keeps
 * them: a class earns 1 ns per ns elapsed (capped at its buffer) and pays
 * len * 1e9 / rate per packet (psched_l2t_ns).
 */
import type { Packet } from '../packet/packet.js';
import {
  NET_XMIT_DROP,
  NET_XMIT_SUCCESS,
  type Ns,
  type Qdisc,
  type QdiscClasses,
  QdiscStats,
  type SchedHost,
  TcParseError,
  tcHandle,
  tcMajor,
  tcMinor,
} from './qdisc.js';
import { FilterList, TC_ACT_SHOT, TC_ACT_STOLEN, U32Common } from './filter.js';
import { fmtRate, fmtSize, parseRate, parseSize, psched } from './tcunits-htb.js';
import { getPercentRate64 } from './units.js';
import { pktLen } from './qdisc.js';
import { getLinklayer, LINKLAYER_ETHERNET, linklayerName, rateLen } from './stab.js';

/** sch_htb.c: TC_HTB_MAXDEPTH, TC_HTB_NUMPRIO. */
export const HTB_MAXDEPTH = 8;
export const HTB_NUMPRIO = 8;
/** sch_htb.c: cl->mbuffer = 60 s, the most a class can lag behind. */
const MBUFFER: Ns = 60e9;

const HTB_CANT_SEND = 0;
const HTB_MAY_BORROW = 1;
const HTB_CAN_SEND = 2;

export interface HtbQdiscParams {
  defcls: number;
  r2q: number;
  directQlen: number | null;
}

export interface HtbClassParams {
  /** Bytes per second. */
  rate: number;
  ceil: number;
  /** Burst and cburst as tc sends them: psched ticks (64 ns). */
  bufferTicks: number;
  cbufferTicks: number;
  prio: number;
  quantum: number;
  /** mpu, overhead and the link layer (LINKLAYER_*) rate and ceil are charged with (psched_l2t_ns). */
  mpu: number;
  overhead: number;
  linklayer: number;
  /** The mtu tc built the rate tables for (their cell size). */
  mtu: number;
}

const HTB_USAGE = `Usage: ... qdisc add ... htb [default N] [r2q N]
                      [direct_qlen P] [offload]
 default  minor id of class to which unclassified packets are sent {0}
 r2q      DRR quantums are computed as rate in Bps/r2q {10}
 debug    string of 16 numbers each 0-3 {0}

 direct_qlen  Limit of the direct queue {in packets}
 offload  enable hardware offload
... class add ... htb rate R1 [burst B1] [mpu B] [overhead O]
                      [prio P] [slot S] [pslot PS]
                      [ceil R2] [cburst B2] [mtu MTU] [quantum Q]
 rate     rate allocated to this class (class can still borrow)
 burst    max bytes burst which can be accumulated during idle period {computed}
 mpu      minimum packet size used in rate computations
 overhead per-packet size overhead used in rate computations
 linklay  adapting to a linklayer e.g. atm
 ceil     definite upper class rate (no borrows) {rate}
 cburst   burst but for ceil {computed}
 mtu      max packet size we create rate map for {1600}
 prio     priority of leaf; lower are served first {0}
 quantum  how much bytes to serve from leaf at once {use r2q}

TC HTB version 3.3`;

/** tc's matches(): `arg` is a prefix of `word`. */
const matches = (arg: string, word: string): boolean => arg.length > 0 && word.startsWith(arg);

/** get_u32: strtoul in `base` (16 takes an optional 0x), the whole word, at most 2^32-1. */
function parseU32(s: string, base: number): number | null {
  const m = base === 16 ? /^(?:0x)?([0-9a-f]+)$/i.exec(s) : /^([0-9]+)$/.exec(s);
  if (m === null) return null;
  const v = parseInt(m[1], base);
  return v <= 0xffffffff ? v : null;
}

function illegal(what: string): never {
  throw new TcParseError(`Illegal "${what}"\n${HTB_USAGE}`, 1);
}

/** q_htb.c htb_parse_opt. */
export function parseHtbQdisc(args: string[]): HtbQdiscParams {
  const p: HtbQdiscParams = { defcls: 0, r2q: 10, directQlen: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw new TcParseError(`Command line is not complete. Try option "help"`, 255);
      return args[i];
    };
    if (matches(a, 'r2q')) {
      const v = parseU32(next(), 10);
      if (v === null) illegal('r2q');
      p.r2q = v;
    } else if (matches(a, 'default')) {
      // tc reads `default` as hex: `default 20` is minor 0x20.
      const v = parseU32(next(), 16);
      if (v === null) illegal('default');
      p.defcls = v;
    } else if (matches(a, 'debug')) {
      next();
    } else if (matches(a, 'direct_qlen')) {
      const v = parseU32(next(), 10);
      if (v === null) illegal('direct_qlen');
      p.directQlen = v;
    } else {
      throw new TcParseError(`What is "${a}"?\n${HTB_USAGE}`, 1);
    }
  }
  return p;
}

/** q_htb.c htb_parse_class_opt: burst defaults to rate/HZ + mtu (HZ as /proc/net/psched says: 1e9). */
export function parseHtbClass(args: string[], host?: SchedHost): HtbClassParams {
  let rate = 0;
  let ceil = 0;
  let buffer = 0;
  let cbuffer = 0;
  let mtu = 1600;
  let prio = 0;
  let quantum = 0;
  let mpu = 0;
  let overhead = 0;
  let linklayer = LINKLAYER_ETHERNET;
  // get_percent_rate64 for `N%` (of the device's speed), else get_rate64.
  const pctOrRate = (v: string, what: string): number => {
    if (v.includes('%')) {
      const r = getPercentRate64(v, host?.devName ?? '', host?.speedMbit);
      if ('error' in r) throw new TcParseError(`${r.error}\nIllegal "${what}"\n${HTB_USAGE}`, 1);
      return (r as { rate: number }).rate;
    }
    const r = parseRate(v);
    if (r === null) illegal(what);
    return r!;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw new TcParseError(`Command line is not complete. Try option "help"`, 255);
      return args[i];
    };
    if (matches(a, 'prio')) {
      const v = parseU32(next(), 10);
      if (v === null) illegal('prio');
      prio = v;
    } else if (matches(a, 'mtu')) {
      const v = parseU32(next(), 10);
      if (v === null) illegal('mtu');
      mtu = v;
    } else if (matches(a, 'mpu') || matches(a, 'overhead')) {
      const v = parseU32(next(), 10);
      if (v === null || v > 0xffff) illegal(matches(a, 'mpu') ? 'mpu' : 'overhead');
      if (matches(a, 'mpu')) mpu = v;
      else overhead = v;
    } else if (matches(a, 'linklayer')) {
      const l = getLinklayer(next());
      if (l === null) illegal('linklayer');
      linklayer = l;
    } else if (matches(a, 'quantum')) {
      const v = parseU32(next(), 10);
      if (v === null) illegal('quantum');
      quantum = v;
    } else if (matches(a, 'burst') || a === 'buffer' || a === 'maxburst') {
      const v = parseSize(next());
      if (v === null) illegal(a);
      buffer = v;
    } else if (matches(a, 'cburst') || a === 'cbuffer' || a === 'cmaxburst') {
      const v = parseSize(next());
      if (v === null) illegal(a);
      cbuffer = v;
    } else if (a === 'ceil') {
      const s = next();
      if (ceil) throw new TcParseError('Double "ceil" spec', 1);
      ceil = pctOrRate(s, 'ceil');
    } else if (a === 'rate') {
      const s = next();
      if (rate) throw new TcParseError('Double "rate" spec', 1);
      rate = pctOrRate(s, 'rate');
    } else if (a === 'help') {
      throw new TcParseError(HTB_USAGE, 1);
    } else {
      throw new TcParseError(`What is "${a}"?\n${HTB_USAGE}`, 1);
    }
  }
  if (!rate) throw new TcParseError('"rate" is required.', 1);
  if (!ceil) ceil = rate;
  if (!buffer) buffer = Math.floor(rate / psched.hz) + mtu;
  if (!cbuffer) cbuffer = Math.floor(ceil / psched.hz) + mtu;
  return {
    rate,
    ceil,
    bufferTicks: psched.xmittime(rate, buffer),
    cbufferTicks: psched.xmittime(ceil, cbuffer),
    prio,
    quantum,
    mpu,
    overhead,
    linklayer,
    mtu,
  };
}

/** A packet queue used as a class's leaf until a qdisc is grafted (the kernel's default pfifo, limit txqueuelen). */
class FifoLeaf {
  readonly q: Packet[] = [];
  head = 0;
  get length(): number {
    return this.q.length - this.head;
  }
  push(p: Packet): void {
    this.q.push(p);
  }
  peek(): Packet | null {
    return this.head < this.q.length ? this.q[this.head] : null;
  }
  shift(): Packet | null {
    if (this.head >= this.q.length) return null;
    const p = this.q[this.head];
    this.q[this.head++] = undefined as unknown as Packet;
    if (this.head > 64 && this.head * 2 > this.q.length) {
      this.q.splice(0, this.head);
      this.head = 0;
    }
    return p;
  }
  clear(): Packet[] {
    const out = this.q.slice(this.head);
    this.q.length = 0;
    this.head = 0;
    return out;
  }
}

export class HtbClass {
  parent: HtbClass | null;
  readonly children: HtbClass[] = [];
  /** 0 for a leaf; an inner class is one below its parent (the top ones at HTB_MAXDEPTH - 1). */
  level = 0;
  rate = 0;
  ceil = 0;
  bufferTicks = 0;
  cbufferTicks = 0;
  mpu = 0;
  overhead = 0;
  /** LINKLAYER_* rate and ceil are charged for. */
  linklayer = LINKLAYER_ETHERNET;
  buffer: Ns = 0;
  cbuffer: Ns = 0;
  tokens: Ns = 0;
  ctokens: Ns = 0;
  tC: Ns = 0;
  prio = 0;
  quantum = 0;
  /** Per-level DRR deficit (cl->leaf.deficit[level]). */
  readonly deficit = new Float64Array(HTB_MAXDEPTH);
  readonly stats = new QdiscStats();
  lends = 0;
  borrows = 0;
  giants = 0;
  /** The grafted leaf qdisc, or null for the built-in fifo. */
  leafQdisc: Qdisc | null = null;
  readonly fifo = new FifoLeaf();
  filters: FilterList | null = null;
  /** Index in the qdisc's leaf list, and whether it is in the active (backlogged) list. */
  pos = 0;
  active = false;

  constructor(
    readonly classid: number,
    parent: HtbClass | null,
  ) {
    this.parent = parent;
  }

  backlogPackets(): number {
    return this.leafQdisc !== null ? this.leafQdisc.stats.qlen : this.fifo.length;
  }
}

export class HtbQdisc implements Qdisc {
  readonly kind = 'htb';
  readonly stats = new QdiscStats();
  readonly classMap = new Map<number, HtbClass>();
  /** sch_generic.c's class hash (4 buckets, doubled past 3/4 full, newest first): the order dumps list classes in. */
  private buckets: HtbClass[][] = [[], [], [], []];
  /** Leaves in creation order: the DRR ring within each (level, prio). */
  private leaves: HtbClass[] = [];
  /** The leaves that hold packets, in leaf-list order (what dequeue looks at). */
  private active: HtbClass[] = [];
  /** Round-robin position per level*NUMPRIO+prio: index into `leaves` served last. */
  private readonly rrPtr = new Int32Array(HTB_MAXDEPTH * HTB_NUMPRIO).fill(-1);
  private readonly direct = new FifoLeaf();
  directPkts = 0;
  defcls: number;
  r2q: number;
  directQlen: number;
  private directQlenSet: boolean;
  filters: FilterList | null = null;
  /** u32's per-qdisc state (tc_u_common): the hash table ids of every filter list of this qdisc and its classes. */
  readonly u32 = new U32Common();
  /** Warnings the last class change produced (tc prints them as `Warning: sch_htb: ...`). */
  lastWarning = '';
  readonly classes: QdiscClasses;

  constructor(
    p: HtbQdiscParams,
    host: SchedHost,
    public handle: number,
    public parent: number,
  ) {
    this.defcls = p.defcls;
    this.r2q = p.r2q || 1;
    this.directQlenSet = p.directQlen !== null;
    this.directQlen = p.directQlen ?? host.txQueueLen;
    const self = this;
    this.classes = {
      leaf(classid: number): Qdisc | null {
        return self.classMap.get(classid)?.leafQdisc ?? null;
      },
      graft(classid: number, q: Qdisc | null, _host: SchedHost): void {
        const cl = self.classMap.get(classid);
        if (cl === undefined || cl.level !== 0) throw new TcParseError('Error: Specified class not found.', 2);
        self.dropLeaf(cl);
        cl.leafQdisc = q;
      },
      list(): number[] {
        return [...self.classMap.keys()];
      },
      changeClass(classid: number, parent: number, args: string[], host: SchedHost, create: boolean): string {
        return self.changeClass(classid, parent, parseHtbClass(args, host), host, create);
      },
      deleteClass(classid: number): void {
        self.deleteClass(classid);
      },
      showClasses(details: boolean, stats: boolean, classid: number): string {
        let out = '';
        for (const cl of self.classList()) if (classid === 0 || cl.classid === classid) out += self.printClass(cl, details, stats) + '\n';
        return out;
      },
      filterList(classid: number, create: boolean, host: SchedHost): FilterList | null {
        if (tcMinor(classid) === 0) {
          if (self.filters === null && create) self.filters = new FilterList(host, self.u32);
          return self.filters;
        }
        const cl = self.classMap.get(classid);
        if (cl === undefined) return null;
        if (cl.filters === null && create) cl.filters = new FilterList(host, self.u32);
        return cl.filters;
      },
    };
  }

  // ---- classes -------------------------------------------------------

  /**
   * `tc class add|change|replace`: sch_htb.c htb_change_class. Returns the
   * warning the kernel attaches ('' if none).
   */
  changeClass(classid: number, parentid: number, p: HtbClassParams, host: SchedHost, create: boolean): string {
    let cl = this.classMap.get(classid);
    let warn = '';
    if (cl === undefined) {
      if (!create) throw new TcParseError('Error: Specified class not found.', 2);
      if (tcMajor(classid) !== tcMajor(this.handle) || tcMinor(classid) === 0)
        throw new TcParseError('Error: Invalid class ID.', 2);
      // sch_htb.c: an unknown parent makes the new class a root class.
      const parent = parentid === 0xffffffff ? null : (this.classMap.get(parentid) ?? null);
      if (parent !== null && parent.level === 0 && parent.parent !== null && parent.parent.level <= 1)
        throw new TcParseError('Error: HTB tree is too deep.', 2);
      cl = new HtbClass(classid, parent);
      if (parent !== null) {
        if (parent.level === 0) {
          // The parent turns inner: its queue is dropped (htb_parent_to_leaf's opposite).
          this.dropLeaf(parent);
          parent.leafQdisc = null;
          this.leaves = this.leaves.filter((c) => c !== parent);
          this.reindex();
          parent.level = (parent.parent !== null ? parent.parent.level : HTB_MAXDEPTH) - 1;
        }
        parent.children.push(cl);
      }
      this.classMap.set(classid, cl);
      this.hashInsert(cl);
      this.leaves.push(cl);
      this.reindex();
      const now = host.now();
      cl.tC = now;
    }
    cl.rate = p.rate;
    cl.ceil = p.ceil;
    cl.mpu = p.mpu;
    cl.overhead = p.overhead;
    // tc names the link layer in both rate specs (tc_calc_rtable); the kernel keeps it.
    cl.linklayer = p.linklayer;
    if (cl.level === 0) {
      // sch_htb.c: quantum = rate / r2q, clamped to [1000, 200000] with a warning unless given.
      let q = Math.floor(p.rate / this.r2q);
      if (!p.quantum && q < 1000) {
        warn = `quantum of class ${classid.toString(16).toUpperCase()} is small. Consider r2q change.`;
        q = 1000;
      }
      if (!p.quantum && q > 200000) {
        warn = `quantum of class ${classid.toString(16).toUpperCase()} is big. Consider r2q change.`;
        q = 200000;
      }
      cl.quantum = p.quantum || q;
      cl.prio = Math.min(p.prio, HTB_NUMPRIO - 1);
    }
    cl.bufferTicks = p.bufferTicks;
    cl.cbufferTicks = p.cbufferTicks;
    cl.buffer = psched.ticks2ns(p.bufferTicks);
    cl.cbuffer = psched.ticks2ns(p.cbufferTicks);
    if (create && cl.stats.packets === 0 && cl.tokens === 0) {
      cl.tokens = cl.buffer;
      cl.ctokens = cl.cbuffer;
    }
    this.lastWarning = warn;
    return warn;
  }

  /** `tc class del`: sch_htb.c htb_delete. */
  deleteClass(classid: number): void {
    const cl = this.classMap.get(classid);
    if (cl === undefined) throw new TcParseError('Error: Specified class not found.', 2);
    // htb_delete: a class with children, or that a filter sends to (qdisc_class_in_use), stays.
    if (cl.children.length > 0 || this.boundByFilter(classid)) throw new TcParseError('Error: HTB class in use.', 2);
    this.dropLeaf(cl);
    this.classMap.delete(classid);
    const b = this.buckets[classHash(classid, this.buckets.length - 1)];
    b.splice(b.indexOf(cl), 1);
    this.leaves = this.leaves.filter((c) => c !== cl);
    this.reindex();
    this.rrPtr.fill(-1);
    const parent = cl.parent;
    if (parent !== null) {
      parent.children.splice(parent.children.indexOf(cl), 1);
      if (parent.children.length === 0) {
        // htb_parent_to_leaf: the parent becomes a leaf again.
        parent.level = 0;
        parent.tokens = parent.buffer;
        parent.ctokens = parent.cbuffer;
        this.leaves.push(parent);
        this.reindex();
      }
    }
  }

  private boundByFilter(classid: number): boolean {
    const lists = [this.filters];
    for (const c of this.classMap.values()) lists.push(c.filters);
    for (const l of lists) if (l !== null && l.filters.some((f) => f.bindsTo(classid))) return true;
    return false;
  }

  private reindex(): void {
    for (let i = 0; i < this.leaves.length; i++) this.leaves[i].pos = i;
    for (const c of this.active) if (c.level !== 0 || !this.classMap.has(c.classid)) c.active = false;
    this.active = this.leaves.filter((c) => c.active);
    this.rrPtr.fill(-1);
  }

  private activate(cl: HtbClass): void {
    if (cl.active) return;
    cl.active = true;
    const a = this.active;
    let i = a.length;
    while (i > 0 && a[i - 1].pos > cl.pos) i--;
    a.splice(i, 0, cl);
  }

  private deactivate(cl: HtbClass): void {
    if (!cl.active) return;
    cl.active = false;
    const i = this.active.indexOf(cl);
    if (i >= 0) this.active.splice(i, 1);
  }

  private dropLeaf(cl: HtbClass): void {
    this.deactivate(cl);
    if (cl.leafQdisc !== null) {
      const n = cl.leafQdisc.stats.qlen;
      const b = cl.leafQdisc.stats.backlog;
      cl.leafQdisc.reset();
      this.stats.qlen -= n;
      this.stats.backlog -= b;
    }
    for (const p of cl.fifo.clear()) {
      this.stats.qlen--;
      this.stats.backlog -= pktLen(p);
      cl.stats.qlen--;
      cl.stats.backlog -= pktLen(p);
      p.sent();
    }
  }

  // ---- enqueue -------------------------------------------------------

  /** sch_htb.c htb_classify: filters on the qdisc, then on inner classes; else the default class; else direct. */
  classify(pkt: Packet): HtbClass | 'direct' | null {
    let list = this.filters;
    while (list !== null) {
      const r = list.classify(pkt);
      if (r.verdict < 0) break;
      if (r.verdict === TC_ACT_SHOT || r.verdict === TC_ACT_STOLEN) return null;
      if (r.classid === this.handle) return 'direct';
      const cl = this.classMap.get(r.classid);
      if (cl === undefined) break;
      if (cl.level === 0) return cl;
      list = cl.filters;
    }
    const def = this.classMap.get(tcHandle(tcMajor(this.handle), this.defcls & 0xffff));
    if (this.defcls > 0xffff || def === undefined || def.level !== 0) return 'direct';
    return def;
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    const len = pktLen(pkt);
    const cl = this.classify(pkt);
    if (cl === 'direct') {
      if (this.direct.length >= this.directQlen) return this.drop(pkt);
      this.direct.push(pkt);
      this.directPkts++;
    } else if (cl === null) {
      return this.drop(pkt);
    } else if (cl.leafQdisc !== null) {
      const r = cl.leafQdisc.enqueue(pkt, host);
      if (r !== NET_XMIT_SUCCESS) {
        cl.stats.drops++;
        this.stats.drops++;
        return r;
      }
      cl.stats.qlen = cl.leafQdisc.stats.qlen;
      cl.stats.backlog = cl.leafQdisc.stats.backlog;
    } else {
      if (cl.fifo.length >= host.txQueueLen) {
        cl.stats.drops++;
        return this.drop(pkt);
      }
      cl.fifo.push(pkt);
      cl.stats.qlen++;
      cl.stats.backlog += len;
    }
    this.stats.qlen++;
    this.stats.backlog += len;
    if (cl !== 'direct') this.activate(cl);
    return NET_XMIT_SUCCESS;
  }

  private drop(pkt: Packet): number {
    this.stats.drops++;
    pkt.sent();
    return NET_XMIT_DROP;
  }

  // ---- dequeue -------------------------------------------------------

  /** sch_htb.c htb_class_mode (hysteresis off): from the tokens the class would have at `now`. */
  private mode(cl: HtbClass, now: Ns): number {
    const diff = Math.min(now - cl.tC, MBUFFER);
    if (cl.ctokens + diff < 0) return HTB_CANT_SEND;
    if (cl.tokens + diff >= 0) return HTB_CAN_SEND;
    return HTB_MAY_BORROW;
  }

  /**
   * The level a backlogged leaf is served at now: the level of the nearest
   * class on its path (itself first) that may send on its own rate, if
   * every class below that one may borrow; -1 if blocked.
   */
  private serveLevel(leaf: HtbClass, now: Ns): number {
    for (let c: HtbClass | null = leaf; c !== null; c = c.parent) {
      const m = this.mode(c, now);
      if (m === HTB_CAN_SEND) return c.level;
      if (m === HTB_CANT_SEND) return -1;
    }
    return -1;
  }

  /** The earliest time one of the classes on a blocked leaf's path changes mode (the wait queue's pq_key). */
  private nextEvent(leaf: HtbClass, now: Ns): Ns {
    let at = Infinity;
    for (let c: HtbClass | null = leaf; c !== null; c = c.parent) {
      const m = this.mode(c, now);
      if (m === HTB_CAN_SEND) break;
      // Tokens reach 0 at tC - tokens; ctokens at tC - ctokens.
      const t = m === HTB_CANT_SEND ? c.tC - c.ctokens : c.tC - c.tokens;
      if (m === HTB_CANT_SEND) {
        at = Math.min(at, t);
        break;
      }
      at = Math.min(at, t);
    }
    return at;
  }

  /** The level pick() chose its class at. */
  private pickLevel = 0;

  private pick(now: Ns): HtbClass | null {
    let bestLevel = HTB_MAXDEPTH;
    let bestPrio = HTB_NUMPRIO;
    const act = this.active;
    for (let i = 0; i < act.length; i++) {
      const l = act[i];
      if (l.backlogPackets() === 0) {
        l.active = false;
        act.splice(i--, 1);
        continue;
      }
      const lv = this.serveLevel(l, now);
      if (lv < 0) continue;
      if (lv < bestLevel || (lv === bestLevel && l.prio < bestPrio)) {
        bestLevel = lv;
        bestPrio = l.prio;
      }
    }
    if (bestLevel === HTB_MAXDEPTH) return null;
    // DRR within (level, prio): the leaf at the pointer keeps the turn while its deficit lasts.
    const key = bestLevel * HTB_NUMPRIO + bestPrio;
    const ptr = this.rrPtr[key] < 0 ? 0 : this.rrPtr[key];
    const n = act.length;
    let start = 0;
    while (start < n && act[start].pos < ptr) start++;
    for (let k = 0; k < n; k++) {
      const l = act[(start + k) % n];
      if (l.prio !== bestPrio) continue;
      if (this.serveLevel(l, now) !== bestLevel) continue;
      this.rrPtr[key] = l.pos;
      this.pickLevel = bestLevel;
      return l;
    }
    return null;
  }

  /** sch_htb.c htb_charge_class: tokens along the path; lends at the serving level, borrows below it. */
  private charge(leaf: HtbClass, level: number, len: number, now: Ns): void {
    for (let c: HtbClass | null = leaf; c !== null; c = c.parent) {
      const oldMode = this.mode(c, now);
      const diff = Math.min(now - c.tC, MBUFFER);
      if (c.level >= level) {
        if (c.level === level) c.lends++;
        let t = Math.min(c.tokens + diff, c.buffer) - (rateLen(len, c.overhead, c.mpu, c.linklayer) * 1e9) / c.rate;
        if (t <= -MBUFFER) t = 1 - MBUFFER;
        c.tokens = t;
      } else {
        c.borrows++;
        c.tokens += diff;
      }
      let ct = Math.min(c.ctokens + diff, c.cbuffer) - (rateLen(len, c.overhead, c.mpu, c.linklayer) * 1e9) / c.ceil;
      if (ct <= -MBUFFER) ct = 1 - MBUFFER;
      c.ctokens = ct;
      c.tC = now;
      // htb_change_class_mode: a class turning CANT_SEND counts an overlimit, on itself and the qdisc.
      if (oldMode !== HTB_CANT_SEND && this.mode(c, now) === HTB_CANT_SEND) {
        c.stats.overlimits++;
        this.stats.overlimits++;
      }
      if (c.level !== 0) {
        c.stats.bytes += len;
        c.stats.packets++;
      }
    }
  }

  private leafPeek(cl: HtbClass, host: SchedHost): Packet | null {
    return cl.leafQdisc !== null ? cl.leafQdisc.peek(host) : cl.fifo.peek();
  }

  /**
   * A wakeup comes late (Node's timers fire in whole ms, after the time
   * asked for): accounting resumes at the time the watchdog asked for and
   * steps through the mode changes due since, so every packet due by now
   * leaves in this batch with the tokens it would have had, instead of the
   * buckets overflowing while the timer was late. -1 when not catching up.
   */
  private catchUp: Ns = -1;

  dequeue(host: SchedHost): Packet | null {
    const d = this.direct.shift();
    if (d !== null) return this.took(d);
    const real = host.now();
    let now = real;
    if (this.catchUp >= 0 && this.catchUp < real) now = this.catchUp;
    for (;;) {
      const p = this.dequeueAt(now, host);
      if (p !== null) {
        this.catchUp = now < real ? now : -1;
        return p;
      }
      if (now >= real) break;
      // Nothing at `now`, which is behind the clock: on to the next mode change, if it is due.
      let at = this.nextEventAll(now);
      if (at <= now) at = now + 1;
      now = at < real ? at : real;
    }
    this.catchUp = -1;
    // Nothing may leave now: wake up at the earliest mode change (htb_do_events' next event).
    if (this.stats.qlen > 0) {
      const at = this.nextEventAll(real);
      if (at !== Infinity) {
        const w = Math.max(at, real + 1);
        this.catchUp = w;
        host.watchdog(w);
      }
    }
    return null;
  }

  private nextEventAll(now: Ns): Ns {
    let at = Infinity;
    const act = this.active;
    for (let i = 0; i < act.length; i++) if (act[i].backlogPackets() > 0) at = Math.min(at, this.nextEvent(act[i], now));
    return at;
  }

  /** One packet that may leave at `now`, charged at `now`, or null. */
  private dequeueAt(now: Ns, host: SchedHost): Packet | null {
    for (let tries = 0; tries < this.active.length + 1; tries++) {
      const cl = this.pick(now);
      if (cl === null) return null;
      const level = this.pickLevel;
      const p = cl.leafQdisc !== null ? cl.leafQdisc.dequeue(host) : cl.fifo.shift();
      if (p === null) {
        // A leaf qdisc that holds packets back (its own shaper): skip it this round.
        this.advance(cl, level);
        if (cl.leafQdisc !== null) continue;
        return null;
      }
      const len = pktLen(p);
      cl.deficit[level] -= len;
      if (cl.deficit[level] < 0) {
        cl.deficit[level] += cl.quantum;
        this.advance(cl, level);
      }
      cl.stats.bytes += len;
      cl.stats.packets++;
      if (cl.leafQdisc !== null) {
        cl.stats.qlen = cl.leafQdisc.stats.qlen;
        cl.stats.backlog = cl.leafQdisc.stats.backlog;
      } else {
        cl.stats.qlen--;
        cl.stats.backlog -= len;
      }
      this.charge(cl, level, len, now);
      return this.took(p);
    }
    return null;
  }

  private advance(cl: HtbClass, level: number): void {
    this.rrPtr[level * HTB_NUMPRIO + cl.prio] = cl.pos + 1;
  }

  private took(p: Packet): Packet {
    const len = pktLen(p);
    this.stats.qlen--;
    this.stats.backlog -= len;
    this.stats.bytes += len;
    this.stats.packets++;
    return p;
  }

  peek(host: SchedHost): Packet | null {
    const d = this.direct.peek();
    if (d !== null) return d;
    const cl = this.pick(host.now());
    return cl === null ? null : this.leafPeek(cl, host);
  }

  reset(): void {
    for (const p of this.direct.clear()) p.sent();
    for (const cl of this.classMap.values()) this.dropLeaf(cl);
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  change(params: unknown, host: SchedHost): void {
    // sch_htb.c htb_change_qdisc: tc cannot change an htb qdisc in place.
    void params;
    void host;
    throw new TcParseError('Error: Change operation not supported by specified qdisc.', 2);
  }

  // ---- printing ------------------------------------------------------

  printOptions(details: boolean): string {
    // q_htb.c prints default with %#llx: plain 0 when unset.
    const def = this.defcls === 0 ? '0' : `0x${this.defcls.toString(16)}`;
    let s = `r2q ${this.r2q} default ${def} direct_packets_stat ${this.directPkts}`;
    if (details) s += ' ver 3.17';
    s += ` direct_qlen ${this.directQlen}`;
    return s;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    return { r2q: this.r2q, default: this.defcls === 0 ? '0' : `0x${this.defcls.toString(16)}`, direct_packets_stat: this.directPkts, direct_qlen: this.directQlen };
  }

  jsonXstats(): Record<string, unknown> | null {
    return null;
  }

  /** `tc class show` for one class (tc_class.c print_class + q_htb.c htb_print_opt), without the trailing newline. */
  printClass(cl: HtbClass, details: boolean, stats: boolean): string {
    const fmtH = (h: number): string => `${tcMajor(h).toString(16)}:${tcMinor(h).toString(16)}`;
    let s = `class htb ${fmtH(cl.classid)} `;
    s += cl.parent === null ? 'root ' : `parent ${fmtH(cl.parent.classid)} `;
    if (cl.leafQdisc !== null && cl.leafQdisc.handle !== 0) s += `leaf ${tcMajor(cl.leafQdisc.handle).toString(16)}: `;
    if (cl.level === 0) {
      s += `prio ${cl.prio} `;
      if (details) s += `quantum ${cl.quantum} `;
    }
    s += `rate ${fmtRate(cl.rate)} `;
    if (cl.overhead !== 0) s += `overhead ${cl.overhead} `;
    s += `ceil ${fmtRate(cl.ceil)} `;
    if (details || cl.linklayer > LINKLAYER_ETHERNET) s += `linklayer ${linklayerName(cl.linklayer)} `;
    const burst = fmtSize(psched.xmitsize(cl.rate, cl.bufferTicks));
    const cburst = fmtSize(psched.xmitsize(cl.ceil, cl.cbufferTicks));
    if (details) s += `burst ${burst}/1 mpu ${fmtSize(cl.mpu)} cburst ${cburst}/1 mpu ${fmtSize(cl.mpu)} level ${cl.level} `;
    else s += `burst ${burst} cburst ${cburst} `;
    if (stats) {
      const st = cl.stats;
      const qlen = cl.level === 0 ? cl.backlogPackets() : 0;
      const backlog = cl.level === 0 ? (cl.leafQdisc !== null ? cl.leafQdisc.stats.backlog : st.backlog) : 0;
      s += `\n Sent ${st.bytes} bytes ${st.packets} pkt (dropped ${st.drops}, overlimits ${st.overlimits} requeues 0) `;
      s += `\n backlog ${backlog}b ${qlen}p requeues 0`;
      s += `\n lended: ${cl.lends} borrowed: ${cl.borrows} giants: ${cl.giants}`;
      s += `\n tokens: ${this.ticksNow(cl.tokens)} ctokens: ${this.ticksNow(cl.ctokens)}\n`;
    }
    return s;
  }

  /** sch_htb.c htb_dump_class_stats: PSCHED_NS2TICKS, clamped to int. */
  private ticksNow(ns: Ns): number {
    const t = Math.trunc(ns / 64);
    return Math.max(-0x80000000, Math.min(0x7fffffff, t));
  }

  private hashInsert(cl: HtbClass): void {
    this.buckets[classHash(cl.classid, this.buckets.length - 1)].unshift(cl);
    // qdisc_class_hash_grow: double once more than 3/4 full, re-adding bucket by bucket at the heads.
    if (this.classMap.size * 4 <= this.buckets.length * 3) return;
    const old = this.buckets;
    const nb: HtbClass[][] = [];
    for (let i = 0; i < old.length * 2; i++) nb.push([]);
    for (const b of old) for (const c of b) nb[classHash(c.classid, nb.length - 1)].unshift(c);
    this.buckets = nb;
  }

  /** Classes in the order `tc class show` lists them (htb_walk over the class hash). */
  classList(): HtbClass[] {
    const out: HtbClass[] = [];
    for (const b of this.buckets) for (const c of b) out.push(c);
    return out;
  }
}

/** sch_generic.h qdisc_class_hash. */
function classHash(id: number, mask: number): number {
  id ^= id >>> 8;
  id ^= id >>> 4;
  return id & mask;
}

export const htbKind = {
  name: 'htb',
  parse(args: string[], _host: SchedHost): unknown {
    return parseHtbQdisc(args);
  },
  create(params: unknown, host: SchedHost, handle: number, parent: number): Qdisc {
    return new HtbQdisc(params as HtbQdiscParams, host, handle, parent);
  },
};
