/**
 * Actions and what every classifier shares: the verdicts (TC_ACT_*), the
 * police action (act_police.c) with its table of indexes (act_api.c), and
 * the base of a filter (struct tcf_proto's part that tcf_classify uses).
 */
import type { Packet } from '../packet/packet.js';
import { type Ns, pktLen, TcParseError } from './qdisc.js';
import { fmtRate, fmtSize, parseRate, parseSize, psched } from './tcunits-htb.js';
import { getRate, getSizeAndCell, getU32 } from './units.js';
import { getLinklayer, LINKLAYER_ETHERNET, linklayerName } from './stab.js';
import { RateCfg } from './tbf.js';
import { type EstimatorSpec, RateEstimator } from './estimator.js';

/** include/uapi/linux/pkt_cls.h TC_ACT_*. */
export const TC_ACT_UNSPEC = -1;
export const TC_ACT_OK = 0;
export const TC_ACT_RECLASSIFY = 1;
export const TC_ACT_SHOT = 2;
export const TC_ACT_PIPE = 3;
export const TC_ACT_STOLEN = 4;

const ACT_NAMES: Record<string, number> = {
  continue: TC_ACT_UNSPEC, drop: TC_ACT_SHOT, shot: TC_ACT_SHOT, pass: TC_ACT_OK, ok: TC_ACT_OK,
  reclassify: TC_ACT_RECLASSIFY, pipe: TC_ACT_PIPE,
};
/** tc_util.c action_n2a. */
export function actionName(a: number): string {
  switch (a) {
    case TC_ACT_UNSPEC: return 'continue';
    case TC_ACT_OK: return 'pass';
    case TC_ACT_RECLASSIFY: return 'reclassify';
    case TC_ACT_SHOT: return 'drop';
    case TC_ACT_PIPE: return 'pipe';
    case TC_ACT_STOLEN: return 'stolen';
    default: return String(a);
  }
}

/** The clock a police action reads (the stack clock, ns). */
export interface ActClock {
  now(): Ns;
}

/**
 * act_police.c: a token bucket of `burst` ns of transmission time at `rate`,
 * with `peakrate` a second one of `mtu` bytes at that rate, and with
 * `avrate` a bound on the rate estimator's average (the estimator the
 * filter's `estimator` option sets up).
 */
export class PoliceAction {
  index = 0;
  rate = 0;
  /** The rate as the kernel charges it (psched_l2t_ns with mpu, overhead, link layer). */
  rateCfg: RateCfg | null = null;
  /** peakrate (bytes/s) and its charge, 0/null: none. */
  peakrate = 0;
  peakCfg: RateCfg | null = null;
  /** ns of peakrate time that mtu bytes take (tcfp_mtu_ptoks). */
  mtuPtoks: Ns = 0;
  /** avrate: the estimated rate (bytes/s) from which packets exceed (0: none). */
  avrate = 0;
  /** The rate estimator (gen_estimator) over this action's counters, or null. */
  est: RateEstimator | null = null;
  overhead = 0;
  linklayer = LINKLAYER_ETHERNET;
  /** psched ticks as tc sends them, and ns as the kernel keeps them. */
  burstTicks = 0;
  burst: Ns = 0;
  mtu = 0;
  /** Exceed (tcf_action) and conform (tcfp_result) verdicts. */
  exceed = TC_ACT_RECLASSIFY;
  conform = TC_ACT_OK;
  toks: Ns = 0;
  ptoks: Ns = 0;
  tC: Ns = 0;
  refcnt = 1;
  bindcnt = 0;
  /** The table holding it (null for an action parsed without one). */
  table: ActionTable | null = null;

  /** A filter holding it went away (tcf_action_destroy): the last reference removes it from the table. */
  unbind(): void {
    this.bindcnt--;
    if (--this.refcnt <= 0 && this.table !== null && this.table.police.get(this.index) === this) this.table.police.delete(this.index);
  }
  bytes = 0;
  packets = 0;
  drops = 0;
  overlimits = 0;

