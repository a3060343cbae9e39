/**
 * `tc` (iproute2 6.1's tc/tc.c, tc_qdisc.c) over the stack's qdiscs:
 * `tc [-s] [-d] [-j [-p]] qdisc add|replace|change|link|del|show ...`, and the
 * `class`, `filter`, `actions` and `chain` objects through handlers other
 * modules register (tcObjects). The kernel's side of a request (what
 * tc_modify_qdisc and tc_get_qdisc in net/sched/sch_api.c accept and refuse)
 * is done here too, so the messages and exit codes are the pair's:
 * 1 for an option tc cannot read or an unknown device, 2 and `Error: ...`
 * for what the kernel refuses, 255 for a malformed argument.
 */
import {
  TC_H_INGRESS,
  TC_H_ROOT,
  TC_H_UNSPEC,
  TcParseError,
  tcMajor,
  tcMinor,
  type Qdisc,
  type QdiscKind,
} from '../sched/qdisc.js';
import { QDISC_KINDS } from '../sched/kinds.js';
import type { DevSched } from '../sched/sched.js';
import { getInteger } from '../sched/units.js';
import { buildStab, parseStab, type SizeSpec } from '../sched/stab.js';
import { type EstimatorSpec, parseEstimator, RateEstimator } from '../sched/estimator.js';
import { iprouteJson, type IpJson } from './iproute-json.js';

/** A device as tc sees it. */
export interface TcDev {
  readonly name: string;
  readonly index: number;
  readonly sched: DevSched;
}

export interface TcEnv {
  devices(): readonly TcDev[];
  device(name: string): TcDev | undefined;
  /** What the env stands for (the Stack): per-host tc state (the action table) is kept by it. */
  readonly owner?: object;
  /** The host clock in ns (police actions made by `tc actions add`). */
  nowNs?(): number;
}

export interface TcResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** tc's global options. */
export interface TcGlobals {
  stats: boolean;
  details: boolean;
  json: boolean;
  pretty: boolean;
  raw: boolean;
}

/** A tc object other than qdisc (`class`, `filter`, `actions`, `chain`): its arguments after the object word. */
export type TcObjectHandler = (env: TcEnv, g: TcGlobals, args: string[]) => TcResult;

/** Handlers for `tc class|filter|actions|chain ...`, registered by the modules that own them. */
export const tcObjects = new Map<string, TcObjectHandler>();

/** A request tc or the kernel refuses: exit code and the whole stderr text. */
export class TcError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** The kernel's extack message as tc prints it (libnetlink: `Error: MSG.`), exit 2. */
export function kernelError(msg: string): TcError {
  return new TcError(`Error: ${msg}${msg.endsWith('.') ? '' : '.'}\n`, 2);
}

/** An errno without extack message, as rtnl_talk prints it, exit 2. */
export function rtnlError(text: string): TcError {
  return new TcError(`RTNETLINK answers: ${text}\n`, 2);
}

/** iproute2's matches(): `arg` is a prefix of `word` (an abbreviation). */
export function matches(arg: string, word: string): boolean {
  return arg.length > 0 && arg.length <= word.length && word.startsWith(arg);
}

/** parse_estimator for `estimator INTERVAL TIME_CONST` at args[i], its failure as tc's message and exit code. */
export function tcEstimator(args: string[], i: number): { spec: EstimatorSpec; next: number } {
  try {
    return parseEstimator(args, i);
  } catch (e) {
    const x = e as Error & { exitCode?: number };
    if (x.exitCode !== undefined) throw new TcError(`${x.message}\n`, x.exitCode);
    throw e;
  }
}

/** invarg(): `Error: argument "ARG" is wrong: MSG`, exit 255. */
export function invarg(msg: string, arg: string): TcError {
  return new TcError(`Error: argument "${arg}" is wrong: ${msg}\n`, 255);
}

function duparg(key: string, arg: string): TcError {
  return new TcError(`Error: duplicate "${key}": "${arg}" is the second value.\n`, 255);
}

const incomplete = (): TcError => new TcError('Command line is not complete. Try option "help"\n', 255);

