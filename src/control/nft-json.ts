import type { Chain, Expr, Field, KeyExpr, MarkValue, NamedSet, Rhs, Rule, SetElement, Table, VerdictAst } from '../netfilter/ast.js';
import { formatIp4 } from '../wire/addr.js';
import { FLAG_TYPES, SYMBOLS, fieldType, keyTypes, setTypeName, symbolName, type NftType } from './nft-names.js';
import { ICMPX_NAMES, NAT_FLAG_ORDER, type PrintOptions, type PrintSource } from './nft-print.js';

/**
 * `nft -j list ...`: nft's JSON schema (libnftables-json(5)), written with
 * jansson's separators as nft writes them.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The nft release whose JSON this mimics. */
const METAINFO: Json = { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } };

export function stringifyJson(v: Json): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(stringifyJson).join(', ')}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${JSON.stringify(k)}: ${stringifyJson(x)}`)
    .join(', ')}}`;
}

function value(type: NftType, v: number, o: PrintOptions): Json {
  switch (type) {
    case 'ipv4_addr':
      return formatIp4(v >>> 0);
    case 'ifindex':
      return o.ifname?.(v) ?? v;
    case 'inet_service':
    case 'integer':
    case 'mark':
      return v;
    case 'time':
      return Math.round(v / 1000);
    case 'boolean':
      return v !== 0;
    case 'inet_proto':
      return o.numericProto === true ? v : (symbolName(type, v) ?? v);
    case 'tcp_flag':
    case 'ct_state':
    case 'ct_status':
      return flags(type, v);
    default:
      return symbolName(type, v) ?? v;
  }
}

function flags(type: NftType, v: number): Json {
  const names = (SYMBOLS[type] ?? []).filter(([, b]) => (v & b) !== 0).map(([n]) => n);
  return names.length === 1 ? names[0] : names;
}

function prefixLen(lo: number, hi: number): number | null {
  for (let len = 0; len <= 32; len++) {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((lo & mask) >>> 0) === lo >>> 0 && ((lo | (~mask >>> 0)) >>> 0) === hi >>> 0) return len;
  }
  return null;
}

function part(type: NftType, key: number, end: number | undefined, o: PrintOptions): Json {
  if (end === undefined || end === key) return value(type, key, o);
  if (type === 'ipv4_addr') {
    const len = prefixLen(key, end);
    if (len !== null) return { prefix: { addr: formatIp4(key >>> 0), len } };
  }
  return { range: [value(type, key, o), value(type, end, o)] };
}

function elemKey(types: NftType[], el: SetElement, o: PrintOptions): Json {
  if (typeof el.key === 'number') return part(types[0], el.key, typeof el.end === 'number' ? el.end : undefined, o);
  const end = el.end;
  return { concat: el.key.map((k, i) => part(types[i] ?? 'integer', k, Array.isArray(end) ? end[i] : undefined, o)) };
}

function verdict(v: VerdictAst): Json {
  return v.kind === 'jump' || v.kind === 'goto' ? { [v.kind]: { target: v.chain } } : { [v.kind]: null };
}

function data(d: SetElement['data'], map: NamedSet['map'] | 'mark' | 'ipv4_addr', o: PrintOptions): Json {
  if (d === undefined) return null;
  if (typeof d !== 'number') return verdict(d);
  if (map === 'ipv4_addr . inet_service') return { concat: [formatIp4(Math.floor(d / 65536)), d % 65536] };
  return value(map === undefined || map === 'verdict' ? 'integer' : map, d, o);
}

