/**
 * One device's egress scheduling: its root qdisc (pfifo_fast with txqueuelen
 * until tc replaces it), its ingress/clsact qdisc, and the one watchdog
 * timer qdiscs ask for (qdisc_watchdog). The Interface enqueues each frame
 * here and, when the device may take frames, dequeues every packet that is
 * due into one batch (link/interface.ts flush).
 */
import { GSO_TCPV4, type Packet } from '../packet/packet.js';
import { clearList } from '../packet/list.js';
import type { Time, Timer } from '../time/timers.js';
import { type EgressHook, NET_XMIT_SUCCESS, TC_H_ROOT, type IngressHook, type Ns, type Qdisc, type SchedHost } from './qdisc.js';
import { PfifoFastQdisc } from './pfifo-fast.js';

export interface SchedDevice {
  readonly name: string;
  readonly mtu: number;
  readonly txQueueLen: number;
  readonly hardHeaderLen: number;
  /** Link speed in Mbit/s (ethtool's), or null when unknown (down). */
  readonly speedMbit?: number | null;
  /** The qdisc has packets that may leave now (the watchdog fired). */
  kick(): void;
}

export class DevSched implements SchedHost {
  /** The root qdisc; `isDefault` while it is the one the device started with. */
  root: Qdisc;
  isDefault = true;
  private ingressQ: Qdisc | null = null;
  /** The ingress/clsact qdisc as the receive path sees it: null costs one check per packet. */
  ingressHook: IngressHook | null = null;
  /** clsact as the transmit path sees it (its egress filters before the root qdisc), or null. */
  egressHook: EgressHook | null = null;
  /** The ingress queue exists (made by the first ingress/clsact qdisc; noop_qdisc sits there after a delete). */
  hasIngressQueue = false;
  private readonly timer: Timer;
  /** Packets that came in on a device and wait in the qdisc: copied if the receive batch ends first. */
  private readonly borrowed: Packet[] = [];

  constructor(
    private readonly dev: SchedDevice,
    private readonly time: Time,
    private readonly rand: () => number,
  ) {
    this.root = this.defaultQdisc();
    this.timer = time.timer(() => this.dev.kick());
  }

  /** ingress or clsact (handle ffff:), or null. */
  get ingress(): Qdisc | null {
    return this.ingressQ;
  }

  set ingress(q: Qdisc | null) {
    this.ingressQ = q;
    this.ingressHook = q !== null && typeof (q as Partial<IngressHook>).ingress === 'function' ? (q as unknown as IngressHook) : null;
    this.egressHook = q !== null && q.kind === 'clsact' && typeof (q as Partial<EgressHook>).egress === 'function' ? (q as unknown as EgressHook) : null;
  }

  defaultQdisc(): Qdisc {
    return new PfifoFastQdisc(0, TC_H_ROOT, this);
  }

  // ---- SchedHost ----

  now(): Ns {
    return this.time.nowNs();
  }

  random(): number {
    return this.rand();
  }

  watchdog(at: Ns): void {
    const t = this.timer;
    const ms = at / 1e6;
    // The earliest request wins (qdisc_watchdog_schedule_range_ns).
    if (t.armed && t.deadline <= ms) return;
    this.time.arm(t, ms - this.time.now());
  }

  get mtu(): number {
    return this.dev.mtu;
  }

  get hardHeaderLen(): number {
    return this.dev.hardHeaderLen;
  }

  get txQueueLen(): number {
    return this.dev.txQueueLen;
  }

  get devName(): string {
    return this.dev.name;
  }

  get speedMbit(): number | null {
    return this.dev.speedMbit ?? null;
  }

  // ---- the egress path ----

  /** Qdiscs of this device with a rate estimator (`tc qdisc ... estimator`); kept by tc. */
  estimated: Qdisc[] = [];

  /**
   * The estimators see every period that ended before the counters move
   * (gen_estimator's timer, worked off lazily): called before each enqueue
   * and each flush.
   */
  advanceEstimators(): void {
    const e = this.estimated;
    if (e.length === 0) return;
    const now = this.time.nowNs();
    for (let i = 0; i < e.length; i++) e[i].est?.advance(now);
  }

  enqueue(pkt: Packet): number {
    this.advanceEstimators();
    // qdisc_pkt_len_init (a super-packet counts the headers each segment repeats), then the root's size table.
    let len = pkt.end - pkt.start;
    const l3 = pkt.l3;
    if (pkt.gsoSegs > 1 && l3 >= pkt.start) {
      const b = pkt.buf;
      const l4 = l3 + ((b[l3] & 0x0f) << 2);
      const thl = pkt.gsoType === GSO_TCPV4 ? (b[l4 + 12] >> 4) << 2 : 8;
      len += (pkt.gsoSegs - 1) * (l4 + thl - pkt.start);
    }
    const st = this.root.stab;
    pkt.qlen = st !== undefined && st !== null ? st.pktLen(len) : len;
    // __dev_queue_xmit: clsact's egress filters run before the root qdisc; what they drop never reaches it.
    const eh = this.egressHook;
    if (eh !== null && eh.egress(pkt)) return NET_XMIT_SUCCESS;
    if (pkt.ifindex !== 0 && pkt.pool === null) this.borrowed.push(pkt);
    return this.root.enqueue(pkt, this);
  }

  /** Full-size packets the root qdisc still takes (TCP's pacing). */
  room(): number {
    const r = this.root;
    return r.room !== undefined ? r.room(this) : this.dev.txQueueLen - r.stats.qlen;
  }

  /** Full-size packets the root qdisc takes when empty. */
  capacity(): number {
    const r = this.root;
    return r.capacity !== undefined ? r.capacity(this) : this.dev.txQueueLen;
  }

  /**
   * After a flush: frames that came in on a device and are still queued get
   * their own bytes, since the receive buffer is reused after the batch.
   */
  afterFlush(): void {
    const b = this.borrowed;
    if (b.length === 0) return;
    if (this.root.stats.qlen > 0) for (let i = 0; i < b.length; i++) b[i].own();
    clearList(b);
  }

  /** A qdisc's parameters changed: packets may be due now. */
  afterChange(): void {
    if (this.root.stats.qlen > 0) this.dev.kick();
  }

  /** Replaces the root qdisc (the old one's packets are dropped). */
  setRoot(q: Qdisc | null): void {
    const old = this.root;
    old.reset();
    this.root = q ?? this.defaultQdisc();
    this.isDefault = q === null;
    this.afterFlush();
    if (q === null) this.time.cancel(this.timer);
  }

  close(): void {
    this.time.cancel(this.timer);
    this.root.reset();
    this.borrowed.length = 0;
  }
}
