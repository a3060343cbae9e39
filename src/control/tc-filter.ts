/**
 * `tc class`, `tc filter` and `tc actions` (iproute2 6.1's tc_class.c,
 * tc_filter.c, m_action.c) with the kernel's side of each request
 * (sch_api.c tc_ctl_tclass, cls_api.c tc_new_tfilter/tc_del_tfilter,
 * act_api.c), registered into tc.ts's tcObjects.
 */
import { type Qdisc, type SchedHost, TC_H_MIN_EGRESS, TC_H_MIN_INGRESS, TC_H_ROOT, TcParseError, tcMajor, tcMinor } from '../sched/qdisc.js';
import { getU32Handle } from '../sched/cls-u32.js';
import type { EstimatorSpec } from '../sched/estimator.js';
import { ActionTable, type FilterList, FilterList as FilterListImpl, filtersJson, type JsonPairs, parseFilter, type TcFilter } from '../sched/filter.js';
import { IngressQdisc } from '../sched/ingress.js';
import type { DevSched } from '../sched/sched.js';
import {
  deviceQdiscs,
  getTcClassid,
  kernelError,
  matches,
  qdiscLookup,
  rtnlError,
  TcError,
  tcEstimator,
  tcObjects,
  type TcDev,
  type TcEnv,
  type TcGlobals,
  type TcResult,
} from './tc.js';

const incomplete = (): TcError => new TcError('Command line is not complete. Try option "help"\n', 255);

function device(env: TcEnv, name: string): TcDev {
  if (name === '') throw rtnlError('No such device');
  const d = env.device(name);
  if (d === undefined) throw new TcError(`Cannot find device "${name}"\n`, 1);
  return d;
}

function ok(stdout: string, stderr = ''): TcResult {
  return { code: 0, stdout, stderr };
}

function wrap(f: () => TcResult): TcResult {
  try {
    return f();
  } catch (e) {
    if (e instanceof TcError) return { code: e.code, stdout: '', stderr: e.message };
    if (e instanceof TcParseError) return { code: e.exitCode, stdout: '', stderr: e.message.endsWith('\n') ? e.message : `${e.message}\n` };
    throw e;
  }
}

function classid(s: string, what: string): number {
  const h = getTcClassid(s);
  if (h === null) throw new TcError(`Error: argument "${s}" is wrong: invalid ${what} ID\n`, 255);
  return h;
}

// ---- tc class ----

const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

function classModify(env: TcEnv, flags: number, del: boolean, args: string[]): TcResult {
  let dev = '';
  let parent = 0;
  let clid = 0;
  let kind = '';
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw incomplete();
      return args[i];
    };
    if (a === 'dev') dev = next();
    else if (a === 'classid') clid = classid(next(), 'class');
    else if (a === 'handle') throw new TcError('Error: try "classid" instead of "handle"\n', 255);
    else if (a === 'root') parent = TC_H_ROOT;
    else if (a === 'parent') parent = classid(next(), 'parent');
    else if (matches(a, 'estimator')) i += 2;
    else {
      kind = a;
      i++;
      break;
    }
  }
  const kargs = args.slice(i);
  const d = device(env, dev);
  const s = d.sched;
  // tc_ctl_tclass: the qdisc is the classid's major, else the parent's, else the root.
  let qid = clid !== 0 ? (clid & 0xffff0000) >>> 0 : 0;
  if (qid === 0 && parent !== 0 && parent !== TC_H_ROOT) qid = (parent & 0xffff0000) >>> 0;
  if (qid === 0) qid = s.root.handle;
  const q = qdiscLookup(s, qid);
  if (q === null || (qid === 0 && s.isDefault)) throw rtnlError('No such file or directory');
  const c = q.classes;
  if (c === null) throw rtnlError('Invalid argument');
  if (tcMajor(clid) === 0 && clid !== 0) clid = (qid | tcMinor(clid)) >>> 0;
  const exists = clid !== 0 && c.list().includes(clid);
  if (del) {
    if (!exists) throw rtnlError('No such file or directory');
    if (c.deleteClass === undefined) throw rtnlError('Operation not supported');
    c.deleteClass(clid);
    return ok('');
  }
  if (kind === '') throw incomplete();
  if (exists && flags & NLM_F_EXCL) throw rtnlError('File exists');
  if (!exists && !(flags & NLM_F_CREATE)) throw rtnlError('No such file or directory');
  if (c.changeClass === undefined) throw rtnlError('Operation not supported');
  if (kind !== q.kind) throw rtnlError('Invalid argument');
  const warn = c.changeClass(clid, parent, kargs, s, !exists);
  s.afterChange();
  return ok('', warn !== '' ? `Warning: sch_${q.kind}: ${warn}\n` : '');
}

