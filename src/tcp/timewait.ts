/**
 * TIME_WAIT records: what is left of a connection for its 2 MSL wait (RFC 9293 §3.4.2).
 * As Linux's tcp_time_wait replaces the socket by an inet_timewait_sock, a connection
 * entering TIME_WAIT is released and a small record takes its 4-tuple: the sequence
 * numbers, the timestamp state and the window to acknowledge with. All records share
 * one hash table and one timer; they expire in order from a list kept by deadline
 * (every deadline is "now + 60 s", so appending keeps it sorted).
 *
 * Segments to a record are handled as Linux's tcp_timewait_state_process does.
 */
import type { Interface } from '../link/interface.js';
import type { Mib } from '../mib.js';
import type { Time, Timer } from '../time/timers.js';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import type { Segment } from './connection.js';
import type { TcpSettings } from './settings.js';
import { seqAdd, seqGt } from './seq.js';

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
  expiresMs = 0;
  mark = 0;
  boundDev: Interface | null = null;
  /** Hash chain; expiry list (by deadline). */
  hashNext: TimeWaitRecord | null = null;
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

export class TimeWaitTable {
  private readonly table = new Map<number, TimeWaitRecord>();
  private head: TimeWaitRecord | null = null;
  private tail: TimeWaitRecord | null = null;
  private readonly timer: Timer;
  count = 0;
  /** The ISN for the connection a TW_SYN opens (tcp_timewait_state_process: snd_nxt + 65535 + 2). */
  synIsn = 0;

  constructor(private readonly owner: TimeWaitOwner) {
    this.timer = owner.time.timer(() => this.expire());
  }

  lookup(laddr: number, lport: number, raddr: number, rport: number): TimeWaitRecord | null {
    let r = this.table.get(tupleHash(laddr, lport, raddr, rport)) ?? null;
    while (r !== null) {
      if (r.remotePort === rport && r.localPort === lport && r.remoteAddr === raddr && r.localAddr === laddr) return r;
      r = r.hashNext;
    }
    return null;
  }

  /** Adds a record (its 4-tuple and state filled in by the caller); the wait starts now. */
  add(r: TimeWaitRecord): void {
    const h = tupleHash(r.localAddr, r.localPort, r.remoteAddr, r.remotePort);
    r.hashNext = this.table.get(h) ?? null;
    this.table.set(h, r);
    this.count++;
    r.entryMs = this.owner.time.now();
    this.schedule(r);
  }

  /** Ends a record early (RST, a new SYN, connect(2) taking it over) or at expiry. */
  remove(r: TimeWaitRecord): void {
    const h = tupleHash(r.localAddr, r.localPort, r.remoteAddr, r.remotePort);
    let p = this.table.get(h) ?? null;
    if (p === r) {
      if (r.hashNext === null) this.table.delete(h);
      else this.table.set(h, r.hashNext);
    } else {
      while (p !== null && p.hashNext !== r) p = p.hashNext;
      if (p === null) return;
      p.hashNext = r.hashNext;
    }
    r.hashNext = null;
    this.unlink(r);
    this.count--;
    this.owner.portReleased(r.localPort);
    if (this.head === null) this.owner.time.cancel(this.timer);
  }

  /** Every record, for listings (ss), oldest deadline first. */
  *records(): IterableIterator<TimeWaitRecord> {
    for (let r = this.head; r !== null; r = r.next) yield r;
  }

  clear(): void {
    while (this.head !== null) this.remove(this.head);
  }

  /** inet_twsk_reschedule: the 60 s start over. */
  private schedule(r: TimeWaitRecord): void {
    this.unlink(r);
    r.expiresMs = this.owner.time.now() + TIME_WAIT_LEN_MS;
    r.prev = this.tail;
    r.next = null;
    if (this.tail !== null) this.tail.next = r;
    else this.head = r;
    this.tail = r;
    if (this.head === r) this.owner.time.arm(this.timer, TIME_WAIT_LEN_MS);
  }

  private unlink(r: TimeWaitRecord): void {
    const wasHead = this.head === r;
    if (r.prev !== null) r.prev.next = r.next;
    else if (wasHead) this.head = r.next;
    if (r.next !== null) r.next.prev = r.prev;
    else if (this.tail === r) this.tail = r.prev;
    r.prev = null;
    r.next = null;
    if (wasHead && this.head !== null) this.owner.time.arm(this.timer, this.head.expiresMs - this.owner.time.now());
  }

  private expire(): void {
    const now = this.owner.time.now();
    while (this.head !== null && this.head.expiresMs <= now) this.remove(this.head);
    if (this.head !== null) this.owner.time.arm(this.timer, this.head.expiresMs - now);
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
}
