/**
 * tbf, the token bucket filter (net/sched/sch_tbf.c): packets wait in a child
 * qdisc (bfifo of `limit` bytes unless one is grafted on class 1:1) and leave
 * while the bucket of `burst` bytes, refilled at `rate`, holds their length in
 * tokens; with `peakrate`, a second bucket of `mtu` bytes at that rate too.
 * Tokens are nanoseconds of transmission time, as the kernel keeps them, and
 * come from the stack's ns clock: a packet that must wait sets the device's
 * watchdog to the instant its tokens are there.
 *
 * Parsing follows q_tbf.c (iproute2 6.1): tc turns burst and latency into
 * psched ticks (64 ns) and a byte limit, the kernel turns them back into ns
 * with its rate's mult/shift (psched_ratecfg_precompute), and `tc qdisc show`
 * prints what the kernel hands back — so the printed burst can differ from
 * the typed one by the rounding on the way, as the real pair's does.
 */
import type { Packet } from '../packet/packet.js';
import {
  NET_XMIT_SUCCESS,
  QdiscStats,
  TcParseError,
  tcHandle,
  tcMajor,
  type Qdisc,
  type QdiscClasses,
  type QdiscKind,
  type SchedHost,
} from './qdisc.js';
import { FifoQdisc } from './fifo.js';
import {
  calcXmitSize,
  calcXmitTime,
  getPercentRate64,
  getRate64,
  getSize,
  getSizeAndCell,
  getTime,
  getU32,
  PSCHED_SHIFT,
  sprintRate,
  sprintSize,
  sprintTime,
  tick2time,
} from './units.js';
import { pktLen } from './qdisc.js';
import { getLinklayer, LINKLAYER_ATM, LINKLAYER_ETHERNET, linklayerName, rateLen } from './stab.js';

/** What tc sends (struct tc_tbf_qopt and the TCA_TBF_* attributes). */
export interface TbfParams {
  rate: number;
  peakrate: number;
  /** Bytes (TCA_TBF_BURST, TCA_TBF_PBURST). */
  burst: number;
  mtu: number;
  /** Psched ticks (tc_tbf_qopt.buffer, .mtu). */
  bufferTicks: number;
  mtuTicks: number;
  limit: number;
  mpu: number;
  overhead: number;
  /** LINKLAYER_*: what tc built the rate tables for. */
  linklayer: number;
}

/** struct psched_ratecfg: a rate and its ns-per-byte as mult >> shift. */
export class RateCfg {
  readonly mult: number;
  readonly shift: number;
  private readonly div: number;

  constructor(
    readonly rateBytesPs: number,
    readonly mpu = 0,
    readonly overhead = 0,
    readonly linklayer = LINKLAYER_ETHERNET,
  ) {
    // psched_ratecfg_precompute__: the largest mult below 2^31 with factor = 1e9 << shift.
    let mult = 1n;
    let shift = 0;
    if (rateBytesPs > 0) {
      let factor = 1000000000n;
      const r = BigInt(Math.floor(rateBytesPs));
      for (;;) {
        mult = factor / r;
        if ((mult & (1n << 31n)) !== 0n || (factor & (1n << 63n)) !== 0n) break;
        factor <<= 1n;
        shift++;
      }
    }
    this.mult = Number(mult);
    this.shift = shift;
    this.div = 2 ** shift;
  }

  /** psched_l2t_ns: ns to send `len` bytes. */
  l2t(len: number): number {
    len = rateLen(len, this.overhead, this.mpu, this.linklayer);
    // len * mult < 2^48: exact as a double, and a power-of-two division stays exact.
    return Math.floor((len * this.mult) / this.div);
  }

  /** psched_ns_t2l: bytes sent in `ns`. */
  t2l(ns: number): number {
    let len = Number((BigInt(Math.floor(ns)) * BigInt(Math.floor(this.rateBytesPs))) / 1000000000n);
    if (this.linklayer === LINKLAYER_ATM) len = Math.floor(len / 53) * 48;
    return len > this.overhead ? len - this.overhead : 0;
  }
}

/** A child that drops everything (noop_qdisc), where a grafted child was deleted. */
class NoopChild extends FifoQdisc {
  override enqueue(pkt: Packet): number {
    this.stats.drops++;
    pkt.sent();
    return 1;
  }
}

export class TbfQdisc implements Qdisc {
  readonly kind = 'tbf';
  readonly stats = new QdiscStats();
  readonly classes: QdiscClasses;
  child: Qdisc;
  /** Parameters as the kernel keeps them (ns, bytes). */
  limit = 0;
  buffer = 0;
  mtu = 0;
  maxSize = 0;
  rate = new RateCfg(0);
  peak: RateCfg | null = null;
  private tokens = 0;
  private ptokens = 0;
  private tc = 0;

