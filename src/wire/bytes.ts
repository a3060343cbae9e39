/**
 * A fresh copy of `buf[start, end)`. Not `buf.slice()`: on a Node Buffer (what
 * devices and pcap-parser hand us) slice shares memory, and a Repr must not change
 * when the receive buffer is reused.
 */
export function copyBytes(buf: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(buf.subarray(start, end));
  return out;
}

/**
 * dst[at, at + (end - start)) = src[start, end). A short range (headers, a ping's
 * payload) goes byte by byte: `set(subarray())` allocates a view and calls a
 * builtin, which costs more than copying a few dozen bytes.
 */
export function copyRange(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  if (end - start > 96) {
    dst.set(src.subarray(start, end), at);
    return;
  }
  for (let i = start; i < end; i++) dst[at++] = src[i];
}

// Big-endian (network order) fields. Plain functions over (bytes, absolute offset):
// small enough that V8 inlines them, and nothing is allocated. A setter keeps the low
// 16 or 32 bits of `v`, as a store into a Uint8Array keeps the low 8.
//
// Hot code (the header views) binds them as module constants,
//   import * as bytes from './bytes.js';
//   const { getU16, setU16 } = bytes;
// because V8 folds a module's own `const` into optimized code, but loads an imported
// binding afresh and checks it at every call (1 ns a call, doubling a small setter).

export function getU16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

export function setU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

/** Unsigned: 0 to 2^32 - 1 (IPv4 addresses compare as numbers). */
export function getU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

export function setU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}
