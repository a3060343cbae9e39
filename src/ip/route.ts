import type { Interface } from '../link/interface.js';
import { prefixMask } from '../wire/addr.js';

export type RouteProto = 'kernel' | 'boot' | 'static';
export type RouteScope = 'global' | 'link' | 'host';

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
}

export class RouteError extends Error {
  constructor(
    message: string,
    readonly code: 'EEXIST' | 'ESRCH' | 'ENETUNREACH' | 'EINVAL',
  ) {
    super(message);
  }
}

/**
 * The main routing table, searched by longest prefix, then lowest metric.
 * Kept sorted so the first match wins; small tables scan faster than a trie
 * and the last lookup is cached for the common same-destination burst.
 */
export class RouteTable {
  private routes: Route[] = [];
  private cacheDst = -1;
  private cacheRoute: Route | null = null;
  /** Bumped on every change, so callers caching routes know to look again. */
  generation = 0;

  list(): readonly Route[] {
    return this.routes;
  }

  lookup(dst: number): Route | null {
    if (dst === this.cacheDst) return this.cacheRoute;
    let found: Route | null = null;
    for (const r of this.routes) {
      if (!r.dev.running) continue;
      if (((dst & prefixMask(r.prefixLen)) >>> 0) === r.dst) {
        found = r;
        break;
      }
    }
    this.cacheDst = dst;
    this.cacheRoute = found;
    return found;
  }

  /** `ip route add`: fails like RTNETLINK does when the same route exists. */
  add(r: Route): void {
    r.dst = (r.dst & prefixMask(r.prefixLen)) >>> 0;
    if (this.find(r.dst, r.prefixLen, r.metric)) throw new RouteError('RTNETLINK answers: File exists', 'EEXIST');
    this.routes.push(r);
    this.changed();
  }

  /** `ip route replace`. */
  replace(r: Route): void {
    r.dst = (r.dst & prefixMask(r.prefixLen)) >>> 0;
    const old = this.find(r.dst, r.prefixLen, r.metric);
    if (old) this.routes.splice(this.routes.indexOf(old), 1);
    this.routes.push(r);
    this.changed();
  }

  /** `ip route del`: the first route matching all given fields. */
  del(match: { dst: number; prefixLen: number; gateway?: number; dev?: Interface; metric?: number }): Route {
    const dst = (match.dst & prefixMask(match.prefixLen)) >>> 0;
    const i = this.routes.findIndex(
      (r) =>
        r.dst === dst &&
        r.prefixLen === match.prefixLen &&
        (match.gateway === undefined || r.gateway === match.gateway) &&
        (match.dev === undefined || r.dev === match.dev) &&
        (match.metric === undefined || r.metric === match.metric),
    );
    if (i < 0) throw new RouteError('RTNETLINK answers: No such process', 'ESRCH');
    const [r] = this.routes.splice(i, 1);
    this.changed();
    return r;
  }

  /** Removes every route through `dev` (the interface went away). */
  flushDev(dev: Interface): void {
    this.routes = this.routes.filter((r) => r.dev !== dev);
    this.changed();
  }

  /** Removes routes matching a predicate (used when an address is deleted). */
  removeWhere(pred: (r: Route) => boolean): void {
    this.routes = this.routes.filter((r) => !pred(r));
    this.changed();
  }

  /** Invalidates the lookup cache (an interface went up or down). */
  changed(): void {
    this.routes.sort((a, b) => b.prefixLen - a.prefixLen || a.metric - b.metric);
    this.cacheDst = -1;
    this.cacheRoute = null;
    this.generation++;
  }

  private find(dst: number, prefixLen: number, metric: number): Route | undefined {
    return this.routes.find((r) => r.dst === dst && r.prefixLen === prefixLen && r.metric === metric);
  }
}
