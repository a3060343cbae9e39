/**
 * What a program that embeds the stack needs beyond the Stack itself: a TAP or
 * TUN device opened and added as an interface in one call, and `configure`,
 * which applies config-file lines (`addr add 10.0.0.2/24 dev tap0`) with the
 * daemon's own parser and executor.
 */
import type { Stack } from './stack.js';
import type { Interface } from './link/interface.js';
import { openTap as openTapDevice, openTun as openTunDevice, type TapDevice, type TapOptions } from './link/tap.js';
import { parseMac } from './wire/addr.js';
import { parseConfig } from './control/commands.js';
import { Controller, type DeviceFactory } from './control/exec.js';
import { kernelDevices } from './control/devices.js';
import { CommandError } from './control/words.js';

export interface OpenDeviceOptions extends TapOptions {
  /** The interface's MAC address (TAP only); random when left out. */
  mac?: string | Uint8Array;
  /** MTU of both sides of the device. */
  mtu?: number;
}

function open(stack: Stack, name: string, type: 'tap' | 'tun', opts: OpenDeviceOptions): Interface {
  let mac: Uint8Array | undefined;
  if (typeof opts.mac === 'string') {
    const m = parseMac(opts.mac);
    if (m === null) throw new CommandError('expected a MAC address like 02:00:00:00:00:01', null, opts.mac);
    mac = m;
  } else mac = opts.mac;
  // virtio-net offloads unless asked otherwise (a bare vnetHdr keeps the plain header).
  const devOpts: TapOptions = { vnetHdr: opts.vnetHdr, offload: opts.offload ?? !opts.vnetHdr, batch: opts.batch, maxFrame: opts.maxFrame, txThread: opts.txThread };
  const dev: TapDevice = type === 'tap' ? openTapDevice(name, devOpts) : openTunDevice(name, devOpts);
  try {
    // As `link add` does: the kernel side gets the same MTU and comes up, so the host can talk at once.
    if (opts.mtu !== undefined) dev.setMtu(opts.mtu);
    dev.setUp(true);
    const iface = stack.addInterface(dev.name, dev, { mac, mtu: opts.mtu });
    stack.setUp(iface, true);
    return iface;
  } catch (e) {
    dev.close();
    throw e;
  }
}

/** Opens (or attaches to) the TAP device `name`, brings both sides up and adds it to `stack`. */
export function openTap(stack: Stack, name: string, opts: OpenDeviceOptions = {}): Interface {
  return open(stack, name, 'tap', opts);
}

/** Opens (or attaches to) the TUN device `name`, brings both sides up and adds it to `stack`. */
export function openTun(stack: Stack, name: string, opts: OpenDeviceOptions = {}): Interface {
  return open(stack, name, 'tun', opts);
}

export interface ConfigureOptions {
  /** Opens the devices of `link add` lines; by default real TAP/TUN devices, as in the daemon. */
  devices?: DeviceFactory;
  /** Named in errors, like the daemon names its config file. */
  source?: string;
}

/**
 * Applies config-file lines to `stack`: one command a line (or one string of
 * lines), `#` comments, the daemon's syntax (`link add tap0 type tap`,
 * `addr add 10.0.0.2/24 dev tap0`, `route add default via 10.0.0.1`,
 * `sysctl -w ...`, `service add ...`). Every line is parsed before any runs; a
 * bad one throws a CommandError naming the line, the word and what was
 * expected. A line that fails while running throws with its line number; the
 * lines before it have taken effect.
 */
export function configure(stack: Stack, lines: string | readonly string[], opts: ConfigureOptions = {}): void {
  const text = typeof lines === 'string' ? lines : lines.join('\n');
  const parsed = parseConfig(text, opts.source);
  const controller = new Controller(stack, opts.devices ?? kernelDevices);
  for (const { line, cmd } of parsed) {
    try {
      controller.run(cmd);
    } catch (e) {
      const where = opts.source !== undefined ? `${opts.source}: line ${line}` : `line ${line}`;
      const err = e as Error & { code?: string };
      const wrapped = new ConfigureError(`${where}: ${err.message}`, line, err.code, err);
      throw wrapped;
    }
  }
}

/** A configuration line that parsed but failed to apply. */
export class ConfigureError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly code: string | undefined,
    override readonly cause: Error,
  ) {
    super(message);
  }
}