  constructor(
    public handle: number,
    public parent: number,
    params: TbfParams,
    host: SchedHost,
  ) {
    this.child = new NoopChild('bfifo', 0, tcHandle(tcMajor(handle), 1), { limit: 0 }, host);
    const self = this;
    // tbf_find takes any classid as its one class: a graft on 1:2 lands on 1:1.
    this.classes = {
      leaf: () => self.child,
      graft(_classid, q, h) {
        self.child.reset();
        self.child = q ?? new NoopChild('bfifo', 0, tcHandle(tcMajor(self.handle), 1), { limit: 0 }, h);
        self.stats.qlen = 0;
        self.stats.backlog = 0;
      },
      list: () => [tcHandle(tcMajor(self.handle), 1)],
      showClasses(_details, stats, classid) {
        const id = tcHandle(tcMajor(self.handle), 1);
        if (classid !== 0 && classid !== id) return '';
        const maj = tcMajor(self.handle).toString(16);
        let out = `class tbf ${maj}:1 parent ${maj}: `;
        if (self.child.handle !== 0) out += `leaf ${tcMajor(self.child.handle).toString(16)}: `;
        // tbf has no class statistics: -s adds only the empty line.
        return out + (stats ? '\n\n' : '\n');
      },
    };
    this.apply(params, host);
  }

  /** tbf_change, after the checks (`check` throws what the kernel refuses). */
  private apply(p: TbfParams, host: SchedHost): void {
    // tc names the link layer in the rate spec (tc_calc_rtable), the kernel keeps it (psched_ratecfg_precompute).
    const rate = new RateCfg(p.rate, p.mpu, p.overhead, p.linklayer);
    let maxSize = p.burst;
    const buffer = rate.l2t(maxSize);
    let peak: RateCfg | null = null;
    let mtu = p.mtuTicks * 2 ** PSCHED_SHIFT;
    if (p.peakrate > 0) {
      peak = new RateCfg(p.peakrate, p.mpu, p.overhead, p.linklayer);
      if (peak.rateBytesPs <= rate.rateBytesPs) throw new TcParseError('RTNETLINK answers: Invalid argument', 2);
      maxSize = Math.min(maxSize, p.mtu);
      mtu = peak.l2t(p.mtu);
    }
    if (maxSize === 0) throw new TcParseError('RTNETLINK answers: Invalid argument', 2);
    // The child: a bfifo of `limit` bytes, or the limit set on the fifo grafted (fifo_set_limit).
    const c = this.child;
    if (c instanceof NoopChild) {
      if (p.limit > 0) this.child = new FifoQdisc('bfifo', 0, tcHandle(tcMajor(this.handle), 1), { limit: p.limit }, host);
    } else if (c instanceof FifoQdisc) {
      c.limit = p.limit;
    }
    this.limit = p.limit;
    this.mtu = mtu;
    this.maxSize = maxSize;
    this.buffer = buffer;
    this.tokens = buffer;
    this.ptokens = mtu;
    this.rate = rate;
    this.peak = peak;
    this.tc = host.now();
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    const len = pktLen(pkt);
    if (len > this.maxSize) {
      // A frame larger than the bucket can never leave (no GSO to split here).
      this.stats.drops++;
      pkt.sent();
      return 1;
    }
    const r = this.child.enqueue(pkt, host);
    if (r !== NET_XMIT_SUCCESS) {
      this.stats.drops++;
      return r;
    }
    this.stats.backlog += len;
    this.stats.qlen++;
    return NET_XMIT_SUCCESS;
  }

  dequeue(host: SchedHost): Packet | null {
    const skb = this.child.peek(host);
    if (skb === null) return null;
    const len = pktLen(skb);
    const now = host.now();
    let toks = Math.min(now - this.tc, this.buffer);
    let ptoks = 0;
    const peak = this.peak;
    if (peak !== null) {
      ptoks = toks + this.ptokens;
      if (ptoks > this.mtu) ptoks = this.mtu;
      ptoks -= peak.l2t(len);
    }
    toks += this.tokens;
    if (toks > this.buffer) toks = this.buffer;
    toks -= this.rate.l2t(len);
    if (toks >= 0 && ptoks >= 0) {
      const p = this.child.dequeue(host);
      if (p === null) return null;
      this.tc = now;
      this.tokens = toks;
      this.ptokens = ptoks;
      const st = this.stats;
      st.backlog -= len;
      st.qlen--;
      st.packets++;
      st.bytes += len;
      return p;
    }
    host.watchdog(now + Math.max(-toks, -ptoks));
    this.stats.overlimits++;
    return null;
  }

