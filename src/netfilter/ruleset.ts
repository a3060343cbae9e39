import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import { VERDICT_ACCEPT, VERDICT_DROP, type HookFn, type Hooks, type Verdict } from '../ip/hooks.js';
import type { BaseChainSpec, Chain, Expr, Family, NamedCounter, NamedSet, Rule, RulesetState, SetElement, Table } from './ast.js';
import { CompileError, Ctx, HOOK_NUM, V_DROP, compileTable, runChain, type CompiledTable, type NfEnv } from './compile.js';
import type { SetEntry } from './sets.js';

/** Which chain types may sit on which hooks (as nft allows for ip/inet). */
const TYPE_HOOKS: Record<BaseChainSpec['type'], readonly string[]> = {
  filter: ['prerouting', 'input', 'forward', 'output', 'postrouting'],
  nat: ['prerouting', 'input', 'output', 'postrouting'],
  route: ['output'],
};

export class RulesetError extends Error {}

interface Live {
  table: Table;
  compiled: CompiledTable;
}

/**
 * The ruleset: tables of chains, sets and counters. Every change goes through
 * `commit`, which compiles the whole new state first and only then swaps it in
 * (hooks re-registered in one go), so a failure changes nothing and a packet
 * never sees half a ruleset.
 *
 * The editing methods (addTable, addRule, ...) are transactions of one change;
 * a front end applying a batch builds the new state with `edit` and commits once.
 */
export class Ruleset {
  private current: RulesetState = { tables: [] };
  private live: Live[] = [];
  private unregister: (() => void)[] = [];
  private nextTableHandle = 1;
  private readonly ctxs: Ctx[] = [];
  private depth = 0;
  /** Number of commits (a generation, like nft's). */
  generation = 0;

  constructor(
    private readonly hooks: Hooks,
    /** The stack's side (conntrack and NAT are wired in here once they exist). */
    readonly env: NfEnv,
  ) {}

  /** A copy of the state in force. */
  state(): RulesetState {
    return structuredClone(this.current);
  }

  /**
   * Compiles `next` and puts it in force. Handles of 0 are assigned. Throws
   * RulesetError (and changes nothing) if any table fails to compile.
   */
  commit(next: RulesetState): void {
    const state = structuredClone(next);
    const now = this.env.now();
    const seen = new Set<string>();
    const live: Live[] = [];
    try {
      for (const t of state.tables) {
        const id = `${t.family} ${t.name}`;
        if (seen.has(id)) throw new RulesetError(`table ${id} defined twice`);
        seen.add(id);
        this.assignHandles(t);
        for (const ch of t.chains) {
          if (ch.base === undefined) continue;
          if (!TYPE_HOOKS[ch.base.type].includes(ch.base.hook))
            throw new RulesetError(`table ${id}: chain ${ch.name}: type ${ch.base.type} cannot hook ${ch.base.hook}`);
          if (!Number.isInteger(ch.base.priority)) throw new RulesetError(`table ${id}: chain ${ch.name}: bad priority`);
        }
        const old = this.live.find((l) => l.table.family === t.family && l.table.name === t.name && l.table.handle === t.handle);
        live.push({ table: t, compiled: compileTable({ table: t, env: this.env, now, old: old?.compiled }) });
      }
    } catch (err) {
      if (err instanceof CompileError) throw new RulesetError(err.message);
      throw err;
    }
    // Swap: old hooks off, new hooks on, in one synchronous step.
    for (const u of this.unregister) u();
    const unregister: (() => void)[] = [];
    const nat = this.env.nat;
    let needsCt = false;
    for (const l of live) {
      if (l.compiled.needsCt) needsCt = true;
      for (const b of l.compiled.bases) {
        const spec = l.table.chains[b.chain].base!;
        const fn = this.hookFn(l.compiled, b.chain, b.policy, HOOK_NUM[spec.hook]);
        // NAT runs nat chains itself, for a connection's first packet (nf_nat_inet_fn).
        if (spec.type === 'nat' && nat !== null && spec.hook !== 'forward') unregister.push(nat.registerChain(spec.hook, spec.priority, fn));
        else unregister.push(this.hooks[spec.hook].register(fn, spec.priority));
      }
    }
    this.unregister = unregister;
    this.live = live;
    this.current = state;
    this.generation++;
    // Conntrack runs while the ruleset needs it (ct expressions, notrack, NAT).
    this.env.ct?.setNeeded('ruleset', needsCt);
  }

