/**
 * CUBIC (RFC 9438) with the constants, integer arithmetic and HyStart slow
 * start exit of Linux's tcp_cubic.c, so a connection here grows its window
 * the way a Linux sender beside it does.
 *
 * Time: Linux keeps the cubic epoch in jiffies and HyStart in microseconds.
 * The epoch here counts milliseconds (a kernel built with HZ=1000); HyStart
 * uses the microseconds it is given. Times must not go backwards.
 */
import { congAvoidAi, inSlowStart, slowStart } from './reno.js';
import { HyStartPlusPlus } from './hystart-pp.js';
import type { CaEvent, CaState, CcState, CongestionControl } from './types.js';

/** Ticks of the epoch clock per second (Linux's HZ; jiffies of 1 ms). */
const HZ = 1000;
const US_PER_TICK = 1_000_000 / HZ;

// RFC 9438 §4.6: beta_cubic = 0.7; Linux: 717/1024.
const BETA = 717;
const BETA_SCALE = 1024;
// Time inside the cubic function is in 1/1024 s (Linux BICTCP_HZ = 10 bits).
const BICTCP_HZ_SHIFT = 10;
const BICTCP_HZ = 1 << BICTCP_HZ_SHIFT;
// RFC 9438 §4.1.1, §5.1: C = 0.4. Linux: bic_scale 41/1024 over its 100 ms reference RTT,
// 1024 * C = 410, so delta = (410 * offs^3) >> 40 is 0.4 * (offs / 1024 s)^3 segments.
const BIC_SCALE = 41;
const CUBE_RTT_SCALE = BIC_SCALE * 10;
const CUBE_SHIFT = 2 ** (BICTCP_HZ_SHIFT + 3 * BICTCP_HZ_SHIFT);
// K^3 = (W_max - cwnd) / C in (1/1024 s)^3: 2^40 / 410 per segment.
const CUBE_FACTOR = Math.floor(CUBE_SHIFT / CUBE_RTT_SCALE);
// RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta) segments per RTT. Linux counts the
// inverse, in eighths: W_est grows by one segment per (cwnd * 15) >> 3 segments acked (alpha ~ 0.53).
const FRIENDLY_SCALE = Math.floor(Math.floor((8 * (BETA_SCALE + BETA)) / 3) / (BETA_SCALE - BETA));

/** HyStart detection methods (Linux hystart_detect bits). */
export const HYSTART_ACK_TRAIN = 0x1;
export const HYSTART_DELAY = 0x2;
// Linux HYSTART_MIN_SAMPLES and the delay threshold's clamp.
const HYSTART_MIN_SAMPLES = 8;
const HYSTART_DELAY_MIN_US = 4000;
const HYSTART_DELAY_MAX_US = 16000;

const NO_EPOCH = -1;
const U32_MAX = 0xffffffff;

/** Linux's module parameters for tcp_cubic, with its defaults. */
export interface CubicOptions {
  /** RFC 9438 §4.7 fast convergence (Linux fast_convergence = 1). */
  fastConvergence?: boolean;
  /** RFC 9438 §4.3 Reno-friendly region (Linux tcp_friendliness = 1). */
  tcpFriendliness?: boolean;
  /**
   * Slow start exit (Linux's `hystart` module parameter, an int): 0 none, 1 HyStart as
   * Linux runs it (the default), 2 HyStart++ (RFC 9406) instead. `true` is 1.
   */
  hystart?: boolean | number;
  /** Which HyStart detectors run (Linux hystart_detect = 3: both). */
  hystartDetect?: number;
  /** HyStart waits until cwnd reaches this many segments (Linux hystart_low_window = 16). */
  hystartLowWindow?: number;
  /** ACKs at most this far apart form a train (Linux hystart_ack_delta_us = 2000). */
  hystartAckDeltaUs?: number;
}

/** Integer cube root, rounded down (Linux approximates it to within ~0.2 %). */
function cubeRoot(a: number): number {
  let x = Math.floor(Math.cbrt(a));
  while (x > 0 && x * x * x > a) x--;
  while ((x + 1) * (x + 1) * (x + 1) <= a) x++;
  return x;
}

function ticks(us: number): number {
  return Math.floor(us / US_PER_TICK);
}

export class Cubic implements CongestionControl {
  readonly name = 'cubic';

