/**
 * One iperf3 data stream, served on its TcpConnection directly: a receiver
 * counts what arrives and drops it, a sender keeps the send buffer filled with
 * one block of random bytes written again and again. The counters and the
 * per-interval figures are iperf3's (iperf.h struct iperf_stream_result,
 * iperf_api.c iperf_stats_callback), so both ends of a test report the same way.
 */
import type { Tcp } from '../../tcp/tcp.js';
import type { TcpConnection, TcpUser } from '../../tcp/connection.js';
import { TcpState } from '../../tcp/state.js';
import type { Errno } from '../../errors.js';
import { COOKIE_SIZE } from './protocol.js';

/** What a stream needs from the test it belongs to. */
export interface StreamOwner {
  readonly tcp: Tcp;
  /** iperf_tcp_recv counts bytes only in TEST_RUNNING. */
  readonly counting: boolean;
  /** Senders write while the test runs (TEST_RUNNING, not yet done). */
  readonly sending: boolean;
  /** The block a sender writes (the test's -l). */
  readonly block: Uint8Array;
  /** The server read a new stream's cookie. */
  streamCookie(s: Iperf3Stream, cookie: Uint8Array): void;
  /** The client's stream finished its handshake. */
  streamConnected(s: Iperf3Stream): void;
  streamClosed(s: Iperf3Stream, err: Errno | null): void;
  /** Something came from the peer (data, or an ACK that made room). */
  activity(): void;
}

/** iperf.h struct iperf_interval_results, the TCP part. Times in µs. */
export interface IntervalResult {
  bytes: number;
  startUs: number;
  endUs: number;
  /** Seconds, as the C float iperf keeps it. */
  duration: number;
  omitted: boolean;
  retrans: number;
  sndCwnd: number;
  sndWnd: number;
  rtt: number;
  rttvar: number;
  pmtu: number;
}

/** Time in whole microseconds, as iperf's struct iperf_time holds it. */
export function usOf(ms: number): number {
  return Math.round(ms * 1000);
}

export class Iperf3Stream implements TcpUser {
  /** iperf's stream id (1, 3, 4, ...), once known. */
  id = 0;
  /** The descriptor number iperf would print for this stream. */
  socket = 0;
  sender = false;
  /** Waiting for the cookie (server side, before the stream is placed). */
  private cookie: Uint8Array | null = null;
  private cookieLen = 0;
  /** Bytes of the current block not yet written (iperf's pending_size). */
  private pending = 0;

  // ---- struct iperf_stream_result ----
  bytesReceived = 0;
  bytesSent = 0;
  bytesSentOmit = 0;
  bytesReceivedThisInterval = 0;
  bytesSentThisInterval = 0;
  streamRetrans = 0;
  private prevTotalRetrans = 0;
  maxSndCwnd = 0;
  maxSndWnd = 0;
  maxRtt = 0;
  minRtt = 0;
  sumRtt = 0;
  countRtt = 0;
  startUs = 0;
  endUs = 0;
  /** Seconds the other side measured (from its results), 0 when not known. */
  senderTime = 0;
  receiverTime = 0;
  /** The latest interval (iperf prints only the last one of its list). */
  last: IntervalResult | null = null;
  /** The peer's FIN came. */
  eof = false;
  closed = false;

  constructor(
    private readonly owner: StreamOwner,
    readonly conn: TcpConnection,
    expectCookie: boolean,
  ) {
    conn.user = this;
    if (expectCookie) this.cookie = new Uint8Array(COOKIE_SIZE);
  }

  // ---- TcpUser ----

  onConnected(): void {
    this.owner.streamConnected(this);
  }

  onData(data: Uint8Array): void {
    this.owner.activity();
    let d = data;
    const ck = this.cookie;
    if (ck !== null) {
      const n = Math.min(COOKIE_SIZE - this.cookieLen, d.length);
      ck.set(d.subarray(0, n), this.cookieLen);
      this.cookieLen += n;
      d = d.subarray(n);
      if (this.cookieLen < COOKIE_SIZE) return;
      this.cookie = null;
      this.owner.streamCookie(this, ck);
      if (this.closed) return;
    }
    if (d.length > 0 && this.owner.counting) {
      this.bytesReceived += d.length;
      this.bytesReceivedThisInterval += d.length;
    }
  }

  onEof(): void {
    this.eof = true;
  }

  onRoom(): void {
    this.owner.activity();
    if (this.sender && this.fill()) this.owner.tcp.defer(this.conn);
  }