function nodev(name: string): TcError {
  return new TcError(`Cannot find device "${name}"\n`, 1);
}

/** get_qdisc_handle: `MAJ[:]` in hex, or `none`; null when it does not read. */
export function getQdiscHandle(s: string): number | null {
  if (s === 'none') return 0;
  // strtoul(str, &p, 16), then only ':' or the end may follow (what comes after ':' is ignored).
  const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)(.*)$/.exec(s);
  if (m === null) return null;
  if (m[2] !== '' && m[2][0] !== ':') return null;
  const maj = parseInt(m[1], 16);
  if (maj >= 0x10000) return null;
  return (maj << 16) >>> 0;
}

/** get_tc_classid: `root`, `none`, `MAJ:MIN`, `MAJ:`, `:MIN` (hex); null when it does not read. */
export function getTcClassid(s: string): number | null {
  if (s === 'root') return TC_H_ROOT;
  if (s === 'none') return TC_H_UNSPEC;
  const m = /^([0-9a-fA-F]*)(?::([0-9a-fA-F]*))?$/.exec(s);
  if (m === null) return null;
  if (m[1] === '' && m[2] === undefined) return null;
  const maj = m[1] === '' ? 0 : parseInt(m[1], 16);
  if (m[2] === undefined) return maj >>> 0 > 0xffffffff ? null : maj >>> 0;
  if (maj >= 0x10000) return null;
  const min = m[2] === '' ? 0 : parseInt(m[2], 16);
  if (min >= 0x10000) return null;
  return ((maj << 16) | min) >>> 0;
}

/** print_tc_classid. */
export function sprintClassid(h: number): string {
  if (h === TC_H_ROOT) return 'root';
  if (h === TC_H_UNSPEC) return 'none';
  if (tcMajor(h) === 0) return `:${tcMinor(h).toString(16)}`;
  if (tcMinor(h) === 0) return `${tcMajor(h).toString(16)}:`;
  return `${tcMajor(h).toString(16)}:${tcMinor(h).toString(16)}`;
}

// ---- the qdisc tree of one device ----

/** Every qdisc of a device in dump order: the root, the qdiscs under it, then ingress/clsact. */
export function deviceQdiscs(s: DevSched): Qdisc[] {
  const out: Qdisc[] = [];
  const walk = (q: Qdisc): void => {
    // A default child (handle 0, e.g. tbf's bfifo) is not in the device's qdisc hash: not shown.
    if (q.handle !== 0 || q === s.root) out.push(q);
    const c = q.classes;
    if (c === null) return;
    for (const cl of c.list()) {
      const leaf = c.leaf(cl);
      if (leaf !== null) walk(leaf);
    }
  };
  walk(s.root);
  if (s.ingress !== null) out.push(s.ingress);
  return out;
}

/** qdisc_lookup: the qdisc with handle `h` (major) on the device, or null. */
export function qdiscLookup(s: DevSched, h: number): Qdisc | null {
  for (const q of deviceQdiscs(s)) if (q.handle === h) return q;
  return null;
}

/** The qdisc that has `q` as a leaf of one of its classes, or null (root and ingress). */
function parentQdisc(s: DevSched, q: Qdisc): Qdisc | null {
  for (const p of deviceQdiscs(s)) {
    const c = p.classes;
    if (c === null) continue;
    for (const cl of c.list()) if (c.leaf(cl) === q) return p;
  }
  return null;
}

// sch_api.c qdisc_alloc_handle: handles tc did not name are 8001:, 8002:, ... (one counter for all devices).
let autohandle = 0x80000000;
function allocHandle(s: DevSched): number {
  for (let i = 0; i < 0x10000; i++) {
    autohandle = (autohandle + 0x10000) >>> 0;
    if (autohandle === 0xffff0000) autohandle = 0x80000000;
    if (qdiscLookup(s, autohandle) === null) return autohandle;
  }
  throw kernelError('Maximum number of qdisc handles was exceeded');
}

// ---- tc qdisc ----

const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

