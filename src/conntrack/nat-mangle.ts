import { checksum, updateChecksum16, updateChecksum32 } from '../wire/checksum.js';
import { crc32c, sctpChecksumWord } from '../wire/crc32c.js';

/**
 * NAT's packet rewriting: an address and a port (or ICMP query id) changed in
 * place, each checksum patched for what changed (RFC 1624), as Linux's
 * nf_nat_proto.c does. Plain functions over bytes; nothing is allocated.
 */

export const MANIP_SRC = 0;
export const MANIP_DST = 1;

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;
const IPPROTO_UDPLITE = 136;

/** Protocols whose tuples carry ports that NAT maps (nf_nat_proto.c: TCP, UDP, UDP-Lite, SCTP). */
export function natHasPorts(proto: number): boolean {
  return proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE || proto === IPPROTO_SCTP;
}

/** ICMP types that carry an identifier (nf_nat_proto.c: icmp_manip_pkt rewrites only these). */
export function icmpIsQuery(type: number): boolean {
  // echo reply 0, echo 8, timestamp 13/14, info 15/16, address mask 17/18.
  return type === 0 || type === 8 || (type >= 13 && type <= 18);
}

/** ICMP types that quote a datagram (RFC 792): unreachable, source quench, redirect, time exceeded, parameter problem. */
export function icmpIsError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

function patch16(b: Uint8Array, at: number, oldW: number, newW: number): void {
  const c = updateChecksum16((b[at] << 8) | b[at + 1], oldW, newW);
  b[at] = c >>> 8;
  b[at + 1] = c & 0xff;
}

