/**
 * What every header view shares: a window `[off, off + len)` on `buf`, which reset()
 * moves so that one view object serves packet after packet without allocating.
 * Subclasses add only accessors; each view class is still the only one its own
 * getters ever see, so their property loads stay monomorphic.
 */
export class ByteView {
  // `declare`, not class fields (nor constructor parameter properties, which compile
  // to class fields): V8 constructs a subclass of a class with fields several times
  // slower. Subclasses should not add fields for the same reason.
  declare buf: Uint8Array;
  declare off: number;
  declare len: number;

  constructor(buf: Uint8Array, off: number, len: number) {
    this.buf = buf;
    this.off = off;
    this.len = len;
  }

  reset(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }
}
