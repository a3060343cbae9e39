/**
 * ECN (RFC 3168) between two stacks on a sim wire, in virtual time: negotiation for
 * every pair of net.ipv4.tcp_ecn values, the SYN fallback, where ECT and the flags go,
 * CE answered with one window reduction per round trip, and fq_codel's marks reaching
 * the sender instead of drops.
 */
import { describe, expect, it } from 'vitest';
import { ip, simPair, type SimPair } from '../helpers/sim.js';
import { runFor, pattern, sha256 } from '../helpers/tcp-sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import { tap, markCe } from '../helpers/tcp-tap.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { ECN_OK, ECN_SEEN } from '../../src/tcp/ecn.js';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_SYN } from '../../src/wire/tcp.js';

/** a (10.0.0.1) connects to b (10.0.0.2):9000 and sends `data`; b keeps what arrives. */
function transfer(p: SimPair, data: Buffer): { client: TcpSocket; got: Buffer[]; server: () => TcpConnection | null } {
  const got: Buffer[] = [];
  let sconn: TcpConnection | null = null;
  p.b.tcp
    .createServer((s: TcpSocket) => {
      sconn = s.conn;
      s.on('data', (d: Buffer) => got.push(d));
    })
    .listen(9000);
  const client = p.a.tcp.connect(9000, '10.0.0.2');
  client.on('connect', () => client.end(data));
  return { client, got, server: () => sconn };
}

/** Sends `n` bytes of pattern(n, seed) from a to b (transfer) and checks that all of them arrive within `ms`. */
async function deliver(p: SimPair, n: number, seed: number, ms = 500): Promise<{ client: TcpSocket; server: () => TcpConnection | null }> {
  const { client, got, server } = transfer(p, pattern(n, seed));
  await runFor(p.time, ms, { stepMs: 5 });
  expect(Buffer.concat(got).length).toBe(n);
  return { client, server };
}

