/**
 * `iptables`, `iptables-save` and `iptables-restore` on the chain engine, as
 * iptables-nft does it: the tables `ip filter|nat|mangle|raw` with their
 * built-in chains as base chains at iptables-nft's priorities, user chains as
 * regular chains, and a counter in every rule. Each rule keeps its canonical
 * spec (Rule.iptables), from which -S, -L and iptables-save print it.
 */
import { dropDependencies } from './nft.js';
import fs from 'node:fs';
import type { BaseChainSpec, Chain, HookName, RulesetState, Table } from '../netfilter/ast.js';
import { PRIORITY } from '../netfilter/ast.js';
import { RulesetError, type Ruleset } from '../netfilter/ruleset.js';
import { NAT_HOOK_ERROR } from '../netfilter/compile.js';
import { ServicesDb } from './etc-services.js';
import type { CommandStream } from './protocol.js';
import {
  BUILTIN_TARGETS,
  IPT_VERSION,
  IptError,
  listAddr,
  listExtra,
  listIface,
  listProto,
  paramError,
  ruleComment,
  ruleExprs,
  ruleParser,
  saveRule,
  splitQuoted,
  targetName,
  type IptRule,
  verboseRule,
} from './iptables-rule.js';

export interface IptResult {
  stdout: string;
  stderr: string;
  code: number;
}

type BuiltinSpec = [string, HookName, BaseChainSpec['type'], number];

/** The built-in chains of each table, as iptables-nft creates them. */
export const IPT_TABLES: Record<string, BuiltinSpec[]> = {
  filter: [
    ['INPUT', 'input', 'filter', PRIORITY.filter],
    ['FORWARD', 'forward', 'filter', PRIORITY.filter],
    ['OUTPUT', 'output', 'filter', PRIORITY.filter],
  ],
  nat: [
    ['PREROUTING', 'prerouting', 'nat', PRIORITY.dstnat],
    ['INPUT', 'input', 'nat', PRIORITY.srcnat],
    ['OUTPUT', 'output', 'nat', PRIORITY.dstnat],
    ['POSTROUTING', 'postrouting', 'nat', PRIORITY.srcnat],
  ],
  mangle: [
    ['PREROUTING', 'prerouting', 'filter', PRIORITY.mangle],
    ['INPUT', 'input', 'filter', PRIORITY.mangle],
    ['FORWARD', 'forward', 'filter', PRIORITY.mangle],
    ['OUTPUT', 'output', 'route', PRIORITY.mangle],
    ['POSTROUTING', 'postrouting', 'filter', PRIORITY.mangle],
  ],
  raw: [
    ['PREROUTING', 'prerouting', 'filter', PRIORITY.raw],
    ['OUTPUT', 'output', 'filter', PRIORITY.raw],
  ],
};
/** The order iptables-save prints tables in. */
const SAVE_ORDER = ['mangle', 'raw', 'filter', 'nat'];

const plain = (msg: string, code = 1): IptError => new IptError(`iptables: ${msg}`, code);
const noChain = (): IptError => plain('No chain/target/match by that name.');

/** A table as iptables-nft creates it: empty; built-in chains are added when first used. */
function newTable(name: string): Table {
  return { family: 'ip', name, handle: 0, chains: [], sets: [], counters: [] };
}

function builtinChain(table: string, name: string): Chain {
  const [n, hook, type, priority] = IPT_TABLES[table].find(([x]) => x === name)!;
  return { name: n, handle: 0, base: { type, hook, priority, policy: 'accept' }, rules: [] };
}

/** A chain by name, a built-in one that does not exist yet seen empty. */
function findChain(t: Table, name: string): Chain | undefined {
  return t.chains.find((c) => c.name === name) ?? (isBuiltin(t.name, name) ? builtinChain(t.name, name) : undefined);
}

function isBuiltin(table: string, chain: string): boolean {
  return IPT_TABLES[table].some(([n]) => n === chain);
}

/** The table as iptables sees it: the live one, or a fresh one with empty built-in chains. */
function viewTable(s: RulesetState, name: string): Table {
  return s.tables.find((t) => t.family === 'ip' && t.name === name) ?? newTable(name);
}

/** The table in a draft, created with its built-in chains if missing. */
function draftTable(s: RulesetState, name: string): Table {
  let t = s.tables.find((x) => x.family === 'ip' && x.name === name);
  if (t === undefined) {
    t = newTable(name);
    s.tables.push(t);
  }
  return t;
}

/** The rule parsed back from its canonical spec; null for rules not made by iptables. */
function parseSpec(spec: string | undefined, table: string, services: ServicesDb): IptRule | null {
  if (spec === undefined) return null;
  const words = splitQuoted(spec);
  const p = ruleParser(table, services);
  let neg = false;
  for (let i = 0; i < words.length; ) {
    if (words[i] === '!') {
      neg = true;
      i++;
      continue;
    }
    const n = p.option(words, i, neg);
    if (n < 0) return null;
    i = n;
    neg = false;
  }
  return p.finish();
}

// ---------------------------------------------------------------- command line

type Cmd = 'A' | 'I' | 'D' | 'R' | 'F' | 'Z' | 'N' | 'X' | 'E' | 'P' | 'L' | 'S' | 'C';

