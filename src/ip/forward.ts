import { gsoFits } from '../link/offload.js';
import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { Mib } from '../mib.js';
import type { Ipv4 } from './ipv4.js';
import type { Flow } from './fib.js';
import type { Ipv4DevConf } from './devconf.js';
import type { ErrorExtra } from './icmp.js';
import { VERDICT_ACCEPT } from './hooks.js';
import { prefixMask } from '../wire/addr.js';
import { updateChecksum16 } from '../wire/checksum.js';
import { ICMP_DEST_UNREACH, ICMP_PARAM_PROBLEM, ICMP_TIME_EXCEEDED } from '../wire/icmp.js';
import { IPOPT_END, IPOPT_LSRR, IPOPT_NOOP, IPOPT_RR, IPOPT_SSRR, fillIpv4Checksum } from '../wire/ipv4.js';
import { getU16, setU32 } from '../wire/bytes.js';
import { routeMtu } from './route.js';

/** RFC 1812 §5.2.7.1: communication administratively prohibited. */
const ICMP_PKT_FILTERED = 13;

const ICMP_REDIRECT = 5;

/** What forwarding needs from ICMP. */
export interface ForwardIcmp {
  sendError(orig: Packet, type: number, code: number, extra?: ErrorExtra): boolean;
}

/** Linux's ip_rt_redirect_number, _load and _silence (in ms, HZ = 1000). */
const REDIRECT_NUMBER = 9;
const REDIRECT_LOAD_MS = 20;
const REDIRECT_SILENCE_MS = REDIRECT_LOAD_MS << (REDIRECT_NUMBER + 1);
const REDIRECT_PEERS = 4096;

/** RFC 1812 §5.3.7 and §4.2.2.11, as Linux's ip_route_input_slow sorts them: never forwarded. */
function martianAddr(a: number): boolean {
  const top = a >>> 24;
  // 0/8 ("this network"), 127/8 (loopback), 224/4 (multicast), 240/4 (class E) and 255.255.255.255.
  return top === 0 || top === 127 || top >= 224;
}

/**
 * RFC 1812 §5.2 and §5.3: forwarding a datagram that is not for us, in the order
 * Linux's ip_route_input_slow, ip_forward and ip_forward_finish take it.
 */
export class Forwarder {
  private readonly redirectPeers = new Map<number, { last: number; count: number }>();
  /** The flow of the datagram being forwarded, reused. */
  private readonly flow: Flow = { dst: 0, src: 0, iif: null, oif: null, mark: 0, tos: 0, proto: 0, sport: 0, dport: 0 };
  /** Martian datagrams are reported here when log_martians is on. */
  onMartian: ((what: 'source' | 'destination', src: number, dst: number, iface: Interface) => void) | null = null;

  constructor(
    private readonly ip: Ipv4,
    private readonly conf: Ipv4DevConf,
    private readonly mib: Mib,
    private readonly icmp: ForwardIcmp,
    private readonly now: () => number,
  ) {}