  /** tcf_police_act. */
  act(pkt: Packet, now: Ns): number {
    const len = pktLen(pkt);
    // tcf_action_update_bstats first; the estimator sees the periods that ended before this packet.
    const est = this.est;
    if (est !== null) est.advance(now);
    this.bytes += len;
    this.packets++;
    if (this.avrate !== 0 && (est === null || est.bps(now) >= this.avrate)) return this.overlimit();
    if (len <= this.mtu) {
      const rc = this.rateCfg;
      if (rc === null) return this.conform;
      let toks = Math.min(now - this.tC, this.burst);
      let ptoks = 0;
      const pc = this.peakCfg;
      if (pc !== null) {
        ptoks = toks + this.ptoks;
        if (ptoks > this.mtuPtoks) ptoks = this.mtuPtoks;
        ptoks -= pc.l2t(len);
      }
      toks += this.toks;
      if (toks > this.burst) toks = this.burst;
      toks -= rc.l2t(len);
      if (toks >= 0 && ptoks >= 0) {
        this.tC = now;
        this.toks = toks;
        this.ptoks = ptoks;
        if (this.conform === TC_ACT_SHOT) this.drops++;
        return this.conform;
      }
    }
    return this.overlimit();
  }

  private overlimit(): number {
    this.overlimits++;
    if (this.exceed === TC_ACT_SHOT) this.drops++;
    return this.exceed;
  }

  /**
   * m_police.c print_police: the text after `action order N: `; with
   * `-s`, the action's statistics (m_action.c tc_print_one_action, with
   * the estimator's rate line when there is one).
   */
  print(stats = false, now = 0): string {
    let s = ` police 0x${this.index.toString(16)} rate ${fmtRate(this.rate)} burst ${fmtSize(psched.xmitsize(this.rate, this.burstTicks))} mtu ${fmtSize(this.mtu)} `;
    if (this.peakrate) s += `peakrate ${fmtRate(this.peakrate)} `;
    if (this.avrate) s += `avrate ${fmtRate(this.avrate)} `;
    s += `action ${actionName(this.exceed)}`;
    s += this.conform !== TC_ACT_OK ? `/${actionName(this.conform)} ` : ' ';
    s += `overhead ${fmtSize(this.overhead)} `;
    if (this.linklayer > LINKLAYER_ETHERNET) s += `linklayer ${linklayerName(this.linklayer)} `;
    s += `\n\tref ${this.refcnt} bind ${this.bindcnt} \n`;
    if (stats) {
      s += `\tAction statistics:\n\tSent ${this.bytes} bytes ${this.packets} pkt (dropped ${this.drops}, overlimits ${this.overlimits} requeues 0) \n`;
      if (this.est !== null) s += `\trate ${fmtRate(this.est.bps(now))} ${this.est.pps(now)}pps\tbacklog 0b 0p requeues 0\n`;
      else s += `\tbacklog 0b 0p requeues 0\n`;
    }
    return s;
  }
}

/** A police action's words that tc refuses (act_parse_police returned -1): the line tc printed, or ''. */
export class PoliceSyntaxError extends Error {}

/**
 * How tc reports a police action it could not read: inside `action`
 * (m_action.c parse_action) with the words left from `police`, else as the
 * classifier's own `police` option.
 */
export function policeError(e: PoliceSyntaxError, viaAction: boolean, wordsLeft: number): string {
  const head = e.message !== '' ? `${e.message}\n` : '';
  if (viaAction) return `${head}bad action parsing\nparse_action: bad value (${wordsLeft}:police)!\nIllegal "action"`;
  return `${head}Illegal "police"`;
}

/**
 * m_police.c act_parse_police from args[i] (the word after `police`);
 * returns the action and the index of the first word not consumed. Words
 * tc refuses throw PoliceSyntaxError; malformed values exit at once
 * (invarg/duparg, 255).
 */