const COMMANDS: Record<string, Cmd> = {
  '-A': 'A', '--append': 'A', '-I': 'I', '--insert': 'I', '-D': 'D', '--delete': 'D', '-R': 'R', '--replace': 'R',
  '-F': 'F', '--flush': 'F', '-Z': 'Z', '--zero': 'Z', '-N': 'N', '--new-chain': 'N', '-X': 'X', '--delete-chain': 'X',
  '-E': 'E', '--rename-chain': 'E', '-P': 'P', '--policy': 'P', '-L': 'L', '--list': 'L', '-S': 'S', '--list-rules': 'S',
  '-C': 'C', '--check': 'C',
};

export interface ParsedCmd {
  cmd: Cmd;
  table: string;
  chain?: string;
  /** -I/-R/-D/-S rule number, -E new name, -P policy. */
  num?: number;
  arg2?: string;
  rule?: IptRule;
  numeric: boolean;
  verbose: boolean;
  exact: boolean;
  lineNumbers: boolean;
  /** -L -Z: list, then zero. */
  zeroToo: boolean;
}

function ruleNum(s: string): number {
  if (!/^\d+$/.test(s) || parseInt(s, 10) === 0) throw paramError(`Invalid rule number \`${s}'`);
  return parseInt(s, 10);
}

/** Parses one iptables command line (without the program name). */
export function parseIptables(argv: readonly string[], services: ServicesDb = ServicesDb.load()): ParsedCmd {
  let table = 'filter';
  // -t first: a rule's options depend on the table (NAT targets).
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-t' || argv[i] === '--table') {
      const v = argv[i + 1];
      if (v === undefined) throw paramError(`option "${argv[i]}" requires an argument`);
      table = v;
    } else if (argv[i].startsWith('-t') && argv[i].length > 2 && !argv[i].startsWith('--')) table = argv[i].slice(2);
  }
  if (!(table in IPT_TABLES)) throw new IptError(`iptables ${IPT_VERSION}: table '${table}' does not exist\nPerhaps iptables or your kernel needs to be upgraded.`, 3);
  const rp = ruleParser(table, services);
  const out: ParsedCmd = { cmd: 'L', table, numeric: false, verbose: false, exact: false, lineNumbers: false, zeroToo: false };
  let cmd: Cmd | null = null;
  let neg = false;
  let hasRule = false;
  const optional = (i: number): string | undefined => {
    const v = argv[i];
    return v !== undefined && !v.startsWith('-') && v !== '!' ? v : undefined;
  };
  const setCmd = (c: Cmd): void => {
    if (cmd !== null && !(cmd === 'L' && c === 'Z') && !(cmd === 'Z' && c === 'L')) throw paramError(`Cannot use -${c} with -${cmd}`);
    if ((cmd === 'L' && c === 'Z') || (cmd === 'Z' && c === 'L')) {
      out.zeroToo = true;
      cmd = 'L';
      return;
    }
    cmd = c;
  };
  let i = 0;
  while (i < argv.length) {
    const a = argv[i];
    if (a === '!') {
      if (neg) throw paramError('multiple consecutive ! not allowed');
      neg = true;
      i++;
      continue;
    }
    // Bundled short flags: -nvL, -vnx.
    if (/^-[nvxLSFZX]{2,}$/.test(a)) {
      const rest = [...a.slice(1)].map((c) => `-${c}`);
      argv = [...argv.slice(0, i), ...rest, ...argv.slice(i + 1)];
      continue;
    }
    const c = COMMANDS[a];
    if (c !== undefined) {
      if (neg) throw paramError(`cannot have ! before ${a}`);
      setCmd(c);
      const need = (k: number): string => {
        const v = argv[k];
        // As getopt: a required argument is the next word, whatever it looks like.
        if (v === undefined) throw paramError(`option "${a}" requires an argument`);
        return v;
      };
      i++;
      switch (c) {
        case 'A':
        case 'C':
        case 'N':
          out.chain = need(i++);
          break;
        case 'I': {
          out.chain = need(i++);
          const n = optional(i);
          if (n !== undefined && /^\d+$/.test(n)) {
            out.num = ruleNum(n);
            i++;
          } else if (n !== undefined && /^-?\d/.test(n)) throw paramError(`Invalid rule number \`${n}'`);
          break;
        }
        case 'R': {
          out.chain = need(i++);
          const n = optional(i);
          if (n === undefined) throw paramError('-R requires a rule number');
          out.num = ruleNum(n);
          i++;
          break;
        }
        case 'D': {
          out.chain = need(i++);
          const n = optional(i);
          if (n !== undefined && /^\d+$/.test(n)) {
            out.num = ruleNum(n);
            i++;
          }
          break;
        }
        case 'E':
        case 'P': {
          out.chain = need(i++);
          const v = optional(i);
          if (v === undefined) throw paramError(c === 'P' ? '-P requires a chain and a policy' : '-E requires old-chain-name and new-chain-name');
          out.arg2 = v;
          i++;
          break;
        }
        case 'F':
        case 'Z':
        case 'X':
        case 'L':
        case 'S': {
          const v = optional(i);
          if (v !== undefined) {
            out.chain = v;
            i++;
            if (c === 'S' || c === 'L' || c === 'Z') {
              const n = optional(i);
              if (n !== undefined && /^\d+$/.test(n)) {
                out.num = parseInt(n, 10);
                i++;
              }
            }
          }
          break;
        }
      }
      continue;
    }
    switch (a) {
      case '-t':
      case '--table':
        i += 2;
        continue;
      case '-n':
      case '--numeric':
        out.numeric = true;
        i++;
        continue;
      case '-v':
      case '--verbose':
        out.verbose = true;
        i++;
        continue;
      case '-x':
      case '--exact':
        out.exact = true;
        i++;
        continue;
      case '--line-numbers':
        out.lineNumbers = true;
        i++;
        continue;
      case '-w':
      case '--wait': {
        i++;
        if (optional(i) !== undefined) i++;
        continue;
      }
    }
    if (a.startsWith('-t') && !a.startsWith('--') && a.length > 2) {
      i++;
      continue;
    }
    if (!a.startsWith('-')) throw new IptError(`Bad argument \`${a}'\nTry \`iptables -h' or 'iptables --help' for more information.`, 2);
    const n = rp.option(argv, i, neg);
    if (n < 0) throw paramError(`unknown option "${a}"`);
    hasRule = true;
    neg = false;
    i = n;
  }
  if (neg) throw paramError('no command specified');
  if (cmd === null) throw paramError('no command specified');
  out.cmd = cmd;
  const takesRule = cmd === 'A' || cmd === 'I' || cmd === 'R' || cmd === 'C' || (cmd === 'D' && out.num === undefined);
  if (hasRule && !takesRule) throw paramError(`Illegal option \`-${optionLetter(argv)}' with this command`);
  if (takesRule) {
    out.rule = rp.finish(out.chain);
    // The kernel's hooks: no output device before routing, no input device after it.
    const ch = out.chain!;
    if (out.rule.oif !== undefined && (ch === 'PREROUTING' || ch === 'INPUT')) throw paramError(`Can't use -o with ${ch}\n`);
    if (out.rule.iif !== undefined && (ch === 'POSTROUTING' || ch === 'OUTPUT')) throw paramError(`Can't use -i with ${ch}\n`);
  }
  if (out.chain !== undefined && out.chain.length > 28) throw paramError(`chain name \`${out.chain}' too long (must be under 29 chars)`);
  return out;
}

