import { describe, expect, it } from 'vitest';
import {
  checksum,
  fold,
  pseudoHeaderSum,
  sum16,
  updateChecksum16,
  updateChecksum32,
} from '../../src/wire/checksum.js';
import { ECHO_REQUEST_FRAME, UDP_FRAME, hex } from '../fixtures/wire-frames.js';

/** Straightforward RFC 1071 reference: fold after every word. */
function refChecksum(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc;
  for (let i = 0; i < len; i += 2) {
    s += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe('sum16 / fold / checksum', () => {
  it('RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
    const b = hex('0001f203f4f5f6f7');
    expect(fold(sum16(b, 0, b.length))).toBe(0xddf2);
    expect(checksum(b, 0, b.length)).toBe(~0xddf2 & 0xffff);
  });

  it('pads an odd final byte with zero', () => {
    expect(fold(sum16(hex('ab'), 0, 1))).toBe(0xab00);
    expect(fold(sum16(hex('0102ab'), 0, 3))).toBe(0x0102 + 0xab00);
    // Same as summing the even-length buffer with an explicit zero.
    const r = rng(7);
    for (const n of [1, 3, 5, 7, 9, 63, 1001, 65535]) {
      const b = new Uint8Array(n + 1);
      for (let i = 0; i < n; i++) b[i] = r() & 0xff;
      expect(fold(sum16(b, 0, n))).toBe(fold(sum16(b, 0, n + 1)));
      expect(checksum(b, 0, n)).toBe(refChecksum(b, 0, n));
    }
  });

  it('honours the offset and odd offsets', () => {
    const b = hex('ff0001f203f4f5f6f7');
    expect(fold(sum16(b, 1, 8))).toBe(0xddf2);
  });

  it('matches the reference on random buffers up to 64 KiB, with an initial accumulator', () => {
    const r = rng(42);
    for (const n of [0, 2, 4, 6, 8, 20, 1480, 32767, 32768, 32769, 65535, 65536, 200001]) {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = r() & 0xff;
      const acc = r() & 0xfffff;
      expect(checksum(b, 0, n, acc)).toBe(refChecksum(b, 0, n, acc));
      expect(sum16(b, 0, n, acc)).toBeLessThan(2 ** 32);
    }
  });

  it('any alignment: every offset 0-7, Node pool Buffers and shared memory', () => {
    const r = rng(99);
    const base = new Uint8Array(70000);
    for (let i = 0; i < base.length; i++) base[i] = r() & 0xff;
    for (let off = 0; off < 8; off++) {
      for (const n of [127, 128, 129, 130, 131, 1500, 65536]) {
        expect(checksum(base, off, n)).toBe(refChecksum(base, off, n));
        // A subarray whose own byteOffset is unaligned.
        const sub = base.subarray(off + 3);
        expect(checksum(sub, off, n)).toBe(refChecksum(sub, off, n));
      }
    }
    // Small Buffers come from Node's shared pool at arbitrary byte offsets.
    for (let k = 0; k < 50; k++) {
      const b = Buffer.alloc(0); // keep the pool moving
      void b;
      const pooled = Buffer.from(base.subarray(k, k + 200 + k));
      expect(checksum(pooled, 0, pooled.length)).toBe(refChecksum(pooled, 0, pooled.length));
      expect(checksum(pooled, 1, pooled.length - 1)).toBe(refChecksum(pooled, 1, pooled.length - 1));
    }
    const shared = new Uint8Array(new SharedArrayBuffer(4096));
    shared.set(base.subarray(0, 4096));
    expect(checksum(shared, 2, 4000)).toBe(refChecksum(shared, 2, 4000));
    // Alternating between backing buffers must not reuse a stale word view.
    const other = new Uint8Array(300).fill(0x11);
    for (let k = 0; k < 3; k++) {
      expect(checksum(base, 0, 256)).toBe(refChecksum(base, 0, 256));
      expect(checksum(other, 0, 256)).toBe(refChecksum(other, 0, 256));
    }
  });

  it('all-ones data: the worst case for carries', () => {
    const b = new Uint8Array(65536).fill(0xff);
    expect(fold(sum16(b, 0, b.length))).toBe(0xffff);
    expect(checksum(b, 0, b.length)).toBe(0);
    expect(fold(sum16(b, 0, b.length, 0xffffffff))).toBe(0xffff);
  });

  it('fold handles sums beyond 32 bits', () => {
    // 2^40 = (2^16)^2 * 2^8 ≡ 2^8 (mod 0xffff).
    expect(fold(2 ** 40)).toBe(0x100);
    expect(fold(0)).toBe(0);
  });

  it('chained calls over pieces equal one call over the whole', () => {
    const b = hex(ECHO_REQUEST_FRAME);
    const whole = sum16(b, 14, 84);
    const parts = sum16(b, 14 + 40, 44, sum16(b, 14 + 20, 20, sum16(b, 14, 20)));
    expect(fold(parts)).toBe(fold(whole));
  });

  it('verifies the real IPv4 header and UDP checksums of captured frames', () => {
    const e = hex(ECHO_REQUEST_FRAME);
    expect(fold(sum16(e, 14, 20))).toBe(0xffff);
    const u = hex(UDP_FRAME);
    // 10.77.0.1 -> 10.77.0.2, UDP length 23.
    const acc = pseudoHeaderSum(0x0a4d0001, 0x0a4d0002, 17, 23);
    expect(fold(sum16(u, 34, 23, acc))).toBe(0xffff);
  });
});

describe('RFC 1624 incremental update', () => {
  it('equals full recomputation for random 16- and 32-bit edits', () => {
    const r = rng(1624);
    for (let t = 0; t < 5000; t++) {
      const n = 20 + 2 * (r() % 20);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = r() & 0xff;
      b[0] |= 1; // never all zero: the one case where 0xffff is a true checksum
      const c0 = checksum(b, 0, n);
      if (t & 1) {
        const w = 2 * (r() % (n / 2));
        const old = (b[w] << 8) | b[w + 1];
        const nw = r() & 0xffff;
        b[w] = nw >>> 8;
        b[w + 1] = nw & 0xff;
        b[0] |= 1;
        const newWord = (b[w] << 8) | b[w + 1];
        expect(updateChecksum16(c0, old, newWord)).toBe(checksum(b, 0, n));
      } else {
        const w = 4 * (r() % (n / 4));
        const old = ((b[w] << 24) | (b[w + 1] << 16) | (b[w + 2] << 8) | b[w + 3]) >>> 0;
        const nv = r() >>> 0;
        b[w] = nv >>> 24;
        b[w + 1] = (nv >>> 16) & 0xff;
        b[w + 2] = (nv >>> 8) & 0xff;
        b[w + 3] = nv & 0xff;
        b[0] |= 1;
        const newU32 = ((b[w] << 24) | (b[w + 1] << 16) | (b[w + 2] << 8) | b[w + 3]) >>> 0;
        expect(updateChecksum32(c0, old, newU32)).toBe(checksum(b, 0, n));
      }
    }
  });

  it('0x0000 / 0xffff edge: a sum of 0xffff gives checksum 0x0000, never 0xffff', () => {
    // Data whose ones' complement sum is 0xffff has checksum 0x0000. RFC 1624 §3:
    // eqn. 2 would produce 0xffff here; eqn. 3 must agree with full recomputation.
    const b = hex('fffe0001' + '1234edcb'); // 0xfffe + 0x0001 + 0x1234 + 0xedcb = 0xffff + 0xffff -> 0xffff
    expect(checksum(b, 0, 8)).toBe(0x0000);
    // Edit 0x1234 -> 0x1234 (no-op): still 0x0000.
    expect(updateChecksum16(0x0000, 0x1234, 0x1234)).toBe(0x0000);
    // Edit into the 0x0000 checksum from elsewhere: 0x1233 -> 0x1234.
    const b2 = hex('fffe0001' + '1233edcb');
    const c2 = checksum(b2, 0, 8);
    expect(c2).toBe(0x0001);
    expect(updateChecksum16(c2, 0x1233, 0x1234)).toBe(checksum(b, 0, 8));
    // And out of it again.
    expect(updateChecksum16(0x0000, 0x1234, 0x1233)).toBe(c2);
    // Words swapping between the two zero representations.
    const b3 = hex('ffff0001');
    const c3 = checksum(b3, 0, 4);
    b3[0] = 0;
    b3[1] = 0;
    expect(updateChecksum16(c3, 0xffff, 0x0000)).toBe(checksum(b3, 0, 4));
  });

  it('TTL decrement on a captured header matches recomputation', () => {
    const f = hex(ECHO_REQUEST_FRAME);
    const ip = f.subarray(14, 34);
    const csum = (ip[10] << 8) | ip[11];
    const oldWord = (ip[8] << 8) | ip[9];
    ip[8]--;
    const newWord = (ip[8] << 8) | ip[9];
    ip[10] = 0;
    ip[11] = 0;
    expect(updateChecksum16(csum, oldWord, newWord)).toBe(checksum(ip, 0, 20));
  });
});
