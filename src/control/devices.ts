import type { DeviceFactory } from './exec.js';
import { openTap, openTun } from '../link/tap.js';

/**
 * The daemon's devices: real TAP/TUN devices, with their kernel side brought up
 * (and given the same MTU) so the host can talk to the stack at once.
 */
export const kernelDevices: DeviceFactory = {
  open(spec) {
    // virtio-net offloads by default (`link add ... offload off`, or a bare `vnet_hdr`, opts out).
    const offload = spec.offload ?? !spec.vnetHdr;
    const opts = { vnetHdr: spec.vnetHdr, offload, txThread: spec.txThread };
    const dev = spec.type === 'tap' ? openTap(spec.name, opts) : openTun(spec.name, opts);
    try {
      if (spec.mtu !== undefined) dev.setMtu(spec.mtu);
      dev.setUp(true);
    } catch (e) {
      dev.close();
      throw e;
    }
    return dev;
  },
};
