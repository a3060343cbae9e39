/**
 * Internal pacing in virtual time (Linux's tcp_pacing_check and
 * tcp_update_skb_after_send): with SO_MAX_PACING_RATE below the path's rate,
 * data segments leave spaced by len / pacing_rate, and the flow gets that rate.
 */
import { describe, expect, it } from 'vitest';
import { dropSegments } from '../helpers/tcp-segments.js';
import { BulkSink, bulkPair } from '../helpers/tcp-sim.js';
import type { TcpConnection } from '../../src/tcp/connection.js';

/** a sends to b in bulk over 100 Mb/s with 20 ms RTT; returns each data segment's departure (ms), length and pacing rate then. */
function run(maxRate: number | null, ms: number): { deps: { t: number; len: number; rate: number }[]; c: TcpConnection; sink: BulkSink } {
  const sink = new BulkSink();
  const deps: { t: number; len: number; rate: number }[] = [];
  const { p, c } = bulkPair({
    impair: { delayMs: 10, rateBps: 100e6 },
    sink,
    beforeOpen: (pair, conn) => {
      if (maxRate !== null) conn.setMaxPacingRate(maxRate);
      dropSegments(pair.da, (s) => {
        if (s.len > 0) deps.push({ t: pair.time.now(), len: s.len, rate: conn.pacer.rate });
        return false;
      });
    },
  });
  p.time.advance(ms);
  return { deps, c, sink };
}

describe('TCP internal pacing', () => {
  it('spaces data segments by len / pacing_rate and holds the flow to SO_MAX_PACING_RATE', () => {
    const RATE = 1_250_000; // 10 Mb/s, a tenth of the wire
    const { deps, c, sink } = run(RATE, 3000);
    expect(c.pacer.rate).toBe(RATE);
    // Steady state: from a second after the first segment.
    const steady = deps.filter((d) => d.t >= deps[0].t + 1000);
    expect(steady.length).toBeGreaterThan(1000);
    for (let i = 1; i < steady.length; i++) {
      const gapMs = steady[i].t - steady[i - 1].t;
      const wantMs = (steady[i - 1].len * 1000) / steady[i - 1].rate;
      expect(Math.abs(gapMs - wantMs)).toBeLessThan(1e-6);
    }
    const bytes = steady.reduce((a, d) => a + d.len, 0);
    const seconds = (steady.at(-1)!.t - steady[0].t) / 1000;
    expect(bytes / seconds).toBeGreaterThan(RATE * 0.99);
    expect(bytes / seconds).toBeLessThan(RATE * 1.01);
    expect(sink.received).toBeGreaterThan(RATE * 2.5);
  });

  it('without pacing, a window leaves in bursts at the wire rate', () => {
    const { deps } = run(null, 500);
    const tight = deps.filter((d, i) => i > 0 && d.t - deps[i - 1].t < 0.2);
    expect(tight.length).toBeGreaterThan(deps.length / 2);
  });
});