function classShow(env: TcEnv, g: TcGlobals, args: string[]): TcResult {
  let dev = '';
  let parent = 0;
  let clid = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw incomplete();
      return args[i];
    };
    if (a === 'dev') dev = next();
    else if (a === 'root') parent = TC_H_ROOT;
    else if (a === 'parent') parent = classid(next(), 'parent');
    else if (a === 'classid') clid = classid(next(), 'class');
    else throw new TcError(`What is "${a}"? Try "tc class help"\n`, 255);
  }
  if (dev === '') throw new TcError('Must specify either device or block\n', 1);
  const d = device(env, dev);
  let out = '';
  for (const q of deviceQdiscs(d.sched)) {
    if (parent !== 0 && parent !== TC_H_ROOT && tcMajor(parent) !== tcMajor(q.handle)) continue;
    const c = q.classes;
    if (c === null || c.showClasses === undefined) continue;
    out += c.showClasses(g.details, g.stats, clid);
  }
  return ok(out);
}

function doClass(env: TcEnv, g: TcGlobals, args: string[]): TcResult {
  return wrap(() => {
    if (args.length === 0) return classShow(env, g, []);
    const v = args[0];
    const rest = args.slice(1);
    if (matches(v, 'add')) return classModify(env, NLM_F_EXCL | NLM_F_CREATE, false, rest);
    if (matches(v, 'change')) return classModify(env, 0, false, rest);
    if (matches(v, 'replace')) return classModify(env, NLM_F_CREATE, false, rest);
    if (matches(v, 'delete')) return classModify(env, 0, true, rest);
    if (matches(v, 'list') || matches(v, 'show') || matches(v, 'lst')) return classShow(env, g, rest);
    throw new TcError(`Command "${v}" is unknown, try "tc class help".\n`, 255);
  });
}

// ---- tc filter ----

interface FilterRequest {
  dev: string;
  parent: number;
  parentGiven: boolean;
  prio: number;
  protocol: number;
  protocolGiven: boolean;
  handle: string | null;
  kind: string;
  args: string[];
  /** `estimator INTERVAL TIME_CONSTANT`, or null. */
  est: EstimatorSpec | null;
}

const ETH_P_ALL = 0x0003;
const PROTOCOLS: Record<string, number> = { ip: 0x0800, all: ETH_P_ALL, arp: 0x0806, '802.1q': 0x8100, ipv6: 0x86dd };