function optionLetter(argv: readonly string[]): string {
  const o = argv.find((a) => /^-[psdiojm]$/.test(a));
  return o === undefined ? '?' : o.slice(1);
}

// ---------------------------------------------------------------- carrying commands out

export interface IptOptions {
  services?: ServicesDb;
}

function chainOf(t: Table, name: string): Chain {
  const c = t.chains.find((x) => x.name === name);
  if (c === undefined) throw noChain();
  return c;
}

function refs(t: Table, name: string): number {
  let n = 0;
  for (const c of t.chains)
    for (const r of c.rules)
      for (const e of r.exprs) if (e.kind === 'verdict' && (e.verdict.kind === 'jump' || e.verdict.kind === 'goto') && e.verdict.chain === name) n++;
  return n;
}

function checkTarget(t: Table, rule: IptRule): void {
  const tg = rule.target;
  // Only a user chain is a jump target (a built-in one is not, as in iptables).
  if (tg?.t === 'chain' && !t.chains.some((c) => c.name === tg.chain && c.base === undefined)) throw paramError(`Chain '${tg.chain}' does not exist`);
}

function makeRule(rule: IptRule): Chain['rules'][number] {
  // The protocol match a port match implies is left out, as nft lists iptables-nft's rules.
  return { handle: 0, exprs: dropDependencies(ruleExprs(rule), 'ip'), comment: ruleComment(rule), iptables: saveRule(rule) };
}

/**
 * Applies a changing command to a draft state. Used by `iptables` (one
 * command, one commit) and by iptables-restore (a table's lines, one commit).
 */
