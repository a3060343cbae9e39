import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { distTable, erf, rint } from '../../src/sched/netem-dist.js';

/** The .dist files as iproute2 installs them, captured by scripts/capture-netem-dist.sh. */
function fixture(name: string): number[] {
  return readFileSync(new URL(`../fixtures/netem/${name}.dist`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && l[0] !== '#')
    .join(' ')
    .trim()
    .split(/\s+/)
    .map(Number);
}

describe('netem distribution tables', () => {
  for (const name of ['normal', 'pareto', 'paretonormal']) {
    it(`${name} is iproute2's ${name}.dist value for value`, () => {
      const want = fixture(name);
      const got = distTable(name) as Int16Array;
      expect(got.length).toBe(want.length);
      expect(Array.from(got)).toEqual(want);
    });
  }

  it('has no table for other names', () => {
    expect(distTable('uniform')).toBeNull();
  });

  it('erf and rint agree with C', () => {
    expect(erf(0)).toBe(0);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 15);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 15);
    expect(erf(3.5)).toBeCloseTo(0.9999992569016276, 14);
    expect([rint(0.5), rint(1.5), rint(2.5), rint(-0.5), rint(-1.5), rint(2.4), rint(-2.6)]).toEqual([0, 2, 2, -0, -2, 2, -3]);
  });
});
