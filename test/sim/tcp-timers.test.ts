/**
 * TCP's timers at exact instants of virtual time: SYN and SYN-ACK
 * retransmission, the data RTO and its backoff, keepalive, the persist timer,
 * and listeners under a SYN flood. The peer is played by hand (helpers/tcp-segments.ts).
 */
import { describe, expect, it } from 'vitest';
import { PEER, Recorder, US, acceptFrom, connectTo, linuxSynOpts, tcpPeer, type SentSeg, type TcpPeer } from '../helpers/tcp-segments.js';
import { ip } from '../helpers/sim.js';
import { TcpState } from '../../src/tcp/state.js';

const seq = (a: number, n: number): number => (a + n) >>> 0;
const rel = (segs: SentSeg[], t0: number): number[] => segs.map((s) => s.at - t0);

/** Advances `ms` one millisecond at a time, returning the instant (relative to t0) at which `done` first held, or -1. */
function when(p: TcpPeer, ms: number, t0: number, done: () => boolean): number {
  for (let i = 0; i < ms; i++) {
    if (done()) return p.time.now() - t0;
    p.advance(1);
  }
  return done() ? p.time.now() - t0 : -1;
}

describe('SYN and SYN-ACK retransmission', () => {
  it('tcp_syn_retries 6 + tcp_syn_linear_timeouts 4: SYNs at 0,1,2,3,4,5,7,11,19,35,67 s, ETIMEDOUT at 131 s (as this kernel does)', () => {
    const p = tcpPeer();
    expect(p.stack.sysctl.get('net.ipv4.tcp_syn_retries')).toBe(6);
    expect(p.stack.sysctl.get('net.ipv4.tcp_syn_linear_timeouts')).toBe(4);
    const t0 = p.time.now();
    const { c, user } = p.connect();
    p.advanceTo(t0 + 130_999);
    const syns = p.take();
    expect(rel(syns, t0)).toEqual([0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67].map((s) => s * 1000));
    // The same SYN every time.
    expect(new Set(syns.map((s) => `${s.flags} ${s.seq} ${s.optKinds.join(',')}`)).size).toBe(1);
    expect(user.closed).toBeUndefined();
    p.advance(1);
    expect(user.closed).toBe('ETIMEDOUT');
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpAttemptFails).toBe(1);
  });

  it('tcp_syn_linear_timeouts 0: the SYN backs off from the first retry (1, 3, 7 s ...)', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_syn_linear_timeouts', '0');
    p.stack.sysctl.set('net.ipv4.tcp_syn_retries', '3');
    const t0 = p.time.now();
    const { user } = p.connect();
    p.advanceTo(t0 + 14_999);
    expect(rel(p.take(), t0)).toEqual([0, 1000, 3000, 7000]);
    expect(user.closed).toBeUndefined();
    p.advance(1);
    expect(user.closed).toBe('ETIMEDOUT');
  });

  it('tcp_synack_retries 5: SYN-ACKs at 0,1,3,7,15,31 s, the half-open connection dropped silently at 63 s', () => {
    const p = tcpPeer();
    const { listener } = p.listen();
    const t0 = p.time.now();
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    p.advanceTo(t0 + 62_999);
    const sas = p.take();
    expect(rel(sas, t0)).toEqual([0, 1, 3, 7, 15, 31].map((s) => s * 1000));
    expect(sas.every((s) => s.flags === 'SA' && s.seq === sas[0].seq && s.ack === 1001)).toBe(true);
    expect(listener.synQueue).toBe(1);
    p.advance(1);
    expect(listener.synQueue).toBe(0);
    expect(p.stack.tcp.connections.size).toBe(0);
    expect(p.take()).toEqual([]);
  });
});