  peek(host: SchedHost): Packet | null {
    return this.child.peek(host);
  }

  reset(): void {
    this.child.reset();
    this.stats.qlen = 0;
    this.stats.backlog = 0;
    this.tokens = this.buffer;
    this.ptokens = this.mtu;
  }

  change(params: unknown, host: SchedHost): void {
    this.apply(params as TbfParams, host);
  }

  room(host: SchedHost): number {
    return Math.floor((this.limit - this.stats.backlog) / (host.mtu + host.hardHeaderLen));
  }

  capacity(host: SchedHost): number {
    return Math.floor(this.limit / (host.mtu + host.hardHeaderLen));
  }

  // ---- what tc shows (tbf_dump, then q_tbf.c's tbf_print_opt) ----

  private dumped(): { rate: number; prate: number; bufferTicks: number; mtuTicks: number } {
    return {
      rate: this.rate.rateBytesPs,
      prate: this.peak?.rateBytesPs ?? 0,
      bufferTicks: Math.floor(this.buffer / 2 ** PSCHED_SHIFT),
      mtuTicks: Math.floor(this.mtu / 2 ** PSCHED_SHIFT),
    };
  }

  private latency(): number {
    const d = this.dumped();
    let latency = 1000000 * (this.limit / d.rate) - tick2time(d.bufferTicks);
    if (d.prate > 0) {
      const lat2 = 1000000 * (this.limit / d.prate) - tick2time(d.mtuTicks);
      if (lat2 > latency) latency = lat2;
    }
    return latency;
  }