export function applyCommand(s: RulesetState, p: ParsedCmd, deferTargets = false, zeroPolicy: string[] = []): void {
  const existed = s.tables.some((x) => x.family === 'ip' && x.name === p.table);
  const t = draftTable(s, p.table);
  const name = p.chain;
  // Like iptables-nft, a built-in chain is created when a command uses it (not by -F or -Z).
  if (name !== undefined && isBuiltin(p.table, name) && !t.chains.some((c) => c.name === name)) {
    if (p.cmd === 'F' || p.cmd === 'Z') return;
    t.chains.push(builtinChain(p.table, name));
  }
  switch (p.cmd) {
    case 'A':
    case 'I':
    case 'R': {
      if (p.cmd === 'R' && !existed) throw noChain();
      const c = chainOf(t, name!);
      if (!deferTargets) checkTarget(t, p.rule!);
      const r = makeRule(p.rule!);
      if (p.cmd === 'A') c.rules.push(r);
      else if (p.cmd === 'I') {
        const n = p.num ?? 1;
        if (n > c.rules.length + 1) throw plain('Index of insertion too big.');
        c.rules.splice(n - 1, 0, r);
      } else {
        if (p.num! > c.rules.length) throw plain('Index of replacement too big.');
        c.rules[p.num! - 1] = r;
      }
      return;
    }
    case 'D': {
      if (!existed) throw p.num !== undefined ? noChain() : plain('Bad rule (does a matching rule exist in that chain?).');
      const c = chainOf(t, name!);
      if (p.num !== undefined) {
        if (p.num > c.rules.length) throw plain('Index of deletion too big.');
        c.rules.splice(p.num - 1, 1);
        return;
      }
      const spec = saveRule(p.rule!);
      const i = c.rules.findIndex((r) => r.iptables === spec);
      if (i < 0) throw plain('Bad rule (does a matching rule exist in that chain?).');
      c.rules.splice(i, 1);
      return;
    }
    case 'F':
      if (name !== undefined) chainOf(t, name).rules = [];
      else for (const c of t.chains) c.rules = [];
      return;
    case 'N':
      if (BUILTIN_TARGETS.includes(name!) || name === 'QUEUE') throw paramError('chain name may not clash with target name');
      if (name!.startsWith('-') || name === '!') throw paramError(`chain name not allowed to start with \`-'`);
      if (t.chains.some((c) => c.name === name)) throw plain('Chain already exists.');
      t.chains.push({ name: name!, handle: 0, rules: [] });
      return;
    case 'X': {
      if (!existed) throw noChain();
      const victims = name !== undefined ? [chainOf(t, name)] : t.chains.filter((c) => c.base === undefined);
      const gone = new Set(victims.map((v) => v.name));
      for (const v of victims) {
        // A chain is busy while a rule of a chain that stays jumps to it.
        const users = t.chains.filter((c) => !gone.has(c.name) && refs({ ...t, chains: [c] }, v.name) > 0);
        if (v.base !== undefined || v.rules.length > 0 || users.length > 0 || (name !== undefined && refs(t, v.name) > 0))
          throw new IptError(`iptables ${IPT_VERSION}:  CHAIN_DEL failed (Device or resource busy): chain ${v.name}`, 4);
      }
      t.chains = t.chains.filter((c) => !gone.has(c.name));
      return;
    }
    case 'E': {
      const c = chainOf(t, name!);
      if (c.base !== undefined) throw plain('Bad built-in chain name.');
      if (t.chains.some((x) => x.name === p.arg2)) throw plain('File exists.');
      if (BUILTIN_TARGETS.includes(p.arg2!)) throw paramError('chain name may not clash with target name');
      c.name = p.arg2!;
      // Rules that jump to it now name the new chain.
      for (const ch of t.chains)
        for (const r of ch.rules) {
          let changed = false;
          for (const e of r.exprs)
            if (e.kind === 'verdict' && (e.verdict.kind === 'jump' || e.verdict.kind === 'goto') && e.verdict.chain === name) {
              e.verdict = { kind: e.verdict.kind, chain: p.arg2! };
              changed = true;
            }
          if (changed && r.iptables !== undefined) r.iptables = r.iptables.replace(/(^|\s)(-[jg]) \S+$/, `$1$2 ${p.arg2!}`);
        }
      return;
    }
    case 'P': {
      const c = t.chains.find((x) => x.name === name);
      if (c === undefined || c.base === undefined) throw plain('Bad built-in chain name.');
      if (p.arg2 !== 'ACCEPT' && p.arg2 !== 'DROP') throw plain('Bad policy name. Run `dmesg\' for more information.');
      c.base.policy = p.arg2 === 'ACCEPT' ? 'accept' : 'drop';
      // -P sends the chain with zeroed counters: its policy counters start (again) from 0.
      c.base.counters = true;
      zeroPolicy.push(c.name);
      return;
    }
    default:
      return;
  }
}

/** xtables_print_num. */
function num(n: number, kmg: boolean, table: boolean): string {
  if (!table) {
    if (!kmg || n <= 99999) return `${n} `;
  }
  if (!kmg) return `${String(n).padStart(8)} `;
  if (n <= 99999) return `${String(n).padStart(5)} `;
  let v = Math.floor((n + 500) / 1000);
  for (const suffix of ['K', 'M', 'G', 'T']) {
    if (v <= 9999 || suffix === 'T') return table ? `${String(v).padStart(4)}${suffix} ` : `${v}${suffix} `;
    v = Math.floor((v + 500) / 1000);
  }
  return `${v}T `;
}

function counterOf(rs: Ruleset | null, table: Table, handle: number): { packets: number; bytes: number } {
  if (rs === null || handle === 0) return { packets: 0, bytes: 0 };
  try {
    return rs.ruleCounter('ip', table.name, handle) ?? { packets: 0, bytes: 0 };
  } catch (e) {
    if (e instanceof RulesetError) return { packets: 0, bytes: 0 };
    throw e;
  }
}

/** A built-in chain's policy counters, as iptables-nft reads them (0 until the chain keeps them). */
function policyCounter(rs: Ruleset | null, t: Table, c: Chain): { packets: number; bytes: number } {
  if (rs === null || c.base?.counters !== true) return { packets: 0, bytes: 0 };
  try {
    return rs.chainCounter('ip', t.name, c.name);
  } catch (e) {
    if (e instanceof RulesetError) return { packets: 0, bytes: 0 };
    throw e;
  }
}

function header(rs: Ruleset | null, t: Table, c: Chain, p: ParsedCmd, kmg: boolean): string {
  let s = `Chain ${c.name}`;
  if (c.base !== undefined) {
    s += ` (policy ${c.base.policy.toUpperCase()}`;
    const k = policyCounter(rs, t, c);
    if (p.verbose) s += ` ${num(k.packets, kmg, false)}packets, ${num(k.bytes, kmg, false)}bytes`;
    s += ')\n';
  } else s += ` (${refs(t, c.name)} references)\n`;
  if (p.lineNumbers) s += 'num  ';
  if (p.verbose) s += kmg ? ' pkts bytes ' : '    pkts      bytes ';
  s += 'target     prot opt';
  if (p.verbose) s += ' in     out    ';
  s += ' source               destination         \n';
  return s;
}

