/**
 * TCP over IPv4 (RFC 9293): segment input and demultiplexing (connections by
 * their 4-tuple, listeners by address and port), segment output, RSTs for
 * segments to nothing (§3.10.7.1), ISNs (RFC 6528), ICMP errors (RFC 5927),
 * ports, and the sockets' entry points.
 */
import type { Interface } from '../link/interface.js';
import { CHECKSUM_NONE, GSO_TCPV4, Packet, PacketPool } from '../packet/packet.js';
import { clearList } from '../packet/list.js';
import { setPartialChecksum } from '../link/offload.js';
import type { Ipv4 } from '../ip/ipv4.js';
import type { Icmp, IcmpErrorInfo } from '../ip/icmp.js';
import type { Mib } from '../mib.js';
import type { Time, Timer } from '../time/timers.js';
import { LocalPortRange } from '../ip/port-range.js';
import { routeMtu } from '../ip/route.js';
import { unreachErrno, type Errno } from '../errors.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED } from '../wire/icmp.js';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_HEADER_LEN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpView,
  emitTcpOptions,
  fillTcpChecksum,
  parseTcpOptions,
  verifyTcpChecksum,
  type TcpOptionsSpec,
} from '../wire/tcp.js';
import { TcpConnection, Segment } from './connection.js';
import type { TcpHost } from './host.js';
import { TcpSettings } from './settings.js';
import { TcpState } from './state.js';
import { seqAdd, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { createCongestionControl } from './cc/index.js';
import { TcpListener } from './listen.js';
import { FastOpen, TFO_SERVER_ENABLE, TFO_SERVER_WO_SOCKOPT1 } from './fastopen.js';
import { SendArena } from './send-buffer.js';
import { ecnSend, ecnSynAckFlags, ecnSynFlags, INET_ECN_MASK } from './ecn.js';
import { TcpSocket, type TcpConnectOptions } from './socket.js';
import { TcpServer, type TcpServerOptions } from './server.js';
import { sipKey, siphash2u32, siphash3u32 } from './siphash.js';
import { HashChains, LinkedSet } from '../packet/chains.js';
import { TimeWaitRecord, TimeWaitTable, TW_ACK, TW_RST, TW_SYN, TIME_WAIT_LEN_MS, tupleHash } from './timewait.js';

/** What a socket's SO_MARK and SO_BINDTODEVICE give its connections. */
export interface SocketRouting {
  mark: number;
  boundDev: Interface | null;
}

export const IPPROTO_TCP = 6;

/** Interface queue slots kept free of bulk data: ACKs and other connections get through. */
const TX_RESERVE = 64;
/** net.ipv4.tcp_limit_output_bytes (1 MB) in full-size frames. */
const TSQ_FRAMES = Math.floor(1048576 / 1514);
/** Payloads of at least this many bytes go to the device as views of the send buffer (below, a copy costs less). */
const GATHER_MIN = 4096;
/** Most send-buffer chunks one segment is gathered from; more, and it is copied. */
const GATHER_MAX_PARTS = 16;

/** Hooks into the stack's receive batches, so output waits for the batch's end. */
export interface BatchControl {
  begin(): void;
  end(): void;
  readonly active: boolean;
}

export class Tcp implements TcpHost {
  readonly settings = new TcpSettings();
  /** Connections by 4-tuple hash, chained through hashNext. */
  private readonly table = new HashChains<TcpConnection>();
  /** Listeners by port. */
  private readonly listeners = new Map<number, TcpListener[]>();
  /** Local ports held by connections and TIME_WAIT records (count per port). */
  private readonly portUse = new Uint32Array(65536);
  /** Local ports with a nonzero count in portUse. */
  portsHeld = 0;
  private readonly deferredList: TcpConnection[] = [];
  private readonly flushTimer: Timer;
  /** Quick ACKs waiting for a reply to carry them (holdAck). */
  private readonly heldAcks: TcpConnection[] = [];
  private readonly heldAckTimer: Timer;
  /** Connections that stopped sending because their interface's queue was full. */
  private readonly throttled: TcpConnection[] = [];
  /** Throttled connections that found no room even after a device write (see resumeLater). */
  private readonly waitingRoom: TcpConnection[] = [];
  private resuming = false;
  /** Connections the application wrote to outside a receive batch, sent at the end of the tick (output). */
  private readonly corked: TcpConnection[] = [];
  private uncorkQueued = false;
  private readonly uncorkFn = (): void => this.uncork();
  /** The device the last txBudget found the route through (gsoSegs reads it). */
  private budgetDev: Interface | null = null;
  private readonly resumeTimer: Timer;
  /** Every connection not yet closed, for listings (ss). */
  readonly connections = new LinkedSet<TcpConnection>();
  /** Connections in TIME_WAIT, as small records (timewait.ts); not in `connections`. */
  readonly timeWait: TimeWaitTable;
  private readonly view = new TcpView(new Uint8Array(0), 0, 0);
  /**
   * Buffers for super-packets (and segments too large for the stack's pool), reused once a
   * device wrote them. A flush can carry tcp_limit_output_bytes (16 super-packets) of every
   * sending connection; the pool keeps enough for 16 of them, so bulk senders reuse their
   * buffers instead of having 64 KB ones made and collected at every flush.
   */
  readonly superPool = new PacketPool(65536 + 256, 256);
  /** Where sockets' writes are copied to (send-buffer.ts). */
  readonly sendArena = new SendArena();
  private readonly seg = new Segment();
  /** SipHash keys for ISNs and timestamp offsets. */
  private readonly isnKey: Uint32Array;
  private readonly tsKey: Uint32Array;
  /** Keys for SYN cookies (syncookies.ts). */
  readonly cookieSecrets: [Uint8Array, Uint8Array];
  /** Fast Open (RFC 7413): keys, the client's cookie cache. */
  readonly fastOpen: FastOpen;
  private readonly spec: TcpOptionsSpec & { ts: { val: number; ecr: number } | null } = { ts: null };
  private readonly tsSpec = { val: 0, ecr: 0 };
  private readonly sackOut = new Uint32Array(8);
  /** IP output options, one object for every segment (nothing allocated per segment). */
  private readonly outOpts = { src: 0, dontFrag: true, mark: 0, oif: null as Interface | null, tos: 0 };

  constructor(
    private readonly ip: Ipv4,
    icmp: Icmp,
    readonly mib: Mib,
    readonly time: Time,
    private readonly random: () => number,
    readonly portRange: LocalPortRange,
    private readonly pool: PacketPool,
    readonly batch: BatchControl,
    /** Secret keys for ISNs, timestamps and cookies: crypto-random in production, seeded in tests. */
    secret: (n: number) => Uint8Array,
  ) {
    this.isnKey = sipKey(secret(16));
    this.tsKey = sipKey(secret(16));
    this.cookieSecrets = [secret(16), secret(16)];
    this.fastOpen = new FastOpen(this.settings, mib, time, secret);
    ip.register(IPPROTO_TCP, (pkt, src, dst, iface) => this.input(pkt, src, dst, iface));
    icmp.onError((e) => this.icmpError(e));
    this.flushTimer = time.timer(() => this.flushDeferred());
    this.heldAckTimer = time.timer(() => this.sendHeldAcks());
    this.resumeTimer = time.timer(() => this.resume());
    this.timeWait = new TimeWaitTable(this);
  }

  get timeWaitCount(): number {
    return this.timeWait.count;
  }

  // =====================================================================
  // Tables
  // =====================================================================

  lookup(laddr: number, lport: number, raddr: number, rport: number): TcpConnection | null {
    let c = this.table.first(tupleHash(laddr, lport, raddr, rport));
    while (c !== null) {
      if (c.remotePort === rport && c.localPort === lport && c.remoteAddr === raddr && c.localAddr === laddr) return c;
      c = c.hashNext;
    }
    return null;
  }

  hash(c: TcpConnection): void {
    this.table.insert(c, tupleHash(c.localAddr, c.localPort, c.remoteAddr, c.remotePort));
    c.hashed = true;
    this.holdPort(c.localPort);
    this.connections.add(c.allLink);
  }

  unhash(c: TcpConnection): void {
    this.connections.delete(c.allLink);
    if (!c.hashed) return;
    c.hashed = false;
    this.table.remove(c);
    this.portReleased(c.localPort);
  }

  private holdPort(port: number): void {
    if (this.portUse[port]++ === 0) this.portsHeld++;
  }

  portReleased(port: number): void {
    const n = this.portUse[port];
    if (n === 0) return;
    this.portUse[port] = n - 1;
    if (n === 1) this.portsHeld--;
  }

  /**
   * Linux tcp_time_wait: a record takes the connection's 4-tuple (and its hold on the
   * local port), and the connection can be released: a TIME_WAIT record, or for an
   * orphan waiting for the peer's FIN a FIN_WAIT_2 one that lives `timeoutMs`. False
   * when tcp_max_tw_buckets is reached (TCPTimeWaitOverflow): the connection just closes.
   */
  enterTimeWait(c: TcpConnection, substate: TcpState = TcpState.TIME_WAIT, timeoutMs = TIME_WAIT_LEN_MS): boolean {
    const tw = this.timeWait;
    if (tw.count >= this.settings.maxTwBuckets) {
      this.mib.TcpExtTCPTimeWaitOverflow++;
      return false;
    }
    const r = tw.alloc();
    r.localAddr = c.localAddr;
    r.localPort = c.localPort;
    r.remoteAddr = c.remoteAddr;
    r.remotePort = c.remotePort;
    r.sndNxt = c.sndNxt;
    r.rcvNxt = c.rcvNxt;
    // tcp_time_wait: tw_rcv_wnd = tcp_receive_window(), sent shifted by tw_rcv_wscale.
    const wnd = c.rcvAdvEdge - c.rcvNxt;
    r.rcvWnd = (wnd | 0) > 0 ? wnd >>> 0 : 0;
    r.wndField = Math.min(0xffff, r.rcvWnd >>> c.rcvWscale);
    r.tsOk = c.tsOk;
    r.tsRecent = c.tsRecent;
    r.tsRecentStamp = c.tsRecentStamp;
    r.tsOffset = c.tsOffset;
    r.mark = c.mark;
    r.boundDev = c.boundDev;
    r.substate = substate;
    tw.add(r, timeoutMs);
    this.holdPort(r.localPort);
    return true;
  }

  /** The listener for a segment to addr:port: one bound to the address beats one bound to any. */
  findListener(addr: number, port: number, iface: Interface | null = null): TcpListener | null {
    const list = this.listeners.get(port);
    if (list === undefined) return null;
    let any: TcpListener | null = null;
    for (let i = 0; i < list.length; i++) {
      const l = list[i];
      // A listener bound to a device takes only what arrives on it (compute_score).
      if (l.boundDev !== null && iface !== null && l.boundDev !== iface) continue;
      if (l.addr === addr) return l;
      if (l.addr === 0) any = l;
    }
    return any;
  }

  listenerList(): TcpListener[] {
    const r: TcpListener[] = [];
    for (const l of this.listeners.values()) r.push(...l);
    return r;
  }

  /**
   * Linux inet_csk_get_port with SO_REUSEADDR (Node always sets it for servers):
   * a port is taken by another listener on an overlapping address.
   */
  listenError(addr: number, port: number): Errno | null {
    if (addr !== 0 && !this.ip.isLocal(addr)) return 'EADDRNOTAVAIL';
    if (port === 0) return null;
    const list = this.listeners.get(port);
    if (list !== undefined) for (const l of list) if (l.addr === 0 || addr === 0 || l.addr === addr) return 'EADDRINUSE';
    return null;
  }

  addListener(l: TcpListener): Errno | null {
    const err = this.listenError(l.addr, l.port);
    if (err !== null) return err;
    if (l.port === 0) {
      const p = this.portRange.pick(this.random, (x) => this.listeners.has(x) || this.portUse[x] > 0);
      if (p < 0) return 'EADDRINUSE';
      l.port = p;
    }
    // inet_listen: tcp_fastopen 0x400|0x2 gives every listener a Fast Open queue of its backlog.
    const fo = this.settings.fastOpen;
    if (fo & TFO_SERVER_WO_SOCKOPT1 && fo & TFO_SERVER_ENABLE && l.fastOpenMax === 0) l.enableFastOpen(l.backlog);
    const list = this.listeners.get(l.port);
    if (list === undefined) this.listeners.set(l.port, [l]);
    else list.push(l);
    return null;
  }

  removeListener(l: TcpListener): void {
    const list = this.listeners.get(l.port);
    if (list === undefined) return;
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.listeners.delete(l.port);
  }

  // =====================================================================
  // Connections
  // =====================================================================

  newConnection(): TcpConnection {
    return new TcpConnection(this, createCongestionControl(this.settings.congestionControl, this.settings.cubic));
  }

  /** A connection for a SYN that reached a listener: its 4-tuple and what its route allows. */
  passiveConnection(laddr: number, lport: number, raddr: number, rport: number, from: SocketRouting | null = null): TcpConnection {
    const c = this.newConnection();
    c.localAddr = laddr;
    c.localPort = lport;
    c.remoteAddr = raddr;
    c.remotePort = rport;
    // An accepted socket inherits the listener's mark and device (inet_csk_clone_lock).
    if (from !== null) {
      c.mark = from.mark;
      c.boundDev = from.boundDev;
    }
    c.advMss = this.pathMtu(raddr, 0, c) - 40;
    c.pmtu = c.advMss + 40;
    return c;
  }

  /** The interface SO_BINDTODEVICE names, or undefined (ENODEV). */
  device(name: string): Interface | undefined {
    return this.ip.ifaceByName(name);
  }

  /** TCP_CONGESTION: another module for one connection (before it is established). */
  setCongestion(c: TcpConnection, name: string): void {
    c.cc = createCongestionControl(name, this.settings.cubic);
  }

  /** A net.Socket-shaped client: `connect(port, host)` or `connect({ port, host, ... })`. */
  createConnection(options: TcpConnectOptions, listener?: () => void): TcpSocket;
  createConnection(port: number, host?: string, listener?: () => void): TcpSocket;
  createConnection(a: number | TcpConnectOptions, b?: string | (() => void), cb?: () => void): TcpSocket {
    const s = new TcpSocket(this, typeof a === 'object' ? a : {});
    if (typeof a === 'object') s.connect(a, typeof b === 'function' ? b : undefined);
    else s.connect(a, typeof b === 'string' ? b : undefined, typeof b === 'function' ? b : cb);
    return s;
  }

  connect(options: TcpConnectOptions, listener?: () => void): TcpSocket;
  connect(port: number, host?: string, listener?: () => void): TcpSocket;
  connect(a: number | TcpConnectOptions, b?: string | (() => void), cb?: () => void): TcpSocket {
    return typeof a === 'object' ? this.createConnection(a, b as (() => void) | undefined) : this.createConnection(a, b as string | undefined, cb);
  }

  /** A net.Server-shaped server. */
  createServer(options?: TcpServerOptions | ((s: TcpSocket) => void), listener?: (s: TcpSocket) => void): TcpServer {
    if (typeof options === 'function') return new TcpServer(this, {}, options);
    return new TcpServer(this, options ?? {}, listener);
  }

  /**
   * connect(2): route, source address and an ephemeral port, then SYN.
   * Returns the connection or the errno.
   */
  activeOpen(c: TcpConnection, raddr: number, rport: number, laddr = 0, lport = 0): Errno | null {
    if (raddr === 0 || raddr === 0xffffffff || raddr >>> 28 >= 0xe || this.ip.isBroadcastAddr(raddr)) return 'ENETUNREACH';
    let src = laddr;
    if (src === 0) {
      const local = this.ip.local.get(raddr);
      if (local !== undefined) src = raddr;
      else {
        // ip_route_connect: the rules see the destination port; the source port comes later.
        const r = this.ip.routeOrErrno({ dst: raddr, proto: IPPROTO_TCP, dport: rport, mark: c.mark, oif: c.boundDev });
        if (typeof r === 'string') return r;
        src = r.src || r.dev.sourceFor(r.gateway || raddr);
        if (src === 0) return 'EADDRNOTAVAIL';
      }
    } else if (!this.ip.isLocal(src)) return 'EADDRNOTAVAIL';
    let port = lport;
    if (port === 0) {
      // Linux __inet_hash_connect: any port whose 4-tuple is free (listeners excluded here)
      // or held by a TIME_WAIT that tcp_tw_reuse lets go.
      port = this.portRange.pick(this.random, (p) => this.listeners.has(p) || !this.tupleFree(src, p, raddr, rport, true));
      if (port < 0) return 'EADDRNOTAVAIL';
    } else if (!this.tupleFree(src, port, raddr, rport, false)) return 'EADDRINUSE';
    const tw = this.timeWait.lookup(src, port, raddr, rport);
    if (tw !== null) {
      // __inet_check_established: the TIME_WAIT goes (TWRecycled) and the new connection
      // starts its sequence space beyond the old one's (tcp_twsk_unique: snd_nxt + 65535 + 2).
      this.reuseIss.set(c, (tw.sndNxt + 65535 + 2) >>> 0 || 1);
      this.timeWait.remove(tw);
      this.mib.TcpExtTWRecycled++;
    }
    c.localAddr = src;
    c.localPort = port;
    c.remoteAddr = raddr;
    c.remotePort = rport;
    c.pmtu = this.pathMtu(raddr, src, c);
    this.hash(c);
    // Fast Open with a cookie in hand: the SYN waits for the data (TCP_FASTOPEN_CONNECT).
    if (c.tfo !== null && c.tfo.deferred) return null;
    this.batch.begin();
    try {
      c.openActive();
    } finally {
      this.batch.end();
    }
    return null;
  }

  /** The route's MTU (its `mtu` cap, else its device's) toward `raddr` from `src`. */
  private pathMtu(raddr: number, src = 0, c: TcpConnection | null = null): number {
    const local = this.ip.local.get(raddr);
    if (local !== undefined) return Math.max(local.mtu, 1500);
    const r = this.ip.routeFlow({ dst: raddr, src, proto: IPPROTO_TCP, mark: c?.mark ?? 0, oif: c?.boundDev ?? null });
    return r.type === 'unicast' ? routeMtu(r.route) : 1500;
  }

  advMss(remote: number, c: TcpConnection | null = null): number {
    return this.pathMtu(remote, 0, c) - 40;
  }

  /**
   * Whether connect(2) may use this 4-tuple: nothing holds it, or a TIME_WAIT with
   * timestamps (PAWS guards the new connection, RFC 7323 §5) that Linux's
   * tcp_twsk_unique lets go: always for an explicitly bound port, in the port search
   * only with tcp_tw_reuse (2: a loopback address at either end) once the TIME_WAIT is
   * older than tcp_tw_reuse_delay, and never for a FIN_WAIT_2 record.
   */
  private tupleFree(laddr: number, lport: number, raddr: number, rport: number, search: boolean): boolean {
    if (this.lookup(laddr, lport, raddr, rport) !== null) return false;
    const tw = this.timeWait.lookup(laddr, lport, raddr, rport);
    if (tw === null) return true;
    if (!tw.tsOk) return false;
    if (!search) return true;
    // tcp_twsk_unique: the port search never takes a FIN_WAIT_2 record (the peer may still send).
    if (tw.substate === TcpState.FIN_WAIT_2) return false;
    const s = this.settings;
    let reuse = s.twReuse;
    if (reuse === 2 && laddr >>> 24 !== 127 && raddr >>> 24 !== 127) reuse = 0;
    return reuse > 0 && this.time.now() > tw.entryMs + s.twReuseDelay;
  }

  /** The ISN of a connection opened over a reused TIME_WAIT, until its SYN takes it. */
  private readonly reuseIss = new WeakMap<TcpConnection, number>();

  isn(c: TcpConnection): number {
    const reused = this.reuseIss.get(c);
    if (reused !== undefined) {
      this.reuseIss.delete(c);
      return reused;
    }
    if (this.twSynIsn !== 0) {
      // A SYN that ended a TIME_WAIT: tcp_conn_request takes the ISN it gave (tcp_tw_isn).
      const isn = this.twSynIsn;
      this.twSynIsn = 0;
      return isn;
    }
    // RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs
    // timer; F is SipHash-2-4 of the addresses and ports (Linux secure_tcp_seq).
    const f = siphash3u32(this.isnKey, c.localAddr, c.remoteAddr, ((c.localPort << 16) | c.remotePort) >>> 0);
    const m = Math.floor(this.time.now() * 250);
    return (f + m) >>> 0;
  }

  tsOffset(c: TcpConnection): number {
    // RFC 7323 §5.4 / RFC 9293: randomised per connection so timestamps reveal no uptime
    // (Linux secure_tcp_ts_off: SipHash of the addresses).
    return siphash2u32(this.tsKey, c.localAddr, c.remoteAddr);
  }

  // =====================================================================
  // Deferred work: output and ACKs at the end of a receive batch
  // =====================================================================

  defer(c: TcpConnection): void {
    if (c.deferred) return;
    c.deferred = true;
    this.deferredList.push(c);
    if (!this.batch.active && !this.flushTimer.armed) this.time.arm(this.flushTimer, 0);
  }

  /**
   * A quick ACK for data just handed to the application waits until the callbacks this
   * turn of the event loop queued have run (a due timer runs after them: from
   * setImmediate in real time). A reply written meanwhile carries it: one frame instead
   * of two for a request answered at once, as a new connection's first request is. One
   * that goes unanswered is sent then, microseconds after Linux would have sent it.
   */
  holdAck(c: TcpConnection): void {
    if (c.ackHeld) return;
    c.ackHeld = true;
    this.heldAcks.push(c);
    if (!this.heldAckTimer.armed) this.time.arm(this.heldAckTimer, 0);
  }

  private sendHeldAcks(): void {
    const list = this.heldAcks;
    this.batch.begin();
    try {
      for (let i = 0; i < list.length; i++) list[i].sendHeldAck();
    } finally {
      for (let i = 0; i < list.length; i++) list[i].ackHeld = false;
      clearList(list);
      this.batch.end();
    }
  }

  /** Serves every deferred connection; the stack calls it at the end of each receive batch. */
  flushDeferred(): void {
    const list = this.deferredList;
    if (list.length === 0) return;
    const own = !this.batch.active;
    if (own) this.batch.begin();
    try {
      for (let i = 0; i < list.length; i++) list[i].flushDeferred();
      clearList(list);
    } finally {
      if (own) this.batch.end();
    }
  }

  /**
   * Segments a connection may still queue on its interface: what the queue has room
   * for, less a reserve for ACKs and other connections. Like Linux's TCP small queues,
   * a sender stops rather than have its own bursts dropped at the device queue.
   */
  txBudget(c: TcpConnection): number {
    if (this.ip.local.has(c.remoteAddr)) return 0x7fffffff;
    this.budgetDev = null;
    const r = this.ip.routeFlow({ dst: c.remoteAddr, src: c.localAddr, proto: IPPROTO_TCP, sport: c.localPort, dport: c.remotePort, mark: c.mark, oif: c.boundDev });
    if (r.type !== 'unicast') return 0x7fffffff;
    // The reserve is an eighth of a small queue (a shaping qdisc's limit may hold only a few dozen frames).
    const dev = r.route.dev;
    this.budgetDev = dev;
    const room = dev.txRoom;
    const budget = room - Math.min(TX_RESERVE, dev.txCapacity >> 3);
    // tcp_limit_output_bytes (1 MB): no more than that waits in a qdisc that holds packets
    // (a deep shaping queue would only add delay to the flow and work to every ACK).
    const queued = dev.txCapacity - room;
    // tcp_small_queue_check: no more than tcp_limit_output_bytes of this connection in the
    // qdisc or device (Linux's sk_wmem_alloc, freed as the device takes each skb). A
    // super-packet is one packet of the queue's length but many frames, so each connection
    // counts the segments it queued since the device last flushed (the default qdiscs
    // hand everything over at each flush); ones that hold packets get segments (queueSegments)
    // and the queue's length above bounds them.
    if (c.tsqDev !== dev || c.tsqFlush !== dev.txFlushes) {
      c.tsqDev = dev;
      c.tsqFlush = dev.txFlushes;
      c.tsqSegs = 0;
    }
    return Math.min(budget, TSQ_FRAMES - queued, TSQ_FRAMES - c.tsqSegs);
  }

  /**
   * sk_can_gso / tcp_tso_autosize: with GSO or TSO on the device, as many
   * segments as its gso_max_size holds after the headers (IP, TCP and
   * options at most 100 bytes), else 1. Loopback to our own address takes 1.
   */
  gsoSegs(c: TcpConnection, mss: number): number {
    const dev = this.budgetDev;
    if (dev === null || mss <= 0) return 1;
    const off = dev.offload;
    if (!off.gso && !off.tso) return 1;
    let n = Math.floor((Math.min(off.gsoMaxSize, 0xffff) - 100) / mss);
    // tcp_tso_autosize: a paced flow's super-packets carry about 1 ms of its rate
    // (sk_pacing_shift 10); here down to one segment, so a slow paced flow stays spaced per segment.
    if (c.pacer.enabled && c.pacer.rate > 0) n = Math.min(n, Math.floor(c.pacer.rate / 1024 / mss));
    return n > 1 ? Math.min(n, off.gsoMaxSegs) : 1;
  }

  resumeLater(c: TcpConnection): void {
    if (c.throttled) return;
    c.throttled = true;
    if (this.resuming) {
      // Still no room right after the devices wrote: the queue is held by a
      // shaping qdisc. Wait until an interface sends again (roomFreed).
      this.waitingRoom.push(c);
      return;
    }
    this.throttled.push(c);
    if (!this.resumeTimer.armed) this.time.arm(this.resumeTimer, 0);
  }

  /** An interface's qdisc released frames: connections waiting for room try again. */
  roomFreed(): void {
    if (this.waitingRoom.length === 0) return;
    for (const c of this.waitingRoom) this.throttled.push(c);
    clearList(this.waitingRoom);
    if (!this.resumeTimer.armed) this.time.arm(this.resumeTimer, 0);
  }

  /** After the devices have written: throttled connections send on. */
  private resume(): void {
    const list = this.throttled.splice(0);
    this.resuming = true;
    try {
      this.batched(() => {
        for (const c of list) {
          c.throttled = false;
          c.output();
        }
      });
    } finally {
      this.resuming = false;
    }
  }

  /**
   * The application wrote to `c` (or changed what it may send). Inside a receive batch
   * the data goes out with the batch (and carries its ACK). Otherwise it goes once the
   * current tick's work is done (a microtask, before any I/O): what the application does
   * in the same tick joins it, as Linux's TCP autocorking holds small writes back while
   * earlier ones are still queued. The FIN of an end() right after a response rides on
   * its last segment, and the replies of many sockets leave in one write to the device.
   */
  output(c: TcpConnection): void {
    if (this.batch.active) {
      c.output();
      return;
    }
    if (c.corked) return;
    c.corked = true;
    this.corked.push(c);
    if (!this.uncorkQueued) {
      this.uncorkQueued = true;
      queueMicrotask(this.uncorkFn);
    }
  }

  /** What the application wrote to `c` and is still held goes now (before a RST ends it). */
  outputHeld(c: TcpConnection): void {
    if (c.corked) c.output();
  }

  private uncork(): void {
    this.uncorkQueued = false;
    const list = this.corked;
    this.batch.begin();
    try {
      for (let i = 0; i < list.length; i++) {
        const c = list[i];
        c.corked = false;
        // Output, and the ACK owed if no segment carried it (flushDeferred left it here).
        c.flushDeferred();
      }
    } finally {
      for (let i = 0; i < list.length; i++) list[i].corked = false;
      clearList(list);
      this.batch.end();
    }
  }

  /** Runs `fn` as one batch: the segments it sends leave together. */
  batched(fn: () => void): void {
    this.batch.begin();
    try {
      fn();
    } finally {
      this.batch.end();
    }
  }

  // =====================================================================
  // Input
  // =====================================================================

  private input(pkt: Packet, src: number, dst: number, iface: Interface): void {
    const mib = this.mib;
    mib.TcpInSegs++;
    // One clock reading for the segment and what it sets off, as Linux's tcp_mstamp_refresh
    // per segment (within a batch: outside one the clock is read at each use anyway).
    if (this.batch.active) this.time.freeze();
    const v = this.view.reset(pkt.buf, pkt.start, pkt.end - pkt.start);
    if (v.check() !== null) {
      // Linux tcp_v4_rcv counts only a data offset below 5 words (bad_packet); a segment
      // shorter than 20 bytes or than its header is discarded uncounted (discard_it).
      if (v.len >= TCP_HEADER_LEN && v.headerLen < TCP_HEADER_LEN) mib.TcpInErrs++;
      return;
    }
    // skb_csum_unnecessary: a checksum the device verified, or one still partial, is not summed again.
    if (pkt.ipSummed === CHECKSUM_NONE && !verifyTcpChecksum(v, src, dst)) {
      mib.TcpInCsumErrors++;
      mib.TcpInErrs++;
      return;
    }
    // RFC 9293 §3.9.1: TCP is unicast; segments to broadcast or multicast addresses are dropped.
    if (!this.ip.isLocal(dst)) return;
    const seg = this.seg;
    seg.seq = v.seq;
    seg.ack = v.ack;
    seg.flags = v.flags;
    seg.wnd = v.window;
    seg.urg = v.urgent;
    seg.buf = pkt.buf;
    seg.dataOff = v.payloadOff;
    seg.dataLen = v.payloadLen;
    seg.gsoSize = pkt.gsoSize;
    // RFC 3168 §6.1.3: the IP header's ECN field goes up with the segment.
    seg.ecn = pkt.buf[pkt.l3 + 1] & INET_ECN_MASK;
    const hl = v.headerLen;
    // Linux tcp_parse_options: a malformed option ends parsing; what came before it counts.
    if (hl > TCP_HEADER_LEN) parseTcpOptions(pkt.buf, v.optionsOff, v.optionsLen, seg.opts);
    else seg.opts.clear();
    const sport = v.srcPort;
    const dport = v.dstPort;
    const f = seg.flags;
    // SYN with FIN or RST is not dropped here (Linux's tcp_v4_rcv has no such check): a
    // closed port answers SYN+FIN with RST (RFC 9293 §3.10.7.1), a listener drops both
    // (listen.ts), a connection takes SYN+RST as a RST and challenges SYN+FIN (RFC 5961).
    let c = this.lookup(dst, dport, src, sport);
    // inet_match: a connection bound to a device is found only by what arrives on it.
    if (c !== null && c.boundDev !== null && c.boundDev !== iface) c = null;
    if (c !== null) {
      c.input(seg);
      return;
    }
    let tw = this.timeWait.lookup(dst, dport, src, sport);
    if (tw !== null && tw.boundDev !== null && tw.boundDev !== iface) tw = null;
    if (tw !== null) {
      // Linux tcp_v4_rcv's TIME_WAIT cases (tcp_timewait_state_process).
      const st = this.timeWait.input(tw, seg);
      if (st === TW_SYN) {
        const l = this.findListener(dst, dport, iface);
        if (l !== null) {
          // A new SYN beyond the old connection ends TIME_WAIT; the listener takes it.
          this.timeWait.remove(tw);
          this.twSynIsn = this.timeWait.synIsn;
          try {
            l.input(seg, dst, dport, src, sport);
          } finally {
            this.twSynIsn = 0;
          }
          return;
        }
      }
      if (st === TW_RST) {
        // tcp_v4_rcv's TCP_TW_RST: the segment is answered as if to no connection, and the record goes.
        this.timeWait.remove(tw);
        this.closedInput(seg, dst, dport, src, sport);
        return;
      }
      // No listener for the SYN: it is acknowledged from TIME_WAIT like anything out of window.
      if (st === TW_ACK || st === TW_SYN) this.sendTimeWaitAck(tw);
      return;
    }
    const l = this.findListener(dst, dport, iface);
    if (l !== null) {
      l.input(seg, dst, dport, src, sport);
      return;
    }
    this.closedInput(seg, dst, dport, src, sport);
  }

  /** The ISN for the connection a SYN over a TIME_WAIT opens, while the listener handles it. */
  private twSynIsn = 0;

  /** RFC 9293 §3.10.7.1: a segment to no connection draws a RST, unless it is one. */
  closedInput(seg: Segment, laddr: number, lport: number, raddr: number, rport: number): void {
    const f = seg.flags;
    if (f & TCP_RST) return;
    if (f & TCP_ACK) this.sendReset(laddr, lport, raddr, rport, seg.ack, 0, false);
    else this.sendReset(laddr, lport, raddr, rport, 0, seqAdd(seg.seq, seg.len), true);
  }

  // =====================================================================
  // Output
  // =====================================================================

  private xmit(pkt: Packet, src: number, dst: number, c: TcpConnection | null, tos = 0, segs = 1): void {
    this.mib.TcpOutSegs += segs;
    // Linux's default IP_PMTUDISC_WANT: TCP segments carry DF (RFC 1191).
    // A failure (no route, a full queue) counts where IP counts it; retransmission recovers.
    const o = this.outOpts;
    o.src = src;
    o.mark = c !== null ? c.mark : 0;
    o.oif = c !== null ? c.boundDev : null;
    o.tos = tos;
    this.ip.output(pkt, dst, IPPROTO_TCP, o);
  }

  /** Builds the header into pkt at pkt.start and checksums header + data. */
  private finish(pkt: Packet, src: number, dst: number, sport: number, dport: number, seq: number, ack: number, flags: number, wnd: number, optLen: number, partial = false): void {
    const v = this.view.reset(pkt.buf, pkt.start, pkt.end - pkt.start);
    v.srcPort = sport;
    v.dstPort = dport;
    v.seq = seq >>> 0;
    v.ack = ack >>> 0;
    v.headerLen = TCP_HEADER_LEN + optLen;
    v.flags = flags;
    v.window = wnd;
    v.urgent = 0;
    // A data segment's checksum is left partial (tcp_v4_send_check under CHECKSUM_PARTIAL):
    // the device finishes it, or the interface does just before a device that can't.
    if (partial) setPartialChecksum(pkt, pkt.start, 16, src, dst, IPPROTO_TCP, pkt.end - pkt.start);
    else fillTcpChecksum(v, src, dst);
  }

  sendSyn(c: TcpConnection, synAck: boolean): void {
    const s = this.settings;
    const now = this.time.now();
    const spec = this.spec;
    spec.mss = c.advMss;
    // In the SYN-ACK only what the SYN offered (RFC 7323 §1.3, RFC 2018 §2).
    spec.sackPermitted = synAck ? c.sackOk : s.sack;
    const ts = synAck ? c.tsOk : s.timestamps;
    if (ts) {
      this.tsSpec.val = c.tsNow(now);
      this.tsSpec.ecr = synAck ? c.tsRecent : 0;
      spec.ts = this.tsSpec;
    } else spec.ts = null;
    spec.wscale = (synAck ? c.wscaleOk : s.windowScaling) ? c.rcvWscale : -1;
    spec.sack = undefined;
    spec.sackCount = 0;
    // Fast Open (fastopen.ts): the cookie the SYN-ACK hands out (first transmission only, as
    // Linux's tcp_rtx_synack sends none), or the client's cookie or request and its data.
    let dataLen = 0;
    if (synAck) {
      spec.fastOpen = c.synAckCookie;
      spec.fastOpenExp = c.synAckCookieExp;
      c.synAckCookie = null;
    } else if (c.tfo !== null) dataLen = this.fastOpen.synOptions(c, spec);
    const pkt = this.pool.alloc(TCP_HEADER_LEN + 40 + dataLen);
    const optLen = emitTcpOptions(spec, pkt.buf, pkt.start + TCP_HEADER_LEN);
    spec.fastOpen = null;
    spec.fastOpenExp = false;
    if (dataLen > 0) {
      c.sendBuf.copyOut(0, dataLen, pkt.buf, pkt.start + TCP_HEADER_LEN + optLen);
      c.sndNxt = seqAdd(c.iss, 1 + dataLen);
      c.sndMax = c.sndNxt;
    }
    pkt.end = pkt.start + TCP_HEADER_LEN + optLen + dataLen;
    // RFC 7323 §2.2: a SYN's window is not scaled; Linux offers the buffer rounded down to whole segments.
    const effMss = c.advMss - (synAck && c.tsOk ? 12 : 0);
    let wnd = Math.min(0xffff, c.rcvBufSize);
    if (wnd > effMss) wnd -= wnd % effMss;
    c.rcvAdvEdge = seqAdd(c.rcvNxt, wnd);
    c.rcvAdvMax = c.rcvAdvEdge;
    c.rcvWup = c.rcvNxt;
    // RFC 3168 §6.1.1: ECE|CWR asks for ECN, ECE alone in the SYN-ACK agrees (ecn.ts).
    const flags = synAck ? TCP_SYN | TCP_ACK | ecnSynAckFlags(c) : TCP_SYN | ecnSynFlags(c, c.retransmits === 0);
    this.finish(pkt, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, c.iss, synAck ? c.rcvNxt : 0, flags, wnd, optLen);
    c.segmentSent(dataLen);
    if (synAck) c.ackSent();
    this.xmit(pkt, c.localAddr, c.remoteAddr, c);
  }

  sendData(c: TcpConnection, seq: number, bufOff: number, len: number, fin: boolean, retrans: boolean): void {
    const spec = this.spec;
    spec.mss = 0;
    spec.wscale = -1;
    spec.sackPermitted = false;
    if (c.tsOk) {
      this.tsSpec.val = c.tsNow(this.time.now());
      this.tsSpec.ecr = c.tsRecent;
      spec.ts = this.tsSpec;
    } else spec.ts = null;
    let n = 0;
    // A super-packet (GSO): segments of the send MSS, cut by the device or before it.
    const mss = c.sendMss();
    const segs = len > mss ? Math.ceil(len / mss) : 1;
    if (c.sackOk && (c.ooo.length > 0 || c.dsackPending)) {
      // RFC 2018 §3: blocks only as the 40 option bytes and the path MTU leave room for.
      const room = c.pmtu - 40 - (segs > 1 ? mss : len) - (c.tsOk ? 12 : 0);
      const max = Math.min(c.tsOk ? 3 : 4, room >= 12 ? (room - 4) >> 3 : 0);
      if (max > 0) n = c.sackBlocks(this.sackOut, max);
    }
    spec.sack = this.sackOut;
    spec.sackCount = n;
    const optMax = 40;
    const need = TCP_HEADER_LEN + optMax + len;
    const pkt =
      need + 128 <= this.pool.bufferSize ? this.pool.alloc(need) : need + 128 <= this.superPool.bufferSize ? this.superPool.alloc(need) : Packet.alloc(need);
    const optLen = emitTcpOptions(spec, pkt.buf, pkt.start + TCP_HEADER_LEN);
    const hl = TCP_HEADER_LEN + optLen;
    if (len >= GATHER_MIN) {
      // A large payload stays in the send buffer: a device that writes with scatter-gather
      // takes it from there; anything that reads it first copies it in (Packet.linearize).
      const k = c.sendBuf.views(bufOff, len, pkt.gatherList(), GATHER_MAX_PARTS);
      if (k > 0) pkt.setGather(pkt.start + hl, k);
      else c.sendBuf.copyOut(bufOff, len, pkt.buf, pkt.start + hl);
    } else if (len > 0) c.sendBuf.copyOut(bufOff, len, pkt.buf, pkt.start + hl);
    pkt.end = pkt.start + hl + len;
    let flags = TCP_ACK;
    // PSH on the segment that empties what the application gave (RFC 9293 §3.9.1.2).
    if (len > 0 && bufOff + len === c.sendBuf.length) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    // ECT(0) on new data, CWR after a reduction, ECE while CE is unanswered (ecn.ts).
    const ecn = c.ecnFlags !== 0 ? ecnSend(c, len, retrans) : 0;
    flags |= ecn & 0xff;
    const wnd = c.selectWindow();
    this.finish(pkt, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, seq, c.rcvNxt, flags, wnd, optLen, len > 0);
    if (segs > 1) {
      pkt.gsoSize = mss;
      pkt.gsoType = GSO_TCPV4;
      pkt.gsoSegs = segs;
    }
    c.ackSent();
    c.segmentSent(len, segs);
    const tsq = c.tsqDev;
    if (len > 0 && tsq !== null) {
      if (c.tsqFlush !== tsq.txFlushes) {
        c.tsqFlush = tsq.txFlushes;
        c.tsqSegs = 0;
      }
      c.tsqSegs += segs;
    }
    if (len > 0 && !retrans) this.mib.TcpExtTCPOrigDataSent += segs;
    this.xmit(pkt, c.localAddr, c.remoteAddr, c, ecn >>> 8, segs);
  }

  sendProbe(c: TcpConnection): void {
    const spec = this.spec;
    spec.mss = 0;
    spec.wscale = -1;
    spec.sackPermitted = false;
    spec.sackCount = 0;
    if (c.tsOk) {
      this.tsSpec.val = c.tsNow(this.time.now());
      this.tsSpec.ecr = c.tsRecent;
      spec.ts = this.tsSpec;
    } else spec.ts = null;
    const pkt = this.pool.alloc(TCP_HEADER_LEN + 40);
    const optLen = emitTcpOptions(spec, pkt.buf, pkt.start + TCP_HEADER_LEN);
    pkt.end = pkt.start + TCP_HEADER_LEN + optLen;
    const wnd = c.selectWindow();
    this.finish(pkt, c.localAddr, c.remoteAddr, c.localPort, c.remotePort, seqAdd(c.sndUna, -1), c.rcvNxt, TCP_ACK, wnd, optLen);
    c.segmentSent(0);
    this.xmit(pkt, c.localAddr, c.remoteAddr, c);
  }

  /** Linux tcp_v4_timewait_ack: snd_nxt, rcv_nxt, the last window, and timestamps if agreed. */
  private sendTimeWaitAck(tw: TimeWaitRecord): void {
    const spec = this.spec;
    spec.mss = 0;
    spec.wscale = -1;
    spec.sackPermitted = false;
    spec.sackCount = 0;
    if (tw.tsOk) {
      this.tsSpec.val = (Math.floor(this.time.now()) + tw.tsOffset) >>> 0;
      this.tsSpec.ecr = tw.tsRecent;
      spec.ts = this.tsSpec;
    } else spec.ts = null;
    const pkt = this.pool.alloc(TCP_HEADER_LEN + 40);
    const optLen = emitTcpOptions(spec, pkt.buf, pkt.start + TCP_HEADER_LEN);
    pkt.end = pkt.start + TCP_HEADER_LEN + optLen;
    this.finish(pkt, tw.localAddr, tw.remoteAddr, tw.localPort, tw.remotePort, tw.sndNxt, tw.rcvNxt, TCP_ACK, tw.wndField, optLen);
    this.mib.TcpOutSegs++;
    const o = this.outOpts;
    o.src = tw.localAddr;
    o.mark = tw.mark;
    o.oif = tw.boundDev;
    o.tos = 0;
    this.ip.output(pkt, tw.remoteAddr, IPPROTO_TCP, o);
  }

  sendReset(laddr: number, lport: number, raddr: number, rport: number, seq: number, ack: number, withAck: boolean): void {
    const pkt = this.pool.alloc(TCP_HEADER_LEN);
    this.mib.TcpOutRsts++;
    this.finish(pkt, laddr, raddr, lport, rport, seq, withAck ? ack : 0, withAck ? TCP_RST | TCP_ACK : TCP_RST, 0, 0);
    this.xmit(pkt, laddr, raddr, null);
  }

  // =====================================================================
  // ICMP errors (RFC 5927, RFC 1122 §4.2.3.9, RFC 1191)
  // =====================================================================

  private icmpError(e: IcmpErrorInfo): void {
    if (e.origProto !== IPPROTO_TCP || e.origPayload.length < 8) return;
    const p = e.origPayload;
    const sport = getU16(p, 0);
    const dport = getU16(p, 2);
    const seq = getU32(p, 4);
    const c = this.lookup(e.origSrc, sport, e.origDst, dport);
    if (c === null) return;
    // RFC 5927 §4.1: the quoted sequence number must be one we have sent and not had acknowledged.
    if (c.state !== TcpState.SYN_SENT && (seqLt(seq, c.sndUna) || seqGe(seq, seqAdd(c.sndMax, 1)))) return;
    if (c.state === TcpState.SYN_SENT && !seqLe(seq, c.sndMax)) return;
    if (e.type === ICMP_DEST_UNREACH) {
      if (e.code === 4) {
        // RFC 1191: fragmentation needed: a smaller path MTU.
        if (e.mtu > 0) this.batched(() => c.pmtuChanged(e.mtu));
        return;
      }
      c.icmpError(unreachErrno(e.code), true);
    } else if (e.type === ICMP_TIME_EXCEEDED) c.icmpError('EHOSTUNREACH', false);
    else if (e.type === ICMP_PARAM_PROBLEM) c.icmpError('EPROTO', false);
  }

  /** The closing of everything (stack shutdown). */
  closeAll(): void {
    for (const c of [...this.connections]) c.finish(null);
    this.timeWait.clear();
    for (const l of this.listenerList()) l.close();
  }
}
