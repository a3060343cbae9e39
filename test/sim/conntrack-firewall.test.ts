import { describe, expect, it } from 'vitest';
import { ip, simPing } from '../helpers/sim.js';
import { runFor, settle } from '../helpers/tcp-sim.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { runNftText } from '../../src/control/nft.js';
import { IPS_ASSURED, IPS_SEEN_REPLY, type CtEntry } from '../../src/conntrack/entry.js';
import type { RemoteInfo } from '../../src/udp/socket.js';
import { concat, echoRequest, ethHeader, fixIpChecksum } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';

/**
 * The stack as a stateful firewall: a (10.0.1.2, inside) -- r0 r r1 -- b
 * (10.0.2.2, outside). Forwarding accepts established and related traffic,
 * and new connections only from the inside.
 */
function firewall(opts: { outMtu?: number } = {}) {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
  const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'], mtu: opts.outMtu });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const b = new Stack({ time, seed: 13 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const r1 = r.addInterface('r1', dr1, { mtu: opts.outMtu });
  const ib = b.addInterface('b0', db, { mtu: opts.outMtu });
  for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(r1, ip('10.0.2.1'), 24);
  b.addAddress(ib, ip('10.0.2.2'), 24);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  b.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  const res = runNftText(
    r.nft,
    `table inet fw {
      chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "r0" ct state new accept
      }
    }`,
    {},
    null,
    () => time.now(),
  );
  expect(res.stderr).toBe('');
  time.advance(1000);
  return { time, a, r, b };
}

function entries(s: Stack, proto: number): CtEntry[] {
  const out: CtEntry[] = [];
  s.conntrack.forEach((e) => {
    if (e.proto === proto) out.push(e);
  });
  return out;
}

