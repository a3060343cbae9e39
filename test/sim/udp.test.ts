import { describe, expect, it } from 'vitest';
import { ip, simPair, type SimPair } from '../helpers/sim.js';
import { concat, ethHeader, ipHeader } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';
import { checksum, pseudoHeaderSum } from '../../src/wire/checksum.js';
import type { RemoteInfo, UdpSocket } from '../../src/udp/socket.js';
import type { SystemError } from '../../src/errors.js';

interface Got {
  msg: Buffer;
  rinfo: RemoteInfo;
}

function collect(s: UdpSocket): Got[] {
  const got: Got[] = [];
  s.on('message', (msg, rinfo) => got.push({ msg, rinfo }));
  return got;
}

function errors(s: UdpSocket): SystemError[] {
  const errs: SystemError[] = [];
  s.on('error', (e) => errs.push(e as SystemError));
  return errs;
}

/** A UDP datagram (header + data) from a's address to b's, checksum as given ('auto' computes it). */
function udpDatagram(sport: number, dport: number, data: Uint8Array, csum: number | 'auto', lengthField?: number): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  u[0] = sport >> 8;
  u[1] = sport & 0xff;
  u[2] = dport >> 8;
  u[3] = dport & 0xff;
  const len = lengthField ?? u.length;
  u[4] = len >> 8;
  u[5] = len & 0xff;
  u.set(data, 8);
  let c = csum;
  if (c === 'auto') {
    c = checksum(u, 0, u.length, pseudoHeaderSum(ip('10.0.0.1'), ip('10.0.0.2'), 17, u.length));
    if (c === 0) c = 0xffff;
  }
  u[6] = c >> 8;
  u[7] = c & 0xff;
  return concat(ipHeader('10.0.0.1', '10.0.0.2', 17, u.length), u);
}

/** Puts an IP datagram on b's wire as if a had sent it. */
function inject(p: SimPair, datagram: Uint8Array): void {
  p.ib.frame(concat(ethHeader(formatMac(p.ib.mac), formatMac(p.ia.mac), 0x0800), datagram));
  p.ib.batchEnd();
  p.time.advance(10);
}

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 8)) & 0xff;
  return b;
}

