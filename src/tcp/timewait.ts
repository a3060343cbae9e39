/**
 * TIME_WAIT records: what is left of a connection for its 2 MSL wait (RFC 9293 §3.4.2).
 * As Linux's tcp_time_wait replaces the socket by an inet_timewait_sock, a connection
 * entering TIME_WAIT is released and a small record takes its 4-tuple: the sequence
 * numbers, the timestamp state and the window to acknowledge with. An orphaned
 * connection in FIN_WAIT_2 (closed by the application, waiting for the peer's FIN)
 * becomes such a record too, with substate FIN_WAIT_2 and tcp_fin_timeout to live
 * (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)); the peer's FIN turns it into TIME_WAIT.
 *
 * All records share one hash table and one timer; they expire in order from two lists
 * kept by deadline: TIME_WAIT's (every deadline is "now + 60 s", so appending keeps it
 * sorted) and FIN_WAIT_2's (deadlines of now + tcp_fin_timeout, or more for a slow
 * path: mostly appended, else placed from the tail).
 *
 * Segments to a record are handled as Linux's tcp_timewait_state_process does.
 */
import type { Interface } from '../link/interface.js';
import type { Mib } from '../mib.js';
import type { Time, Timer } from '../time/timers.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import type { Segment } from './connection.js';
import type { TcpSettings } from './settings.js';
import { seqAdd, seqGe, seqGt, seqLt } from './seq.js';
import { TcpState } from './state.js';
import { HashChains } from '../packet/chains.js';

/** RFC 9293 §3.4.2 / Linux TCP_TIMEWAIT_LEN: 60 s. */
export const TIME_WAIT_LEN_MS = 60_000;
/** RFC 7323 §5.5 / Linux TCP_PAWS_24DAYS. */
const PAWS_24DAYS_MS = 24 * 24 * 3600 * 1000;
/** Linux TCP_PAWS_MSL: a RST's old timestamp is let through after this long. */
const PAWS_MSL_MS = 60_000;

/** What the caller does with a segment after the record has seen it (Linux's tcp_tw_status). */
export const TW_SUCCESS = 0;
/** Acknowledge it from the record. */
export const TW_ACK = 1;
/** A new SYN: a listener may take it, with the ISN in TimeWaitTable.synIsn. */
export const TW_SYN = 2;
/** Answer it with a RST and end the record (new data to a FIN_WAIT_2 record). */
export const TW_RST = 3;
/** Linux's __inet_twsk_schedule counts a record set for at most 4 s as killed (TWKilled), else TW. */
const TW_KILL_MS = 4000;
/** Ended records kept for reuse: enough for the ends and starts of a busy moment, little memory. */
const FREE_MAX = 1024;

export function tupleHash(laddr: number, lport: number, raddr: number, rport: number): number {
  let h = Math.imul(raddr ^ 0x5bd1e995, 0x9e3779b1);
  h ^= Math.imul((rport << 16) | lport, 0x85ebca6b);
  h ^= Math.imul(laddr, 0xc2b2ae35);
  return (h ^ (h >>> 15)) >>> 0;
}

/** One connection in TIME_WAIT (Linux's tcp_timewait_sock). */
export class TimeWaitRecord {
  localAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
  sndNxt = 0;
  rcvNxt = 0;
  /** The window field its ACKs carry (tw_rcv_wnd >> tw_rcv_wscale). */
  wndField = 0;
  /** Timestamps were agreed: ts_recent and its stamp (ms) mean something. */
  tsOk = false;
  tsRecent = 0;
  tsRecentStamp = 0;
  tsOffset = 0;
  lastOowAckMs = -Infinity;
  /** When it entered TIME_WAIT (tw_entry_stamp, for tcp_tw_reuse_delay). */
  entryMs = 0;
  /** TcpState.TIME_WAIT, or FIN_WAIT_2 for an orphan still waiting for the peer's FIN (tw_substate). */
  substate: TcpState = TcpState.TIME_WAIT;
  /** The receive window (tw_rcv_wnd): a FIN_WAIT_2 record checks segments against it. */
  rcvWnd = 0;
  expiresMs = 0;
  mark = 0;
  boundDev: Interface | null = null;
  /** Hash chain (packet/chains.ts) and the hash it is under; expiry list (by deadline). */
  hashNext: TimeWaitRecord | null = null;
  hashValue = 0;
  prev: TimeWaitRecord | null = null;
  next: TimeWaitRecord | null = null;
}

