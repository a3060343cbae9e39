import { describe, expect, it } from 'vitest';
import type { Stack } from '../../src/stack.js';
import type { Packet } from '../../src/packet/packet.js';
import { VERDICT_ACCEPT } from '../../src/ip/hooks.js';
import type { IcmpErrorInfo } from '../../src/ip/icmp.js';
import { formatIp4 } from '../../src/wire/addr.js';
import { ip, simPing } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import { natNet, cmd } from '../helpers/nat-sim.js';

const NAT = ['nft add table ip nat', 'nft add chain ip nat pre { type nat hook prerouting priority dstnat ; }', 'nft add chain ip nat out { type nat hook output priority -100 ; }', 'nft add chain ip nat post { type nat hook postrouting priority srcnat ; }'];
const MASQ = 'nft add rule ip nat post ip saddr 10.0.1.0/24 oifname "r1" masquerade';

/** What arrives at `s`'s IP layer: [src, dst, proto, sport, dport] of each datagram (before its own hooks). */
function sniff(s: Stack): [string, string, number, number, number][] {
  const seen: [string, string, number, number, number][] = [];
  s.ip.hooks.prerouting.register((p: Packet) => {
    const b = p.buf;
    const o = p.l3;
    const t = o + ((b[o] & 15) << 2);
    const u = (k: number): number => ((b[k] << 24) | (b[k + 1] << 16) | (b[k + 2] << 8) | b[k + 3]) >>> 0;
    seen.push([formatIp4(u(o + 12)), formatIp4(u(o + 16)), b[o + 9], (b[t] << 8) | b[t + 1], (b[t + 2] << 8) | b[t + 3]]);
    return VERDICT_ACCEPT;
  }, -1000);
  return seen;
}

/** A TCP server on `s`:`port` that answers each chunk with "ok:" + it, and records the peers it saw. */
function tcpEchoServer(s: Stack, port: number): { peers: string[]; locals: string[] } {
  const peers: string[] = [];
  const locals: string[] = [];
  s.tcp
    .createServer((sock) => {
      peers.push(`${sock.remoteAddress}:${sock.remotePort}`);
      locals.push(`${sock.localAddress}:${sock.localPort}`);
      sock.on('data', (d: Buffer) => sock.write(Buffer.concat([Buffer.from('ok:'), d])));
    })
    .listen(port);
  return { peers, locals };
}

async function tcpExchange(t: { time: import('../../src/time/timers.js').VirtualTime }, from: Stack, host: string, port: number, msg: string): Promise<{ got: string; err: string | null }> {
  const sock = from.tcp.connect(port, host);
  let got = '';
  let err: string | null = null;
  sock.on('connect', () => sock.write(msg));
  sock.on('data', (d: Buffer) => (got += d.toString()));
  sock.on('error', (e: Error & { code?: string }) => (err = e.code ?? e.message));
  await runFor(t.time, 3000, { stepMs: 5, until: () => got.length > 0 || err !== null });
  sock.destroy();
  return { got, err };
}

function udpEcho(s: Stack, port: number): { from: string[] } {
  const from: string[] = [];
  const sock = s.udp.createSocket();
  sock.bind(port);
  sock.on('message', (m: Buffer, ri: { address: string; port: number }) => {
    from.push(`${ri.address}:${ri.port}`);
    sock.send(m, ri.port, ri.address);
  });
  return { from };
}

function errorsAt(s: Stack): IcmpErrorInfo[] {
  const seen: IcmpErrorInfo[] = [];
  s.icmp.onError((e) => seen.push(e));
  return seen;
}


