import type { BaseChainSpec, Chain, Expr, Field, KeyExpr, MarkValue, NamedSet, NatExpr, NatFlag, Rhs, Rule, SetElement, Table, VerdictAst } from '../netfilter/ast.js';
import { PRIORITY } from '../netfilter/ast.js';
import { formatIp4 } from '../wire/addr.js';
import { FLAG_TYPES, ICMP_REJECT, SYMBOLS, fieldType, formatTime, keyTypes, setTypeName, symbolName, type NftType } from './nft-names.js';

/**
 * `nft list ...` output, as nft prints it: tabs, canonical rule forms, sets
 * sorted by key, named sets' elements wrapped as nft wraps them.
 */
export interface PrintOptions {
  /** -a: `# handle N` after tables, chains, sets and rules. */
  handles?: boolean;
  /** -s: counters without their values. */
  stateless?: boolean;
  /** -n / -p: protocols as numbers. */
  numericProto?: boolean;
  /** -y: priorities as numbers. */
  numericPriority?: boolean;
  /** -t: sets without their elements. */
  terse?: boolean;
  /** -n: everything numeric (symbols, times in seconds), as well as protocols and priorities. */
  numeric?: boolean;
  /** The name of an interface index (`iif "lo"`). */
  ifname?: (index: number) => string | null;
}

/** What the printer reads beyond the AST: counters and live set elements. */
export interface PrintSource {
  ruleCounter(t: Table, rule: Rule, index: number): { packets: number; bytes: number } | null;
  namedCounter(t: Table, name: string): { packets: number; bytes: number };
  /** Live elements of a plain set (rule-added ones included) with ms until expiry (0: none). */
  setElements(t: Table, set: NamedSet): { el: SetElement; expiresMs: number }[];
}

// ---------------------------------------------------------------- values

