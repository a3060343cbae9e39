import { CHECKSUM_NONE } from '../packet/packet.js';
import type { Packet } from '../packet/packet.js';
import type { Hooks, HookFn } from '../ip/hooks.js';
import { VERDICT_ACCEPT, VERDICT_DROP, type Verdict } from '../ip/hooks.js';
import type { Sysctl } from '../sysctl.js';
import type { Logger } from '../log.js';
import type { Interface } from '../link/interface.js';
import { NfLogger } from '../netfilter/env.js';
import type { Time, Timer } from '../time/timers.js';
import { UNTRACKED, type CtProvider } from '../netfilter/compile.js';
import { CT_STATE_INVALID, CT_STATE_NEW, CT_STATE_UNTRACKED } from '../netfilter/ast.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { fold, pseudoHeaderSum, sum16 } from '../wire/checksum.js';
import {
  CtEntry,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_DYING,
  IPS_NAT_DONE_MASK,
  IPS_SEEN_REPLY,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_IS_REPLY,
  IP_CT_NEW,
  IP_CT_RELATED,
  TCP_CONNTRACK_CLOSE,
  TCP_CONNTRACK_CLOSE_WAIT,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_FIN_WAIT,
  TCP_CONNTRACK_LAST_ACK,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_SYN_SENT2,
  TCP_CONNTRACK_TIME_WAIT,
} from './entry.js';
import {
  TCP_CONNTRACK_RETRANS,
  TCP_CONNTRACK_UNACK,
  TCP_INVALID,
  TCP_KILL,
  TCP_REPEAT,
  TCP_STATE_NAMES,
  whyText,
  tcpCanEarlyDrop,
  tcpError,
  tcpNew,
  tcpPacket,
  type TcpCtSettings,
} from './tcp.js';
import { SCTP_INVALID, SCTP_STATE_NAMES, SCTP_TIMEOUT_NAMES, defaultSctpTimeouts, sctpCanEarlyDrop, sctpError, sctpPacket, sctpWhy } from './sctp.js';

/**
 * Connection tracking, as Linux's nf_conntrack: entries found from either
 * direction in one hash table, created unconfirmed in PREROUTING/OUTPUT
 * (priority -200) and confirmed (inserted) when their first packet leaves
 * through POSTROUTING or INPUT (priority INT_MAX). Protocol trackers for TCP
 * (tcp.ts), UDP, ICMP and other protocols (generic) move the state and the
 * deadline. Expiry is checked at lookup and by a sweep over a bounded number
 * of buckets per tick (nf_conntrack_core.c gc_worker); there is no timer per
 * entry. Nothing allocates per packet once the entry exists.
 */

/** The counters `conntrack -S` shows (struct ip_conntrack_stat). */
export interface CtStats {
  found: number;
  invalid: number;
  insert: number;
  insert_failed: number;
  drop: number;
  early_drop: number;
  error: number;
  search_restart: number;
  /** A racing packet joined the entry already in the table. */
  clash_resolve: number;
  /** An insert refused for a hash chain grown too long (hash flooding). */
  chaintoolong: number;
}

export type CtEvent = 'new' | 'update' | 'destroy';

export interface ConntrackDeps {
  now(): number;
  hooks: Hooks;
  sysctl: Sysctl;
  random(): number;
  logger?: Logger;
  /** Timers for the gc sweep; without it the sweep runs from the packet path. */
  time?: Time;
  /** Turns defragmentation before PREROUTING on or off (nf_defrag_ipv4 comes and goes with conntrack). */
  setDefrag?(on: boolean): void;
}

/** NF_IP_PRI_CONNTRACK and NF_IP_PRI_CONNTRACK_CONFIRM. */
export const PRI_CONNTRACK = -200;
export const PRI_CONNTRACK_CONFIRM = 0x7fffffff;

const INT_MAX = 2 ** 31 - 1;
/** nf_conntrack_core.c: NF_CT_EVICTION_RANGE, the buckets early_drop looks at. */
const EVICTION_RANGE = 8;
/** Buckets one gc step scans at most, and the wait between steps of one pass. */
const GC_MAX_BUCKETS = 8192;
const GC_STEP_MS = 10;
/** gc_worker's GC_SCAN_INTERVAL_MIN and _MAX: between passes over the table. */
const GC_INTERVAL_MIN_MS = 1000;
const GC_INTERVAL_MAX_MS = 60_000;
/** nf_conntrack_core.c: MIN_CHAINLEN and MAX_CHAINLEN. */
const MIN_CHAINLEN = 8;
const MAX_CHAINLEN = 64;
/** UDP's stream test: a packet more than 2 s after creation (nf_conntrack_proto_udp.c: stream_ts). */
const UDP_STREAM_MS = 2000;

/** icmp_is_err: the error types whose payload quotes the datagram they are about. */
const ICMP_ERR = new Uint8Array(256);
ICMP_ERR[3] = ICMP_ERR[4] = ICMP_ERR[5] = ICMP_ERR[11] = ICMP_ERR[12] = 1;
/** nf_conntrack_proto_icmp.c: invmap[] (type + 1, 0 = no inverse), and valid_new[]. */
const ICMP_INV = new Int16Array(256);
ICMP_INV[8] = 0 + 1;
ICMP_INV[0] = 8 + 1;
ICMP_INV[13] = 14 + 1;
ICMP_INV[14] = 13 + 1;
ICMP_INV[15] = 16 + 1;
ICMP_INV[16] = 15 + 1;
ICMP_INV[17] = 18 + 1;
ICMP_INV[18] = 17 + 1;
const ICMP_VALID_NEW = new Uint8Array(256);
ICMP_VALID_NEW[8] = ICMP_VALID_NEW[13] = ICMP_VALID_NEW[15] = ICMP_VALID_NEW[17] = 1;
/** NR_ICMP_TYPES */
const NR_ICMP_TYPES = 18;

