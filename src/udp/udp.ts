/**
 * UDP (RFC 768) over IPv4: input validation and demultiplexing to endpoints,
 * output with checksums, port allocation, and ICMP errors handed back to the
 * endpoint that sent the datagram they quote.
 */
import type { Interface } from '../link/interface.js';
import { CHECKSUM_NONE, CHECKSUM_PARTIAL, GSO_UDP_L4, Packet } from '../packet/packet.js';
import type { Ipv4 } from '../ip/ipv4.js';
import type { Icmp, IcmpErrorInfo } from '../ip/icmp.js';
import { routeMtu, type Route } from '../ip/route.js';
import type { Mib } from '../mib.js';
import type { Time } from '../time/timers.js';
import { LocalPortRange } from '../ip/port-range.js';
import { UDP_HEADER_LEN, UdpView, fillUdpChecksum, verifyUdpChecksum } from '../wire/udp.js';
import { isMulticastIp4 } from '../wire/addr.js';
import { ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED } from '../wire/icmp.js';
import { unreachErrno, type Errno } from '../errors.js';
import { UdpSocket, type UdpSocketOptions } from './socket.js';

export const IPPROTO_UDP = 17;

/** The largest payload: 65535 bytes of IP datagram less 20 of IP header and 8 of UDP header. */
export const UDP_MAX_PAYLOAD = 0xffff - 20 - UDP_HEADER_LEN;

/** What an endpoint's owner (a socket, a built-in service) receives. */
export interface UdpReceiver {
  /**
   * A datagram for this endpoint. `data` points into the receive buffer and is
   * valid only during the call. Returns false when there is no room for it.
   */
  datagram(data: Uint8Array, src: number, srcPort: number, dst: number): boolean;
  /** An ICMP error about a datagram this connected endpoint sent. */
  icmpError(code: Errno, info: IcmpErrorInfo): void;
  /** For ss: bytes charged to the receive buffer (Recv-Q), and its size. */
  rcvQueued?(): number;
  rcvBufSize?(): number;
}

/** One UDP endpoint, like the kernel's sock: local and (when connected) remote address and port. */
export class UdpEndpoint {
  /** The address datagrams must be sent to (0: any of ours), Linux's rcv_saddr. */
  localAddr = 0;
  /** The source of what we send (0: the route's choice), Linux's saddr. */
  srcAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
  /** Chosen by bind rather than picked for us: kept on disconnect (SOCK_BINDPORT_LOCK, SOCK_BINDADDR_LOCK). */
  portLocked = false;
  addrLocked = false;
  /** IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set, and no local fragmentation. */
  dontFrag = false;
  /** SO_BROADCAST */
  broadcast = false;
  /** SO_REUSEADDR: may share its port with others that set it too. */
  reuseAddr = false;
  /** IP_TTL; 0 means net.ipv4.ip_default_ttl. */
  ttl = 0;
  /** SO_MARK: carried by what it sends and used to choose the route (`ip rule fwmark`). */
  mark = 0;
  /** SO_BINDTODEVICE: sends leave by this interface; only datagrams arriving on it are received. */
  boundDev: Interface | null = null;
  closed = false;

  constructor(readonly rx: UdpReceiver) {}

  get bound(): boolean {
    return this.localPort !== 0;
  }

  get connected(): boolean {
    return this.remotePort !== 0;
  }
}


export class Udp {
  /** Bound endpoints by local port. A port holds few endpoints, so a scan picks the best. */
  private readonly ports = new Map<number, UdpEndpoint[]>();
  private readonly inView = new UdpView(new Uint8Array(0), 0, 0);
  private readonly outView = new UdpView(new Uint8Array(0), 0, 0);

  constructor(
    private readonly ip: Ipv4,
    private readonly icmp: Icmp,
    private readonly mib: Mib,
    readonly time: Time,
    private readonly random: () => number,
    readonly portRange: LocalPortRange = new LocalPortRange(),
  ) {
    ip.register(IPPROTO_UDP, (pkt, src, dst, iface) => this.input(pkt, src, dst, iface));
    icmp.onError((e) => this.icmpError(e));
  }