interface QdiscRequest {
  /** `stab ...`: the size table spec, or null. */
  stab: SizeSpec | null;
  /** `estimator INTERVAL TIME_CONSTANT`, or null. */
  est: EstimatorSpec | null;
  dev: string;
  handle: number;
  parent: number;
  kind: string;
  args: string[];
}

/** tc_qdisc_modify's reading of the command line. */
function readQdiscRequest(args: string[]): QdiscRequest {
  const r: QdiscRequest = { stab: null, est: null, dev: '', handle: 0, parent: 0, kind: '', args: [] };
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    if (a === 'dev') {
      if (++i >= args.length) throw incomplete();
      if (r.dev !== '') throw duparg('dev', args[i]);
      r.dev = args[i];
    } else if (a === 'handle') {
      if (r.handle !== 0) throw duparg('handle', args[i]);
      if (++i >= args.length) throw incomplete();
      const h = getQdiscHandle(args[i]);
      if (h === null) throw invarg('invalid qdisc ID', args[i]);
      r.handle = h;
    } else if (a === 'root') {
      if (r.parent !== 0) throw new TcError('Error: "root" is duplicate parent ID\n', 255);
      r.parent = TC_H_ROOT;
    } else if (a === 'clsact' || a === 'ingress') {
      if (r.parent !== 0) throw new TcError(`Error: "${a}" is ${a === 'clsact' ? 'a duplicate' : 'a duplicate'} parent ID\n`, 255);
      r.parent = TC_H_INGRESS;
      r.kind = a;
      r.handle = 0xffff0000;
      r.args = args.slice(i + 1);
      return r;
    } else if (a === 'parent') {
      if (++i >= args.length) throw incomplete();
      if (r.parent !== 0) throw duparg('parent', args[i]);
      const h = getTcClassid(args[i]);
      if (h === null) throw invarg('invalid parent ID', args[i]);
      r.parent = h;
    } else if (matches(a, 'stab')) {
      try {
        const st = parseStab(args, i + 1);
        r.stab = st.spec;
        i = st.next;
      } catch (e) {
        if (e instanceof TcParseError) throw new TcError(e.message === '' ? '' : `${e.message}\n`, e.exitCode);
        throw e;
      }
      continue;
    } else if (matches(a, 'estimator')) {
      const e = tcEstimator(args, i + 1);
      r.est = e.spec;
      i = e.next - 1;
    } else if (matches(a, 'ingress_block') || matches(a, 'egress_block')) {
      throw new TcError(`tc: "${a}" is not supported here\n`, 1);
    } else if (matches(a, 'help')) {
      throw new TcError(QDISC_USAGE, 255);
    } else {
      r.kind = a;
      r.args = args.slice(i + 1);
      return r;
    }
    i++;
  }
  return r;
}

const QDISC_USAGE =
  'Usage: tc qdisc [ add | del | replace | change | show ] dev STRING\n' +
  '       [ handle QHANDLE ] [ root | ingress | clsact | parent CLASSID ]\n' +
  '       [ estimator INTERVAL TIME_CONSTANT ]\n' +
  '       [ stab [ help | STAB_OPTIONS] ]\n' +
  '       [ ingress_block BLOCK_INDEX ] [ egress_block BLOCK_INDEX ]\n' +
  '       [ [ QDISC_KIND ] [ help | OPTIONS ] ]\n' +
  '\n' +
  '       tc qdisc { show | list } [ dev STRING ] [ QDISC_ID ] [ invisible ]\n' +
  'Where:\n' +
  'QDISC_KIND := { [p|b]fifo | tbf | prio | red | etc. }\n' +
  'OPTIONS := ... try tc qdisc add <desired QDISC_KIND> help\n' +
  'STAB_OPTIONS := ... try tc qdisc add stab help\n' +
  'QDISC_ID := { root | ingress | handle QHANDLE | parent CLASSID }\n';

