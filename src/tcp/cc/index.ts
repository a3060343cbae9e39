/**
 * The congestion control modules by name, as net.ipv4.tcp_congestion_control
 * and net.ipv4.tcp_available_congestion_control name them. Each connection
 * gets an instance of its own.
 */
import { Cubic } from './cubic.js';
import { Reno } from './reno.js';
import type { CongestionControl } from './types.js';

export type { CaEvent, CaState, CcState, CongestionControl } from './types.js';

/** Asking for a module that does not exist (Linux answers ENOENT). */
export class CongestionControlError extends Error {
  readonly code = 'ENOENT';
}

// Registration order, which is the order Linux lists them in: reno is built in, cubic follows.
const NAMES = ['reno', 'cubic'] as const;

/** tcp_cubic's module parameters, under Linux's names (TcpSettings.cubic). */
export interface CubicParams {
  fast_convergence: number;
  tcp_friendliness: number;
  hystart: number;
  hystart_detect: number;
  hystart_low_window: number;
  hystart_ack_delta_us: number;
}

export function createCongestionControl(name: string, cubic?: CubicParams): CongestionControl {
  switch (name) {
    case 'reno':
      return new Reno();
    case 'cubic':
      return cubic === undefined
        ? new Cubic()
        : new Cubic({
            fastConvergence: cubic.fast_convergence !== 0,
            tcpFriendliness: cubic.tcp_friendliness !== 0,
            hystart: cubic.hystart,
            hystartDetect: cubic.hystart_detect,
            hystartLowWindow: cubic.hystart_low_window,
            hystartAckDeltaUs: cubic.hystart_ack_delta_us,
          });
    default:
      throw new CongestionControlError(`unknown congestion control "${name}" (available: ${NAMES.join(', ')})`);
  }
}

export function availableCongestionControl(): string[] {
  return [...NAMES];
}
