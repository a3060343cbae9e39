import { describe, expect, it } from 'vitest';
import { ip } from '../helpers/sim.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import type { SystemError } from '../../src/errors.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import { runFor } from '../helpers/tcp-sim.js';

/**
 * SO_MARK and SO_BINDTODEVICE on the stack's own sockets.
 *
 *   h: u0 (10.0.2.1) -- g0 (10.0.2.2)
 *      u1 (10.0.3.1) -- g1 (10.0.3.2)
 *
 * g0 and g1 both own 198.51.100.7 and listen on UDP 9000 and TCP 80 there, so
 * where a datagram or a connection lands says which way h sent it.
 */
function net() {
  const time = new VirtualTime();
  const [du0, dg0] = simLink(time, { seed: 4, names: ['u0', 'g0'] });
  const [du1, dg1] = simLink(time, { seed: 5, names: ['u1', 'g1'] });
  const h = new Stack({ time, seed: 12 });
  const g0 = new Stack({ time, seed: 13 });
  const g1 = new Stack({ time, seed: 14 });
  const u0 = h.addInterface('u0', du0);
  const u1 = h.addInterface('u1', du1);
  const ig0 = g0.addInterface('g0', dg0);
  const ig1 = g1.addInterface('g1', dg1);
  for (const [s, i] of [[h, u0], [h, u1], [g0, ig0], [g1, ig1]] as const) s.setUp(i, true);
  h.addAddress(u0, ip('10.0.2.1'), 24);
  h.addAddress(u1, ip('10.0.3.1'), 24);
  g0.addAddress(ig0, ip('10.0.2.2'), 24);
  g1.addAddress(ig1, ip('10.0.3.2'), 24);
  g0.addAddress(ig0, ip('198.51.100.7'), 32);
  g1.addAddress(ig1, ip('198.51.100.7'), 32);
  g0.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  g1.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.3.1') });
  const ctl = new Controller(h, {
    open: () => {
      throw new Error('no devices here');
    },
  });
  const cmd = (line: string) => ctl.run(parseCommand(line.split(' ')));
  cmd('ip route add default via 10.0.2.2');
  cmd('ip route add default via 10.0.3.2 table 100');
  cmd('ip rule add fwmark 0x7 lookup 100');
  time.advance(1000);
  const landed: string[] = [];
  const accepted: string[] = [];
  for (const [name, g] of [['g0', g0], ['g1', g1]] as const) {
    const sock = g.udp.createSocket('udp4');
    sock.on('message', (msg) => landed.push(`${name}:${msg.toString()}`));
    sock.bind(9000);
    g.tcp.createServer((s: TcpSocket) => {
      accepted.push(name);
      s.end();
    }).listen(80);
  }
  return { time, h, g0, g1, u0, u1, cmd, landed, accepted };
}

