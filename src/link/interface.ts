import type { Device, DeviceReceiver, LinkType } from './device.js';
import { NeighbourTable, type NeighParams } from './neighbour.js';
import { Packet } from '../packet/packet.js';
import type { Time } from '../time/timers.js';
import type { Mib } from '../mib.js';
import { DevSched } from '../sched/sched.js';
import { ArpView, ARP_LEN, ARP_REPLY, ARP_REQUEST, emitArp } from '../wire/arp.js';
import { BROADCAST_MAC, ZERO_MAC, prefixMask } from '../wire/addr.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HEADER_LEN } from '../wire/ethernet.js';

export interface InterfaceAddr {
  addr: number;
  prefixLen: number;
  /** Directed broadcast address of the subnet (0 for /31 and /32). */
  broadcast: number;
}

/** What an Interface needs from the Stack that owns it. */
export interface InterfaceHost {
  readonly time: Time;
  readonly mib: Mib;
  random(): number;
  /** An IPv4 datagram arrived; `pkt.start` is at the IP header. */
  ipInput(pkt: Packet, iface: Interface): void;
  /** The interface has frames to send. */
  txPending(iface: Interface): void;
  /** A receive batch began (first frame) or ended. */
  batchBegin(): void;
  batchEnd(): void;
  /** A frame hit a bug (an exception); it has been dropped and counted. */
  internalError(iface: Interface, err: unknown): void;
  /** Capture hook (pcap), or null. */
  capture: ((iface: Interface, frame: Uint8Array) => void) | null;
  /** A datagram was dropped because its next hop never answered ARP (`pkt.l3` at its IP header). */
  neighbourUnreachable?(pkt: Packet): void;
}

/** Link statistics, shaped like Linux's rtnl_link_stats64. */
export class LinkStats {
  rxPackets = 0;
  rxBytes = 0;
  rxErrors = 0;
  rxDropped = 0;
  rxMulticast = 0;
  txPackets = 0;
  txBytes = 0;
  txErrors = 0;
  txDropped = 0;
}

/**
 * Why a frame was dropped at the link layer (shown by `ip -s link`). Named
 * after Linux's skb drop reasons where one fits.
 */
export const LINK_DROP_REASONS = [
  'runt', // shorter than an Ethernet header
  'otherhost', // unicast to another MAC (PACKET_OTHERHOST)
  'vlan', // 802.1Q/802.1ad tagged, and no VLAN device for it
  'ipv6', // IPv6 is not spoken here
  'unknown-ethertype', // EtherType (or IP version on TUN) with no handler
  'arp-invalid', // malformed or unsupported ARP
  'link-down', // arrived or queued while the interface was down
  'neigh-failed', // next hop did not answer ARP
  'neigh-overflow', // unresolved queue full (unres_qlen_bytes)
  'txqueue-full', // transmit queue full
  'device-busy', // device would not take the frame (EAGAIN)
  'internal-error', // a bug met this frame; counted so it is seen, never fatal
] as const;
export type LinkDropReason = (typeof LINK_DROP_REASONS)[number];

export interface InterfaceOptions {
  mac?: Uint8Array;
  mtu?: number;
  txQueueLen?: number;
  neigh?: Partial<NeighParams>;
}

/** An Interface is a device plus its link layer (Ethernet and ARP on TAP, none on TUN). */
export class Interface implements DeviceReceiver {
  readonly linkType: LinkType;
  readonly mac: Uint8Array;
  mtu: number;
  /** Administratively up (`ip link set up`). */
  up = false;
  /** The device works; false once it has failed (Linux's NO-CARRIER). */
  carrier = true;
  readonly addrs: InterfaceAddr[] = [];
  readonly stats = new LinkStats();
  readonly drops: Record<LinkDropReason, number>;
  readonly neigh: NeighbourTable | null;
  /** Egress scheduling: the root qdisc frames wait in (frame at `start`), the watchdog timer. */
  readonly sched: DevSched;
  /** The frames dequeued for one device write. */
  private readonly txFrames: Uint8Array[] = [];
  private readonly txPkts: Packet[] = [];
  /** The Stack has been told this interface has frames (txPending) and has not flushed it yet. */
  private txScheduled = false;
  readonly txQueueLen: number;
  private inBatch = false;
  private readonly arpView = new ArpView(new Uint8Array(0), 0, 0);

