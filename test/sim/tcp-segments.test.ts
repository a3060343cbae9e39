/**
 * RFC 9293 §3.10's event processing, driven segment by segment at explicit
 * instants: one stack on a sim wire, the peer played by hand (helpers/tcp-segments.ts).
 */
import { describe, expect, it } from 'vitest';
import { PEER, Recorder, US, acceptFrom, linuxSynOpts, tcpPeer, type TcpPeer } from '../helpers/tcp-segments.js';
import { settle } from '../helpers/tcp-sim.js';
import { ip, simPair } from '../helpers/sim.js';
import { TcpState } from '../../src/tcp/state.js';
import { TCPOPT_MSS, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_WINDOW } from '../../src/wire/tcp.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

const seq = (a: number, n: number): number => (a + n) >>> 0;

/** An established connection from a passive open, with both sides' next sequence numbers. */
function established(p: TcpPeer, o: Parameters<typeof acceptFrom>[1] = {}) {
  const h = acceptFrom(p, { rttMs: 100, ...o });
  p.take();
  return { ...h, S: seq(h.iss, 1), P: seq(h.irs, 1) };
}

function bytes(n: number, fill = 0x61): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

describe('LISTEN (RFC 9293 §3.10.7.2)', () => {
  it('RFC 9293 §3.10.7.2, RFC 7323 §1.3, RFC 2018 §2: a SYN gets a SYN-ACK with the options it offered, in Linux order, window 65160', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts(7), wnd: 64240 });
    const sa = p.one();
    expect(sa.flags).toBe('SA');
    expect(sa.ack).toBe(1001);
    expect([sa.src, sa.dst, sa.sport, sa.dport]).toEqual([US, PEER, 80, 40000]);
    // Linux tcp_options_write: MSS, SACK_PERM sharing a word with TS, NOP + WS.
    expect(sa.optKinds).toEqual([TCPOPT_MSS, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_NOP, TCPOPT_WINDOW]);
    expect(sa.opts.mss).toBe(1460);
    expect(sa.opts.wscale).toBe(10);
    expect(sa.opts.ts?.ecr).toBe(p.tsVal());
    // RFC 7323 §2.2: not scaled; Linux rounds 65535 down to whole segments of 1460 - 12.
    expect(sa.wnd).toBe(65160);
    expect(p.stack.tcp.lookup(0x0a000002, 80, 0x0a000001, 40000)?.state).toBe(TcpState.SYN_RECEIVED);
  });

  it('RFC 7323 §1.3, RFC 2018 §2: a SYN with only an MSS gets a SYN-ACK with only an MSS, window 64240', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'S', opts: { mss: 1400, ts: null } });
    const sa = p.one();
    expect(sa.optKinds).toEqual([TCPOPT_MSS]);
    expect(sa.opts).toEqual({ mss: 1460 });
    expect(sa.wnd).toBe(64240);
  });

  it('RFC 2018 §2, RFC 7323 §2.2: SACK and window scale without timestamps: NOP NOP SACK_PERM, NOP WS', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'S', opts: { mss: 1460, sackPermitted: true, wscale: 2, ts: null } });
    const sa = p.one();
    expect(sa.optKinds).toEqual([TCPOPT_MSS, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOPT_NOP, TCPOPT_WINDOW]);
    expect(sa.wnd).toBe(64240);
  });

  it('RFC 7323 §1.3: timestamps without SACK: NOP NOP TS, and no window scale when the SYN had none', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'S', opts: { mss: 1460, ts: 'auto' } });
    const sa = p.one();
    expect(sa.optKinds).toEqual([TCPOPT_MSS, TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP]);
    expect(sa.opts.wscale).toBeUndefined();
  });

  it('RFC 9293 §3.10.7.2: an ACK to a listener gets <SEQ=SEG.ACK><CTL=RST>', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, ack: 777777, flags: 'A' });
    const r = p.one();
    expect([r.flags, r.seq, r.ack]).toEqual(['R', 777777, 0]);
    expect(p.stack.mib.TcpOutRsts).toBe(1);
    expect(p.stack.tcp.connections.size).toBe(0);
  });

  it('RFC 9293 §3.10.7.2: a RST to a listener is ignored, and so is a segment with neither SYN, ACK nor RST', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'R' });
    p.send({ seq: 1000, ack: 5, flags: 'RA' });
    p.send({ seq: 1000, flags: 'P', data: 'data' });
    p.advance(5000);
    expect(p.take()).toEqual([]);
    expect(p.stack.tcp.connections.size).toBe(0);
  });
});

