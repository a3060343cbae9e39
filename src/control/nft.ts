import type { Chain, Expr, Family, Field, NamedSet, Rule, RulesetState, SetElement, Table } from '../netfilter/ast.js';
import { RulesetError, type Ruleset } from '../netfilter/ruleset.js';
import { FIB_HOOK_ERROR, HOOK_NUM, NAT_HOOK_ERROR, fibHooks, natAllowed } from '../netfilter/compile.js';
import { NftSyntaxError, formatNftError, type Tok } from './nft-lex.js';
import { parseNft, resolveElements, withInterfaces, type ChainDelCmd, type NftCommand, type RuleAddCmd, type SetDelCmd } from './nft-parse.js';
import type { NftType } from './nft-names.js';
import type { Stack } from '../stack.js';
import fs from 'node:fs';
import { chainJson, counterJson, nftablesJson, ruleJson, rulesetJson, setJson, tableJson, type Json } from './nft-json.js';
import { formatChain, formatCounter, formatPriority, formatRule, formatSet, formatTable, formatTableWith, type PrintOptions, type PrintSource } from './nft-print.js';

/**
 * `nft [options] COMMAND...` and `nft -f FILE` on a Ruleset. A batch (a file,
 * or one command line) is applied to a copy of the state and committed once:
 * an error anywhere changes nothing.
 */
export interface NftOptions extends PrintOptions {
  /** -c: check only. */
  check?: boolean;
  /** -e: echo what was added. */
  echo?: boolean;
  /** -j: JSON. */
  json?: boolean;
  /** -f FILE: read commands from FILE (`-` for standard input). */
  file?: string;
}

export interface NftResult {
  stdout: string;
  stderr: string;
  code: number;
}

export class NftUsageError extends Error {}

/** Splits nft's options from its command words. */
export function parseNftArgs(argv: readonly string[]): { opts: NftOptions; words: string[] } {
  const opts: NftOptions = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) break;
    if (a === '--') {
      i++;
      break;
    }
    const long: Record<string, keyof NftOptions> = {
      '--handle': 'handles',
      '--stateless': 'stateless',
      '--numeric': 'numeric',
      '--numeric-protocol': 'numericProto',
      '--numeric-priority': 'numericPriority',
      '--terse': 'terse',
      '--check': 'check',
      '--echo': 'echo',
      '--json': 'json',
    };
    if (a === '-f' || a === '--file') {
      const f = argv[++i];
      if (f === undefined) throw new NftUsageError(`option '${a}' requires an argument`);
      opts.file = f;
      continue;
    }
    if (a.startsWith('--')) {
      const k = long[a];
      if (k === undefined) throw new NftUsageError(`unrecognized option '${a}'`);
      (opts as Record<string, unknown>)[k] = true;
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j];
      const short: Record<string, keyof NftOptions> = {
        a: 'handles',
        s: 'stateless',
        n: 'numeric',
        p: 'numericProto',
        y: 'numericPriority',
        t: 'terse',
        c: 'check',
        e: 'echo',
        j: 'json',
      };
      if (c === 'f') {
        const rest = a.slice(j + 1);
        const f = rest !== '' ? rest : argv[++i];
        if (f === undefined) throw new NftUsageError(`option requires an argument -- 'f'`);
        opts.file = f;
        break;
      }
      const k = short[c];
      if (k === undefined) {
        if ('NSuvdIDT'.includes(c)) throw new NftUsageError(`option -${c} is not supported`);
        throw new NftUsageError(`invalid option -- '${c}'`);
      }
      (opts as Record<string, unknown>)[k] = true;
    }
  }
  return { opts, words: argv.slice(i) };
}

class ApplyError extends Error {
  constructor(
    message: string,
    readonly tok: Tok | null,
    /** A kernel refusal of the command: nft marks the whole command, not one word. */
    readonly whole = false,
  ) {
    super(message);
  }
}

/** Sets declared in the batch being applied (nft sizes those that rules update as it creates them). */
const batchSets = new WeakSet<NamedSet>();

/**
 * What nft works out from the table while it reads a rule: a set that a rule
 * of the same batch adds to gets a size of 65535 unless it has one, and the
 * dynamic flag; a nat
 * map declared with `ipv4_addr . inet_service` data maps to address and port.
 */
