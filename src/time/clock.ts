/**
 * The stack's notion of time. Only this folder reads the real time; protocols ask
 * a Clock, so tests can run them on a virtual clock and advance it at will.
 * Times are milliseconds as floating-point numbers.
 */
import { performance as nodePerformance } from 'node:perf_hooks';

export interface Clock {
  now(): number;
}

// The module's binding, not the global: Node defines globalThis.performance as a
// lazy getter, which every `performance.now()` through the global would call.
const perf = nodePerformance;

export class RealClock implements Clock {
  now(): number {
    return perf.now();
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
