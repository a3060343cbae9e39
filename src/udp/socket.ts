/**
 * A UDP socket shaped like Node's dgram.Socket (udp4), over one UdpEndpoint.
 * Results arrive as Node delivers them: events and callbacks run later, on the
 * Stack's clock, never inside the call that caused them; misuse throws Node's
 * ERR_* errors at once.
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import type { IcmpErrorInfo } from '../ip/icmp.js';
import type { Timer } from '../time/timers.js';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import { checkMark, lookupError, nodeError, systemError, type Errno } from '../errors.js';
import type { Udp, UdpEndpoint, UdpReceiver } from './udp.js';

export interface RemoteInfo {
  address: string;
  family: 'IPv4';
  port: number;
  size: number;
}

export interface AddressInfo {
  address: string;
  family: 'IPv4';
  port: number;
}

export interface BindOptions {
  port?: number;
  address?: string;
  /** Accepted for Node compatibility; there is no cluster to share with. */
  exclusive?: boolean;
}

export interface UdpSocketOptions {
  type?: 'udp4';
  /** SO_REUSEADDR: several sockets that all set it may bind one port. */
  reuseAddr?: boolean;
  recvBufferSize?: number;
  /** SO_MARK: every datagram carries this mark (netfilter's `meta mark`) and the route is chosen with it (`ip rule fwmark`). */
  mark?: number;
  /**
   * SO_BINDTODEVICE: the interface's name. Datagrams leave by it (the route is
   * looked up among routes through it, else the destination is taken as on its
   * link) and only those arriving on it are received. No such interface: ENODEV, thrown.
   */
  bindToDevice?: string;
}

/** Called with no argument once connected, or with the error. */
export type ConnectCallback = (error?: Error) => void;
export type SendCallback = (error: Error | null, bytes?: number) => void;
export type MessagePart = string | Uint8Array | DataView;
export type Message = MessagePart | readonly MessagePart[];

/** net.core.rmem_default: bytes a socket may hold unread. */
export const DEFAULT_RCVBUF = 212992;
/** Charged per queued datagram on top of its data, so empty datagrams fill the buffer too. */
const DATAGRAM_OVERHEAD = 64;

interface Queued {
  data: Buffer;
  address: number;
  port: number;
}

type State = 'unbound' | 'bound' | 'closed';

