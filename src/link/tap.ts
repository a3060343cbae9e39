/**
 * TAP (Ethernet) and TUN (raw IP) devices from the native addon.
 *
 * Receiving: the addon keeps every started device of this JS environment in
 * one epoll set, watched by libuv. A wakeup reads up to `batch` frames per
 * ready device straight into that device's receive buffer (an ArrayBuffer
 * allocated here: `batch` frame lengths, then `batch` slots of `maxFrame`
 * bytes) and makes one JS call (native.ts) for all of them, which hands each
 * device's frames to its receiver as views of those slots. Nothing is copied
 * and the buffers are reused, which is why a receiver must copy a frame it
 * keeps past `batchEnd()` (see device.ts).
 */
import { DEV_OFFLOAD_CSUM, DEV_OFFLOAD_LRO, DEV_OFFLOAD_RXCSUM, DEV_OFFLOAD_TSO4, DEV_OFFLOAD_USO, type Device, type DeviceReceiver, type LinkType, type WriterDrops } from './device.js';
import { forgetRx, loadNative, startRx, stopRx, type NativeDeviceHandle, type NativeError, type NativeTxStats, type RxSink } from './native.js';
import { clearList } from '../packet/list.js';
import type { Packet } from '../packet/packet.js';

export interface TapOptions {
  /**
   * IFF_VNET_HDR: the kernel puts a virtio_net_hdr before each frame. The
   * addon strips it on receive and writes a zeroed one on send, so frames
   * seen here are the same with or without it.
   */
  vnetHdr?: boolean;
  /**
   * virtio-net offloads: IFF_VNET_HDR with the header handed to the stack
   * (received frames come with it, sent frames carry the stack's), and
   * TUNSETOFFLOAD asking the kernel for partial checksums and TCP and UDP
   * super-frames. Implies vnetHdr.
   */
  offload?: boolean;
  /** Frames read per device per wakeup, at most (default 64). */
  batch?: number;
  /** Receive slot size = largest frame delivered (default 65535 + 14 for TAP, 65535 for TUN). */
  maxFrame?: number;
  /**
   * Transmit thread: batches are copied to a ring that a thread of the addon
   * writes to the device, so the kernel's receive work for our frames runs
   * beside the JS thread (single frames with nothing queued are still written
   * at once). Default TX_THREAD_DEFAULT.
   */
  txThread?: boolean;
}

