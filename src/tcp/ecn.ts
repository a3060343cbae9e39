/**
 * Explicit Congestion Notification for TCP (RFC 3168), with Linux's rules
 * (tcp_ecn_send_syn, tcp_ecn_create_request, tcp_ecn_rcv_synack, tcp_ecn_send,
 * __tcp_ecn_check_ce, tcp_ecn_accept_cwr, tcp_enter_cwr):
 *
 * - net.ipv4.tcp_ecn: 0 off; 1 ask for ECN in our SYNs and accept it in theirs;
 *   2 (the default) accept it only when asked. A SYN asking for it carries ECE|CWR,
 *   the SYN-ACK agreeing carries ECE only.
 * - net.ipv4.tcp_ecn_fallback: a retransmitted SYN goes without ECE|CWR (RFC 3168 §6.1.1.1).
 * - ECT(0) goes on new data segments only: never on SYNs, pure ACKs or retransmissions.
 * - A receiver that sees CE sets ECE on every segment until a CWR arrives (§6.1.3).
 * - A sender that sees ECE reduces its window once per round trip: it enters CWR,
 *   takes the module's ssthresh, brings cwnd down over the round as Proportional
 *   Rate Reduction does (RFC 6937), and sets CWR on the next new data segment.
 */
import { TCP_ACK, TCP_CWR, TCP_ECE } from '../wire/tcp.js';
import { seqGt } from './seq.js';
import type { TcpConnection } from './connection.js';

/** Linux's tp->ecn_flags bits. */
export const ECN_OK = 1;
export const ECN_QUEUE_CWR = 2;
export const ECN_DEMAND_CWR = 4;
export const ECN_SEEN = 8;

/** The ECN field of the IP header's TOS byte (RFC 3168 §5). */
export const INET_ECN_NOT_ECT = 0;
export const INET_ECN_ECT_1 = 1;
export const INET_ECN_ECT_0 = 2;
export const INET_ECN_CE = 3;
export const INET_ECN_MASK = 3;

/** The connection's window reduction after an ECE (Linux's TCP_CA_CWR state and PRR counters). */
export class EcnCwr {
  active = false;
  /** snd_nxt when the reduction began: it ends once something above it is acknowledged. */
  highSeq = 0;
  priorCwnd = 0;
  /** Segments delivered and sent since it began (RFC 6937 prr_delivered, prr_out). */
  delivered = 0;
  outAtStart = 0;
}

/** Flags for our SYN (tcp_ecn_send_syn; tcp_ecn_clear_syn for a retransmission). */
export function ecnSynFlags(c: TcpConnection, first: boolean): number {
  const s = c.host.settings;
  if (first) {
    c.ecnFlags = s.ecn === 1 ? ECN_OK : 0;
    c.cwr.active = false;
  }
  if (!(c.ecnFlags & ECN_OK)) return 0;
  // RFC 3168 §6.1.1.1: the SYN may have been lost for its ECN bits; try again without them.
  if (!first && s.ecnFallback) return 0;
  return TCP_ECE | TCP_CWR;
}

/** A SYN reached a listener: does the connection use ECN? (tcp_ecn_create_request) */
export function ecnPassive(c: TcpConnection, flags: number, ipEcn: number): void {
  // A SYN with ECT set is refused ECN: it came from something that marks SYNs (RFC 3168 §6.1.1).
  const asked = (flags & (TCP_ECE | TCP_CWR)) === (TCP_ECE | TCP_CWR);
  c.ecnFlags = asked && ipEcn === INET_ECN_NOT_ECT && c.host.settings.ecn !== 0 ? ECN_OK : 0;
}

/** The peer's SYN-ACK (or SYN, in a simultaneous open) in SYN-SENT (tcp_ecn_rcv_synack, tcp_ecn_rcv_syn). */
export function ecnSynReceived(c: TcpConnection, flags: number): void {
  if (!(c.ecnFlags & ECN_OK)) return;
  // A SYN-ACK agrees with ECE alone; a SYN asks with both ECE and CWR.
  const want = flags & TCP_ACK ? TCP_ECE : TCP_ECE | TCP_CWR;
  if ((flags & (TCP_ECE | TCP_CWR)) !== want) c.ecnFlags = 0;
}

/** The SYN-ACK's ECE (tcp_ecn_make_synack). */
export function ecnSynAckFlags(c: TcpConnection): number {
  return c.ecnFlags & ECN_OK ? TCP_ECE : 0;
}

/**
 * A non-SYN segment leaving (tcp_ecn_send): the flags to add in the low byte and
 * the IP ECN field above it. New data gets ECT(0) and, once after a reduction, CWR.
 */
