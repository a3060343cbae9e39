import { DEFAULT_HEADROOM, Packet } from '../packet/packet.js';
import type { Mib } from '../mib.js';
import { copiedOptions, fillIpv4Checksum } from '../wire/ipv4.js';
import { gsoHeaderLen, gsoSegment, plainPacket } from '../link/offload.js';

/** Where fragments go: an Interface, or a test's stand-in. */
export interface FragmentSink {
  readonly mtu: number;
  outputIp(pkt: Packet, nextHop: number): void;
}

/**
 * Splits the datagram in `pkt` (`pkt.start` at its IP header, header complete
 * with checksum) into fragments of at most `dev.mtu` bytes and sends each to
 * `nextHop` through `dev`, in order. RFC 791 §3.2 ("An Example Fragmentation Procedure") and §3.1:
 * every fragment but the last carries a multiple of 8 data bytes; the first
 * keeps all options, the others only those with the copied flag; each gets its
 * own total length, flags, offset and checksum.
 *
 * Returns 'EMSGSIZE' (counted as IpFragFails) when the datagram has DF set,
 * or when the MTU cannot hold a header and 8 bytes of data; else null, with
 * IpFragOKs and IpFragCreates counted.
 */
export function fragmentDatagram(pkt: Packet, dev: FragmentSink, nextHop: number, mib: Mib, mtu = dev.mtu): 'EMSGSIZE' | null {
  const b = pkt.buf;
  const o = pkt.start;
  const hlen = (b[o] & 0x0f) << 2;
  const flags = b[o + 6];
  // RFC 791 §3.1: Don't Fragment means the datagram may not be split.
  if ((flags & 0x40) !== 0) {
    mib.IpFragFails++;
    return 'EMSGSIZE';
  }
  // A super-packet or partial checksum can't be split as bytes: finish it first.
  plainPacket(pkt);
  const total = pkt.length;
  const dataLen = total - hlen;
  // The original's own place, when it is itself a fragment being split again.
  const baseOff = (((flags & 0x1f) << 8) | b[o + 7]) << 3;
  const lastMore = (flags & 0x20) !== 0;
  const later = hlen > 20 ? copiedOptions(b, o + 20, hlen - 20) : new Uint8Array(0);
  const laterHlen = 20 + later.length;
  // Data per fragment, rounded down to 8-byte units.
  const firstRoom = (mtu - hlen) & ~7;
  const laterRoom = (mtu - laterHlen) & ~7;
  if (firstRoom < 8 || laterRoom < 8) {
    mib.IpFragFails++;
    return 'EMSGSIZE';
  }

  let off = 0;
  let created = 0;
  while (off < dataLen) {
    const first = off === 0;
    const h = first ? hlen : laterHlen;
    const room = first ? firstRoom : laterRoom;
    const n = Math.min(room, dataLen - off);
    const last = off + n === dataLen;
    const frag = Packet.alloc(h + n);
    const fb = frag.buf;
    const fo = frag.start;
    // The fixed header is the original's; then the options each fragment carries.
    fb.set(b.subarray(o, o + 20), fo);
    if (first) fb.set(b.subarray(o + 20, o + hlen), fo + 20);
    else fb.set(later, fo + 20);
    fb.set(b.subarray(o + hlen + off, o + hlen + off + n), fo + h);
    fb[fo] = 0x40 | (h >> 2);
    const len = h + n;
    fb[fo + 2] = len >> 8;
    fb[fo + 3] = len & 0xff;
    const units = (baseOff + off) >> 3;
    // MF on every fragment but the last, which keeps the original's MF.
    const more = !last || lastMore;
    fb[fo + 6] = (flags & 0x80) | (more ? 0x20 : 0) | ((units >> 8) & 0x1f);
    fb[fo + 7] = units & 0xff;
    fillIpv4Checksum(fb, fo, h);
    frag.l3 = fo;
    frag.mark = pkt.mark;
    frag.ct = pkt.ct;
    created++;
    mib.IpExtOutOctets += len;
    dev.outputIp(frag, nextHop);
    off += n;
  }
  mib.IpFragCreates += created;
  mib.IpFragOKs++;
  return null;
}

/**
 * ip_finish_output_gso's slow path: a super-packet whose segments don't fit
 * `mtu` (forwarded without DF) is cut into its segments in software, and each
 * goes on as a datagram of its own, fragmented when it is too big
 * (ip_fragment per segment). Returns the first error, or null.
 */
export function fragmentSegments(pkt: Packet, dev: FragmentSink, nextHop: number, mib: Mib, mtu = dev.mtu): 'EMSGSIZE' | null {
  const hdrs = gsoHeaderLen(pkt, pkt.start);
  const segs = hdrs < 0 ? 0 : Math.ceil((pkt.length - hdrs) / pkt.gsoSize);
  if (segs === 0) {
    mib.IpOutDiscards++;
    return 'EMSGSIZE';
  }
  // Each segment keeps headroom before it for the link header.
  const arena = new Uint8Array(segs * ((DEFAULT_HEADROOM + hdrs + pkt.gsoSize + 3) & ~3));
  const frames: Uint8Array[] = [];
  if (gsoSegment(pkt, pkt.start, arena, 0, DEFAULT_HEADROOM, false, frames) < 0) {
    mib.IpOutDiscards++;
    return 'EMSGSIZE';
  }
  let err: 'EMSGSIZE' | null = null;
  for (const f of frames) {
    const s = new Packet(arena, f.byteOffset + DEFAULT_HEADROOM, f.byteOffset + f.length);
    s.l3 = s.start;
    s.mark = pkt.mark;
    s.ct = pkt.ct;
    s.ctInfo = pkt.ctInfo;
    if (s.length > mtu) {
      const e = fragmentDatagram(s, dev, nextHop, mib, mtu);
      if (err === null) err = e;
    } else {
      mib.IpExtOutOctets += s.length;
      dev.outputIp(s, nextHop);
    }
  }
  return err;
}