function listChain(rs: Ruleset | null, t: Table, c: Chain, p: ParsedCmd, services: ServicesDb): string {
  const kmg = !p.exact;
  // `-L CHAIN N` prints the rule alone.
  let s = p.num === undefined ? header(rs, t, c, p, kmg) : '';
  c.rules.forEach((r, i) => {
    if (p.num !== undefined && p.num !== i + 1) return;
    const ir = parseSpec(r.iptables, t.name, services) ?? { matches: [] };
    let line = '';
    if (p.lineNumbers) line += `${String(i + 1).padEnd(4)} `;
    if (p.verbose) {
      const k = counterOf(rs, t, r.handle);
      line += num(k.packets, kmg, true) + num(k.bytes, kmg, true);
    }
    line += `${targetName(ir).padEnd(9)} `;
    line += listProto(ir, p.numeric);
    line += '-- ';
    if (p.verbose) line += ` ${listIface(ir.iif, p.numeric).padEnd(6)} ${listIface(ir.oif, p.numeric).padEnd(6)} `;
    line += listAddr(ir.src, p.numeric) + listAddr(ir.dst, p.numeric);
    line += listExtra(ir, p.numeric, services);
    s += `${line}\n`;
  });
  return s;
}

function specLines(c: Chain, counters: ((h: number) => string) | null, only?: number): string[] {
  const out: string[] = [];
  c.rules.forEach((r, i) => {
    if (only !== undefined && only !== i + 1) return;
    const spec = r.iptables ?? '';
    out.push(`${counters !== null ? counters(r.handle) : ''}-A ${c.name}${spec.length > 0 ? ` ${spec}` : ''}`);
  });
  return out;
}

/** A chain holding rules made with nft, which iptables cannot print. */
function incompatible(table: string, chains: Chain[]): IptError | null {
  const c = chains.find((x) => x.rules.some((r) => r.iptables === undefined));
  return c === undefined ? null : new IptError(`iptables ${IPT_VERSION}: chain \`${c.name}' in table \`${table}' is incompatible, use 'nft' tool.`, 1);
}

/** Orders chains as iptables prints them: built-ins in their order, then user chains by name. */
function ordered(t: Table): Chain[] {
  const b = IPT_TABLES[t.name].map(([n]) => findChain(t, n)!);
  const u = t.chains.filter((c) => c.base === undefined).sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return [...b, ...u];
}

/** Runs `iptables ARGS...` on a ruleset. */
export function runIptables(rs: Ruleset, argv: readonly string[], opts: IptOptions = {}): IptResult {
  const services = opts.services ?? ServicesDb.load();
  if (argv.some((a) => a === '-V' || a === '--version')) return { stdout: `iptables ${IPT_VERSION}\n`, stderr: '', code: 0 };
  let cmd: ParsedCmd | null = null;
  try {
    const p = parseIptables(argv, services);
    cmd = p;
    const state = rs.state();
    const t = viewTable(state, p.table);
    switch (p.cmd) {
      case 'L': {
        if (p.chain !== undefined && findChain(t, p.chain) === undefined)
          throw new IptError(`iptables ${IPT_VERSION}: chain \`${p.chain}' in table \`${p.table}' is incompatible, use 'nft' tool.`, 1);
        const chains = ordered(t).filter((c) => p.chain === undefined || c.name === p.chain);
        const bad = incompatible(p.table, chains);
        if (bad !== null) throw bad;
        const text = chains.map((c) => listChain(rs, t, c, p, services)).join('\n');
        if (p.zeroToo) zero(rs, p.table);
        return { stdout: text, stderr: '', code: 0 };
      }
      case 'S': {
        if (p.chain !== undefined && findChain(t, p.chain) === undefined)
          throw new IptError(`iptables ${IPT_VERSION}: chain \`${p.chain}' in table \`${p.table}' is incompatible, use 'nft' tool.`, 1);
        const lines: string[] = [];
        const chains = ordered(t).filter((c) => p.chain === undefined || c.name === p.chain);
        const bad = incompatible(p.table, chains);
        if (bad !== null) throw bad;
        if (p.num === undefined)
          for (const c of chains) {
            const k = policyCounter(rs, t, c);
            lines.push(c.base !== undefined ? `-P ${c.name} ${c.base.policy.toUpperCase()}${p.verbose ? ` -c ${k.packets} ${k.bytes}` : ''}` : `-N ${c.name}`);
          }
        const cnt = p.verbose
          ? (h: number): string => {
              const k = counterOf(rs, t, h);
              return `-c ${k.packets} ${k.bytes} `;
            }
          : null;
        for (const c of chains) lines.push(...specLines(c, null, p.num).map((l, i) => (cnt !== null ? withCounter(l, cnt(c.rules[p.num !== undefined ? p.num - 1 : i].handle)) : l)));
        return { stdout: lines.map((l) => `${l}\n`).join(''), stderr: '', code: 0 };
      }
      case 'C': {
        const c = findChain(t, p.chain!);
        if (c === undefined) throw noChain();
        checkTarget(t, p.rule!);
        const spec = saveRule(p.rule!);
        if (!c.rules.some((r) => r.iptables === spec)) throw plain('Bad rule (does a matching rule exist in that chain?).');
        return { stdout: '', stderr: '', code: 0 };
      }
      case 'Z': {
        if (p.chain !== undefined && findChain(t, p.chain) === undefined) throw noChain();
        zero(rs, p.table, p.chain);
        return { stdout: '', stderr: '', code: 0 };
      }
      default: {
        const draft = rs.state();
        const zeroPolicy: string[] = [];
        applyCommand(draft, p, false, zeroPolicy);
        rs.commit(draft);
        for (const c of zeroPolicy) rs.setChainCounter('ip', p.table, c, 0, 0);
        // -v echoes the rule, or names the chains a flush or delete went through.
        let out = '';
        if (p.verbose && p.rule !== undefined) out = verboseRule(p.rule, services);
        else if (p.verbose && p.cmd === 'F') out = ordered(t).filter((c) => p.chain === undefined || c.name === p.chain).map((c) => `Flushing chain \`${c.name}'\n`).join('');
        return { stdout: out, stderr: '', code: 0 };
      }
    }
  } catch (e) {
    if (e instanceof IptError) return { stdout: '', stderr: `${e.message}\n`, code: e.code };
    if (e instanceof RulesetError) {
      // A NAT target reached from a hook it cannot work on: the kernel refuses the rule being added.
      if (e.message === NAT_HOOK_ERROR && cmd !== null && (cmd.cmd === 'A' || cmd.cmd === 'I' || cmd.cmd === 'R')) {
        const op = { A: 'RULE_APPEND', I: 'RULE_INSERT', R: 'RULE_REPLACE' }[cmd.cmd];
        return { stdout: '', stderr: `iptables ${IPT_VERSION}:  ${op} failed (Invalid argument): rule in chain ${cmd.chain}\n`, code: 4 };
      }
      return { stdout: '', stderr: `iptables ${IPT_VERSION}: ${e.message}\n`, code: 4 };
    }
    throw e;
  }
}

