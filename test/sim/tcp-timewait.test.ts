/**
 * TIME_WAIT as records (src/tcp/timewait.ts), as Linux's inet_timewait_sock: the
 * connection is released as it enters TIME_WAIT and a small record answers for its
 * 4-tuple (tcp_timewait_state_process) until it expires 60 s later.
 * The peer is played by hand (helpers/tcp-segments.ts).
 */
import { describe, expect, it } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { linuxSynOpts, tcpPeer, type TcpPeer } from '../helpers/tcp-segments.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/state.js';
import { runSs } from '../../src/control/ss.js';

const seq = (a: number, n: number): number => (a + n) >>> 0;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects garbage once pending jobs (which keep WeakRef targets alive) are done. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
}

/**
 * A connection from the peer's `sport` that the stack (an HTTP/1.0 server, say) closes
 * first: its FIN, the peer's FIN and ACK, the stack's last ACK. Returns the connection
 * and its ISS.
 */
function serverCloses(p: TcpPeer, sport: number, accepted: TcpConnection[]): { c: TcpConnection; iss: number } {
  p.send({ sport, seq: sport * 1000, flags: 'S', opts: linuxSynOpts() });
  const iss = p.out[p.out.length - 1].seq;
  p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 1), flags: 'A', wnd: 1000 });
  const c = accepted.pop()!;
  p.stack.tcp.batched(() => c.close(false));
  p.advance(0);
  p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 2), flags: 'FA', wnd: 1000 });
  p.out.length = 0;
  return { c, iss };
}

