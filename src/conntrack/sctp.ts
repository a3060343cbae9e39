import { getU16, getU32 } from '../wire/bytes.js';
import { crc32c, sctpChecksumWord } from '../wire/crc32c.js';
import { IPS_ASSURED, type CtEntry } from './entry.js';

/**
 * The SCTP tracker, following net/netfilter/nf_conntrack_proto_sctp.c: the
 * sctp_conntracks[] state table driven by the chunk types of each packet,
 * the verification tag checks of RFC 9260 §8.5, and the per-state timeouts.
 * Reads the packet straight from the buffer; nothing allocates per packet.
 */

export const SCTP_CONNTRACK_NONE = 0;
export const SCTP_CONNTRACK_CLOSED = 1;
export const SCTP_CONNTRACK_COOKIE_WAIT = 2;
export const SCTP_CONNTRACK_COOKIE_ECHOED = 3;
export const SCTP_CONNTRACK_ESTABLISHED = 4;
export const SCTP_CONNTRACK_SHUTDOWN_SENT = 5;
export const SCTP_CONNTRACK_SHUTDOWN_RECD = 6;
export const SCTP_CONNTRACK_SHUTDOWN_ACK_SENT = 7;
export const SCTP_CONNTRACK_HEARTBEAT_SENT = 8;
const SCTP_CONNTRACK_MAX = 9;