describe('SYN-RECEIVED (RFC 9293 §3.10.7.4)', () => {
  it('RFC 9293 §3.10.7.4: in SYN-RECEIVED an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>; the handshake can still complete', () => {
    const p = tcpPeer();
    const { accepted } = p.listen();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const sa = p.one();
    p.send({ seq: 1001, ack: seq(sa.seq, 5), flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['R', seq(sa.seq, 5), 0]]);
    expect(accepted).toHaveLength(0);
    // The good ACK, with data: established, and the data delivered.
    p.send({ seq: 1001, ack: seq(sa.seq, 1), flags: 'PA', data: 'GET /' });
    expect(accepted).toHaveLength(1);
    expect(accepted[0].state).toBe(TcpState.ESTABLISHED);
    expect((accepted[0].user as Recorder).text()).toBe('GET /');
  });

  it('RFC 9293 §3.10.7.4: the SYN again in SYN-RECEIVED (our SYN-ACK was lost) gets the same SYN-ACK again', () => {
    const p = tcpPeer();
    p.listen();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const sa = p.one();
    p.advance(300);
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const again = p.one();
    expect([again.flags, again.seq, again.ack]).toEqual(['SA', sa.seq, 1001]);
    expect(p.stack.tcp.connections.size).toBe(1);
  });

  it('RFC 9293 §3.10.7.4 second check: a RST in SYN-RECEIVED from a passive open returns to LISTEN silently', () => {
    const p = tcpPeer();
    const { listener, accepted } = p.listen();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    p.take();
    expect(listener.synQueue).toBe(1);
    p.send({ seq: 1001, flags: 'R' });
    expect(listener.synQueue).toBe(0);
    expect(p.stack.tcp.connections.size).toBe(0);
    expect(accepted).toHaveLength(0);
    p.advance(10_000);
    expect(p.take()).toEqual([]);
    // The listener still listens.
    p.send({ seq: 2000, flags: 'S', opts: linuxSynOpts() });
    expect(p.one().flags).toBe('SA');
  });
});

describe('CLOSED (RFC 9293 §3.10.7.1)', () => {
  it('RFC 9293 §3.10.7.1: a SYN to a closed port gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>', () => {
    const p = tcpPeer();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const r = p.one();
    expect([r.flags, r.seq, r.ack, r.wnd]).toEqual(['RA', 0, 1001, 0]);
    expect(r.optKinds).toEqual([]);
    // SEG.LEN counts data and FIN too.
    p.send({ seq: 7, flags: 'F', data: 'abc' });
    const r2 = p.one();
    expect([r2.flags, r2.seq, r2.ack]).toEqual(['RA', 0, 11]);
  });

  it('RFC 9293 §3.10.7.1: an ACK to a closed port gets <SEQ=SEG.ACK><CTL=RST>', () => {
    const p = tcpPeer();
    p.send({ seq: 1000, ack: 0xfffffff0, flags: 'PA', data: 'xyz' });
    const r = p.one();
    expect([r.flags, r.seq, r.ack]).toEqual(['R', 0xfffffff0, 0]);
  });

  it('RFC 9293 §3.10.7.1: a RST to a closed port is discarded', () => {
    const p = tcpPeer();
    p.send({ seq: 1000, flags: 'R' });
    p.send({ seq: 1000, ack: 1, flags: 'RA' });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpOutRsts).toBe(0);
  });
});

