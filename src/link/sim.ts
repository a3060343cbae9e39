import { DEV_OFFLOAD_CSUM, DEV_OFFLOAD_LRO, DEV_OFFLOAD_RXCSUM, DEV_OFFLOAD_TSO4, DEV_OFFLOAD_USO, type Device, type DeviceReceiver, type LinkType } from './device.js';
import { VNET_HDR_LEN } from '../wire/vnet.js';
import type { Time } from '../time/timers.js';
import { Random } from '../random.js';
import type { Packet } from '../packet/packet.js';

/** Impairments of one direction of a sim link, like `tc qdisc add ... netem`. */
export interface SimImpairments {
  /** One-way delay in ms. */
  delayMs?: number;
  /** Extra random delay, uniform in [0, jitterMs]; can reorder frames. */
  jitterMs?: number;
  /** Probability of losing a frame, 0..1. */
  loss?: number;
  /** Probability of delivering a frame twice. */
  duplicate?: number;
  /** Probability that a frame skips the delay (delivered early, so reordered). */
  reorder?: number;
  /** Serialisation rate in bits per second (0: unlimited). */
  rateBps?: number;
}

export interface SimLinkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
}

/**
 * One end of an in-memory wire. Frames written here arrive at the peer end
 * after the configured impairments, on the shared virtual (or real) clock.
 */
export class SimDevice implements Device {
  readonly maxFrameSize: number;
  peer: SimDevice | null = null;
  private rx: DeviceReceiver | null = null;
  impair: SimImpairments = {};
  readonly stats: SimLinkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0 };
  /** When the wire is free again (rate limiting). */
  private busyUntil = 0;
  private closed = false;
  onError: ((err: Error) => void) | null = null;
  /**
   * With offload, the wire is a virtio-net one: every frame carries a
   * virtio_net_hdr both ways, so partial checksums and TCP and UDP super-frames cross
   * it as they cross a TAP with the kernel on the other side.
   */
  readonly vnetHdrLen: number;
  readonly offloadCaps: number;
  /**
   * Deliver every frame from one receive buffer that is overwritten once the
   * receiver's batchEnd() returns, as a TAP's receive slots are read into again:
   * what keeps a view of a received frame past its batch sees the bytes change.
   */
  reuseRx = false;
  private rxSlot: Uint8Array | null = null;

  /** A rate-limited link's rate (Mbit/s); null: none (the interface reports what a TAP does). */
  speedMbit(): number | null {
    return this.impair.rateBps ? this.impair.rateBps / 1e6 : null;
  }

  constructor(
    readonly name: string,
    readonly linkType: LinkType,
    private readonly time: Time,
    private readonly rng: Random,
    mtu = 1500,
    offload = false,
  ) {
    this.maxFrameSize = mtu + (linkType === 'ether' ? 14 : 0);
    this.vnetHdrLen = offload ? VNET_HDR_LEN : 0;
    this.offloadCaps = offload ? DEV_OFFLOAD_CSUM | DEV_OFFLOAD_TSO4 | DEV_OFFLOAD_RXCSUM | DEV_OFFLOAD_LRO | DEV_OFFLOAD_USO : 0;
  }

  start(rx: DeviceReceiver): void {
    this.rx = rx;
  }

  sendBatch(frames: readonly Uint8Array[], count: number): number {
    for (let i = 0; i < count; i++) this.transmit(frames[i]);
    return count;
  }

  /** Scatter-gather, as a TAP does it: each frame's payload views follow its head on the wire. */
  sendBatchGather(frames: readonly Uint8Array[], gather: readonly (Packet | null)[], count: number): number {
    for (let i = 0; i < count; i++) {
      const p = gather[i];
      if (p === null) {
        this.transmit(frames[i]);
        continue;
      }
      // frames[i] is the packet's bytes from p.start to its views: with them copied in, the whole frame.
      p.linearize();
      this.transmit(p.data());
    }
    return count;
  }

  private transmit(frame: Uint8Array): void {
    if (this.closed) return;
    const im = this.impair;
    const st = this.stats;
    st.sent++;
    if (im.loss && this.rng.next() < im.loss) {
      st.lost++;
      return;
    }
    const copy = frame.slice();
    const now = this.time.now();
    let at = now;
    if (im.rateBps) {
      const start = Math.max(now, this.busyUntil);
      this.busyUntil = start + ((frame.length - this.vnetHdrLen) * 8 * 1000) / im.rateBps;
      at = this.busyUntil;
    }
    let delay = im.delayMs ?? 0;
    if (im.jitterMs) delay += this.rng.next() * im.jitterMs;
    if (im.reorder && this.rng.next() < im.reorder) {
      delay = 0;
      st.reordered++;
    }
    this.schedule(copy, at - now + delay);
    if (im.duplicate && this.rng.next() < im.duplicate) {
      st.duplicated++;
      this.schedule(copy.slice(), at - now + delay);
    }
  }

  private schedule(frame: Uint8Array, delay: number): void {
    this.time.after(delay, () => {
      const p = this.peer;
      if (p === null || p.closed || p.rx === null) return;
      p.stats.delivered++;
      if (!p.reuseRx) {
        p.rx.frame(frame, this.vnetHdrLen);
        p.rx.batchEnd();
        return;
      }
      const slot = (p.rxSlot ??= new Uint8Array(p.maxFrameSize + this.vnetHdrLen + 64));
      slot.set(frame);
      p.rx.frame(slot.subarray(0, frame.length), this.vnetHdrLen);
      p.rx.batchEnd();
      slot.fill(0xee);
    });
  }

  close(): void {
    this.closed = true;
  }
}

/** Makes the two ends of a wire. */
export function simLink(
  time: Time,
  opts: { linkType?: LinkType; mtu?: number; seed?: number; names?: [string, string]; offload?: boolean } = {},
): [SimDevice, SimDevice] {
  const rng = new Random(opts.seed ?? 1);
  const lt = opts.linkType ?? 'ether';
  const [na, nb] = opts.names ?? ['sim0', 'sim1'];
  const a = new SimDevice(na, lt, time, rng, opts.mtu, opts.offload);
  const b = new SimDevice(nb, lt, time, rng, opts.mtu, opts.offload);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
