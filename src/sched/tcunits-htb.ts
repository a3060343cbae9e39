/**
 * The tc units HTB and police need, under the names they use: rates and sizes
 * as tc reads and prints them, and psched ticks, all from units.ts (tc_util.c,
 * json_print*.c and tc_core.c of iproute2 6.1 with /proc/net/psched's values).
 */
import { calcXmitSize, calcXmitTime, getRate64, getSizeAndCell, sprintRate, sprintSize } from './units.js';

/** get_rate64: bytes per second from `10mbit`, `1gbps`, `100000` (bit/s); null if it does not parse. */
export const parseRate = getRate64;

/** get_size (the `/cell` part dropped): bytes from `1514`, `15k`, `2kbit`; null if it does not parse. */
export function parseSize(s: string): number | null {
  return getSizeAndCell(s)?.size ?? null;
}

/** print_color_rate: bytes/s as `10Mbit`, `64Kbit`, `1500bit`. */
export const fmtRate = sprintRate;

/** sprint_size: `1600b`, `15Kb`, `2Mb`. */
export const fmtSize = sprintSize;

/** tc_core.c's tick conversions (a tick is 64 ns, PSCHED_SHIFT 6). */
export const psched = {
  hz: 1e9,
  /** tc_calc_xmittime: ticks to send `size` bytes at `rate` bytes/s. */
  xmittime: calcXmitTime,
  /** tc_calc_xmitsize: bytes sent in `ticks` at `rate`. */
  xmitsize: calcXmitSize,
  /** PSCHED_TICKS2NS. */
  ticks2ns(ticks: number): number {
    return ticks * 64;
  },
};
