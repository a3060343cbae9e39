/**
 * Echo (RFC 862), discard (RFC 863) and character generator (RFC 864) over
 * TCP, served inside the stack: each connection's user works on the
 * connection directly, without a stream in between.
 */
import type { Tcp } from '../tcp/tcp.js';
import type { TcpConnection, TcpUser } from '../tcp/connection.js';
import { TcpListener, type ListenUser } from '../tcp/listen.js';
import { LinkedSet, ListLink } from '../packet/chains.js';
import { ServiceError, type RunningService } from './service.js';
import type { Errno } from '../errors.js';

const STRERROR: Partial<Record<Errno, string>> = {
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

export type TcpServiceKind = 'echo' | 'discard' | 'chargen';

/** RFC 864: lines of 72 printable characters, each starting one further along the 95 of them. */
const CHARGEN_LINE = 72;
const CHARGEN_PATTERN = ((): Uint8Array => {
  const out = new Uint8Array(95 * (CHARGEN_LINE + 2));
  let o = 0;
  for (let i = 0; i < 95; i++) {
    for (let j = 0; j < CHARGEN_LINE; j++) out[o++] = 32 + ((i + j) % 95);
    out[o++] = 13;
    out[o++] = 10;
  }
  return out;
})();

abstract class ServiceUser implements TcpUser {
  /** Membership of the service's connections. */
  readonly link: ListLink<TcpConnection>;
  constructor(
    protected readonly tcp: Tcp,
    protected readonly c: TcpConnection,
    private readonly owner: TcpService,
  ) {
    this.link = new ListLink(c);
  }
  onConnected(): void {}
  abstract onData(data: Uint8Array): void;
  onEof(): void {
    // The client is done: so are we, once what we owe it has gone.
    this.c.shutdownWrite();
  }
  onRoom(): void {}
  onClosed(): void {
    this.owner.conns.delete(this.link);
  }
  rcvQueued(): number {
    return 0;
  }
}

class DiscardUser extends ServiceUser {
  onData(): void {}
}

/**
 * Echoes what arrives; what the send buffer can't take yet holds receive window.
 * A chunk goes in as far as the send buffer has room and the rest waits, as a
 * write(2) on a Linux socket takes what fits and blocks for the rest (tcp_sendmsg,
 * sk_stream_wait_memory): one chunk can be larger than the whole send buffer (a
 * 64 KB super-packet, a hole filled in front of queued out-of-order data), and
 * waiting for room for all of it at once would wait forever.
 */
class EchoUser extends ServiceUser {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private eofSeen = false;
  onData(data: Uint8Array): void {
    const copy = new Uint8Array(data.length);
    copy.set(data);
    const idle = this.pendingBytes === 0;
    this.pending.push(copy);
    this.pendingBytes += copy.length;
    if (idle) this.drain();
  }
  override onEof(): void {
    this.eofSeen = true;
    if (this.pendingBytes === 0) this.c.shutdownWrite();
  }
  override onRoom(): void {
    const c = this.c;
    this.drain();
    if (this.pendingBytes === 0 && this.eofSeen) c.shutdownWrite();
    c.consumed();
    this.tcp.defer(c);
  }
  /** Writes what is pending as far as the send buffer has room; a chunk may go in part. */
  private drain(): void {
    const c = this.c;
    while (this.pending.length > 0) {
      const room = c.sendRoom;
      if (room <= 0) break;
      const d = this.pending[0];
      if (room >= d.length) {
        this.pending.shift();
        this.pendingBytes -= d.length;
        c.write(d);
      } else {
        this.pending[0] = d.subarray(room);
        this.pendingBytes -= room;
        c.write(d.subarray(0, room));
      }
    }
  }
  override rcvQueued(): number {
    return this.pendingBytes;
  }
}

/** Sends the RFC 864 pattern for as long as the client reads; what it sends is ignored. */
class ChargenUser extends ServiceUser {
  private pos = 0;
  onData(): void {}
  override onConnected(): void {
    this.fill();
  }
  override onEof(): void {
    this.c.shutdownWrite();
  }
  override onRoom(): void {
    this.fill();
    this.tcp.defer(this.c);
  }
  fill(): void {
    const c = this.c;
    if (c.finQueued) return;
    while (c.sendRoom > 0) {
      const n = Math.min(c.sendRoom, CHARGEN_PATTERN.length - this.pos, 16384);
      c.write(CHARGEN_PATTERN.subarray(this.pos, this.pos + n));
      this.pos = (this.pos + n) % CHARGEN_PATTERN.length;
    }
  }
}

export class TcpService implements RunningService, ListenUser {
  private readonly listener: TcpListener;
  readonly conns = new LinkedSet<TcpConnection>();

  constructor(
    private readonly tcp: Tcp,
    private readonly kind: TcpServiceKind,
    addr: number,
    port: number,
    label: string,
    /** TCP_FASTOPEN's queue length for the listener (0: none). */
    fastOpen = 0,
  ) {
    this.listener = new TcpListener(tcp, addr, port, 511, this);
    if (fastOpen > 0) this.listener.enableFastOpen(fastOpen);
    const err = tcp.addListener(this.listener);
    if (err !== null) throw new ServiceError(`${label}: ${STRERROR[err] ?? err}`, err);
  }

  incoming(c: TcpConnection): boolean {
    let u: ServiceUser;
    switch (this.kind) {
      case 'echo':
        u = new EchoUser(this.tcp, c, this);
        break;
      case 'discard':
        u = new DiscardUser(this.tcp, c, this);
        break;
      case 'chargen':
        u = new ChargenUser(this.tcp, c, this);
        break;
    }
    c.user = u;
    this.conns.add(u.link);
    u.onConnected();
    this.tcp.defer(c);
    return true;
  }

  close(): void {
    this.listener.close();
    for (const c of this.conns) c.abort();
    this.conns.clear();
  }
}