/** `-v -S`: the counters go before the target (`-A INPUT -p tcp -c 1 84 -j DROP`), as iptables-nft prints them. */
function withCounter(line: string, c: string): string {
  // iptables-nft's save_matches_and_target: after the addresses, interfaces and
  // matches, before the target (-j/-g, found outside quoted words), else at the end.
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === ' ' && (line.startsWith(' -j ', i) || line.startsWith(' -g ', i))) return `${line.slice(0, i)} ${c.trimEnd()}${line.slice(i)}`;
  }
  return `${line} ${c.trimEnd()}`;
}

/**
 * -Z: rule counters to 0, and the policy counters of the built-in chains
 * that exist, which keep counters from then on (iptables-nft sends them with
 * zeroed counters, and nf_tables then keeps the chain's stats).
 */
function zero(rs: Ruleset, table: string, chain?: string): void {
  const t = rs.state().tables.find((x) => x.family === 'ip' && x.name === table);
  if (t === undefined) return;
  const enable = t.chains.filter((c) => c.base !== undefined && c.base.counters !== true && (chain === undefined || c.name === chain)).map((c) => c.name);
  if (enable.length > 0)
    rs.edit((s) => {
      const d = s.tables.find((x) => x.family === 'ip' && x.name === table)!;
      for (const c of d.chains) if (enable.includes(c.name)) c.base!.counters = true;
    });
  for (const c of t.chains) {
    if (chain !== undefined && c.name !== chain) continue;
    for (const r of c.rules) rs.setRuleCounter('ip', table, r.handle, 0, 0);
    if (c.base !== undefined) rs.setChainCounter('ip', table, c.name, 0, 0);
  }
}

// ---------------------------------------------------------------- iptables-save

export interface SaveOptions {
  counters: boolean;
  table?: string;
  /** The time in the header and footer lines. */
  now?: Date;
}

/** ctime(3): `Tue Dec  1 23:39:50 2026`. */
export function ctime(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

export function iptablesSave(rs: Ruleset, o: SaveOptions): string {
  const state = rs.state();
  const when = ctime(o.now ?? new Date());
  let out = '';
  for (const name of SAVE_ORDER) {
    if (o.table !== undefined && o.table !== name) continue;
    // A table named with -t is printed even before it exists (its built-in chains, empty).
    const t = o.table !== undefined ? viewTable(state, name) : state.tables.find((x) => x.family === 'ip' && x.name === name);
    if (t === undefined) continue;
    if (incompatible(name, t.chains) !== null) {
      out += `# Table \`${name}' is incompatible, use 'nft' tool.\n`;
      continue;
    }
    out += `# Generated by iptables-save ${IPT_VERSION} on ${when}\n*${name}\n`;
    const chains = ordered(t);
    for (const c of chains) {
      const k = policyCounter(rs, t, c);
      out += `:${c.name} ${c.base !== undefined ? c.base.policy.toUpperCase() : '-'} [${k.packets}:${k.bytes}]\n`;
    }
    for (const c of chains)
      for (const l of specLines(c, o.counters ? (h) => {
        const k = counterOf(rs, t, h);
        return `[${k.packets}:${k.bytes}] `;
      } : null))
        out += `${l}\n`;
    out += `COMMIT\n# Completed on ${when}\n`;
  }
  return out;
}

function saveUsage(msg: string): IptResult {
  return { stdout: '', stderr: `iptables-save: ${msg}\nLook at manual page \`iptables-save.8' for more information.\n`, code: 1 };
}

/** Runs `iptables-save ARGS...`. */
export function runIptablesSave(rs: Ruleset, argv: readonly string[], now?: Date): IptResult {
  const o: SaveOptions = { counters: false, now };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-c' || a === '--counters') o.counters = true;
    else if (a === '-t' || a === '--table') {
      const v = argv[++i];
      if (v === undefined) return saveUsage(`option requires an argument -- 't'`);
      if (!(v in IPT_TABLES)) return { stdout: '', stderr: `Table \`${v}' does not exist\n`, code: 1 };
      o.table = v;
    } else if (a.startsWith('--')) return saveUsage(`unrecognized option '${a}'`);
    else return saveUsage(`invalid option -- '${a.slice(1, 2)}'`);
  }
  return { stdout: iptablesSave(rs, o), stderr: '', code: 0 };
}