  constructor(
    readonly index: number,
    readonly name: string,
    readonly device: Device,
    private readonly host: InterfaceHost,
    opts: InterfaceOptions = {},
  ) {
    this.linkType = device.linkType;
    this.mac = opts.mac ? new Uint8Array(opts.mac) : this.linkType === 'ether' ? randomMac(() => host.random()) : new Uint8Array(6);
    this.mtu = opts.mtu ?? 1500;
    this.txQueueLen = opts.txQueueLen ?? 1000;
    this.sched = new DevSched(this, host.time, () => host.random());
    this.drops = Object.fromEntries(LINK_DROP_REASONS.map((r) => [r, 0])) as Record<LinkDropReason, number>;
    this.neigh =
      this.linkType === 'ether'
        ? new NeighbourTable(
            host.time,
            {
              sendArpRequest: (ip, to) => this.sendArpRequest(ip, to),
              sendResolved: (pkt, mac) => this.sendEther(pkt, mac, ETHERTYPE_IPV4),
              dropUnresolved: (_pkt, why) => {
                this.txDrop(why === 'failed' ? 'neigh-failed' : 'neigh-overflow');
                if (why === 'overflow') this.host.mib.ArpUnresolvedDiscards++;
                else this.host.neighbourUnreachable?.(_pkt);
              },
            },
            opts.neigh,
            () => host.random(),
          )
        : null;
  }

  start(): void {
    this.device.start(this);
  }

  /**
   * The link speed in Mbit/s as /sys/class/net/DEV/speed reads (tc's `rate
   * N%`): what the device knows of its rate, else what Linux's tun driver
   * reports for a TAP (10000); unknown (null) while not running.
   */
  get speedMbit(): number | null {
    if (!this.running) return null;
    return this.device.speedMbit?.() ?? 10000;
  }

  /** Up and with a working device: what Linux calls operationally up. */
  get running(): boolean {
    return this.up && this.carrier;
  }

  /** The address used as source when nothing else decides: the first one. */
  primaryAddr(): number {
    return this.addrs.length > 0 ? this.addrs[0].addr : 0;
  }

  /** The address of ours on the subnet of `dst`, else the primary one. */
  sourceFor(dst: number): number {
    for (const a of this.addrs) {
      const m = prefixMask(a.prefixLen);
      if (((a.addr & m) >>> 0) === ((dst & m) >>> 0)) return a.addr;
    }
    return this.primaryAddr();
  }

  hasAddr(ip: number): boolean {
    for (const a of this.addrs) if (a.addr === ip) return true;
    return false;
  }

  /** True for 255.255.255.255 and the directed broadcast of one of our subnets. */
  isBroadcast(ip: number): boolean {
    if (ip === 0xffffffff) return true;
    for (const a of this.addrs) if (a.broadcast !== 0 && a.broadcast === ip) return true;
    return false;
  }

  // ---- receive ----

  frame(f: Uint8Array): void {
    if (!this.inBatch) {
      this.inBatch = true;
      this.host.batchBegin();
    }
    try {
      this.receive(f);
    } catch (e) {
      // Whatever a frame does to us, the receive loop goes on.
      this.rxDrop('internal-error');
      this.host.internalError(this, e);
    }
  }

