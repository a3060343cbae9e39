/**
 * tc's units: how `tc` reads rates, sizes and times on its command line, and
 * how iproute2 prints them (lib/utils_math.c, lib/utils.c, lib/json_print*.c,
 * tc/tc_core.c of iproute2 6.1, the version this project's fixtures come from).
 *
 * Rates are bytes per second (as the kernel keeps them), sizes bytes, times µs
 * (TIME_UNITS_PER_SEC) or ns (the 64-bit times). The parsers return null where
 * iproute2's return -1.
 */

/** C's strtod on a prefix (hexadecimal too): the number read and where it stopped (end = 0: nothing read). */
export function strtod(s: string): { value: number; end: number } {
  const m = /^\s*[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)/i.exec(s);
  if (m === null) return { value: 0, end: 0 };
  const t = m[0].trim().toLowerCase();
  const sign = t.startsWith('-') ? -1 : 1;
  let v: number;
  if (/^[+-]?0x/.test(t)) v = sign * parseInt(t.replace(/^[+-]/, ''), 16);
  else if (t.endsWith('inf') || t.endsWith('infinity')) v = sign * Infinity;
  else if (t.endsWith('nan')) v = NaN;
  else v = Number(t);
  return { value: v, end: m[0].length };
}

// lib/utils_math.c: the rate suffixes, matched without regard to case, in this order.
const RATE_SUFFIXES: [string, number][] = [
  ['bit', 1],
  ['kibit', 1024],
  ['kbit', 1000],
  ['mibit', 1024 * 1024],
  ['mbit', 1000000],
  ['gibit', 1024 * 1024 * 1024],
  ['gbit', 1000000000],
  ['tibit', 1024 * 1024 * 1024 * 1024],
  ['tbit', 1000000000000],
  ['bps', 8],
  ['kibps', 8 * 1024],
  ['kbps', 8000],
  ['mibps', 8 * 1024 * 1024],
  ['mbps', 8000000],
  ['gibps', 8 * 1024 * 1024 * 1024],
  ['gbps', 8000000000],
  ['tibps', 8 * 1024 * 1024 * 1024 * 1024],
  ['tbps', 8000000000000],
];

function rateBytes(str: string): number | null {
  const { value, end } = strtod(str);
  if (end === 0 || !(value >= 0) || value === Infinity) return null;
  let bps = value;
  const rest = str.slice(end);
  if (rest !== '') {
    const suf = RATE_SUFFIXES.find(([n]) => n === rest.toLowerCase());
    if (suf === undefined) return null; // unknown suffix
    bps *= suf[1];
  }
  return bps / 8;
}

/** get_rate: a 32-bit rate in bytes/s ("a bare rate is bit/s"); null when it does not parse or overflows. */
export function getRate(str: string): number | null {
  const b = rateBytes(str);
  if (b === null) return null;
  const r = Math.floor(b) >>> 0;
  return r === Math.floor(b) ? r : null;
}

/** get_rate64: a 64-bit rate in bytes/s (truncated as the C cast truncates). */
export function getRate64(str: string): number | null {
  const b = rateBytes(str);
  if (b === null) return null;
  return Math.floor(b);
}

/** get_size64: bytes; k/kb = 1024, m/mb, g/gb; kbit/mbit/gbit as sizes are /8 of the binary units. */
export function getSize64(str: string): number | null {
  const { value, end } = strtod(str);
  if (end === 0 || !(value >= 0) || value === Infinity) return null;
  let sz = value;
  const p = str.slice(end).toLowerCase();
  if (p !== '') {
    if (p === 'kb' || p === 'k') sz *= 1024;
    else if (p === 'gb' || p === 'g') sz *= 1024 * 1024 * 1024;
    else if (p === 'gbit') sz *= (1024 * 1024 * 1024) / 8;
    else if (p === 'mb' || p === 'm') sz *= 1024 * 1024;
    else if (p === 'mbit') sz *= (1024 * 1024) / 8;
    else if (p === 'kbit') sz *= 1024 / 8;
    else if (p !== 'b') return null;
  }
  // An overflow of the u64 shows as a value that is not its own floor.
  if (sz >= 2 ** 64) return null;
  return Math.floor(sz);
}

/** get_size: as getSize64, at most 2^32 - 1. */
export function getSize(str: string): number | null {
  const s = getSize64(str);
  if (s === null || s > 0xffffffff) return null;
  return s;
}

