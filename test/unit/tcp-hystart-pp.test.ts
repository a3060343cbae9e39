/**
 * HyStart++ (RFC 9406) against its own rules: rounds end when windowEnd is
 * acknowledged, CSS starts once a round's lowest RTT (after N_RTT_SAMPLE
 * samples) is RttThresh above the last round's, CSS grows by a
 * CSS_GROWTH_DIVISOR-th, a lower RTT in CSS resumes slow start, and CSS_ROUNDS
 * rounds of CSS end slow start with ssthresh = cwnd. Also how cubic selects it.
 */
import { describe, expect, it } from 'vitest';
import { CSS_GROWTH_DIVISOR, CSS_ROUNDS, HsppPhase, HyStartPlusPlus, L_NON_PACED, MAX_RTT_THRESH_US, MIN_RTT_THRESH_US, N_RTT_SAMPLE, rttThresh } from '../../src/tcp/cc/hystart-pp.js';
import { Cubic } from '../../src/tcp/cc/cubic.js';
import { createCongestionControl } from '../../src/tcp/cc/index.js';
import type { CcState } from '../../src/tcp/cc/types.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';

const INFINITE = 0x7fffffff;

function state(over: Partial<CcState> = {}): CcState {
  return {
    cwnd: 10,
    ssthresh: INFINITE,
    cwndCnt: 0,
    cwndClamp: INFINITE,
    mss: 1000,
    srttUs: 0,
    minRttUs: 0,
    // Near the wrap: windowEnd comparisons must be wrap-aware.
    sndNxt: 0xfffffffa,
    sndUna: 0xfffffff0,
    packetsOut: 0,
    isCwndLimited: true,
    ...over,
  };
}

/**
 * One round: the window sent when it began comes back as `acks` ACKs (each for
 * `per` segments) with the RTT samples `rtts` (cycled); the sender refills the
 * window after each ACK. The round's first ACK acknowledges the previous round's end.
 */
function round(h: HyStartPlusPlus, s: CcState, rtts: number[], acks: number, per = 1, paced = false): void {
  for (let i = 0; i < acks; i++) {
    s.sndUna = (s.sndUna + per) >>> 0;
    h.onAck(s, rtts[i % rtts.length]);
    h.grow(s, per, paced);
    s.sndNxt = (s.sndUna + s.cwnd) >>> 0;
  }
}

/** Acknowledges up to windowEnd, so the next ACK starts a round. */
function endRound(s: CcState, h: HyStartPlusPlus): void {
  s.sndUna = (h.windowEnd - 1) >>> 0;
  s.sndNxt = (s.sndUna + s.cwnd) >>> 0;
}

/** A first round at 20 ms, then one at 30 ms (10 ms above, more than RttThresh): in CSS after N_RTT_SAMPLE samples. */
function inCss(): { s: CcState; h: HyStartPlusPlus } {
  const s = state();
  const h = new HyStartPlusPlus();
  h.init(s);
  round(h, s, [20_000], 10);
  endRound(s, h);
  round(h, s, [30_000], 8);
  expect(h.phase).toBe(HsppPhase.CSS);
  return { s, h };
}

