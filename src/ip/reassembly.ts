import { Packet } from '../packet/packet.js';
import { Intervals } from '../packet/intervals.js';
import type { Interface } from '../link/interface.js';
import type { Mib } from '../mib.js';
import type { Time, Timer } from '../time/timers.js';
import { fillIpv4Checksum } from '../wire/ipv4.js';
import { getU32 } from '../wire/bytes.js';
import { HashChains } from '../packet/chains.js';

/** An Ethernet header's length: the link header a reassembled datagram carries over. */
const ETH_HLEN = 14;

/** RFC 791 §3.2 suggests 15 s as a lower bound; Linux waits 30 s (net.ipv4.ipfrag_time). */
export const DEFAULT_IPFRAG_TIME_S = 30;
/** Linux's net.ipv4.ipfrag_high_thresh: 4 MiB held by incomplete datagrams. */
export const DEFAULT_IPFRAG_HIGH_THRESH = 4 * 1024 * 1024;

/**
 * What a queue and a stored fragment are charged against ipfrag_high_thresh on
 * top of the bytes they keep: the objects around them (queue, timer, interval
 * list; fragment record), like the skb overhead in Linux's truesize. Without
 * it, a flood of tiny fragments would cost far more than it is charged.
 */
const QUEUE_OVERHEAD = 256;
const FRAG_OVERHEAD = 64;

/** RFC 791 §3.1: the total length field is 16 bits. */
const MAX_DATAGRAM = 0xffff;

/** One stored fragment: its place in the datagram's data and its bytes. */
interface Piece {
  off: number;
  end: number;
  data: Uint8Array;
}

/** RFC 3168 §5.3 codepoints seen among the fragments, one bit each. */
const ECN_NOT_ECT = 1;
const ECN_CE = 8;

/** The fragments of one datagram, identified by (src, dst, protocol, ident) as RFC 791 §3.2 says. */
class FragQueue {
  /** Next queue in the same hash bucket (packet/chains.ts), and the hash it is under. */
  hashNext: FragQueue | null = null;
  hashValue = 0;
  /** Neighbours in the age list (oldest first), for eviction. */
  older: FragQueue | null = null;
  newer: FragQueue | null = null;
  readonly have = new Intervals();
  /** Stored pieces, sorted by offset; they never overlap. */
  readonly pieces: Piece[] = [];
  /** Length of the datagram's data once the last fragment (MF clear) arrived, else -1. */
  total = -1;
  /** Highest end offset seen so far. */
  maxEnd = 0;
  /** A copy of the fragment at offset 0 (IP header at l3), kept for its header and for ICMP. */
  first: Packet | null = null;
  /** Header length of the first fragment, 0 until it arrives. */
  firstHlen = 0;
  /** The first fragment's link header (Ethernet), which the whole datagram keeps before its IP header; null without one. */
  firstLink: Uint8Array | null = null;
  /** Bytes charged against ipfrag_high_thresh. */
  mem = QUEUE_OVERHEAD;
  /** ECN codepoints seen (1 << codepoint). */
  ecn = 0;
  readonly timer: Timer;
  dead = false;

  constructor(
    readonly src: number,
    readonly dst: number,
    readonly proto: number,
    readonly ident: number,
    onExpire: (q: FragQueue) => void,
    time: Time,
  ) {
    this.timer = time.timer(() => onExpire(this));
  }
}

