import type { Interface } from '../link/interface.js';
import { prefixMask } from '../wire/addr.js';
import { RTN, RouteError, RouteTable, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN, isReject, type RejectType, type Route } from './route.js';

/** What a routing decision is made on (Linux's struct flowi4). */
export interface Flow {
  dst: number;
  /** Source address, 0 when the sender has none yet. */
  src?: number;
  /** The interface a forwarded datagram came in on; null or absent for our own. */
  iif?: Interface | null;
  /** The interface a socket is bound to (SO_BINDTODEVICE), if any. */
  oif?: Interface | null;
  mark?: number;
  tos?: number;
  proto?: number;
  sport?: number;
  dport?: number;
}

export type RuleAction = 'lookup' | RejectType;

/** One `ip rule`: selectors, then a table to look in or a verdict. */
export interface Rule {
  pref: number;
  src: number;
  srcLen: number;
  dst: number;
  dstLen: number;
  /** Interface names: a rule may name an interface that does not exist yet. */
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  tos?: number;
  action: RuleAction;
  table: number;
  /** `not`: the rule applies where its selectors do not match. */
  invert?: boolean;
}

/** The decision for a flow. */
export type FibResult =
  | { type: 'unicast'; route: Route; table: number }
  | { type: 'local'; dev: Interface | null; table: number }
  | { type: RejectType; table: number }
  | { type: 'none' };

const NO_ROUTE: FibResult = { type: 'none' };

/** Linux's fib4_rules_init and fib_default_rules_init. */
export function defaultRules(): Rule[] {
  const r = (pref: number, table: number): Rule => ({ pref, src: 0, srcLen: 0, dst: 0, dstLen: 0, action: 'lookup', table });
  return [r(0, TABLE_LOCAL), r(32766, TABLE_MAIN), r(32767, TABLE_DEFAULT)];
}

/** fib_rule_match and fib4_rule_match: every selector the rule has must match. */
function ruleMatches(r: Rule, flow: Flow, src: number, mark: number): boolean {
  if (r.srcLen > 0 && ((src & prefixMask(r.srcLen)) >>> 0) !== r.src) return false;
  if (r.dstLen > 0 && ((flow.dst & prefixMask(r.dstLen)) >>> 0) !== r.dst) return false;
  // `iif lo` is what our own datagrams come in on.
  if (r.iif !== undefined && (flow.iif ? flow.iif.name : 'lo') !== r.iif) return false;
  if (r.oif !== undefined && (flow.oif?.name ?? '') !== r.oif) return false;
  if (r.fwmark !== undefined && ((mark ^ r.fwmark) & (r.fwmask ?? 0xffffffff)) !== 0) return false;
  // IPTOS_RT_MASK: the TOS bits routing looks at.
  if (r.tos !== undefined && r.tos !== ((flow.tos ?? 0) & 0x1c)) return false;
  return true;
}

/** murmur3's finalizer: every input bit moves every output bit. */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Linux fib_multipath_hash, 31 bits: policy 0 hashes the addresses (L3), policy 1
 * the 5-tuple (L4), so one flow always takes one path. Policies 2 and 3 (inner
 * headers, custom fields) hash like 0 and 1 here, since no tunnels are decapsulated.
 */
export function multipathHash(flow: Flow, policy: number, seed: number): number {
  let h = mix(seed, flow.src ?? 0);
  h = mix(h, flow.dst);
  if (policy === 1 || policy === 3) {
    h = mix(h, flow.proto ?? 0);
    h = mix(h, (((flow.sport ?? 0) << 16) | (flow.dport ?? 0)) >>> 0);
  }
  return fmix(h) >>> 1;
}

/**
 * The tables and the rules that choose among them (Linux's fib rules): rules in
 * order of preference, the first whose selectors match and whose action decides
 * ends the walk; a lookup in a table without a route goes on to the next rule.
 */
export class Fib {
  private readonly tables = new Map<number, RouteTable>();
  rules: Rule[] = defaultRules();
  /** net.ipv4.fib_multipath_hash_policy */
  hashPolicy = 0;
  /** The per-boot key of the multipath hash. */
  hashSeed = 0;
  /**
   * Our addresses: table local's host routes of type local, kept in a Map by
   * their owner so the common case (a datagram for us, or not) is one get.
   */
  isLocal: (dst: number) => Interface | undefined = () => undefined;
  /**
   * Table local (255): the routes Linux's fib_add_ifaddr makes for each address
   * (`local A`, `broadcast B`), and the user's local, broadcast and anycast routes.
   */
  readonly local = new RouteTable(TABLE_LOCAL);