  printOptions(details: boolean): string {
    const d = this.dumped();
    let out = `rate ${sprintRate(d.rate)} `;
    const buffer = calcXmitSize(d.rate, d.bufferTicks);
    if (details) out += `burst ${sprintSize(buffer)}/1 mpu ${sprintSize(this.rate.mpu)} `;
    else out += `burst ${sprintSize(buffer)} `;
    if (d.prate > 0) {
      out += `peakrate ${sprintRate(d.prate)} `;
      if (d.mtuTicks > 0 || this.peak!.mpu > 0) {
        const mtu = calcXmitSize(d.prate, d.mtuTicks);
        if (details) out += `mtu ${sprintSize(mtu)}/1 mpu ${sprintSize(this.peak!.mpu)} `;
        else out += `minburst ${sprintSize(mtu)} `;
      }
    }
    const latency = this.latency();
    if (latency >= 0) out += `lat ${sprintTime(latency)} `;
    if (latency < 0) out += `limit ${sprintSize(this.limit)} `;
    if (this.rate.overhead !== 0) out += `overhead ${this.rate.overhead} `;
    if (details || this.rate.linklayer > LINKLAYER_ETHERNET) out += `linklayer ${linklayerName(this.rate.linklayer)} `;
    return out;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(details = false): Record<string, unknown> {
    const d = this.dumped();
    const o: Record<string, unknown> = { rate: d.rate };
    const buffer = calcXmitSize(d.rate, d.bufferTicks);
    if (details) {
      o.burst = `${sprintSize(buffer)}/1`;
      o.mpu = this.rate.mpu;
    } else {
      o.burst = buffer;
    }
    if (d.prate > 0 && (d.mtuTicks > 0 || this.peak!.mpu > 0)) {
      const mtu = calcXmitSize(d.prate, d.mtuTicks);
      if (details) {
        o.mtu = `${sprintSize(mtu)}/1`;
        o.mpu = this.peak!.mpu;
      } else {
        o.minburst = mtu;
      }
    }
    const latency = this.latency();
    if (latency >= 0) o.lat = Math.floor(latency);
    else o.limit = this.limit;
    if (this.rate.overhead !== 0) o.overhead = this.rate.overhead;
    if (details || this.rate.linklayer > LINKLAYER_ETHERNET) o.linklayer = linklayerName(this.rate.linklayer);
    return o;
  }

  jsonXstats(): null {
    return null;
  }
}

const USAGE =
  'Usage: ... tbf limit BYTES burst BYTES[/BYTES] rate KBPS [ mtu BYTES[/BYTES] ]\n' +
  '\t[ peakrate KBPS ] [ latency TIME ] [ overhead BYTES ] [ linklayer TYPE ]';

const matches = (arg: string, word: string): boolean => arg.length > 0 && arg.length <= word.length && word.startsWith(arg);

/** q_tbf.c's tbf_parse_opt. */
export function parseTbf(args: string[], host?: SchedHost): TbfParams {
  let limit = 0;
  let latency = 0;
  let buffer = 0;
  let mtu = 0;
  let mpu = 0;
  let rate = 0;
  let prate = 0;
  let overhead = 0;
  let linklayer = LINKLAYER_ETHERNET;
  const fail = (msg: string): never => {
    throw new TcParseError(msg, 1);
  };
  const illegal = (arg: string, val: string): never => fail(`tbf: illegal value for "${arg}": "${val}"`);
  // get_percent_rate64 for `N%` (of the device's speed), else get_rate64.
  const pctOrRate = (v: string, what: string): number => {
    if (v.includes('%')) {
      const r = getPercentRate64(v, host?.devName ?? '', host?.speedMbit);
      if ('error' in r) fail(`${r.error}\ntbf: illegal value for "${what}": "${v}"`);
      return (r as { rate: number }).rate;
    }
    const r = getRate64(v);
    if (r === null) illegal(what, v);
    return r!;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
      return args[i];
    };
    if (matches(a, 'limit')) {
      const v = next();
      if (limit) fail('tbf: duplicate "limit" specification');
      if (latency) fail('tbf: specifying both "latency" and "limit" is not allowed');
      const s = getSize(v);
      if (s === null) illegal('limit', v);
      limit = s!;
    } else if (matches(a, 'latency')) {
      const v = next();
      if (latency) fail('tbf: duplicate "latency" specification');
      if (limit) fail('tbf: specifying both "limit" and "/latency" is not allowed');
      const t = getTime(v);
      if (t === null) illegal('latency', v);
      latency = t!;
    } else if (matches(a, 'burst') || a === 'buffer' || a === 'maxburst') {
      const v = next();
      if (buffer) fail('tbf: duplicate "buffer/burst/maxburst" specification');
      const s = getSizeAndCell(v);
      if (s === null) illegal(a, v);
      buffer = s!.size;
    } else if (a === 'mtu' || a === 'minburst') {
      const v = next();
      if (mtu) fail('tbf: duplicate "mtu/minburst" specification');
      const s = getSizeAndCell(v);
      if (s === null) illegal(a, v);
      mtu = s!.size;
    } else if (a === 'mpu') {
      const v = next();
      if (mpu) fail('tbf: duplicate "mpu" specification');
      const s = getSize(v);
      if (s === null) illegal('mpu', v);
      mpu = s!;
    } else if (a === 'rate') {
      const v = next();
      if (rate) fail('tbf: duplicate "rate" specification');
      rate = pctOrRate(v, 'rate');
    } else if (matches(a, 'peakrate')) {
      const v = next();
      if (prate) fail('tbf: duplicate "peakrate" specification');
      prate = pctOrRate(v, 'peakrate');
    } else if (matches(a, 'overhead')) {
      const v = next();
      if (overhead) fail('tbf: duplicate "overhead" specification');
      const o = getU32(v, 10);
      if (o === null || o > 0xffff) illegal('overhead', v);
      overhead = o!;
    } else if (matches(a, 'linklayer')) {
      const v = next();
      const l = getLinklayer(v);
      if (l === null) illegal('linklayer', v);
      linklayer = l!;
    } else if (a === 'help') {
      fail(USAGE);
    } else {
      fail(`tbf: unknown parameter "${a}"\n${USAGE}`);
    }
  }
  // tc reports every missing parameter at once.
  const missing: string[] = [];
  if (rate === 0) missing.push('tbf: the "rate" parameter is mandatory.');
  if (!buffer) missing.push('tbf: the "burst" parameter is mandatory.');
  if (prate && !mtu) missing.push('tbf: when "peakrate" is specified, "mtu" must also be specified.');
  if (limit === 0 && latency === 0) missing.push('tbf: either "limit" or "latency" is required.');
  if (missing.length > 0) fail(`${missing.join('\n')}\n${USAGE}`);
  const rate32 = rate >= 2 ** 32 ? 0xffffffff : rate;
  if (limit === 0) {
    let lim = (rate * latency) / 1000000 + buffer;
    if (prate) {
      const lim2 = (prate * latency) / 1000000 + mtu;
      if (lim2 < lim) lim = lim2;
    }
    limit = Math.floor(lim) >>> 0;
  }
  void rate32;
  return {
    rate,
    peakrate: prate,
    burst: buffer,
    mtu,
    bufferTicks: calcXmitTime(rate >= 2 ** 32 ? 0xffffffff : rate, buffer),
    mtuTicks: prate ? calcXmitTime(prate >= 2 ** 32 ? 0xffffffff : prate, mtu) : 0,
    limit,
    mpu,
    overhead,
    linklayer,
  };
}

export const tbfKind: QdiscKind = {
  name: 'tbf',
  parse: (args, host) => parseTbf(args, host),
  create: (params, host, handle, parent) => new TbfQdisc(handle, parent, params as TbfParams, host),
};
