import * as fs from 'node:fs';
import { parseIp4 } from '../wire/addr.js';
import { TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, type RouteProto, type RouteType } from '../ip/route.js';
import type { RuleAction } from '../ip/fib.js';
import { CommandError, type Words } from './words.js';

/**
 * iproute2's `ip route` and `ip rule` grammars (iproute.c, iprule.c): the
 * selectors, types, tables by number or name, multipath next hops.
 */

export interface NexthopSpec {
  via?: number;
  dev?: string;
  weight?: number;
}

export type RouteModifyCommand = {
  kind: 'route-add' | 'route-del' | 'route-replace';
  dst: number;
  prefixLen: number;
  via?: number;
  dev?: string;
  src?: number;
  metric?: number;
  table?: number;
  /** `nat` and `xresolve` parse, as in iproute2, and the kernel refuses them. */
  type?: RouteType | 'nat' | 'xresolve';
  mtu?: number;
  proto?: RouteProto;
  nexthops?: NexthopSpec[];
};

export interface RouteGetCommand {
  kind: 'route-get';
  dst: number;
  json: boolean;
  from?: number;
  iif?: string;
  oif?: string;
  mark?: number;
  tos?: number;
}

export interface RuleSpec {
  pref?: number;
  invert?: boolean;
  src?: number;
  srcLen?: number;
  dst?: number;
  dstLen?: number;
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  tos?: number;
  action?: RuleAction;
  table?: number;
}

export type RouteCommand =
  | RouteModifyCommand
  | RouteGetCommand
  | { kind: 'route-flush'; table?: number; dev?: string }
  | { kind: 'route-show'; json: boolean; table?: number | 'all'; dev?: string }
  | { kind: 'rule-add' | 'rule-del'; rule: RuleSpec }
  | { kind: 'rule-flush' }
  | { kind: 'rule-show'; json: boolean };

const BUILTIN_TABLES: [string, number][] = [
  ['local', TABLE_LOCAL],
  ['main', TABLE_MAIN],
  ['default', TABLE_DEFAULT],
];

let tableNames: Map<string, number> | null = null;

/** /etc/iproute2/rt_tables and rt_tables.d/*.conf, as iproute2's rtnl_tab_initialize reads them. */
function loadTableNames(): Map<string, number> {
  if (tableNames !== null) return tableNames;
  const m = new Map<string, number>(BUILTIN_TABLES);
  const files = ['/etc/iproute2/rt_tables'];
  try {
    for (const f of fs.readdirSync('/etc/iproute2/rt_tables.d').sort()) if (f.endsWith('.conf')) files.push(`/etc/iproute2/rt_tables.d/${f}`);
  } catch {
    // No directory: only the main file.
  }
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const t = line.replace(/#.*/, '').trim().split(/\s+/);
      if (t.length < 2) continue;
      const id = /^0x[0-9a-f]+$/i.test(t[0]) ? parseInt(t[0], 16) : /^\d+$/.test(t[0]) ? Number(t[0]) : NaN;
      if (Number.isInteger(id) && id >= 0 && id <= 0xffffffff) m.set(t[1], id);
    }
  }
  tableNames = m;
  return m;
}

/** A table's name as iproute2 prints it (rtnl_rttable_n2a). */
export function tableName(id: number): string {
  for (const [name, n] of BUILTIN_TABLES) if (n === id) return name;
  for (const [name, n] of loadTableNames()) if (n === id) return name;
  return String(id);
}

function tableArg(w: Words, allowAll: boolean): number | 'all' {
  const s = w.next('a table (a number or a name)');
  if (allowAll && s === 'all') return 'all';
  if (/^\d+$/.test(s) && Number(s) <= 0xffffffff) return Number(s);
  const id = loadTableNames().get(s);
  if (id === undefined) throw w.error('"table" value is invalid', s);
  return id;
}

function numArg(w: Words, what: string, max: number): number {
  const s = w.next(what);
  const n = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n > max) throw w.error(`expected ${what} (a number up to ${max})`, s);
  return n;
}

function addrArg(w: Words, what: string): number {
  const s = w.next(what);
  const a = parseIp4(s);
  if (a === null) throw w.error(`expected ${what} (A.B.C.D)`, s);
  return a;
}

/** PREFIX, `default`, or `all` (the same as 0/0). Host bits must be clear, as the kernel insists. */
function prefixArg(w: Words, s: string, what: string): { addr: number; len: number } {
  if (s === 'default' || s === 'all' || s === 'any') return { addr: 0, len: 0 };
  const [a, l, extra] = s.split('/');
  const addr = parseIp4(a);
  if (addr === null || extra !== undefined || (l !== undefined && (!/^\d+$/.test(l) || Number(l) > 32)))
    throw w.error(`expected ${what} (default or A.B.C.D/LEN)`, s);
  const len = l === undefined ? 32 : Number(l);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  if (((addr & mask) >>> 0) !== addr) throw new CommandError('Error: Invalid prefix for given prefix length.', null, s);
  return { addr, len };
}

