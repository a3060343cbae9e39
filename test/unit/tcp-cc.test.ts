import { describe, expect, it } from 'vitest';
import { Cubic, HYSTART_ACK_TRAIN, HYSTART_DELAY } from '../../src/tcp/cc/cubic.js';
import { availableCongestionControl, CongestionControlError, createCongestionControl } from '../../src/tcp/cc/index.js';
import { Reno } from '../../src/tcp/cc/reno.js';
import type { CcState, CongestionControl } from '../../src/tcp/cc/types.js';

const MSS = 1000;
const INFINITE = 0x7fffffff;

function state(over: Partial<CcState> = {}): CcState {
  return {
    cwnd: 10,
    ssthresh: INFINITE,
    cwndCnt: 0,
    cwndClamp: 0xffffffff,
    mss: MSS,
    srttUs: 0,
    minRttUs: 0,
    // Close to the wrap, so HyStart's rounds are tracked across it.
    sndNxt: 0xffff0000,
    sndUna: 0xffff0000,
    packetsOut: 0,
    isCwndLimited: true,
    ...over,
  };
}

/** One ACK for `acked` segments at `nowUs`, in the order a connection reports it. */
function ack(cc: CongestionControl, s: CcState, acked: number, rttUs: number, nowUs: number): void {
  s.sndUna = (s.sndUna + acked * MSS) >>> 0;
  cc.pktsAcked(s, acked, rttUs, nowUs);
  cc.congAvoid(s, s.sndUna, acked, nowUs);
  // The sender fills the window again.
  s.sndNxt = (s.sndUna + s.cwnd * MSS) >>> 0;
  s.packetsOut = s.cwnd;
}

/**
 * A round trip: the window sent at `startUs` comes back one segment per ACK,
 * `spacingUs` apart from `startUs + rttUs` (evenly over the RTT when spacing is
 * not given), each with the RTT sample `rttUs`. Returns when the next round starts.
 */
function round(cc: CongestionControl, s: CcState, startUs: number, rttUs: number, spacingUs?: number, sampleUs = rttUs): number {
  const n = s.cwnd;
  for (let i = 0; i < n; i++) {
    const at = spacingUs === undefined ? startUs + Math.round(((i + 1) * rttUs) / n) : startUs + rttUs + i * spacingUs;
    ack(cc, s, 1, sampleUs, at);
  }
  return startUs + rttUs;
}

// RFC 9438 §4.2 eq. 1 and 2, §4.6, §4.1.1/§5.1.
const C = 0.4;
const BETA = 0.7;
function wCubic(tS: number, wMax: number, cwndStart: number): number {
  const k = Math.cbrt((wMax - cwndStart) / C);
  return C * (tS - k) ** 3 + wMax;
}