/** The knobs under net.netfilter.* (times in seconds). */
export class CtSettings implements TcpCtSettings {
  max = 262144;
  readonly tcpTimeouts = new Float64Array(12);
  /** Seconds, indexed by SCTP_CONNTRACK_* ([0]: a new entry's, CLOSED's). */
  readonly sctpTimeouts = new Float64Array(9);
  tcpBeLiberal = 0;
  tcpLoose = 1;
  tcpMaxRetrans = 3;
  tcpNoWindowCheck = 0;
  tcpIgnoreInvalidRst = 0;
  udpTimeout = 30;
  udpTimeoutStream = 120;
  icmpTimeout = 30;
  /** nf_conntrack_proto_gre.c: gre_timeouts[] (GRE_CT_UNREPLIED, GRE_CT_REPLIED). */
  greTimeout = 30;
  greTimeoutStream = 180;
  genericTimeout = 600;
  acct = 0;
  timestamp = 0;
  checksum = 1;
  logInvalid = 0;

  constructor() {
    // nf_conntrack_proto_tcp.c: tcp_timeouts[]; timeouts[0] is SYN_SENT's.
    const t = this.tcpTimeouts;
    t[0] = 120;
    t[TCP_CONNTRACK_SYN_SENT] = 120;
    t[TCP_CONNTRACK_SYN_RECV] = 60;
    t[TCP_CONNTRACK_ESTABLISHED] = 432000;
    t[TCP_CONNTRACK_FIN_WAIT] = 120;
    t[TCP_CONNTRACK_CLOSE_WAIT] = 60;
    t[TCP_CONNTRACK_LAST_ACK] = 30;
    t[TCP_CONNTRACK_TIME_WAIT] = 120;
    t[TCP_CONNTRACK_CLOSE] = 10;
    t[TCP_CONNTRACK_SYN_SENT2] = 120;
    t[TCP_CONNTRACK_RETRANS] = 300;
    t[TCP_CONNTRACK_UNACK] = 300;
    defaultSctpTimeouts(this.sctpTimeouts);
  }
}