describe('Retransmission timeout (RFC 6298)', () => {
  it('RFC 6298 §5.5, §5.6: the RTO (300 ms for a 100 ms RTT) doubles at each expiry up to 120 s; tcp_retries2 = 15 ends it with ETIMEDOUT', () => {
    const p = tcpPeer();
    // The tail loss probe (RFC 8985 §7) off: the retransmission timer alone.
    p.stack.sysctl.set('net.ipv4.tcp_early_retrans', '0');
    const { c, user, iss, irs } = connectTo(p, { rttMs: 100 });
    // RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR) with Linux's 200 ms floor.
    expect(c.rtoMs()).toBe(300);
    c.write(new Uint8Array(1000).fill(7));
    const t0 = p.time.now();
    p.stack.tcp.batched(() => c.output());
    p.advance(0);
    const at = when(p, 1_000_000, t0, () => user.closed !== undefined);
    const sent = p.take();
    expect(sent.every((s) => s.seq === seq(iss, 1) && s.ack === seq(irs, 1) && s.data.length === 1000)).toBe(true);
    const expected = [0, 300, 900, 2100, 4500, 9300, 18900, 38100, 76500, 153300, 273300, 393300, 513300, 633300, 753300, 873300];
    expect(rel(sent, t0)).toEqual(expected);
    // Linux tcp_model_timeout(15, 200 ms) = 924.6 s have passed at the 16th expiry.
    expect(at).toBe(993300);
    expect(user.closed).toBe('ETIMEDOUT');
    expect(p.stack.mib.TcpExtTCPAbortOnTimeout).toBe(1);
    expect(p.stack.mib.TcpRetransSegs).toBe(15);
  });

  it('RFC 6298 §2.4 with Linux tcp_rto_min: a 1 ms RTT gives an RTO of 201 ms, then 402, 804 ms', () => {
    const p = tcpPeer();
    // The tail loss probe (RFC 8985 §7) off: the retransmission timer alone.
    p.stack.sysctl.set('net.ipv4.tcp_early_retrans', '0');
    const { c } = connectTo(p, { rttMs: 1 });
    expect(c.rtoMs()).toBe(201);
    c.write(new Uint8Array(100));
    const t0 = p.time.now();
    p.stack.tcp.batched(() => c.output());
    p.advanceTo(t0 + 1500);
    expect(rel(p.take(), t0)).toEqual([0, 201, 603, 1407]);
  });

  it('RFC 6298 §5 (Karn): an ACK without an RTT sample restarts the timer with the backed-off RTO', () => {
    const p = tcpPeer();
    // The tail loss probe (RFC 8985 §7) off: the retransmission timer alone.
    p.stack.sysctl.set('net.ipv4.tcp_early_retrans', '0');
    const { c, iss, irs } = connectTo(p, { rttMs: 100 });
    const S = seq(iss, 1);
    const P = seq(irs, 1);
    c.write(new Uint8Array(2 * 1448));
    const t0 = p.time.now();
    p.stack.tcp.batched(() => c.output());
    p.advanceTo(t0 + 900);
    // Two segments at 0; the first again at 300 and 900 (RTO 1200 ms now).
    expect(p.take().map((s) => [s.at - t0, (s.seq - S) | 0])).toEqual([
      [0, 0],
      [0, 1448],
      [300, 0],
      [900, 0],
    ]);
    // The first is acknowledged, with no timestamp echo: no valid RTT sample.
    p.advance(50);
    p.send({ seq: P, ack: seq(S, 1448), flags: 'A', opts: { ts: { val: p.tsVal(), ecr: 0 } } });
    const ta = p.time.now();
    // The second goes again at once (slow start after the loss), timed from the backed-off RTO.
    expect(p.take().map((s) => [s.at - ta, (s.seq - S) | 0])).toEqual([[0, 1448]]);
    p.advanceTo(ta + 1199);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.take().map((s) => [s.at - ta, (s.seq - S) | 0])).toEqual([[1200, 1448]]);
  });

  it('RFC 6298 §5 note: a valid RTT sample collapses the backed-off RTO to the computed one', () => {
    const p = tcpPeer();
    // The tail loss probe (RFC 8985 §7) off: the retransmission timer alone.
    p.stack.sysctl.set('net.ipv4.tcp_early_retrans', '0');
    const { c, iss, irs } = connectTo(p, { rttMs: 100 });
    const S = seq(iss, 1);
    const P = seq(irs, 1);
    c.write(new Uint8Array(2 * 1448));
    const t0 = p.time.now();
    p.stack.tcp.batched(() => c.output());
    p.advanceTo(t0 + 900);
    const rtx = p.take().at(-1)!;
    // RFC 7323 §4.1: the echo of the last retransmission's TSval is a sample of 100 ms.
    p.advance(100);
    p.send({ seq: P, ack: seq(S, 1448), flags: 'A', opts: { ts: { val: p.tsVal(), ecr: rtx.opts.ts!.val } } });
    const ta = p.time.now();
    expect(p.take().map((s) => (s.seq - S) | 0)).toEqual([1448]);
    expect(c.rtoMs()).toBe(300);
    p.advanceTo(ta + 299);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.take().map((s) => [s.at - ta, (s.seq - S) | 0])).toEqual([[300, 1448]]);
  });
});