  /** A socket shaped like Node's dgram.Socket. */
  createSocket(type?: 'udp4' | UdpSocketOptions, listener?: (msg: Buffer, rinfo: { address: string; family: 'IPv4'; port: number; size: number }) => void): UdpSocket {
    const s = new UdpSocket(this, typeof type === 'object' ? type : {});
    if (listener) s.on('message', listener);
    return s;
  }

  /** A new unbound endpoint delivering to `rx`. */
  open(rx: UdpReceiver): UdpEndpoint {
    return new UdpEndpoint(rx);
  }

  /** The interface SO_BINDTODEVICE names, or undefined (ENODEV). */
  device(name: string): Interface | undefined {
    return this.ip.ifaceByName(name);
  }

  /** True for one of our unicast addresses (not a broadcast or multicast one). */
  isLocal(addr: number): boolean {
    return this.ip.isLocal(addr);
  }

  /** Every bound endpoint (for listings). */
  *endpoints(): IterableIterator<UdpEndpoint> {
    for (const list of this.ports.values()) yield* list;
  }

  // ---- binding ----

  /**
   * True if binding (addr, port) would clash with a bound endpoint: the same
   * address, or either is any address, unless both set SO_REUSEADDR.
   */
  portInUse(addr: number, port: number, reuse = false): boolean {
    const list = this.ports.get(port);
    if (list === undefined) return false;
    for (const ep of list) {
      if (reuse && ep.reuseAddr) continue;
      if (ep.localAddr === 0 || addr === 0 || ep.localAddr === addr) return true;
    }
    return false;
  }

  /** The errno binding (addr, port) would fail with now, or null. */
  bindError(addr: number, port: number, reuse = false): Errno | null {
    // Linux inet_bind: the address must be ours, a broadcast or multicast one, or any.
    if (addr !== 0 && !this.ip.isLocal(addr) && addr !== 0xffffffff && !isMulticastIp4(addr) && !this.ip.isBroadcastAddr(addr))
      return 'EADDRNOTAVAIL';
    if (port !== 0 && this.portInUse(addr, port, reuse)) return 'EADDRINUSE';
    return null;
  }

  /** bind(2): port 0 picks one from net.ipv4.ip_local_port_range. */
  bind(ep: UdpEndpoint, addr: number, port: number): Errno | null {
    if (ep.closed || ep.bound) return 'EINVAL';
    const err = this.bindError(addr, port, ep.reuseAddr);
    if (err !== null) return err;
    let p = port;
    if (p === 0) {
      // A port of its own even with SO_REUSEADDR, as Linux's udp_lib_get_port gives.
      p = this.portRange.pick(this.random, (x) => this.ports.has(x));
      if (p < 0) return 'EADDRINUSE';
    }
    ep.localAddr = addr;
    // Linux inet_bind: bound to a broadcast or multicast address, send from the device's address.
    ep.srcAddr = addr !== 0 && this.ip.isLocal(addr) ? addr : 0;
    ep.localPort = p;
    ep.portLocked = port !== 0;
    ep.addrLocked = addr !== 0;
    this.hash(ep);
    return null;
  }

  /** The implicit bind of a send or connect on an unbound endpoint (inet_autobind). */
  private autobind(ep: UdpEndpoint): Errno | null {
    return this.bind(ep, 0, 0) === null ? null : 'EAGAIN';
  }

  private hash(ep: UdpEndpoint): void {
    const list = this.ports.get(ep.localPort);
    if (list === undefined) this.ports.set(ep.localPort, [ep]);
    else list.push(ep);
  }

  private unhash(ep: UdpEndpoint): void {
    const list = this.ports.get(ep.localPort);
    if (list === undefined) return;
    const i = list.indexOf(ep);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.ports.delete(ep.localPort);
  }

