/**
 * The retransmission queue's scoreboard: one record per segment sent and not
 * yet cumulatively acknowledged, in sequence order, with what is known of it
 * (SACKed, deemed lost, retransmitted and in flight, ever retransmitted), when
 * it last left (for RACK, RFC 8985 §6.1) and the delivered count then. Like
 * Linux's rtx queue with its per-skb `sacked` bits, but kept as parallel typed
 * arrays in a ring that doubles when full: nothing is allocated per segment.
 *
 * Counts are in segments, as Linux keeps packets_out, sacked_out, lost_out and
 * retrans_out, so RFC 6675's pipe is inFlight() (tcp_packets_in_flight).
 */
import { seqDiff } from '../seq.js';

/** The peer has SACKed it (RFC 2018). */
export const SB_SACKED = 1;
/** Deemed lost (RACK, the DupThresh rule, or an RTO) and not yet repaired. */
export const SB_LOST = 2;
/** A retransmission of it is in flight (Linux TCPCB_SACKED_RETRANS). */
export const SB_RETRANS = 4;
/** It has been retransmitted at least once (Linux TCPCB_EVER_RETRANS). */
export const SB_EVER = 8;
/** It carries our FIN. */
export const SB_FIN = 16;

/** The storage of an empty scoreboard, shared: nothing is allocated until a segment is sent. */
const NO_F64 = new Float64Array(0);
const NO_U8 = new Uint8Array(0);
/**
 * The first allocation: a request and its answer rarely take more, and arrays of
 * up to 64 bytes live inside V8's heap without a separate backing store.
 */
const FIRST_CAP = 8;

export class Scoreboard {
  private cap = 0;
  private mask = 0;
  private head = 0;
  /** Segments held (Linux packets_out). */
  count = 0;
  /** Start and end sequence numbers (u32; the end counts a FIN). */
  seq = NO_F64;
  end = NO_F64;
  /** When it was last sent (ms on the stack's clock). */
  xmit = NO_F64;
  /** The connection's delivered count when it was last sent (RFC 8985's rate sample, Linux prior_delivered). */
  deliv = NO_F64;
  flags = NO_U8;
  sackedOut = 0;
  lostOut = 0;
  retransOut = 0;

  /** Physical slot of the i-th record from the head. */
  slot(i: number): number {
    return (this.head + i) & this.mask;
  }

  /** Empties it and gives its storage back (a connection in TIME_WAIT or closed keeps none). */
  clear(): void {
    this.seq = this.end = this.xmit = this.deliv = NO_F64;
    this.flags = NO_U8;
    this.cap = 0;
    this.mask = 0;
    this.head = 0;
    this.count = 0;
    this.sackedOut = 0;
    this.lostOut = 0;
    this.retransOut = 0;
  }

  /** RFC 6675 §4 SetPipe, counted in segments (Linux tcp_packets_in_flight). */
  inFlight(extraSacked: number): number {
    const p = this.count - this.sackedOut - extraSacked - this.lostOut + this.retransOut;
    return p > 0 ? p : 0;
  }

  push(seq: number, end: number, xmitMs: number, delivered: number, fin: boolean): void {
    if (this.count === this.cap) this.grow();
    const k = (this.head + this.count) & this.mask;
    this.seq[k] = seq;
    this.end[k] = end;
    this.xmit[k] = xmitMs;
    this.deliv[k] = delivered;
    this.flags[k] = fin ? SB_FIN : 0;
    this.count++;
  }

  private grow(): void {
    const n = this.cap === 0 ? FIRST_CAP : this.cap * 2;
    const seq = new Float64Array(n);
    const end = new Float64Array(n);
    const xmit = new Float64Array(n);
    const deliv = new Float64Array(n);
    const flags = new Uint8Array(n);
    for (let i = 0; i < this.count; i++) {
      const k = this.slot(i);
      seq[i] = this.seq[k];
      end[i] = this.end[k];
      xmit[i] = this.xmit[k];
      deliv[i] = this.deliv[k];
      flags[i] = this.flags[k];
    }
    this.seq = seq;
    this.end = end;
    this.xmit = xmit;
    this.deliv = deliv;
    this.flags = flags;
    this.cap = n;
    this.mask = n - 1;
    this.head = 0;
  }

  /** Drops the head record, keeping the counts. */
  popHead(): void {
    const k = this.head;
    const f = this.flags[k];
    if (f & SB_SACKED) this.sackedOut--;
    if (f & SB_LOST) this.lostOut--;
    if (f & SB_RETRANS) this.retransOut--;
    this.head = (k + 1) & this.mask;
    this.count--;
  }

  /** Index (from the head) of the first record ending after `s`, relative to `base`; count when none. */
  firstEndingAfter(s: number, base: number): number {
    const off = seqDiff(s, base);
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqDiff(this.end[this.slot(mid)], base) > off) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Marks the record at slot k lost (Linux tcp_mark_skb_lost): a lost retransmission stops counting as in flight. */
  markLost(k: number): boolean {
    const f = this.flags[k];
    if (f & SB_SACKED) return false;
    if (f & SB_RETRANS) {
      this.flags[k] = (f & ~SB_RETRANS) | SB_LOST;
      this.retransOut--;
      if (!(f & SB_LOST)) this.lostOut++;
      return true;
    }
    if (f & SB_LOST) return false;
    this.flags[k] = f | SB_LOST;
    this.lostOut++;
    return true;
  }

  /** Marks the record at slot k SACKed; false if it already was. */
  markSacked(k: number): boolean {
    const f = this.flags[k];
    if (f & SB_SACKED) return false;
    if (f & SB_LOST) this.lostOut--;
    if (f & SB_RETRANS) this.retransOut--;
    this.flags[k] = (f & ~(SB_LOST | SB_RETRANS)) | SB_SACKED;
    this.sackedOut++;
    return true;
  }

  /** A retransmission of the record at slot k left now. */
  markRetrans(k: number, nowMs: number): void {
    const f = this.flags[k];
    if (!(f & SB_RETRANS)) this.retransOut++;
    this.flags[k] = f | SB_RETRANS | SB_EVER;
    this.xmit[k] = nowMs;
  }

  /** Forgets every loss mark (an undo, Linux tcp_undo_cwnd_reduction with unmark_loss). */
  unmarkLost(): void {
    for (let i = 0; i < this.count; i++) {
      const k = this.slot(i);
      this.flags[k] &= ~SB_LOST;
    }
    this.lostOut = 0;
  }

  /** Forgets SACK marks (the peer reneged: RFC 2018 §8, after an RTO). */
  clearSacked(): void {
    for (let i = 0; i < this.count; i++) {
      const k = this.slot(i);
      this.flags[k] &= ~SB_SACKED;
    }
    this.sackedOut = 0;
  }
}
