import type { Interface } from '../link/interface.js';
import { TABLE_LOCAL, TABLE_MAIN, isReject, routeMtu, type AnyRoute, type Route } from '../ip/route.js';
import type { FibResult, Rule } from '../ip/fib.js';
import { formatIp4 } from '../wire/addr.js';
import { tableName } from './ip-route.js';

/**
 * `ip route show`, `ip route get` and `ip rule show` laid out as iproute2 prints
 * them (print_route, print_rule): every field followed by a space, multipath
 * next hops on their own tab-indented lines; `-j` with iproute2's keys.
 */

function routeDst(r: AnyRoute): string {
  return r.prefixLen === 0 ? 'default' : r.prefixLen === 32 ? formatIp4(r.dst) : `${formatIp4(r.dst)}/${r.prefixLen}`;
}

export interface RouteShowOptions {
  /** `table all`: each route names its table (but main). */
  showTable: boolean;
  /** Filtered by `dev D`: the device goes unsaid. */
  hideDev: boolean;
}

function routeJson(r: AnyRoute, o: RouteShowOptions): Record<string, unknown> {
  const j: Record<string, unknown> = {};
  const type = r.type ?? 'unicast';
  if (type !== 'unicast') j.type = type;
  j.dst = routeDst(r);
  const u = isReject(r) ? null : r;
  if (u !== null && u.nexthops === undefined) {
    if (u.gateway) j.gateway = formatIp4(u.gateway);
    if (!o.hideDev) j.dev = u.dev.name;
  }
  const table = r.table ?? TABLE_MAIN;
  if (o.showTable && table !== TABLE_MAIN) j.table = tableName(table);
  if (r.proto !== 'boot') j.protocol = r.proto;
  if (u !== null && u.scope !== 'global') j.scope = u.scope;
  if (u !== null && u.src) j.prefsrc = formatIp4(u.src);
  if (r.metric) j.metric = r.metric;
  j.flags = u !== null && u.nexthops === undefined && !u.dev.running ? ['linkdown'] : [];
  if (u !== null && u.mtu !== undefined) j.metrics = [{ mtu: u.mtu }];
  if (u?.nexthops !== undefined)
    j.nexthops = u.nexthops.map((n) => ({
      ...(n.gateway ? { gateway: formatIp4(n.gateway) } : {}),
      dev: n.dev.name,
      weight: n.weight,
      flags: n.dev.running ? [] : ['linkdown'],
    }));
  return j;
}

function routeText(r: AnyRoute, o: RouteShowOptions): string {
  const type = r.type ?? 'unicast';
  let s = type !== 'unicast' ? `${type} ` : '';
  s += `${routeDst(r)} `;
  const u = isReject(r) ? null : r;
  if (u !== null && u.nexthops === undefined) {
    if (u.gateway) s += `via ${formatIp4(u.gateway)} `;
    if (!o.hideDev) s += `dev ${u.dev.name} `;
  }
  const table = r.table ?? TABLE_MAIN;
  if (o.showTable && table !== TABLE_MAIN) s += `table ${tableName(table)} `;
  if (r.proto !== 'boot') s += `proto ${r.proto} `;
  if (u !== null && u.scope !== 'global') s += `scope ${u.scope} `;
  if (u !== null && u.src) s += `src ${formatIp4(u.src)} `;
  if (r.metric) s += `metric ${r.metric} `;
  if (u !== null && u.nexthops === undefined && !u.dev.running) s += 'linkdown ';
  if (u !== null && u.mtu !== undefined) s += `mtu ${u.mtu} `;
  if (u?.nexthops !== undefined)
    for (const n of u.nexthops)
      s += `\n\tnexthop ${n.gateway ? `via ${formatIp4(n.gateway)} ` : ''}dev ${n.dev.name} weight ${n.weight} ${n.dev.running ? '' : 'linkdown '}`;
  return s;
}

/**
 * In the kernel's dump order: by table, then by destination (the trie's key);
 * one key's routes longest prefix first (a leaf's aliases by suffix length), then by metric.
 */
export function sortRoutes(routes: AnyRoute[]): AnyRoute[] {
  return routes.sort(
    (a, b) => (a.table ?? TABLE_MAIN) - (b.table ?? TABLE_MAIN) || a.dst - b.dst || b.prefixLen - a.prefixLen || a.metric - b.metric,
  );
}

export function formatRouteList(routes: readonly AnyRoute[], json: boolean, o: RouteShowOptions): string {
  if (json) return JSON.stringify(routes.map((r) => routeJson(r, o)));
  return routes.map((r) => routeText(r, o)).join('\n');
}

/** The cache flags `ip route get` names for a route type (rtnetlink's RTCF_LOCAL, RTCF_BROADCAST, RTCF_MULTICAST). */
const CACHE_FLAGS: Record<string, string[]> = { local: ['local'], broadcast: ['local', 'brd'], multicast: ['mc'] };

