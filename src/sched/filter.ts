/**
 * Classifiers and the police action: u32 (cls_u32.c), fw (cls_fw.c),
 * matchall (cls_matchall.c) and police (act_police.c), in a list ordered
 * by priority that tcf_classify walks (cls_api.c).
 */
import type { Packet } from '../packet/packet.js';
import { type Ns, TcParseError, tcMajor, tcMinor } from './qdisc.js';
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
  /** Matches `pkt` (IP header at pkt.l3 or pkt.start): sets res and returns a verdict, or -1. */
  abstract match(pkt: Packet, l3: number): boolean;

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

export interface U32Key {
  val: number;
  mask: number;
  off: number;
}

export class U32Filter extends TcFilter {
  readonly kind = 'u32';
  readonly keys: U32Key[] = [];
  /** Hash table id (800, 801, ...) and node id within it. */
  ht = 0x800;
  node = 0x800;

  /** cls_u32.c u32_classify: every key's 32-bit word masked equals the value. */
  match(pkt: Packet, l3: number): boolean {
    const b = pkt.buf;
    for (const k of this.keys) {
      const o = l3 + k.off;
      if (o < l3 || o + 4 > pkt.end) return false;
      const w = ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
      if (((w & k.mask) >>> 0) !== k.val) return false;
    }
    return true;
  }
}

export class FwFilter extends TcFilter {
  readonly kind = 'fw';
  mask = 0xffffffff;
  /** cls_fw.c fw_classify: the netfilter mark (masked) equals the handle. */
  match(pkt: Packet): boolean {
    return ((pkt.mark & this.mask) >>> 0) === this.handle;
  }
}

export class MatchallFilter extends TcFilter {
  readonly kind = 'matchall';
  match(): boolean {
    return true;
  }
}

/** cls_u32.c tc_u_common: shared by the filter lists of one qdisc; hash table ids 800:, 801:, ... (gen_new_htid). */
export class U32Common {
  nextHt = 0x800;
}

/** tcf_classify's limit on reclassify loops (cls_api.c max_reclassify_loop). */
const MAX_RECLASSIFY = 16;

/** The filters attached to one qdisc or class, ordered by prio. */
export class FilterList {
  readonly filters: TcFilter[] = [];
  private readonly res: TcResult = { verdict: -1, classid: 0 };

  constructor(
    private readonly clock: ActClock,
    private readonly u32: U32Common = new U32Common(),
  ) {}

  /** tcf_classify: first filter (by prio, then order added) that matches; actions decide the verdict. */
  classify(pkt: Packet): TcResult {
    const res = this.res;
    // An IPv4 packet has its header offset (pkt.l3); others (ARP) are not `protocol ip` (tcf_classify's protocol check).
    const isIp = pkt.l3 >= 0;
    const l3 = isIp ? pkt.l3 : pkt.start;
    let loops = 0;
    restart: for (;;) {
      for (const f of this.filters) {
        if (f.protocol === 0x0800 && !isIp) continue;
        if (!f.match(pkt, l3)) continue;
        res.classid = f.classid;
        if (f.actions.length === 0) {
          res.verdict = TC_ACT_OK;
          return res;
        }
        const r = f.execActions(pkt, this.clock.now());
        if (r === TC_ACT_UNSPEC) continue; // u32/fw: an action saying continue goes on to the next filter
        if (r === TC_ACT_RECLASSIFY) {
          if (++loops >= MAX_RECLASSIFY) {
            res.verdict = TC_ACT_SHOT;
            return res;
          }
          continue restart;
        }
        res.verdict = r;
        return res;
      }
      res.verdict = -1;
      res.classid = 0;
      return res;
    }
  }

