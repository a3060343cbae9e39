import { describe, expect, it } from 'vitest';
import { WindowedMin } from '../../src/tcp/minmax.js';

/** The true minimum of the samples in (t - win, t], for comparison. */
function trueMin(samples: [number, number][], t: number, win: number): number {
  let m = Infinity;
  for (const [st, v] of samples) if (t - st <= win && v < m) m = v;
  return m;
}

describe('windowed min filter (Linux lib/win_minmax.c, tcp_min_rtt_wlen)', () => {
  it('a new lowest sample takes over at once; nothing is known before the first', () => {
    const f = new WindowedMin();
    expect(f.value).toBe(0);
    expect(f.update(0, 30, 1000)).toBe(30);
    expect(f.update(10, 40, 1000)).toBe(30);
    expect(f.update(20, 20, 1000)).toBe(20);
    expect(f.value).toBe(20);
  });

  it('the lowest sample is forgotten once it is older than the window; a near-best later one takes its place', () => {
    const f = new WindowedMin();
    const win = 1000;
    f.update(0, 20, win);
    // Higher samples all along, one every 10 ms.
    for (let t = 10; t <= 1000; t += 10) expect(f.update(t, 60, win)).toBe(20);
    // 1010 ms after the low one: it is out of the window, and what the window holds is 60.
    expect(f.update(1010, 60, win)).toBe(60);
  });

  it('after a rise the minimum never exceeds the window\'s true minimum, and catches up with it within the window', () => {
    const f = new WindowedMin();
    const win = 1000;
    const samples: [number, number][] = [];
    // 20 ms for 3 s, then the path lengthens to 60 ms with a little noise.
    let x = 12345;
    for (let t = 0; t <= 8000; t += 5) {
      x = (x * 1103515245 + 12345) >>> 0;
      const v = (t < 3000 ? 20 : 60) + (x % 5);
      samples.push([t, v]);
      const got = f.update(t, v, win);
      expect(got).toBeLessThanOrEqual(trueMin(samples, t, win));
      if (t >= 3000 + win) expect(got).toBeGreaterThanOrEqual(60);
    }
  });
});
