/**
 * One TCP connection: RFC 9293's transmission control block and its event
 * processing (§3.10), with the send side (output.ts builds the segments),
 * retransmission (RFC 6298), NewReno fast recovery (RFC 6582), flow control
 * with window scaling and timestamps (RFC 7323), SACK blocks for what arrives
 * out of order (RFC 2018, RFC 2883), delayed ACKs like Linux's, and the
 * challenge ACKs of RFC 5961. Its timers run on the stack's clock.
 */
import type { Interface } from '../link/interface.js';
import type { Timer } from '../time/timers.js';
import type { CcState, CongestionControl } from './cc/types.js';
import { SendBuffer } from './send-buffer.js';
import { LossRecovery, CA_LOSS, CA_OPEN, CA_RECOVERY, F_DATA, F_WIN_UPDATE, T_REO, T_RTO, T_TLP } from './recovery/loss.js';
import { RttEstimator, RTO_INITIAL_US, RTO_MAX_US } from './rtt.js';
import { CwndValidation } from './cc/cwv.js';
import { Pacer, pacingRate } from './pacing.js';
import { DeliveryRate } from './rate.js';
import { RcvRtt } from './rcv-rtt.js';
import { CHRONO_BUSY, CHRONO_RWND_LIMITED, CHRONO_SNDBUF_LIMITED, TcpChrono } from './chrono.js';
import { TcpState, synchronized } from './state.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { TCP_ACK, TCP_CWR, TCP_FIN, TCP_RST, TCP_SYN, TCP_URG, TcpOptions } from '../wire/tcp.js';
import type { FastOpenActive } from './fastopen.js';
import { EcnCwr, ecnAcceptCwr, ecnCheckCe, ecnPassive, ecnSynReceived } from './ecn.js';
import type { TcpHost } from './host.js';
import type { Errno } from '../errors.js';
import { TIME_WAIT_LEN_MS } from './timewait.js';
import { ListLink } from '../packet/chains.js';

/** What the owner of a connection (a socket, a built-in service) hears. */
export interface TcpUser {
  /** The handshake finished. */
  onConnected(): void;
  /**
   * In-order bytes. Not `owned`: a view of a receive buffer that is read into again,
   * valid only during the call (keep a copy). `owned`: bytes the connection copied
   * for the user (queued out of order, or before a user took the connection) that
   * nothing writes again: the user may keep the view itself.
   */
  onData(data: Uint8Array, owned: boolean): void;
  /** The peer's FIN: no more data will come. */
  onEof(): void;
  /** Room was made in the send buffer. */
  onRoom(): void;
  /** The connection is gone: null when it closed cleanly, else why. */
  onClosed(err: Errno | null): void;
  /** Bytes handed to the user but not yet consumed: they hold receive-buffer space. */
  rcvQueued(): number;
}

/** A segment as input sees it (one object reused for every segment). */
export class Segment {
  seq = 0;
  ack = 0;
  flags = 0;
  wnd = 0;
  urg = 0;
  buf: Uint8Array = new Uint8Array(0);
  dataOff = 0;
  dataLen = 0;
  /** The ECN field of the IP header it came in (RFC 3168 §5). */
  ecn = 0;
  /** A super-packet's segment size (GRO's gso_size), else 0. */
  gsoSize = 0;
  readonly opts = new TcpOptions();
  /** seq + data + SYN + FIN: the sequence space it takes. */
  get len(): number {
    return this.dataLen + (this.flags & TCP_SYN ? 1 : 0) + (this.flags & TCP_FIN ? 1 : 0);
  }
}

/** Data that arrived ahead of a hole, at its stream offset. */
interface OooSegment {
  off: number;
  data: Uint8Array;
}

/** Linux TCP_DELACK_MIN / TCP_ATO_MIN: 40 ms. */
const DELACK_MS = 40;
/** Linux TCP_MAX_QUICKACKS. */
const MAX_QUICKACKS = 16;
/** RFC 7323 §5.5: a timestamp older than 24 days is no guard (PAWS_24DAYS). */
const PAWS_24DAYS_MS = 24 * 24 * 3600 * 1000;
/** RFC 9293 §3.7.1: the MSS assumed when the peer sends none. */
export const DEFAULT_MSS = 536;
/** Linux TCP_MIN_MSS... lowest MSS PMTU discovery may take us to. */
const MIN_MSS = 88;
/** The initial window, in segments (RFC 6928). */
export const INITIAL_CWND = 10;
/** Zero-window probe and keepalive probes send one old byte's worth of sequence space. */
const MAX_WINDOW = 0xffff;

export class TcpConnection implements CcState {
  // ---- identity ----
  localAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
  /** Chained in the protocol's connection hash (packet/chains.ts), under hashValue. */
  hashNext: TcpConnection | null = null;
  hashValue = 0;
  hashed = false;
  /** Membership of the protocol's list of connections, and of its listener's SYN queue. */
  readonly allLink = new ListLink<TcpConnection>(this);
  readonly synQueueLink = new ListLink<TcpConnection>(this);
  state = TcpState.CLOSED;
  private owner: TcpUser | null = null;
  /** In-order data and a FIN that arrived while no user held the connection (in the accept queue). */
  private early: Uint8Array[] | null = null;
  private earlyBytes = 0;
  private eofPending = false;
  /** The listener that made this connection (passive open), until it is accepted. */
  listener: { established(c: TcpConnection): void; dropped(c: TcpConnection): void; overflow(c: TcpConnection, seg: Segment): boolean } | null = null;
  /** No user holds it any more (closed by the application); Linux's orphan. */
  orphan = false;
  /** SO_MARK: rides on every segment and steers `ip rule fwmark` lookups. */
  mark = 0;
  /** SO_BINDTODEVICE: segments leave by this interface and only those arriving on it are ours. */
  boundDev: Interface | null = null;

  // ---- send sequence space (RFC 9293 §3.3.1) ----
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence sent (snd_nxt before a go-back-N rewind). */
  sndMax = 0;
  sndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;
  /** Largest window the peer has offered (RFC 9293 §3.8.6.2.1, RFC 5961 §5.2). */
  maxSndWnd = 0;
  sndWscale = 0;
  readonly sendBuf = new SendBuffer();
  /** The send buffer's size (SO_SNDBUF). */
  sndBufSize: number;
  /** The application asked to close its sending side; FIN goes after the data. */
  finQueued = false;
  /** FIN's sequence number once it has been sent. */
  finSent = false;
  finSeq = 0;

  // ---- receive sequence space ----
  irs = 0;
  rcvNxt = 0;
  /** rcv_nxt when the last window was advertised (Linux rcv_wup). */
  rcvWup = 0;
  /** Right edge of the last window advertised, and the furthest one ever advertised. */
  rcvAdvEdge = 0;
  rcvAdvMax = 0;
  rcvWscale = 0;
  /** The receive buffer's size (SO_RCVBUF), grown by autotuning. */
  rcvBufSize: number;
  /** In-order bytes received since the connection began (stream offset of rcv_nxt, past the SYN). */
  rcvOff = 0;
  /** Out-of-order data sorted by offset, and its bytes. */
  ooo: OooSegment[] = [];
  oooBytes = 0;
  /** Offset of a FIN that arrived out of order, or -1. */
  oooFinOff = -1;
  /**
   * SACK blocks in the order to report them (RFC 2018 §4: the most recent first): an offset
   * inside each, as Linux's selective_acks[] keeps at most 4 (TCP_NUM_SACKS); then a D-SACK (RFC 2883).
   */
  readonly sackRecent = new Float64Array(4);
  sackRecentN = 0;
  dsackStart = 0;
  dsackEnd = 0;
  dsackPending = false;
  /** Sequence number of the byte the urgent pointer marks, while it has not been passed. */
  urgSeq = 0;
  urgPending = false;

  // ---- options ----
  /** The MSS we send with (after options are taken off it per segment) and the peer's. */
  mss = DEFAULT_MSS;
  peerMss = DEFAULT_MSS;
  advMss = DEFAULT_MSS;
  /** Largest segment we have received (Linux rcv_mss, for delayed ACKs). */
  rcvMss = DEFAULT_MSS;
  pmtu = 1500;
  tsOk = false;
  tsRecent = 0;
  tsRecentStamp = 0;
  tsOffset = 0;
  wscaleOk = false;
  sackOk = false;
  /** ECN (ecn.ts): Linux's ecn_flags, and the window reduction an ECE started. */
  ecnFlags = 0;
  readonly cwr = new EcnCwr();
  /** Fast Open (fastopen.ts): the client's attempt; a server connection made by a Fast Open SYN. */
  tfo: FastOpenActive | null = null;
  tfoChild = false;
  /** Data in the SYN was acknowledged (client) or taken (server): ss shows `fastopen`. */
  synDataAcked = false;
  /** The cookie the next SYN-ACK carries (a request was made, or a cookie refused). */
  synAckCookie: Uint8Array | null = null;
  synAckCookieExp = false;

  // ---- congestion control (CcState) ----
  cwnd = INITIAL_CWND;
  ssthresh = 0x7fffffff;
  cwndCnt = 0;
  cwndClamp = 0x7fffffff;
  packetsOut = 0;
  /** RFC 7661 as Linux: is the window used (cc/cwv.ts). */
  readonly cwv = new CwndValidation();
  /** pacing_rate, and internal pacing when asked (pacing.ts). */
  readonly pacer = new Pacer();
  private pacingTimer: Timer | null = null;
  /** Delivered segments and the delivery rate (rate.ts); busy and limited times (chrono.ts). */
  readonly rate = new DeliveryRate();
  readonly chrono = new TcpChrono();
  /** The receiver's RTT estimate (tcpi_rcv_rtt) and out-of-order segments received (tcpi_rcv_ooopack). */
  readonly rcvRtt = new RcvRtt();
  rcvOoopack = 0;
  cc: CongestionControl;
  /** cwnd when the current window reduction began (Linux prior_cwnd). */
  priorCwnd = 0;
  /** The retransmission queue's scoreboard, RACK-TLP, PRR and undo (recovery/loss.ts). */
  readonly rec: LossRecovery;
  /** The RTT sample of the ACK being processed (µs), or -1. */
  lastRttUs = -1;
  /** Acknowledged data made room in the send buffer: the user hears at the end of processAck. */
  private roomFreed = false;
  lastSendMs = 0;
  lastRecvMs = 0;
  lastAckRecvMs = 0;

  // ---- RTT and retransmission ----
  readonly rtt: RttEstimator;
  /** Times the current segment has been retransmitted (Linux icsk_retransmits), and the backoff shift. */
  retransmits = 0;
  backoff = 0;
  /** Karn's algorithm: a segment being timed when timestamps are off. */
  rttSeq = 0;
  rttTimeMs = -1;
  /** When the first retransmission of the current episode was sent (for tcp_retries2's time budget). */
  retransStartMs = 0;
  /** The zero-window probe timer is running instead of the retransmission timer. */
  probing = false;
  probesOut = 0;