function hex8(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`;
}

export function formatValue(type: NftType, v: number, o: PrintOptions): string {
  if (o.numeric === true) return numericValue(type, v, o);
  switch (type) {
    case 'ipv4_addr':
      return formatIp4(v >>> 0);
    case 'ifindex': {
      const n = o.ifname?.(v) ?? null;
      return n !== null ? `"${n}"` : String(v);
    }
    case 'inet_service':
    case 'integer':
      return String(v);
    case 'mark':
      return hex8(v);
    case 'inet_proto':
      return o.numericProto === true ? String(v) : (symbolName(type, v) ?? String(v));
    case 'tcp_flag':
    case 'ct_state':
    case 'ct_status':
      return flagNames(type, v);
    case 'dscp':
      return symbolName(type, v) ?? `0x${v.toString(16).padStart(2, '0')}`;
    case 'ether_type':
      return symbolName(type, v) ?? `0x${v.toString(16).padStart(4, '0')}`;
    case 'time':
      return formatTime(v);
    default:
      return symbolName(type, v) ?? String(v);
  }
}

/** -n: symbols as nft prints them numerically. */
function numericValue(type: NftType, v: number, o: PrintOptions = {}): string {
  switch (type) {
    case 'ipv4_addr':
      return formatIp4(v >>> 0);
    case 'mark':
      return hex8(v);
    case 'tcp_flag':
    case 'ct_state':
    case 'ct_status': {
      const bits: string[] = [];
      for (let b = 1; b !== 0 && b <= v; b = (b << 1) >>> 0) if ((v & b) !== 0) bits.push(`0x${b.toString(16)}`);
      return bits.length > 0 ? bits.join(',') : '0x0';
    }
    case 'dscp':
      return `0x${v.toString(16).padStart(2, '0')}`;
    case 'ether_type':
      return `0x${v.toString(16).padStart(4, '0')}`;
    case 'ecn':
      return `0x${v.toString(16)}`;
    case 'time':
      return time(v, o);
    default:
      return String(v);
  }
}

function time(ms: number, o: PrintOptions): string {
  return o.numeric === true && ms % 1000 === 0 ? `${ms / 1000}s` : formatTime(ms);
}

function flagNames(type: NftType, v: number): string {
  const names: string[] = [];
  let rest = v;
  for (const [n, bit] of SYMBOLS[type] ?? []) {
    if ((v & bit) !== 0) {
      names.push(n);
      rest &= ~bit;
    }
  }
  if (rest !== 0 || names.length === 0) names.push(`0x${rest.toString(16)}`);
  return names.join(',');
}

/** A range that is exactly a prefix prints as one. */
function prefixOf(lo: number, hi: number): number | null {
  for (let len = 0; len <= 32; len++) {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((lo & mask) >>> 0) === lo >>> 0 && ((lo | (~mask >>> 0)) >>> 0) === hi >>> 0) return len;
  }
  return null;
}

function formatKeyPart(type: NftType, key: number, end: number | undefined, o: PrintOptions): string {
  if (end === undefined || end === key) return formatValue(type, key, o);
  if (type === 'ipv4_addr') {
    const len = prefixOf(key, end);
    if (len !== null) return `${formatIp4(key >>> 0)}/${len}`;
  }
  return `${formatValue(type, key, o)}-${formatValue(type, end, o)}`;
}

function formatElementKey(types: NftType[], el: SetElement, o: PrintOptions): string {
  if (typeof el.key === 'number') return formatKeyPart(types[0], el.key, typeof el.end === 'number' ? el.end : undefined, o);
  const end = el.end;
  return el.key.map((k, i) => formatKeyPart(types[i] ?? 'integer', k, Array.isArray(end) ? end[i] : undefined, o)).join(' . ');
}

function formatVerdict(v: VerdictAst): string {
  return v.kind === 'jump' || v.kind === 'goto' ? `${v.kind} ${v.chain}` : v.kind;
}

function formatData(data: SetElement['data'], map: NamedSet['map'] | 'verdict' | 'mark' | 'ipv4_addr', o: PrintOptions): string {
  if (data === undefined) return '';
  if (typeof data !== 'number') return ` : ${formatVerdict(data)}`;
  if (map === 'ipv4_addr . inet_service') return ` : ${formatIp4(Math.floor(data / 65536))} . ${data % 65536}`;
  return ` : ${formatValue(map === 'verdict' || map === undefined ? 'integer' : map, data, o)}`;
}

function cmpKey(a: SetElement, b: SetElement): number {
  const ka = typeof a.key === 'number' ? [a.key] : a.key;
  const kb = typeof b.key === 'number' ? [b.key] : b.key;
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) if (ka[i] !== kb[i]) return (ka[i] >>> 0) - (kb[i] >>> 0);
  return ka.length - kb.length;
}

function anonSet(types: NftType[], elements: SetElement[], data: 'verdict' | 'mark' | 'ipv4_addr' | 'ipv4_addr . inet_service' | null, o: PrintOptions): string {
  const els = [...elements].sort(cmpKey);
  return `{ ${els.map((e) => formatElementKey(types, e, o) + (data !== null ? formatData(e.data, data, o) : '')).join(', ')} }`;
}

// ---------------------------------------------------------------- expressions

function formatField(f: Field): string {
  switch (f.kind) {
    case 'payload':
      return `${f.proto} ${f.field}`;
    case 'meta':
      // nft prints these without `meta`.
      return f.key === 'iif' || f.key === 'oif' ? f.key : `meta ${f.key}`;
    case 'ct':
      // nft lists the tuple addresses as `ct original ip saddr` however they were written, and the protocol without a direction.
      if (f.dir !== undefined && f.key !== 'protocol') return `ct ${f.dir} ${f.key === 'saddr' || f.key === 'daddr' ? `ip ${f.key}` : f.key}`;
      return `ct ${f.key}`;
    case 'numgen':
      return `numgen ${f.mode} mod ${f.mod}${f.offset !== undefined && f.offset !== 0 ? ` offset ${f.offset}` : ''}`;
    case 'fib':
      return `fib ${f.flags.join(' . ')} ${f.result}`;
  }
}

function formatKey(k: KeyExpr): string {
  return k.kind === 'concat' ? k.fields.map(formatField).join(' . ') : formatField(k);
}

const OPS = { eq: '', ne: '!= ', lt: '< ', gt: '> ', le: '<= ', ge: '>= ' } as const;

function formatRhs(types: NftType[], r: Rhs, o: PrintOptions): string {
  switch (r.kind) {
    case 'value':
      return formatValue(types[0], r.value, o);
    case 'range':
      return `${formatValue(types[0], r.lo, o)}-${formatValue(types[0], r.hi, o)}`;
    case 'prefix':
      return `${formatIp4(r.addr >>> 0)}/${r.len}`;
    case 'set':
      return anonSet(types, r.elements, null, o);
    case 'setref':
      return `@${r.name}`;
  }
}

function formatRate(rate: number, per: 'packets' | 'bytes'): string {
  if (per === 'packets') return `${rate}`;
  if (rate % (1024 * 1024) === 0) return `${rate / (1024 * 1024)} mbytes`;
  if (rate % 1024 === 0) return `${rate / 1024} kbytes`;
  return `${rate} bytes`;
}

function formatExpr(e: Expr, ctx: { t: Table; rule: Rule; index: number; src: PrintSource | null; o: PrintOptions }): string {
  const o = ctx.o;
  switch (e.kind) {
    case 'match': {
      const types = keyTypes(e.left);
      const type = types[0];
      const left = formatKey(e.left);
      if (FLAG_TYPES.has(type) && e.mask !== undefined && e.right.kind === 'value') {
        if (e.op === 'ne' && e.right.value === 0) return `${left} ${formatValue(type, e.mask, o)}`;
        if (e.op === 'eq') return `${left} ${formatValue(type, e.right.value, o)} / ${formatValue(type, e.mask, o)}`;
      }
      if (e.mask !== undefined) {
        const op = e.op === 'eq' ? '== ' : OPS[e.op];
        return `${left} & ${formatValue(type, e.mask, o)} ${op}${formatRhs(types, e.right, o)}`;
      }
      return `${left} ${OPS[e.op]}${formatRhs(types, e.right, o)}`;
    }
    case 'ifname':
    case 'fib-name': {
      const names = e.names.map((n) => `"${n}"`);
      const rhs = names.length === 1 ? names[0] : `{ ${[...names].sort().join(', ')} }`;
      return `${e.kind === 'ifname' ? e.dir : `fib ${e.flags.join(' . ')} oifname`} ${e.op === 'ne' ? '!= ' : ''}${rhs}`;
    }
    case 'limit': {
      let s = `limit rate ${e.over === true ? 'over ' : ''}${formatRate(e.rate, e.per)}/${e.unit}`;
      if (e.burst !== undefined && e.burst !== 0 && !(e.per === 'packets' && e.burst === 5))
        s += ` burst ${formatRate(e.burst, e.per)}${e.per === 'packets' ? ' packets' : ''}`;
      return s;
    }
    case 'verdict':
      return formatVerdict(e.verdict);
    case 'reject': {
      if (e.with?.type === 'tcp-reset') return 'reject with tcp reset';
      const code = e.with?.code ?? 3;
      // In inet tables a plain reject is icmpx port-unreachable; in ip ones, icmp port-unreachable.
      const x = e.with === undefined ? ctx.t.family === 'inet' : e.with.icmpx === true;
      if (code === 3 && (x || ctx.t.family === 'ip')) return 'reject';
      const names = x ? ICMPX_NAMES : ICMP_REJECT;
      const name = o.numeric === true ? undefined : names.find(([, c]) => c === code)?.[0];
      // Numerically, icmpx codes are their own (0 no-route, 1 port, 2 host, 3 admin).
      const num = x ? ICMPX_NAMES.findIndex(([, c]) => c === code) : code;
      return `reject with ${x ? 'icmpx' : 'icmp'} ${name ?? num}`;
    }
    case 'counter': {
      if (e.name !== undefined) return `counter name "${e.name}"`;
      if (o.stateless === true) return 'counter';
      const c = ctx.src?.ruleCounter(ctx.t, ctx.rule, ctx.index) ?? { packets: 0, bytes: 0 };
      return `counter packets ${c.packets} bytes ${c.bytes}`;
    }
    case 'log': {
      let s = 'log';
      if (e.prefix !== undefined) s += ` prefix "${e.prefix}"`;
      if (e.level !== undefined && e.level !== 'warn') s += ` level ${e.level}`;
      return s;
    }
    case 'meta-set':
    case 'ct-set':
      return `${e.kind === 'ct-set' ? 'ct' : 'meta'} mark set ${formatMarkValue(e.value, o)}`;
    case 'connmark':
      // nft shows a compat target it cannot translate by name.
      return 'xt target CONNMARK';
    case 'xt':
      return e.text;
    case 'ct-state-nat':
      return `ct status ${(e.status & 0x10) !== 0 ? 'snat' : 'dnat'}`;
    case 'connlimit':
      return `ct count ${e.over === true ? 'over ' : ''}${e.count}`;
    case 'nat':
      return formatNat(e, o);
    case 'payload-set':
      return `ip ${e.field} set ${e.field === 'dscp' ? formatValue('dscp', e.value, o) : e.value}`;
    case 'notrack':
      return 'notrack';
    case 'vmap': {
      const m = e.map.kind === 'setref' ? `@${e.map.name}` : anonSet(keyTypes(e.key), e.map.elements, 'verdict', o);
      return `${formatKey(e.key)} vmap ${m}`;
    }
    case 'set-add': {
      const cl = e.connlimit !== undefined ? ` ct count ${e.connlimit.over === true ? 'over ' : ''}${e.connlimit.count}` : '';
      return `${e.op} @${e.set} { ${formatKey(e.key)}${e.timeoutMs !== undefined ? ` timeout ${time(e.timeoutMs, o)}` : ''}${cl} }`;
    }
  }
}

function formatMarkValue(v: number | MarkValue, o: PrintOptions): string {
  if (typeof v === 'number') return hex8(v);
  if (v.kind === 'map') {
    const m = v.map.kind === 'setref' ? `@${v.map.name}` : anonSet(keyTypes(v.key), v.map.elements, 'mark', o);
    return `${formatKey(v.key)} map ${m}`;
  }
  const f = formatField(v.field);
  const t = fieldType(v.field);
  if (v.mask !== undefined && v.xor !== undefined && (~v.mask >>> 0) === v.xor >>> 0) return `${f} | ${formatValue(t, v.xor, o)}`;
  if (v.mask !== undefined && v.xor !== undefined) return `(${f} & ${formatValue(t, v.mask, o)}) ^ ${formatValue(t, v.xor, o)}`;
  if (v.mask !== undefined) return `${f} & ${formatValue(t, v.mask, o)}`;
  if (v.xor !== undefined) return `${f} ^ ${formatValue(t, v.xor, o)}`;
  return f;
}

/** `snat to 1.2.3.4-1.2.3.9:1000-2000 random`, `masquerade to :1024`, `dnat to ip saddr map { ... }`. */
/**
 * `raw`: ranges as given (libxt's translations of iptables' NAT targets);
 * otherwise as nft lists the registers: an address range that is a prefix
 * as one (`1.2.3.4/32`), a port range as `lo-hi` even when lo = hi.
 */
export function formatNat(e: NatExpr, o: PrintOptions, raw = false): string {
  let s: string = e.type;
  let to = '';
  if (e.addrMap !== undefined) {
    const m = e.addrMap;
    to = `${formatKey(m.key)} map ${m.map.kind === 'setref' ? `@${m.map.name}` : anonSet(keyTypes(m.key), m.map.elements, m.withPort === true ? 'ipv4_addr . inet_service' : 'ipv4_addr', o)}`;
    // An address-and-port map is listed with the family: `dnat ip to ...`.
    if (m.withPort === true) s += ' ip';
  } else if (e.addr !== undefined) {
    if (e.addrEnd === undefined || (raw && e.addrEnd === e.addr)) to = formatIp4(e.addr >>> 0);
    else {
      const len = raw ? null : prefixOf(e.addr, e.addrEnd);
      to = len !== null ? `${formatIp4(e.addr >>> 0)}/${len}` : `${formatIp4(e.addr >>> 0)}-${formatIp4(e.addrEnd >>> 0)}`;
    }
  }
  if (e.port !== undefined) to += `:${e.port}${e.portEnd !== undefined && (!raw || e.portEnd !== e.port) ? `-${e.portEnd}` : ''}`;
  if (to !== '') s += ` to ${to}`;
  if (e.flags !== undefined && e.flags.length > 0) s += ` ${NAT_FLAG_ORDER.filter((f) => e.flags!.includes(f)).join(',')}`;
  return s;
}

/** nft lists the flags in this order (NF_NAT_RANGE_* bit order). */
export const NAT_FLAG_ORDER: NatFlag[] = ['random', 'fully-random', 'persistent'];

export function formatRule(t: Table, rule: Rule, src: PrintSource | null, o: PrintOptions): string {
  const parts = rule.exprs.map((e, index) => formatExpr(e, { t, rule, index, src, o }));
  if (rule.comment !== undefined) parts.push(`comment "${rule.comment}"`);
  return parts.join(' ');
}

// ---------------------------------------------------------------- objects

/** nft's icmpx codes, by the IPv4 ICMP code each becomes. */
export const ICMPX_NAMES: [string, number][] = [
  ['no-route', 0],
  ['port-unreachable', 3],
  ['host-unreachable', 1],
  ['admin-prohibited', 13],
];

const PRIO_HOOKS: Record<string, readonly string[] | null> = {
  raw: null,
  mangle: null,
  dstnat: ['prerouting'],
  filter: null,
  security: null,
  srcnat: ['postrouting'],
};

export function formatPriority(b: BaseChainSpec, o: PrintOptions): string {
  if (o.numericPriority === true || o.numeric === true) return String(b.priority);
  for (const [name, value] of Object.entries(PRIORITY)) {
    const hooks = PRIO_HOOKS[name];
    if (hooks !== null && !hooks.includes(b.hook)) continue;
    const off = b.priority - value;
    if (Math.abs(off) > 10) continue;
    return off === 0 ? name : off > 0 ? `${name} + ${off}` : `${name} - ${-off}`;
  }
  return String(b.priority);
}

function handle(o: PrintOptions, h: number): string {
  return o.handles === true ? ` # handle ${h}` : '';
}