function tcQdiscModify(env: TcEnv, flags: number, del: boolean, args: string[]): string {
  const r = readQdiscRequest(args);
  // tc's side: the kind's options are read before the device is looked up.
  const kind: QdiscKind | undefined = r.kind !== '' ? QDISC_KINDS.get(r.kind) : undefined;
  let params: unknown = undefined;
  const dev = r.dev !== '' ? env.device(r.dev) : undefined;
  if (kind !== undefined && !del) {
    // tc reads the kind's options before it looks the device up.
    try {
      params = kind.parse(r.args, dev !== undefined ? dev.sched : hostless(r.dev));
    } catch (e) {
      if (e instanceof TcParseError) throw new TcError(e.message.endsWith('\n') ? e.message : e.message + '\n', e.exitCode);
      throw e;
    }
  } else if (kind === undefined && r.args.length > 0) {
    if (r.kind !== '') throw new TcError(`Unknown qdisc "${r.kind}", hence option "${r.args[0]}" is unparsable\n`, 1);
  } else if (kind !== undefined && del) {
    try {
      kind.parse(r.args, dev !== undefined ? dev.sched : hostless(r.dev));
    } catch (e) {
      if (e instanceof TcParseError) throw new TcError(e.message.endsWith('\n') ? e.message : e.message + '\n', e.exitCode);
      throw e;
    }
  }
  if (r.dev === '') throw rtnlError('No such device');
  if (dev === undefined) throw nodev(r.dev);
  const s = dev.sched;
  if (del) return qdiscDelete(s, r);
  return qdiscModify(s, flags, r, kind, params);
}

/** A SchedHost for parsing when tc was given no usable device. */
function hostless(name: string): DevSched {
  return { now: () => 0, random: () => 0, watchdog: () => undefined, mtu: 1500, hardHeaderLen: 14, txQueueLen: 1000, devName: name } as unknown as DevSched;
}

const NOOP_INGRESS = { handle: 0, kind: 'noop' } as unknown as Qdisc;

/** tc_get_qdisc with RTM_DELQDISC. */
function qdiscDelete(s: DevSched, r: QdiscRequest): string {
  const clid = r.parent;
  let q: Qdisc | null = null;
  let p: Qdisc | null = null;
  if (clid !== 0) {
    if (clid !== TC_H_ROOT) {
      if (tcMajor(clid) !== tcMajor(TC_H_INGRESS)) {
        p = qdiscLookup(s, (clid & 0xffff0000) >>> 0);
        if (p === null) throw kernelError('Failed to find qdisc with specified classid');
        q = p.classes?.leaf(clid) ?? null;
      } else if (s.hasIngressQueue) {
        // Once made, the ingress queue holds noop_qdisc (handle 0) while no ingress qdisc is there.
        q = s.ingress ?? NOOP_INGRESS;
      }
    } else {
      q = s.root;
    }
    if (q === null) throw kernelError('Cannot find specified qdisc on specified device');
    if (r.handle !== 0 && q.handle !== r.handle) throw kernelError('Invalid handle');
  } else {
    q = qdiscLookup(s, r.handle);
    if (q === null) throw kernelError('Failed to find qdisc with specified handle');
  }
  if (r.kind !== '' && r.kind !== q.kind) throw kernelError('Invalid qdisc name: must match existing qdisc');
  if (clid === 0) throw kernelError('Classid cannot be zero');
  if (q.handle === 0) throw kernelError('Cannot delete qdisc with handle of zero');
  graft(s, p, clid, null, q);
  trackEstimators(s);
  return '';
}