/** iproute2's rtnl_dsfield_a2n: a number, hex or decimal. */
function tosArg(w: Words): number {
  return numArg(w, 'a TOS value', 255);
}

/** iproute2's rtnl_rtntype_a2n: every route type it knows by name. */
const ROUTE_TYPES = ['unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'] as const;
const PROTOS = ['kernel', 'boot', 'static'] as const;

/** `ip route ...` after the object word. */
export function parseRoute(w: Words, json: boolean): RouteCommand {
  if (w.done) return { kind: 'route-show', json };
  const verb = w.choose(['add', 'change', 'replace', 'delete', 'show', 'list', 'flush', 'get'] as const, 'a route command');
  if (verb === 'show' || verb === 'list' || verb === 'flush') return parseRouteSelect(w, verb === 'flush' ? 'flush' : 'show', json);
  if (verb === 'get') return parseRouteGet(w, json);
  const kind = verb === 'add' ? 'route-add' : verb === 'delete' ? 'route-del' : 'route-replace';
  const cmd: RouteModifyCommand = { kind, dst: 0, prefixLen: 0 };
  let haveDst = false;
  while (!w.done) {
    const k = w.next('a route keyword');
    switch (k) {
      case 'via':
        cmd.via = addrArg(w, 'a gateway address');
        break;
      case 'dev':
      case 'oif':
        cmd.dev = w.next('a device name');
        break;
      case 'src':
        cmd.src = addrArg(w, 'a source address');
        break;
      case 'metric':
      case 'priority':
      case 'preference':
        cmd.metric = numArg(w, 'a metric', 0xffffffff);
        break;
      case 'table':
        cmd.table = tableArg(w, false) as number;
        break;
      case 'mtu': {
        if (w.accept('lock')) {
          /* `mtu lock N`: the lock only stops PMTU discovery from raising it */
        }
        cmd.mtu = numArg(w, 'an MTU', 0xffffffff);
        break;
      }
      case 'proto':
      case 'protocol':
        cmd.proto = w.choose(PROTOS, 'a protocol');
        break;
      case 'nexthop':
        cmd.nexthops = parseNexthops(w);
        break;
      case 'to':
        break;
      default: {
        if ((ROUTE_TYPES as readonly string[]).includes(k)) {
          cmd.type = k as RouteModifyCommand['type'];
          break;
        }
        if (haveDst || !/^(\d|default$|all$|any$)/.test(k))
          throw w.error('unknown or unsupported word (expected via, dev, src, metric, table, mtu, proto or nexthop)', k);
        const p = prefixArg(w, k, 'a destination');
        cmd.dst = p.addr;
        cmd.prefixLen = p.len;
        haveDst = true;
      }
    }
  }
  if (!haveDst) throw w.error('expected a destination (default or A.B.C.D/LEN)');
  // Only a unicast route needs a next hop from the grammar; the kernel answers for the other types.
  const unicast = cmd.type === undefined || cmd.type === 'unicast';
  if (kind !== 'route-del' && unicast && cmd.via === undefined && cmd.dev === undefined && cmd.nexthops === undefined)
    throw w.error('expected via GATEWAY or dev NAME');
  return cmd;
}

/** `nexthop via A dev D weight W nexthop ...` to the end of the command (iproute2's parse_nexthops). */
function parseNexthops(w: Words): NexthopSpec[] {
  const hops: NexthopSpec[] = [{}];
  while (!w.done) {
    const k = w.next('a nexthop keyword');
    const nh = hops[hops.length - 1];
    if (k === 'nexthop') hops.push({});
    else if (k === 'via') nh.via = addrArg(w, 'a gateway address');
    else if (k === 'dev') nh.dev = w.next('a device name');
    else if (k === 'weight') {
      const n = numArg(w, 'a weight', 256);
      if (n < 1) throw w.error('"weight" value is invalid', String(n));
      nh.weight = n;
    } else throw w.error('unknown or unsupported word in nexthop (expected via, dev or weight)', k);
  }
  for (const nh of hops) if (nh.via === undefined && nh.dev === undefined) throw w.error('expected via GATEWAY or dev NAME in nexthop');
  return hops;
}