describe('Keepalive (RFC 1122 §4.2.3.6)', () => {
  it('RFC 1122 §4.2.3.6: probes after tcp_keepalive_time of silence, then every _intvl; after _probes unanswered, RST and ETIMEDOUT', () => {
    const p = tcpPeer();
    const { c, user, S, P } = (() => {
      const h = acceptFrom(p, { rttMs: 100 });
      return { ...h, S: seq(h.iss, 1), P: seq(h.irs, 1) };
    })();
    p.take();
    const t0 = p.time.now();
    c.keepAlive = true;
    c.armKeepalive();
    p.advanceTo(t0 + 7200_000 - 1);
    expect(p.take()).toEqual([]);
    p.advanceTo(t0 + 7200_000 + 9 * 75_000 - 1);
    const probes = p.take();
    expect(rel(probes, t0)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => 7200_000 + i * 75_000));
    // Linux tcp_xmit_probe_skb: no data, SND.UNA - 1, so the peer must answer.
    expect(probes.every((s) => s.flags === 'A' && s.seq === seq(S, -1) && s.ack === P && s.data.length === 0)).toBe(true);
    expect(user.closed).toBeUndefined();
    p.advance(1);
    expect(user.closed).toBe('ETIMEDOUT');
    // Linux tcp_keepalive_timer: tcp_send_active_reset, then tcp_write_err.
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['RA', S, P]]);
    expect(p.stack.mib.TcpExtTCPAbortOnTimeout).toBe(1);
  });

  it('RFC 1122 §4.2.3.6: an answered probe keeps the connection; the next probe comes tcp_keepalive_time after the answer', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_keepalive_time', '60');
    p.stack.sysctl.set('net.ipv4.tcp_keepalive_intvl', '10');
    p.stack.sysctl.set('net.ipv4.tcp_keepalive_probes', '3');
    const h = acceptFrom(p, { rttMs: 100 });
    const S = seq(h.iss, 1);
    const P = seq(h.irs, 1);
    p.take();
    const t0 = p.time.now();
    h.c.keepAlive = true;
    h.c.armKeepalive();
    p.advanceTo(t0 + 60_000);
    expect(p.one().seq).toBe(seq(S, -1));
    // Two probes go unanswered; the peer answers the third, 5 ms later.
    p.advanceTo(t0 + 80_000);
    expect(rel(p.take(), t0)).toEqual([70_000, 80_000]);
    p.advance(5);
    p.send({ seq: P, ack: S, flags: 'A' });
    const ta = p.time.now();
    p.advanceTo(ta + 60_000 - 1);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(rel(p.take(), ta)).toEqual([60_000]);
    expect(h.user.closed).toBeUndefined();
    // Data from the peer counts as an answer too.
    p.advance(3);
    p.send({ seq: P, ack: S, flags: 'PA', data: 'x' });
    const td = p.time.now();
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', seq(P, 1)]]);
    p.advanceTo(td + 59_999);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.one().seq).toBe(seq(S, -1));
    expect(h.c.state).toBe(TcpState.ESTABLISHED);
  });
});

