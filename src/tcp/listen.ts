/**
 * A listening endpoint (RFC 9293 §3.10.7.2): SYNs become connections in
 * SYN-RECEIVED (the SYN queue, bounded by the backlog and
 * net.ipv4.tcp_max_syn_backlog); handshakes that complete wait in the accept
 * queue until the user takes them. When the SYN queue is full, SYN cookies
 * (RFC 4987, syncookies.ts) answer instead, as Linux does with tcp_syncookies = 1.
 */
import type { Interface } from '../link/interface.js';
import type { Tcp } from './tcp.js';
import type { Segment, TcpConnection } from './connection.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { TcpState } from './state.js';
import { SynCookies } from './syncookies.js';
import { LinkedSet } from '../packet/chains.js';

/** Linux TCP_SYNCOOKIE_VALID: two minutes. */
const COOKIE_VALID_MS = 120_000;

export interface ListenUser {
  /** A connection finished its handshake; false leaves it in the accept queue. */
  incoming(c: TcpConnection): boolean;
}

export class TcpListener {
  /** Handshakes under way (SYN-RECEIVED). */
  synQueue = 0;
  /** Established connections the user has not taken yet. */
  readonly acceptQueue: TcpConnection[] = [];
  private readonly pending = new LinkedSet<TcpConnection>();
  closed = false;
  /** When this listener last answered with a SYN cookie (Linux last_overflow). */
  private lastCookieMs = -Infinity;
  /** TCP_FASTOPEN's qlen: Fast Open connections still in SYN-RECEIVED it allows (0: none). */
  fastOpenMax = 0;
  /** Fast Open connections made and not yet through their handshake. */
  private readonly fastOpenPending = new Set<TcpConnection>();
  private readonly foOut = { cookie: null as Uint8Array | null, exp: false, altKey: false };
  /** SO_MARK and SO_BINDTODEVICE, which its connections inherit. */
  mark = 0;
  boundDev: Interface | null = null;

  constructor(
    private readonly tcp: Tcp,
    public addr: number,
    public port: number,
    /** listen(2)'s backlog, capped by net.core.somaxconn. */
    public backlog: number,
    public user: ListenUser | null,
  ) {
    this.backlog = Math.min(Math.max(backlog, 0), tcp.settings.somaxconn);
  }

  /** Linux sk_acceptq_is_full: more than `backlog` connections wait. */
  acceptQueueFull(): boolean {
    return this.acceptQueue.length > this.backlog;
  }

  /**
   * The ACK that would complete a handshake finds the accept queue full (Linux
   * tcp_v4_syn_recv_sock's exit_overflow, then tcp_check_req's listen_overflow):
   * ListenOverflows and ListenDrops count it and the ACK is dropped, the connection
   * staying half-open so that a later ACK (to a retransmitted SYN-ACK) completes it;
   * with tcp_abort_on_overflow the peer gets a RST instead and the connection goes.
   * Returns true when the ACK is not to be taken.
   */
  overflow(c: TcpConnection, seg: Segment): boolean {
    if (!this.acceptQueueFull()) return false;
    const tcp = this.tcp;
    tcp.mib.TcpExtListenOverflows++;
    tcp.mib.TcpExtListenDrops++;
    if (tcp.settings.abortOnOverflow) {
      // tcp_check_req embryonic_reset: a RST for the ACK, the request dropped (EmbryonicRsts).
      if (!(seg.flags & TCP_RST)) tcp.sendReset(c.localAddr, c.localPort, c.remoteAddr, c.remotePort, seg.ack, 0, false);
      tcp.mib.TcpExtEmbryonicRsts++;
      c.listener = null;
      c.finish(null);
      this.dropped(c);
    }
    return true;
  }

