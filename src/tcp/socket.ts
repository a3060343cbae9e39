/**
 * A TCP socket shaped like Node's net.Socket: a stream.Duplex over one
 * TcpConnection, with Node's events, properties and error codes, so that
 * Node's http, https and tls run over it unchanged. Backpressure comes from
 * the connection's send buffer; the receive window from what the stream holds.
 */
import { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import type { Timer } from '../time/timers.js';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import { checkMark, lookupError, nodeError, systemError, type Errno } from '../errors.js';
import type { TcpConnection, TcpUser } from './connection.js';
import type { Tcp } from './tcp.js';
import { TcpState } from './state.js';
import { ListLink } from '../packet/chains.js';

export interface TcpSocketOptions {
  /** Keep the writable side open after the peer's FIN (Node's allowHalfOpen). */
  allowHalfOpen?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  /** Congestion control for this socket (TCP_CONGESTION); default net.ipv4.tcp_congestion_control. */
  congestion?: string;
  /**
   * SO_MARK: every segment carries this mark (netfilter's `meta mark`), and the
   * route is chosen with it (`ip rule fwmark`). A server's accepted sockets inherit it.
   */
  mark?: number;
  /**
   * SO_BINDTODEVICE: the interface's name. Segments leave by it (the route is
   * looked up among routes through it, else the destination is taken as on its
   * link) and only segments arriving on it reach the socket. No such interface: ENODEV.
   */
  bindToDevice?: string;
  /**
   * SO_MAX_PACING_RATE, bytes per second: caps the connection's pacing_rate and, as
   * in Linux without the fq qdisc, makes TCP space its segments at that rate itself.
   */
  maxPacingRate?: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export interface TcpConnectOptions extends TcpSocketOptions {
  port: number;
  host?: string;
  localAddress?: string;
  localPort?: number;
  timeout?: number;
  /**
   * TCP Fast Open (RFC 7413), as Linux's TCP_FASTOPEN_CONNECT: with a cookie for the
   * destination, what is written in the same tick as connect() goes in the SYN; without
   * one, the SYN asks for a cookie and the data follows the handshake. Needs the client
   * bit (1) of net.ipv4.tcp_fastopen (on by default); without it this is a plain connect.
   */
  fastOpen?: boolean;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4';
  port: number;
}

type Pending = { chunk: Uint8Array; cb: (err?: Error | null) => void };
/** An entry of a Writable's buffer (Node's writableBuffer, not in its typings). */
type StreamEntry = { chunk: Uint8Array | string; encoding: BufferEncoding };

export class TcpSocket extends Duplex implements TcpUser {
  conn: TcpConnection | null = null;
  /** Membership of its server's sockets (packet/chains.ts). */
  readonly serverLink = new ListLink<TcpSocket>(this);
  connecting = false;
  /** Bytes handed to write() that reached the connection (Node's bytesWritten counts them). */
  private written = 0;
  private received = 0;
  /** Writes waiting for the connection (connecting) or for send-buffer room. */
  private waiting: Pending[] = [];
  private finalCb: ((err?: Error | null) => void) | null = null;
  private idleMs = 0;
  private idleTimer: Timer | null = null;
  /**
   * When the idle timeout is due (ms), or -1. Activity moves it on and leaves the timer
   * as it is; the timer re-arms itself when it fires early. setTimeout(0) clears it
   * alone: node:http's keep-alive timeout, set after each response and cleared by the
   * next request, then costs no timer operation per request.
   */
  private idleDue = -1;
  private remote: { addr: number; port: number } | null = null;
  private local: { addr: number; port: number } | null = null;
  private ccName: string | undefined;
  private readonly mark: number;
  private readonly device: string | undefined;
  private noDelayOpt = false;
  private maxPacingRateOpt: number | null = null;
  private keepAliveOpt: { enable: boolean; delay: number } | null = null;
  /** The connection ended with an error that has not been reported yet. */
  private failed: Errno | null = null;
  server: unknown = null;

  constructor(
    readonly tcp: Tcp,
    opts: TcpSocketOptions = {},
  ) {
    super({
      allowHalfOpen: opts.allowHalfOpen ?? false,
      readableHighWaterMark: opts.readableHighWaterMark,
      writableHighWaterMark: opts.writableHighWaterMark,
      // Node's net.Socket: end() and destroy() are ours to order; close follows destroy.
      emitClose: true,
      autoDestroy: true,
      // As net.Socket: a string goes to _write as it is and is encoded straight into the
      // send buffer (SendArena.copyString), not first into a Buffer of its own.
      decodeStrings: false,
    });
    this.ccName = opts.congestion;
    this.mark = checkMark(opts.mark);
    this.device = opts.bindToDevice || undefined;
    if (opts.noDelay) this.noDelayOpt = true;
    if (opts.maxPacingRate !== undefined) this.maxPacingRateOpt = checkPacingRate(opts.maxPacingRate);
    if (opts.keepAlive) this.keepAliveOpt = { enable: true, delay: opts.keepAliveInitialDelay ?? 0 };
  }

  /** Wraps an accepted connection (the server side). */
  attach(c: TcpConnection): void {
    this.conn = c;
    c.user = this;
    this.remote = { addr: c.remoteAddr, port: c.remotePort };
    this.local = { addr: c.localAddr, port: c.localPort };
    this.applyOptions();
    // Data (and a FIN) that arrived before the socket existed come from the connection next.
  }

  private applyOptions(): void {
    const c = this.conn;
    if (c === null) return;
    c.noDelay = this.noDelayOpt;
    if (this.maxPacingRateOpt !== null) c.setMaxPacingRate(this.maxPacingRateOpt);
    if (this.keepAliveOpt !== null) this.applyKeepAlive(this.keepAliveOpt.enable, this.keepAliveOpt.delay);
  }

  // ---- connect ----

  connect(options: TcpConnectOptions, listener?: () => void): this;
  connect(port: number, host?: string, listener?: () => void): this;
  connect(port: number, listener?: () => void): this;
  connect(a: number | TcpConnectOptions, b?: string | (() => void), c?: () => void): this {
    let opts: TcpConnectOptions;
    let cb: (() => void) | undefined;
    if (typeof a === 'object') {
      opts = a;
      cb = typeof b === 'function' ? b : undefined;
    } else {
      opts = { port: a, host: typeof b === 'string' ? b : undefined };
      cb = typeof b === 'function' ? b : c;
    }
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw nodeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${String(opts.port)}.`, RangeError);
    if (this.conn !== null || this.connecting) throw nodeError('ERR_SOCKET_CONNECTION_TIMEOUT', 'Socket is already connecting or connected');
    if (cb) this.once('connect', cb);
    if (opts.timeout) this.setTimeout(opts.timeout);
    const host = opts.host ?? '127.0.0.1';
    const addr = host === 'localhost' ? 0x7f000001 : parseIp4(host);
    this.connecting = true;
    if (addr === null) {
      process.nextTick(() => this.destroy(lookupError(host)));
      return this;
    }
    let laddr = 0;
    if (opts.localAddress !== undefined) {
      const l = parseIp4(opts.localAddress);
      if (l === null) throw nodeError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${opts.localAddress}`, TypeError);
      laddr = l;
    }
    // setsockopt(SO_BINDTODEVICE) before connect: a name no interface has is ENODEV.
    const dev = this.device !== undefined ? this.tcp.device(this.device) : null;
    if (dev === undefined) {
      process.nextTick(() => this.destroy(systemError('ENODEV', 'setsockopt')));
      return this;
    }
    const conn = this.tcp.newConnection();
    if (opts.fastOpen === true) conn.tfo = this.tcp.fastOpen.activeRequest(addr);
    conn.mark = this.mark;
    conn.boundDev = dev;
    if (this.ccName !== undefined) this.tcp.setCongestion(conn, this.ccName);
    conn.user = this;
    this.conn = conn;
    this.remote = { addr, port };
    this.applyOptions();
    const err = this.tcp.activeOpen(conn, addr, port, laddr, opts.localPort ?? 0);
    if (err !== null) {
      this.conn = null;
      conn.user = null;
      process.nextTick(() => this.destroy(systemError(err, 'connect', formatIp4(addr), port)));
      return this;
    }
    this.local = { addr: conn.localAddr, port: conn.localPort };
    // Fast Open with a cookie: the SYN leaves once this tick's writes are in (they go in it).
    if (conn.tfo !== null && conn.tfo.deferred) process.nextTick(() => this.fastOpenSyn(conn));
    return this;
  }

  private fastOpenSyn(conn: TcpConnection): void {
    if (this.conn !== conn || conn.state !== TcpState.CLOSED) return;
    for (;;) {
      const p = this.waiting[0];
      if (p === undefined || conn.sendRoom < p.chunk.length) break;
      this.waiting.shift();
      this.put(conn, p.chunk);
      p.cb();
    }
    this.tcp.batched(() => conn.openActive());
  }

  // ---- TcpUser ----

  onConnected(): void {
    this.connecting = false;
    const c = this.conn!;
    this.local = { addr: c.localAddr, port: c.localPort };
    this.touch();
    // Writes made while connecting go out now.
    this.pump();
    this.emit('connect');
    this.emit('ready');
  }

  onData(d: Uint8Array, owned: boolean): void {
    this.received += d.length;
    this.touch();
    // A view of a receive buffer is copied (the buffer is read into again); a piece the
    // connection copied already (out of order, before accept) is handed over as it is.
    this.push(owned ? Buffer.from(d.buffer, d.byteOffset, d.length) : Buffer.from(d));
  }

  onEof(): void {
    this.push(null);
  }

  rcvQueued(): number {
    return this.readableLength;
  }

  onClosed(err: Errno | null): void {
    const wasConnecting = this.connecting;
    this.connecting = false;
    this.cancelIdle();
    if (err !== null) {
      this.failed = err;
      const syscall = wasConnecting ? 'connect' : 'read';
      const e = wasConnecting && this.remote !== null ? systemError(err, syscall, formatIp4(this.remote.addr), this.remote.port) : systemError(err, syscall);
      this.conn = null;
      this.destroy(e);
      return;
    }
    // A clean end: whatever waits to be written can no longer go.
    for (const p of this.waiting.splice(0)) p.cb(systemError('EPIPE', 'write'));
    if (this.finalCb !== null) {
      const cb = this.finalCb;
      this.finalCb = null;
      cb();
    }
  }

  // ---- stream plumbing ----

  override _read(): void {
    this.conn?.consumed();
  }

  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const c = this.sendable();
    if (c !== null) {
      // Nothing waits and the send buffer has room: straight in, no queue entry.
      this.put(c, chunk, enc);
      this.tcp.output(c);
      this.touch();
      cb();
      return;
    }
    this.waiting.push({ chunk: bytesOf(chunk, enc), cb });
    this.pump();
  }

  override _writev(chunks: { chunk: Buffer | string; encoding: BufferEncoding }[], cb: (err?: Error | null) => void): void {
    const n = chunks.length;
    const c = this.sendable();
    let i = 0;
    if (c !== null) {
      // As pump(): chunks go in while the send buffer has room; the rest wait.
      for (; i < n && c.sendRoom > 0; i++) {
        this.put(c, chunks[i].chunk, chunks[i].encoding);
      }
      if (i === n) {
        this.tcp.output(c);
        this.touch();
        cb();
        return;
      }
    }
    for (; i < n - 1; i++) this.waiting.push({ chunk: bytesOf(chunks[i].chunk, chunks[i].encoding), cb: noop });
    this.waiting.push({ chunk: bytesOf(chunks[n - 1].chunk, chunks[n - 1].encoding), cb });
    this.pump();
  }

  /** Puts a write into the connection's send buffer as a copy: once the write's callback has
   * run, the writer may use its buffer again (send-buffer.ts, SendArena). */
  private put(c: TcpConnection, chunk: Uint8Array | string, enc?: BufferEncoding): void {
    const arena = this.tcp.sendArena;
    const bytes = typeof chunk === 'string' ? arena.copyString(chunk, enc) : arena.copy(chunk);
    c.write(bytes);
    this.written += bytes.length;
  }

  /** The connection, when a write may go straight into it: nothing waits, the state sends, there is room. */
  private sendable(): TcpConnection | null {
    const c = this.conn;
    if (c === null || this.connecting || this.waiting.length > 0 || c.sendRoom <= 0) return null;
    const st = c.state;
    return st === TcpState.ESTABLISHED || st === TcpState.CLOSE_WAIT || (st === TcpState.SYN_RECEIVED && c.tfoChild) ? c : null;
  }

  /** Moves waiting writes into the connection while its send buffer has room. */
  private pump(): void {
    const c = this.conn;
    if (c === null || this.connecting) return;
    const st = c.state;
    // A Fast Open connection of a server may send before the handshake ends (RFC 7413).
    if (st !== TcpState.ESTABLISHED && st !== TcpState.CLOSE_WAIT && !(st === TcpState.SYN_RECEIVED && c.tfoChild)) {
      if (st === TcpState.SYN_SENT || st === TcpState.SYN_RECEIVED) return;
      for (const p of this.waiting.splice(0)) p.cb(systemError('EPIPE', 'write'));
      return;
    }
    if (this.waiting.length === 0) {
      // end() while connecting, with the writes already gone (in a Fast Open SYN): the FIN now.
      if (this.finalCb !== null) this.shutdown();
      return;
    }
    const w = this.waiting;
    let n = 0;
    while (n < w.length && c.sendRoom > 0) {
      this.put(c, w[n++].chunk);
    }
    const done = n === w.length ? w : w.splice(0, n);
    if (done === w) this.waiting = [];
    this.tcp.output(c);
    this.touch();
    for (let i = 0; i < done.length; i++) done[i].cb();
    if (this.finalCb !== null && this.waiting.length === 0) this.shutdown();
  }

  /** The connection freed send-buffer room: waiting writes go on. */
  onRoom(): void {
    if (this.waiting.length > 0) this.pump();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalCb = cb;
    if (this.connecting) return;
    if (this.waiting.length === 0) this.shutdown();
  }

  private shutdown(): void {
    const cb = this.finalCb;
    this.finalCb = null;
    const c = this.conn;
    if (c !== null) this.tcp.batched(() => c.shutdownWrite());
    cb?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.cancelIdle();
    this.connecting = false;
    const c = this.conn;
    this.conn = null;
    // A Fast Open connection whose SYN was still waiting for data holds its 4-tuple: let it go.
    if (c !== null && c.state === TcpState.CLOSED && c.hashed) this.tcp.unhash(c);
    if (c !== null && c.state !== TcpState.CLOSED) {
      // close(2): data nobody read means RST (RFC 9293 §3.10.4, Linux tcp_close).
      const unread = this.readableLength > 0 && !this.readableEnded;
      this.tcp.batched(() => {
        // What was written and is still held goes before a RST.
        if (unread || c.lingerZero) this.tcp.outputHeld(c);
        c.close(unread);
      });
    }
    for (const p of this.waiting.splice(0)) p.cb(err ?? systemError('EPIPE', 'write'));
    cb(err);
  }

  /** Node's socket.resetAndDestroy(): close with a RST. */
  resetAndDestroy(): this {
    const c = this.conn;
    if (c !== null && c.state !== TcpState.CLOSED) {
      this.conn = null;
      c.user = null;
      c.orphan = true;
      this.tcp.batched(() => {
        this.tcp.outputHeld(c);
        c.abort();
      });
    }
    this.destroy();
    return this;
  }

  /** Node's socket.destroySoon(): end, then destroy once written. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  // ---- options ----

  /** SO_MAX_PACING_RATE (bytes/s; Infinity for no cap): turns pacing on for this socket. */
  setMaxPacingRate(rate: number): this {
    this.maxPacingRateOpt = checkPacingRate(rate);
    this.conn?.setMaxPacingRate(this.maxPacingRateOpt);
    return this;
  }

  setNoDelay(noDelay = true): this {
    this.noDelayOpt = noDelay;
    if (this.conn !== null) {
      this.conn.noDelay = noDelay;
      // TCP_NODELAY also pushes out what Nagle was holding.
      if (noDelay) this.tcp.output(this.conn);
    }
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAliveOpt = { enable, delay: initialDelay };
    this.applyKeepAlive(enable, initialDelay);
    return this;
  }

  private applyKeepAlive(enable: boolean, initialDelayMs: number): void {
    const c = this.conn;
    if (c === null) return;
    c.keepAlive = enable;
    if (enable && initialDelayMs > 0) {
      // libuv's uv_tcp_keepalive: TCP_KEEPIDLE from the delay, with a 1 s interval and 10 probes.
      c.keepIdleS = Math.max(1, Math.floor(initialDelayMs / 1000));
      c.keepIntvlS = 1;
      c.keepCnt = 10;
    }
    if (enable) c.armKeepalive();
    else this.tcp.time.cancel(c.keepTimer);
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.idleMs = ms;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    if (ms === 0) this.cancelIdle(false);
    else this.touch();
    return this;
  }

  get timeout(): number | undefined {
    return this.idleMs || undefined;
  }

  private touch(): void {
    if (this.idleMs === 0) return;
    const time = this.tcp.time;
    this.idleDue = time.now() + this.idleMs;
    let t = this.idleTimer;
    if (t === null) t = this.idleTimer = time.timer(() => this.onIdleTimer());
    if (!t.armed || t.deadline > this.idleDue) time.arm(t, this.idleMs);
  }

  private onIdleTimer(): void {
    const due = this.idleDue;
    if (due < 0) return;
    const time = this.tcp.time;
    const now = time.now();
    if (now < due) {
      time.arm(this.idleTimer!, due - now);
      return;
    }
    this.idleDue = -1;
    this.emit('timeout');
  }

  /** No timeout due; `stop` also stops the timer (the socket is done with it). */
  private cancelIdle(stop = true): void {
    this.idleDue = -1;
    if (stop && this.idleTimer !== null) this.tcp.time.cancel(this.idleTimer);
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  // ---- properties ----

  get remoteAddress(): string | undefined {
    return this.remote !== null ? formatIp4(this.remote.addr) : undefined;
  }

  get remotePort(): number | undefined {
    return this.remote?.port;
  }

  get remoteFamily(): string | undefined {
    return this.remote !== null ? 'IPv4' : undefined;
  }

  get localAddress(): string | undefined {
    return this.local !== null ? formatIp4(this.local.addr) : undefined;
  }

  get localPort(): number | undefined {
    return this.local?.port;
  }

  get localFamily(): string | undefined {
    return this.local !== null ? 'IPv4' : undefined;
  }

  address(): AddressInfo | Record<string, never> {
    return this.local !== null ? { address: formatIp4(this.local.addr), family: 'IPv4', port: this.local.port } : {};
  }

  get bytesRead(): number {
    return this.received;
  }

  get bytesWritten(): number {
    let pending = 0;
    for (const p of this.waiting) pending += p.chunk.length;
    // As net.Socket: strings still in the stream's buffer count as their encoded bytes.
    for (const w of (this as unknown as { writableBuffer: StreamEntry[] }).writableBuffer) {
      pending += typeof w.chunk === 'string' ? Buffer.byteLength(w.chunk, w.encoding) : w.chunk.length;
    }
    return this.written + pending;
  }

  get pending(): boolean {
    return this.conn === null || this.connecting;
  }

  /** Node's readyState: opening, open, readOnly, writeOnly or closed. */
  get readyState(): 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.connecting) return 'opening';
    const r = this.readable;
    const w = this.writable;
    if (r && w) return 'open';
    if (r && !w) return 'readOnly';
    if (!r && w) return 'writeOnly';
    return 'closed';
  }

  /** The connection's error, if it failed. */
  get lastError(): Errno | null {
    return this.failed;
  }
}

function noop(): void {
  /* intermediate chunks of a writev complete with the last */
}

function checkPacingRate(rate: number): number {
  if (typeof rate !== 'number' || !(rate > 0)) throw new RangeError(`maxPacingRate must be a positive number of bytes per second, got ${String(rate)}`);
  return rate;
}

/** A write as bytes, for the queue of writes waiting for room (a string is encoded here). */
function bytesOf(chunk: Uint8Array | string, enc: BufferEncoding): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
}
