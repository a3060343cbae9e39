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

  /** Copies `len` bytes starting `from` bytes after snd_una into dst[dstOff...]. */
  copyOut(from: number, len: number, dst: Uint8Array, dstOff: number): void {
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
    // Walk to the chunk holding `from`.
    for (;;) {
      const c = chunks[idx];
      const start = idx === 0 ? this.head : 0;
      const n = c.length - start;
      if (from < pos + n) break;
      pos += n;
      idx++;
    }
    this.cursorIdx = idx;
    this.cursorPos = pos;
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