/** tc_modify_qdisc. */
function qdiscModify(s: DevSched, flags: number, r: QdiscRequest, kind: QdiscKind | undefined, params: unknown): string {
  const clid = r.parent;
  let q: Qdisc | null = null;
  let p: Qdisc | null = null;
  const createOrReplace = (flags & NLM_F_CREATE) !== 0 && (flags & NLM_F_REPLACE) !== 0;
  const createExclusive = (flags & NLM_F_CREATE) !== 0 && (flags & NLM_F_EXCL) !== 0;
  const change = (flags & (NLM_F_CREATE | NLM_F_REPLACE | NLM_F_EXCL)) === 0;
  let createFlags = true;
  if (clid !== 0) {
    if (clid !== TC_H_ROOT) {
      if (clid !== TC_H_INGRESS) {
        p = qdiscLookup(s, (clid & 0xffff0000) >>> 0);
        if (p === null) throw kernelError('Failed to find specified qdisc');
        q = p.classes?.leaf(clid) ?? null;
      } else {
        q = s.ingress;
      }
    } else {
      q = s.root;
    }
    // It may be the default qdisc: ignore it.
    if (q !== null && q.handle === 0) q = null;
    if (q === null || r.handle === 0 || q.handle !== r.handle) {
      if (r.handle !== 0) {
        if (q !== null && (flags & NLM_F_REPLACE) === 0) throw kernelError('NLM_F_REPLACE needed to override');
        if (tcMinor(r.handle) !== 0) throw kernelError('Invalid minor handle');
        q = qdiscLookup(s, r.handle);
        if (q === null) return createAndGraft(s, p, flags, r, kind, params, false);
        if ((flags & NLM_F_EXCL) !== 0) throw kernelError('Exclusivity flag on, cannot override');
        if (r.kind !== '' && r.kind !== q.kind) throw kernelError('Invalid qdisc name: must match existing qdisc');
        if (q === s.ingress) throw kernelError('Cannot regraft ingress or clsact Qdiscs');
        if (q === p) throw kernelError('Qdisc parent/child loop detected');
        if (clid === TC_H_INGRESS) throw kernelError('Ingress cannot graft directly');
        // Moving an existing qdisc to another parent.
        const old = parentQdisc(s, q);
        if (old !== null) for (const cl of old.classes!.list()) if (old.classes!.leaf(cl) === q) old.classes!.graft(cl, null, s);
        else if (s.root === q) s.setRoot(null);
        graft(s, p, clid, q, null);
        return '';
      }
      if (q === null) return createAndGraft(s, p, flags, r, kind, params, false);
      if (r.kind !== '' && r.kind !== q.kind) {
        if (createOrReplace || createExclusive) return createAndGraft(s, p, flags, r, kind, params, false);
        if (change) return createAndGraft(s, p, flags, r, kind, params, true);
      }
    }
  } else {
    if (r.handle === 0) throw kernelError('Handle cannot be zero');
    q = qdiscLookup(s, r.handle);
  }
  createFlags = false;
  void createFlags;
  // Change the qdisc's parameters.
  if (q === null) throw kernelError('Specified qdisc not found');
  if ((flags & NLM_F_EXCL) !== 0) throw kernelError('Exclusivity flag on, cannot modify');
  if (r.kind !== '' && r.kind !== q.kind) throw kernelError('Invalid qdisc name: must match existing qdisc');
  // qdisc_change: the size table given replaces the one there (none given: none kept); an estimator given replaces the old one.
  q.stab = r.stab !== null ? buildStab({ ...r.stab }) : null;
  if (r.est !== null) {
    q.est = new RateEstimator(r.est, s, q.stats);
    trackEstimators(s);
  }
  if (kind !== undefined && params !== undefined) {
    try {
      q.change(params, s);
    } catch (e) {
      if (e instanceof TcError) throw e;
      if (e instanceof TcParseError) throw new TcError(e.message.endsWith('\n') ? e.message : e.message + '\n', e.exitCode);
      throw e;
    }
    s.afterChange();
  }
  return '';
}

function createAndGraft(
  s: DevSched,
  p: Qdisc | null,
  flags: number,
  r: QdiscRequest,
  kind: QdiscKind | undefined,
  params: unknown,
  skipCreateCheck: boolean,
): string {
  if (!skipCreateCheck && (flags & NLM_F_CREATE) === 0) throw kernelError('Qdisc not found. To create specify NLM_F_CREATE flag');
  const clid = r.parent;
  // qdisc_create.
  if (kind === undefined) {
    if (r.kind === '') throw kernelError('Specified qdisc kind is unknown');
    throw kernelError('Specified qdisc kind is unknown');
  }
  let handle = r.handle;
  if (clid === TC_H_INGRESS) {
    if (r.kind !== 'ingress' && r.kind !== 'clsact') throw rtnlError('Operation not supported');
    handle = 0xffff0000;
  } else {
    if (r.kind === 'ingress' || r.kind === 'clsact') throw rtnlError('Operation not supported');
    if (handle === 0) handle = allocHandle(s);
  }
  if (clid === 0) throw rtnlError('Invalid argument');
  let q: Qdisc;
  try {
    q = kind.create(params, s, handle, clid);
  } catch (e) {
    if (e instanceof TcError) throw e;
    if (e instanceof TcParseError) throw new TcError(e.message.endsWith('\n') ? e.message : e.message + '\n', e.exitCode);
    throw e;
  }
  if (r.stab !== null) q.stab = buildStab({ ...r.stab });
  if (r.est !== null) q.est = new RateEstimator(r.est, s, q.stats);
  graft(s, p, clid, q, null);
  trackEstimators(s);
  return '';
}

