/**
 * Typed access to the C++ addon (native/, built to build/Release/tapstack_native.node).
 *
 * The addon is loaded on first use, not at import, so modules that merely
 * import the TAP/TUN code (and tests that run on the sim link) work without
 * a native build.
 */
import { createRequire } from 'node:module';

/** An Error shaped like Node's system errors. `errno` is negative, as in Node. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  /** writeBatch and writeGather only: frames written before the failing one. */
  written?: number;
}

/** One open TAP/TUN file descriptor. */
export interface NativeDeviceHandle {
  /** Small integer naming this device to the receive callback; reused after close. */
  readonly id: number;
  /** -1 once closed. */
  readonly fd: number;
  /** The name the kernel gave at open (e.g. "tap3" for "tap%d"). */
  readonly name: string;
  /** Bytes of virtio_net_hdr the addon strips/prepends per frame; 0 = off. */
  readonly vnetHdrLength: number;
  /** Frames dropped because they were larger than a receive slot. */
  readonly rxOversize: number;
  readonly closed: boolean;
  /** Join the receive epoll set (requires init()). */
  start(): void;
  /** Leave the epoll set; the fd stays open. */
  stop(): void;
  /** Leave the epoll set and close the fd. Idempotent. */
  close(): void;
  /**
   * One write() per frame for frames[0..count). Returns how many were
   * written: stops early on EAGAIN; other errors throw (with `.written`).
   */
  writeBatch(frames: readonly Uint8Array[], count: number): number;
  /** writeBatch([frame], 1) without the array: 1, or 0 on EAGAIN. */
  write(frame: Uint8Array): number;
  /**
   * writeBatch where frame i is heads[i] followed by the next partCounts[i]
   * entries of parts (at most 32), one writev() each. Not with the transmit thread on.
   */
  writeGather(heads: readonly Uint8Array[], parts: readonly Uint8Array[], partCounts: Uint32Array, count: number): number;
  /** The kernel's current name for the device (follows renames). */
  kernelName(): string;
  /** TUNSETOFFLOAD with TUN_F_* bits: 0, or the errno the kernel gave. */
  setOffload(flags: number): number;
  /** Frames given to write/writeBatch start with their own virtio_net_hdr. */
  setTxHeaderInline(on: boolean): void;
  /**
   * The transmit thread (native/tx_thread.cc): with `on`, batches of at least
   * `minBatch` frames (default 2), and any frame while the device has frames
   * queued, are copied to a ring that a thread writes to the fd; smaller
   * batches are written at once. Off waits for the queued frames.
   */
  setTxThread(on: boolean, minBatch?: number): void;
  /** The transmit thread's counters for this device. */
  txStats(): NativeTxStats;
}

/**
 * Frames handed to the transmit thread (`queued`, reported as taken by
 * write/writeBatch) and what became of them: `written`, or dropped by the
 * writer on EAGAIN (`busy`), EIO (`linkDown`: the kernel side is down) or
 * another errno (`errors`, the last in `errno`), or skipped because the device
 * closed first (`discarded`); `pending` are still in the ring.
 */
export interface NativeTxStats {
  on: boolean;
  queued: number;
  pending: number;
  written: number;
  busy: number;
  linkDown: number;
  errors: number;
  errno: number;
  discarded: number;
}

export interface NativeAddon {
  /**
   * Registers the single receive callback of this JS environment and the
   * ready list it reads. Started devices share one epoll set, watched by
   * libuv; each wakeup reads every ready device and makes one call. One
   * device served: (id, frames now in its slots (lengths at the front of its
   * receive buffer), errno that stopped it (0 = none)). Several:
   * (-1, nready, 0), and for i < nready ready[3i] = id, ready[3i+1] = frames,
   * ready[3i+2] = errno. At most ready.length / 3 (and 64) devices per
   * wakeup; the rest stay ready for the next. Without `ready` the addon makes
   * one; the list in use is returned.
   */
  init(onRx: (id: number, count: number, errno: number) => void, ready?: Uint32Array): Uint32Array;
  /**
   * Creates, or attaches to the existing (persistent) device `name`
   * ("tap%d" style and "" let the kernel pick). `rxBuffer` (at least
   * slots * (4 + slotSize) bytes) starts with one host-order uint32 length
   * per slot, then the slots: frame i of a wakeup lands at
   * rxBuffer[4 * slots + i * slotSize ..] with its length in the i-th uint32.
   * With `rxHeadroom` (a multiple of 4, at least the header's size) the frame
   * lands `rxHeadroom` bytes into its slot and, with vnetHdr, its
   * virtio_net_hdr in the bytes right before it.
   */
  open(name: string, tap: boolean, vnetHdr: boolean, rxBuffer: ArrayBuffer, slots: number, slotSize: number, rxHeadroom?: number): NativeDeviceHandle;
  /** Builds the addon's Error shape for an errno the receive callback reported. */
  errnoError(errno: number, syscall: string, subject: string): NativeError;
  /** SIOCSIFFLAGS: set or clear IFF_UP on `name` in this namespace. */
  setLinkUp(name: string, up: boolean): void;
  /** SIOCGIFFLAGS: the IFF_* flags word. */
  getLinkFlags(name: string): number;
  /** SIOCSIFMTU */
  setMtu(name: string, mtu: number): void;
  /** SIOCGIFMTU */
  getMtu(name: string): number;
  /** SIOCGIFINDEX */
  getIfindex(name: string): number;
  /**
   * Test aid: while held, the transmit thread takes no frames from its ring
   * (closing a device with frames queued lifts the hold).
   */
  txHold(on: boolean): void;
  /**
   * The transmit ring's size and how long a full ring may hold up a write
   * before the rest of the batch is dropped (0: at once). Starts the thread;
   * throws EBUSY while frames are queued.
   */
  txConfigure(ringBytes: number, waitMicros: number): void;
}