describe('UDP between two stacks', () => {
  it('sends and receives both ways, with rinfo and ephemeral ports like Node', () => {
    const p = simPair({ impair: { delayMs: 2 } });
    const server = p.b.udp.createSocket('udp4');
    const got = collect(server);
    let listening = false;
    server.bind(5000, () => (listening = true));
    expect(listening).toBe(false); // events come later, as in Node
    p.time.advance(0);
    expect(listening).toBe(true);
    expect(server.address()).toEqual({ address: '0.0.0.0', family: 'IPv4', port: 5000 });

    const client = p.a.udp.createSocket();
    const back = collect(client);
    const sent: [Error | null, number | undefined][] = [];
    client.send('hello', 5000, '10.0.0.2', (err, n) => sent.push([err, n]));
    // The first send bound the client to an ephemeral port.
    const port = client.address().port;
    expect(port).toBeGreaterThanOrEqual(32768);
    expect(port).toBeLessThanOrEqual(60999);
    p.time.advance(50);
    expect(sent).toEqual([[null, 5]]);
    expect(got).toHaveLength(1);
    expect(got[0].msg.toString()).toBe('hello');
    expect(got[0].rinfo).toEqual({ address: '10.0.0.1', family: 'IPv4', port, size: 5 });

    server.send(Buffer.from('world'), got[0].rinfo.port, got[0].rinfo.address);
    p.time.advance(50);
    expect(back.map((g) => g.msg.toString())).toEqual(['world']);
    expect(back[0].rinfo).toEqual({ address: '10.0.0.2', family: 'IPv4', port: 5000, size: 5 });

    // Arrays are gathered; offset and length pick part of a buffer.
    client.send([Buffer.from('ab'), 'cd', new Uint8Array([0x65])], 5000, '10.0.0.2');
    client.send(Buffer.from('xxPARTxx'), 2, 4, 5000, '10.0.0.2');
    client.send(new Uint8Array(0), 5000, '10.0.0.2');
    p.time.advance(50);
    expect(got.slice(1).map((g) => g.msg.toString())).toEqual(['abcde', 'PART', '']);

    expect(p.a.mib.UdpOutDatagrams).toBe(4);
    expect(p.b.mib.UdpInDatagrams).toBe(4);
    expect(p.b.mib.UdpOutDatagrams).toBe(1);
    expect(p.a.mib.UdpInDatagrams).toBe(1);
    let closed = false;
    server.close(() => (closed = true));
    expect(() => server.address()).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'getsockname' }));
    p.time.advance(0);
    expect(closed).toBe(true);
    expect(() => server.send('x', 1, '10.0.0.1')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
    expect(() => server.close()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }));
  });

  it('binds: EADDRINUSE and EADDRNOTAVAIL as errors, a second bind throws, port 0 takes the local port range', () => {
    const p = simPair();
    const s1 = p.b.udp.createSocket();
    s1.bind(6000);
    const s2 = p.b.udp.createSocket();
    const e2 = errors(s2);
    s2.bind(6000, '10.0.0.2');
    const s3 = p.b.udp.createSocket();
    const e3 = errors(s3);
    s3.bind({ port: 6001, address: '10.0.0.99' });
    p.time.advance(0);
    expect(e2).toHaveLength(1);
    expect(e2[0]).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', address: '10.0.0.2', port: 6000, errno: -98 });
    expect(e2[0].message).toBe('bind EADDRINUSE 10.0.0.2:6000');
    expect(e3[0]).toMatchObject({ code: 'EADDRNOTAVAIL', syscall: 'bind' });
    // A failed bind leaves the socket unbound, so it may try again.
    s2.bind(6002, '10.0.0.2');
    p.time.advance(0);
    expect(s2.address()).toEqual({ address: '10.0.0.2', family: 'IPv4', port: 6002 });
    expect(() => s1.bind(7000)).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_ALREADY_BOUND' }));
    expect(() => p.b.udp.createSocket().bind(70000)).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_BAD_PORT' }));

    // The range is a sysctl of two integers.
    expect(p.b.sysctl.text('net.ipv4.ip_local_port_range')).toBe('32768\t60999');
    p.b.sysctl.set('net.ipv4.ip_local_port_range', '40000 40001');
    expect(() => p.b.sysctl.set('net.ipv4.ip_local_port_range', '5 4')).toThrow(/Invalid argument/);
    expect(() => p.b.sysctl.set('net.ipv4.ip_local_port_range', '0 4')).toThrow(/Invalid argument/);
    expect(() => p.b.sysctl.set('net.ipv4.ip_local_port_range', '4')).toThrow(/Invalid argument/);
    const e1 = p.b.udp.createSocket().bind(0);
    const e2b = p.b.udp.createSocket().bind();
    const full = p.b.udp.createSocket();
    const ef = errors(full);
    full.bind(0);
    p.time.advance(0);
    expect([e1.address().port, e2b.address().port].sort()).toEqual([40000, 40001]);
    expect(ef[0]).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
    // A send that has to bind fails the same way.
    const sender = p.b.udp.createSocket();
    const es = errors(sender);
    sender.send('x', 9, '10.0.0.1');
    p.time.advance(0);
    expect(es[0]).toMatchObject({ code: 'EADDRINUSE' });
  });

  it('delivers to the most specific socket: connected, then bound to the address, then any address', () => {
    const p = simPair();
    p.b.addAddress(p.ib, ip('10.0.0.3'), 24);
    const any = p.b.udp.createSocket({ reuseAddr: true }).bind(6000);
    const bound = p.b.udp.createSocket({ reuseAddr: true }).bind(6000, '10.0.0.3');
    const conn = p.b.udp.createSocket({ reuseAddr: true }).bind(6000, '10.0.0.2');
    // Without SO_REUSEADDR the port is taken.
    const plain = p.b.udp.createSocket();
    const ep = errors(plain);
    plain.bind(6000, '10.0.0.3');
    conn.connect(7777, '10.0.0.1');
    const gAny = collect(any);
    const gBound = collect(bound);
    const gConn = collect(conn);
    p.time.advance(0);
    expect(ep[0]).toMatchObject({ code: 'EADDRINUSE' });
    expect(conn.remoteAddress()).toEqual({ address: '10.0.0.1', family: 'IPv4', port: 7777 });

    const from7777 = p.a.udp.createSocket().bind(7777);
    const from8888 = p.a.udp.createSocket().bind(8888);
    from7777.send('to .2 from 7777', 6000, '10.0.0.2');
    from8888.send('to .2 from 8888', 6000, '10.0.0.2');
    from8888.send('to .3 from 8888', 6000, '10.0.0.3');
    from7777.send('to .3 from 7777', 6000, '10.0.0.3');
    p.time.advance(100);
    expect(gConn.map((g) => g.msg.toString())).toEqual(['to .2 from 7777']);
    expect(gAny.map((g) => g.msg.toString())).toEqual(['to .2 from 8888']);
    expect(gBound.map((g) => g.msg.toString())).toEqual(['to .3 from 8888', 'to .3 from 7777']);
  });

  it('connect: sends go to the peer, only its datagrams come in, misuse throws like Node', () => {
    const p = simPair();
    const server = p.b.udp.createSocket().bind(5353);
    const got = collect(server);
    const c = p.a.udp.createSocket();
    const back = collect(c);
    let connected = 0;
    c.connect(5353, '10.0.0.2', () => connected++);
    p.time.advance(0);
    expect(connected).toBe(1);
    // connect bound the socket and took the route's source address.
    expect(c.address().address).toBe('10.0.0.1');
    const port = c.address().port;
    c.send('one');
    c.send(Buffer.from('xtwox'), 1, 3);
    p.time.advance(20);
    expect(got.map((g) => g.msg.toString())).toEqual(['one', 'two']);
    // Node's argument rules: port and address are refused on a connected socket.
    expect(() => c.send('x', 5353, '10.0.0.2', () => {})).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' }));
    expect(() => c.send('xy', 0, 1, 5353, '10.0.0.2')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' }));
    expect(() => c.connect(1, '10.0.0.2')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' }));

    // Datagrams from elsewhere don't reach a connected socket; with nothing else on
    // the port they are refused (and that error is not reported to b's unconnected socket).
    const other = p.b.udp.createSocket().bind(5454);
    const otherErr = errors(other);
    other.send('stranger', port, '10.0.0.1');
    server.send('peer', port, '10.0.0.1');
    p.time.advance(20);
    expect(back.map((g) => g.msg.toString())).toEqual(['peer']);
    expect(p.a.mib.UdpNoPorts).toBe(1);
    expect(otherErr).toEqual([]);

    c.disconnect();
    expect(() => c.disconnect()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' }));
    expect(() => c.remoteAddress()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' }));
    expect(() => c.send('x')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_BAD_PORT' }));
    c.send('after', 5353, '10.0.0.2');
    p.time.advance(20);
    expect(got.map((g) => g.msg.toString())).toEqual(['one', 'two', 'after']);

    // No route: the connect callback gets the error.
    const lost = p.a.udp.createSocket();
    const res: (Error | undefined)[] = [];
    lost.connect(53, '192.0.2.1', (e) => res.push(e));
    p.time.advance(0);
    expect(res[0]).toMatchObject({ code: 'ENETUNREACH', syscall: 'connect', address: '192.0.2.1', port: 53 });
  });

  it('send errors: EMSGSIZE above 65507, ENETUNREACH without a route, EACCES for broadcast; to the callback or as error', () => {
    const p = simPair();
    const s = p.a.udp.createSocket();
    const errs = errors(s);
    const res: (Error | null)[] = [];
    s.send(Buffer.alloc(65508), 9, '10.0.0.2', (e) => res.push(e));
    s.send(Buffer.alloc(1), 9, '192.0.2.1', (e) => res.push(e));
    s.send(Buffer.alloc(1), 9, '10.0.0.255', (e) => res.push(e));
    s.send(Buffer.alloc(1), 9, 'no.such.host', (e) => res.push(e));
    s.send(Buffer.alloc(1), 9, '192.0.2.1');
    p.time.advance(0);
    expect(res.map((e) => (e as SystemError).code)).toEqual(['EMSGSIZE', 'ENETUNREACH', 'EACCES', 'ENOTFOUND']);
    expect(res[0]!.message).toBe('send EMSGSIZE 10.0.0.2:9');
    expect(res[0]).toMatchObject({ syscall: 'send', errno: -90, address: '10.0.0.2', port: 9 });
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ code: 'ENETUNREACH', syscall: 'send' });
    expect(p.a.mib.UdpOutDatagrams).toBe(0);
    expect(p.a.mib.IpOutNoRoutes).toBe(2);
    expect(() => s.send(Buffer.alloc(4), 2, 3, 9, '10.0.0.2')).toThrow(expect.objectContaining({ code: 'ERR_BUFFER_OUT_OF_BOUNDS' }));
    expect(() => s.send(42 as unknown as string, 9, '10.0.0.2')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => s.send('x', 0, '10.0.0.2')).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_BAD_PORT' }));
  });

  it('broadcast: needs setBroadcast, reaches sockets on any address, else counts UdpIgnoredMulti', () => {
    const p = simPair();
    const server = p.b.udp.createSocket().bind(6767);
    const got = collect(server);
    const s = p.a.udp.createSocket().bind();
    p.time.advance(0);
    s.setBroadcast(true);
    s.send('hi all', 6767, '10.0.0.255');
    s.send('nobody', 6868, '10.0.0.255');
    p.time.advance(20);
    expect(got.map((g) => g.msg.toString())).toEqual(['hi all']);
    expect(p.b.mib.UdpIgnoredMulti).toBe(1);
    expect(p.b.mib.UdpNoPorts).toBe(0);
    expect(p.b.mib.IcmpOutDestUnreachs).toBe(0);
  });

  it('setDontFragment: DF on the wire, and too big for the MTU is EMSGSIZE', () => {
    const p = simPair();
    const server = p.b.udp.createSocket().bind(5000);
    const got = collect(server);
    const flags: number[] = [];
    p.b.capture = (_i, f) => {
      if (f[23] === 17) flags.push(f[20]);
    };
    const s = p.a.udp.createSocket();
    s.setDontFragment(true);
    const res: (Error | null)[] = [];
    s.send(Buffer.alloc(1472), 5000, '10.0.0.2', (e) => res.push(e));
    s.send(Buffer.alloc(1473), 5000, '10.0.0.2', (e) => res.push(e));
    p.time.advance(20);
    expect(res[0]).toBeNull();
    expect(res[1]).toMatchObject({ code: 'EMSGSIZE' });
    expect(got.map((g) => g.msg.length)).toEqual([1472]);
    expect(flags).toEqual([0x40]);
  });

  it('checksums: zero means none and is accepted; a bad one is dropped and counted; bad lengths too', () => {
    const p = simPair();
    const server = p.b.udp.createSocket().bind(5000);
    const got = collect(server);
    p.time.advance(0);
    const data = Buffer.from('no checksum here');
    inject(p, udpDatagram(1234, 5000, data, 0));
    expect(got.map((g) => g.msg.toString())).toEqual(['no checksum here']);
    inject(p, udpDatagram(1234, 5000, data, 'auto'));
    expect(got).toHaveLength(2);
    const bad = udpDatagram(1234, 5000, data, 'auto');
    bad[20 + 6] ^= 0x01;
    inject(p, bad);
    expect(got).toHaveLength(2);
    expect(p.b.mib.UdpInCsumErrors).toBe(1);
    expect(p.b.mib.UdpInErrors).toBe(1);
    // A length field below 8 or beyond the IP payload.
    inject(p, udpDatagram(1234, 5000, data, 0, 7));
    inject(p, udpDatagram(1234, 5000, data, 0, 8 + data.length + 1));
    expect(p.b.mib.UdpInErrors).toBe(3);
    // A length field shorter than the IP payload: the rest is not data.
    inject(p, udpDatagram(1234, 5000, data, 0, 8 + 2));
    expect(got[2].msg.toString()).toBe('no');
    expect(p.b.mib.UdpInDatagrams).toBe(3);
    // None of these were answered with an ICMP error.
    expect(p.b.mib.IcmpOutDestUnreachs).toBe(0);
    // A computed checksum of 0 goes out as 0xffff (RFC 768). Payload chosen so the sum is zero.
    const seen: number[] = [];
    p.b.capture = (_i, f) => {
      if (f[23] === 17) seen.push((f[40] << 8) | f[41]);
    };
    const tx = p.a.udp.createSocket().bind(1000);
    // Find a 2-byte payload whose checksum comes out 0.
    let zeroPayload: Buffer | null = null;
    for (let v = 0; v < 0x10000 && zeroPayload === null; v++) {
      const u = Buffer.from([1000 >> 8, 1000 & 0xff, 5000 >> 8, 5000 & 0xff, 0, 10, 0, 0, v >> 8, v & 0xff]);
      if (checksum(u, 0, 10, pseudoHeaderSum(ip('10.0.0.1'), ip('10.0.0.2'), 17, 10)) === 0) zeroPayload = u.subarray(8);
    }
    expect(zeroPayload).not.toBeNull();
    tx.send(zeroPayload!, 5000, '10.0.0.2');
    p.time.advance(20);
    expect(seen).toEqual([0xffff]);
    expect(got.at(-1)!.msg).toEqual(zeroPayload);
  });

  it('a closed port: ICMP port unreachable, ECONNREFUSED on the connected sender only', () => {
    const p = simPair();
    const c = p.a.udp.createSocket();
    const cErr = errors(c);
    c.connect(9999, '10.0.0.2');
    c.send('anyone?');
    const u = p.a.udp.createSocket();
    const uErr = errors(u);
    const uRes: (Error | null)[] = [];
    u.send('anyone?', 9998, '10.0.0.2', (e) => uRes.push(e));
    p.time.advance(50);
    expect(p.b.mib.UdpNoPorts).toBe(2);
    expect(p.b.mib.IcmpOutDestUnreachs).toBe(2);
    expect(p.a.mib.IcmpInDestUnreachs).toBe(2);
    expect(cErr).toHaveLength(1);
    expect(cErr[0]).toMatchObject({ code: 'ECONNREFUSED', syscall: 'recvmsg', errno: -111 });
    expect(cErr[0].message).toBe('recvmsg ECONNREFUSED');
    // The unconnected sender's send succeeded and it hears nothing more.
    expect(uRes).toEqual([null]);
    expect(uErr).toEqual([]);
    // The socket stays usable.
    const server = p.b.udp.createSocket().bind(9999);
    const got = collect(server);
    c.send('now?');
    p.time.advance(50);
    expect(got.map((g) => g.msg.toString())).toEqual(['now?']);
  });

  it('other ICMP errors from the path map to EHOSTUNREACH and friends', () => {
    const p = simPair();
    const c = p.a.udp.createSocket();
    const cErr = errors(c);
    c.connect(4000, '10.0.0.2');
    // b answers every UDP datagram with "host unreachable" (as a router would).
    p.b.ip.register(17, (pkt) => {
      p.b.icmp.sendError(pkt, 3, 1);
    });
    c.send('x');
    p.time.advance(50);
    expect(cErr.map((e) => e.code)).toEqual(['EHOSTUNREACH']);
    p.b.sysctl.set('net.ipv4.icmp_ratelimit', '0');
    p.b.ip.register(17, (pkt) => {
      p.b.icmp.sendError(pkt, 3, 13);
    });
    c.send('y');
    p.time.advance(50);
    expect(cErr.map((e) => e.code)).toEqual(['EHOSTUNREACH', 'EHOSTUNREACH']);
    // Fragmentation needed matters only to a socket that set DF.
    p.b.ip.register(17, (pkt) => {
      p.b.icmp.sendError(pkt, 3, 4, { mtu: 1000 });
    });
    c.send('z');
    p.time.advance(50);
    expect(cErr).toHaveLength(2);
    c.setDontFragment(true);
    c.send('z');
    p.time.advance(50);
    expect(cErr.map((e) => e.code)).toEqual(['EHOSTUNREACH', 'EHOSTUNREACH', 'EMSGSIZE']);
  });

  it('a full receive buffer drops datagrams and counts UdpRcvbufErrors', () => {
    const p = simPair();
    const server = p.b.udp.createSocket().bind(5000);
    server.setRecvBufferSize(4000);
    const got = collect(server);
    const s = p.a.udp.createSocket();
    for (let i = 0; i < 10; i++) s.send(Buffer.alloc(1000, i), 5000, '10.0.0.2');
    p.time.advance(20);
    // 1000 bytes plus bookkeeping each: three fit in 4000.
    expect(got.map((g) => g.msg[0])).toEqual([0, 1, 2]);
    expect(p.b.mib.UdpRcvbufErrors).toBe(7);
    expect(p.b.mib.UdpInErrors).toBe(7);
    expect(p.b.mib.UdpInDatagrams).toBe(3);
  });

  it('sends to its own address go round through loopback', () => {
    const p = simPair();
    const server = p.a.udp.createSocket().bind(5000);
    const got = collect(server);
    const s = p.a.udp.createSocket();
    s.send('self', 5000, '10.0.0.1');
    p.time.advance(1);
    expect(got.map((g) => [g.msg.toString(), g.rinfo.address])).toEqual([['self', '10.0.0.1']]);
  });

  it('carries 1, 1472, 1473, 8000 and 65507 bytes intact (fragmented and reassembled as needed)', () => {
    const p = simPair({ impair: { delayMs: 1 } });
    const server = p.b.udp.createSocket().bind(5000);
    const got = collect(server);
    const s = p.a.udp.createSocket();
    const back = collect(s);
    server.on('message', (m, r) => server.send(m, r.port, r.address));
    const sizes = [1, 1472, 1473, 8000, 65507];
    for (const [i, n] of sizes.entries()) s.send(pattern(n, i), 5000, '10.0.0.2');
    p.time.advance(500);
    expect(got.map((g) => g.msg.length)).toEqual(sizes);
    expect(back.map((g) => g.msg.length)).toEqual(sizes);
    for (const [i, n] of sizes.entries()) {
      expect(got[i].msg.equals(pattern(n, i))).toBe(true);
      expect(back[i].msg.equals(pattern(n, i))).toBe(true);
    }
    expect(p.a.mib.IpFragCreates).toBeGreaterThan(40);
    expect(p.b.mib.IpReasmOKs).toBe(3);
  });
});

describe('built-in UDP services', () => {
  it('echo (RFC 862) answers from the address asked; discard (RFC 863) answers nothing', () => {
    const p = simPair();
    p.b.addAddress(p.ib, ip('10.0.0.3'), 24);
    p.b.services.add({ name: 'echo', proto: 'udp', addr: 0, port: 7 });
    p.b.services.add({ name: 'discard', proto: 'udp', addr: 0, port: 9 });
    const s = p.a.udp.createSocket();
    const back = collect(s);
    s.send('ping', 7, '10.0.0.2');
    s.send('ping .3', 7, '10.0.0.3');
    s.send('into the void', 9, '10.0.0.2');
    p.time.advance(50);
    // (The two answers may come in either order: each waits for its own ARP exchange.)
    expect(back.map((g) => [g.msg.toString(), g.rinfo.address, g.rinfo.port]).sort()).toEqual([
      ['ping .3', '10.0.0.3', 7],
      ['ping', '10.0.0.2', 7],
    ]);
    expect(p.b.mib.UdpInDatagrams).toBe(3);
    expect(p.b.mib.UdpOutDatagrams).toBe(2);
    expect(p.b.services.list()).toEqual([
      { name: 'echo', proto: 'udp', addr: 0, port: 7 },
      { name: 'discard', proto: 'udp', addr: 0, port: 9 },
    ]);
    // The port is taken while the service runs.
    expect(() => p.b.services.add({ name: 'discard', proto: 'udp', addr: ip('10.0.0.2'), port: 7 })).toThrow(
      'service discard udp 10.0.0.2:7: Address already in use',
    );
    expect(() => p.b.services.add({ name: 'echo', proto: 'udp', addr: ip('10.9.9.9'), port: 77 })).toThrow(/Cannot assign requested address/);
    p.b.services.del({ name: 'echo', proto: 'udp', addr: 0, port: 7 });
    expect(() => p.b.services.del({ name: 'echo', proto: 'udp', addr: 0, port: 7 })).toThrow(/No such service/);
    s.send('gone?', 7, '10.0.0.2');
    p.time.advance(50);
    expect(back).toHaveLength(2);
    expect(p.b.mib.UdpNoPorts).toBe(1);
  });

  it('echo does not answer the ports of other answering services, nor broadcasts', () => {
    const p = simPair();
    p.b.services.add({ name: 'echo', proto: 'udp', addr: 0, port: 7 });
    for (const port of [7, 19]) {
      const s = p.a.udp.createSocket({ reuseAddr: true }).bind(port);
      const back = collect(s);
      s.send('loop?', 7, '10.0.0.2');
      p.time.advance(50);
      expect(back).toEqual([]);
      s.close();
    }
    const b = p.a.udp.createSocket().bind(4444);
    const back = collect(b);
    p.time.advance(0);
    b.setBroadcast(true);
    b.send('all?', 7, '10.0.0.255');
    p.time.advance(50);
    expect(back).toEqual([]);
    expect(p.b.mib.UdpInDatagrams).toBe(3);
    expect(p.b.mib.UdpOutDatagrams).toBe(0);
  });
});
