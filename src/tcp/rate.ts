/**
 * Delivery rate for tcp_info (tcpi_delivered, tcpi_delivery_rate,
 * tcpi_delivery_rate_app_limited), after Linux's tcp_rate.c in a lighter
 * form: segments delivered are counted as ACKs report them, and the rate is
 * taken over intervals of at least one smoothed RTT (Linux samples per ACK
 * from per-segment send state, which the stack does not keep). A sample is
 * application-limited when the sender ran out of data before the segments it
 * covers were delivered (tcp_rate_check_app_limited's rule).
 */
export class DeliveryRate {
  /** tp->delivered as of the last ACK. */
  delivered = 0;
  /** The last sample: bytes per second, and whether the application limited it. */
  rate = 0;
  sampleAppLimited = false;
  /** tp->app_limited: delivered count until which samples are application-limited, 0 when not. */
  appLimited = 0;
  private startMs = -1;
  private startDelivered = 0;

  /** After an ACK: `delivered` is the connection's count (tp->delivered); samples span at least `srttMs` (1 ms minimum). */
  sample(delivered: number, nowMs: number, srttMs: number, mss: number): void {
    this.delivered = delivered;
    if (this.appLimited !== 0 && delivered > this.appLimited) this.appLimited = 0;
    if (this.startMs < 0) {
      this.startMs = nowMs;
      this.startDelivered = delivered;
      return;
    }
    const span = nowMs - this.startMs;
    if (span < Math.max(1, srttMs)) return;
    this.rate = Math.floor(((delivered - this.startDelivered) * mss * 1000) / span);
    this.sampleAppLimited = this.appLimited !== 0;
    this.startMs = nowMs;
    this.startDelivered = delivered;
  }

  /** The sender has nothing more to send with room in cwnd (tcp_rate_check_app_limited). */
  checkAppLimited(inFlight: number): void {
    this.appLimited = this.delivered + inFlight || 1;
  }
}