  /**
   * connect(2) (Linux ip4_datagram_connect): fixes the peer, binds if needed, and
   * takes the route's source address if none was bound.
   */
  connect(ep: UdpEndpoint, addr: number, port: number): Errno | null {
    if (ep.closed) return 'EINVAL';
    const r = this.routeTo(ep, addr, port);
    if (typeof r === 'string') return r;
    if (!ep.bound) {
      const err = this.autobind(ep);
      if (err !== null) return err;
    }
    if (ep.srcAddr === 0) ep.srcAddr = r.src;
    if (ep.localAddr === 0) ep.localAddr = r.src;
    ep.remoteAddr = addr;
    ep.remotePort = port;
    return null;
  }

  /**
   * Linux __udp_disconnect: forgets the peer; an address or port that bind did
   * not ask for is given back, and the next send binds again.
   */
  disconnect(ep: UdpEndpoint): void {
    ep.remoteAddr = 0;
    ep.remotePort = 0;
    if (!ep.addrLocked) {
      ep.localAddr = 0;
      ep.srcAddr = 0;
    }
    if (!ep.portLocked && ep.bound) {
      this.unhash(ep);
      ep.localPort = 0;
    }
  }

  close(ep: UdpEndpoint): void {
    if (ep.closed) return;
    if (ep.bound) this.unhash(ep);
    ep.closed = true;
  }

  // ---- send ----

  /** Route and source for sending to `dst`, or the errno. */
  private routeTo(ep: UdpEndpoint, dst: number, dport: number): { route: Route | undefined; src: number; mtu: number } | Errno {
    // Linux udp_sendmsg / ip4_datagram_connect: broadcasts need SO_BROADCAST.
    if ((dst === 0xffffffff || this.ip.isBroadcastAddr(dst)) && !ep.broadcast) return 'EACCES';
    const local = this.ip.local.get(dst);
    if (local !== undefined) return { route: undefined, src: ep.srcAddr || dst, mtu: 0xffff };
    const route = this.ip.routeOrErrno({ dst, src: ep.srcAddr, proto: IPPROTO_UDP, sport: ep.localPort, dport, mark: ep.mark, oif: ep.boundDev });
    if (typeof route === 'string') return route;
    return { route, src: ep.srcAddr || route.src || route.dev.sourceFor(route.gateway || dst), mtu: routeMtu(route) };
  }

  /**
   * Sends the concatenation of `chunks` from `ep` to dst:dport. `from` overrides
   * the source address (a service answering from the address it was asked on).
   * Returns null or the errno a socket reports.
   */
  send(ep: UdpEndpoint, chunks: readonly Uint8Array[], dst: number, dport: number, from = 0): Errno | null {
    if (ep.closed) return 'EBADF';
    let len = 0;
    for (let i = 0; i < chunks.length; i++) len += chunks[i].length;
    // RFC 768 / RFC 791: the datagram must fit the 16-bit IP total length.
    if (len > UDP_MAX_PAYLOAD) return 'EMSGSIZE';
    if (!ep.bound) {
      const err = this.autobind(ep);
      if (err !== null) return err;
    }
    const r = this.routeTo(ep, dst, dport);
    if (typeof r === 'string') return r;
    // IP_PMTUDISC_DO: a datagram larger than the path MTU fails rather than fragments.
    if (ep.dontFrag && 20 + UDP_HEADER_LEN + len > r.mtu) return 'EMSGSIZE';
    const src = from || r.src;
    const pkt = Packet.alloc(UDP_HEADER_LEN + len);
    const b = pkt.buf;
    let o = pkt.start + UDP_HEADER_LEN;
    for (let i = 0; i < chunks.length; i++) {
      b.set(chunks[i], o);
      o += chunks[i].length;
    }
    const v = this.outView.reset(b, pkt.start, UDP_HEADER_LEN + len);
    v.srcPort = ep.localPort;
    v.dstPort = dport;
    v.length = UDP_HEADER_LEN + len;
    // RFC 768 checksum over pseudo-header, header and data; a computed 0 goes as 0xffff.
    fillUdpChecksum(v, src, dst);
    const err = this.ip.output(pkt, dst, IPPROTO_UDP, {
      src,
      route: r.route,
      dontFrag: ep.dontFrag,
      ttl: ep.ttl !== 0 ? ep.ttl : undefined,
      mark: ep.mark,
      oif: ep.boundDev,
    });
    if (err !== null) return err;
    this.mib.UdpOutDatagrams++;
    return null;
  }

