/**
 * SipHash-2-4 (Aumasson and Bernstein) over two or three 32-bit words, as Linux's
 * siphash_2u32 and siphash_3u32 (lib/siphash.c) take them for ISNs and timestamp
 * offsets (net/core/secure_seq.c): the words little-endian one after the other,
 * 8 or 12 bytes of message. 64-bit lanes are kept as 32-bit halves in local
 * variables, so a hash allocates nothing; the low 32 bits of the result are returned.
 */

/** A 16-byte key as the four little-endian 32-bit words SipHash reads (k0 low, k0 high, k1 low, k1 high). */
export function sipKey(key: Uint8Array): Uint32Array {
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++) k[i] = (key[4 * i] | (key[4 * i + 1] << 8) | (key[4 * i + 2] << 16) | (key[4 * i + 3] << 24)) >>> 0;
  return k;
}

/**
 * One message word (m0 low, m1 high), then the final block (blo, bhi: the length in
 * the top byte and the tail), two rounds each, then four finalization rounds.
 */
function sip(k: Uint32Array, m0: number, m1: number, blo: number, bhi: number): number {
  // v0..v3 from "somepseudorandomlygeneratedbytes", as high and low halves.
  let l0 = (k[0] ^ 0x70736575) >>> 0;
  let h0 = (k[1] ^ 0x736f6d65) >>> 0;
  let l1 = (k[2] ^ 0x6e646f6d) >>> 0;
  let h1 = (k[3] ^ 0x646f7261) >>> 0;
  let l2 = (k[0] ^ 0x6e657261) >>> 0;
  let h2 = (k[1] ^ 0x6c796765) >>> 0;
  let l3 = (k[2] ^ 0x79746573) >>> 0;
  let h3 = (k[3] ^ 0x74656462) >>> 0;
  let mlo = m0 >>> 0;
  let mhi = m1 >>> 0;
  for (let phase = 0; phase < 3; phase++) {
    let rounds = 2;
    if (phase < 2) {
      l3 = (l3 ^ mlo) >>> 0;
      h3 = (h3 ^ mhi) >>> 0;
    } else {
      l2 = (l2 ^ 0xff) >>> 0;
      rounds = 4;
    }
    for (let r = 0; r < rounds; r++) {
      let lo: number;
      let t: number;
      // v0 += v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
      lo = (l0 + l1) >>> 0;
      h0 = (h0 + h1 + (lo < l0 ? 1 : 0)) >>> 0;
      l0 = lo;
      t = ((h1 << 13) | (l1 >>> 19)) >>> 0;
      l1 = (((l1 << 13) | (h1 >>> 19)) ^ l0) >>> 0;
      h1 = (t ^ h0) >>> 0;
      t = h0;
      h0 = l0;
      l0 = t;
      // v2 += v3; v3 = rotl(v3, 16) ^ v2
      lo = (l2 + l3) >>> 0;
      h2 = (h2 + h3 + (lo < l2 ? 1 : 0)) >>> 0;
      l2 = lo;
      t = ((h3 << 16) | (l3 >>> 16)) >>> 0;
      l3 = (((l3 << 16) | (h3 >>> 16)) ^ l2) >>> 0;
      h3 = (t ^ h2) >>> 0;
      // v0 += v3; v3 = rotl(v3, 21) ^ v0
      lo = (l0 + l3) >>> 0;
      h0 = (h0 + h3 + (lo < l0 ? 1 : 0)) >>> 0;
      l0 = lo;
      t = ((h3 << 21) | (l3 >>> 11)) >>> 0;
      l3 = (((l3 << 21) | (h3 >>> 11)) ^ l0) >>> 0;
      h3 = (t ^ h0) >>> 0;
      // v2 += v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
      lo = (l2 + l1) >>> 0;
      h2 = (h2 + h1 + (lo < l2 ? 1 : 0)) >>> 0;
      l2 = lo;
      t = ((h1 << 17) | (l1 >>> 15)) >>> 0;
      l1 = (((l1 << 17) | (h1 >>> 15)) ^ l2) >>> 0;
      h1 = (t ^ h2) >>> 0;
      t = h2;
      h2 = l2;
      l2 = t;
    }
    if (phase < 2) {
      l0 = (l0 ^ mlo) >>> 0;
      h0 = (h0 ^ mhi) >>> 0;
      mlo = blo >>> 0;
      mhi = bhi >>> 0;
    }
  }
  return (l0 ^ l1 ^ l2 ^ l3) >>> 0;
}

/** siphash_2u32(first, second): the low 32 bits. */
export function siphash2u32(k: Uint32Array, first: number, second: number): number {
  return sip(k, first, second, 0, 8 << 24);
}

/** siphash_3u32(first, second, third): the low 32 bits. */
export function siphash3u32(k: Uint32Array, first: number, second: number, third: number): number {
  return sip(k, first, second, third, 12 << 24);
}