function fromTable(t: Table, exprs: Expr[], tok: Tok): void {
  for (const e of exprs) {
    if (e.kind === 'set-add') {
      const s = t.sets.find((x) => x.name === e.set);
      // The kernel keeps no connection count in a set with timeouts.
      if (e.connlimit !== undefined && s?.flags?.timeout === true) throw new ApplyError('Could not process rule: Operation not supported', tok, true);
      if (s !== undefined && s.size === undefined && batchSets.has(s)) s.size = 65535;
      // nft marks a set declared in the batch that a rule of the batch adds to as dynamic.
      if (s !== undefined && batchSets.has(s)) s.flags = { ...s.flags, dynamic: true };
    } else if (e.kind === 'nat' && e.addrMap?.map.kind === 'setref') {
      const name = e.addrMap.map.name;
      if (t.sets.find((x) => x.name === name)?.map === 'ipv4_addr . inet_service') e.addrMap.withPort = true;
    }
  }
}

/** A kernel refusal of a nat statement on a base chain's hook (checked again through jumps at commit). */
function checkNat(c: Chain, exprs: Expr[], tok: Tok): void {
  if (c.base === undefined) return;
  for (const e of exprs) if (e.kind === 'nat' && !natAllowed(e.type, c.base)) throw new ApplyError(NAT_HOOK_ERROR, tok, true);
}

/** A kernel refusal of a fib expression on a base chain's hook (nft_fib_validate; checked again through jumps at commit). */
function checkFib(c: Chain, exprs: Expr[], tok: Tok): void {
  if (c.base === undefined) return;
  const bit = 1 << HOOK_NUM[c.base.hook];
  for (const e of exprs) {
    let mask = 0x1f;
    if (e.kind === 'fib-name') mask = fibHooks('oifname', e.flags);
    else if (e.kind === 'match' || e.kind === 'vmap') {
      const k = e.kind === 'match' ? e.left : e.key;
      for (const f of k.kind === 'concat' ? k.fields : [k]) if (f.kind === 'fib') mask &= fibHooks(f.result, f.flags);
    }
    if ((mask & bit) === 0) throw new ApplyError(FIB_HOOK_ERROR, tok, true);
  }
}

/** The span nft marks for a refused command: from the command's first word to the end of its line. */
function commandSpan(text: string, tok: Tok): Tok {
  const line = text.split('\n')[tok.line - 1] ?? '';
  const m = /^(\s*)(add|insert|replace|create)\b/.exec(line);
  const col = m !== null ? m[1].length + 1 : tok.col;
  // The kernel's error covers the command and the newline after it.
  return { ...tok, col, len: Math.max(1, line.trimEnd().length - col + 2) };
}

const ENOENT = 'No such file or directory';
const EEXIST = 'File exists';

function findTable(s: RulesetState, family: Family, name: string, tok: Tok): Table {
  const t = s.tables.find((x) => x.family === family && x.name === name);
  if (t === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, tok);
  return t;
}

function findChain(t: Table, name: string, tok: Tok): Chain {
  const c = t.chains.find((x) => x.name === name);
  if (c === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, tok);
  return c;
}

function findSet(t: Table, name: string, tok: Tok): NamedSet {
  const s = t.sets.find((x) => x.name === name);
  if (s === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, tok);
  return s;
}

function sameKey(a: SetElement['key'], b: SetElement['key']): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function elementsFor(set: NamedSet, cmd: { raw: { toks: Tok[] } }): SetElement[] {
  return resolveElements(cmd.raw, set.type as NftType[], set.map ?? null);
}

const L4: Record<string, number> = { tcp: 6, udp: 17, icmp: 1 };

/**
 * Drops the protocol matches nft drops (its dependency elimination): `meta
 * l4proto P` (or, in ip tables, `ip protocol P`) before a P field with only
 * matches between, where `th` becomes P; `meta nfproto ipv4` before an ip
 * field in inet tables. The engine checks the protocol of a transport field
 * itself, so the rule means the same.
 */
