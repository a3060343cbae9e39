import { Buffer } from 'node:buffer';

/** Writes up to this size share a slab; larger ones get a copy of their own. */
const ARENA_SMALL = 4096;
const ARENA_SLAB = 65536;
const EMPTY = new Uint8Array(0);

/**
 * Copies of what applications write through sockets. A Node stream's writer may reuse
 * a buffer once write()'s callback has run, and its bytes may not have left yet or may
 * still wait for their acknowledgement: the send buffer holds a copy of its own. Small
 * writes are copied into a shared slab (a new one once it is full; an old one lives on
 * while a piece of it is unacknowledged), so a connection that went idle holds none.
 */
export class SendArena {
  private slab: Buffer | null = null;
  private used = 0;

  copy(data: Uint8Array): Uint8Array {
    const n = data.length;
    if (n > ARENA_SMALL) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(data);
      return own;
    }
    let slab = this.slab;
    let at = this.used;
    if (slab === null || at + n > ARENA_SLAB) {
      slab = this.slab = Buffer.allocUnsafeSlow(ARENA_SLAB);
      at = 0;
    }
    slab.set(data, at);
    this.used = (at + n + 7) & ~7;
    return slab.subarray(at, at + n);
  }

  /** A string write, encoded straight into the slab (or into a buffer of its own when large). */
  copyString(s: string, enc: BufferEncoding = 'utf8'): Uint8Array {
    // Every encoding takes at most 3 bytes a UTF-16 unit (utf8's worst case): a string that
    // surely fits is not measured first.
    const bound = s.length * 3;
    if (bound > ARENA_SMALL) {
      const n = Buffer.byteLength(s, enc);
      if (n > ARENA_SMALL) return Buffer.from(s, enc);
    }
    let slab = this.slab;
    let at = this.used;
    if (slab === null || at + bound > ARENA_SLAB) {
      const n = Buffer.byteLength(s, enc);
      if (slab === null || at + n > ARENA_SLAB) {
        slab = this.slab = Buffer.allocUnsafeSlow(ARENA_SLAB);
        at = 0;
      }
    }
    const n = slab.write(s, at, enc);
    this.used = (at + n + 7) & ~7;
    return slab.subarray(at, at + n);
  }
}

/**
 * The bytes a connection has been given to send and that are not yet
 * acknowledged: a queue of chunks from snd_una onward. Segments are built by
 * copying a range out of it (the first send and every retransmission alike);
 * acknowledged bytes are dropped from the front.
 */
export class SendBuffer {
  private chunks: Uint8Array[] = [];
  /** Offset of the first unacknowledged byte within chunks[0]. */
  private head = 0;
  /** Bytes held (acknowledged ones excluded). */
  length = 0;
  /** Chunk index and stream position of the last read, so sequential reads don't rescan. */
  private cursorIdx = 0;
  private cursorPos = 0;

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.length += data.length;
  }

  /** Points the cursor at the chunk holding stream offset `from` (from snd_una). */
  private seek(from: number): void {
    const chunks = this.chunks;
    let idx: number;
    let pos: number; // stream offset (from snd_una) of chunks[idx][head or 0]
    if (this.cursorIdx < chunks.length && this.cursorPos <= from) {
      idx = this.cursorIdx;
      pos = this.cursorPos;
    } else {
      idx = 0;
      pos = 0;
    }
    for (;;) {
      const n = chunks[idx].length - (idx === 0 ? this.head : 0);
      if (from < pos + n) break;
      pos += n;
      idx++;
    }
    this.cursorIdx = idx;
    this.cursorPos = pos;
  }

  /** Copies `len` bytes starting `from` bytes after snd_una into dst[dstOff...]. */
  copyOut(from: number, len: number, dst: Uint8Array, dstOff: number): void {
    this.seek(from);
    const chunks = this.chunks;
    let idx = this.cursorIdx;
    let pos = this.cursorPos;
    while (len > 0) {
      const c = chunks[idx];
      const start = idx === 0 ? this.head : 0;
      const s = start + (from - pos);
      const n = Math.min(len, c.length - s);
      dst.set(n === c.length ? c : c.subarray(s, s + n), dstOff);
      dstOff += n;
      len -= n;
      from += n;
      if (s + n === c.length) {
        pos += c.length - start;
        idx++;
      }
    }
  }

  /**
   * Views of the `len` bytes starting `from` bytes after snd_una, into out[0..);
   * returns how many, or 0 when they would take more than `max` (the caller
   * copies instead). Chunks are never written again, so the views stay valid
   * after the bytes are acknowledged.
   */
  views(from: number, len: number, out: Uint8Array[], max: number): number {
    this.seek(from);
    const chunks = this.chunks;
    let idx = this.cursorIdx;
    let pos = this.cursorPos;
    let k = 0;
    while (len > 0) {
      if (k === max) {
        for (let i = 0; i < k; i++) out[i] = EMPTY;
        return 0;
      }
      const c = chunks[idx];
      const start = idx === 0 ? this.head : 0;
      const s = start + (from - pos);
      const n = Math.min(len, c.length - s);
      out[k++] = n === c.length ? c : c.subarray(s, s + n);
      len -= n;
      from += n;
      if (s + n === c.length) {
        pos += c.length - start;
        idx++;
      }
    }
    return k;
  }

  /** Drops `n` acknowledged bytes from the front. */
  consume(n: number): void {
    if (n <= 0) return;
    this.length -= n;
    const chunks = this.chunks;
    let i = 0;
    let head = this.head;
    while (n > 0) {
      const left = chunks[i].length - head;
      if (n < left) {
        head += n;
        n = 0;
      } else {
        n -= left;
        head = 0;
        i++;
      }
    }
    // A few chunks (a reply or two per ACK) go by shift(): no array from splice, and the
    // backing store stays (truncating the length frees it, and the next push allocates).
    if (i <= 8) for (let k = 0; k < i; k++) chunks.shift();
    else chunks.splice(0, i);
    this.head = head;
    this.cursorIdx = 0;
    this.cursorPos = 0;
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
    this.cursorIdx = 0;
    this.cursorPos = 0;
  }
}