  /** Applies `fn` to a copy of the state and commits the result. */
  edit(fn: (draft: RulesetState) => void): void {
    const draft = this.state();
    fn(draft);
    this.commit(draft);
  }

  private assignHandles(t: Table): void {
    if (t.handle === 0) t.handle = this.nextTableHandle++;
    else this.nextTableHandle = Math.max(this.nextTableHandle, t.handle + 1);
    let max = 0;
    const all: { handle: number }[] = [...t.chains, ...t.sets, ...t.counters, ...t.chains.flatMap((c) => c.rules)];
    const used = new Set<number>();
    for (const o of all) {
      if (o.handle !== 0) {
        if (used.has(o.handle)) throw new RulesetError(`table ${t.family} ${t.name}: handle ${o.handle} used twice`);
        used.add(o.handle);
      }
      max = Math.max(max, o.handle);
    }
    for (const o of all) if (o.handle === 0) o.handle = ++max;
  }

  private hookFn(t: CompiledTable, chain: number, policy: number, hook: number): HookFn {
    const env = this.env;
    return (pkt: Packet, inIf: Interface | null, outIf: Interface | null): Verdict => {
      const d = this.depth;
      let c = this.ctxs[d];
      if (c === undefined) {
        c = new Ctx();
        this.ctxs[d] = c;
      }
      c.setup(pkt, inIf, outIf, env.now());
      c.hook = hook;
      this.depth = d + 1;
      try {
        return runChain(t, chain, policy, pkt, c) === V_DROP ? VERDICT_DROP : VERDICT_ACCEPT;
      } finally {
        this.depth = d;
      }
    };
  }

  // ---------------------------------------------------------------- lookups

  private table(s: RulesetState, family: Family, name: string): Table {
    const t = s.tables.find((x) => x.family === family && x.name === name);
    if (t === undefined) throw new RulesetError(`no table ${family} ${name}`);
    return t;
  }

  private chain(t: Table, name: string): Chain {
    const c = t.chains.find((x) => x.name === name);
    if (c === undefined) throw new RulesetError(`no chain ${name} in table ${t.family} ${t.name}`);
    return c;
  }

  private liveTable(family: Family, name: string): Live {
    const l = this.live.find((x) => x.table.family === family && x.table.name === name);
    if (l === undefined) throw new RulesetError(`no table ${family} ${name}`);
    return l;
  }

  // ---------------------------------------------------------------- tables

  addTable(family: Family, name: string): number {
    this.edit((s) => {
      if (s.tables.some((t) => t.family === family && t.name === name)) return;
      s.tables.push({ family, name, handle: 0, chains: [], sets: [], counters: [] });
    });
    return this.liveTable(family, name).table.handle;
  }

  deleteTable(family: Family, name: string): void {
    this.edit((s) => {
      this.table(s, family, name);
      s.tables = s.tables.filter((t) => !(t.family === family && t.name === name));
    });
  }

  /** Removes every rule of every chain of the table (chains and sets stay). */
  flushTable(family: Family, name: string): void {
    this.edit((s) => {
      for (const c of this.table(s, family, name).chains) c.rules = [];
    });
  }

  /** Removes everything. */
  flushRuleset(): void {
    this.commit({ tables: [] });
  }

  // ---------------------------------------------------------------- chains

  addChain(family: Family, table: string, name: string, base?: BaseChainSpec): number {
    this.edit((s) => {
      const t = this.table(s, family, table);
      if (t.chains.some((c) => c.name === name)) throw new RulesetError(`chain ${name} exists`);
      t.chains.push({ name, handle: 0, base, rules: [] });
    });
    return this.chain(this.liveTable(family, table).table, name).handle;
  }

  deleteChain(family: Family, table: string, name: string): void {
    this.edit((s) => {
      const t = this.table(s, family, table);
      this.chain(t, name);
      t.chains = t.chains.filter((c) => c.name !== name);
    });
  }

  flushChain(family: Family, table: string, name: string): void {
    this.edit((s) => {
      this.chain(this.table(s, family, table), name).rules = [];
    });
  }

  // ---------------------------------------------------------------- rules