  onClosed(err: Errno | null): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.streamClosed(this, err);
  }

  /** What arrives is counted and dropped at once: nothing holds the window. */
  rcvQueued(): number {
    return 0;
  }

  // ---- sending ----

  /**
   * iperf_tcp_send over a non-blocking socket: as much of the current block as
   * the send buffer takes, block after block. Like Linux's sk_stream_is_writeable,
   * the writer wakes only when the free space is at least half of what is
   * queued, so the buffer fills in large pieces. True when bytes were written.
   */
  fill(): boolean {
    const c = this.conn;
    if (!this.owner.sending || this.closed) return false;
    if (c.state !== TcpState.ESTABLISHED && c.state !== TcpState.CLOSE_WAIT) return false;
    let room = c.sendRoom;
    if (room <= 0 || room < c.sendBuf.length >>> 1) return false;
    const block = this.owner.block;
    const blk = block.length;
    while (room > 0) {
      if (this.pending === 0) this.pending = blk;
      const off = blk - this.pending;
      const n = Math.min(room, this.pending);
      c.write(n === blk ? block : block.subarray(off, off + n));
      this.pending -= n;
      room -= n;
      this.bytesSent += n;
      this.bytesSentThisInterval += n;
    }
    return true;
  }

  // ---- statistics (iperf_stats_callback, iperf_reset_stats) ----

  /** The test starts (iperf_init_test): both start times are now. */
  start(nowUs: number): void {
    this.startUs = nowUs;
    this.endUs = nowUs;
  }

  /** Closes the current interval at `nowUs`. */
  stats(nowUs: number, omitted: boolean, withTcpInfo: boolean): IntervalResult {
    const c = this.conn;
    const startUs = this.last !== null ? this.endUs : this.startUs;
    this.endUs = nowUs;
    const ir: IntervalResult = {
      bytes: this.sender ? this.bytesSentThisInterval : this.bytesReceivedThisInterval,
      startUs,
      endUs: nowUs,
      duration: Math.fround((nowUs - startUs) / 1e6),
      omitted,
      retrans: 0,
      sndCwnd: 0,
      sndWnd: 0,
      rtt: 0,
      rttvar: 0,
      pmtu: 0,
    };
    if (withTcpInfo) {
      // Linux tcp_info: tcpi_total_retrans, snd_cwnd (segments) times snd_mss,
      // snd_wnd, rtt and rttvar in µs, pmtu (iperf's tcp_info.c reads these).
      const total = c.totalRetrans;
      ir.retrans = total - this.prevTotalRetrans;
      this.streamRetrans += ir.retrans;
      this.prevTotalRetrans = total;
      ir.sndCwnd = c.cwnd * c.mss;
      if (ir.sndCwnd > this.maxSndCwnd) this.maxSndCwnd = ir.sndCwnd;
      ir.sndWnd = c.sndWnd;
      if (ir.sndWnd > this.maxSndWnd) this.maxSndWnd = ir.sndWnd;
      ir.rtt = Math.floor(c.rtt.srttUs);
      if (ir.rtt > this.maxRtt) this.maxRtt = ir.rtt;
      if (this.minRtt === 0 || ir.rtt < this.minRtt) this.minRtt = ir.rtt;
      this.sumRtt += ir.rtt;
      this.countRtt++;
      ir.rttvar = Math.floor(c.rtt.rttvarUs);
      ir.pmtu = c.pmtu;
    }
    this.bytesSentThisInterval = 0;
    this.bytesReceivedThisInterval = 0;
    this.last = ir;
    return ir;
  }

  /** The omitted seconds are over: counting starts again from now. */
  resetStats(nowUs: number, withTcpInfo: boolean): void {
    this.bytesSentOmit = this.bytesSent;
    this.bytesReceived = 0;
    this.bytesSentThisInterval = 0;
    this.bytesReceivedThisInterval = 0;
    if (withTcpInfo) this.prevTotalRetrans = this.conn.totalRetrans;
    this.streamRetrans = 0;
    this.startUs = nowUs;
  }

  // ---- closing ----

  /** close(2): FIN after what is queued. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.conn;
    this.owner.tcp.batched(() => c.close(false));
  }

  /** Closed with a RST, as Linux closes a socket with data it never read. */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.conn;
    c.user = null;
    c.orphan = true;
    this.owner.tcp.batched(() => c.abort());
  }
}