describe('SO_MARK on the stack\'s sockets', () => {
  it('a marked UDP socket takes the route of the fwmark rule, and its datagrams carry the mark', () => {
    const { time, h, landed } = net();
    // nft: meta mark 0x7 counter, on output.
    h.nft.addTable('ip', 'm');
    h.nft.addChain('ip', 'm', 'out', { type: 'filter', hook: 'output', priority: 0, policy: 'accept' });
    const rule = h.nft.addRule('ip', 'm', 'out', [
      { kind: 'match', left: { kind: 'meta', key: 'mark' }, op: 'eq', right: { kind: 'value', value: 7 } },
      { kind: 'counter' },
    ]);
    const plain = h.udp.createSocket('udp4');
    const marked = h.udp.createSocket({ type: 'udp4', mark: 7 });
    plain.send('plain', 9000, '198.51.100.7');
    marked.send('marked', 9000, '198.51.100.7');
    marked.send('marked2', 9000, '198.51.100.7');
    time.advance(500);
    expect(landed.sort()).toEqual(['g0:plain', 'g1:marked', 'g1:marked2']);
    // 20 + 8 + 6 and 20 + 8 + 7 bytes: only the marked socket's datagrams matched.
    expect(h.nft.ruleCounter('ip', 'm', rule)).toEqual({ packets: 2, bytes: 34 + 35 });
    plain.close();
    marked.close();
  });

  it('a marked TCP connection takes the route of the fwmark rule for its whole life', async () => {
    const { time, h, accepted } = net();
    const seen: string[] = [];
    for (const mark of [undefined, 7]) {
      const s = h.tcp.createConnection({ port: 80, host: '198.51.100.7', mark });
      s.on('data', () => undefined);
      // The server's FIN came back the same way: the connection ends cleanly.
      s.on('end', () => s.end());
      s.on('close', () => seen.push(`closed:${mark ?? 0}`));
      await runFor(time, 500, { stepMs: 10 });
    }
    await runFor(time, 2000, { stepMs: 10 });
    expect(accepted).toEqual(['g0', 'g1']);
    expect(seen).toEqual(['closed:0', 'closed:7']);
  });

  it('refuses a mark that is not a 32-bit unsigned integer', () => {
    const { h } = net();
    expect(() => h.udp.createSocket({ type: 'udp4', mark: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => h.tcp.createConnection({ port: 80, host: '198.51.100.7', mark: 2 ** 32 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

describe('SO_BINDTODEVICE on the stack\'s sockets', () => {
  it('a UDP socket bound to a device sends by it, and hears only what arrives on it', () => {
    const { time, h, g0, g1, landed } = net();
    const bound = h.udp.createSocket({ type: 'udp4', bindToDevice: 'u1' });
    bound.send('bound', 9000, '198.51.100.7');
    time.advance(500);
    // Main's default route is through u0, so it is passed over; no route through u1 is
    // left, and the destination is taken as on u1's link (ip_route_output_key_hash_rcu).
    expect(landed).toEqual(['g1:bound']);
    // With a route through u1 in main, that route is taken.
    h.addRoute({ dst: ip('198.51.100.0'), prefixLen: 24, gateway: ip('10.0.3.2'), metric: 10 });
    bound.send('via-route', 9000, '198.51.100.7');
    time.advance(500);
    expect(landed).toEqual(['g1:bound', 'g1:via-route']);
    bound.close();

    // Receive: bound to u0, port 7000; datagrams from g1 arrive on u1 and find nobody.
    const heard: string[] = [];
    const rx = h.udp.createSocket({ type: 'udp4', bindToDevice: 'u0' });
    rx.on('message', (m) => heard.push(m.toString()));
    rx.bind(7000);
    time.advance(10);
    const before = h.mib.UdpNoPorts;
    for (const [g, to, text] of [[g0, '10.0.2.1', 'from-g0'], [g1, '10.0.3.1', 'from-g1']] as const) {
      const s = g.udp.createSocket('udp4');
      s.send(text, 7000, to);
      time.advance(500);
      s.close();
    }
    expect(heard).toEqual(['from-g0']);
    expect(h.mib.UdpNoPorts).toBe(before + 1);
    rx.close();
  });

  it('a TCP connection bound to a device leaves by it; a listener bound to one accepts only from it', async () => {
    const { time, h, g0, g1, accepted } = net();
    const s = h.tcp.createConnection({ port: 80, host: '198.51.100.7', bindToDevice: 'u1' });
    s.on('data', () => undefined);
    await runFor(time, 2000, { stepMs: 10 });
    expect(accepted).toEqual(['g1']);

    const onH: string[] = [];
    h.tcp.createServer({ bindToDevice: 'u0' }, (c: TcpSocket) => {
      onH.push(c.remoteAddress!);
      c.end();
    }).listen(8080);
    time.advance(10);
    const errors: string[] = [];
    for (const [g, to] of [[g0, '10.0.2.1'], [g1, '10.0.3.1']] as const) {
      const c = g.tcp.createConnection({ port: 8080, host: to });
      c.on('data', () => undefined);
      c.on('error', (e: SystemError) => errors.push(`${to}:${e.code}`));
      await runFor(time, 2000, { stepMs: 10 });
    }
    expect(onH).toEqual(['10.0.2.2']);
    // The SYN that came in on u1 found no listener: a RST, as to a closed port.
    expect(errors).toEqual(['10.0.3.1:ECONNREFUSED']);
  });

  it('fails with ENODEV for an interface that does not exist', () => {
    const { time, h } = net();
    expect(() => h.udp.createSocket({ type: 'udp4', bindToDevice: 'nosuch' })).toThrow(
      expect.objectContaining({ code: 'ENODEV', syscall: 'setsockopt' }),
    );
    const errs: string[] = [];
    const c = h.tcp.createConnection({ port: 80, host: '198.51.100.7', bindToDevice: 'nosuch' });
    c.on('error', (e: SystemError) => errs.push(`connect:${e.code}:${e.syscall}`));
    const srv = h.tcp.createServer({ bindToDevice: 'nosuch' });
    srv.on('error', (e: SystemError) => errs.push(`listen:${e.code}:${e.syscall}`));
    srv.listen(8081);
    time.advance(10);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(errs.sort()).toEqual(['connect:ENODEV:setsockopt', 'listen:ENODEV:setsockopt']);
        expect(srv.listening).toBe(false);
        resolve();
      }),
    );
  });
});