  // ---- receive ----

  private input(pkt: Packet, src: number, dst: number, iface: Interface): void {
    const mib = this.mib;
    const v = this.inView.reset(pkt.buf, pkt.start, pkt.end - pkt.start);
    // RFC 1122 §4.1.3.4: a length field below the header size or beyond the IP payload is discarded.
    if (v.check() !== null) {
      mib.UdpInErrors++;
      return;
    }
    const ulen = v.length;
    // RFC 768: the length field bounds the datagram; anything after it is not data.
    pkt.trim(ulen);
    // RFC 768: a zero checksum means none was sent; any other must verify.
    if (pkt.ipSummed === CHECKSUM_NONE && !verifyUdpChecksum(v, src, dst)) {
      mib.UdpInCsumErrors++;
      mib.UdpInErrors++;
      return;
    }
    const sport = v.srcPort;
    const dport = v.dstPort;
    const data = pkt.buf.subarray(pkt.start + UDP_HEADER_LEN, pkt.start + ulen);
    // A super-packet (UDP_SEGMENT from the kernel) is cut for each endpoint it reaches (udp_queue_rcv_skb).
    const seg = pkt.gsoSize > 0 ? this.segmentSize(pkt) : 0;
    if (!this.ip.isLocal(dst)) {
      this.broadcastInput(data, src, sport, dst, dport, iface, seg);
      return;
    }
    const ep = this.lookup(dst, dport, src, sport, iface);
    if (ep === null) {
      mib.UdpNoPorts++;
      // RFC 1122 §4.1.3.1: no one listens on the port: ICMP Port Unreachable.
      this.icmp.sendError(pkt, ICMP_DEST_UNREACH, 3);
      return;
    }
    if (seg === 0) this.deliver(ep, data, src, sport, dst);
    else this.deliverSegments(ep, data, seg, pkt.gsoSegs, src, sport, dst);
  }

  /**
   * The datagram size a super-packet is cut into for a socket, or -1 when it
   * can't be cut. Linux's sockets without UDP_GRO take the segments one by one
   * (udp_unexpected_gso, udp_rcv_segment); __udp_gso_segment refuses a packet
   * of UDP_L4 type no longer than one segment, and a partial checksum that does
   * not start at the UDP header.
   */
  private segmentSize(pkt: Packet): number {
    if (pkt.gsoType !== GSO_UDP_L4) return -1;
    const mss = pkt.gsoSize;
    if (pkt.end - pkt.start <= UDP_HEADER_LEN + mss) return -1;
    if (pkt.ipSummed === CHECKSUM_PARTIAL && pkt.csumStart !== pkt.start) return -1;
    return mss;
  }

  /**
   * udp_queue_rcv_skb for a super-packet: each segment (`mss` bytes, the last
   * what is left) is its own datagram to the endpoint, counted on its own
   * (udp_queue_rcv_one_skb). Its checksum is covered by the super-packet's:
   * verified whole, or partial, which a receiver takes as good.
   */
  private deliverSegments(ep: UdpEndpoint, data: Uint8Array, mss: number, segs: number, src: number, sport: number, dst: number): void {
    if (mss < 0) {
      // udp_rcv_segment: segmentation failed; the whole super-packet is dropped, counted per segment.
      this.mib.UdpInErrors += segs > 1 ? segs : 1;
      return;
    }
    for (let o = 0; o < data.length && !ep.closed; o += mss) {
      this.deliver(ep, data.subarray(o, o + mss < data.length ? o + mss : data.length), src, sport, dst);
    }
  }

