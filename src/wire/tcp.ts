/**
 * TCP header (RFC 9293 §3.1) and its options: MSS and EOL/NOP (RFC 9293 §3.2), window
 * scale and timestamps (RFC 7323), SACK (RFC 2018), Fast Open (RFC 7413). The view
 * covers the IP payload: the segment is the header, its options, then the data.
 */
import * as bytes from './bytes.js';
import { checksum, fold, pseudoHeaderSum, sum16 } from './checksum.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { copyBytes, getU16, getU32, setU16, setU32 } = bytes;

export const TCP_HEADER_LEN = 20;
/** The data offset is 4 bits of 32-bit words: at most 60 bytes, 40 of them options. */
const TCP_MAX_HEADER_LEN = 60;
const TCP_MAX_OPTIONS_LEN = TCP_MAX_HEADER_LEN - TCP_HEADER_LEN;
const IPPROTO_TCP = 6;

// Control bits: byte 13 of the header.
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
/** ECN-Echo and Congestion Window Reduced (RFC 3168 §6.1). */
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

// Option kinds.
export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WINDOW = 3;
export const TCPOPT_SACK_PERM = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;
export const TCPOPT_FASTOPEN = 34;
/** RFC 6994 experimental option; Fast Open's pre-RFC form is kind 254 with magic 0xF989. */
export const TCPOPT_EXP = 254;
export const TCPOPT_FASTOPEN_MAGIC = 0xf989;

// Option lengths (kind and length bytes included).
const TCPOLEN_MSS = 4;
const TCPOLEN_WINDOW = 3;
const TCPOLEN_SACK_PERM = 2;
const TCPOLEN_TIMESTAMP = 10;
const TCPOLEN_SACK_BASE = 2;
const TCPOLEN_SACK_PERBLOCK = 8;
const TCP_MAX_SACK_BLOCKS = 4;
const TCPOLEN_FASTOPEN_BASE = 2;
const TCPOLEN_EXP_FASTOPEN_BASE = 4;
/** RFC 7413 §4.1.1: a cookie is 4 to 16 bytes (and Linux's are even). */
const TCP_FASTOPEN_COOKIE_MIN = 4;
const TCP_FASTOPEN_COOKIE_MAX = 16;

export class TcpView extends ByteView {
  /**
   * 'truncated' below 20 bytes; 'data-offset' when the data offset is below 5 words or
   * the header it gives is longer than the bytes (Linux tcp_v4_rcv drops both).
   * The checksum is separate: verifyTcpChecksum().
   */
  check(): string | null {
    if (this.len < TCP_HEADER_LEN) return 'truncated';
    const hl = this.headerLen;
    if (hl < TCP_HEADER_LEN || hl > this.len) return 'data-offset';
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

  /** Sequence number, unsigned (0 to 2^32 - 1). */
  get seq(): number {
    return getU32(this.buf, this.off + 4);
  }

  set seq(v: number) {
    setU32(this.buf, this.off + 4, v);
  }

  /** Acknowledgment number, unsigned; meaningful only with ACK set. */
  get ack(): number {
    return getU32(this.buf, this.off + 8);
  }

  set ack(v: number) {
    setU32(this.buf, this.off + 8, v);
  }

  /** Header length in bytes: the data offset (high 4 bits of byte 12) times 4. */
  get headerLen(): number {
    return (this.buf[this.off + 12] >>> 4) << 2;
  }

  /** Stores `v / 4` (20 to 60 bytes) as the data offset; the 4 reserved bits become 0. */
  set headerLen(v: number) {
    this.buf[this.off + 12] = ((v >>> 2) & 0xf) << 4;
  }

  /** The 8 control bits of byte 13 (TCP_FIN ... TCP_CWR). */
  get flags(): number {
    return this.buf[this.off + 13];
  }

  set flags(v: number) {
    this.buf[this.off + 13] = v;
  }

  /** The window as sent: scaled by the sender's shift except in SYNs (RFC 7323 §2.2). */
  get window(): number {
    return getU16(this.buf, this.off + 14);
  }

  set window(v: number) {
    setU16(this.buf, this.off + 14, v);
  }

  get checksum(): number {
    return getU16(this.buf, this.off + 16);
  }

  set checksum(v: number) {
    setU16(this.buf, this.off + 16, v);
  }

  get urgent(): number {
    return getU16(this.buf, this.off + 18);
  }

  set urgent(v: number) {
    setU16(this.buf, this.off + 18, v);
  }

  get payloadOff(): number {
    return this.off + this.headerLen;
  }

  /** Data bytes: everything after the header (TCP has no length field of its own). */
  get payloadLen(): number {
    return this.len - this.headerLen;
  }

  get optionsOff(): number {
    return this.off + TCP_HEADER_LEN;
  }

  get optionsLen(): number {
    return this.headerLen - TCP_HEADER_LEN;
  }

  /** The data (a view, not a copy). */
  payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerLen, this.off + this.len);
  }
}

