import { DEV_OFFLOAD_CSUM, DEV_OFFLOAD_LRO, DEV_OFFLOAD_RXCSUM, DEV_OFFLOAD_TSO4, DEV_OFFLOAD_USO, type Device, type DeviceReceiver, type LinkType } from './device.js';
import { Offloads, finishChecksum, gsoHeaderLen, gsoSegment, type OffloadFeature } from './offload.js';
import { Gro } from './gro.js';
import { CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, GSO_TCPV4, GSO_UDP_L4 } from '../packet/packet.js';
import { clearList } from '../packet/list.js';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_UDP_L4,
  VnetHdr,
  readVnetHdr,
  writeVnetHdr,
} from '../wire/vnet.js';
import { NeighbourTable, type NeighParams } from './neighbour.js';
import { DEFAULT_HEADROOM, Packet } from '../packet/packet.js';
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
  'device-error', // device refused the frame (an errno other than EAGAIN and EIO)
  'internal-error', // a bug met this frame; counted so it is seen, never fatal
  'gso-bad', // a super-packet (or partial checksum) whose offsets or type can't be taken
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
  /** Per frame of txFrames up to the last gathered one: the packet whose payload views follow it, or null (empty: none gathered). */
  private readonly txGather: (Packet | null)[] = [];
  /** The Stack has been told this interface has frames (txPending) and has not flushed it yet. */
  private txScheduled = false;
  /** Flushes so far: what a default qdisc held before flush N has left by N + 1 (TCP small queues). */
  txFlushes = 0;
  readonly txQueueLen: number;
  private inBatch = false;
  private readonly arpView = new ArpView(new Uint8Array(0), 0, 0);
  /** Offload switches (`ethtool -K`) and their counters. */
  readonly offload = new Offloads();
  /** Bytes of virtio_net_hdr the device wants before each frame (0: none). */
  private readonly vnetLen: number;
  private readonly vnetIn = new VnetHdr();
  /** Where software GSO writes the segments of one flush (reused; grows). */
  private gsoArena = new Uint8Array(0);
  private readonly segFrames: Uint8Array[] = [];
  /** Receive-side merging of TCP segments within a batch. */
  readonly gro: Gro;

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
    this.vnetLen = device.vnetHdrLen ?? 0;
    const caps = device.offloadCaps ?? 0;
    const off = this.offload;
    off.can.tx = off.tx = (caps & DEV_OFFLOAD_CSUM) !== 0 && this.vnetLen > 0;
    off.can.tso = off.tso = (caps & DEV_OFFLOAD_TSO4) !== 0 && this.vnetLen > 0;
    off.can.rx = off.rx = (caps & DEV_OFFLOAD_RXCSUM) !== 0 && this.vnetLen > 0;
    off.can.lro = off.lro = (caps & DEV_OFFLOAD_LRO) !== 0 && this.vnetLen > 0;
    off.can.uso = off.uso = (caps & DEV_OFFLOAD_USO) !== 0 && off.can.tx && off.can.rx;
    this.gro = new Gro(this, (pkt) => this.deliverIp(pkt));
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

  frame(f: Uint8Array, hl = 0): void {
    if (!this.inBatch) {
      this.inBatch = true;
      this.host.batchBegin();
    }
    try {
      this.receive(f, hl);
    } catch (e) {
      // Whatever a frame does to us, the receive loop goes on.
      this.rxDrop('internal-error');
      this.host.internalError(this, e);
    }
  }

  private receive(f: Uint8Array, hl: number): void {
    const st = this.stats;
    st.rxPackets++;
    st.rxBytes += f.length - hl;
    if (this.host.capture !== null) this.host.capture(this, hl === 0 ? f : f.subarray(hl));
    if (!this.up || !this.carrier) return this.rxDrop('link-down');
    if (this.linkType === 'ip') return this.rxIp(f, hl);
    if (f.length - hl < ETH_HEADER_LEN) return this.rxDrop('runt');
    let bcast = false;
    const e = hl;
    if ((f[e] & 1) !== 0) {
      // Group bit set: broadcast or multicast.
      bcast = true;
      if (!(f[e] === 0xff && f[e + 1] === 0xff && f[e + 2] === 0xff && f[e + 3] === 0xff && f[e + 4] === 0xff && f[e + 5] === 0xff))
        st.rxMulticast++;
    } else {
      const m = this.mac;
      if (f[e] !== m[0] || f[e + 1] !== m[1] || f[e + 2] !== m[2] || f[e + 3] !== m[3] || f[e + 4] !== m[4] || f[e + 5] !== m[5])
        return this.rxDrop('otherhost');
    }
    const et = (f[e + 12] << 8) | f[e + 13];
    if (et === ETHERTYPE_IPV4) {
      const pkt = new Packet(f, e + ETH_HEADER_LEN, f.length);
      pkt.ifindex = this.index;
      pkt.linkBroadcast = bcast;
      if (hl !== 0 && !this.rxOffload(pkt, f, e)) return;
      this.gro.receive(pkt);
    } else if (et === ETHERTYPE_ARP) {
      this.arpInput(hl === 0 ? f : f.subarray(hl), bcast);
    } else if (et === ETHERTYPE_IPV6) {
      this.rxDrop('ipv6');
    } else if (et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ) {
      this.rxDrop('vlan');
    } else {
      this.rxDrop('unknown-ethertype');
    }
  }

  /**
   * The virtio_net_hdr in front of a received frame (f[0, e)) into the packet's
   * metadata, as virtio_net_hdr_to_skb does: NEEDS_CSUM gives CHECKSUM_PARTIAL
   * (csum_start counts from the frame's first byte), DATA_VALID gives
   * CHECKSUM_UNNECESSARY, a TCPV4/UDP_L4 gso_type a super-packet. With rx
   * checksumming off a partial checksum is finished here and no verdict is
   * trusted. False: dropped (counted).
   */
  private rxOffload(pkt: Packet, f: Uint8Array, e: number): boolean {
    const h = readVnetHdr(f, 0, this.vnetIn);
    const off = this.offload;
    if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
      pkt.ipSummed = CHECKSUM_PARTIAL;
      pkt.csumStart = e + h.csumStart;
      pkt.csumOffset = h.csumOffset;
      if (pkt.csumStart < pkt.start || pkt.csumStart + h.csumOffset + 2 > pkt.end) {
        off.rxGsoBad++;
        this.rxDrop('gso-bad');
        return false;
      }
      if (!off.rx) {
        finishChecksum(pkt);
        off.rxSwCsum++;
      }
    } else if ((h.flags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0 && off.rx) pkt.ipSummed = CHECKSUM_UNNECESSARY;
    const gt = h.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
    if (gt !== 0) {
      if ((gt !== VIRTIO_NET_HDR_GSO_TCPV4 && gt !== VIRTIO_NET_HDR_GSO_UDP_L4) || h.gsoSize === 0) {
        off.rxGsoBad++;
        this.rxDrop('gso-bad');
        return false;
      }
      pkt.gsoType = gt === VIRTIO_NET_HDR_GSO_TCPV4 ? GSO_TCPV4 : GSO_UDP_L4;
      pkt.gsoSize = h.gsoSize;
      const hdrs = gsoHeaderLen(pkt, pkt.start);
      if (hdrs < 0 || hdrs >= pkt.length) {
        off.rxGsoBad++;
        this.rxDrop('gso-bad');
        return false;
      }
      pkt.gsoSegs = Math.ceil((pkt.length - hdrs) / h.gsoSize);
      off.rxGsoPackets++;
      off.rxGsoSegments += pkt.gsoSegs;
    }
    return true;
  }

  batchEnd(): void {
    if (!this.inBatch) return;
    this.inBatch = false;
    this.gro.flush();
    this.host.batchEnd();
  }

  private rxIp(f: Uint8Array, hl: number): void {
    if (f.length - hl < 1) return this.rxDrop('runt');
    const v = f[hl] >> 4;
    if (v === 4) {
      const pkt = new Packet(f, hl, f.length);
      pkt.ifindex = this.index;
      if (hl !== 0 && !this.rxOffload(pkt, f, hl)) return;
      this.gro.receive(pkt);
    } else if (v === 6) {
      this.rxDrop('ipv6');
    } else {
      this.rxDrop('unknown-ethertype');
    }
  }

  /** After GRO (as in __netif_receive_skb_core): tc ingress, then IP. */
  private deliverIp(pkt: Packet): void {
    if (this.sched.ingressHook !== null && this.sched.ingressHook.ingress(pkt)) return;
    this.host.ipInput(pkt, this);
  }

  /** `ethtool -K DEV FEATURE on|off`: false when the device can't have it on. */
  setOffload(f: OffloadFeature, on: boolean): boolean {
    const off = this.offload;
    if (!off.set(f, on)) return false;
    if ((f === 'rx' || f === 'lro' || f === 'uso' || f === 'tx') && this.device.setRxOffloads !== undefined) {
      const got = this.device.setRxOffloads(off.rx, off.lro, off.uso);
      off.rx = (got & DEV_OFFLOAD_RXCSUM) !== 0;
      off.lro = (got & DEV_OFFLOAD_LRO) !== 0;
      off.uso = (got & DEV_OFFLOAD_USO) !== 0;
    }
    return true;
  }

  rxDrop(reason: LinkDropReason): void {
    this.stats.rxDropped++;
    this.drops[reason]++;
  }

  txDrop(reason: LinkDropReason): void {
    this.stats.txDropped++;
    this.drops[reason]++;
  }

  /**
   * Transmit drops as `ip -s link` shows them: the ones counted here plus the
   * frames the device's writer dropped after sendBatch took them (a TAP's
   * transmit thread), which still count in txPackets (the device took them).
   */
  txDroppedTotal(): number {
    const w = this.device.txWriterDrops?.();
    return w === undefined ? this.stats.txDropped : this.stats.txDropped + w.busy + w.linkDown + w.errors;
  }

  /** Drops by reason, the device writer's included (see txDroppedTotal). */
  dropCounts(): Record<LinkDropReason, number> {
    const w = this.device.txWriterDrops?.();
    if (w === undefined) return this.drops;
    const d = { ...this.drops };
    d['device-busy'] += w.busy;
    d['link-down'] += w.linkDown;
    d['device-error'] += w.errors;
    return d;
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
    const m = this.mac;
    // Byte stores: set() is a builtin call, dearer than six stores.
    for (let i = 0; i < 6; i++) {
      b[o + i] = dst[i];
      b[o + 6 + i] = m[i];
    }
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
    // Filters and qdiscs other than the plain FIFOs may read or change the payload (u32,
    // netem), and segmenting reads it: payload views are copied in first.
    if (pkt.gatherCount !== 0 && (this.sched.egressHook !== null || !holdsSuperPackets(this.sched.root.kind))) pkt.linearize();
    if (pkt.gsoSize > 0 && !holdsSuperPackets(this.sched.root.kind)) return this.queueSegments(pkt);
    if (this.sched.enqueue(pkt) !== 0) this.txDrop('txqueue-full');
    if (!this.txScheduled) this.kick();
  }

  /**
   * A super-packet for a shaping or fair-queueing qdisc goes in as its
   * segments, so rates, buckets and flow queues count wire-sized packets
   * (Linux keeps it whole there, counted by qdisc_pkt_len, and tbf cuts one
   * larger than its bucket: tbf_segment). The segments share one new buffer.
   */
  private queueSegments(pkt: Packet): void {
    const l3 = pkt.start + this.hardHeaderLen;
    const hdrs = gsoHeaderLen(pkt, l3);
    const segs = hdrs < 0 ? 0 : Math.ceil((pkt.length - hdrs) / pkt.gsoSize);
    const buf = new Uint8Array(DEFAULT_HEADROOM + segs * ((hdrs + pkt.gsoSize + DEFAULT_HEADROOM + 3) & ~3));
    const frames = this.segFrames;
    clearList(frames);
    // Each segment keeps headroom before it for the device's virtio_net_hdr.
    if (segs === 0 || gsoSegment(pkt, l3, buf, 0, DEFAULT_HEADROOM, false, frames) < 0) {
      this.txDrop('gso-bad');
      pkt.sent();
      return;
    }
    this.offload.txSwGsoPackets++;
    this.offload.txSwGsoSegments += frames.length;
    // Each segment keeps the super-packet's mark, conntrack entry and header offsets
    // (skb_segment copies them), so filters see an IP packet of the same flow: u32 and
    // `protocol ip` read pkt.l3, and a segment without it would fall to the default class.
    // (ifindex stays 0: the segments own their buffer, none is borrowed from a receive batch.)
    const l3Off = l3 - pkt.start;
    const l4Off = l3Off + ((pkt.buf[l3] & 0x0f) << 2);
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      const s = new Packet(buf, f.byteOffset + DEFAULT_HEADROOM, f.byteOffset + f.length);
      s.mark = pkt.mark;
      s.ct = pkt.ct;
      s.ctInfo = pkt.ctInfo;
      s.l3 = s.start + l3Off;
      s.l4 = s.start + l4Off;
      if (this.sched.enqueue(s) !== 0) this.txDrop('txqueue-full');
    }
    clearList(frames);
    pkt.sent();
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
    this.txFlushes++;
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
    sched.advanceEstimators();
    const hl = this.vnetLen;
    const off = this.offload;
    // validate_xmit_skb: after the qdisc, what the device can't do is done here.
    const tso = off.tso;
    const uso = off.uso;
    const txCsum = off.tx;
    const capture = this.host.capture;
    const gather = this.device.sendBatchGather !== undefined;
    // Left by a flush that threw before its write.
    if (this.txGather.length !== 0) clearList(this.txGather);
    let m = 0;
    let arenaAt = 0;
    for (;;) {
      const p = root.dequeue(sched);
      if (p === null) break;
      pkts[m++] = p;
      if (p.gsoSize > 0 && !this.takesWhole(p, tso, uso)) {
        p.linearize();
        arenaAt = this.softwareGso(p, arenaAt, frames, hl, txCsum);
        continue;
      }
      if (p.ipSummed === CHECKSUM_PARTIAL && !txCsum) {
        p.linearize();
        if (!finishChecksum(p)) {
          this.txDrop('gso-bad');
          continue;
        }
        off.txSwCsum++;
      }
      if (hl !== 0) {
        const hdrs = p.gsoSize > 0 ? gsoHeaderLen(p, p.start + this.hardHeaderLen) : 0;
        const o = p.push(hl);
        const b = p.buf;
        if (p.gsoSize > 0) {
          const gt = p.gsoType === GSO_TCPV4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_UDP_L4;
          writeVnetHdr(b, o, hl, VIRTIO_NET_HDR_F_NEEDS_CSUM, gt, hdrs, p.gsoSize, p.csumStart - o - hl, p.csumOffset);
          off.txGsoPackets++;
          off.txGsoSegments += p.gsoSegs;
        } else if (p.ipSummed === CHECKSUM_PARTIAL) {
          writeVnetHdr(b, o, hl, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, p.csumStart - o - hl, p.csumOffset);
        } else {
          for (let i = 0; i < hl; i++) b[o + i] = 0;
        }
      }
      if (p.gatherCount !== 0) {
        // The device writes the headers from here and the payload from the views
        // (scatter-gather); a capture, or a device that can't, gets the bytes copied in.
        if (gather && capture === null) {
          this.gatherFrame(frames.length, p);
          frames.push(p.buf.subarray(p.start, p.gatherAt));
          continue;
        }
        p.linearize();
      }
      frames.push(p.data());
    }
    const n = frames.length;
    if (n === 0) {
      for (let i = 0; i < m; i++) pkts[i].sent();
      clearList(pkts);
      sched.afterFlush();
      return 0;
    }
    const gl = this.txGather;
    const gathered = gl.length !== 0;
    let sent = 0;
    try {
      if (!gathered) sent = this.device.sendBatch(frames, n);
      else {
        while (gl.length < n) gl.push(null);
        sent = this.device.sendBatchGather!(frames, gl, n);
      }
    } finally {
      const st = this.stats;
      for (let i = 0; i < n; i++) {
        if (i < sent) {
          st.txPackets++;
          st.txBytes += frames[i].length - hl;
          if (gathered && gl[i] !== null) st.txBytes += gl[i]!.end - gl[i]!.gatherAt;
          if (capture !== null) capture(this, hl === 0 ? frames[i] : frames[i].subarray(hl));
        } else {
          this.txDrop('device-busy');
        }
      }
      // The device is done with the frames (device.ts): pooled packets can be reused.
      for (let i = 0; i < m; i++) pkts[i].sent();
      clearList(pkts);
      clearList(frames);
      if (gathered) clearList(gl);
      sched.afterFlush();
    }
    return sent;
  }

  /** Marks frame `i` of the flush as followed by `p`'s payload views (earlier frames: none). */
  private gatherFrame(i: number, p: Packet): void {
    const gl = this.txGather;
    while (gl.length < i) gl.push(null);
    gl.push(p);
  }

  /**
   * netif_skb_features / skb_gso_ok: the device takes a TCP super-packet with
   * TSO, a UDP one with USO and at most UDP_MAX_SEGMENTS segments (the kernel
   * refuses more: virtio_net_hdr_to_skb), each with its checksum partial at the
   * transport header (what the device finishes; one finished on arrival is cut here).
   */
  private takesWhole(p: Packet, tso: boolean, uso: boolean): boolean {
    if (p.ipSummed !== CHECKSUM_PARTIAL) return false;
    if (p.gsoType === GSO_TCPV4) return tso;
    return uso && p.gsoType === GSO_UDP_L4 && p.gsoSegs <= UDP_MAX_SEGMENTS && p.csumOffset === 6;
  }

  /**
   * GSO in software (skb_gso_segment): a super-packet the device can't take
   * whole is cut into segments in the flush's arena, each with its own
   * virtio_net_hdr when the device wants one (checksum left partial when the
   * device finishes it). Returns the arena offset after them.
   */
  private softwareGso(p: Packet, at: number, frames: Uint8Array[], hl: number, txCsum: boolean): number {
    const off = this.offload;
    const l3 = p.start + this.hardHeaderLen;
    const hdrs = gsoHeaderLen(p, l3);
    const segs = hdrs < 0 ? 0 : Math.ceil((p.length - hdrs) / p.gsoSize);
    const need = at + segs * (((hl + hdrs + p.gsoSize) + 3) & ~3);
    if (need > this.gsoArena.length) {
      // Frames already cut in this flush stay in the old arena, which they keep alive.
      const size = Math.max(need - at, 1 << 18, this.gsoArena.length);
      this.gsoArena = new Uint8Array(size);
      at = 0;
    }
    const partial = txCsum && hl !== 0;
    const first = frames.length;
    const end = segs === 0 ? -1 : gsoSegment(p, l3, this.gsoArena, at, hl, partial, frames);
    if (end < 0) {
      frames.length = first;
      this.txDrop('gso-bad');
      return at;
    }
    if (hl !== 0) {
      const a = this.gsoArena;
      const l4 = l3 + ((p.buf[l3] & 0x0f) << 2) - p.start;
      const csumOffset = p.gsoType === GSO_TCPV4 ? 16 : 6;
      for (let i = first; i < frames.length; i++) {
        const o = frames[i].byteOffset - a.byteOffset;
        if (partial) writeVnetHdr(a, o, hl, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, l4, csumOffset);
        else writeVnetHdr(a, o, hl, 0, 0, 0, 0, 0, 0);
      }
    }
    off.txSwGsoPackets++;
    off.txSwGsoSegments += frames.length - first;
    return end;
  }

  close(): void {
    this.neigh?.close();
    this.sched.close();
    this.device.close();
  }
}

/** include/linux/udp.h UDP_MAX_SEGMENTS: 64 before Linux 6.13 (128 since); the lower bound is safe for both. */
const UDP_MAX_SEGMENTS = 64;

/** Root qdiscs that queue a super-packet whole (packet-counting fifos); the others get its segments. */
function holdsSuperPackets(kind: string): boolean {
  return kind === 'pfifo_fast' || kind === 'pfifo' || kind === 'bfifo';
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