describe('TIME_WAIT records (Linux inet_timewait_sock)', () => {
  it('20,000 connections closed by the server leave 20,000 small TIME_WAIT records and no connection; they all expire 60 s later', async () => {
    const p = tcpPeer();
    const tcp = p.stack.tcp;
    const { accepted } = p.listen(80, 128);
    const timers0 = p.time.pending;
    const N = 20_000;
    // Warm up (pools, code) before measuring.
    for (let i = 0; i < 200; i++) serverCloses(p, 5000 + i, accepted);
    p.advance(61_000);
    expect(tcp.timeWaitCount).toBe(0);
    await collect();
    const heap0 = process.memoryUsage().heapUsed;
    const refs: WeakRef<TcpConnection>[] = [];
    const t0 = p.time.now();
    for (let i = 0; i < N; i++) {
      const { c } = serverCloses(p, 10000 + i, accepted);
      if (i % 20 === 0) refs.push(new WeakRef(c));
    }
    expect(tcp.timeWaitCount).toBe(N);
    expect(tcp.connections.size).toBe(0);
    expect(p.stack.mib.TcpExtTW).toBe(200 + N);
    await collect();
    const perRecord = (process.memoryUsage().heapUsed - heap0) / N;
    // A connection kept in TIME_WAIT held about 3.5 KB (its buffers, scoreboard, timers);
    // a record with its hash entry takes a few hundred bytes.
    expect(perRecord).toBeLessThan(600);
    // No connection is kept: every one sampled has been collected.
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    // ss lists and counts them as Linux does.
    const ss = runSs(p.stack, ['-tan']);
    const rows = ss.stdout.split('\n').filter((l) => l.startsWith('TIME-WAIT'));
    expect(rows).toHaveLength(N);
    expect(runSs(p.stack, ['-tano']).stdout).toMatch(/\nTIME-WAIT +0 +0 +10\.0\.0\.2:80 +10\.0\.0\.1:10000 +timer:\(timewait,1min,0\) *\n/);
    expect(runSs(p.stack, ['-s']).stdout).toContain(`timewait ${N})`);
    // One timer for all of them; they expire together 60 s after they began.
    expect(p.time.pending).toBe(timers0 + 1);
    p.advanceTo(t0 + 59_999);
    expect(tcp.timeWaitCount).toBe(N);
    p.advanceTo(t0 + 60_000 + 10);
    expect(tcp.timeWaitCount).toBe(0);
    expect(tcp.timeWait['table'].count).toBe(0);
    expect(tcp.portsHeld).toBe(0);
    expect(p.time.pending).toBe(timers0);
    // The 4-tuple is free: an ACK to it meets a RST (RFC 9293 §3.10.7.1).
    p.send({ sport: 10000, seq: 10000 * 1000 + 2, ack: 1, flags: 'A' });
    expect(p.take().map((s) => s.flags)).toEqual(['R']);
  }, 120_000);

  it('a retransmitted FIN is acknowledged from the record (snd_nxt, rcv_nxt, timestamps) and the 60 s start over; an in-window ACK draws nothing', () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    const { iss } = serverCloses(p, 41000, accepted);
    const t0 = p.time.now();
    const finTsVal = p.tsVal();
    const tw = p.timeWait(41000)!;
    expect([tw.sndNxt, tw.rcvNxt]).toEqual([seq(iss, 2), 41000 * 1000 + 2]);
    p.advance(20_000);
    p.send({ sport: 41000, seq: 41000 * 1000 + 1, ack: seq(iss, 2), flags: 'FA', wnd: 1000 });
    const a = p.take();
    expect(a.map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(iss, 2), 41000 * 1000 + 2]]);
    // tcp_v4_timewait_ack: TSecr is ts_recent, the TSval of the peer's last in-window segment.
    expect(a[0].opts.ts?.ecr).toBe(finTsVal);
    p.advanceTo(t0 + 79_999);
    expect(p.timeWait(41000)).not.toBeNull();
    p.send({ sport: 41000, seq: 41000 * 1000 + 2, ack: seq(iss, 2), flags: 'A', wnd: 1000 });
    expect(p.take()).toEqual([]);
    // The in-window ACK restarted the wait too (tcp_timewait_state_process reschedules).
    p.advanceTo(t0 + 79_999 + 59_999);
    expect(p.timeWait(41000)).not.toBeNull();
    p.advance(1);
    expect(p.timeWait(41000)).toBeNull();
  });

  it('a SYN with a higher ISN (no timestamps) or a newer timestamp opens a new connection with ISN snd_nxt + 65537; an old one is only acknowledged', () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    // Without timestamps: the ISN must lie beyond rcv_nxt.
    p.useTs = false;
    const { iss } = serverCloses(p, 42000, accepted);
    const noTs = { mss: 1460, sackPermitted: true, wscale: 7, ts: null };
    p.send({ sport: 42000, seq: 42000 * 1000 - 5, flags: 'S', opts: noTs });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(iss, 2), 42000 * 1000 + 2]]);
    expect(p.timeWait(42000)).not.toBeNull();
    p.send({ sport: 42000, seq: 42000 * 1000 + 5000, flags: 'S', opts: noTs });
    const sa = p.one();
    expect([sa.flags, sa.seq, sa.ack]).toEqual(['SA', seq(iss, 2 + 65537), 42000 * 1000 + 5001]);
    expect(p.timeWait(42000)).toBeNull();
    expect(p.lookup(42000)?.state).toBe(TcpState.SYN_RECEIVED);
    // With timestamps: a lower ISN is taken when its TSval is newer (RFC 6191).
    p.useTs = true;
    const { iss: iss2 } = serverCloses(p, 43000, accepted);
    p.send({ sport: 43000, seq: 43000 * 1000 - 100, flags: 'S', opts: { ...linuxSynOpts(), ts: { val: p.tsVal() - 10, ecr: 0 } } });
    expect(p.take().map((s) => s.flags)).toEqual(['A']);
    expect(p.timeWait(43000)).not.toBeNull();
    p.advance(1);
    p.send({ sport: 43000, seq: 43000 * 1000 - 100, flags: 'S', opts: linuxSynOpts() });
    const sa2 = p.one();
    expect([sa2.flags, sa2.seq]).toEqual(['SA', seq(iss2, 2 + 65537)]);
    expect(p.timeWait(43000)).toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(0);
  });

  it('at tcp_max_tw_buckets a SYN reusing a record frees its slot: the next connection closed gets a record, counted again (TcpExtTW)', () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    p.stack.sysctl.set('net.ipv4.tcp_max_tw_buckets', '3');
    const mib = p.stack.mib;
    for (let i = 0; i < 5; i++) serverCloses(p, 45000 + i, accepted);
    expect([p.stack.tcp.timeWaitCount, mib.TcpExtTW, mib.TcpExtTCPTimeWaitOverflow]).toEqual([3, 3, 2]);
    expect(p.timeWait(45003)).toBeNull();
    // A client port used again within the 60 s: tcp_timewait_state_process's TCP_TW_SYN
    // (a newer timestamp, RFC 6191) ends the record (inet_twsk_deschedule_put).
    p.advance(1);
    p.send({ sport: 45000, seq: 45000 * 1000 + 5000, flags: 'S', opts: linuxSynOpts() });
    expect(p.one().flags).toBe('SA');
    expect(p.timeWait(45000)).toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(2);
    // The freed slot goes to the next connection the server closes, counted as a new
    // record (__inet_twsk_schedule); the one after that overflows again.
    serverCloses(p, 45010, accepted);
    serverCloses(p, 45011, accepted);
    expect(p.timeWait(45010)).not.toBeNull();
    expect(p.timeWait(45011)).toBeNull();
    expect([p.stack.tcp.timeWaitCount, mib.TcpExtTW, mib.TcpExtTCPTimeWaitOverflow]).toEqual([3, 4, 3]);
  });

  it('a RST in window ends it (tcp_rfc1337=0); with tcp_rfc1337=1 it stays', () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    serverCloses(p, 44000, accepted);
    serverCloses(p, 44001, accepted);
    p.send({ sport: 44000, seq: 44000 * 1000 + 2, flags: 'R' });
    expect(p.timeWait(44000)).toBeNull();
    p.stack.sysctl.set('net.ipv4.tcp_rfc1337', '1');
    p.send({ sport: 44001, seq: 44001 * 1000 + 2, flags: 'R' });
    expect(p.timeWait(44001)).not.toBeNull();
    expect(p.take()).toEqual([]);
    expect(p.stack.tcp.timeWaitCount).toBe(1);
  });
});