export function dropDependencies(exprs: Expr[], family: Family): Expr[] {
  const out = [...exprs];
  for (let i = 0; i < out.length; i++) {
    const d = out[i];
    if (d.kind !== 'match' || d.op !== 'eq' || d.mask !== undefined || d.right.kind !== 'value' || d.left.kind === 'concat') continue;
    const l = d.left;
    const isL4 = (l.kind === 'meta' && l.key === 'l4proto') || (family === 'ip' && l.kind === 'payload' && l.proto === 'ip' && l.field === 'protocol');
    const isNf = family === 'inet' && l.kind === 'meta' && l.key === 'nfproto' && d.right.value === 2;
    if (!isL4 && !isNf) continue;
    for (let j = i + 1; j < out.length; j++) {
      const e = out[j];
      if (e.kind === 'ifname' || e.kind === 'fib-name') continue;
      if (isNf && e.kind === 'reject' && e.with?.type === 'icmp' && e.with.icmpx !== true) {
        out.splice(i--, 1);
        break;
      }
      // A nat map keyed by a transport field carries the dependency itself.
      if (isL4 && e.kind === 'nat' && e.addrMap !== undefined) {
        const fs = e.addrMap.key.kind === 'concat' ? e.addrMap.key.fields : [e.addrMap.key];
        const want = d.right.value;
        if (fs.some((f) => f.kind === 'payload' && L4[f.proto] === want)) out.splice(i--, 1);
        break;
      }
      if (e.kind !== 'match') break;
      const f = e.left.kind === 'concat' ? e.left.fields[0] : e.left;
      if (f.kind !== 'payload') continue;
      if (isNf) {
        if (f.proto === 'ip') out.splice(i--, 1);
        break;
      }
      if (f.proto === 'ip') continue;
      const want = d.right.value;
      if (f.proto === 'th' && (want === 6 || want === 17) && e.left.kind !== 'concat') {
        const proto = want === 6 ? 'tcp' : 'udp';
        out[j] = { ...e, left: { kind: 'payload', proto, field: f.field } as Field };
        out.splice(i--, 1);
      } else if (L4[f.proto] === want) out.splice(i--, 1);
      break;
    }
  }
  return out;
}

const L4NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp' };

/** nft refuses a rule whose matches need two transport protocols at once. */
export function conflictingProtocols(exprs: Expr[]): string | null {
  let have: string | null = null;
  for (const e of exprs) {
    if (e.kind !== 'match') continue;
    for (const f of e.left.kind === 'concat' ? e.left.fields : [e.left]) {
      let p: string | null = null;
      if (f.kind === 'payload' && (f.proto === 'tcp' || f.proto === 'udp' || f.proto === 'icmp')) p = f.proto;
      else if (
        e.left.kind !== 'concat' &&
        e.op === 'eq' &&
        e.mask === undefined &&
        e.right.kind === 'value' &&
        ((f.kind === 'meta' && f.key === 'l4proto') || (f.kind === 'payload' && f.proto === 'ip' && f.field === 'protocol'))
      )
        p = L4NAME[e.right.value] ?? `protocol ${e.right.value}`;
      else if (f.kind === 'payload' && f.proto === 'th' && have === 'icmp') return `conflicting protocols specified: icmp vs. th`;
      if (p === null) continue;
      if (have !== null && have !== p) return `conflicting protocols specified: ${have} vs. ${p}`;
      have = p;
    }
  }
  return null;
}

/** Applies one changing command to the draft state. */
/** What `-e` prints for a new object, read after the commit (handles and counters are then known). */
type Echo = (src: PrintSource, o: PrintOptions) => string;

