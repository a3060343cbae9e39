/** The receiver's RTT estimate (Linux tcp_rcv_rtt_measure_ts / tcp_rcv_rtt_update), shown by ss as rcv_rtt. */
import { describe, expect, it } from 'vitest';
import { RcvRtt } from '../../src/tcp/rcv-rtt.js';

describe('rcv_rtt', () => {
  it('takes a full-sized segment with a new TSecr; a lower sample at once, a higher one an eighth of the way', () => {
    const r = new RcvRtt();
    r.measureTs(100, 1448, 1448, 20);
    expect(r.rttUs).toBe(20_000);
    // The same TSecr again: no sample.
    r.measureTs(100, 1448, 1448, 5);
    expect(r.rttUs).toBe(20_000);
    // A short segment: no sample (its TSecr is remembered all the same).
    r.measureTs(101, 100, 1448, 5);
    expect(r.rttUs).toBe(20_000);
    r.measureTs(102, 1448, 1448, 10);
    expect(r.rttUs).toBe(10_000);
    // Higher: rtt8 = rtt8 - rtt8/8 + sample.
    r.measureTs(103, 1448, 1448, 18);
    expect(r.rttUs8).toBe(80_000 - 10_000 + 18_000);
    expect(r.rttUs).toBe(11_000);
  });

  it('counts an echo from this very tick as one tick, and ignores one from the future', () => {
    const r = new RcvRtt();
    r.measureTs(5, 1448, 1448, 0);
    expect(r.rttUs).toBe(1000);
    r.measureTs(6, 1448, 1448, -3);
    expect(r.rttUs).toBe(1000);
  });
});
