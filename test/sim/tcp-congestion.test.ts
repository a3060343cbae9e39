/**
 * Congestion control between two stacks on a sim wire, in virtual time: CUBIC's
 * window after a single loss against RFC 9438's W_cubic(t), and HyStart leaving
 * slow start on a deep buffer before anything is lost.
 */
import { describe, expect, it } from 'vitest';
import type { SimPair } from '../helpers/sim.js';
import { dropSegments } from '../helpers/tcp-segments.js';
import { bulkPair } from '../helpers/tcp-sim.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/state.js';
import type { SimImpairments } from '../../src/link/sim.js';
import type { Cubic } from '../../src/tcp/cc/cubic.js';

/** a (10.0.0.1) sends to b (10.0.0.2) over one connection, as fast as the network lets it. */
function bulk(impair: SimImpairments, cc = 'cubic'): { p: SimPair; c: TcpConnection } {
  // bulkPair: the receiver's buffer never limits the sender.
  return bulkPair({ impair, sysA: { 'net.ipv4.tcp_congestion_control': cc } });
}

// RFC 9438 §4.1.1: C = 0.4.
const C = 0.4;

describe('CUBIC (RFC 9438)', () => {
  it('RFC 9438 §4.2, §4.6: after a single loss, cwnd = W_max * beta, then lies between W_cubic(t) and W_cubic(t + RTT) within a segment at each RTT', () => {
    const RTT = 100;
    const { p, c } = bulk({ delayMs: RTT / 2 });
    // Lose the 400th data segment once: in slow start, round six.
    let dataSegs = 0;
    const drop = dropSegments(p.da, (s) => s.len > 0 && ++dataSegs === 400);
    // Until the loss is detected.
    let lossAt = -1;
    for (let i = 0; i < 5000 && lossAt < 0; i++) {
      p.time.advance(1);
      if (c.inRecovery) lossAt = p.time.now();
    }
    expect(drop.dropped).toBe(1);
    expect(lossAt).toBeGreaterThan(0);
    const wMax = c.priorCwnd;
    // RFC 9438 §4.6: ssthresh = cwnd = W_max * beta_cubic (Linux rounds down).
    expect(c.ssthresh).toBe(Math.floor((wMax * 717) / 1024));
    const cwndStart = c.ssthresh;
    // Recovery ends about an RTT later; the ACK after it starts the avoidance epoch (t = 0).
    let t0 = -1;
    for (let i = 0; i < 5000 && t0 < 0; i++) {
      p.time.advance(1);
      if (!c.inRecovery) t0 = p.time.now();
    }
    expect(t0 - lossAt).toBeGreaterThanOrEqual(RTT);
    // RFC 6937 §3: PRR brings cwnd down to ssthresh over the recovery (Linux tcp_end_cwnd_reduction);
    // the other ACKs of the same millisecond may have grown it a little since.
    expect(c.cwnd).toBeGreaterThanOrEqual(cwndStart);
    expect(c.cwnd).toBeLessThanOrEqual(cwndStart + 4);
    // RFC 9438 §4.2 eq. 2: K, the time to climb back to W_max.
    const K = Math.cbrt((wMax - cwndStart) / C);
    const w = (tS: number): number => C * (tS - K) ** 3 + wMax;
    const R = RTT / 1000;
    const samples: [number, number, number, number][] = [];
    for (let k = 1; k * R < 1.6 * K; k++) {
      p.time.advance(t0 + k * RTT - p.time.now());
      const tS = k * R;
      samples.push([tS, c.cwnd, w(tS), w(tS + R)]);
    }
    expect(c.state).toBe(TcpState.ESTABLISHED);
    expect(p.a.mib.TcpRetransSegs, JSON.stringify(Object.entries(p.a.mib).filter(([k, v]) => v && k.startsWith("Tcp")))).toBe(1);
    expect(samples.length).toBeGreaterThan(40);
    // It came back to W_max around K, and went on above it.
    expect(samples.at(-1)![1]).toBeGreaterThan(wMax);
    // RFC 9438 §4.2, §4.4, §4.5: cwnd moves towards W_cubic(t + RTT) over each RTT, so it
    // lies between W_cubic(t) and W_cubic(t + RTT), within a segment.
    const off = samples.filter(([, cw, lo, hi]) => cw < lo - 1 || cw > hi + 1);
    expect(off, JSON.stringify(samples)).toEqual([]);
  }, 60_000);
});

