/**
 * CoDel (RFC 8289), as Linux runs it (include/net/codel.h, codel_impl.h),
 * and the `codel` qdisc (net/sched/sch_codel.c): a FIFO whose head is
 * dropped (or ECN-marked) while packets have waited longer than `target`
 * for at least `interval`, the next drop following interval/sqrt(count).
 *
 * Times: Linux keeps CoDel times in units of 1024 ns (codel_time_t); the
 * configured target/interval/ce_threshold go through that unit, so that
 * `tc -j` shows what Linux shows (target 5ms is dumped as 4999 µs). The
 * control law is computed exactly (Linux approximates 1/sqrt(count) with a
 * Newton step in Q0.32).
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_SUCCESS, NET_XMIT_DROP, QdiscStats, type Qdisc, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { setCe } from './flowhash.js';
import { getTime, getU32, illegal, incomplete, sprintTime } from './tcnum.js';
import { TcParseError } from './qdisc.js';
import { pktLen } from './qdisc.js';

export const CODEL_SHIFT = 10;
/** us_to_codel_time: µs → codel time units (ns >> 10). */
export const usToCt = (us: number): number => Math.floor((us * 1000) / 1024);
/** codel_time_to_us. */
export const ctToUs = (ct: number): number => Math.floor((ct * 1024) / 1000);
/** CODEL_DISABLED_THRESHOLD. */
export const CT_DISABLED = 0x7fffffff;

export class CodelParams {
  /** In codel time units (1024 ns). */
  target = usToCt(5000);
  interval = usToCt(100000);
  ceThreshold = CT_DISABLED;
  /** ce_threshold_selector / mask (fq_codel): CE marking only for matching DSCP. */
  ceSelector = 0;
  ceMask = 0;
  /** psched_mtu: device MTU plus link header. */
  mtu = 1514;
  ecn = false;
}

export class CodelVars {
  count = 0;
  lastcount = 0;
  dropping = false;
  /** ns; 0 = not above target. */
  firstAboveTime = 0;
  dropNext = 0;
  /** Sojourn time of the last dequeued packet, ns. */
  ldelay = 0;

  reset(): void {
    this.count = 0;
    this.lastcount = 0;
    this.dropping = false;
    this.firstAboveTime = 0;
    this.dropNext = 0;
    this.ldelay = 0;
  }
}

export class CodelStats {
  maxpacket = 0;
  dropCount = 0;
  dropLen = 0;
  ecnMark = 0;
  ceMark = 0;
}

/** Where CoDel takes its packets from (codel_skb_dequeue_t / codel_skb_drop_t). */
export interface CodelSource {
  /** Takes the head packet, or null; sets `enqTime` to its enqueue time (ns). */
  codelDequeue(): Packet | null;
  enqTime: number;
  /** Drops a packet CoDel decided to drop (counted by the owner). */
  codelDrop(pkt: Packet): void;
  /** The backlog that codel_should_drop compares with the MTU (bytes). */
  codelBacklog(): number;
}

/** RFC 8289 §5.5 control law: t + interval / sqrt(count). */
export function controlLaw(t: number, intervalNs: number, count: number): number {
  return t + intervalNs / Math.sqrt(count);
}

// codel_impl.h codel_should_drop
function shouldDrop(pkt: Packet | null, src: CodelSource, vars: CodelVars, p: CodelParams, st: CodelStats, now: number): boolean {
  if (pkt === null) {
    vars.firstAboveTime = 0;
    return false;
  }
  vars.ldelay = now - src.enqTime;
  const len = pktLen(pkt);
  if (len > st.maxpacket) st.maxpacket = len;
  if (vars.ldelay < p.target * 1024 || src.codelBacklog() <= p.mtu) {
    // Went below target: stay below for at least an interval.
    vars.firstAboveTime = 0;
    return false;
  }
  if (vars.firstAboveTime === 0) {
    // Just went above: not yet for an interval.
    vars.firstAboveTime = now + p.interval * 1024;
  } else if (now >= vars.firstAboveTime) {
    return true;
  }
  return false;
}

function ceMatches(pkt: Packet, p: CodelParams, host: SchedHost): boolean {
  if (p.ceMask === 0) return true;
  // fq_codel: only packets whose DS field matches selector/mask (codel_impl.h).
  const off = pkt.l3 >= 0 ? pkt.l3 : pkt.start + host.hardHeaderLen;
  if (off + 2 > pkt.end) return false;
  const dsfield = pkt.buf[off + 1] & 0xfc;
  return (dsfield & p.ceMask) === p.ceSelector;
}

