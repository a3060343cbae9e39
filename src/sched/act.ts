/**
 * Actions and what every classifier shares: the verdicts (TC_ACT_*), the
 * police action (act_police.c) with its table of indexes (act_api.c), and
 * the base of a filter (struct tcf_proto's part that tcf_classify uses).
 */
import type { Packet } from '../packet/packet.js';
import { type Ns, TcParseError } from './qdisc.js';
import { fmtRate, fmtSize, parseRate, parseSize, psched } from './tcunits-htb.js';

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

/** act_police.c: a token bucket of `burst` ns of transmission time at `rate`. */
export class PoliceAction {
  index = 0;
  rate = 0;
  /** avrate: the estimated rate (bytes/s) above which packets exceed (0: none). */
  avrate = 0;
  /** psched ticks as tc sends them, and ns as the kernel keeps them. */
  burstTicks = 0;
  burst: Ns = 0;
  mtu = 0;
  /** Exceed (tcf_action) and conform (tcfp_result) verdicts. */
  exceed = TC_ACT_RECLASSIFY;
  conform = TC_ACT_OK;
  toks: Ns = 0;
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
    const len = pkt.end - pkt.start;
    this.bytes += len;
    this.packets++;
    if (len <= this.mtu) {
      if (this.rate === 0) return this.conform;
      let toks = Math.min(now - this.tC, this.burst) + this.toks;
      if (toks > this.burst) toks = this.burst;
      toks -= (len * 1e9) / this.rate;
      if (toks >= 0) {
        this.tC = now;
        this.toks = toks;
        return this.conform;
      }
    }
    this.overlimits++;
    if (this.exceed === TC_ACT_SHOT) this.drops++;
    return this.exceed;
  }

  /**
   * m_police.c print_police: the text after `action order N: `; with
   * `-s`, the action's statistics (m_action.c tc_print_one_action).
   */
  print(stats = false): string {
    let s = ` police 0x${this.index.toString(16)} rate ${fmtRate(this.rate)} burst ${fmtSize(psched.xmitsize(this.rate, this.burstTicks))} mtu ${fmtSize(this.mtu)} `;
    s += `action ${actionName(this.exceed)}`;
    s += this.conform !== TC_ACT_OK ? `/${actionName(this.conform)} ` : ' ';
    s += `overhead 0b \n\tref ${this.refcnt} bind ${this.bindcnt} \n`;
    if (stats) {
      s += `\tAction statistics:\n\tSent ${this.bytes} bytes ${this.packets} pkt (dropped ${this.drops}, overlimits ${this.overlimits} requeues 0) \n`;
      s += `\tbacklog 0b 0p requeues 0\n`;
    }
    return s;
  }
}

/**
 * m_police.c act_parse_police from args[i] (the word after `police`);
 * returns the action and the index of the first word not consumed.
 */
export function parsePolice(args: string[], i: number, now: Ns): { act: PoliceAction; next: number } {
  const a = new PoliceAction();
  let rate = 0;
  let burst = 0;
  let mtu = 0;
  const need = (): string => {
    if (++i >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
    return args[i];
  };
  const bad = (what: string, v: string): never => {
    throw new TcParseError(`Illegal "${what}": "${v}"`, 255);
  };
  for (; i < args.length; i++) {
    const w = args[i];
    if (w === 'index') {
      const v = need();
      if (!/^[0-9]+$/.test(v)) bad('index', v);
      a.index = Number(v);
    } else if (w === 'burst' || w === 'buffer' || w === 'maxburst') {
      const v = need();
      const n = parseSize(v);
      if (n === null) bad('buffer', v);
      burst = n as number;
    } else if (w === 'mtu' || w === 'minburst') {
      const v = need();
      const n = parseSize(v);
      if (n === null) bad('mtu', v);
      mtu = n as number;
    } else if (w === 'rate') {
      const v = need();
      const n = parseRate(v);
      if (n === null) bad('rate', v);
      rate = n as number;
    } else if (w === 'conform-exceed') {
      const v = need();
      const [ex, co] = v.split('/');
      if (ACT_NAMES[ex] === undefined || (co !== undefined && ACT_NAMES[co] === undefined))
        throw new TcParseError(`Bad action type ${v}`, 255);
      a.exceed = ACT_NAMES[ex];
      if (co !== undefined) a.conform = ACT_NAMES[co];
    } else if (ACT_NAMES[w] !== undefined) {
      // A bare control word after the parameters: the exceed action.
      a.exceed = ACT_NAMES[w];
    } else {
      break;
    }
  }
  if (rate && !burst) throw new TcParseError('"burst" requires "rate".', 255);
  if (burst && !rate) throw new TcParseError('"burst" requires "rate".', 255);
  a.rate = rate;
  a.burstTicks = rate ? psched.xmittime(rate, burst) : 0;
  a.burst = psched.ticks2ns(a.burstTicks);
  // act_police.c: no mtu given → 255 << cell_log of the rate table tc built for 2047 bytes (2040).
  a.mtu = mtu || (rate ? 2040 : 0xffffffff);
  a.toks = a.burst;
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
    const r = parsePolice(args, 2, clock.now());
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