  private readonly fastConvergence: boolean;
  private readonly tcpFriendliness: boolean;
  private readonly hystart: boolean;
  /** HyStart++ (RFC 9406) in place of HyStart, or null. */
  readonly hspp: HyStartPlusPlus | null;
  private readonly hystartDetect: number;
  private readonly hystartLowWindow: number;
  private readonly hystartAckDeltaUs: number;

  /** Segments acked per one-segment increase (the w of additive increase). */
  private cnt = 0;
  /** W_max (RFC 9438 §4.1.2), in segments; 0 until the first loss. */
  private lastMaxCwnd = 0;
  /** cwnd and time (ticks) when cnt was last computed. */
  private lastCwnd = 0;
  private lastTime = 0;
  /** The cubic function's plateau and the time to reach it (1/1024 s). */
  private originPoint = 0;
  private k = 0;
  /** Lowest RTT sample (µs), 0 until the first. */
  private delayMin = 0;
  /** Start of the congestion avoidance stage (ticks), NO_EPOCH outside one. */
  private epochStart = NO_EPOCH;
  /** Segments acked since W_est last grew. */
  private ackCnt = 0;
  /** W_est (RFC 9438 §4.3), in segments. */
  private tcpCwnd = 0;

  // HyStart.
  private found = false;
  private sampleCnt = 0;
  private roundStart = 0;
  private endSeq = 0;
  private lastAck = 0;
  private currRtt = U32_MAX;

  /** The time of the latest ACK shown to the module (µs). */
  private lastHeard = 0;

  constructor(opts: CubicOptions = {}) {
    this.fastConvergence = opts.fastConvergence ?? true;
    this.tcpFriendliness = opts.tcpFriendliness ?? true;
    const mode = opts.hystart === undefined ? 1 : Number(opts.hystart);
    this.hystart = mode === 1;
    this.hspp = mode === 2 ? new HyStartPlusPlus() : null;
    this.hystartDetect = opts.hystartDetect ?? HYSTART_ACK_TRAIN | HYSTART_DELAY;
    this.hystartLowWindow = opts.hystartLowWindow ?? 16;
    this.hystartAckDeltaUs = opts.hystartAckDeltaUs ?? 2000;
  }

  init(s: CcState, nowUs: number): void {
    this.lastHeard = nowUs;
    this.reset();
    // Linux's initial_ssthresh is 0: ssthresh stays "infinite" and HyStart ends slow start.
    if (this.hystart) this.hystartReset(s, nowUs);
    this.hspp?.init(s);
  }

  /** RFC 9438 §4.6 and §4.7: remember W_max (lowered by fast convergence) and return cwnd * beta. */
  ssthresh(s: CcState): number {
    // RFC 9406 §4.2: a loss in slow start or CSS ends HyStart++ for good (§4.3: initial slow start only).
    this.hspp?.stop();
    this.epochStart = NO_EPOCH; // the next ACK in congestion avoidance starts a new epoch
    if (s.cwnd < this.lastMaxCwnd && this.fastConvergence) {
      // RFC 9438 §4.7: W_max = cwnd * (1 + beta) / 2.
      this.lastMaxCwnd = Math.floor((s.cwnd * (BETA_SCALE + BETA)) / (2 * BETA_SCALE));
    } else {
      this.lastMaxCwnd = s.cwnd;
    }
    return Math.max(Math.floor((s.cwnd * BETA) / BETA_SCALE), 2);
  }

  congAvoid(s: CcState, _ack: number, acked: number, nowUs: number): void {
    this.lastHeard = nowUs;
    // RFC 9438 §5.8: no growth while the application, not cwnd, limits the flow.
    if (!s.isCwndLimited) return;
    if (inSlowStart(s)) {
      // RFC 9406 §4.2: while HyStart++ runs, it grows the window (slow start or CSS).
      acked = this.hspp !== null && this.hspp.active ? this.hspp.grow(s, acked, s.paced === true) : slowStart(s, acked);
      if (acked === 0) return;
    }
    this.update(s.cwnd, acked, nowUs);
    congAvoidAi(s, this.cnt, acked);
  }

