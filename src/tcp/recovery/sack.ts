/**
 * The sender's SACK scoreboard (RFC 6675 §3): which bytes above snd_una the
 * peer has reported holding (RFC 2018). Ranges are kept as offsets from
 * snd_una in one flat sorted array [s0, e0, s1, e1, ...], shifted down when
 * snd_una advances; a window holds few of them, so scans stay short and
 * nothing is allocated per ACK.
 */
import { seqDiff } from '../seq.js';

export class SackScoreboard {
  private r: number[] = [];
  /** Bytes covered by the ranges. */
  sacked = 0;

  get empty(): boolean {
    return this.r.length === 0;
  }

  /** Offset (from snd_una) of the end of the highest SACKed range, or 0. */
  get highOff(): number {
    const r = this.r;
    return r.length > 0 ? r[r.length - 1] : 0;
  }

  /** The number of separate ranges. */
  get count(): number {
    return this.r.length >> 1;
  }

  clear(): void {
    this.r.length = 0;
    this.sacked = 0;
  }

  /**
   * Adds the blocks of one ACK (RFC 2018 §3) that lie within (una, sndMax];
   * a D-SACK (RFC 2883: a block below the cumulative ACK) is ignored here.
   * Returns the bytes newly covered.
   */
  update(blocks: Uint32Array, n: number, una: number, sndMax: number): number {
    const limit = seqDiff(sndMax, una);
    let added = 0;
    for (let i = 0; i < n; i++) {
      let s = seqDiff(blocks[2 * i], una);
      let e = seqDiff(blocks[2 * i + 1], una);
      if (e <= 0 || s >= limit || e <= s) continue;
      if (s < 0) s = 0;
      if (e > limit) e = limit;
      added += this.insert(s, e);
    }
    return added;
  }

  private insert(s: number, e: number): number {
    const r = this.r;
    // Find the first range ending at or after s.
    let i = 0;
    while (i < r.length && r[i + 1] < s) i += 2;
    let j = i;
    let ns = s;
    let ne = e;
    let covered = 0;
    while (j < r.length && r[j] <= e) {
      if (r[j] < ns) ns = r[j];
      if (r[j + 1] > ne) ne = r[j + 1];
      covered += r[j + 1] - r[j];
      j += 2;
    }
    r.splice(i, j - i, ns, ne);
    const added = ne - ns - covered;
    this.sacked += added;
    return added;
  }

  /** snd_una moved up by `n` bytes: ranges shift down and what is now acknowledged goes. */
  advance(n: number): void {
    if (n <= 0 || this.r.length === 0) return;
    const r = this.r;
    let k = 0;
    let sacked = 0;
    for (let i = 0; i < r.length; i += 2) {
      let s = r[i] - n;
      const e = r[i + 1] - n;
      if (e <= 0) continue;
      if (s < 0) s = 0;
      r[k] = s;
      r[k + 1] = e;
      sacked += e - s;
      k += 2;
    }
    r.length = k;
    this.sacked = sacked;
  }

  /** True if the byte at `off` has been SACKed. */
  has(off: number): boolean {
    const r = this.r;
    for (let i = 0; i < r.length; i += 2) {
      if (off < r[i]) return false;
      if (off < r[i + 1]) return true;
    }
    return false;
  }

  /**
   * The first un-SACKed range at or after `from` and below `limit`, as
   * [start, end) offsets written into out; false when there is none.
   */
  nextHole(from: number, limit: number, out: Int32Array | number[]): boolean {
    const r = this.r;
    let s = from;
    for (let i = 0; i < r.length; i += 2) {
      if (s >= limit) return false;
      if (s < r[i]) {
        out[0] = s;
        out[1] = Math.min(r[i], limit);
        return true;
      }
      if (s < r[i + 1]) s = r[i + 1];
    }
    if (s < limit) {
      out[0] = s;
      out[1] = limit;
      return true;
    }
    return false;
  }

  /** SACKed bytes within [from, to). */
  sackedIn(from: number, to: number): number {
    const r = this.r;
    let n = 0;
    for (let i = 0; i < r.length; i += 2) {
      const s = Math.max(r[i], from);
      const e = Math.min(r[i + 1], to);
      if (e > s) n += e - s;
    }
    return n;
  }
}