describe('SYN-SENT (RFC 9293 §3.10.7.3)', () => {
  it('RFC 9293 §3.10.7.3: an ACK outside (ISS, SND.NXT] gets <SEQ=SEG.ACK><CTL=RST> and the connection keeps waiting', () => {
    const p = tcpPeer();
    const { c } = p.connect();
    const syn = p.one();
    p.send({ seq: 5000, ack: syn.seq, flags: 'SA', opts: linuxSynOpts() });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['R', syn.seq, 0]]);
    p.send({ seq: 5000, ack: seq(syn.seq, 2), flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['R', seq(syn.seq, 2), 0]]);
    expect(c.state).toBe(TcpState.SYN_SENT);
  });

  it('RFC 9293 §3.10.7.3: a RST with an unacceptable ACK, or without ACK, is dropped', () => {
    const p = tcpPeer();
    const { c, user } = p.connect();
    const syn = p.one();
    p.send({ seq: 0, ack: seq(syn.seq, 5), flags: 'RA' });
    p.send({ seq: 0, flags: 'R' });
    expect(p.take()).toEqual([]);
    expect(c.state).toBe(TcpState.SYN_SENT);
    expect(user.closed).toBeUndefined();
  });

  it('RFC 9293 §3.10.7.3: a RST with an acceptable ACK refuses the connection (ECONNREFUSED)', () => {
    const p = tcpPeer();
    const { c, user } = p.connect();
    const syn = p.one();
    p.send({ seq: 0, ack: seq(syn.seq, 1), flags: 'RA' });
    expect(user.closed).toBe('ECONNREFUSED');
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.lookup()).toBeNull();
    expect(p.stack.mib.TcpAttemptFails).toBe(1);
    expect(p.take()).toEqual([]);
    // Nothing is retransmitted afterwards.
    p.advance(10_000);
    expect(p.take()).toEqual([]);
  });

  it('RFC 9293 §3.10.7.3: a SYN-ACK acknowledging our SYN establishes the connection and is acknowledged', () => {
    const p = tcpPeer();
    const { c, user } = p.connect();
    const syn = p.one();
    // The SYN as this kernel sends it: MSS, SACK_PERM + TS, NOP + WS 10, window 64240.
    expect(syn.optKinds).toEqual([TCPOPT_MSS, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP, TCPOPT_NOP, TCPOPT_WINDOW]);
    expect([syn.opts.mss, syn.opts.wscale, syn.opts.ts?.ecr, syn.wnd]).toEqual([1460, 10, 0, 64240]);
    p.advance(100);
    p.send({ seq: 5000, ack: seq(syn.seq, 1), flags: 'SA', opts: linuxSynOpts(7), wnd: 65160 });
    const a = p.one();
    expect([a.flags, a.seq, a.ack]).toEqual(['A', seq(syn.seq, 1), 5001]);
    expect(a.opts.ts?.ecr).toBe(p.tsVal());
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(user.connected).toBe(true);
    // RFC 7323 §2.2: the SYN-ACK's window is taken unscaled; the RTT came from the timestamps.
    expect(c.sndWnd).toBe(65160);
    expect(c.sndWscale).toBe(7);
    expect(c.srttUs).toBe(100_000);
  });

  it('RFC 9293 §3.5 figure 8: a SYN without ACK is a simultaneous open: SYN-ACK with our ISS, then established by the peer SYN-ACK', () => {
    const p = tcpPeer();
    const { c, user } = p.connect();
    const syn = p.one();
    p.send({ seq: 5000, flags: 'S', opts: linuxSynOpts(7) });
    const sa = p.one();
    expect([sa.flags, sa.seq, sa.ack]).toEqual(['SA', syn.seq, 5001]);
    expect(sa.opts.mss).toBe(1460);
    expect(c.state).toBe(TcpState.SYN_RECEIVED);
    // The peer, also in SYN-RECEIVED, answers our SYN with its SYN-ACK.
    p.send({ seq: 5000, ack: seq(syn.seq, 1), flags: 'SA', opts: linuxSynOpts(7) });
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(user.connected).toBe(true);
    // No SYN-ACK again: at most an ACK for the duplicate SYN.
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(syn.seq, 1), 5001]]);
    // Data flows.
    p.send({ seq: 5001, ack: seq(syn.seq, 1), flags: 'PA', data: 'hi' });
    expect(user.text()).toBe('hi');
  });

  it('RFC 9293 §3.5 figure 8: in a simultaneous open, a plain ACK of our SYN establishes the connection', () => {
    const p = tcpPeer();
    const { c, user } = p.connect();
    const syn = p.one();
    p.send({ seq: 5000, flags: 'S', opts: linuxSynOpts(7) });
    p.take();
    p.send({ seq: 5001, ack: seq(syn.seq, 1), flags: 'A' });
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(user.connected).toBe(true);
    expect(p.take()).toEqual([]);
  });
});

describe('Simultaneous open between two stacks (RFC 9293 §3.5)', () => {
  it('RFC 9293 §3.5 figure 8: two stacks that connect to each other at the same instant both reach ESTABLISHED, with a handful of segments', () => {
    const p = simPair({ impair: { delayMs: 5 } });
    const ca = p.a.tcp.newConnection();
    const cb = p.b.tcp.newConnection();
    const ua = new Recorder();
    const ub = new Recorder();
    ca.user = ua;
    cb.user = ub;
    expect(p.a.tcp.activeOpen(ca, ip('10.0.0.2'), 6000, 0, 5000)).toBeNull();
    expect(p.b.tcp.activeOpen(cb, ip('10.0.0.1'), 5000, 0, 6000)).toBeNull();
    p.time.advance(100);
    expect([ca.state, cb.state]).toEqual([TcpState.ESTABLISHED, TcpState.ESTABLISHED]);
    expect([ua.connected, ub.connected]).toEqual([true, true]);
    // SYN, SYN-ACK and an ACK each way; no SYN-ACK storm.
    expect(p.a.mib.TcpOutSegs + p.b.mib.TcpOutSegs).toBeLessThanOrEqual(6);
    ca.write(Buffer.from('from a'));
    p.a.tcp.batched(() => ca.output());
    p.time.advance(100);
    expect(ub.text()).toBe('from a');
  });
});