const ETH_HLEN = 14;
const IP_MAXPACKET = 65535;
const DEFAULT_BATCH = 64;
const MAX_BATCH = 1024;
/** Smallest slot that holds a minimum-MTU IPv4 packet (RFC 791: 68) plus an Ethernet header. */
const MIN_FRAME = 68 + ETH_HLEN;
/** Receive slot bytes before the frame in offload mode: room for the virtio_net_hdr, keeping the frame 16-aligned. */
const RX_HEADROOM = 16;
/** openTap's txThread when not given. */
export const TX_THREAD_DEFAULT = false;
/** Smallest batch the transmit thread takes while it has none of the device's frames queued. */
const TX_THREAD_MIN_BATCH = 2;
// include/uapi/linux/if_tun.h
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_USO4 = 0x20;
const TUN_F_USO6 = 0x40;
function positiveInt(value: number | undefined, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export class TapDevice implements Device {
  /** The name the kernel gave the device when it was opened. */
  readonly name: string;
  readonly linkType: LinkType;
  readonly maxFrameSize: number;
  /**
   * Distance between receive slots: maxFrameSize rounded up to 64 bytes, so every
   * frame (and the IP and TCP headers in it) starts at the same alignment, which the
   * checksum's four-bytes-at-a-time path needs.
   */
  private readonly slotSize: number;
  /** Frames that fit the rounded slot but not maxFrameSize, dropped here. */
  private rxOversizeHere = 0;
  /** Frames read per device per wakeup, at most. */
  readonly batch: number;
  readonly vnetHdr: boolean;
  /** Offload mode: bytes of virtio_net_hdr in front of every frame both ways (0 otherwise). */
  readonly vnetHdrLen: number;
  readonly offloadCaps: number;
  /** Slot bytes before each received frame. */
  private readonly rxHeadroom: number;
  /**
   * Called with a NativeError when the device fails on receive (e.g. EBADFD
   * after its netdev was deleted); the device has then left the receive set.
   * Without a handler the error is emitted as a process warning.
   */
  onError: ((err: Error) => void) | null = null;
  rxFrames = 0;
  txFrames = 0;
  /** Frames dropped on send here because the kernel side was down (EIO). */
  private txLinkDownHere = 0;

  private readonly handle: NativeDeviceHandle;
  /** Frame lengths, then the slots (native.ts `open`). */
  private readonly rxBuffer: ArrayBuffer;
  private readonly rxLengths: Uint32Array;
  /** Where slot 0 starts in rxBuffer. */
  private readonly rxSlots: number;
  private rx: DeviceReceiver | null = null;
  private isClosed = false;
  /** The transmit thread was turned on (its counters count). */
  private txThreadUsed: boolean;
  /** The transmit thread's drops as they stood when the device closed. */
  private writerDropsAtClose: WriterDrops = { busy: 0, linkDown: 0, errors: 0 };
  private receiving = false;
  /** This device's share of each wakeup; one closure per device, not per frame. */
  private readonly sink: RxSink = (count, errno) => this.deliver(count, errno);

  /** Use openTap() / openTun(). */
  constructor(linkType: LinkType, name: string, opts: TapOptions = {}) {
    const tap = linkType === 'ether';
    this.linkType = linkType;
    const offload = opts.offload ?? false;
    this.vnetHdr = offload || (opts.vnetHdr ?? false);
    this.rxHeadroom = offload ? RX_HEADROOM : 0;
    this.batch = positiveInt(opts.batch, DEFAULT_BATCH, 1, MAX_BATCH, 'batch');
    this.maxFrameSize = positiveInt(
      opts.maxFrame,
      tap ? IP_MAXPACKET + ETH_HLEN : IP_MAXPACKET,
      MIN_FRAME,
      1 << 20,
      'maxFrame',
    );
    this.rxSlots = 4 * this.batch;
    this.slotSize = (this.maxFrameSize + this.rxHeadroom + 63) & ~63;
    this.rxBuffer = new ArrayBuffer(this.rxSlots + this.batch * this.slotSize);
    this.rxLengths = new Uint32Array(this.rxBuffer, 0, this.batch);
    this.handle = offload
      ? loadNative().open(name, tap, true, this.rxBuffer, this.batch, this.slotSize, this.rxHeadroom)
      : loadNative().open(name, tap, this.vnetHdr, this.rxBuffer, this.batch, this.slotSize);
    this.name = this.handle.name;
    this.txThreadUsed = opts.txThread ?? TX_THREAD_DEFAULT;
    if (this.txThreadUsed) this.handle.setTxThread(true, TX_THREAD_MIN_BATCH);
    // The transmit thread copies whole frames into its ring: with it, payload is copied in before.
    else this.sendBatchGather = (frames, gather, count) => this.writeGathered(frames, gather, count);
    if (offload) {
      this.handle.setTxHeaderInline(true);
      this.vnetHdrLen = this.handle.vnetHdrLength;
      // A kernel without TUN_F_USO4 (before 6.2) refuses it: UDP super-frames stay off for good.
      const got = this.setRxOffloads(true, true, true);
      this.offloadCaps = DEV_OFFLOAD_CSUM | DEV_OFFLOAD_TSO4 | DEV_OFFLOAD_RXCSUM | DEV_OFFLOAD_LRO | (got & DEV_OFFLOAD_USO);
    } else {
      this.vnetHdrLen = 0;
      this.offloadCaps = 0;
    }
  }

  /** The device's file descriptor (-1 once closed). */
  get fd(): number {
    return this.handle.fd;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Interface index of the kernel side, looked up in the current namespace. */
  get ifindex(): number {
    return loadNative().getIfindex(this.name);
  }

  /** Frames the kernel had that did not fit `maxFrame`, dropped. */
  get rxOversize(): number {
    return this.handle.rxOversize + this.rxOversizeHere;
  }

  /**
   * Frames dropped on send because the kernel side was down (EIO), whether
   * written here or by the transmit thread.
   */
  get txLinkDown(): number {
    return this.txLinkDownHere + (this.txThreadUsed ? this.handle.txStats().linkDown : 0);
  }

  /** What the transmit thread dropped after write/writeBatch took it (device.ts). */
  txWriterDrops(): WriterDrops {
    if (!this.txThreadUsed || this.isClosed) return this.writerDropsAtClose;
    const t = this.handle.txStats();
    return { busy: t.busy, linkDown: t.linkDown, errors: t.errors };
  }

  /** The transmit thread's counters for this device (native.ts NativeTxStats). */
  txThreadStats(): NativeTxStats {
    return this.handle.txStats();
  }

  /** Bring the kernel side up (or down), like `ip link set NAME up`. */
  setUp(up = true): void {
    loadNative().setLinkUp(this.name, up);
  }

  /** Set the kernel side's MTU, like `ip link set NAME mtu N`. */
  setMtu(mtu: number): void {
    loadNative().setMtu(this.name, mtu);
  }

  /** The kernel side's MTU. */
  getMtu(): number {
    return loadNative().getMtu(this.name);
  }

  /**
   * TUNSETOFFLOAD: partial checksums (TUN_F_CSUM), TCP super-frames
   * (TUN_F_TSO4) and UDP ones (TUN_F_USO4) from the kernel; both kinds need
   * TUN_F_CSUM. A kernel that refuses a set gets a smaller one (without USO,
   * then without TSO). Returns the DEV_OFFLOAD_* bits on.
   */
  setRxOffloads(csum: boolean, lro: boolean, uso = false): number {
    if (this.vnetHdrLen === 0) return 0;
    const tries: number[] = [];
    if (csum) {
      // tun.c set_offload takes USO4 only with USO6 (NETIF_F_GSO_UDP_L4 is one
      // feature for both); IPv6 frames are dropped here as any other IPv6 frame.
      const tso = lro ? TUN_F_TSO4 : 0;
      if (uso) tries.push(TUN_F_CSUM | tso | TUN_F_USO4 | TUN_F_USO6);
      if (lro) tries.push(TUN_F_CSUM | tso);
      tries.push(TUN_F_CSUM);
    }
    for (const f of tries) {
      if (this.handle.setOffload(f) === 0)
        return DEV_OFFLOAD_RXCSUM | ((f & TUN_F_TSO4) !== 0 ? DEV_OFFLOAD_LRO : 0) | ((f & TUN_F_USO4) !== 0 ? DEV_OFFLOAD_USO : 0);
    }
    this.handle.setOffload(0);
    return 0;
  }

  /** Starts (or re-targets) delivery of received frames to `rx`. */
  start(rx: DeviceReceiver): void {
    if (this.isClosed) throw new Error(`device ${this.name} is closed`);
    this.rx = rx;
    if (this.receiving) return;
    startRx(this.handle, this.sink);
    this.receiving = true;
  }

  /** Stops receiving; frames queue in the kernel (and are dropped there when it is full). */
  stop(): void {
    if (this.receiving) stopRx(this.handle, this.sink);
    this.receiving = false;
    this.rx = null;
  }

  /**
   * Writes frames[0..count); returns how many the kernel took. The rest are
   * dropped: the kernel's queue was full (EAGAIN), or its side of the device
   * is down (EIO, counted in txLinkDown). Other errors throw.
   */
  sendBatch(frames: readonly Uint8Array[], count: number): number {
    // A send racing with close (a timer firing late) drops rather than throws.
    if (this.isClosed) return 0;
    let n: number;
    try {
      // One frame (a reply to a one-frame batch) is the common case: no array for the addon to walk.
      n = count === 1 ? this.handle.write(frames[0]) : this.handle.writeBatch(frames, count);
    } catch (err) {
      n = this.writeFailed(err, count);
    }
    this.txFrames += n;
    return n;
  }

  /** Scatter-gather writes (Device.sendBatchGather); absent while the transmit thread is on. */
  sendBatchGather?: (frames: readonly Uint8Array[], gather: readonly (Packet | null)[], count: number) => number;

  private gatherParts: Uint8Array[] = [];
  private gatherCounts = new Uint32Array(64);

  private writeGathered(frames: readonly Uint8Array[], gather: readonly (Packet | null)[], count: number): number {
    if (this.isClosed) return 0;
    if (this.gatherCounts.length < count) this.gatherCounts = new Uint32Array(Math.max(count, 2 * this.gatherCounts.length));
    const counts = this.gatherCounts;
    const parts = this.gatherParts;
    for (let i = 0; i < count; i++) {
      const p = gather[i];
      if (p === null) {
        counts[i] = 0;
        continue;
      }
      const views = p.gatherParts!;
      const k = p.gatherCount;
      for (let j = 0; j < k; j++) parts.push(views[j]);
      counts[i] = k;
    }
    let n: number;
    try {
      n = this.handle.writeGather(frames, parts, counts, count);
    } catch (err) {
      n = this.writeFailed(err, count);
    } finally {
      clearList(parts);
    }
    this.txFrames += n;
    return n;
  }

  /**
   * A write that threw: `ip link set NAME down` on the kernel side (EIO) is an
   * administrative state, not a fault of ours, so the rest drop like frames on an
   * unplugged cable; returns the frames written before it. Other errors go on up.
   */
  private writeFailed(err: unknown, count: number): number {
    const e = err as NativeError;
    if (e.code !== 'EIO' || e.written === undefined) throw err;
    this.txLinkDownHere += count - e.written;
    return e.written;
  }

  close(): void {
    if (this.isClosed) return;
    this.writerDropsAtClose = this.txWriterDrops();
    this.isClosed = true;
    if (this.receiving) forgetRx(this.handle, this.sink);
    this.receiving = false;
    this.handle.close();
    this.rx = null;
  }

  private deliver(count: number, errno: number): void {
    const rx = this.rx;
    if (count > 0 && rx !== null) {
      const lengths = this.rxLengths;
      const slot = this.slotSize;
      const hl = this.vnetHdrLen;
      // In offload mode the virtio_net_hdr sits right before the frame: hand both.
      const first = this.rxSlots + this.rxHeadroom - hl;
      try {
        const max = this.maxFrameSize;
        for (let i = 0; i < count && !this.isClosed; i++) {
          const n = lengths[i];
          if (n > max) {
            this.rxOversizeHere++;
            continue;
          }
          if (hl === 0) rx.frame(new Uint8Array(this.rxBuffer, first + i * slot, n));
          else rx.frame(new Uint8Array(this.rxBuffer, first + i * slot, n + hl), hl);
        }
        this.rxFrames += count;
      } finally {
        rx.batchEnd();
      }
    }
    if (errno !== 0) this.failed(errno);
  }

  private failed(errno: number): void {
    // The addon has already taken the device out of the epoll set.
    forgetRx(this.handle, this.sink);
    this.receiving = false;
    const err = loadNative().errnoError(errno, 'read', this.name);
    if (this.onError !== null) this.onError(err);
    else process.emitWarning(err);
  }
}

/** TUN devices are the same class with linkType 'ip'. */
export type TunDevice = TapDevice;

/** Opens (creating, or attaching to a persistent) TAP device: Ethernet frames. */
export function openTap(name: string, opts?: TapOptions): TapDevice {
  return new TapDevice('ether', name, opts);
}

/** Opens (creating, or attaching to a persistent) TUN device: bare IP packets. */
export function openTun(name: string, opts?: TapOptions): TunDevice {
  return new TapDevice('ip', name, opts);
}
