/**
 * The receiver's ACKs under loss, segment by segment in virtual time, as Linux's
 * tcp_input.c sends them: one ACK when more than one full segment is unacknowledged
 * (__tcp_ack_snd_check), a GRO super-packet measured by its segment size
 * (tcp_measure_rcv_mss), out-of-order data acknowledged at once with SACK blocks,
 * the newest first (RFC 5681 §4.2, RFC 2018 §4), the segment that fills the hole
 * acknowledged at once, a duplicate answered by a D-SACK and quick ACKs (tcp_send_dupack,
 * RFC 2883), and a window whose right edge does not move back while data waits out of order.
 */
import { describe, expect, it } from 'vitest';
import { acceptFrom, tcpDatagram, tcpPeer, PEER, US, type SentSeg, type TcpPeer } from '../helpers/tcp-segments.js';
import { concat, ethHeader, fixIpChecksum } from '../helpers/frames.js';

const MSS = 1448;
const seq = (a: number, n: number): number => (a + n) >>> 0;

function established(p: TcpPeer) {
  const h = acceptFrom(p, { rttMs: 10 });
  p.take();
  return { ...h, S: seq(h.iss, 1), P: seq(h.irs, 1), wscale: h.synAck.opts.wscale ?? 0 };
}

/**
 * Full-size segments at `offs` (stream offsets) put on the wire in one receive batch, as
 * a Linux sender's would arrive: DF set and timestamps alike, so GRO may merge them.
 */
function burst(p: TcpPeer, P: number, S: number, offs: number[]): void {
  const mac = Array.from(p.iface.mac, (b) => b.toString(16).padStart(2, '0')).join(':');
  const ts = { val: p.tsVal(), ecr: p.lastTsVal };
  const frames = offs.map((off) => {
    const d = tcpDatagram(PEER, US, p.sport, p.dport, { seq: seq(P, off), ack: S, flags: 'A', data: new Uint8Array(MSS).fill(off & 0xff) }, { ts });
    d[6] = 0x40; // DF: a fixed IP ID is then fine for GRO (inet_gro_receive)
    fixIpChecksum(d);
    return concat(ethHeader(mac, '02:00:00:00:00:01', 0x0800), d);
  });
  // One receive batch of the stack's interface, as a device's read of several frames.
  for (const f of frames) p.iface.frame(f);
  p.iface.batchEnd();
  p.time.advance(0);
}

/** The SACK blocks of an ACK, as offsets from P. */
const blocks = (a: SentSeg, P: number): number[] => Array.from(a.opts.sack ?? [], (x) => (x - P) | 0);

/** Sends `n` in-order segments from `off`, 1 ms apart, each alone: the quick ACKs of a new connection are used up. */
function pastQuickAcks(p: TcpPeer, P: number, S: number, off: number, n: number): number {
  for (let i = 0; i < n; i++, off += MSS) {
    burst(p, P, S, [off]);
    p.advance(1);
  }
  p.take();
  return off;
}