/** The device's qdiscs with estimators, for the egress path to advance (DevSched.estimated). */
function trackEstimators(s: DevSched): void {
  s.estimated = deviceQdiscs(s).filter((q) => q.est && q !== s.ingress);
}

/** qdisc_graft: puts `q` (or nothing) where `old` was: the root, ingress, or a class of `p`. */
function graft(s: DevSched, p: Qdisc | null, clid: number, q: Qdisc | null, old: Qdisc | null): void {
  if (p === null) {
    if (clid === TC_H_INGRESS) {
      if (q === null) {
        s.ingress?.reset();
        s.ingress = null;
      } else {
        s.ingress?.reset();
        s.ingress = q;
        s.hasIngressQueue = true;
      }
      return;
    }
    s.setRoot(q);
    return;
  }
  const c = p.classes;
  if (c === null) throw rtnlError('Operation not supported');
  if (q !== null && q.stab) throw kernelError('STAB not supported on a non root');
  const found = c.find !== undefined ? c.find(clid) : c.leaf(clid) !== null || c.list().includes(clid);
  if (!found) throw kernelError('Specified class not found');
  void old;
  c.graft(clid, q, s);
}

// ---- printing ----

/** One `tc qdisc show` entry (print_qdisc). */
export function formatQdisc(q: Qdisc, dev: TcDev | null, g: TcGlobals, refcnt: number): string {
  let out = `qdisc ${q.kind} ${(q.handle >>> 16).toString(16)}: `;
  if (dev !== null) out += `dev ${dev.name} `;
  if (q.parent === TC_H_ROOT) out += 'root ';
  else if (q.parent !== 0) out += `parent ${sprintClassid(q.parent)} `;
  if (refcnt !== 1) out += `refcnt ${refcnt} `;
  out += q.printOptions(g.details);
  out += '\n';
  if (g.details && q.stab) out += `${q.stab.print()}\n`;
  if (g.stats) {
    out += formatStats(q);
    out += q.printXstats();
  }
  return out;
}

/** The two standard `tc -s` lines (print_tcstats2_attr). */
export function formatStats(q: Qdisc): string {
  const st = q.stats;
  // With an estimator its rate line leads the backlog line (print_tcstats2_attr).
  const rate = q.est ? ` rate ${sprintRate(q.est.bps())} ${q.est.pps()}pps` : '\n';
  return (
    ` Sent ${st.bytes} bytes ${st.packets} pkt (dropped ${st.drops}, overlimits ${st.overlimits} requeues ${st.requeues}) \n` +
    `${q.est ? rate : ''} backlog ${sprintSizeBacklog(st.backlog)} ${st.qlen}p requeues ${st.requeues}\n`
  );
}

import { sprintRate, sprintSize } from '../sched/units.js';
const sprintSizeBacklog = sprintSize;

export function qdiscJson(q: Qdisc, dev: TcDev | null, g: TcGlobals, refcnt: number): Record<string, IpJson> {
  const o: Record<string, IpJson> = { kind: q.kind, handle: `${(q.handle >>> 16).toString(16)}:` };
  if (dev !== null) o.dev = dev.name;
  if (q.parent === TC_H_ROOT) o.root = true;
  else if (q.parent !== 0) o.parent = sprintClassid(q.parent);
  if (refcnt !== 1) o.refcnt = refcnt;
  o.options = q.jsonOptions(g.details) as Record<string, IpJson>;
  if (g.details && q.stab) o.stab = q.stab.json() as Record<string, IpJson>;
  if (g.stats) {
    const st = q.stats;
    o.bytes = st.bytes;
    o.packets = st.packets;
    o.drops = st.drops;
    o.overlimits = st.overlimits;
    o.requeues = st.requeues;
    if (q.est) {
      o.rate = q.est.bps();
      o.pps = q.est.pps();
    }
    o.backlog = st.backlog;
    o.qlen = st.qlen;
    const x = q.jsonXstats();
    if (x !== null) Object.assign(o, x as Record<string, IpJson>);
  }
  return o;
}

