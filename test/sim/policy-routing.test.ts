import { describe, expect, it } from 'vitest';
import { ip } from '../helpers/sim.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import type { SystemError } from '../../src/errors.js';

/**
 * a (10.0.1.2, 10.0.1.3) -- r0 router r: u0 (10.0.2.1) -- g0 (10.0.2.2)
 *                                        u1 (10.0.3.1) -- g1 (10.0.3.2)
 * g0 and g1 both own 198.51.100.7, so where a datagram lands says which way r sent it.
 */
function net() {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
  const [du0, dg0] = simLink(time, { seed: 4, names: ['u0', 'g0'] });
  const [du1, dg1] = simLink(time, { seed: 5, names: ['u1', 'g1'] });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const g0 = new Stack({ time, seed: 13 });
  const g1 = new Stack({ time, seed: 14 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const u0 = r.addInterface('u0', du0);
  const u1 = r.addInterface('u1', du1);
  const ig0 = g0.addInterface('g0', dg0);
  const ig1 = g1.addInterface('g1', dg1);
  for (const [s, i] of [[a, ia], [r, r0], [r, u0], [r, u1], [g0, ig0], [g1, ig1]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  a.addAddress(ia, ip('10.0.1.3'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(u0, ip('10.0.2.1'), 24);
  r.addAddress(u1, ip('10.0.3.1'), 24);
  g0.addAddress(ig0, ip('10.0.2.2'), 24);
  g1.addAddress(ig1, ip('10.0.3.2'), 24);
  g0.addAddress(ig0, ip('198.51.100.7'), 32);
  g1.addAddress(ig1, ip('198.51.100.7'), 32);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  const ctl = new Controller(r, {
    open: () => {
      throw new Error('no devices here');
    },
  });
  const cmd = (line: string) => ctl.run(parseCommand(line.split(' ')));
  time.advance(1000);
  const landed: string[] = [];
  for (const [name, g] of [['g0', g0], ['g1', g1]] as const) {
    const sock = g.udp.createSocket('udp4');
    sock.on('message', (msg) => landed.push(`${name}:${msg.toString()}`));
    sock.bind(9000);
  }
  const send = (from: string, port: number, text: string) => {
    const sock = a.udp.createSocket('udp4');
    sock.bind({ port, address: from });
    sock.send(text, 9000, '198.51.100.7');
    time.advance(500);
    sock.close();
  };
  return { time, a, r, cmd, landed, send };
}

describe('policy routing on a router', () => {
  it('chooses the uplink by source address and by a mark set in prerouting', () => {
    const { r, cmd, landed, send } = net();
    cmd('ip route add default via 10.0.2.2');
    cmd('ip route add default via 10.0.3.2 table 100');
    cmd('ip rule add from 10.0.1.3 lookup 100');
    cmd('ip rule add fwmark 0x7/0xff lookup 100 pref 100');
    send('10.0.1.2', 4000, 'plain');
    send('10.0.1.3', 4001, 'by-source');
    // nft: udp dport 9000 udp sport 4002 meta mark set 0x107, in prerouting.
    r.nft.addTable('ip', 'mangle');
    r.nft.addChain('ip', 'mangle', 'pre', { type: 'filter', hook: 'prerouting', priority: -150, policy: 'accept' });
    r.nft.addRule('ip', 'mangle', 'pre', [
      { kind: 'match', left: { kind: 'payload', proto: 'udp', field: 'sport' }, op: 'eq', right: { kind: 'value', value: 4002 } },
      { kind: 'meta-set', key: 'mark', value: 0x107 },
    ]);
    send('10.0.1.2', 4002, 'by-mark');
    send('10.0.1.2', 4003, 'unmarked');
    expect(landed).toEqual(['g0:plain', 'g1:by-source', 'g1:by-mark', 'g0:unmarked']);
    expect(cmd('ip route get 198.51.100.7 from 10.0.1.3 iif r0')).toContain('via 10.0.3.2 dev u1 table 100');
    expect(cmd('ip route get 198.51.100.7 mark 7')).toContain('via 10.0.3.2 dev u1 table 100');
  });

  it('drops, or answers with host unreachable or prohibited, for reject routes and rules', () => {
    const { a, cmd, landed, send } = net();
    cmd('ip route add default via 10.0.2.2');
    cmd('ip route add blackhole 198.51.100.0/24');
    send('10.0.1.2', 4000, 'blackholed');
    cmd('ip route replace unreachable 198.51.100.0/24');
    send('10.0.1.2', 4001, 'unreachable');
    cmd('ip route del 198.51.100.0/24');
    cmd('ip rule add from 10.0.1.3 prohibit');
    send('10.0.1.3', 4002, 'prohibited');
    send('10.0.1.2', 4003, 'allowed');
    expect(landed).toEqual(['g0:allowed']);
    // Host unreachable for the unreachable route, administratively prohibited for the rule; nothing for the blackhole.
    expect(a.icmpMsg.entries().filter(([k]) => k.startsWith('IcmpMsgInType3'))).toEqual([['IcmpMsgInType3', 2]]);
  });

  it('gives local senders the errno of a reject route', () => {
    const { r, cmd, time } = net();
    cmd('ip route add unreachable 198.51.100.0/24');
    cmd('ip route add prohibit 198.51.101.0/24');
    const got: string[] = [];
    for (const dst of ['198.51.100.7', '198.51.101.7', '203.0.113.1']) {
      const sock = r.udp.createSocket('udp4');
      sock.send('x', 9000, dst, (err) => got.push((err as SystemError | null)?.code ?? 'ok'));
      time.advance(10);
      sock.close();
    }
    expect(got).toEqual(['EHOSTUNREACH', 'EACCES', 'ENETUNREACH']);
  });
});

describe('multipath routes on a host', () => {
  it('keeps each TCP connection on one path and spreads connections over both (hash policy 1)', async () => {
    const { runFor, pattern } = await import('../helpers/tcp-sim.js');
    const time = new VirtualTime();
    const [dh0, dg0] = simLink(time, { seed: 6, names: ['h0', 'g0'] });
    const [dh1, dg1] = simLink(time, { seed: 7, names: ['h1', 'g1'] });
    const h = new Stack({ time, seed: 21 });
    const g0 = new Stack({ time, seed: 22 });
    const g1 = new Stack({ time, seed: 23 });
    const ih0 = h.addInterface('h0', dh0);
    const ih1 = h.addInterface('h1', dh1);
    const ig0 = g0.addInterface('g0', dg0);
    const ig1 = g1.addInterface('g1', dg1);
    for (const [s, i] of [[h, ih0], [h, ih1], [g0, ig0], [g1, ig1]] as const) s.setUp(i, true);
    h.addAddress(ih0, ip('10.0.2.1'), 24);
    h.addAddress(ih1, ip('10.0.3.1'), 24);
    g0.addAddress(ig0, ip('10.0.2.2'), 24);
    g1.addAddress(ig1, ip('10.0.3.2'), 24);
    // Both ends of the paths own the address: a segment that strayed to the other
    // path would meet no connection there and be reset.
    g0.addAddress(ig0, ip('198.51.100.7'), 32);
    g1.addAddress(ig1, ip('198.51.100.7'), 32);
    g0.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
    g1.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.3.1') });
    const ctl = new Controller(h, {
      open: () => {
        throw new Error('no devices here');
      },
    });
    ctl.run(parseCommand('ip route add 198.51.100.0/24 nexthop via 10.0.2.2 weight 1 nexthop via 10.0.3.2 weight 1'.split(' ')));
    ctl.run(parseCommand('sysctl -w net.ipv4.fib_multipath_hash_policy=1'.split(' ')));
    time.advance(1000);
    const served = { g0: 0, g1: 0 };
    let bytes = 0;
    for (const [name, g] of [['g0', g0], ['g1', g1]] as const)
      g.tcp
        .createServer((s) => {
          served[name]++;
          s.on('data', (d: Buffer) => (bytes += d.length));
          s.on('end', () => s.end());
        })
        .listen(80);
    const data = pattern(20_000);
    let closed = 0;
    const errors: Error[] = [];
    const N = 16;
    for (let i = 0; i < N; i++) {
      const c = h.tcp.connect(80, '198.51.100.7');
      c.on('connect', () => c.end(data));
      c.resume();
      c.on('error', (e) => errors.push(e));
      c.on('close', () => closed++);
    }
    await runFor(time, 60_000, { stepMs: 5, until: () => closed === N });
    expect(errors).toEqual([]);
    expect(closed).toBe(N);
    expect(served.g0 + served.g1).toBe(N);
    expect(served.g0).toBeGreaterThan(0);
    expect(served.g1).toBeGreaterThan(0);
    expect(bytes).toBe(N * 20_000);
    expect(g0.mib.TcpOutRsts + g1.mib.TcpOutRsts).toBe(0);
  });
});

describe('local routes', () => {
  it('make a whole prefix ours: pings to any address in it are answered', async () => {
    const { simPair, simPing } = await import('../helpers/sim.js');
    const { time, a, b } = simPair();
    a.addRoute({ dst: ip('10.0.9.0'), prefixLen: 24, gateway: ip('10.0.0.2') });
    expect(simPing(time, a, ip('10.0.9.5'), 1).replies.length).toBe(0);
    const ctl = new Controller(b, {
      open: () => {
        throw new Error('no devices here');
      },
    });
    ctl.run(parseCommand('ip route add local 10.0.9.0/24 dev b0'.split(' ')));
    // Beside the routes b0's address brought (fib_add_ifaddr), sorted by destination.
    expect(ctl.run(parseCommand('ip route show table local'.split(' ')))).toBe(
      'local 10.0.0.2 dev b0 proto kernel scope host src 10.0.0.2 \n' +
        'broadcast 10.0.0.255 dev b0 proto kernel scope link src 10.0.0.2 \n' +
        'local 10.0.9.0/24 dev b0 scope host ',
    );
    // Without custom rules tables local and main are one trie: no table named.
    expect(ctl.run(parseCommand('ip route get 10.0.9.77'.split(' ')))).toBe('local 10.0.9.77 dev lo src 10.0.9.77 uid 0 \n    cache <local> ');
    expect(simPing(time, a, ip('10.0.9.5'), 2, { ident: 9 }).replies.length).toBe(2);
  });
});
