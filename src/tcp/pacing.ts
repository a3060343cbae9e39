/**
 * TCP pacing as Linux computes and applies it.
 *
 * The rate (sk_pacing_rate, tcp_input.c tcp_update_pacing_rate) is kept for
 * every connection and shown by ss: 200 % of cwnd * mss / srtt while cwnd is
 * below half of ssthresh (net.ipv4.tcp_pacing_ss_ratio), 120 % after
 * (tcp_pacing_ca_ratio), capped by SO_MAX_PACING_RATE.
 *
 * Segments are spaced at that rate only when asked (Linux's internal pacing,
 * SK_PACING_NEEDED: setting SO_MAX_PACING_RATE turns it on, as it does in
 * Linux when the qdisc is not fq). Each segment moves the earliest departure of
 * the next one (tcp_wstamp_ns) on by its length at the rate
 * (tcp_update_skb_after_send); the connection sends while that time is not in
 * the future and otherwise waits on one timer of the Stack's clock for it. The
 * schedule runs on the clock, not on timer ticks: a wakeup that comes late
 * sends everything due by then, up to one PACING_SLACK_NS of catching up.
 */

/** At most this much of a late schedule is made up at once (ns); beyond it the schedule restarts from now. */
export const PACING_SLACK_NS = 1_000_000;
/** Linux (tcp_update_skb_after_send): the first 10 data segments are not paced, as sch_fq did. */
const UNPACED_SEGS = 10;

/**
 * tcp_update_pacing_rate, in bytes per second. `srttUs` 0 (no sample yet) gives
 * Linux's value without the division.
 */
export function pacingRate(mss: number, cwnd: number, packetsOut: number, ssthresh: number, srttUs: number, ssRatio: number, caRatio: number, maxRate = Infinity): number {
  // mss * USEC_PER_SEC / 100, in Linux's 1/8 µs srtt units (<< 3).
  let rate = mss * ((1_000_000 / 100) * 8);
  rate *= cwnd < Math.floor(ssthresh / 2) ? ssRatio : caRatio;
  rate *= Math.max(cwnd, packetsOut);
  const srtt8 = Math.floor(srttUs * 8);
  if (srtt8 > 0) rate = Math.floor(rate / srtt8);
  return Math.min(rate, maxRate);
}

export class Pacer {
  /** Segments are spaced (SK_PACING_NEEDED). */
  enabled = false;
  /** sk_pacing_rate in bytes/s, updated on every ACK while enabled. */
  rate = 0;
  /** sk_max_pacing_rate (SO_MAX_PACING_RATE), bytes/s. */
  maxRate = Infinity;
  /** tcp_wstamp_ns: the earliest departure of the next segment. */
  nextNs = 0;

  /** May a segment leave at `nowNs`? (tcp_pacing_check's test.) */
  due(nowNs: number): boolean {
    return this.nextNs <= nowNs;
  }

  /** ms until the next departure (for the pacing timer). */
  waitMs(nowNs: number): number {
    return (this.nextNs - nowNs) / 1e6;
  }

  /** A segment of `len` payload bytes left at `nowNs`; `dataSegsOut` counts data segments sent so far. */
  sent(len: number, nowNs: number, dataSegsOut: number): void {
    if (this.nextNs < nowNs - PACING_SLACK_NS) this.nextNs = nowNs - PACING_SLACK_NS;
    const rate = this.rate;
    if (rate > 0 && rate !== Infinity && dataSegsOut >= UNPACED_SEGS) this.nextNs += (len * 1e9) / rate;
  }
}
