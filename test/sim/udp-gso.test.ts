import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import type { Interface } from '../../src/link/interface.js';
import type { IcmpErrorInfo } from '../../src/ip/icmp.js';
import { fold, pseudoHeaderSum } from '../../src/wire/checksum.js';
import { fillIpv4Checksum } from '../../src/wire/ipv4.js';
import { setU32 } from '../../src/wire/bytes.js';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4, writeVnetHdr } from '../../src/wire/vnet.js';
import { ip, simPair } from '../helpers/sim.js';
import { cmd } from '../helpers/nat-sim.js';

/**
 * UDP super-packets (a kernel socket's UDP_SEGMENT send, handed over by a TAP
 * with TUN_F_USO4 as gso_type UDP_L4) reaching the stack: delivered to a local
 * socket as gso_size datagrams, forwarded whole or cut, NATed, fragmented.
 */

interface UsoOpts {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
  mss: number;
  id?: number;
  df?: boolean;
}

/** The frame a TAP hands over for one UDP_SEGMENT write: virtio_net_hdr (10 bytes), Ethernet, IP, UDP with a partial checksum (udp4_hwcsum). */
function usoFrame(dstMac: Uint8Array, o: UsoOpts): Uint8Array {
  const ulen = 8 + o.payload.length;
  const f = new Uint8Array(10 + 14 + 20 + ulen);
  writeVnetHdr(f, 0, 10, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP_L4, 14 + 20 + 8, o.mss, 14 + 20, 6);
  const e = 10;
  f.set(dstMac, e);
  f.set([0x02, 0, 0, 0, 0, 0x99], e + 6);
  f[e + 12] = 0x08;
  const i = e + 14;
  f[i] = 0x45;
  f[i + 2] = (20 + ulen) >> 8;
  f[i + 3] = (20 + ulen) & 0xff;
  f[i + 4] = ((o.id ?? 0x1000) >> 8) & 0xff;
  f[i + 5] = (o.id ?? 0x1000) & 0xff;
  f[i + 6] = o.df === false ? 0 : 0x40;
  f[i + 8] = 64;
  f[i + 9] = 17;
  setU32(f, i + 12, ip(o.src));
  setU32(f, i + 16, ip(o.dst));
  fillIpv4Checksum(f, i, 20);
  const u = i + 20;
  f[u] = o.sport >> 8;
  f[u + 1] = o.sport & 0xff;
  f[u + 2] = o.dport >> 8;
  f[u + 3] = o.dport & 0xff;
  f[u + 4] = ulen >> 8;
  f[u + 5] = ulen & 0xff;
  const p = fold(pseudoHeaderSum(ip(o.src), ip(o.dst), 17, ulen));
  f[u + 6] = p >> 8;
  f[u + 7] = p & 0xff;
  f.set(o.payload, u + 8);
  return f;
}

function payload(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return b;
}

function inject(iface: Interface, frame: Uint8Array): void {
  iface.frame(frame, 10);
  iface.batchEnd();
}

/** The pieces `data` is cut into: gso_size each, the rest last. */
function pieces(data: Uint8Array, mss: number): string[] {
  const out: string[] = [];
  for (let o = 0; o < data.length; o += mss) out.push(Buffer.from(data.subarray(o, o + mss)).toString('hex'));
  return out;
}

