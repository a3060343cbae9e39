import { Clock, RealClock, VirtualClock } from './clock.js';

/**
 * One timer. A Timer object is reusable: protocols keep one per purpose (an
 * ARP retransmit timer, a reassembly timeout) and re-arm it, so timers don't
 * allocate on hot paths.
 */
export class Timer {
  deadline = 0;
  /** Position in the heap, or -1 when not armed. */
  index = -1;
  /** Insertion order, to run timers with equal deadlines first-in first-out. */
  seq = 0;
  constructor(public callback: () => void) {}
  get armed(): boolean {
    return this.index >= 0;
  }
}

const FROZEN_UNREAD = -2;

/**
 * A binary min-heap of timers over a Clock. `Time` is what a Stack receives;
 * the real and virtual variants differ only in how due timers get run.
 */
export abstract class Time {
  private heap: Timer[] = [];
  private nextSeq = 0;
  /**
   * The time now() answers while frozen (a batch of work); FROZEN_UNREAD: frozen, the
   * clock not read yet (the first now() reads it); -1: not frozen.
   */
  protected frozenAt = -1;
  constructor(readonly clock: Clock) {}

  now(): number {
    const f = this.frozenAt;
    if (f >= 0) return f;
    const t = this.clock.now();
    if (f === FROZEN_UNREAD) this.frozenAt = t;
    return t;
  }

  /** The clock in nanoseconds (whole ns; exact for 104 days), for rate arithmetic. */
  nowNs(): number {
    return Math.round(this.now() * 1e6);
  }

  /**
   * A piece of work begins (a receive batch, a segment, the writes of a tick): until the
   * next freeze() or thaw(), now() may answer the time its first call read, as Linux
   * stamps a segment's processing with one tcp_mstamp. Reading the clock per use costs
   * more than the work between.
   */
  freeze(): void {
    /* a virtual clock moves only in advance(): nothing to save */
  }

  thaw(): void {
    this.frozenAt = -1;
  }

  /** A timer that is not armed yet. */
  timer(callback: () => void): Timer {
    return new Timer(callback);
  }

  /** Arms (or re-arms) `t` to fire `delayMs` from now. */
  arm(t: Timer, delayMs: number): void {
    const deadline = this.now() + Math.max(0, delayMs);
    if (t.index >= 0) this.remove(t);
    t.deadline = deadline;
    t.seq = this.nextSeq++;
    this.insert(t);
    if (t.index === 0) this.earliestChanged();
  }

  /** Convenience for one-shot callbacks off the hot path. */
  after(delayMs: number, callback: () => void): Timer {
    const t = new Timer(callback);
    this.arm(t, delayMs);
    return t;
  }

  cancel(t: Timer): void {
    if (t.index < 0) return;
    const wasFirst = t.index === 0;
    this.remove(t);
    if (wasFirst) this.earliestChanged();
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Deadline of the earliest armed timer, or Infinity. */
  nextDeadline(): number {
    return this.heap.length > 0 ? this.heap[0].deadline : Infinity;
  }

  /** Runs every timer whose deadline is at or before `now`, in deadline order. */
  protected runDue(now: number): void {
    const heap = this.heap;
    while (heap.length > 0 && heap[0].deadline <= now) {
      const t = heap[0];
      this.remove(t);
      t.callback();
    }
  }

  /** Called when the earliest deadline may have changed. */
  protected abstract earliestChanged(): void;

  private less(a: Timer, b: Timer): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
  }

  private insert(t: Timer): void {
    const heap = this.heap;
    t.index = heap.length;
    heap.push(t);
    this.up(t.index);
  }

  private remove(t: Timer): void {
    const heap = this.heap;
    const i = t.index;
    const last = heap.pop()!;
    t.index = -1;
    if (last !== t) {
      heap[i] = last;
      last.index = i;
      this.down(i);
      this.up(last.index);
    }
  }

  private up(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(heap[i], heap[p])) break;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(heap[l], heap[m])) m = l;
      if (r < n && this.less(heap[r], heap[m])) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(i: number, j: number): void {
    const heap = this.heap;
    const a = heap[i];
    const b = heap[j];
    heap[i] = b;
    heap[j] = a;
    a.index = j;
    b.index = i;
  }
}

/**
 * Real time: one Node timeout armed for the earliest deadline. A timer that is
 * already due (delay 0: a socket's queued events, looped-back datagrams) runs
 * from setImmediate, right after the current I/O callbacks, because a Node
 * timeout of 0 waits a whole millisecond.
 */
export class RealTime extends Time {
  private handle: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private armedFor = Infinity;

  constructor() {
    super(new RealClock());
  }

  private readonly onFire = (): void => this.fire();

  override freeze(): void {
    // Read at the first use: work that never asks the time (a ping) pays nothing.
    this.frozenAt = FROZEN_UNREAD;
  }

  protected earliestChanged(): void {
    const next = this.nextDeadline();
    if (next === this.armedFor) return;
    // A later earliest deadline (a timer cancelled or pushed back, as a delayed ACK that a
    // reply carried) keeps the Node timer: it fires early, finds nothing due and re-arms.
    // Re-arming Node's timer on every such change costs more than that one early wake.
    if (next > this.armedFor) return;
    this.disarm();
    this.armedFor = next;
    if (next === Infinity) return;
    const delay = next - this.clock.now();
    if (delay <= 0) {
      // Left ref'd: an unref'd immediate lets the loop block in poll and run late.
      // It is due now, so it never holds the process open for long.
      this.immediate = setImmediate(this.onFire);
      return;
    }
    this.handle = setTimeout(this.onFire, Math.ceil(delay));
    // Timers alone never keep the process alive: devices and sockets do.
    this.handle.unref();
  }

  private disarm(): void {
    if (this.handle) clearTimeout(this.handle);
    if (this.immediate) clearImmediate(this.immediate);
    this.handle = null;
    this.immediate = null;
  }

  private fire(): void {
    this.handle = null;
    this.immediate = null;
    this.armedFor = Infinity;
    this.runDue(this.clock.now());
    this.earliestChanged();
  }

  /** Stops the underlying Node timer (timers stay registered but won't fire). */
  stop(): void {
    this.disarm();
    this.armedFor = Infinity;
  }
}

/** Virtual time for tests: nothing happens until `advance` is called. */
export class VirtualTime extends Time {
  private readonly vclock: VirtualClock;

  constructor(start = 0) {
    const clock = new VirtualClock(start);
    super(clock);
    this.vclock = clock;
  }

  protected earliestChanged(): void {
    /* nothing to arm: time moves only in advance() */
  }

  /** Moves time forward by `ms`, running each due timer at its own deadline. */
  advance(ms: number): void {
    const end = this.vclock.now() + ms;
    for (;;) {
      const next = this.nextDeadline();
      if (next > end) break;
      this.vclock.set(next);
      this.runDue(next);
    }
    this.vclock.set(end);
  }

  /** Runs timers until none are left or `limitMs` of virtual time has passed. */
  runUntilIdle(limitMs = 3_600_000): void {
    const end = this.vclock.now() + limitMs;
    while (this.nextDeadline() <= end) {
      const next = this.nextDeadline();
      this.vclock.set(next);
      this.runDue(next);
    }
  }
}
