import type { Stack } from '../stack.js';
import { RouteError, TABLE_LOCAL, TABLE_MAIN, isReject, type AnyRoute, type RouteType } from '../ip/route.js';
import type { Rule } from '../ip/fib.js';
import type { RouteCommand } from './ip-route.js';
import { CommandError } from './words.js';
import { formatRouteDecision, formatRouteList, formatRules, routeGetError, sortRoutes } from './route-format.js';

/** iproute2's iproute_modify: routes of these types go to table local unless a table is named. */
function defaultTable(type: string | undefined): number {
  return type === 'local' || type === 'broadcast' || type === 'anycast' || type === 'nat' ? TABLE_LOCAL : TABLE_MAIN;
}

/** Carries out `ip route` and `ip rule` commands on a Stack; returns what they print. */
export function runRouteCommand(s: Stack, cmd: RouteCommand): string {
  const fib = s.ip.fib;
  switch (cmd.kind) {
    case 'route-add':
    case 'route-replace': {
      const type = cmd.type;
      // fib_create_info: RTN_NAT and RTN_XRESOLVE need a scope wider than any
      // iproute2 sends (fib_props[type].scope is RT_SCOPE_NOWHERE).
      if (type === 'nat' || type === 'xresolve') throw new RouteError('Error: Invalid scope.', 'EINVAL');
      const noDev = type === 'blackhole' || type === 'unreachable' || type === 'prohibit' || type === 'throw';
      if (noDev && (cmd.via !== undefined || cmd.dev !== undefined || cmd.nexthops !== undefined))
        throw new RouteError('Error: Gateway, device and multipath can not be specified for this route type.', 'EINVAL');
      if (type === 'local' || type === 'broadcast' || type === 'anycast' || type === 'multicast') {
        // These routes have scope host or link, and a gateway must be reachable
        // through a narrower scope (fib_check_nh_v4_gw): none is.
        const via = cmd.via !== undefined || (cmd.nexthops?.some((n) => n.via !== undefined) ?? false);
        if (via && type === 'local') throw new RouteError('Error: Route with host scope can not have a gateway.', 'EINVAL');
        if (via) throw new RouteError('Error: Nexthop has invalid gateway.', 'EINVAL');
        if (cmd.dev === undefined && cmd.nexthops === undefined) throw new RouteError('RTNETLINK answers: No such device', 'ENODEV');
      }
      s.addRoute({
        dst: cmd.dst,
        prefixLen: cmd.prefixLen,
        gateway: cmd.via,
        dev: cmd.dev !== undefined ? s.requireIface(cmd.dev) : undefined,
        src: cmd.src,
        metric: cmd.metric,
        replace: cmd.kind === 'route-replace',
        table: cmd.table ?? defaultTable(type),
        type,
        mtu: cmd.mtu,
        proto: cmd.proto,
        nexthops: cmd.nexthops?.map((n) => ({ gateway: n.via, dev: n.dev !== undefined ? s.requireIface(n.dev) : undefined, weight: n.weight })),
      });
      return '';
    }
    case 'route-del': {
      const t = fib.table(cmd.table ?? defaultTable(cmd.type));
      if (t === undefined) throw new RouteError('RTNETLINK answers: No such process', 'ESRCH');
      t.del({
        dst: cmd.dst,
        prefixLen: cmd.prefixLen,
        gateway: cmd.via,
        dev: cmd.dev !== undefined ? s.requireIface(cmd.dev) : undefined,
        metric: cmd.metric,
        type: cmd.type as RouteType | undefined,
      });
      return '';
    }
    case 'route-flush': {
      const dev = cmd.dev !== undefined ? s.requireIface(cmd.dev) : undefined;
      const ids = cmd.table !== undefined ? [cmd.table] : [TABLE_MAIN];
      for (const id of ids) {
        const t = fib.table(id);
        if (t === undefined) continue;
        if (dev === undefined) t.flush();
        else t.flushDev(dev);
      }
      return '';
    }
    case 'route-show': {
      const dev = cmd.dev !== undefined ? s.requireIface(cmd.dev) : undefined;
      const ids = cmd.table === 'all' ? fib.tableIds() : [cmd.table ?? TABLE_MAIN];
      const routes: AnyRoute[] = [];
      for (const id of ids) {
        const t = fib.table(id);
        if (t === undefined) continue;
        for (const r of t.listAll()) {
          if (dev !== undefined && (isReject(r) || (r.dev !== dev && !(r.nexthops?.some((n) => n.dev === dev) ?? false)))) continue;
          routes.push(r);
        }
      }
      return formatRouteList(sortRoutes(routes), cmd.json, { showTable: cmd.table === 'all', hideDev: dev !== undefined });
    }
    case 'route-get': {
      const iif = cmd.iif !== undefined ? s.requireIface(cmd.iif) : undefined;
      const oif = cmd.oif !== undefined ? s.requireIface(cmd.oif) : undefined;
      const res = s.ip.routeFlow({ dst: cmd.dst, src: cmd.from ?? 0, iif: iif ?? null, oif: oif ?? null, mark: cmd.mark ?? 0, tos: cmd.tos ?? 0 });
      if (iif !== undefined) {
        // An input route, in ip_route_input_slow's order: without a route (or with a
        // reject) forwarding off means host unreachable; a datagram not for us needs
        // forwarding on; our own address as its source is a martian (EINVAL).
        const fwd = s.ipConf.forwarding(iif);
        if (res.type !== 'unicast' && res.type !== 'local') throw new CommandError(routeGetError(fwd ? res.type : 'unreachable'));
        if (res.type === 'unicast' && !fwd) throw new CommandError(routeGetError('unreachable'));
        if (cmd.from !== undefined && s.ip.isLocal(cmd.from)) throw new CommandError(routeGetError('blackhole'));
        // ip_route_input_slow: a route of another type than unicast or local is a martian destination (EINVAL).
        if (res.type === 'unicast' && (res.route.type === 'multicast' || res.route.type === 'anycast')) throw new CommandError(routeGetError('blackhole'));
      }
      if (res.type !== 'unicast' && res.type !== 'local') throw new CommandError(routeGetError(res.type));
      let localSrc: number | undefined;
      if (res.type === 'local') {
        const m = fib.table(res.table)?.match(cmd.dst);
        if (m != null && !isReject(m)) localSrc = m.src;
      }
      return formatRouteDecision(res, { dst: cmd.dst, from: cmd.from, mark: cmd.mark, iif, customRules: fib.customRules, localSrc }, cmd.json);
    }
    case 'rule-add': {
      const r = cmd.rule;
      fib.addRule({
        pref: r.pref,
        src: r.src ?? 0,
        srcLen: r.srcLen ?? 0,
        dst: r.dst ?? 0,
        dstLen: r.dstLen ?? 0,
        iif: r.iif,
        oif: r.oif,
        fwmark: r.fwmark,
        fwmask: r.fwmark !== undefined ? r.fwmask : undefined,
        tos: r.tos,
        action: r.action ?? 'lookup',
        table: r.action === 'lookup' || r.action === undefined ? (r.table ?? TABLE_MAIN) : 0,
        invert: r.invert,
      });
      return '';
    }
    case 'rule-del': {
      const r = cmd.rule;
      const match: Partial<Rule> = {
        pref: r.pref,
        src: r.src,
        srcLen: r.srcLen,
        dst: r.dst,
        dstLen: r.dstLen,
        iif: r.iif,
        oif: r.oif,
        fwmark: r.fwmark,
        fwmask: r.fwmark !== undefined ? r.fwmask : undefined,
        tos: r.tos,
        action: r.action,
        table: r.table,
      };
      if (fib.delRule(match) === null) throw new CommandError('RTNETLINK answers: No such file or directory');
      return '';
    }
    case 'rule-flush':
      fib.flushRules();
      return '';
    case 'rule-show':
      return formatRules(fib.rules, cmd.json);
  }
}