/**
 * True when the sum over the IPv4 pseudo-header and the view's `len` bytes (header,
 * options, data) is all ones (RFC 9293 §3.1). Call after check().
 */
export function verifyTcpChecksum(view: TcpView, srcIp: number, dstIp: number): boolean {
  const l = view.len;
  return fold(sum16(view.buf, view.off, l, pseudoHeaderSum(srcIp, dstIp, IPPROTO_TCP, l))) === 0xffff;
}

/** Computes and stores the checksum over the view's `len` bytes. */
export function fillTcpChecksum(view: TcpView, srcIp: number, dstIp: number): void {
  view.checksum = 0;
  const l = view.len;
  view.checksum = checksum(view.buf, view.off, l, pseudoHeaderSum(srcIp, dstIp, IPPROTO_TCP, l));
}

/**
 * Options of a received segment. One object serves segment after segment:
 * parseTcpOptions clears it and fills in what the segment carries. Which options
 * count in which segments (MSS, window scale and SACK-permitted only in a SYN) is the
 * protocol's business; this records everything that is well formed.
 */
export class TcpOptions {
  /** 0: absent (Linux also ignores an MSS option of 0). */
  mss = 0;
  /** -1: absent; else the shift as sent (the caller clamps to 14, RFC 7323 §2.3). */
  wscale = -1;
  sackPermitted = false;
  tsPresent = false;
  tsVal = 0;
  tsEcr = 0;
  /** Blocks in `sack`, 0 to 4. */
  sackCount = 0;
  /** [left0, right0, left1, right1, ...] for the first `sackCount` blocks, unsigned. */
  readonly sack = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);
  /**
   * The Fast Open cookie, a view into the segment (copy it to keep it); an empty array
   * is a cookie request; null when absent.
   */
  fastOpen: Uint8Array | null = null;
  /** The cookie came in the experimental form (kind 254, magic 0xF989). */
  fastOpenExp = false;

  clear(): void {
    this.mss = 0;
    this.wscale = -1;
    this.sackPermitted = false;
    this.tsPresent = false;
    this.tsVal = 0;
    this.tsEcr = 0;
    this.sackCount = 0;
    this.fastOpen = null;
    this.fastOpenExp = false;
  }
}

/**
 * Parses the options region `buf[off, off+len)` into `out` (cleared first). Returns
 * null, or 'malformed' when an option's length byte is missing, below 2 or runs past
 * the end, or a known option has the wrong length: MSS 4, window scale 3, SACK-permitted
 * 2, timestamps 10, SACK 2 + 8n with n from 1 to 4, Fast Open 2 (a cookie request) or
 * 6 to 18 and even (RFC 7413 §4.1.1). Unknown kinds are skipped by their length; EOL
 * ends the list. When an option appears twice, the later one counts.
 */
