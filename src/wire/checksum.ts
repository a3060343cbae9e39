/**
 * The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones'
 * complement sum of the data taken as big-endian 16-bit words. Full computation
 * plus the incremental update of RFC 1624 for NAT and TTL rewrites.
 */

// Words summed between partial folds. 16384 words of at most 0xffff stay below
// 2^30, so the running sum stays a small integer in V8 and never loses bits.
const CHUNK_BYTES = 32768;

// Long runs are read four bytes at a time through a Uint32Array in host order.
// On a little-endian host each 16-bit half is a byte-swapped word, and the ones'
// complement sum of swapped words is the swapped sum (RFC 1071 §2(B)), so one swap
// of the folded result restores network order.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const WIDE_MIN_BYTES = 128;
let wideSrc: ArrayBufferLike | null = null;
let wide: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/** Folded sum of the host-order 32-bit words covering buf[i, end), both 4-aligned in memory. */
function sumWide(buf: Uint8Array, i: number, end: number): number {
  const ab = buf.buffer;
  const first = (buf.byteOffset + i) >>> 2;
  const last = (buf.byteOffset + end) >>> 2;
  // One view per backing buffer, kept: receive buffers are reused, so this rarely allocates.
  if (ab !== wideSrc || wide.length < last) {
    wide = new Uint32Array(ab, 0, ab.byteLength >>> 2);
    wideSrc = ab;
  }
  const w = wide;
  let total = 0;
  let k = first;
  while (k < last) {
    // 8192 words of at most 2 * 0xffff each stay below 2^30.
    const stop = Math.min(last, k + 8192);
    let s = 0;
    for (; k < stop; k++) {
      const x = w[k];
      s += (x & 0xffff) + (x >>> 16);
    }
    total = (total & 0xffff) + Math.floor(total / 0x10000) + s;
  }
  return fold(total);
}

/**
 * Adds the 16-bit big-endian words of `buf[off, off+len)` to `acc` (RFC 1071 §4.1);
 * an odd final byte is padded with a zero low byte. Carries are not folded per word:
 * the result is a raw sum, below 2^32 when `acc` is, for `fold()` or `checksum()`.
 * When chaining calls over pieces of one message, only the last piece may be odd.
 */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
  const end = off + len;
  const evenEnd = end - (len & 1);
  let total = acc;
  let i = off;
  if (LITTLE_ENDIAN && len >= WIDE_MIN_BYTES && ((buf.byteOffset + off) & 1) === 0) {
    if (((buf.byteOffset + i) & 3) !== 0) {
      total += (buf[i] << 8) | buf[i + 1];
      i += 2;
    }
    const wideEnd = i + ((evenEnd - i) & ~3);
    const s = sumWide(buf, i, wideEnd);
    total += ((s & 0xff) << 8) | (s >>> 8);
    i = wideEnd;
  }
  while (i < evenEnd) {
    const stop = Math.min(evenEnd, i + CHUNK_BYTES);
    let s = 0;
    // Two words per step: fewer loop tests, still plain integer adds.
    const stop4 = stop - ((stop - i) & 3);
    for (; i < stop4; i += 4) {
      s += ((buf[i] << 8) | buf[i + 1]) + ((buf[i + 2] << 8) | buf[i + 3]);
    }
    if (i < stop) {
      s += (buf[i] << 8) | buf[i + 1];
      i += 2;
    }
    // Partial fold keeps `total` far from 2^32 across chunks.
    total = (total & 0xffff) + Math.floor(total / 0x10000) + s;
  }
  if (len & 1) total += buf[end - 1] << 8;
  if (total > 0xffffffff) total = (total % 0x10000) + Math.floor(total / 0x10000);
  return total;
}

/** Folds a raw sum to its 16-bit ones' complement value (end-around carry). */
export function fold(acc: number): number {
  if (acc > 0xffffffff) acc = (acc % 0x10000) + Math.floor(acc / 0x10000);
  acc = (acc & 0xffff) + (acc >>> 16);
  acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

/** The checksum to store in a header whose checksum field is zero while summing. */
export function checksum(buf: Uint8Array, off: number, len: number, acc = 0): number {
  return ~fold(sum16(buf, off, len, acc)) & 0xffff;
}

/**
 * Sum of the TCP/UDP pseudo-header (RFC 768; RFC 9293 §3.1): source and destination
 * address, zero, protocol, and the transport length.
 */
export function pseudoHeaderSum(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/**
 * Checksum after one 16-bit word of the covered data changes from `oldWord` to
 * `newWord`. RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), which, unlike eqn. 2, never
 * produces 0xffff for data that is not all zero, so it matches a full recomputation.
 */
export function updateChecksum16(csum: number, oldWord: number, newWord: number): number {
  const s = (~csum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(s) & 0xffff;
}

/** updateChecksum16 for a 32-bit field (an IPv4 address) as its two words. */
export function updateChecksum32(csum: number, oldU32: number, newU32: number): number {
  const s =
    (~csum & 0xffff) +
    (~(oldU32 >>> 16) & 0xffff) +
    (~oldU32 & 0xffff) +
    ((newU32 >>> 16) & 0xffff) +
    (newU32 & 0xffff);
  return ~fold(s) & 0xffff;
}