describe('conntrack: the stack as a stateful firewall', () => {
  it('a ct rule turns conntrack on; pings from the inside get replies, pings from the outside get nothing', () => {
    const { time, a, r, b } = firewall();
    expect(r.conntrack.active).toBe(true);
    expect(simPing(time, a, ip('10.0.2.2'), 3).replies.length).toBe(3);
    const [e] = entries(r, 1);
    expect(e.os).toBe(ip('10.0.1.2'));
    expect(e.status & IPS_SEEN_REPLY).not.toBe(0);
    expect(e.status & IPS_ASSURED).toBe(0);
    expect(simPing(time, b, ip('10.0.1.2'), 3, { ident: 77 }).replies.length).toBe(0);
    // The outside's echo requests were tracked (NEW) but never forwarded: no entry was confirmed for them.
    expect(entries(r, 1).length).toBe(1);
  });

  it('a TCP connection from the inside completes; its entry is ESTABLISHED and ASSURED; one from the outside never opens', async () => {
    const { time, a, r, b } = firewall();
    const got: Buffer[] = [];
    const server = b.tcp.createServer({}, (sock) => {
      sock.on('data', (d: Buffer) => {
        got.push(d);
        sock.write(d);
      });
    });
    server.listen(8080);
    const c = a.tcp.connect(8080, '10.0.2.2');
    let connected = false;
    const echoed: Buffer[] = [];
    c.on('connect', () => {
      connected = true;
      c.write(Buffer.from('hello through the firewall'));
    });
    c.on('data', (d: Buffer) => echoed.push(d));
    await runFor(time, 3000, { stepMs: 10, until: () => echoed.length > 0 });
    expect(connected).toBe(true);
    expect(Buffer.concat(echoed).toString()).toBe('hello through the firewall');
    const [e] = entries(r, 6);
    expect(r.conntrack.stateName(e)).toBe('ESTABLISHED');
    expect(e.status & IPS_ASSURED).not.toBe(0);
    expect(r.conntrack.timeLeft(e)).toBeGreaterThan(431990);
    expect([e.os, e.od, e.odp]).toEqual([ip('10.0.1.2'), ip('10.0.2.2'), 8080]);

    // The other way round: a listens, b's SYNs are dropped at the forward hook.
    const inside = a.tcp.createServer({}, () => {});
    inside.listen(22);
    const d = b.tcp.connect(22, '10.0.1.2');
    let opened = false;
    d.on('connect', () => (opened = true));
    d.on('error', () => {});
    const synsIn = a.mib.TcpPassiveOpens;
    await runFor(time, 5000, { stepMs: 50 });
    expect(opened).toBe(false);
    expect(a.mib.TcpPassiveOpens).toBe(synsIn);
    expect(entries(r, 6).length).toBe(1);
    d.destroy();

    // Closing: FINs both ways move the entry to TIME_WAIT, which expires after 120 s.
    c.end();
    await runFor(time, 2000, { stepMs: 10 });
    expect(r.conntrack.stateName(e)).toBe('TIME_WAIT');
    time.advance(125_000);
    await settle();
    expect(entries(r, 6).length).toBe(0);
    server.close();
    inside.close();
  });

  it('UDP: the inside gets answers; the outside cannot send first; a port unreachable back in is RELATED', async () => {
    const { time, a, r, b } = firewall();
    const srv = b.udp.createSocket();
    srv.bind(5353);
    srv.on('message', (msg: Buffer, rinfo: RemoteInfo) => srv.send(msg, rinfo.port, rinfo.address));
    const cli = a.udp.createSocket();
    cli.bind(4000);
    const answers: string[] = [];
    cli.on('message', (msg: Buffer) => answers.push(msg.toString()));
    cli.send('q1', 5353, '10.0.2.2');
    await runFor(time, 500, { stepMs: 10 });
    expect(answers).toEqual(['q1']);
    // Unsolicited from the outside to another inside port: dropped.
    const inside = a.udp.createSocket();
    inside.bind(4001);
    const unsolicited: string[] = [];
    inside.on('message', (m: Buffer) => unsolicited.push(m.toString()));
    srv.send('hi', 4001, '10.0.1.2');
    await runFor(time, 500, { stepMs: 10 });
    expect(unsolicited).toEqual([]);
    // A datagram to a closed port outside: b's port unreachable is let back in as RELATED.
    const before = a.mib.IcmpInDestUnreachs;
    cli.send('nobody', 9999, '10.0.2.2');
    await runFor(time, 500, { stepMs: 10 });
    expect(a.mib.IcmpInDestUnreachs).toBe(before + 1);
    expect(entries(r, 17).length).toBe(2);
    // After 30 s of silence the unreplied entry is gone; the answered one (not a stream: < 2 s) too.
    time.advance(31_000);
    await settle();
    expect(entries(r, 17).length).toBe(0);
    cli.close();
    inside.close();
    srv.close();
  });

  it('fragments are reassembled for tracking and leave fragmented again to fit the out MTU', async () => {
    const { time, a, r, b } = firewall({ outMtu: 1000 });
    const srv = b.udp.createSocket();
    srv.bind(7000);
    const sizes: number[] = [];
    srv.on('message', (msg: Buffer) => sizes.push(msg.length));
    const frames: number[] = [];
    const r1 = r.iface('r1')!;
    const orig = r1.device.sendBatch.bind(r1.device);
    r1.device.sendBatch = (fs, n) => {
      for (let i = 0; i < n; i++) frames.push(fs[i].length);
      return orig(fs, n);
    };
    const cli = a.udp.createSocket();
    cli.send(Buffer.alloc(3000, 7), 7000, '10.0.2.2');
    await runFor(time, 1000, { stepMs: 10 });
    expect(sizes).toEqual([3000]);
    // a sent it in 1500-byte fragments; r reassembled (conntrack saw one datagram) ...
    expect(r.mib.IpReasmOKs).toBe(1);
    const [e] = entries(r, 17);
    expect(e.odp).toBe(7000);
    // ... and sent it on in pieces of at most 1000 bytes of IP (plus 14 of Ethernet).
    const ipFrames = frames.filter((n) => n > 100);
    expect(ipFrames.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...ipFrames)).toBeLessThanOrEqual(1014);
    cli.close();
    srv.close();
  });

  it('without ct rules conntrack stays off, and fragments are forwarded as they are', async () => {
    const { time, a, r, b } = firewall();
    runNftText(r.nft, 'flush ruleset', {}, null, () => time.now());
    expect(r.conntrack.active).toBe(false);
    expect(r.ip.defrag).toBe(false);
    const srv = b.udp.createSocket();
    srv.bind(7000);
    const sizes: number[] = [];
    srv.on('message', (msg: Buffer) => sizes.push(msg.length));
    const cli = a.udp.createSocket();
    cli.send(Buffer.alloc(3000, 7), 7000, '10.0.2.2');
    await runFor(time, 1000, { stepMs: 10 });
    expect(sizes).toEqual([3000]);
    expect(r.mib.IpReasmOKs).toBe(0);
    expect(r.conntrack.count).toBe(0);
    cli.close();
    srv.close();
  });
});