describe('reno', () => {
  it('doubles cwnd in slow start for each window of acknowledged segments, whatever the ACK ratio', () => {
    const cc = new Reno();
    const s = state({ cwnd: 10 });
    cc.init(s, 0);
    for (let i = 0; i < 10; i++) cc.congAvoid(s, 0, 1, 0);
    expect(s.cwnd).toBe(20);
    for (let i = 0; i < 10; i++) cc.congAvoid(s, 0, 2, 0); // delayed ACKs: two segments each
    expect(s.cwnd).toBe(40);
  });

  it('stops slow start at ssthresh and counts the rest towards additive increase', () => {
    const cc = new Reno();
    const s = state({ cwnd: 10, ssthresh: 16 });
    for (let i = 0; i < 10; i++) cc.congAvoid(s, 0, 1, 0);
    expect(s.cwnd).toBe(16);
    expect(s.cwndCnt).toBe(4);

    const t = state({ cwnd: 10, ssthresh: 16 });
    cc.congAvoid(t, 0, 10, 0); // one stretch ACK does the same
    expect(t.cwnd).toBe(16);
    expect(t.cwndCnt).toBe(4);
  });

  it('adds one segment per cwnd segments acknowledged in congestion avoidance', () => {
    const cc = new Reno();
    const s = state({ cwnd: 20, ssthresh: 20 });
    for (let i = 0; i < 19; i++) cc.congAvoid(s, 0, 1, 0);
    expect(s.cwnd).toBe(20);
    cc.congAvoid(s, 0, 1, 0);
    expect(s.cwnd).toBe(21);
    expect(s.cwndCnt).toBe(0);
    for (let i = 0; i < 21; i++) cc.congAvoid(s, 0, 1, 0);
    expect(s.cwnd).toBe(22);
    cc.congAvoid(s, 0, 44, 0); // a stretch ACK of two windows
    expect(s.cwnd).toBe(24);
  });

  it('halves cwnd for ssthresh, never below 2 segments', () => {
    const cc = new Reno();
    expect(cc.ssthresh(state({ cwnd: 20 }))).toBe(10);
    expect(cc.ssthresh(state({ cwnd: 7 }))).toBe(3);
    expect(cc.ssthresh(state({ cwnd: 3 }))).toBe(2);
    expect(cc.ssthresh(state({ cwnd: 1 }))).toBe(2);
  });

  it('does not grow a window the sender did not fill, nor past the clamp', () => {
    const cc = new Reno();
    const s = state({ cwnd: 10, isCwndLimited: false });
    cc.congAvoid(s, 0, 10, 0);
    expect(s.cwnd).toBe(10);
    s.ssthresh = 10;
    cc.congAvoid(s, 0, 100, 0);
    expect(s.cwnd).toBe(10);
    expect(s.cwndCnt).toBe(0);

    const c = state({ cwnd: 10, cwndClamp: 12 });
    cc.congAvoid(c, 0, 10, 0);
    expect(c.cwnd).toBe(12);
  });

  it('undoes to the larger of cwnd and the cwnd before the reduction', () => {
    const cc = new Reno();
    expect(cc.undoCwnd(state({ cwnd: 5 }), 20)).toBe(20);
    expect(cc.undoCwnd(state({ cwnd: 25 }), 20)).toBe(25);
  });
});

describe('registry', () => {
  it('lists reno then cubic, and makes a fresh module for each connection', () => {
    expect(availableCongestionControl()).toEqual(['reno', 'cubic']);
    const a = createCongestionControl('cubic');
    const b = createCongestionControl('cubic');
    expect(a.name).toBe('cubic');
    expect(a).not.toBe(b);
    expect(createCongestionControl('reno').name).toBe('reno');
    expect(availableCongestionControl().map((n) => createCongestionControl(n).name)).toEqual(['reno', 'cubic']);
  });

  it('rejects an unknown name', () => {
    expect(() => createCongestionControl('bbr')).toThrow(CongestionControlError);
    try {
      createCongestionControl('');
    } catch (e) {
      expect((e as CongestionControlError).code).toBe('ENOENT');
    }
  });
});