describe('ESTABLISHED: the acceptability test and RFC 5961', () => {
  it('RFC 9293 §3.10.7.4 first check, tcp_invalid_ratelimit: an unacceptable ACK-only segment gets an ACK, at most one per 500 ms', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    const far = seq(P, 10_000_000);
    p.send({ seq: far, ack: S, flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    p.advance(499);
    p.send({ seq: far, ack: S, flags: 'A' });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtTCPACKSkippedSeq).toBe(1);
    p.advance(1);
    p.send({ seq: far, ack: S, flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', P]]);
    expect(c.state).toBe(TcpState.ESTABLISHED);
  });

  it('RFC 9293 §3.10.7.4 first check, Linux tcp_oow_rate_limited: unacceptable segments with data are always acknowledged', () => {
    const p = tcpPeer();
    const { user, S, P } = established(p);
    p.send({ seq: P, ack: S, flags: 'PA', data: 'abcd' });
    p.take();
    // The same data again, twice within the rate limit: old data, each a duplicate to report.
    p.send({ seq: P, ack: S, flags: 'PA', data: 'abcd' });
    p.advance(10);
    p.send({ seq: P, ack: S, flags: 'PA', data: 'abcd' });
    const acks = p.take();
    expect(acks.map((s) => [s.flags, s.ack])).toEqual([
      ['A', seq(P, 4)],
      ['A', seq(P, 4)],
    ]);
    // RFC 2883: each reports the duplicate.
    expect(acks.map((s) => Array.from(s.opts.sack ?? []))).toEqual([
      [P, seq(P, 4)],
      [P, seq(P, 4)],
    ]);
    // Beyond the window, too.
    p.send({ seq: seq(P, 5_000_000), ack: S, flags: 'PA', data: 'zz' });
    p.send({ seq: seq(P, 5_000_000), ack: S, flags: 'PA', data: 'zz' });
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([
      ['A', seq(P, 4)],
      ['A', seq(P, 4)],
    ]);
    expect(user.text()).toBe('abcd');
  });

  it('RFC 5961 §3.2: a RST exactly at RCV.NXT resets the connection (ECONNRESET)', () => {
    const p = tcpPeer();
    const { c, user, P } = established(p);
    p.send({ seq: P, flags: 'R' });
    expect(user.closed).toBe('ECONNRESET');
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.lookup()).toBeNull();
    expect(p.stack.mib.TcpEstabResets).toBe(1);
    expect(p.stack.mib.TcpCurrEstab).toBe(0);
    expect(p.take()).toEqual([]);
  });

  it('RFC 5961 §3.2: a RST in the window but not at RCV.NXT draws a challenge ACK and changes nothing', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.send({ seq: seq(P, 1), flags: 'R' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    expect(p.stack.mib.TcpExtTCPChallengeACK).toBe(1);
    // RFC 5961 §7 / tcp_invalid_ratelimit: the next one within 500 ms gets nothing.
    p.advance(100);
    p.send({ seq: seq(P, 100), flags: 'R' });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtTCPACKSkippedChallenge).toBe(1);
    // Out of the window: silently dropped.
    p.advance(1000);
    p.send({ seq: seq(P, 50_000_000), flags: 'R' });
    expect(p.take()).toEqual([]);
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(user.closed).toBeUndefined();
  });

  it('RFC 5961 §4.2: a SYN in a synchronized state draws a challenge ACK and changes nothing', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.send({ seq: seq(P, 10), flags: 'S', opts: linuxSynOpts() });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    expect(p.stack.mib.TcpExtTCPChallengeACK).toBe(1);
    expect(c.state).toBe(TcpState.ESTABLISHED);
  });

  it('RFC 9293 §3.10.7.4 fifth check: an ACK of something not yet sent gets an ACK and the segment is dropped', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.send({ seq: P, ack: seq(S, 1000), flags: 'PA', data: 'evil' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    expect(user.text()).toBe('');
    expect(c.rcvNxt).toBe(P);
    expect(c.sndUna).toBe(S);
  });

  it('RFC 5961 §5.2 as Linux bounds it: an ACK below SND.UNA - min(MAX.SND.WND, bytes acknowledged) draws a challenge ACK and the data is dropped', () => {
    const p = tcpPeer();
    // The peer offers no window scaling: MAX.SND.WND is 65535.
    const { user, S, P } = established(p, { opts: { mss: 1460, sackPermitted: true, ts: 'auto' } });
    p.send({ seq: P, ack: seq(S, -70_000), flags: 'PA', data: 'evil' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    expect(p.stack.mib.TcpExtTCPChallengeACK).toBe(1);
    expect(user.text()).toBe('');
    // Within the window but older than anything acknowledged (only our SYN was): challenged too.
    p.advance(1000);
    p.send({ seq: P, ack: seq(S, -60_000), flags: 'PA', data: 'evil' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, P]]);
    expect(p.stack.mib.TcpExtTCPChallengeACK).toBe(2);
    expect(user.text()).toBe('');
    // An old ACK within what was acknowledged (the SYN) is fine: the data is taken.
    p.send({ seq: P, ack: seq(S, -1), flags: 'PA', data: 'good' });
    expect(user.text()).toBe('good');
  });

  it('RFC 7323 §5.3: PAWS drops a segment whose TSval is older than TS.Recent (TcpExtPAWSEstab) and acknowledges', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    const recent = c.tsRecent;
    p.send({ seq: P, ack: S, flags: 'PA', data: 'old', opts: { ts: { val: recent - 2, ecr: p.lastTsVal } } });
    expect(p.stack.mib.TcpExtPAWSEstab).toBe(1);
    expect(user.text()).toBe('');
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', P]]);
    // One tick behind passes, as Linux's TCP_PAWS_WINDOW allows; the same TSval too.
    p.advance(600);
    p.send({ seq: P, ack: S, flags: 'PA', data: 'new', opts: { ts: { val: recent - 1, ecr: p.lastTsVal } } });
    expect(user.text()).toBe('new');
    p.send({ seq: seq(P, 3), ack: S, flags: 'PA', data: '!', opts: { ts: { val: recent, ecr: p.lastTsVal } } });
    expect(user.text()).toBe('new!');
  });
});

describe('ESTABLISHED: data', () => {
  it('RFC 9293 §3.8.5, RFC 6093 §2 (tcp_stdurg=0): the urgent byte, before the urgent pointer, leaves the stream; the rest arrives intact', () => {
    const p = tcpPeer();
    const { user, S, P } = established(p);
    p.send({ seq: P, ack: S, flags: 'PUA', urg: 5, data: 'hello!world' });
    expect(user.text()).toBe('hell!world');
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, 11)]]);
    // Later data is not touched.
    p.send({ seq: seq(P, 11), ack: S, flags: 'PA', data: 'more' });
    expect(user.text()).toBe('hell!worldmore');
  });

  it('RFC 9293 §3.8.6.2: out-of-order data anywhere in the offered window is kept, its queued bytes counted once against the buffer', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    // The window offered in the SYN-ACK (65160) fits a 100000-byte buffer with room to
    // spare, however much of it waits out of order.
    c.rcvBufSize = 100_000;
    const d = (off: number, n: number) => ({ seq: seq(P, off), ack: S, flags: 'A', data: bytes(n, 0x30 + ((off / 1000) % 10)) });
    for (let off = 1000; off < 65_000; off += 1000) p.send(d(off, 1000));
    p.take();
    expect(p.stack.mib.TcpExtTCPRcvQDrop).toBe(0);
    expect(c.oooBytes).toBe(64_000);
    // The hole fills: everything is delivered in order.
    p.send(d(0, 1000));
    expect(user.bytes).toBe(65_000);
    expect(c.oooBytes).toBe(0);
  });

  it('RFC 5681 §4.2, RFC 2018 §4, RFC 2883: out-of-order data is acknowledged at once with SACK blocks, the newest first, and duplicates as D-SACK', () => {
    const p = tcpPeer();
    const { user, S, P } = established(p);
    const d = (off: number, n: number, fill: number) => ({ seq: seq(P, off), ack: S, flags: 'A', data: bytes(n, fill) });
    const blocks = (s: { opts: { sack?: ArrayLike<number> } }) => Array.from(s.opts.sack ?? [], (x) => (x - P) | 0);
    p.send(d(1000, 1000, 0x62));
    let a = p.one();
    expect([a.flags, a.ack]).toEqual(['A', P]);
    expect(blocks(a)).toEqual([1000, 2000]);
    p.send(d(3000, 1000, 0x64));
    a = p.one();
    expect(blocks(a)).toEqual([3000, 4000, 1000, 2000]);
    // A duplicate of queued data: D-SACK first, then the block that holds it (RFC 2883 §4).
    p.send(d(1000, 1000, 0x62));
    a = p.one();
    expect(blocks(a)).toEqual([1000, 2000, 1000, 2000, 3000, 4000]);
    expect(p.stack.mib.TcpExtTCPDSACKOfoSent).toBe(1);
    // The hole fills: the cumulative ACK jumps, the other block remains.
    p.send(d(0, 1000, 0x61));
    a = p.one();
    expect(a.ack).toBe(seq(P, 2000));
    expect(blocks(a)).toEqual([3000, 4000]);
    // A duplicate below RCV.NXT: a D-SACK block beside the SACK block.
    p.send(d(0, 500, 0x61));
    a = p.one();
    expect(a.ack).toBe(seq(P, 2000));
    expect(blocks(a)).toEqual([0, 500, 3000, 4000]);
    expect(p.stack.mib.TcpExtTCPDSACKOldSent).toBe(1);
    p.send(d(2000, 1000, 0x63));
    a = p.one();
    expect(a.ack).toBe(seq(P, 4000));
    expect(a.opts.sack).toBeUndefined();
    expect(user.text()).toBe('a'.repeat(1000) + 'b'.repeat(1000) + 'c'.repeat(1000) + 'd'.repeat(1000));
  });

  it('RFC 7323 §2.3: windows after the SYN are scaled both ways', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    // The peer's shift is 7: a field of 4 is 512 bytes.
    p.send({ seq: P, ack: S, flags: 'A', wnd: 4 });
    expect(c.sndWnd).toBe(512);
    c.write(bytes(5000));
    p.stack.tcp.batched(() => c.output());
    p.advance(0);
    const out = p.take();
    expect(out.map((s) => [s.seq, s.data.length])).toEqual([[S, 512]]);
    // Our shift is 10: the field times 1024 is the free buffer, 128 KiB.
    expect(out[0].wnd).toBe(128);
    expect(out[0].wnd << 10).toBe(c.rcvBufSize);
    p.send({ seq: P, ack: seq(S, 512), flags: 'A', wnd: 100 });
    expect(c.sndWnd).toBe(12800);
    // Three full segments; Nagle (RFC 896) holds the short rest while they are unacknowledged.
    expect(p.take().map((s) => [(s.seq - S) | 0, s.data.length])).toEqual([
      [512, 1448],
      [1960, 1448],
      [3408, 1448],
    ]);
    p.send({ seq: P, ack: seq(S, 4856), flags: 'A', wnd: 100 });
    expect(p.take().map((s) => [(s.seq - S) | 0, s.data.length])).toEqual([[4856, 144]]);
  });
});

