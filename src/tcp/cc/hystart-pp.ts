/**
 * HyStart++ (RFC 9406): slow start that leaves early when the RTT of a round
 * rises (a queue is building), through Conservative Slow Start (CSS), a few
 * rounds of slower growth that either confirm the exit or show it was spurious.
 *
 * It owns slow start's growth while it runs: `onAck` takes each ACK's RTT sample
 * and moves between slow start, CSS and congestion avoidance (ssthresh = cwnd when
 * CSS ends); `grow` adds to cwnd what RFC 9406 §4.2 says for the ACK (min(N, L *
 * SMSS) in slow start, a CSS_GROWTH_DIVISOR-th of that in CSS). Windows are in segments, as the
 * rest of cc/ counts them; the fraction CSS grows by is carried in `cssCredit`.
 */
import type { CcState } from './types.js';

// RFC 9406 §4.3: the recommended constants.
export const MIN_RTT_THRESH_US = 4000;
export const MAX_RTT_THRESH_US = 16000;
export const MIN_RTT_DIVISOR = 8;
export const N_RTT_SAMPLE = 8;
export const CSS_GROWTH_DIVISOR = 4;
export const CSS_ROUNDS = 5;
/** RFC 9406 §4.3: L = 8 segments per ACK when not paced, no limit when paced. */
export const L_NON_PACED = 8;

const INFINITY = Number.POSITIVE_INFINITY;

export const enum HsppPhase {
  SLOW_START = 0,
  CSS = 1,
  /** Done: congestion avoidance, or standard slow start after a loss (RFC 9406 §4.3). */
  OFF = 2,
}

export class HyStartPlusPlus {
  phase = HsppPhase.SLOW_START;
  /** RFC 9406 §4.2's variables; RTTs in µs. */
  lastRoundMinRtt = INFINITY;
  currentRoundMinRtt = INFINITY;
  rttSampleCount = 0;
  cssBaselineMinRtt = INFINITY;
  /** windowEnd: the round ends when this sequence number is acknowledged. */
  windowEnd = 0;
  /** Rounds completed in CSS (the one CSS started in counts when it ends). */
  cssRounds = 0;
  /** Segments acknowledged in CSS not yet turned into cwnd (growth is N / CSS_GROWTH_DIVISOR). */
  cssCredit = 0;
  /** Slow start exits into CSS and confirmed exits into congestion avoidance, for counters. */
  cssEntries = 0;
  cssSpurious = 0;

  /** RFC 9406 §4.2: initialisation when the connection starts (and its first round). */
  init(s: CcState): void {
    this.phase = HsppPhase.SLOW_START;
    this.lastRoundMinRtt = INFINITY;
    this.currentRoundMinRtt = INFINITY;
    this.rttSampleCount = 0;
    this.cssBaselineMinRtt = INFINITY;
    this.cssRounds = 0;
    this.cssCredit = 0;
    this.windowEnd = s.sndNxt;
  }

  /**
   * RFC 9406 §4.3: HyStart++ runs in the initial slow start only (ssthresh still
   * "infinite"); a loss ends it and later slow starts are standard.
   */
  stop(): void {
    this.phase = HsppPhase.OFF;
  }

  get active(): boolean {
    return this.phase !== HsppPhase.OFF;
  }

  /**
   * An ACK's RTT sample (µs, or -1 when it brought none), before its growth: ends
   * the round when windowEnd is acknowledged, keeps the round's lowest RTT and
   * decides CSS entry, spurious exit and CSS's end (RFC 9406 §4.2).
   */
  onAck(s: CcState, rttUs: number): void {
    if (this.phase === HsppPhase.OFF) return;
    // RFC 9406 §4.2: a round ends when windowEnd is acknowledged; the next one runs to SND.NXT.
    if (((s.sndUna - this.windowEnd) | 0) >= 0) this.newRound(s);
    if ((this.phase as HsppPhase) === HsppPhase.OFF || rttUs < 0) return;
    if (rttUs < this.currentRoundMinRtt) this.currentRoundMinRtt = rttUs;
    this.rttSampleCount++;
    if (this.rttSampleCount < N_RTT_SAMPLE) return;
    if (this.phase === HsppPhase.SLOW_START) {
      if (this.currentRoundMinRtt !== INFINITY && this.lastRoundMinRtt !== INFINITY) {
        if (this.currentRoundMinRtt >= this.lastRoundMinRtt + rttThresh(this.lastRoundMinRtt)) {
          this.cssBaselineMinRtt = this.currentRoundMinRtt;
          this.phase = HsppPhase.CSS;
          this.cssRounds = 0;
          this.cssCredit = 0;
          this.cssEntries++;
        }
      }
    } else if (this.currentRoundMinRtt < this.cssBaselineMinRtt) {
      // The RTT fell below the baseline: the exit was spurious; slow start resumes.
      this.cssBaselineMinRtt = INFINITY;
      this.phase = HsppPhase.SLOW_START;
      this.cssSpurious++;
    }
  }

  /**
   * Growth for an ACK of `acked` new segments: min(N, L * SMSS) in slow start, a
   * CSS_GROWTH_DIVISOR-th of it in CSS (RFC 9406 §4.2). Returns the segments left
   * for congestion avoidance (all of them once HyStart++ is done).
   */
  grow(s: CcState, acked: number, paced: boolean): number {
    if (this.phase === HsppPhase.OFF) return acked;
    const n = paced ? acked : Math.min(acked, L_NON_PACED);
    if (this.phase === HsppPhase.SLOW_START) {
      s.cwnd = Math.min(s.cwnd + n, s.cwndClamp);
    } else {
      this.cssCredit += n;
      const inc = Math.floor(this.cssCredit / CSS_GROWTH_DIVISOR);
      this.cssCredit -= inc * CSS_GROWTH_DIVISOR;
      s.cwnd = Math.min(s.cwnd + inc, s.cwndClamp);
    }
    return 0;
  }

  private newRound(s: CcState): void {
    this.windowEnd = s.sndNxt;
    // RFC 9406 §4.2: enough CSS rounds: congestion avoidance from this cwnd.
    if (this.phase === HsppPhase.CSS && ++this.cssRounds >= CSS_ROUNDS) {
      s.ssthresh = s.cwnd;
      this.phase = HsppPhase.OFF;
      return;
    }
    this.lastRoundMinRtt = this.currentRoundMinRtt;
    this.currentRoundMinRtt = INFINITY;
    this.rttSampleCount = 0;
  }
}

/** RFC 9406 §4.2: the delay increase that counts, from the last round's lowest RTT (µs). */
export function rttThresh(lastRoundMinRttUs: number): number {
  return Math.max(MIN_RTT_THRESH_US, Math.min(lastRoundMinRttUs / MIN_RTT_DIVISOR, MAX_RTT_THRESH_US));
}