export function ecnSend(c: TcpConnection, len: number, retrans: boolean): number {
  const e = c.ecnFlags;
  if (!(e & ECN_OK)) return 0;
  let out = 0;
  if (len > 0 && !retrans) {
    out = INET_ECN_ECT_0 << 8;
    if (e & ECN_QUEUE_CWR) {
      c.ecnFlags = e & ~ECN_QUEUE_CWR;
      out |= TCP_CWR;
    }
  }
  if (e & ECN_DEMAND_CWR) out |= TCP_ECE;
  return out;
}

/** A segment with data arrived in the window: its IP ECN field (__tcp_ecn_check_ce). */
export function ecnCheckCe(c: TcpConnection, ipEcn: number): void {
  switch (ipEcn) {
    case INET_ECN_NOT_ECT:
      // Not ECT after ECT was seen: probably a retransmission; ACK quickly (tcp_enter_quickack_mode).
      if (c.ecnFlags & ECN_SEEN) c.quickAckMode(2);
      break;
    case INET_ECN_CE:
      if (!(c.ecnFlags & ECN_DEMAND_CWR)) {
        // The sender may have a very small window: don't delay the ACK that tells it.
        c.quickAckMode(2);
        c.ecnFlags |= ECN_DEMAND_CWR;
      }
      c.ecnFlags |= ECN_SEEN;
      break;
    default:
      c.ecnFlags |= ECN_SEEN;
      break;
  }
}

/**
 * An acceptable ACK with CWR: the sender has reduced, stop echoing (tcp_ecn_accept_cwr;
 * Linux takes it on pure ACKs too). A segment with data is acknowledged at once.
 */
export function ecnAcceptCwr(c: TcpConnection, segLen: number): void {
  if (!(c.ecnFlags & ECN_OK)) return;
  c.ecnFlags &= ~ECN_DEMAND_CWR;
  if (segLen > 0) c.queueAck(true);
}

/** A window reduction begins (tcp_init_cwnd_reduction): loss recovery and RTO queue CWR too (tcp_ecn_queue_cwr). */
export function ecnQueueCwr(c: TcpConnection): void {
  if (c.ecnFlags & ECN_OK) c.ecnFlags |= ECN_QUEUE_CWR;
  // Loss recovery takes over from an ECE reduction under way.
  c.cwr.active = false;
}

/**
 * An ACK that advanced snd_una while the connection is not recovering from loss,
 * with `acked` segments newly delivered. Ends a reduction whose round is over
 * (tcp_end_cwnd_reduction: cwnd = ssthresh), starts one on ECE (tcp_enter_cwr),
 * and while one runs sets cwnd as PRR does (tcp_cwnd_reduction). True when the
 * reduction set cwnd, so the module must not grow it on this ACK.
 */
export function ecnOnAck(c: TcpConnection, flags: number, acked: number, inFlight: number): boolean {
  const r = c.cwr;
  if (r.active && seqGt(c.sndUna, r.highSeq)) {
    // Something above high_seq is acknowledged: the CWR flag has reached the receiver.
    r.active = false;
    if (c.ssthresh < 0x7fffffff) c.cwnd = c.ssthresh;
    c.cc.cwndEvent(c, 'complete-cwr', 0);
    c.cc.setState(c, 'open');
  }
  if (flags & TCP_ECE && !r.active) {
    r.active = true;
    r.highSeq = c.sndNxt;
    r.priorCwnd = c.cwnd;
    r.delivered = 0;
    r.outAtStart = c.dataSegsOut;
    c.cwndCnt = 0;
    c.ssthresh = c.cc.ssthresh(c);
    c.ecnFlags |= ECN_QUEUE_CWR;
    c.cc.setState(c, 'cwr');
  }
  if (!r.active) return false;
  if (acked <= 0) return true;
  // RFC 6937 §3.1 (Linux tcp_cwnd_reduction).
  r.delivered += acked;
  const prrOut = c.dataSegsOut - r.outAtStart;
  const delta = c.ssthresh - inFlight;
  let sndcnt: number;
  if (delta < 0) {
    sndcnt = Math.floor((c.ssthresh * r.delivered + r.priorCwnd - 1) / r.priorCwnd) - prrOut;
  } else {
    sndcnt = Math.min(delta, Math.max(prrOut, acked) + 1);
  }
  if (sndcnt < (prrOut > 0 ? 0 : 1)) sndcnt = prrOut > 0 ? 0 : 1;
  c.cwnd = Math.max(1, inFlight + sndcnt);
  return true;
}