// ---------------------------------------------------------------- iptables-restore

export interface RestoreOptions {
  noflush: boolean;
  counters: boolean;
  test: boolean;
  /** `-T NAME`: restore only this table of the input. */
  table?: string;
}

const RESTORE = 'iptables-restore';

function restoreError(msg: string, line: number, prefixed = true): IptError {
  return new IptError(
    `${prefixed ? `${RESTORE} ${IPT_VERSION}: ` : ''}${msg}\nError occurred at line: ${line}\nTry \`${RESTORE} -h' or '${RESTORE} --help' for more information.`,
    2,
  );
}

/** An iptables error as iptables-restore reports it for input line `ln`. */
function asRestoreError(e: IptError, ln: number): IptError {
  if (e.message.startsWith('iptables: ')) return new IptError(`${RESTORE}: line ${ln} failed: ${e.message.slice('iptables: '.length)}`, 1);
  const msg = e.message.replace(/\nTry .*$/s, '');
  if (msg.startsWith('Bad argument')) return restoreError(msg, ln, false);
  return restoreError(msg.replace(/^iptables v[^:]*: /, ''), ln);
}

/**
 * Restores tables from iptables-save text. Each table (from `*name` to
 * `COMMIT`) is committed on its own, whole or not at all; a table after an
 * error is not applied.
 */
export function iptablesRestore(rs: Ruleset, text: string, o: RestoreOptions, services: ServicesDb = ServicesDb.load()): IptResult {
  const lines = text.split('\n');
  let draft: RulesetState | null = null;
  let table = '';
  let pendingCounters: { chain: string; index: number; packets: number; bytes: number }[] = [];
  let pendingPolicy: { chain: string; packets: number; bytes: number }[] = [];
  let skipping = false;
  try {
    for (let ln = 1; ln <= lines.length; ln++) {
      const raw = lines[ln - 1].replace(/\r$/, '');
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      if (draft === null) {
        if (!line.startsWith('*')) throw restoreError(`Bad argument \`${splitQuoted(line)[0] ?? line}'`, ln, false);
        table = line.slice(1).trim();
        if (!(table in IPT_TABLES)) throw restoreError(`${RESTORE}: line ${ln} table name '${table}' invalid`, ln);
        draft = rs.state();
        skipping = o.table !== undefined && o.table !== table;
        if (!o.noflush && !skipping) {
          draft.tables = draft.tables.filter((t) => !(t.family === 'ip' && t.name === table));
        }
        draftTable(draft, table);
        pendingCounters = [];
        pendingPolicy = [];
        continue;
      }
      if (line === 'COMMIT') {
        // Like iptables-nft, jumps are resolved when the table is committed.
        const dt = draftTable(draft, table);
        if (!skipping)
          for (const c of dt.chains)
          for (const r of c.rules)
            for (const e of r.exprs)
              if (e.kind === 'verdict' && (e.verdict.kind === 'jump' || e.verdict.kind === 'goto')) {
                const target = e.verdict.chain;
                if (!dt.chains.some((x) => x.name === target && x.base === undefined)) throw restoreError(`Chain '${target}' does not exist`, ln);
              }
        if (!o.test && !skipping) {
          rs.commit(draft);
          for (const pc of pendingCounters) {
            const t = rs.state().tables.find((x) => x.family === 'ip' && x.name === table)!;
            const r = t.chains.find((c) => c.name === pc.chain)?.rules[pc.index];
            if (r !== undefined) rs.setRuleCounter('ip', table, r.handle, pc.packets, pc.bytes);
          }
          for (const pp of pendingPolicy) rs.setChainCounter('ip', table, pp.chain, pp.packets, pp.bytes);
        }
        draft = null;
        continue;
      }
      if (line.startsWith('*')) throw new IptError(`${RESTORE}: COMMIT expected at line ${ln}`, 1);
      if (skipping) continue;
      const t = draftTable(draft, table);
      if (line.startsWith(':')) {
        const m = /^:(\S+)\s+(\S+)(?:\s+\[(\d+):(\d+)\])?\s*$/.exec(line);
        if (m === null) throw restoreError(`${RESTORE}: line ${ln} chain name invalid`, ln);
        const [, name, policy] = m;
        let c = t.chains.find((x) => x.name === name);
        if (isBuiltin(table, name)) {
          if (policy !== 'ACCEPT' && policy !== 'DROP') throw restoreError(`Can't set policy \`${policy}' on \`${name}' line ${ln}: Bad policy name`, ln);
          if (c === undefined) t.chains.push((c = builtinChain(table, name)));
          c.base!.policy = policy === 'ACCEPT' ? 'accept' : 'drop';
          // The chain comes with its counters ([0:0] unless restored with -c), kept from then on.
          c.base!.counters = true;
          pendingPolicy.push({ chain: name, packets: o.counters && m[3] !== undefined ? Number(m[3]) : 0, bytes: o.counters && m[4] !== undefined ? Number(m[4]) : 0 });
        } else if (policy !== '-') throw restoreError(`${RESTORE}: line ${ln} policy invalid`, ln);
        else if (c !== undefined) c.rules = [];
        else {
          if (BUILTIN_TARGETS.includes(name)) throw restoreError('chain name may not clash with target name', ln);
          t.chains.push({ name, handle: 0, rules: [] });
        }
        continue;
      }
      let words = splitQuoted(line);
      let counter: [number, number] | null = null;
      const cm = /^\[(\d+):(\d+)\]$/.exec(words[0] ?? '');
      if (cm !== null) {
        counter = [parseInt(cm[1], 10), parseInt(cm[2], 10)];
        words = words.slice(1);
      }
      let p: ParsedCmd;
      try {
        p = parseIptables(['-t', table, ...words], services);
        if (p.cmd === 'L' || p.cmd === 'S' || p.cmd === 'C' || p.cmd === 'Z') throw paramError(`-${p.cmd} is not allowed in ${RESTORE} input`);
        applyCommand(draft, p, true);
      } catch (e) {
        if (e instanceof IptError) throw asRestoreError(e, ln);
        throw e;
      }
      if (counter !== null && o.counters && p.cmd === 'A') {
        const c = chainOf(draftTable(draft, table), p.chain!);
        pendingCounters.push({ chain: p.chain!, index: c.rules.length - 1, packets: counter[0], bytes: counter[1] });
      }
    }
    if (draft !== null) throw new IptError(`${RESTORE}: COMMIT expected at line ${lines.length + (text.endsWith('\n') ? 0 : 1)}`, 1);
  } catch (e) {
    if (e instanceof IptError) return { stdout: '', stderr: `${e.message}\n`, code: e.code };
    if (e instanceof RulesetError) return { stdout: '', stderr: `${RESTORE} ${IPT_VERSION}: ${e.message}\n`, code: 1 };
    throw e;
  }
  return { stdout: '', stderr: '', code: 0 };
}

