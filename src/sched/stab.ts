/**
 * Size tables (`tc qdisc add ... stab [mtu B] [tsize N] [mpu B] [overhead B]
 * [linklayer ethernet|atm|adsl] KIND ...`): the length a qdisc and its
 * children account for each packet, so shapers can count what the link below
 * really carries (an ATM cell tax, a PPPoE header).
 *
 * tc builds the table (tc_stab.c parse_size_table, tc_core.c
 * tc_calc_size_table): without ATM and without mpu it is only an overhead;
 * otherwise `tsize` slots of 2^cell_log bytes each, slot i holding the
 * adjusted size of (i + 1) << cell_log bytes (mpu, then whole 53-byte cells
 * of 48 payload bytes for ATM), scaled down by size_log to fit 16 bits. The
 * kernel looks a length up in it (sch_api.c __qdisc_calculate_pkt_len).
 */
import { TcParseError } from './qdisc.js';
import { getInteger, getU32 } from './units.js';

/** include/uapi/linux/pkt_sched.h enum tc_link_layer. */
export const LINKLAYER_UNSPEC = 0;
export const LINKLAYER_ETHERNET = 1;
export const LINKLAYER_ATM = 2;

/** tc_core.c get_linklayer: `ethernet`, `atm`, `adsl` (abbreviations too); null if unknown. */
export function getLinklayer(s: string): number | null {
  const m = (w: string): boolean => s.length > 0 && s.length <= w.length && w.startsWith(s);
  if (m('ethernet')) return LINKLAYER_ETHERNET;
  if (m('atm') || m('adsl')) return LINKLAYER_ATM;
  return null;
}

/** tc_util.c sprint_linklayer. */
export function linklayerName(l: number): string {
  if (l === LINKLAYER_UNSPEC) return 'unspec';
  if (l === LINKLAYER_ETHERNET) return 'ethernet';
  if (l === LINKLAYER_ATM) return 'atm';
  return 'unknown';
}

/** tc_core.c tc_align_to_atm: whole cells of 48 payload bytes, 53 on the wire. */
export function alignToAtm(size: number): number {
  return Math.ceil(size / 48) * 53;
}

/**
 * The length a rate is charged for (psched_l2t_ns): `overhead` added, at
 * least `mpu`, and on ATM whole 53-byte cells of 48 payload bytes.
 */
export function rateLen(len: number, overhead: number, mpu: number, linklayer: number): number {
  len += overhead;
  if (len < mpu) len = mpu;
  return linklayer === LINKLAYER_ATM ? Math.ceil(len / 48) * 53 : len;
}

/** struct tc_sizespec as tc sends it. */
export interface SizeSpec {
  linklayer: number;
  overhead: number;
  mpu: number;
  mtu: number;
  tsize: number;
  cellLog: number;
  sizeLog: number;
  cellAlign: number;
}

export class SizeTable {
  constructor(
    readonly spec: SizeSpec,
    readonly data: Uint16Array | null,
  ) {}

  /** __qdisc_calculate_pkt_len. */
  pktLen(len: number): number {
    const s = this.spec;
    let pktLen = len + s.overhead;
    if (s.tsize !== 0 && this.data !== null) {
      let slot = pktLen + s.cellAlign;
      if (slot < 0) slot = 0;
      slot >>= s.cellLog;
      if (slot < s.tsize) pktLen = this.data[slot];
      else pktLen = this.data[s.tsize - 1] * Math.floor(slot / s.tsize) + this.data[slot % s.tsize];
      pktLen *= 2 ** s.sizeLog;
    }
    return pktLen < 1 ? 1 : pktLen;
  }

  /** tc_stab.c print_size_table (the `tc -d qdisc show` line after the options). */
  print(): string {
    const s = this.spec;
    let out = ' ';
    if (s.linklayer) out += `linklayer ${linklayerName(s.linklayer)} `;
    if (s.overhead) out += `overhead ${s.overhead} `;
    if (s.mpu) out += `mpu ${s.mpu} `;
    if (s.mtu) out += `mtu ${s.mtu} `;
    if (s.tsize) out += `tsize ${s.tsize} `;
    return out;
  }

  json(): Record<string, unknown> {
    const s = this.spec;
    const o: Record<string, unknown> = {};
    if (s.linklayer) o.linklayer = linklayerName(s.linklayer);
    if (s.overhead) o.overhead = s.overhead;
    if (s.mpu) o.mpu = s.mpu;
    if (s.mtu) o.mtu = s.mtu;
    if (s.tsize) o.tsize = s.tsize;
    return o;
  }
}

const incomplete = (): TcParseError => new TcParseError('Command line is not complete. Try option "help"', 255);

