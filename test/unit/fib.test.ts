import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { multipathHash } from '../../src/ip/fib.js';
import { multipathBounds, routeMtu } from '../../src/ip/route.js';
import { ip } from '../helpers/sim.js';

function host() {
  const time = new VirtualTime();
  const s = new Stack({ time, seed: 1 });
  const [d0] = simLink(time, { names: ['e0', 'x'] });
  const [d1] = simLink(time, { names: ['e1', 'y'] });
  const e0 = s.addInterface('e0', d0);
  const e1 = s.addInterface('e1', d1);
  s.setUp(e0, true);
  s.setUp(e1, true);
  s.addAddress(e0, ip('10.0.0.2'), 24);
  s.addAddress(e1, ip('10.1.0.2'), 16);
  return { s, e0, e1 };
}

describe('routing tables and rules', () => {
  it("starts with Linux's three rules and looks our addresses up in table local", () => {
    const { s, e0 } = host();
    expect(s.ip.fib.rules.map((r) => [r.pref, r.table])).toEqual([
      [0, 255],
      [32766, 254],
      [32767, 253],
    ]);
    expect(s.ip.routeFlow({ dst: ip('10.0.0.2') })).toEqual({ type: 'local', dev: e0, table: 255 });
    const r = s.ip.routeFlow({ dst: ip('10.0.0.7') });
    expect(r.type === 'unicast' && r.route.dev === e0 && r.table === 254).toBe(true);
    expect(s.ip.routeFlow({ dst: ip('8.8.8.8') })).toEqual({ type: 'none' });
  });

  it('looks in another table by source, mark, iif or tos, and goes on when that table has no route', () => {
    const { s, e0, e1 } = host();
    s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.1.0.1'), table: 100 });
    s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.0.1') });
    s.addRoute({ dst: ip('192.0.2.0'), prefixLen: 24, gateway: ip('10.0.0.9'), table: 101 });
    const rule = { src: 0, srcLen: 0, dst: 0, dstLen: 0, action: 'lookup' as const };
    s.ip.fib.addRule({ ...rule, src: ip('10.1.0.0'), srcLen: 16, table: 100 });
    s.ip.fib.addRule({ ...rule, fwmark: 7, fwmask: 0xff, table: 100, pref: 100 });
    s.ip.fib.addRule({ ...rule, iif: 'e1', table: 101, pref: 50 });
    s.ip.fib.addRule({ ...rule, tos: 0x10, table: 100, pref: 60 });
    expect(s.ip.fib.rules.map((r) => r.pref)).toEqual([0, 50, 60, 100, 32765, 32766, 32767]);
    const dev = (f: Parameters<typeof s.ip.routeFlow>[0]) => {
      const r = s.ip.routeFlow(f);
      return r.type === 'unicast' ? r.route.dev.name : r.type;
    };
    expect(dev({ dst: ip('8.8.8.8') })).toBe('e0');
    expect(dev({ dst: ip('8.8.8.8'), src: ip('10.1.0.2') })).toBe('e1');
    expect(dev({ dst: ip('8.8.8.8'), mark: 0x107 })).toBe('e1');
    expect(dev({ dst: ip('8.8.8.8'), mark: 0x108 })).toBe('e0');
    expect(dev({ dst: ip('8.8.8.8'), tos: 0x10 })).toBe('e1');
    // Table 101 has no default route: the walk goes on to main.
    expect(dev({ dst: ip('8.8.8.8'), iif: e1 })).toBe('e0');
    expect(dev({ dst: ip('192.0.2.1'), iif: e1 })).toBe('e0');
    expect(dev({ dst: ip('192.0.2.1'), iif: e0 })).toBe('e0');
    const r = s.ip.routeFlow({ dst: ip('192.0.2.1'), iif: e1 });
    expect(r.type === 'unicast' && r.route.gateway === ip('10.0.0.9') && r.table === 101).toBe(true);
    s.ip.fib.delRule({ pref: 100 });
    expect(dev({ dst: ip('8.8.8.8'), mark: 0x107 })).toBe('e0');
    s.ip.fib.flushRules();
    expect(s.ip.fib.rules.map((x) => x.pref)).toEqual([0]);
    expect(dev({ dst: ip('8.8.8.8') })).toBe('none');
  });

  it('answers for reject routes and reject rules, and gives local senders their errno', () => {
    const { s } = host();
    s.addRoute({ dst: ip('10.66.0.0'), prefixLen: 16, type: 'blackhole' });
    s.addRoute({ dst: ip('10.67.0.0'), prefixLen: 16, type: 'unreachable' });
    s.addRoute({ dst: ip('10.68.0.0'), prefixLen: 16, type: 'prohibit' });
    s.addRoute({ dst: ip('10.66.1.0'), prefixLen: 24, gateway: ip('10.0.0.1') });
    expect(s.ip.routeFlow({ dst: ip('10.66.0.1') }).type).toBe('blackhole');
    expect(s.ip.routeFlow({ dst: ip('10.66.1.1') }).type).toBe('unicast');
    expect(s.ip.routeOrErrno({ dst: ip('10.66.0.1') })).toBe('EINVAL');
    expect(s.ip.routeOrErrno({ dst: ip('10.67.0.1') })).toBe('EHOSTUNREACH');
    expect(s.ip.routeOrErrno({ dst: ip('10.68.0.1') })).toBe('EACCES');
    expect(s.ip.routeOrErrno({ dst: ip('10.69.0.1') })).toBe('ENETUNREACH');
    // The old lookup sees no route where a reject route answers.
    expect(s.ip.routes.lookup(ip('10.66.0.1'))).toBeNull();
    s.ip.fib.addRule({ src: 0, srcLen: 0, dst: ip('10.0.0.0'), dstLen: 24, action: 'prohibit', table: 0, pref: 5 });
    expect(s.ip.routeOrErrno({ dst: ip('10.0.0.9') })).toBe('EACCES');
    s.ip.routes.del({ dst: ip('10.66.0.0'), prefixLen: 16, type: 'blackhole' });
    expect(s.ip.routeFlow({ dst: ip('10.66.0.1') }).type).toBe('none');
  });

  it('keeps a lower metric reject route ahead of a unicast route of the same prefix', () => {
    const { s } = host();
    s.addRoute({ dst: ip('10.70.0.0'), prefixLen: 16, gateway: ip('10.0.0.1'), metric: 10 });
    s.addRoute({ dst: ip('10.70.0.0'), prefixLen: 16, type: 'unreachable', metric: 5 });
    expect(s.ip.routeFlow({ dst: ip('10.70.0.1') }).type).toBe('unreachable');
    s.ip.routes.del({ dst: ip('10.70.0.0'), prefixLen: 16, metric: 5 });
    expect(s.ip.routeFlow({ dst: ip('10.70.0.1') }).type).toBe('unicast');
  });
});