/** get_size_and_cell: `SIZE[/CELL]`, CELL a power of two; the cell's log or -1 when absent. */
export function getSizeAndCell(str: string): { size: number; cellLog: number } | null {
  const slash = str.indexOf('/');
  const size = getSize(slash < 0 ? str : str.slice(0, slash));
  if (size === null) return null;
  if (slash < 0) return { size, cellLog: -1 };
  const cell = getInteger(str.slice(slash + 1));
  if (cell === null) return null;
  for (let i = 0; i < 32; i++) if (2 ** i === cell) return { size, cellLog: i };
  return null;
}

/** get_time: µs; a bare number is µs; s/sec/secs, ms/msec/msecs, us/usec/usecs. */
export function getTime(str: string): number | null {
  const { value, end } = strtod(str);
  if (end === 0 || !(value >= 0) || value === Infinity) return null;
  let t = value;
  const p = str.slice(end).toLowerCase();
  if (p !== '') {
    if (p === 's' || p === 'sec' || p === 'secs') t *= 1000000;
    else if (p === 'ms' || p === 'msec' || p === 'msecs') t *= 1000;
    else if (p === 'us' || p === 'usec' || p === 'usecs') t *= 1;
    else return null;
  }
  return Math.floor(t) >>> 0;
}

/** get_time64: ns; as getTime with ns/nsec/nsecs too, a bare number is ns. */
export function getTime64(str: string): number | null {
  const { value, end } = strtod(str);
  if (end === 0 || !(value >= 0) || value === Infinity) return null;
  let t = value;
  const p = str.slice(end).toLowerCase();
  if (p !== '') {
    if (p === 's' || p === 'sec' || p === 'secs') t *= 1e9;
    else if (p === 'ms' || p === 'msec' || p === 'msecs') t *= 1e6;
    else if (p === 'us' || p === 'usec' || p === 'usecs') t *= 1e3;
    else if (p !== 'ns' && p !== 'nsec' && p !== 'nsecs') return null;
  }
  return Math.floor(t);
}

/** strtol(str, &end, base) accepting the whole string (get_integer/get_unsigned/get_u32). */
export function getInteger(str: string, base = 0): number | null {
  const s = str.trim();
  let m: RegExpExecArray | null;
  let v: number;
  if ((base === 0 || base === 16) && (m = /^([+-]?)0x([0-9a-f]+)$/i.exec(s)) !== null) v = parseInt(m[2], 16) * (m[1] === '-' ? -1 : 1);
  else if (base === 16 && (m = /^([+-]?)([0-9a-f]+)$/i.exec(s)) !== null) v = parseInt(m[2], 16) * (m[1] === '-' ? -1 : 1);
  else if (base === 0 && (m = /^([+-]?)0([0-7]+)$/.exec(s)) !== null) v = parseInt(m[2], 8) * (m[1] === '-' ? -1 : 1);
  else if ((m = /^[+-]?\d+$/.exec(s)) !== null) v = Number(s);
  else return null;
  return v;
}

/** get_unsigned / get_u32: a whole number 0..2^32-1. */
export function getU32(str: string, base = 0): number | null {
  const v = getInteger(str, base);
  if (v === null || v < 0 || v > 0xffffffff) return null;
  return v;
}

// ---- printing ----

