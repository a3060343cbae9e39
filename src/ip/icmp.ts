import { Packet, PacketPool } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { IcmpMsgCounters, Mib } from '../mib.js';
import type { Ipv4 } from './ipv4.js';
import { checksum, updateChecksum16 } from '../wire/checksum.js';
import { copyRange, getU32, setU32 } from '../wire/bytes.js';
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_PARAM_PROBLEM,
  ICMP_TIME_EXCEEDED,
} from '../wire/icmp.js';

const ICMP_REDIRECT = 5;
import { IPPROTO_ICMP } from '../wire/ipv4.js';

/** An echo reply that arrived for an identifier someone listens on. */
export interface EchoReply {
  src: number;
  dst: number;
  ident: number;
  seq: number;
  ttl: number;
  /** The echo data (a copy). */
  data: Uint8Array;
  /** Size of the whole ICMP message. */
  icmpLen: number;
}

export type EchoListener = (r: EchoReply) => void;

/** An ICMP error that arrived, with the datagram it quotes. */
export interface IcmpErrorInfo {
  type: number;
  code: number;
  /** From the outer header: who reported it. */
  reporter: number;
  /** The quoted header's fields. */
  origSrc: number;
  origDst: number;
  origProto: number;
  /** Bytes after the quoted IP header (at least 8: the transport ports). */
  origPayload: Uint8Array;
  /** Next-hop MTU for fragmentation needed (RFC 1191), else 0. */
  mtu: number;
}

export type IcmpErrorListener = (e: IcmpErrorInfo) => void;

