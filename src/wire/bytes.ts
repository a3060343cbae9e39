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