/** codel_impl.h codel_dequeue. */
export function codelDequeue(src: CodelSource, vars: CodelVars, p: CodelParams, st: CodelStats, now: number, host: SchedHost): Packet | null {
  let pkt = src.codelDequeue();
  if (pkt === null) {
    vars.dropping = false;
    return null;
  }
  const interval = p.interval * 1024;
  let drop = shouldDrop(pkt, src, vars, p, st, now);
  if (vars.dropping) {
    if (!drop) {
      // Sojourn time below target: leave the dropping state.
      vars.dropping = false;
    } else if (now >= vars.dropNext) {
      // RFC 8289 §5.4: drop (or mark) at the times of the control law.
      while (vars.dropping && now >= vars.dropNext) {
        vars.count++;
        if (p.ecn && setCe(pkt as Packet, host)) {
          st.ecnMark++;
          vars.dropNext = controlLaw(vars.dropNext, interval, vars.count);
          break;
        }
        st.dropLen += pktLen(pkt as Packet);
        src.codelDrop(pkt as Packet);
        st.dropCount++;
        pkt = src.codelDequeue();
        if (!shouldDrop(pkt, src, vars, p, st, now)) {
          vars.dropping = false;
        } else {
          vars.dropNext = controlLaw(vars.dropNext, interval, vars.count);
        }
      }
    }
  } else if (drop) {
    if (p.ecn && setCe(pkt, host)) {
      st.ecnMark++;
    } else {
      st.dropLen += pktLen(pkt);
      src.codelDrop(pkt);
      st.dropCount++;
      pkt = src.codelDequeue();
      drop = shouldDrop(pkt, src, vars, p, st, now);
    }
    vars.dropping = true;
    // If min went above target close to when it last went below, re-use
    // the previous drop rate (RFC 8289 §5.5).
    const delta = vars.count - vars.lastcount;
    if (delta > 1 && now - vars.dropNext < 16 * interval) vars.count = delta;
    else vars.count = 1;
    vars.dropNext = controlLaw(now, interval, vars.count);
    vars.lastcount = vars.count;
  }
  if (pkt !== null && p.ceThreshold !== CT_DISABLED && vars.ldelay > p.ceThreshold * 1024 && ceMatches(pkt, p, host) && setCe(pkt, host)) {
    st.ceMark++;
  }
  return pkt;
}

// ---------------------------------------------------------------- codel qdisc

export interface CodelOpts {
  limit?: number;
  /** µs. */
  target?: number;
  interval?: number;
  ceThreshold?: number;
  ecn?: boolean;
}

function next(args: string[], i: number): string {
  if (i + 1 >= args.length) throw incomplete();
  return args[i + 1];
}

const CODEL_USAGE =
  'Usage: ... codel [ limit PACKETS ] [ target TIME ]\n' +
  '\t\t [ interval TIME ] [ ecn | noecn ]\n' +
  '\t\t [ ce_threshold TIME ]';

/** q_codel.c codel_parse_opt. */
export function parseCodel(args: string[]): CodelOpts {
  const o: CodelOpts = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'limit') {
      const v = getU32(next(args, i++));
      if (v === null) throw illegal('Illegal "limit"');
      if (v !== 0) o.limit = v;
    } else if (a === 'target' || a === 'interval' || a === 'ce_threshold') {
      const v = getTime(next(args, i++));
      if (v === null) throw illegal(`Illegal "${a}"`);
      if (a === 'target') { if (v !== 0) o.target = v; }
      else if (a === 'interval') { if (v !== 0) o.interval = v; }
      else if (v !== 0xffffffff) o.ceThreshold = v;
    } else if (a === 'ecn') o.ecn = true;
    else if (a === 'noecn') o.ecn = false;
    else if (a === 'help') throw new TcParseError(CODEL_USAGE, 1);
    else throw new TcParseError(`What is "${a}"?\n${CODEL_USAGE}`, 1);
  }
  return o;
}

/** sch_codel.c: the qdisc. */
export class CodelQdisc implements Qdisc, CodelSource {
  readonly kind = 'codel';
  readonly stats = new QdiscStats();
  readonly classes = null;
  readonly params = new CodelParams();
  readonly vars = new CodelVars();
  readonly cstats = new CodelStats();
  limit = 1000;
  dropOverlimit = 0;
  private readonly q = new PktRing();
  enqTime = 0;
  private host: SchedHost;

  constructor(opts: CodelOpts, host: SchedHost, public handle: number, public parent: number) {
    this.host = host;
    this.params.mtu = host.mtu + host.hardHeaderLen;
    this.change(opts, host);
  }