/** What `ip route get` reports for a decision with a next hop or a local one. */
export function formatRouteDecision(
  res: FibResult & { type: 'unicast' | 'local' },
  q: { dst: number; from?: number; mark?: number; iif?: Interface; customRules?: boolean; localSrc?: number },
  json: boolean,
): string {
  const j: Record<string, unknown> = {};
  let route: Route | null = null;
  const type = res.type === 'local' ? 'local' : (res.route.type ?? 'unicast');
  if (type !== 'unicast') j.type = type;
  j.dst = formatIp4(q.dst);
  if (q.from !== undefined) j.from = formatIp4(q.from);
  if (res.type === 'unicast') {
    route = res.route;
    if (route.gateway) j.gateway = formatIp4(route.gateway);
    j.dev = route.dev.name;
  } else j.dev = 'lo';
  // Without custom rules the kernel keeps tables local and main in one trie
  // (fib4_rules_init), so a decision from either names no table.
  const inputLocal = res.type === 'local' && q.iif !== undefined;
  if (res.table !== TABLE_MAIN && (res.table !== TABLE_LOCAL || q.customRules === true)) j.table = tableName(res.table);
  // An input route to us names no source.
  if (q.from === undefined && !inputLocal) {
    // A local route's own source (a secondary address's is its subnet's primary), else the address itself.
    j.prefsrc = formatIp4(route === null ? q.localSrc || q.dst : route.src || route.dev.sourceFor(route.gateway || q.dst));
  }
  // RTCF_MULTICAST is the bit RTM_F_OFFLOAD_FAILED has in rtm_flags, so iproute2 names it so.
  const flags = type === 'multicast' ? ['rt_offload_failed'] : [];
  const cache = CACHE_FLAGS[type] ?? [];
  const mtu = route !== null && route.mtu !== undefined ? routeMtu(route) : undefined;
  if (json) {
    j.flags = flags;
    if (q.mark) j.mark = q.mark;
    // An input route (iif) has no socket owner, so no uid.
    if (q.iif === undefined) j.uid = 0;
    j.cache = cache;
    if (mtu !== undefined) j.metrics = [{ mtu }];
    if (q.iif !== undefined) j.iif = q.iif.name;
    return JSON.stringify([j]);
  }
  let s = type !== 'unicast' ? `${type} ` : '';
  s += `${j.dst} `;
  if (j.from !== undefined) s += `from ${j.from} `;
  if (j.gateway !== undefined) s += `via ${j.gateway} `;
  s += `dev ${j.dev} `;
  if (j.table !== undefined) s += `table ${j.table} `;
  if (j.prefsrc !== undefined) s += `src ${j.prefsrc} `;
  for (const f of flags) s += `${f} `;
  if (q.mark) s += `mark ${q.mark} `;
  if (q.iif === undefined) s += 'uid 0 ';
  s += '\n    cache ';
  if (cache.length > 0) s += `<${cache.join(',')}> `;
  if (mtu !== undefined) s += `mtu ${mtu} `;
  if (q.iif !== undefined) s += `iif ${q.iif.name} `;
  return s;
}

/** The error `ip route get` prints for a decision without a next hop. */
export function routeGetError(t: 'none' | 'blackhole' | 'unreachable' | 'prohibit'): string {
  const what = { none: 'Network is unreachable', blackhole: 'Invalid argument', unreachable: 'No route to host', prohibit: 'Permission denied' }[t];
  return `RTNETLINK answers: ${what}`;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function prefix(a: number, len: number): string {
  return len === 32 ? formatIp4(a) : `${formatIp4(a)}/${len}`;
}

/** `ip rule show`, as iprule.c's print_rule lays it out. */
export function formatRules(rules: readonly Rule[], json: boolean): string {
  if (json) {
    return JSON.stringify(
      rules.map((r) => {
        const j: Record<string, unknown> = { priority: r.pref };
        if (r.invert) j.not = null;
        j.src = r.srcLen > 0 ? formatIp4(r.src) : 'all';
        if (r.srcLen > 0 && r.srcLen !== 32) j.srclen = r.srcLen;
        if (r.dstLen > 0) {
          j.dst = formatIp4(r.dst);
          if (r.dstLen !== 32) j.dstlen = r.dstLen;
        }
        if (r.tos !== undefined) j.tos = `0x${r.tos.toString(16).padStart(2, '0')}`;
        if (r.fwmark !== undefined) {
          j.fwmark = hex(r.fwmark);
          if ((r.fwmask ?? 0xffffffff) !== 0xffffffff) j.fwmask = hex(r.fwmask!);
        }
        if (r.iif !== undefined) j.iif = r.iif;
        if (r.oif !== undefined) j.oif = r.oif;
        if (r.action === 'lookup') j.table = tableName(r.table);
        else j.action = r.action;
        return j;
      }),
    );
  }
  return rules
    .map((r) => {
      let s = `${r.pref}:\t`;
      if (r.invert) s += 'not ';
      s += `from ${r.srcLen > 0 ? prefix(r.src, r.srcLen) : 'all'} `;
      if (r.dstLen > 0) s += `to ${prefix(r.dst, r.dstLen)} `;
      if (r.tos !== undefined) s += `tos 0x${r.tos.toString(16).padStart(2, '0')} `;
      if (r.fwmark !== undefined) {
        s += `fwmark ${hex(r.fwmark)}`;
        s += (r.fwmask ?? 0xffffffff) !== 0xffffffff ? `/${hex(r.fwmask!)} ` : ' ';
      }
      if (r.iif !== undefined) s += `iif ${r.iif} `;
      if (r.oif !== undefined) s += `oif ${r.oif} `;
      s += r.action === 'lookup' ? `lookup ${tableName(r.table)}` : r.action;
      return s;
    })
    .join('\n');
}

export { TABLE_LOCAL };
