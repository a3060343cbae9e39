/**
 * The number formats that the classless AQM and netem kinds read and print:
 * tc's units (units.ts) under the names these kinds use, plus what only they
 * need (tc/tc_util.c parse_percent, get_integer's signed range, and the two
 * ways a kind's parse_qopt fails).
 */
import { TcParseError } from './qdisc.js';
import { getInteger, strtod } from './units.js';

export { fmtG, getRate64, getSize, getTime, getTime64, getU32, sprintRate, sprintSize, sprintTime, sprintTime64 } from './units.js';

/** get_integer (base 0): a signed int. */
export function getS32(s: string): number | null {
  const v = getInteger(s);
  return v === null || v < -0x80000000 || v > 0x7fffffff ? null : v;
}

/** parse_percent: a fraction 0..1 ("5%" or "5"), or null. */
export function parsePercent(s: string): number | null {
  const { value, end } = strtod(s);
  const val = value / 100;
  if (!(val <= 1 && val >= 0)) return null;
  const rest = s.slice(end);
  if (rest !== '' && rest !== '%') return null;
  return val;
}

/** NEXT_ARG() with nothing left: tc's incomplete_command(), exit 255. */
export function incomplete(): TcParseError {
  return new TcParseError('Command line is not complete. Try option "help"', 255);
}

/** A kind's parse_qopt returned -1 after printing `msg`: tc exits 1. */
export function illegal(msg: string): TcParseError {
  return new TcParseError(msg, 1);
}