describe('multipath routes', () => {
  it('splits the hash space by weight, as fib_rebalance does', () => {
    expect(multipathBounds([1, 1])).toEqual([2 ** 30 - 1, 2 ** 31 - 1]);
    expect(multipathBounds([1, 3])).toEqual([2 ** 29 - 1, 2 ** 31 - 1]);
  });

  it('spreads flows by weight and keeps each flow on one path', () => {
    const { s, e0, e1 } = host();
    s.addRoute({
      dst: ip('10.80.0.0'),
      prefixLen: 16,
      nexthops: [
        { gateway: ip('10.0.0.1'), weight: 1 },
        { gateway: ip('10.1.0.1'), dev: e1, weight: 3 },
      ],
    });
    s.sysctl.set('net.ipv4.fib_multipath_hash_policy', '1');
    const count = new Map<string, number>();
    for (let port = 1000; port < 5000; port++) {
      const flow = { dst: ip('10.80.0.9'), src: ip('10.0.0.2'), proto: 6, sport: port, dport: 80 };
      const r = s.ip.routeFlow(flow);
      if (r.type !== 'unicast') throw new Error(r.type);
      const route = r.route;
      const name = route.dev.name;
      count.set(name, (count.get(name) ?? 0) + 1);
      // One flow, one path, every time.
      const again = s.ip.routeFlow(flow);
      expect(again.type === 'unicast' && again.route).toBe(route);
      expect(route.gateway).toBe(name === 'e0' ? ip('10.0.0.1') : ip('10.1.0.1'));
    }
    expect(count.get('e0')! / 4000).toBeGreaterThan(0.21);
    expect(count.get('e0')! / 4000).toBeLessThan(0.29);
    // Policy 0 hashes addresses only: every port of one pair of hosts takes one path.
    s.sysctl.set('net.ipv4.fib_multipath_hash_policy', '0');
    const paths = new Set<string>();
    for (let port = 1000; port < 1100; port++) {
      const r = s.ip.routeFlow({ dst: ip('10.80.0.9'), src: ip('10.0.0.2'), proto: 6, sport: port, dport: 80 });
      if (r.type === 'unicast') paths.add(r.route.dev.name);
    }
    expect(paths.size).toBe(1);
    // A path whose link goes down is skipped.
    s.setUp(e1, false);
    for (let port = 1000; port < 1100; port++) {
      const r = s.ip.routeFlow({ dst: ip('10.80.0.9'), src: ip(`10.0.${port % 250}.2`), proto: 6, sport: port, dport: 80 });
      expect(r.type === 'unicast' && r.route.dev).toBe(e0);
    }
  });

  it('hashes the same flow to the same value and different flows apart', () => {
    const f = { dst: 1, src: 2, proto: 6, sport: 3, dport: 4 };
    expect(multipathHash(f, 1, 9)).toBe(multipathHash({ ...f }, 1, 9));
    expect(multipathHash(f, 1, 9)).not.toBe(multipathHash({ ...f, sport: 5 }, 1, 9));
    expect(multipathHash(f, 0, 9)).toBe(multipathHash({ ...f, sport: 5 }, 0, 9));
    expect(multipathHash(f, 1, 9)).toBeLessThan(2 ** 31);
  });
});

