import { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { Mib } from '../mib.js';
import type { Time } from '../time/timers.js';
import { Hooks, VERDICT_ACCEPT } from './hooks.js';
import { RouteTable, routeMtu, type Route } from './route.js';
import { Fib, type FibResult, type Flow } from './fib.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { Ipv4View, IPPROTO_ICMP, fillIpv4Checksum } from '../wire/ipv4.js';
import { setU32 } from '../wire/bytes.js';
import { badOptionOffset } from './options.js';
import { Reassembly } from './reassembly.js';
import { fragmentDatagram, fragmentSegments } from './fragment.js';
import { gsoFits } from '../link/offload.js';

/**
 * A transport protocol's receive function. `pkt.start` is at the transport
 * header and `pkt.l3` at the IP header (for ICMP errors that quote it).
 */
export type ProtoHandler = (pkt: Packet, src: number, dst: number, iface: Interface) => void;

/** Called when a datagram arrives for a protocol nobody handles. */
export type UnknownProtoHandler = (pkt: Packet, iface: Interface) => void;

export interface OutputOptions {
  /** Source address; 0 or absent picks the route's or the interface's. */
  src?: number;
  ttl?: number;
  tos?: number;
  dontFrag?: boolean;
  /** A route already looked up by the caller. */
  route?: Route;
  /** The socket's mark (SO_MARK), for `fwmark` rules. */
  mark?: number;
  /** The interface the socket is bound to, for `oif` rules. */
  oif?: Interface | null;
}

/** Why output failed, as the errno a socket would see. */
export type OutputError = 'ENETUNREACH' | 'EHOSTUNREACH' | 'EACCES' | 'EINVAL' | 'EMSGSIZE' | 'EPERM' | 'EADDRNOTAVAIL';

/** The errno a local sender gets for a decision without a next hop (Linux fib_props). */
export function routeErrno(r: FibResult): OutputError | null {
  switch (r.type) {
    case 'none':
      return 'ENETUNREACH';
    case 'unreachable':
      return 'EHOSTUNREACH';
    case 'prohibit':
      return 'EACCES';
    case 'blackhole':
      return 'EINVAL';
    default:
      return null;
  }
}

export const DEFAULT_TTL = 64;

export class Ipv4 {
  /** The main table (254). */
  readonly routes = new RouteTable();
  /** Every table and the rules choosing among them. */
  readonly fib = new Fib(this.routes);
  private readonly probeFlow: Flow = { dst: 0 };
  /** The flow of the datagram being sent (or received, for local routes), reused. */
  private readonly outFlow: Flow = { dst: 0, src: 0, iif: null, oif: null, mark: 0, tos: 0, proto: 0, sport: 0, dport: 0 };
  readonly hooks = new Hooks();
  /**
   * Our unicast addresses and the interface each is on: table local's host
   * routes of type local, mirrored here on every change of that table so the
   * per-packet question "is it ours?" stays one Map lookup.
   */
  readonly local = new Map<number, Interface>();
  private readonly handlers: (ProtoHandler | undefined)[] = new Array(256);
  unknownProto: UnknownProtoHandler | null = null;
  /** An interface by name (SO_BINDTODEVICE); the Stack that owns the interfaces answers. */
  ifaceByName: (name: string) => Interface | undefined = () => undefined;
  /** Called with a datagram whose options are malformed, and the offset at fault. */
  paramProblem: ((pkt: Packet, pointer: number) => void) | null = null;
  /**
   * Takes a datagram not for us (RFC 1812 forwarding); returns false when
   * forwarding is off on the interface it came in on.
   */
  forwarder: ((pkt: Packet, iface: Interface, src: number, dst: number) => boolean) | null = null;
  /** net.ipv4.ip_default_ttl */
  defaultTtl = DEFAULT_TTL;
  private ident = 0;
  private readonly view = new Ipv4View(new Uint8Array(0), 0, 0);
  /** Fragments waiting for the rest of their datagram. */
  readonly reasm: Reassembly;
  /** Reassemble before PREROUTING (nf_defrag_ipv4, on while conntrack runs). */
  defrag = false;

  constructor(
    private readonly mib: Mib,
    private readonly time: Time,
    random: () => number,
  ) {
    this.reasm = new Reassembly(mib, time);
    this.fib.isLocal = (dst) => this.local.get(dst);
    this.fib.local.onChange = () => this.syncLocal();
    this.fib.hashSeed = Math.floor(random() * 0x100000000) | 0;
    // RFC 6864 §4.1: IDs only need to be unique per flow; start anywhere.
    this.ident = Math.floor(random() * 0x10000);
  }

  /** Rebuilds the address map from table local (an address added or removed, `ip route add|del ... table local`). */
  private syncLocal(): void {
    const m = this.local;
    m.clear();
    for (const r of this.fib.local.list()) if (r.type === 'local' && r.prefixLen === 32 && !m.has(r.dst)) m.set(r.dst, r.dev);
  }

  register(proto: number, handler: ProtoHandler): void {
    this.handlers[proto] = handler;
  }

  /** One of our addresses, or in a prefix a local route makes ours (Linux inet_addr_type: RTN_LOCAL). */
  isLocal(ip: number): boolean {
    if (this.local.has(ip)) return true;
    // 127/8 is ours as Linux's lo makes it; only REDIRECT of our own packets sends there.
    if (ip >>> 24 === 127) return true;
    if (this.fib.localRoutes === 0) return false;
    const f = this.probeFlow;
    f.dst = ip;
    return this.fib.lookup(f).type === 'local';
  }

  /** True for the directed broadcast address of one of our subnets. */
  isBroadcastAddr(ip: number): boolean {
    for (const iface of this.local.values()) if (iface.isBroadcast(ip)) return true;
    return false;
  }

  // ---- receive: RFC 1122 §3.2.1, in the order Linux's ip_rcv checks ----

  input(pkt: Packet, iface: Interface, looped = false): void {
    const mib = this.mib;
    mib.IpInReceives++;
    const v = this.view;
    v.reset(pkt.buf, pkt.start, pkt.end - pkt.start);
    const err = v.check();
    if (err !== null) {
      // A total length beyond the frame is "truncated"; every other bad header is a header error.
      if (err === 'total-length' && v.totalLength >= v.headerLen) mib.IpExtInTruncatedPkts++;
      else mib.IpInHdrErrors++;
      return;
    }
    // ip_rcv_core counts the ECN field of every datagram with a sane header, a
    // super-packet as its segments (max(1, gso_segs)).
    const ecn = v.tos & 3;
    const segs = pkt.gsoSegs > 1 ? pkt.gsoSegs : 1;
    if (ecn === 0) mib.IpExtInNoECTPkts += segs;
    else if (ecn === 2) mib.IpExtInECT0Pkts += segs;
    else if (ecn === 1) mib.IpExtInECT1Pkts += segs;
    else mib.IpExtInCEPkts += segs;
    if (!v.verifyChecksum()) {
      mib.IpExtInCsumErrors++;
      mib.IpInHdrErrors++;
      return;
    }
    const total = v.totalLength;
    pkt.trim(total); // drop Ethernet padding
    pkt.l3 = pkt.start;
    const hlen = v.headerLen;
    if (hlen > 20) {
      const bad = badOptionOffset(pkt.buf, pkt.start, hlen);
      if (bad >= 0) {
        // RFC 1122 §3.2.1.8: a bad option is reported with a Parameter Problem.
        mib.IpInHdrErrors++;
        if (this.paramProblem !== null) this.paramProblem(pkt, bad);
        return;
      }
    }
    mib.IpExtInOctets += total;
    let dst = v.dst;
    const src = v.src;
    // RFC 1122 §3.2.1.3: a source that is broadcast or multicast is a martian.
    if (src === 0xffffffff || src >>> 28 === 0xe) {
      mib.IpInAddrErrors++;
      return;
    }
    if (this.defrag && (v.moreFrags || v.fragOffset !== 0)) {
      // nf_defrag_ipv4: conntrack sees whole datagrams; a forwarded one is fragmented again on output.
      const whole = this.reasm.add(pkt, v.headerLen, iface);
      if (whole === null) return;
      pkt = whole;
      v.reset(pkt.buf, pkt.start, pkt.end - pkt.start);
    }
    const hooks = this.hooks;
    if (!hooks.prerouting.empty) {
      if (hooks.prerouting.run(pkt, iface, null) !== VERDICT_ACCEPT) return;
      // DNAT may have changed the destination: the decision below takes the new one (nf_nat_ipv4_in).
      dst = getU32(pkt.buf, pkt.start + 16);
    }
    // A datagram looped back to 127/8 (REDIRECT of our own traffic) is ours, as on Linux's lo.
    let forUs = this.local.has(dst) || (looped && dst >>> 24 === 127);
    if (!forUs) {
      if (pkt.linkBroadcast || iface.linkType === 'ip') {
        if (iface.isBroadcast(dst)) {
          forUs = true;
          mib.IpExtInBcastPkts++;
        } else if (dst === 0xe0000001) {
          // 224.0.0.1, all-hosts: every host is a member (RFC 1112 §4).
          forUs = true;
          mib.IpExtInMcastPkts++;
        }
      }
    }
    if (!forUs && this.fib.localRoutes > 0) {
      // `ip route add local PREFIX`: a whole prefix is ours (Linux's AnyIP).
      const f = this.outFlow;
      f.dst = dst;
      f.src = src;
      f.iif = iface;
      f.oif = null;
      f.mark = pkt.mark;
      f.tos = v.tos;
      f.proto = 0;
      f.sport = 0;
      f.dport = 0;
      forUs = this.fib.lookup(f).type === 'local';
      f.iif = null;
    }
    if (!forUs) {
      if (this.forwarder !== null && this.forwarder(pkt, iface, src, dst)) return;
      // Not ours and we don't forward: Linux counts these as address errors.
      mib.IpInAddrErrors++;
      return;
    }
    this.localDeliver(pkt, iface, v.headerLen, v.protocol, src, dst, v.moreFrags || v.fragOffset !== 0);
  }

  private localDeliver(
    pkt: Packet,
    iface: Interface,
    hlen: number,
    proto: number,
    src: number,
    dst: number,
    fragment: boolean,
  ): void {
    const mib = this.mib;
    if (fragment) {
      // RFC 791 §3.2: fragments wait until their datagram is whole, which then goes on.
      const whole = this.reasm.add(pkt, hlen, iface);
      if (whole === null) return;
      pkt = whole;
      hlen = (pkt.buf[pkt.start] & 0x0f) << 2;
    }
    if (!this.hooks.input.empty) {
      if (this.hooks.input.run(pkt, iface, null) !== VERDICT_ACCEPT) return;
      // SNAT in INPUT may have changed the source (and DNAT before it the destination).
      src = getU32(pkt.buf, pkt.start + 12);
      dst = getU32(pkt.buf, pkt.start + 16);
    }
    const h = this.handlers[proto];
    if (h === undefined) {
      mib.IpInUnknownProtos++;
      if (this.unknownProto !== null) this.unknownProto(pkt, iface);
      return;
    }
    mib.IpInDelivers++;
    pkt.pull(hlen);
    pkt.l4 = pkt.start;
    h(pkt, src, dst, iface);
  }

  // ---- send ----

  /** The routing decision for a flow, through the rules and tables (Linux fib_lookup). */
  routeFlow(flow: Flow): FibResult {
    return this.fib.lookup(flow);
  }

  /** The route with a next hop for a flow, or the errno a local sender sees (counted as OutNoRoutes). */
  routeOrErrno(flow: Flow): Route | OutputError {
    const r = this.fib.lookup(flow);
    if (r.type === 'unicast') return r.route;
    if (r.type === 'local' && r.dev !== null) return { dst: flow.dst, prefixLen: 32, gateway: 0, dev: r.dev, src: flow.dst, proto: 'kernel', scope: 'host', metric: 0, type: 'local' };
    this.mib.IpOutNoRoutes++;
    return routeErrno(r) ?? 'ENETUNREACH';
  }

  /**
   * Sends `pkt` (data = the transport header and payload) to `dst` with protocol
   * `proto`. Returns null on success or the errno a socket would report.
   */
  output(pkt: Packet, dst: number, proto: number, opts: OutputOptions = {}): OutputError | null {
    const mib = this.mib;
    mib.IpOutRequests++;
    // The socket's SO_MARK rides on the datagram (skb->mark = sk->sk_mark), for netfilter and tc.
    if (opts.mark !== undefined) pkt.mark = opts.mark;
    let local = this.local.get(dst);
    let route: Route | null = opts.route ?? null;
    if (route === null && local === undefined) {
      const b = pkt.buf;
      const l4 = pkt.start;
      const ports = (proto === 6 || proto === 17) && pkt.length >= 4;
      const f = this.outFlow;
      f.dst = dst;
      f.src = opts.src ?? 0;
      f.oif = opts.oif ?? null;
      f.mark = opts.mark ?? 0;
      f.tos = opts.tos ?? 0;
      f.proto = proto;
      f.sport = ports ? getU16(b, l4) : 0;
      f.dport = ports ? getU16(b, l4 + 2) : 0;
      const r = this.fib.lookup(f);
      if (r.type === 'local' && r.dev !== null) local = r.dev;
      else if (r.type !== 'unicast') {
        mib.IpOutNoRoutes++;
        return routeErrno(r) ?? 'ENETUNREACH';
      }
      else route = r.route;
    }
    const dev = local ?? route?.dev;
    if (dev === undefined) {
      mib.IpOutNoRoutes++;
      return 'ENETUNREACH';
    }
    const src = opts.src || route?.src || (local !== undefined ? dst : dev.sourceFor(dst));
    const len = pkt.length + 20;
    if (len > 0xffff) {
      mib.IpOutDiscards++;
      return 'EMSGSIZE';
    }
    const o = pkt.push(20);
    const b = pkt.buf;
    const ident = this.ident;
    // ip_select_ident_segs: a super-packet's segments take consecutive IDs from here.
    this.ident = (ident + (pkt.gsoSegs > 1 ? pkt.gsoSegs : 1)) & 0xffff;
    b[o] = 0x45;
    b[o + 1] = opts.tos ?? 0;
    b[o + 2] = len >> 8;
    b[o + 3] = len & 0xff;
    b[o + 4] = ident >> 8;
    b[o + 5] = ident & 0xff;
    b[o + 6] = opts.dontFrag ? 0x40 : 0;
    b[o + 7] = 0;
    b[o + 8] = opts.ttl ?? this.defaultTtl;
    b[o + 9] = proto;
    setU32(b, o + 12, src);
    setU32(b, o + 16, dst);
    fillIpv4Checksum(b, o, 20);
    pkt.l3 = o;
    if (!this.hooks.output.empty) {
      // Rules may read or change any byte: payload still in views is copied in first.
      pkt.linearize();
      const mark = pkt.mark;
      if (this.hooks.output.run(pkt, null, dev) !== VERDICT_ACCEPT) {
        mib.IpOutDiscards++;
        return 'EPERM';
      }
      const ndst = getU32(b, o + 16);
      if (ndst !== dst || pkt.mark !== mark) return this.rerouteOutput(pkt, ndst, dev, opts);
    }
    if (local !== undefined) {
      this.loopback(pkt, local);
      return null;
    }
    return this.finishOutput(pkt, route!, dst);
  }

  /**
   * ip_route_me_harder: OUTPUT changed the destination (DNAT, REDIRECT) or the
   * mark, so the datagram is routed again for what it now is. 127/8 and our own
   * addresses loop back through input.
   */
  private rerouteOutput(pkt: Packet, dst: number, dev: Interface, opts: OutputOptions): OutputError | null {
    const b = pkt.buf;
    const o = pkt.l3;
    let local = this.local.get(dst);
    if (local === undefined && dst >>> 24 === 127) local = dev;
    if (local === undefined) {
      const hl = (b[o] & 0x0f) << 2;
      const proto = b[o + 9];
      const ports = (proto === 6 || proto === 17) && pkt.end - o >= hl + 4;
      const f = this.outFlow;
      f.dst = dst;
      f.src = getU32(b, o + 12);
      f.iif = null;
      f.oif = opts.oif ?? null;
      f.mark = pkt.mark;
      f.tos = b[o + 1];
      f.proto = proto;
      f.sport = ports ? getU16(b, o + hl) : 0;
      f.dport = ports ? getU16(b, o + hl + 2) : 0;
      const r = this.fib.lookup(f);
      if (r.type === 'local' && r.dev !== null) local = r.dev;
      else if (r.type !== 'unicast') {
        this.mib.IpOutNoRoutes++;
        return routeErrno(r) ?? 'ENETUNREACH';
      } else return this.finishOutput(pkt, r.route, dst);
    }
    this.loopback(pkt, local);
    return null;
  }

  /** POSTROUTING, then fragments or the datagram to the route's next hop (also for forwarded datagrams). */
  finishOutput(pkt: Packet, route: Route, dst: number): OutputError | null {
    const dev = route.dev;
    if (!this.hooks.postrouting.empty) {
      pkt.linearize();
      if (this.hooks.postrouting.run(pkt, null, dev) !== VERDICT_ACCEPT) {
        this.mib.IpOutDiscards++;
        return 'EPERM';
      }
    }
    const nextHop = route.gateway !== 0 ? route.gateway : dst;
    // RFC 791 §3.2: too big for the link, so it goes in fragments; a super-packet
    // whose segments fit is cut later, at the device (ip_finish_output_gso).
    // A super-packet whose segments don't fit is cut, then each segment is fragmented (ip_finish_output_gso).
    const mtu = routeMtu(route);
    if (pkt.length > mtu && !gsoFits(pkt, mtu)) {
      pkt.linearize();
      return pkt.gsoSize > 0 ? fragmentSegments(pkt, dev, nextHop, this.mib, mtu) : fragmentDatagram(pkt, dev, nextHop, this.mib, mtu);
    }
    this.mib.IpExtOutOctets += pkt.length;
    dev.outputIp(pkt, nextHop);
    return null;
  }

  /** Datagrams to our own addresses go round through input, after the current work. */
  private loopback(pkt: Packet, iface: Interface): void {
    const copy = pkt.clone();
    copy.loopback = true;
    this.time.after(0, () => this.input(copy, iface, true));
  }
}

export { IPPROTO_ICMP };