function fragHash(src: number, dst: number, proto: number, ident: number): number {
  let h = Math.imul(src ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ dst, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ ((ident << 8) | proto), 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * IPv4 reassembly (RFC 791 §3.2, RFC 815 for the bookkeeping), with Linux's
 * choices where the RFCs leave room (net/ipv4/ip_fragment.c, inet_fragment.c):
 * overlapping fragments discard the whole datagram, exact duplicates are
 * dropped, a datagram never grows beyond 65535 bytes, and incomplete ones time
 * out after ipfrag_time and are evicted, oldest first, past ipfrag_high_thresh.
 */
export class Reassembly {
  /** net.ipv4.ipfrag_time, in seconds: how long an incomplete datagram waits. */
  timeoutSec = DEFAULT_IPFRAG_TIME_S;
  /** net.ipv4.ipfrag_high_thresh, in bytes: the most incomplete datagrams may hold. */
  highThresh = DEFAULT_IPFRAG_HIGH_THRESH;
  /**
   * Called with the first fragment (a copy, `l3` at its IP header) of a datagram
   * that timed out, to answer it with ICMP time exceeded, code 1.
   */
  onTimeout: ((first: Packet) => void) | null = null;

  private readonly table = new HashChains<FragQueue>();
  private oldest: FragQueue | null = null;
  private newest: FragQueue | null = null;
  private queues = 0;
  private memUsed = 0;

  constructor(
    private readonly mib: Mib,
    private readonly time: Time,
  ) {}

  /** Bytes held by incomplete datagrams (as charged against highThresh). */
  get memory(): number {
    return this.memUsed;
  }

  /** Incomplete datagrams waiting. */
  get count(): number {
    return this.queues;
  }

  /**
   * Takes a fragment (`pkt.start` at a valid IP header of `hlen` bytes, total
   * length trimmed). Returns the whole datagram when this fragment completed
   * it, as a new packet with `start` and `l3` at its IP header; else null.
   */
  add(pkt: Packet, hlen: number, iface: Interface): Packet | null {
    const mib = this.mib;
    mib.IpReasmReqds++;
    const b = pkt.buf;
    const o = pkt.start;
    const src = getU32(b, o + 12);
    const dst = getU32(b, o + 16);
    const proto = b[o + 9];
    const ident = (b[o + 4] << 8) | b[o + 5];
    const more = (b[o + 6] & 0x20) !== 0;
    const off = (((b[o + 6] & 0x1f) << 8) | b[o + 7]) << 3;
    const len = pkt.end - o - hlen;
    let end = off + len;

    const hash = fragHash(src, dst, proto, ident);
    let q = this.table.first(hash);
    while (q !== null && !(q.src === src && q.dst === dst && q.proto === proto && q.ident === ident)) q = q.hashNext;

    if (more) {
      // RFC 791 §3.2: every fragment but the last carries a multiple of 8 bytes;
      // Linux trims any excess rather than refusing the fragment.
      end &= ~7;
    }
    // A fragment that carries nothing, or data reaching past what one datagram
    // can hold behind its header (the "ping of death"), spoils the datagram.
    // The header is the first fragment's; until it comes, assume the least.
    const headerLen = off === 0 ? hlen : q !== null && q.firstHlen > 0 ? q.firstHlen : 20;
    const reach = q !== null && q.maxEnd > end ? q.maxEnd : end;
    if (end <= off || headerLen + reach > MAX_DATAGRAM) return this.fail(q);
    if (q !== null) {
      if (!more) {
        // The last fragment fixes the length: nothing may lie beyond it, and a
        // second last fragment must agree.
        if (end < q.maxEnd || (q.total >= 0 && end !== q.total)) return this.fail(q);
      } else if (q.total >= 0 && end > q.total) {
        return this.fail(q);
      }
    }

    const payload = o + hlen;
    if (q !== null) {
      const kind = q.have.classify(off, end);
      if (kind === 'duplicate') {
        // RFC 5722 §4 (IPv6; Linux applies it to IPv4 too): duplicates are
        // dropped and the queue kept. A "duplicate" with other bytes is an
        // overlap in disguise and is treated as one.
        if (sameBytes(q, off, end, b, payload)) return null;
        return this.overlap(q);
      }
      if (kind === 'overlap') return this.overlap(q);
    } else {
      q = this.create(hash, src, dst, proto, ident);
    }

    let data: Uint8Array;
    if (off === 0) {
      // Keep the whole first fragment: its header heads the datagram and an
      // ICMP time exceeded quotes it. Received bytes live in a reused device
      // buffer, so this is a copy.
      const first = pkt.clone(0);
      first.trim(hlen + end - off);
      q.first = first;
      q.firstHlen = hlen;
      // As Linux's reassembled skb keeps the head fragment's MAC header (a log line's MAC= shows it).
      q.firstLink = iface.linkType === 'ether' && o >= ETH_HLEN ? b.slice(o - ETH_HLEN, o) : null;
      data = first.buf.subarray(first.l3 + hlen, first.l3 + hlen + (end - off));
      q.mem += FRAG_OVERHEAD + first.buf.length;
      this.memUsed += FRAG_OVERHEAD + first.buf.length;
    } else {
      data = b.slice(payload, payload + (end - off));
      q.mem += FRAG_OVERHEAD + data.length;
      this.memUsed += FRAG_OVERHEAD + data.length;
    }
    insertPiece(q.pieces, { off, end, data });
    q.have.insert(off, end);
    if (end > q.maxEnd) q.maxEnd = end;
    if (!more) q.total = end;
    q.ecn |= 1 << (b[o + 1] & 3);

    if (q.first !== null && q.total >= 0 && q.have.contiguousEnd(0) === q.total) {
      return this.complete(q, iface);
    }
    this.trim(q);
    return null;
  }

  private create(hash: number, src: number, dst: number, proto: number, ident: number): FragQueue {
    const q = new FragQueue(src, dst, proto, ident, (x) => this.expire(x), this.time);
    this.table.insert(q, hash);
    q.older = this.newest;
    if (this.newest !== null) this.newest.newer = q;
    else this.oldest = q;
    this.newest = q;
    this.queues++;
    this.memUsed += q.mem;
    // RFC 791 §3.2: the timer starts with the first fragment to arrive and is
    // not restarted by later ones (Linux does the same).
    this.time.arm(q.timer, this.timeoutSec * 1000);
    return q;
  }

  /** Unlinks a queue and gives its memory back. */
  private remove(q: FragQueue): void {
    if (q.dead) return;
    q.dead = true;
    this.time.cancel(q.timer);
    this.table.remove(q);
    if (q.older !== null) q.older.newer = q.newer;
    else this.oldest = q.newer;
    if (q.newer !== null) q.newer.older = q.older;
    else this.newest = q.older;
    q.older = q.newer = null;
    this.queues--;
    this.memUsed -= q.mem;
  }

  /** The datagram can't be rebuilt: throw away what was collected. */
  private fail(q: FragQueue | null): null {
    if (q !== null) this.remove(q);
    this.mib.IpReasmFails++;
    return null;
  }

  private overlap(q: FragQueue): null {
    this.mib.IpExtReasmOverlaps++;
    return this.fail(q);
  }

  /** ipfrag_time passed: drop the datagram and tell the sender if we saw its start. */
  private expire(q: FragQueue): void {
    this.remove(q);
    this.mib.IpReasmTimeout++;
    this.mib.IpReasmFails++;
    // RFC 792 (time exceeded, code 1) and RFC 1122 §3.2.1.4: only when
    // fragment zero is available, since the error quotes its header.
    if (q.first !== null && this.onTimeout !== null) this.onTimeout(q.first);
  }

  /** Evicts the oldest incomplete datagrams until the memory limit holds again. */
  private trim(current: FragQueue): void {
    while (this.memUsed > this.highThresh && this.oldest !== null) {
      const victim = this.oldest;
      this.remove(victim);
      this.mib.IpReasmFails++;
      if (victim === current) break;
    }
  }

  private complete(q: FragQueue, iface: Interface): Packet | null {
    this.remove(q);
    const first = q.first!;
    const fb = first.buf;
    const fo = first.l3;
    const hlen = q.firstHlen;
    const total = hlen + q.total;
    // RFC 3168 §5.3 (Linux's ip_frag_ecn_table): Not-ECT mixed with ECT or CE
    // can't be made into one codepoint, so the datagram is dropped; CE on any
    // fragment marks the whole datagram.
    let ecn = fb[fo + 1] & 3;
    if ((q.ecn & ECN_NOT_ECT) !== 0 && q.ecn !== ECN_NOT_ECT) {
      this.mib.IpReasmFails++;
      return null;
    }
    if ((q.ecn & ECN_CE) !== 0) ecn = 3;
    const whole = Packet.alloc(total);
    const wb = whole.buf;
    const wo = whole.start;
    wb.set(fb.subarray(fo, fo + hlen), wo);
    for (const p of q.pieces) wb.set(p.data, wo + hlen + p.off);
    // RFC 791 §3.2: the reassembled header is the first fragment's with the
    // total length of the whole and the fragment fields cleared.
    wb[wo + 1] = (wb[wo + 1] & 0xfc) | ecn;
    wb[wo + 2] = total >> 8;
    wb[wo + 3] = total & 0xff;
    wb[wo + 6] &= 0xc0;
    wb[wo + 7] = 0;
    fillIpv4Checksum(wb, wo, hlen);
    if (q.firstLink !== null) wb.set(q.firstLink, wo - ETH_HLEN);
    whole.l3 = wo;
    whole.ifindex = iface.index;
    whole.mark = first.mark;
    whole.linkBroadcast = first.linkBroadcast;
    this.mib.IpReasmOKs++;
    return whole;
  }

  /** Drops every incomplete datagram (not counted: nothing failed, e.g. on shutdown). */
  flush(): void {
    while (this.oldest !== null) this.remove(this.oldest);
  }
}

/** Inserts `p` in offset order (fragments mostly arrive in order: search from the end). */
function insertPiece(pieces: Piece[], p: Piece): void {
  let i = pieces.length;
  while (i > 0 && pieces[i - 1].off > p.off) i--;
  pieces.splice(i, 0, p);
}

/** True when `b[at, at + end - off)` equals the stored bytes of [off, end), which are all there. */
function sameBytes(q: FragQueue, off: number, end: number, b: Uint8Array, at: number): boolean {
  for (const p of q.pieces) {
    if (p.end <= off) continue;
    if (p.off >= end) break;
    const s = Math.max(off, p.off);
    const e = Math.min(end, p.end);
    const d = p.data;
    for (let k = s; k < e; k++) if (d[k - p.off] !== b[at + k - off]) return false;
  }
  return true;
}