describe('HyStart++ (RFC 9406)', () => {
  it('§4.3 constants', () => {
    expect([MIN_RTT_THRESH_US, MAX_RTT_THRESH_US, N_RTT_SAMPLE, CSS_GROWTH_DIVISOR, CSS_ROUNDS, L_NON_PACED]).toEqual([4000, 16000, 8, 4, 5, 8]);
  });

  it('§4.2 RttThresh = max(4 ms, min(lastRoundMinRTT / 8, 16 ms))', () => {
    expect(rttThresh(10_000)).toBe(4000);
    expect(rttThresh(80_000)).toBe(10_000);
    expect(rttThresh(200_000)).toBe(16_000);
  });

  it('§4.2 a round ends when windowEnd is acknowledged: last = current minimum, current and the count start afresh', () => {
    const s = state();
    const h = new HyStartPlusPlus();
    h.init(s);
    expect(h.windowEnd).toBe(s.sndNxt);
    expect(h.lastRoundMinRtt).toBe(Infinity);
    // The first window's ACKs: round one.
    round(h, s, [50_000, 40_000, 45_000], 6);
    expect(h.currentRoundMinRtt).toBe(40_000);
    expect(h.rttSampleCount).toBe(6);
    expect(h.lastRoundMinRtt).toBe(Infinity);
    endRound(s, h);
    round(h, s, [42_000], 1);
    expect(h.lastRoundMinRtt).toBe(40_000);
    expect(h.currentRoundMinRtt).toBe(42_000);
    expect(h.rttSampleCount).toBe(1);
  });

  it('§4.2 slow start grows by min(N, L * SMSS): L = 8 unpaced, unlimited paced', () => {
    for (const [paced, grown] of [
      [false, 8],
      [true, 20],
    ] as const) {
      const s = state();
      const h = new HyStartPlusPlus();
      h.init(s);
      h.onAck(s, 50_000);
      expect(h.grow(s, 20, paced)).toBe(0);
      expect(s.cwnd).toBe(10 + grown);
    }
  });

  it('§4.2 enters CSS at lastRoundMinRTT + RttThresh with N_RTT_SAMPLE samples, not before, not below it', () => {
    for (const [base, thresh] of [
      [10_000, 4000],
      [80_000, 10_000],
      [200_000, 16_000],
    ]) {
      // Just below the threshold: stays in slow start.
      let s = state();
      let h = new HyStartPlusPlus();
      h.init(s);
      round(h, s, [base], 10);
      endRound(s, h);
      round(h, s, [base + thresh - 1], 20);
      expect(h.phase).toBe(HsppPhase.SLOW_START);
      // At the threshold: the 8th sample of the round decides, not the 7th.
      s = state();
      h = new HyStartPlusPlus();
      h.init(s);
      round(h, s, [base], 10);
      endRound(s, h);
      round(h, s, [base + thresh], N_RTT_SAMPLE - 1);
      expect(h.phase).toBe(HsppPhase.SLOW_START);
      round(h, s, [base + thresh], 1);
      expect(h.phase).toBe(HsppPhase.CSS);
      expect(h.cssBaselineMinRtt).toBe(base + thresh);
      expect(s.ssthresh).toBe(INFINITE);
    }
  });

  it('§4.2 no exit in the first round: lastRoundMinRTT is not valid yet', () => {
    const s = state();
    const h = new HyStartPlusPlus();
    h.init(s);
    round(h, s, [10_000, 90_000], 30);
    expect(h.phase).toBe(HsppPhase.SLOW_START);
  });

  it('§4.2 CSS grows cwnd by a CSS_GROWTH_DIVISOR-th of what slow start would', () => {
    const { s, h } = inCss();
    const before = s.cwnd;
    // 12 more ACKs of one segment each, the RTT still high: +3 segments.
    round(h, s, [30_000], 12);
    expect(s.cwnd - before).toBe(12 / CSS_GROWTH_DIVISOR);
    // The fraction carries over: 2 more segments acked adds nothing yet, 2 more add one.
    round(h, s, [30_000], 2);
    expect(s.cwnd - before).toBe(3);
    round(h, s, [30_000], 2);
    expect(s.cwnd - before).toBe(4);
  });

  it('§4.2 a CSS round whose lowest RTT falls below the baseline resumes slow start (after N_RTT_SAMPLE samples)', () => {
    const { s, h } = inCss();
    endRound(s, h);
    round(h, s, [25_000], N_RTT_SAMPLE - 1);
    expect(h.phase).toBe(HsppPhase.CSS);
    round(h, s, [25_000], 1);
    expect(h.phase).toBe(HsppPhase.SLOW_START);
    expect(h.cssBaselineMinRtt).toBe(Infinity);
    expect(h.cssSpurious).toBe(1);
  });

  it('§4.2 after CSS_ROUNDS rounds of CSS, ssthresh = cwnd and congestion avoidance takes over', () => {
    const { s, h } = inCss();
    // The round CSS started in ends, then four more.
    for (let r = 1; r < CSS_ROUNDS; r++) {
      endRound(s, h);
      round(h, s, [30_000], 8);
      expect(h.phase).toBe(HsppPhase.CSS);
      expect(h.cssRounds).toBe(r);
    }
    endRound(s, h);
    const cwnd = s.cwnd;
    s.sndUna = (s.sndUna + 1) >>> 0;
    h.onAck(s, 30_000);
    expect(h.phase).toBe(HsppPhase.OFF);
    expect(s.ssthresh).toBe(cwnd);
    // From now on everything acknowledged is congestion avoidance's.
    expect(h.grow(s, 3, false)).toBe(3);
  });

  describe('in cubic (module parameter hystart=2)', () => {
    /** One ACK of one segment through the module, as a connection reports it. */
    function ack(cc: Cubic, s: CcState, rttUs: number, nowUs: number): void {
      s.sndUna = (s.sndUna + 1000) >>> 0;
      cc.pktsAcked(s, 1, rttUs, nowUs);
      cc.congAvoid(s, s.sndUna, 1, nowUs);
      s.sndNxt = (s.sndUna + s.cwnd * 1000) >>> 0;
    }

    it('leaves slow start through CSS with ssthresh = cwnd, where Linux HyStart is off', () => {
      const cc = new Cubic({ hystart: 2 });
      expect(cc.hspp).not.toBeNull();
      const s = state();
      cc.init(s, 0);
      s.sndNxt = (s.sndUna + s.cwnd * 1000) >>> 0;
      cc.init(s, 0);
      let now = 0;
      let rtt = 40_000;
      let exitRound = -1;
      for (let r = 1; r <= 30 && exitRound < 0; r++) {
        // A queue builds from the fourth round on: each round's RTT is 6 ms longer.
        if (r >= 4) rtt += 6000;
        const n = s.cwnd;
        for (let i = 0; i < n && exitRound < 0; i++) {
          ack(cc, s, rtt, (now += 100));
          if (s.ssthresh !== INFINITE) exitRound = r;
        }
        if (r === 3) expect(s.cwnd).toBe(80);
      }
      expect(cc.hspp!.cssEntries).toBe(1);
      expect(s.ssthresh).toBe(s.cwnd);
      // Round 4 enters CSS (46 ms >= 40 ms + 5 ms); it and four more are CSS_ROUNDS; the
      // first ACK of round 9 ends slow start.
      expect(exitRound).toBe(4 + CSS_ROUNDS);
    });

    it('a loss ends it: later slow starts are standard (§4.3)', () => {
      const cc = new Cubic({ hystart: 2 });
      const s = state();
      cc.init(s, 0);
      s.ssthresh = cc.ssthresh(s);
      expect(cc.hspp!.active).toBe(false);
    });

    it('hystart=1 is Linux HyStart, 0 none; sysctl module/tcp_cubic/parameters/hystart selects for new connections', () => {
      expect((createCongestionControl('cubic', { fast_convergence: 1, tcp_friendliness: 1, hystart: 1, hystart_detect: 3, hystart_low_window: 16, hystart_ack_delta_us: 2000 }) as Cubic).hspp).toBeNull();
      const stack = new Stack({ time: new VirtualTime(), seed: 1 });
      expect(stack.sysctl.text('module.tcp_cubic.parameters.hystart')).toBe('1');
      stack.sysctl.set('module/tcp_cubic/parameters/hystart', '2');
      expect((stack.tcp.newConnection().cc as Cubic).hspp).not.toBeNull();
      expect(() => stack.sysctl.set('module.tcp_cubic.parameters.hystart', '3')).toThrow(/Invalid argument/);
    });
  });
});