  private receive(f: Uint8Array): void {
    const st = this.stats;
    st.rxPackets++;
    st.rxBytes += f.length;
    if (this.host.capture !== null) this.host.capture(this, f);
    if (!this.up || !this.carrier) return this.rxDrop('link-down');
    if (this.linkType === 'ip') return this.rxIp(f);
    if (f.length < ETH_HEADER_LEN) return this.rxDrop('runt');
    let bcast = false;
    if ((f[0] & 1) !== 0) {
      // Group bit set: broadcast or multicast.
      bcast = true;
      if (!(f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff))
        st.rxMulticast++;
    } else {
      const m = this.mac;
      if (f[0] !== m[0] || f[1] !== m[1] || f[2] !== m[2] || f[3] !== m[3] || f[4] !== m[4] || f[5] !== m[5])
        return this.rxDrop('otherhost');
    }
    const et = (f[12] << 8) | f[13];
    if (et === ETHERTYPE_IPV4) {
      const pkt = new Packet(f, ETH_HEADER_LEN, f.length);
      pkt.ifindex = this.index;
      pkt.linkBroadcast = bcast;
      if (this.sched.ingressHook !== null && this.sched.ingressHook.ingress(pkt)) return;
      this.host.ipInput(pkt, this);
    } else if (et === ETHERTYPE_ARP) {
      this.arpInput(f, bcast);
    } else if (et === ETHERTYPE_IPV6) {
      this.rxDrop('ipv6');
    } else if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ) {
      this.rxDrop('vlan');
    } else {
      this.rxDrop('unknown-ethertype');
    }
  }

  batchEnd(): void {
    if (!this.inBatch) return;
    this.inBatch = false;
    this.host.batchEnd();
  }

  private rxIp(f: Uint8Array): void {
    if (f.length < 1) return this.rxDrop('runt');
    const v = f[0] >> 4;
    if (v === 4) {
      const pkt = new Packet(f, 0, f.length);
      pkt.ifindex = this.index;
      if (this.sched.ingressHook !== null && this.sched.ingressHook.ingress(pkt)) return;
      this.host.ipInput(pkt, this);
    } else if (v === 6) {
      this.rxDrop('ipv6');
    } else {
      this.rxDrop('unknown-ethertype');
    }
  }

  rxDrop(reason: LinkDropReason): void {
    this.stats.rxDropped++;
    this.drops[reason]++;
  }

  txDrop(reason: LinkDropReason): void {
    this.stats.txDropped++;
    this.drops[reason]++;
  }

  /** RFC 826 packet reception, with Linux's choices on what to learn from. */
  private arpInput(f: Uint8Array, bcast: boolean): void {
    const v = this.arpView;
    v.reset(f, ETH_HEADER_LEN, f.length - ETH_HEADER_LEN);
    const mib = this.host.mib;
    if (v.check() !== null) {
      mib.ArpInErrors++;
      return this.rxDrop('arp-invalid');
    }
    const op = v.op;
    const sip = v.senderIp;
    const tip = v.targetIp;
    const sha = v.senderMac();
    const neigh = this.neigh!;
    // Senders that can't be neighbours: unspecified (RFC 5227 probes), broadcast, multicast.
    const senderOk = sip !== 0 && sip !== 0xffffffff && (sip >>> 28) !== 0xe && (sha[0] & 1) === 0;
    if (op === ARP_REQUEST) {
      mib.ArpInRequests++;
      if (this.hasAddr(tip)) {
        // A request for us: answer, and learn the asker (it will talk to us next).
        if (senderOk) neigh.learn(sip, sha, false, true);
        this.sendArp(ARP_REPLY, sha, tip, sha, sip);
        mib.ArpOutReplies++;
      } else if (senderOk) {
        // RFC 826 merge: refresh an entry we already have; create none.
        neigh.learn(sip, sha, false, false);
      }
    } else if (op === ARP_REPLY) {
      mib.ArpInReplies++;
      // A reply unicast to us confirms reachability; a broadcast one only refreshes.
      if (senderOk) neigh.learn(sip, sha, !bcast && this.hasAddr(tip), false);
    } else {
      mib.ArpInErrors++;
      this.rxDrop('arp-invalid');
    }
  }

  // ---- transmit ----

  /** Sends an IPv4 datagram (`pkt.start` at the IP header) towards `nextHop`. */
  outputIp(pkt: Packet, nextHop: number): void {
    if (!this.running) return this.txDrop('link-down');
    if (this.linkType === 'ip') return this.queueTx(pkt);
    let mac: Uint8Array | null;
    if (this.isBroadcast(nextHop)) mac = BROADCAST_MAC;
    else if ((nextHop >>> 28) === 0xe) mac = multicastMac(nextHop);
    else mac = this.neigh!.resolve(nextHop, pkt);
    if (mac !== null) this.sendEther(pkt, mac, ETHERTYPE_IPV4);
  }

  private sendEther(pkt: Packet, dst: Uint8Array, etherType: number): void {
    const o = pkt.push(ETH_HEADER_LEN);
    const b = pkt.buf;
    b.set(dst, o);
    b.set(this.mac, o + 6);
    b[o + 12] = etherType >> 8;
    b[o + 13] = etherType & 0xff;
    this.queueTx(pkt);
  }

  /** Gratuitous ARP (RFC 5227 §3 announcement) for an address we just took. */
  announce(ip: number): void {
    if (this.linkType !== 'ether' || !this.running) return;
    this.sendArp(ARP_REQUEST, BROADCAST_MAC, ip, ZERO_MAC, ip);
    this.host.mib.ArpOutRequests++;
  }

  private sendArpRequest(ip: number, unicastTo: Uint8Array | null): void {
    this.sendArp(ARP_REQUEST, unicastTo ?? BROADCAST_MAC, this.sourceFor(ip), ZERO_MAC, ip);
    this.host.mib.ArpOutRequests++;
  }

  private sendArp(op: number, ethDst: Uint8Array, sip: number, tha: Uint8Array, tip: number): void {
    if (!this.running) return;
    const pkt = Packet.alloc(ARP_LEN, ETH_HEADER_LEN);
    emitArp({ op, senderMac: this.mac, senderIp: sip, targetMac: tha, targetIp: tip }, pkt.buf, pkt.start);
    this.sendEther(pkt, ethDst, ETHERTYPE_ARP);
  }

  /** How many more full-size frames the root qdisc takes (TCP paces itself by it). */
  get txRoom(): number {
    return this.sched.room();
  }

  /** How many full-size frames the root qdisc takes when empty. */
  get txCapacity(): number {
    return this.sched.capacity();
  }

  /** Link header length (qdisc_pkt_len counts it). */
  get hardHeaderLen(): number {
    return this.linkType === 'ether' ? ETH_HEADER_LEN : 0;
  }

  private queueTx(pkt: Packet): void {
    // The root qdisc takes the frame or drops it (counted on the qdisc, as
    // `tc -s` shows, and as a tx drop of the device as Linux's dev_queue_xmit does).
    if (this.sched.enqueue(pkt) !== 0) this.txDrop('txqueue-full');
    if (!this.txScheduled) this.kick();
  }

  /** The qdisc may have frames to send: flush at the batch's end (or now, outside a batch). */
  kick(): void {
    if (this.txScheduled) return;
    this.txScheduled = true;
    this.host.txPending(this);
  }

  /** Hands every frame the root qdisc releases now to the device as one batch; returns how many left. */
  flush(): number {
    this.txScheduled = false;
    const sched = this.sched;
    const root = sched.root;
    if (!this.up) {
      // dev_deactivate: a device taken down loses what its qdisc held.
      if (root.stats.qlen > 0) root.reset();
      sched.afterFlush();
      return 0;
    }
    const pkts = this.txPkts;
    const frames = this.txFrames;
    let n = 0;
    sched.advanceEstimators();
    for (;;) {
      const p = root.dequeue(sched);
      if (p === null) break;
      pkts[n] = p;
      frames[n] = p.data();
      n++;
    }
    if (n === 0) {
      sched.afterFlush();
      return 0;
    }
    const capture = this.host.capture;
    let sent = 0;
    try {
      sent = this.device.sendBatch(frames, n);
    } finally {
      const st = this.stats;
      for (let i = 0; i < n; i++) {
        if (i < sent) {
          st.txPackets++;
          st.txBytes += frames[i].length;
          if (capture !== null) capture(this, frames[i]);
        } else {
          this.txDrop('device-busy');
        }
        // The device is done with the frame (device.ts): pooled packets can be reused.
        pkts[i].sent();
      }
      pkts.length = 0;
      frames.length = 0;
      sched.afterFlush();
    }
    return sent;
  }

  close(): void {
    this.neigh?.close();
    this.sched.close();
    this.device.close();
  }
}

/** RFC 1112 §6.4: 01:00:5e plus the low 23 bits of the group address. */
function multicastMac(ip: number): Uint8Array {
  return new Uint8Array([0x01, 0x00, 0x5e, (ip >>> 16) & 0x7f, (ip >>> 8) & 0xff, ip & 0xff]);
}

/** A random locally administered unicast MAC, as Linux gives new TAP devices. */
function randomMac(random: () => number): Uint8Array {
  const m = new Uint8Array(6);
  for (let i = 0; i < 6; i++) m[i] = Math.floor(random() * 256);
  m[0] = (m[0] & 0xfe) | 0x02;
  return m;
}