describe('UDP super-packets to a local socket (udp_rcv_segment)', () => {
  function receiver(opts: { rx?: boolean } = {}) {
    const p = simPair({ offload: true, seed: 21 });
    if (opts.rx === false) p.ib.setOffload('rx', false);
    const got: Buffer[] = [];
    const s = p.b.udp.createSocket('udp4', (m) => got.push(m));
    s.bind(9000);
    p.time.advance(1);
    return { p, got };
  }

  it('one 64 KB write of 1400-byte segments is 47 datagrams of gso_size, the last short, each counted', () => {
    const { p, got } = receiver();
    const data = payload(65000, 1);
    const before = { ...p.b.mib };
    inject(p.ib, usoFrame(p.ib.mac, { src: '10.0.0.1', dst: '10.0.0.2', sport: 4444, dport: 9000, payload: data, mss: 1400 }));
    p.time.advance(10);
    expect(got.map((m) => m.length)).toEqual([...Array(46).fill(1400), 65000 - 46 * 1400]);
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1400));
    expect(p.b.mib.UdpInDatagrams - before.UdpInDatagrams).toBe(47);
    expect(p.b.mib.UdpInErrors + p.b.mib.UdpInCsumErrors).toBe(0);
    // The IP layer took one datagram; ECN counts count its segments (ip_rcv_core).
    expect(p.b.mib.IpInReceives - before.IpInReceives).toBe(1);
    expect(p.b.mib.IpExtInNoECTPkts - before.IpExtInNoECTPkts).toBe(47);
    expect([p.ib.offload.rxGsoPackets, p.ib.offload.rxGsoSegments]).toEqual([1, 47]);
  });

  it('with rx checksumming off the partial sum is finished on arrival, checked whole, then cut', () => {
    const { p, got } = receiver({ rx: false });
    const data = payload(9000, 2);
    inject(p.ib, usoFrame(p.ib.mac, { src: '10.0.0.1', dst: '10.0.0.2', sport: 4444, dport: 9000, payload: data, mss: 1000 }));
    p.time.advance(10);
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1000));
    expect(p.ib.offload.rxSwCsum).toBe(1);
    expect(p.b.mib.UdpInDatagrams).toBe(9);
    expect(p.b.mib.UdpInCsumErrors).toBe(0);
  });

  it('a super-packet no longer than one segment is refused (__udp_gso_segment), its segments counted as errors', () => {
    const { p, got } = receiver();
    inject(p.ib, usoFrame(p.ib.mac, { src: '10.0.0.1', dst: '10.0.0.2', sport: 4444, dport: 9000, payload: payload(1000, 3), mss: 1000 }));
    p.time.advance(10);
    expect(got).toHaveLength(0);
    expect(p.b.mib.UdpInErrors).toBe(1);
    expect(p.b.mib.UdpInDatagrams).toBe(0);
  });

  it('a full receive buffer drops the segments that do not fit, each counted', () => {
    const p = simPair({ offload: true, seed: 22 });
    const got: Buffer[] = [];
    const s = p.b.udp.createSocket({ type: 'udp4', recvBufferSize: 10 * (1000 + 64) }, (m) => got.push(m));
    s.bind(9000);
    p.time.advance(1);
    inject(p.ib, usoFrame(p.ib.mac, { src: '10.0.0.1', dst: '10.0.0.2', sport: 4444, dport: 9000, payload: payload(20000, 4), mss: 1000 }));
    p.time.advance(10);
    expect(got.length).toBe(10);
    expect(p.b.mib.UdpInDatagrams).toBe(10);
    expect(p.b.mib.UdpRcvbufErrors).toBe(10);
  });
});

interface Routed {
  time: VirtualTime;
  a: Stack;
  r: Stack;
  b: Stack;
  r0: Interface;
  r1: Interface;
  ib: Interface;
}

/**
 * a (10.0.1.2) -- r0 (10.0.1.1) router r1 (10.0.2.1) -- b (10.0.2.2). a's link is a
 * virtio-net one (super-packets come in on r0); b's is one too when `outOffload`,
 * else a plain wire; its MTU is `mtu1`.
 */
function routed(opts: { outOffload: boolean; mtu1?: number }): Routed {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'], offload: true });
  const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'], mtu: opts.mtu1, offload: opts.outOffload });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const b = new Stack({ time, seed: 13 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const r1 = r.addInterface('r1', dr1, { mtu: opts.mtu1 });
  const ib = b.addInterface('b0', db, { mtu: opts.mtu1 });
  for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(r1, ip('10.0.2.1'), 24);
  b.addAddress(ib, ip('10.0.2.2'), 24);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  b.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  time.advance(1000);
  return { time, a, r, b, r0, r1, ib };
}

function listen(t: Routed, port: number): { got: Buffer[]; from: string[] } {
  const got: Buffer[] = [];
  const from: string[] = [];
  const s = t.b.udp.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 }, (m, rinfo) => {
    got.push(m);
    from.push(`${rinfo.address}:${rinfo.port}`);
  });
  s.bind(port);
  t.time.advance(1);
  return { got, from };
}

/** r learns b's MAC first (an ARP round), so the super-packet leaves at once. */
function warm(t: Routed): void {
  t.r.udp.createSocket('udp4').send(Buffer.from('x'), 9, '10.0.2.2');
  t.time.advance(100);
}