export function parseTcpOptions(buf: Uint8Array, off: number, len: number, out: TcpOptions): string | null {
  out.clear();
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = buf[i];
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 'malformed';
    const olen = buf[i + 1];
    if (olen < 2 || olen > end - i) return 'malformed';
    switch (kind) {
      case TCPOPT_MSS:
        if (olen !== TCPOLEN_MSS) return 'malformed';
        out.mss = getU16(buf, i + 2);
        break;
      case TCPOPT_WINDOW:
        if (olen !== TCPOLEN_WINDOW) return 'malformed';
        out.wscale = buf[i + 2];
        break;
      case TCPOPT_SACK_PERM:
        if (olen !== TCPOLEN_SACK_PERM) return 'malformed';
        out.sackPermitted = true;
        break;
      case TCPOPT_TIMESTAMP:
        if (olen !== TCPOLEN_TIMESTAMP) return 'malformed';
        out.tsPresent = true;
        out.tsVal = getU32(buf, i + 2);
        out.tsEcr = getU32(buf, i + 6);
        break;
      case TCPOPT_SACK: {
        const n = (olen - TCPOLEN_SACK_BASE) >>> 3;
        if (n < 1 || n > TCP_MAX_SACK_BLOCKS || TCPOLEN_SACK_BASE + n * TCPOLEN_SACK_PERBLOCK !== olen) {
          return 'malformed';
        }
        const s = out.sack;
        for (let b = 0, p = i + 2; b < 2 * n; b++, p += 4) s[b] = getU32(buf, p);
        out.sackCount = n;
        break;
      }
      case TCPOPT_FASTOPEN: {
        const c = olen - TCPOLEN_FASTOPEN_BASE;
        if (c !== 0 && (c < TCP_FASTOPEN_COOKIE_MIN || c > TCP_FASTOPEN_COOKIE_MAX || (c & 1) !== 0)) {
          return 'malformed';
        }
        out.fastOpen = buf.subarray(i + 2, i + olen);
        out.fastOpenExp = false;
        break;
      }
      case TCPOPT_EXP: {
        // Linux tcp_parse_options: kind 254 is Fast Open when its first two bytes are the magic;
        // any other experimental option is skipped by its length.
        if (olen < TCPOLEN_EXP_FASTOPEN_BASE || getU16(buf, i + 2) !== TCPOPT_FASTOPEN_MAGIC) break;
        const c = olen - TCPOLEN_EXP_FASTOPEN_BASE;
        if (c !== 0 && (c < TCP_FASTOPEN_COOKIE_MIN || c > TCP_FASTOPEN_COOKIE_MAX || (c & 1) !== 0)) {
          return 'malformed';
        }
        out.fastOpen = buf.subarray(i + 4, i + olen);
        out.fastOpenExp = true;
        break;
      }
      default:
        break;
    }
    i += olen;
  }
  return null;
}

/** What to put in an outgoing segment's options; an absent field sends nothing. */
export interface TcpOptionsSpec {
  /** Sent when above 0. */
  mss?: number;
  /** The shift; sent when 0 or more. */
  wscale?: number;
  sackPermitted?: boolean;
  ts?: { val: number; ecr: number } | null;
  /** [left0, right0, left1, right1, ...]. */
  sack?: ArrayLike<number>;
  /** Blocks of `sack` to send (default: all of it); at most 4, and fewer when they don't fit. */
  sackCount?: number;
  /** The Fast Open cookie (0 or 4 to 16 bytes; empty: a cookie request). */
  fastOpen?: Uint8Array | null;
  /** Send the cookie in the experimental form (kind 254, magic 0xF989) instead of kind 34. */
  fastOpenExp?: boolean;
}

/** Bytes of everything but the SACK option, each word-aligned as emitted. */
function fixedOptionsLen(spec: TcpOptionsSpec): number {
  let n = 0;
  if (spec.mss !== undefined && spec.mss > 0) n += 4;
  if (spec.ts) n += 12;
  else if (spec.sackPermitted === true) n += 4;
  if (spec.wscale !== undefined && spec.wscale >= 0) n += 4;
  const fo = spec.fastOpen;
  if (fo) {
    const c = fo.length;
    if (c !== 0 && (c < TCP_FASTOPEN_COOKIE_MIN || c > TCP_FASTOPEN_COOKIE_MAX)) {
      throw new WireError('tcp', 'fast open cookie length');
    }
    n += ((spec.fastOpenExp === true ? TCPOLEN_EXP_FASTOPEN_BASE : TCPOLEN_FASTOPEN_BASE) + c + 3) & ~3;
  }
  // At most MSS 4 + TS 12 + WS 4 + Fast Open 20: the 40 bytes there are.
  return n;
}

