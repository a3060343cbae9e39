/**
 * A TCP server shaped like Node's net.Server: listen, close, address,
 * getConnections, maxConnections, and the events listening, connection,
 * close and error. Each accepted connection arrives as a TcpSocket.
 */
import { EventEmitter } from 'node:events';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import { checkMark, nodeError, systemError } from '../errors.js';
import type { TcpConnection } from './connection.js';
import { TcpListener, type ListenUser } from './listen.js';
import { TcpSocket, type AddressInfo, type TcpSocketOptions } from './socket.js';
import type { Tcp } from './tcp.js';
import { LinkedSet } from '../packet/chains.js';

export interface TcpServerOptions extends TcpSocketOptions {
  /** Node's pauseOnConnect: accepted sockets start paused. */
  pauseOnConnect?: boolean;
  /**
   * TCP Fast Open (RFC 7413), Linux's setsockopt(TCP_FASTOPEN, qlen): a number is the
   * queue of Fast Open connections not yet through their handshake, `true` the listen
   * backlog. As in Linux, the server bit (2) of net.ipv4.tcp_fastopen must be set too.
   */
  fastOpen?: boolean | number;
}

export interface ListenOptions {
  port?: number;
  host?: string;
  backlog?: number;
}

/** Node's default backlog for listen(). */
const DEFAULT_BACKLOG = 511;

export class TcpServer extends EventEmitter implements ListenUser {
  private listener: TcpListener | null = null;
  private readonly sockets = new LinkedSet<TcpSocket>();
  /** Node's maxConnections: more are closed as they arrive. */
  maxConnections = Infinity;
  private closing = false;

  constructor(
    readonly tcp: Tcp,
    private readonly opts: TcpServerOptions = {},
    connectionListener?: (socket: TcpSocket) => void,
  ) {
    super();
    if (connectionListener) this.on('connection', connectionListener);
  }

  get listening(): boolean {
    return this.listener !== null;
  }

  listen(port?: number, host?: string, backlog?: number, cb?: () => void): this;
  listen(port?: number, host?: string, cb?: () => void): this;
  listen(port?: number, cb?: () => void): this;
  listen(options: ListenOptions, cb?: () => void): this;
  listen(...args: unknown[]): this {
    let port = 0;
    let host: string | undefined;
    let backlog = DEFAULT_BACKLOG;
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    if (typeof args[0] === 'object' && args[0] !== null) {
      const o = args[0] as ListenOptions;
      port = o.port ?? 0;
      host = o.host;
      backlog = o.backlog ?? backlog;
    } else {
      if (args[0] !== undefined && args[0] !== null) port = Number(args[0]);
      if (typeof args[1] === 'string') host = args[1];
      if (typeof args[1] === 'number') backlog = args[1];
      if (typeof args[2] === 'number') backlog = args[2];
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw nodeError('ERR_SOCKET_BAD_PORT', `options.port should be >= 0 and < 65536. Received ${String(port)}.`, RangeError);
    if (this.listener !== null) throw nodeError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    let addr = 0;
    if (host !== undefined && host !== '0.0.0.0' && host !== '::' && host !== '') {
      const a = host === 'localhost' ? 0x7f000001 : parseIp4(host);
      if (a === null) throw nodeError('ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${host}`, TypeError);
      addr = a;
    }
    if (cb) this.once('listening', cb);
    const mark = checkMark(this.opts.mark);
    const l = new TcpListener(this.tcp, addr, port, backlog, this);
    if (this.opts.bindToDevice) {
      const dev = this.tcp.device(this.opts.bindToDevice);
      if (dev === undefined) {
        process.nextTick(() => this.emit('error', systemError('ENODEV', 'setsockopt')));
        return this;
      }
      l.boundDev = dev;
    }
    l.mark = mark;
    const fo = this.opts.fastOpen;
    if (fo !== undefined && fo !== false) l.enableFastOpen(fo === true ? l.backlog : Math.floor(Number(fo)));
    const err = this.tcp.addListener(l);
    if (err !== null) {
      process.nextTick(() => this.emit('error', systemError(err, 'listen', formatIp4(addr), port)));
      return this;
    }
    this.listener = l;
    this.closing = false;
    process.nextTick(() => this.emit('listening'));
    return this;
  }

  /** ListenUser: a connection finished its handshake. */
  incoming(c: TcpConnection): boolean {
    if (this.sockets.size >= this.maxConnections) {
      // Node closes connections beyond maxConnections at once.
      c.close(false);
      this.emit('drop', { localAddress: formatIp4(c.localAddr), localPort: c.localPort, remoteAddress: formatIp4(c.remoteAddr), remotePort: c.remotePort, remoteFamily: 'IPv4' });
      return true;
    }
    const s = new TcpSocket(this.tcp, this.opts);
    s.server = this;
    s.attach(c);
    this.sockets.add(s.serverLink);
    s.once('close', () => {
      this.sockets.delete(s.serverLink);
      this.maybeClosed();
    });
    if (this.opts.pauseOnConnect) s.pause();
    this.emit('connection', s);
    return true;
  }

  close(cb?: (err?: Error) => void): this {
    if (this.listener === null) {
      if (cb) process.nextTick(() => cb(nodeError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      return this;
    }
    if (cb) this.once('close', () => cb());
    this.listener.close();
    this.listener = null;
    this.closing = true;
    this.maybeClosed();
    return this;
  }

  private maybeClosed(): void {
    if (this.closing && this.sockets.size === 0) {
      this.closing = false;
      process.nextTick(() => this.emit('close'));
    }
  }

  address(): AddressInfo | null {
    const l = this.listener;
    return l !== null ? { address: formatIp4(l.addr), family: 'IPv4', port: l.port } : null;
  }

  getConnections(cb: (err: Error | null, count: number) => void): this {
    const n = this.sockets.size;
    process.nextTick(() => cb(null, n));
    return this;
  }

  /** Node 18.2+: destroys every connection (closeAllConnections on http.Server). */
  closeAllConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}
