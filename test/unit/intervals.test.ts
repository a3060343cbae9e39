import { describe, expect, it } from 'vitest';
import { Intervals } from '../../src/packet/intervals.js';

describe('Intervals', () => {
  it('starts empty', () => {
    const s = new Intervals();
    expect(s.empty).toBe(true);
    expect(s.count).toBe(0);
    expect(s.covered).toBe(0);
    expect(s.low).toBe(-1);
    expect(s.high).toBe(-1);
    expect(s.contiguousEnd(0)).toBe(0);
    expect(s.holes(0, 10)).toEqual([[0, 10]]);
  });

  it('classifies new, duplicate and overlapping ranges', () => {
    const s = new Intervals();
    expect(s.insert(10, 20)).toBe('new');
    expect(s.classify(0, 10)).toBe('new'); // touching is not overlapping
    expect(s.classify(20, 30)).toBe('new');
    expect(s.classify(10, 20)).toBe('duplicate');
    expect(s.classify(12, 18)).toBe('duplicate');
    expect(s.classify(15, 15)).toBe('duplicate'); // empty
    expect(s.classify(5, 11)).toBe('overlap');
    expect(s.classify(19, 25)).toBe('overlap');
    expect(s.classify(0, 40)).toBe('overlap');
    expect(s.insert(30, 40)).toBe('new');
    // Spanning the hole between two ranges is an overlap, not a duplicate.
    expect(s.classify(15, 35)).toBe('overlap');
    expect(s.classify(20, 30)).toBe('new');
    expect(s.classify(21, 29)).toBe('new');
    expect(s.ranges()).toEqual([
      [10, 20],
      [30, 40],
    ]);
  });

  it('merges touching and overlapping ranges and counts what is new', () => {
    const s = new Intervals();
    s.insert(0, 8);
    s.insert(16, 24);
    expect(s.count).toBe(2);
    expect(s.insert(8, 16)).toBe('new');
    expect(s.lastAdded).toBe(8);
    expect(s.ranges()).toEqual([[0, 24]]);
    expect(s.covered).toBe(24);
    s.insert(40, 48);
    s.insert(56, 64);
    expect(s.insert(20, 60)).toBe('overlap');
    expect(s.lastAdded).toBe(64 - 24 - 8 - 8);
    expect(s.ranges()).toEqual([[0, 64]]);
    expect(s.covered).toBe(64);
    expect(s.insert(4, 12)).toBe('duplicate');
    expect(s.lastAdded).toBe(0);
    expect(s.covered).toBe(64);
  });

  it('answers contiguous coverage and holes', () => {
    const s = new Intervals();
    s.insert(0, 100);
    s.insert(200, 300);
    s.insert(400, 450);
    expect(s.contiguousEnd(0)).toBe(100);
    expect(s.contiguousEnd(50)).toBe(100);
    expect(s.contiguousEnd(100)).toBe(100);
    expect(s.contiguousEnd(250)).toBe(300);
    expect(s.holes(0, 500)).toEqual([
      [100, 200],
      [300, 400],
      [450, 500],
    ]);
    expect(s.holes(50, 250)).toEqual([[100, 200]]);
    expect(s.holes(0, 100)).toEqual([]);
    expect(s.holes(120, 180)).toEqual([[120, 180]]);
    expect(s.low).toBe(0);
    expect(s.high).toBe(450);
  });

  it('forgets bytes below a point', () => {
    const s = new Intervals();
    s.insert(0, 10);
    s.insert(20, 30);
    s.insert(40, 50);
    s.removeBelow(25);
    expect(s.ranges()).toEqual([
      [25, 30],
      [40, 50],
    ]);
    expect(s.covered).toBe(15);
    s.removeBelow(35);
    expect(s.ranges()).toEqual([[40, 50]]);
    expect(s.covered).toBe(10);
    s.clear();
    expect(s.empty).toBe(true);
    expect(s.covered).toBe(0);
  });

  it('agrees with a byte map under random inserts', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 60; round++) {
      const s = new Intervals();
      const have = new Uint8Array(200);
      for (let k = 0; k < 15; k++) {
        const a = rnd(200);
        const b = a + rnd(30);
        const end = Math.min(b, 200);
        let n = 0;
        for (let i = a; i < end; i++) n += have[i];
        const want = end <= a ? 'duplicate' : n === end - a ? 'duplicate' : n === 0 ? 'new' : 'overlap';
        expect(s.classify(a, end)).toBe(want);
        expect(s.insert(a, end)).toBe(want);
        expect(s.lastAdded).toBe(end - a - n);
        for (let i = a; i < end; i++) have[i] = 1;
        // The stored ranges are exactly the runs of ones.
        const runs: [number, number][] = [];
        for (let i = 0; i < 200; i++) {
          if (have[i] && (i === 0 || !have[i - 1])) runs.push([i, i + 1]);
          else if (have[i]) runs[runs.length - 1][1] = i + 1;
        }
        expect(s.ranges()).toEqual(runs);
        expect(s.covered).toBe(have.reduce((x, y) => x + y, 0));
        let c = 0;
        while (c < 200 && have[c]) c++;
        expect(s.contiguousEnd(0)).toBe(c);
        const holes = s.holes(0, 200);
        let missing = 0;
        for (const [x, y] of holes) {
          for (let i = x; i < y; i++) if (have[i]) throw new Error(`hole [${x}, ${y}) covers byte ${i}`);
          missing += y - x;
        }
        expect(missing).toBe(200 - s.covered);
      }
    }
  });
});
