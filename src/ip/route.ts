import type { Interface } from '../link/interface.js';
import { prefixMask } from '../wire/addr.js';

export type RouteProto = 'kernel' | 'boot' | 'static';
export type RouteScope = 'global' | 'link' | 'host';
/**
 * Route types with a device (`local`: delivered here; `broadcast`: a link's
 * broadcast address, in table local; `anycast` and `multicast` as Linux keeps them).
 */
export type UnicastType = 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast';
/** Route types that answer a lookup without a next hop: Linux's RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT. */
export type RejectType = 'blackhole' | 'unreachable' | 'prohibit';
/** Route types without a device: the reject types and `throw` (RTN_THROW: the rule walk goes on). */
export type NoDevType = RejectType | 'throw';
export type RouteType = UnicastType | NoDevType;

/** rtnetlink.h's RTN_* numbers of the route types (what inet_addr_type answers). */
export const RTN: Record<RouteType, number> = {
  unicast: 1,
  local: 2,
  broadcast: 3,
  anycast: 4,
  multicast: 5,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
};

/** Linux's table ids (rtnetlink.h RT_TABLE_*). */
export const TABLE_LOCAL = 255;
export const TABLE_MAIN = 254;
export const TABLE_DEFAULT = 253;

/** One path of a multipath route (`nexthop via A dev X weight W`). */
export interface Nexthop {
  gateway: number;
  dev: Interface;
  weight: number;
}

export interface Route {
  /** Network address (already masked) and prefix length. */
  dst: number;
  prefixLen: number;
  /** Next hop, or 0 for a directly connected destination. */
  gateway: number;
  dev: Interface;
  /** Preferred source address, or 0 to pick the interface's. */
  src: number;
  proto: RouteProto;
  scope: RouteScope;
  metric: number;
  /** Absent means unicast. */
  type?: UnicastType;
  /** Absent means main (254). */
  table?: number;
  /** `mtu N`: caps the path MTU below the device's. */
  mtu?: number;
  /** Multipath: every path; `gateway` and `dev` are then the first one's. */
  nexthops?: Nexthop[];
  /** Multipath: one Route per path, what lookups hand out. */
  paths?: Route[];
  /** Multipath: the hash upper bound of each path (Linux fib_rebalance). */
  bounds?: number[];
}

/** A route that answers without a next hop. */
export interface RejectRoute {
  type: NoDevType;
  dst: number;
  prefixLen: number;
  metric: number;
  proto: RouteProto;
  table?: number;
}

export type AnyRoute = Route | RejectRoute;

export function isReject(r: AnyRoute): r is RejectRoute {
  return r.type === 'blackhole' || r.type === 'unreachable' || r.type === 'prohibit' || r.type === 'throw';
}

export class RouteError extends Error {
  constructor(
    message: string,
    readonly code: 'EEXIST' | 'ESRCH' | 'ENETUNREACH' | 'EINVAL' | 'ENODEV',
  ) {
    super(message);
  }
}

/**
 * Linux fib_rebalance: path i takes the hashes up to round(w_0..i * 2^31 / total) - 1,
 * so paths share the 31-bit hash space by weight.
 */
export function multipathBounds(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  let w = 0;
  return weights.map((x) => {
    w += x;
    return Math.round((w * 2 ** 31) / total) - 1;
  });
}

/** Fills a multipath route's per-path routes and bounds from its nexthops. */
function preparePaths(r: Route): void {
  const nh = r.nexthops;
  if (nh === undefined || nh.length === 0) return;
  r.gateway = nh[0].gateway;
  r.dev = nh[0].dev;
  r.paths = nh.map((n) => ({ ...r, gateway: n.gateway, dev: n.dev, nexthops: undefined, paths: undefined, bounds: undefined, scope: n.gateway === 0 ? 'link' : 'global' }));
  r.bounds = multipathBounds(nh.map((n) => n.weight));
}

/** A multipath route's path for a flow hash (31 bits); paths whose link is down are skipped. */
export function selectPath(r: Route, hash: number): Route {
  const paths = r.paths;
  const bounds = r.bounds;
  if (paths === undefined || bounds === undefined) return r;
  let alive: Route | null = null;
  for (let i = 0; i < paths.length; i++) {
    if (!paths[i].dev.running) continue;
    if (alive === null) alive = paths[i];
    if (hash <= bounds[i]) return paths[i];
  }
  return alive ?? r;
}

