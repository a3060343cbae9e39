/**
 * Congestion window validation for application-limited periods (RFC 7661) the
 * way Linux does it: tcp_output.c's tcp_cwnd_validate and
 * tcp_cwnd_application_limited, and tcp.h's tcp_is_cwnd_limited. A window the
 * sender did not fill is not grown (the congestion control modules ask
 * `isCwndLimited`), and one left unused for an RTO shrinks halfway to what was
 * used (net.ipv4.tcp_slow_start_after_idle).
 */

/** What validation reads and changes of its connection. Windows in segments, times in ms. */
export interface CwvConn {
  cwnd: number;
  ssthresh: number;
  packetsOut: number;
  sndUna: number;
  sndNxt: number;
}

/** Linux's TCP_INIT_CWND: the window an application-limited sender keeps at least. */
const INIT_CWND = 10;

export class CwndValidation {
  /** tp->is_cwnd_limited: the sender was cwnd-limited in the current window. */
  limited = false;
  /** Output stopped for cwnd during this transmit (tcp_write_xmit's is_cwnd_limited). */
  limitedNow = false;
  /** tp->max_packets_out and tp->cwnd_usage_seq: the most in flight in the current window, and where it ends. */
  maxPacketsOut = 0;
  usageSeq = 0;
  /** tp->snd_cwnd_used and tp->snd_cwnd_stamp (ms). */
  cwndUsed = 0;
  stampMs = 0;

  /** tcp_is_cwnd_limited: cwnd may grow; in slow start until it is twice what was in flight. */
  isCwndLimited(c: CwvConn): boolean {
    if (this.limited) return true;
    // RFC 7661 §4.1 / Linux: in slow start, ensure cwnd grows to twice what was used.
    if (c.cwnd < c.ssthresh) return c.cwnd < 2 * this.maxPacketsOut;
    return false;
  }

  /**
   * tcp_cwnd_validate, after a transmit that sent something or stopped for cwnd.
   * `open`: the connection is in the Open state (no recovery, no duplicate ACKs);
   * `sndbufFull`: the application waits for room in the send buffer (SOCK_NOSPACE).
   */
  validate(c: CwvConn, nowMs: number, rtoMs: number, slowStartAfterIdle: boolean, open: boolean, sndbufFull: boolean): void {
    const isLimited = this.limitedNow || c.packetsOut >= c.cwnd;
    this.limitedNow = false;
    // Track the strongest signal of how much of cwnd is used, per window of data.
    if (((c.sndUna - this.usageSeq) | 0) >= 0 || isLimited || (!this.limited && c.packetsOut > this.maxPacketsOut)) {
      this.limited = isLimited;
      this.maxPacketsOut = c.packetsOut;
      this.usageSeq = c.sndNxt;
    }
    if (this.isCwndLimited(c)) {
      // The network is fed fully.
      this.cwndUsed = 0;
      this.stampMs = nowMs;
      return;
    }
    // The network starves: remember the most used, and shrink cwnd after an RTO of it.
    if (c.packetsOut > this.cwndUsed) this.cwndUsed = c.packetsOut;
    if (slowStartAfterIdle && nowMs - this.stampMs >= rtoMs) this.applicationLimited(c, nowMs, open, sndbufFull);
  }

  /**
   * tcp_cwnd_application_limited (RFC 7661 §4.4, as Linux simplifies it): cwnd goes
   * halfway down to what was used (never below the initial window), ssthresh keeps
   * at least 3/4 of the old cwnd.
   */
  applicationLimited(c: CwvConn, nowMs: number, open: boolean, sndbufFull: boolean): void {
    if (open && !sndbufFull) {
      const used = Math.max(this.cwndUsed, INIT_CWND);
      if (used < c.cwnd) {
        // tcp_current_ssthresh outside a window reduction.
        c.ssthresh = Math.max(c.ssthresh, (c.cwnd >>> 1) + (c.cwnd >>> 2));
        c.cwnd = (c.cwnd + used) >>> 1;
      }
      this.cwndUsed = 0;
    }
    this.stampMs = nowMs;
  }

  /** tcp_cwnd_restart sets the stamp too: the restart window is fresh. */
  restarted(nowMs: number): void {
    this.cwndUsed = 0;
    this.stampMs = nowMs;
  }
}
