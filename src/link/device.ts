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
export type LinkType = 'ether' | 'ip';

export interface DeviceReceiver {
  frame(frame: Uint8Array): void;
  batchEnd(): void;
}

export interface Device {
  readonly name: string;
  /** 'ether': Ethernet frames (TAP, sim). 'ip': bare IPv4/IPv6 packets (TUN). */
  readonly linkType: LinkType;
  /** Largest frame the device can carry, link header included. */
  readonly maxFrameSize: number;
  /** Start delivering received frames to `rx`. */
  start(rx: DeviceReceiver): void;
  sendBatch(frames: readonly Uint8Array[], count: number): number;
  close(): void;
  /**
   * Set by the owner: called when the device fails for good (its kernel side was
   * deleted, say) and has stopped delivering frames.
   */
  onError?: ((err: Error) => void) | null;
  /** The link's rate in Mbit/s when the device knows it (a rate-limited sim link). */
  speedMbit?(): number | null;
}
