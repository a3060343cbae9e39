import type { TcpState } from './state.js';
import type { Mib } from '../mib.js';
import type { Time } from '../time/timers.js';
import type { TcpSettings } from './settings.js';
import type { TcpConnection } from './connection.js';
import type { FastOpen } from './fastopen.js';

/** What a connection needs from its protocol: settings, counters, time, and the wire. */
export interface TcpHost {
  readonly settings: TcpSettings;
  readonly mib: Mib;
  readonly time: Time;
  /** Fast Open's keys, cookie cache and counters (fastopen.ts). */
  readonly fastOpen: FastOpen;
  /** RFC 6528 initial sequence number for the connection's 4-tuple. */
  isn(c: TcpConnection): number;
  /** RFC 7323 §5.4: a per-connection offset for TSval. */
  tsOffset(c: TcpConnection): number;
  /** The MSS we announce towards `remote`: the route's MTU less 40. */
  advMss(remote: number): number;
  /** SYN (active open) or SYN-ACK. */
  sendSyn(c: TcpConnection, synAck: boolean): void;
  /**
   * A segment at `seq` carrying `len` bytes taken `bufOff` bytes after snd_una
   * in the send buffer (0 for a bare ACK), with FIN if asked.
   */
  sendData(c: TcpConnection, seq: number, bufOff: number, len: number, fin: boolean, retrans: boolean): void;
  /** A zero-window or keepalive probe: an ACK with sequence number snd_una - 1. */
  sendProbe(c: TcpConnection): void;
  sendReset(laddr: number, lport: number, raddr: number, rport: number, seq: number, ack: number, withAck: boolean): void;
  /** Serve the connection at the end of the current receive batch. */
  defer(c: TcpConnection): void;
  /** Send the connection's quick ACK once this turn of the event loop is done, unless a reply carries it first. */
  holdAck(c: TcpConnection): void;
  /**
   * How many more segments the connection may queue on its interface now; when it
   * has used them up it calls `resumeLater` and goes on once the device has written.
   */
  txBudget(c: TcpConnection): number;
  /**
   * Segments of `mss` bytes one send may carry as a GSO super-packet on the
   * route the last txBudget(c) looked up (1: no GSO there).
   */
  gsoSegs(c: TcpConnection, mss: number): number;
  resumeLater(c: TcpConnection): void;
  /**
   * The connection enters TIME_WAIT (or, an orphan, FIN_WAIT_2 for `timeoutMs`): a record
   * takes over its 4-tuple and the connection is to close; false when tcp_max_tw_buckets
   * is reached.
   */
  enterTimeWait(c: TcpConnection, substate?: TcpState, timeoutMs?: number): boolean;
  /** The connection is closed: out of the tables. */
  unhash(c: TcpConnection): void;
}