function patch32(b: Uint8Array, at: number, oldV: number, newV: number): void {
  const c = updateChecksum32((b[at] << 8) | b[at + 1], oldV, newV);
  b[at] = c >>> 8;
  b[at + 1] = c & 0xff;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/**
 * nf_nat_ipv4_manip_pkt: the IP header at `ip` (the datagram ends at `end`)
 * gets `addr` as its source (MANIP_SRC) or destination, its transport header
 * `port` as source/destination port (TCP, UDP) or as id (ICMP queries).
 * Returns false when the transport header is cut short (the packet is dropped).
 */
export function manipIpv4(b: Uint8Array, ip: number, end: number, mtype: number, addr: number, port: number, partial = false): boolean {
  if (end - ip < 20) return false;
  const hl = (b[ip] & 0x0f) << 2;
  const proto = b[ip + 9];
  const addrOff = mtype === MANIP_SRC ? ip + 12 : ip + 16;
  const oldAddr = rd32(b, addrOff);
  // Only a first fragment carries the transport header (the rest pass on their addresses).
  const first = (((b[ip + 6] & 0x1f) << 8) | b[ip + 7]) === 0;
  const t = ip + hl;
  if (first && !manipL4(b, t, end, proto, mtype, oldAddr, addr, port, partial)) return false;
  if (oldAddr !== addr) {
    patch32(b, ip + 10, oldAddr, addr);
    wr32(b, addrOff, addr);
  }
  return true;
}

/**
 * A CHECKSUM_PARTIAL packet's TCP/UDP checksum field holds the pseudo-header sum
 * itself, not a complement, and the ports are summed later with the rest: only
 * the address changes it, added as it is (inet_proto_csum_replace4 with
 * pseudohdr for CHECKSUM_PARTIAL: ~csum_fold(~unfold + ~from + to) turned round).
 */
function patchPartial32(b: Uint8Array, at: number, oldV: number, newV: number): void {
  const c = ~updateChecksum32(~((b[at] << 8) | b[at + 1]) & 0xffff, oldV, newV) & 0xffff;
  b[at] = c >>> 8;
  b[at + 1] = c & 0xff;
}

function manipL4(b: Uint8Array, t: number, end: number, proto: number, mtype: number, oldAddr: number, addr: number, port: number, partial: boolean): boolean {
  if (partial && (proto === IPPROTO_TCP || proto === IPPROTO_UDP)) {
    if (end - t < 8) return false;
    const p = mtype === MANIP_SRC ? t : t + 2;
    b[p] = port >>> 8;
    b[p + 1] = port & 0xff;
    const at = proto === IPPROTO_TCP ? t + 16 : t + 6;
    if (end - at >= 2 && oldAddr !== addr) patchPartial32(b, at, oldAddr, addr);
    return true;
  }
  if (proto === IPPROTO_TCP) {
    // tcp_manip_pkt: 8 bytes are enough for the ports; the checksum only when the
    // whole 20-byte header is there (a header quoted in an ICMP error may be cut).
    if (end - t < 8) return false;
    const p = mtype === MANIP_SRC ? t : t + 2;
    const oldPort = (b[p] << 8) | b[p + 1];
    b[p] = port >>> 8;
    b[p + 1] = port & 0xff;
    if (end - t < 20) return true;
    // RFC 1624 for the pseudo-header's address (RFC 9293 §3.1) and the port.
    if (oldAddr !== addr) patch32(b, t + 16, oldAddr, addr);
    if (oldPort !== port) patch16(b, t + 16, oldPort, port);
    return true;
  }
  if (proto === IPPROTO_UDP || proto === IPPROTO_UDPLITE) {
    if (end - t < 8) return false;
    const p = mtype === MANIP_SRC ? t : t + 2;
    const oldPort = (b[p] << 8) | b[p + 1];
    // udp_manip_pkt: a checksum of 0 means "none" (RFC 768) and stays 0; one that
    // comes out 0 is sent as 0xffff (CSUM_MANGLED_0). udplite_manip_pkt: UDP-Lite
    // always has one (RFC 3828 §3.1).
    if (proto === IPPROTO_UDPLITE || b[t + 6] !== 0 || b[t + 7] !== 0) {
      if (oldAddr !== addr) patch32(b, t + 6, oldAddr, addr);
      if (oldPort !== port) patch16(b, t + 6, oldPort, port);
      if (b[t + 6] === 0 && b[t + 7] === 0) {
        b[t + 6] = 0xff;
        b[t + 7] = 0xff;
      }
    }
    b[p] = port >>> 8;
    b[p + 1] = port & 0xff;
    return true;
  }
  if (proto === IPPROTO_ICMP) {
    if (end - t < 8) return false;
    // icmp_manip_pkt: only queries have an id; an error's bytes 4-7 stay as they are.
    if (!icmpIsQuery(b[t])) return true;
    const oldId = (b[t + 4] << 8) | b[t + 5];
    if (oldId !== port) {
      patch16(b, t + 2, oldId, port);
      b[t + 4] = port >>> 8;
      b[t + 5] = port & 0xff;
    }
    return true;
  }
  if (proto === IPPROTO_SCTP) {
    if (end - t < 8) return false;
    const p = mtype === MANIP_SRC ? t : t + 2;
    b[p] = port >>> 8;
    b[p + 1] = port & 0xff;
    // sctp_manip_pkt: the CRC32c (RFC 9260 §6.8) covers no addresses; it is
    // computed anew over the rest of the packet when its field is there (a
    // header quoted in an ICMP error may hold only the ports).
    if (end - t < 12) return true;
    const c = sctpChecksumWord(crc32c(b, t, end - t, t + 8));
    b[t + 8] = c >>> 24;
    b[t + 9] = (c >>> 16) & 0xff;
    b[t + 10] = (c >>> 8) & 0xff;
    b[t + 11] = c & 0xff;
    return true;
  }
  // Other protocols: only the addresses change (nf_nat_proto.c: l4proto_manip_pkt).
  return true;
}

/** The ICMP checksum over the message at `t` (to `end`) is right. */
export function icmpChecksumOk(b: Uint8Array, t: number, end: number): boolean {
  return checksum(b, t, end - t) === 0;
}

/**
 * nf_nat_icmp_reply_translation's rewriting of an ICMP error at `ip`: the quoted
 * datagram gets the opposite manip (`innerMtype`, `innerAddr`, `innerPort`),
 * the ICMP checksum is computed anew over the message, then the outer header
 * gets `outerAddr` (an ICMP error carries no id). Returns false when the
 * quote is too short to rewrite.
 */
export function manipIcmpError(
  b: Uint8Array,
  ip: number,
  end: number,
  innerMtype: number,
  innerAddr: number,
  innerPort: number,
  outerMtype: number,
  outerAddr: number,
): boolean {
  const hl = (b[ip] & 0x0f) << 2;
  const t = ip + hl;
  const inner = t + 8;
  if (end - inner < 20) return false;
  if (!manipIpv4(b, inner, end, innerMtype, innerAddr, innerPort)) return false;
  b[t + 2] = 0;
  b[t + 3] = 0;
  const c = checksum(b, t, end - t);
  b[t + 2] = c >>> 8;
  b[t + 3] = c & 0xff;
  return manipIpv4(b, ip, end, outerMtype, outerAddr, 0);
}