/** Fragment zero (MF set, 1000 bytes of payload) of an echo request from a to `dst`, put on r's r0 wire. */
function firstFragmentOnly(a: Stack, r: Stack, dst: string): void {
  const d = echoRequest('10.0.1.2', dst, { ident: 0x777, data: 3000 });
  const f = d.slice(0, 20 + 1000);
  f[2] = f.length >> 8;
  f[3] = f.length & 0xff;
  f[6] = 0x20;
  f[7] = 0;
  fixIpChecksum(f);
  const r0 = r.iface('r0')!;
  r0.frame(concat(ethHeader(formatMac(r0.mac), formatMac(a.iface('a0')!.mac), 0x0800), f));
  r0.batchEnd();
}

describe('conntrack: reassembly while it runs', () => {
  it('a large ping to the router itself is reassembled once and answered', () => {
    const { time, a, r } = firewall();
    const res = simPing(time, a, ip('10.0.1.1'), 2, { size: 3000 });
    expect(res.replies.length).toBe(2);
    expect(r.mib.IpReasmOKs).toBe(2);
    expect(entries(r, 1).length).toBe(1);
  });

  it('an incomplete forwarded datagram times out without time exceeded; one for the router gets it (ip_expire)', () => {
    const { time, a, r } = firewall();
    firstFragmentOnly(a, r, '10.0.2.2');
    time.advance(31_000);
    expect(r.mib.IpReasmTimeout).toBe(1);
    expect(r.mib.IcmpOutTimeExcds).toBe(0);
    firstFragmentOnly(a, r, '10.0.1.1');
    time.advance(31_000);
    expect(r.mib.IpReasmTimeout).toBe(2);
    expect(r.mib.IcmpOutTimeExcds).toBe(1);
  });
});

describe('conntrack: the stack\'s own traffic', () => {
  it('a connection to its own address is tracked once: OUTPUT creates, the looped-back copy is confirmed at INPUT', async () => {
    const time = new VirtualTime();
    const [d] = simLink(time, { seed: 5, names: ['h0', 'x0'] });
    const h = new Stack({ time, seed: 21 });
    const i = h.addInterface('h0', d);
    h.setUp(i, true);
    h.addAddress(i, ip('10.0.5.1'), 24);
    h.conntrack.setNeeded('test', true);
    const got: string[] = [];
    const server = h.tcp.createServer({}, (sock) => sock.on('data', (x: Buffer) => got.push(x.toString())));
    server.listen(9000);
    const c = h.tcp.connect(9000, '10.0.5.1');
    c.on('connect', () => c.write(Buffer.from('self')));
    await runFor(time, 1000, { stepMs: 10, until: () => got.length > 0 });
    expect(got).toEqual(['self']);
    const all = entries(h, 6);
    expect(all.length).toBe(1);
    expect(h.conntrack.stateName(all[0])).toBe('ESTABLISHED');
    expect(all[0].status & IPS_ASSURED).not.toBe(0);
    expect(h.conntrack.stats.invalid).toBe(0);
    c.destroy();
    server.close();
  });
});