function sorted(els: SetElement[]): SetElement[] {
  const k = (e: SetElement): number[] => (typeof e.key === 'number' ? [e.key] : e.key);
  return [...els].sort((a, b) => {
    const x = k(a);
    const y = k(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return (x[i] >>> 0) - (y[i] >>> 0);
    return 0;
  });
}

function field(f: Field): Json {
  switch (f.kind) {
    case 'payload':
      return { payload: { protocol: f.proto, field: f.field } };
    case 'meta':
      return { meta: { key: f.key } };
    case 'ct':
      if (f.dir !== undefined && f.key !== 'protocol') return { ct: { key: f.ip === true ? `ip ${f.key}` : f.key, dir: f.dir } };
      return { ct: { key: f.key } };
    case 'numgen':
      return { numgen: { mode: f.mode, mod: f.mod, offset: f.offset ?? 0 } };
    case 'fib':
      return { fib: { result: f.result, flags: f.flags } };
  }
}

function key(k: KeyExpr): Json {
  return k.kind === 'concat' ? { concat: k.fields.map(field) } : field(k);
}

function rhs(types: NftType[], r: Rhs, o: PrintOptions): Json {
  switch (r.kind) {
    case 'value':
      return value(types[0], r.value, o);
    case 'range':
      return { range: [value(types[0], r.lo, o), value(types[0], r.hi, o)] };
    case 'prefix':
      return { prefix: { addr: formatIp4(r.addr >>> 0), len: r.len } };
    case 'set':
      return { set: sorted(r.elements).map((e) => elemKey(types, e, o)) };
    case 'setref':
      return `@${r.name}`;
  }
}

const OPS = { eq: '==', ne: '!=', lt: '<', gt: '>', le: '<=', ge: '>=' } as const;

function unitOf(n: number): [number, string] {
  if (n !== 0 && n % (1024 * 1024) === 0) return [n / (1024 * 1024), 'mbytes'];
  if (n !== 0 && n % 1024 === 0) return [n / 1024, 'kbytes'];
  return [n, 'bytes'];
}

function expr(e: Expr, t: Table, rule: Rule, index: number, src: PrintSource | null, o: PrintOptions): Json {
  switch (e.kind) {
    case 'match': {
      const types = keyTypes(e.left);
      const type = types[0];
      // nft writes a fib lookup's device index as a string when no interface has it.
      if (e.left.kind === 'fib' && type === 'ifindex' && e.mask === undefined && (e.right.kind === 'value' || e.right.kind === 'set')) {
        const dev = (v: number): Json => o.ifname?.(v) ?? String(v);
        const right: Json = e.right.kind === 'value' ? dev(e.right.value) : { set: sorted(e.right.elements).map((el) => dev(el.key as number)) };
        return { match: { op: OPS[e.op], left: key(e.left), right } };
      }
      if (FLAG_TYPES.has(type) && e.mask !== undefined && e.right.kind === 'value') {
        if (e.op === 'ne' && e.right.value === 0) return { match: { op: 'in', left: key(e.left), right: flags(type, e.mask) } };
        if (e.op === 'eq') {
          const m = flags(type, e.mask);
          return { match: { op: '==', left: { '&': [key(e.left), Array.isArray(m) ? m : [m]] }, right: flags(type, e.right.value) } };
        }
      }
      const left = e.mask !== undefined ? { '&': [key(e.left), value(type, e.mask, o)] } : key(e.left);
      return { match: { op: OPS[e.op], left, right: rhs(types, e.right, o) } };
    }
    case 'ifname':
    case 'fib-name': {
      const names = [...e.names].sort();
      const left: Json = e.kind === 'ifname' ? { meta: { key: e.dir } } : { fib: { result: 'oifname', flags: e.flags } };
      return { match: { op: e.op === 'ne' ? '!=' : '==', left, right: names.length === 1 ? names[0] : { set: names } } };
    }
    case 'limit': {
      const l: { [k: string]: Json } = {};
      if (e.per === 'packets') {
        l.rate = e.rate;
        l.burst = e.burst ?? 5;
        l.per = e.unit;
        if (e.over === true) l.inv = true;
      } else {
        const [r, ru] = unitOf(e.rate);
        const [b, bu] = unitOf(e.burst ?? 0);
        l.rate = r;
        l.burst = b;
        l.per = e.unit;
        if (e.over === true) l.inv = true;
        l.rate_unit = ru;
        l.burst_unit = bu;
      }
      return { limit: l };
    }
    case 'verdict':
      return verdict(e.verdict);
    case 'reject': {
      if (e.with?.type === 'tcp-reset') return { reject: { type: 'tcp reset' } };
      const code = e.with?.code ?? 3;
      const x = e.with === undefined ? t.family === 'inet' : e.with.icmpx === true;
      const name = x ? ICMPX_NAMES.find(([, c]) => c === code)?.[0] : symbolName('icmp_code', code);
      return { reject: { type: x ? 'icmpx' : 'icmp', expr: name ?? code } };
    }
    case 'counter': {
      if (e.name !== undefined) return { counter: e.name };
      if (o.stateless === true) return { counter: null };
      const c = src?.ruleCounter(t, rule, index) ?? { packets: 0, bytes: 0 };
      return { counter: { packets: c.packets, bytes: c.bytes } };
    }
    case 'log': {
      if (e.prefix === undefined && (e.level === undefined || e.level === 'warn')) return { log: null };
      const l: { [k: string]: Json } = {};
      if (e.prefix !== undefined) l.prefix = e.prefix;
      if (e.level !== undefined && e.level !== 'warn') l.level = e.level;
      return { log: l };
    }
    case 'meta-set':
    case 'ct-set':
      return { mangle: { key: e.kind === 'ct-set' ? { ct: { key: 'mark' } } : { meta: { key: 'mark' } }, value: markJson(e.value, o) } };
    case 'connmark':
      return { xt: { type: 'target', name: 'CONNMARK' } };
    case 'xt':
      return { xt: { type: e.type, name: e.name } };
    case 'ct-state-nat':
      return { xt: { type: 'match', name: 'conntrack' } };
    case 'connlimit':
      return { 'ct count': e.over === true ? { val: e.count, inv: true } : { val: e.count } };
    case 'nat': {
      const j: { [k: string]: Json } = {};
      if (e.addrMap !== undefined) {
        const m = e.addrMap;
        const dt = m.withPort === true ? 'ipv4_addr . inet_service' : 'ipv4_addr';
        const d: Json = m.map.kind === 'setref' ? `@${m.map.name}` : { set: sorted(m.map.elements).map((el) => [elemKey(keyTypes(m.key), el, o), data(el.data, dt, o)]) };
        if (m.withPort === true) j.family = 'ip';
        j.addr = { map: { key: key(m.key), data: d } };
      } else if (e.addr !== undefined) {
        const len = e.addrEnd === undefined ? null : prefixLen(e.addr, e.addrEnd);
        if (e.addrEnd === undefined) j.addr = formatIp4(e.addr >>> 0);
        else if (len !== null) j.addr = { prefix: { addr: formatIp4(e.addr >>> 0), len } };
        else j.addr = { range: [formatIp4(e.addr >>> 0), formatIp4(e.addrEnd >>> 0)] };
      }
      if (e.port !== undefined) j.port = e.portEnd !== undefined ? { range: [e.port, e.portEnd] } : e.port;
      const fl = NAT_FLAG_ORDER.filter((f) => e.flags?.includes(f) === true);
      if (fl.length > 0) j.flags = fl.length === 1 ? fl[0] : fl;
      return { [e.type]: Object.keys(j).length === 0 ? null : j };
    }
    case 'payload-set':
      return {
        mangle: { key: { payload: { protocol: 'ip', field: e.field } }, value: e.field === 'dscp' ? value('dscp', e.value, o) : e.value },
      };
    case 'notrack':
      return { notrack: null };
    case 'vmap': {
      const d: Json =
        e.map.kind === 'setref'
          ? `@${e.map.name}`
          : { set: sorted(e.map.elements).map((el) => [elemKey(keyTypes(e.key), el, o), data(el.data, 'verdict', o)]) };
      return { vmap: { key: key(e.key), data: d } };
    }
    case 'set-add': {
      const elem: Json = e.timeoutMs !== undefined ? { elem: { val: key(e.key), timeout: Math.round(e.timeoutMs / 1000) } } : key(e.key);
      if (e.connlimit !== undefined) {
        const cl = e.connlimit;
        return { set: { op: e.op, elem, set: `@${e.set}`, stmt: [{ 'ct count': cl.over === true ? { val: cl.count, inv: true } : { val: cl.count } }] } };
      }
      return { set: { op: e.op, elem, set: `@${e.set}` } };
    }
  }
}

function markJson(v: number | MarkValue, o: PrintOptions): Json {
  if (typeof v === 'number') return v;
  if (v.kind === 'map') {
    const d: Json =
      v.map.kind === 'setref' ? `@${v.map.name}` : { set: sorted(v.map.elements).map((el) => [elemKey(keyTypes(v.key), el, o), data(el.data, 'mark', o)]) };
    return { map: { key: key(v.key), data: d } };
  }
  const f = field(v.field);
  if (v.mask !== undefined && v.xor !== undefined && (~v.mask >>> 0) === v.xor >>> 0) return { '|': [f, v.xor] };
  if (v.mask !== undefined && v.xor !== undefined) return { '^': [{ '&': [f, v.mask] }, v.xor] };
  if (v.mask !== undefined) return { '&': [f, v.mask] };
  if (v.xor !== undefined) return { '^': [f, v.xor] };
  return f;
}

export function tableJson(t: Table): Json {
  return { table: { family: t.family, name: t.name, handle: t.handle } };
}

export function chainJson(t: Table, c: Chain): Json {
  const o: { [k: string]: Json } = { family: t.family, table: t.name, name: c.name, handle: c.handle };
  if (c.base !== undefined) {
    o.type = c.base.type;
    o.hook = c.base.hook;
    o.prio = c.base.priority;
    o.policy = c.base.policy;
  }
  return { chain: o };
}

export function ruleJson(t: Table, c: Chain, r: Rule, src: PrintSource | null, o: PrintOptions): Json {
  const j: { [k: string]: Json } = { family: t.family, table: t.name, chain: c.name, handle: r.handle };
  if (r.comment !== undefined) j.comment = r.comment;
  j.expr = r.exprs.map((e, i) => expr(e, t, r, i, src, o));
  return { rule: j };
}

export function setJson(t: Table, s: NamedSet, src: PrintSource | null, o: PrintOptions): Json {
  const j: { [k: string]: Json } = { family: t.family, name: s.name, table: t.name, type: s.type.length === 1 ? setTypeName(s.type[0]) : s.type.map(setTypeName), handle: s.handle };
  if (s.map !== undefined) j.map = s.map;
  if (s.size !== undefined) j.size = s.size;
  const fl: string[] = [];
  if (s.flags?.constant === true) fl.push('constant');
  if (s.flags?.interval === true) fl.push('interval');
  if (s.flags?.timeout === true) fl.push('timeout');
  if (fl.length > 0) j.flags = fl;
  if (s.timeoutMs !== undefined) j.timeout = Math.round(s.timeoutMs / 1000);
  const types = s.type as NftType[];
  if (o.terse !== true) {
    const els = s.map === undefined && src !== null ? src.setElements(t, s).map((x) => x.el) : s.elements;
    if (els.length > 0)
      j.elem = sorted(els).map((el): Json => {
        if (s.map !== undefined) return [elemKey(types, el, o), data(el.data, s.map, o)];
        const cl = el.connlimit;
        if (cl !== undefined) {
          const c: Json = cl.over === true ? { val: cl.count, inv: true } : { val: cl.count };
          return { elem: { val: elemKey(types, el, o), 'ct count': c } };
        }
        return elemKey(types, el, o);
      });
  }
  return { [s.map !== undefined ? 'map' : 'set']: j };
}

export function counterJson(t: Table, name: string, handle: number, src: PrintSource | null, o: PrintOptions): Json {
  const j: { [k: string]: Json } = { family: t.family, name, table: t.name, handle };
  if (o.stateless !== true) {
    const c = src?.namedCounter(t, name) ?? { packets: 0, bytes: 0 };
    j.packets = c.packets;
    j.bytes = c.bytes;
  }
  return { counter: j };
}

/** Everything of the tables, in nft's order: table, counters, sets, chains, then the rules. */
export function rulesetJson(tables: Table[], src: PrintSource | null, o: PrintOptions): Json[] {
  const out: Json[] = [];
  for (const t of tables) {
    out.push(tableJson(t));
    for (const c of t.counters) out.push(counterJson(t, c.name, c.handle, src, o));
    for (const s of t.sets) out.push(setJson(t, s, src, o));
    for (const c of t.chains) out.push(chainJson(t, c));
    for (const c of t.chains) for (const r of c.rules) out.push(ruleJson(t, c, r, src, o));
  }
  return out;
}

export function nftablesJson(items: Json[]): string {
  return stringifyJson({ nftables: [METAINFO, ...items] }) + '\n';
}

export { fieldType };