  add(f: TcFilter): void {
    const samePrio = this.filters.filter((x) => x.prio === f.prio);
    if (samePrio.length > 0 && samePrio[0].kind !== f.kind)
      throw new TcParseError('Error: Filter kind and protocol must match existing filters.', 2);
    if (f instanceof U32Filter) {
      const peer = samePrio.find((x): x is U32Filter => x instanceof U32Filter);
      if (peer !== undefined) {
        f.ht = peer.ht;
        f.node = Math.max(...samePrio.map((x) => (x as U32Filter).node)) + 1;
      } else {
        f.ht = this.u32.nextHt++;
        f.node = 0x800;
      }
    }
    let i = 0;
    while (i < this.filters.length && this.filters[i].prio <= f.prio) i++;
    this.filters.splice(i, 0, f);
  }

  /** `tc filter del ... prio N` (all of that prio) or everything; their actions are unbound. */
  del(prio: number): number {
    const before = this.filters.length;
    for (let i = this.filters.length - 1; i >= 0; i--) {
      const f = this.filters[i];
      if (prio !== 0 && f.prio !== prio) continue;
      for (const a of f.actions) a.unbind();
      this.filters.splice(i, 1);
    }
    return before - this.filters.length;
  }

  /**
   * `tc filter show` (tc_filter.c print_filter + f_KIND.c print_opt): the
   * dump's `parent` is printed unless the command named that same parent
   * (`filterParent`, 0 if none), `pref` unless it named a prio.
   */
  show(parent: number, filterParent: number, prioFilter: number, stats = false): string {
    let where = '';
    if (filterParent === 0 || filterParent !== parent) {
      if (parent === 0xffffffff) where = 'root ';
      else if (parent === 0xfffffff2) where = 'ingress ';
      else if (parent === 0xfffffff3) where = 'egress ';
      else where = `parent ${fmtHandle(parent)} `;
    }
    let out = '';
    let lastPrio = -1;
    for (const f of this.filters) {
      if (prioFilter && f.prio !== prioFilter) continue;
      let head = `filter ${where}`;
      head += 'protocol ip ';
      if (!prioFilter) head += `pref ${f.prio} `;
      head += `${f.kind} chain 0 `;
      if (f instanceof U32Filter) {
        if (f.prio !== lastPrio) {
          out += `${head}\n${head}fh ${f.ht.toString(16)}: ht divisor 1 \n`;
        }
        out += `${head}fh ${f.ht.toString(16)}::${f.node.toString(16)} order ${f.node} key ht ${f.ht.toString(16)} bkt 0 *flowid ${fmtHandle(f.classid)} not_in_hw \n`;
        for (const k of f.keys) out += `  match ${hex8(k.val)}/${hex8(k.mask)} at ${k.off}\n`;
      } else if (f instanceof FwFilter) {
        if (f.prio !== lastPrio) out += `${head}\n`;
        out += `${head}handle 0x${f.handle.toString(16)}${f.mask !== 0xffffffff ? `/0x${f.mask.toString(16)}` : ''} classid ${fmtHandle(f.classid)} \n`;
      } else {
        if (f.prio !== lastPrio) out += `${head}\n`;
        out += `${head}handle 0x${(f.handle || 1).toString(16)} flowid ${fmtHandle(f.classid)} \n  not_in_hw\n`;
      }
      for (let i = 0; i < f.actions.length; i++) out += `\taction order ${i + 1}: ${f.actions[i].print(stats)}`;
      if (f.actions.length > 0) out += '\n';
      lastPrio = f.prio;
    }
    return out;
  }
}

const hex8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** A JSON object as a list of pairs: tc's JSON may repeat a key (u32's `match`). */
export type JsonPairs = [string, string | number | boolean | JsonPairs][];