function parseRouteSelect(w: Words, what: 'show' | 'flush', json: boolean): RouteCommand {
  let table: number | 'all' | undefined;
  let dev: string | undefined;
  while (!w.done) {
    const k = w.next('table TABLE or dev NAME');
    if (k === 'table') table = tableArg(w, true);
    else if (k === 'dev' || k === 'oif') dev = w.next('a device name');
    else throw w.error('unknown or unsupported selector (expected table or dev)', k);
  }
  if (what === 'show') return { kind: 'route-show', json, table, dev };
  if (table === undefined && dev === undefined) throw new CommandError('"ip route flush" requires arguments.');
  if (table === 'all') throw w.error('"table all" is not supported for flush', 'all');
  return { kind: 'route-flush', table, dev };
}

function parseRouteGet(w: Words, json: boolean): RouteGetCommand {
  let dst: number | undefined;
  const cmd: RouteGetCommand = { kind: 'route-get', dst: 0, json };
  while (!w.done) {
    const k = w.next('an address');
    if (k === 'from') cmd.from = addrArg(w, 'a source address');
    else if (k === 'iif') cmd.iif = w.next('a device name');
    else if (k === 'oif' || k === 'dev') cmd.oif = w.next('a device name');
    else if (k === 'mark') cmd.mark = numArg(w, 'a mark', 0xffffffff);
    else if (k === 'tos' || k === 'dsfield') cmd.tos = tosArg(w);
    else if (k === 'to') dst = addrArg(w, 'an address');
    else {
      const a = parseIp4(k.replace(/\/32$/, ''));
      if (a === null || dst !== undefined) throw w.error('expected an IPv4 address', k);
      dst = a;
    }
  }
  if (dst === undefined) throw w.error('expected an IPv4 address');
  cmd.dst = dst;
  if (cmd.from === undefined) delete cmd.from;
  return cmd;
}

/** `ip rule ...` after the object word. */
export function parseRule(w: Words, json: boolean): RouteCommand {
  if (w.done) return { kind: 'rule-show', json };
  const verb = w.choose(['add', 'delete', 'flush', 'list', 'show'] as const, 'a rule command');
  if (verb === 'list' || verb === 'show') {
    if (!w.done) throw w.error('selectors for "ip rule show" are not supported', w.peek());
    return { kind: 'rule-show', json };
  }
  if (verb === 'flush') {
    w.end();
    return { kind: 'rule-flush' };
  }
  const rule: RuleSpec = {};
  while (!w.done) {
    const k = w.next('a rule keyword');
    switch (k) {
      case 'not':
        rule.invert = true;
        break;
      case 'from':
      case 'to': {
        const p = prefixArg(w, w.next('a prefix'), 'a prefix');
        if (k === 'from') {
          rule.src = p.addr;
          rule.srcLen = p.len;
        } else {
          rule.dst = p.addr;
          rule.dstLen = p.len;
        }
        break;
      }
      case 'tos':
      case 'dsfield':
        rule.tos = tosArg(w);
        break;
      case 'fwmark': {
        const s = w.next('a mark N or N/MASK');
        const [m, mask, extra] = s.split('/');
        const num = (x: string) => (/^0x[0-9a-f]+$/i.test(x) ? parseInt(x, 16) : /^\d+$/.test(x) ? Number(x) : NaN);
        const mv = num(m);
        const kv = mask === undefined ? 0xffffffff : num(mask);
        if (extra !== undefined || !Number.isInteger(mv) || !Number.isInteger(kv) || mv > 0xffffffff || kv > 0xffffffff)
          throw w.error('"fwmark" value is invalid', s);
        rule.fwmark = mv;
        rule.fwmask = kv;
        break;
      }
      case 'iif':
      case 'dev':
        rule.iif = w.next('a device name');
        break;
      case 'oif':
        rule.oif = w.next('a device name');
        break;
      case 'pref':
      case 'priority':
      case 'order':
        rule.pref = numArg(w, 'a preference', 0xffffffff);
        break;
      case 'table':
      case 'lookup':
        rule.table = tableArg(w, false) as number;
        break;
      case 'type':
        rule.action = w.choose(['blackhole', 'unreachable', 'prohibit'] as const, 'a rule type');
        break;
      case 'blackhole':
      case 'unreachable':
      case 'prohibit':
        rule.action = k;
        break;
      default:
        throw w.error('unknown or unsupported rule keyword (expected from, to, tos, fwmark, iif, oif, pref, lookup, blackhole, unreachable or prohibit)', k);
    }
  }
  if (verb === 'add') {
    // iprule_modify: a rule without a table or a type looks in main.
    if (rule.action === undefined) rule.action = 'lookup';
    if (rule.action === 'lookup' && rule.table === undefined) rule.table = TABLE_MAIN;
  } else if (rule.table !== undefined && rule.action === undefined) rule.action = 'lookup';
  return { kind: verb === 'add' ? 'rule-add' : 'rule-del', rule };
}
