/**
 * Classifiers: u32 (cls-u32.ts), fw (cls_fw.c) and matchall
 * (cls_matchall.c) in a list ordered by priority that tcf_classify walks
 * (cls_api.c), with their police actions (act.ts).
 */
import type { Packet } from '../packet/packet.js';
import { TcParseError, tcMajor, tcMinor } from './qdisc.js';
import type { EstimatorSpec } from './estimator.js';
import { type ActClock, type ActionTable, parsePolice, PoliceSyntaxError, policeError, type PoliceAction, TC_ACT_OK, TC_ACT_RECLASSIFY, TC_ACT_SHOT, TC_ACT_UNSPEC, TcFilter, type TcResult } from './act.js';
import { parseU32, printU32, U32Common, U32Filter, u32JsonPairs } from './cls-u32.js';

export * from './act.js';
export { U32Common, U32Filter } from './cls-u32.js';

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

/** tcf_classify's limit on reclassify loops (cls_api.c max_reclassify_loop). */
const MAX_RECLASSIFY = 16;

const kernelErr = (msg: string): TcParseError => new TcParseError(`Error: ${msg}.`, 2);

/** The filters attached to one qdisc, class or clsact hook, ordered by prio. */
export class FilterList {
  readonly filters: TcFilter[] = [];
  private readonly res: TcResult = { verdict: -1, classid: 0 };

  constructor(
    private readonly clock: ActClock,
    /** u32's hash tables, shared by every filter list of the qdisc (tc_u_common). */
    readonly u32: U32Common = new U32Common(),
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
        let r: number;
        if (f.classifyTp !== undefined) {
          r = f.classifyTp(pkt, l3, res, this.clock.now());
          if (r === TC_ACT_UNSPEC) continue;
        } else {
          if (!f.match(pkt, l3)) continue;
          res.classid = f.classid;
          if (f.actions.length === 0) {
            res.verdict = TC_ACT_OK;
            return res;
          }
          r = f.execActions(pkt, this.clock.now());
          if (r === TC_ACT_UNSPEC) continue; // fw: an action saying continue goes on to the next filter
        }
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

  /**
   * tc_new_tfilter: the filter joins its priority. For u32 the priority's
   * classifier takes the request (a new one is made for a new priority and
   * removed again if the request fails); `excl` (add) refuses a handle that
   * is there.
   */
  add(f: TcFilter, excl = true, create = true): void {
    const samePrio = this.filters.filter((x) => x.prio === f.prio);
    if (samePrio.length > 0 && samePrio[0].kind !== f.kind)
      throw new TcParseError('Error: Filter kind and protocol must match existing filters.', 2);
    if (f instanceof U32Filter) {
      const req = f.req!;
      let tp = samePrio[0] as U32Filter | undefined;
      const fresh = tp === undefined;
      if (tp === undefined) {
        f.init(this.u32);
        this.insert(f);
        tp = f;
      }
      try {
        const there = req.handle !== 0 ? tp.get(req.handle) : null;
        if (there !== null) {
          if (excl) throw kernelErr('Filter already exists');
          tp.changeExisting(there, req);
          return;
        }
        if (!create) throw kernelErr('Need both RTM_NEWTFILTER and NLM_F_CREATE to create a new filter');
        tp.change(req);
      } catch (e) {
        if (fresh) {
          tp.destroy();
          this.filters.splice(this.filters.indexOf(tp), 1);
        }
        throw e;
      }
      return;
    }
    this.insert(f);
  }

  private insert(f: TcFilter): void {
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
      if (f instanceof U32Filter) f.destroy();
      for (const a of f.actions) a.unbind();
      this.filters.splice(i, 1);
    }
    return before - this.filters.length;
  }

  /** `tc filter del ... prio N handle H u32`: one u32 node or table; the classifier goes when left empty. */
  delU32(prio: number, handle: number): void {
    const tp = this.filters.find((x): x is U32Filter => x instanceof U32Filter && x.prio === prio);
    if (tp === undefined) throw kernelErr('Filter with specified priority/protocol not found');
    if (tp.delete(handle)) this.del(prio);
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
      head += `protocol ${f.protocol === 0x0003 ? 'all' : 'ip'} `;
      if (!prioFilter) head += `pref ${f.prio} `;
      head += `${f.kind} chain 0 `;
      if (f instanceof U32Filter) {
        out += `${head}\n`;
        for (const x of f.walk()) {
          out += `${head}${printU32(x, fmtHandle)}\n`;
          if ('actions' in x && x.actions.length > 0) {
            for (let i = 0; i < x.actions.length; i++) out += `\taction order ${i + 1}: ${x.actions[i].print(stats, this.clock.now())}`;
            out += '\n';
          }
        }
        lastPrio = f.prio;
        continue;
      } else if (f instanceof FwFilter) {
        if (f.prio !== lastPrio) out += `${head}\n`;
        out += `${head}handle 0x${f.handle.toString(16)}${f.mask !== 0xffffffff ? `/0x${f.mask.toString(16)}` : ''} classid ${fmtHandle(f.classid)} \n`;
      } else {
        if (f.prio !== lastPrio) out += `${head}\n`;
        out += `${head}handle 0x${(f.handle || 1).toString(16)} flowid ${fmtHandle(f.classid)} \n  not_in_hw\n`;
      }
      for (let i = 0; i < f.actions.length; i++) out += `\taction order ${i + 1}: ${f.actions[i].print(stats, this.clock.now())}`;
      if (f.actions.length > 0) out += '\n';
      lastPrio = f.prio;
    }
    return out;
  }
}

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
    if (f instanceof U32Filter) {
      out.push([...head]);
      for (const x of f.walk()) out.push([...head, ['options', u32JsonPairs(x, fmtHandle) as JsonPairs]]);
      lastPrio = f.prio;
      continue;
    }
    if (f.prio !== lastPrio) out.push([...head]);
    if (f instanceof FwFilter) {
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

/** `tc filter add ... KIND ...` after the kind word: the filter (prio/protocol set by the caller). */
export function parseFilter(
  kind: string,
  args: string[],
  handle: string | null,
  clock: ActClock,
  table: ActionTable | null = null,
  est: EstimatorSpec | null = null,
): TcFilter {
  if (kind === 'u32') return parseU32(args, handle, clock, table, est);
  let f: TcFilter;
  if (kind === 'fw') {
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
    if (w === 'flowid' || w === 'classid') {
      const h = parseHandle(args[++i] ?? '');
      if (h === null) throw new TcParseError(`Illegal "classid"`, 1);
      f.classid = h;
    } else if (w === 'action' || w === 'police') {
      const at = w === 'action' ? i + 1 : i;
      if (args[at] !== 'police') throw new TcParseError(`bad action type ${args[at]}`, 255);
      let r: { act: PoliceAction; next: number };
      try {
        r = parsePolice(args, at + 1, clock.now(), est);
      } catch (e) {
        if (e instanceof PoliceSyntaxError) throw new TcParseError(policeError(e, w === 'action', args.length - at), 1);
        throw e;
      }
      let act = r.act;
      const existing = act.index !== 0 && act.rate === 0 && act.avrate === 0 ? table?.police.get(act.index) : undefined;
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