/** The `tc -j filter show` objects (tc_filter.c print_filter + f_KIND.c print_opt in JSON). */
export function filtersJson(list: FilterList, parent: number, filterParent: number, prioFilter: number): JsonPairs[] {
  const out: JsonPairs[] = [];
  let lastPrio = -1;
  for (const f of list.filters) {
    if (prioFilter && f.prio !== prioFilter) continue;
    const head: JsonPairs = [];
    if (filterParent === 0 || filterParent !== parent) {
      if (parent === 0xffffffff) head.push(['root', true]);
      else if (parent === 0xfffffff2) head.push(['ingress', true]);
      else if (parent === 0xfffffff3) head.push(['egress', true]);
      else head.push(['parent', fmtHandle(parent)]);
    }
    head.push(['protocol', f.protocol === 0x0003 ? 'all' : 'ip']);
    if (!prioFilter) head.push(['pref', f.prio]);
    head.push(['kind', f.kind], ['chain', 0]);
    if (f.prio !== lastPrio) out.push([...head]);
    if (f instanceof U32Filter) {
      if (f.prio !== lastPrio) out.push([...head, ['options', [['fh', `${f.ht.toString(16)}:`], ['ht_divisor', 1]]]]);
      const o: JsonPairs = [
        ['fh', `${f.ht.toString(16)}::${f.node.toString(16)}`],
        ['order', f.node],
        ['key_ht', f.ht.toString(16)],
        ['bkt', '0'],
        ['flowid', fmtHandle(f.classid)],
        ['not_in_hw', true],
      ];
      // f_u32.c print_raw: value and mask in %x, no padding.
      for (const k of f.keys) o.push(['match', [['value', (k.val >>> 0).toString(16)], ['mask', (k.mask >>> 0).toString(16)], ['offmask', ''], ['off', k.off]]]);
      out.push([...head, ['options', o]]);
    } else if (f instanceof FwFilter) {
      const fw: JsonPairs = [['mark', `0x${f.handle.toString(16)}`], ['mask', `0x${(f.mask >>> 0).toString(16)}`]];
      out.push([...head, ['options', [['fw', fw], ['classid', fmtHandle(f.classid)]]]]);
    } else {
      out.push([...head, ['options', [['handle', f.handle || 1], ['flowid', fmtHandle(f.classid)], ['not_in_hw', true]]]]);
    }
    lastPrio = f.prio;
  }
  return out;
}

/** sprint_tc_classid / print_tc_handle: `1:10`, `1:`, `:1`. */
export function fmtHandle(h: number): string {
  const maj = tcMajor(h);
  const min = tcMinor(h);
  if (h === 0xffffffff) return 'root';
  if (maj === 0) return `:${min.toString(16)}`;
  if (min === 0) return `${maj.toString(16)}:`;
  return `${maj.toString(16)}:${min.toString(16)}`;
}

/** get_tc_classid: `1:10`, `1:`, `:1`, `root`, `none`; null if it does not parse. */
export function parseHandle(s: string): number | null {
  if (s === 'root') return 0xffffffff;
  if (s === 'none') return 0xffffffff;
  const m = /^([0-9a-f]{0,4}):([0-9a-f]{0,4})$/i.exec(s);
  if (m === null) return null;
  return ((parseInt(m[1] || '0', 16) << 16) | parseInt(m[2] || '0', 16)) >>> 0;
}

function parseNum(s: string): number | null {
  if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s.slice(2), 16);
  if (/^[0-9]+$/.test(s)) return Number(s);
  return null;
}

/** f_u32.c parse_ip: `match ip src|dst CIDR`, `sport|dport|protocol|tos V M`: keys at the IP header's offsets. */
function u32IpKey(field: string, args: string[], i: number): { key: U32Key; used: number } {
  const bad = (): never => {
    throw new TcParseError(`Illegal "match"`, 1);
  };
  const word = (v: number, mask: number, off: number, shift: number): U32Key => ({
    val: ((v & mask) << shift) >>> 0, mask: (mask << shift) >>> 0, off,
  });
  if (field === 'src' || field === 'dst') {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(args[i] ?? '');
    if (m === null) bad();
    const mm = m as RegExpExecArray;
    const addr = ((+mm[1] << 24) | (+mm[2] << 16) | (+mm[3] << 8) | +mm[4]) >>> 0;
    const len = mm[5] === undefined ? 32 : +mm[5];
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    return { key: { val: (addr & mask) >>> 0, mask, off: field === 'src' ? 12 : 16 }, used: 1 };
  }
  const v = parseNum(args[i] ?? '');
  const mask = parseNum(args[i + 1] ?? '');
  if (v === null || mask === null) bad();
  switch (field) {
    case 'sport': return { key: word(v as number, mask as number, 20, 16), used: 2 };
    case 'dport': return { key: word(v as number, mask as number, 20, 0), used: 2 };
    case 'protocol': return { key: word(v as number, mask as number, 8, 16), used: 2 };
    case 'tos': case 'dsfield': return { key: word(v as number, mask as number, 0, 16), used: 2 };
    default: return bad();
  }
}