  /**
   * Appends a rule (or, with `position`, adds it after the rule with that
   * handle, or before it with `insert`; `insert` alone puts it first).
   * Returns the new rule's handle.
   */
  addRule(
    family: Family,
    table: string,
    chain: string,
    exprs: Expr[],
    opts: { position?: number; insert?: boolean; comment?: string } = {},
  ): number {
    let handle = 0;
    this.edit((s) => {
      const t = this.table(s, family, table);
      const c = this.chain(t, chain);
      handle = this.maxHandle(t) + 1;
      const rule: Rule = { handle, exprs, comment: opts.comment };
      if (opts.position !== undefined) {
        const i = c.rules.findIndex((r) => r.handle === opts.position);
        if (i < 0) throw new RulesetError(`no rule with handle ${opts.position}`);
        c.rules.splice(opts.insert === true ? i : i + 1, 0, rule);
      } else if (opts.insert === true) c.rules.unshift(rule);
      else c.rules.push(rule);
    });
    return handle;
  }

  replaceRule(family: Family, table: string, chain: string, handle: number, exprs: Expr[], comment?: string): void {
    this.edit((s) => {
      const c = this.chain(this.table(s, family, table), chain);
      const r = c.rules.find((x) => x.handle === handle);
      if (r === undefined) throw new RulesetError(`no rule with handle ${handle}`);
      r.exprs = exprs;
      r.comment = comment;
    });
  }

  deleteRule(family: Family, table: string, chain: string, handle: number): void {
    this.edit((s) => {
      const c = this.chain(this.table(s, family, table), chain);
      if (!c.rules.some((r) => r.handle === handle)) throw new RulesetError(`no rule with handle ${handle}`);
      c.rules = c.rules.filter((r) => r.handle !== handle);
    });
  }

  private maxHandle(t: Table): number {
    let m = 0;
    for (const c of t.chains) {
      m = Math.max(m, c.handle);
      for (const r of c.rules) m = Math.max(m, r.handle);
    }
    for (const x of t.sets) m = Math.max(m, x.handle);
    for (const x of t.counters) m = Math.max(m, x.handle);
    return m;
  }

  // ---------------------------------------------------------------- sets, counters

  addSet(family: Family, table: string, set: Omit<NamedSet, 'handle'>): number {
    this.edit((s) => {
      const t = this.table(s, family, table);
      if (t.sets.some((x) => x.name === set.name)) throw new RulesetError(`set ${set.name} exists`);
      t.sets.push({ ...set, handle: 0 });
    });
    return this.liveTable(family, table).table.sets.find((x) => x.name === set.name)!.handle;
  }

  deleteSet(family: Family, table: string, name: string): void {
    this.edit((s) => {
      const t = this.table(s, family, table);
      if (!t.sets.some((x) => x.name === name)) throw new RulesetError(`no set ${name}`);
      t.sets = t.sets.filter((x) => x.name !== name);
    });
  }

  addElements(family: Family, table: string, set: string, elements: SetElement[]): void {
    this.edit((s) => {
      const x = this.table(s, family, table).sets.find((y) => y.name === set);
      if (x === undefined) throw new RulesetError(`no set ${set}`);
      x.elements.push(...elements);
    });
  }

  deleteElements(family: Family, table: string, set: string, keys: SetElement['key'][]): void {
    const same = (a: SetElement['key'], b: SetElement['key']): boolean => JSON.stringify(a) === JSON.stringify(b);
    // Elements added by rules live only in the store.
    const store = this.liveTable(family, table).compiled.stores.get(set);
    this.edit((s) => {
      const x = this.table(s, family, table).sets.find((y) => y.name === set);
      if (x === undefined) throw new RulesetError(`no set ${set}`);
      for (const k of keys) {
        const i = x.elements.findIndex((e) => same(e.key, k));
        if (i >= 0) x.elements.splice(i, 1);
        else if (store?.find(k)?.dynamic !== true) throw new RulesetError(`no element ${JSON.stringify(k)} in set ${set}`);
      }
    });
    const after = this.liveTable(family, table).compiled.stores.get(set);
    for (const k of keys) if (after?.find(k)?.dynamic === true) after.delete({ key: k });
  }

  /** The live elements of a set, rule-added ones included, with their expiry (0: none). */
  elements(family: Family, table: string, set: string): { key: SetElement['key']; end?: SetElement['key']; expires: number; dynamic: boolean }[] {
    const store = this.liveTable(family, table).compiled.stores.get(set);
    if (store === undefined) throw new RulesetError(`no set ${set}`);
    return store.entries(this.env.now()).map((e: SetEntry) => ({ key: e.key, end: e.end, expires: e.expires, dynamic: e.dynamic }));
  }

