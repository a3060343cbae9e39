/**
 * UDP header (RFC 768). The view covers the IP payload; the datagram is the
 * first `length` bytes of it.
 */
import * as bytes from './bytes.js';
import { checksum, fold, pseudoHeaderSum, sum16 } from './checksum.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { getU16, setU16 } = bytes;

export const UDP_HEADER_LEN = 8;
const IPPROTO_UDP = 17;

/** The header; the payload (payloadLen bytes) follows it in the caller's buffer. */
export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadLen: number;
}

export class UdpView extends ByteView {
  /**
   * 'truncated' below 8 bytes; 'length' if the length field is below the header
   * size or beyond the bytes (RFC 1122 §4.1.3.4 says to discard such datagrams).
   */
  check(): string | null {
    if (this.len < UDP_HEADER_LEN) return 'truncated';
    const l = this.length;
    if (l < UDP_HEADER_LEN || l > this.len) return 'length';
    return null;
  }

  get srcPort(): number {
    return getU16(this.buf, this.off);
  }

  set srcPort(v: number) {
    setU16(this.buf, this.off, v);
  }

  get dstPort(): number {
    return getU16(this.buf, this.off + 2);
  }

  set dstPort(v: number) {
    setU16(this.buf, this.off + 2, v);
  }

  /** Header plus data, in bytes. */
  get length(): number {
    return getU16(this.buf, this.off + 4);
  }

  set length(v: number) {
    setU16(this.buf, this.off + 4, v);
  }

  get checksum(): number {
    return getU16(this.buf, this.off + 6);
  }

  set checksum(v: number) {
    setU16(this.buf, this.off + 6, v);
  }

  get payloadOff(): number {
    return this.off + UDP_HEADER_LEN;
  }

  get payloadLen(): number {
    return this.length - UDP_HEADER_LEN;
  }

  /** The data (a view, not a copy). */
  payload(): Uint8Array {
    return this.buf.subarray(this.off + UDP_HEADER_LEN, this.off + this.length);
  }
}

/**
 * RFC 768: a zero checksum means the sender computed none, which passes; otherwise
 * the sum over pseudo-header, header and data must be all ones. Call after check().
 */
export function verifyUdpChecksum(view: UdpView, srcIp: number, dstIp: number): boolean {
  if (view.checksum === 0) return true;
  const l = view.length;
  return fold(sum16(view.buf, view.off, l, pseudoHeaderSum(srcIp, dstIp, IPPROTO_UDP, l))) === 0xffff;
}

/** Computes and stores the checksum over the first `length` bytes of the view. */
export function fillUdpChecksum(view: UdpView, srcIp: number, dstIp: number): void {
  view.checksum = 0;
  const l = view.length;
  const c = checksum(view.buf, view.off, l, pseudoHeaderSum(srcIp, dstIp, IPPROTO_UDP, l));
  // RFC 768: a computed zero is sent as all ones, since zero means "no checksum".
  view.checksum = c === 0 ? 0xffff : c;
}

export function parseUdp(v: UdpView | Uint8Array): UdpRepr {
  const view = v instanceof UdpView ? v : new UdpView(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('udp', err);
  return { srcPort: view.srcPort, dstPort: view.dstPort, payloadLen: view.payloadLen };
}

/**
 * Writes the 8-byte header at `off` and returns 8. The payload must already be in
 * place after it when addresses are given: then the checksum is computed; without
 * them the checksum is 0 ("none", RFC 768).
 */
export function emitUdp(repr: UdpRepr, buf: Uint8Array, off: number, srcIp?: number, dstIp?: number): number {
  const len = UDP_HEADER_LEN + repr.payloadLen;
  if (len > 0xffff) throw new WireError('udp', 'datagram too long');
  const v = new UdpView(buf, off, len);
  v.srcPort = repr.srcPort;
  v.dstPort = repr.dstPort;
  v.length = len;
  v.checksum = 0;
  if (srcIp !== undefined && dstIp !== undefined) fillUdpChecksum(v, srcIp, dstIp);
  return UDP_HEADER_LEN;
}