  // ---- ACK state ----
  /** Segments to ACK at once before delayed ACKs begin (Linux quickack). */
  quickAcks = MAX_QUICKACKS;
  /**
   * Linux icsk_ack.pingpong: replies sent within the ACK timeout of the data they answer.
   * While set (TCP_PINGPONG_THRESH, 1), the peer's data waits for a reply to carry its ACK
   * instead of a quick ACK (tcp_in_quickack_mode).
   */
  pingpong = 0;
  /** Linux icsk_ack.lrcvtime: when data last arrived (ms). */
  lastDataRcvMs = -DELACK_MS;
  /** When in-order data last arrived (Linux icsk_ack.lrcvtime), -1 before any. */
  private lrcvMs = -1;
  /** An ACK is owed; `ackNow` asks for it at the end of this batch. */
  ackPending = false;
  /**
   * When the delayed ACK owed is due (ms), or -1. An ACK that goes out clears it and
   * leaves the timer running (as Linux's inet_csk_clear_xmit_timer leaves the delack
   * timer): a timer that fires with nothing due does nothing, one early re-arms itself,
   * so a reply per request costs no timer operation.
   */
  private delackDue = -1;
  ackNow = false;
  /**
   * The ACK owed at once is a quick ACK for a request the application was just handed:
   * it waits for the application's reply to carry it, until the work of this turn of
   * the event loop is done (Tcp.holdAck).
   */
  ackHold = false;
  /** On the protocol's list of held ACKs. */
  ackHeld = false;
  /** What the application had read at the last consumed() (Linux tcp_cleanup_rbuf's `copied`). */
  private rcvReadOff = 0;
  /** Bytes received since the last ACK we sent. */
  unackedBytes = 0;
  /** The window grew enough that the peer should hear of it. */
  /** Queued on the protocol's list of connections to serve at the batch's end. */
  deferred = false;
  /** Waiting for room in the interface's queue (Tcp.resumeLater). */
  throttled = false;
  /**
   * TCP small queues (Tcp.txBudget): data segments this connection queued on
   * `tsqDev` since that device's flush number `tsqFlush`.
   */
  tsqDev: Interface | null = null;
  tsqFlush = 0;
  tsqSegs = 0;
  /** Written to by the application; output runs at the end of the tick (Tcp.output). */
  corked = false;
  /** RFC 5961 / tcp_invalid_ratelimit: when the last challenge or out-of-window ACK was sent. */
  lastOowAckMs = -Infinity;

  // ---- user options ----
  noDelay = false;
  keepAlive = false;
  keepIdleS = 0;
  keepIntvlS = 0;
  keepCnt = 0;
  keepProbes = 0;
  /** SO_LINGER with a zero timeout: close sends RST. */
  lingerZero = false;

  // ---- counters for ss -i ----
  bytesSent = 0;
  bytesRetrans = 0;
  bytesAcked = 0;
  bytesReceived = 0;
  segsOut = 0;
  segsIn = 0;
  dataSegsOut = 0;
  dataSegsIn = 0;
  totalRetrans = 0;
  /** rcv_space for autotuning (Linux DRS): bytes consumed in the current measurement. */
  rcvSpace = 0;
  rcvSpaceSeqOff = 0;
  rcvSpaceTimeMs = 0;
  /** Error to report on close, set when the connection fails. */
  softError: Errno | null = null;

  get user(): TcpUser | null {
    return this.owner;
  }

  /** A new user gets what arrived before it, at the end of the current batch. */
  set user(u: TcpUser | null) {
    this.owner = u;
    if (u !== null && (this.early !== null || this.eofPending)) this.host.defer(this);
  }

  /** Fast recovery (RFC 6675/6582; Linux CA_Recovery). */
  get inRecovery(): boolean {
    return this.rec.ca === CA_RECOVERY;
  }

  /** After an RTO, until everything sent before it is acknowledged (Linux CA_Loss). */
  get inLoss(): boolean {
    return this.rec.ca === CA_LOSS;
  }

  /** snd_nxt when the current recovery episode began (RFC 6582 "recover", Linux high_seq). */
  get recover(): number {
    return this.rec.highSeq;
  }

  // ---- recovery state for ss -i (tcp_info's tcpi_retrans, lost, sacked, reordering, reord_seen, dsack_dups) ----
  /** Segments retransmitted and still in flight. */
  get retransOut(): number {
    return this.rec.q.retransOut;
  }

  /** Segments deemed lost and not yet retransmitted or SACKed. */
  get lostOut(): number {
    return this.rec.q.lostOut;
  }

  /** Segments the peer SACKed (or, without SACK, duplicate ACKs counted). */
  get sackedOut(): number {
    return this.rec.sackedOut;
  }

  /** Reordering degree in segments (starts at net.ipv4.tcp_reordering). */
  get reordering(): number {
    return this.rec.reordering;
  }

  /** Times reordering was detected. */
  get reordSeen(): number {
    return this.rec.reordSeen;
  }

  /** Segments the peer reported as duplicates by D-SACK. */
  get dsackDups(): number {
    return this.rec.dsackDups;
  }

  /** tcp_is_cwnd_limited, for the congestion control modules. */
  get isCwndLimited(): boolean {
    return this.cwv.isCwndLimited(this);
  }

  get paced(): boolean {
    return this.pacer.enabled;
  }

  /** SO_MAX_PACING_RATE (bytes/s): caps pacing_rate and turns internal pacing on, as in Linux. */
  setMaxPacingRate(rate: number): void {
    this.pacer.maxRate = rate;
    this.pacer.enabled = true;
    if (this.pacingTimer === null) this.pacingTimer = this.host.time.timer(() => this.output());
    this.updatePacingRate();
  }

  /** tcp_update_pacing_rate. */
  updatePacingRate(): void {
    const s = this.host.settings;
    this.pacer.rate = pacingRate(this.mss, this.cwnd, this.packetsOut, this.ssthresh, this.rtt.srttUs, s.pacingSsRatio, s.pacingCaRatio, this.pacer.maxRate);
  }

  get srttUs(): number {
    return this.rtt.srttUs;
  }

  get minRttUs(): number {
    return this.rtt.minRttUs;
  }

  get lastSendUs(): number {
    return this.lastSendMs * 1000;
  }

  hystartExit(how: 'train' | 'delay', cwnd: number): void {
    const mib = this.host.mib;
    if (how === 'train') {
      mib.TcpExtTCPHystartTrainDetect++;
      mib.TcpExtTCPHystartTrainCwnd += cwnd;
    } else {
      mib.TcpExtTCPHystartDelayDetect++;
      mib.TcpExtTCPHystartDelayCwnd += cwnd;
    }
  }

  readonly rtxTimer: Timer;
  readonly delackTimer: Timer;
  /** Keepalive while open; the FIN_WAIT_2 lifetime when closing (TIME_WAIT is a record: timewait.ts). */
  readonly keepTimer: Timer;

  constructor(
    readonly host: TcpHost,
    cc: CongestionControl,
  ) {
    const s = host.settings;
    this.cc = cc;
    this.rtt = new RttEstimator(s.rtoMinUs);
    this.rtt.minRttWlenMs = s.minRttWlen * 1000;
    this.sndBufSize = s.wmem[1];
    this.rcvBufSize = s.rmem[1];
    this.rtxTimer = host.time.timer(() => this.onRtxTimer());
    this.delackTimer = host.time.timer(() => this.onDelackTimer());
    this.keepTimer = host.time.timer(() => this.onKeepTimer());
    this.rec = new LossRecovery(this);
  }

  /**
   * Every state change goes through here for tcpCurrEstab, which counts ESTABLISHED
   * and CLOSE-WAIT (RFC 4022, as Linux counts it since 6.10).
   */
  setState(next: TcpState): void {
    const prev = this.state;
    const was = prev === TcpState.ESTABLISHED || prev === TcpState.CLOSE_WAIT;
    const is = next === TcpState.ESTABLISHED || next === TcpState.CLOSE_WAIT;
    if (is && !was) this.host.mib.TcpCurrEstab++;
    else if (was && !is) this.host.mib.TcpCurrEstab--;
    this.state = next;
  }

  // =====================================================================
  // Opening
  // =====================================================================

  /** Active open (RFC 9293 §3.10.1): send SYN and wait in SYN-SENT. */
  openActive(): void {
    const now = this.host.time.now();
    this.setIss(this.host.isn(this));
    this.tsOffset = this.host.tsOffset(this);
    this.rcvWscale = this.host.settings.offeredWscale();
    this.advMss = this.host.advMss(this.remoteAddr);
    this.setState(TcpState.SYN_SENT);
    this.retransStartMs = now;
    this.host.mib.TcpActiveOpens++;
    this.host.sendSyn(this, false);
    this.armRtx(RTO_INITIAL_US / 1000);
  }

  /**
   * Passive open from a listener (RFC 9293 §3.10.7.2): the SYN's options are
   * taken, a SYN-ACK goes back and the connection waits in SYN-RECEIVED.
   */
  openPassive(seg: Segment, synAckOnly = false): void {
    const s = this.host.settings;
    const o = seg.opts;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.rcvWup = this.rcvNxt;
    this.rcvAdvEdge = seqAdd(this.rcvNxt, Math.min(MAX_WINDOW, this.rcvBufSize));
    this.rcvAdvMax = this.rcvAdvEdge;
    this.setIss(this.host.isn(this));
    this.tsOffset = this.host.tsOffset(this);
    this.takeSynOptions(seg);
    ecnPassive(this, seg.flags, seg.ecn);
    // RFC 7323 §2.2: the window field of a SYN is never scaled.
    this.sndWnd = seg.wnd;
    this.maxSndWnd = seg.wnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = this.iss;
    this.wscaleOk = s.windowScaling && o.wscale >= 0;
    this.rcvWscale = this.wscaleOk ? s.offeredWscale() : 0;
    this.setState(TcpState.SYN_RECEIVED);
    this.lastRecvMs = this.host.time.now();
    if (!synAckOnly) {
      this.host.sendSyn(this, true);
      this.armRtx(RTO_INITIAL_US / 1000);
    }
  }

  /** Fast Open: the SYN's data, taken before the handshake ends (tcp_fastopen_create_child). */
  acceptSynData(seg: Segment): void {
    this.bytesReceived += seg.dataLen;
    this.deliver(seg.buf, seg.dataOff, seg.dataLen);
    this.synDataAcked = true;
  }

  /** The SYN-ACK of a connection a listener made, and its retransmission timer. */
  sendSynAck(): void {
    this.host.sendSyn(this, true);
    this.armRtx(RTO_INITIAL_US / 1000);
  }

  /** Our initial sequence number, and the send sequence space that starts from it. */
  setIss(iss: number): void {
    this.iss = iss;
    this.sndUna = iss;
    this.sndNxt = seqAdd(iss, 1);
    this.sndMax = this.sndNxt;
  }

  /** RFC 9293 §3.7.1, RFC 7323, RFC 2018: what the peer's SYN offered. */
  takeSynOptions(seg: Segment): void {
    const s = this.host.settings;
    const o = seg.opts;
    this.peerMss = o.mss > 0 ? o.mss : DEFAULT_MSS;
    if (this.advMss === DEFAULT_MSS) this.advMss = this.host.advMss(this.remoteAddr);
    this.tsOk = s.timestamps && o.tsPresent;
    if (this.tsOk) {
      this.tsRecent = o.tsVal;
      this.tsRecentStamp = this.host.time.now();
    }
    this.sackOk = s.sack && o.sackPermitted;
    if (s.windowScaling && o.wscale >= 0) {
      // RFC 7323 §2.3: a shift above 14 is taken as 14.
      this.sndWscale = Math.min(o.wscale, 14);
    } else {
      this.sndWscale = 0;
    }
    this.updateMss();
  }