  /**
   * Takes a datagram that arrived on `iface` and is not for us (`pkt.l3` and
   * `pkt.start` at its IP header). Returns false when forwarding is off on
   * `iface`, leaving it to the caller to drop.
   */
  input(pkt: Packet, iface: Interface, src: number, dst: number): boolean {
    const conf = this.conf;
    if (!conf.forwarding(iface)) return false;
    const mib = this.mib;
    const ip = this.ip;
    // Martian sources and destinations (ip_route_input_slow), and our own
    // directed broadcasts, which Linux does not forward (bc_forwarding 0).
    if (martianAddr(src) || ip.isLocal(src)) {
      mib.IpInAddrErrors++;
      if (this.onMartian !== null && conf.logMartians(iface)) this.onMartian('source', src, dst, iface);
      return true;
    }
    if (martianAddr(dst) || ip.isBroadcastAddr(dst)) {
      mib.IpInAddrErrors++;
      if (this.onMartian !== null && conf.logMartians(iface)) this.onMartian('destination', src, dst, iface);
      return true;
    }
    const b = pkt.buf;
    const o = pkt.l3;
    const hlen = (b[o] & 0x0f) << 2;
    const proto = b[o + 9];
    // The 5-tuple for multipath hashing, from a first fragment of TCP or UDP only.
    const ports = (proto === 6 || proto === 17) && (getU16(b, o + 6) & 0x1fff) === 0 && pkt.end - o >= hlen + 4;
    const f = this.flow;
    f.dst = dst;
    f.src = src;
    f.iif = iface;
    f.mark = pkt.mark;
    f.tos = b[o + 1];
    f.proto = proto;
    f.sport = ports ? getU16(b, o + hlen) : 0;
    f.dport = ports ? getU16(b, o + hlen + 2) : 0;
    const decision = ip.routeFlow(f);
    if (decision.type !== 'unicast') {
      // Linux ip_error: by the route's type; a blackhole drops without a word.
      if (decision.type === 'blackhole') return true;
      if (decision.type === 'unreachable') this.icmp.sendError(pkt, ICMP_DEST_UNREACH, 1);
      else if (decision.type === 'prohibit') this.icmp.sendError(pkt, ICMP_DEST_UNREACH, ICMP_PKT_FILTERED);
      else {
        mib.IpExtInNoRoutes++;
        this.icmp.sendError(pkt, ICMP_DEST_UNREACH, 0);
      }
      return true;
    }
    const route = decision.route;
    if (route.type !== undefined && route.type !== 'unicast') {
      // ip_route_input_slow: a broadcast route is local input (our own broadcasts were
      // taken above), any other type not unicast is a martian destination.
      mib.IpInAddrErrors++;
      if (route.type !== 'broadcast' && this.onMartian !== null && conf.logMartians(iface)) this.onMartian('destination', src, dst, iface);
      return true;
    }
    const out = route.dev;
    const mtu = routeMtu(route);
    // RFC 3704 §2 reverse path filtering (fib_validate_source): strict wants the
    // route back to the source through `iface`, loose any route back.
    const rp = conf.rpFilter(iface);
    if (rp !== 0) {
      const back = ip.routeFlow({ dst: src, src: dst, mark: pkt.mark });
      if (back.type !== 'unicast' || (rp === 1 && back.route.dev !== iface)) {
        mib.TcpExtIPReversePathFilter++;
        return true;
      }
    }
    // RFC 1812 §5.3.4: a unicast datagram that came in a link-layer broadcast
    // is not forwarded (ip_forward: pkt_type != PACKET_HOST).
    if (pkt.linkBroadcast) return true;
    if (hlen > 20) {
      const bad = checkOptions(b, o, hlen);
      if (bad === SOURCE_ROUTED) return true;
      if (bad >= 0) {
        mib.IpInHdrErrors++;
        this.icmp.sendError(pkt, ICMP_PARAM_PROBLEM, 0, { pointer: bad });
        return true;
      }
    }
    const ttl = b[o + 8];
    if (ttl <= 1) {
      // RFC 1812 §5.3.1: a datagram whose TTL would reach 0 is dropped with time exceeded, code 0.
      mib.IpInHdrErrors++;
      this.icmp.sendError(pkt, ICMP_TIME_EXCEEDED, 0);
      return true;
    }
    const len = pkt.end - o;
    // ip_exceeds_mtu: a super-packet exceeds it only if its segments would.
    if (len > mtu && (b[o + 6] & 0x40) !== 0 && !gsoFits(pkt, mtu)) {
      // RFC 1812 §5.2.6 and RFC 1191 §4: DF set and too big: fragmentation needed, with the next-hop MTU.
      mib.IpFragFails++;
      this.icmp.sendError(pkt, ICMP_DEST_UNREACH, 4, { mtu });
      return true;
    }
    // RFC 1812 §5.3.1: decrement the TTL; RFC 1624: patch the checksum for the one word that changed.
    const c = updateChecksum16((b[o + 10] << 8) | b[o + 11], (ttl << 8) | proto, ((ttl - 1) << 8) | proto);
    b[o + 8] = ttl - 1;
    b[o + 10] = c >> 8;
    b[o + 11] = c & 0xff;
    const nextHop = route.gateway !== 0 ? route.gateway : dst;
    // RFC 791 and RFC 1812 §5.3.13.3 (Linux ip_forward_options): record the
    // address we send it on with, then the header's checksum is computed anew.
    if (hlen > 20 && recordRoute(b, o, hlen, route.src || out.sourceFor(nextHop))) fillIpv4Checksum(b, o, hlen);
    // RFC 1812 §5.2.7.2: going back out the way it came, to a next hop on the
    // source's own subnet, the source is told of the better first hop (Linux
    // __mkroute_input sets IPSKB_DOREDIRECT; ip_rt_send_redirect rate-limits).
    if (out === iface && conf.sendRedirects(iface) && onSameSubnet(iface, src, route.gateway)) this.redirect(pkt, src, nextHop);
    const hooks = ip.hooks;
    if (!hooks.forward.empty && hooks.forward.run(pkt, iface, out) !== VERDICT_ACCEPT) return true;
    // ip_forward_finish counts it before POSTROUTING and fragmentation.
    mib.IpForwDatagrams++;
    ip.finishOutput(pkt, route, dst);
    return true;
  }