/** What the table needs from the protocol. */
export interface TimeWaitOwner {
  readonly settings: TcpSettings;
  readonly mib: Mib;
  readonly time: Time;
  /** A record let go of its local port. */
  portReleased(port: number): void;
}

/** One expiry list, oldest deadline first. */
class ExpiryList {
  head: TimeWaitRecord | null = null;
  tail: TimeWaitRecord | null = null;
}

export class TimeWaitTable {
  private readonly table = new HashChains<TimeWaitRecord>();
  /** Ended records for alloc() to hand out again (at most FREE_MAX). */
  private readonly free: TimeWaitRecord[] = [];
  /** TIME_WAIT records; FIN_WAIT_2 ones. */
  private readonly tw = new ExpiryList();
  private readonly fw2 = new ExpiryList();
  private readonly timer: Timer;
  /** Records of either substate (what tcp_max_tw_buckets bounds and ss -s calls timewait). */
  get count(): number {
    return this.table.count;
  }
  /** Of which FIN_WAIT_2. */
  finWait2Count = 0;
  /** The ISN for the connection a TW_SYN opens (tcp_timewait_state_process: snd_nxt + 65535 + 2). */
  synIsn = 0;

  constructor(private readonly owner: TimeWaitOwner) {
    this.timer = owner.time.timer(() => this.expire());
  }

  /**
   * A record to fill in for add(): one that ended, or a new one. Records live seconds
   * (until their port is reused) to a minute, so each would reach the old generation;
   * reusing them keeps connection churn from filling it.
   */
  alloc(): TimeWaitRecord {
    const r = this.free.pop();
    if (r === undefined) return new TimeWaitRecord();
    r.lastOowAckMs = -Infinity;
    r.substate = TcpState.TIME_WAIT;
    return r;
  }

  lookup(laddr: number, lport: number, raddr: number, rport: number): TimeWaitRecord | null {
    let r = this.table.first(tupleHash(laddr, lport, raddr, rport));
    while (r !== null) {
      if (r.remotePort === rport && r.localPort === lport && r.remoteAddr === raddr && r.localAddr === laddr) return r;
      r = r.hashNext;
    }
    return null;
  }

  /**
   * Adds a record (its 4-tuple and state filled in by the caller); the wait starts now:
   * 60 s for TIME_WAIT, `timeoutMs` for FIN_WAIT_2. Counted as Linux's __inet_twsk_schedule
   * counts it: TWKilled when set for 4 s or less, else TW.
   */
  add(r: TimeWaitRecord, timeoutMs = TIME_WAIT_LEN_MS): void {
    this.table.insert(r, tupleHash(r.localAddr, r.localPort, r.remoteAddr, r.remotePort));
    if (r.substate === TcpState.FIN_WAIT_2) this.finWait2Count++;
    r.entryMs = this.owner.time.now();
    const ms = r.substate === TcpState.TIME_WAIT ? TIME_WAIT_LEN_MS : timeoutMs;
    if (ms <= TW_KILL_MS) this.owner.mib.TcpExtTWKilled++;
    else this.owner.mib.TcpExtTW++;
    this.schedule(r, ms);
  }

  /** Ends a record early (RST, a new SYN, connect(2) taking it over) or at expiry. */
  remove(r: TimeWaitRecord): void {
    if (!this.table.remove(r)) return;
    this.unlink(r);
    if (r.substate === TcpState.FIN_WAIT_2) this.finWait2Count--;
    this.owner.portReleased(r.localPort);
    r.boundDev = null;
    if (this.free.length < FREE_MAX) this.free.push(r);
    this.rearm();
  }

  /** Every record, for listings (ss): TIME_WAIT ones, then FIN_WAIT_2 ones, each oldest deadline first. */
  *records(): IterableIterator<TimeWaitRecord> {
    for (let r = this.tw.head; r !== null; r = r.next) yield r;
    for (let r = this.fw2.head; r !== null; r = r.next) yield r;
  }