  pktsAcked(s: CcState, _acked: number, rttUs: number, nowUs: number): void {
    this.lastHeard = nowUs;
    if (rttUs < 0) {
      // HyStart++ still ends its rounds on ACKs without a sample.
      if (this.hspp !== null && this.hspp.active && inSlowStart(s)) this.hspp.onAck(s, -1);
      return;
    }
    // Samples within a second of a new epoch are discarded: queues built before the
    // reduction are still draining (Linux).
    if (this.epochStart !== NO_EPOCH && ticks(nowUs) - this.epochStart < HZ) return;
    let delay = Math.floor(rttUs);
    if (delay === 0) delay = 1;
    if (this.delayMin === 0 || this.delayMin > delay) this.delayMin = delay;
    if (this.hspp !== null && this.hspp.active && inSlowStart(s)) this.hspp.onAck(s, delay);
    // RFC 9438 §4.10 lets slow start end early; Linux runs HyStart once cwnd is large enough.
    if (!this.found && this.hystart && inSlowStart(s) && s.cwnd >= this.hystartLowWindow) {
      this.hystartUpdate(s, delay, nowUs);
    }
  }

  setState(s: CcState, state: CaState): void {
    // RFC 9438 §4.8: after a timeout the next avoidance stage starts afresh: K = 0,
    // W_max = W_est = cwnd at its start. Linux forgets everything and starts a HyStart
    // round (here timed from the latest ACK, as no time comes with the call).
    if (state === 'loss') {
      this.hspp?.stop();
      this.reset();
      if (this.hystart) this.hystartReset(s, this.lastHeard);
    }
  }

  cwndEvent(s: CcState, ev: CaEvent, nowUs: number): void {
    if (ev !== 'tx-start') return;
    // RFC 9438 §5.8: t must not include idle periods. Linux moves the epoch forward by the
    // time since the last send, but never past now.
    const now = ticks(nowUs);
    const delta = now - ticks(s.lastSendUs ?? this.lastHeard);
    if (this.epochStart !== NO_EPOCH && delta > 0) {
      this.epochStart += delta;
      if (this.epochStart > now) this.epochStart = now;
    }
  }

  /** RFC 9438 §4.9: a spurious reduction is undone (Linux tcp_reno_undo_cwnd). */
  undoCwnd(s: CcState, priorCwnd: number): number {
    return Math.max(s.cwnd, priorCwnd);
  }

  private reset(): void {
    this.cnt = 0;
    this.lastMaxCwnd = 0;
    this.lastCwnd = 0;
    this.lastTime = 0;
    this.originPoint = 0;
    this.k = 0;
    this.delayMin = 0;
    this.epochStart = NO_EPOCH;
    this.ackCnt = 0;
    this.tcpCwnd = 0;
    this.found = false;
  }

  /** A new HyStart round: it ends when everything sent so far is acknowledged. */
  private hystartReset(s: CcState, nowUs: number): void {
    this.roundStart = nowUs;
    this.lastAck = nowUs;
    this.endSeq = s.sndNxt;
    this.currRtt = U32_MAX;
    this.sampleCnt = 0;
  }