export function parsePolice(args: string[], i: number, now: Ns, est: EstimatorSpec | null = null): { act: PoliceAction; next: number } {
  const a = new PoliceAction();
  let rate = 0;
  let prate = 0;
  let avrate = 0;
  let burst = 0;
  let mtu = 0;
  let mpu = 0;
  let overhead = 0;
  let linklayer = LINKLAYER_ETHERNET;
  let rcellLog = -1;
  let ok = 0;
  const need = (): string => {
    if (++i >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
    return args[i];
  };
  const inv = (what: string, v: string): never => {
    throw new TcParseError(`Error: argument "${v}" is wrong: ${what}`, 255);
  };
  const dup = (what: string, v: string): never => {
    throw new TcParseError(`Error: duplicate "${what}": "${v}" is the second value.`, 255);
  };
  const m = (w: string, word: string): boolean => w.length > 0 && w.length <= word.length && word.startsWith(w);
  for (; i < args.length; i++, ok++) {
    const w = args[i];
    if (m(w, 'index')) {
      const v = need();
      if (!/^[0-9]+$/.test(v) || Number(v) > 0xffffffff) inv('index', v);
      a.index = Number(v);
    } else if (m(w, 'burst') || w === 'buffer' || w === 'maxburst') {
      const v = need();
      if (burst) dup('buffer/burst', v);
      const n = getSizeAndCell(v);
      if (n === null) inv('buffer', v);
      burst = n!.size;
      rcellLog = n!.cellLog;
    } else if (w === 'mtu' || w === 'minburst') {
      const v = need();
      if (mtu) dup('mtu/minburst', v);
      const n = parseSize(v);
      if (n === null) inv('mtu', v);
      mtu = n!;
    } else if (w === 'mpu') {
      const v = need();
      if (mpu) dup('mpu', v);
      const n = parseSize(v);
      if (n === null) inv('mpu', v);
      mpu = n!;
    } else if (w === 'rate') {
      const v = need();
      if (rate) dup('rate', v);
      const n = parseRate(v);
      if (n === null) inv('rate', v);
      rate = n!;
    } else if (w === 'avrate') {
      const v = need();
      if (avrate) dup('avrate', v);
      const n = getRate(v);
      if (n === null) inv('avrate', v);
      avrate = n!;
    } else if (m(w, 'peakrate')) {
      const v = need();
      if (prate) dup('peakrate', v);
      const n = parseRate(v);
      if (n === null) inv('peakrate', v);
      prate = n!;
    } else if (m(w, 'overhead')) {
      const v = need();
      const n = getU32(v, 10);
      if (n === null || n > 0xffff) inv('overhead', v);
      overhead = n!;
    } else if (m(w, 'linklayer')) {
      const v = need();
      const l = getLinklayer(v);
      if (l === null) inv('linklayer', v);
      linklayer = l!;
    } else if (w === 'conform-exceed') {
      const v = need();
      const [ex, co] = v.split('/');
      if (ACT_NAMES[ex] === undefined || (co !== undefined && ACT_NAMES[co] === undefined)) throw new PoliceSyntaxError(`Bad action type ${v}`);
      a.exceed = ACT_NAMES[ex];
      if (co !== undefined) a.conform = ACT_NAMES[co];
    } else if (ACT_NAMES[w] !== undefined) {
      // A bare control word after the parameters: the exceed action.
      a.exceed = ACT_NAMES[w];
    } else {
      break;
    }
  }
  if (ok === 0) throw new PoliceSyntaxError('');
  if (rate && avrate) throw new PoliceSyntaxError('');
  if (!rate && !avrate && !a.index && !mtu) throw new PoliceSyntaxError("'rate' or 'avrate' or 'mtu' or 'pkts_rate' MUST be specified.");
  if (rate && !burst && !avrate) throw new PoliceSyntaxError("'burst' requires 'rate'.");
  if (prate) {
    if (!rate) throw new PoliceSyntaxError("'peakrate' requires 'rate'.");
    if (!mtu) throw new PoliceSyntaxError("'mtu' is required, if 'peakrate' is requested.");
  }
  a.rate = rate;
  a.overhead = overhead;
  a.linklayer = linklayer;
  if (rate) a.rateCfg = new RateCfg(rate, mpu, overhead, linklayer);
  a.burstTicks = rate ? psched.xmittime(rate, burst) : 0;
  a.burst = psched.ticks2ns(a.burstTicks);
  // tcf_police_init: no mtu given → 255 << cell_log of the rate table (2040 for tc's 2047), or no limit without one.
  a.mtu = mtu || (rate ? 255 * 2 ** (rcellLog >= 0 ? rcellLog : 3) : 0xffffffff);
  if (prate) {
    a.peakrate = prate;
    a.peakCfg = new RateCfg(prate, mpu, overhead, linklayer);
    a.mtuPtoks = a.peakCfg.l2t(a.mtu);
  }
  a.avrate = avrate;
  // Every read passes the time (the act and the dump); the clock only starts the first period.
  if (est !== null) a.est = new RateEstimator(est, { now: () => now }, a);
  else if (avrate) throw new TcParseError('RTNETLINK answers: Invalid argument', 2);
  a.toks = a.burst;
  a.ptoks = a.mtuPtoks;
  a.tC = now;
  return { act: a, next: i };
}

/**
 * The police actions of one stack (act_police.c's idr): filters' actions
 * and those added with `tc actions add` share it; indexes start at 1.
 */
export class ActionTable {
  readonly police = new Map<number, PoliceAction>();

  /** Registers `a` under its index, or the lowest free one (tcf_idr_check_alloc). */
  insert(a: PoliceAction, replace: boolean): void {
    if (a.index !== 0) {
      const old = this.police.get(a.index);
      if (old !== undefined && !replace) throw new TcParseError('RTNETLINK answers: File exists\nWe have an error talking to the kernel', 2);
      if (old !== undefined) {
        a.bindcnt = old.bindcnt;
        a.refcnt = old.refcnt;
      }
    } else {
      let i = 1;
      while (this.police.has(i)) i++;
      a.index = i;
    }
    a.table = this;
    this.police.set(a.index, a);
  }

  /** `tc actions add|replace|change action police ...`. */
  add(args: string[], replace: boolean, clock: ActClock): PoliceAction {
    if (args[0] !== 'action' || args[1] !== 'police') throw new TcParseError(`bad action type ${args[1] ?? ''}`, 255);
    let r: { act: PoliceAction; next: number };
    try {
      r = parsePolice(args, 2, clock.now());
    } catch (e) {
      // tc actions: parse_action's complaint, then exit 255.
      if (e instanceof PoliceSyntaxError) throw new TcParseError(policeError(e, true, args.length - 1), 255);
      throw e;
    }
    if (r.next < args.length) throw new TcParseError(`bad action parsing`, 255);
    this.insert(r.act, replace);
    return r.act;
  }

  /** `tc actions get|delete action police index N`. */
  find(index: number): PoliceAction {
    const a = this.police.get(index);
    if (a === undefined) throw new TcParseError('Error: Failed to find TC action.\nWe have an error talking to the kernel', 1);
    return a;
  }

  delete(index: number): void {
    const a = this.find(index);
    if (a.bindcnt > 0) throw new TcParseError('Error: Failed to delete TC action.\nWe have an error talking to the kernel', 1);
    this.police.delete(index);
  }

  /** `tc actions flush action police`: the unbound ones go (tcf_del_walker). */
  flush(): void {
    for (const [i, a] of this.police) if (a.bindcnt === 0) this.police.delete(i);
  }

  /** `tc [-s] actions ls action police` (m_action.c print_action/tc_dump_action). */
  list(stats: boolean): string {
    let s = `total acts ${this.police.size}\n`;
    let order = 0;
    for (const i of [...this.police.keys()].sort((a, b) => a - b)) s += `\n\taction order ${order++}: ${this.police.get(i)!.print(stats)}`;
    return s;
  }

  /** `tc actions get action police index N`: one action, numbered 1, no count. */
  get(index: number, stats: boolean): string {
    return `total acts 0\n\n\taction order 1: ${this.find(index).print(stats)}`;
  }
}

/** The result of a classification: the verdict (TC_ACT_*, -1 when nothing matched) and the class. */
export interface TcResult {
  verdict: number;
  classid: number;
}

export abstract class TcFilter {
  abstract readonly kind: string;
  prio = 0;
  protocol = 0x0800;
  handle = 0;
  classid = 0;
  actions: PoliceAction[] = [];
  /** Matches `pkt` (IP header at pkt.l3 or pkt.start). */
  abstract match(pkt: Packet, l3: number): boolean;
  /**
   * Classifiers that walk their own structure (u32's hash tables): the
   * verdict with res.classid set, or -1 when nothing matched; when
   * present, FilterList.classify calls it instead of match().
   */
  classifyTp?(pkt: Packet, l3: number, res: TcResult, now: Ns): number;

  /** Whether the filter sends packets to `classid` (tcf_bind_filter: the class is in use). */
  bindsTo(classid: number): boolean {
    return this.classid === classid;
  }

  /** tcf_exts_exec: the actions in order while they say pipe. */
  execActions(pkt: Packet, now: Ns): number {
    let r = TC_ACT_OK;
    for (const a of this.actions) {
      r = a.act(pkt, now);
      if (r !== TC_ACT_PIPE) break;
    }
    return r;
  }
}