describe('route mtu', () => {
  it('caps the path MTU below the device', () => {
    const { s } = host();
    s.addRoute({ dst: ip('10.70.0.0'), prefixLen: 16, gateway: ip('10.0.0.1'), mtu: 1400 });
    const r = s.ip.routes.lookup(ip('10.70.0.1'))!;
    expect(routeMtu(r)).toBe(1400);
    expect(routeMtu(s.ip.routes.lookup(ip('10.0.0.9'))!)).toBe(1500);
  });
});

describe('table local', () => {
  const kinds = (s: Stack) => s.ip.fib.local.list().map((r) => `${r.type} ${r.dst === 0 ? '' : r.dst >>> 0} ${r.dev.name} ${r.src}`);

  it("holds each address's local route and its subnet's broadcast, and the address map follows it", () => {
    const { s, e0 } = host();
    const t = s.ip.fib.local;
    const has = (type: string, a: string) => t.list().some((r) => r.type === type && r.dst === ip(a));
    expect(has('local', '10.0.0.2') && has('broadcast', '10.0.0.255') && has('local', '10.1.0.2') && has('broadcast', '10.1.255.255')).toBe(true);
    // No route for the network address (Linux stopped adding one).
    expect(has('broadcast', '10.0.0.0')).toBe(false);
    expect(t.size).toBe(4);
    // A secondary address: its local route takes the primary as source; no second broadcast.
    s.addAddress(e0, ip('10.0.0.3'), 24);
    expect(t.list().find((r) => r.dst === ip('10.0.0.3'))?.src).toBe(ip('10.0.0.2'));
    expect(t.size).toBe(5);
    expect(s.ip.local.get(ip('10.0.0.3'))).toBe(e0);
    // The user deletes a local route: the address is no longer ours, though it stays on e0.
    t.del({ dst: ip('10.0.0.3'), prefixLen: 32, type: 'local' });
    expect(s.ip.local.has(ip('10.0.0.3'))).toBe(false);
    expect(s.ip.isLocal(ip('10.0.0.3'))).toBe(false);
    expect(e0.addrs.some((a) => a.addr === ip('10.0.0.3'))).toBe(true);
    const r = s.ip.routeFlow({ dst: ip('10.0.0.3') });
    expect(r.type === 'unicast' && r.table === 254 && r.route.dev === e0).toBe(true);
    // Removing the primary hands the broadcast to the secondary; the last address takes it away.
    s.delAddress(e0, ip('10.0.0.2'), 24);
    expect(s.ip.local.has(ip('10.0.0.2'))).toBe(false);
    expect(t.list().find((r) => r.type === 'broadcast' && r.dst === ip('10.0.0.255'))?.src).toBe(ip('10.0.0.3'));
    s.delAddress(e0, ip('10.0.0.3'), 24);
    expect(has('broadcast', '10.0.0.255')).toBe(false);
    expect(kinds(s)).toEqual([`local ${ip('10.1.0.2')} e1 ${ip('10.1.0.2')}`, `broadcast ${ip('10.1.255.255')} e1 ${ip('10.1.0.2')}`]);
  });

  it('adds no broadcast for /31 and /32 addresses, and keeps input on the map while it holds only host routes', () => {
    const { s, e0 } = host();
    s.addAddress(e0, ip('10.9.0.1'), 31);
    s.addAddress(e0, ip('10.9.1.1'), 32);
    expect(s.ip.fib.local.size).toBe(6);
    // Only a local route wider than a host makes input ask the tables.
    expect(s.ip.fib.localRoutes).toBe(0);
    s.addRoute({ dst: ip('10.7.0.0'), prefixLen: 16, dev: e0, type: 'local', table: 255 });
    expect(s.ip.fib.localRoutes).toBe(1);
    expect(s.ip.isLocal(ip('10.7.3.4'))).toBe(true);
    expect(s.ip.isLocal(ip('10.9.1.1'))).toBe(true);
  });

  it('a broadcast route answers with its device, so a datagram to it leaves as a broadcast', () => {
    const { s, e0 } = host();
    const r = s.ip.routeFlow({ dst: ip('10.0.0.255') });
    expect(r.type === 'unicast' && r.route.type === 'broadcast' && r.route.dev === e0 && r.table === 255).toBe(true);
  });
});