/** The refcnt tc shows (tcm_info): 2 for the root qdisc of a device, else 1. */
function refcntOf(s: DevSched, q: Qdisc): number {
  return q === s.root ? 2 : 1;
}

function tcQdiscList(env: TcEnv, g: TcGlobals, args: string[]): string {
  let devName = '';
  let filterParent = 0;
  let filterHandle = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'dev') {
      if (++i >= args.length) throw incomplete();
      devName = args[i];
    } else if (a === 'root' || a === 'ingress' || a === 'clsact') {
      if (filterParent !== 0) throw invarg('parent is already specified', a);
      if (filterHandle !== 0) throw invarg('handle is already specified', a);
      filterParent = a === 'root' ? TC_H_ROOT : TC_H_INGRESS;
    } else if (matches(a, 'parent')) {
      if (filterParent !== 0) throw invarg('parent is already specified', a);
      if (filterHandle !== 0) throw invarg('handle is already specified', a);
      if (++i >= args.length) throw incomplete();
      const h = getTcClassid(args[i]);
      if (h === null) throw invarg('invalid parent ID', args[i]);
      filterParent = h;
    } else if (matches(a, 'handle')) {
      if (filterParent !== 0) throw invarg('parent is already specified', a);
      if (filterHandle !== 0) throw invarg('handle is already specified', a);
      if (++i >= args.length) throw incomplete();
      const h = getQdiscHandle(args[i]);
      if (h === null) throw invarg('invalid handle ID', args[i]);
      filterHandle = h;
    } else if (matches(a, 'help')) {
      throw new TcError(QDISC_USAGE, 255);
    } else if (a === 'invisible') {
      continue;
    } else {
      throw new TcError(`What is "${a}"? Try "tc qdisc help".\n`, 255);
    }
  }
  let devs: readonly TcDev[];
  if (devName !== '') {
    const d = env.device(devName);
    if (d === undefined) throw nodev(devName);
    devs = [d];
  } else {
    devs = env.devices();
  }
  let text = '';
  const json: IpJson[] = [];
  for (const d of devs) {
    for (const q of deviceQdiscs(d.sched)) {
      if (filterHandle !== 0 && q.handle !== filterHandle) continue;
      if (filterParent !== 0 && q.parent !== filterParent) continue;
      const shown = devName !== '' ? null : d;
      const ref = refcntOf(d.sched, q);
      if (g.json) json.push(qdiscJson(q, shown, g, ref));
      else text += formatQdisc(q, shown, g, ref);
    }
  }
  return g.json ? iprouteJson(json, g.pretty) : text;
}

function doQdisc(env: TcEnv, g: TcGlobals, args: string[]): string {
  if (args.length < 1) return tcQdiscList(env, g, []);
  const a = args[0];
  const rest = args.slice(1);
  if (matches(a, 'add')) return tcQdiscModify(env, NLM_F_EXCL | NLM_F_CREATE, false, rest);
  if (matches(a, 'change')) return tcQdiscModify(env, 0, false, rest);
  if (matches(a, 'replace')) return tcQdiscModify(env, NLM_F_CREATE | NLM_F_REPLACE, false, rest);
  if (matches(a, 'link')) return tcQdiscModify(env, NLM_F_REPLACE, false, rest);
  if (matches(a, 'delete')) return tcQdiscModify(env, 0, true, rest);
  if (matches(a, 'list') || matches(a, 'show') || matches(a, 'lst')) return tcQdiscList(env, g, rest);
  if (matches(a, 'help')) throw new TcError(QDISC_USAGE, 0);
  throw new TcError(`Command "${a}" is unknown, try "tc qdisc help".\n`, 255);
}

