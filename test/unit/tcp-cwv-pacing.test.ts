/**
 * Congestion window validation (RFC 7661 as Linux's tcp_cwnd_validate and
 * tcp_cwnd_application_limited run it) and the pacing rate of Linux's
 * tcp_update_pacing_rate.
 */
import { describe, expect, it } from 'vitest';
import { CwndValidation, type CwvConn } from '../../src/tcp/cc/cwv.js';
import { Pacer, PACING_SLACK_NS, pacingRate } from '../../src/tcp/pacing.js';

const INFINITE = 0x7fffffff;

function conn(over: Partial<CwvConn> = {}): CwvConn {
  return { cwnd: 40, ssthresh: 30, packetsOut: 0, sndUna: 1000, sndNxt: 1000, ...over };
}

describe('congestion window validation (RFC 7661, Linux tcp_cwnd_validate)', () => {
  it('tcp_is_cwnd_limited: limited in the window, or in slow start while cwnd < 2 * max_packets_out', () => {
    const v = new CwndValidation();
    expect(v.isCwndLimited(conn())).toBe(false);
    v.maxPacketsOut = 25;
    // Slow start (cwnd < ssthresh): 40 < 50.
    expect(v.isCwndLimited(conn({ ssthresh: INFINITE }))).toBe(true);
    expect(v.isCwndLimited(conn({ ssthresh: INFINITE, cwnd: 50 }))).toBe(false);
    // Congestion avoidance: only a window that was filled.
    expect(v.isCwndLimited(conn())).toBe(false);
    v.limited = true;
    expect(v.isCwndLimited(conn())).toBe(true);
  });

  it('a transmit that fills cwnd marks the window limited; one that does not clears it once snd_una passes the window', () => {
    const v = new CwndValidation();
    const c = conn({ packetsOut: 40, sndNxt: 41000 });
    v.validate(c, 0, 200, true, true, false);
    expect(v.limited).toBe(true);
    expect(v.usageSeq).toBe(41000);
    // Within the window: a smaller flight does not undo what was seen.
    c.packetsOut = 10;
    c.sndUna = 20000;
    v.validate(c, 10, 200, true, true, false);
    expect(v.limited).toBe(true);
    // Past it: the new window is judged afresh.
    c.sndUna = 41000;
    c.sndNxt = 51000;
    v.validate(c, 20, 200, true, true, false);
    expect(v.limited).toBe(false);
    expect(v.maxPacketsOut).toBe(10);
  });

  it('output that stopped for cwnd (limitedNow) counts even below cwnd in flight', () => {
    const v = new CwndValidation();
    v.limitedNow = true;
    v.validate(conn({ packetsOut: 5 }), 0, 200, true, true, false);
    expect(v.limited).toBe(true);
    expect(v.limitedNow).toBe(false);
  });

  it('after an RTO of not using it, cwnd falls halfway to what was used (at least the initial window), ssthresh keeps 3/4', () => {
    const v = new CwndValidation();
    const c = conn({ cwnd: 80, ssthresh: 30, packetsOut: 20, sndUna: 0, sndNxt: 20000 });
    v.validate(c, 0, 200, true, true, false);
    expect(v.cwndUsed).toBe(20);
    expect(c.cwnd).toBe(80);
    v.validate(c, 199, 200, true, true, false);
    expect(c.cwnd).toBe(80);
    v.validate(c, 200, 200, true, true, false);
    // (80 + 20) / 2; ssthresh = max(30, 80/2 + 80/4).
    expect(c.cwnd).toBe(50);
    expect(c.ssthresh).toBe(60);
    expect(v.cwndUsed).toBe(0);
    expect(v.stampMs).toBe(200);
    // Used less than the initial window: down towards 10, not below.
    c.packetsOut = 2;
    v.validate(c, 400, 200, true, true, false);
    expect(c.cwnd).toBe(30);
  });

  it('keeps cwnd with tcp_slow_start_after_idle=0, outside the Open state, and while the application waits for buffer room', () => {
    for (const [ssai, open, full] of [
      [false, true, false],
      [true, false, false],
      [true, true, true],
    ]) {
      const v = new CwndValidation();
      const c = conn({ cwnd: 80, packetsOut: 20, sndNxt: 20000, sndUna: 0 });
      v.validate(c, 0, 200, ssai, open, full);
      v.validate(c, 1000, 200, ssai, open, full);
      expect(c.cwnd).toBe(80);
    }
  });
});

describe('pacing rate (Linux tcp_update_pacing_rate)', () => {
  it('200 % of cwnd * mss / srtt below half of ssthresh, 120 % from there (tcp_pacing_ss_ratio, tcp_pacing_ca_ratio)', () => {
    // 10 segments of 1448 bytes per 10 ms is 1,448,000 B/s.
    expect(pacingRate(1448, 10, 0, INFINITE, 10_000, 200, 120)).toBe(2_896_000);
    // cwnd 40 with ssthresh 81: 40 < 40 is false: congestion avoidance's ratio.
    expect(pacingRate(1448, 40, 0, 81, 10_000, 200, 120)).toBe((1448 * 40 * 120) / 100 / 0.01);
    expect(pacingRate(1448, 40, 0, 82, 10_000, 200, 120)).toBe((1448 * 40 * 200) / 100 / 0.01);
    // More in flight than cwnd (after a reduction) counts what is in flight.
    expect(pacingRate(1448, 10, 30, 20, 10_000, 200, 120)).toBe(pacingRate(1448, 30, 0, 20, 10_000, 200, 120));
  });

  it("divides by srtt in Linux's 1/8 µs units with integer division, skips it before the first sample, and caps at SO_MAX_PACING_RATE", () => {
    const r = pacingRate(1448, 10, 0, INFINITE, 3333.3, 200, 120);
    expect(r).toBe(Math.floor((1448 * 80_000 * 200 * 10) / Math.floor(3333.3 * 8)));
    expect(pacingRate(1448, 10, 0, INFINITE, 0, 200, 120)).toBe(1448 * 80_000 * 200 * 10);
    expect(pacingRate(1448, 10, 0, INFINITE, 10_000, 200, 120, 1_000_000)).toBe(1_000_000);
  });

  it('the departure schedule: len / rate per segment after the first 10, catching up at most PACING_SLACK_NS', () => {
    const p = new Pacer();
    p.rate = 1_000_000; // 1 byte per µs
    p.sent(1000, 0, 5);
    expect(p.due(0)).toBe(true);
    p.sent(1000, 0, 10);
    expect(p.due(999_999)).toBe(false);
    expect(p.waitMs(0)).toBe(1);
    expect(p.due(1_000_000)).toBe(true);
    // A wakeup 0.5 ms late: the next departure stays on the schedule, not on the wakeup.
    p.sent(1000, 1_500_000, 11);
    expect(p.nextNs).toBe(2_000_000);
    expect(p.due(1_500_000)).toBe(false);
    // Idle for a long time: at most 1 ms of sending is owed.
    p.sent(1000, 50_000_000, 12);
    expect(p.nextNs).toBe(50_000_000 - PACING_SLACK_NS + 1_000_000);
    expect(p.waitMs(50_000_000)).toBe(0);
  });
});