  addCounter(family: Family, table: string, name: string): number {
    this.edit((s) => {
      const t = this.table(s, family, table);
      if (t.counters.some((x) => x.name === name)) throw new RulesetError(`counter ${name} exists`);
      t.counters.push({ name, handle: 0, packets: 0, bytes: 0 });
    });
    return this.liveTable(family, table).table.counters.find((x) => x.name === name)!.handle;
  }

  /** A named counter's values now. */
  counter(family: Family, table: string, name: string): NamedCounter {
    const l = this.liveTable(family, table);
    const slot = l.compiled.namedSlots.get(name);
    const decl = l.table.counters.find((x) => x.name === name);
    if (slot === undefined || decl === undefined) throw new RulesetError(`no counter ${name}`);
    return { name, handle: decl.handle, packets: l.compiled.named[2 * slot], bytes: l.compiled.named[2 * slot + 1] };
  }

  /**
   * The counter of a rule (its first anonymous `counter` statement), or null
   * if the rule has none.
   */
  ruleCounter(family: Family, table: string, handle: number): { packets: number; bytes: number } | null {
    const l = this.liveTable(family, table);
    for (const c of l.table.chains) {
      const r = c.rules.find((x) => x.handle === handle);
      if (r === undefined) continue;
      const i = r.exprs.findIndex((e) => e.kind === 'counter' && e.name === undefined);
      if (i < 0) return null;
      const slot = l.compiled.counterSlots.get(`${handle}.${i}`)!;
      return { packets: l.compiled.counters[2 * slot], bytes: l.compiled.counters[2 * slot + 1] };
    }
    throw new RulesetError(`no rule with handle ${handle}`);
  }

  /**
   * The values of the anonymous `counter` statement at `exprs[index]` of the
   * rule with `handle` (for a printer writing `counter packets N bytes M`).
   */
  exprCounter(family: Family, table: string, handle: number, index: number): { packets: number; bytes: number } | null {
    const l = this.liveTable(family, table);
    const slot = l.compiled.counterSlots.get(`${handle}.${index}`);
    if (slot === undefined) return null;
    return { packets: l.compiled.counters[2 * slot], bytes: l.compiled.counters[2 * slot + 1] };
  }

  /**
   * Sets the counter of a rule (its first anonymous `counter` statement), as
   * `iptables -Z` (to 0) and `iptables-restore --counters` do. A rule without
   * one is left alone.
   */
  setRuleCounter(family: Family, table: string, handle: number, packets: number, bytes: number): void {
    const l = this.liveTable(family, table);
    for (const c of l.table.chains) {
      const r = c.rules.find((x) => x.handle === handle);
      if (r === undefined) continue;
      const i = r.exprs.findIndex((e) => e.kind === 'counter' && e.name === undefined);
      const slot = i < 0 ? undefined : l.compiled.counterSlots.get(`${handle}.${i}`);
      if (slot === undefined) return;
      l.compiled.counters[2 * slot] = packets;
      l.compiled.counters[2 * slot + 1] = bytes;
      return;
    }
    throw new RulesetError(`no rule with handle ${handle}`);
  }

  /** A base chain's policy counters (packets and bytes its policy decided). */
  chainCounter(family: Family, table: string, chain: string): { packets: number; bytes: number } {
    const l = this.liveTable(family, table);
    const i = l.compiled.chainNames.indexOf(chain);
    if (i < 0) throw new RulesetError(`no chain ${chain}`);
    return { packets: l.compiled.policyCounters[2 * i], bytes: l.compiled.policyCounters[2 * i + 1] };
  }

  /** Sets a base chain's policy counters (iptables -Z, iptables-restore --counters). */
  setChainCounter(family: Family, table: string, chain: string, packets: number, bytes: number): void {
    const l = this.liveTable(family, table);
    const i = l.compiled.chainNames.indexOf(chain);
    if (i < 0) throw new RulesetError(`no chain ${chain}`);
    l.compiled.policyCounters[2 * i] = packets;
    l.compiled.policyCounters[2 * i + 1] = bytes;
  }

  /** Zeroes every counter (nft reset counters). */
  resetCounters(): void {
    for (const l of this.live) {
      l.compiled.counters.fill(0);
      l.compiled.named.fill(0);
    }
  }

  /** Zeroes one named counter (nft reset counter). */
  resetCounter(family: Family, table: string, name: string): void {
    const l = this.liveTable(family, table);
    const slot = l.compiled.namedSlots.get(name);
    if (slot === undefined) throw new RulesetError(`no counter ${name}`);
    l.compiled.named[2 * slot] = 0;
    l.compiled.named[2 * slot + 1] = 0;
  }
}