function readFilterRequest(args: string[], show: boolean, create = !show): FilterRequest {
  // tc_filter.c: a request that may create (add, replace) is `protocol all` unless told; others send 0.
  const r: FilterRequest = { dev: '', parent: 0, parentGiven: false, prio: 0, protocol: create ? ETH_P_ALL : 0, protocolGiven: false, handle: null, kind: '', args: [], est: null };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw incomplete();
      return args[i];
    };
    if (a === 'dev') r.dev = next();
    else if (a === 'root') {
      r.parent = TC_H_ROOT;
      r.parentGiven = true;
    } else if (a === 'ingress' || a === 'egress') {
      // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS | TC_H_MIN_EGRESS)
      if (r.parentGiven) throw new TcError(`Error: duplicate "parent": "${a}" is the second value.\n`, 255);
      r.parent = a === 'ingress' ? 0xfffffff2 : 0xfffffff3;
      r.parentGiven = true;
    } else if (a === 'parent') {
      r.parent = classid(next(), 'parent');
      r.parentGiven = true;
    } else if (a === 'handle') r.handle = next();
    else if (matches(a, 'preference') || matches(a, 'priority')) {
      const v = next();
      if (!/^[0-9]+$/.test(v) || Number(v) > 0xffff) throw new TcError(`Error: argument "${v}" is wrong: invalid priority value\n`, 255);
      r.prio = Number(v);
    } else if (matches(a, 'protocol')) {
      const v = next();
      const p = PROTOCOLS[v] ?? (/^0x[0-9a-f]{1,4}$/i.test(v) ? parseInt(v, 16) : undefined);
      if (p === undefined) throw new TcError(`Error: argument "${v}" is wrong: invalid protocol\n`, 255);
      r.protocol = p;
      r.protocolGiven = true;
    } else if (a === 'chain') {
      if (next() !== '0') throw kernelError('Only chain 0 is supported');
    } else if (matches(a, 'estimator')) {
      // parse_estimator: the filter's actions get a rate estimator (TCA_RATE).
      const e = tcEstimator(args, i + 1);
      r.est = e.spec;
      i = e.next - 1;
    } else {
      r.kind = a;
      i++;
      break;
    }
  }
  r.args = args.slice(i);
  return r;
}

/** cls_api.c __tcf_qdisc_find/__tcf_block_find: the filter list a parent names (null parent: the root qdisc's). */
function filterList(s: DevSched, parent: number, create: boolean): { list: FilterList | null; at: number } {
  if (parent !== TC_H_ROOT && tcMajor(parent) === 0xffff) {
    const q = s.ingress;
    if (!(q instanceof IngressQdisc)) throw kernelError("Parent Qdisc doesn't exists");
    if (q.kind === 'clsact') {
      // clsact_find/clsact_tcf_block: ffff:fff2 is the ingress block, ffff:fff3 the egress one.
      const min = tcMinor(parent);
      if (min !== 0 && min !== TC_H_MIN_INGRESS && min !== TC_H_MIN_EGRESS) throw kernelError("Specified class doesn't exist");
      if (min === 0) throw rtnlError('Invalid argument');
      if (min === TC_H_MIN_EGRESS) {
        if (q.egressFilters === null && create) q.egressFilters = new FilterListImpl(s, q.u32);
        return { list: q.egressFilters, at: 0xfffffff3 };
      }
      if (q.filters === null && create) q.filters = new FilterListImpl(s, q.u32);
      return { list: q.filters, at: 0xfffffff2 };
    }
    // ingress_find/ingress_tcf_block: any minor names the one block, dumped under the qdisc's handle.
    if (q.filters === null && create) q.filters = new FilterListImpl(s, q.u32);
    return { list: q.filters, at: 0xffff0000 };
  }
  let q: Qdisc | null;
  if (parent === 0 || parent === TC_H_ROOT) q = s.isDefault ? null : s.root;
  else q = qdiscLookup(s, (parent & 0xffff0000) >>> 0);
  if (q === null) throw kernelError("Parent Qdisc doesn't exists");
  const c = q.classes;
  if (c === null) throw kernelError('Qdisc not classful');
  if (c.filterList === undefined) throw kernelError("Class doesn't support blocks");
  const clid = parent === 0 || parent === TC_H_ROOT ? q.handle : parent;
  if (tcMinor(clid) !== 0 && !c.list().includes(clid)) throw kernelError('Specified class not found');
  return { list: c.filterList(clid, create, s as SchedHost), at: clid };
}

