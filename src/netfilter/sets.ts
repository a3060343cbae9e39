import type { ElemKey, SetElement, VerdictAst } from './ast.js';

/**
 * A set's runtime form. Exact keys live in a Map keyed by one number: a single
 * field, or a concatenation packed into one number when its fields fit in 53
 * bits (ipv4_addr . inet_service is 48); wider concatenations nest one Map per
 * group of fields that fit. Ranges and prefixes (interval sets) live in sorted,
 * non-overlapping arrays searched by bisection.
 *
 * An element with a timeout keeps its expiry time; a lookup that finds an
 * expired element misses (and removes it), so no timer runs per element.
 */
export class SetEntry {
  constructor(
    /** Absolute expiry on the stack's clock, or 0 (never). */
    public expires: number,
    /** Verdict code (verdict maps) or number (data maps). */
    public data: number,
    /** Added by a rule (`add @set`) rather than by the ruleset. */
    public dynamic: boolean,
    /** The key as given, for listing. */
    readonly key: ElemKey,
    readonly end: ElemKey | undefined,
  ) {}
}

export class SetError extends Error {}

export class SetStore {
  /** Bits of each key field. */
  readonly widths: number[];
  /** Field index where each group starts; a group's fields pack into one number. */
  readonly groups: number[];
  readonly interval: boolean;
  /** Single-group exact elements. */
  private exact = new Map<number, SetEntry>();
  /** Multi-group exact elements: nested maps, leaf SetEntry. */
  private nested = new Map<number, unknown>();
  private lo: number[] = [];
  private hi: number[] = [];
  private ivals: SetEntry[] = [];
  count = 0;

  constructor(
    widths: number[],
    interval: boolean,
    readonly defaultTimeoutMs: number,
    readonly maxSize: number,
    readonly mapData: (d: VerdictAst | number | undefined) => number,
  ) {
    this.widths = widths;
    this.interval = interval;
    const groups: number[] = [];
    let bits = 54;
    for (let i = 0; i < widths.length; i++) {
      if (bits + widths[i] > 53) {
        groups.push(i);
        bits = 0;
      }
      bits += widths[i];
    }
    this.groups = groups;
    if (interval && groups.length > 1) throw new SetError('interval sets of concatenations wider than 53 bits are not supported');
  }

  get groupCount(): number {
    return this.groups.length;
  }

  /** Packs fields [from, to) of `k` into one number. */
  packGroup(k: number[], g: number): number {
    const from = this.groups[g];
    const to = g + 1 < this.groups.length ? this.groups[g + 1] : this.widths.length;
    let v = 0;
    for (let i = from; i < to; i++) v = v * 2 ** this.widths[i] + (k[i] >>> 0);
    return v;
  }

  private keyArray(k: ElemKey): number[] {
    const a = typeof k === 'number' ? [k] : k;
    if (a.length !== this.widths.length) throw new SetError(`element has ${a.length} fields, the set's type has ${this.widths.length}`);
    for (let i = 0; i < a.length; i++) {
      const w = this.widths[i];
      if (!Number.isInteger(a[i]) || a[i] < 0 || a[i] >= 2 ** w) throw new SetError(`element value ${a[i]} does not fit ${w} bits`);
    }
    return a;
  }

  /** Adds an element; `now` gives timeouts their expiry. Throws on overlap or a bad key. */
  add(e: SetElement, now: number, dynamic: boolean, timeoutMs = e.timeoutMs ?? this.defaultTimeoutMs): SetEntry {
    if (this.count >= this.maxSize) throw new SetError('set is full');
    const k = this.keyArray(e.key);
    const entry = new SetEntry(timeoutMs > 0 ? now + timeoutMs : 0, this.mapData(e.data), dynamic, e.key, e.end);
    if (this.interval) {
      const lo = this.packGroup(k, 0);
      let hi = lo;
      if (e.end !== undefined) {
        const ke = this.keyArray(e.end);
        // Packed concatenations order lexicographically: only the last field may be a range.
        for (let i = 0; i < k.length - 1; i++) if (ke[i] !== k[i]) throw new SetError('only the last field of a concatenation may be a range');
        hi = this.packGroup(ke, 0);
      }
      if (hi < lo) throw new SetError('range end before its start');
      this.insertInterval(lo, hi, entry);
    } else {
      if (e.end !== undefined) throw new SetError('a range needs a set with the interval flag');
      if (this.groups.length === 1) {
        const key = this.packGroup(k, 0);
        const old = this.exact.get(key);
        if (old !== undefined && !this.expired(old, now)) throw new SetError('element exists');
        if (old === undefined) this.count++;
        this.exact.set(key, entry);
      } else {
        let m = this.nested;
        for (let g = 0; g < this.groups.length - 1; g++) {
          const key = this.packGroup(k, g);
          let next = m.get(key) as Map<number, unknown> | undefined;
          if (next === undefined) {
            next = new Map<number, unknown>();
            m.set(key, next);
          }
          m = next;
        }
        const key = this.packGroup(k, this.groups.length - 1);
        const old = m.get(key) as SetEntry | undefined;
        if (old !== undefined && !this.expired(old, now)) throw new SetError('element exists');
        if (old === undefined) this.count++;
        m.set(key, entry);
      }
    }
    return entry;
  }

  private expired(e: SetEntry, now: number): boolean {
    return e.expires !== 0 && now >= e.expires;
  }

