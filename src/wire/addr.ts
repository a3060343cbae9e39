/**
 * IPv4 and MAC address helpers. IPv4 addresses are unsigned 32-bit numbers;
 * MAC addresses are 6-byte Uint8Arrays.
 */

export const BROADCAST_MAC: Uint8Array = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const ZERO_MAC: Uint8Array = new Uint8Array(6);

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Strict dotted quad: four decimal octets 0-255, no leading zeros (inet_aton would
 * read "010" as octal, so it is refused rather than guessed), no shorthand forms.
 */
export function parseIp4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!DEC_OCTET.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n >>> 0;
}

export function formatIp4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** Netmask for a prefix length 0-32 (JS shifts by 32 are shifts by 0, hence the case). */
export function prefixMask(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
}

/** "a.b.c.d/len". The address is returned as written, not masked to the prefix. */
export function parseCidr(s: string): { addr: number; len: number } | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = parseIp4(s.slice(0, slash));
  const lenStr = s.slice(slash + 1);
  if (addr === null || !/^(?:0|[1-9][0-9]?)$/.test(lenStr)) return null;
  const len = Number(lenStr);
  return len > 32 ? null : { addr, len };
}

/** Six colon-separated hex octets of one or two digits, any case (as `ip link` takes). */
export function parseMac(s: string): Uint8Array | null {
  const parts = s.split(':');
  if (parts.length !== 6) return null;
  const m = new Uint8Array(6);
  for (let i = 0; i < 6; i++) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(parts[i])) return null;
    m[i] = parseInt(parts[i], 16);
  }
  return m;
}

/** Lowercase, colon-separated, two digits per octet, like Linux prints it. */
export function formatMac(m: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    if (i > 0) s += ':';
    s += m[off + i].toString(16).padStart(2, '0');
  }
  return s;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  return (
    a[aOff] === b[bOff] &&
    a[aOff + 1] === b[bOff + 1] &&
    a[aOff + 2] === b[bOff + 2] &&
    a[aOff + 3] === b[bOff + 3] &&
    a[aOff + 4] === b[bOff + 4] &&
    a[aOff + 5] === b[bOff + 5]
  );
}

/** RFC 5771: 224.0.0.0/4 is the multicast range. */
export function isMulticastIp4(n: number): boolean {
  return n >>> 28 === 0xe;
}

export function isBroadcastMac(m: Uint8Array, off = 0): boolean {
  return (m[off] & m[off + 1] & m[off + 2] & m[off + 3] & m[off + 4] & m[off + 5]) === 0xff;
}

/** IEEE 802: the I/G bit (lowest bit of the first octet) marks group addresses, broadcast included. */
export function isMulticastMac(m: Uint8Array, off = 0): boolean {
  return (m[off] & 1) === 1;
}