/** Packs a u8/u16/u32 match into its aligned 32-bit word (f_u32.c pack_key8/16/32). */
function u32RawKey(width: number, v: number, m: number, at: number): U32Key {
  const off = at & ~3;
  const shift = width === 32 ? 0 : 8 * (4 - width / 8 - (at & 3));
  const wmask = width === 32 ? 0xffffffff : (1 << width) - 1;
  return { val: ((v & m & wmask) << shift) >>> 0, mask: ((m & wmask) << shift) >>> 0, off };
}

/** `tc filter add ... KIND ...` after the kind word: the filter (prio/protocol/handle set by the caller). */
export function parseFilter(kind: string, args: string[], handle: string | null, clock: ActClock, table: ActionTable | null = null): TcFilter {
  let f: TcFilter;
  if (kind === 'u32') f = new U32Filter();
  else if (kind === 'fw') {
    const fw = new FwFilter();
    if (handle !== null) {
      const [mk, ms] = handle.split('/');
      const v = parseNum(mk);
      if (v === null) throw new TcParseError(`Illegal "handle"`, 1);
      fw.handle = v;
      if (ms !== undefined) {
        const m = parseNum(ms);
        if (m === null) throw new TcParseError(`Illegal "handle"`, 1);
        fw.mask = m;
      }
    }
    f = fw;
  } else if (kind === 'matchall') f = new MatchallFilter();
  else throw new TcParseError('Error: TC classifier not found.', 2);
  for (let i = 0; i < args.length; i++) {
    const w = args[i];
    if (w === 'match' && f instanceof U32Filter) {
      const what = args[i + 1];
      if (what === 'ip') {
        const r = u32IpKey(args[i + 2], args, i + 3);
        f.keys.push(r.key);
        i += 2 + r.used;
      } else if (what === 'u32' || what === 'u16' || what === 'u8') {
        const v = parseNum(args[i + 2] ?? '');
        const m = parseNum(args[i + 3] ?? '');
        const at = args[i + 4] === 'at' ? parseNum(args[i + 5] ?? '') : null;
        if (v === null || m === null || at === null) throw new TcParseError(`Illegal "match"`, 1);
        f.keys.push(u32RawKey(Number(what.slice(1)), v, m, at));
        i += 5;
      } else throw new TcParseError(`Illegal "match"`, 1);
    } else if (w === 'flowid' || w === 'classid') {
      const h = parseHandle(args[++i] ?? '');
      if (h === null) throw new TcParseError(`Illegal "classid"`, 1);
      f.classid = h;
    } else if (w === 'action' || w === 'police') {
      const at = w === 'action' ? i + 1 : i;
      if (args[at] !== 'police') throw new TcParseError(`bad action type ${args[at]}`, 255);
      const r = parsePolice(args, at + 1, clock.now());
      let act = r.act;
      const existing = act.index !== 0 && act.rate === 0 ? table?.police.get(act.index) : undefined;
      if (existing !== undefined) {
        act = existing; // `action police index N`: binds the table's action
        act.refcnt++;
      } else if (table !== null) table.insert(act, false);
      else act.index = f.actions.length + 1;
      act.bindcnt++;
      f.actions.push(act);
      i = r.next - 1;
    } else {
      throw new TcParseError(`What is "${w}"?`, 1);
    }
  }
  return f;
}