  clear(): void {
    while (this.tw.head !== null) this.remove(this.tw.head);
    while (this.fw2.head !== null) this.remove(this.fw2.head);
  }

  /** inet_twsk_reschedule: the wait starts over (60 s in TIME_WAIT). */
  private schedule(r: TimeWaitRecord, ms = TIME_WAIT_LEN_MS): void {
    this.unlink(r);
    r.expiresMs = this.owner.time.now() + ms;
    const l = r.substate === TcpState.TIME_WAIT ? this.tw : this.fw2;
    // From the tail back to the last record due no later (at once for TIME_WAIT's constant 60 s).
    let p = l.tail;
    while (p !== null && p.expiresMs > r.expiresMs) p = p.prev;
    r.prev = p;
    r.next = p === null ? l.head : p.next;
    if (r.next !== null) r.next.prev = r;
    else l.tail = r;
    if (p !== null) p.next = r;
    else l.head = r;
    if (l.head === r) this.rearm();
  }

  private unlink(r: TimeWaitRecord): void {
    const l = r.substate === TcpState.TIME_WAIT ? this.tw : this.fw2;
    if (r.prev === null && l.head !== r) return;
    const wasHead = l.head === r;
    if (r.prev !== null) r.prev.next = r.next;
    else l.head = r.next;
    if (r.next !== null) r.next.prev = r.prev;
    else l.tail = r.prev;
    r.prev = null;
    r.next = null;
    if (wasHead) this.rearm();
  }

  /** The one timer, for the earlier of the two lists' first deadlines. */
  private rearm(): void {
    const a = this.tw.head;
    const b = this.fw2.head;
    const first = a === null ? b : b === null || a.expiresMs <= b.expiresMs ? a : b;
    if (first === null) this.owner.time.cancel(this.timer);
    else this.owner.time.arm(this.timer, Math.max(0, first.expiresMs - this.owner.time.now()));
  }

  private expire(): void {
    const now = this.owner.time.now();
    // A FIN_WAIT_2 record that times out just goes, as a TIME_WAIT one does (no RST).
    while (this.tw.head !== null && this.tw.head.expiresMs <= now) this.remove(this.tw.head);
    while (this.fw2.head !== null && this.fw2.head.expiresMs <= now) this.remove(this.fw2.head);
    this.rearm();
  }

  /**
   * A segment for a record, as Linux's tcp_timewait_state_process (TIME_WAIT substate)
   * takes it: RFC 9293 §3.10.7.4 with PAWS (RFC 7323 §5) and RFC 6191 for a new SYN.
   */
  input(r: TimeWaitRecord, seg: Segment): number {
    const owner = this.owner;
    const now = owner.time.now();
    const o = seg.opts;
    const f = seg.flags;
    const rst = (f & TCP_RST) !== 0;
    const sawTs = r.tsOk && o.tsPresent;
    let pawsReject = false;
    if (sawTs) {
      // tcp_paws_reject: an older TSval is refused unless ts_recent is stale (24 days) or
      // zero, or (for a RST) more than TCP_PAWS_MSL old.
      const ok = ((r.tsRecent - o.tsVal) | 0) <= 0 || now >= r.tsRecentStamp + PAWS_24DAYS_MS || r.tsRecent === 0;
      pawsReject = !ok && !(rst && now >= r.tsRecentStamp + PAWS_MSL_MS);
    }
    if (r.substate === TcpState.FIN_WAIT_2) return this.inputFinWait2(r, seg, pawsReject, now);
    if (!pawsReject && seg.seq === r.rcvNxt && (seg.len === 0 || rst)) {
      // In window: only a RST or a bare ACK can be.
      if (rst) {
        // TIME_WAIT assassination (RFC 1337): with tcp_rfc1337=0, as Linux by default, it ends.
        if (!owner.settings.rfc1337) {
          this.remove(r);
          return TW_SUCCESS;
        }
      } else this.schedule(r);
      if (sawTs) {
        r.tsRecent = o.tsVal;
        r.tsRecentStamp = now;
      }
      return TW_SUCCESS;
    }
    // RFC 6191: a SYN beyond the old connection (higher ISN, or a newer timestamp) may open a new one.
    if ((f & (TCP_SYN | TCP_RST | TCP_ACK)) === TCP_SYN && !pawsReject && (seqGt(seg.seq, r.rcvNxt) || (sawTs && ((r.tsRecent - o.tsVal) | 0) < 0))) {
      this.synIsn = seqAdd(r.sndNxt, 65535 + 2) || 1;
      return TW_SYN;
    }
    if (pawsReject) owner.mib.TcpExtPAWSEstab++;
    if (rst) return TW_SUCCESS;
    // Out of window, a retransmitted FIN among them: acknowledged, and the wait starts over
    // (RFC 9293 §3.10.7.4), unless it is an ACK-less SYN that may be an old duplicate.
    if (pawsReject || f & TCP_ACK) this.schedule(r);
    // tcp_timewait_check_oow_rate_limit: data or FIN without SYN is always answered,
    // anything else at most once per tcp_invalid_ratelimit.
    if (seg.len > 0 && !(f & TCP_SYN)) return TW_ACK;
    if (now - r.lastOowAckMs < owner.settings.invalidRatelimit) {
      owner.mib.TcpExtTCPACKSkippedTimeWait++;
      return TW_SUCCESS;
    }
    r.lastOowAckMs = now;
    return TW_ACK;
  }