describe('Zero-window probing (RFC 9293 §3.8.6.1)', () => {
  it('RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17: a zero window is probed with backoff (300, 600, 1200 ms ...) while answered, and data resumes when it opens', () => {
    const p = tcpPeer();
    const h = acceptFrom(p, { rttMs: 100 });
    const S = seq(h.iss, 1);
    const P = seq(h.irs, 1);
    const c = h.c;
    p.send({ seq: P, ack: S, flags: 'A', wnd: 0 });
    p.take();
    expect(c.sndWnd).toBe(0);
    c.write(Buffer.from('hello'));
    const t0 = p.time.now();
    p.stack.tcp.batched(() => c.output());
    p.advance(0);
    expect(p.take()).toEqual([]);
    const probes: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = p.time.now();
      const at = when(p, 200_000, before, () => p.out.length > 0);
      const pr = p.one();
      expect([pr.flags, pr.seq, pr.ack, pr.data.length]).toEqual(['A', seq(S, -1), P, 0]);
      probes.push(before + at - t0);
      // The peer answers each probe: still no room.
      p.send({ seq: P, ack: S, flags: 'A', wnd: 0 });
      expect(p.take()).toEqual([]);
    }
    expect(probes).toEqual([300, 900, 2100, 4500, 9300, 18900]);
    expect(c.state).toBe(TcpState.ESTABLISHED);
    // The window opens: the data goes at once, and the probing stops.
    p.advance(1000);
    p.send({ seq: P, ack: S, flags: 'A', wnd: 100 });
    const d = p.one();
    expect([d.flags, d.seq, d.data.toString()]).toEqual(['PA', S, 'hello']);
    // Linux tcp_ack_probe: the probes' backoff is dropped; the data is timed by the plain RTO.
    const to = p.time.now();
    p.advance(299);
    expect(p.take()).toEqual([]);
    p.advance(1);
    expect(p.take().map((s) => [s.at - to, s.seq, s.data.toString()])).toEqual([[300, S, 'hello']]);
    p.send({ seq: P, ack: seq(S, 5), flags: 'A', wnd: 100 });
    p.advance(300_000);
    expect(p.take()).toEqual([]);
  });
});