function routeAlive(r: AnyRoute): boolean {
  if (isReject(r)) return true;
  if (r.paths !== undefined) return r.paths.some((p) => p.dev.running);
  return r.dev.running;
}

/**
 * One routing table, searched by longest prefix, then lowest metric.
 * Kept sorted so the first match wins; small tables scan faster than a trie
 * and the last lookup is cached for the common same-destination burst.
 * Reject routes (blackhole, unreachable, prohibit) live beside the routes
 * with a next hop and take part in the same longest-prefix choice.
 */
export class RouteTable {
  private routes: Route[] = [];
  private rejects: RejectRoute[] = [];
  private cacheDst = -1;
  private cacheRoute: AnyRoute | null = null;
  /**
   * The first route of each /32 destination, while the table holds nothing
   * shorter: table local is only host routes, and a lookup in it is one Map get.
   */
  private readonly hosts = new Map<number, AnyRoute>();
  private onlyHosts = true;
  /** Bumped on every change, so callers caching routes know to look again. */
  generation = 0;
  /**
   * Routes of type local that need a full lookup: all but table local's host
   * routes, which the owner mirrors in its address map (see `onChange`).
   */
  localCount = 0;
  /** Called after every change (table local keeps the map of our addresses with it). */
  onChange: (() => void) | null = null;

  constructor(readonly id: number = TABLE_MAIN) {}

  /** The routes with a next hop. */
  list(): readonly Route[] {
    return this.routes;
  }

  /** Every route, reject routes too. */
  listAll(): readonly AnyRoute[] {
    return [...this.routes, ...this.rejects];
  }

  get size(): number {
    return this.routes.length + this.rejects.length;
  }

  /**
   * The route with a next hop for `dst`, or null (also when a reject route
   * covers it). A multipath route gives its first live path.
   */
  lookup(dst: number): Route | null {
    const r = this.match(dst);
    if (r === null || isReject(r)) return null;
    return r.paths !== undefined ? selectPath(r, 0) : r;
  }

  /** The best route for `dst` of any type; a multipath route is resolved by `hash`. */
  lookupAny(dst: number, hash: number): AnyRoute | null {
    const r = this.match(dst);
    if (r === null || isReject(r) || r.paths === undefined) return r;
    return selectPath(r, hash);
  }

  /** The table's entry for `dst` (a multipath route unresolved). */
  match(dst: number): AnyRoute | null {
    if (dst === this.cacheDst) return this.cacheRoute;
    if (this.onlyHosts) {
      const h = this.hosts.get(dst);
      if (h === undefined) return null;
      if (routeAlive(h)) return h;
    }
    let found: AnyRoute | null = null;
    for (const r of this.routes) {
      if (!routeAlive(r)) continue;
      if (((dst & prefixMask(r.prefixLen)) >>> 0) === r.dst) {
        found = r;
        break;
      }
    }
    for (const r of this.rejects) {
      if (found !== null && (r.prefixLen < found.prefixLen || (r.prefixLen === found.prefixLen && r.metric >= found.metric))) break;
      if (((dst & prefixMask(r.prefixLen)) >>> 0) === r.dst) {
        found = r;
        break;
      }
    }
    this.cacheDst = dst;
    this.cacheRoute = found;
    return found;
  }

  /**
   * The table's entry for `dst` among routes through `oif` (a socket bound to a
   * device, `ip route get ... oif D`): fib_table_lookup passes over next hops on
   * other devices, while a route without one (blackhole, throw, ...) still answers.
   * A multipath route comes back as its path through `oif`. Not cached: bound sockets are few.
   */
  matchOif(dst: number, oif: Interface): AnyRoute | null {
    let found: AnyRoute | null = null;
    for (const r of this.routes) {
      if (!routeAlive(r) || ((dst & prefixMask(r.prefixLen)) >>> 0) !== r.dst) continue;
      if (r.paths !== undefined) {
        const p = r.paths.find((x) => x.dev === oif && x.dev.running);
        if (p === undefined) continue;
        found = p;
      } else if (r.dev !== oif) continue;
      else found = r;
      break;
    }
    for (const r of this.rejects) {
      if (found !== null && (r.prefixLen < found.prefixLen || (r.prefixLen === found.prefixLen && r.metric >= found.metric))) break;
      if (((dst & prefixMask(r.prefixLen)) >>> 0) === r.dst) return r;
    }
    return found;
  }