/** Gets one device's share of a wakeup: `count` frames in its slots, and the errno that stopped it (0 = none). */
export type RxSink = (count: number, errno: number) => void;

/**
 * The receive dispatch: the started devices by id. It lives on the addon's
 * exports object, which is one per JS environment, so that two copies of
 * this module in one process (src/ and dist/, say) share it instead of each
 * re-registering the callback and losing the other's frames.
 */
interface RxDispatch {
  readonly sinks: (RxSink | undefined)[];
}

const RX_DISPATCH = Symbol.for('tapstack.native.rxDispatch');
/** The addon reports at most 64 devices per wakeup; more wait for the next one. */
const READY_DEVICES = 64;

function rxDispatch(): RxDispatch {
  const addon = loadNative() as NativeAddon & { [RX_DISPATCH]?: RxDispatch };
  let d = addon[RX_DISPATCH];
  if (d === undefined) {
    const ready = new Uint32Array(3 * READY_DEVICES);
    const sinks: (RxSink | undefined)[] = [];
    // One device (the common case) comes as arguments; a sink's exception
    // goes on to uncaughtException (the addon raises it). Several come in
    // `ready`: every device gets its frames even if an earlier sink threw,
    // and the first error is rethrown afterwards.
    const onRx = (id: number, count: number, errno: number): void => {
      if (id >= 0) {
        const sink = sinks[id];
        if (sink !== undefined) sink(count, errno);
        return;
      }
      let failed = false;
      let firstError: unknown;
      for (let i = 0; i < count; i++) {
        const sink = sinks[ready[3 * i]];
        if (sink === undefined) continue;
        try {
          sink(ready[3 * i + 1], ready[3 * i + 2]);
        } catch (err) {
          if (!failed) {
            failed = true;
            firstError = err;
          }
        }
      }
      if (failed) throw firstError;
    };
    addon.init(onRx, ready);
    d = { sinks };
    addon[RX_DISPATCH] = d;
  }
  return d;
}

/** Puts the device in the receive epoll set; its wakeups go to `sink`. */
export function startRx(handle: NativeDeviceHandle, sink: RxSink): void {
  const d = rxDispatch();
  handle.start();
  d.sinks[handle.id] = sink;
}

/** Takes the device out of the receive set (and forgets `sink` if it is still its sink). */
export function stopRx(handle: NativeDeviceHandle, sink: RxSink): void {
  const d = rxDispatch();
  if (d.sinks[handle.id] === sink) d.sinks[handle.id] = undefined;
  handle.stop();
}

/** Forgets `sink` after the addon took the device out of the set itself (read error). */
export function forgetRx(handle: NativeDeviceHandle, sink: RxSink): void {
  const d = rxDispatch();
  if (d.sinks[handle.id] === sink) d.sinks[handle.id] = undefined;
}

/** From src/link/ (vitest) and from dist/link/ (compiled) this is the repo's build/. */
const ADDON_PATH = '../../build/Release/tapstack_native.node';

let loaded: NativeAddon | null = null;

export function loadNative(): NativeAddon {
  if (loaded === null) {
    const require = createRequire(import.meta.url);
    try {
      loaded = require(ADDON_PATH) as NativeAddon;
    } catch (err) {
      const e = new Error(
        `cannot load the tapstack native addon (${ADDON_PATH}); build it with \`npm run build:native\``,
        { cause: err },
      );
      throw e;
    }
  }
  return loaded;
}
