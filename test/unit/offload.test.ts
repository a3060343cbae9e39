import { describe, expect, it } from 'vitest';
import { CHECKSUM_NONE, CHECKSUM_PARTIAL, GSO_TCPV4, Packet } from '../../src/packet/packet.js';
import { VnetHdr, readVnetHdr, writeVnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4 } from '../../src/wire/vnet.js';
import { Offloads, finishChecksum, gsoFits, gsoSegment, setPartialChecksum } from '../../src/link/offload.js';
import { fillIpv4Checksum } from '../../src/wire/ipv4.js';
import { Gro } from '../../src/link/gro.js';
import { checksum, fold, pseudoHeaderSum, sum16 } from '../../src/wire/checksum.js';
import { manipIpv4, MANIP_DST, MANIP_SRC } from '../../src/conntrack/nat-mangle.js';
import { ACK, CWR_FLAG, FIN, PSH, SYN, ip, superTcp, tcp as tcpSeg } from '../helpers/offload.js';

const IP_OK = (b: Uint8Array, o: number) => checksum(b, o, 20) === 0;
function tcpOk(b: Uint8Array, ipo: number, end: number): boolean {
  const src = ((b[ipo + 12] << 24) | (b[ipo + 13] << 16) | (b[ipo + 14] << 8) | b[ipo + 15]) >>> 0;
  const dst = ((b[ipo + 16] << 24) | (b[ipo + 17] << 16) | (b[ipo + 18] << 8) | b[ipo + 19]) >>> 0;
  const l4 = ipo + 20;
  const len = end - l4;
  return fold(sum16(b, l4, len, pseudoHeaderSum(src, dst, b[ipo + 9], len))) === 0xffff;
}
const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

