import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing, type SimPair } from '../helpers/sim.js';
import { Packet } from '../../src/packet/packet.js';
import { newMib } from '../../src/mib.js';
import { checksum } from '../../src/wire/checksum.js';
import { emitIpv4, IPOPT_LSRR, IPOPT_RA, IPOPT_RR } from '../../src/wire/ipv4.js';
import { fragmentDatagram } from '../../src/ip/fragment.js';
import { Reassembly } from '../../src/ip/reassembly.js';
import { VirtualTime } from '../../src/time/timers.js';
import type { Interface } from '../../src/link/interface.js';

interface WireFrag {
  ident: number;
  off: number;
  more: boolean;
  df: boolean;
  len: number;
  hlen: number;
  csumOk: boolean;
}

/** The IPv4 datagrams `s` puts on its wire (Ethernet frames from its own MAC). */
function sentBy(p: SimPair, which: 'a' | 'b'): WireFrag[] {
  const out: WireFrag[] = [];
  const stack = which === 'a' ? p.a : p.b;
  const mac = which === 'a' ? p.ia.mac : p.ib.mac;
  stack.capture = (_iface, f) => {
    if (f[12] !== 8 || f[13] !== 0) return;
    for (let i = 0; i < 6; i++) if (f[6 + i] !== mac[i]) return;
    const hlen = (f[14] & 0xf) * 4;
    out.push({
      ident: (f[18] << 8) | f[19],
      off: (((f[20] & 0x1f) << 8) | f[21]) * 8,
      more: (f[20] & 0x20) !== 0,
      df: (f[20] & 0x40) !== 0,
      len: (f[16] << 8) | f[17],
      hlen,
      csumOk: checksum(f, 14, hlen) === 0,
    });
  };
  return out;
}

/** Fragments of a datagram of `dataLen` bytes after a 20-byte header at `mtu`. */
function fragCount(dataLen: number, mtu: number): number {
  return Math.ceil(dataLen / ((mtu - 20) & ~7));
}

/** Checks one datagram's fragments as they were on the wire. */
function checkFragments(frags: WireFrag[], mtu: number, dataLen: number): void {
  expect(frags.length).toBe(fragCount(dataLen, mtu));
  let next = 0;
  frags.forEach((f, i) => {
    const last = i === frags.length - 1;
    expect(f.len).toBeLessThanOrEqual(mtu);
    expect(f.csumOk).toBe(true);
    expect(f.off).toBe(next);
    expect(f.more).toBe(!last);
    if (!last) expect((f.len - f.hlen) % 8).toBe(0);
    expect(f.ident).toBe(frags[0].ident);
    next += f.len - f.hlen;
  });
  expect(next).toBe(dataLen);
}

function expectPattern(data: Uint8Array, size: number): void {
  expect(data.length).toBe(size);
  for (let i = 0; i < size; i++) if (data[i] !== (i & 0xff)) throw new Error(`byte ${i} differs`);
}

