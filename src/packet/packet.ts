/**
 * The one packet type: bytes with headroom plus offsets, like the kernel's
 * sk_buff (head, data, tail). On receive, layers `pull` their header off the
 * front; on send, layers `push` theirs on, so payload bytes are never copied
 * between layers.
 *
 *   buf: [ headroom | data ............ | tailroom ]
 *                     ^start            ^end
 */

/** Enough for Ethernet + two VLAN tags + IPv4 with options + TCP with options. */
export const DEFAULT_HEADROOM = 128;

/**
 * What is known of the transport checksum (the kernel's skb->ip_summed).
 * NONE: nothing, verify it / it is complete. UNNECESSARY: the device checked
 * it (virtio DATA_VALID). PARTIAL: the field holds only the pseudo-header sum;
 * whoever sends the packet on completes it over csumStart.. and stores it at
 * csumStart + csumOffset (virtio NEEDS_CSUM). A PARTIAL packet counts as
 * verified on receive, as skb_csum_unnecessary says.
 */
export const CHECKSUM_NONE = 0;
export const CHECKSUM_UNNECESSARY = 1;
export const CHECKSUM_PARTIAL = 3;

/** gsoType: how a super-packet (gsoSize > 0) is cut in segments (skb_shinfo gso_type). */
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
/** UDP segmentation offload (UDP_SEGMENT / USO): each piece its own UDP datagram. */
export const GSO_UDP_L4 = 5;

export class Packet {
  buf: Uint8Array;
  start: number;
  end: number;

  // Metadata, filled in as the packet travels.
  /** Ingress interface index (0 for locally generated packets). */
  ifindex = 0;
  /** Netfilter mark. */
  mark = 0;
  /** Offset of the IP header in `buf`, or -1. */
  l3 = -1;
  /** Offset of the transport header in `buf`, or -1. */
  l4 = -1;
  /** Link-layer destination was broadcast or multicast. */
  linkBroadcast = false;
  /** A datagram of ours looped back to our own address (Linux's PACKET_LOOPBACK). */
  loopback = false;
  /** Connection tracking entry, set by conntrack (or netfilter's UNTRACKED). */
  ct: unknown = null;
  /** What the packet is to `ct` (IP_CT_* of src/conntrack/entry.ts). */
  ctInfo = 0;
  /** The pool this packet goes back to once a device has sent it, or null. */
  pool: PacketPool | null = null;
  /** The length qdiscs account for it (qdisc_pkt_len: a size table may change it); 0 until an egress qdisc sets it. */
  qlen = 0;
  /** CHECKSUM_NONE | CHECKSUM_UNNECESSARY | CHECKSUM_PARTIAL. */
  ipSummed = CHECKSUM_NONE;
  /** CHECKSUM_PARTIAL: where the sum starts in `buf` (the transport header). */
  csumStart = 0;
  /** CHECKSUM_PARTIAL: the checksum field's offset from csumStart (16 for TCP, 6 for UDP). */
  csumOffset = 0;
  /** A super-packet: payload bytes per segment (the MSS), 0 for an ordinary packet. */
  gsoSize = 0;
  /** GSO_TCPV4 | GSO_UDP_L4 while gsoSize > 0. */
  gsoType = GSO_NONE;
  /** Segments the super-packet stands for (gso_segs). */
  gsoSegs = 0;
  /**
   * Payload not copied in yet (like an skb's page frags): gatherCount views, in
   * order, whose bytes belong at buf[gatherAt..end). The views are of memory
   * nobody writes again (a TCP send buffer's chunks), so a packet may hold them
   * as long as it lives. A device that writes with scatter-gather takes them as
   * they are; anything else that reads the payload calls linearize() first
   * (data(), clone() and own() do).
   */
  gatherParts: Uint8Array[] | null = null;
  gatherCount = 0;
  gatherAt = 0;

