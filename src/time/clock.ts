/**
 * The stack's notion of time. Only this folder reads the real time; protocols ask
 * a Clock, so tests can run them on a virtual clock and advance it at will.
 * Times are milliseconds as floating-point numbers.
 */
export interface Clock {
  now(): number;
}

export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }
}

export class VirtualClock implements Clock {
  private t: number;
  constructor(start = 0) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  /** Moves time forward (never back); used by VirtualTime only. */
  set(t: number): void {
    if (t > this.t) this.t = t;
  }
}
