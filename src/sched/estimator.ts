/**
 * Rate estimators (net/core/gen_estimator.c), `estimator INTERVAL
 * TIME_CONSTANT` on tc's command line (tc_estimator.c): every period
 * (250 ms << intvl_log) the bytes and packets counted since the last one
 * feed an EWMA with weight 2^-ewma_log, kept scaled by 2^8 as the kernel
 * keeps it. The police action's `avrate` compares packets against it.
 *
 * The kernel runs a timer each period; here the periods are worked off
 * when the estimate is read or the counters move (the counters only move
 * then, so every period sees the counts it would have seen), with no
 * timer and no drift in virtual time.
 */
import type { Ns } from './qdisc.js';
import { getTime } from './units.js';

/** struct tc_estimator as tc sends it. */
export interface EstimatorSpec {
  /** log2 of the period in seconds, -2 (250 ms) .. 3 (8 s). */
  interval: number;
  ewmaLog: number;
}

/**
 * tc_estimator.c tc_setup_estimator: the shortest period of at least
 * `intervalUs` from 250 ms to 8 s, and the weight whose time constant is
 * closest below `timeConstUs`; null when they are out of range.
 */
export function setupEstimator(intervalUs: number, timeConstUs: number): EstimatorSpec | null {
  let interval = 0;
  for (; interval <= 5; interval++) if (intervalUs <= 2 ** interval * (1000000 / 4)) break;
  if (interval > 5) return null;
  interval -= 2;
  let ewmaLog = 1;
  for (; ewmaLog < 32; ewmaLog++) {
    const w = 1.0 - 1.0 / 2 ** ewmaLog;
    if (intervalUs / -Math.log(w) > timeConstUs) break;
  }
  ewmaLog--;
  if (ewmaLog === 0 || ewmaLog >= 31) return null;
  return { interval, ewmaLog };
}

/**
 * tc_util.c parse_estimator from args[i] (the word after `estimator`): the
 * spec and the index of the next word; an Error carrying tc's message and
 * exit code when it does not read.
 */
export function parseEstimator(args: string[], i: number): { spec: EstimatorSpec; next: number } {
  const incomplete = (): never => {
    throw Object.assign(new Error('Command line is not complete. Try option "help"'), { exitCode: 255 });
  };
  if (i >= args.length) incomplete();
  const a = getTime(args[i]);
  // invarg("estimator", "invalid ...") as tc calls it: the two words come out swapped.
  if (a === null) throw Object.assign(new Error('Error: argument "invalid estimator interval" is wrong: estimator'), { exitCode: 255 });
  if (i + 1 >= args.length) incomplete();
  const tc = getTime(args[i + 1]);
  if (tc === null) throw Object.assign(new Error('Error: argument "invalid estimator time constant" is wrong: estimator'), { exitCode: 255 });
  const spec = setupEstimator(a, tc);
  if (spec === null) throw Object.assign(new Error('Error: estimator parameters are out of range.'), { exitCode: 255 });
  return { spec, next: i + 2 };
}

const pow2 = (n: number): number => 2 ** n;

/** struct net_rate_estimator over counters it reads (bytes, packets). */
export class RateEstimator {
  private readonly intvlLog: number;
  private readonly ewmaLog: number;
  private readonly period: Ns;
  private nextAt: Ns;
  private lastBytes: number;
  private lastPackets: number;
  /** Bytes and packets per second, scaled by 2^8. */
  private avbps = 0;
  private avpps = 0;

  constructor(
    spec: EstimatorSpec,
    private readonly clock: { now(): Ns },
    private readonly counters: { bytes: number; packets: number },
  ) {
    this.intvlLog = spec.interval + 2;
    this.ewmaLog = spec.ewmaLog;
    this.period = 250e6 * pow2(this.intvlLog);
    this.nextAt = clock.now() + this.period;
    this.lastBytes = counters.bytes;
    this.lastPackets = counters.packets;
  }

  /** est_timer for every period that ended by `now`; call it before the counters move. */
  advance(now: Ns = this.clock.now()): void {
    const sh = 10 - this.intvlLog;
    const ew = pow2(this.ewmaLog);
    while (this.nextAt <= now) {
      const db = this.counters.bytes - this.lastBytes;
      const dp = this.counters.packets - this.lastPackets;
      const bTerm = Math.floor((db * pow2(sh)) / ew);
      const pTerm = Math.floor((dp * pow2(sh)) / ew);
      const bDecay = Math.floor(this.avbps / ew);
      const pDecay = Math.floor(this.avpps / ew);
      // Idle and settled: further periods change nothing.
      if (db === 0 && dp === 0 && bDecay === 0 && pDecay === 0) {
        this.nextAt += Math.ceil((now - this.nextAt + 1) / this.period) * this.period;
        break;
      }
      this.avbps += bTerm - bDecay;
      this.avpps += pTerm - pDecay;
      this.lastBytes = this.counters.bytes;
      this.lastPackets = this.counters.packets;
      this.nextAt += this.period;
    }
  }

  /** gen_estimator_read: bytes/s. */
  bps(now: Ns = this.clock.now()): number {
    this.advance(now);
    return Math.floor(this.avbps / 256);
  }

  /** gen_estimator_read: packets/s. */
  pps(now: Ns = this.clock.now()): number {
    this.advance(now);
    return Math.floor(this.avpps / 256);
  }
}
