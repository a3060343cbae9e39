/**
 * SYN cookies (RFC 4987 §3.6), encoded as Linux encodes them
 * (net/ipv4/syncookies.c): the SYN-ACK's sequence number carries a keyed hash
 * of the 4-tuple and the peer's ISN, a minute counter in the top 8 bits and an
 * index into a table of four MSS values; with timestamps, the low 6 bits of our
 * TSval carry the window scale (4 bits, 15 = none), SACK-permitted and ECN.
 * Nothing is kept per SYN, so a flood cannot fill memory; the ACK that
 * completes the handshake rebuilds the connection.
 */
import { Buffer } from 'node:buffer';
import { createHmac } from 'node:crypto';
import type { Tcp } from './tcp.js';
import type { TcpListener } from './listen.js';
import { Segment, type TcpConnection } from './connection.js';
import { seqAdd } from './seq.js';
import { ECN_OK } from './ecn.js';
import { TCP_CWR, TCP_ECE } from '../wire/tcp.js';

const COOKIEBITS = 24;
const COOKIEMASK = (1 << COOKIEBITS) - 1;
/** Linux MAX_SYNCOOKIE_AGE: a cookie is good for up to two minutes. */
const MAX_AGE = 2;
/** Linux msstab: the MSS values a cookie can say. */
const MSS_TABLE = [536, 1300, 1440, 1460];
const TS_OPT_MASK = 0x3f;
const WSCALE_NONE = 0xf;
/** Linux TS_OPT_ECN: the cookie's timestamp says ECN was agreed. */
const TS_OPT_ECN = 0x20;

function hash(secrets: readonly Uint8Array[], which: number, saddr: number, daddr: number, sport: number, dport: number, count: number): number {
  const b = Buffer.allocUnsafe(16);
  b.writeUInt32BE(saddr, 0);
  b.writeUInt32BE(daddr, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  b.writeUInt32BE(count >>> 0, 12);
  return createHmac('sha256', secrets[which]).update(b).digest().readUInt32BE(0);
}

/** Linux tcp_cookie_time: minutes. */
function cookieTime(tcp: Tcp): number {
  return Math.floor(tcp.time.now() / 60000) >>> 0;
}

function makeCookie(k: readonly Uint8Array[], saddr: number, daddr: number, sport: number, dport: number, sseq: number, count: number, data: number): number {
  return (hash(k, 0, saddr, daddr, sport, dport, 0) + sseq + ((count << COOKIEBITS) >>> 0) + ((hash(k, 1, saddr, daddr, sport, dport, count) + data) & COOKIEMASK)) >>> 0;
}

/** The MSS index, or -1 when the cookie is bad or too old. */
function checkCookie(k: readonly Uint8Array[], cookie: number, saddr: number, daddr: number, sport: number, dport: number, sseq: number, count: number): number {
  let c = (cookie - hash(k, 0, saddr, daddr, sport, dport, 0) - sseq) >>> 0;
  const diff = (count - (c >>> COOKIEBITS)) & 0xff;
  if (diff >= MAX_AGE) return -1;
  c = (c - hash(k, 1, saddr, daddr, sport, dport, (count - diff) >>> 0)) & COOKIEMASK;
  return c < MSS_TABLE.length ? c : -1;
}

export const SynCookies = {
  /** Answers a SYN with a cookie SYN-ACK and keeps nothing. */
  send(tcp: Tcp, seg: Segment, laddr: number, lport: number, raddr: number, rport: number, l: TcpListener | null = null): void {
    const o = seg.opts;
    const peerMss = o.mss > 0 ? o.mss : 536;
    let idx = MSS_TABLE.length - 1;
    while (idx > 0 && MSS_TABLE[idx] > peerMss) idx--;
    const c = tcp.passiveConnection(laddr, lport, raddr, rport, l);
    c.openPassive(seg, true);
    c.setIss(makeCookie(tcp.cookieSecrets, raddr, laddr, rport, lport, seg.seq, cookieTime(tcp), idx));
    if (c.tsOk) {
      // Linux cookie_init_timestamp: the options ride in TSval's low bits.
      // ... and whether ECN was agreed (TS_OPT_ECN).
      const opts = (c.wscaleOk ? Math.min(o.wscale, 14) : WSCALE_NONE) | (c.sackOk ? 0x10 : 0) | (c.ecnFlags & ECN_OK ? TS_OPT_ECN : 0);
      const now = (Math.floor(tcp.time.now()) + c.tsOffset) >>> 0;
      let ts = ((now & ~TS_OPT_MASK) | opts) >>> 0;
      if (((ts - now) | 0) > 0) ts = (ts - (TS_OPT_MASK + 1)) >>> 0;
      c.tsOffset = (ts - Math.floor(tcp.time.now())) >>> 0;
    }
    // Linux tcp_conn_request: without timestamps a cookie cannot carry ECN, so none is offered.
    else c.ecnFlags = 0;
    tcp.mib.TcpExtSyncookiesSent++;
    tcp.sendSyn(c, true);
  },

  /**
   * An ACK to a listener: if it carries a good cookie, the connection is rebuilt
   * and established; the listener itself when its accept queue is full (the ACK is
   * dropped); else null (the caller answers with a RST).
   */
  complete(tcp: Tcp, l: TcpListener, seg: Segment, laddr: number, lport: number, raddr: number, rport: number): TcpConnection | TcpListener | null {
    if (seg.flags & 0x02) return null;
    const iss = seqAdd(seg.ack, -1);
    const peerIsn = seqAdd(seg.seq, -1);
    const idx = checkCookie(tcp.cookieSecrets, iss, raddr, laddr, rport, lport, peerIsn, cookieTime(tcp));
    if (idx < 0) {
      tcp.mib.TcpExtSyncookiesFailed++;
      return null;
    }
    tcp.mib.TcpExtSyncookiesRecv++;
    // Linux tcp_get_cookie_sock -> tcp_v4_syn_recv_sock: a full accept queue drops the ACK
    // (ListenOverflows, ListenDrops) and keeps nothing; the peer's next segment tries again.
    if (l.acceptQueueFull()) {
      tcp.mib.TcpExtListenOverflows++;
      tcp.mib.TcpExtListenDrops++;
      return l;
    }
    const o = seg.opts;
    const syn = new Segment();
    syn.seq = peerIsn;
    syn.flags = 0x02;
    syn.wnd = seg.wnd;
    syn.opts.mss = MSS_TABLE[idx];
    // RFC 7323 §3 / Linux cookie_decode_options: without timestamps, a cookie says nothing of scaling or SACK.
    if (o.tsPresent && tcp.settings.timestamps) {
      const bits = o.tsEcr & TS_OPT_MASK;
      syn.opts.tsPresent = true;
      syn.opts.tsVal = o.tsVal;
      const ws = bits & 0xf;
      syn.opts.wscale = ws === WSCALE_NONE ? -1 : ws;
      syn.opts.sackPermitted = (bits & 0x10) !== 0;
      // cookie_ecn_ok: ECN as the SYN-ACK agreed it (tcp_ecn still decides, as ecnPassive does).
      if (bits & TS_OPT_ECN) syn.flags |= TCP_ECE | TCP_CWR;
    }
    const c = tcp.passiveConnection(laddr, lport, raddr, rport, l);
    c.openPassive(syn, true);
    c.setIss(iss);
    if (c.tsOk) c.tsOffset = (o.tsEcr - Math.floor(tcp.time.now())) >>> 0;
    c.listener = l;
    tcp.hash(c);
    // The ACK completes the handshake as it would from SYN-RECEIVED.
    c.input(seg);
    return c;
  },
};