describe('forwarding UDP super-packets', () => {
  const data = payload(30000, 7);
  const send = (t: Routed, o: Partial<UsoOpts> = {}) =>
    inject(t.r0, usoFrame(t.r0.mac, { src: '10.0.1.2', dst: '10.0.2.2', sport: 5555, dport: 9001, payload: data, mss: 1200, ...o }));

  it('go out whole to a device with USO, and the far stack cuts them for its socket', () => {
    const t = routed({ outOffload: true });
    const { got } = listen(t, 9001);
    warm(t);
    send(t);
    t.time.advance(10);
    expect([t.r1.offload.txGsoPackets, t.r1.offload.txGsoSegments, t.r1.offload.txSwGsoPackets]).toEqual([1, 25, 0]);
    expect(t.ib.offload.rxGsoPackets).toBe(1);
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1200));
    expect(t.r.mib.IpForwDatagrams).toBe(1);
  });

  it('are cut in software before a device with USO off (each its own datagram, IDs counting up)', () => {
    const t = routed({ outOffload: true });
    t.r1.setOffload('uso', false);
    const { got } = listen(t, 9001);
    warm(t);
    const ids: number[] = [];
    t.b.capture = (_i, f) => {
      if (f[14 + 9] === 17 && f.length > 200) ids.push((f[14 + 4] << 8) | f[14 + 5]);
    };
    send(t, { id: 0xfff0 });
    t.time.advance(10);
    expect([t.r1.offload.txGsoPackets, t.r1.offload.txSwGsoPackets, t.r1.offload.txSwGsoSegments]).toEqual([0, 1, 25]);
    expect(t.ib.offload.rxGsoPackets).toBe(0);
    expect(ids).toEqual(Array.from({ length: 25 }, (_, k) => (0xfff0 + k) & 0xffff));
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1200));
  });

  it('are cut with complete checksums before a plain device, which the far stack verifies', () => {
    const t = routed({ outOffload: false });
    const { got } = listen(t, 9001);
    warm(t);
    send(t);
    t.time.advance(10);
    expect(t.r1.offload.txSwGsoSegments).toBe(25);
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1200));
    expect(t.b.mib.UdpInDatagrams).toBe(25);
    expect(t.b.mib.UdpInCsumErrors).toBe(0);
  });

  for (const outOffload of [true, false]) {
    it(`through masquerade, ${outOffload ? 'whole with the NATed partial sum (checked at b with rx off)' : 'cut and finished'}: every datagram from the router's address, every checksum right`, () => {
      const t = routed({ outOffload });
      // rx off at b: b finishes the partial sum it is given and checks the super-packet whole.
      if (outOffload) t.ib.setOffload('rx', false);
      t.r.sysctl.set('net.netfilter.nf_conntrack_acct', '1');
      cmd(t.r, 'nft add table ip n', 'nft add chain ip n post { type nat hook postrouting priority srcnat ; }', 'nft add rule ip n post oifname r1 masquerade');
      const { got, from } = listen(t, 9001);
      warm(t);
      send(t);
      t.time.advance(10);
      expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1200));
      expect(new Set(from).size).toBe(1);
      expect(from[0]).toMatch(/^10\.0\.2\.1:\d+$/);
      expect(t.b.mib.UdpInCsumErrors).toBe(0);
      expect(t.b.mib.UdpInDatagrams).toBe(25);
      if (outOffload) expect([t.r1.offload.txGsoPackets, t.ib.offload.rxSwCsum]).toEqual([1, 1]);
      // Conntrack saw the super-packet once, as Linux's does (nf_ct_acct_update: one skb, its length).
      const e = t.r.conntrack.find(17, ip('10.0.1.2'), ip('10.0.2.2'), 5555, 9001);
      expect(e).not.toBeNull();
      expect([e!.pkts0, e!.bytes0]).toEqual([1, 20 + 8 + data.length]);
    });
  }

  it('with DF and segments too big for the out MTU: fragmentation needed with that MTU, once', () => {
    const t = routed({ outOffload: true, mtu1: 1000 });
    const { got } = listen(t, 9001);
    const errs: IcmpErrorInfo[] = [];
    t.a.icmp.onError((e) => errs.push(e));
    warm(t);
    send(t);
    t.time.advance(10);
    expect(got).toHaveLength(0);
    expect(errs.map((e) => [e.type, e.code, e.mtu])).toEqual([[3, 4, 1000]]);
    expect(t.r.mib.IpFragFails).toBe(1);
  });

  it('without DF and segments too big for the out MTU: each segment is fragmented on its own (ip_finish_output_gso)', () => {
    const t = routed({ outOffload: true, mtu1: 1000 });
    const { got } = listen(t, 9001);
    warm(t);
    send(t, { df: false });
    t.time.advance(10);
    // 25 datagrams of 1200 bytes, each in two fragments, reassembled one by one at b.
    expect(got.map((m) => m.toString('hex'))).toEqual(pieces(data, 1200));
    expect(t.r.mib.IpFragCreates).toBe(50);
    expect(t.r.mib.IpFragOKs).toBe(25);
    expect(t.b.mib.IpReasmOKs).toBe(25);
    expect(t.b.mib.UdpInCsumErrors).toBe(0);
  });
});
