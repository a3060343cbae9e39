/**
 * The number formats that the classless AQM and netem kinds read and print,
 * as iproute2 does (lib/utils.c get_time/get_time64/print_time/print_time64,
 * lib/utils_math.c get_size/get_rate64, lib/json_print_math.c sprint_size,
 * lib/json_print.c print_color_rate, tc/tc_util.c parse_percent).
 */
import { TcParseError } from './qdisc.js';

/** C's strtod on a prefix of `s`: the value and how many characters it used (0 if none). */
export function strtod(s: string): [number, number] {
  const m = /^\s*[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)/i.exec(s);
  if (m === null) return [0, 0];
  const t = m[0].trim();
  let v: number;
  if (/^[+-]?0x/i.test(t)) v = (t[0] === '-' ? -1 : 1) * parseInt(t.replace(/^[+-]/, ''), 16);
  else if (/inf/i.test(t)) v = t[0] === '-' ? -Infinity : Infinity;
  else if (/nan/i.test(t)) v = NaN;
  else v = Number(t);
  return [v, m[0].length];
}

/** C's strtoul with base 0 over the whole string (get_unsigned, get_u32): null if it does not parse or is over 32 bits. */
export function getU32(s: string): number | null {
  const m = /^\s*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(s);
  if (m === null) return null;
  const t = m[1];
  const v = /^0[xX]/.test(t) ? parseInt(t, 16) : t.length > 1 && t[0] === '0' ? parseInt(t, 8) : Number(t);
  return v > 0xffffffff ? null : v;
}

/** get_integer (base 0): a signed int. */
export function getS32(s: string): number | null {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(s);
  if (m === null) return null;
  const t = m[2];
  let v = /^0[xX]/.test(t) ? parseInt(t, 16) : t.length > 1 && t[0] === '0' ? parseInt(t, 8) : Number(t);
  if (m[1] === '-') v = -v;
  return v < -0x80000000 || v > 0x7fffffff ? null : v;
}

/** get_time: µs (TIME_UNITS_PER_SEC = 1e6); a bare number is µs. */
export function getTime(s: string): number | null {
  const [t0, n] = strtod(s);
  if (n === 0 || !(t0 >= 0) || t0 === Infinity) return null;
  const suf = s.slice(n).toLowerCase();
  let t = t0;
  if (suf === '') t *= 1;
  else if (suf === 's' || suf === 'sec' || suf === 'secs') t *= 1e6;
  else if (suf === 'ms' || suf === 'msec' || suf === 'msecs') t *= 1e3;
  else if (suf === 'us' || suf === 'usec' || suf === 'usecs') t *= 1;
  else return null;
  return Math.trunc(t) >>> 0;
}

/** get_time64: ns; a bare number is ns. */
export function getTime64(s: string): number | null {
  const [t0, n] = strtod(s);
  if (n === 0 || !(t0 >= 0) || t0 === Infinity) return null;
  const suf = s.slice(n).toLowerCase();
  let t = t0;
  if (suf === 's' || suf === 'sec' || suf === 'secs') t *= 1e9;
  else if (suf === 'ms' || suf === 'msec' || suf === 'msecs') t *= 1e6;
  else if (suf === 'us' || suf === 'usec' || suf === 'usecs') t *= 1e3;
  else if (suf !== '' && suf !== 'ns' && suf !== 'nsec' && suf !== 'nsecs') return null;
  return Math.trunc(t);
}

/** get_size: bytes; `k`/`kb` 1024, `kbit` 128, `m`/`mb`, `mbit`, `g`/`gb`, `gbit`, `b`. */
export function getSize(s: string): number | null {
  const [sz0, n] = strtod(s);
  if (n === 0 || !(sz0 >= 0) || sz0 === Infinity) return null;
  const suf = s.slice(n).toLowerCase();
  let sz = sz0;
  if (suf === 'kb' || suf === 'k') sz *= 1024;
  else if (suf === 'gb' || suf === 'g') sz *= 1024 * 1024 * 1024;
  else if (suf === 'gbit') sz *= (1024 * 1024 * 1024) / 8;
  else if (suf === 'mb' || suf === 'm') sz *= 1024 * 1024;
  else if (suf === 'mbit') sz *= (1024 * 1024) / 8;
  else if (suf === 'kbit') sz *= 1024 / 8;
  else if (suf !== '' && suf !== 'b') return null;
  const v = Math.trunc(sz);
  if (v !== Math.floor(sz) || v > 0xffffffff) return null;
  return v;
}

