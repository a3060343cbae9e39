/**
 * ICMP for IPv4 (RFC 792): the 8-byte header and its payload. The view covers
 * the whole ICMP message (the IP payload), since the checksum covers all of it.
 */
import * as bytes from './bytes.js';
import { checksum, fold, sum16 } from './checksum.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { copyBytes, getU16, getU32, setU16, setU32 } = bytes;

export const ICMP_HEADER_LEN = 8;

// RFC 792 types.
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAM_PROBLEM = 12;

// Destination unreachable codes: RFC 792, RFC 1812 §5.2.7.1 for the prohibited ones.
export const ICMP_NET_UNREACH = 0;
export const ICMP_HOST_UNREACH = 1;
export const ICMP_PROTO_UNREACH = 2;
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_NET_PROHIBITED = 9;
export const ICMP_HOST_PROHIBITED = 10;
export const ICMP_ADMIN_PROHIBITED = 13;

// Time exceeded codes.
export const ICMP_EXC_TTL = 0;
export const ICMP_EXC_REASM = 1;

export interface IcmpEchoRepr {
  kind: 'echo-request' | 'echo-reply';
  ident: number;
  seq: number;
  data: Uint8Array;
}

export interface IcmpErrorRepr {
  kind: 'dest-unreach' | 'time-exceeded' | 'param-problem';
  code: number;
  /** Parameter problem: octet offset of the bad field in the quoted header. */
  pointer?: number;
  /** Fragmentation needed: next-hop MTU (RFC 1191 §4); 0 from pre-RFC 1191 routers. */
  mtu?: number;
  /**
   * The offending datagram's IP header and at least its first 8 data octets
   * (RFC 792; RFC 1122 §3.2.2; RFC 1812 §4.3.2.3 allows up to 576 bytes in all).
   */
  quote: Uint8Array;
}

/** Any other type: the 4 bytes after the checksum as one number, then the rest. */
export interface IcmpOtherRepr {
  kind: 'other';
  type: number;
  code: number;
  rest: number;
  data: Uint8Array;
}

export type IcmpRepr = IcmpEchoRepr | IcmpErrorRepr | IcmpOtherRepr;

export class IcmpView extends ByteView {
  /** 'truncated' below the 8-byte header (RFC 792: every message has one). */
  check(): string | null {
    return this.len < ICMP_HEADER_LEN ? 'truncated' : null;
  }

  get type(): number {
    return this.buf[this.off];
  }

  set type(v: number) {
    this.buf[this.off] = v;
  }

  get code(): number {
    return this.buf[this.off + 1];
  }

  set code(v: number) {
    this.buf[this.off + 1] = v;
  }

  get checksum(): number {
    return getU16(this.buf, this.off + 2);
  }

  set checksum(v: number) {
    setU16(this.buf, this.off + 2, v);
  }

  /** Echo identifier (bytes 4-5). */
  get ident(): number {
    return getU16(this.buf, this.off + 4);
  }

  set ident(v: number) {
    setU16(this.buf, this.off + 4, v);
  }

  /** Echo sequence number (bytes 6-7). */
  get seq(): number {
    return getU16(this.buf, this.off + 6);
  }

  set seq(v: number) {
    setU16(this.buf, this.off + 6, v);
  }

  /** Bytes 4-7 as one unsigned number ("rest of header"). */
  get rest(): number {
    return getU32(this.buf, this.off + 4);
  }

  set rest(v: number) {
    setU32(this.buf, this.off + 4, v);
  }

  /** Parameter problem pointer (byte 4). */
  get pointer(): number {
    return this.buf[this.off + 4];
  }

  set pointer(v: number) {
    this.buf[this.off + 4] = v;
  }

  /** Next-hop MTU of a fragmentation-needed message (bytes 6-7, RFC 1191 §4). */
  get mtu(): number {
    return getU16(this.buf, this.off + 6);
  }

  set mtu(v: number) {
    setU16(this.buf, this.off + 6, v);
  }

  /** Absolute offset of the data after the 8-byte header. */
  get payloadOff(): number {
    return this.off + ICMP_HEADER_LEN;
  }

  get payloadLen(): number {
    return this.len - ICMP_HEADER_LEN;
  }

  /** The data after the header (a view, not a copy). */
  payload(): Uint8Array {
    return this.buf.subarray(this.off + ICMP_HEADER_LEN, this.off + this.len);
  }

  /** RFC 792: the checksum covers the whole message, type to end of data. */
  verifyChecksum(): boolean {
    return fold(sum16(this.buf, this.off, this.len)) === 0xffff;
  }

  fillChecksum(): void {
    setU16(this.buf, this.off + 2, 0);
    setU16(this.buf, this.off + 2, checksum(this.buf, this.off, this.len));
  }
}

/** Bytes emitIcmp writes. */
export function icmpLen(repr: IcmpRepr): number {
  return ICMP_HEADER_LEN + ('quote' in repr ? repr.quote.length : repr.data.length);
}

/** Decodes a message (data and quotes are copies). The checksum is not verified here. */
export function parseIcmp(v: IcmpView | Uint8Array): IcmpRepr {
  const view = v instanceof IcmpView ? v : new IcmpView(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('icmp', err);
  const type = view.type;
  const code = view.code;
  const data = copyBytes(view.buf, view.payloadOff, view.off + view.len);
  switch (type) {
    case ICMP_ECHO_REQUEST:
    case ICMP_ECHO_REPLY:
      if (code === 0) {
        return { kind: type === ICMP_ECHO_REQUEST ? 'echo-request' : 'echo-reply', ident: view.ident, seq: view.seq, data };
      }
      break;
    case ICMP_DEST_UNREACH:
      if (code === ICMP_FRAG_NEEDED) return { kind: 'dest-unreach', code, mtu: view.mtu, quote: data };
      return { kind: 'dest-unreach', code, quote: data };
    case ICMP_TIME_EXCEEDED:
      return { kind: 'time-exceeded', code, quote: data };
    case ICMP_PARAM_PROBLEM:
      return { kind: 'param-problem', code, pointer: view.pointer, quote: data };
  }
  return { kind: 'other', type, code, rest: view.rest, data };
}

/** Writes the message at `off` with its checksum; returns icmpLen(repr). */
export function emitIcmp(repr: IcmpRepr, buf: Uint8Array, off: number): number {
  const v = new IcmpView(buf, off, icmpLen(repr));
  let body: Uint8Array;
  switch (repr.kind) {
    case 'echo-request':
    case 'echo-reply':
      v.type = repr.kind === 'echo-request' ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY;
      v.code = 0;
      v.ident = repr.ident;
      v.seq = repr.seq;
      body = repr.data;
      break;
    case 'dest-unreach':
    case 'time-exceeded':
    case 'param-problem':
      v.type =
        repr.kind === 'dest-unreach' ? ICMP_DEST_UNREACH : repr.kind === 'time-exceeded' ? ICMP_TIME_EXCEEDED : ICMP_PARAM_PROBLEM;
      v.code = repr.code;
      // Unused bytes are zero (RFC 792); RFC 1191 puts the MTU in the low half.
      v.rest = 0;
      if (repr.kind === 'param-problem') v.pointer = repr.pointer ?? 0;
      else if (repr.kind === 'dest-unreach' && repr.mtu !== undefined) v.mtu = repr.mtu;
      body = repr.quote;
      break;
    case 'other':
      v.type = repr.type;
      v.code = repr.code;
      v.rest = repr.rest;
      body = repr.data;
      break;
  }
  buf.set(body, off + ICMP_HEADER_LEN);
  v.fillChecksum();
  return v.len;
}