  change(params: unknown, host: SchedHost): void {
    const o = params as CodelOpts;
    this.host = host;
    if (o.target !== undefined) this.params.target = usToCt(o.target);
    if (o.ceThreshold !== undefined) this.params.ceThreshold = usToCt(o.ceThreshold);
    if (o.interval !== undefined) this.params.interval = usToCt(o.interval);
    if (o.limit !== undefined) this.limit = o.limit;
    if (o.ecn !== undefined) this.params.ecn = o.ecn;
    // Over the new limit: drop from the head (sch_codel.c codel_change).
    while (this.q.length > this.limit) {
      const p = this.q.shift() as Packet;
      this.stats.qlen--;
      this.stats.backlog -= pktLen(p);
      this.stats.drops++;
      p.sent();
    }
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    if (this.q.length < this.limit) {
      this.q.push(pkt, host.now());
      this.stats.qlen++;
      this.stats.backlog += pktLen(pkt);
      return NET_XMIT_SUCCESS;
    }
    this.dropOverlimit++;
    this.stats.drops++;
    pkt.sent();
    return NET_XMIT_DROP;
  }

  codelDequeue(): Packet | null {
    if (this.q.length === 0) return null;
    this.enqTime = this.q.peekTime();
    const p = this.q.shift() as Packet;
    this.stats.qlen--;
    this.stats.backlog -= pktLen(p);
    return p;
  }

  codelDrop(pkt: Packet): void {
    this.stats.drops++;
    pkt.sent();
  }

  codelBacklog(): number {
    return this.stats.backlog;
  }

  private peeked: Packet | null = null;

  dequeue(host: SchedHost): Packet | null {
    let p = this.peeked;
    if (p !== null) {
      this.peeked = null;
      this.stats.qlen--;
      this.stats.backlog -= pktLen(p);
    } else p = codelDequeue(this, this.vars, this.params, this.cstats, host.now(), host);
    if (p !== null) {
      this.stats.packets++;
      this.stats.bytes += pktLen(p);
    }
    return p;
  }

  peek(host: SchedHost): Packet | null {
    // qdisc_peek_dequeued: the packet is taken now and held.
    if (this.peeked === null) {
      const p = codelDequeue(this, this.vars, this.params, this.cstats, host.now(), host);
      if (p !== null) {
        this.stats.qlen++;
        this.stats.backlog += pktLen(p);
      }
      this.peeked = p;
    }
    return this.peeked;
  }

  reset(): void {
    for (let p = this.q.shift(); p !== null; p = this.q.shift()) p.sent();
    if (this.peeked !== null) this.peeked.sent();
    this.peeked = null;
    this.stats.qlen = 0;
    this.stats.backlog = 0;
    this.vars.reset();
  }

  printOptions(): string {
    // q_codel.c codel_print_opt over what sch_codel.c codel_dump sends.
    let s = `limit ${this.limit}p target ${sprintTime(ctToUs(this.params.target))} `;
    if (this.params.ceThreshold !== CT_DISABLED) s += `ce_threshold ${sprintTime(ctToUs(this.params.ceThreshold))} `;
    s += `interval ${sprintTime(ctToUs(this.params.interval))} `;
    if (this.params.ecn) s += 'ecn ';
    return s;
  }

  private dropNextRel(): number {
    // codel_dump_stats: drop_next relative to now, in µs (signed).
    if (!this.vars.dropping) return 0;
    return Math.trunc((this.vars.dropNext - this.host.now()) / 1000);
  }

  printXstats(): string {
    const v = this.vars;
    const dn = this.dropNextRel();
    let s = `  count ${v.count} lastcount ${v.lastcount} ldelay ${sprintTime(Math.floor(v.ldelay / 1000))}`;
    if (v.dropping) s += ' dropping';
    s += dn < 0 ? ` drop_next -${sprintTime(-dn)}` : ` drop_next ${sprintTime(dn)}`;
    s += `\n  maxpacket ${this.cstats.maxpacket} ecn_mark ${this.cstats.ecnMark} drop_overlimit ${this.dropOverlimit}`;
    if (this.cstats.ceMark) s += ` ce_mark ${this.cstats.ceMark}`;
    return s + '\n';
  }

  jsonOptions(): Record<string, unknown> {
    const o: Record<string, unknown> = { limit: this.limit, target: ctToUs(this.params.target) };
    if (this.params.ceThreshold !== CT_DISABLED) o.ce_threshold = ctToUs(this.params.ceThreshold);
    o.interval = ctToUs(this.params.interval);
    if (this.params.ecn) o.ecn = true;
    return o;
  }

  jsonXstats(): Record<string, unknown> {
    const v = this.vars;
    const o: Record<string, unknown> = { count: v.count, lastcount: v.lastcount, ldelay: Math.floor(v.ldelay / 1000) };
    if (v.dropping) o.dropping = true;
    o.drop_next = this.dropNextRel();
    o.maxpacket = this.cstats.maxpacket;
    o.ecn_mark = this.cstats.ecnMark;
    o.drop_overlimit = this.dropOverlimit;
    if (this.cstats.ceMark) o.ce_mark = this.cstats.ceMark;
    return o;
  }
}

export const codelKind: QdiscKind = {
  name: 'codel',
  parse: (args) => parseCodel(args),
  create: (params, host, handle, parent) => new CodelQdisc(params as CodelOpts, host, handle, parent),
};