function apply(s: RulesetState, cmd: NftCommand, post: (() => void)[], rs: Ruleset, echo: Echo[]): void {
  if (cmd.verb === 'list') return;
  if (cmd.obj === 'ruleset') {
    s.tables = cmd.family === undefined ? [] : s.tables.filter((t) => t.family !== cmd.family);
    return;
  }
  if (cmd.obj === 'counters') {
    const c = cmd;
    // Counter objects only (rule counters are `reset rules`).
    for (const t of s.tables)
        if ((c.family === undefined || t.family === c.family) && (c.table === undefined || t.name === c.table))
        for (const n of t.counters) post.push(() => rs.resetCounter(t.family, t.name, n.name));
    return;
  }
  const existing = s.tables.find((x) => x.family === cmd.family && x.name === cmd.table);
  if (cmd.obj === 'table') {
    switch (cmd.verb) {
      case 'add':
      case 'create':
        if (existing !== undefined) {
          if (cmd.verb === 'create') throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          return;
        }
        s.tables.push({ family: cmd.family, name: cmd.table, handle: 0, chains: [], sets: [], counters: [] });
        echo.push(() => `add table ${cmd.family} ${cmd.table}`);
        return;
      case 'delete':
      case 'destroy':
        if (existing === undefined) {
          if (cmd.verb === 'destroy') return;
          throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        }
        s.tables = s.tables.filter((t) => t !== existing);
        return;
      case 'flush':
        // Rules go; sets keep their elements (as with nft).
        for (const c of findTable(s, cmd.family, cmd.table, cmd.tok).chains) c.rules = [];
        return;
    }
  }
  if (cmd.verb === 'destroy' && existing === undefined) return;
  const t = findTable(s, cmd.family, cmd.table, cmd.tok);
  switch (cmd.obj) {
    case 'chain': {
      if (cmd.verb === 'add' || cmd.verb === 'create') {
        const c = t.chains.find((x) => x.name === cmd.chain);
        if (c !== undefined) {
          if (cmd.verb === 'create') throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          if (cmd.base !== undefined) {
            if (c.base === undefined) throw new ApplyError('Could not process rule: Operation not supported', cmd.tok);
            c.base.policy = cmd.base.policy;
          }
          return;
        }
        t.chains.push({ name: cmd.chain, handle: 0, base: cmd.base, rules: [] });
        const b = cmd.base;
        echo.push((_src, o) =>
          b === undefined
            ? `add chain ${t.family} ${t.name} ${cmd.chain}`
            : `add chain ${t.family} ${t.name} ${cmd.chain} { type ${b.type} hook ${b.hook} priority ${formatPriority(b, o)}; policy ${b.policy}; }`,
        );
        return;
      }
      const d = cmd as ChainDelCmd;
      const c = d.handle !== undefined ? t.chains.find((x) => x.handle === d.handle) : t.chains.find((x) => x.name === d.chain);
      if (c === undefined) {
        if (cmd.verb === 'destroy') return;
        throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
      }
      if (cmd.verb === 'flush') c.rules = [];
      else {
        if (c.rules.length > 0) throw new ApplyError('Could not process rule: Device or resource busy', cmd.tok);
        t.chains = t.chains.filter((x) => x !== c);
      }
      return;
    }
    case 'rule': {
      const c = findChain(t, cmd.chain, cmd.tok);
      if (cmd.verb === 'delete' || cmd.verb === 'destroy') {
        const i = c.rules.findIndex((r) => r.handle === cmd.handle);
        if (i < 0) {
          if (cmd.verb === 'destroy') return;
          throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        }
        c.rules.splice(i, 1);
        return;
      }
      if (cmd.verb === 'replace') {
        const r = c.rules.find((x) => x.handle === cmd.handle);
        if (r === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        checkNat(c, cmd.exprs, cmd.tok);
        checkFib(c, cmd.exprs, cmd.tok);
        fromTable(t, cmd.exprs, cmd.tok);
        const conflict = conflictingProtocols(cmd.exprs);
        if (conflict !== null) throw new ApplyError(conflict, cmd.tok);
        r.exprs = dropDependencies(cmd.exprs, t.family);
        r.comment = cmd.comment;
        return;
      }
      const a = cmd as RuleAddCmd;
      checkNat(c, a.exprs, cmd.tok);
      checkFib(c, a.exprs, cmd.tok);
      fromTable(t, a.exprs, cmd.tok);
      if (t.family === 'ip' && a.exprs.some((e) => e.kind === 'reject' && e.with?.type === 'icmp' && e.with.icmpx === true))
        throw new ApplyError('abstracted ICMP unreachable not supported', cmd.tok);
      const conflict = conflictingProtocols(a.exprs);
      if (conflict !== null) throw new ApplyError(conflict, cmd.tok);
      const rule = { handle: 0, exprs: dropDependencies(a.exprs, t.family), ...(a.comment !== undefined ? { comment: a.comment } : {}) };
      let at: number;
      if (a.position !== undefined) {
        const i = c.rules.findIndex((r) => r.handle === a.position);
        if (i < 0) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        at = cmd.verb === 'insert' ? i : i + 1;
      } else if (a.index !== undefined) {
        if (a.index >= c.rules.length) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        at = cmd.verb === 'insert' ? a.index : a.index + 1;
      } else at = cmd.verb === 'insert' ? 0 : c.rules.length;
      // New handles must be fresh in the table even before commit assigns them.
      c.rules.splice(at, 0, rule);
      echo.push(
        (src, o) =>
          `${cmd.verb} rule ${t.family} ${t.name} ${c.name} ${formatRule(t, rule, src, o)}${o.handles === true ? ` # handle ${rule.handle}` : ''}`,
      );
      return;
    }
    case 'set': {
      if (cmd.verb === 'add' || cmd.verb === 'create') {
        const x = t.sets.find((y) => y.name === cmd.set.name);
        const elements = cmd.raw !== undefined ? elementsFor(cmd.set, { raw: cmd.raw }) : [];
        if (x !== undefined) {
          if (cmd.verb === 'create') throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          if (JSON.stringify(x.type) !== JSON.stringify(cmd.set.type) || x.map !== cmd.set.map) throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          x.elements.push(...elements.filter((e) => !x.elements.some((y) => sameKey(y.key, e.key))));
          return;
        }
        const ns = { ...cmd.set, elements };
        t.sets.push(ns);
        batchSets.add(ns);
        const d = cmd.set;
        const flags = Object.entries(d.flags ?? {})
          .filter(([, v]) => v === true)
          .map(([k]) => k);
        echo.push(
          () =>
            `add ${d.map !== undefined ? 'map' : 'set'} ${t.family} ${t.name} ${d.name} { type ${d.type.join(' . ')}${d.map !== undefined ? ` : ${d.map}` : ''}; ${flags.length > 0 ? `flags ${flags.join(',')}; ` : ''}} `,
        );
        return;
      }
      const name = (cmd as SetDelCmd).name;
      const x = t.sets.find((y) => y.name === name);
      if (x === undefined) {
        if (cmd.verb === 'destroy') return;
        throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
      }
      if (cmd.verb === 'flush') x.elements = [];
      else t.sets = t.sets.filter((y) => y !== x);
      return;
    }
    case 'element': {
      const x = findSet(t, cmd.set, cmd.tok);
      const els = elementsFor(x, cmd);
      if (cmd.verb === 'add' || cmd.verb === 'create') {
        for (const e of els) {
          const i = x.elements.findIndex((y) => sameKey(y.key, e.key));
          if (i >= 0 && cmd.verb === 'create') throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          if (i < 0) x.elements.push(e);
        }
        return;
      }
      for (const e of els) {
        const i = x.elements.findIndex((y) => sameKey(y.key, e.key));
        if (i < 0) {
          if (cmd.verb === 'destroy') continue;
          throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        }
        x.elements.splice(i, 1);
      }
      return;
    }
    case 'counter': {
      if (cmd.verb === 'add' || cmd.verb === 'create') {
        if (t.counters.some((c) => c.name === cmd.name)) {
          if (cmd.verb === 'create') throw new ApplyError(`Could not process rule: ${EEXIST}`, cmd.tok);
          return;
        }
        t.counters.push({ name: cmd.name, handle: 0, packets: cmd.packets, bytes: cmd.bytes });
        echo.push(() => `add counter ${t.family} ${t.name} ${cmd.name} { packets ${cmd.packets} bytes ${cmd.bytes} } `);
        return;
      }
      if (cmd.verb === 'reset') {
        if (!t.counters.some((c) => c.name === cmd.name)) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
        post.push(() => rs.resetCounter(cmd.family, cmd.table, cmd.name));
        return;
      }
      if (!t.counters.some((c) => c.name === cmd.name)) {
        if (cmd.verb === 'destroy') return;
        throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
      }
      t.counters = t.counters.filter((c) => c.name !== cmd.name);
      return;
    }
  }
}

/** Anonymous sets a rule creates (each takes a handle in nft's numbering). */
function anonSets(r: Rule): number {
  let n = 0;
  for (const e of r.exprs) {
    if (e.kind === 'match' && e.right.kind === 'set') n++;
    else if (e.kind === 'vmap' && e.map.kind === 'set') n++;
    else if ((e.kind === 'ifname' || e.kind === 'fib-name') && e.names.length > 1) n++;
    else if ((e.kind === 'meta-set' || e.kind === 'ct-set') && typeof e.value !== 'number' && e.value.kind === 'map' && e.value.map.kind === 'set') n++;
    else if (e.kind === 'nat' && e.addrMap?.map.kind === 'set') n++;
  }
  return n;
}

/**
 * Gives new objects handles as nft's batches do: chains, then counters and
 * sets, then rules in order, each after the anonymous sets it creates.
 */
/** The highest handle each table has given out (nft never gives one twice). */
const lastHandles = new WeakMap<Ruleset, Map<string, number>>();

function assignHandles(s: RulesetState, rs: Ruleset): void {
  let last = lastHandles.get(rs);
  if (last === undefined) {
    last = new Map();
    lastHandles.set(rs, last);
  }
  for (const t of s.tables) {
    const key = `${t.family} ${t.name} ${t.handle}`;
    let max = t.handle === 0 ? 0 : (last.get(key) ?? 0);
    for (const c of t.chains) {
      max = Math.max(max, c.handle);
      for (const r of c.rules) max = Math.max(max, r.handle);
    }
    for (const x of t.sets) max = Math.max(max, x.handle);
    for (const x of t.counters) max = Math.max(max, x.handle);
    for (const x of [...t.chains, ...t.counters, ...t.sets]) if (x.handle === 0) x.handle = ++max;
    for (const c of t.chains)
      for (const r of c.rules)
        if (r.handle === 0) {
          max += anonSets(r);
          r.handle = ++max;
        }
    tableMax.set(t, max);
  }
}

const tableMax = new WeakMap<Table, number>();

/** After a commit: remembers each table's highest handle under its (now assigned) table handle. */
function rememberHandles(s: RulesetState, rs: Ruleset): void {
  const last = lastHandles.get(rs)!;
  const live = rs.state();
  for (const t of s.tables) {
    const l = live.tables.find((x) => x.family === t.family && x.name === t.name);
    if (l !== undefined) last.set(`${l.family} ${l.name} ${l.handle}`, tableMax.get(t) ?? 0);
  }
}

export function printSource(rs: Ruleset, now: () => number): PrintSource {
  return {
    ruleCounter: (t, rule, i) => rs.exprCounter(t.family, t.name, rule.handle, i),
    namedCounter: (t, n) => rs.counter(t.family, t.name, n),
    setElements: (t, set) => {
      const n = now();
      return rs.elements(t.family, t.name, set.name).map((e) => {
        const decl = set.elements.find((x) => sameKey(x.key, e.key));
        const el: SetElement = { ...(decl ?? {}), key: e.key, ...(e.end !== undefined ? { end: e.end } : {}) };
        // An element a rule added carries the rule's `ct count`, as nft lists it.
        if (e.dynamic) {
          for (const c of t.chains)
            for (const r of c.rules)
              for (const x of r.exprs) if (x.kind === 'set-add' && x.set === set.name && x.connlimit !== undefined) el.connlimit = x.connlimit;
        }
        return { el, expiresMs: e.expires > 0 ? Math.max(0, Math.round(e.expires - n)) : 0 };
      });
    },
  };
}

function list(rs: Ruleset, cmd: Extract<NftCommand, { verb: 'list' }>, o: NftOptions, now: () => number): string {
  const s = rs.state();
  const src = printSource(rs, now);
  const tables = s.tables.filter((t) => (cmd.family === undefined || t.family === cmd.family) && (cmd.table === undefined || t.name === cmd.table));
  const one = (): Table => {
    const t = tables[0];
    if (t === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
    return t;
  };
  if (o.json === true) return listJson(cmd, tables, one, src, o);
  switch (cmd.what) {
    case 'ruleset':
      return tables.map((t) => formatTable(t, src, o)).join('');
    case 'tables':
      return tables.map((t) => `table ${t.family} ${t.name}${o.handles === true ? ` # handle ${t.handle}` : ''}\n`).join('');
    case 'table':
      return formatTable(one(), src, o);
    case 'chains':
      return tables
        .filter((t) => t.chains.length > 0)
        .map((t) => formatTableWith(t, [t.chains.map((c) => formatChain(t, { ...c, rules: [] }, src, o)).join('\n')], o))
        .join('');
    case 'chain': {
      const t = one();
      return formatTableWith(t, [formatChain(t, findChain(t, cmd.name!, cmd.tok), src, o)], o);
    }
    case 'sets':
    case 'maps': {
      const want = (x: NamedSet): boolean => (cmd.what === 'maps') === (x.map !== undefined);
      return tables
        .filter((t) => t.sets.some(want))
        .map((t) => formatTableWith(t, [t.sets.filter(want).map((x) => formatSet(t, x, src, o)).join('\n')], o))
        .join('');
    }
    case 'set':
    case 'map': {
      const t = one();
      const x = findSet(t, cmd.name!, cmd.tok);
      return formatTableWith(t, [formatSet(t, x, src, o)], o);
    }
    case 'counters':
      return tables
        .filter((t) => t.counters.length > 0)
        .map((t) => formatTableWith(t, [t.counters.map((c) => formatCounter(t, c.name, c.handle, src, o)).join('\n')], o))
        .join('');
    case 'counter': {
      const t = one();
      const c = t.counters.find((x) => x.name === cmd.name);
      if (c === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
      return formatTableWith(t, [formatCounter(t, c.name, c.handle, src, o)], o);
    }
  }
}

function listJson(cmd: Extract<NftCommand, { verb: 'list' }>, tables: Table[], one: () => Table, src: PrintSource, o: NftOptions): string {
  const items: Json[] = [];
  switch (cmd.what) {
    case 'ruleset':
      items.push(...rulesetJson(tables, src, o));
      break;
    case 'table':
      items.push(...rulesetJson([one()], src, o));
      break;
    case 'tables':
      for (const t of tables) items.push(tableJson(t));
      break;
    case 'chains':
      for (const t of tables) for (const c of t.chains) items.push(chainJson(t, c));
      break;
    case 'chain': {
      const t = one();
      const c = findChain(t, cmd.name!, cmd.tok);
      items.push(chainJson(t, c), ...c.rules.map((r) => ruleJson(t, c, r, src, o)));
      break;
    }
    case 'sets':
    case 'maps':
      for (const t of tables) for (const x of t.sets) if ((cmd.what === 'maps') === (x.map !== undefined)) items.push(setJson(t, x, src, o));
      break;
    case 'set':
    case 'map': {
      const t = one();
      items.push(setJson(t, findSet(t, cmd.name!, cmd.tok), src, o));
      break;
    }
    case 'counters':
      for (const t of tables) for (const c of t.counters) items.push(counterJson(t, c.name, c.handle, src, o));
      break;
    case 'counter': {
      const t = one();
      const c = t.counters.find((x) => x.name === cmd.name);
      if (c === undefined) throw new ApplyError(`Could not process rule: ${ENOENT}`, cmd.tok);
      items.push(counterJson(t, c.name, c.handle, src, o));
      break;
    }
  }
  return nftablesJson(items);
}

/**
 * Runs a batch of nft commands (a file, or words joined by spaces). `file` names
 * the input in error messages (null for the command line).
 */
export interface NftIo {
  readFile(path: string): string;
  /** `-f -`: the client's standard input. */
  stdin?: string;
  now: () => number;
  /** Interface index by name and name by index (iif/oif). */
  ifindex?: (name: string) => number | null;
  ifname?: (index: number) => string | null;
}

/** What `nft` reads from a Stack: files, the clock, interface names. */
export function stackNftIo(s: Stack, stdin?: string): NftIo {
  return {
    readFile: (p) => fs.readFileSync(p, 'utf8'),
    stdin,
    now: () => s.time.now(),
    ifindex: (name) => s.iface(name)?.index ?? null,
    ifname: (index) => s.interfaces().find((i) => i.index === index)?.name ?? null,
  };
}

export function runNftText(
  rs: Ruleset,
  text: string,
  opts: NftOptions,
  file: string | null,
  now: () => number,
  ifs: Pick<NftIo, 'ifindex' | 'ifname'> = {},
): NftResult {
  const o: NftOptions = { ...opts, ifname: ifs.ifname };
  return withInterfaces(ifs.ifindex, () => runBatch(rs, text, o, file, now));
}

function runBatch(rs: Ruleset, text: string, opts: NftOptions, file: string | null, now: () => number): NftResult {
  let cmds: NftCommand[];
  try {
    cmds = parseNft(text);
  } catch (e) {
    if (e instanceof NftSyntaxError) return { stdout: '', stderr: formatNftError(text, e, file), code: 1 };
    throw e;
  }
  const changes = cmds.filter((c) => c.verb !== 'list');
  const post: (() => void)[] = [];
  const echo: Echo[] = [];
  let out = '';
  try {
    if (changes.length > 0) {
      const draft = rs.state();
      for (const c of changes) apply(draft, c, post, rs, echo);
      assignHandles(draft, rs);
      if (opts.check !== true) {
        // `reset` prints what it resets, with the values before.
        for (const c of changes) {
          if (c.verb === 'reset' && c.obj === 'counters')
            out += list(rs, { verb: 'list', what: 'counters', family: c.family, table: c.table, tok: c.tok }, opts, now);
          else if (c.verb === 'reset' && c.obj === 'counter')
            out += list(rs, { verb: 'list', what: 'counter', family: c.family, table: c.table, name: c.name, tok: c.tok }, opts, now);
        }
        rs.commit(draft);
        rememberHandles(draft, rs);
        for (const p of post) p();
        if (opts.echo === true && echo.length > 0) {
          const src = printSource(rs, now);
          out += echo.map((e) => e(src, opts) + '\n').join('');
          out += `# new generation ${rs.generation} by process ${process.pid} (nft)\n`;
        }
      }
    }
    if (opts.check !== true) for (const c of cmds) if (c.verb === 'list') out += list(rs, c, opts, now);
  } catch (e) {
    if (e instanceof ApplyError && e.tok !== null)
      return { stdout: '', stderr: formatNftError(text, new NftSyntaxError(e.message, e.whole ? commandSpan(text, e.tok) : e.tok), file), code: 1 };
    if (e instanceof NftSyntaxError) return { stdout: '', stderr: formatNftError(text, e, file), code: 1 };
    if (e instanceof RulesetError || e instanceof ApplyError) return { stdout: '', stderr: `Error: ${e.message}\n`, code: 1 };
    throw e;
  }
  return { stdout: out, stderr: '', code: 0 };
}

/**
 * `nft ARGS...`: options, then `-f FILE` (read through `readFile`; `-` is
 * standard input, given as `stdin`) or command words.
 */
export function runNft(rs: Ruleset, argv: readonly string[], io: NftIo): NftResult {
  let parsed;
  try {
    parsed = parseNftArgs(argv);
  } catch (e) {
    if (e instanceof NftUsageError) return { stdout: '', stderr: `nft: ${e.message}\n`, code: 1 };
    throw e;
  }
  const { opts, words } = parsed;
  if (opts.file !== undefined) {
    if (words.length > 0) return { stdout: '', stderr: `Error: syntax error, unexpected ${words[0]}\n`, code: 1 };
    let text: string;
    const name = opts.file === '-' ? '/dev/stdin' : opts.file;
    try {
      text = opts.file === '-' ? (io.stdin ?? '') : io.readFile(opts.file);
    } catch (e) {
      return { stdout: '', stderr: `Error: Could not process rule: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? ENOENT : (e as Error).message}\n${name}\n`, code: 1 };
    }
    return runNftText(rs, text, opts, name, io.now, io);
  }
  if (words.length === 0) return { stdout: '', stderr: '', code: 0 };
  // nft reads a command line as a line: an error at its end is at the newline.
  return runNftText(rs, words.join(' ') + '\n', opts, null, io.now, io);
}
