/**
 * IPv4 header (RFC 791 §3.1), with options.
 */
import * as bytes from './bytes.js';
import { checksum, fold, sum16 } from './checksum.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { copyBytes, getU16, getU32, setU16, setU32 } = bytes;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const IPV4_MIN_HEADER_LEN = 20;
/** IHL is 4 bits of 32-bit words: at most 60 bytes, so at most 40 bytes of options. */
export const IPV4_MAX_HEADER_LEN = 60;
export const IPV4_MAX_OPTIONS_LEN = 40;

// RFC 791 §3.1 option types (copied flag, class and number in one octet).
export const IPOPT_END = 0;
export const IPOPT_NOOP = 1;
export const IPOPT_RR = 7;
export const IPOPT_TS = 68;
export const IPOPT_SEC = 130;
export const IPOPT_LSRR = 131;
export const IPOPT_SSRR = 137;
/** RFC 2113 router alert. */
export const IPOPT_RA = 148;

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  /** The whole second octet (DSCP << 2 | ECN); 0 when absent. */
  tos?: number;
  ident: number;
  dontFrag: boolean;
  moreFrags: boolean;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOffset: number;
  /** Bytes after the header; total length = header length + payloadLen. */
  payloadLen: number;
  /** Raw option bytes; emit pads them with zeros (End of Option List) to 4 bytes. */
  options?: Uint8Array;
}

export class Ipv4View extends ByteView {
  /**
   * Length and sanity checks, in the order of RFC 1122 §3.2.1.1-2 / Linux ip_rcv:
   * 'truncated' (< 20 bytes), 'version' (not 4), 'ihl' (IHL < 5 or header longer
   * than the bytes), 'total-length' (below the header length or beyond the bytes).
   * The checksum is separate: verifyChecksum().
   */
  check(): string | null {
    if (this.len < IPV4_MIN_HEADER_LEN) return 'truncated';
    if (this.version !== 4) return 'version';
    const hl = this.headerLen;
    if (hl < IPV4_MIN_HEADER_LEN || hl > this.len) return 'ihl';
    const tl = this.totalLength;
    if (tl < hl || tl > this.len) return 'total-length';
    return null;
  }

  get version(): number {
    return this.buf[this.off] >>> 4;
  }

  set version(v: number) {
    this.buf[this.off] = ((v & 0xf) << 4) | (this.buf[this.off] & 0x0f);
  }

  /** Header length in 32-bit words. */
  get ihl(): number {
    return this.buf[this.off] & 0x0f;
  }

  set ihl(v: number) {
    this.buf[this.off] = (this.buf[this.off] & 0xf0) | (v & 0x0f);
  }

  get headerLen(): number {
    return (this.buf[this.off] & 0x0f) << 2;
  }

  /** The whole type-of-service octet. */
  get tos(): number {
    return this.buf[this.off + 1];
  }

  set tos(v: number) {
    this.buf[this.off + 1] = v;
  }

  /** RFC 2474 differentiated services code point: the top 6 bits of the TOS octet. */
  get dscp(): number {
    return this.buf[this.off + 1] >>> 2;
  }

  set dscp(v: number) {
    this.buf[this.off + 1] = ((v & 0x3f) << 2) | (this.buf[this.off + 1] & 3);
  }

  /** RFC 3168 ECN field: the low 2 bits. */
  get ecn(): number {
    return this.buf[this.off + 1] & 3;
  }

  set ecn(v: number) {
    this.buf[this.off + 1] = (this.buf[this.off + 1] & 0xfc) | (v & 3);
  }

  get totalLength(): number {
    return getU16(this.buf, this.off + 2);
  }

  set totalLength(v: number) {
    setU16(this.buf, this.off + 2, v);
  }

  get ident(): number {
    return getU16(this.buf, this.off + 4);
  }

  set ident(v: number) {
    setU16(this.buf, this.off + 4, v);
  }

  /** The reserved flag bit (must be zero, RFC 791). */
  get reservedFlag(): boolean {
    return (this.buf[this.off + 6] & 0x80) !== 0;
  }

  get dontFrag(): boolean {
    return (this.buf[this.off + 6] & 0x40) !== 0;
  }

  set dontFrag(v: boolean) {
    const p = this.off + 6;
    this.buf[p] = v ? this.buf[p] | 0x40 : this.buf[p] & ~0x40;
  }

  get moreFrags(): boolean {
    return (this.buf[this.off + 6] & 0x20) !== 0;
  }

  set moreFrags(v: boolean) {
    const p = this.off + 6;
    this.buf[p] = v ? this.buf[p] | 0x20 : this.buf[p] & ~0x20;
  }

  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragOffset(): number {
    return (getU16(this.buf, this.off + 6) & 0x1fff) << 3;
  }

  /** Takes bytes; must be a multiple of 8 below 65536 (low 3 bits are dropped). */
  set fragOffset(bytes: number) {
    const units = bytes >>> 3;
    const p = this.off + 6;
    this.buf[p] = (this.buf[p] & 0xe0) | ((units >>> 8) & 0x1f);
    this.buf[p + 1] = units & 0xff;
  }

  get ttl(): number {
    return this.buf[this.off + 8];
  }

  set ttl(v: number) {
    this.buf[this.off + 8] = v;
  }

  get protocol(): number {
    return this.buf[this.off + 9];
  }