/** Parses iptables-restore's options; returns the options and the file name, if one. */
export function parseRestoreArgs(argv: readonly string[]): { opts: RestoreOptions; file?: string } | IptResult {
  const opts: RestoreOptions = { noflush: false, counters: false, test: false };
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-T' || a === '--table') {
      const v = argv[++i];
      if (v === undefined) return { stdout: '', stderr: `${RESTORE}: option requires an argument -- 'T'\nTry \`${RESTORE} -h' for more information.\n`, code: 1 };
      opts.table = v;
    } else if (a === '-n' || a === '--noflush') opts.noflush = true;
    else if (a === '-c' || a === '--counters') opts.counters = true;
    else if (a === '-t' || a === '--test') opts.test = true;
    else if (a === '-v' || a === '--verbose' || a === '-w' || a === '--wait') continue;
    else if (!a.startsWith('-') && file === undefined) file = a;
    else
      return {
        stdout: '',
        stderr: `${RESTORE}: ${a.startsWith('--') ? `unrecognized option '${a}'` : `invalid option -- '${a.slice(1, 2)}'`}\nTry \`${RESTORE} -h' for more information.\n`,
        code: 1,
      };
  }
  return { opts, file };
}

// ---------------------------------------------------------------- the daemon's commands

/**
 * Runs `iptables ...`, `iptables-save ...` or `iptables-restore ...` (argv
 * with the program name) for a control-socket client; iptables-restore reads
 * the client's stdin.
 */
export function runIptablesCommand(rs: Ruleset, argv: readonly string[], io: CommandStream): number | Promise<number> {
  const emit = (r: IptResult): number => {
    if (r.stdout.length > 0) io.out(r.stdout);
    if (r.stderr.length > 0) io.err(r.stderr);
    return r.code;
  };
  if (argv[0] === 'iptables') return emit(runIptables(rs, argv.slice(1)));
  if (argv[0] === 'iptables-save') return emit(runIptablesSave(rs, argv.slice(1)));
  const parsed = parseRestoreArgs(argv.slice(1));
  if (!('opts' in parsed)) return emit(parsed);
  if (parsed.file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(parsed.file, 'utf8');
    } catch (e) {
      return emit({ stdout: '', stderr: `Can't open ${parsed.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}\n`, code: 1 });
    }
    return emit(iptablesRestore(rs, text, parsed.opts));
  }
  return new Promise<number>((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    io.onInput(
      (chunk) => {
        chunks.push(chunk);
        io.ack(chunk.length);
      },
      () => {
        if (done) return;
        done = true;
        resolve(emit(iptablesRestore(rs, Buffer.concat(chunks).toString('utf8'), parsed.opts)));
      },
    );
    io.onClose(() => {
      if (done) return;
      done = true;
      resolve(1);
    });
  });
}