const RATE_SUFFIXES: [string, number][] = [
  ['bit', 1], ['kibit', 1024], ['kbit', 1000], ['mibit', 1024 * 1024], ['mbit', 1e6],
  ['gibit', 1024 ** 3], ['gbit', 1e9], ['tibit', 1024 ** 4], ['tbit', 1e12],
  ['bps', 8], ['kibps', 8 * 1024], ['kbps', 8000], ['mibps', 8 * 1024 * 1024], ['mbps', 8e6],
  ['gibps', 8 * 1024 ** 3], ['gbps', 8e9], ['tibps', 8 * 1024 ** 4], ['tbps', 8e12],
];

/** get_rate64: bytes per second; a bare number is bit/s. */
export function getRate64(s: string): number | null {
  const [b0, n] = strtod(s);
  if (n === 0 || !(b0 >= 0) || b0 === Infinity) return null;
  const suf = s.slice(n).toLowerCase();
  let bps = b0;
  if (suf !== '') {
    const e = RATE_SUFFIXES.find((x) => x[0] === suf);
    if (e === undefined) return null;
    bps *= e[1];
  }
  return Math.trunc(bps / 8);
}

/** parse_percent: a fraction 0..1 ("5%" or "5"), or null. */
export function parsePercent(s: string): number | null {
  const [v, n] = strtod(s);
  const val = v / 100;
  if (!(val <= 1 && val >= 0)) return null;
  const rest = s.slice(n);
  if (rest !== '' && rest !== '%') return null;
  return val;
}

/** C's printf("%.Pg"). */
export function fmtG(v: number, prec = 6): string {
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : v < 0 ? '-inf' : 'nan';
  const p = prec === 0 ? 1 : prec;
  const e = Number(v.toExponential(p - 1).split('e')[1]);
  let s: string;
  if (e < -4 || e >= p) {
    const [m, ex] = v.toExponential(p - 1).split('e');
    const mm = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
    const en = Number(ex);
    s = `${mm}e${en < 0 ? '-' : '+'}${String(Math.abs(en)).padStart(2, '0')}`;
  } else {
    s = v.toFixed(Math.max(0, p - 1 - e));
    if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  }
  return s;
}

/** sprint_time: `t` in µs. */
export function sprintTime(t: number): string {
  if (t >= 1e6) return `${fmtG(t / 1e6, 3)}s`;
  if (t >= 1e3) return `${fmtG(t / 1e3, 3)}ms`;
  return `${t >>> 0}us`;
}

/** sprint_time64: `t` in ns. */
export function sprintTime64(t: number): string {
  if (t >= 1e9) return `${fmtG(t / 1e9, 3)}s`;
  if (t >= 1e6) return `${fmtG(t / 1e6, 3)}ms`;
  if (t >= 1e3) return `${fmtG(t / 1e3, 3)}us`;
  return `${Math.trunc(t)}ns`;
}

/** sprint_size: bytes as `32Mb`, `4Kb`, `1514b`. */
export function sprintSize(sz: number): string {
  const kilo = 1024;
  const mega = kilo * kilo;
  const giga = mega * kilo;
  if (sz >= giga && Math.abs(giga * Math.round(sz / giga) - sz) < 1024) return `${fmtG(Math.round(sz / giga))}Gb`;
  if (sz >= mega && Math.abs(mega * Math.round(sz / mega) - sz) < 1024) return `${fmtG(Math.round(sz / mega))}Mb`;
  if (sz >= kilo && Math.abs(kilo * Math.round(sz / kilo) - sz) < 16) return `${fmtG(Math.round(sz / kilo))}Kb`;
  return `${sz}b`;
}

/** print_rate (SI units): `rate` in bytes per second, printed in bit/s as `10Mbit`. */
export function sprintRate(rateBytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let rate = BigInt(Math.trunc(rateBytes)) * 8n;
  const kilo = 1000n;
  let i = 0;
  for (; i < units.length - 1; i++) {
    if (rate < kilo) break;
    if (rate % kilo !== 0n && rate < 1000n * kilo) break;
    rate /= kilo;
  }
  return `${rate}${units[i]}bit`;
}

/** NEXT_ARG() with nothing left: tc's incomplete_command(), exit 255. */
export function incomplete(): TcParseError {
  return new TcParseError('Command line is not complete. Try option "help"', 255);
}

/** A kind's parse_qopt returned -1 after printing `msg`: tc exits 1. */
export function illegal(msg: string): TcParseError {
  return new TcParseError(msg, 1);
}