  /**
   * tcp_timewait_state_process for the FIN_WAIT_2 substate, which repeats
   * tcp_rcv_state_process's checks: out of the window (or PAWS) is acknowledged
   * (rate-limited, TCPACKSkippedFinWait2); an in-window RST ends the record; a SYN at
   * or past rcv_nxt, new data, or anything but the FIN right at rcv_nxt gets a RST
   * and ends it; a duplicate ACK is taken silently; the FIN moves the record to
   * TIME_WAIT for 60 s, and is acknowledged.
   */
  private inputFinWait2(r: TimeWaitRecord, seg: Segment, pawsReject: boolean, now: number): number {
    const owner = this.owner;
    const f = seg.flags;
    const seq = seg.seq;
    const end = seqAdd(seq, seg.len);
    const rcvNxt = r.rcvNxt;
    if (pawsReject || !inWindow(seq, end, rcvNxt, seqAdd(rcvNxt, r.rcvWnd))) {
      if (pawsReject) owner.mib.TcpExtPAWSEstab++;
      // tcp_oow_rate_limited: data or FIN without SYN is always answered.
      if (seg.len > 0 && !(f & TCP_SYN)) return TW_ACK;
      if (now - r.lastOowAckMs < owner.settings.invalidRatelimit) {
        owner.mib.TcpExtTCPACKSkippedFinWait2++;
        return TW_SUCCESS;
      }
      r.lastOowAckMs = now;
      return TW_ACK;
    }
    if (f & TCP_RST) {
      this.remove(r);
      return TW_SUCCESS;
    }
    if (f & TCP_SYN && seqGe(seq, rcvNxt)) return TW_RST;
    // A duplicate ACK, or a segment that takes no sequence space.
    if (!(f & TCP_ACK) || !seqGt(end, rcvNxt) || seg.len === 0) return TW_SUCCESS;
    // New data after the application closed: RST (RFC 1122 §4.2.2.13). Only the FIN right at rcv_nxt goes on.
    if (!(f & TCP_FIN) || end !== seqAdd(rcvNxt, 1)) return TW_RST;
    this.unlink(r);
    this.finWait2Count--;
    r.substate = TcpState.TIME_WAIT;
    r.rcvNxt = end;
    if (r.tsOk && seg.opts.tsPresent) {
      r.entryMs = now;
      r.tsRecent = seg.opts.tsVal;
      r.tsRecentStamp = now;
    }
    this.schedule(r);
    return TW_ACK;
  }
}

/** tcp_in_window: the segment [seq, end) starts at the window's left edge, overlaps it, or is empty at its right edge. */
function inWindow(seq: number, end: number, left: number, right: number): boolean {
  if (seq === left) return true;
  if (seqGt(end, left) && seqLt(seq, right)) return true;
  return seq === right && seq === end;
}