  constructor(readonly main: RouteTable) {
    this.tables.set(TABLE_MAIN, main);
    this.tables.set(TABLE_LOCAL, this.local);
  }

  /** A table by id; created on first use when `create`, as `ip route add ... table N` does. */
  table(id: number, create = false): RouteTable | undefined {
    let t = this.tables.get(id);
    if (t === undefined && create) {
      t = new RouteTable(id);
      this.tables.set(id, t);
    }
    return t;
  }

  tableIds(): number[] {
    return [...this.tables.keys()].sort((a, b) => a - b);
  }

  /** Any change to any table or rule: cached routes are stale. */
  get generation(): number {
    let g = 0;
    for (const t of this.tables.values()) g += t.generation;
    return g + this.ruleGeneration;
  }

  private ruleGeneration = 0;
  /** Linux's fib_has_custom_rules: set by any rule added or deleted, never cleared. */
  customRules = false;

  /** How many routes of type local the tables hold (input looks them up only when there are some). */
  get localRoutes(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.localCount;
    return n;
  }

  /** A link went up or down: every table's cache is stale. */
  changed(): void {
    for (const t of this.tables.values()) t.changed();
  }

  /** `ip rule add`: a rule without a preference goes just before the first rule after pref 0 (fib_default_rule_pref). */
  addRule(rule: Omit<Rule, 'pref'> & { pref?: number }): Rule {
    let pref = rule.pref;
    if (pref === undefined) {
      const second = this.rules[1] ?? this.rules[0];
      pref = second !== undefined && second.pref > 0 ? second.pref - 1 : 0;
    }
    const r: Rule = { ...rule, pref };
    // NLM_F_EXCL: the same rule twice is refused (fib_nl_newrule's rule_exists).
    const key = (x: Rule) => JSON.stringify(Object.entries(x).filter(([, v]) => v !== undefined).sort());
    if (this.rules.some((x) => key(x) === key(r))) throw new RouteError('RTNETLINK answers: File exists', 'EEXIST');
    // Rules of equal preference keep the order they were added in.
    let i = this.rules.findIndex((x) => x.pref > pref);
    if (i < 0) i = this.rules.length;
    this.rules.splice(i, 0, r);
    this.ruleGeneration++;
    this.customRules = true;
    return r;
  }

  /** `ip rule del`: the first rule matching every selector given. */
  delRule(match: Partial<Rule>): Rule | null {
    const i = this.rules.findIndex((r) =>
      (Object.keys(match) as (keyof Rule)[]).every((k) => match[k] === undefined || match[k] === r[k]),
    );
    if (i < 0) return null;
    const [r] = this.rules.splice(i, 1);
    this.ruleGeneration++;
    this.customRules = true;
    return r;
  }

  /** `ip rule flush`: every rule but those of preference 0, as Linux's fib_nl_delrule for each. */
  flushRules(): void {
    this.rules = this.rules.filter((r) => r.pref === 0);
    this.ruleGeneration++;
  }

  /** Reused for every unicast decision: the per-packet lookup allocates nothing. */
  private readonly unicast = { type: 'unicast' as const, route: null as unknown as Route, table: 0 };
  private readonly localRes = { type: 'local' as const, dev: null as Interface | null, table: 0 };
  private readonly rejectRes = { type: 'unreachable' as RejectType, table: 0 };

  private local_(dev: Interface | null, table: number): FibResult {
    const r = this.localRes;
    r.dev = dev;
    r.table = table;
    return r;
  }

  private reject(type: RejectType, table: number): FibResult {
    const r = this.rejectRes;
    r.type = type;
    r.table = table;
    return r;
  }

