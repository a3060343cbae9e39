/**
 * TCP Fast Open (RFC 7413) as Linux does it (net/ipv4/tcp_fastopen.c, tcp_send_syn_data,
 * tcp_rcv_fastopen_synack, tcp_metrics' cookie cache):
 *
 * - net.ipv4.tcp_fastopen bits: 0x1 client, 0x2 server, 0x4 client sends data without a
 *   cookie (and without the option), 0x200 server takes data without a cookie, 0x400
 *   every listener does Fast Open (queue = its backlog) without asking.
 * - Cookies are SipHash-2-4 of the SYN's source and destination addresses under the
 *   stack's key (net.ipv4.tcp_fastopen_key: a primary and an optional backup key, printed
 *   as Linux prints them), 8 bytes, in option 34 or the experimental 254/0xF989.
 * - Server: a SYN with a valid cookie makes a connection at once, its data goes to the
 *   application and the SYN-ACK acknowledges it; the connection can send before the
 *   handshake ends. A cookie request (or a bad cookie) gets a cookie in the SYN-ACK.
 *   Pending Fast Open connections are bounded by the listener's `qlen`.
 * - Client: a cookie per destination; with one, data goes in the SYN; without, the SYN
 *   asks for one. Data the SYN-ACK does not acknowledge (refused cookie, or a lost SYN
 *   resent without data) is sent again after the handshake.
 */
import type { TcpOptionsSpec } from '../wire/tcp.js';
import type { Mib } from '../mib.js';
import type { Time } from '../time/timers.js';
import type { TcpSettings } from './settings.js';
import type { Segment, TcpConnection } from './connection.js';
import { seqAdd, seqDiff } from './seq.js';

export const TFO_CLIENT_ENABLE = 0x1;
export const TFO_SERVER_ENABLE = 0x2;
export const TFO_CLIENT_NO_COOKIE = 0x4;
export const TFO_SERVER_COOKIE_NOT_REQD = 0x200;
export const TFO_SERVER_WO_SOCKOPT1 = 0x400;

/** Linux TCP_FASTOPEN_COOKIE_SIZE. */
export const TFO_COOKIE_SIZE = 8;
/** Linux MAX_TCP_OPTION_SPACE: the SYN's data leaves room for every option. */
const MAX_TCP_OPTION_SPACE = 40;

const M64 = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint): bigint => ((x << b) | (x >> (64n - b))) & M64;

