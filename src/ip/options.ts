import { IPOPT_END, IPOPT_NOOP, IPOPT_RR, IPOPT_TS, IPOPT_LSRR, IPOPT_SSRR } from '../wire/ipv4.js';

/**
 * Checks the options of the IPv4 header at `off` (RFC 791 §3.1). Returns -1
 * when they are well formed, else the offset (from the start of the header) of
 * the octet at fault, which is the pointer a Parameter Problem message carries
 * (RFC 792; Linux's ip_options_compile makes the same checks).
 */
export function badOptionOffset(b: Uint8Array, off: number, headerLen: number): number {
  let p = 20;
  while (p < headerLen) {
    const type = b[off + p];
    if (type === IPOPT_END) return -1;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    const left = headerLen - p;
    if (left < 2) return p;
    const len = b[off + p + 1];
    if (len < 2 || len > left) return p + 1;
    if (type === IPOPT_RR || type === IPOPT_LSRR || type === IPOPT_SSRR) {
      // The pointer counts from the option's start and is at least 4.
      if (len < 3) return p + 1;
      if (b[off + p + 2] < 4) return p + 2;
    } else if (type === IPOPT_TS) {
      if (len < 4) return p + 1;
      if (b[off + p + 2] < 5) return p + 2;
    }
    p += len;
  }
  return -1;
}