const TC_USAGE =
  'Usage:\ttc [ OPTIONS ] OBJECT { COMMAND | help }\n' +
  '\ttc [-force] -batch filename\n' +
  'where  OBJECT := { qdisc | class | filter | chain |\n' +
  '\t\t    action | monitor | exec }\n' +
  '       OPTIONS := { -V[ersion] | -s[tatistics] | -d[etails] | -r[aw] |\n' +
  '\t\t    -o[neline] | -j[son] | -p[retty] | -c[olor]\n' +
  '\t\t    -b[atch] [filename] | -n[etns] name | -N[umeric] |\n' +
  '\t\t     -nm | -nam[es] | { -cf | -conf } path\n' +
  '\t\t     -br[ief] }\n';

/** Reads tc's global options (tc.c main); returns them and the words after. */
export function parseTcGlobals(argv: readonly string[]): { g: TcGlobals; rest: string[] } {
  const g: TcGlobals = { stats: false, details: false, json: false, pretty: false, raw: false };
  let i = 0;
  for (; i < argv.length; i++) {
    let a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-')) break;
    if (a.startsWith('--')) a = a.slice(1);
    if (matches(a, '-stats') || matches(a, '-statistics')) g.stats = true;
    else if (matches(a, '-details')) g.details = true;
    else if (matches(a, '-raw')) g.raw = true;
    else if (matches(a, '-pretty')) g.pretty = true;
    else if (matches(a, '-json')) g.json = true;
    else if (matches(a, '-iec') || matches(a, '-Numeric') || matches(a, '-oneline') || matches(a, '-brief') || matches(a, '-names') || a === '-nm') continue;
    else if (matches(a, '-help')) throw new TcError(TC_USAGE, 0);
    else if (matches(a, '-Version')) throw new TcError('tc utility, iproute2-6.1.0, libbpf 1.1.2\n', 0);
    else throw new TcError(`Option "${argv[i]}" is unknown, try "tc -help".\n`, 255);
  }
  return { g, rest: argv.slice(i) };
}

/** Runs one tc command line (the words after `tc`). */
export function runTc(env: TcEnv, argv: readonly string[]): TcResult {
  try {
    const { g, rest } = parseTcGlobals(argv);
    if (rest.length === 0) return { code: 255, stdout: '', stderr: TC_USAGE };
    const obj = rest[0];
    const args = rest.slice(1);
    if (matches(obj, 'qdisc')) return { code: 0, stdout: doQdisc(env, g, args), stderr: '' };
    for (const name of ['class', 'filter', 'chain', 'actions']) {
      if (!matches(obj, name)) continue;
      const h = tcObjects.get(name);
      if (h === undefined) return { code: 1, stdout: '', stderr: `tc: "${name}" is not supported\n` };
      return h(env, g, args);
    }
    if (matches(obj, 'help')) return { code: 0, stdout: '', stderr: TC_USAGE };
    return { code: 255, stdout: '', stderr: `Object "${obj}" is unknown, try "tc help".\n` };
  } catch (e) {
    if (e instanceof TcError) {
      // -V prints to stdout; the usage texts go to stderr.
      if (e.code === 0) return e.message.startsWith('tc utility') ? { code: 0, stdout: e.message, stderr: '' } : { code: 0, stdout: '', stderr: e.message };
      return { code: e.code, stdout: '', stderr: e.message };
    }
    if (e instanceof TcParseError) return { code: e.exitCode, stdout: '', stderr: e.message.endsWith('\n') ? e.message : e.message + '\n' };
    throw e;
  }
}

/** Whether a tc command line changes state (a config file takes only those). */
export function tcChanges(argv: readonly string[]): boolean {
  const { rest } = parseTcGlobals(argv);
  if (rest.length < 2) return false;
  const verb = rest[1];
  return !(matches(verb, 'show') || matches(verb, 'list') || matches(verb, 'lst') || matches(verb, 'get') || matches(verb, 'help'));
}

// getInteger is re-exported for the class/filter front ends, which read numbers as tc does.
export { getInteger };
