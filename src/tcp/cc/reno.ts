/**
 * Reno: slow start and congestion avoidance (RFC 5681 §3.1) counted in
 * segments, as Linux's tcp_cong.c does. Fast retransmit and NewReno fast
 * recovery (RFC 6582) belong to the connection; this module gives the
 * ssthresh to fall back to and grows cwnd on ACKs. The two window helpers are
 * shared with the other modules, as Linux's are.
 */
import type { CaEvent, CaState, CcState, CongestionControl } from './types.js';

/**
 * Slow start: cwnd grows by the segments this ACK acknowledged, up to ssthresh
 * (RFC 5681 §3.1: by at most SMSS per ACK; like Linux, a stretch ACK of N
 * segments counts as N ACKs, so a round of ACKs doubles cwnd whatever the ACK
 * ratio). Returns the acknowledged segments left over once cwnd reached
 * ssthresh, for congestion avoidance to use.
 */
export function slowStart(s: CcState, acked: number): number {
  const cwnd = Math.min(s.cwnd + acked, s.ssthresh);
  const left = acked - (cwnd - s.cwnd);
  s.cwnd = Math.min(cwnd, s.cwndClamp);
  return left;
}

/**
 * Additive increase: one segment for every `w` segments acknowledged, the
 * count kept in cwndCnt (RFC 5681 §3.1: cwnd += SMSS*SMSS/cwnd per ACK, i.e.
 * about one segment per round trip when w = cwnd).
 */
export function congAvoidAi(s: CcState, w: number, acked: number): void {
  // Credit counted while w was larger: apply it now, one segment at a time.
  if (s.cwndCnt >= w) {
    s.cwndCnt = 0;
    s.cwnd++;
  }
  s.cwndCnt += acked;
  if (s.cwndCnt >= w) {
    const delta = Math.floor(s.cwndCnt / w);
    s.cwndCnt -= delta * w;
    s.cwnd += delta;
  }
  s.cwnd = Math.min(s.cwnd, s.cwndClamp);
}

/** RFC 5681 §3.1: slow start while cwnd < ssthresh, congestion avoidance at or above it. */
export function inSlowStart(s: CcState): boolean {
  return s.cwnd < s.ssthresh;
}

export class Reno implements CongestionControl {
  readonly name = 'reno';

  init(_s: CcState, _nowUs: number): void {}

  /**
   * RFC 5681 §3.1 eq. (4) halves FlightSize, with a floor of 2 segments; like
   * Linux (tcp_reno_ssthresh), the halved quantity is cwnd.
   */
  ssthresh(s: CcState): number {
    return Math.max(s.cwnd >>> 1, 2);
  }

  congAvoid(s: CcState, _ack: number, acked: number, _nowUs: number): void {
    // RFC 7661 §4.1 / Linux: a window the sender did not fill has not been validated.
    if (!s.isCwndLimited) return;
    if (inSlowStart(s)) {
      acked = slowStart(s, acked);
      if (acked === 0) return;
    }
    congAvoidAi(s, s.cwnd, acked);
  }

  pktsAcked(_s: CcState, _acked: number, _rttUs: number, _nowUs: number): void {}

  setState(_s: CcState, _state: CaState): void {}

  cwndEvent(_s: CcState, _ev: CaEvent, _nowUs: number): void {}

  /** The window before the reduction comes back if the loss was spurious (Linux tcp_reno_undo_cwnd). */
  undoCwnd(s: CcState, priorCwnd: number): number {
    return Math.max(s.cwnd, priorCwnd);
  }
}
