/**
 * Linux's TCP chronographs (tcp_output.c tcp_chrono_start/stop/set): how long
 * a connection has been busy sending, and how much of that it was held by the
 * peer's receive window or by its own send buffer. tcp_info reports them as
 * tcpi_busy_time, tcpi_rwnd_limited and tcpi_sndbuf_limited (ss: busy:,
 * rwnd_limited:, sndbuf_limited:). Times in ms (Linux counts jiffies).
 */
export const CHRONO_UNSPEC = 0;
export const CHRONO_BUSY = 1;
export const CHRONO_RWND_LIMITED = 2;
export const CHRONO_SNDBUF_LIMITED = 3;

export class TcpChrono {
  type = CHRONO_UNSPEC;
  startMs = 0;
  /** Accumulated ms per type (BUSY, RWND_LIMITED, SNDBUF_LIMITED). */
  readonly stat = [0, 0, 0];
  /** Output stopped at the peer's window in this transmit (tcp_write_xmit's is_rwnd_limited). */
  rwndLimitedNow = false;

  private set(type: number, nowMs: number): void {
    if (this.type > CHRONO_UNSPEC) this.stat[this.type - 1] += nowMs - this.startMs;
    this.startMs = nowMs;
    this.type = type;
  }

  /** A more interesting condition takes over from a less interesting one, never the reverse. */
  start(type: number, nowMs: number): void {
    if (type > this.type) this.set(type, nowMs);
  }

  /** Ends `type`: idle once nothing is queued or in flight, else back to busy. */
  stop(type: number, nowMs: number, queuesEmpty: boolean): void {
    if (queuesEmpty) this.set(CHRONO_UNSPEC, nowMs);
    else if (type === this.type) this.set(CHRONO_BUSY, nowMs);
  }

  /** tcp_get_info_chrono_stats: [busy total, rwnd limited, sndbuf limited] in µs. */
  stats(nowMs: number): [number, number, number] {
    let total = 0;
    const out: [number, number, number] = [0, 0, 0];
    for (let t = CHRONO_BUSY; t <= CHRONO_SNDBUF_LIMITED; t++) {
      let ms = this.stat[t - 1];
      if (t === this.type) ms += nowMs - this.startMs;
      const us = Math.floor(ms) * 1000;
      total += us;
      if (t > CHRONO_BUSY) out[t - 1] = us;
    }
    out[0] = total;
    return out;
  }
}