function hashTuple(seed: number, proto: number, src: number, dst: number, sport: number, dport: number): number {
  let h = Math.imul(src ^ seed, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ dst, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ ((sport << 16) | dport), 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15) ^ proto, 0x165667b1);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Conntrack implements CtProvider {
  readonly stats: CtStats = { found: 0, invalid: 0, insert: 0, insert_failed: 0, drop: 0, early_drop: 0, error: 0, search_restart: 0, clash_resolve: 0, chaintoolong: 0 };
  readonly settings = new CtSettings();
  /** Direction of the tuple `find` matched: 0 original, 1 reply. */
  foundDir = 0;
  /** Entries the last lookup went past (the chain's length when nothing matched). */
  private walked = 0;
  onDestroy: ((e: CtEntry) => void) | null = null;

  // Chain heads and which tuple (0/1) of the head entry each chain holds;
  // allocated when the first entry is linked.
  private heads: (CtEntry | null)[] = [];
  private tags = new Uint8Array(0);
  private size: number;
  private n = 0;
  private readonly seed: number;
  private nextId = 1;
  private readonly holders = new Set<string>();
  private unhook: (() => void)[] = [];
  private listeners: ((ev: CtEvent, e: CtEntry) => void)[] = [];
  private readonly scratch: CtEntry[] = [];
  // gc: the next bucket to scan, the earliest deadline seen in this pass, when the next step runs.
  private gcNext = 0;
  private gcMin = Infinity;
  private gcAt = Infinity;
  private gcEvict = false;
  private readonly gcTimer: Timer | null;
  private readonly nfLog: NfLogger | null;

  constructor(private readonly deps: ConntrackDeps) {
    this.size = this.settings.max;
    this.seed = Math.floor(deps.random() * 0x100000000) | 0;
    this.gcTimer = deps.time !== undefined ? deps.time.timer(() => this.gcStep()) : null;
    this.nfLog = deps.logger !== undefined ? new NfLogger(deps.logger, deps.now) : null;
    this.registerSysctls(deps.sysctl);
  }

  // ---------------------------------------------------------------- table

  /** Live confirmed entries (nf_conntrack_count: expired ones count until reaped). */
  get count(): number {
    return this.n;
  }

  /** nf_conntrack_buckets */
  get buckets(): number {
    return this.size;
  }

  /** The longest hash chain (both directions' links count), for diagnostics and tests. */
  longestChain(): number {
    let most = 0;
    const links: CtEntry[] = [];
    for (let h = 0; h < this.heads.length; h++) {
      this.bucketLinks(h, links, false);
      if (links.length > most) most = links.length;
      links.length = 0;
    }
    return most;
  }

  /**
   * Appends bucket `h`'s entries to `out`, one per link (an entry whose two
   * tuples hash to the same bucket is there twice), or with `originalOnly` the
   * entries whose original tuple hashes there (each entry once over the table).
   */
  private bucketLinks(h: number, out: CtEntry[], originalOnly: boolean): void {
    let e = this.heads[h];
    let d = this.tags[h];
    while (e !== null) {
      if (d === 0) {
        out.push(e);
        d = e.d0;
        e = e.n0;
      } else {
        if (!originalOnly) out.push(e);
        d = e.d1;
        e = e.n1;
      }
    }
  }

  get active(): boolean {
    return this.unhook.length > 0;
  }

  setNeeded(who: string, on: boolean): void {
    if (on) this.holders.add(who);
    else this.holders.delete(who);
    const want = this.holders.size > 0;
    if (want === this.active) return;
    if (want) {
      const h = this.deps.hooks;
      this.unhook = [
        h.prerouting.register(this.preHook, PRI_CONNTRACK),
        h.output.register(this.outHook, PRI_CONNTRACK),
        h.postrouting.register(this.confirmHook, PRI_CONNTRACK_CONFIRM),
        h.input.register(this.confirmHook, PRI_CONNTRACK_CONFIRM),
      ];
    } else {
      for (const u of this.unhook) u();
      this.unhook = [];
    }
    this.deps.setDefrag?.(want);
  }

  find(proto: number, src: number, dst: number, sport: number, dport: number): CtEntry | null {
    return this.lookup(proto, src, dst, sport, dport, this.deps.now());
  }

  /** `find` with the time already read (the packet path reads the clock once). */
  private lookup(proto: number, src: number, dst: number, sport: number, dport: number, now: number): CtEntry | null {
    if (this.n === 0) return null;
    const h = hashTuple(this.seed, proto, src, dst, sport, dport) % this.size;
    let e = this.heads[h];
    let d = this.tags[h];
    let k = 0;
    while (e !== null) {
      k++;
      if (d === 0) {
        if (e.os === src && e.od === dst && e.osp === sport && e.odp === dport && e.proto === proto) break;
        d = e.d0;
        e = e.n0;
      } else {
        if (e.rs === src && e.rd === dst && e.rsp === sport && e.rdp === dport && e.proto === proto) break;
        d = e.d1;
        e = e.n1;
      }
    }
    this.walked = k;
    if (e === null) return null;
    // nf_ct_is_expired: a lookup reaps what it finds expired.
    if (e.deadline - now <= 0) {
      this.destroy(e);
      return null;
    }
    this.foundDir = d;
    return e;
  }

  tupleTaken(proto: number, src: number, dst: number, sport: number, dport: number, ignore: CtEntry | null): boolean {
    if (this.n === 0) return false;
    const h = hashTuple(this.seed, proto, src, dst, sport, dport) % this.size;
    const now = this.deps.now();
    let e = this.heads[h];
    let d = this.tags[h];
    while (e !== null) {
      const hit =
        d === 0
          ? e.os === src && e.od === dst && e.osp === sport && e.odp === dport && e.proto === proto
          : e.rs === src && e.rd === dst && e.rsp === sport && e.rdp === dport && e.proto === proto;
      // An entry of the very same flow (same original tuple) is left to the clash resolution at confirm.
      if (hit && e !== ignore && e.deadline - now > 0 && (ignore === null || !sameOriginal(e, ignore))) {
        // nf_conntrack_tuple_taken counts a clash as "found".
        this.stats.found++;
        return true;
      }
      if (d === 0) {
        d = e.d0;
        e = e.n0;
      } else {
        d = e.d1;
        e = e.n1;
      }
    }
    return false;
  }

  setReply(e: CtEntry, rs: number, rd: number, rsp: number, rdp: number): void {
    if (e.hashed) throw new Error('setReply on a confirmed entry');
    e.rs = rs >>> 0;
    e.rd = rd >>> 0;
    e.rsp = rsp;
    e.rdp = rdp;
  }

  forEach(fn: (e: CtEntry) => void): void {
    if (this.n === 0) return;
    const now = this.deps.now();
    const list = this.scratch.length === 0 ? this.scratch : [];
    for (let h = 0; h < this.size; h++) {
      if (this.heads[h] === null) continue;
      this.bucketLinks(h, list, true);
      for (let i = 0; i < list.length; i++) {
        const x = list[i];
        if (!x.hashed) continue;
        if (x.deadline - now <= 0) this.destroy(x);
        else fn(x);
      }
      list.length = 0;
    }
  }

  delete(e: CtEntry): void {
    if (e.hashed) this.destroy(e);
  }

  flush(): number {
    let k = 0;
    this.forEach((e) => {
      this.destroy(e);
      k++;
    });
    return k;
  }

  timeLeft(e: CtEntry): number {
    const ms = e.deadline - this.deps.now();
    return ms <= 0 ? 0 : Math.floor(ms / 1000);
  }

  stateName(e: CtEntry): string {
    return e.proto === 6 ? TCP_STATE_NAMES[e.state] : e.proto === 132 ? SCTP_STATE_NAMES[e.state] : '';
  }

  on(fn: (ev: CtEvent, e: CtEntry) => void): () => void {
    this.listeners = [...this.listeners, fn];
    return () => {
      this.listeners = this.listeners.filter((f) => f !== fn);
    };
  }

  setEntryMark(e: CtEntry, mark: number): void {
    mark = mark >>> 0;
    if (e.mark === mark) return;
    e.mark = mark;
    if (e.hashed) this.emit('update', e);
  }

  private emit(ev: CtEvent, e: CtEntry): void {
    const l = this.listeners;
    for (let i = 0; i < l.length; i++) l[i](ev, e);
  }

  private link(e: CtEntry): void {
    const size = this.size;
    if (this.heads.length !== size) {
      this.heads = new Array<CtEntry | null>(size).fill(null);
      this.tags = new Uint8Array(size);
    }
    const h0 = hashTuple(this.seed, e.proto, e.os, e.od, e.osp, e.odp) % size;
    e.n0 = this.heads[h0];
    e.d0 = this.tags[h0];
    this.heads[h0] = e;
    this.tags[h0] = 0;
    const h1 = hashTuple(this.seed, e.proto, e.rs, e.rd, e.rsp, e.rdp) % size;
    e.n1 = this.heads[h1];
    e.d1 = this.tags[h1];
    this.heads[h1] = e;
    this.tags[h1] = 1;
    e.hashed = true;
  }

  private unlinkDir(e: CtEntry, dir: number, h: number): void {
    let prev: CtEntry | null = null;
    let pd = 0;
    let x = this.heads[h];
    let d = this.tags[h];
    while (x !== null) {
      const nx = d === 0 ? x.n0 : x.n1;
      const nd = d === 0 ? x.d0 : x.d1;
      if (x === e && d === dir) {
        if (prev === null) {
          this.heads[h] = nx;
          this.tags[h] = nd;
        } else if (pd === 0) {
          prev.n0 = nx;
          prev.d0 = nd;
        } else {
          prev.n1 = nx;
          prev.d1 = nd;
        }
        return;
      }
      prev = x;
      pd = d;
      x = nx;
      d = nd;
    }
  }

  private unlink(e: CtEntry): void {
    const size = this.size;
    this.unlinkDir(e, 0, hashTuple(this.seed, e.proto, e.os, e.od, e.osp, e.odp) % size);
    this.unlinkDir(e, 1, hashTuple(this.seed, e.proto, e.rs, e.rd, e.rsp, e.rdp) % size);
    e.n0 = e.n1 = null;
    e.hashed = false;
  }

  /** Removes a confirmed entry (expiry, delete, flush, early drop) and tells the listeners. */
  private destroy(e: CtEntry): void {
    if (!e.hashed) return;
    this.unlink(e);
    this.n--;
    e.status |= IPS_DYING;
    e.stop = this.deps.now();
    if (this.onDestroy !== null) this.onDestroy(e);
    if (this.listeners.length > 0) this.emit('destroy', e);
  }

  /** nf_conntrack_hash_resize: every entry into a table of `n` buckets. */
  private resize(n: number): void {
    const all: CtEntry[] = [];
    for (let h = 0; h < this.heads.length; h++) this.bucketLinks(h, all, true);
    this.size = n;
    this.heads = [];
    this.tags = new Uint8Array(0);
    this.gcNext = 0;
    for (const e of all) this.link(e);
  }

  // ---------------------------------------------------------------- gc

  /**
   * One gc step (nf_conntrack_core.c gc_worker): up to GC_MAX_BUCKETS buckets
   * from where the last one stopped, reaping expired entries. A pass over the
   * whole table is followed by the next after the earliest deadline it saw,
   * within [1 s, 60 s].
   */
  gcStep(): void {
    const now = this.deps.now();
    const size = this.heads.length;
    let h = this.gcNext;
    const stop = Math.min(size, h + GC_MAX_BUCKETS);
    let min = this.gcMin;
    const list = this.scratch;
    // After the table was found full, a pass also evicts what early_drop may take,
    // and assured TCP entries that are closing, while it is 95% full (gc_worker).
    const evict = this.gcEvict && this.settings.max !== 0;
    const max95 = Math.floor(this.settings.max / 100) * 95;
    for (; h < stop; h++) {
      let e = this.heads[h];
      if (e === null) continue;
      let d = this.tags[h];
      while (e !== null) {
        if (e.deadline - now <= 0) list.push(e);
        else if (d === 0 && evict && this.n >= max95 && canEarlyDrop(e)) list.push(e);
        else if (d === 0 && e.deadline < min) min = e.deadline;
        if (d === 0) {
          d = e.d0;
          e = e.n0;
        } else {
          d = e.d1;
          e = e.n1;
        }
      }
      if (list.length > 0) {
        for (let i = 0; i < list.length; i++) this.destroy(list[i]);
        list.length = 0;
      }
    }
    let wait: number;
    if (h >= size) {
      this.gcEvict = false;
      this.gcNext = 0;
      this.gcMin = Infinity;
      wait = min === Infinity ? GC_INTERVAL_MAX_MS : Math.min(GC_INTERVAL_MAX_MS, Math.max(GC_INTERVAL_MIN_MS, min - now));
    } else {
      this.gcNext = h;
      this.gcMin = min;
      wait = GC_STEP_MS;
    }
    this.gcAt = Infinity;
    if (this.n > 0) this.scheduleGc(now, wait);
  }

  private scheduleGc(now: number, wait: number): void {
    const at = now + wait;
    if (at >= this.gcAt) return;
    this.gcAt = at;
    if (this.gcTimer !== null) this.deps.time!.arm(this.gcTimer, wait);
  }

  // ---------------------------------------------------------------- hooks

  private readonly preHook: HookFn = (pkt, inIf) => this.track(pkt, true, inIf, null);
  private readonly outHook: HookFn = (pkt, inIf, outIf) => this.track(pkt, false, null, outIf);
  private readonly confirmHook: HookFn = (pkt) => this.confirm(pkt);

  /** nf_conntrack_in: finds or creates the packet's entry and runs its protocol's tracker. */
  private track(pkt: Packet, pre: boolean, inIf: Interface | null, outIf: Interface | null): Verdict {
    // A packet that has an entry already (looped back) or was marked notrack.
    if (pkt.ct !== null) return VERDICT_ACCEPT;
    const now = this.deps.now();
    if (this.gcTimer === null && now >= this.gcAt) this.gcStep();
    const b = pkt.buf;
    const l3 = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
    const hl = (b[l3] & 0x0f) << 2;
    const total = (b[l3 + 2] << 8) | b[l3 + 3];
    const end = l3 + total < pkt.end ? l3 + total : pkt.end;
    const l4 = l3 + hl;
    const len = end - l4;
    // A fragment other than the first carries no transport header (ipv4_get_l4proto).
    if (((b[l3 + 6] & 0x1f) | b[l3 + 7]) !== 0 || len < 0) {
      this.stats.invalid++;
      return VERDICT_ACCEPT;
    }
    const proto = b[l3 + 9];
    const src = getU32(b, l3 + 12);
    const dst = getU32(b, l3 + 16);
    const s = this.settings;
    // A checksum the device vouched for, or one left partial (skb_csum_unnecessary), is not summed.
    const csum = pre && s.checksum !== 0 && pkt.ipSummed === CHECKSUM_NONE;
    let sport = 0;
    let dport = 0;
    if (proto === 6) {
      if (tcpError(b, l4, len)) return this.invalid(pkt, 6, len < 20 || len < (b[l4 + 12] >>> 4) << 2 ? 'truncated packet' : 'invalid tcp flag combination', inIf, outIf);
      if (csum && fold(sum16(b, l4, len, pseudoHeaderSum(src, dst, 6, len))) !== 0xffff) return this.invalid(pkt, 6, 'bad checksum', inIf, outIf);
      sport = getU16(b, l4);
      dport = getU16(b, l4 + 2);
    } else if (proto === 17) {
      // udp_error: a short or inconsistent length, or a bad checksum (0: none sent).
      if (len < 8) return this.invalid(pkt, 17, 'truncated header', inIf, outIf);
      const ulen = getU16(b, l4 + 4);
      if (ulen > len || ulen < 8) return this.invalid(pkt, 17, 'truncated/malformed packet', inIf, outIf);
      if (csum && getU16(b, l4 + 6) !== 0 && fold(sum16(b, l4, ulen, pseudoHeaderSum(src, dst, 17, ulen))) !== 0xffff) return this.invalid(pkt, 17, 'bad checksum', inIf, outIf);
      sport = getU16(b, l4);
      dport = getU16(b, l4 + 2);
    } else if (proto === 132) {
      // nf_conntrack_proto_sctp.c: sctp_error (the CRC32c only where the UDP/TCP checksums are checked).
      if (sctpError(b, l4, len, csum)) return this.invalid(pkt, 132, sctpWhy, inIf, outIf);
      sport = getU16(b, l4);
      dport = getU16(b, l4 + 2);
    } else if (proto === 136) {
      // nf_conntrack_proto_udp.c: udplite_error. The length field is the checksum coverage (0: all, RFC 3828 §3.1);
      // the checksum is mandatory. nf_checksum_partial is given IPPROTO_UDP, so the pseudo-header it checks
      // against carries 17, not 136.
      if (len < 8) return this.invalid(pkt, 136, 'short packet', inIf, outIf);
      let cscov = getU16(b, l4 + 4);
      if (cscov === 0) cscov = len;
      else if (cscov < 8 || cscov > len) return this.invalid(pkt, 136, 'invalid checksum coverage', inIf, outIf);
      if (getU16(b, l4 + 6) === 0) return this.invalid(pkt, 136, 'checksum missing', inIf, outIf);
      if (csum && fold(sum16(b, l4, cscov, pseudoHeaderSum(src, dst, 17, len))) !== 0xffff) return this.invalid(pkt, 136, 'bad checksum', inIf, outIf);
      sport = getU16(b, l4);
      dport = getU16(b, l4 + 2);
    } else if (proto === 1) {
      // icmp_error: short, bad checksum, unknown type: counted as errors, the packet stays untracked.
      const bad = len < 8 ? 'short packet' : csum && fold(sum16(b, l4, len)) !== 0xffff ? 'bad hw icmp checksum' : b[l4] > NR_ICMP_TYPES ? 'invalid icmp type' : null;
      if (bad !== null) {
        this.stats.error++;
        const li = s.logInvalid;
        if (li === 1 || li === 255) this.logInvalid(pkt, 1, bad, inIf, outIf);
        return VERDICT_ACCEPT;
      }
      const type = b[l4];
      if (ICMP_ERR[type] !== 0) {
        if (!this.icmpError(pkt, b, l4 + 8, end, dst, now)) this.stats.error++;
        return VERDICT_ACCEPT;
      }
      sport = getU16(b, l4 + 4);
      dport = (type << 8) | b[l4 + 1];
    } else if (proto === 47) {
      // A GRE version 1 header that does not carry PPP gives no tuple: invalid, without a log line.
      const key = greKey(b, l4, len);
      if (key < 0) {
        this.stats.invalid++;
        return VERDICT_ACCEPT;
      }
      dport = key;
    }

    for (let tries = 0; ; tries++) {
      let e = this.lookup(proto, src, dst, sport, dport, now);
      let dir = this.foundDir;
      let isNew = false;
      if (e === null) {
        let rsp = dport;
        let rdp = sport;
        if (proto === 1) {
          // nf_ct_invert_tuple: only queries have an answer to expect.
          const inv = ICMP_INV[dport >>> 8];
          if (inv === 0) return this.invalid(pkt, proto, '', inIf, outIf);
          rsp = sport;
          rdp = ((inv - 1) << 8) | (dport & 0xff);
        }
        // nf_conntrack_max 0: no limit.
        if (s.max !== 0 && this.n >= s.max && !this.earlyDrop(hashTuple(this.seed, proto, src, dst, sport, dport))) {
          // "nf_conntrack: table full, dropping packet"
          this.stats.drop++;
          this.gcEvict = true;
          this.scheduleGc(now, GC_INTERVAL_MIN_MS);
          return VERDICT_DROP;
        }
        e = new CtEntry();
        e.proto = proto;
        e.os = src;
        e.od = dst;
        e.osp = sport;
        e.odp = dport;
        e.rs = dst;
        e.rd = src;
        e.rsp = rsp;
        e.rdp = rdp;
        e.start = now;
        dir = 0;
        isNew = true;
      }
      const oldStatus = e.status;
      const oldState = e.state;
      let timeout: number;
      if (proto === 6) {
        if (isNew && !tcpNew(e, b, l4, len, s.tcpLoose)) return this.invalid(pkt, 6, '', inIf, outIf);
        timeout = tcpPacket(e, dir, b, l4, len, s, now);
        if (timeout === TCP_REPEAT) {
          // Reopening a closed connection: the old entry goes, the packet is tracked anew.
          this.destroy(e);
          if (tries < 1) continue;
          return this.invalid(pkt, 6, '', inIf, outIf);
        }
        if (timeout === TCP_INVALID) return this.invalid(pkt, 6, whyText(), inIf, outIf);
      } else if (proto === 17) {
        if (isNew) e.streamTs = now + UDP_STREAM_MS;
        if (e.status & IPS_SEEN_REPLY) {
          // nf_conntrack_udp_packet: replied, and still going after 2 s: a stream, assured.
          timeout = s.udpTimeout;
          if (now > e.streamTs) {
            timeout = s.udpTimeoutStream;
            e.status |= IPS_ASSURED;
          }
        } else timeout = s.udpTimeout;
      } else if (proto === 1) {
        // nf_conntrack_icmp_packet: only a query opens an entry.
        if (isNew && ICMP_VALID_NEW[dport >>> 8] === 0) return this.invalid(pkt, 1, 'unsupported icmp type', inIf, outIf);
        timeout = s.icmpTimeout;
      } else if (proto === 132) {
        timeout = sctpPacket(e, dir, b, l4, len, !isNew, s.sctpTimeouts);
        if (timeout === SCTP_INVALID) {
          // nf_conntrack_sctp_packet's refusals are counted, not logged.
          this.stats.invalid++;
          return VERDICT_ACCEPT;
        }
      } else if (proto === 136) {
        // nf_conntrack_udplite_packet: UDP's timeouts, but no 2 s test: traffic seen both ways is a stream.
        if (e.status & IPS_SEEN_REPLY) {
          timeout = s.udpTimeoutStream;
          e.status |= IPS_ASSURED;
        } else timeout = s.udpTimeout;
      } else if (proto === 47) {
        // nf_conntrack_proto_gre.c: gre_packet: traffic seen both ways, the stream timeout and assured.
        if (e.status & IPS_SEEN_REPLY) {
          timeout = s.greTimeoutStream;
          e.status |= IPS_ASSURED;
        } else timeout = s.greTimeout;
      } else timeout = s.genericTimeout;

      if (timeout >= 0) e.deadline = now + timeout * 1000;
      let info: number;
      if (dir === 1) {
        info = IP_CT_ESTABLISHED_REPLY;
        e.status |= IPS_SEEN_REPLY;
      } else info = e.status & IPS_SEEN_REPLY ? IP_CT_ESTABLISHED : IP_CT_NEW;
      if (s.acct !== 0) {
        if (dir === 0) {
          e.pkts0++;
          e.bytes0 += total;
        } else {
          e.pkts1++;
          e.bytes1 += total;
        }
      }
      pkt.ct = e;
      pkt.ctInfo = info;
      if (timeout === TCP_KILL) {
        e.status |= IPS_DYING;
        this.destroy(e);
      }
      else if (e.hashed && (e.status !== oldStatus || e.state !== oldState) && this.listeners.length > 0) this.emit('update', e);
      return VERDICT_ACCEPT;
    }
  }

  /** The packet stays without an entry (INVALID); logged when nf_conntrack_log_invalid asks for its protocol. */
  private invalid(pkt: Packet, proto: number, reason: string, inIf: Interface | null, outIf: Interface | null): Verdict {
    this.stats.invalid++;
    const li = this.settings.logInvalid;
    if (li !== 0 && (li === proto || li === 255)) this.logInvalid(pkt, proto, reason, inIf, outIf);
    return VERDICT_ACCEPT;
  }

  /** nf_l4proto_log_invalid: an nf_log line prefixed `nf_ct_proto_N: reason `. */
  private logInvalid(pkt: Packet, proto: number, reason: string, inIf: Interface | null, outIf: Interface | null): void {
    if (this.nfLog === null) return;
    this.nfLog.log(reason === '' ? `nf_ct_proto_${proto}: ` : `nf_ct_proto_${proto}: ${reason} `, 'notice', pkt, inIf, outIf);
  }

  /**
   * nf_conntrack_inet_error: an ICMP error quoting a datagram of a tracked
   * connection is RELATED to it, in the direction opposite to the quoted one.
   * `q` is the quoted IP header's offset, `outerDst` the error's destination.
   */
  private icmpError(pkt: Packet, b: Uint8Array, q: number, end: number, outerDst: number, now: number): boolean {
    if (end - q < 20) return false;
    const ihl = (b[q] & 0x0f) << 2;
    if (ihl < 20 || end - q < ihl) return false;
    const proto = b[q + 9];
    const isrc = getU32(b, q + 12);
    const idst = getU32(b, q + 16);
    const il4 = q + ihl;
    let sport = 0;
    let dport = 0;
    if (proto === 6 || proto === 17 || proto === 136 || proto === 132) {
      if (end - il4 < 4) return false;
      sport = getU16(b, il4);
      dport = getU16(b, il4 + 2);
    } else if (proto === 1) {
      if (end - il4 < 8) return false;
      sport = getU16(b, il4 + 4);
      dport = (b[il4] << 8) | b[il4 + 1];
    } else if (proto === 47) {
      const key = greKey(b, il4, end - il4);
      if (key < 0) return false;
      dport = key;
    }
    // The tuple the quoted datagram was sent with, inverted: who it went to answers.
    let fsport = dport;
    let fdport = sport;
    if (proto === 1) {
      const inv = ICMP_INV[dport >>> 8];
      if (inv === 0) return false;
      fsport = sport;
      fdport = ((inv - 1) << 8) | (dport & 0xff);
    }
    const e = this.lookup(proto, idst, isrc, fsport, fdport, now);
    if (e === null) return false;
    const dir = this.foundDir;
    // The error must go to where the quoted datagram came from.
    if ((dir === 0 ? e.od : e.rd) !== outerDst) return false;
    pkt.ct = e;
    pkt.ctInfo = dir === 0 ? IP_CT_RELATED : IP_CT_RELATED + IP_CT_IS_REPLY;
    return true;
  }

  /**
   * early_drop (nf_conntrack_core.c): from the new tuple's bucket on, over up to
   * NF_CT_EVICTION_RANGE buckets, the first bucket holding entries that are not
   * ASSURED loses them all; expired ones met on the way are reaped.
   */
  private earlyDrop(hash: number): boolean {
    const size = this.heads.length;
    if (size === 0) return false;
    const now = this.deps.now();
    const list = this.scratch;
    let h = hash % size;
    for (let i = 0; i < EVICTION_RANGE; i++) {
      let e = this.heads[h];
      let d = this.tags[h];
      while (e !== null) {
        if (list.indexOf(e) < 0 && (e.deadline - now <= 0 || (e.status & IPS_ASSURED) === 0)) list.push(e);
        if (d === 0) {
          d = e.d0;
          e = e.n0;
        } else {
          d = e.d1;
          e = e.n1;
        }
      }
      let drops = 0;
      for (let k = 0; k < list.length; k++) {
        const x = list[k];
        if (x.deadline - now > 0) drops++;
        this.destroy(x);
      }
      list.length = 0;
      if (drops > 0) {
        this.stats.early_drop += drops;
        return true;
      }
      if (this.n < this.settings.max) return true;
      h = h + 1 === size ? 0 : h + 1;
    }
    return false;
  }

  /** __nf_conntrack_confirm: the entry goes into the table with its first packet. */
  private confirm(pkt: Packet): Verdict {
    const ct = pkt.ct;
    if (ct === null || ct === UNTRACKED) return VERDICT_ACCEPT;
    const e = ct as CtEntry;
    if (e.status & (IPS_CONFIRMED | IPS_DYING)) return VERDICT_ACCEPT;
    const now = this.deps.now();
    // __nf_conntrack_confirm: a chain longer than 8 + random(64) refuses the insert (hash flooding).
    const maxChain = MIN_CHAINLEN + Math.floor(this.deps.random() * MAX_CHAINLEN);
    const o = this.lookup(e.proto, e.os, e.od, e.osp, e.odp, now);
    let long = o === null && this.walked > maxChain + 1;
    const x = o !== null ? o : this.lookup(e.proto, e.rs, e.rd, e.rsp, e.rdp, now);
    if (x === null && this.walked > maxChain + 1) long = true;
    if (long) {
      this.stats.chaintoolong++;
      this.stats.insert_failed++;
      return VERDICT_DROP;
    }
    if (x !== null) {
      // nf_ct_resolve_clash: a UDP or ICMP packet that raced another into the table joins
      // the winner when that one is not NATed or is the very same mapping.
      if ((e.proto === 17 || e.proto === 1) && ((x.status & IPS_NAT_DONE_MASK) === 0 || sameTuples(x, e))) {
        pkt.ct = x;
        this.stats.clash_resolve++;
        return VERDICT_ACCEPT;
      }
      this.stats.insert_failed++;
      this.stats.drop++;
      return VERDICT_DROP;
    }
    e.status |= IPS_CONFIRMED;
    e.id = this.nextId;
    this.nextId = this.nextId === INT_MAX ? 1 : this.nextId + 1;
    // (Linux counts `insert` only for entries ctnetlink creates, not at confirmation.)
    this.link(e);
    this.n++;
    if (this.listeners.length > 0) this.emit('new', e);
    // A sweep soon enough for this entry's deadline.
    this.scheduleGc(now, Math.max(GC_INTERVAL_MIN_MS, e.deadline - now));
    return VERDICT_ACCEPT;
  }

  // ---------------------------------------------------------------- CtProvider

  private entryOf(pkt: Packet): CtEntry | null {
    const ct = pkt.ct;
    return ct === null || ct === UNTRACKED ? null : (ct as CtEntry);
  }

  state(pkt: Packet): number {
    const ct = pkt.ct;
    if (ct === UNTRACKED) return CT_STATE_UNTRACKED;
    // Not running: every packet is the first of its flow, as before conntrack.
    if (ct === null) return this.active ? CT_STATE_INVALID : CT_STATE_NEW;
    // nft_ct: NF_CT_STATE_BIT(ctinfo)
    return 1 << ((pkt.ctInfo % IP_CT_IS_REPLY) + 1);
  }

  status(pkt: Packet): number {
    const e = this.entryOf(pkt);
    return e === null ? (this.active ? -1 : 0) : e.status;
  }

  mark(pkt: Packet): number {
    const e = this.entryOf(pkt);
    return e === null ? (this.active ? -1 : 0) : e.mark >>> 0;
  }

  direction(pkt: Packet): number {
    const e = this.entryOf(pkt);
    return e === null ? (this.active ? -1 : 0) : pkt.ctInfo >= IP_CT_IS_REPLY ? 1 : 0;
  }

  setMark(pkt: Packet, mark: number): void {
    const e = this.entryOf(pkt);
    if (e !== null) this.setEntryMark(e, mark);
  }

  tuple(pkt: Packet, dir: number, field: number): number {
    const e = this.entryOf(pkt);
    if (e === null) return -1;
    switch (field) {
      case 0:
        return dir === 0 ? e.os : e.rs;
      case 1:
        return dir === 0 ? e.od : e.rd;
      case 2:
        return dir === 0 ? e.osp : e.rsp;
      case 3:
        return dir === 0 ? e.odp : e.rdp;
      default:
        return e.proto;
    }
  }

  expiration(pkt: Packet): number {
    const e = this.entryOf(pkt);
    return e === null ? -1 : this.timeLeft(e);
  }

  entry(pkt: Packet): object | null {
    return this.entryOf(pkt);
  }

  alive(entry: object): boolean {
    const e = entry as CtEntry;
    return e.hashed && e.deadline - this.deps.now() > 0;
  }

  // ---------------------------------------------------------------- sysctls

  private registerSysctls(k: Sysctl): void {
    const s = this.settings;
    const p = 'net.netfilter.nf_conntrack_';
    k.field(`${p}max`, s, 'max', 0, INT_MAX);
    // /proc/sys/net/nf_conntrack_max: the same knob.
    k.field('net.nf_conntrack_max', s, 'max', 0, INT_MAX);
    k.registerText(`${p}count`, {
      get: () => String(this.n),
      set: () => 'Permission denied',
      readOnly: true,
    });
    k.register(`${p}buckets`, {
      get: () => this.size,
      set: (v) => {
        if (v !== this.size) this.resize(v);
      },
      min: 1,
      max: 1 << 26,
    });
    const tcp: [string, number][] = [
      ['syn_sent', TCP_CONNTRACK_SYN_SENT],
      ['syn_recv', TCP_CONNTRACK_SYN_RECV],
      ['established', TCP_CONNTRACK_ESTABLISHED],
      ['fin_wait', TCP_CONNTRACK_FIN_WAIT],
      ['close_wait', TCP_CONNTRACK_CLOSE_WAIT],
      ['last_ack', TCP_CONNTRACK_LAST_ACK],
      ['time_wait', TCP_CONNTRACK_TIME_WAIT],
      ['close', TCP_CONNTRACK_CLOSE],
      ['max_retrans', TCP_CONNTRACK_RETRANS],
      ['unacknowledged', TCP_CONNTRACK_UNACK],
    ];
    // proc_dointvec_jiffies: seconds up to INT_MAX / HZ.
    const maxSec = Math.floor(INT_MAX / 1000);
    for (const [name, i] of tcp)
      k.register(`${p}tcp_timeout_${name}`, {
        get: () => s.tcpTimeouts[i],
        set: (v) => {
          s.tcpTimeouts[i] = v;
          if (i === TCP_CONNTRACK_SYN_SENT) s.tcpTimeouts[0] = v;
        },
        min: 0,
        max: maxSec,
      });
    for (const [name, i] of SCTP_TIMEOUT_NAMES)
      k.register(`${p}sctp_timeout_${name}`, {
        get: () => s.sctpTimeouts[i],
        set: (v) => {
          s.sctpTimeouts[i] = v;
          if (i === 1) s.sctpTimeouts[0] = v;
        },
        min: 0,
        max: maxSec,
      });
    k.field(`${p}tcp_be_liberal`, s, 'tcpBeLiberal', 0, 1);
    k.field(`${p}tcp_loose`, s, 'tcpLoose', 0, 1);
    k.field(`${p}tcp_max_retrans`, s, 'tcpMaxRetrans', 0, 255);
    k.field(`${p}tcp_no_window_check`, s, 'tcpNoWindowCheck', 0, 1);
    k.field(`${p}tcp_ignore_invalid_rst`, s, 'tcpIgnoreInvalidRst', 0, 1);
    k.field(`${p}udp_timeout`, s, 'udpTimeout', 0, maxSec);
    k.field(`${p}udp_timeout_stream`, s, 'udpTimeoutStream', 0, maxSec);
    k.field(`${p}icmp_timeout`, s, 'icmpTimeout', 0, maxSec);
    k.field(`${p}gre_timeout`, s, 'greTimeout', 0, maxSec);
    k.field(`${p}gre_timeout_stream`, s, 'greTimeoutStream', 0, maxSec);
    k.field(`${p}generic_timeout`, s, 'genericTimeout', 0, maxSec);
    k.field(`${p}acct`, s, 'acct', 0, 1);
    k.field(`${p}timestamp`, s, 'timestamp', 0, 1);
    k.field(`${p}checksum`, s, 'checksum', 0, 1);
    k.field(`${p}log_invalid`, s, 'logInvalid', 0, 255);
  }
}