/** SipHash-2-4 (Aumasson and Bernstein) of `msg` under a 16-byte key; the 64-bit result. */
export function siphash24(key: Uint8Array, msg: Uint8Array): bigint {
  const le = (b: Uint8Array, o: number, n = 8): bigint => {
    let r = 0n;
    for (let i = n - 1; i >= 0; i--) r = (r << 8n) | BigInt(b[o + i]);
    return r;
  };
  const k0 = le(key, 0);
  const k1 = le(key, 8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = (): void => {
    v0 = (v0 + v1) & M64;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & M64;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & M64;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & M64;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };
  const full = msg.length & ~7;
  for (let o = 0; o < full; o += 8) {
    const m = le(msg, o);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  const b = (BigInt(msg.length & 0xff) << 56n) | le(msg, full, msg.length - full);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  for (let i = 0; i < 4; i++) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/**
 * Linux's cookie for an IPv4 SYN (__tcp_fastopen_cookie_gen_cipher): SipHash of the
 * source then destination address as they are in the header, stored little-endian.
 */
export function fastOpenCookie(key: Uint8Array, saddr: number, daddr: number, out = new Uint8Array(TFO_COOKIE_SIZE)): Uint8Array {
  const m = new Uint8Array(8);
  const dv = new DataView(m.buffer);
  dv.setUint32(0, saddr >>> 0);
  dv.setUint32(4, daddr >>> 0);
  let h = siphash24(key, m);
  for (let i = 0; i < 8; i++) {
    out[i] = Number(h & 0xffn);
    h >>= 8n;
  }
  return out;
}

/** A key as /proc/sys/net/ipv4/tcp_fastopen_key shows it: four 32-bit words read little-endian. */
function keyWords(k: Uint8Array): string {
  const dv = new DataView(k.buffer, k.byteOffset, 16);
  const w: string[] = [];
  for (let i = 0; i < 4; i++) w.push(dv.getUint32(4 * i, true).toString(16).padStart(8, '0'));
  return w.join('-');
}

/** sscanf "%x-%x-%x-%x" as Linux's sscanf_key reads a key; null when it doesn't match. */
function parseKey(s: string): Uint8Array | null {
  const m = /^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+)-([0-9a-fA-F]+)-([0-9a-fA-F]+)/.exec(s);
  if (m === null) return null;
  const k = new Uint8Array(16);
  const dv = new DataView(k.buffer);
  for (let i = 0; i < 4; i++) {
    // %x into a u32 keeps the low 32 bits of a longer number.
    const v = Number(BigInt('0x' + m[i + 1]) & 0xffffffffn);
    dv.setUint32(4 * i, v, true);
  }
  return k;
}

/** What the client remembers of a destination (tcp_metrics' tcpm_fastopen). */
interface CacheEntry {
  mss: number;
  cookie: Uint8Array | null;
  /** 1: try the experimental option next time; 2: it failed too, back to option 34. */
  tryExp: number;
  synLoss: number;
  lastSynLossMs: number;
}

/** A connection's Fast Open on the client side (Linux's fastopen_req and syn_* bits). */
export class FastOpenActive {
  /** The cookie to send: null with `request` for a cookie request, or no option at all. */
  cookie: Uint8Array | null = null;
  request = false;
  exp = false;
  /** The SYN is held until the application's first write (a cookie, or data without one). */
  deferred = false;
  /** The first SYN carried the option (syn_fastopen) and `synData` bytes of data (syn_data). */
  optionSent = false;
  synData = 0;
  /** The SYN-ACK acknowledged the data (syn_data_acked: ss shows `fastopen`). */
  dataAcked = false;
  /** The first SYN has gone: retransmissions carry neither option nor data. */
  sent = false;
}

/** The stack's Fast Open state: keys, the client's cookie cache, the blackhole timer. */
export class FastOpen {
  /** Primary and backup key (net.ipv4.tcp_fastopen_key); none until a server needs one. */
  private keys: Uint8Array[] = [];
  private readonly cache = new Map<number, CacheEntry>();
  /** Active Fast Open paused after timeouts that look like a middlebox eating it. */
  private disableTimes = 0;
  private disableStampMs = 0;

  constructor(
    private readonly settings: TcpSettings,
    private readonly mib: Mib,
    private readonly time: Time,
    private readonly secret: (n: number) => Uint8Array,
  ) {}

  // ---- keys ----

  /** tcp_fastopen_init_key_once: a random key the first time a listener does Fast Open. */
  initKeyOnce(): void {
    if (this.keys.length === 0) this.keys = [this.secret(16)];
  }

  keyText(): string {
    if (this.keys.length === 0) return '00000000-00000000-00000000-00000000';
    return this.keys.map(keyWords).join(',');
  }

  /** Writing the sysctl: "primary[,backup]". */
  setKeyText(v: string): string | null {
    const [p, b] = v.split(',', 2);
    const primary = parseKey(p);
    if (primary === null) return 'Invalid argument';
    let backup: Uint8Array | null = null;
    if (b !== undefined) {
      backup = parseKey(b);
      if (backup === null) return 'Invalid argument';
    }
    this.keys = backup !== null ? [primary, backup] : [primary];
    return null;
  }

  /** The cookie for a SYN from `saddr` to `daddr` under key `i`. */
  cookie(saddr: number, daddr: number, i = 0): Uint8Array | null {
    const k = this.keys[i];
    return k === undefined ? null : fastOpenCookie(k, saddr, daddr);
  }

  // ---- client ----

  /** The cached cookie for a destination (tests and ss). */
  cached(daddr: number): Uint8Array | null {
    return this.cache.get(daddr)?.cookie ?? null;
  }

  /**
   * connect() with Fast Open (TCP_FASTOPEN_CONNECT): null when the client bit is off;
   * else deferred when there is a cookie (or data may go without one), and otherwise a
   * SYN that asks for a cookie (tcp_fastopen_defer_connect, tcp_fastopen_cookie_check).
   */
  activeRequest(daddr: number): FastOpenActive | null {
    const s = this.settings.fastOpen;
    if (!(s & TFO_CLIENT_ENABLE)) return null;
    const r = new FastOpenActive();
    const e = this.cache.get(daddr);
    if (this.activeShouldDisable()) return r; // no option, no data
    if (s & TFO_CLIENT_NO_COOKIE) {
      r.deferred = true;
      return r;
    }
    if (e !== undefined && e.cookie !== null) {
      r.cookie = e.cookie;
      r.exp = e.tryExp === 1;
      r.deferred = true;
      return r;
    }
    r.request = true;
    r.exp = e !== undefined && e.tryExp === 1;
    return r;
  }

  /**
   * The first SYN of a Fast Open connection (tcp_send_syn_data, tcp_syn_options): puts the
   * cookie (or the request) in `spec` and returns how many bytes of the send buffer go in
   * the SYN. Later SYNs carry neither.
   */
  synOptions(c: TcpConnection, spec: TcpOptionsSpec): number {
    const r = c.tfo!;
    spec.fastOpen = null;
    spec.fastOpenExp = false;
    if (r.sent) return 0;
    r.sent = true;
    if (r.cookie !== null || r.request) {
      spec.fastOpen = r.cookie ?? EMPTY;
      spec.fastOpenExp = r.exp;
      r.optionSent = true;
    }
    if (!r.deferred) return 0;
    // Linux: the path's MSS (clamped by the cached one) less the whole option space.
    const e = this.cache.get(c.remoteAddr);
    const mss = Math.min(c.pmtu - 40, e !== undefined && e.mss > 0 ? e.mss : c.advMss);
    const n = Math.max(0, Math.min(mss - MAX_TCP_OPTION_SPACE, c.sendBuf.length));
    r.synData = n;
    if (n > 0) this.mib.TcpExtTCPOrigDataSent++;
    return n;
  }

  /**
   * The SYN-ACK of a connection that tried Fast Open (tcp_rcv_fastopen_synack), after
   * snd_una moved to its ACK: the cookie is cached, data it acknowledged leaves the send
   * buffer, and data it didn't is to be sent again. True when data must be resent.
   */
  synAck(c: TcpConnection, seg: Segment): boolean {
    const r = c.tfo!;
    const o = seg.opts;
    let cookie = o.fastOpen !== null && o.fastOpen.length > 0 ? o.fastOpen : null;
    const cookieLen = o.fastOpen === null ? -1 : o.fastOpen.length;
    const firstData = seqAdd(c.iss, 1);
    const acked = Math.max(0, Math.min(r.synData, seqDiff(seg.ack, firstData)));
    const unacked = r.synData - acked;
    let synDrop = false;
    let tryExp = 0;
    if (!r.optionSent) cookie = null; // an unsolicited cookie is ignored
    else if (c.totalRetrans > 0) synDrop = cookieLen < 0 && unacked > 0;
    else if (cookieLen < 0 && r.synData === 0) tryExp = r.exp ? 2 : 1;
    this.cacheSet(c.remoteAddr, c.peerMss, cookie, o.fastOpenExp, synDrop, tryExp);
    if (acked > 0) {
      c.sendBuf.consume(acked);
      c.bytesAcked += acked;
    }
    if (unacked > 0) {
      // Sent again after the handshake, as lost data (the SYN-ACK's ACK covers only our SYN).
      c.sndNxt = c.sndUna;
      this.mib.TcpExtTCPFastOpenActiveFail++;
      return true;
    }
    if (r.synData > 0) {
      r.dataAcked = true;
      c.synDataAcked = true;
      this.mib.TcpExtTCPFastOpenActive++;
    }
    return false;
  }

  private cacheSet(daddr: number, mss: number, cookie: Uint8Array | null, exp: boolean, synLost: boolean, tryExp: number): void {
    let e = this.cache.get(daddr);
    if (e === undefined) {
      e = { mss: 0, cookie: null, tryExp: 0, synLoss: 0, lastSynLossMs: 0 };
      this.cache.set(daddr, e);
    }
    if (mss > 0) e.mss = mss;
    if (cookie !== null) {
      e.cookie = cookie.slice();
      e.tryExp = exp ? 1 : 0;
    } else if (tryExp > e.tryExp) e.tryExp = tryExp;
    if (synLost) {
      e.synLoss++;
      e.lastSynLossMs = this.time.now();
    } else e.synLoss = 0;
  }

  /** An RTO of a connection that tried Fast Open (tcp_fastopen_active_detect_blackhole). */
  retransmitTimeout(c: TcpConnection, timeouts: number): void {
    const r = c.tfo!;
    if (!(r.optionSent || r.synData > 0 || r.dataAcked) || timeouts !== 2) return;
    this.mib.TcpExtTCPFastOpenActiveFail++;
    if (this.settings.fastOpenBlackholeTimeoutSec === 0) return;
    this.disableStampMs = this.time.now();
    this.disableTimes++;
    this.mib.TcpExtTCPFastOpenBlackhole++;
  }

  /** tcp_fastopen_active_should_disable: paused for the timeout, doubled per episode up to 64 times. */
  private activeShouldDisable(): boolean {
    const t = this.settings.fastOpenBlackholeTimeoutSec;
    if (t === 0 || this.disableTimes === 0) return false;
    const mult = 1 << Math.min(this.disableTimes - 1, 6);
    return this.time.now() < this.disableStampMs + t * 1000 * mult;
  }

  // ---- server ----

  /**
   * A SYN reached a listener (tcp_try_fastopen). Returns true when it makes a Fast Open
   * connection (the caller creates it; `out.altKey` when the backup key took the cookie,
   * and `out.cookie` is then the primary key's for the SYN-ACK); otherwise `out.cookie`
   * is the cookie the SYN-ACK carries (or null), `out.exp` its form.
   */
  passive(qlen: number, qmax: number, seg: Segment, saddr: number, daddr: number, out: { cookie: Uint8Array | null; exp: boolean; altKey: boolean }): boolean {
    const mib = this.mib;
    const foc = seg.opts.fastOpen;
    const synData = seg.dataLen > 0;
    out.cookie = null;
    out.exp = seg.opts.fastOpenExp;
    out.altKey = false;
    if (foc !== null && foc.length === 0) mib.TcpExtTCPFastOpenCookieReqd++;
    const s = this.settings.fastOpen;
    if (!(s & TFO_SERVER_ENABLE) || !(synData || foc !== null) || !this.queueCheck(qlen, qmax)) return false;
    if (s & TFO_SERVER_COOKIE_NOT_REQD) return true;
    if (foc === null) return false;
    if (foc.length === 0) {
      out.cookie = this.cookie(saddr, daddr);
      return false;
    }
    // tcp_fastopen_cookie_gen_check: the primary key, then the backup.
    const primary = this.cookie(saddr, daddr, 0);
    let which = 0;
    if (foc.length === TFO_COOKIE_SIZE) {
      for (let i = 0; i < this.keys.length && which === 0; i++) {
        const v = i === 0 ? primary : this.cookie(saddr, daddr, i);
        if (v !== null && equal(v, foc)) which = i + 1;
      }
    }
    if (which === 0) {
      mib.TcpExtTCPFastOpenPassiveFail++;
      out.cookie = primary;
      return false;
    }
    if (which === 2) {
      // Accepted under the backup key: the SYN-ACK hands out a cookie of the primary one.
      out.cookie = primary;
      out.altKey = true;
    }
    return true;
  }

  private queueCheck(qlen: number, qmax: number): boolean {
    if (qmax === 0) return false;
    if (qlen >= qmax) {
      this.mib.TcpExtTCPFastOpenListenOverflow++;
      return false;
    }
    return true;
  }
}

const EMPTY = new Uint8Array(0);

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
