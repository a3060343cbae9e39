/**
 * CRC32c (Castagnoli, reflected polynomial 0x82f63b78), the SCTP checksum
 * (RFC 9260 §6.8, appendix A). Table-driven; nothing allocates per call.
 */
const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** CRC32c of `len` bytes at `off`, the bytes [skipFrom, skipFrom + 4) taken as zero (the checksum field; none by default). */
export function crc32c(b: Uint8Array, off: number, len: number, skipFrom = -8): number {
  let c = 0xffffffff;
  const end = off + len;
  for (let i = off; i < end; i++) {
    const v = i >= skipFrom && i < skipFrom + 4 ? 0 : b[i];
    c = TABLE[(c ^ v) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The value as SCTP's common header carries it: the CRC's bytes least significant first, read as a big-endian word. */
export function sctpChecksumWord(crc: number): number {
  return (((crc & 0xff) << 24) | ((crc >>> 8 & 0xff) << 16) | ((crc >>> 16 & 0xff) << 8) | (crc >>> 24)) >>> 0;
}
