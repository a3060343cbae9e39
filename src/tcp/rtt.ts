/**
 * Round-trip time estimation and the retransmission timeout (RFC 6298), with
 * Linux's floor: RTO = SRTT + max(4 * RTTVAR, tcp_rto_min), so a LAN connection
 * waits about 200 ms, as `ss -i` shows `rto:201` on Linux.
 */
import { WindowedMin } from './minmax.js';

export const RTO_INITIAL_US = 1_000_000; // RFC 6298 §2.1
export const RTO_MAX_US = 120_000_000; // Linux TCP_RTO_MAX

export class RttEstimator {
  /** Smoothed RTT and its mean deviation (µs); 0 until the first sample. */
  srttUs = 0;
  rttvarUs = 0;
  /**
   * The lowest sample of the last net.ipv4.tcp_min_rtt_wlen seconds (Linux
   * tcp_update_rtt_min: a windowed min filter, so a path that got longer is learnt).
   */
  private readonly minRtt = new WindowedMin();
  /** The window of the min filter (ms). */
  minRttWlenMs = 300_000;
  /** Latest sample (µs). */
  lastUs = 0;
  /** The timeout before backoff (µs). */
  rtoUs = RTO_INITIAL_US;

  constructor(private rtoMinUs: number) {}

  setRtoMin(us: number): void {
    this.rtoMinUs = us;
  }

  /** The windowed minimum RTT (µs), 0 until the first sample. */
  get minRttUs(): number {
    return this.minRtt.value;
  }

  /** RFC 6298 §2.2 and §2.3; `nowMs` times the sample for the min filter. */
  sample(rUs: number, nowMs: number): void {
    if (rUs < 1) rUs = 1;
    this.lastUs = rUs;
    this.minRtt.update(nowMs, rUs, this.minRttWlenMs);
    if (this.srttUs === 0) {
      this.srttUs = rUs;
      this.rttvarUs = rUs / 2;
    } else {
      // alpha = 1/8, beta = 1/4
      this.rttvarUs = 0.75 * this.rttvarUs + 0.25 * Math.abs(this.srttUs - rUs);
      this.srttUs = 0.875 * this.srttUs + 0.125 * rUs;
    }
    const rto = this.srttUs + Math.max(4 * this.rttvarUs, this.rtoMinUs);
    this.rtoUs = Math.min(rto, RTO_MAX_US);
  }
}