describe('throw routes', () => {
  it('end the lookup in their table and the walk goes on with the next rule', () => {
    const { s, e1 } = host();
    const rule = { src: 0, srcLen: 0, dst: 0, dstLen: 0, action: 'lookup' as const };
    s.addRoute({ dst: ip('10.5.0.0'), prefixLen: 16, gateway: ip('10.0.0.1'), table: 100 });
    s.addRoute({ dst: ip('10.5.1.0'), prefixLen: 24, type: 'throw', table: 100 });
    s.addRoute({ dst: ip('10.5.0.0'), prefixLen: 16, gateway: ip('10.1.0.1') });
    s.ip.fib.addRule({ ...rule, table: 100, pref: 100 });
    const a = s.ip.routeFlow({ dst: ip('10.5.2.1') });
    expect(a.type === 'unicast' && a.table === 100).toBe(true);
    const b = s.ip.routeFlow({ dst: ip('10.5.1.1') });
    expect(b.type === 'unicast' && b.table === 254 && b.route.dev === e1).toBe(true);
    // A throw in main with nothing after it: no route.
    s.addRoute({ dst: ip('10.6.0.0'), prefixLen: 16, type: 'throw' });
    expect(s.ip.routeFlow({ dst: ip('10.6.0.1') })).toEqual({ type: 'none' });
  });
});
