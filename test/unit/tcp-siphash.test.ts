import { describe, expect, it } from 'vitest';
import { sipKey, siphash2u32, siphash3u32 } from '../../src/tcp/siphash.js';
import { siphash24 } from '../../src/tcp/fastopen.js';

const seq = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);

/** The words as Linux's siphash_2u32/3u32 hash them: little-endian, one after the other. */
function le(...words: number[]): Uint8Array {
  const b = new Uint8Array(4 * words.length);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(4 * i, w >>> 0, true));
  return b;
}

describe('SipHash-2-4 over 32-bit words (ISNs, timestamp offsets)', () => {
  it('matches the reference vectors (key 00..0f, message 00..07 and 00..0b)', () => {
    const k = sipKey(seq(16));
    // The reference implementation's vectors.h, entries 8 and 12, low 32 bits.
    expect(siphash2u32(k, 0x03020100, 0x07060504)).toBe(Number(siphash24(seq(16), seq(8)) & 0xffffffffn));
    expect(siphash2u32(k, 0x03020100, 0x07060504)).toBe(0x9a932462);
    expect(siphash3u32(k, 0x03020100, 0x07060504, 0x0b0a0908)).toBe(Number(siphash24(seq(16), seq(12)) & 0xffffffffn));
  });

  it('agrees with the byte-wise SipHash for random keys and words', () => {
    let x = 12345;
    const rnd = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x;
    };
    for (let i = 0; i < 200; i++) {
      const key = Uint8Array.from({ length: 16 }, () => rnd() & 0xff);
      const k = sipKey(key);
      const a = rnd();
      const b = rnd();
      const c = rnd();
      expect(siphash2u32(k, a, b)).toBe(Number(siphash24(key, le(a, b)) & 0xffffffffn));
      expect(siphash3u32(k, a, b, c)).toBe(Number(siphash24(key, le(a, b, c)) & 0xffffffffn));
    }
  });
});