  input(seg: Segment, laddr: number, lport: number, raddr: number, rport: number): void {
    const tcp = this.tcp;
    const mib = tcp.mib;
    const f = seg.flags;
    // RFC 9293 §3.10.7.2: first an RST is ignored, then an ACK gets a RST (or completes a cookie).
    if (f & TCP_RST) return;
    if (f & TCP_ACK) {
      // Linux tcp_synq_no_recent_overflow: an ACK is taken for a cookie only within two
      // minutes (TCP_SYNCOOKIE_VALID) of the last cookie sent.
      if (!(f & TCP_SYN) && tcp.settings.syncookies > 0 && tcp.time.now() - this.lastCookieMs <= COOKIE_VALID_MS) {
        const c = SynCookies.complete(tcp, this, seg, laddr, lport, raddr, rport);
        if (c !== null) return;
      }
      tcp.closedInput(seg, laddr, lport, raddr, rport);
      return;
    }
    if (!(f & TCP_SYN)) return;
    // Linux tcp_rcv_state_process (LISTEN): a SYN with FIN is dropped, uncounted.
    if (f & TCP_FIN) return;
    if (this.acceptQueueFull()) {
      // Linux tcp_conn_request: with the accept queue full, the SYN is dropped.
      mib.TcpExtListenOverflows++;
      mib.TcpExtListenDrops++;
      return;
    }
    const s = tcp.settings;
    const synFull = this.synQueue >= Math.max(this.backlog, 1) || this.synQueue >= s.maxSynBacklog;
    if (synFull || s.syncookies === 2) {
      if (s.syncookies > 0) {
        this.lastCookieMs = tcp.time.now();
        SynCookies.send(tcp, seg, laddr, lport, raddr, rport, this);
        return;
      }
      mib.TcpExtListenDrops++;
      return;
    }
    const c = tcp.passiveConnection(laddr, lport, raddr, rport, this);
    c.listener = this;
    tcp.hash(c);
    if (seg.opts.fastOpen !== null || seg.dataLen > 0) {
      // RFC 7413 (Linux tcp_try_fastopen): a good cookie makes the connection now.
      const fo = this.foOut;
      if (tcp.fastOpen.passive(this.fastOpenQueueLen(), this.fastOpenMax, seg, raddr, laddr, fo)) {
        this.fastOpenChild(c, seg);
        return;
      }
      c.synAckCookie = fo.cookie;
      c.synAckCookieExp = fo.exp;
    }
    this.synQueue++;
    this.pending.add(c.synQueueLink);
    c.openPassive(seg);
  }

  /** setsockopt(TCP_FASTOPEN, qlen): the key is made if the stack has none yet. */
  enableFastOpen(qlen: number): void {
    this.fastOpenMax = Math.max(0, qlen);
    this.tcp.fastOpen.initKeyOnce();
  }

  /** Fast Open connections still in SYN-RECEIVED (those that ended otherwise leave the count). */
  fastOpenQueueLen(): number {
    for (const c of this.fastOpenPending) if (c.state !== TcpState.SYN_RECEIVED) this.fastOpenPending.delete(c);
    return this.fastOpenPending.size;
  }

  /**
   * tcp_fastopen_create_child: the connection takes the SYN's data, answers with a
   * SYN-ACK that acknowledges it, and goes to the application before the handshake ends.
   */
  private fastOpenChild(c: TcpConnection, seg: Segment): void {
    const mib = this.tcp.mib;
    c.openPassive(seg, true);
    c.tfoChild = true;
    if (seg.dataLen > 0) c.acceptSynData(seg);
    if (this.foOut.altKey) {
      mib.TcpExtTCPFastOpenPassiveAltKey++;
      c.synAckCookie = this.foOut.cookie;
      c.synAckCookieExp = this.foOut.exp;
    }
    mib.TcpExtTCPFastOpenPassive++;
    this.fastOpenPending.add(c);
    c.sendSynAck();
    this.adopt(c);
  }

  /** A handshake finished (connection.ts calls this from SYN-RECEIVED). */
  established(c: TcpConnection): void {
    if (this.fastOpenPending.delete(c)) {
      // Already the application's: writes that waited for the handshake go on.
      c.user?.onRoom();
      return;
    }
    if (this.pending.delete(c.synQueueLink)) this.synQueue--;
    this.adopt(c);
  }

  /** An established connection joins the accept queue or goes straight to the user. */
  adopt(c: TcpConnection): void {
    this.tcp.mib.TcpPassiveOpens++;
    if (this.closed) {
      c.abort();
      return;
    }
    if (this.acceptQueue.length === 0 && this.user !== null && this.user.incoming(c)) return;
    this.acceptQueue.push(c);
  }

  /** The user can take connections again (e.g. below maxConnections). */
  drain(): void {
    while (this.acceptQueue.length > 0 && this.user !== null) {
      const c = this.acceptQueue[0];
      if (c.state === TcpState.CLOSED) {
        this.acceptQueue.shift();
        continue;
      }
      if (!this.user.incoming(c)) return;
      this.acceptQueue.shift();
    }
  }

  dropped(c: TcpConnection): void {
    if (this.pending.delete(c.synQueueLink)) this.synQueue--;
    this.fastOpenPending.delete(c);
  }

  /** close(2) on the listener: connections not yet accepted are reset. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tcp.removeListener(this);
    for (const c of this.pending) {
      c.listener = null;
      c.abort();
    }
    this.pending.clear();
    this.synQueue = 0;
    for (const c of this.acceptQueue.splice(0)) c.abort();
  }
}