  constructor(buf: Uint8Array, start: number, end: number) {
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  /** Back to the state of a new packet, keeping `buf` (for PacketPool; keep in step with the fields above). */
  reinit(start: number, end: number): void {
    this.start = start;
    this.end = end;
    this.ifindex = 0;
    this.mark = 0;
    this.l3 = -1;
    this.l4 = -1;
    this.linkBroadcast = false;
    this.loopback = false;
    this.ct = null;
    this.ctInfo = 0;
    this.qlen = 0;
    this.ipSummed = CHECKSUM_NONE;
    this.gsoSize = 0;
    this.gsoType = GSO_NONE;
    this.gsoSegs = 0;
    if (this.gatherCount !== 0) this.dropGather();
  }

  /** The list to fill with payload views for setGather (kept with the packet, reused). */
  gatherList(): Uint8Array[] {
    let l = this.gatherParts;
    if (l === null) l = this.gatherParts = [];
    return l;
  }

  /** The payload from `at` to the end is gatherList()[0..count), not yet in buf. */
  setGather(at: number, count: number): void {
    this.gatherAt = at;
    this.gatherCount = count;
  }

  /** Copies pending payload views into buf (skb_linearize); a no-op for a packet without them. */
  linearize(): void {
    const n = this.gatherCount;
    if (n === 0) return;
    const parts = this.gatherParts!;
    const b = this.buf;
    let at = this.gatherAt;
    for (let i = 0; i < n; i++) {
      const v = parts[i];
      b.set(v, at);
      at += v.length;
    }
    this.dropGather();
  }

  /** Forgets the payload views (their memory may be freed once nothing else holds it). */
  private dropGather(): void {
    const parts = this.gatherParts!;
    for (let i = 0; i < this.gatherCount; i++) parts[i] = EMPTY;
    this.gatherCount = 0;
  }

  /** Copies the checksum and segmentation state of `o` (whose bytes start at `o.start`, ours at `this.start`). */
  copyOffload(o: Packet): void {
    this.ipSummed = o.ipSummed;
    this.csumStart = o.csumStart - o.start + this.start;
    this.csumOffset = o.csumOffset;
    this.gsoSize = o.gsoSize;
    this.gsoType = o.gsoType;
    this.gsoSegs = o.gsoSegs;
  }

  /** The packet's frame has left through a device: a pooled packet can be reused now. */
  sent(): void {
    if (this.gatherCount !== 0) this.dropGather();
    if (this.pool !== null) this.pool.put(this);
  }

  /** A packet with `len` data bytes (uninitialised) after `headroom` bytes. */
  static alloc(len: number, headroom = DEFAULT_HEADROOM): Packet {
    return new Packet(new Uint8Array(headroom + len), headroom, headroom + len);
  }

  /** Copies `data` into a new packet with headroom. */
  static copyOf(data: Uint8Array, headroom = DEFAULT_HEADROOM): Packet {
    const p = Packet.alloc(data.length, headroom);
    p.buf.set(data, headroom);
    return p;
  }

  get length(): number {
    return this.end - this.start;
  }

  /** A view of the data bytes (no copy; pending payload views are copied in first). */
  data(): Uint8Array {
    if (this.gatherCount !== 0) this.linearize();
    return this.buf.subarray(this.start, this.end);
  }

  /** Removes `n` bytes from the front (a header that has been consumed). */
  pull(n: number): void {
    if (n > this.end - this.start) throw new RangeError(`pull ${n} beyond packet of ${this.length}`);
    this.start += n;
  }

  /** Makes room for an `n`-byte header in front; returns its offset in `buf`. */
  push(n: number): number {
    if (n > this.start) this.grow(n - this.start + DEFAULT_HEADROOM);
    this.start -= n;
    return this.start;
  }

  /** Cuts the data to `len` bytes (drops link padding after the IP datagram). */
  trim(len: number): void {
    if (len < this.end - this.start) this.end = this.start + len;
  }

  /** A deep copy with fresh headroom, for packets that outlive their receive buffer. */
  clone(headroom = DEFAULT_HEADROOM): Packet {
    const p = Packet.copyOf(this.data(), headroom);
    p.ifindex = this.ifindex;
    p.mark = this.mark;
    p.linkBroadcast = this.linkBroadcast;
    p.ct = this.ct;
    p.ctInfo = this.ctInfo;
    p.qlen = this.qlen;
    if (this.l3 >= 0) p.l3 = this.l3 - this.start + headroom;
    if (this.l4 >= 0) p.l4 = this.l4 - this.start + headroom;
    p.copyOffload(this);
    return p;
  }

  /**
   * Gives the packet its own bytes (a copy with fresh headroom) in place, for
   * a packet that wraps a receive buffer and must outlive it; the packet
   * object stays the same, so whatever queue holds it keeps it.
   */
  own(headroom = DEFAULT_HEADROOM): void {
    if (this.gatherCount !== 0) this.linearize();
    const len = this.end - this.start;
    const nb = new Uint8Array(headroom + len);
    nb.set(this.buf.subarray(this.start, this.end), headroom);
    const shift = headroom - this.start;
    this.buf = nb;
    this.start = headroom;
    this.end = headroom + len;
    if (this.l3 >= 0) this.l3 += shift;
    if (this.l4 >= 0) this.l4 += shift;
    this.csumStart += shift;
  }

  private grow(extra: number): void {
    const nb = new Uint8Array(this.buf.length + extra);
    nb.set(this.buf.subarray(this.start, this.end), this.start + extra);
    this.buf = nb;
    this.start += extra;
    this.end += extra;
    if (this.l3 >= 0) this.l3 += extra;
    if (this.l4 >= 0) this.l4 += extra;
    this.csumStart += extra;
    this.gatherAt += extra;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Packets for the stack's own replies (echo replies), recycled instead of
 * allocated per reply: a new buffer costs more than building the reply. A
 * device is done with a frame when sendBatch returns (link/device.ts), so
 * the Interface gives a pooled packet back then (`sent()`), and the next
 * `alloc` reuses it.
 *
 * Only code that hands its packet to output and keeps no reference may take
 * one from a pool. Whatever holds on to a packet on the way (a neighbour
 * queue, a fragment queue, a hook that steals it) keeps its own copy or the
 * packet itself, which then simply never comes back; the pool makes a new
 * one. A hook that lets a packet go on must not keep it.
 */
export class PacketPool {
  private readonly free: Packet[] = [];
  /** Buffers made so far (a pool that keeps what it hands out stops making them). */
  created = 0;

  constructor(
    /** Buffer size of pooled packets; larger requests get a plain Packet.alloc. */
    readonly bufferSize = 2048,
    /** Most packets kept for reuse. */
    readonly maxFree = 256,
  ) {}

  /** Like Packet.alloc, but the data bytes are left as they were (callers write them all). */
  alloc(len: number, headroom = DEFAULT_HEADROOM): Packet {
    if (headroom + len > this.bufferSize) return Packet.alloc(len, headroom);
    let p = this.free.pop();
    if (p === undefined) {
      p = new Packet(new Uint8Array(this.bufferSize), headroom, headroom + len);
      p.pool = this;
      this.created++;
    } else {
      p.reinit(headroom, headroom + len);
    }
    return p;
  }

  /** Takes `p` back (Packet.sent); a packet whose buffer was replaced (grown) is left to the GC. */
  put(p: Packet): void {
    if (p.buf.length === this.bufferSize && this.free.length < this.maxFree) this.free.push(p);
  }

  get available(): number {
    return this.free.length;
  }
}
