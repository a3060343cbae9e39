import { describe, expect, it } from 'vitest';
import { Packet } from '../../src/packet/packet.js';
import { Hooks, VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import type { Interface } from '../../src/link/interface.js';
import { checksum, pseudoHeaderSum } from '../../src/wire/checksum.js';
import { Random } from '../../src/random.js';
import {
  CtEntry,
  CtTcp,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_TIME_WAIT,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_RELATED_REPLY,
  IPS_DST_NAT,
  IPS_DST_NAT_DONE,
  IPS_SRC_NAT,
  IPS_SRC_NAT_DONE,
} from '../../src/conntrack/entry.js';
import { MANIP_DST, MANIP_SRC, manipIcmpError, manipIpv4 } from '../../src/conntrack/nat-mangle.js';
import { crc32c, sctpChecksumWord } from '../../src/wire/crc32c.js';
import { Nat, jhash1, reciprocalScale } from '../../src/conntrack/nat.js';
import {
  NAT_DNAT,
  NAT_MASQUERADE,
  NAT_RANGE_MAP_IPS,
  NAT_RANGE_PERSISTENT,
  NAT_RANGE_PROTO_RANDOM,
  NAT_RANGE_PROTO_RANDOM_FULLY,
  NAT_RANGE_PROTO_SPECIFIED,
  NAT_REDIRECT,
  NAT_SNAT,
  type NatRange,
} from '../../src/netfilter/compile.js';
import { FakeConntrack } from '../helpers/fake-ct.js';
import { ip } from '../helpers/sim.js';

// ---- datagram builders (checksums by full computation)

function ipv4(src: number, dst: number, proto: number, l4: Uint8Array, opts: { ttl?: number; options?: number } = {}): Uint8Array {
  const hl = 20 + (opts.options ?? 0);
  const b = new Uint8Array(hl + l4.length);
  b[0] = 0x40 | (hl >> 2);
  b[2] = b.length >> 8;
  b[3] = b.length & 0xff;
  b[4] = 0x12;
  b[5] = 0x34;
  b[8] = opts.ttl ?? 64;
  b[9] = proto;
  for (let i = 20; i < hl; i++) b[i] = 1; // NOPs
  new DataView(b.buffer).setUint32(12, src);
  new DataView(b.buffer).setUint32(16, dst);
  const c = checksum(b, 0, hl);
  b[10] = c >> 8;
  b[11] = c & 0xff;
  b.set(l4, hl);
  return b;
}

function payload(n: number, seed: number): Uint8Array {
  const r = new Random(seed);
  const p = new Uint8Array(n);
  for (let i = 0; i < n; i++) p[i] = Math.floor(r.next() * 256);
  return p;
}

function transportChecksum(src: number, dst: number, proto: number, seg: Uint8Array): number {
  return checksum(seg, 0, seg.length, pseudoHeaderSum(src, dst, proto, seg.length));
}

function tcp(src: number, dst: number, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const s = new Uint8Array(20 + data.length);
  const v = new DataView(s.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint32(4, 0x01020304);
  v.setUint32(8, 0x0a0b0c0d);
  s[12] = 5 << 4;
  s[13] = 0x18;
  v.setUint16(14, 64240);
  s.set(data, 20);
  v.setUint16(16, transportChecksum(src, dst, 6, s));
  return ipv4(src, dst, 6, s);
}

function udp(src: number, dst: number, sport: number, dport: number, data: Uint8Array, noChecksum = false): Uint8Array {
  const s = new Uint8Array(8 + data.length);
  const v = new DataView(s.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, s.length);
  s.set(data, 8);
  if (!noChecksum) {
    const c = transportChecksum(src, dst, 17, s);
    v.setUint16(6, c === 0 ? 0xffff : c);
  }
  return ipv4(src, dst, 17, s);
}

function icmp(src: number, dst: number, type: number, code: number, rest: number, data: Uint8Array): Uint8Array {
  const s = new Uint8Array(8 + data.length);
  const v = new DataView(s.buffer);
  s[0] = type;
  s[1] = code;
  v.setUint32(4, rest);
  s.set(data, 8);
  v.setUint16(2, checksum(s, 0, s.length));
  return ipv4(src, dst, 1, s);
}

function echo(src: number, dst: number, id: number, seq: number, type = 8): Uint8Array {
  return icmp(src, dst, type, 0, (id << 16) | seq, payload(24, id));
}

const u16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number): number => new DataView(b.buffer, b.byteOffset).getUint32(o);

/** The IP header checksum is right (sums to 0xffff). */
function ipOk(b: Uint8Array, o = 0): boolean {
  return checksum(b, o, (b[o] & 15) << 2) === 0;
}

/** The TCP/UDP checksum of the whole datagram at `o` is right. */
function l4Ok(b: Uint8Array, o = 0): boolean {
  const hl = (b[o] & 15) << 2;
  const len = u16(b, o + 2) - hl;
  return checksum(b, o + hl, len, pseudoHeaderSum(u32(b, o + 12), u32(b, o + 16), b[o + 9], len)) === 0;
}

/** The checksum field as a full computation would fill it (UDP: 0 sent as 0xffff). */
function recomputed(b: Uint8Array, field: number, compute: () => number, udpRule = false): number {
  const saved = u16(b, field);
  b[field] = 0;
  b[field + 1] = 0;
  let c = compute();
  if (udpRule && c === 0) c = 0xffff;
  b[field] = saved >> 8;
  b[field + 1] = saved & 0xff;
  return c;
}

function tcpFull(b: Uint8Array): number {
  const hl = (b[0] & 15) << 2;
  const len = b.length - hl;
  return recomputed(b, hl + 16, () => checksum(b, hl, len, pseudoHeaderSum(u32(b, 12), u32(b, 16), 6, len)));
}

function udpFull(b: Uint8Array): number {
  const hl = (b[0] & 15) << 2;
  const len = b.length - hl;
  return recomputed(b, hl + 6, () => checksum(b, hl, len, pseudoHeaderSum(u32(b, 12), u32(b, 16), 17, len)), true);
}

function ipFull(b: Uint8Array, o = 0): number {
  return recomputed(b, o + 10, () => checksum(b, o, (b[o] & 15) << 2));
}

describe('NAT rewriting: RFC 1624 updates equal a full recomputation', () => {
  const r = new Random(99);
  const rnd32 = (): number => Math.floor(r.next() * 2 ** 32) >>> 0;
  const rnd16 = (): number => Math.floor(r.next() * 65536);

  it('TCP: source and destination, address and port, odd payloads and IP options', () => {
    for (let i = 0; i < 400; i++) {
      const src = rnd32();
      const dst = rnd32();
      const b = tcp(src, dst, rnd16(), rnd16(), payload(i % 37, i));
      const withOpts = i % 5 === 0;
      const d = withOpts ? ipv4(src, dst, 6, b.subarray(20), { options: 8 }) : b;
      const mtype = i % 2 === 0 ? MANIP_SRC : MANIP_DST;
      const na = i % 7 === 0 ? (mtype === MANIP_SRC ? src : dst) : rnd32();
      const np = i % 11 === 0 ? u16(d, (d[0] & 15) * 4 + (mtype === MANIP_SRC ? 0 : 2)) : rnd16();
      expect(manipIpv4(d, 0, d.length, mtype, na, np)).toBe(true);
      const hl = (d[0] & 15) << 2;
      expect(u32(d, mtype === MANIP_SRC ? 12 : 16)).toBe(na);
      expect(u16(d, hl + (mtype === MANIP_SRC ? 0 : 2))).toBe(np);
      expect(u16(d, 10)).toBe(ipFull(d));
      expect(u16(d, hl + 16)).toBe(tcpFull(d));
      expect(ipOk(d) && l4Ok(d)).toBe(true);
    }
  });

  it('UDP: checksums patched, and one that comes out 0 is sent as 0xffff', () => {
    for (let i = 0; i < 400; i++) {
      const src = rnd32();
      const dst = rnd32();
      const d = udp(src, dst, rnd16(), rnd16(), payload(i % 29, i + 7));
      const mtype = i % 2 === 0 ? MANIP_SRC : MANIP_DST;
      expect(manipIpv4(d, 0, d.length, mtype, rnd32(), rnd16())).toBe(true);
      expect(u16(d, 10)).toBe(ipFull(d));
      expect(u16(d, 26)).toBe(udpFull(d));
      expect(ipOk(d) && l4Ok(d)).toBe(true);
    }
    // Find the source port whose full checksum is 0 and check the rewrite gives 0xffff.
    const src = ip('10.0.1.2');
    const dst = ip('192.0.2.7');
    const base = udp(src, dst, 5000, 53, payload(10, 1));
    let found = -1;
    for (let p = 0; p < 65536 && found < 0; p++) {
      const t = udp(ip('203.0.113.1'), dst, p, 53, payload(10, 1));
      const c = transportChecksum(ip('203.0.113.1'), dst, 17, t.subarray(20).map((x, k) => (k === 6 || k === 7 ? 0 : x)));
      if (c === 0) found = p;
    }
    expect(found).toBeGreaterThanOrEqual(0);
    expect(manipIpv4(base, 0, base.length, MANIP_SRC, ip('203.0.113.1'), found)).toBe(true);
    expect(u16(base, 26)).toBe(0xffff);
    expect(l4Ok(base)).toBe(true);
  });

  it('UDP-Lite: the checksum (always present, RFC 3828) patched like UDP', () => {
    for (let i = 0; i < 200; i++) {
      const src = rnd32();
      const dst = rnd32();
      const seg = new Uint8Array(8 + (i % 23));
      seg.set(payload(i % 23, i + 3), 8);
      const v = new DataView(seg.buffer);
      v.setUint16(0, rnd16());
      v.setUint16(2, rnd16());
      v.setUint16(4, 0); // checksum coverage 0: the whole datagram
      const c = checksum(seg, 0, seg.length, pseudoHeaderSum(src, dst, 136, seg.length));
      v.setUint16(6, c === 0 ? 0xffff : c);
      const d = ipv4(src, dst, 136, seg);
      const port = rnd16();
      expect(manipIpv4(d, 0, d.length, i % 2 === 0 ? MANIP_SRC : MANIP_DST, rnd32(), port)).toBe(true);
      expect(u16(d, i % 2 === 0 ? 20 : 22)).toBe(port);
      expect(ipOk(d) && l4Ok(d)).toBe(true);
    }
  });

  it('SCTP: ports rewritten and the CRC32c computed anew; a quote of 8 bytes keeps its CRC', () => {
    const sctpCrcOk = (b: Uint8Array, t: number): boolean => u32(b, t + 8) === sctpChecksumWord(crc32c(b, t, b.length - t, t + 8));
    for (let i = 0; i < 50; i++) {
      const seg = new Uint8Array(12 + 16 + (i % 9));
      seg.set(payload(seg.length - 12, i), 12);
      const v = new DataView(seg.buffer);
      v.setUint16(0, rnd16());
      v.setUint16(2, rnd16());
      v.setUint32(4, rnd32());
      v.setUint32(8, sctpChecksumWord(crc32c(seg, 0, seg.length, 8)));
      const d = ipv4(rnd32(), rnd32(), 132, seg);
      expect(sctpCrcOk(d, 20)).toBe(true);
      const port = rnd16();
      expect(manipIpv4(d, 0, d.length, i % 2 === 0 ? MANIP_SRC : MANIP_DST, rnd32(), port)).toBe(true);
      expect(u16(d, i % 2 === 0 ? 20 : 22)).toBe(port);
      expect(ipOk(d) && sctpCrcOk(d, 20)).toBe(true);
    }
    const full = ipv4(ip('203.0.113.1'), ip('192.0.2.7'), 132, new Uint8Array(28));
    const quote = full.subarray(0, 28).slice();
    expect(manipIpv4(quote, 0, 28, MANIP_SRC, ip('10.0.1.2'), 40000)).toBe(true);
    expect(u16(quote, 20)).toBe(40000);
    expect(ipOk(quote)).toBe(true);
  });

  it('UDP without a checksum (0) keeps 0', () => {
    const d = udp(ip('10.0.1.2'), ip('192.0.2.7'), 5000, 53, payload(12, 3), true);
    expect(manipIpv4(d, 0, d.length, MANIP_SRC, ip('203.0.113.1'), 61000)).toBe(true);
    expect(u16(d, 26)).toBe(0);
    expect(u16(d, 20)).toBe(61000);
    expect(ipOk(d)).toBe(true);
  });

  it('ICMP echo: the id and the ICMP checksum; addresses do not touch the ICMP checksum', () => {
    for (let i = 0; i < 200; i++) {
      const d = echo(rnd32(), rnd32(), rnd16(), i, i % 2 === 0 ? 8 : 0);
      const nid = rnd16();
      expect(manipIpv4(d, 0, d.length, i % 3 === 0 ? MANIP_DST : MANIP_SRC, rnd32(), nid)).toBe(true);
      expect(u16(d, 24)).toBe(nid);
      expect(u16(d, 22)).toBe(recomputed(d, 22, () => checksum(d, 20, d.length - 20)));
      expect(ipOk(d)).toBe(true);
    }
  });

  it('ICMP errors: bytes 4-7 are not an id and stay as they are', () => {
    const d = icmp(ip('192.0.2.1'), ip('203.0.113.1'), 3, 4, 1400, udp(ip('203.0.113.1'), ip('192.0.2.7'), 61000, 53, payload(4, 2)));
    expect(manipIpv4(d, 0, d.length, MANIP_DST, ip('10.0.1.2'), 1234)).toBe(true);
    expect(u32(d, 24)).toBe(1400);
    expect(checksum(d, 20, d.length - 20)).toBe(0);
  });

  it('a transport header cut short is refused', () => {
    const d = tcp(ip('10.0.1.2'), ip('192.0.2.7'), 1, 2, new Uint8Array(0));
    expect(manipIpv4(d, 0, 26, MANIP_SRC, ip('203.0.113.1'), 3)).toBe(false);
    const u = udp(ip('10.0.1.2'), ip('192.0.2.7'), 1, 2, new Uint8Array(0));
    expect(manipIpv4(u, 0, 27, MANIP_SRC, ip('203.0.113.1'), 3)).toBe(false);
  });

  for (const [name, quote] of [
    ['TCP', () => tcp(ip('203.0.113.1'), ip('192.0.2.7'), 61000, 80, payload(9, 4))],
    ['UDP', () => udp(ip('203.0.113.1'), ip('192.0.2.7'), 61000, 53, payload(9, 5))],
  ] as const) {
    it(`ICMP error quoting ${name}: inner header, ports and checksums, outer header`, () => {
      const inner = quote();
      const d = icmp(ip('192.0.2.7'), ip('203.0.113.1'), 3, 3, 0, inner);
      // The quote goes back to the client's tuple; the outer destination to the client.
      expect(manipIcmpError(d, 0, d.length, MANIP_SRC, ip('10.0.1.2'), 40000, MANIP_DST, ip('10.0.1.2'))).toBe(true);
      expect(u32(d, 16)).toBe(ip('10.0.1.2'));
      expect(u32(d, 28 + 12)).toBe(ip('10.0.1.2'));
      expect(u16(d, 48)).toBe(40000);
      expect(ipOk(d)).toBe(true);
      expect(ipOk(d, 28)).toBe(true);
      // The whole datagram is quoted, so its own checksum can be checked too.
      expect(l4Ok(d, 28)).toBe(true);
      expect(checksum(d, 20, d.length - 20)).toBe(0);
    });
  }

  it('a quote of only 8 transport bytes: TCP ports change, its checksum is out of reach', () => {
    const full = tcp(ip('203.0.113.1'), ip('192.0.2.7'), 61000, 80, new Uint8Array(0));
    const d = icmp(ip('192.0.2.7'), ip('203.0.113.1'), 11, 0, 0, full.subarray(0, 28));
    expect(manipIcmpError(d, 0, d.length, MANIP_SRC, ip('10.0.1.2'), 40000, MANIP_DST, ip('10.0.1.2'))).toBe(true);
    expect(u16(d, 48)).toBe(40000);
    expect(ipOk(d) && ipOk(d, 28)).toBe(true);
    expect(checksum(d, 20, d.length - 20)).toBe(0);
  });
});

describe('jhash2 and reciprocal_scale', () => {
  it('match lookup3 in 32-bit unsigned arithmetic', () => {
    // Known answers of jhash2(k, 1, initval) and ((u64)j * n) >> 32 computed in C with uint32_t/uint64_t.
    expect(jhash1(0x0201000a, 0x070200c0)).toBe(1568714041);
    expect(jhash1(0, 0)).toBe(76781240);
    expect(jhash1(0xffffffff, 0x12345678)).toBe(657901061);
    expect(reciprocalScale(0xffffffff, 10)).toBe(9);
    expect(reciprocalScale(0x9e3779b9, 7)).toBe(4);
    expect(reciprocalScale(0xffffffff, 0xffffffff)).toBe(0xfffffffe);
  });
});

// ---- Nat against the fake tracker

interface Rig {
  hooks: Hooks;
  ct: FakeConntrack;
  nat: Nat;
  rng: Random;
  out: Interface;
  inIf: Interface;
  masqAddr: number;
}

function iface(index: number, name: string): Interface {
  return { index, name } as unknown as Interface;
}

function rig(seed = 5): Rig {
  const hooks = new Hooks();
  const ct = new FakeConntrack();
  const rng = new Random(seed);
  const r: Rig = { hooks, ct, rng, nat: null as unknown as Nat, out: iface(2, 'wan0'), inIf: iface(1, 'lan0'), masqAddr: ip('203.0.113.1') };
  r.nat = new Nat({
    ct,
    hooks,
    now: () => 0,
    random: () => rng.next(),
    masqueradeAddress: () => r.masqAddr,
    redirectAddress: (i) => (i === null ? ip('127.0.0.1') : ip('10.0.1.1')),
  });
  return r;
}

function range(flags: number, minAddr = 0, maxAddr = minAddr, minPort = 0, maxPort = minPort): NatRange {
  return { flags, minAddr, maxAddr, minPort, maxPort };
}

/** A packet of datagram `d`, with `e` and `info` as conntrack would leave them. */
function pkt(d: Uint8Array, e: CtEntry, info: number): Packet {
  const p = Packet.copyOf(d);
  p.l3 = p.start;
  p.ct = e;
  p.ctInfo = info;
  return p;
}

/** The first packet of a new flow through PREROUTING, POSTROUTING and confirmation (a forwarded packet). */
function forward(r: Rig, d: Uint8Array, t: [number, number, number, number, number]): { p: Packet; e: CtEntry; ok: boolean } {
  const e = r.ct.make(...t);
  const p = pkt(d, e, IP_CT_NEW);
  let v = r.hooks.prerouting.run(p, r.inIf, null);
  if (v === VERDICT_ACCEPT) v = r.hooks.postrouting.run(p, null, r.out);
  const ok = v === VERDICT_ACCEPT && r.ct.confirm(e);
  return { p, e, ok };
}

function masquerade(r: Rig, flags = 0, minPort = 0, maxPort = minPort): void {
  r.nat.registerChain('postrouting', 100, (p, i, o) => (r.nat.setup(p, NAT_MASQUERADE, range(flags, 0, 0, minPort, maxPort), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
}

describe('Nat bindings (nf_nat_core.c)', () => {
  const far = ip('192.0.2.7');

  it('hooks in and asks for conntrack only while a nat chain is registered', () => {
    const r = rig();
    expect(r.hooks.prerouting.empty).toBe(true);
    const off = r.nat.registerChain('postrouting', 100, () => VERDICT_ACCEPT);
    expect(r.ct.needed.has('nat')).toBe(true);
    expect(r.hooks.prerouting.empty || r.hooks.postrouting.empty || r.hooks.output.empty || r.hooks.input.empty).toBe(false);
    off();
    expect(r.ct.needed.has('nat')).toBe(false);
    expect(r.hooks.prerouting.empty && r.hooks.postrouting.empty && r.hooks.output.empty && r.hooks.input.empty).toBe(true);
  });

  it('masquerade: two clients with the same source port; the second is remapped, replies go back to each', () => {
    const r = rig();
    masquerade(r);
    const a = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(5, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
    const b = forward(r, tcp(ip('10.0.1.3'), far, 40000, 80, payload(5, 2)), [6, ip('10.0.1.3'), far, 40000, 80]);
    expect(a.ok && b.ok).toBe(true);
    const d1 = a.p.data();
    const d2 = b.p.data();
    expect(u32(d1, 12)).toBe(r.masqAddr);
    expect(u16(d1, 20)).toBe(40000); // kept: free
    expect(u32(d2, 12)).toBe(r.masqAddr);
    const p2 = u16(d2, 20);
    expect(p2).not.toBe(40000);
    expect(p2).toBeGreaterThanOrEqual(1024);
    expect(ipOk(d2) && l4Ok(d2)).toBe(true);
    expect(b.e.status & (IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE)).toBe(IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE);
    expect(b.e.status & IPS_DST_NAT).toBe(0);
    expect([b.e.rs, b.e.rd, b.e.rsp, b.e.rdp]).toEqual([far, r.masqAddr, 80, p2]);
    // The reply to the second client comes back to the masquerade address and port p2.
    const reply = pkt(tcp(far, r.masqAddr, 80, p2, payload(3, 3)), b.e, IP_CT_ESTABLISHED_REPLY);
    expect(r.hooks.prerouting.run(reply, r.out, null)).toBe(VERDICT_ACCEPT);
    expect(r.hooks.postrouting.run(reply, null, r.inIf)).toBe(VERDICT_ACCEPT);
    const rd = reply.data();
    expect([u32(rd, 12), u32(rd, 16), u16(rd, 20), u16(rd, 22)]).toEqual([far, ip('10.0.1.3'), 80, 40000]);
    expect(ipOk(rd) && l4Ok(rd)).toBe(true);
  });

  it('null binding: a clash is remapped without any rule for the flow', () => {
    const r = rig();
    // A chain that binds nothing: every flow gets a null binding.
    r.nat.registerChain('postrouting', 100, () => VERDICT_ACCEPT);
    const snat = ip('203.0.113.1');
    // An existing flow already uses 203.0.113.1:40000 -> far:80.
    const old = r.ct.make(6, ip('10.0.1.2'), far, 40000, 80);
    old.rd = snat;
    old.status |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
    expect(r.ct.confirm(old)).toBe(true);
    // The stack's own 203.0.113.1:40000 -> far:80 would clash with it.
    const own = forward(r, tcp(snat, far, 40000, 80, payload(4, 4)), [6, snat, far, 40000, 80]);
    expect(own.ok).toBe(true);
    const port = u16(own.p.data(), 20);
    expect(port).not.toBe(40000);
    expect(port).toBeGreaterThanOrEqual(1024);
    expect(u32(own.p.data(), 12)).toBe(snat);
    expect(own.e.status & IPS_SRC_NAT).toBe(IPS_SRC_NAT);
    // A flow without a clash keeps its tuple and only gets the DONE bits.
    const plain = forward(r, udp(ip('10.0.1.9'), far, 5353, 53, payload(3, 5)), [17, ip('10.0.1.9'), far, 5353, 53]);
    expect(plain.ok).toBe(true);
    expect(plain.e.status & (IPS_SRC_NAT | IPS_DST_NAT)).toBe(0);
    expect(plain.e.status & (IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE)).toBe(IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE);
    expect([plain.e.rs, plain.e.rd, plain.e.rsp, plain.e.rdp]).toEqual([far, ip('10.0.1.9'), 53, 5353]);
  });

  it('the searched port stays in the class of the original: 1-511, 600-1023, 1024-65535', () => {
    for (const [orig, lo, hi] of [
      [500, 1, 511],
      [700, 600, 1023],
      [1000, 600, 1023],
      [5000, 1024, 65535],
    ]) {
      const r = rig(orig);
      masquerade(r);
      const first = forward(r, tcp(ip('10.0.1.2'), far, orig, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, orig, 80]);
      const second = forward(r, tcp(ip('10.0.1.3'), far, orig, 80, payload(1, 1)), [6, ip('10.0.1.3'), far, orig, 80]);
      expect(first.ok && second.ok).toBe(true);
      expect(u16(first.p.data(), 20)).toBe(orig);
      const p = u16(second.p.data(), 20);
      expect(p).toBeGreaterThanOrEqual(lo);
      expect(p).toBeLessThanOrEqual(hi);
      expect(p).not.toBe(orig);
    }
  });

  it('snat to a port range: ports in range, distinct; a full range leaves a clash conntrack refuses', () => {
    const r = rig();
    const snat = ip('203.0.113.1');
    r.nat.registerChain('postrouting', 100, (p, i, o) => (r.nat.setup(p, NAT_SNAT, range(NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, snat, snat, 2000, 2001), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    const ports: number[] = [];
    for (let k = 0; k < 2; k++) {
      const f = forward(r, udp(ip('10.0.1.2') + k, far, 40000, 53, payload(2, k)), [17, ip('10.0.1.2') + k, far, 40000, 53]);
      expect(f.ok).toBe(true);
      expect(u32(f.p.data(), 12)).toBe(snat);
      ports.push(u16(f.p.data(), 20));
    }
    expect(ports.sort()).toEqual([2000, 2001]);
    const third = forward(r, udp(ip('10.0.1.9'), far, 40000, 53, payload(2, 9)), [17, ip('10.0.1.9'), far, 40000, 53]);
    expect(third.ok).toBe(false);
    expect(r.ct.insertFailed).toBe(1);
  });

  it('a source already in range is kept; snat to one port keeps a clash (min == max)', () => {
    const r = rig();
    const snat = ip('203.0.113.1');
    r.nat.registerChain('postrouting', 100, (p, i, o) => (r.nat.setup(p, NAT_SNAT, range(NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, snat, snat, 3000, 3000), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    const a = forward(r, udp(ip('10.0.1.2'), far, 40000, 53, payload(2, 1)), [17, ip('10.0.1.2'), far, 40000, 53]);
    expect(a.ok).toBe(true);
    expect(u16(a.p.data(), 20)).toBe(3000);
  });

  it('random and fully-random pick a random port even when the original is free', () => {
    for (const flag of [NAT_RANGE_PROTO_RANDOM, NAT_RANGE_PROTO_RANDOM_FULLY]) {
      const r = rig(17);
      // What the search starts from: the next random number, as get_random_u16.
      const peek = new Random(17);
      const off = Math.floor(peek.next() * 65536);
      masquerade(r, flag);
      const f = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
      expect(f.ok).toBe(true);
      expect(u16(f.p.data(), 20)).toBe(1024 + (off % 64512));
    }
  });

  it('several addresses: hashed per source and destination; persistent keeps a client on one address', () => {
    const lo = ip('203.0.113.10');
    const hi = ip('203.0.113.19');
    for (const persistent of [false, true]) {
      const r = rig();
      const flags = NAT_RANGE_MAP_IPS | (persistent ? NAT_RANGE_PERSISTENT : 0);
      r.nat.registerChain('postrouting', 100, (p, i, o) => (r.nat.setup(p, NAT_SNAT, range(flags, lo, hi), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
      const seen = new Set<number>();
      for (let k = 0; k < 20; k++) {
        const dst = ip('192.0.2.1') + k;
        const f = forward(r, udp(ip('10.0.1.2'), dst, 4000 + k, 53, payload(1, k)), [17, ip('10.0.1.2'), dst, 4000 + k, 53]);
        const a = u32(f.p.data(), 12);
        expect(a).toBeGreaterThanOrEqual(lo);
        expect(a).toBeLessThanOrEqual(hi);
        // find_best_ips_proto: jhash2 of the source with the destination (or 0) as initval.
        const sw = (v: number): number => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
        expect(a).toBe(lo + reciprocalScale(jhash1(sw(ip('10.0.1.2')), persistent ? 0 : sw(dst)), 10));
        seen.add(a);
      }
      if (persistent) expect(seen.size).toBe(1);
      else expect(seen.size).toBeGreaterThan(1);
    }
  });

  it('ICMP echo: a clashing id is remapped; replies get the original id back', () => {
    const r = rig();
    masquerade(r);
    const a = forward(r, echo(ip('10.0.1.2'), far, 77, 1), [1, ip('10.0.1.2'), far, 77, 8 << 8]);
    const b = forward(r, echo(ip('10.0.1.3'), far, 77, 1), [1, ip('10.0.1.3'), far, 77, 8 << 8]);
    expect(a.ok && b.ok).toBe(true);
    expect(u16(a.p.data(), 24)).toBe(77);
    const id = u16(b.p.data(), 24);
    expect(id).not.toBe(77);
    expect(b.e.rsp).toBe(id);
    const reply = pkt(echo(far, r.masqAddr, id, 1, 0), b.e, IP_CT_ESTABLISHED_REPLY);
    expect(r.hooks.prerouting.run(reply, r.out, null)).toBe(VERDICT_ACCEPT);
    const d = reply.data();
    expect(u32(d, 16)).toBe(ip('10.0.1.3'));
    expect(u16(d, 24)).toBe(77);
    expect(checksum(d, 20, d.length - 20)).toBe(0);
    expect(ipOk(d)).toBe(true);
  });

  it('dnat: destination and port rewritten; the reply comes from the original destination', () => {
    const r = rig();
    const pub = ip('203.0.113.1');
    const srv = ip('10.0.2.2');
    r.nat.registerChain('prerouting', -100, (p, i, o) => (r.nat.setup(p, NAT_DNAT, range(NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, srv, srv, 8080), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    const f = forward(r, tcp(far, pub, 50000, 80, payload(6, 6)), [6, far, pub, 50000, 80]);
    expect(f.ok).toBe(true);
    const d = f.p.data();
    expect([u32(d, 12), u32(d, 16), u16(d, 20), u16(d, 22)]).toEqual([far, srv, 50000, 8080]);
    expect(ipOk(d) && l4Ok(d)).toBe(true);
    expect(f.e.status & (IPS_DST_NAT | IPS_SRC_NAT)).toBe(IPS_DST_NAT);
    const reply = pkt(tcp(srv, far, 8080, 50000, payload(2, 7)), f.e, IP_CT_ESTABLISHED_REPLY);
    expect(r.hooks.prerouting.run(reply, r.inIf, null)).toBe(VERDICT_ACCEPT);
    expect(r.hooks.postrouting.run(reply, null, r.out)).toBe(VERDICT_ACCEPT);
    const rd = reply.data();
    expect([u32(rd, 12), u32(rd, 16), u16(rd, 20), u16(rd, 22)]).toEqual([pub, far, 80, 50000]);
    expect(ipOk(rd) && l4Ok(rd)).toBe(true);
  });

  it('redirect: to the in interface address (prerouting) and to 127.0.0.1 (output), port from the rule or kept', () => {
    const r = rig();
    r.nat.registerChain('prerouting', -100, (p, i, o) => (r.nat.setup(p, NAT_REDIRECT, range(NAT_RANGE_PROTO_SPECIFIED, 0, 0, 3128), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    r.nat.registerChain('output', -100, (p, i, o) => (r.nat.setup(p, NAT_REDIRECT, range(0), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    const f = forward(r, tcp(ip('10.0.1.2'), far, 50000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 50000, 80]);
    expect([u32(f.p.data(), 16), u16(f.p.data(), 22)]).toEqual([ip('10.0.1.1'), 3128]);
    const e = r.ct.make(6, ip('10.0.1.1'), far, 50001, 80);
    const p = pkt(tcp(ip('10.0.1.1'), far, 50001, 80, payload(1, 1)), e, IP_CT_NEW);
    expect(r.hooks.output.run(p, null, r.out)).toBe(VERDICT_ACCEPT);
    expect([u32(p.data(), 16), u16(p.data(), 22)]).toEqual([ip('127.0.0.1'), 80]);
    expect(l4Ok(p.data())).toBe(true);
  });

  it('a rule added later never changes a flow that exists', () => {
    const r = rig();
    r.nat.registerChain('prerouting', -100, () => VERDICT_ACCEPT);
    const f = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
    expect(f.ok).toBe(true);
    masquerade(r);
    // A retransmitted SYN is still NEW (no reply seen), but the entry is confirmed.
    const again = pkt(tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), f.e, IP_CT_NEW);
    expect(r.hooks.prerouting.run(again, r.inIf, null)).toBe(VERDICT_ACCEPT);
    expect(r.hooks.postrouting.run(again, null, r.out)).toBe(VERDICT_ACCEPT);
    expect(u32(again.data(), 12)).toBe(ip('10.0.1.2'));
    // A new flow is masqueraded.
    const g = forward(r, tcp(ip('10.0.1.2'), far, 40001, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40001, 80]);
    expect(u32(g.p.data(), 12)).toBe(r.masqAddr);
  });

  it('masquerade drops when the out interface has no address', () => {
    const r = rig();
    masquerade(r);
    r.masqAddr = 0;
    const f = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
    expect(f.ok).toBe(false);
    expect(r.nat.stats.masqNoAddress).toBe(1);
  });

  it('snat in a prerouting chain is refused (wrong manip for the hook)', () => {
    const r = rig();
    r.nat.registerChain('prerouting', -100, (p, i, o) => (r.nat.setup(p, NAT_SNAT, range(NAT_RANGE_MAP_IPS, 1, 1), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
    const f = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
    expect(f.ok).toBe(false);
    expect(r.nat.stats.badSetup).toBe(1);
  });

  it('addressRemoved drops the masqueraded entries bound to that address only', () => {
    const r = rig();
    masquerade(r);
    const a = forward(r, tcp(ip('10.0.1.2'), far, 40000, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40000, 80]);
    r.masqAddr = ip('203.0.113.2');
    const b = forward(r, tcp(ip('10.0.1.2'), far, 40001, 80, payload(1, 1)), [6, ip('10.0.1.2'), far, 40001, 80]);
    expect(a.ok && b.ok).toBe(true);
    expect(r.ct.count).toBe(2);
    r.nat.addressRemoved(r.inIf, ip('203.0.113.1'));
    expect(r.ct.count).toBe(2);
    r.nat.addressRemoved(r.out, ip('203.0.113.1'));
    expect(r.ct.count).toBe(1);
    expect(r.ct.tupleTaken(6, far, ip('203.0.113.2'), 80, 40001, null)).toBe(true);
  });

  it('ICMP port unreachable about a masqueraded flow is translated back to the client', () => {
    const r = rig();
    masquerade(r);
    const b0 = forward(r, udp(ip('10.0.1.3'), far, 40000, 53, payload(3, 1)), [17, ip('10.0.1.3'), far, 40000, 53]);
    // Take 40000 first so the flow below is remapped.
    expect(b0.ok).toBe(true);
    const f = forward(r, udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2)), [17, ip('10.0.1.2'), far, 40000, 53]);
    const sent = f.p.data().slice();
    const port = u16(sent, 20);
    expect(port).not.toBe(40000);
    const err = pkt(icmp(far, r.masqAddr, 3, 3, 0, sent), f.e, IP_CT_RELATED_REPLY);
    expect(r.hooks.prerouting.run(err, r.out, null)).toBe(VERDICT_ACCEPT);
    expect(r.hooks.postrouting.run(err, null, r.inIf)).toBe(VERDICT_ACCEPT);
    const d = err.data();
    expect([u32(d, 12), u32(d, 16)]).toEqual([far, ip('10.0.1.2')]);
    expect([u32(d, 28 + 12), u32(d, 28 + 16), u16(d, 48), u16(d, 50)]).toEqual([ip('10.0.1.2'), far, 40000, 53]);
    expect(ipOk(d) && ipOk(d, 28) && l4Ok(d, 28)).toBe(true);
    expect(checksum(d, 20, d.length - 20)).toBe(0);
    // A corrupt error is dropped.
    const bad = pkt(icmp(far, r.masqAddr, 3, 3, 0, sent), f.e, IP_CT_RELATED_REPLY);
    bad.buf[bad.start + 30] ^= 1;
    expect(r.hooks.prerouting.run(bad, r.out, null)).toBe(VERDICT_DROP);
  });

  it('ICMP redirects about a NATed flow are dropped', () => {
    const r = rig();
    masquerade(r);
    const f = forward(r, udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2)), [17, ip('10.0.1.2'), far, 40000, 53]);
    const redirect = pkt(icmp(ip('10.0.1.1'), ip('10.0.1.2'), 5, 1, far, udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2))), f.e, IP_CT_RELATED_REPLY);
    expect(r.hooks.output.run(redirect, null, r.inIf)).toBe(VERDICT_DROP);
  });

  it('a masqueraded flow routed out another interface is dropped and forgotten (nf_nat_oif_changed)', () => {
    const r = rig();
    masquerade(r);
    const f = forward(r, udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2)), [17, ip('10.0.1.2'), far, 40000, 53]);
    expect(f.ok).toBe(true);
    expect(f.e.masqIndex).toBe(r.out.index);
    const same = pkt(udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2)), f.e, IP_CT_ESTABLISHED);
    expect(r.hooks.postrouting.run(same, null, r.out)).toBe(VERDICT_ACCEPT);
    const other = pkt(udp(ip('10.0.1.2'), far, 40000, 53, payload(3, 2)), f.e, IP_CT_ESTABLISHED);
    expect(r.hooks.postrouting.run(other, null, iface(3, 'wan1'))).toBe(VERDICT_DROP);
    expect(r.nat.stats.oifChanged).toBe(1);
    expect(r.ct.count).toBe(0);
  });

  it('the last tries for a new TCP connection evict a closing SNATed entry whose sequence is behind (nf_nat_used_tuple_harder)', () => {
    for (const [oldState, oldEnd, newEnd, evicted] of [
      [TCP_CONNTRACK_TIME_WAIT, 1000, 5000, true],
      [TCP_CONNTRACK_TIME_WAIT, 5000, 1000, false],
      [TCP_CONNTRACK_ESTABLISHED, 1000, 5000, false],
    ] as const) {
      const r = rig();
      const snat = ip('203.0.113.1');
      r.nat.registerChain('postrouting', 100, (p, i, o) => (r.nat.setup(p, NAT_SNAT, range(NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, snat, snat, 2000, 2000), i, o) ? VERDICT_ACCEPT : VERDICT_DROP));
      const old = r.ct.make(6, ip('10.0.1.2'), far, 40000, 80);
      old.rd = snat;
      old.rdp = 2000;
      old.status |= IPS_SRC_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
      old.state = oldState;
      old.tcp = new CtTcp();
      old.tcp.seen[0].end = oldEnd;
      expect(r.ct.confirm(old)).toBe(true);
      const e = r.ct.make(6, ip('10.0.1.3'), far, 40000, 80);
      e.state = TCP_CONNTRACK_SYN_SENT;
      e.tcp = new CtTcp();
      e.tcp.seen[0].end = newEnd;
      const p = pkt(tcp(ip('10.0.1.3'), far, 40000, 80, payload(1, 1)), e, IP_CT_NEW);
      expect(r.hooks.prerouting.run(p, r.inIf, null)).toBe(VERDICT_ACCEPT);
      expect(r.hooks.postrouting.run(p, null, r.out)).toBe(VERDICT_ACCEPT);
      expect(u16(p.data(), 20)).toBe(2000);
      expect(r.ct.confirm(e)).toBe(evicted);
      expect(r.ct.tupleTaken(6, ip('10.0.1.2'), far, 40000, 80, null)).toBe(!evicted);
    }
  });
});
