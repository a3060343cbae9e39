/**
 * The tc units HTB and police need: rates and sizes as tc reads and prints
 * them (tc/tc_util.c get_rate64/get_size, lib/json_print.c print_color_rate,
 * lib/json_print_math.c sprint_size) and psched ticks (tc/tc_core.c with the
 * values of /proc/net/psched: t2us 1000, us2t 64, clock_res 1e6, hz 1e9).
 */

const RATE_SUFFIX: Record<string, number> = {
  '': 1, bit: 1, kibit: 1024, kbit: 1000, mibit: 1024 * 1024, mbit: 1e6,
  gibit: 1024 ** 3, gbit: 1e9, tibit: 1024 ** 4, tbit: 1e12,
  bps: 8, kibps: 8 * 1024, kbps: 8000, mibps: 8 * 1024 * 1024, mbps: 8e6,
  gibps: 8 * 1024 ** 3, gbps: 8e9, tibps: 8 * 1024 ** 4, tbps: 8e12,
};

/** get_rate64: bytes per second from `10mbit`, `1gbps`, `100000` (bit/s); null if it does not parse. */
export function parseRate(s: string): number | null {
  const m = /^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([a-z]*)$/i.exec(s);
  if (m === null) return null;
  const mul = RATE_SUFFIX[m[2].toLowerCase()];
  if (mul === undefined) return null;
  const bits = Number(m[1]) * mul;
  if (!(bits >= 0) || !Number.isFinite(bits)) return null;
  return Math.floor(bits / 8);
}

const SIZE_SUFFIX: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kbit: 128, m: 1024 * 1024, mb: 1024 * 1024,
  mbit: 1024 * 1024 / 8, g: 1024 ** 3, gb: 1024 ** 3, gbit: 1024 ** 3 / 8,
};

/** get_size (the `/cell` part dropped): bytes from `1514`, `15k`, `2kbit`; null if it does not parse. */
export function parseSize(s: string): number | null {
  const slash = s.indexOf('/');
  const w = slash >= 0 ? s.slice(0, slash) : s;
  const m = /^([0-9]*\.?[0-9]+)([a-z]*)$/i.exec(w);
  if (m === null) return null;
  const mul = SIZE_SUFFIX[m[2].toLowerCase()];
  if (mul === undefined) return null;
  const v = Math.floor(Number(m[1]) * mul);
  return v <= 0xffffffff ? v : null;
}

/** print_color_rate: bytes/s as `10Mbit`, `64Kbit`, `1500bit`. */
export function fmtRate(bytesPerSec: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let rate = bytesPerSec * 8;
  let i = 0;
  for (; i < units.length - 1; i++) {
    if (rate < 1000) break;
    if (rate % 1000 !== 0 && rate < 1000 * 1000) break;
    rate /= 1000;
  }
  return `${Math.round(rate)}${units[i]}bit`;
}

/** %g for the small whole numbers sprint_size prints. */
const g = (v: number): string => String(v);

/** sprint_size: `1600b`, `15Kb`, `2Mb`. */
export function fmtSize(sz: number): string {
  const kilo = 1024;
  const mega = kilo * kilo;
  const giga = mega * kilo;
  if (sz >= giga && Math.abs(giga * Math.round(sz / giga) - sz) < 1024) return `${g(Math.round(sz / giga))}Gb`;
  if (sz >= mega && Math.abs(mega * Math.round(sz / mega) - sz) < 1024) return `${g(Math.round(sz / mega))}Mb`;
  if (sz >= kilo && Math.abs(kilo * Math.round(sz / kilo) - sz) < 16) return `${g(Math.round(sz / kilo))}Kb`;
  return `${Math.floor(sz)}b`;
}

/** tc_core.c: one tick is 1/15.625 µs = 64 ns (PSCHED_SHIFT 6). */
const TICK_IN_USEC = 1000 / 64;

/**
 * tc_core.c as iproute2 6.1 (the tc the fixtures come from) has it:
 * tc_core_time2tick and tc_core_tick2time take and return whole numbers,
 * so a burst is cut to whole µs both ways (1600 B at 1 Gbit/s is sent as
 * 187 ticks and shown as `1375b`).
 */
export const psched = {
  hz: 1e9,
  /** tc_calc_xmittime: ticks to send `size` bytes at `rate` bytes/s. */
  xmittime(rate: number, size: number): number {
    const us = Math.min(Math.floor(1e6 * (size / rate)), 0xffffffff);
    return Math.min(Math.floor(us * TICK_IN_USEC), 0xffffffff);
  },
  /** tc_calc_xmitsize: bytes sent in `ticks` at `rate`. */
  xmitsize(rate: number, ticks: number): number {
    return Math.floor((rate * Math.floor(ticks / TICK_IN_USEC)) / 1e6);
  },
  /** PSCHED_TICKS2NS. */
  ticks2ns(ticks: number): number {
    return ticks * 64;
  },
};