  private insertInterval(lo: number, hi: number, entry: SetEntry): void {
    // First interval with lo > new lo.
    let a = 0;
    let b = this.lo.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (this.lo[m] <= lo) a = m + 1;
      else b = m;
    }
    if (a > 0 && this.hi[a - 1] >= lo) throw new SetError('interval overlaps an existing element');
    if (a < this.lo.length && this.lo[a] <= hi) throw new SetError('interval overlaps an existing element');
    this.lo.splice(a, 0, lo);
    this.hi.splice(a, 0, hi);
    this.ivals.splice(a, 0, entry);
    this.count++;
  }

  /** The live entry for a one-group key, or null. */
  lookup(key: number, now: number): SetEntry | null {
    if (this.interval) {
      const lo = this.lo;
      let a = 0;
      let b = lo.length;
      while (a < b) {
        const m = (a + b) >>> 1;
        if (lo[m] <= key) a = m + 1;
        else b = m;
      }
      if (a === 0 || this.hi[a - 1] < key) return null;
      const e = this.ivals[a - 1];
      if (e.expires !== 0 && now >= e.expires) {
        this.lo.splice(a - 1, 1);
        this.hi.splice(a - 1, 1);
        this.ivals.splice(a - 1, 1);
        this.count--;
        return null;
      }
      return e;
    }
    const e = this.exact.get(key);
    if (e === undefined) return null;
    if (e.expires !== 0 && now >= e.expires) {
      this.exact.delete(key);
      this.count--;
      return null;
    }
    return e;
  }

  /** The live entry for a multi-group key (`keys[g]` packed per group), or null. */
  lookupGroups(keys: Float64Array, now: number): SetEntry | null {
    let m: Map<number, unknown> = this.nested;
    const last = this.groups.length - 1;
    for (let g = 0; g < last; g++) {
      const next = m.get(keys[g]) as Map<number, unknown> | undefined;
      if (next === undefined) return null;
      m = next;
    }
    const e = m.get(keys[last]) as SetEntry | undefined;
    if (e === undefined) return null;
    if (e.expires !== 0 && now >= e.expires) {
      m.delete(keys[last]);
      this.count--;
      return null;
    }
    return e;
  }

  /** Removes an element; false if it was not there. */
  delete(e: SetElement): boolean {
    const k = this.keyArray(e.key);
    if (this.interval) {
      const lo = this.packGroup(k, 0);
      const i = this.lo.indexOf(lo);
      if (i < 0) return false;
      this.lo.splice(i, 1);
      this.hi.splice(i, 1);
      this.ivals.splice(i, 1);
      this.count--;
      return true;
    }
    let m: Map<number, unknown> = this.groups.length === 1 ? this.exact : this.nested;
    for (let g = 0; g < this.groups.length - 1; g++) {
      const next = m.get(this.packGroup(k, g)) as Map<number, unknown> | undefined;
      if (next === undefined) return false;
      m = next;
    }
    const ok = m.delete(this.packGroup(k, this.groups.length - 1));
    if (ok) this.count--;
    return ok;
  }

  /** Same key layout and kind (contents can carry over from `o`). */
  sameShape(o: SetStore): boolean {
    return o.interval === this.interval && o.widths.length === this.widths.length && o.widths.every((w, i) => w === this.widths[i]);
  }

  /** The entry whose key (interval sets: whose start) is `k`, or null. */
  find(k: ElemKey): SetEntry | null {
    const a = this.keyArray(k);
    if (this.interval) {
      const i = this.lo.indexOf(this.packGroup(a, 0));
      return i < 0 ? null : this.ivals[i];
    }
    let m: Map<number, unknown> = this.groups.length === 1 ? this.exact : this.nested;
    for (let g = 0; g < this.groups.length - 1; g++) {
      const next = m.get(this.packGroup(a, g)) as Map<number, unknown> | undefined;
      if (next === undefined) return null;
      m = next;
    }
    return (m.get(this.packGroup(a, this.groups.length - 1)) as SetEntry | undefined) ?? null;
  }

  /**
   * After a commit: elements added by rules come back from `prev`, and
   * elements the ruleset kept keep the expiry they had.
   */
  carryOver(prev: SetStore, now: number): void {
    for (const e of prev.entries(now)) {
      if (e.dynamic) {
        if (this.find(e.key) !== null) continue;
        try {
          const n = this.add({ key: e.key, end: e.end }, now, true, 0);
          n.expires = e.expires;
          n.data = e.data;
        } catch {
          // Full or overlapping now: the element goes.
        }
      } else if (e.expires !== 0) {
        const n = this.find(e.key);
        if (n !== null && n.expires !== 0) n.expires = e.expires;
      }
    }
  }

  /** Every live entry (for listing and for carrying dynamic elements across commits). */
  entries(now: number): SetEntry[] {
    const out: SetEntry[] = [];
    const walk = (m: Map<number, unknown>, depth: number): void => {
      for (const v of m.values()) {
        if (depth === 0) {
          const e = v as SetEntry;
          if (!this.expired(e, now)) out.push(e);
        } else walk(v as Map<number, unknown>, depth - 1);
      }
    };
    if (this.interval) {
      for (const e of this.ivals) if (!this.expired(e, now)) out.push(e);
    } else if (this.groups.length === 1) walk(this.exact, 0);
    else walk(this.nested, this.groups.length - 1);
    return out;
  }
}