describe('NAT through a sim router', () => {
  it('masquerade: ping, TCP and UDP reach a host with no route back; it sees only the router address', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, MASQ);
    const atD = sniff(t.d);
    // Ping
    const { replies } = simPing(t.time, t.a, ip('198.51.100.2'), 2, { ident: 0x4242 });
    expect(replies.map((x) => x.seq)).toEqual([1, 2]);
    // TCP
    const srv = tcpEchoServer(t.d, 80);
    const r = await tcpExchange(t, t.a, '198.51.100.2', 80, 'hello');
    expect(r).toEqual({ got: 'ok:hello', err: null });
    expect(srv.peers[0]).toMatch(/^203\.0\.113\.1:/);
    // UDP
    const echo = udpEcho(t.d, 7);
    const got: string[] = [];
    const us = t.a.udp.createSocket();
    us.bind(40000);
    us.on('message', (m: Buffer) => got.push(m.toString()));
    us.send(Buffer.from('u1'), 7, '198.51.100.2');
    await runFor(t.time, 500, { stepMs: 5, until: () => got.length > 0 });
    expect(got).toEqual(['u1']);
    expect(echo.from).toEqual(['203.0.113.1:40000']);
    // Every datagram d saw came from the router's address.
    expect(atD.length).toBeGreaterThan(5);
    expect(new Set(atD.map((x) => x[0]))).toEqual(new Set(['203.0.113.1']));
    expect(t.r.nat.stats).toMatchObject({ truncated: 0, icmpError: 0 });
  });

  it('two clients with the same UDP source port both get through; the second is remapped', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, MASQ);
    const echo = udpEcho(t.d, 7);
    const got: Record<string, string[]> = { a: [], c: [] };
    for (const [name, h] of [['a', t.a], ['c', t.c]] as const) {
      const s = h.udp.createSocket();
      s.bind(40000);
      s.on('message', (m: Buffer) => got[name].push(m.toString()));
      s.send(Buffer.from(`from-${name}`), 7, '198.51.100.2');
      await runFor(t.time, 200, { stepMs: 5 });
    }
    expect(got).toEqual({ a: ['from-a'], c: ['from-c'] });
    expect(echo.from[0]).toBe('203.0.113.1:40000');
    expect(echo.from[1]).toMatch(/^203\.0\.113\.1:\d+$/);
    const p2 = Number(echo.from[1].split(':')[1]);
    expect(p2).not.toBe(40000);
    expect(p2).toBeGreaterThanOrEqual(1024);
  });

  it('DNAT port forward: the WAN reaches a server behind the router, which sees the real client', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, 'nft add rule ip nat pre iifname "r1" tcp dport 8080 dnat to 10.0.1.10:80');
    const srv = tcpEchoServer(t.s, 80);
    const r = await tcpExchange(t, t.d, '203.0.113.1', 8080, 'pf');
    expect(r).toEqual({ got: 'ok:pf', err: null });
    expect(srv.peers[0]).toMatch(/^198\.51\.100\.2:/);
    expect(srv.locals[0]).toBe('10.0.1.10:80');
  });

  it('REDIRECT to a local TCP service of the router', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, 'nft add rule ip nat pre iifname "r0" tcp dport 80 redirect to :3128');
    const srv = tcpEchoServer(t.r, 3128);
    const atD = sniff(t.d);
    const r = await tcpExchange(t, t.a, '198.51.100.2', 80, 'proxy me');
    expect(r).toEqual({ got: 'ok:proxy me', err: null });
    expect(srv.locals[0]).toBe('10.0.1.1:3128');
    expect(srv.peers[0]).toMatch(/^10\.0\.1\.2:/);
    expect(atD).toEqual([]);
  });

  it('SNAT to a port range', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, 'nft add rule ip nat post ip saddr 10.0.1.0/24 oifname "r1" ip protocol udp snat to 203.0.113.1:20000-20009');
    const echo = udpEcho(t.d, 7);
    let n = 0;
    for (let k = 0; k < 5; k++) {
      const s = t.a.udp.createSocket();
      s.bind(41000 + k);
      s.on('message', () => n++);
      s.send(Buffer.from('x'), 7, '198.51.100.2');
    }
    await runFor(t.time, 500, { stepMs: 5, until: () => n === 5 });
    expect(n).toBe(5);
    const ports = echo.from.map((f) => Number(f.split(':')[1]));
    expect(echo.from.every((f) => f.startsWith('203.0.113.1:'))).toBe(true);
    expect(new Set(ports).size).toBe(5);
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(20000);
      expect(p).toBeLessThanOrEqual(20009);
    }
  });

  it('hairpin: a LAN client reaches the public address of a LAN server', async () => {
    const t = natNet();
    cmd(
      t.r,
      ...NAT,
      'nft add rule ip nat pre ip daddr 203.0.113.1 tcp dport 8080 dnat to 10.0.1.10:80',
      'nft add rule ip nat post ip saddr 10.0.1.0/24 ip daddr 10.0.1.10 tcp dport 80 masquerade',
    );
    const srv = tcpEchoServer(t.s, 80);
    const r = await tcpExchange(t, t.a, '203.0.113.1', 8080, 'hairpin');
    expect(r).toEqual({ got: 'ok:hairpin', err: null });
    // The server saw the router (so its reply goes back through it), not the client.
    expect(srv.peers[0]).toMatch(/^10\.0\.1\.1:/);
  });

  it('ICMP port unreachable and TTL exceeded from beyond are translated back to the client', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, MASQ);
    // c takes 40000 first, so a's flows are remapped and the translation shows.
    const c = t.c.udp.createSocket();
    c.bind(40000);
    c.send(Buffer.from('x'), 9999, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    const errs = errorsAt(t.a);
    const s = t.a.udp.createSocket();
    s.bind(40000);
    let sockErr: string | null = null;
    s.on('error', (e: Error & { code?: string }) => (sockErr = e.code ?? null));
    s.connect(9999, '198.51.100.2');
    await runFor(t.time, 50, { stepMs: 5 });
    s.send(Buffer.from('closed port'));
    await runFor(t.time, 200, { stepMs: 5, until: () => errs.length > 0 });
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ type: 3, code: 3, reporter: ip('198.51.100.2'), origSrc: ip('10.0.1.2'), origDst: ip('198.51.100.2'), origProto: 17 });
    expect((errs[0].origPayload[0] << 8) | errs[0].origPayload[1]).toBe(40000);
    expect(sockErr).toBe('ECONNREFUSED');
    // TTL 2: the router takes one, b (a router without NAT) the last, and answers to the router's address.
    t.a.icmp.sendEcho(ip('198.51.100.2'), 0x77, 1, new Uint8Array(8), { ttl: 2 });
    await runFor(t.time, 200, { stepMs: 5, until: () => errs.length > 1 });
    expect(errs).toHaveLength(2);
    expect(errs[1]).toMatchObject({ type: 11, code: 0, reporter: ip('203.0.113.2'), origSrc: ip('10.0.1.2'), origDst: ip('198.51.100.2'), origProto: 1 });
    expect((errs[1].origPayload[4] << 8) | errs[1].origPayload[5]).toBe(0x77);
    expect(t.a.mib.IpInHdrErrors + t.a.mib.IpExtInCsumErrors + t.a.mib.IcmpInCsumErrors).toBe(0);
  });

  it('OUTPUT DNAT: the router connecting to its own address reaches the server the rule names', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, 'nft add rule ip nat out ip daddr 203.0.113.1 tcp dport 9090 dnat to 10.0.1.10:80');
    const srv = tcpEchoServer(t.s, 80);
    const r = await tcpExchange(t, t.r, '203.0.113.1', 9090, 'local');
    expect(r).toEqual({ got: 'ok:local', err: null });
    expect(srv.peers[0]).toMatch(/^203\.0\.113\.1:/);
  });

  it('OUTPUT REDIRECT: the router own connection goes to its own service on 127.0.0.1', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, 'nft add rule ip nat out tcp dport 80 redirect to :3128');
    const srv = tcpEchoServer(t.r, 3128);
    const atD = sniff(t.d);
    const r = await tcpExchange(t, t.r, '198.51.100.2', 80, 'loop');
    expect(r).toEqual({ got: 'ok:loop', err: null });
    expect(srv.locals[0]).toBe('127.0.0.1:3128');
    expect(atD).toEqual([]);
  });

  it('a clash with a masqueraded flow remaps the router own flow by a null binding, without a rule for it', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, MASQ);
    const echo = udpEcho(t.d, 7);
    const a = t.a.udp.createSocket();
    a.bind(40000);
    a.send(Buffer.from('a'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    const got: string[] = [];
    const own = t.r.udp.createSocket();
    own.bind(40000, '203.0.113.1');
    own.on('message', (m: Buffer) => got.push(m.toString()));
    own.send(Buffer.from('own'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5, until: () => got.length > 0 });
    expect(got).toEqual(['own']);
    expect(echo.from[0]).toBe('203.0.113.1:40000');
    expect(echo.from[1]).toMatch(/^203\.0\.113\.1:\d+$/);
    expect(echo.from[1]).not.toBe('203.0.113.1:40000');
  });

  it('a rule added later leaves existing flows alone; new flows get it', async () => {
    const t = natNet();
    // b knows the way back for now, so the flow works without NAT.
    t.b.addRoute({ dst: ip('10.0.1.0'), prefixLen: 24, gateway: ip('203.0.113.1') });
    cmd(t.r, ...NAT);
    const echo = udpEcho(t.d, 7);
    const s = t.a.udp.createSocket();
    s.bind(40000);
    s.send(Buffer.from('1'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    cmd(t.r, MASQ);
    s.send(Buffer.from('2'), 7, '198.51.100.2');
    const s2 = t.a.udp.createSocket();
    s2.bind(40001);
    s2.send(Buffer.from('3'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    expect(echo.from).toEqual(['10.0.1.2:40000', '10.0.1.2:40000', '203.0.113.1:40001']);
  });

  it('deleting the masquerade address forgets the flows bound to it', async () => {
    const t = natNet();
    cmd(t.r, ...NAT, MASQ);
    udpEcho(t.d, 7);
    const s = t.a.udp.createSocket();
    s.bind(40000);
    s.send(Buffer.from('x'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    const masqueraded = (): number => {
      let n = 0;
      t.r.conntrack.forEach((e) => {
        if (e.rd === ip('203.0.113.1') && e.os === ip('10.0.1.2')) n++;
      });
      return n;
    };
    expect(masqueraded()).toBe(1);
    t.r.addAddress(t.r1, ip('203.0.113.9'), 24);
    t.r.delAddress(t.r1, ip('203.0.113.1'));
    expect(masqueraded()).toBe(0);
    // Taking the device down forgets what was masqueraded through it (masquerade's netdevice notifier).
    s.send(Buffer.from('y'), 7, '198.51.100.2');
    await runFor(t.time, 100, { stepMs: 5 });
    let viaR1 = 0;
    t.r.conntrack.forEach((e) => {
      if (e.masqIndex === t.r1.index) viaR1++;
    });
    expect(viaR1).toBe(1);
    t.r.setUp(t.r1, false);
    viaR1 = 0;
    t.r.conntrack.forEach((e) => {
      if (e.masqIndex === t.r1.index) viaR1++;
    });
    expect(viaR1).toBe(0);
  });

  it('iptables -t nat: MASQUERADE and a DNAT port forward work the same way', async () => {
    const t = natNet();
    cmd(
      t.r,
      'iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -o r1 -j MASQUERADE',
      'iptables -t nat -A PREROUTING -i r1 -p tcp --dport 8080 -j DNAT --to-destination 10.0.1.10:80',
    );
    const srvD = tcpEchoServer(t.d, 80);
    expect(await tcpExchange(t, t.a, '198.51.100.2', 80, 'ipt')).toEqual({ got: 'ok:ipt', err: null });
    expect(srvD.peers[0]).toMatch(/^203\.0\.113\.1:/);
    const srvS = tcpEchoServer(t.s, 80);
    expect(await tcpExchange(t, t.d, '203.0.113.1', 8080, 'fwd')).toEqual({ got: 'ok:fwd', err: null });
    expect(srvS.peers[0]).toMatch(/^198\.51\.100\.2:/);
  });
});