/**
 * SACK blocks that will go out: as many as asked for, at most 4 and at most what fits
 * in the 40 option bytes left by the rest (Linux's tcp_established_options: 3 beside
 * timestamps).
 */
function sackBlocks(spec: TcpOptionsSpec, fixed: number): number {
  const s = spec.sack;
  if (s === undefined) return 0;
  let n = spec.sackCount ?? s.length >>> 1;
  if (n > s.length >>> 1) n = s.length >>> 1;
  if (n > TCP_MAX_SACK_BLOCKS) n = TCP_MAX_SACK_BLOCKS;
  const room = (TCP_MAX_OPTIONS_LEN - fixed - 4) >> 3;
  if (n > room) n = room;
  return n > 0 ? n : 0;
}

/** The bytes emitTcpOptions writes for `spec` (a multiple of 4, at most 40). */
export function tcpOptionsLen(spec: TcpOptionsSpec): number {
  const fixed = fixedOptionsLen(spec);
  const n = sackBlocks(spec, fixed);
  return n > 0 ? fixed + 4 + n * TCPOLEN_SACK_PERBLOCK : fixed;
}

/**
 * Writes the options at `off` in the order and layout of Linux's tcp_options_write
 * (net/ipv4/tcp_output.c), each option padded to whole 32-bit words with leading NOPs:
 *   MSS                                       02 04 mss
 *   timestamps, sharing a word with SACK-permitted when both are sent:
 *                                             04 02 08 0a val ecr  or  01 01 08 0a val ecr
 *   SACK-permitted without timestamps         01 01 04 02
 *   window scale                              01 03 03 shift
 *   SACK blocks                               01 01 05 len left right ...
 *   Fast Open                                 22 len cookie, then NOPs to the word
 *                                  (or, experimental: fe len f9 89 cookie, NOPs)
 * Returns the byte count (a multiple of 4, at most 40). Throws a WireError for a Fast
 * Open cookie of a length RFC 7413 doesn't allow.
 */
export function emitTcpOptions(spec: TcpOptionsSpec, buf: Uint8Array, off: number): number {
  const fixed = fixedOptionsLen(spec);
  let i = off;
  const mss = spec.mss;
  if (mss !== undefined && mss > 0) {
    buf[i] = TCPOPT_MSS;
    buf[i + 1] = TCPOLEN_MSS;
    setU16(buf, i + 2, mss);
    i += 4;
  }
  const ts = spec.ts;
  const sackPerm = spec.sackPermitted === true;
  if (ts) {
    if (sackPerm) {
      buf[i] = TCPOPT_SACK_PERM;
      buf[i + 1] = TCPOLEN_SACK_PERM;
    } else {
      buf[i] = TCPOPT_NOP;
      buf[i + 1] = TCPOPT_NOP;
    }
    buf[i + 2] = TCPOPT_TIMESTAMP;
    buf[i + 3] = TCPOLEN_TIMESTAMP;
    setU32(buf, i + 4, ts.val);
    setU32(buf, i + 8, ts.ecr);
    i += 12;
  } else if (sackPerm) {
    buf[i] = TCPOPT_NOP;
    buf[i + 1] = TCPOPT_NOP;
    buf[i + 2] = TCPOPT_SACK_PERM;
    buf[i + 3] = TCPOLEN_SACK_PERM;
    i += 4;
  }
  const ws = spec.wscale;
  if (ws !== undefined && ws >= 0) {
    buf[i] = TCPOPT_NOP;
    buf[i + 1] = TCPOPT_WINDOW;
    buf[i + 2] = TCPOLEN_WINDOW;
    buf[i + 3] = ws;
    i += 4;
  }
  const n = sackBlocks(spec, fixed);
  if (n > 0) {
    const s = spec.sack as ArrayLike<number>;
    buf[i] = TCPOPT_NOP;
    buf[i + 1] = TCPOPT_NOP;
    buf[i + 2] = TCPOPT_SACK;
    buf[i + 3] = TCPOLEN_SACK_BASE + n * TCPOLEN_SACK_PERBLOCK;
    i += 4;
    for (let b = 0; b < 2 * n; b++, i += 4) setU32(buf, i, s[b]);
  }
  const fo = spec.fastOpen;
  if (fo) {
    const exp = spec.fastOpenExp === true;
    const olen = (exp ? TCPOLEN_EXP_FASTOPEN_BASE : TCPOLEN_FASTOPEN_BASE) + fo.length;
    buf[i] = exp ? TCPOPT_EXP : TCPOPT_FASTOPEN;
    buf[i + 1] = olen;
    if (exp) setU16(buf, i + 2, TCPOPT_FASTOPEN_MAGIC);
    buf.set(fo, i + (exp ? 4 : 2));
    const end = i + ((olen + 3) & ~3);
    for (i += olen; i < end; i++) buf[i] = TCPOPT_NOP;
  }
  return i - off;
}

