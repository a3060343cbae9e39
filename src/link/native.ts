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
  /** writeBatch only: frames written before the failing one. */
  written?: number;
}

/** One open TAP/TUN file descriptor. */
export interface NativeDeviceHandle {
  /** Small integer naming this device in the ready list; reused after close. */
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
  /** The kernel's current name for the device (follows renames). */
  kernelName(): string;
}

export interface NativeAddon {
  /**
   * Registers the single receive callback of this JS environment. On each
   * wakeup it is called once with `nready`; for i < nready,
   * ready[3i] = device id, ready[3i+1] = frames now in that device's slots
   * (lengths in its rxLengths), ready[3i+2] = errno that stopped the device
   * (0 = none). At most ready.length / 3 (and 64) devices per wakeup.
   */
  init(onRx: (nready: number) => void, ready: Uint32Array): void;
  /**
   * Creates, or attaches to the existing (persistent) device `name`
   * ("tap%d" style and "" let the kernel pick). Frame i of a wakeup lands at
   * rxBuffer[i * slotSize ..] with its length in rxLengths[i].
   */
  open(
    name: string,
    tap: boolean,
    vnetHdr: boolean,
    rxBuffer: ArrayBuffer,
    slots: number,
    slotSize: number,
    rxLengths: Uint32Array,
  ): NativeDeviceHandle;
  /** Builds the addon's Error shape for an errno the ready list reported. */
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
