/**
 * Which byte ranges of a stream or datagram have arrived: a sorted set of
 * half-open ranges [start, end). IP reassembly uses it to find holes (RFC 815's
 * hole descriptors, kept the other way round: we list what we have, not what is
 * missing) and to tell duplicates from overlaps; TCP's out-of-order queue can
 * use it with offsets relative to a base sequence number (it works on plain
 * non-negative numbers, not on sequence numbers modulo 2^32).
 *
 * Ranges are kept merged: two ranges that touch or overlap become one, so every
 * stored range is separated from the next by a hole of at least one byte. They
 * live in one flat array [s0, e0, s1, e1, ...] searched by bisection, which
 * stays small and allocation-free for the handful of ranges a datagram or a
 * window normally has.
 */

/**
 * How a range relates to what is already there:
 * - 'new': it shares no byte with any stored range (touching one is fine);
 * - 'duplicate': every byte of it is already covered (an empty range too);
 * - 'overlap': some bytes are covered and some are not.
 */
export type IntervalInsert = 'new' | 'duplicate' | 'overlap';

export class Intervals {
  /** Flattened [start, end) pairs, sorted, disjoint and not touching. */
  private r: number[] = [];
  /** Bytes covered by all ranges together. */
  covered = 0;
  /** Bytes newly covered by the last `insert`. */
  lastAdded = 0;

  /** Number of separate ranges. */
  get count(): number {
    return this.r.length >> 1;
  }

  get empty(): boolean {
    return this.r.length === 0;
  }

  /** Lowest covered offset, or -1 when empty. */
  get low(): number {
    return this.r.length > 0 ? this.r[0] : -1;
  }

  /** One past the highest covered offset, or -1 when empty. */
  get high(): number {
    return this.r.length > 0 ? this.r[this.r.length - 1] : -1;
  }

  /** Index (in pairs) of the first range whose end is above `x` (or at `x` when `touch`). */
  private firstEndingAfter(x: number, touch: boolean): number {
    const r = this.r;
    let lo = 0;
    let hi = r.length >> 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = r[2 * mid + 1];
      if (e > x || (touch && e === x)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** How [start, end) relates to the stored ranges; changes nothing. */
  classify(start: number, end: number): IntervalInsert {
    if (end <= start) return 'duplicate';
    const r = this.r;
    const i = this.firstEndingAfter(start, false);
    if (2 * i >= r.length || r[2 * i] >= end) return 'new';
    if (r[2 * i] <= start && end <= r[2 * i + 1]) return 'duplicate';
    return 'overlap';
  }

  /** True when every byte of [start, end) is covered. */
  contains(start: number, end: number): boolean {
    return this.classify(start, end) === 'duplicate';
  }

  /**
   * Adds [start, end) and says how it related to what was there before (see
   * `classify`). Overlapping ranges are merged in too: callers that must reject
   * overlaps (IP reassembly) classify first or throw the whole set away.
   * Returns the classification; `lastAdded` holds the bytes newly covered.
   */
  insert(start: number, end: number): IntervalInsert {
    const kind = this.classify(start, end);
    this.lastAdded = 0;
    if (kind === 'duplicate') return kind;
    const r = this.r;
    // Every range from the first that ends at or after `start` to the last that
    // starts at or before `end` touches the new one and merges with it.
    const lo = this.firstEndingAfter(start, true);
    let hi = lo;
    let removed = 0;
    let s = start;
    let e = end;
    while (2 * hi < r.length && r[2 * hi] <= end) {
      const rs = r[2 * hi];
      const re = r[2 * hi + 1];
      removed += re - rs;
      if (rs < s) s = rs;
      if (re > e) e = re;
      hi++;
    }
    if (hi === lo) r.splice(2 * lo, 0, s, e);
    else r.splice(2 * lo, 2 * (hi - lo), s, e);
    this.lastAdded = e - s - removed;
    this.covered += this.lastAdded;
    return kind;
  }

  /**
   * Where the covered run that contains `from` ends: the first byte at or after
   * `from` that is missing. Returns `from` itself when it isn't covered. With
   * `from` = 0 this is "contiguous from the start up to".
   */
  contiguousEnd(from = 0): number {
    const r = this.r;
    const i = this.firstEndingAfter(from, false);
    if (2 * i < r.length && r[2 * i] <= from) return r[2 * i + 1];
    return from;
  }

  /** The missing ranges within [from, to), in order. */
  holes(from: number, to: number): [number, number][] {
    const out: [number, number][] = [];
    const r = this.r;
    let p = from;
    for (let i = this.firstEndingAfter(from, false); 2 * i < r.length && p < to; i++) {
      const s = r[2 * i];
      if (s > p) out.push([p, Math.min(s, to)]);
      p = Math.max(p, r[2 * i + 1]);
    }
    if (p < to) out.push([p, to]);
    return out;
  }

  /** The stored ranges, in order (a copy). */
  ranges(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.r.length; i += 2) out.push([this.r[i], this.r[i + 1]]);
    return out;
  }

  /** Forgets every byte below `x` (data that has been consumed). */
  removeBelow(x: number): void {
    const r = this.r;
    const i = this.firstEndingAfter(x, false);
    let dropped = 0;
    for (let k = 0; k < i; k++) dropped += r[2 * k + 1] - r[2 * k];
    if (i > 0) r.splice(0, 2 * i);
    if (r.length > 0 && r[0] < x) {
      dropped += x - r[0];
      r[0] = x;
    }
    this.covered -= dropped;
  }

  clear(): void {
    this.r.length = 0;
    this.covered = 0;
    this.lastAdded = 0;
  }
}