/**
 * A connection from `sport` that the stack closes first and the peer never finishes: the
 * peer acknowledges the stack's FIN and sends none of its own, which leaves the stack's
 * side an orphan in FIN_WAIT_2.
 */
function serverHalfCloses(p: TcpPeer, sport: number, accepted: TcpConnection[]): { c: TcpConnection; iss: number } {
  p.send({ sport, seq: sport * 1000, flags: 'S', opts: linuxSynOpts() });
  const iss = p.out[p.out.length - 1].seq;
  p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 1), flags: 'A', wnd: 1000 });
  const c = accepted.pop()!;
  p.stack.tcp.batched(() => c.close(false));
  p.advance(0);
  p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 2), flags: 'A', wnd: 1000 });
  p.out.length = 0;
  return { c, iss };
}

describe('orphaned FIN_WAIT_2 as records (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo))', () => {
  it('10,000 orphans waiting for the peer FIN are 10,000 small FIN_WAIT_2 records, listed by ss as FIN-WAIT-2, gone after tcp_fin_timeout', async () => {
    const p = tcpPeer();
    const tcp = p.stack.tcp;
    const { accepted } = p.listen(80, 128);
    const timers0 = p.time.pending;
    const N = 10_000;
    for (let i = 0; i < 200; i++) serverHalfCloses(p, 5000 + i, accepted);
    p.advance(61_000);
    expect(tcp.timeWaitCount).toBe(0);
    p.stack.sysctl.set('net.ipv4.tcp_fin_timeout', '30');
    await collect();
    const heap0 = process.memoryUsage().heapUsed;
    const refs: WeakRef<TcpConnection>[] = [];
    const t0 = p.time.now();
    for (let i = 0; i < N; i++) {
      const { c } = serverHalfCloses(p, 10000 + i, accepted);
      if (i % 20 === 0) refs.push(new WeakRef(c));
    }
    expect(tcp.timeWaitCount).toBe(N);
    expect(tcp.timeWait.finWait2Count).toBe(N);
    expect(tcp.connections.size).toBe(0);
    // __inet_twsk_schedule counts each (TcpExtTW, set for more than 4 s).
    expect(p.stack.mib.TcpExtTW).toBe(200 + N);
    await collect();
    const perRecord = (process.memoryUsage().heapUsed - heap0) / N;
    expect(perRecord).toBeLessThan(600);
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    // ss: state FIN-WAIT-2 (the record's substate, inet_twsk_diag_fill), the timewait timer; counted as timewait by -s.
    const rows = runSs(p.stack, ['-tan']).stdout.split('\n').filter((l) => l.startsWith('FIN-WAIT-2'));
    expect(rows).toHaveLength(N);
    expect(runSs(p.stack, ['-tano']).stdout).toMatch(/\nFIN-WAIT-2 +0 +0 +10\.0\.0\.2:80 +10\.0\.0\.1:10000 +timer:\(timewait,30sec,0\) *\n/);
    expect(runSs(p.stack, ['-tan', 'state', 'fin-wait-2']).stdout.split('\n').filter((l) => l.includes('10.0.0.2:80'))).toHaveLength(N);
    expect(runSs(p.stack, ['-tan', 'state', 'time-wait']).stdout.split('\n').filter((l) => l.includes('10.0.0.2:80'))).toHaveLength(0);
    expect(runSs(p.stack, ['-s']).stdout).toContain(`orphaned 0, timewait ${N})`);
    // One timer; tcp_fin_timeout (30 s here) after each FIN was acknowledged they are gone, without a RST.
    expect(p.time.pending).toBe(timers0 + 1);
    p.advanceTo(t0 + 29_999);
    expect(tcp.timeWaitCount).toBe(N);
    p.advanceTo(t0 + 30_000 + 10);
    expect(tcp.timeWaitCount).toBe(0);
    expect(tcp.timeWait.finWait2Count).toBe(0);
    expect(tcp.portsHeld).toBe(0);
    expect(p.time.pending).toBe(timers0);
    expect(p.take()).toEqual([]);
  }, 120_000);

  it("a late FIN moves the record to TIME_WAIT and is acknowledged; the 60 s start then (tcp_timewait_state_process)", () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    const { iss } = serverHalfCloses(p, 45000, accepted);
    const tw = p.timeWait(45000)!;
    expect(tw.substate).toBe(TcpState.FIN_WAIT_2);
    p.advance(20_000);
    const t1 = p.time.now();
    const finTs = p.tsVal();
    p.send({ sport: 45000, seq: 45000 * 1000 + 1, ack: seq(iss, 2), flags: 'FA', wnd: 1000 });
    const a = p.take();
    expect(a.map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(iss, 2), 45000 * 1000 + 2]]);
    expect(a[0].opts.ts?.ecr).toBe(finTs);
    expect(tw.substate).toBe(TcpState.TIME_WAIT);
    expect(p.stack.tcp.timeWait.finWait2Count).toBe(0);
    expect(runSs(p.stack, ['-tano']).stdout).toMatch(/\nTIME-WAIT +0 +0 +10\.0\.0\.2:80 +10\.0\.0\.1:45000 +timer:\(timewait,1min,0\) *\n/);
    // Now a TIME_WAIT record: a retransmitted FIN is acknowledged again.
    p.send({ sport: 45000, seq: 45000 * 1000 + 1, ack: seq(iss, 2), flags: 'FA', wnd: 1000 });
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['A', 45000 * 1000 + 2]]);
    p.advanceTo(t1 + 59_999);
    expect(p.timeWait(45000)).not.toBeNull();
    p.advance(1);
    expect(p.timeWait(45000)).toBeNull();
  });

  it('duplicate ACKs are taken silently; out-of-window segments acknowledged (rate-limited: TCPACKSkippedFinWait2); an in-window RST ends it; a SYN gets a RST and ends it', () => {
    const p = tcpPeer();
    const { accepted } = p.listen(80, 128);
    const { iss } = serverHalfCloses(p, 46000, accepted);
    const rcvNxt = 46000 * 1000 + 1;
    p.send({ sport: 46000, seq: rcvNxt, ack: seq(iss, 2), flags: 'A', wnd: 1000 });
    expect(p.take()).toEqual([]);
    // Far beyond the window: an ACK back, then the next within tcp_invalid_ratelimit is skipped.
    p.send({ sport: 46000, seq: rcvNxt + 10_000_000, ack: seq(iss, 2), flags: 'A', wnd: 1000 });
    expect(p.take().map((s) => [s.flags, s.seq, s.ack])).toEqual([['A', seq(iss, 2), rcvNxt]]);
    p.send({ sport: 46000, seq: rcvNxt + 10_000_000, ack: seq(iss, 2), flags: 'A', wnd: 1000 });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtTCPACKSkippedFinWait2).toBe(1);
    expect(p.timeWait(46000)?.substate).toBe(TcpState.FIN_WAIT_2);
    p.send({ sport: 46000, seq: rcvNxt, flags: 'R' });
    expect(p.timeWait(46000)).toBeNull();
    expect(p.take()).toEqual([]);
    // A SYN at rcv_nxt or beyond: TCP_TW_RST, answered as to no connection, and the record goes.
    const { iss: iss2 } = serverHalfCloses(p, 47000, accepted);
    void iss2;
    p.send({ sport: 47000, seq: 47000 * 1000 + 5, flags: 'S', opts: linuxSynOpts() });
    expect(p.take().map((s) => [s.flags, s.ack])).toEqual([['RA', 47000 * 1000 + 6]]);
    expect(p.timeWait(47000)).toBeNull();
  });

  it('tcp_fin_timeout above 60 s: the connection is kept for the part beyond 60 s, then a record for what tcp_fin_time less 60 s gives (tcp_keepalive_timer)', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_fin_timeout', '100');
    const { accepted } = p.listen(80, 128);
    const { c } = serverHalfCloses(p, 48000, accepted);
    const t0 = p.time.now();
    expect(c.state).toBe(TcpState.FIN_WAIT_2);
    expect(p.timeWait(48000)).toBeNull();
    // A full socket on its keepalive timer, as ss shows Linux's.
    expect(runSs(p.stack, ['-tano']).stdout).toMatch(/\nFIN-WAIT-2 +0 +0 +10\.0\.0\.2:80 +10\.0\.0\.1:48000 +timer:\(keepalive,40sec,0\) *\n/);
    p.advanceTo(t0 + 40_000);
    expect(c.state).toBe(TcpState.CLOSED);
    expect(p.timeWait(48000)?.substate).toBe(TcpState.FIN_WAIT_2);
    p.advanceTo(t0 + 79_999);
    expect(p.timeWait(48000)).not.toBeNull();
    p.advance(1);
    expect(p.timeWait(48000)).toBeNull();
    expect(p.take()).toEqual([]);
  });
});