  /**
   * Linux __udp4_lib_mcast_deliver: a broadcast or multicast datagram goes to
   * every endpoint on the port that is bound to it or to any address; with none,
   * it is ignored (no ICMP error, RFC 1122 §3.2.2).
   */
  private broadcastInput(data: Uint8Array, src: number, sport: number, dst: number, dport: number, iface: Interface, seg: number): void {
    const list = this.ports.get(dport);
    let n = 0;
    if (list !== undefined) {
      for (const ep of [...list]) {
        if (ep.boundDev !== null && ep.boundDev !== iface) continue;
        if (ep.localAddr !== 0 && ep.localAddr !== dst) continue;
        if (ep.connected && (ep.remoteAddr !== src || ep.remotePort !== sport)) continue;
        if (seg === 0) this.deliver(ep, data, src, sport, dst);
        else this.deliverSegments(ep, data, seg, Math.ceil(data.length / Math.max(seg, 1)), src, sport, dst);
        n++;
      }
    }
    if (n === 0) this.mib.UdpIgnoredMulti++;
  }

  private deliver(ep: UdpEndpoint, data: Uint8Array, src: number, sport: number, dst: number): void {
    if (ep.rx.datagram(data, src, sport, dst)) this.mib.UdpInDatagrams++;
    else {
      // Linux __udp_queue_rcv_skb: a full receive buffer counts in both.
      this.mib.UdpRcvbufErrors++;
      this.mib.UdpInErrors++;
    }
  }

  /**
   * The endpoint for a datagram to laddr:lport from raddr:rport: a connected one
   * beats one bound to the address, which beats one bound to any address. Among
   * equals (SO_REUSEADDR) the last bound wins, as in Linux, which adds new
   * sockets at the head of the port's chain.
   */
  private lookup(laddr: number, lport: number, raddr: number, rport: number, iface: Interface | null = null): UdpEndpoint | null {
    const list = this.ports.get(lport);
    if (list === undefined) return null;
    let best: UdpEndpoint | null = null;
    let bestScore = -1;
    for (let i = 0; i < list.length; i++) {
      const ep = list[i];
      let score = 0;
      // compute_score: an endpoint bound to a device hears only that device, and beats one that is not.
      if (ep.boundDev !== null && iface !== null) {
        if (ep.boundDev !== iface) continue;
        score += 4;
      }
      if (ep.localAddr !== 0) {
        if (ep.localAddr !== laddr) continue;
        score += 1;
      }
      if (ep.remotePort !== 0) {
        if (ep.remoteAddr !== raddr || ep.remotePort !== rport) continue;
        score += 2;
      }
      if (score >= bestScore) {
        best = ep;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * RFC 1122 §4.1.3.3: UDP passes ICMP errors to the application. As in Linux
   * (__udp4_lib_err without IP_RECVERR), only a connected endpoint hears them:
   * an unconnected one can't tell which of its sends they are about.
   */
  private icmpError(e: IcmpErrorInfo): void {
    if (e.origProto !== IPPROTO_UDP || e.origPayload.length < 4) return;
    const p = e.origPayload;
    const sport = (p[0] << 8) | p[1];
    const dport = (p[2] << 8) | p[3];
    const ep = this.lookup(e.origSrc, sport, e.origDst, dport);
    if (ep === null || !ep.connected) return;
    let code: Errno;
    if (e.type === ICMP_DEST_UNREACH) {
      // Fragmentation needed only matters when we asked for DF; otherwise the IP layer fragments.
      if (e.code === 4 && !ep.dontFrag) return;
      code = unreachErrno(e.code);
    } else if (e.type === ICMP_TIME_EXCEEDED) code = 'EHOSTUNREACH';
    else if (e.type === ICMP_PARAM_PROBLEM) code = 'EPROTO';
    else return;
    ep.rx.icmpError(code, e);
  }
}
