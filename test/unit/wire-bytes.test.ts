import { describe, expect, it } from 'vitest';
import { copyRange } from '../../src/wire/bytes.js';
import { clearList } from '../../src/packet/list.js';

describe('copyRange', () => {
  const src = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff);

  for (const [start, end] of [
    [0, 0],
    [5, 6],
    [10, 74],
    [0, 96],
    [0, 97],
    [13, 300],
  ]) {
    it(`copies [${start}, ${end}) to an offset and touches nothing else`, () => {
      const dst = new Uint8Array(400).fill(0xee);
      copyRange(dst, 40, src, start, end);
      expect(Array.from(dst.subarray(40, 40 + end - start))).toEqual(Array.from(src.subarray(start, end)));
      expect(dst.subarray(0, 40).every((b) => b === 0xee)).toBe(true);
      expect(dst.subarray(40 + end - start).every((b) => b === 0xee)).toBe(true);
    });
  }

  it('copies within one buffer forwards without overlap', () => {
    const b = Uint8Array.from({ length: 64 }, (_, i) => i);
    copyRange(b, 40, b, 0, 16);
    expect(Array.from(b.subarray(40, 56))).toEqual(Array.from({ length: 16 }, (_, i) => i));
  });
});

describe('clearList', () => {
  it('empties an array, which takes new elements from index 0 again', () => {
    const a = [1, 2, 3];
    clearList(a);
    expect(a.length).toBe(0);
    expect(a[0]).toBeUndefined();
    a.push(9);
    expect(a).toEqual([9]);
  });
});