describe('Listeners under a SYN flood (RFC 4987 §3.6)', () => {
  it('RFC 4987 §3.6, tcp_syncookies=1: 10,000 spoofed SYNs get cookies once the SYN queue is full; memory stays bounded and a real client connects with a cookie ACK', () => {
    const p = tcpPeer();
    // Spoofed sources lie beyond the peer, so our SYN-ACKs go to it.
    p.stack.addRoute({ dst: ip('198.18.0.0'), prefixLen: 15, gateway: ip(PEER) });
    const { listener, accepted } = p.listen(80, 128);
    let maxConns = 0;
    for (let i = 0; i < 10_000; i++) {
      p.send({ src: `198.18.${i >> 8}.${i & 255}`, sport: 1024 + (i % 50_000), seq: (i * 2654435761) >>> 0, flags: 'S', opts: linuxSynOpts() });
      maxConns = Math.max(maxConns, p.stack.tcp.connections.size);
    }
    const sas = p.take();
    expect(sas).toHaveLength(10_000);
    expect(sas.every((s) => s.flags === 'SA')).toBe(true);
    expect(p.stack.mib.TcpExtSyncookiesSent).toBe(10_000 - 128);
    // Only the SYN queue holds connections.
    expect(maxConns).toBe(128);
    expect(listener.synQueue).toBe(128);

    // A real client: its SYN gets a cookie too; its ACK brings the connection back.
    p.advance(10);
    p.send({ seq: 7000, flags: 'S', opts: linuxSynOpts(7) });
    const sa = p.one();
    expect(sa.flags).toBe('SA');
    expect(p.stack.mib.TcpExtSyncookiesSent).toBe(10_000 - 128 + 1);
    // Linux cookie_init_timestamp: the window scale and SACK ride in TSval's low 6 bits.
    expect((sa.opts.ts!.val & 0xf) >>> 0).toBe(7);
    expect(sa.opts.ts!.val & 0x10).toBe(0x10);
    p.advance(20);
    p.send({ seq: 7001, ack: seq(sa.seq, 1), flags: 'A', wnd: 500 });
    expect(p.stack.mib.TcpExtSyncookiesRecv).toBe(1);
    expect(accepted).toHaveLength(1);
    const c = accepted[0];
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect([c.sndWscale, c.sackOk, c.tsOk, c.peerMss]).toEqual([7, true, true, 1460]);
    expect(c.sndWnd).toBe(500 << 7);
    // It carries data both ways.
    p.send({ seq: 7001, ack: seq(sa.seq, 1), flags: 'PA', data: 'ping' });
    expect((c.user as Recorder).text()).toBe('ping');
    c.write(Buffer.from('pong'));
    p.stack.tcp.batched(() => c.output());
    p.advance(0);
    const out = p.take().filter((s) => s.dst === PEER && s.data.length > 0);
    expect(out.map((s) => [s.seq, s.data.toString()])).toEqual([[seq(sa.seq, 1), 'pong']]);
    expect(out[0].src).toBe(US);

    // The half-open connections give up after tcp_synack_retries; only the real one is left.
    p.advance(64_000);
    expect(listener.synQueue).toBe(0);
    expect(p.stack.tcp.connections.size).toBe(1);
    // Each got 5 retransmissions; nothing was sent for the cookies.
    expect(p.take().filter((s) => s.flags === 'SA')).toHaveLength(128 * 5);
  }, 60_000);

  it('Linux tcp_synq_no_recent_overflow: an ACK is checked as a cookie only within two minutes of the last cookie sent', () => {
    const p = tcpPeer();
    p.listen();
    // No cookie ever sent: a stray ACK is not a failed cookie, just a RST.
    p.send({ seq: 1000, ack: 5000, flags: 'A' });
    expect(p.take().map((s) => [s.flags, s.seq])).toEqual([['R', 5000]]);
    expect(p.stack.mib.TcpExtSyncookiesFailed).toBe(0);
    // tcp_syncookies=2: every SYN gets a cookie; a wrong one then counts as failed.
    p.stack.sysctl.set('net.ipv4.tcp_syncookies', '2');
    p.send({ seq: 1000, flags: 'S', opts: linuxSynOpts() });
    const sa = p.one();
    expect(p.stack.mib.TcpExtSyncookiesSent).toBe(1);
    p.send({ seq: 1001, ack: seq(sa.seq, 2), flags: 'A' });
    expect(p.take().map((s) => s.flags)).toEqual(['R']);
    expect(p.stack.mib.TcpExtSyncookiesFailed).toBe(1);
    // More than two minutes on, the listener is past its flood: ACKs are not checked again.
    p.advance(120_001);
    p.send({ seq: 1001, ack: seq(sa.seq, 2), flags: 'A' });
    expect(p.take().map((s) => s.flags)).toEqual(['R']);
    expect(p.stack.mib.TcpExtSyncookiesFailed).toBe(1);
  });

  it('tcp_syncookies=0: SYNs beyond the full SYN queue are dropped and counted in ListenDrops', () => {
    const p = tcpPeer();
    p.stack.addRoute({ dst: ip('198.18.0.0'), prefixLen: 15, gateway: ip(PEER) });
    p.stack.sysctl.set('net.ipv4.tcp_syncookies', '0');
    const { listener } = p.listen(80, 16);
    for (let i = 0; i < 100; i++) p.send({ src: `198.18.0.${i}`, sport: 2000 + i, seq: i * 1000, flags: 'S', opts: linuxSynOpts() });
    expect(p.take()).toHaveLength(16);
    expect(listener.synQueue).toBe(16);
    expect(p.stack.mib.TcpExtListenDrops).toBe(84);
    expect(p.stack.mib.TcpExtSyncookiesSent).toBe(0);
    // A real client is turned away as well, without an answer.
    p.send({ seq: 7000, flags: 'S', opts: linuxSynOpts() });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtListenDrops).toBe(85);
    // Once the queue drains (63 s), it gets in.
    p.advance(64_000);
    p.take();
    p.send({ seq: 7000, flags: 'S', opts: linuxSynOpts() });
    expect(p.one().flags).toBe('SA');
  });
});
