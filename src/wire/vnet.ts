/**
 * struct virtio_net_hdr (virtio 1.x §5.1.6, include/uapi/linux/virtio_net.h), the
 * header a TAP/TUN opened with IFF_VNET_HDR puts before every frame. A TUN
 * device's header is in the host's byte order unless TUNSETVNETBE says
 * otherwise (tun_is_little_endian), so fields are read little-endian here
 * (the only hosts Node ships for that run Linux are little-endian).
 *
 *   0 flags      NEEDS_CSUM (partial checksum), DATA_VALID (checksum verified)
 *   1 gso_type   NONE, TCPV4, UDP (UFO), TCPV6, UDP_L4 (USO); 0x80 ECN
 *   2 hdr_len    bytes of headers (link + IP + transport) of a GSO frame
 *   4 gso_size   payload bytes per segment
 *   6 csum_start where the checksum starts, from the frame's first byte
 *   8 csum_offset where the result goes, from csum_start
 *  10 num_buffers (only with VIRTIO_NET_F_MRG_RXBUF: a 12-byte header)
 */

export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** One decoded header; one object serves every frame. */
export class VnetHdr {
  flags = 0;
  gsoType = 0;
  hdrLen = 0;
  gsoSize = 0;
  csumStart = 0;
  csumOffset = 0;
}

/** Reads the header at buf[off, off + 10). */
export function readVnetHdr(buf: Uint8Array, off: number, out: VnetHdr): VnetHdr {
  out.flags = buf[off];
  out.gsoType = buf[off + 1];
  out.hdrLen = buf[off + 2] | (buf[off + 3] << 8);
  out.gsoSize = buf[off + 4] | (buf[off + 5] << 8);
  out.csumStart = buf[off + 6] | (buf[off + 7] << 8);
  out.csumOffset = buf[off + 8] | (buf[off + 9] << 8);
  return out;
}

/** Writes a header of `len` bytes (10, or 12 with num_buffers, left 0) at buf[off..]. */
export function writeVnetHdr(
  buf: Uint8Array,
  off: number,
  len: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  buf[off] = flags;
  buf[off + 1] = gsoType;
  buf[off + 2] = hdrLen & 0xff;
  buf[off + 3] = hdrLen >>> 8;
  buf[off + 4] = gsoSize & 0xff;
  buf[off + 5] = gsoSize >>> 8;
  buf[off + 6] = csumStart & 0xff;
  buf[off + 7] = csumStart >>> 8;
  buf[off + 8] = csumOffset & 0xff;
  buf[off + 9] = csumOffset >>> 8;
  for (let i = VNET_HDR_LEN; i < len; i++) buf[off + i] = 0;
}