describe('receiver ACKs (tcp_input.c __tcp_ack_snd_check, tcp_data_queue)', () => {
  it('__tcp_ack_snd_check: after the quick ACKs, one ACK per two full segments; a GRO pair is acknowledged at once and rcv_mss stays the segment size', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    let off = pastQuickAcks(p, P, S, 0, 20);
    expect(c.quickAcks).toBe(0);
    // One segment alone waits for a second (or the delayed-ACK timer).
    burst(p, P, S, [off]);
    off += MSS;
    expect(p.take()).toEqual([]);
    burst(p, P, S, [off]);
    off += MSS;
    let a = p.one();
    expect(a.ack).toBe(seq(P, off));
    // Two segments in one receive batch: GRO hands them up as one super-packet (gso_size
    // 1448). That is more than one rcv_mss: acknowledged at once, and rcv_mss is the
    // segment size, not the packet's length cut to advmss (1460).
    const merged = p.iface.offload.groMergedSegments;
    burst(p, P, S, [off, off + MSS]);
    off += 2 * MSS;
    expect(p.iface.offload.groMergedSegments).toBe(merged + 2);
    a = p.one();
    expect(a.ack).toBe(seq(P, off));
    expect(c.rcvMss).toBe(MSS);
    // And so every pair after it.
    for (let i = 0; i < 5; i++) {
      p.advance(2);
      burst(p, P, S, [off, off + MSS]);
      off += 2 * MSS;
      expect(p.one().ack).toBe(seq(P, off));
    }
    // A lone segment still waits for the delayed-ACK timer (TCP_DELACK_MIN, 40 ms).
    burst(p, P, S, [off]);
    off += MSS;
    expect(p.take()).toEqual([]);
    p.advance(39);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.one().ack).toBe(seq(P, off));
  });

  it('RFC 5681 §4.2, RFC 2018 §4: each out-of-order segment draws an ACK at once whose first SACK block holds it; the segment that fills the hole is acknowledged at once, without SACK', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    const off = pastQuickAcks(p, P, S, 0, 20);
    // The segment at `off` is lost; three after it arrive one by one.
    for (let k = 1; k <= 3; k++) {
      p.advance(1);
      burst(p, P, S, [off + k * MSS]);
      const a = p.one();
      expect(a.ack).toBe(seq(P, off));
      expect(blocks(a, P)).toEqual([off + MSS, off + (k + 1) * MSS]);
    }
    // A second hole: the newest block goes first, the older one after it.
    p.advance(1);
    burst(p, P, S, [off + 5 * MSS]);
    let a = p.one();
    expect(blocks(a, P)).toEqual([off + 5 * MSS, off + 6 * MSS, off + MSS, off + 4 * MSS]);
    expect(c.rcvOoopack).toBe(4);
    // The retransmission fills the first hole: an ACK at once, the remaining block reported.
    p.advance(10);
    burst(p, P, S, [off]);
    a = p.one();
    expect(a.ack).toBe(seq(P, off + 4 * MSS));
    expect(blocks(a, P)).toEqual([off + 5 * MSS, off + 6 * MSS]);
    // The last hole fills: an ACK at once, no SACK option left.
    p.advance(1);
    burst(p, P, S, [off + 4 * MSS]);
    a = p.one();
    expect(a.ack).toBe(seq(P, off + 6 * MSS));
    expect(a.opts.sack).toBeUndefined();
  });

  it('RFC 2018 §4, tcp_sack_new_ofo_skb: the blocks go most recently changed first; one a segment extends moves to the front; with timestamps three fit', () => {
    const p = tcpPeer();
    const { S, P } = established(p);
    const o = pastQuickAcks(p, P, S, 0, 20);
    const at = (k: number): number => o + k * MSS;
    const send = (k: number): number[] => {
      p.advance(1);
      burst(p, P, S, [at(k)]);
      return blocks(p.one(), P);
    };
    // Segment 0 is lost, and 3, 5 and 6: blocks A = [1,2), B = [4,5), C = [7,8) arrive in that order.
    expect(send(1)).toEqual([at(1), at(2)]);
    expect(send(4)).toEqual([at(4), at(5), at(1), at(2)]);
    expect(send(7)).toEqual([at(7), at(8), at(4), at(5), at(1), at(2)]);
    // Segment 2 extends A: A first, then C and B in their order of change (not by sequence).
    expect(send(2)).toEqual([at(1), at(3), at(7), at(8), at(4), at(5)]);
    // A new block D = [10,11): D, A, C shown (three fit beside timestamps); B is fourth.
    expect(send(10)).toEqual([at(10), at(11), at(1), at(3), at(7), at(8)]);
    // Segment 0 arrives: A is delivered, the ACK moves to 3; D, C, B remain in that order.
    p.advance(1);
    burst(p, P, S, [at(0)]);
    const a = p.one();
    expect(a.ack).toBe(seq(P, at(3)));
    expect(blocks(a, P)).toEqual([at(10), at(11), at(7), at(8), at(4), at(5)]);
  });

  it('tcp_send_dupack, RFC 2883: a duplicate segment is answered at once with a D-SACK and the next segments are acknowledged one by one (quick-ACK mode)', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    let off = pastQuickAcks(p, P, S, 0, 20);
    expect(c.quickAcks).toBe(0);
    // Our ACK of the last segment was lost; the peer sends that segment again.
    p.advance(20);
    burst(p, P, S, [off - MSS]);
    const a = p.one();
    expect(a.ack).toBe(seq(P, off));
    expect(blocks(a, P)).toEqual([off - MSS, off]);
    // Quick ACKs again: each new segment is acknowledged on its own.
    for (let i = 0; i < 4; i++) {
      p.advance(1);
      burst(p, P, S, [off]);
      off += MSS;
      expect(p.one().ack).toBe(seq(P, off));
    }
  });

  it('RFC 9293 §3.8.6.2.2: while data waits out of order the right edge of the window does not move back (by less than one scale unit at most, RFC 7323 Appendix F), and all arrives', () => {
    const p = tcpPeer();
    const { c, S, P, wscale } = established(p);
    let off = pastQuickAcks(p, P, S, 0, 20);
    let edge = 0;
    const check = (a: SentSeg): void => {
      const e = ((a.ack - P) | 0) + (a.wnd << wscale);
      // RFC 7323 Appendix F: with the buffer short of a whole scale unit, the edge may
      // recede by less than one unit (tcp-window.test.ts), never by one or more.
      expect(e).toBeGreaterThan(edge - (1 << wscale));
      edge = Math.max(edge, e);
    };
    // One segment in every 20 is lost and comes back 10 segments later; the rest arrive in pairs.
    const lost: number[] = [];
    for (let round = 0; round < 30; round++) {
      const offs: number[] = [];
      for (let k = 0; k < 2; k++, off += MSS) if ((off / MSS) % 20 !== 7) offs.push(off);
      else lost.push(off);
      if (lost.length > 0 && lost[0] + 10 * MSS < off) offs.unshift(lost.shift()!);
      burst(p, P, S, offs);
      for (const a of p.take()) check(a);
      p.advance(1);
    }
    for (const l of lost) {
      burst(p, P, S, [l]);
      for (const a of p.take()) check(a);
    }
    p.advance(50);
    for (const a of p.take()) check(a);
    expect(c.oooBytes).toBe(0);
    expect(p.stack.mib.TcpExtTCPRcvQDrop).toBe(0);
    expect(seq(c.rcvNxt, 0)).toBe(seq(P, off));
  });
});