export const STAB_USAGE =
  'Usage: ... stab [ mtu BYTES ] [ tsize SLOTS ] [ mpu BYTES ]\n' +
  '                [ overhead BYTES ] [ linklayer TYPE ] ...\n' +
  '   mtu       : max packet size we create rate map for {2047}\n' +
  '   tsize     : how many slots should size table have {512}\n' +
  '   mpu       : minimum packet size used in rate computations\n' +
  '   overhead  : per-packet size overhead used in rate computations\n' +
  '   linklayer : adapting to a linklayer e.g. atm\n' +
  'Example: ... stab overhead 20 linklayer atm\n';

/**
 * tc_stab.c parse_size_table from args[i] (the word after `stab`): the spec
 * and the index of the first word that is not a stab option.
 */
export function parseStab(args: string[], i: number): { spec: SizeSpec; next: number } {
  const s: SizeSpec = { linklayer: 0, overhead: 0, mpu: 0, mtu: 0, tsize: 0, cellLog: 0, sizeLog: 0, cellAlign: 0 };
  if (i >= args.length) throw incomplete();
  const m = (a: string, w: string): boolean => a.length > 0 && a.length <= w.length && w.startsWith(a);
  // duparg()/invarg() exit 255 (lib/utils.c).
  const dup = (k: string, v: string): never => {
    throw new TcParseError(`Error: duplicate "${k}": "${v}" is the second value.`, 255);
  };
  // invarg(MSG, ARG) is called here as invarg("mtu", "invalid mtu"): the words come out swapped.
  const inv = (what: string, key: string): never => {
    throw new TcParseError(`Error: argument "${what}" is wrong: ${key}`, 255);
  };
  // parse_size_table returns -1 and tc_qdisc_modify passes it on: tc exits 255.
  if (m(args[i], 'help')) throw new TcParseError(STAB_USAGE.trimEnd(), 255);
  for (; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      if (++i >= args.length) throw incomplete();
      return args[i];
    };
    if (m(a, 'mtu')) {
      const v = next();
      if (s.mtu) dup('mtu', v);
      const n = getU32(v, 10);
      if (n === null) inv('invalid mtu', 'mtu');
      s.mtu = n!;
    } else if (m(a, 'mpu')) {
      const v = next();
      if (s.mpu) dup('mpu', v);
      const n = getU32(v, 10);
      if (n === null) inv('invalid mpu', 'mpu');
      s.mpu = n!;
    } else if (m(a, 'overhead')) {
      const v = next();
      if (s.overhead) dup('overhead', v);
      const n = getInteger(v, 10);
      if (n === null || n < -0x80000000 || n > 0x7fffffff) inv('invalid overhead', 'overhead');
      s.overhead = n!;
    } else if (m(a, 'tsize')) {
      const v = next();
      if (s.tsize) dup('tsize', v);
      const n = getU32(v, 10);
      if (n === null) inv('invalid table size', 'tsize');
      s.tsize = n!;
    } else if (m(a, 'linklayer')) {
      const v = next();
      if (s.linklayer !== LINKLAYER_UNSPEC) dup('linklayer', v);
      const l = getLinklayer(v);
      if (l === null) inv('invalid linklayer', 'linklayer');
      s.linklayer = l!;
    } else break;
  }
  // check_size_table_opts: nothing given is refused (tc exits 1 without a message).
  if (!(s.linklayer >= LINKLAYER_ETHERNET || s.mpu !== 0 || s.overhead !== 0)) throw new TcParseError('', 255);
  return { spec: s, next: i };
}

/** tc_core.c tc_calc_size_table, then the kernel's checks (sch_api.c qdisc_get_stab). */
export function buildStab(s: SizeSpec): SizeTable {
  if (s.linklayer <= LINKLAYER_ETHERNET && s.mpu === 0) {
    // Only an overhead: no table.
    s.mtu = 0;
    s.tsize = 0;
    s.cellLog = 0;
    s.cellAlign = 0;
    return new SizeTable(s, null);
  }
  if (s.mtu === 0) s.mtu = 2047;
  if (s.tsize === 0) s.tsize = 512;
  if (s.tsize > 0xffff) throw new TcParseError('Error: Invalid size of size table.', 2);
  s.cellLog = 0;
  while (s.mtu >>> s.cellLog > s.tsize - 1) s.cellLog++;
  const data = new Uint16Array(s.tsize);
  for (;;) {
    let fits = true;
    for (let i = s.tsize - 1; i >= 0; i--) {
      let sz = (i + 1) * 2 ** s.cellLog;
      if (sz < s.mpu) sz = s.mpu;
      if (s.linklayer === LINKLAYER_ATM) sz = alignToAtm(sz);
      const v = Math.floor(sz / 2 ** s.sizeLog);
      if (v > 0xffff) {
        s.sizeLog++;
        fits = false;
        break;
      }
      data[i] = v;
    }
    if (fits) break;
  }
  s.cellAlign = -1;
  return new SizeTable(s, data);
}