export function formatChain(t: Table, c: Chain, src: PrintSource | null, o: PrintOptions, indent = '\t'): string {
  const lines = [`${indent}chain ${c.name} {${handle(o, c.handle)}`];
  if (c.base !== undefined)
    lines.push(`${indent}\ttype ${c.base.type} hook ${c.base.hook} priority ${formatPriority(c.base, o)}; policy ${c.base.policy};`);
  for (const r of c.rules) lines.push(`${indent}\t${formatRule(t, r, src, o)}${handle(o, r.handle)}`);
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** nft's line breaking inside a named set's elements (calculate_delim). */
function delimEvery(types: NftType[]): number {
  if (types.length !== 1) return 1;
  switch (types[0]) {
    case 'integer':
    case 'inet_proto':
    case 'inet_service':
    case 'tcp_flag':
    case 'mark':
    case 'ifindex':
    case 'ct_dir':
      return 5;
    case 'ipv4_addr':
    case 'ct_state':
    case 'ct_status':
    case 'pkt_type':
      return 2;
    default:
      return 1;
  }
}

export function formatSet(t: Table, s: NamedSet, src: PrintSource | null, o: PrintOptions, indent = '\t'): string {
  const kind = s.map !== undefined ? 'map' : 'set';
  const types = s.type.map((x) => x as NftType);
  const lines = [`${indent}${kind} ${s.name} {${handle(o, s.handle)}`];
  if (s.typeofKey !== undefined)
    lines.push(`${indent}\ttypeof ${formatKey(s.typeofKey)}${s.map !== undefined ? ` : ${s.typeofData !== undefined ? formatKey(s.typeofData) : s.map}` : ''}`);
  else lines.push(`${indent}\ttype ${s.type.map(setTypeName).join(' . ')}${s.map !== undefined ? ` : ${s.map}` : ''}`);
  if (s.size !== undefined) lines.push(`${indent}\tsize ${s.size}`);
  const flags: string[] = [];
  if (s.flags?.constant === true) flags.push('constant');
  if (s.flags?.dynamic === true) flags.push('dynamic');
  if (s.flags?.interval === true) flags.push('interval');
  if (s.flags?.timeout === true) flags.push('timeout');
  if (flags.length > 0) lines.push(`${indent}\tflags ${flags.join(',')}`);
  if (s.timeoutMs !== undefined) lines.push(`${indent}\ttimeout ${time(s.timeoutMs, o)}`);
  if (o.terse !== true) {
    const live = s.map === undefined && src !== null ? src.setElements(t, s) : s.elements.map((el) => ({ el, expiresMs: 0 }));
    live.sort((a, b) => cmpKey(a.el, b.el));
    if (live.length > 0) {
      const every = s.map !== undefined ? (s.type.length === 1 ? delimEvery(types) : 1) : delimEvery(types);
      let text = '';
      live.forEach(({ el, expiresMs }, i) => {
        if (i > 0) text += i % every === 0 ? `,\n${indent}\t\t     ` : ', ';
        text += formatElementKey(types, el, o);
        if (el.connlimit !== undefined) text += ` ct count ${el.connlimit.over === true ? 'over ' : ''}${el.connlimit.count}`;
        if (el.timeoutMs !== undefined && el.timeoutMs !== s.timeoutMs) text += ` timeout ${time(el.timeoutMs, o)}`;
        if (expiresMs > 0) text += ` expires ${time(expiresMs, o)}`;
        if (el.comment !== undefined) text += ` comment "${el.comment}"`;
        if (s.map !== undefined) text += formatData(el.data, s.map, o);
      });
      lines.push(`${indent}\telements = { ${text} }`);
    }
  }
  lines.push(`${indent}}`);
  return lines.join('\n');
}

export function formatCounter(t: Table, name: string, h: number, src: PrintSource | null, o: PrintOptions, indent = '\t'): string {
  const lines = [`${indent}counter ${name} {${handle(o, h)}`];
  if (o.stateless !== true) {
    const c = src?.namedCounter(t, name) ?? { packets: 0, bytes: 0 };
    lines.push(`${indent}\tpackets ${c.packets} bytes ${c.bytes}`);
  }
  lines.push(`${indent}}`);
  return lines.join('\n');
}

/** One table with everything in it. */
export function formatTable(t: Table, src: PrintSource | null, o: PrintOptions): string {
  const blocks: string[] = [];
  // nft warns about tables holding iptables-nft's compat expressions.
  const warn = t.chains.some((c) => c.rules.some((r) => r.exprs.some((e) => e.kind === 'xt'))) ? `# Warning: table ${t.family} ${t.name} is managed by iptables-nft, do not touch!\n` : '';
  for (const c of t.counters) blocks.push(formatCounter(t, c.name, c.handle, src, o));
  for (const s of t.sets) blocks.push(formatSet(t, s, src, o));
  for (const c of t.chains) blocks.push(formatChain(t, c, src, o));
  return `${warn}table ${t.family} ${t.name} {${handle(o, t.handle)}\n${blocks.map((b) => b + '\n').join('\n')}}\n`;
}

/** A table line with only some of its objects (list chains/sets/counters/chain/set): no table handle. */
export function formatTableWith(t: Table, blocks: string[], _o: PrintOptions): string {
  return `table ${t.family} ${t.name} {\n${blocks.map((b) => b + '\n').join('\n')}}\n`;
}