  /** The send MSS: the peer's, cut to our path MTU, less the options every segment carries. */
  updateMss(): void {
    const pathMss = this.pmtu - 40;
    let m = Math.min(this.peerMss, pathMss);
    if (this.tsOk) m -= 12; // RFC 7323 timestamps in every segment
    if (m < MIN_MSS) m = MIN_MSS;
    this.mss = m;
    const advAfterTs = this.advMss - (this.tsOk ? 12 : 0);
    if (this.rcvMss > advAfterTs || this.state <= TcpState.SYN_RECEIVED) this.rcvMss = Math.min(advAfterTs, this.mss);
  }

  private establish(): void {
    const now = this.host.time.now();
    this.setState(TcpState.ESTABLISHED);
    // Our SYN is acknowledged: it counts in bytes_acked, as in Linux (ss shows bytes_acked:1).
    this.bytesAcked = 1;
    this.retransmits = 0;
    this.backoff = 0;
    this.cwnd = INITIAL_CWND;
    this.cc.init(this, now * 1000);
    this.lastRecvMs = now;
    this.lastSendMs = now;
    this.rcvSpace = Math.min(this.rcvBufSize, 10 * this.advMss);
    this.rcvSpaceSeqOff = this.rcvOff;
    this.rcvSpaceTimeMs = now;
    // Linux tcp_init_buffer_space / tcp_sndbuf_expand: room for two windows of data.
    this.expandSndBuf();
    this.armKeepalive();
  }

  // =====================================================================
  // Input: RFC 9293 §3.10.7
  // =====================================================================

  input(seg: Segment): void {
    const now = this.host.time.now();
    this.segsIn++;
    if (seg.dataLen > 0) this.dataSegsIn++;
    switch (this.state) {
      case TcpState.SYN_SENT:
        this.inputSynSent(seg, now);
        return;
      case TcpState.CLOSED:
        return;
      default:
        this.inputSynchronized(seg, now);
    }
  }