describe('FIN processing (RFC 9293 §3.10.7.4, eighth step)', () => {
  it('RFC 9293 §3.10.7.4: ESTABLISHED -> CLOSE_WAIT on a FIN, which is acknowledged; LAST_ACK -> CLOSED when ours is', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.send({ seq: P, ack: S, flags: 'FA' });
    expect(c.state).toBe(TcpState.CLOSE_WAIT);
    expect(user.eof).toBe(true);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', S, seq(P, 1)]]);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['FA', S, seq(P, 1)]]);
    expect(c.state).toBe(TcpState.LAST_ACK);
    p.send({ seq: seq(P, 1), ack: seq(S, 1), flags: 'A' });
    expect(c.state).toBe(TcpState.CLOSED);
    expect(user.closed).toBeNull();
    expect(p.lookup()).toBeNull();
    expect(p.take()).toEqual([]);
  });

  it('RFC 9293 §3.10.7.4: FIN_WAIT_1 -> FIN_WAIT_2 when our FIN is acknowledged, -> TIME_WAIT on the peer FIN', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['FA', S, P]]);
    expect(c.state).toBe(TcpState.FIN_WAIT_1);
    p.send({ seq: P, ack: seq(S, 1), flags: 'A' });
    expect(c.state).toBe(TcpState.FIN_WAIT_2);
    expect(p.take()).toEqual([]);
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    // Linux tcp_time_wait: the connection closes and a TIME_WAIT record holds its 4-tuple.
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.lookup()).toBeNull();
    expect([p.timeWait()?.sndNxt, p.timeWait()?.rcvNxt]).toEqual([seq(S, 1), seq(P, 1)]);
    expect(p.stack.tcp.timeWaitCount).toBe(1);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(S, 1), seq(P, 1)]]);
  });

  it('RFC 9293 §3.10.7.4: FIN_WAIT_1 -> TIME_WAIT at once on a FIN that also acknowledges ours', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.take();
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.timeWait()).not.toBeNull();
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, 1)]]);
  });

  it('RFC 9293 §3.6 figure 13 (simultaneous close): FIN_WAIT_1 -> CLOSING on the peer FIN, -> TIME_WAIT when ours is acknowledged', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    expect(p.take().map((s) => s.flags)).toEqual(['FA']);
    // The peer's FIN crossed ours: it acknowledges only up to our FIN.
    p.send({ seq: P, ack: S, flags: 'FA' });
    expect(c.state).toBe(TcpState.CLOSING);
    expect(user.eof).toBe(true);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(S, 1), seq(P, 1)]]);
    p.send({ seq: seq(P, 1), ack: seq(S, 1), flags: 'A' });
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.timeWait()).not.toBeNull();
    expect(p.take()).toEqual([]);
  });

  it('RFC 9293 §3.10.7.4: TIME_WAIT lasts exactly 2 MSL = 60 s, restarted by a retransmitted FIN', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.take();
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    p.take();
    const t0 = p.time.now();
    expect(p.timeWait()).not.toBeNull();
    expect(user.closed).toBeNull();
    // The FIN again at 30 s: acknowledged again, the wait starts over.
    p.advanceTo(t0 + 30_000);
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(S, 1), seq(P, 1)]]);
    p.advanceTo(t0 + 89_999);
    expect(p.timeWait()).not.toBeNull();
    expect(p.lookup()).toBeNull();
    // Linux __inet_twsk_schedule: LINUX_MIB_TIMEWAITED counts a TIME_WAIT as its timer is
    // first set, once, however often a retransmitted FIN restarts it.
    expect(p.stack.mib.TcpExtTW).toBe(1);
    p.advance(1);
    expect(p.timeWait()).toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(0);
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtTW).toBe(1);
  });

  it('RFC 9293 §3.10.7.4: TIME_WAIT without a retransmitted FIN ends at exactly 60 s', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    const t0 = p.time.now();
    p.advanceTo(t0 + 59_999);
    expect(p.timeWait()).not.toBeNull();
    p.advance(1);
    expect(p.timeWait()).toBeNull();
    // The port answers as a closed one.
    p.take();
    p.send({ seq: seq(P, 1), ack: seq(S, 1), flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.seq])).toEqual([['R', seq(S, 1)]]);
  });

  it('RFC 9293 §3.10.7.4: in CLOSE_WAIT more data is acknowledged but not delivered; a RST in LAST_ACK closes', () => {
    const p = tcpPeer();
    const { c, user, S, P } = established(p);
    p.send({ seq: P, ack: S, flags: 'PFA', data: 'bye' });
    expect(user.text()).toBe('bye');
    expect(c.state).toBe(TcpState.CLOSE_WAIT);
    p.take();
    p.send({ seq: seq(P, 4), ack: S, flags: 'PA', data: 'after' });
    expect(user.text()).toBe('bye');
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, 4)]]);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    expect(c.state).toBe(TcpState.LAST_ACK);
    p.take();
    p.send({ seq: seq(P, 4), flags: 'R' });
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.lookup()).toBeNull();
  });

  it('RFC 1337 left off (tcp_rfc1337=0, as Linux): a RST in TIME_WAIT ends it at once', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    expect(p.timeWait()).not.toBeNull();
    p.advance(1000);
    p.send({ seq: seq(P, 1), flags: 'R' });
    expect(p.timeWait()).toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(0);
    expect(p.lookup()).toBeNull();
  });

  it('RFC 6191: a SYN with a newer timestamp ends TIME_WAIT and opens a new connection on the same ports', () => {
    const p = tcpPeer();
    const { c, S, P, listener } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.send({ seq: P, ack: seq(S, 1), flags: 'FA' });
    expect(p.timeWait()).not.toBeNull();
    p.take();
    p.advance(5000);
    p.send({ seq: seq(P, 100_000), flags: 'S', opts: linuxSynOpts() });
    const sa = p.one();
    expect([sa.flags, sa.ack]).toEqual(['SA', seq(P, 100_001)]);
    // tcp_timewait_state_process: the new connection's ISN is the old snd_nxt + 65535 + 2.
    expect(sa.seq).toBe(seq(S, 1 + 65537));
    expect(p.timeWait()).toBeNull();
    expect(p.lookup()?.state).toBe(TcpState.SYN_RECEIVED);
    expect(listener.synQueue).toBe(1);
  });

  it('tcp_fin_timeout: an orphan in FIN_WAIT_2 becomes a FIN_WAIT_2 record, gone 60 s after our FIN was acknowledged, silently as in Linux', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.close(false));
    p.advance(0);
    expect(p.take().map((s) => s.flags)).toEqual(['FA']);
    p.advance(50);
    p.send({ seq: P, ack: seq(S, 1), flags: 'A' });
    const t0 = p.time.now();
    // tcp_rcv_state_process: tcp_time_wait(sk, TCP_FIN_WAIT2, tmo); the connection is released.
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.lookup()).toBeNull();
    expect(p.timeWait()?.substate).toBe(TcpState.FIN_WAIT_2);
    p.advanceTo(t0 + 59_999);
    expect(p.timeWait()).not.toBeNull();
    p.advance(1);
    expect(p.timeWait()).toBeNull();
    // The record expires without a RST.
    expect(p.take()).toEqual([]);
  });

  it('RFC 1122 §4.2.2.13: new data reaching a closed (orphaned) connection in FIN_WAIT_1 or FIN_WAIT_2 is answered with RST (the connection: TcpExtTCPAbortOnData; the FIN_WAIT_2 record: TCP_TW_RST)', () => {
    for (const ackOurFin of [false, true]) {
      const p = tcpPeer();
      const { c, S, P } = established(p);
      p.stack.tcp.batched(() => c.close(false));
      p.advance(0);
      expect(p.take().map((s) => s.flags)).toEqual(['FA']);
      const ack = ackOurFin ? seq(S, 1) : S;
      if (ackOurFin) p.send({ seq: P, ack, flags: 'A' });
      expect(c.state).toBe(ackOurFin ? TcpState.CLOSED : TcpState.FIN_WAIT_1);
      expect(p.timeWait()?.substate ?? null).toBe(ackOurFin ? TcpState.FIN_WAIT_2 : null);
      p.send({ seq: P, ack, flags: 'PA', data: 'too late' });
      // Linux tcp_rcv_state_process: tcp_reset, and tcp_v4_send_reset answers the segment;
      // from a FIN_WAIT_2 timewait sock, tcp_timewait_state_process's TCP_TW_RST does the same.
      expect(p.take().map((s) => [s.flags, s.seq])).toEqual([['R', ack]]);
      expect(c.state).toBe(TcpState.CLOSED);
      expect(p.lookup()).toBeNull();
      expect(p.timeWait()).toBeNull();
      expect(p.stack.mib.TcpExtTCPAbortOnData).toBe(ackOurFin ? 0 : 1);
    }
  });

  it('new data in the segment that acknowledges our FIN: the orphan is aborted there (TcpExtTCPAbortOnData), no record', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.close(false));
    p.advance(0);
    p.take();
    p.send({ seq: P, ack: seq(S, 1), flags: 'PA', data: 'too late' });
    expect(p.take().map((s) => [s.flags, s.seq])).toEqual([['R', seq(S, 1)]]);
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.timeWait()).toBeNull();
    expect(p.stack.mib.TcpExtTCPAbortOnData).toBe(1);
  });

  it('tcp_fin_timeout applies to orphans only: a half-closed socket waits in FIN_WAIT_2 for the peer', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    p.stack.tcp.batched(() => c.shutdownWrite());
    p.advance(0);
    p.send({ seq: P, ack: seq(S, 1), flags: 'A' });
    p.advance(600_000);
    expect(c.state).toBe(TcpState.FIN_WAIT_2);
    p.send({ seq: P, ack: seq(S, 1), flags: 'PA', data: 'late' });
    expect((c.user as Recorder).text()).toBe('late');
  });

  it('RFC 9293 §3.10.4, RFC 2525 §2.17: closing a socket with unread data sends RST (TcpExtTCPAbortOnClose)', async () => {
    const p = tcpPeer();
    const sockets: TcpSocket[] = [];
    const server = p.stack.tcp.createServer({ pauseOnConnect: true }, (s) => sockets.push(s));
    server.listen(80);
    await settle();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const sa = p.one();
    const S = seq(sa.seq, 1);
    p.send({ seq: 1001, ack: S, flags: 'A' });
    p.send({ seq: 1001, ack: S, flags: 'PA', data: 'unread' });
    p.take();
    await settle();
    expect(sockets).toHaveLength(1);
    expect(sockets[0].readableLength).toBe(6);
    sockets[0].destroy();
    p.advance(0);
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['RA', S, 1007]]);
    expect(p.stack.mib.TcpExtTCPAbortOnClose).toBe(1);
    expect(p.lookup()).toBeNull();
  });
});