/**
 * nf_conntrack_proto_gre.c: gre_pkt_to_tuple. Only PPTP's GRE (version 1)
 * has keys: the call id is the destination key, and the source key would come
 * from the PPTP helper's keymap, which the stack has not (0). Other versions,
 * or a header too short to hold the call id, are tracked without keys (0). A
 * version 1 header whose protocol is not PPP (0x880b) gives no tuple: -1.
 */
function greKey(b: Uint8Array, l4: number, len: number): number {
  if (len < 4 || (b[l4 + 1] & 7) !== 1 || len < 8) return 0;
  if (getU16(b, l4 + 2) !== 0x880b) return -1;
  return getU16(b, l4 + 6);
}

/** gc_worker_can_early_drop */
function canEarlyDrop(e: CtEntry): boolean {
  return (e.status & IPS_ASSURED) === 0 || (e.proto === 6 && tcpCanEarlyDrop(e.state)) || (e.proto === 132 && sctpCanEarlyDrop(e.state));
}

function sameOriginal(a: CtEntry, b: CtEntry): boolean {
  return a.proto === b.proto && a.os === b.os && a.od === b.od && a.osp === b.osp && a.odp === b.odp;
}

function sameTuples(a: CtEntry, b: CtEntry): boolean {
  return (
    a.proto === b.proto &&
    a.os === b.os &&
    a.od === b.od &&
    a.osp === b.osp &&
    a.odp === b.odp &&
    a.rs === b.rs &&
    a.rd === b.rd &&
    a.rsp === b.rsp &&
    a.rdp === b.rdp
  );
}

export { CtEntry };