export interface UdpSocket {
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): this;
  on(event: 'listening' | 'connect' | 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  once(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): this;
  once(event: 'listening' | 'connect' | 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
}

export class UdpSocket extends EventEmitter implements UdpReceiver {
  private readonly ep: UdpEndpoint;
  private state: State = 'unbound';
  private isConnected = false;
  private readonly timer: Timer;
  /** Events and callbacks due, in order. */
  private tasks: (() => void)[] = [];
  /** The receive queue and its size as charged against the receive buffer. */
  private queue: Queued[] = [];
  private queued = 0;
  private rcvbuf: number;

  constructor(
    private readonly udp: Udp,
    opts: UdpSocketOptions = {},
  ) {
    super();
    const mark = checkMark(opts.mark);
    const dev = opts.bindToDevice ? udp.device(opts.bindToDevice) : null;
    if (dev === undefined) throw systemError('ENODEV', 'setsockopt');
    this.ep = udp.open(this);
    this.ep.reuseAddr = opts.reuseAddr === true;
    this.ep.mark = mark;
    this.ep.boundDev = dev;
    this.timer = udp.time.timer(() => this.run());
    this.rcvbuf = opts.recvBufferSize ?? DEFAULT_RCVBUF;
  }

  // ---- bind / connect ----

  bind(port?: number, address?: string, callback?: () => void): this;
  bind(port: number, callback: () => void): this;
  bind(callback: () => void): this;
  bind(options: BindOptions, callback?: () => void): this;
  bind(a?: number | BindOptions | (() => void), b?: string | (() => void), c?: () => void): this {
    this.healthCheck();
    if (this.state !== 'unbound') throw nodeError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    let port: unknown = a;
    let address: unknown = b;
    let callback: unknown = c;
    if (typeof a === 'function') {
      callback = a;
      port = 0;
      address = undefined;
    } else if (a !== null && typeof a === 'object') {
      port = a.port ?? 0;
      address = a.address;
      callback = b;
    } else if (typeof b === 'function') {
      callback = b;
      address = undefined;
    }
    const p = checkPort(port ?? 0, true);
    if (address !== undefined && address !== null && typeof address !== 'string') throw argType('address', 'string', address);
    if (typeof callback === 'function') this.once('listening', callback as () => void);
    const name = address === undefined || address === null || address === '' ? '0.0.0.0' : address;
    const addr = resolve(name);
    if (addr === null) {
      this.later(() => this.emit('error', lookupError(name)));
      return this;
    }
    const err = this.udp.bind(this.ep, addr, p);
    if (err !== null) {
      this.later(() => this.emit('error', systemError(err, 'bind', name, p)));
      return this;
    }
    this.state = 'bound';
    this.later(() => {
      if (this.state === 'bound') this.emit('listening');
    });
    return this;
  }

  /** Fixes the peer: sends go there, and only its datagrams are received. */
  connect(port: number, address?: string, callback?: ConnectCallback): void;
  connect(port: number, callback: ConnectCallback): void;
  connect(port: number, b?: string | ConnectCallback, c?: ConnectCallback): void {
    this.healthCheck();
    if (this.isConnected) throw nodeError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    const p = checkPort(port, false);
    let address: string | undefined;
    let callback = c;
    if (typeof b === 'function') callback = b;
    else address = b;
    if (address !== undefined && typeof address !== 'string') throw argType('address', 'string', address);
    if (callback) this.once('connect', callback);
    if (this.state === 'unbound') {
      this.bind({ port: 0 });
      if (!this.isBound()) return; // the bind error is on its way
    }
    const name = address === undefined || address === '' ? '127.0.0.1' : address;
    const fail = (e: Error): void => {
      this.later(() => {
        if (callback) {
          this.removeListener('connect', callback);
          callback.call(this, e);
        } else this.emit('error', e);
      });
    };
    const addr = resolve(name);
    if (addr === null) return fail(lookupError(name));
    const err = this.udp.connect(this.ep, addr, p);
    if (err !== null) return fail(systemError(err, 'connect', name, p));
    this.isConnected = true;
    this.later(() => {
      if (this.isConnected) this.emit('connect');
    });
  }

  disconnect(): void {
    this.healthCheck();
    if (!this.isConnected) throw nodeError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    this.udp.disconnect(this.ep);
    this.isConnected = false;
  }

  // ---- send ----

  send(msg: Message, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: Message, port?: number, callback?: SendCallback): void;
  send(msg: Message, callback?: SendCallback): void;
  send(msg: MessagePart, offset: number, length: number, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: MessagePart, offset: number, length: number, port?: number, callback?: SendCallback): void;
  send(msg: MessagePart, offset: number, length: number, callback?: SendCallback): void;
  send(msg: Message, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown): void {
    // The optional offset/length pair shifts the other arguments, as in Node.
    let data: Message = msg;
    let port: unknown = c;
    let address: unknown = d;
    let callback: unknown = e;
    if (!this.isConnected) {
      if (address || (port && typeof port !== 'function')) data = slice(msg, a, b);
      else {
        callback = port;
        port = a;
        address = b;
      }
    } else {
      if (typeof b === 'number') {
        data = slice(msg, a, b);
        if (typeof port === 'function') {
          callback = port;
          port = undefined;
        }
      } else callback = a;
      if (port || address) throw nodeError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    }
    const parts = toParts(data);
    let p = 0;
    if (!this.isConnected) p = checkPort(port, false);
    if (typeof address === 'function') {
      callback = address;
      address = undefined;
    } else if (address !== undefined && address !== null && typeof address !== 'string') throw argType('address', 'string', address);
    const cb = typeof callback === 'function' ? (callback as SendCallback) : null;
    this.healthCheck();
    if (this.state === 'unbound') {
      this.bind({ port: 0 });
      if (!this.isBound()) return; // the bind error is on its way
    }
    let dst: number;
    let name: string;
    if (this.isConnected) {
      dst = this.ep.remoteAddr;
      p = this.ep.remotePort;
      name = formatIp4(dst);
    } else {
      name = typeof address === 'string' && address !== '' ? address : '127.0.0.1';
      const r = resolve(name);
      if (r === null) return this.sendDone(cb, lookupError(name), 0);
      dst = r;
    }
    const err = this.udp.send(this.ep, parts, dst, p);
    if (err !== null) return this.sendDone(cb, systemError(err, 'send', name, p), 0);
    if (cb !== null) {
      let n = 0;
      for (const x of parts) n += x.length;
      this.sendDone(cb, null, n);
    }
  }

  private sendDone(cb: SendCallback | null, err: Error | null, bytes: number): void {
    this.later(() => {
      if (cb !== null) {
        if (err !== null) cb.call(this, err);
        else cb.call(this, null, bytes);
      } else if (err !== null) this.emit('error', err);
    });
  }

  // ---- closing and state ----

  close(callback?: () => void): this {
    this.healthCheck();
    if (typeof callback === 'function') this.once('close', callback);
    this.udp.close(this.ep);
    this.state = 'closed';
    this.isConnected = false;
    this.queue = [];
    this.queued = 0;
    this.later(() => this.emit('close'));
    return this;
  }

  address(): AddressInfo {
    if (this.state !== 'bound') throw systemError('EBADF', 'getsockname');
    return { address: formatIp4(this.ep.localAddr), family: 'IPv4', port: this.ep.localPort };
  }

  remoteAddress(): AddressInfo {
    this.healthCheck();
    if (!this.isConnected) throw nodeError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    return { address: formatIp4(this.ep.remoteAddr), family: 'IPv4', port: this.ep.remotePort };
  }

  /**
   * Like IP_MTU_DISCOVER = IP_PMTUDISC_DO: datagrams go with DF set, and one
   * larger than the route's MTU fails with EMSGSIZE instead of being fragmented.
   */
  setDontFragment(on: boolean): void {
    this.ep.dontFrag = on;
  }

  /** SO_BROADCAST: without it, sending to a broadcast address fails with EACCES. */
  setBroadcast(flag: boolean): void {
    if (this.state !== 'bound') throw systemError('EBADF', 'setBroadcast');
    this.ep.broadcast = flag;
  }

  /** IP_TTL, 1 to 255. */
  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw argType('ttl', 'number', ttl);
    if (this.state !== 'bound') throw systemError('EBADF', 'setTTL');
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw systemError('EINVAL', 'setTTL');
    this.ep.ttl = ttl;
    return ttl;
  }

  /** The receive buffer: what may wait unread before datagrams are dropped (UdpRcvbufErrors). */
  setRecvBufferSize(size: number): void {
    if (!Number.isInteger(size) || size < 0) throw nodeError('ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer', TypeError);
    this.rcvbuf = size;
  }

  getRecvBufferSize(): number {
    return this.rcvbuf;
  }

  /** Sockets never keep the process alive here (devices do); kept for Node compatibility. */
  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  // ---- from the endpoint ----

  datagram(data: Uint8Array, src: number, srcPort: number): boolean {
    if (this.state === 'closed') return false;
    const cost = data.length + DATAGRAM_OVERHEAD;
    // Like Linux's __udp_enqueue_schedule_skb: an empty queue always takes one datagram.
    if (this.queued > 0 && this.queued + cost > this.rcvbuf) return false;
    this.queue.push({ data: Buffer.from(data), address: src, port: srcPort });
    this.queued += cost;
    this.wake();
    return true;
  }

  rcvQueued(): number {
    return this.queued;
  }

  rcvBufSize(): number {
    return this.rcvbuf;
  }

  icmpError(code: Errno, _info: IcmpErrorInfo): void {
    if (!this.isConnected) return;
    // Node reports a pending socket error through its next receive.
    const e = systemError(code, 'recvmsg');
    this.later(() => {
      if (this.state !== 'closed') this.emit('error', e);
    });
  }

  // ---- deferred work ----

  private isBound(): boolean {
    return this.state === 'bound';
  }

  private healthCheck(): void {
    if (this.state === 'closed') throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
  }

  private later(fn: () => void): void {
    this.tasks.push(fn);
    this.wake();
  }

  private wake(): void {
    if (!this.timer.armed) this.udp.time.arm(this.timer, 0);
  }

  private run(): void {
    const tasks = this.tasks;
    this.tasks = [];
    let i = 0;
    try {
      for (; i < tasks.length; i++) tasks[i]();
    } finally {
      if (++i < tasks.length) {
        // A listener threw: keep what is left for the next round.
        this.tasks = tasks.slice(i).concat(this.tasks);
        this.wake();
      }
    }
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    let k = 0;
    try {
      for (; k < q.length && this.state !== 'closed'; k++) {
        const m = q[k];
        this.queued -= m.data.length + DATAGRAM_OVERHEAD;
        this.emit('message', m.data, { address: formatIp4(m.address), family: 'IPv4', port: m.port, size: m.data.length });
      }
    } finally {
      if (++k < q.length && this.state !== 'closed') {
        this.queue = q.slice(k).concat(this.queue);
        this.wake();
      }
    }
  }
}