  /** ip_rt_send_redirect: at most 9 in a row to a host, each after twice the last gap; 20 s quiet starts over. */
  private redirect(pkt: Packet, src: number, gateway: number): void {
    const now = this.now();
    let p = this.redirectPeers.get(src);
    if (p === undefined) {
      if (this.redirectPeers.size >= REDIRECT_PEERS) this.redirectPeers.delete(this.redirectPeers.keys().next().value as number);
      p = { last: now, count: 0 };
      this.redirectPeers.set(src, p);
    }
    if (now > p.last + REDIRECT_SILENCE_MS) p.count = 0;
    if (p.count >= REDIRECT_NUMBER) {
      p.last = now;
      return;
    }
    if (p.count === 0 || now > p.last + (REDIRECT_LOAD_MS << p.count)) {
      // RFC 792: redirect datagrams for the host (code 1), with the gateway to use.
      this.icmp.sendError(pkt, ICMP_REDIRECT, 1, { gateway });
      p.last = now;
      p.count++;
    }
  }
}

const SOURCE_ROUTED = -2;

/**
 * The options' part in forwarding (Linux ip_rcv_options and ip_options_compile):
 * SOURCE_ROUTED for a loose or strict source route, which Linux drops while
 * accept_source_route is 0 (its default; RFC 1812 §5.3.13.4 allows the switch);
 * the offset of the octet at fault for a record route option with no room
 * left that still claims some; else -1.
 */
function checkOptions(b: Uint8Array, o: number, hlen: number): number {
  let p = 20;
  while (p < hlen) {
    const type = b[o + p];
    if (type === IPOPT_END) break;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    const len = b[o + p + 1];
    if (type === IPOPT_LSRR || type === IPOPT_SSRR) return SOURCE_ROUTED;
    if (type === IPOPT_RR) {
      const ptr = b[o + p + 2];
      if (ptr <= len && ptr + 3 > len) return p + 2;
    }
    p += len;
  }
  return -1;
}

/** RFC 791 record route: our address in the next free slot. Returns true if the header changed. */
function recordRoute(b: Uint8Array, o: number, hlen: number, addr: number): boolean {
  let p = 20;
  let changed = false;
  while (p < hlen) {
    const type = b[o + p];
    if (type === IPOPT_END) break;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    const len = b[o + p + 1];
    if (type === IPOPT_RR) {
      const ptr = b[o + p + 2];
      // A full option (pointer past its end) travels on unchanged.
      if (ptr + 3 <= len) {
        setU32(b, o + p + ptr - 1, addr);
        b[o + p + 2] = ptr + 4;
        changed = true;
      }
    }
    p += len;
  }
  return changed;
}

/** inet_addr_onlink: `src` (and `gw`, when not 0) lie in a subnet of one of `iface`'s addresses. */
function onSameSubnet(iface: Interface, src: number, gw: number): boolean {
  for (const a of iface.addrs) {
    const m = prefixMask(a.prefixLen);
    const net = (a.addr & m) >>> 0;
    if (((src & m) >>> 0) === net && (gw === 0 || ((gw & m) >>> 0) === net)) return true;
  }
  return false;
}