  /** RFC 9293 §3.10.7.3 */
  private inputSynSent(seg: Segment, now: number): void {
    const f = seg.flags;
    const host = this.host;
    // First: the ACK must acknowledge our SYN.
    if (f & TCP_ACK) {
      if (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax)) {
        if (!(f & TCP_RST)) host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, seg.ack, 0, false);
        return;
      }
    }
    // Second: RST.
    if (f & TCP_RST) {
      // RFC 5961 §3.2 leaves SYN-SENT as RFC 793 had it: an acceptable ACK makes the RST valid.
      if (f & TCP_ACK) this.fail('ECONNREFUSED');
      return;
    }
    // Fourth: SYN.
    if (!(f & TCP_SYN)) return;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.rcvWup = this.rcvNxt;
    this.takeSynOptions(seg);
    ecnSynReceived(this, f);
    this.wscaleOk = this.host.settings.windowScaling && seg.opts.wscale >= 0;
    if (!this.wscaleOk) {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.lastRecvMs = now;
    if (f & TCP_ACK) {
      this.rttFromSyn(seg, now);
      this.sndUna = seg.ack;
      // RFC 7323 §2.2: the window of a SYN is not scaled.
      this.sndWnd = seg.wnd;
      this.maxSndWnd = seg.wnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.cancelRtx();
      this.establish();
      // Fast Open: what the SYN-ACK said of the cookie and the SYN's data; unacknowledged
      // data goes out again now, carrying the ACK (tcp_rcv_fastopen_synack).
      if (this.tfo === null || !host.fastOpen.synAck(this, seg)) this.sendAck();
      this.user?.onConnected();
      // Data or a FIN in the SYN-ACK: RFC 9293 §3.10.7.3, "continue processing at the sixth step".
      if (seg.dataLen > 0 || seg.flags & TCP_FIN) {
        seg.seq = seqAdd(seg.seq, 1);
        seg.flags &= ~TCP_SYN;
        this.processText(seg, now);
      }
      this.output();
    } else {
      // Simultaneous open (RFC 9293 §3.5, figure 8): SYN-RECEIVED, SYN-ACK with our ISS.
      this.sndWnd = seg.wnd;
      this.maxSndWnd = seg.wnd;
      this.sndWl1 = seg.seq;
      this.setState(TcpState.SYN_RECEIVED);
      this.host.sendSyn(this, true);
      this.armRtx(this.rtoMs());
    }
  }

  private rttFromSyn(seg: Segment, now: number): void {
    if (this.tsOk && seg.opts.tsPresent && seg.opts.tsEcr !== 0) {
      const r = this.tsNow(now) - seg.opts.tsEcr;
      if (r >= 0 && r < 0x7fffffff) this.rtt.sample(r * 1000 || 1, now);
    } else if (this.retransmits === 0) {
      this.rtt.sample((now - this.retransStartMs) * 1000, now);
    }
  }

  /** RFC 9293 §3.10.7.4: every state from SYN-RECEIVED on. */
  private inputSynchronized(seg: Segment, now: number): void {
    let f = seg.flags;
    const host = this.host;
    const mib = host.mib;
    const o = seg.opts;

    // Linux tcp_rcv_established / tcp_rcv_state_process: a segment with none of ACK,
    // RST and SYN is dropped before any check, so it draws no ACK even out of the window.
    // (SYN-RECEIVED from a listener is Linux's request socket, which does acknowledge it.)
    if (!(f & (TCP_ACK | TCP_RST | TCP_SYN)) && this.state !== TcpState.SYN_RECEIVED) return;

    // RFC 7323 §5.3: PAWS, before the sequence check; like Linux (tcp_paws_check,
    // TCP_PAWS_WINDOW) a TSval one tick behind TS.Recent still passes.
    if (this.tsOk && o.tsPresent && !(f & TCP_RST) && seqLt(o.tsVal, (this.tsRecent - 1) >>> 0) && now - this.tsRecentStamp < PAWS_24DAYS_MS) {
      // Linux tcp_validate_incoming: a SYN is challenged whatever its timestamp (RFC 5961 §4.2).
      if (f & TCP_SYN) {
        this.synChallenge(now);
        return;
      }
      mib.TcpExtPAWSEstab++;
      this.oowAck(seg, now);
      return;
    }

    // Simultaneous open (RFC 9293 §3.5 figure 8): the peer's SYN-ACK acknowledges our SYN;
    // its SYN is one we already have. Linux tcp_validate_incoming lets it through to the ACK
    // step, then acknowledges the old sequence number.
    if (
      this.state === TcpState.SYN_RECEIVED &&
      this.listener === null &&
      (f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === (TCP_SYN | TCP_ACK) &&
      seg.dataLen === 0 &&
      seqAdd(seg.seq, 1) === this.rcvNxt &&
      seg.ack === this.sndNxt
    ) {
      f &= ~TCP_SYN;
      seg.flags = f;
      seg.seq = this.rcvNxt;
      this.queueAck(true);
    }

    // First: is the segment acceptable? (Linux tcp_sequence: it must end at or after
    // what we last acknowledged and start no later than the window's right edge.)
    const segLen = seg.len;
    const wnd = this.rcvWndNow();
    const endSeq = seqAdd(seg.seq, segLen);
    if (this.state === TcpState.SYN_RECEIVED && seqLt(seg.seq, this.rcvNxt) && f & TCP_SYN && !(f & TCP_RST) && seg.seq === this.irs) {
      // The peer's SYN again: our SYN-ACK was lost (Linux tcp_check_req resends it).
      host.sendSyn(this, true);
      return;
    }
    if (seqLt(endSeq, this.rcvWup) || seqGt(seg.seq, seqAdd(this.rcvNxt, wnd))) {
      // RFC 5961 §4.2 (and Linux): a SYN is challenged wherever its sequence number lies.
      if (f & TCP_SYN && !(f & TCP_RST)) {
        this.synChallenge(now);
        return;
      }
      if (!(f & TCP_RST)) {
        // A duplicate of data we have: report it as a D-SACK (RFC 2883 §4); our ACK was
        // lost, so the next ones go at once (tcp_send_dupack, tcp_enter_quickack_mode).
        if (seg.dataLen > 0 && seqLt(seg.seq, this.rcvNxt)) {
          this.noteDsack(seg.seq, endSeq);
          this.quickAckMode(this.quickAckQuota(MAX_QUICKACKS));
        }
        this.oowAck(seg, now);
      }
      return;
    }

    // Second: RST (RFC 5961 §3.2).
    if (f & TCP_RST) {
      if (seg.seq === this.rcvNxt) this.resetReceived();
      else {
        this.challengeAck(now);
      }
      return;
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK.
    if (f & TCP_SYN) {
      if (this.state === TcpState.SYN_RECEIVED && this.listener !== null) {
        // RFC 9293 §3.10.7.4: a passive open goes back to LISTEN.
        this.drop();
        return;
      }
      this.synChallenge(now);
      return;
    }

    // Fifth: ACK.
    if (!(f & TCP_ACK)) return;
    this.lastRecvMs = now;
    if (this.state === TcpState.SYN_RECEIVED) {
      if (seqGt(seg.ack, this.sndUna) && seqLe(seg.ack, this.sndMax)) {
        if (this.listener !== null && this.listener.overflow(this, seg)) return;
        this.rttFromSyn(seg, now);
        this.sndWnd = seg.wnd << this.sndWscale;
        this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
        this.sndWl1 = seg.seq;
        this.sndWl2 = seg.ack;
        // Only our SYN: data a Fast Open connection sent meanwhile is the ACK step's to take.
        this.sndUna = seqAdd(this.iss, 1);
        this.cancelRtx();
        this.establish();
        if (this.listener !== null) {
          const l = this.listener;
          this.listener = null;
          l.established(this);
        } else this.user?.onConnected();
      } else {
        host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, seg.ack, 0, false);
        return;
      }
    }
    if (!this.processAck(seg, now)) return;

    // RFC 1122 §4.2.2.13: new data after close(2) is lost; say so with a RST (Linux
    // tcp_rcv_state_process in FIN_WAIT_1/2 after RCV_SHUTDOWN: TcpExtTCPAbortOnData).
    if (this.orphan && (this.state === TcpState.FIN_WAIT_1 || this.state === TcpState.FIN_WAIT_2) && seg.dataLen > 0 && seqGt(seqAdd(seg.seq, seg.dataLen), this.rcvNxt)) {
      mib.TcpExtTCPAbortOnData++;
      host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, seg.ack, 0, false);
      this.finish(null);
      return;
    }

    // Sixth and seventh: urgent pointer and data; eighth: FIN.
    this.processText(seg, now);
    this.output();
  }

  /** RFC 9293 §3.10.7.4, fifth step, for synchronized states; false drops the segment. */
  private processAck(seg: Segment, now: number): boolean {
    const ack = seg.ack;
    // RFC 5961 §5.2: acceptable ACKs lie in [snd_una - max_snd_wnd, snd_nxt].
    if (seqGt(ack, this.sndMax)) {
      // RFC 9293 §3.10.7.4: send an ACK and drop; Linux's tcp_ack sends it as a challenge ACK.
      this.challengeAck(now);
      return false;
    }
    // Linux tcp_ack bounds the old side by what was ever acknowledged too:
    // min(MAX.SND.WND, bytes_acked), so no ACK for bytes never sent passes.
    if (seqLt(ack, seqAdd(this.sndUna, -Math.min(this.maxSndWnd, this.bytesAcked)))) {
      this.challengeAck(now);
      return false;
    }
    // RFC 7323 §4.3: keep the timestamp of a segment at the left edge, but only once its
    // ACK is acceptable and not old (Linux tcp_ack, FLAG_UPDATE_TS_RECENT): a segment with
    // a bogus ACK must not move TS.Recent, or one blind segment could make PAWS drop all
    // of the peer's real ones.
    const o = seg.opts;
    // RFC 7323 §4.3 step 1: only a TSval not older than TS.Recent replaces it (one that
    // passed PAWS by Linux's one-tick tolerance does not; Linux tcp_replace_ts_recent).
    if (this.tsOk && o.tsPresent && seqLe(seg.seq, this.rcvWup) && !seqLt(ack, this.sndUna) && seqGe(o.tsVal, this.tsRecent)) {
      this.tsRecent = o.tsVal;
      this.tsRecentStamp = now;
    }
    this.lastAckRecvMs = now;
    const f = seg.flags;
    if (f & TCP_CWR) ecnAcceptCwr(this, seg.len);
    const wndRaw = seg.wnd << this.sndWscale;
    const prevUna = this.sndUna;
    this.lastRttUs = -1;
    if (seqGt(ack, this.sndUna)) this.ackAdvance(seg, ack, now);
    if (seqGe(ack, prevUna)) {
      // RFC 5681 §2: a duplicate ACK carries no data, no SYN/FIN, the same window, with data outstanding.
      const dup = ack === prevUna && this.sndMax !== prevUna && seg.dataLen === 0 && !(f & (TCP_SYN | TCP_FIN)) && wndRaw === this.sndWnd;
      const flags = (seg.dataLen > 0 ? F_DATA : 0) | (wndRaw !== this.sndWnd ? F_WIN_UPDATE : 0);
      this.rec.onAck(o.sack, this.sackOk ? o.sackCount : 0, prevUna, ack, dup, flags, f, o.tsPresent ? o.tsEcr : 0, now);
      if (this.pacer.enabled) this.updatePacingRate();
      this.rate.sample(this.rec.delivered, now, this.rtt.srttUs / 1000, this.mss);
      if (this.sendBuf.length === 0) this.chrono.stop(CHRONO_BUSY, now, true);
    }
    // RFC 9293 §3.10.7.4: the send window is updated from the newest segment.
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const opened = this.sndWnd === 0 && wndRaw > 0;
      this.sndWnd = wndRaw;
      if (wndRaw > this.maxSndWnd) this.maxSndWnd = wndRaw;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (opened && this.probing) {
        // Linux tcp_ack_probe: the backoff timed the probes, not the path.
        this.probing = false;
        this.probesOut = 0;
        this.backoff = 0;
        this.host.time.cancel(this.rtxTimer);
        if (this.sndMax !== this.sndUna) this.armRtx(this.rtoMs());
      }
    }
    this.probesOut = 0;
    if (this.roomFreed) {
      this.roomFreed = false;
      this.owner?.onRoom();
      if (this.state === TcpState.CLOSED) return false;
    }
    // State changes that hang on our FIN being acknowledged.
    if (this.finSent && seqGt(ack, this.finSeq)) {
      switch (this.state) {
        case TcpState.FIN_WAIT_1:
          this.setState(TcpState.FIN_WAIT_2);
          // tcp_rcv_state_process: an orphan's wait for the peer's FIN goes on as a FIN_WAIT_2
          // record, unless this segment brings new data (answered with a RST below) or the
          // FIN itself (taken below, into TIME_WAIT).
          if (this.orphan && !(seg.dataLen > 0 && seqGt(seqAdd(seg.seq, seg.dataLen), this.rcvNxt))) {
            if (this.orphanFinWait2((seg.flags & TCP_FIN) !== 0)) return false;
          }
          break;
        case TcpState.CLOSING:
          this.enterTimeWait();
          return false;
        case TcpState.LAST_ACK:
          this.finish(null);
          return false;
        default:
          break;
      }
    }
    return true;
  }

  private ackAdvance(seg: Segment, ack: number, now: number): void {
    let acked = seqDiff(ack, this.sndUna);
    this.bytesAcked += acked;
    // FIN takes one sequence number but no byte of the buffer.
    let dataAcked = acked;
    if (this.finSent && seqGt(ack, this.finSeq)) dataAcked--;
    // A SYN in the acknowledged range (SYN-RECEIVED) is not in the buffer either.
    if (seqLe(this.sndUna, this.iss) && seqGt(ack, this.iss)) dataAcked--;
    if (dataAcked > this.sendBuf.length) dataAcked = this.sendBuf.length;
    this.sendBuf.consume(dataAcked);
    const prevUna = this.sndUna;
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;

    // RTT: RFC 7323 §4.1 from the echoed timestamp, else Karn's timed segment (RFC 6298 §3).
    let rttUs = -1;
    const o = seg.opts;
    if (this.tsOk && o.tsPresent && o.tsEcr !== 0) {
      const r = this.tsNow(now) - o.tsEcr;
      if (r >= 0 && r < 0x7fffffff) rttUs = r === 0 ? Math.max(1, (now - this.lastSendMs) * 1000) : r * 1000;
    } else if (this.rttTimeMs >= 0 && seqGt(ack, this.rttSeq)) {
      rttUs = (now - this.rttTimeMs) * 1000;
      this.rttTimeMs = -1;
    }
    // RFC 6298 §5 (Karn): the backed-off RTO stays until a valid RTT sample collapses it
    // (Linux tcp_ack_update_rtt resets icsk_backoff only then).
    if (rttUs > 0 && (this.retransmits === 0 || this.tsOk)) {
      this.rtt.sample(rttUs, now);
      this.backoff = 0;
    }
    this.retransmits = 0;
    this.lastRttUs = rttUs;

    if (this.sndUna === this.sndMax) this.retransStartMs = 0;
    if (dataAcked > 0 && prevUna !== ack) {
      this.expandSndBuf();
      // The user hears of the room once this ACK's window is in (processAck), so what it
      // writes then goes out against the window this ACK offers, not the one before.
      this.roomFreed = true;
    }
  }

  /**
   * The payload a segment may carry now: the MSS less the SACK blocks that will
   * ride on it (Linux tcp_current_mss), so header and options stay within the path MTU.
   */
  sendMss(): number {
    if (!this.sackOk || (this.ooo.length === 0 && !this.dsackPending)) return this.mss;
    const q = this.ooo;
    let blocks = this.dsackPending ? 1 : 0;
    for (let i = 0; i < q.length; i++) if (i === 0 || q[i - 1].off + q[i - 1].data.length !== q[i].off) blocks++;
    const n = Math.min(blocks, this.tsOk ? 3 : 4);
    return this.mss - (n > 0 ? 4 + 8 * n : 0);
  }

  noteRetrans(len: number): void {
    this.totalRetrans++;
    this.bytesRetrans += len;
    this.host.mib.TcpRetransSegs++;
  }

  /** Steps six to eight: urgent data, the text, the FIN. */
  private processText(seg: Segment, now: number): void {
    const f = seg.flags;
    const st = this.state;
    // Sixth: the urgent pointer (RFC 9293 §3.8.5; RFC 6093: Linux's default drops the urgent byte from the stream).
    if (f & TCP_URG && seg.urg > 0 && (st === TcpState.ESTABLISHED || st === TcpState.FIN_WAIT_1 || st === TcpState.FIN_WAIT_2)) {
      const ptr = seqAdd(seg.seq, seg.urg - (this.host.settings.stdurg ? 0 : 1));
      if (seqGe(ptr, this.rcvNxt) && (!this.urgPending || seqGt(ptr, this.urgSeq))) {
        this.urgSeq = ptr;
        this.urgPending = true;
      }
    }
    const canReceive = st === TcpState.ESTABLISHED || st === TcpState.FIN_WAIT_1 || st === TcpState.FIN_WAIT_2;
    if (seg.dataLen > 0) {
      if (canReceive) this.receiveData(seg, now);
      // Data after our peer's FIN, or after a close: nothing to give it to.
      else if (st === TcpState.CLOSE_WAIT || st === TcpState.CLOSING || st === TcpState.LAST_ACK) {
        this.queueAck(true);
      }
    }
    if (f & TCP_FIN) {
      const finSeq = seqAdd(seg.seq, seg.dataLen);
      if (finSeq === this.rcvNxt) this.finReceived();
      else if (seqGt(finSeq, this.rcvNxt) && canReceive) {
        this.oooFinOff = this.rcvOff + seqDiff(finSeq, this.rcvNxt);
        this.queueAck(true);
      }
    }
  }

  private receiveData(seg: Segment, now: number): void {
    let seq = seg.seq;
    let off = seg.dataOff;
    let len = seg.dataLen;
    const buf = seg.buf;
    // tcp_measure_rcv_mss: a GRO super-packet counts by its segment size, not its length.
    const segLen = seg.gsoSize > 0 ? seg.gsoSize : len;
    if (segLen > this.rcvMss) this.rcvMss = Math.min(segLen, this.advMss);
    this.lastDataRcvMs = now; // tcp_event_data_recv
    // Trim what we already have.
    const before = seqDiff(this.rcvNxt, seq);
    if (before > 0) {
      if (before >= len) {
        this.noteDsack(seq, seqAdd(seq, len));
        // tcp_data_queue: a retransmission of what we have means our ACKs are lost or late.
        this.quickAckMode(this.quickAckQuota(MAX_QUICKACKS));
        this.queueAck(true);
        return;
      }
      this.noteDsack(seq, this.rcvNxt);
      seq = this.rcvNxt;
      off += before;
      len -= before;
    }
    // Trim what lies beyond the space we have (RFC 9293 §3.10.7.4 keeps only what fits the
    // window): from rcv_nxt, the buffer less what the user has not read yet. Queued
    // out-of-order bytes lie inside that span already, so they are not subtracted again.
    // Whatever lies within a window we offered is taken even past the buffer (by less than
    // one window-scale unit): the peer was allowed to send it.
    const room = Math.max(this.rcvBufSize - (this.owner?.rcvQueued() ?? 0) - this.earlyBytes - seqDiff(seq, this.rcvNxt), seqDiff(this.rcvAdvMax, seq));
    if (room <= 0) {
      this.host.mib.TcpExtTCPRcvQDrop++;
      this.queueAck(true);
      return;
    }
    if (len > room) len = room;
    if (this.ecnFlags !== 0) ecnCheckCe(this, seg.ecn);
    if (this.tsOk && seg.opts.tsPresent && seg.opts.tsEcr !== 0) this.rcvRtt.measureTs(seg.opts.tsEcr, len, this.rcvMss, this.tsNow(now) - seg.opts.tsEcr);
    this.bytesReceived += len;
    if (seq === this.rcvNxt) {
      // A quick ACK held for earlier data (Tcp.holdAck) goes first: in quick-ACK mode each
      // segment draws its own.
      if (this.ackHeld && this.ackNow && this.ackPending) this.sendAck();
      // tcp_event_data_recv: in-order data after a silence longer than the RTO (the sender
      // timed out, or restarts after idle) is acknowledged segment by segment for a while.
      if (this.lrcvMs >= 0 && now - this.lrcvMs > this.rtt.rtoUs / 1000) {
        const n = this.quickAckQuota(MAX_QUICKACKS);
        if (n > this.quickAcks) this.quickAcks = n;
      }
      this.lrcvMs = now;
      this.deliver(buf, off, len);
      // RFC 5681 §4.2: data that fills a hole, or part of it, is acknowledged at once
      // (tcp_data_queue's ICSK_ACK_NOW, __tcp_ack_snd_check with out-of-order data).
      const hole = this.ooo.length > 0;
      if (hole) this.drainOoo();
      // __tcp_ack_snd_check: at once when more than one full segment is unacknowledged
      // (rcv_nxt - rcv_wup > rcv_mss), so every second segment, or every GRO super-packet.
      // tcp_in_quickack_mode: not while replies answer the peer's data (pingpong), whose
      // ACK then rides on the reply or leaves with the delayed-ACK timer.
      const immediate = hole || this.unackedBytes > this.rcvMss;
      if (this.quickAcks > 0) {
        this.quickAcks--;
        // Linux sends the quick ACK from softirq, before the application runs; here the
        // application runs first, and a reply it writes at once carries the ACK.
        this.queueAck(this.pingpong === 0 || immediate, !immediate && this.owner !== null);
      } else this.queueAck(immediate);
      this.rcvSpaceAdjust(now);
    } else {
      // tcp_data_queue_ofo: a super-packet counts its segments.
      this.rcvOoopack += seg.gsoSize > 0 ? Math.ceil(len / seg.gsoSize) : 1;
      this.host.mib.TcpExtTCPOFOQueue++;
      this.oooInsert(this.rcvOff + seqDiff(seq, this.rcvNxt), buf, off, len);
      // RFC 5681 §4.2: an out-of-order segment is acknowledged at once (with SACK blocks).
      this.queueAck(true);
    }
  }

  /** Hands in-order bytes to the user, leaving out an urgent byte (RFC 6093 §2, Linux without SO_OOBINLINE). */
  private deliver(buf: Uint8Array, off: number, len: number, owned = false): void {
    const start = this.rcvNxt;
    this.rcvNxt = seqAdd(start, len);
    this.rcvOff += len;
    this.unackedBytes += len;
    if (this.urgPending && seqGe(this.urgSeq, start) && seqLt(this.urgSeq, this.rcvNxt)) {
      this.urgPending = false;
      const k = seqDiff(this.urgSeq, start);
      if (k > 0) this.hand(buf, off, k, owned);
      if (k + 1 < len) this.hand(buf, off + k + 1, len - k - 1, owned);
      return;
    }
    this.hand(buf, off, len, owned);
  }

  /** To the user, or kept until one takes the connection (copied unless it is ours already). */
  private hand(buf: Uint8Array, off: number, len: number, owned: boolean): void {
    const u = this.owner;
    if (u !== null && this.early === null) {
      u.onData(buf.subarray(off, off + len), owned);
      return;
    }
    let copy: Uint8Array;
    if (owned) copy = buf.subarray(off, off + len);
    else {
      copy = new Uint8Array(len);
      copy.set(buf.subarray(off, off + len));
    }
    (this.early ??= []).push(copy);
    this.earlyBytes += len;
  }

  /** What arrived before the user came, now handed over, then the FIN if there was one. */
  private deliverEarly(): void {
    const chunks = this.early;
    this.early = null;
    this.earlyBytes = 0;
    if (chunks !== null) for (const d of chunks) this.owner?.onData(d, true);
    if (this.eofPending && this.owner !== null) {
      this.eofPending = false;
      this.owner.onEof();
    }
  }

  private oooInsert(segOff: number, buf: Uint8Array, off: number, len: number): void {
    const q = this.ooo;
    const end = segOff + len;
    // Find the place; keep only bytes no queued segment has (they never overlap in the queue).
    let i = 0;
    while (i < q.length && q[i].off + q[i].data.length <= segOff) i++;
    let s = segOff;
    let dupStart = -1;
    let dupEnd = -1;
    while (s < end) {
      if (i < q.length && q[i].off <= s) {
        const qe = q[i].off + q[i].data.length;
        const de = Math.min(qe, end);
        if (dupStart < 0) dupStart = s;
        dupEnd = de;
        s = de;
        i++;
        continue;
      }
      // New bytes up to the next queued piece: a copy goes in at its place, keeping the order.
      const next = i < q.length ? Math.min(q[i].off, end) : end;
      const piece = new Uint8Array(next - s);
      piece.set(buf.subarray(off + (s - segOff), off + (next - segOff)));
      q.splice(i, 0, { off: s, data: piece });
      i++;
      this.oooBytes += piece.length;
      s = next;
    }
    if (dupStart >= 0) this.noteDsackOff(dupStart, dupEnd);
    // RFC 2018 §4: the block holding the latest segment goes first, the others keep their
    // order of last change; RFC 2883 §4: after a D-SACK, the block that holds the duplicate.
    // Linux tcp_sack_new_ofo_skb: a block the segment extends or joins moves to the front
    // (tcp_sack_extend, tcp_sack_maybe_coalesce), a new one goes in front, the fifth is forgotten.
    const bs = this.oooBlockAt(segOff);
    const be = this.oooBlockEnd;
    const r = this.sackRecent;
    let k = 0;
    for (let j = 0; j < this.sackRecentN; j++) if (r[j] < bs || r[j] >= be) r[k++] = r[j];
    if (k === r.length) k--;
    for (let j = k; j > 0; j--) r[j] = r[j - 1];
    r[0] = segOff;
    this.sackRecentN = k + 1;
  }

  /** End of the block found by oooBlockAt. */
  private oooBlockEnd = 0;

  /** The start of the run of contiguous queued pieces holding `off` (its end in oooBlockEnd), or -1. */
  private oooBlockAt(off: number): number {
    const q = this.ooo;
    for (let i = 0; i < q.length; ) {
      const s = q[i].off;
      let e = s + q[i].data.length;
      i++;
      while (i < q.length && q[i].off === e) e += q[i++].data.length;
      if (off < s) return -1;
      if (off < e) {
        this.oooBlockEnd = e;
        return s;
      }
    }
    return -1;
  }

  private drainOoo(): void {
    const q = this.ooo;
    let n = 0;
    while (n < q.length && q[n].off <= this.rcvOff) {
      const e = q[n];
      const skip = this.rcvOff - e.off;
      this.oooBytes -= e.data.length;
      // The queue's pieces are copies of their own: handed over without another.
      if (skip < e.data.length) this.deliver(e.data, skip, e.data.length - skip, true);
      n++;
    }
    if (n > 0) q.splice(0, n);
    if (this.oooFinOff >= 0 && this.oooFinOff === this.rcvOff) {
      this.oooFinOff = -1;
      this.finReceived();
    }
    // tcp_sack_remove: blocks now below rcv_nxt are gone.
    const r = this.sackRecent;
    let k = 0;
    for (let j = 0; j < this.sackRecentN; j++) if (r[j] >= this.rcvOff) r[k++] = r[j];
    this.sackRecentN = q.length === 0 ? 0 : k;
  }

  private eof(): void {
    if (this.owner !== null && this.early === null) this.owner.onEof();
    else this.eofPending = true;
  }

  private finReceived(): void {
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    this.queueAck(true);
    switch (this.state) {
      case TcpState.SYN_RECEIVED:
      case TcpState.ESTABLISHED:
        this.setState(TcpState.CLOSE_WAIT);
        this.eof();
        break;
      case TcpState.FIN_WAIT_1:
        if (this.finSent && seqGt(this.sndUna, this.finSeq)) this.enterTimeWait();
        else this.setState(TcpState.CLOSING);
        this.eof();
        break;
      case TcpState.FIN_WAIT_2:
        this.eof();
        this.enterTimeWait();
        break;
      default:
        break;
    }
  }

  private noteDsack(start: number, end: number): void {
    if (!this.sackOk || !this.host.settings.dsack) return;
    this.dsackStart = start;
    this.dsackEnd = end;
    this.dsackPending = true;
    this.host.mib.TcpExtTCPDSACKOldSent++;
  }

  private noteDsackOff(startOff: number, endOff: number): void {
    if (!this.sackOk || !this.host.settings.dsack) return;
    this.dsackStart = seqAdd(this.rcvNxt, startOff - this.rcvOff);
    this.dsackEnd = seqAdd(this.rcvNxt, endOff - this.rcvOff);
    this.dsackPending = true;
    this.host.mib.TcpExtTCPDSACKOfoSent++;
  }

  /**
   * SACK blocks for the next ACK (RFC 2018 §4): a D-SACK first, then the block
   * holding the latest arrival, then the others, most recently changed first; at most
   * `max`. Returns the count.
   */
  sackBlocks(out: Uint32Array, max: number): number {
    let n = 0;
    if (this.dsackPending) {
      out[0] = this.dsackStart;
      out[1] = this.dsackEnd;
      n = 1;
      this.dsackPending = false;
    }
    const q = this.ooo;
    if (q.length === 0) return n;
    // Queued pieces merge into blocks: those changed most recently first, as Linux keeps
    // them, then any others in order (more than 4 holes). Nothing allocated.
    const rcvNxt = this.rcvNxt;
    const base = this.rcvOff;
    const first = n;
    for (let j = 0; j < this.sackRecentN && n < max; j++) {
      const s = this.oooBlockAt(this.sackRecent[j]);
      if (s < 0 || this.sackListed(out, first, n, seqAdd(rcvNxt, s - base))) continue;
      out[2 * n] = seqAdd(rcvNxt, s - base);
      out[2 * n + 1] = seqAdd(rcvNxt, this.oooBlockEnd - base);
      n++;
    }
    for (let i = 0; i < q.length && n < max; ) {
      const s = q[i].off;
      let e = s + q[i].data.length;
      i++;
      while (i < q.length && q[i].off === e) e += q[i++].data.length;
      if (this.sackListed(out, first, n, seqAdd(rcvNxt, s - base))) continue;
      out[2 * n] = seqAdd(rcvNxt, s - base);
      out[2 * n + 1] = seqAdd(rcvNxt, e - base);
      n++;
    }
    return n;
  }

  /** Whether blocks [from, n) of `out` include one starting at `start`. */
  private sackListed(out: Uint32Array, from: number, n: number, start: number): boolean {
    for (let j = from; j < n; j++) if (out[2 * j] === start) return true;
    return false;
  }

  // =====================================================================
  // Receive window
  // =====================================================================

  /** Free receive space in bytes. */
  rcvFree(): number {
    const used = (this.owner?.rcvQueued() ?? 0) + this.earlyBytes + this.oooBytes;
    return Math.max(0, this.rcvBufSize - used);
  }

  /** The window still open on the last advertisement, from rcv_nxt. */
  rcvWndNow(): number {
    const w = seqDiff(this.rcvAdvEdge, this.rcvNxt);
    return w > 0 ? w : 0;
  }

  /**
   * The window to advertise (RFC 9293 §3.8.6.2.2, receiver-side SWS avoidance):
   * the right edge moves only by a whole MSS or half the buffer, and never back.
   * Returns the field value (scaled down) and records the new edge.
   */
  selectWindow(): number {
    const free = this.rcvFree();
    const cur = this.rcvWndNow();
    let wnd = free;
    const step = Math.min(this.rcvBufSize >>> 1, this.rcvMss);
    if (wnd < cur + step && wnd > cur) wnd = cur;
    if (wnd < cur) wnd = cur; // never shrink (RFC 9293 §3.8.6.2.2)
    const scale = this.rcvWscale;
    const max = MAX_WINDOW << scale;
    if (wnd > max) wnd = max;
    let field = wnd >>> scale;
    // Keeping the current edge when its distance is no whole unit of the scale: rounding
    // up would move the edge a little further on every ACK while the buffer stays full
    // (RFC 7323 Appendix F), so it rounds down unless the buffer has the room, and the edge
    // recedes by less than one unit. What was offered before is still taken (receiveData).
    if (field << scale < cur) {
      const up = Math.min(MAX_WINDOW, (cur + (1 << scale) - 1) >>> scale);
      if (up << scale <= free) field = up;
    }
    this.rcvWup = this.rcvNxt;
    this.rcvAdvEdge = seqAdd(this.rcvNxt, field << scale);
    if (seqGt(this.rcvAdvEdge, this.rcvAdvMax)) this.rcvAdvMax = this.rcvAdvEdge;
    return field;
  }

  /**
   * The application consumed data: if the window would open by enough, tell the
   * peer (Linux tcp_cleanup_rbuf: when the new window is at least twice the old one).
   */
  consumed(): void {
    if (!synchronized(this.state) || this.state >= TcpState.CLOSE_WAIT) return;
    // tcp_cleanup_rbuf looks at the window only when the read took bytes: a read that
    // found nothing (a new socket's first) leaves the window as the handshake set it.
    const read = this.rcvOff - this.earlyBytes - (this.owner?.rcvQueued() ?? 0);
    if (read !== this.rcvReadOff) {
      this.rcvReadOff = read;
      const cur = this.rcvWndNow();
      const free = this.rcvFree();
      if (free >= 2 * cur && free - cur >= this.rcvMss) {
        // A quick ACK held for a reply (Tcp.holdAck) carries the new window too.
        this.queueAck(true, this.ackHold && this.ackNow);
        this.host.defer(this);
      }
    }
    this.rcvSpaceAdjust(this.host.time.now());
  }

  /** Receive-buffer autotuning (Linux tcp_rcv_space_adjust): grow with what the application reads per RTT. */
  private rcvSpaceAdjust(now: number): void {
    if (!this.host.settings.moderateRcvbuf) return;
    // Once per round trip, measured as Linux's receiver measures it from timestamps:
    // no finer than its 1 ms clock.
    const rtt = Math.max(this.rtt.srttUs / 1000, 1);
    if (this.rtt.srttUs === 0 || now - this.rcvSpaceTimeMs < rtt) return;
    const copied = this.rcvOff - this.rcvSpaceSeqOff - (this.user?.rcvQueued() ?? 0);
    const space = Math.max(this.rcvSpace, 1);
    if (copied > space) {
      // Linux tcp_rcv_space_adjust: room for twice what the application read in the last
      // round trip plus 16 segments, more again as fast as that amount grows.
      let rcvwin = 2 * copied + 16 * this.advMss;
      rcvwin += 2 * Math.floor((rcvwin * (copied - space)) / space);
      const want = Math.min(this.host.settings.rmem[2], rcvwin);
      if (want > this.rcvBufSize) this.rcvBufSize = want;
      this.rcvSpace = copied;
    }
    this.rcvSpaceSeqOff = this.rcvOff - (this.user?.rcvQueued() ?? 0);
    this.rcvSpaceTimeMs = now;
  }

  /** Linux tcp_sndbuf_expand: room for twice the congestion window. */
  private expandSndBuf(): void {
    const want = Math.min(this.host.settings.wmem[2], 2 * Math.max(this.cwnd, INITIAL_CWND) * (this.mss + 60) * 2);
    if (want > this.sndBufSize) this.sndBufSize = want;
  }

  // =====================================================================
  // ACKs
  // =====================================================================

  /** An ACK is owed: at once (at the end of the current batch) or after the delayed-ACK timeout. */
  queueAck(now: boolean, hold = false): void {
    this.ackPending = true;
    if (now) {
      // Held only while every reason for it allows (see ackHold).
      this.ackHold = hold && (!this.ackNow || this.ackHold);
      this.ackNow = true;
      this.host.defer(this);
    } else if (this.delackDue < 0) {
      const t = this.host.time;
      this.delackDue = t.now() + DELACK_MS;
      if (!this.delackTimer.armed) t.arm(this.delackTimer, DELACK_MS);
    }
  }

  /** Linux tcp_incr_quickack's count: half the window in segments (at least 2), at most `max`. */
  private quickAckQuota(max: number): number {
    const n = Math.floor(this.rcvWndNow() / (2 * this.rcvMss)) || 2;
    return Math.min(n, max);
  }

  /** Linux tcp_enter_quickack_mode: the next `n` ACKs go out at once. */
  quickAckMode(n: number): void {
    if (this.quickAcks < n) this.quickAcks = n;
    this.pingpong = 0; // inet_csk_exit_pingpong_mode
  }

  /** Sends a bare ACK now. */
  sendAck(): void {
    this.host.sendData(this, this.sndNxt, 0, 0, false, false);
  }

  /** An ACK went out (bare or on data): nothing is owed any more. */
  ackSent(): void {
    this.ackPending = false;
    this.ackNow = false;
    this.ackHold = false;
    this.unackedBytes = 0;
    this.delackDue = -1;
  }

  /**
   * RFC 5961 §7 and Linux tcp_invalid_ratelimit: at most one such ACK per interval, for
   * segments that could be part of an ACK loop. Data or a FIN without SYN is always
   * answered (Linux tcp_oow_rate_limited): a duplicate must be reported (RFC 2883).
   */
  private oowAck(seg: Segment, now: number): void {
    if (seg.len > 0 && !(seg.flags & TCP_SYN)) {
      this.queueAck(true);
      return;
    }
    if (now - this.lastOowAckMs < this.host.settings.invalidRatelimit) {
      this.host.mib.TcpExtTCPACKSkippedSeq++;
      return;
    }
    this.lastOowAckMs = now;
    this.queueAck(true);
  }

  /** RFC 5961 §4.2: a SYN in a synchronized state; counted as Linux's tcp_validate_incoming does. */
  private synChallenge(now: number): void {
    const mib = this.host.mib;
    if (this.state === TcpState.ESTABLISHED) mib.TcpInErrs++;
    mib.TcpExtTCPSYNChallenge++;
    this.challengeAck(now);
  }

  private challengeAck(now: number): void {
    if (now - this.lastOowAckMs < this.host.settings.invalidRatelimit) {
      this.host.mib.TcpExtTCPACKSkippedChallenge++;
      return;
    }
    this.lastOowAckMs = now;
    this.host.mib.TcpExtTCPChallengeACK++;
    this.sendAck();
  }

  /** Called by the protocol at the end of a receive batch (or right away outside one). */
  flushDeferred(): void {
    this.deferred = false;
    // Written to outside a batch and held for the end of the tick (Tcp.output): the
    // uncork serves it, a microtask away, with what else the application does meanwhile
    // (an end() right after a reply puts the FIN on its last segment).
    if (this.corked) return;
    if (this.owner !== null && (this.early !== null || this.eofPending)) this.deliverEarly();
    if (this.state === TcpState.CLOSED) return;
    this.output();
    if (this.ackNow && this.ackPending) {
      if (this.ackHold) this.host.holdAck(this);
      else this.sendAck();
    }
  }

  /** A held ACK's time is up (Tcp.holdAck): it goes unless a reply carried it. */
  sendHeldAck(): void {
    this.ackHeld = false;
    if (this.ackNow && this.ackPending && synchronized(this.state)) this.sendAck();
  }

  // =====================================================================
  // Output
  // =====================================================================

  /** Data queued by the application. */
  write(data: Uint8Array): void {
    const now = this.host.time.now();
    if (this.sendBuf.length === 0) this.chrono.start(CHRONO_BUSY, now);
    else if (this.chrono.type === CHRONO_SNDBUF_LIMITED) this.chrono.stop(CHRONO_SNDBUF_LIMITED, now, false);
    this.sendBuf.push(data);
  }

  /** True while the send buffer has room (below SO_SNDBUF). */
  get sendRoom(): number {
    return this.sndBufSize - this.sendBuf.length;
  }

  /** Sends what the windows and Nagle allow (RFC 9293 §3.8.6.2.1, RFC 896, RFC 5681). */
  output(): void {
    const st = this.state;
    // A Fast Open connection may send before the handshake ends (RFC 7413 §4.2.2), its FIN after.
    const tfoEarly = st === TcpState.SYN_RECEIVED && this.tfoChild;
    if (st !== TcpState.ESTABLISHED && st !== TcpState.CLOSE_WAIT && st !== TcpState.FIN_WAIT_1 && st !== TcpState.CLOSING && st !== TcpState.LAST_ACK && !tfoEarly) return;
    const finQueued = this.finQueued && !tfoEarly;
    const host = this.host;
    const now = host.time.now();
    const rec = this.rec;
    {
      // Nothing new, no FIN and nothing lost to resend (most calls: after each ACK, after
      // each request's data): only the statistics a transmit attempt keeps, no route lookup.
      const outstanding = seqDiff(this.sndNxt, this.sndUna) - (tfoEarly ? 1 : 0);
      const unsent = this.sendBuf.length - Math.min(outstanding, this.sendBuf.length);
      if (unsent === 0 && !(finQueued && (!this.finSent || seqLe(this.sndNxt, this.finSeq))) && !rec.frtoNewData && rec.q.lostOut <= rec.q.retransOut) {
        if (this.cwv.limitedNow) this.cwv.validate(this, now, this.rtoMs(), host.settings.slowStartAfterIdle, rec.ca === CA_OPEN, this.sendRoom <= 0);
        this.xmitStats(now);
        return;
      }
    }
    if (this.sndUna === this.sndMax && this.sendBuf.length > seqDiff(this.sndNxt, this.sndUna)) {
      // RFC 5681 §4.1, as Linux's tcp_cwnd_restart does it: after an idle period longer
      // than the RTO, cwnd halves once per RTO idle, down to the initial window.
      const rto = this.rtoMs();
      if (host.settings.slowStartAfterIdle && this.lastSendMs > 0 && now - this.lastSendMs > rto) {
        this.cc.cwndEvent(this, 'cwnd-restart', now * 1000);
        this.ssthresh = Math.max(this.ssthresh, (3 * this.cwnd) >> 2);
        const restart = Math.min(this.cwnd, INITIAL_CWND);
        let idle = now - this.lastSendMs;
        let cwnd = this.cwnd;
        while (idle > rto && cwnd > restart) {
          cwnd >>= 1;
          idle -= rto;
        }
        this.cwnd = Math.max(cwnd, restart);
        this.cwv.restarted(now);
      }
      this.cc.cwndEvent(this, 'tx-start', now * 1000);
    }
    const mss = this.sendMss();
    let sentAny = false;
    let sentNew = false;
    // F-RTO (RFC 5682 §3.1 step 2.b): new data goes first, retransmissions only if none can.
    const frtoNew = rec.frtoNewData;
    rec.frtoNewData = false;
    if (!frtoNew && rec.q.lostOut > rec.q.retransOut && rec.xmitRetransmitQueue(now) > 0) sentAny = true;
    let budget = host.txBudget(this);
    // GSO (tcp_tso_segs): up to this many whole segments in one super-packet, cut at the device.
    const gsoMax = mss * host.gsoSegs(this, mss);
    for (;;) {
      // Before the handshake ends, our SYN is the first sequence number outstanding.
      const outstanding = seqDiff(this.sndNxt, this.sndUna) - (tfoEarly ? 1 : 0);
      const sentData = Math.min(outstanding, this.sendBuf.length); // bytes of the buffer already sent
      const unsent = this.sendBuf.length - sentData;
      const finToSend = finQueued && (!this.finSent || seqLe(this.sndNxt, this.finSeq)) && unsent === 0;
      if (unsent === 0 && !finToSend) break;
      const wndLeft = this.sndWnd - outstanding;
      let len = Math.min(unsent, rec.forceOne ? mss : gsoMax);
      if (len > 0 && wndLeft < len) {
        // RFC 9293 §3.8.6.2.1: send a smaller segment only if it is at least half the largest window offered.
        if (wndLeft <= 0 || (wndLeft < mss && wndLeft < this.maxSndWnd / 2 && outstanding > 0)) {
          this.chrono.rwndLimitedNow = true;
          if (this.sndWnd === 0 && outstanding === 0) this.startProbing();
          break;
        }
        // tcp_mss_split_point: a super-packet ends on a whole segment within the window.
        len = len > mss && wndLeft >= mss ? wndLeft - (wndLeft % mss) : wndLeft;
        if (len > unsent) len = unsent;
      }
      // RFC 5681 §3.1 with RFC 6675's pipe, in segments (Linux tcp_cwnd_test): SACKed and
      // lost segments leave the network, so duplicate ACKs release new data (RFC 3042).
      if (rec.inFlight() >= this.cwnd && !rec.forceOne) {
        this.cwv.limitedNow = true;
        break;
      }
      // A super-packet holds no more segments than cwnd has room for (tcp_cwnd_test's quota).
      if (len > mss) len = Math.min(len, Math.max(1, this.cwnd - rec.inFlight()) * mss);
      // RFC 896 (Nagle): a short segment waits while data is unacknowledged; the short
      // tail of a super-packet too, since the full segments before it will be (tcp_mss_split_point).
      if (len > mss && len === unsent && len % mss !== 0 && !this.noDelay && !this.finQueued) len -= len % mss;
      if (len > 0 && len < mss && len === unsent && outstanding > 0 && !this.noDelay && !this.finQueued && !rec.forceOne) break;
      if (this.pacer.enabled && !rec.forceOne && !this.pacePermits()) break;
      if (budget <= 0) {
        // The interface's queue is full: go on once the device has written (TCP small queues).
        host.resumeLater(this);
        break;
      }
      if (len > mss && len > budget * mss) len = budget * mss;
      budget -= len > mss ? Math.ceil(len / mss) : 1;
      const fin = finToSend || (finQueued && len === unsent && (!this.finSent || seqLe(this.sndNxt, this.finSeq)));
      const seq = this.sndNxt;
      if (this.rttTimeMs < 0 && !this.tsOk && len > 0) {
        this.rttSeq = seq;
        this.rttTimeMs = now;
      }
      host.sendData(this, seq, sentData, len, fin, false);
      // tcp_event_data_sent: a reply within the ACK timeout of the data it answers.
      if (len > 0 && now - this.lastDataRcvMs < DELACK_MS) this.pingpong++;
      if (this.pacer.enabled) this.pacer.sent(len, host.time.nowNs(), this.dataSegsOut);
      sentAny = true;
      sentNew = true;
      this.sndNxt = seqAdd(seq, len + (fin ? 1 : 0));
      if (fin) {
        this.finSent = true;
        this.finSeq = seqAdd(seq, len);
        if (this.state === TcpState.ESTABLISHED) this.setState(TcpState.FIN_WAIT_1);
        else if (this.state === TcpState.CLOSE_WAIT) this.setState(TcpState.LAST_ACK);
      }
      if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
      if (len > mss) {
        // A super-packet enters the retransmission queue as its segments (tcp_skb_pcount of them).
        let s = seq;
        for (let left = len; left > 0; ) {
          const n = left > mss ? mss : left;
          left -= n;
          const e = seqAdd(s, n + (left === 0 && fin ? 1 : 0));
          rec.onNewData(s, e, left === 0 && fin, now);
          s = e;
        }
      } else rec.onNewData(seq, this.sndNxt, fin, now);
      if (fin || rec.forceOne) break;
    }
    if (frtoNew && !seqGt(this.sndNxt, rec.highSeq)) {
      // Step 2.b found no new data to send: conventional recovery (RFC 5682 §3.1).
      rec.frto = false;
      if (rec.xmitRetransmitQueue(now) > 0) sentAny = true;
    }
    if (sentAny) {
      this.lastSendMs = now;
      this.packetsOut = rec.q.count;
      if (sentNew) rec.afterSend(now);
      if (!this.rtxTimer.armed) rec.rearmRto(now);
    }
    if (sentAny || this.cwv.limitedNow) {
      const open = rec.ca === CA_OPEN;
      this.cwv.validate(this, now, this.rtoMs(), host.settings.slowStartAfterIdle, open, this.sendRoom <= 0);
    }
    this.xmitStats(now);
  }

  /**
   * After a transmit, as tcp_write_xmit and tcp_cwnd_validate do: the receive-window
   * chrono, and, when cwnd was not what held the sender, the send-buffer chrono and
   * the delivery rate's application-limited mark.
   */
  private xmitStats(now: number): void {
    const ch = this.chrono;
    if (ch.rwndLimitedNow) ch.start(CHRONO_RWND_LIMITED, now);
    else ch.stop(CHRONO_RWND_LIMITED, now, this.sendBuf.length === 0);
    ch.rwndLimitedNow = false;
    if (this.isCwndLimited) return;
    const unsent = this.sendBuf.length - Math.min(Math.max(0, seqDiff(this.sndNxt, this.sndUna)), this.sendBuf.length);
    if (unsent > 0) return;
    if (this.sendRoom <= 0) ch.start(CHRONO_SNDBUF_LIMITED, now);
    if (this.packetsOut < this.cwnd) this.rate.checkAppLimited(this.packetsOut);
  }

  /** tcp_pacing_check: false (and the pacing timer armed) while the next departure is ahead. */
  pacePermits(): boolean {
    const t = this.host.time;
    const nowNs = t.nowNs();
    if (this.pacer.due(nowNs)) return true;
    if (this.pacingTimer !== null && !this.pacingTimer.armed) t.arm(this.pacingTimer, this.pacer.waitMs(nowNs));
    return false;
  }
  /** Counts a data segment (or bare ACK) that left. */
  segmentSent(dataLen: number, segs = 1): void {
    // tcp_info segs_out counts a super-packet's segments (tcp_skb_pcount).
    this.segsOut += segs;
    if (dataLen > 0) {
      this.dataSegsOut += segs;
      this.bytesSent += dataLen;
    }
  }

  // =====================================================================
  // Timers
  // =====================================================================

  rtoMs(): number {
    return Math.min(RTO_MAX_US, this.rtt.rtoUs * 2 ** this.backoff) / 1000;
  }

  private armRtx(ms: number): void {
    this.rec.pending = T_RTO;
    this.host.time.arm(this.rtxTimer, ms);
  }

  private cancelRtx(): void {
    this.host.time.cancel(this.rtxTimer);
  }

  private startProbing(): void {
    if (this.rtxTimer.armed) return;
    this.probing = true;
    this.armRtx(this.rtoMs());
  }

  /** Linux tcp_model_timeout: the time `boundary` retransmissions take from an RTO of rtoBase (ms). */
  private modelTimeout(boundary: number, rtoBaseMs: number): number {
    const thresh = Math.floor(Math.log2(RTO_MAX_US / 1000 / rtoBaseMs));
    if (boundary <= thresh) return ((2 << boundary) - 1) * rtoBaseMs;
    return ((2 << thresh) - 1) * rtoBaseMs + (boundary - thresh) * (RTO_MAX_US / 1000);
  }

  private onRtxTimer(): void {
    const host = this.host;
    const s = host.settings;
    const mib = host.mib;
    const now = host.time.now();
    switch (this.state) {
      case TcpState.SYN_SENT: {
        if (this.tfo !== null) host.fastOpen.retransmitTimeout(this, this.retransmits);
        // tcp_syn_retries, with the first tcp_syn_linear_timeouts waits kept at the initial RTO.
        const limit = s.synRetries + s.synLinearTimeouts;
        // tcp_retransmit_timer counts every expiry, the one that gives up included.
        mib.TcpExtTCPTimeouts++;
        if (this.retransmits >= limit) {
          this.fail('ETIMEDOUT');
          return;
        }
        this.retransmits++;
        this.backoff = this.retransmits > s.synLinearTimeouts ? this.retransmits - s.synLinearTimeouts : 0;
        mib.TcpRetransSegs++;
        this.totalRetrans++;
        host.sendSyn(this, false);
        this.armRtx(Math.min(RTO_MAX_US / 1000, (RTO_INITIAL_US / 1000) * 2 ** this.backoff));
        return;
      }
      case TcpState.SYN_RECEIVED: {
        // tcp_syn_ack_timeout: every expiry of the SYN-ACK timer, the last one too.
        mib.TcpExtTCPTimeouts++;
        if (this.retransmits >= s.synackRetries) {
          this.drop();
          return;
        }
        this.retransmits++;
        mib.TcpRetransSegs++;
        this.totalRetrans++;
        host.sendSyn(this, true);
        this.armRtx(Math.min(RTO_MAX_US / 1000, (RTO_INITIAL_US / 1000) * 2 ** this.retransmits));
        return;
      }
      case TcpState.CLOSED:
      case TcpState.LISTEN:
      case TcpState.FIN_WAIT_2:
        return;
      default:
        break;
    }
    if (this.probing) {
      this.zeroWindowProbe();
      return;
    }
    if (this.sndUna === this.sndMax) return;
    // The timer may stand for the loss probe or RACK's reordering wait (RFC 8985 §7, §6.3).
    const rec = this.rec;
    if (rec.pending === T_TLP) {
      rec.sendLossProbe(now);
      return;
    }
    if (rec.pending === T_REO) {
      rec.pending = T_RTO;
      rec.onReoTimeout(now);
      return;
    }
    // tcp_write_timeout: a Fast Open connection's timeouts may mean a middlebox eats it.
    if (this.tfo !== null) host.fastOpen.retransmitTimeout(this, this.retransmits);
    // tcp_retries2 (or tcp_orphan_retries when nobody holds the socket), counted as time (Linux retransmits_timed_out).
    const boundary = this.orphan ? s.orphanRetries || 8 : s.retries2;
    if (this.retransmits === 0) this.retransStartMs = now;
    // tcp_retransmit_timer counts the expiry before tcp_write_timeout decides to give up.
    mib.TcpExtTCPTimeouts++;
    if (this.retransmits > 0 && now - this.retransStartMs >= this.modelTimeout(boundary, s.rtoMinUs / 1000)) {
      mib.TcpExtTCPAbortOnTimeout++;
      this.fail(this.softError ?? 'ETIMEDOUT');
      return;
    }
    if (this.retransmits === 0) rec.countTimeout();
    // RFC 5681 §3.1 / RFC 6675 §5.1 as Linux's tcp_enter_loss: ssthresh falls once per
    // window, what is outstanding is deemed lost, and it is resent from snd_una in slow start.
    rec.enterLoss(now);
    this.rttTimeMs = -1;
    rec.retransmitHead(now);
    this.retransmits++;
    this.backoff++;
    this.armRtx(this.rtoMs());
    this.output();
  }

  /** RFC 9293 §3.8.6.1: the persist timer probes a zero window. */
  private zeroWindowProbe(): void {
    const s = this.host.settings;
    if (this.sndWnd > 0 || this.sendBuf.length === 0) {
      this.probing = false;
      this.probesOut = 0;
      this.output();
      return;
    }
    const boundary = this.orphan ? s.orphanRetries || 8 : s.retries2;
    if (this.probesOut >= boundary) {
      this.host.mib.TcpExtTCPAbortOnTimeout++;
      this.fail('ETIMEDOUT');
      return;
    }
    this.probesOut++;
    this.backoff = Math.min(this.backoff + 1, 16);
    // Linux tcp_xmit_probe_skb: a segment with an old sequence number draws an ACK with the window.
    this.host.sendProbe(this);
    this.armRtx(this.rtoMs());
  }

  private onDelackTimer(): void {
    const due = this.delackDue;
    if (due < 0) return;
    const t = this.host.time;
    const now = t.now();
    if (now < due) {
      t.arm(this.delackTimer, due - now);
      return;
    }
    this.delackDue = -1;
    if (this.ackPending && this.state !== TcpState.CLOSED) {
      // tcp_delack_timer_handler: a delayed ACK that no reply carried ends pingpong mode.
      this.pingpong = 0;
      this.host.mib.TcpExtDelayedACKs++;
      this.sendAck();
    }
  }

  armKeepalive(): void {
    if (!this.keepAlive || this.state < TcpState.ESTABLISHED || this.state > TcpState.CLOSE_WAIT) return;
    this.keepProbes = 0;
    this.host.time.arm(this.keepTimer, this.keepIdle() * 1000);
  }

  private keepIdle(): number {
    return this.keepIdleS || this.host.settings.keepaliveTime;
  }

  /** tcp_fin_time: how long an orphan waits in FIN_WAIT_2: tcp_fin_timeout, at least 3.5 RTOs. */
  private finTimeMs(): number {
    return Math.max(this.host.settings.finTimeout * 1000, this.rtoMs() * 3.5);
  }

  /**
   * An orphan in FIN_WAIT_2 (its FIN acknowledged after close(2), or closed once it
   * was), as Linux's tcp_close and tcp_rcv_state_process have it: a wait of up to 60 s
   * is spent as a FIN_WAIT_2 record (timewait.ts) and the connection is released; a
   * longer one (tcp_fin_timeout above 60 s) keeps the connection for the part beyond
   * 60 s first, on the keepalive timer. `keep`: the segment at hand carries the FIN,
   * so the connection stays to take it. True when released.
   */
  private orphanFinWait2(keep: boolean): boolean {
    const tmo = this.finTimeMs();
    if (tmo > TIME_WAIT_LEN_MS) {
      this.host.time.arm(this.keepTimer, tmo - TIME_WAIT_LEN_MS);
      return false;
    }
    if (keep) {
      this.host.time.arm(this.keepTimer, tmo);
      return false;
    }
    this.toFinWait2Record(tmo);
    return true;
  }

  /** tcp_time_wait(sk, TCP_FIN_WAIT2, tmo): the record lives tmo, at least 3.5 RTOs. */
  private toFinWait2Record(tmo: number): void {
    this.host.enterTimeWait(this, TcpState.FIN_WAIT_2, Math.max(tmo, this.rtoMs() * 3.5));
    this.finish(null);
  }

  private onKeepTimer(): void {
    const host = this.host;
    const s = host.settings;
    const now = host.time.now();
    switch (this.state) {
      case TcpState.FIN_WAIT_2:
        if (this.orphan) {
          // tcp_keepalive_timer: what is left of tcp_fin_time beyond 60 s is spent as a
          // FIN_WAIT_2 record; with nothing left, tcp_send_active_reset and done.
          const rest = this.finTimeMs() - TIME_WAIT_LEN_MS;
          if (rest > 0) this.toFinWait2Record(rest);
          else {
            host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, this.sndNxt, this.rcvNxt, true);
            this.finish(null);
          }
          return;
        }
        break;
      default:
        break;
    }
    if (!this.keepAlive || this.state < TcpState.ESTABLISHED || this.state > TcpState.CLOSE_WAIT) return;
    const idleMs = now - this.lastRecvMs;
    const intvl = (this.keepIntvlS || s.keepaliveIntvl) * 1000;
    const probesMax = this.keepCnt || s.keepaliveProbes;
    if (idleMs < this.keepIdle() * 1000 && this.keepProbes === 0) {
      host.time.arm(this.keepTimer, this.keepIdle() * 1000 - idleMs);
      return;
    }
    if (this.keepProbes > 0 && idleMs < this.keepIdle() * 1000 + intvl * (this.keepProbes - 1)) {
      // An answer came: start over.
      this.keepProbes = 0;
      host.time.arm(this.keepTimer, this.keepIdle() * 1000 - (now - this.lastRecvMs));
      return;
    }
    if (this.keepProbes >= probesMax) {
      // Linux tcp_keepalive_timer: tcp_send_active_reset, then tcp_write_err.
      host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, this.sndNxt, this.rcvNxt, true);
      host.mib.TcpExtTCPAbortOnTimeout++;
      this.fail('ETIMEDOUT');
      return;
    }
    this.keepProbes++;
    host.sendProbe(this);
    host.time.arm(this.keepTimer, intvl);
  }

  // =====================================================================
  // Closing
  // =====================================================================

  /** The application has no more to send: FIN after the queued data (RFC 9293 §3.10.4). */
  shutdownWrite(): void {
    if (this.finQueued) return;
    switch (this.state) {
      case TcpState.SYN_SENT:
        this.finish(null);
        return;
      case TcpState.SYN_RECEIVED:
      case TcpState.ESTABLISHED:
      case TcpState.CLOSE_WAIT:
        this.finQueued = true;
        if (this.state === TcpState.SYN_RECEIVED) return; // FIN follows once established
        this.output();
        return;
      default:
        return;
    }
  }

  /**
   * The application is gone (close(2)): unread data means RST (RFC 9293
   * §3.10.4, RFC 2525 §2.17), else FIN and the connection lives on as an orphan.
   */
  close(unread: boolean): void {
    this.orphan = true;
    this.user = null;
    if (this.state === TcpState.CLOSED) return;
    if (unread || this.lingerZero) {
      if (unread) this.host.mib.TcpExtTCPAbortOnClose++;
      else this.host.mib.TcpExtTCPAbortOnLinger++;
      this.abort();
      return;
    }
    if (this.state === TcpState.SYN_SENT || this.state === TcpState.LISTEN) {
      this.finish(null);
      return;
    }
    this.shutdownWrite();
    if (this.state === TcpState.FIN_WAIT_2) this.orphanFinWait2(false);
  }

  /** Sends RST and drops the connection (RFC 9293 §3.10.5 ABORT). */
  abort(): void {
    const st = this.state;
    if (st === TcpState.ESTABLISHED || st === TcpState.FIN_WAIT_1 || st === TcpState.FIN_WAIT_2 || st === TcpState.CLOSE_WAIT || st === TcpState.SYN_RECEIVED) {
      this.host.sendReset(this.localAddr, this.localPort, this.remoteAddr, this.remotePort, this.sndNxt, this.rcvNxt, true);
    }
    this.finish(null);
  }

  private resetReceived(): void {
    const st = this.state;
    const mib = this.host.mib;
    if (st === TcpState.SYN_RECEIVED && this.listener !== null) {
      this.drop();
      return;
    }
    if (st === TcpState.CLOSING || st === TcpState.LAST_ACK) {
      this.finish(null);
      return;
    }
    if (st === TcpState.ESTABLISHED || st === TcpState.CLOSE_WAIT) mib.TcpEstabResets++;
    this.fail(st === TcpState.SYN_RECEIVED ? 'ECONNREFUSED' : st === TcpState.CLOSE_WAIT ? 'EPIPE' : 'ECONNRESET');
  }

  /** An error ends the connection. */
  fail(err: Errno): void {
    const st = this.state;
    if (st === TcpState.SYN_SENT || st === TcpState.SYN_RECEIVED) this.host.mib.TcpAttemptFails++;
    this.finish(err);
  }

  /** A half-open connection from a listener goes away silently. */
  drop(): void {
    const l = this.listener;
    this.listener = null;
    this.host.mib.TcpAttemptFails++;
    this.finish(null);
    l?.dropped(this);
  }

  private enterTimeWait(): void {
    // Linux tcp_time_wait: the peer's FIN is acknowledged first (tcp_fin), then a small
    // TIME_WAIT record takes the 4-tuple (timewait.ts) and the connection closes. Beyond
    // tcp_max_tw_buckets (TCPTimeWaitOverflow) it just closes.
    if (this.ackPending) this.sendAck();
    this.host.enterTimeWait(this);
    this.finish(null);
  }

  /** The connection is over: timers stop, it leaves the tables, the user hears. */
  finish(err: Errno | null): void {
    const prev = this.state;
    if (prev === TcpState.CLOSED) return;
    this.setState(TcpState.CLOSED);
    const t = this.host.time;
    t.cancel(this.rtxTimer);
    t.cancel(this.delackTimer);
    this.delackDue = -1;
    t.cancel(this.keepTimer);
    this.sendBuf.clear();
    this.rec.reset();
    this.ooo = [];
    this.oooBytes = 0;
    this.host.unhash(this);
    const u = this.user;
    this.user = null;
    if (u !== null) u.onClosed(err);
  }

  // =====================================================================
  // Timestamps and ICMP
  // =====================================================================

  /** Our TSval clock: milliseconds plus a per-connection offset (RFC 7323 §5.4). */
  tsNow(nowMs: number): number {
    return (Math.floor(nowMs) + this.tsOffset) >>> 0;
  }

  /** RFC 1191: a smaller path MTU from ICMP fragmentation needed. */
  pmtuChanged(mtu: number): void {
    if (mtu >= this.pmtu || mtu < 68) return;
    this.pmtu = Math.max(mtu, 68);
    this.updateMss();
    // Linux tcp_simple_retransmit: what was sent at the old size is sent again.
    if (this.sndUna !== this.sndMax && synchronized(this.state)) {
      this.rec.simpleRetransmit(this.host.time.now());
      this.output();
    }
  }

  /** RFC 5927 / RFC 1122 §4.2.3.9: hard errors abort a connection being opened; soft ones are remembered. */
  icmpError(err: Errno, hard: boolean): void {
    // Linux tcp_v4_err: while the connection is being opened, any error ends it;
    // once synchronized, errors are only remembered (reported if it then times out).
    if (this.state === TcpState.SYN_SENT) {
      this.fail(err);
      return;
    }
    if (this.state === TcpState.SYN_RECEIVED && hard && this.listener !== null) {
      this.drop();
      return;
    }
    this.softError = err;
  }
}