describe('ACK timing (RFC 9293 §3.8.6.3, RFC 5681 §4.2, Linux quick ACKs)', () => {
  it('RFC 9293 §3.8.6.3: quick ACKs at the start, then a delayed ACK 40 ms after a lone segment, and an ACK for every second full segment', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    const mss = c.rcvMss;
    expect(mss).toBe(1448);
    let off = 0;
    const seg = () => {
      p.send({ seq: seq(P, off), ack: S, flags: 'A', data: bytes(mss) });
      off += mss;
    };
    // Linux TCP_MAX_QUICKACKS: the first 16 segments are acknowledged one by one, at once.
    for (let i = 0; i < 16; i++) {
      seg();
      expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, off)]]);
      p.advance(10);
    }
    // Then a lone segment waits 40 ms (TCP_DELACK_MIN).
    seg();
    const t = p.time.now();
    expect(p.take()).toEqual([]);
    p.advance(39);
    expect(p.take()).toEqual([]);
    p.advance(1);
    const d = p.one();
    expect([d.at - t, d.ack]).toEqual([40, seq(P, off)]);
    expect(p.stack.mib.TcpExtDelayedACKs).toBe(1);
    // Two full segments: the second is acknowledged at once.
    p.advance(5);
    seg();
    expect(p.take()).toEqual([]);
    p.advance(1);
    seg();
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, off)]]);
    // A small segment alone is delayed too.
    p.advance(5);
    p.send({ seq: seq(P, off), ack: S, flags: 'PA', data: 'x' });
    p.advance(39);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.one().ack).toBe(seq(P, off + 1));
  });

  it('Linux pingpong mode: once a reply answers a request within the ACK timeout, requests get no quick ACK; the reply carries it, and a delayed ACK no reply took ends the mode', () => {
    const p = tcpPeer();
    const { c, S, P } = established(p);
    let off = 0;
    let sent = 0;
    const request = () => {
      p.send({ seq: seq(P, off), ack: seq(S, sent), flags: 'PA', data: 'GET' });
      off += 3;
    };
    const reply = () => {
      c.write(bytes(10));
      p.stack.tcp.batched(() => c.output());
      p.advance(0);
      sent += 10;
    };
    // The first request is in quick-ACK mode: a bare ACK at once, then the reply.
    request();
    expect(p.take().map((s) => [s.flags, s.ack, s.data.length])).toEqual([['A', seq(P, off), 0]]);
    p.advance(1);
    reply();
    expect(p.take().map((s) => [s.flags, s.ack, s.data.length])).toEqual([['PA', seq(P, off), 10]]);
    // tcp_event_data_sent: that reply came within the ACK timeout, so the next requests
    // wait for their replies (include/net/inet_connection_sock.h TCP_PINGPONG_THRESH).
    for (let i = 0; i < 3; i++) {
      p.advance(5);
      request();
      expect(p.take()).toEqual([]);
      p.advance(1);
      reply();
      expect(p.take().map((s) => [s.flags, s.ack, s.data.length])).toEqual([['PA', seq(P, off), 10]]);
    }
    expect(p.stack.mib.TcpExtDelayedACKs).toBe(0);
    // No reply: the delayed ACK goes 40 ms later and quick ACKs resume (tcp_delack_timer_handler).
    p.advance(5);
    request();
    p.advance(39);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.take().map((s) => [s.flags, s.ack, s.data.length])).toEqual([['A', seq(P, off), 0]]);
    expect(p.stack.mib.TcpExtDelayedACKs).toBe(1);
    p.advance(5);
    request();
    expect(p.take().map((s) => [s.flags, s.ack, s.data.length])).toEqual([['A', seq(P, off), 0]]);
  });
});