/** C's printf("%.{p}g"). */
export function fmtG(x: number, p = 6): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x < 0 ? '-inf' : 'inf';
  if (p === 0) p = 1;
  const e = Number(x.toExponential(p - 1).split('e')[1]);
  let s: string;
  if (e < -4 || e >= p) {
    const [mant, ex] = x.toExponential(p - 1).split('e');
    const n = Number(ex);
    s = `${stripZeros(mant)}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  } else {
    s = stripZeros(x.toFixed(Math.max(0, p - 1 - e)));
  }
  return s;
}

function stripZeros(s: string): string {
  if (!s.includes('.')) return s;
  return s.replace(/\.?0+$/, '');
}

/** print_rate (SI units, not -iec): bytes/s → `10Mbit`, `1500Kbit`, `64Kbit`, `999bit`. */
export function sprintRate(bytesPerSec: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let rate = BigInt(Math.floor(bytesPerSec)) << 3n;
  const kilo = 1000n;
  let i = 0;
  for (; i < units.length - 1; i++) {
    if (rate < kilo) break;
    if (rate % kilo !== 0n && rate < 1000n * kilo) break;
    rate /= kilo;
  }
  return `${rate}${units[i]}bit`;
}

/** sprint_size (iproute2 6.1, __u32): `1514b`, `4Kb`, `2Mb`. */
export function sprintSize(sz: number): string {
  const size = Math.floor(sz) >>> 0;
  const kilo = 1024;
  const mega = kilo * kilo;
  if (size >= mega && Math.abs(mega * rint(size / mega) - size) < 1024) return `${fmtG(rint(size / mega))}Mb`;
  if (size >= kilo && Math.abs(kilo * rint(size / kilo) - size) < 16) return `${fmtG(rint(size / kilo))}Kb`;
  return `${size}b`;
}

/** C's rint (round half to even). */
export function rint(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** sprint_time: µs (a __u32) → `50ms`, `1s`, `1.5ms`, `800us`. */
export function sprintTime(us: number): string {
  const time = Math.floor(us) >>> 0;
  if (time >= 1000000) return `${fmtG(time / 1000000, 3)}s`;
  if (time >= 1000) return `${fmtG(time / 1000, 3)}ms`;
  return `${time}us`;
}

/** sprint_time64: ns → `5ms`, `100us`, `800ns`. */
export function sprintTime64(ns: number): string {
  const t = Math.floor(ns);
  if (t >= 1e9) return `${fmtG(t / 1e9, 3)}s`;
  if (t >= 1e6) return `${fmtG(t / 1e6, 3)}ms`;
  if (t >= 1e3) return `${fmtG(t / 1e3, 3)}us`;
  return `${t}ns`;
}

// ---- tc_core.c: psched ticks ----

/**
 * Ticks per µs as tc_core_init computes it from /proc/net/psched (1000 ns per
 * µs, 64 ns per tick, clock_res 1e6): a psched tick is 64 ns (PSCHED_SHIFT 6).
 */
export const TICK_IN_USEC = 1000 / 64;
/** PSCHED_SHIFT: the kernel keeps times in ns and hands tc ticks of 2^6 ns. */
export const PSCHED_SHIFT = 6;

/** tc_core_time2tick (iproute2 6.1, unsigned): µs → ticks, truncated. */
export function time2tick(us: number): number {
  return u32(Math.floor(u32(us) * TICK_IN_USEC));
}

/** tc_core_tick2time (iproute2 6.1, unsigned): ticks → whole µs. */
export function tick2time(ticks: number): number {
  return u32(Math.floor(u32(ticks) / TICK_IN_USEC));
}

/** tc_calc_xmittime (6.1): ticks to send `size` bytes at `rate` bytes/s; the µs are truncated first. */
export function calcXmitTime(rate: number, size: number): number {
  return time2tick(Math.floor(1000000 * (u32(size) / rate)));
}

/** tc_calc_xmitsize (6.1): bytes sent at `rate` in `ticks`, truncated to 32 bits. */
export function calcXmitSize(rate: number, ticks: number): number {
  return u32(Math.floor((rate * tick2time(ticks)) / 1000000));
}

/** A double stored into a C unsigned int (values past 2^32 wrap as x86 does for in-range u64). */
function u32(x: number): number {
  return x >= 0 && x < 4294967296 ? Math.floor(x) : Number(BigInt.asUintN(32, BigInt(Math.floor(Math.max(0, x)))));
}

/**
 * tc_util.c get_percent_rate64: `N%` of the device's speed (its
 * /sys/class/net/DEV/speed in Mbit/s, null when the link has none, as a
 * device that is down); bytes/s, or the lines tc prints before the kind's
 * own complaint.
 */
export function getPercentRate64(str: string, devName: string, speedMbit: number | null | undefined): { rate: number } | { error: string } {
  if (devName === '') return { error: 'No device specified; specify device to rate limit by percentage' };
  const file = `/sys/class/net/${devName}/speed`;
  // undefined: no such device (read_prop's fopen fails).
  if (speedMbit === undefined) return { error: `fopen ${file}: No such file or directory` };
  if (speedMbit === null) return { error: `property "speed" in file ${file} is currently unknown\nFailed to parse ${file}` };
  // sscanf("%m[0-9.%]"), then parse_percent on what it took.
  const m = /^[0-9.%]+/.exec(str);
  const malformed = { error: 'Specified rate value could not be read or is malformed' };
  if (m === null) return malformed;
  const { value, end } = strtod(m[0]);
  const perc = value / 100;
  if (perc > 1 || perc < 0) return { error: `Invalid rate specified; should be between [0,100]% but is ${str}` };
  const rest = m[0].slice(end);
  if (rest !== '' && rest !== '%') return malformed;
  // snprintf("%lf") of the bits, then get_rate64 of that text.
  const bits = perc * speedMbit * 1000 * 1000;
  const r = getRate64(bits.toFixed(6));
  return r === null ? malformed : { rate: r };
}
