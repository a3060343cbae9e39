/**
 * A running minimum over a sliding time window, as Linux's lib/win_minmax.c keeps
 * tcp_sock.rtt_min (Kathleen Nichols' algorithm): the best sample and the best of the
 * later second and last parts of the window, so that when the best one ages out a
 * near-best one from within the window takes its place, in constant time and space.
 */
export class WindowedMin {
  // The three kept samples, best first: times (ms) and values.
  private t0 = 0;
  private t1 = 0;
  private t2 = 0;
  private v0 = 0;
  private v1 = 0;
  private v2 = 0;
  private empty = true;

  /** The minimum over the window as of the last update; 0 before any sample. */
  get value(): number {
    return this.empty ? 0 : this.v0;
  }

  /** Forgets everything but this sample. */
  reset(t: number, v: number): number {
    this.t0 = this.t1 = this.t2 = t;
    this.v0 = this.v1 = this.v2 = v;
    this.empty = false;
    return v;
  }

  /** Takes a sample `v` at time `t` (ms, never going back) and returns the minimum over the last `win` ms. */
  update(t: number, v: number, win: number): number {
    // A new best, or every kept sample older than the window: start again from this one.
    if (this.empty || v <= this.v0 || t - this.t2 > win) return this.reset(t, v);
    if (v <= this.v1) {
      this.t1 = this.t2 = t;
      this.v1 = this.v2 = v;
    } else if (v <= this.v2) {
      this.t2 = t;
      this.v2 = v;
    }
    const age = t - this.t0;
    if (age > win) {
      // The best aged out: the second and third move up, this sample is the new third;
      // once more if the new best is out of the window too.
      this.shift(t, v);
      if (t - this.t0 > win) this.shift(t, v);
    } else if (this.t1 === this.t0 && age > win / 4) {
      // A quarter of the window without a second choice: take one from here on.
      this.t1 = this.t2 = t;
      this.v1 = this.v2 = v;
    } else if (this.t2 === this.t1 && age > win / 2) {
      // Half the window without a third choice.
      this.t2 = t;
      this.v2 = v;
    }
    return this.v0;
  }

  private shift(t: number, v: number): void {
    this.t0 = this.t1;
    this.v0 = this.v1;
    this.t1 = this.t2;
    this.v1 = this.v2;
    this.t2 = t;
    this.v2 = v;
  }
}