export const SCTP_STATE_NAMES = ['NONE', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED', 'SHUTDOWN_SENT', 'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT'];

/** The sysctl names of the timeouts, by state (net.netfilter.nf_conntrack_sctp_timeout_*). */
export const SCTP_TIMEOUT_NAMES: [string, number][] = [
  ['closed', SCTP_CONNTRACK_CLOSED],
  ['cookie_wait', SCTP_CONNTRACK_COOKIE_WAIT],
  ['cookie_echoed', SCTP_CONNTRACK_COOKIE_ECHOED],
  ['established', SCTP_CONNTRACK_ESTABLISHED],
  ['shutdown_sent', SCTP_CONNTRACK_SHUTDOWN_SENT],
  ['shutdown_recd', SCTP_CONNTRACK_SHUTDOWN_RECD],
  ['shutdown_ack_sent', SCTP_CONNTRACK_SHUTDOWN_ACK_SENT],
  ['heartbeat_sent', SCTP_CONNTRACK_HEARTBEAT_SENT],
];

/** sctp_timeouts[] in seconds; [0] (a new entry's) is CLOSED's. */
export function defaultSctpTimeouts(t: Float64Array): void {
  t.set([10, 10, 3, 3, 210, 3, 3, 3, 30]);
}

// Chunk types (RFC 9260 §3.2).
const CID_DATA = 0;
const CID_INIT = 1;
const CID_INIT_ACK = 2;
const CID_HEARTBEAT = 4;
const CID_HEARTBEAT_ACK = 5;
const CID_ABORT = 6;
const CID_SHUTDOWN_ACK = 8;
const CID_COOKIE_ECHO = 10;
const CID_COOKIE_ACK = 11;
const CID_SHUTDOWN_COMPLETE = 14;
/** The T bit of ABORT and SHUTDOWN COMPLETE: the tag is the peer's. */
const CHUNK_FLAG_T = 0x01;
const HEARTBEAT_VTAG_FAILED = 1;

/** sctp_new_state's row for a chunk type (-1: the state does not change). */
const ROW = new Int8Array(256).fill(-1);
[1, 2, 6, 7, 8, 9, 10, 11, 14, 4, 5].forEach((cid, i) => (ROW[cid] = i));

const sNO = SCTP_CONNTRACK_NONE;
const sCL = SCTP_CONNTRACK_CLOSED;
const sCW = SCTP_CONNTRACK_COOKIE_WAIT;
const sCE = SCTP_CONNTRACK_COOKIE_ECHOED;
const sES = SCTP_CONNTRACK_ESTABLISHED;
const sSS = SCTP_CONNTRACK_SHUTDOWN_SENT;
const sSR = SCTP_CONNTRACK_SHUTDOWN_RECD;
const sSA = SCTP_CONNTRACK_SHUTDOWN_ACK_SENT;
const sHS = SCTP_CONNTRACK_HEARTBEAT_SENT;
const sIV = SCTP_CONNTRACK_MAX;
void sNO;

/**
 * nf_conntrack_proto_sctp.c: sctp_conntracks[dir][row][state], flattened as
 * (dir * 11 + row) * 9 + state. Rows: init, init_ack, abort, shutdown,
 * shutdown_ack, error, cookie_echo, cookie_ack, shutdown_comp, heartbeat,
 * heartbeat_ack. Columns: sNO sCL sCW sCE sES sSS sSR sSA sHS.
 */
const TABLE = new Uint8Array([
  // ORIGINAL
  sCL, sCL, sCW, sCE, sES, sCL, sCL, sSA, sCW,
  sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL,
  sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  sCL, sCL, sCW, sCE, sSS, sSS, sSR, sSA, sCL,
  sSA, sCL, sCW, sCE, sES, sSA, sSA, sSA, sSA,
  sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL,
  sCL, sCL, sCE, sCE, sES, sSS, sSR, sSA, sCL,
  sCL, sCL, sCW, sES, sES, sSS, sSR, sSA, sCL,
  sCL, sCL, sCW, sCE, sES, sSS, sSR, sCL, sCL,
  sHS, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS,
  sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS,
  // REPLY
  sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sIV,
  sIV, sCW, sCW, sCE, sES, sSS, sSR, sSA, sIV,
  sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sIV,
  sIV, sCL, sCW, sCE, sSR, sSS, sSR, sSA, sIV,
  sIV, sCL, sCW, sCE, sES, sSA, sSA, sSA, sIV,
  sIV, sCL, sCW, sCL, sES, sSS, sSR, sSA, sIV,
  sIV, sCL, sCE, sCE, sES, sSS, sSR, sSA, sIV,
  sIV, sCL, sCW, sES, sES, sSS, sSR, sSA, sIV,
  sIV, sCL, sCW, sCE, sES, sSS, sSR, sCL, sIV,
  sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS,
  sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sES,
]);

function newState(dir: number, cur: number, type: number): number {
  const row = ROW[type];
  return row < 0 ? cur : TABLE[(dir * 11 + row) * 9 + cur];
}

/** ct->proto.sctp */
export class CtSctp {
  /** Verification tags expected in each direction. */
  vtag0 = 0;
  vtag1 = 0;
  /** An INIT was seen from each direction (collision handling). */
  init0 = 0;
  init1 = 0;
  flags = 0;
  lastDir = 0;
}

/** Outcomes besides a timeout in seconds (>= 0). */
export const SCTP_INVALID = -1;
/** Accepted without renewing the timeout. */
export const SCTP_IGNORE = -2;

/** Why the last packet was found invalid by sctpError (the kernel's log text), else ''. */
export let sctpWhy = '';

/**
 * sctp_error: a packet shorter than the common header, or (when `checkCrc`:
 * PREROUTING with nf_conntrack_checksum on) with a wrong CRC32c, is invalid.
 * `len` = bytes from the SCTP header to the end of the datagram.
 */
export function sctpError(b: Uint8Array, l4: number, len: number, checkCrc: boolean): boolean {
  if (len < 12) {
    sctpWhy = 'nf_ct_sctp: short packet ';
    return true;
  }
  if (checkCrc && getU32(b, l4 + 8) !== sctpChecksumWord(crc32c(b, l4, len, l4 + 8))) {
    sctpWhy = 'nf_ct_sctp: bad CRC ';
    return true;
  }
  return false;
}

const bit = (t: number): number => (t < 32 ? 1 << t : 0);

/**
 * do_basic_checks: every chunk has a length; COOKIE ECHO/ACK come first and
 * INIT, INIT ACK and SHUTDOWN COMPLETE alone; at least one chunk. Returns
 * the bitmap of chunk types below 32, or -1 when the checks fail.
 */
function basicChecks(b: Uint8Array, l4: number, end: number): number {
  let map = 0;
  let alone = false;
  let count = 0;
  for (let off = l4 + 12; off + 4 <= end; count++) {
    const type = b[off];
    const clen = getU16(b, off + 2);
    if (type === CID_INIT || type === CID_INIT_ACK || type === CID_SHUTDOWN_COMPLETE) alone = true;
    if (((type === CID_COOKIE_ACK || type === CID_COOKIE_ECHO || alone) && count !== 0) || clen === 0) return -1;
    map |= bit(type);
    off += (clen + 3) & ~3;
  }
  return count === 0 ? -1 : map;
}

/**
 * sctp_new: whether the first packet of a flow may open an entry (every
 * chunk must be one a new association starts with); notes the tags to
 * expect.
 */
function sctpNew(e: CtEntry, b: Uint8Array, l4: number, end: number): boolean {
  const t = e.sctp === null ? (e.sctp = new CtSctp()) : e.sctp;
  t.vtag0 = t.vtag1 = t.init0 = t.init1 = t.flags = t.lastDir = 0;
  const vtag = getU32(b, l4 + 4);
  for (let off = l4 + 12; off + 4 <= end; off += (getU16(b, off + 2) + 3) & ~3) {
    const type = b[off];
    const ns = newState(0, SCTP_CONNTRACK_NONE, type);
    if (ns === SCTP_CONNTRACK_NONE || ns === SCTP_CONNTRACK_MAX) return false;
    if (type === CID_INIT) {
      // RFC 9260 §8.5.1 (A): an INIT carries tag 0; the tag to expect back is its Initiate Tag.
      if (vtag !== 0 || off + 8 + 4 > end) return false;
      t.vtag1 = getU32(b, off + 4);
    } else if (type === CID_HEARTBEAT) t.vtag0 = vtag;
    // Out of the blue (a SHUTDOWN ACK, say): the answer carries the same tag (§8.4 (5), (8)).
    else t.vtag1 = vtag;
  }
  e.state = SCTP_CONNTRACK_NONE;
  return true;
}

/**
 * nf_conntrack_sctp_packet after sctp_error: moves the entry's state for a
 * packet in direction `dir` (`confirmed`: the entry is in the table; a new
 * one is set up here). Returns the timeout in seconds, SCTP_INVALID or
 * SCTP_IGNORE; sets IPS_ASSURED on reaching ESTABLISHED.
 */
export function sctpPacket(e: CtEntry, dir: number, b: Uint8Array, l4: number, len: number, confirmed: boolean, timeouts: Float64Array): number {
  const end = l4 + len;
  const map = basicChecks(b, l4, end);
  if (map < 0) return SCTP_INVALID;
  if (!confirmed) {
    // Out-of-the-blue packets with these chunks are discarded (RFC 9260 §8.4).
    if (map & (bit(CID_ABORT) | bit(CID_SHUTDOWN_COMPLETE) | bit(CID_COOKIE_ACK))) return SCTP_INVALID;
    if (!sctpNew(e, b, l4, end)) return SCTP_INVALID;
  }
  const t = e.sctp!;
  const vtag = getU32(b, l4 + 4);
  const own = dir === 0 ? t.vtag0 : t.vtag1;
  // RFC 9260 §8.5: the tag must be the one expected, but for the chunks of §8.5.1.
  const special = bit(CID_INIT) | bit(CID_SHUTDOWN_COMPLETE) | bit(CID_COOKIE_ECHO) | bit(CID_ABORT) | bit(CID_SHUTDOWN_ACK) | bit(CID_HEARTBEAT) | bit(CID_HEARTBEAT_ACK);
  if ((map & special) === 0 && vtag !== own) return SCTP_INVALID;

  let state = SCTP_CONNTRACK_NONE;
  let ignore = false;
  for (let off = l4 + 12; off + 4 <= end; off += (getU16(b, off + 2) + 3) & ~3) {
    const type = b[off];
    const cflags = b[off + 1];
    const mine = dir === 0 ? t.vtag0 : t.vtag1;
    const peer = dir === 0 ? t.vtag1 : t.vtag0;
    if (type === CID_INIT) {
      // §8.5.1 (A)
      if (vtag !== 0) return SCTP_INVALID;
    } else if (type === CID_ABORT || type === CID_SHUTDOWN_COMPLETE) {
      // §8.5.1 (B), (C): our tag, or the peer's when the T bit is set.
      if (vtag !== (cflags & CHUNK_FLAG_T ? peer : mine)) return SCTP_INVALID;
    } else if (type === CID_COOKIE_ECHO) {
      // §8.5.1 (D)
      if (vtag !== mine) return SCTP_INVALID;
    } else if (type === CID_COOKIE_ACK) {
      t.init0 = t.init1 = 0;
    } else if (type === CID_HEARTBEAT || type === CID_HEARTBEAT_ACK) {
      if (mine === 0) {
        if (dir === 0) t.vtag0 = vtag;
        else t.vtag1 = vtag;
      } else if (vtag !== mine) {
        // A heartbeat with another tag (a path of a restarted association): let it through once,
        // and take the new tags if its ACK comes back the other way.
        if (map & bit(CID_DATA) || ignore) return SCTP_INVALID;
        if (type === CID_HEARTBEAT) {
          t.flags |= HEARTBEAT_VTAG_FAILED;
          t.lastDir = dir;
          ignore = true;
          continue;
        }
        if ((t.flags & HEARTBEAT_VTAG_FAILED) === 0 || t.lastDir === dir) return SCTP_INVALID;
        t.flags &= ~HEARTBEAT_VTAG_FAILED;
        if (dir === 0) {
          t.vtag0 = vtag;
          t.vtag1 = 0;
        } else {
          t.vtag1 = vtag;
          t.vtag0 = 0;
        }
      } else t.flags &= ~HEARTBEAT_VTAG_FAILED;
    }
    const old = e.state;
    state = newState(dir, old, type);
    if (state === SCTP_CONNTRACK_MAX) return SCTP_INVALID;
    if (type === CID_INIT) {
      if (off + 8 + 4 > end) return SCTP_INVALID;
      const tag = getU32(b, off + 4);
      const mineInit = dir === 0 ? t.init0 : t.init1;
      const peerInit = dir === 0 ? t.init1 : t.init0;
      if (mineInit && peerInit) {
        if (dir === 0) t.init1 = 0;
        else t.init0 = 0;
      }
      if (dir === 0) {
        t.init0 = 1;
        t.vtag1 = tag;
      } else {
        t.init1 = 1;
        t.vtag0 = tag;
      }
      // A retransmitted INIT does not renew the timeout (port reuse would keep the entry forever).
      if (state === SCTP_CONNTRACK_CLOSED && old === SCTP_CONNTRACK_CLOSED && confirmed) ignore = true;
    } else if (type === CID_INIT_ACK) {
      if (off + 8 + 4 > end) return SCTP_INVALID;
      const tag = getU32(b, off + 4);
      const expect = dir === 0 ? t.vtag1 : t.vtag0;
      const mineInit = dir === 0 ? t.init0 : t.init1;
      const peerInit = dir === 0 ? t.init1 : t.init0;
      if (!peerInit && expect !== 0 && expect !== tag) return SCTP_INVALID;
      // An INIT collision: the INIT ACK must carry the tag of the INIT it answers.
      if (mineInit && peerInit && expect !== tag) return SCTP_INVALID;
      if (dir === 0) t.vtag1 = tag;
      else t.vtag0 = tag;
    }
    e.state = state;
    if (old !== state && state === SCTP_CONNTRACK_ESTABLISHED) e.status |= IPS_ASSURED;
  }
  if (ignore) return SCTP_IGNORE;
  return timeouts[state];
}

/** sctp_can_early_drop: the shutdown states. */
export function sctpCanEarlyDrop(state: number): boolean {
  return state === SCTP_CONNTRACK_SHUTDOWN_SENT || state === SCTP_CONNTRACK_SHUTDOWN_RECD || state === SCTP_CONNTRACK_SHUTDOWN_ACK_SENT;
}