/** A segment's header; the payload (payloadLen bytes) follows it in the caller's buffer. */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  options: TcpOptionsSpec;
  payloadLen: number;
}

/** The spec that emits what `o` holds: only the options present, as copies. */
function specOf(o: TcpOptions): TcpOptionsSpec {
  const spec: TcpOptionsSpec = {};
  if (o.mss > 0) spec.mss = o.mss;
  if (o.wscale >= 0) spec.wscale = o.wscale;
  if (o.sackPermitted) spec.sackPermitted = true;
  if (o.tsPresent) spec.ts = { val: o.tsVal, ecr: o.tsEcr };
  if (o.sackCount > 0) {
    spec.sack = Array.from(o.sack.subarray(0, 2 * o.sackCount));
    spec.sackCount = o.sackCount;
  }
  if (o.fastOpen !== null) spec.fastOpen = copyBytes(o.fastOpen, 0, o.fastOpen.length);
  if (o.fastOpenExp) spec.fastOpenExp = true;
  return spec;
}

/**
 * The header and its options (only those present appear in `options`). Throws a
 * WireError with check()'s reason, or 'malformed-options' from parseTcpOptions.
 */
export function parseTcp(v: TcpView | Uint8Array): TcpRepr {
  const view = v instanceof TcpView ? v : new TcpView(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('tcp', err);
  const opts = new TcpOptions();
  if (parseTcpOptions(view.buf, view.optionsOff, view.optionsLen, opts) !== null) {
    throw new WireError('tcp', 'malformed-options');
  }
  return {
    srcPort: view.srcPort,
    dstPort: view.dstPort,
    seq: view.seq,
    ack: view.ack,
    flags: view.flags,
    window: view.window,
    urgent: view.urgent,
    options: specOf(opts),
    payloadLen: view.payloadLen,
  };
}

/**
 * Writes the header and its options (emitTcpOptions) at `off` and returns the header
 * length. When addresses are given, the payload must already follow the options: the
 * checksum is computed over header, options and payloadLen bytes of data; without them
 * it is left 0.
 */
export function emitTcp(repr: TcpRepr, buf: Uint8Array, off: number, srcIp?: number, dstIp?: number): number {
  const hl = TCP_HEADER_LEN + emitTcpOptions(repr.options, buf, off + TCP_HEADER_LEN);
  const len = hl + repr.payloadLen;
  if (len > 0xffff) throw new WireError('tcp', 'segment too long');
  const v = new TcpView(buf, off, len);
  v.srcPort = repr.srcPort;
  v.dstPort = repr.dstPort;
  v.seq = repr.seq;
  v.ack = repr.ack;
  v.headerLen = hl;
  v.flags = repr.flags;
  v.window = repr.window;
  v.checksum = 0;
  v.urgent = repr.urgent;
  if (srcIp !== undefined && dstIp !== undefined) fillTcpChecksum(v, srcIp, dstIp);
  return hl;
}