/** Dotted quads, and "localhost" as Node's lookup gives it; no DNS here. */
function resolve(name: string): number | null {
  return name === 'localhost' ? 0x7f000001 : parseIp4(name);
}

function checkPort(port: unknown, allowZero: boolean): number {
  if (typeof port === 'string' && /^\d+$/.test(port.trim())) port = Number(port);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535)
    throw nodeError('ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${describe(port)}.`, RangeError);
  return port;
}

function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (typeof v === 'function') return 'function';
  if (typeof v === 'object') return 'an instance of ' + ((v as object).constructor?.name ?? 'Object');
  return `type ${typeof v} (${String(v)})`;
}

function argType(name: string, expected: string, v: unknown): Error {
  return nodeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be of type ${expected}. Received ${describe(v)}`, TypeError);
}

function toBytes(part: unknown): Uint8Array {
  if (typeof part === 'string') return Buffer.from(part, 'utf8');
  if (part instanceof Uint8Array) return part;
  if (ArrayBuffer.isView(part)) return new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
  throw argType('buffer', 'string or an instance of Buffer, TypedArray, or DataView', part);
}

function toParts(msg: Message): Uint8Array[] {
  if (Array.isArray(msg)) return msg.map(toBytes);
  return [toBytes(msg)];
}

/** `offset` and `length` within one buffer, checked as Node checks them. */
function slice(msg: Message, offset: unknown, length: unknown): Uint8Array {
  const b = toBytes(msg);
  const o = Number(offset) >>> 0;
  const n = Number(length) >>> 0;
  if (o > b.length) throw nodeError('ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds', RangeError);
  if (o + n > b.length) throw nodeError('ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds', RangeError);
  return b.subarray(o, o + n);
}