/** tc_filter.c: after the kernel refuses, tc adds its own line. */
function talkError(e: unknown): never {
  if (e instanceof TcError && e.code === 2) throw new TcError(`${e.message}We have an error talking to the kernel\n`, 2);
  if (e instanceof TcParseError && e.exitCode === 2) throw new TcError(`${e.message}\nWe have an error talking to the kernel\n`, 2);
  throw e;
}

function filterModify(env: TcEnv, verb: 'add' | 'change' | 'replace' | 'delete', args: string[]): TcResult {
  try {
    return filterModifyKernel(env, verb, args);
  } catch (e) {
    talkError(e);
  }
}

function filterModifyKernel(env: TcEnv, verb: 'add' | 'change' | 'replace' | 'delete', args: string[]): TcResult {
  const r = readFilterRequest(args, false, verb === 'add' || verb === 'replace');
  const d = device(env, r.dev);
  const s = d.sched;
  const { list } = filterList(s, r.parent, verb !== 'delete');
  if (verb === 'delete') {
    if (list === null) return ok('');
    if (r.prio !== 0 && !list.filters.some((f) => f.prio === r.prio)) throw kernelError('Filter with specified priority/protocol not found');
    if (r.handle !== null && r.kind === 'u32') {
      // tc_del_tfilter with a handle: u32_delete of that node or table.
      const h = getU32Handle(r.handle);
      if (h === null) throw new TcError('Illegal filter ID\n', 1);
      if (r.prio === 0) throw kernelError('Cannot flush filters with protocol, handle or kind set');
      if (h !== 0) {
        list.delU32(r.prio, h);
        return ok('');
      }
    }
    list.del(r.prio);
    return ok('');
  }
  const l = list as FilterList;
  if (r.kind === '') throw incomplete();
  let prio = r.prio;
  // tcf_auto_prio: below the lowest prio there is, starting at 0xc000.
  if (prio === 0) prio = l.filters.length === 0 ? 0xc000 : l.filters[0].prio - 1;
  const same = l.filters.find((f) => f.prio === prio);
  // tcf_chain_tp_find, then tc_new_tfilter's checks.
  if (same !== undefined && r.protocol !== 0 && same.protocol !== r.protocol) throw kernelError('Protocol mismatch for filter with specified priority');
  if (same !== undefined && same.kind !== r.kind) throw kernelError('Specified filter kind does not match existing one');
  if (same === undefined && r.protocol === 0) throw kernelError('Filter kind and protocol must be specified');
  if (same === undefined && verb === 'change') throw kernelError('Need both RTM_NEWTFILTER and NLM_F_CREATE to create a new filter');
  const f: TcFilter = parseFilter(r.kind, r.args, r.handle, s, actionTable(env), r.est);
  if (f.kind === 'fw' && f.handle === 0) throw rtnlError('Invalid argument');
  f.prio = prio;
  f.protocol = r.protocol !== 0 ? r.protocol : (same?.protocol ?? r.protocol);
  if (verb === 'add' && f.kind !== 'u32' && r.handle !== null && l.filters.some((x) => x.prio === prio && x.handle === f.handle))
    throw rtnlError('File exists');
  l.add(f, verb === 'add', verb !== 'change');
  return ok('');
}

function filterShow(env: TcEnv, g: TcGlobals, args: string[]): TcResult {
  const r = readFilterRequest(args, true);
  if (r.dev === '') throw new TcError('Must specify either device or block\n', 1);
  const d = device(env, r.dev);
  let found: { list: FilterList | null; at: number };
  try {
    found = filterList(d.sched, r.parent, false);
  } catch (e) {
    // tc_dump_tfilter answers nothing for a parent that is not there.
    if (e instanceof TcError && e.code === 2) return ok('');
    throw e;
  }
  const { list, at } = found;
  if (list === null) return ok('');
  if (g.json) return ok(pairsJson(filtersJson(list, at, r.parentGiven ? r.parent : 0, r.prio), g.pretty));
  return ok(list.show(at, r.parentGiven ? r.parent : 0, r.prio, g.stats));
}