describe('HyStart', () => {
  it('HyStart (Ha and Rhee; Linux tcp_cubic): on a deep buffer, slow start ends before any loss once the queueing delay grows', () => {
    // 10 Mb/s, 40 ms of propagation, and a queue that never overflows.
    const { p, c } = bulk({ delayMs: 20, rateBps: 10e6 });
    let exitAt = -1;
    for (let i = 0; i < 5000 && exitAt < 0; i++) {
      p.time.advance(1);
      if (c.state === TcpState.ESTABLISHED && c.ssthresh !== 0x7fffffff) exitAt = p.time.now();
    }
    expect(exitAt).toBeGreaterThan(0);
    const mib = p.a.mib;
    expect(mib.TcpExtTCPHystartDelayDetect + mib.TcpExtTCPHystartTrainDetect).toBe(1);
    expect(mib.TcpExtTCPHystartDelayCwnd + mib.TcpExtTCPHystartTrainCwnd).toBe(c.ssthresh);
    expect(mib.TcpRetransSegs).toBe(0);
    // Out near the path's capacity (a BDP of 34 segments), not at a loss far beyond it.
    expect(c.ssthresh).toBeGreaterThanOrEqual(16);
    expect(c.ssthresh).toBeLessThan(120);
    // The queue keeps growing, but no timeout fires spuriously over the next seconds.
    p.time.advance(3000);
    expect(mib.TcpRetransSegs).toBe(0);
  }, 60_000);
});

describe('HyStart++', () => {
  it('RFC 9406 (tcp_cubic hystart=2): on a deep buffer, slow start goes through CSS and ends with ssthresh = cwnd before any loss', () => {
    const { p, c } = bulkPair({ impair: { delayMs: 20, rateBps: 10e6 }, sysA: { 'module/tcp_cubic/parameters/hystart': '2' } });
    const hspp = (c.cc as Cubic).hspp!;
    expect(hspp).not.toBeNull();
    let cssAt = -1;
    let cssCwnd = 0;
    let exitAt = -1;
    for (let i = 0; i < 10_000 && exitAt < 0; i++) {
      p.time.advance(1);
      if (cssAt < 0 && hspp.cssEntries > 0) {
        cssAt = p.time.now();
        cssCwnd = c.cwnd;
      }
      if (c.state === TcpState.ESTABLISHED && c.ssthresh !== 0x7fffffff) exitAt = p.time.now();
    }
    expect(cssAt).toBeGreaterThan(0);
    expect(exitAt).toBeGreaterThan(cssAt);
    // CSS_ROUNDS rounds of CSS at least 40 ms each (the RTT only grows while the queue does).
    expect(exitAt - cssAt).toBeGreaterThanOrEqual(4 * 40);
    expect(p.a.mib.TcpRetransSegs).toBe(0);
    // Linux's HyStart counters stay untouched: it did not run.
    expect(p.a.mib.TcpExtTCPHystartDelayDetect + p.a.mib.TcpExtTCPHystartTrainDetect).toBe(0);
    // CSS began once the queue grew, a few BDPs (34 segments) in, and grew cwnd by about a
    // quarter per round for CSS_ROUNDS rounds (1.25^5 is about 3) rather than doubling.
    expect(cssCwnd).toBeGreaterThanOrEqual(34);
    expect(cssCwnd).toBeLessThan(200);
    expect(c.ssthresh / cssCwnd).toBeGreaterThan(2);
    expect(c.ssthresh / cssCwnd).toBeLessThan(5);
  }, 60_000);
});