  /**
   * The routing decision for `flow`, walking the rules. A decision is one
   * reused object, valid until the next lookup: keep its route, not it.
   */
  lookup(flow: Flow): FibResult {
    const mark = flow.mark ?? 0;
    const src = flow.src ?? 0;
    const oif = flow.oif ?? null;
    // ip_route_output_key_hash_rcu: a bound device that is down has no route.
    if (oif !== null && !oif.up) return NO_ROUTE;
    let hash = -1;
    for (const r of this.rules) {
      if (ruleMatches(r, flow, src, mark) === (r.invert === true)) continue;
      if (r.action !== 'lookup') return this.reject(r.action, r.table);
      if (r.table === TABLE_LOCAL) {
        const dev = this.isLocal(flow.dst);
        if (dev !== undefined && (oif === null || oif === dev)) return this.local_(dev, TABLE_LOCAL);
      }
      const t = this.tables.get(r.table);
      if (t === undefined) continue;
      const m = oif === null ? t.match(flow.dst) : t.matchOif(flow.dst, oif);
      // RTN_THROW: fib_table_lookup answers -EAGAIN and fib_rules_lookup goes on with the next rule.
      if (m === null || m.type === 'throw') continue;
      if (isReject(m)) return this.reject(m.type, r.table);
      if (m.type === 'local') return this.local_(m.dev, r.table);
      if (m.paths !== undefined && hash < 0) hash = multipathHash(flow, this.hashPolicy, this.hashSeed);
      const u = this.unicast;
      u.route = m.paths !== undefined ? (t.lookupAny(flow.dst, hash) as Route) : m;
      u.table = r.table;
      return u;
    }
    if (oif !== null && flow.iif == null) {
      // ip_route_output_key_hash_rcu: with no route and a bound device, "the
      // destination is on link": straight out of that device, a source from it.
      const o = this.onLink;
      o.dst = flow.dst;
      o.dev = oif;
      o.src = oif.sourceFor(flow.dst);
      const u = this.unicast;
      u.route = o;
      u.table = TABLE_MAIN;
      return u;
    }
    return NO_ROUTE;
  }

  /**
   * inet_dev_addr_type: what `addr` is by table local alone (RTN_* number):
   * 0/8 and 255.255.255.255 broadcast, 224/4 multicast, else the type of table
   * local's route for it (local, broadcast, ...) when that route's first path is
   * through `dev` (or no `dev` is asked about), unicast otherwise.
   */
  addrType(addr: number, dev: Interface | null): number {
    // ipv4_is_zeronet, ipv4_is_lbcast, ipv4_is_multicast.
    if (addr >>> 24 === 0 || addr === 0xffffffff) return RTN.broadcast;
    if (addr >>> 28 === 0xe) return RTN.multicast;
    const r = this.local.match(addr);
    // A reject route: fib_table_lookup fails and the answer stays unicast.
    if (r === null || isReject(r)) return RTN.unicast;
    if (dev !== null && r.dev !== dev) return RTN.unicast;
    return RTN[r.type ?? 'unicast'];
  }

  private readonly nfFlow: Flow = { dst: 0, src: 0, iif: null, oif: null, mark: 0, tos: 0, proto: 0, sport: 0, dport: 0 };

  /**
   * The lookup of nft_fib4_eval (`fib ... oif`): the rules and tables for `dst`
   * (flowi4_iif `iif`, null for loopback's; no oif), the device the route
   * leaves through (a multipath route's first path); null for no route, a
   * reject route or a local destination. With `via`: `via` when one of the
   * route's paths goes through it (fib_info_nh_uses_dev), else null. Allocates nothing.
   */
  routeDev(dst: number, src: number, iif: Interface | null, mark: number, tos: number, via: Interface | null): Interface | null {
    const f = this.nfFlow;
    f.dst = dst;
    f.src = src;
    f.iif = iif;
    f.mark = mark;
    f.tos = tos;
    const r = this.lookup(f);
    f.iif = null;
    if (r.type !== 'unicast') return null;
    const dev = r.route.dev;
    const m = this.tables.get(r.table)?.match(dst);
    const hops = m === undefined || m === null || isReject(m) ? undefined : m.nexthops;
    if (hops === undefined) return via === null || dev === via ? dev : null;
    // A multipath route: fib_table_lookup answers with its first path (no hash
    // picks one here), and any of its paths may be the one asked about.
    if (via === null) return hops[0].dev;
    for (let i = 0; i < hops.length; i++) if (hops[i].dev === via) return via;
    return null;
  }

  /** The route an output bound to a device takes when the tables have none (reused, as `unicast` is). */
  private readonly onLink: Route = { dst: 0, prefixLen: 32, gateway: 0, dev: null as unknown as Interface, src: 0, proto: 'kernel', scope: 'link', metric: 0 };
}