  /** `ip route add`: fails like RTNETLINK does when the same route exists. */
  add(r: AnyRoute): void {
    r.dst = (r.dst & prefixMask(r.prefixLen)) >>> 0;
    if (this.find(r.dst, r.prefixLen, r.metric)) throw new RouteError('RTNETLINK answers: File exists', 'EEXIST');
    this.insert(r);
  }

  /** `ip route replace`. */
  replace(r: AnyRoute): void {
    r.dst = (r.dst & prefixMask(r.prefixLen)) >>> 0;
    const old = this.find(r.dst, r.prefixLen, r.metric);
    if (old) this.remove(old);
    this.insert(r);
  }

  /** Adds a route beside any with the same key (NLM_F_APPEND: the kernel's own routes for an address). */
  append(r: AnyRoute): void {
    r.dst = (r.dst & prefixMask(r.prefixLen)) >>> 0;
    this.insert(r);
  }

  private insert(r: AnyRoute): void {
    if (this.id !== TABLE_MAIN) r.table = this.id;
    if (isReject(r)) this.rejects.push(r);
    else {
      preparePaths(r);
      this.routes.push(r);
    }
    this.changed();
  }

  private remove(r: AnyRoute): void {
    if (isReject(r)) this.rejects.splice(this.rejects.indexOf(r), 1);
    else this.routes.splice(this.routes.indexOf(r), 1);
  }

  /** `ip route del`: the first route matching all given fields. */
  del(match: { dst: number; prefixLen: number; gateway?: number; dev?: Interface; metric?: number; type?: RouteType }): AnyRoute {
    const dst = (match.dst & prefixMask(match.prefixLen)) >>> 0;
    const r = this.listAll().find(
      (r) =>
        r.dst === dst &&
        r.prefixLen === match.prefixLen &&
        // Without a type (iproute2 sends RTN_UNSPEC for a delete) any type matches.
        (match.type === undefined || (r.type ?? 'unicast') === match.type) &&
        (match.gateway === undefined || (!isReject(r) && r.gateway === match.gateway)) &&
        (match.dev === undefined || (!isReject(r) && r.dev === match.dev)) &&
        (match.metric === undefined || r.metric === match.metric),
    );
    if (r === undefined) throw new RouteError('RTNETLINK answers: No such process', 'ESRCH');
    this.remove(r);
    this.changed();
    return r;
  }

  /** Removes every route through `dev` (the interface went away). */
  flushDev(dev: Interface): void {
    this.routes = this.routes.filter((r) => r.dev !== dev && !(r.nexthops?.some((n) => n.dev === dev) ?? false));
    this.changed();
  }

  /** Removes routes matching a predicate (used when an address is deleted). */
  removeWhere(pred: (r: Route) => boolean): void {
    this.routes = this.routes.filter((r) => !pred(r));
    this.changed();
  }

  /** `ip route flush table T`: every route goes. */
  flush(): void {
    this.routes = [];
    this.rejects = [];
    this.changed();
  }

  /** Invalidates the lookup cache (an interface went up or down). */
  changed(): void {
    let n = 0;
    for (const r of this.routes) if (r.type === 'local' && (this.id !== TABLE_LOCAL || r.prefixLen !== 32)) n++;
    this.localCount = n;
    this.routes.sort((a, b) => b.prefixLen - a.prefixLen || a.metric - b.metric);
    this.rejects.sort((a, b) => b.prefixLen - a.prefixLen || a.metric - b.metric);
    // As the scan in match() chooses: of two host routes with one metric, the one with a next hop.
    const hosts = this.hosts;
    hosts.clear();
    let only = true;
    for (const list of [this.routes, this.rejects] as AnyRoute[][])
      for (const r of list) {
        if (r.prefixLen !== 32) only = false;
        else {
          const old = hosts.get(r.dst);
          if (old === undefined || r.metric < old.metric) hosts.set(r.dst, r);
        }
      }
    this.onlyHosts = only;
    this.cacheDst = -1;
    this.cacheRoute = null;
    this.generation++;
    if (this.onChange !== null) this.onChange();
  }

  private find(dst: number, prefixLen: number, metric: number): AnyRoute | undefined {
    return this.listAll().find((r) => r.dst === dst && r.prefixLen === prefixLen && r.metric === metric);
  }
}

/** The MTU a route allows: its own `mtu` when lower than its device's. */
export function routeMtu(r: Route): number {
  return r.mtu !== undefined && r.mtu < r.dev.mtu ? r.mtu : r.dev.mtu;
}