describe('cubic', () => {
  const RTT = 100_000;

  /** A connection in congestion avoidance with the lowest RTT `rttUs` known, losing a segment at `cwnd`. */
  function lossAt(cc: Cubic, cwnd: number, rttUs: number): CcState {
    const s = state({ cwnd, ssthresh: 50 });
    cc.init(s, 0);
    cc.pktsAcked(s, 1, rttUs, 1000);
    return s;
  }

  /** Fast recovery ends: cwnd comes down to ssthresh. */
  function recover(cc: Cubic, s: CcState): void {
    s.ssthresh = cc.ssthresh(s);
    s.cwnd = s.ssthresh;
    s.cwndCnt = 0;
  }

  /** cwnd at the end of each round trip from `startUs`, with t in seconds since the epoch began (the first ACK). */
  function trace(cc: Cubic, s: CcState, startUs: number, rttUs: number, rounds: number): { t: number; cwnd: number }[] {
    const epoch = startUs + Math.round(rttUs / s.cwnd);
    const out: { t: number; cwnd: number }[] = [];
    let at = startUs;
    for (let r = 0; r < rounds; r++) {
      at = round(cc, s, at, rttUs);
      out.push({ t: (at - epoch) / 1e6, cwnd: s.cwnd });
    }
    return out;
  }

  it('sets ssthresh to cwnd * 717/1024, at least 2 segments', () => {
    const cc = new Cubic();
    cc.init(state(), 0);
    expect(cc.ssthresh(state({ cwnd: 100 }))).toBe(70);
    expect(cc.ssthresh(state({ cwnd: 1000 }))).toBe(700);
    expect(cc.ssthresh(state({ cwnd: 2 }))).toBe(2);
  });

  /**
   * Where cwnd should be when a round ends at t (seconds since the epoch began). Linux aims
   * at W_cubic one lowest RTT ahead (tcp_cubic.c adds delay_min to t), so the target set as
   * the round starts at t - RTT is W_cubic(t), reached as the round ends. Like Linux, the
   * distance C * |t - K|^3 from W_max is truncated to whole segments.
   */
  function target(tS: number, wMax: number, cwndStart: number): number {
    const k = Math.cbrt((wMax - cwndStart) / C);
    const delta = Math.floor(C * Math.abs(tS - k) ** 3);
    return tS < k ? wMax - delta : wMax + delta;
  }

  it('follows W_cubic(t) within a segment after a loss at W_max, with a plateau at W_max around K', () => {
    const cc = new Cubic();
    const s = lossAt(cc, 100, RTT);
    recover(cc, s);
    expect(s.cwnd).toBe(70);
    const k = Math.cbrt((100 * (1 - BETA)) / C); // RFC 9438 §4.2 eq. 2: 4.2 s
    const seen = trace(cc, s, 1_000_000, RTT, Math.round((k + 2) * 10));
    for (const { t, cwnd } of seen) {
      expect(Math.abs(cwnd - target(t, 100, 70)), `t=${t.toFixed(1)} s`).toBeLessThanOrEqual(1);
      expect(Math.abs(cwnd - wCubic(t, 100, 70)), `t=${t.toFixed(1)} s`).toBeLessThan(1.5);
    }
    // Concave up to W_max, which it holds around K, then convex beyond it.
    expect(Math.max(...seen.filter((p) => p.t < k).map((p) => p.cwnd))).toBe(100);
    expect(seen.filter((p) => Math.abs(p.t - k) < 1).every((p) => p.cwnd === 100)).toBe(true);
    expect(seen[seen.length - 1]!.cwnd).toBeGreaterThan(100);
  });

  for (const fastConvergence of [false, true]) {
    it(`follows W_cubic(t) within a segment and reaches W_max at about K (fast convergence ${fastConvergence ? 'on' : 'off'})`, () => {
      const cc = new Cubic({ fastConvergence });
      // A loss at 1200 segments, then one at 1000, below the W_max of the first: with
      // fast convergence W_max becomes 1000 * (1 + beta) / 2 (RFC 9438 §4.7), else 1000.
      const s = lossAt(cc, 1200, RTT);
      recover(cc, s);
      expect(s.cwnd).toBe(840);
      s.cwnd = 1000;
      recover(cc, s);
      expect(s.cwnd).toBe(700); // 1000 * 717/1024
      const wMax = fastConvergence ? 850 : 1000; // 1000 * 1741/2048 = 850.1
      const k = Math.cbrt((wMax - 700) / C); // 7.2 s, or 9.1 s
      const seen = trace(cc, s, 1_000_000, RTT, Math.round((k + 2) * 10));
      for (const { t, cwnd } of seen) {
        expect(Math.abs(cwnd - target(t, wMax, 700)), `t=${t.toFixed(1)} s`).toBeLessThanOrEqual(1);
      }
      // The plateau: below W_max before K, within a segment of it for a second either side,
      // more than a segment above it only after K.
      expect(seen.filter((p) => p.t < k).every((p) => p.cwnd <= wMax)).toBe(true);
      expect(seen.filter((p) => Math.abs(p.t - k) <= 1).every((p) => Math.abs(p.cwnd - wMax) <= 1)).toBe(true);
      expect(seen.find((p) => p.cwnd > wMax + 1)!.t).toBeGreaterThan(k + 1);
    });
  }

  it('grows like Reno would (W_est, RFC 9438 §4.3) where that is faster: small W_max, short RTT', () => {
    const rtt = 20_000;
    const cc = new Cubic();
    const s = lossAt(cc, 20, rtt);
    recover(cc, s);
    expect(s.cwnd).toBe(14);
    const alpha = (3 * (1 - BETA)) / (1 + BETA); // 0.53 segments per RTT
    const seen = trace(cc, s, 1_000_000, rtt, 100);
    seen.forEach(({ t, cwnd }, r) => {
      // Linux raises its W_est a whole segment at a time and cwnd catches up within an RTT.
      const wEst = 14 + alpha * (r + 1);
      expect(cwnd, `round ${r}`).toBeLessThanOrEqual(Math.ceil(wEst));
      expect(cwnd, `round ${r}`).toBeGreaterThan(wEst - 3);
      if (r >= 10) expect(cwnd).toBeGreaterThan(wCubic(t, 20, 14) + 2);
    });

    // Without the Reno-friendly region the same flow creeps along the cubic curve.
    const slow = new Cubic({ tcpFriendliness: false });
    const u = lossAt(slow, 20, rtt);
    recover(slow, u);
    const cubicOnly = trace(slow, u, 1_000_000, rtt, 100);
    expect(cubicOnly[cubicOnly.length - 1]!.cwnd).toBeLessThanOrEqual(Math.ceil(wCubic(2.02, 20, 14)));
    expect(seen[seen.length - 1]!.cwnd).toBeGreaterThan(60);
  });

  it('slow starts like Reno below ssthresh and does not grow a window the sender did not fill', () => {
    const cc = new Cubic({ hystart: false });
    const s = state({ cwnd: 10 });
    cc.init(s, 0);
    round(cc, s, 0, RTT);
    expect(s.cwnd).toBe(20);
    round(cc, s, RTT, RTT);
    expect(s.cwnd).toBe(40);

    s.isCwndLimited = false;
    round(cc, s, 2 * RTT, RTT);
    expect(s.cwnd).toBe(40);
    s.ssthresh = 40;
    round(cc, s, 3 * RTT, RTT);
    expect(s.cwnd).toBe(40);
    expect(s.cwndCnt).toBe(0);
  });

  it('undoes to the larger of cwnd and the cwnd before the reduction', () => {
    const cc = new Cubic();
    const s = lossAt(cc, 100, RTT);
    recover(cc, s);
    expect(cc.undoCwnd(s, 100)).toBe(100);
    s.cwnd = 120;
    expect(cc.undoCwnd(s, 100)).toBe(120);
  });

  describe('HyStart', () => {
    /**
     * Established with an initial window of `iw` segments in flight, so HyStart's first
     * round is the initial window (it starts at the first ACK, when snd_una passes the
     * snd_nxt of init).
     */
    function established(cc: Cubic, iw: number): CcState {
      const s = state({ cwnd: iw });
      cc.init(s, 0);
      s.sndNxt = (s.sndUna + iw * MSS) >>> 0;
      return s;
    }

    it('leaves slow start when the RTT of a round rises past delay_min + clamp(delay_min / 8, 4 ms, 16 ms)', () => {
      const cc = new Cubic();
      const s = established(cc, 16);
      // ACKs 2.1 ms apart: no ACK train (those are at most 2 ms apart).
      let at = round(cc, s, 0, RTT, 2100);
      at = round(cc, s, at, RTT, 2100);
      // A deep buffer: the RTT stays at its floor while cwnd grows past 16 segments.
      expect(s.cwnd).toBe(64);
      expect(s.ssthresh).toBe(INFINITE);

      // The queue builds: every sample of the next round is 13 ms above the floor, more than
      // 100 ms / 8 = 12.5 ms. The first 8 samples only set the round's minimum.
      for (let i = 0; i < 8; i++) ack(cc, s, 1, RTT + 13_000, at + RTT + i * 2100);
      expect(s.ssthresh).toBe(INFINITE);
      expect(s.cwnd).toBe(72);
      ack(cc, s, 1, RTT + 13_000, at + RTT + 8 * 2100);
      expect(s.ssthresh).toBe(72); // HyStart: ssthresh = cwnd, no loss needed
      expect(s.cwnd).toBe(72); // and this ACK already counts in congestion avoidance
      // Congestion avoidance from here: about 5 % per RTT (Linux, before any loss).
      round(cc, s, at + RTT, RTT, 1000, RTT + 13_000);
      expect(s.cwnd).toBeGreaterThan(72);
      expect(s.cwnd).toBeLessThan(80);
      expect(s.ssthresh).toBe(72);
    });

    it('does not act on a rise below the threshold, nor below 16 segments', () => {
      const cc = new Cubic();
      const s = established(cc, 10);
      // The first round (10 to 20 segments): samples far above the floor do not count
      // while cwnd < 16, and too few come after.
      for (let i = 0; i < 10; i++) ack(cc, s, 1, i === 0 ? RTT : RTT + 30_000, RTT + i * 2100);
      expect(s.ssthresh).toBe(INFINITE);
      // 12 ms over a 100 ms floor is not more than 12.5 ms.
      let at = 2 * RTT;
      for (let r = 0; r < 2; r++) at = round(cc, s, at, RTT, 2100, RTT + 12_000);
      expect(s.ssthresh).toBe(INFINITE);
      expect(s.cwnd).toBe(80);
    });

    it('clamps the delay threshold to 4 ms on short paths', () => {
      const cc = new Cubic({ hystartDetect: HYSTART_DELAY });
      const s = established(cc, 16);
      // A 10 ms floor: 10 / 8 = 1.25 ms is raised to 4 ms.
      let at = round(cc, s, 0, 10_000);
      at = round(cc, s, at, 10_000, undefined, 14_000);
      expect(s.ssthresh).toBe(INFINITE);
      round(cc, s, at, 10_000, undefined, 14_001);
      expect(s.ssthresh).toBe(64 + 8);
    });

    it("leaves slow start when a round's ACK train lasts longer than half the lowest RTT", () => {
      const cc = new Cubic();
      const s = established(cc, 16);
      // 10 ms path, a bottleneck that spaces ACKs 200 µs apart: a round of n segments comes
      // back as a train of (n - 1) * 200 µs.
      const rtt = 10_000;
      const at = round(cc, s, 0, rtt, 200); // 3 ms, under 5 ms
      expect(s.ssthresh).toBe(INFINITE);
      expect(s.cwnd).toBe(32);
      // Strictly more than delay_min / 2: the ACK 25 after the first is 5 ms after it, the
      // 26th is past. cwnd has grown by one per ACK before it.
      for (let i = 0; i <= 25; i++) ack(cc, s, 1, rtt, at + rtt + i * 200);
      expect(s.ssthresh).toBe(INFINITE);
      ack(cc, s, 1, rtt, at + rtt + 26 * 200);
      expect(s.ssthresh).toBe(58);
    });

    it('breaks the train at a gap of more than 2 ms', () => {
      const cc = new Cubic({ hystartDetect: HYSTART_ACK_TRAIN });
      const s = established(cc, 16);
      const rtt = 10_000;
      const at = round(cc, s, 0, rtt, 200);
      // The same round as above, but its ACKs come in two trains 2.2 ms apart.
      for (let i = 0; i < 32; i++) ack(cc, s, 1, rtt, at + rtt + i * 200 + (i >= 16 ? 2000 : 0));
      expect(s.ssthresh).toBe(INFINITE);
      expect(s.cwnd).toBe(64);
    });

    it('looks again after a timeout, which resets it', () => {
      /** HyStart ends slow start at 58 segments; then an RTO and slow start from 1 segment. */
      function afterRto(setState: boolean): CcState {
        const cc = new Cubic();
        const s = established(cc, 16);
        const rtt = 10_000;
        let at = round(cc, s, 0, rtt, 200);
        for (let i = 0; i < 32; i++) ack(cc, s, 1, rtt, at + rtt + i * 200);
        expect(s.ssthresh).toBe(58);
        at += 2 * rtt;
        s.ssthresh = cc.ssthresh(s);
        // The window is written off: sending starts again from snd_una, so HyStart's rounds
        // line up with the doubling windows again.
        s.sndNxt = s.sndUna;
        if (setState) cc.setState(s, 'loss');
        s.ssthresh = 500;
        s.cwnd = 1;
        for (let r = 0; r < 7; r++) at = round(cc, s, at, rtt, 100);
        return s;
      }
      // ACKs 100 µs apart: the 64-segment round's train passes 5 ms at its 52nd ACK.
      const reset = afterRto(true);
      expect(reset.ssthresh).toBe(64 + 51);
      // Had the Loss state not been reported, HyStart would stay done and slow start run on.
      const kept = afterRto(false);
      expect(kept.ssthresh).toBe(500);
      expect(kept.cwnd).toBe(128);
    });
  });

  it("forgets W_max on setState('loss'): after a timeout K = 0 and growth starts at 5 % per RTT", () => {
    // Fast recovery: back towards W_max = 100 along the concave curve.
    const recovered = new Cubic();
    const r = lossAt(recovered, 100, RTT);
    recover(recovered, r);
    const afterRecovery = trace(recovered, r, 1_000_000, RTT, 20);

    // RTO: the same ssthresh, then the Loss state. RFC 9438 §4.8: the next avoidance stage
    // starts with K = 0 and W_max = cwnd at its start; before any W_max is known Linux grows
    // cwnd by at least 1/20 per RTT.
    const timedOut = new Cubic();
    const s = lossAt(timedOut, 100, RTT);
    s.ssthresh = timedOut.ssthresh(s);
    timedOut.setState(s, 'loss');
    s.cwnd = s.ssthresh; // slow start has brought it back to ssthresh
    const afterTimeout = trace(timedOut, s, 1_000_000, RTT, 20);

    expect(afterRecovery[afterRecovery.length - 1]!.cwnd).toBeLessThanOrEqual(100);
    for (let i = 1; i < afterTimeout.length; i++) {
      const prev = afterTimeout[i - 1]!.cwnd;
      expect(afterTimeout[i]!.cwnd).toBeGreaterThanOrEqual(Math.floor(prev * 1.05));
    }
    expect(afterTimeout[afterTimeout.length - 1]!.cwnd).toBeGreaterThan(150);
  });

  describe("cwndEvent('tx-start') after idle", () => {
    /** 1 s of avoidance after a loss at 100, then `idleUs` without sending; cwnd one RTT after sending resumes. */
    function resume(idleUs: number, event: 'with lastSendUs' | 'from the last ACK' | 'none'): number {
      const cc = new Cubic();
      const s = lossAt(cc, 100, RTT);
      recover(cc, s);
      let at = 1_000_000;
      for (let r = 0; r < 10; r++) at = round(cc, s, at, RTT);
      expect(s.cwnd).toBe(87);
      const lastSend = at;
      at += idleUs;
      if (event === 'with lastSendUs') {
        s.lastSendUs = lastSend;
        cc.cwndEvent(s, 'tx-start', at);
        s.lastSendUs = at;
      } else if (event === 'from the last ACK') {
        cc.cwndEvent(s, 'tx-start', at);
      }
      round(cc, s, at, RTT);
      return s.cwnd;
    }

    it('moves the epoch by the idle time, so the curve carries on where it stopped (RFC 9438 §5.8)', () => {
      const continuous = (() => {
        const cc = new Cubic();
        const s = lossAt(cc, 100, RTT);
        recover(cc, s);
        let at = 1_000_000;
        for (let r = 0; r < 11; r++) at = round(cc, s, at, RTT);
        return s.cwnd;
      })();
      expect(resume(5_000_000, 'with lastSendUs')).toBe(continuous);
      expect(resume(5_000_000, 'from the last ACK')).toBe(continuous);
      // Without the event, t includes the idle time and the window jumps towards W_cubic(6 s).
      expect(resume(5_000_000, 'none')).toBeGreaterThan(continuous + 5);
    });

    it('does nothing outside an epoch (slow start)', () => {
      const cc = new Cubic({ hystart: false });
      const s = state({ cwnd: 10 });
      cc.init(s, 0);
      round(cc, s, 0, RTT);
      s.lastSendUs = 0;
      cc.cwndEvent(s, 'tx-start', 10_000_000);
      round(cc, s, 10_000_000, RTT);
      expect(s.cwnd).toBe(40);
    });

    it('never moves the epoch past now', () => {
      /** The epoch begins at 1 s; ACKs until 1.05 s; sending resumes at 10.05 s after a last send at `lastSendUs`. */
      function idle(lastSendUs: number): number[] {
        const cc = new Cubic();
        const s = lossAt(cc, 100, RTT);
        recover(cc, s);
        for (let i = 0; i < 6; i++) ack(cc, s, 1, RTT, 1_000_000 + i * 10_000);
        s.lastSendUs = lastSendUs;
        cc.cwndEvent(s, 'tx-start', 10_050_000);
        return trace(cc, s, 10_050_000, RTT, 5).map((p) => p.cwnd);
      }
      // Idle since 1 s: the epoch moves by 9.05 s to exactly now. Idle "since 0": by 10.05 s,
      // which would put it in the future; it stops at now, the same.
      expect(idle(0)).toEqual(idle(1_000_000));
      // Idle since 1.05 s: the epoch moves to 50 ms before now, a little further on the curve.
      expect(idle(1_050_000)).not.toEqual(idle(1_000_000));
    });
  });
});