describe('IPv4 fragmentation on output', () => {
  for (const mtu of [576, 1280, 1500, 9000]) {
    it(`round-trips large pings at MTU ${mtu}, fragmented both ways`, () => {
      const p = simPair({ mtu, impair: { delayMs: 1 } });
      const fromA = sentBy(p, 'a');
      const fromB = sentBy(p, 'b');
      const sizes = [4000, 30000, 65000, 65507];
      let frags = 0;
      let fragmented = 0;
      sizes.forEach((size, k) => {
        fromA.length = 0;
        fromB.length = 0;
        const r = simPing(p.time, p.a, ip('10.0.0.2'), 1, { size, ident: 500 + k, waitMs: 100 });
        expect(r.replies.length, `size ${size}`).toBe(1);
        expectPattern(r.replies[0].data, size);
        expect(r.replies[0].icmpLen).toBe(8 + size);
        checkFragments(fromA, mtu, 8 + size);
        checkFragments(fromB, mtu, 8 + size);
        // At MTU 9000 the 4000-byte ping goes whole.
        if (20 + 8 + size > mtu) {
          fragmented++;
          frags += fragCount(8 + size, mtu);
        }
      });
      expect(fragmented).toBe(mtu === 9000 ? 3 : 4);
      for (const s of [p.a, p.b]) {
        expect(s.mib.IpFragOKs).toBe(fragmented);
        expect(s.mib.IpFragCreates).toBe(frags);
        expect(s.mib.IpFragFails).toBe(0);
        expect(s.mib.IpReasmOKs).toBe(fragmented);
        expect(s.mib.IpReasmReqds).toBe(frags);
        expect(s.mib.IpReasmFails).toBe(0);
        expect(s.ip.reasm.count).toBe(0);
      }
      expect(p.a.mib.IcmpInEchoReps).toBe(sizes.length);
    });
  }

  it('a 65507-byte ping fits exactly in 65535 bytes, and one byte more does not', () => {
    const p = simPair();
    expect(p.a.icmp.sendEcho(ip('10.0.0.2'), 1, 1, new Uint8Array(65508))).toBe('EMSGSIZE');
    const r = simPing(p.time, p.a, ip('10.0.0.2'), 1, { size: 65507, ident: 2 });
    expect(r.replies.length).toBe(1);
    expectPattern(r.replies[0].data, 65507);
  });

  it('gets all ~45 fragments of a 64 KiB datagram through while ARP resolves the first contact', () => {
    const p = simPair({ impair: { delayMs: 5 } });
    expect(p.ia.neigh!.get(ip('10.0.0.2'))).toBeUndefined();
    const fromA = sentBy(p, 'a');
    const r = simPing(p.time, p.a, ip('10.0.0.2'), 1, { size: 65507, ident: 3 });
    expect(r.replies.length).toBe(1);
    expectPattern(r.replies[0].data, 65507);
    const frags = fromA.filter((f) => f.len > 0);
    expect(frags.length).toBe(45);
    expect(p.ia.drops['neigh-overflow']).toBe(0);
    expect(p.a.mib.ArpUnresolvedDiscards).toBe(0);
    // The fragments waited for ARP: one request, one reply, then the burst.
    expect(r.rtts[0]).toBe(20);
  });

  it('refuses a datagram with DF set that is too big, with EMSGSIZE and IpFragFails', () => {
    const p = simPair();
    const fromA = sentBy(p, 'a');
    expect(p.a.icmp.sendEcho(ip('10.0.0.2'), 4, 1, new Uint8Array(1472), { dontFrag: true })).toBeNull();
    expect(p.a.icmp.sendEcho(ip('10.0.0.2'), 4, 2, new Uint8Array(1473), { dontFrag: true })).toBe('EMSGSIZE');
    p.time.advance(100);
    expect(p.a.mib.IpFragFails).toBe(1);
    expect(p.a.mib.IpFragOKs).toBe(0);
    expect(fromA.filter((f) => f.df).length).toBe(1);
  });

  it('follows a lowered interface MTU', () => {
    const p = simPair();
    p.a.setMtu(p.ia, 600);
    const fromA = sentBy(p, 'a');
    const r = simPing(p.time, p.a, ip('10.0.0.2'), 1, { size: 1400, ident: 5 });
    expect(r.replies.length).toBe(1);
    checkFragments(fromA, 600, 1408);
    // b's MTU is still 1500: the reply came back whole.
    expect(p.b.mib.IpFragOKs).toBe(0);
  });

  it('survives loss, reordering and duplication with large pings', () => {
    const p = simPair({ impair: { delayMs: 10, jitterMs: 8, loss: 0.01, duplicate: 0.05, reorder: 0.1 }, seed: 3 });
    const r = simPing(p.time, p.a, ip('10.0.0.2'), 60, { size: 20000, intervalMs: 200 });
    // Each round trip needs 2 x 14 fragments through 1% loss: about 75% get back.
    expect(r.replies.length).toBeGreaterThan(30);
    expect(r.replies.length).toBeLessThan(60);
    for (const rep of r.replies) expectPattern(rep.data, 20000);
    expect(new Set(r.replies.map((x) => x.seq)).size).toBe(r.replies.length);
    expect(p.da.stats.duplicated + p.db.stats.duplicated).toBeGreaterThan(20);
    expect(p.da.stats.reordered + p.db.stats.reordered).toBeGreaterThan(20);
    // Duplicates are not overlaps; what stays incomplete times out and is freed.
    for (const s of [p.a, p.b]) expect(s.mib.IpExtReasmOverlaps).toBe(0);
    expect(p.b.mib.IpReasmOKs).toBe(p.b.mib.IcmpInEchos);
    p.time.advance(31_000);
    for (const s of [p.a, p.b]) {
      expect(s.ip.reasm.count).toBe(0);
      expect(s.ip.reasm.memory).toBe(0);
      expect(s.mib.IpReasmFails).toBe(s.mib.IpReasmTimeout);
    }
    expect(p.a.mib.IpReasmTimeout + p.b.mib.IpReasmTimeout).toBeGreaterThan(0);
  });

  it('repeats only the copied options after the first fragment, and the pieces reassemble', () => {
    // Options: record route (not copied), loose source route (copied), router alert (copied).
    const rr = [IPOPT_RR, 7, 4, 0, 0, 0, 0];
    const lsrr = [IPOPT_LSRR, 7, 4, 10, 0, 0, 9];
    const ra = [IPOPT_RA, 4, 0, 0];
    const options = new Uint8Array([...rr, ...lsrr, ...ra, 0, 0]); // 20 bytes
    const dataLen = 3000;
    const hdr = {
      src: ip('10.0.0.1'),
      dst: ip('10.0.0.2'),
      protocol: 17,
      ttl: 64,
      ident: 0x5151,
      dontFrag: false,
      moreFrags: false,
      fragOffset: 0,
      payloadLen: dataLen,
      options,
    };
    const pkt = Packet.alloc(40 + dataLen);
    const hl = emitIpv4(hdr, pkt.buf, pkt.start);
    expect(hl).toBe(40);
    for (let i = 0; i < dataLen; i++) pkt.buf[pkt.start + hl + i] = (i * 7) & 0xff;
    const sent: Packet[] = [];
    const mib = newMib();
    const sink = { mtu: 1000, outputIp: (f: Packet, nh: number) => (expect(nh).toBe(ip('10.0.0.9')), sent.push(f)) };
    expect(fragmentDatagram(pkt, sink, ip('10.0.0.9'), mib)).toBeNull();
    // First: 40-byte header, 960 data; later: 20 + 12 (LSRR + RA) = 32-byte headers, 968 data.
    expect(sent.map((f) => f.length)).toEqual([1000, 1000, 1000, 32 + 3000 - 960 - 968 - 968]);
    expect(mib.IpFragCreates).toBe(4);
    expect(mib.IpFragOKs).toBe(1);
    expect(sent[0].buf.slice(sent[0].start + 20, sent[0].start + 40)).toEqual(options);
    for (const f of sent.slice(1)) {
      expect(f.buf[f.start] & 0xf).toBe(8);
      expect([...f.buf.slice(f.start + 20, f.start + 32)]).toEqual([...lsrr, ...ra, 0]);
    }
    for (const f of sent) expect(checksum(f.buf, f.start, (f.buf[f.start] & 0xf) * 4)).toBe(0);
    // Fed back in reverse, they make the original datagram again.
    const time = new VirtualTime();
    const rmib = newMib();
    const reasm = new Reassembly(rmib, time);
    const iface = { index: 1 } as Interface;
    let whole: Packet | null = null;
    for (const f of [...sent].reverse()) whole = reasm.add(f, (f.buf[f.start] & 0xf) * 4, iface) ?? whole;
    expect(whole).not.toBeNull();
    const w = whole as unknown as Packet;
    expect(w.data()).toEqual(pkt.data());
    expect(rmib.IpReasmOKs).toBe(1);
  });

  it('will not split below 8 data bytes per fragment', () => {
    const pkt = Packet.alloc(60 + 100);
    emitIpv4(
      { src: 1, dst: 2, protocol: 17, ttl: 1, ident: 1, dontFrag: false, moreFrags: false, fragOffset: 0, payloadLen: 100, options: new Uint8Array(40).fill(1) },
      pkt.buf,
      pkt.start,
    );
    const mib = newMib();
    expect(fragmentDatagram(pkt, { mtu: 64, outputIp: () => {} }, 2, mib)).toBe('EMSGSIZE');
    expect(mib.IpFragFails).toBe(1);
  });
});