describe('ECN negotiation (RFC 3168 §6.1.1, net.ipv4.tcp_ecn)', () => {
  for (const ca of [0, 1, 2])
    for (const cb of [0, 1, 2]) {
      const agreed = ca === 1 && cb !== 0;
      it(`client tcp_ecn=${ca}, server tcp_ecn=${cb}: ${agreed ? 'ECN' : 'no ECN'}`, async () => {
        const p = simPair({ impair: { delayMs: 5 } });
        p.a.sysctl.set('net.ipv4.tcp_ecn', String(ca));
        p.b.sysctl.set('net.ipv4.tcp_ecn', String(cb));
        const fromA = tap(p.da);
        const fromB = tap(p.db);
        const { client, got, server } = transfer(p, pattern(50_000, 1));
        const cconn = client.conn!;
        await runFor(p.time, 500, { stepMs: 5 });
        expect(Buffer.concat(got).length).toBe(50_000);
        const syn = fromA.find((s) => s.flags & TCP_SYN)!;
        const synAck = fromB.find((s) => (s.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK))!;
        // A SYN asks with ECE|CWR only under tcp_ecn=1; a SYN-ACK agrees with ECE alone.
        expect(syn.flags & (TCP_ECE | TCP_CWR)).toBe(ca === 1 ? TCP_ECE | TCP_CWR : 0);
        expect(synAck.flags & (TCP_ECE | TCP_CWR)).toBe(agreed ? TCP_ECE : 0);
        // SYNs are never ECT.
        expect(syn.ecn).toBe(0);
        expect(synAck.ecn).toBe(0);
        expect((cconn.ecnFlags & ECN_OK) !== 0).toBe(agreed);
        expect(((server()?.ecnFlags ?? 0) & ECN_OK) !== 0).toBe(agreed);
        // ECT(0) on every new data segment, never on a pure ACK.
        const data = fromA.filter((s) => s.len > 0 && !(s.flags & TCP_SYN));
        expect(data.length).toBeGreaterThan(30);
        for (const s of data) expect(s.ecn).toBe(agreed ? 2 : 0);
        const acks = fromB.filter((s) => s.len === 0 && !(s.flags & TCP_SYN));
        expect(acks.length).toBeGreaterThan(5);
        for (const s of acks) expect(s.ecn).toBe(0);
        // The receiver saw ECT (ss's ecnseen).
        expect(((server()?.ecnFlags ?? 0) & ECN_SEEN) !== 0).toBe(agreed);
        expect(p.b.mib.IpExtInECT0Pkts).toBe(agreed ? data.length : 0);
      });
    }

  it('a lost SYN is resent without ECE|CWR (tcp_ecn_fallback=1), and the connection goes without ECN', async () => {
    const p = simPair({ impair: { delayMs: 5 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    let syns = 0;
    const fromA = tap(p.da, (_f, _o, s) => !(s.flags & TCP_SYN && ++syns === 1));
    const { client } = await deliver(p, 10_000, 2, 2000);
    const sent = fromA.filter((s) => s.flags & TCP_SYN);
    expect(sent.length).toBe(2);
    expect(sent[0].flags & (TCP_ECE | TCP_CWR)).toBe(TCP_ECE | TCP_CWR);
    expect(sent[1].flags & (TCP_ECE | TCP_CWR)).toBe(0);
    expect(client.conn === null || (client.conn.ecnFlags & ECN_OK) === 0).toBe(true);
    for (const s of fromA.filter((x) => x.len > 0)) expect(s.ecn).toBe(0);
  });

  it('with tcp_ecn_fallback=0 the resent SYN still asks, and ECN is agreed', async () => {
    const p = simPair({ impair: { delayMs: 5 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    p.a.sysctl.set('net.ipv4.tcp_ecn_fallback', '0');
    let syns = 0;
    const fromA = tap(p.da, (_f, _o, s) => !(s.flags & TCP_SYN && ++syns === 1));
    await deliver(p, 10_000, 2, 2000);
    const sent = fromA.filter((s) => s.flags & TCP_SYN);
    expect(sent.map((s) => s.flags & (TCP_ECE | TCP_CWR))).toEqual([TCP_ECE | TCP_CWR, TCP_ECE | TCP_CWR]);
    for (const s of fromA.filter((x) => x.len > 0)) expect(s.ecn).toBe(2);
  });
});

describe('ECN negotiation: the edge cases', () => {
  it('a SYN that is itself ECT is refused ECN (RFC 3168 §6.1.1, tcp_ecn_create_request)', async () => {
    const p = simPair({ impair: { delayMs: 5 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    tap(p.da, (f, o, s) => {
      if (s.flags & TCP_SYN) {
        f[o + 1] |= 2;
        markCe(f, o); // an ECT SYN, and a router on the way marked it
      }
    });
    const fromB = tap(p.db);
    const { client, server } = await deliver(p, 5000, 5);
    expect(fromB.find((x) => x.flags & TCP_SYN)!.flags & TCP_ECE).toBe(0);
    expect((server()?.ecnFlags ?? 0) & ECN_OK).toBe(0);
    expect(client.conn === null || (client.conn.ecnFlags & ECN_OK) === 0).toBe(true);
  });

  it('with SYN cookies, the agreement rides in the timestamp (TS_OPT_ECN) and the rebuilt connection uses ECN', async () => {
    const p = simPair({ impair: { delayMs: 5 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    p.b.sysctl.set('net.ipv4.tcp_syncookies', '2');
    const fromA = tap(p.da);
    const { server } = await deliver(p, 20_000, 6);
    expect(p.b.mib.TcpExtSyncookiesRecv).toBe(1);
    expect((server()?.ecnFlags ?? 0) & ECN_OK).toBe(ECN_OK);
    for (const x of fromA.filter((y) => y.len > 0)) expect(x.ecn).toBe(2);
  });

  it('with SYN cookies and no timestamps, no ECN is offered', async () => {
    const p = simPair({ impair: { delayMs: 5 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    p.a.sysctl.set('net.ipv4.tcp_timestamps', '0');
    p.b.sysctl.set('net.ipv4.tcp_syncookies', '2');
    const fromB = tap(p.db);
    const { client } = await deliver(p, 5000, 7);
    expect(fromB.find((x) => x.flags & TCP_SYN)!.flags & TCP_ECE).toBe(0);
    expect(client.conn === null || (client.conn.ecnFlags & ECN_OK) === 0).toBe(true);
  });
});

describe('CE marks (RFC 3168 §6.1.2, §6.1.3)', () => {
  it('the receiver echoes ECE until CWR; the sender reduces once per round trip and resends nothing', async () => {
    const RTT = 100;
    const p = simPair({ impair: { delayMs: RTT / 2 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    p.b.sysctl.set('net.ipv4.tcp_rmem', '4096 33554432 33554432');
    // Mark every ECT segment CE during [markFrom, markTo).
    let marking = false;
    const fromA = tap(p.da, (f, o) => {
      if (marking) markCe(f, o);
    });
    const fromB = tap(p.db);
    const data = pattern(30_000_000, 3);
    const { client, got } = transfer(p, data);
    const c = client.conn!;
    // Let slow start run for a while.
    await runFor(p.time, 1000, { stepMs: 5 });
    expect(c.ssthresh).toBe(0x7fffffff);
    const cwnd0 = c.cwnd;
    expect(cwnd0).toBeGreaterThan(40);
    // Reductions: each time ssthresh changes, and cwnd along the way.
    const reductions: { at: number; ssthresh: number; prior: number }[] = [];
    let lastSs = c.ssthresh;
    let lastCwnd = c.cwnd;
    const markFrom = p.time.now();
    const rounds = 5;
    marking = true;
    const ackMark = fromB.length;
    const dataMark = fromA.length;
    while (p.time.now() - markFrom < rounds * RTT) {
      p.time.advance(1);
      if (c.ssthresh !== lastSs) {
        reductions.push({ at: p.time.now() - markFrom, ssthresh: c.ssthresh, prior: lastCwnd });
        lastSs = c.ssthresh;
      }
      lastCwnd = c.cwnd;
    }
    marking = false;
    // One reduction per round trip of marks (the first one an RTT's worth of ACKs away).
    expect(reductions.length).toBeGreaterThanOrEqual(rounds - 1);
    expect(reductions.length).toBeLessThanOrEqual(rounds);
    for (let i = 1; i < reductions.length; i++) expect(reductions[i].at - reductions[i - 1].at).toBeGreaterThanOrEqual(RTT);
    // Each reduction: CUBIC's beta (717/1024) of the window before it.
    for (const r of reductions) expect(r.ssthresh).toBe(Math.max(2, Math.floor((r.prior * 717) / 1024)));
    // ECE on the receiver's ACKs; CWR on a new data segment after each reduction.
    const acks = fromB.slice(ackMark);
    expect(acks.filter((s) => s.flags & TCP_ECE).length).toBeGreaterThan(reductions.length);
    const cwrs = fromA.slice(dataMark).filter((s) => s.flags & TCP_CWR);
    for (const s of cwrs) {
      expect(s.len).toBeGreaterThan(0);
      expect(s.ecn).not.toBe(0);
    }
    expect(cwrs.length).toBeGreaterThanOrEqual(reductions.length - 1);
    // Once the marks stop, the receiver stops echoing within a round trip or two.
    await runFor(p.time, 4 * RTT, { stepMs: 5 });
    const tail = fromB.slice(fromB.length - 20);
    for (const s of tail) expect(s.flags & TCP_ECE).toBe(0);
    await runFor(p.time, 30_000, { stepMs: 20, until: () => Buffer.concat(got).length === data.length });
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
    expect(p.a.mib.TcpRetransSegs).toBe(0);
    expect(p.b.mib.IpExtInCEPkts).toBeGreaterThan(0);
  });
});

describe("fq_codel's ECN marks reach TCP", () => {
  it('a bulk flow through tbf + fq_codel ecn sees CE instead of drops: reductions, no losses, nothing resent', async () => {
    const p = simPair({ impair: { delayMs: 10 } });
    p.a.sysctl.set('net.ipv4.tcp_ecn', '1');
    p.b.sysctl.set('net.ipv4.tcp_rmem', '4096 33554432 33554432');
    const tc = (line: string): void => {
      const r = runTc(stackTcEnv(p.a), line.split(' '));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    };
    tc('qdisc add dev a0 root handle 1: tbf rate 20mbit burst 20k latency 400ms');
    tc('qdisc add dev a0 parent 1:1 handle 10: fq_codel ecn');
    p.ia.neigh!.set(ip('10.0.0.2'), p.ib.mac, 'PERMANENT');
    const data = pattern(15_000_000, 4);
    const { client, got } = transfer(p, data);
    let reductions = 0;
    let wasCwr = false;
    const c = client.conn!;
    const t0 = p.time.now();
    while (Buffer.concat(got).length < data.length && p.time.now() - t0 < 20_000) {
      await runFor(p.time, 10, { stepMs: 1 });
      if (c.cwr.active && !wasCwr) reductions++;
      wasCwr = c.cwr.active;
    }
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
    const out = runTc(stackTcEnv(p.a), ['-s', 'qdisc', 'show', 'dev', 'a0']).stdout;
    const mark = /ecn_mark (\d+)/.exec(out);
    expect(mark).not.toBeNull();
    expect(Number(mark![1])).toBeGreaterThan(0);
    expect(reductions).toBeGreaterThan(0);
    // Marks, not losses: no drop anywhere, nothing resent.
    expect(out).not.toMatch(/dropped [1-9]/);
    expect(p.a.mib.TcpRetransSegs).toBe(0);
    expect(p.b.mib.IpExtInCEPkts).toBe(Number(mark![1]));
  });
});