/** Error types; an ICMP message of one of these never gets an error in reply. */
function isErrorType(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * RFC 1812 §4.3.2.3: an error quotes as much of the datagram as fits in 576
 * bytes; RFC 1122 §3.2.2 asks for at least the IP header and 8 bytes.
 */
const ERROR_MAX_LEN = 576;

/** Extra fields of an error message's second word. */
export interface ErrorExtra {
  /** Parameter problem: offset of the octet at fault (RFC 792). */
  pointer?: number;
  /** Fragmentation needed: next-hop MTU (RFC 1191). */
  mtu?: number;
  /** Redirect: the gateway to use instead (RFC 792). */
  gateway?: number;
}

/** RFC 792 and RFC 1122 §3.2.2: ICMP for a host. */
export class Icmp {
  private readonly echoListeners = new Map<number, EchoListener>();
  private readonly errorListeners: IcmpErrorListener[] = [];
  /** net.ipv4.icmp_echo_ignore_all */
  echoIgnoreAll = false;
  /** net.ipv4.icmp_echo_ignore_broadcasts (RFC 1122 §3.2.2.6 lets a host ignore them) */
  echoIgnoreBroadcasts = true;
  /** net.ipv4.icmp_ratelimit: ms between errors to one host (0: no limit). */
  ratelimitMs = 1000;
  /** net.ipv4.icmp_ratemask: the types the per-host limit applies to (dest unreach, source quench, time exceeded, param problem). */
  ratemask = 0x1818;
  /** net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst: the global limit. */
  msgsPerSec = 1000;
  msgsBurst = 50;
  private globalTokens = 50;
  private globalStamp = 0;
  /** Per-destination token buckets, as Linux keeps them in its inet_peer cache. */
  private readonly peers = new Map<number, { tokens: number; stamp: number }>();
  private static readonly PEER_LIMIT = 4096;
  /** The echo reply's output options, filled per reply (output reads them and keeps nothing). */
  private readonly echoOpts = { src: 0, tos: 0 };

  constructor(
    private readonly ip: Ipv4,
    private readonly mib: Mib,
    private readonly msg: IcmpMsgCounters,
    private readonly now: () => number,
    /** Where echo replies come from: they are sent at once and never kept. */
    private readonly pool: PacketPool = new PacketPool(),
  ) {
    ip.register(IPPROTO_ICMP, (pkt, src, dst, iface) => this.input(pkt, src, dst, iface));
    ip.unknownProto = (pkt) => this.sendError(pkt, ICMP_DEST_UNREACH, 2);
    ip.paramProblem = (pkt, pointer) => this.sendError(pkt, ICMP_PARAM_PROBLEM, 0, { pointer });
    this.globalStamp = now();
  }

  /**
   * Sends an ICMP error about `orig`, a received datagram (`orig.l3` at its IP
   * header). Follows RFC 1122 §3.2.2: never about an ICMP error, a datagram sent
   * to a broadcast or multicast address (or link broadcast), a non-first
   * fragment, or one whose source isn't a unicast host; rate-limited like Linux.
   * Returns true if an error went out.
   */
  sendError(orig: Packet, type: number, code: number, extra: ErrorExtra = {}): boolean {
    const b = orig.buf;
    const o = orig.l3;
    if (o < 0 || orig.end - o < 20) return false;
    const hl = (b[o] & 0x0f) * 4;
    const src = getU32(b, o + 12);
    const dst = getU32(b, o + 16);
    if (orig.linkBroadcast) return false;
    if (dst === 0xffffffff || dst >>> 28 === 0xe || !this.ip.isLocal(dst) && this.ip.isBroadcastAddr(dst)) return false;
    if (src === 0 || src === 0xffffffff || src >>> 28 >= 0xe || src >>> 24 === 127) return false;
    // Not about a non-first fragment.
    if ((((b[o + 6] & 0x1f) << 8) | b[o + 7]) !== 0) return false;
    // Not about an ICMP error (informational messages may get one).
    if (b[o + 9] === IPPROTO_ICMP) {
      if (orig.end - o < hl + 1) return false;
      if (isErrorType(b[o + hl])) return false;
    }
    // Linux icmpv4_xrlim_allow: errors to ourselves (over loopback) are not rate-limited.
    if (!this.ip.isLocal(src) && !this.allow(type, src)) return false;
    const quoteLen = Math.min(orig.end - o, ERROR_MAX_LEN - 20 - 8);
    const pkt = Packet.alloc(8 + quoteLen);
    const pb = pkt.buf;
    const po = pkt.start;
    pb[po] = type;
    pb[po + 1] = code;
    pb[po + 2] = 0;
    pb[po + 3] = 0;
    pb[po + 4] = 0;
    pb[po + 5] = 0;
    pb[po + 6] = 0;
    pb[po + 7] = 0;
    if (type === ICMP_PARAM_PROBLEM && extra.pointer !== undefined) pb[po + 4] = extra.pointer;
    if (type === ICMP_DEST_UNREACH && extra.mtu !== undefined) {
      pb[po + 6] = extra.mtu >> 8;
      pb[po + 7] = extra.mtu & 0xff;
    }
    if (type === ICMP_REDIRECT && extra.gateway !== undefined) setU32(pb, po + 4, extra.gateway);
    pb.set(b.subarray(o, o + quoteLen), po + 8);
    const c = checksum(pb, po, 8 + quoteLen);
    pb[po + 2] = c >> 8;
    pb[po + 3] = c & 0xff;
    // RFC 1812 §4.3.2.5: errors go with precedence 6 (internetwork control).
    const tos = (b[o + 1] & 0x1e) | 0xc0;
    // Reply from the address the datagram was sent to when it is ours.
    const from = this.ip.isLocal(dst) ? dst : 0;
    const err = this.ip.output(pkt, src, IPPROTO_ICMP, { src: from, tos });
    if (err !== null) {
      this.mib.IcmpOutErrors++;
      return false;
    }
    this.countOut(type);
    return true;
  }

  /** Linux's icmpv4_xrlim_allow and icmp_global_allow, in that order. */
  private allow(type: number, dst: number): boolean {
    const now = this.now();
    // Global: a token bucket of msgs_per_sec, at most msgs_burst deep.
    if (this.msgsPerSec > 0) {
      const refill = ((now - this.globalStamp) * this.msgsPerSec) / 1000;
      if (refill > 0) {
        this.globalTokens = Math.min(this.msgsBurst, this.globalTokens + refill);
        this.globalStamp = now;
      }
      if (this.globalTokens < 1) {
        this.mib.IcmpOutRateLimitGlobal++;
        return false;
      }
    }
    // Per destination, for the types in the mask: one per ratelimit, bursts of 6.
    if (this.ratelimitMs > 0 && type < 32 && (this.ratemask & (1 << type)) !== 0) {
      const burst = 6 * this.ratelimitMs;
      let p = this.peers.get(dst);
      if (p === undefined) {
        if (this.peers.size >= Icmp.PEER_LIMIT) this.peers.delete(this.peers.keys().next().value as number);
        p = { tokens: burst, stamp: now };
        this.peers.set(dst, p);
      }
      p.tokens = Math.min(burst, p.tokens + (now - p.stamp));
      p.stamp = now;
      if (p.tokens < this.ratelimitMs) {
        this.mib.IcmpOutRateLimitHost++;
        return false;
      }
      p.tokens -= this.ratelimitMs;
    }
    if (this.msgsPerSec > 0) this.globalTokens -= 1;
    return true;
  }

  /** Receives echo replies with identifier `ident`; returns the function that stops it. */
  listenEcho(ident: number, fn: EchoListener): () => void {
    if (this.echoListeners.has(ident)) throw new Error(`ICMP identifier ${ident} is in use`);
    this.echoListeners.set(ident, fn);
    return () => this.echoListeners.delete(ident);
  }

  echoInUse(ident: number): boolean {
    return this.echoListeners.has(ident);
  }

  onError(fn: IcmpErrorListener): void {
    this.errorListeners.push(fn);
  }

  offError(fn: IcmpErrorListener): void {
    const i = this.errorListeners.indexOf(fn);
    if (i >= 0) this.errorListeners.splice(i, 1);
  }

  private input(pkt: Packet, src: number, dst: number, iface: Interface): void {
    const mib = this.mib;
    mib.IcmpInMsgs++;
    const b = pkt.buf;
    const o = pkt.start;
    const len = pkt.end - o;
    if (len < 8) {
      mib.IcmpInErrors++;
      return;
    }
    if (checksum(b, o, len) !== 0) {
      mib.IcmpInCsumErrors++;
      mib.IcmpInErrors++;
      return;
    }
    const type = b[o];
    this.msg.in[type]++;
    switch (type) {
      case ICMP_ECHO_REQUEST:
        mib.IcmpInEchos++;
        this.echoRequest(pkt, src, dst, iface);
        break;
      case ICMP_ECHO_REPLY: {
        mib.IcmpInEchoReps++;
        const ident = (b[o + 4] << 8) | b[o + 5];
        const l = this.echoListeners.get(ident);
        if (l !== undefined)
          l({
            src,
            dst,
            ident,
            seq: (b[o + 6] << 8) | b[o + 7],
            ttl: b[pkt.l3 + 8],
            data: b.slice(o + 8, pkt.end),
            icmpLen: len,
          });
        break;
      }
      case ICMP_DEST_UNREACH:
        mib.IcmpInDestUnreachs++;
        this.errorInput(pkt, src);
        break;
      case ICMP_TIME_EXCEEDED:
        mib.IcmpInTimeExcds++;
        this.errorInput(pkt, src);
        break;
      case ICMP_PARAM_PROBLEM:
        mib.IcmpInParmProbs++;
        this.errorInput(pkt, src);
        break;
      default:
        break;
    }
  }

  /** RFC 792: the reply carries the request's identifier, sequence and data. */
  private echoRequest(req: Packet, src: number, dst: number, iface: Interface): void {
    if (this.echoIgnoreAll) return;
    const local = this.ip.isLocal(dst);
    if (!local && this.echoIgnoreBroadcasts) return;
    const len = req.end - req.start;
    const reply = this.pool.alloc(len);
    const rb = reply.buf;
    const ro = reply.start;
    copyRange(rb, ro, req.buf, req.start, req.end);
    rb[ro] = ICMP_ECHO_REPLY;
    // RFC 1624: only the type byte changed (8 -> 0), so patch the checksum.
    const c = updateChecksum16((rb[ro + 2] << 8) | rb[ro + 3], ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8);
    rb[ro + 2] = c >> 8;
    rb[ro + 3] = c & 0xff;
    // RFC 1122 §3.2.2.6: a reply to a broadcast comes from one of our own addresses.
    const from = local ? dst : iface.sourceFor(src);
    // RFC 1122 §3.2.2.6: the TOS of the request is returned unchanged.
    const tos = req.l3 >= 0 ? req.buf[req.l3 + 1] : 0;
    const opts = this.echoOpts;
    opts.src = from;
    opts.tos = tos;
    if (this.ip.output(reply, src, IPPROTO_ICMP, opts) === null) this.countOut(ICMP_ECHO_REPLY);
    else this.mib.IcmpOutErrors++;
  }

  /** Sends an echo request with `data` as the payload. */
  sendEcho(
    dst: number,
    ident: number,
    seq: number,
    data: Uint8Array,
    opts: { ttl?: number; dontFrag?: boolean; src?: number } = {},
  ): string | null {
    const pkt = Packet.alloc(8 + data.length);
    const b = pkt.buf;
    const o = pkt.start;
    b[o] = ICMP_ECHO_REQUEST;
    b[o + 1] = 0;
    b[o + 2] = 0;
    b[o + 3] = 0;
    b[o + 4] = ident >> 8;
    b[o + 5] = ident & 0xff;
    b[o + 6] = (seq >> 8) & 0xff;
    b[o + 7] = seq & 0xff;
    b.set(data, o + 8);
    const c = checksum(b, o, 8 + data.length);
    b[o + 2] = c >> 8;
    b[o + 3] = c & 0xff;
    const err = this.ip.output(pkt, dst, IPPROTO_ICMP, opts);
    if (err === null) this.countOut(ICMP_ECHO_REQUEST);
    else this.mib.IcmpOutErrors++;
    return err;
  }

  private countOut(type: number): void {
    const mib = this.mib;
    mib.IcmpOutMsgs++;
    this.msg.out[type]++;
    if (type === ICMP_ECHO_REPLY) mib.IcmpOutEchoReps++;
    else if (type === ICMP_ECHO_REQUEST) mib.IcmpOutEchos++;
    else if (type === ICMP_DEST_UNREACH) mib.IcmpOutDestUnreachs++;
    else if (type === ICMP_TIME_EXCEEDED) mib.IcmpOutTimeExcds++;
    else if (type === ICMP_PARAM_PROBLEM) mib.IcmpOutParmProbs++;
    else if (type === ICMP_REDIRECT) mib.IcmpOutRedirects++;
  }

  /** Hands an arriving error to whoever sent the datagram it quotes. */
  private errorInput(pkt: Packet, reporter: number): void {
    const b = pkt.buf;
    const o = pkt.start;
    const len = pkt.end - o;
    // RFC 1122 §3.2.2: the quote is the IP header plus at least 8 bytes.
    if (len < 8 + 20 + 8 || b[o + 8] >> 4 !== 4) {
      this.mib.IcmpInErrors++;
      return;
    }
    const qo = o + 8;
    const qhl = (b[qo] & 0x0f) * 4;
    if (qhl < 20 || len < 8 + qhl + 8) {
      this.mib.IcmpInErrors++;
      return;
    }
    const info: IcmpErrorInfo = {
      type: b[o],
      code: b[o + 1],
      reporter,
      origSrc: getU32(b, qo + 12),
      origDst: getU32(b, qo + 16),
      origProto: b[qo + 9],
      origPayload: b.slice(qo + qhl, pkt.end),
      mtu: b[o] === ICMP_DEST_UNREACH && b[o + 1] === 4 ? (b[o + 6] << 8) | b[o + 7] : 0,
    };
    for (const l of this.errorListeners) l(info);
  }
}