  /**
   * Computes cnt, the segments to be acked per one-segment increase, so that cwnd
   * follows W_cubic (RFC 9438 §4.2, §4.4, §4.5) or W_est when Reno would be faster (§4.3).
   */
  private update(cwnd: number, acked: number, nowUs: number): void {
    this.ackCnt += acked;
    const now = ticks(nowUs);
    // Linux recomputes at most every 1/32 s while cwnd stands still.
    if (this.lastCwnd === cwnd && now - this.lastTime <= HZ / 32) return;

    // And at most once per tick: a reduction clears epochStart, which forces it.
    if (this.epochStart === NO_EPOCH || now !== this.lastTime) {
      this.lastCwnd = cwnd;
      this.lastTime = now;

      if (this.epochStart === NO_EPOCH) {
        this.epochStart = now;
        this.ackCnt = acked;
        this.tcpCwnd = cwnd; // RFC 9438 §4.3: W_est starts at cwnd_start
        if (this.lastMaxCwnd <= cwnd) {
          this.k = 0;
          this.originPoint = cwnd;
        } else {
          // RFC 9438 §4.2 eq. 2: K = cbrt((W_max - cwnd_start) / C).
          this.k = cubeRoot(CUBE_FACTOR * (this.lastMaxCwnd - cwnd));
          this.originPoint = this.lastMaxCwnd;
        }
      }

      // RFC 9438 §4.2: target = W_cubic(t + RTT); Linux takes the RTT as the lowest one seen
      // (rounded up to a tick) and t in 1/1024 s.
      const t = Math.floor(((now - this.epochStart + Math.ceil(this.delayMin / US_PER_TICK)) * BICTCP_HZ) / HZ);
      const offs = t < this.k ? this.k - t : t - this.k;
      // RFC 9438 §4.2 eq. 1: C * (t - K)^3, in segments.
      const delta = Math.floor((CUBE_RTT_SCALE * offs * offs * offs) / CUBE_SHIFT);
      const target = t < this.k ? this.originPoint - delta : this.originPoint + delta;

      // RFC 9438 §4.4, §4.5: cwnd grows by (target - cwnd) / cwnd per segment acked. §4.2:
      // when W_cubic is not above cwnd the target is cwnd; Linux still adds a segment per
      // 100 windows.
      this.cnt = target > cwnd ? Math.floor(cwnd / (target - cwnd)) : 100 * cwnd;

      // Before any loss the available bandwidth is unknown: grow at least 5 % per RTT (Linux).
      if (this.lastMaxCwnd === 0 && this.cnt > 20) this.cnt = 20;
    }

    if (this.tcpFriendliness) {
      // RFC 9438 §4.3 eq. 4: W_est += alpha_cubic * segments_acked / cwnd.
      const perSegment = (cwnd * FRIENDLY_SCALE) >>> 3;
      if (perSegment > 0 && this.ackCnt > perSegment) {
        const n = Math.floor((this.ackCnt - 1) / perSegment);
        this.ackCnt -= n * perSegment;
        this.tcpCwnd += n;
      }
      // Where Reno would be ahead, catch up with it within an RTT.
      if (this.tcpCwnd > cwnd) {
        const maxCnt = Math.floor(cwnd / (this.tcpCwnd - cwnd));
        if (this.cnt > maxCnt) this.cnt = maxCnt;
      }
    }

    // RFC 9438 §4.2: target <= 1.5 * cwnd, i.e. at most one segment per two acked.
    if (this.cnt < 2) this.cnt = 2;
  }

  /** HyStart (Ha and Rhee, as Linux runs it): leave slow start before the first loss. */
  private hystartUpdate(s: CcState, delay: number, nowUs: number): void {
    // A round ends once snd_una passes the snd_nxt recorded at its start.
    if (((s.sndUna - this.endSeq) | 0) > 0) this.hystartReset(s, nowUs);

    if (this.hystartDetect & HYSTART_ACK_TRAIN) {
      // ACK train: in slow start a round's ACKs come back spaced by the bottleneck. While
      // they keep coming close together, the train's length measures the data in flight;
      // once it spans more than half the lowest RTT, the window fills the path.
      if (nowUs - this.lastAck <= this.hystartAckDeltaUs) {
        this.lastAck = nowUs;
        // Linux adds a cushion for TSO/GRO batches when the socket has a pacing rate, and
        // halves the threshold when packets are not paced; neither batches nor pacing here.
        const threshold = this.delayMin >>> 1;
        if (nowUs - this.roundStart > threshold) {
          this.found = true;
          s.hystartExit?.('train', s.cwnd);
          s.ssthresh = s.cwnd;
        }
      }
    }

    if (this.hystartDetect & HYSTART_DELAY) {
      // Delay increase: once the round has 8 samples, the lowest RTT in it against the
      // lowest ever seen plus an eighth of that (kept within 4..16 ms): a queue is building.
      if (this.currRtt > delay) this.currRtt = delay;
      if (this.sampleCnt < HYSTART_MIN_SAMPLES) {
        this.sampleCnt++;
      } else {
        const eighth = this.delayMin >>> 3;
        const thresh = eighth < HYSTART_DELAY_MIN_US ? HYSTART_DELAY_MIN_US : eighth > HYSTART_DELAY_MAX_US ? HYSTART_DELAY_MAX_US : eighth;
        if (this.currRtt > this.delayMin + thresh) {
          this.found = true;
          s.hystartExit?.('delay', s.cwnd);
          s.ssthresh = s.cwnd;
        }
      }
    }
  }
}