/** json_writer.c's layout (as iproute-json.ts), over objects that may repeat a key. */
function pairsJson(arr: JsonPairs[], pretty: boolean): string {
  let out = '';
  let depth = 0;
  const eol = (): void => {
    if (pretty) out += '\n' + '    '.repeat(depth);
  };
  const str = (x: string): string => JSON.stringify(x);
  const obj = (o: JsonPairs): void => {
    out += '{';
    depth++;
    o.forEach(([k, v], i) => {
      if (i > 0) out += ',';
      eol();
      out += str(k) + (pretty ? ': ' : ':');
      if (Array.isArray(v)) obj(v);
      else out += typeof v === 'string' ? str(v) : String(v);
    });
    depth--;
    if (o.length > 0) eol();
    out += '}';
  };
  out += pretty ? '[ ' : '[';
  depth++;
  arr.forEach((o, i) => {
    if (i > 0) out += ',';
    obj(o);
  });
  depth--;
  if (pretty && arr.length > 0) out += ' ';
  return `${out}]\n`;
}

function doFilter(env: TcEnv, g: TcGlobals, args: string[]): TcResult {
  return wrap(() => {
    if (args.length === 0) return filterShow(env, g, []);
    const v = args[0];
    const rest = args.slice(1);
    if (matches(v, 'add')) return filterModify(env, 'add', rest);
    if (matches(v, 'change')) return filterModify(env, 'change', rest);
    if (matches(v, 'replace')) return filterModify(env, 'replace', rest);
    if (matches(v, 'delete')) return filterModify(env, 'delete', rest);
    if (matches(v, 'list') || matches(v, 'show') || matches(v, 'lst') || matches(v, 'get')) return filterShow(env, g, rest);
    throw new TcError(`Command "${v}" is unknown, try "tc filter help".\n`, 255);
  });
}

// ---- tc actions ----

const tables = new WeakMap<object, ActionTable>();

/** The stack's police actions (one table for tc actions and every filter's actions). */
export function actionTable(env: TcEnv): ActionTable {
  const key = env.owner ?? env;
  let t = tables.get(key);
  if (t === undefined) {
    t = new ActionTable();
    tables.set(key, t);
  }
  return t;
}

function actionIndex(args: string[]): number {
  // `action police index N`
  if (args[0] !== 'action' || args[1] !== 'police') throw new TcError(`bad action type ${args[1] ?? ''}\n`, 255);
  if (args[2] !== 'index' || !/^[0-9]+$/.test(args[3] ?? '')) throw new TcError('Illegal "index"\n', 255);
  return Number(args[3]);
}

function doActions(env: TcEnv, g: TcGlobals, args: string[]): TcResult {
  return wrap(() => {
    const t = actionTable(env);
    const v = args[0] ?? '';
    const rest = args.slice(1);
    const clock = { now: (): number => (env.nowNs !== undefined ? env.nowNs() : 0) };
    if (v === 'add' || v === 'replace' || v === 'change') {
      t.add(rest, v !== 'add', clock);
      return ok('');
    }
    if (v === 'get') return ok(t.get(actionIndex(rest), g.stats));
    if (matches(v, 'delete')) {
      t.delete(actionIndex(rest));
      return ok('');
    }
    if (v === 'ls' || v === 'list' || v === 'flush') {
      if (rest[0] !== 'action' || rest[1] === undefined) throw incomplete();
      if (rest[1] !== 'police') throw new TcError(`Error: Cannot ${v === 'flush' ? 'flush' : 'find'} unknown TC action.\n`, 1);
      if (v === 'flush') {
        t.flush();
        return ok('');
      }
      return ok(t.list(g.stats));
    }
    throw new TcError(`bad command (${v})\n`, 255);
  });
}

tcObjects.set('class', doClass);
tcObjects.set('filter', doFilter);
tcObjects.set('actions', doActions);