describe('virtio_net_hdr codec', () => {
  it('reads and writes the little-endian fields (include/uapi/linux/virtio_net.h layout)', () => {
    const b = new Uint8Array(12).fill(0xee);
    writeVnetHdr(b, 0, 12, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16);
    // flags, gso_type, hdr_len 66, gso_size 1448 = 0x05a8, csum_start 34, csum_offset 16, num_buffers 0.
    expect([...b]).toEqual([1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
    const h = readVnetHdr(b, 0, new VnetHdr());
    expect({ ...h }).toEqual({ flags: 1, gsoType: 1, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16 });
  });
});

describe('software GSO (TCPv4)', () => {
  it('cuts a super-packet into MSS segments: seq numbers, IDs, lengths, flags and checksums per segment', () => {
    // 3 full segments and a short one; CWR, PSH and FIN on the super-packet.
    const p = superTcp({ payload: 3 * 1000 + 300, mss: 1000, seq: 0xfffffc00, id: 0xfffe, flags: ACK | PSH | FIN | CWR_FLAG, ether: true });
    const arena = new Uint8Array(1 << 16);
    const out: Uint8Array[] = [];
    const end = gsoSegment(p, p.start + 14, arena, 0, 0, false, out);
    expect(end).toBeGreaterThan(0);
    expect(out.map((f) => f.length)).toEqual([14 + 20 + 20 + 1000, 14 + 20 + 20 + 1000, 14 + 20 + 20 + 1000, 14 + 20 + 20 + 300]);
    const seqs = out.map((f) => u32(f, 14 + 20 + 4));
    expect(seqs).toEqual([0xfffffc00, (0xfffffc00 + 1000) >>> 0, (0xfffffc00 + 2000) >>> 0, (0xfffffc00 + 3000) >>> 0]);
    expect(out.map((f) => u16(f, 14 + 4))).toEqual([0xfffe, 0xffff, 0, 1]);
    expect(out.map((f) => u16(f, 14 + 2))).toEqual([1040, 1040, 1040, 340]);
    // CWR only on the first, PSH and FIN only on the last (tcp_gso_segment).
    expect(out.map((f) => f[14 + 20 + 13])).toEqual([ACK | CWR_FLAG, ACK, ACK, ACK | PSH | FIN]);
    for (const f of out) {
      expect(IP_OK(f, 14)).toBe(true);
      expect(tcpOk(f, 14, f.length)).toBe(true);
      // The link header is copied to each.
      expect([...f.subarray(0, 14)]).toEqual([...p.buf.subarray(p.start, p.start + 14)]);
    }
    // The payload is the super-packet's, in order.
    const joined = Buffer.concat(out.map((f) => Buffer.from(f.subarray(54))));
    expect(joined.equals(Buffer.from(p.buf.subarray(p.start + 54, p.end)))).toBe(true);
  });

  it('leaves each segment partial (pseudo-header sum for its own length) for a device that finishes it', () => {
    const p = superTcp({ payload: 2500, mss: 1000, seq: 1, id: 7, flags: ACK, ether: false });
    const out: Uint8Array[] = [];
    gsoSegment(p, p.start, new Uint8Array(1 << 14), 0, 10, true, out);
    expect(out.length).toBe(3);
    for (const f of out) {
      const g = new Packet(f, 10, f.length);
      g.ipSummed = CHECKSUM_PARTIAL;
      g.csumStart = 10 + 20;
      g.csumOffset = 16;
      const src = u32(f, 10 + 12);
      const dst = u32(f, 10 + 16);
      expect(u16(f, 30 + 16)).toBe(fold(pseudoHeaderSum(src, dst, 6, f.length - 30)));
      expect(finishChecksum(g)).toBe(true);
      expect(tcpOk(f, 10, f.length)).toBe(true);
    }
  });

  it('UDP (USO): each segment its own datagram with its length and checksum', () => {
    const p = superTcp({ payload: 2000, mss: 800, seq: 0, id: 1, flags: 0, ether: false, udp: true });
    const out: Uint8Array[] = [];
    gsoSegment(p, p.start, new Uint8Array(1 << 14), 0, 0, false, out);
    expect(out.map((f) => u16(f, 24))).toEqual([808, 808, 408]);
    for (const f of out) expect(tcpOk(f, 0, f.length)).toBe(true);
  });

  it('refuses a packet whose headers lie beyond its end', () => {
    const p = superTcp({ payload: 100, mss: 50, seq: 0, id: 0, flags: ACK, ether: false });
    p.end = p.start + 30;
    expect(gsoSegment(p, p.start, new Uint8Array(4096), 0, 0, false, [])).toBe(-1);
  });

  it('a super-packet fits an MTU when its segments do', () => {
    const p = superTcp({ payload: 20000, mss: 1460, seq: 0, id: 0, flags: ACK, ether: false });
    expect(gsoFits(p, 1500)).toBe(true);
    expect(gsoFits(p, 1400)).toBe(false);
  });
});

describe('GRO', () => {
  function gro() {
    const got: Packet[] = [];
    const off = new Offloads();
    const g = new Gro({ offload: off }, (p) => got.push(p));
    return { g, got, off };
  }
  const seg = (seq: number, len: number, flags = ACK, id = seq, opts: number[] = []) => tcpSeg('10.0.0.1', 1000, '10.0.0.2', 80, { seq, ack: 5, flags, data: len, opts, id });

  it('merges in-order segments of a flow into one partial-checksum super-packet at the batch end', () => {
    const { g, got, off } = gro();
    const parts = [seg(1000, 100, ACK, 1), seg(1100, 100, ACK, 2), seg(1200, 100, ACK | PSH, 3)];
    for (const p of parts) g.receive(p);
    // PSH ends the merge at once.
    expect(got.length).toBe(1);
    const m = got[0];
    expect(m.length).toBe(20 + 20 + 300);
    expect(m.gsoSize).toBe(100);
    expect(m.gsoType).toBe(GSO_TCPV4);
    expect(m.gsoSegs).toBe(3);
    expect(m.ipSummed).toBe(CHECKSUM_PARTIAL);
    expect(IP_OK(m.buf, m.start)).toBe(true);
    expect(m.buf[m.start + 33]).toBe(ACK | PSH);
    expect(u32(m.buf, m.start + 24)).toBe(1000);
    // The payload is the three segments' payloads in order.
    const want = Buffer.concat(parts.map((p) => Buffer.from(p.buf.subarray(p.start + 40, p.end))));
    expect(Buffer.from(m.buf.subarray(m.start + 40, m.end)).equals(want)).toBe(true);
    // Finishing the partial checksum gives a valid segment.
    expect(finishChecksum(m)).toBe(true);
    expect(tcpOk(m.buf, m.start, m.end)).toBe(true);
    expect([off.groPackets, off.groMergedSegments]).toEqual([1, 3]);
  });

  it('holds a flow until the batch ends', () => {
    const { g, got } = gro();
    g.receive(seg(0, 100, ACK, 1));
    g.receive(seg(100, 100, ACK, 2));
    expect(got.length).toBe(0);
    g.flush();
    expect(got.map((p) => p.gsoSegs)).toEqual([2]);
  });

  it('does not merge across a gap, a different ACK, different options, CWR, a pure ACK, a longer segment or a bad checksum', () => {
    const cases: [string, Packet][] = [
      ['gap', seg(300, 100, ACK, 2)],
      ['ack', tcpSeg('10.0.0.1', 1000, '10.0.0.2', 80, { seq: 100, ack: 6, flags: ACK, data: 100, id: 2 })],
      ['options', seg(100, 100, ACK, 2, [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0])],
      ['cwr', seg(100, 100, ACK | CWR_FLAG, 2)],
      ['longer', seg(100, 101, ACK, 2)],
      ['ip id', seg(100, 100, ACK, 9)],
    ];
    for (const [why, second] of cases) {
      const { g, got } = gro();
      g.receive(seg(0, 100, ACK, 1));
      g.receive(second);
      g.flush();
      expect([why, got.length, got.every((p) => p.gsoSize === 0)]).toEqual([why, 2, true]);
    }
    const { g, got } = gro();
    const bad = seg(100, 100, ACK, 2);
    bad.buf[bad.end - 1] ^= 0xff;
    g.receive(seg(0, 100, ACK, 1));
    g.receive(bad);
    g.flush();
    expect(got.length).toBe(2);
    expect(got[1]).toBe(bad);
  });

  it('merges a shorter last segment and a FIN, then ends; SYN, RST and URG are never merged', () => {
    const { g, got } = gro();
    g.receive(seg(0, 100, ACK, 1));
    g.receive(seg(100, 40, ACK, 2));
    expect(got.map((p) => p.gsoSegs)).toEqual([2]);
    g.receive(seg(140, 100, ACK, 10));
    g.receive(seg(240, 100, ACK | FIN, 11));
    expect(got[1].buf[got[1].start + 33]).toBe(ACK | FIN);
    const { g: g2, got: got2 } = gro();
    g2.receive(seg(0, 100, SYN | ACK, 1));
    g2.receive(seg(100, 100, ACK, 2));
    g2.flush();
    expect(got2.map((p) => p.gsoSegs)).toEqual([0, 0]);
  });

  it('keeps flows apart and never lets a flow go up out of order', () => {
    const { g, got } = gro();
    g.receive(seg(0, 100, ACK, 1));
    g.receive(tcpSeg('10.0.0.3', 1000, '10.0.0.2', 80, { seq: 0, ack: 5, flags: ACK, data: 100, id: 1 }));
    g.receive(seg(100, 100, ACK, 2));
    // A pure ACK of the first flow sends what is held first.
    g.receive(seg(200, 0, ACK, 3));
    expect(got.map((p) => [u32(p.buf, p.start + 12) & 0xff, p.gsoSegs])).toEqual([
      [1, 2],
      [1, 0],
    ]);
    g.flush();
    expect(got.length).toBe(3);
  });

  it('is off when the link says gro off', () => {
    const { g, got, off } = gro();
    off.set('gro', false);
    g.receive(seg(0, 100, ACK, 1));
    g.receive(seg(100, 100, ACK, 2));
    expect(got.length).toBe(2);
  });
});

describe('NAT of a partial checksum', () => {
  it('patches only the pseudo-header part (addresses) and leaves the ports to the final sum', () => {
    const p = superTcp({ payload: 3000, mss: 1000, seq: 9, id: 1, flags: ACK, ether: false });
    const b = p.buf;
    const o = p.start;
    const len = p.end - o - 20;
    setPartialChecksum(p, o + 20, 16, u32(b, o + 12), u32(b, o + 16), 6, len);
    expect(manipIpv4(b, o, p.end, MANIP_SRC, ip('192.0.2.7'), 40000, true)).toBe(true);
    expect(manipIpv4(b, o, p.end, MANIP_DST, ip('198.51.100.9'), 8080, true)).toBe(true);
    // The field is now the pseudo-header sum of the new addresses, and IP's checksum is right.
    expect(u16(b, o + 36)).toBe(fold(pseudoHeaderSum(ip('192.0.2.7'), ip('198.51.100.9'), 6, len)));
    expect(IP_OK(b, o)).toBe(true);
    expect([u16(b, o + 20), u16(b, o + 22)]).toEqual([40000, 8080]);
    // Cut and finished, every segment is right for the new addresses and ports.
    const out: Uint8Array[] = [];
    gsoSegment(p, o, new Uint8Array(1 << 14), 0, 0, false, out);
    for (const f of out) expect(tcpOk(f, 0, f.length)).toBe(true);
    expect(p.ipSummed).toBe(CHECKSUM_PARTIAL);
    expect(finishChecksum(p)).toBe(true);
    expect(p.ipSummed).toBe(CHECKSUM_NONE);
    expect(tcpOk(b, o, p.end)).toBe(true);
  });
});


describe('UDP GSO (UDP_L4) as the kernel hands it over', () => {
  /** A UDP super-packet as udp_send_skb builds one: its checksum field the pseudo-header sum for the whole length (partial). */
  function kernelUso(payload: number, mss: number, id: number): Packet {
    const p = superTcp({ payload, mss, seq: 0, id, flags: 0, ether: false, udp: true });
    const b = p.buf;
    const o = p.start;
    setPartialChecksum(p, o + 20, 6, u32(b, o + 12), u32(b, o + 16), 17, 8 + payload);
    return p;
  }

  it('__udp_gso_segment and inet_gso_segment: gso_size datagrams and a short last one, IDs counting up, DF kept, every checksum complete', () => {
    const p = kernelUso(5 * 1200 + 345, 1200, 0xfffd);
    p.buf[p.start + 6] = 0x40; // DF, as a UDP_SEGMENT sender with path MTU discovery sets it
    fillIpv4Checksum(p.buf, p.start, 20);
    const out: Uint8Array[] = [];
    expect(gsoSegment(p, p.start, new Uint8Array(1 << 15), 0, 0, false, out)).toBeGreaterThan(0);
    // UDP length per segment: header + gso_size, the remainder last.
    expect(out.map((f) => u16(f, 24))).toEqual([1208, 1208, 1208, 1208, 1208, 353]);
    expect(out.map((f) => u16(f, 2))).toEqual([1228, 1228, 1228, 1228, 1228, 373]);
    // inet_gso_segment: not a fixed-ID type, so each segment takes the next ID (id++), wrapping.
    expect(out.map((f) => u16(f, 4))).toEqual([0xfffd, 0xfffe, 0xffff, 0, 1, 2]);
    for (const f of out) {
      expect(f[6] & 0x40).toBe(0x40);
      expect(IP_OK(f, 0)).toBe(true);
      expect(tcpOk(f, 0, f.length)).toBe(true);
      expect(u16(f, 26)).not.toBe(0);
      expect([u16(f, 20), u16(f, 22)]).toEqual([4000, 5000]);
    }
    const joined = Buffer.concat(out.map((f) => Buffer.from(f.subarray(28))));
    expect(joined.equals(Buffer.from(p.buf.subarray(p.start + 28, p.end)))).toBe(true);
  });

  it('left partial for a device that finishes it: each segment the pseudo-header sum of its own length', () => {
    const p = kernelUso(3000, 1400, 9);
    const out: Uint8Array[] = [];
    gsoSegment(p, p.start, new Uint8Array(1 << 14), 0, 0, true, out);
    expect(out.length).toBe(3);
    for (const f of out) {
      expect(u16(f, 26)).toBe(fold(pseudoHeaderSum(u32(f, 12), u32(f, 16), 17, f.length - 20)));
      const g = new Packet(f, 0, f.length);
      g.ipSummed = CHECKSUM_PARTIAL;
      g.csumStart = 20;
      g.csumOffset = 6;
      expect(finishChecksum(g)).toBe(true);
      expect(tcpOk(f, 0, f.length)).toBe(true);
    }
  });

  it('NAT of the partial super-packet: the field is the new pseudo-header sum, so what the far kernel finishes per segment is right', () => {
    const p = kernelUso(4000, 1000, 1);
    const b = p.buf;
    const o = p.start;
    expect(manipIpv4(b, o, p.end, MANIP_SRC, ip('192.0.2.7'), 40000, true)).toBe(true);
    expect(u16(b, o + 26)).toBe(fold(pseudoHeaderSum(ip('192.0.2.7'), u32(b, o + 16), 17, 8 + 4000)));
    expect(IP_OK(b, o)).toBe(true);
    // The kernel's __udp_gso_segment adjusts that field by the length only (old out, new in)
    // and finishes each segment from it: do the same here.
    const whole = u16(b, o + 26);
    const out: Uint8Array[] = [];
    gsoSegment(p, o, new Uint8Array(1 << 14), 0, 0, true, out);
    for (const f of out) {
      const adj = fold(whole + (~(8 + 4000) & 0xffff) + (f.length - 20));
      f[26] = adj >> 8;
      f[27] = adj & 0xff;
      const g = new Packet(f, 0, f.length);
      g.ipSummed = CHECKSUM_PARTIAL;
      g.csumStart = 20;
      g.csumOffset = 6;
      finishChecksum(g);
      expect(tcpOk(f, 0, f.length)).toBe(true);
      expect(u16(f, 20)).toBe(40000);
    }
  });
});
