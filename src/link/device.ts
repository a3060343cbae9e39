/**
 * The contract between a device (TAP, TUN, the in-memory sim link, a pcap replay)
 * and the Interface that owns it.
 *
 * Receive side: the device calls `frame()` once per received frame, then
 * `batchEnd()` once when the batch that woke it is done. A frame's bytes are only
 * valid until `batchEnd()` returns (devices reuse their receive buffers), so a
 * receiver that keeps a frame must copy it.
 *
 * Send side: `sendBatch()` hands the device a batch; the device writes it before
 * returning (or copies what it keeps), so the caller may reuse the buffers
 * afterwards. The return value is how many frames were accepted, in order; the
 * rest were dropped (device queue full) and the caller counts them.
 */
import type { Packet } from '../packet/packet.js';

export type LinkType = 'ether' | 'ip';

export interface DeviceReceiver {
  /**
   * One received frame. With `hdrLen` > 0 the frame starts with a
   * virtio_net_hdr of that many bytes (wire/vnet.ts), the link frame after it.
   */
  frame(frame: Uint8Array, hdrLen?: number): void;
  batchEnd(): void;
}

/** What a device can do for the stack (virtio-net offloads). */
export const DEV_OFFLOAD_CSUM = 1; // finishes partial checksums of sent frames (NEEDS_CSUM)
export const DEV_OFFLOAD_TSO4 = 2; // cuts TCP super-frames it is given (gso_type TCPV4)
export const DEV_OFFLOAD_RXCSUM = 4; // marks received checksums (NEEDS_CSUM / DATA_VALID)
export const DEV_OFFLOAD_LRO = 8; // hands over TCP super-frames (TUN_F_TSO4)
export const DEV_OFFLOAD_USO = 16; // takes and hands over UDP super-frames (gso_type UDP_L4; TUN_F_USO4)

export interface Device {
  readonly name: string;
  /** 'ether': Ethernet frames (TAP, sim). 'ip': bare IPv4/IPv6 packets (TUN). */
  readonly linkType: LinkType;
  /** Largest frame the device can carry, link header included. */
  readonly maxFrameSize: number;
  /** Start delivering received frames to `rx`. */
  start(rx: DeviceReceiver): void;
  sendBatch(frames: readonly Uint8Array[], count: number): number;
  /**
   * sendBatch for frames some of which end in payload views (scatter-gather, the
   * kernel's NETIF_F_SG): frame i is frames[i], then, where gather[i] is a packet,
   * its gatherParts[0..gatherCount). Absent: the device takes only whole frames.
   */
  sendBatchGather?(frames: readonly Uint8Array[], gather: readonly (Packet | null)[], count: number): number;
  close(): void;
  /**
   * Set by the owner: called when the device fails for good (its kernel side was
   * deleted, say) and has stopped delivering frames.
   */
  onError?: ((err: Error) => void) | null;
  /** The link's rate in Mbit/s when the device knows it (a rate-limited sim link). */
  speedMbit?(): number | null;
  /**
   * Bytes of virtio_net_hdr each frame given to sendBatch must start with
   * (0 or absent: plain frames). Received frames then come with one as well.
   */
  readonly vnetHdrLen?: number;
  /** DEV_OFFLOAD_* bits the device can do (absent: none). */
  readonly offloadCaps?: number;
  /** Asks the device for receive offloads (TUNSETOFFLOAD); returns the DEV_OFFLOAD_* receive bits now on. */
  setRxOffloads?(csum: boolean, lro: boolean, uso?: boolean): number;
  /**
   * Frames sendBatch reported as taken that the device's own writer (a TAP's
   * transmit thread) dropped afterwards, by cause (absent: a device that writes
   * before sendBatch returns). Interface adds them to its drop counts.
   */
  txWriterDrops?(): WriterDrops;
}

/** Frames a device's writer dropped after taking them: EAGAIN, EIO (kernel side down), another errno. */
export interface WriterDrops {
  busy: number;
  linkDown: number;
  errors: number;
}