  set protocol(v: number) {
    this.buf[this.off + 9] = v;
  }

  get headerChecksum(): number {
    return getU16(this.buf, this.off + 10);
  }

  set headerChecksum(v: number) {
    setU16(this.buf, this.off + 10, v);
  }

  get src(): number {
    return getU32(this.buf, this.off + 12);
  }

  set src(v: number) {
    setU32(this.buf, this.off + 12, v);
  }

  get dst(): number {
    return getU32(this.buf, this.off + 16);
  }

  set dst(v: number) {
    setU32(this.buf, this.off + 16, v);
  }

  /** Absolute offset of the options (right after the fixed 20 bytes). */
  get optionsOff(): number {
    return this.off + IPV4_MIN_HEADER_LEN;
  }

  /** Bytes of options, padding included (header length - 20). */
  get optionsLen(): number {
    return this.headerLen - IPV4_MIN_HEADER_LEN;
  }

  /** Absolute offset of the payload. */
  get payloadOff(): number {
    return this.off + this.headerLen;
  }

  /** Total length - header length: excludes any link-layer padding after the datagram. */
  get payloadLen(): number {
    return this.totalLength - this.headerLen;
  }

  /** RFC 791 §3.1: the ones' complement sum over the header, checksum included, is all ones. */
  verifyChecksum(): boolean {
    return fold(sum16(this.buf, this.off, this.headerLen)) === 0xffff;
  }

  fillChecksum(): void {
    fillIpv4Checksum(this.buf, this.off, this.headerLen);
  }
}

/** Computes and stores the header checksum of the `headerLen`-byte IPv4 header at `off`. */
export function fillIpv4Checksum(buf: Uint8Array, off: number, headerLen: number): void {
  setU16(buf, off + 10, 0);
  setU16(buf, off + 10, checksum(buf, off, headerLen));
}

export function ipv4HeaderLen(repr: Ipv4Repr): number {
  const ol = repr.options?.length ?? 0;
  return IPV4_MIN_HEADER_LEN + ((ol + 3) & ~3);
}

export function parseIpv4(v: Ipv4View | Uint8Array): Ipv4Repr {
  const view = v instanceof Ipv4View ? v : new Ipv4View(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('ipv4', err);
  const repr: Ipv4Repr = {
    src: view.src,
    dst: view.dst,
    protocol: view.protocol,
    ttl: view.ttl,
    tos: view.tos,
    ident: view.ident,
    dontFrag: view.dontFrag,
    moreFrags: view.moreFrags,
    fragOffset: view.fragOffset,
    payloadLen: view.payloadLen,
  };
  if (view.optionsLen > 0) repr.options = copyBytes(view.buf, view.optionsOff, view.optionsOff + view.optionsLen);
  return repr;
}

/**
 * Writes the header at `off` (options padded to 4 bytes, checksum filled) and
 * returns its length. The payload is the caller's: it follows the header.
 */
export function emitIpv4(repr: Ipv4Repr, buf: Uint8Array, off: number): number {
  const hl = ipv4HeaderLen(repr);
  if (hl > IPV4_MAX_HEADER_LEN) throw new WireError('ipv4', 'options too long');
  const total = hl + repr.payloadLen;
  if (total > 0xffff) throw new WireError('ipv4', 'datagram too long');
  buf[off] = 0x40 | (hl >>> 2);
  buf[off + 1] = repr.tos ?? 0;
  setU16(buf, off + 2, total);
  setU16(buf, off + 4, repr.ident);
  const units = repr.fragOffset >>> 3;
  buf[off + 6] = (repr.dontFrag ? 0x40 : 0) | (repr.moreFrags ? 0x20 : 0) | ((units >>> 8) & 0x1f);
  buf[off + 7] = units & 0xff;
  buf[off + 8] = repr.ttl;
  buf[off + 9] = repr.protocol;
  setU16(buf, off + 10, 0);
  setU32(buf, off + 12, repr.src);
  setU32(buf, off + 16, repr.dst);
  if (repr.options !== undefined) {
    const o = repr.options;
    buf.set(o, off + IPV4_MIN_HEADER_LEN);
    // RFC 791 §3.1: the header is padded with zeros to a 32-bit boundary.
    buf.fill(0, off + IPV4_MIN_HEADER_LEN + o.length, off + hl);
  }
  setU16(buf, off + 10, checksum(buf, off, hl));
  return hl;
}

/** RFC 791 §3.1: the copied flag (top bit of the type) puts an option in every fragment. */
export function optionCopied(type: number): boolean {
  return (type & 0x80) !== 0;
}

/**
 * The options of `options[off, off+len)` that must be repeated in every fragment
 * after the first (RFC 791 §3.1, §3.2 fragmentation), zero-padded to 4 bytes. Scanning stops at End of
 * Option List or at a malformed length, as the rest cannot be delimited.
 */
export function copiedOptions(options: Uint8Array, off = 0, len = options.length - off): Uint8Array {
  const end = off + len;
  const keep: number[] = [];
  let p = off;
  while (p < end) {
    const type = options[p];
    if (type === IPOPT_END) break;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const olen = options[p + 1];
    if (olen < 2 || p + olen > end) break;
    if (optionCopied(type)) for (let i = 0; i < olen; i++) keep.push(options[p + i]);
    p += olen;
  }
  const out = new Uint8Array((keep.length + 3) & ~3);
  out.set(keep);
  return out;
}
