import { getU16, getU32 } from '../wire/bytes.js';
import {
  CT_DIR_ORIGINAL,
  CT_DIR_REPLY,
  CtTcp,
  IPS_ASSURED,
  IPS_SEEN_REPLY,
  IP_CT_EXP_CHALLENGE_ACK,
  IP_CT_TCP_FLAG_BE_LIBERAL,
  IP_CT_TCP_FLAG_CLOSE_INIT,
  IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
  IP_CT_TCP_FLAG_MAXACK_SET,
  IP_CT_TCP_FLAG_SACK_PERM,
  IP_CT_TCP_FLAG_WINDOW_SCALE,
  IP_CT_TCP_SIMULTANEOUS_OPEN,
  TCP_CONNTRACK_CLOSE,
  TCP_CONNTRACK_CLOSE_WAIT,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_FIN_WAIT,
  TCP_CONNTRACK_LAST_ACK,
  TCP_CONNTRACK_NONE,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_SYN_SENT2,
  TCP_CONNTRACK_TIME_WAIT,
  type CtEntry,
  type CtTcpSide,
} from './entry.js';

/**
 * The TCP tracker, following net/netfilter/nf_conntrack_proto_tcp.c: the
 * tcp_conntracks[] state table, window tracking (tcp_in_window), tcp_error's
 * checks and the per-state timeouts. Everything reads the segment straight
 * from the buffer; nothing allocates.
 */

/** Beyond the states: TCP_CONNTRACK_MAX (invalid), _IGNORE, and the two extra timeouts. */
export const TCP_CONNTRACK_MAX = 10;
export const TCP_CONNTRACK_IGNORE = 11;
/** Indices of the retrans and unacknowledged timeouts in the timeout table. */
export const TCP_CONNTRACK_RETRANS = 10;
export const TCP_CONNTRACK_UNACK = 11;

export const TCP_STATE_NAMES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];

// enum tcp_bit_set
const TCP_SYN_SET = 0;
const TCP_SYNACK_SET = 1;
const TCP_FIN_SET = 2;
const TCP_ACK_SET = 3;
const TCP_RST_SET = 4;
const TCP_NONE_SET = 5;

const sNO = TCP_CONNTRACK_NONE;
const sSS = TCP_CONNTRACK_SYN_SENT;
const sSR = TCP_CONNTRACK_SYN_RECV;
const sES = TCP_CONNTRACK_ESTABLISHED;
const sFW = TCP_CONNTRACK_FIN_WAIT;
const sCW = TCP_CONNTRACK_CLOSE_WAIT;
const sLA = TCP_CONNTRACK_LAST_ACK;
const sTW = TCP_CONNTRACK_TIME_WAIT;
const sCL = TCP_CONNTRACK_CLOSE;
const sS2 = TCP_CONNTRACK_SYN_SENT2;
const sIV = TCP_CONNTRACK_MAX;
const sIG = TCP_CONNTRACK_IGNORE;
void sNO;

/**
 * nf_conntrack_proto_tcp.c: tcp_conntracks[dir][index][state], flattened as
 * (dir * 6 + index) * 10 + state. Columns: sNO sSS sSR sES sFW sCW sLA sTW sCL sS2.
 */
const TABLE = new Uint8Array([
  // ORIGINAL
  /* syn    */ sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2,
  /* synack */ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR,
  /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /* ack    */ sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV,
  /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
  // REPLY
  /* syn    */ sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2,
  /* synack */ sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR,
  /* fin    */ sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV,
  /* ack    */ sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG,
  /* rst    */ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL,
  /* none   */ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV,
]);

/** tcp_valid_flags[]: FIN/SYN/RST/ACK/URG combinations tcp_error lets through (PSH, ECE, CWR always may be set). */
const VALID_FLAGS = new Uint8Array(0x40);
for (const f of [0x02, 0x22, 0x12, 0x04, 0x14, 0x11, 0x31, 0x10, 0x30]) VALID_FLAGS[f] = 1;

/** TCP's knobs (net.netfilter.nf_conntrack_tcp_*). */
export interface TcpCtSettings {
  /** Seconds, indexed by TCP_CONNTRACK_* state, RETRANS (10) and UNACK (11). */
  readonly tcpTimeouts: Float64Array;
  tcpBeLiberal: number;
  tcpLoose: number;
  tcpMaxRetrans: number;
  /** nf_conntrack_tcp_no_window_check: every packet is in window. */
  tcpNoWindowCheck: number;
  /** nf_conntrack_tcp_ignore_invalid_rst: no RST is invalid for its sequence number. */
  tcpIgnoreInvalidRst: number;
}

/** tcp_packet's outcomes besides a timeout in seconds (>= 0). */
export const TCP_INVALID = -1;
/** Accepted without touching the timeout (ignored packets, a retransmitted SYN). */
export const TCP_IGNORE = -2;
/** An attempt to reopen a closed connection: delete the entry and track the packet anew. */
export const TCP_REPEAT = -3;
/** Accepted, and the entry is deleted now (the only reply was a RST). */
export const TCP_KILL = -4;

/**
 * Why the last packet was found invalid, for nf_conntrack_log_invalid: Linux's
 * wording, with `#` standing for `reasonArg`.
 */
export const why = { reason: '', arg: 0, index: 0, dir: 0, state: 0 };

function invalidBecause(reason: string, arg: number): void {
  why.reason = reason;
  why.arg = arg >>> 0;
}

/** The reason as Linux logs it. */
export function whyText(): string {
  return why.reason
    .replace('#', String(why.arg))
    .replace('%i', String(why.index))
    .replace('%d', String(why.dir))
    .replace('%s', TCP_STATE_NAMES[why.state] ?? '');
}

const before = (a: number, b: number): boolean => ((a - b) | 0) < 0;
const after = (a: number, b: number): boolean => ((b - a) | 0) < 0;

function conntrackIndex(flags: number): number {
  if (flags & 0x04) return TCP_RST_SET;
  if (flags & 0x02) return flags & 0x10 ? TCP_SYNACK_SET : TCP_SYN_SET;
  if (flags & 0x01) return TCP_FIN_SET;
  if (flags & 0x10) return TCP_ACK_SET;
  return TCP_NONE_SET;
}

/** segment_seq_plus_len: seq + payload + SYN + FIN (`len` = bytes from the TCP header to the datagram's end). */
function seqPlusLen(b: Uint8Array, l4: number, len: number): number {
  const flags = b[l4 + 13];
  return (getU32(b, l4 + 4) + len - ((b[l4 + 12] >>> 4) << 2) + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0)) >>> 0;
}

/** tcp_options: window scale and SACK-permitted into `side` (keeping only its BE_LIBERAL flag). */
function tcpOptions(b: Uint8Array, l4: number, side: CtTcpSide): void {
  let length = ((b[l4 + 12] >>> 4) << 2) - 20;
  if (length <= 0) return;
  side.scale = 0;
  side.flags &= IP_CT_TCP_FLAG_BE_LIBERAL;
  let p = l4 + 20;
  while (length > 0) {
    const op = b[p++];
    if (op === 0) return;
    if (op === 1) {
      length--;
      continue;
    }
    if (length < 2) return;
    const size = b[p++];
    if (size < 2 || size > length) return;
    if (op === 4 && size === 2) side.flags |= IP_CT_TCP_FLAG_SACK_PERM;
    else if (op === 3 && size === 3) {
      // RFC 7323 §2.3: a shift above 14 is taken as 14.
      side.scale = b[p] > 14 ? 14 : b[p];
      side.flags |= IP_CT_TCP_FLAG_WINDOW_SCALE;
    }
    p += size - 2;
    length -= size;
  }
}

/** tcp_sack: the highest right edge of the SACK blocks, or `sack` when there are none. */
function tcpSack(b: Uint8Array, l4: number, sack: number): number {
  let length = ((b[l4 + 12] >>> 4) << 2) - 20;
  if (length <= 0) return sack;
  let p = l4 + 20;
  // The timestamp-only layout (NOP NOP TS 10) carries no SACK.
  if (length === 12 && b[p] === 1 && b[p + 1] === 1 && b[p + 2] === 8 && b[p + 3] === 10) return sack;
  while (length > 0) {
    const op = b[p++];
    if (op === 0) return sack;
    if (op === 1) {
      length--;
      continue;
    }
    if (length < 2) return sack;
    const size = b[p++];
    if (size < 2 || size > length) return sack;
    if (op === 5 && size >= 10 && (size - 2) % 8 === 0) {
      for (let i = 0; i < size - 2; i += 8) {
        const edge = getU32(b, p + i + 4);
        if (after(edge, sack)) sack = edge;
      }
      return sack;
    }
    p += size - 2;
    length -= size;
  }
  return sack;
}

/**
 * tcp_error: a header that is cut short or has a flag combination no TCP
 * sends makes the packet invalid. (The checksum is checked by the caller.)
 */
export function tcpError(b: Uint8Array, l4: number, len: number): boolean {
  if (len < 20) return true;
  const doff = (b[l4 + 12] >>> 4) << 2;
  if (doff < 20 || len < doff) return true;
  return VALID_FLAGS[b[l4 + 13] & 0x37] === 0;
}

/** tcp_new: whether a first packet may open an entry; sets up the originator's window. */
export function tcpNew(e: CtEntry, b: Uint8Array, l4: number, len: number, loose: number): boolean {
  const flags = b[l4 + 13];
  const st = TABLE[conntrackIndex(flags) * 10 + TCP_CONNTRACK_NONE];
  if (st >= TCP_CONNTRACK_MAX) return false;
  if (st !== TCP_CONNTRACK_SYN_SENT && loose === 0) return false;
  let t = e.tcp;
  if (t === null) t = e.tcp = new CtTcp();
  else resetTcp(t);
  const s0 = t.seen[0];
  s0.end = seqPlusLen(b, l4, len);
  const win = getU16(b, l4 + 14);
  s0.maxwin = win === 0 ? 1 : win;
  if (st === TCP_CONNTRACK_SYN_SENT) {
    s0.maxend = s0.end;
    tcpOptions(b, l4, s0);
  } else {
    // Picked up mid-stream: history lost, so SACK and a liberal window are assumed.
    s0.maxend = (s0.end + s0.maxwin) >>> 0;
    s0.flags = t.seen[1].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL;
  }
  t.lastIndex = TCP_NONE_SET;
  e.state = TCP_CONNTRACK_NONE;
  return true;
}

function resetTcp(t: CtTcp): void {
  t.seen[0].reset();
  t.seen[1].reset();
  t.lastDir = 0;
  t.lastIndex = 0;
  t.lastSeq = 0;
  t.lastAck = 0;
  t.lastEnd = 0;
  t.lastWin = 0;
  t.lastWscale = 0;
  t.lastFlags = 0;
  t.retrans = 0;
}

/** tcp_init_sender: a SYN-ACK (or a SYN from the reply side) sets its sender's window up. */
function initSender(sender: CtTcpSide, receiver: CtTcpSide, b: Uint8Array, l4: number, end: number, win: number, dir: number): void {
  sender.end = sender.maxend = end;
  sender.maxwin = win === 0 ? 1 : win;
  tcpOptions(b, l4, sender);
  // RFC 7323 §2.2: scaling only when both sides sent the option.
  if (dir === CT_DIR_REPLY && !(sender.flags & IP_CT_TCP_FLAG_WINDOW_SCALE && receiver.flags & IP_CT_TCP_FLAG_WINDOW_SCALE)) {
    sender.scale = 0;
    receiver.scale = 0;
  }
}

const W_IGNORE = 0;
const W_INVALID = 1;
const W_ACCEPT = 2;

/** MAXACKWINDOW(sender) */
const maxAckWindow = (s: CtTcpSide): number => (s.maxwin > 66000 ? s.maxwin : 66000);

/** nf_tcp_log_invalid: a liberal sender (or be_liberal) gets its packet accepted. */
function liberal(sender: CtTcpSide, s: TcpCtSettings, ret: number): number {
  return sender.flags & IP_CT_TCP_FLAG_BE_LIBERAL || s.tcpBeLiberal !== 0 ? W_ACCEPT : ret;
}

/** tcp_in_window (nf_conntrack_proto_tcp.c), bounds I-IV of its header comment. */
function inWindow(t: CtTcp, state: number, dir: number, index: number, b: Uint8Array, l4: number, len: number, s: TcpCtSettings): number {
  if (s.tcpNoWindowCheck !== 0) return W_ACCEPT;
  const sender = t.seen[dir];
  const receiver = t.seen[1 - dir];
  const flags = b[l4 + 13];
  const syn = (flags & 0x02) !== 0;
  const hasAck = (flags & 0x10) !== 0;
  let seq = getU32(b, l4 + 4);
  let ack = getU32(b, l4 + 8);
  let sack = ack;
  const winRaw = getU16(b, l4 + 14);
  let win = winRaw;
  let end = seqPlusLen(b, l4, len);
  if (receiver.flags & IP_CT_TCP_FLAG_SACK_PERM) sack = tcpSack(b, l4, sack);

  if (sender.maxwin === 0) {
    if (syn) {
      initSender(sender, receiver, b, l4, end, win, dir);
      // Simultaneous open.
      if (!hasAck) return W_ACCEPT;
    } else {
      // Mid-stream: use what the packet says.
      sender.end = end;
      const swin = win << sender.scale;
      sender.maxwin = swin === 0 ? 1 : swin;
      sender.maxend = (end + sender.maxwin) >>> 0;
      if (receiver.maxwin === 0) receiver.end = receiver.maxend = sack;
      else if (sack === ((receiver.end + 1) >>> 0)) receiver.end = (receiver.end + 1) >>> 0; // reply to a keepalive
    }
  } else if (syn && after(end, sender.end) && (state === TCP_CONNTRACK_SYN_SENT || state === TCP_CONNTRACK_SYN_RECV)) {
    // RFC 9293 §3.4.1 (reinitialised TCP): the new SYN(-ACK) sets the window up again.
    initSender(sender, receiver, b, l4, end, win, dir);
    if (dir === CT_DIR_REPLY && !hasAck) return W_ACCEPT;
  }

  if (!hasAck) {
    ack = sack = receiver.end;
  } else if ((flags & 0x14) === 0x14 && ack === 0) {
    // RST+ACK with a zero ack from broken stacks.
    ack = sack = receiver.end;
  }
  if (flags & 0x04 && seq === 0 && state === TCP_CONNTRACK_SYN_SENT) {
    // A RST answering a SYN.
    seq = end = sender.end;
  }

  if (!before(seq, (sender.maxend + 1) >>> 0)) {
    const overshot = (end - sender.maxend + 1) >>> 0;
    const ackOk = after(sack, (receiver.end - maxAckWindow(sender) - 1) >>> 0);
    const inRecv = receiver.maxwin !== 0 && after(end, (sender.end - receiver.maxwin - 1) >>> 0);
    if (inRecv && ackOk && overshot <= receiver.maxwin && before(sack, (receiver.end + 1) >>> 0)) {
      // A sender beyond the receive window: td_end follows so the peer's ACK of it is accepted later.
      sender.end = end;
      sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
      return liberal(sender, s, W_IGNORE);
    }
    invalidBecause('SEQ is over upper bound # (over the window of the receiver)', sender.maxend + 1);
    return liberal(sender, s, W_INVALID);
  }
  if (!before(sack, (receiver.end + 1) >>> 0)) {
    invalidBecause('ACK is over upper bound # (ACKed data not seen yet)', receiver.end + 1);
    return liberal(sender, s, W_INVALID);
  }
  // "SEQ is under lower bound (already ACKed data retransmitted)"
  if (receiver.maxwin !== 0 && !after(end, (sender.end - receiver.maxwin - 1) >>> 0)) return liberal(sender, s, W_IGNORE);
  // "ignored ACK under lower bound (possible overly delayed)"
  if (!after(sack, (receiver.end - maxAckWindow(sender) - 1) >>> 0)) return liberal(sender, s, W_IGNORE);

  // RFC 7323 §2.3: the window is scaled except on SYNs.
  if (!syn) win = win << sender.scale;
  const swin = win + ((sack - ack) >>> 0);
  if (sender.maxwin < swin) sender.maxwin = swin >>> 0;
  if (after(end, sender.end)) {
    sender.end = end;
    sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;
  }
  if (hasAck) {
    if (!(sender.flags & IP_CT_TCP_FLAG_MAXACK_SET)) {
      sender.maxack = ack;
      sender.flags |= IP_CT_TCP_FLAG_MAXACK_SET;
    } else if (after(ack, sender.maxack)) sender.maxack = ack;
  }
  if (receiver.maxwin !== 0 && after(end, sender.maxend)) receiver.maxwin = (receiver.maxwin + ((end - sender.maxend) >>> 0)) >>> 0;
  if (after((sack + win) >>> 0, (receiver.maxend - 1) >>> 0)) {
    receiver.maxend = (sack + win) >>> 0;
    if (win === 0) receiver.maxend = (receiver.maxend + 1) >>> 0;
  }
  if (ack === receiver.end) receiver.flags &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED;

  // Retransmissions: the same ACK segment again.
  if (index === TCP_ACK_SET) {
    if (t.lastDir === dir && t.lastSeq === seq && t.lastAck === ack && t.lastEnd === end && t.lastWin === winRaw) t.retrans++;
    else {
      t.lastDir = dir;
      t.lastSeq = seq;
      t.lastAck = ack;
      t.lastEnd = end;
      t.lastWin = winRaw;
      t.retrans = 0;
    }
  }
  return W_ACCEPT;
}

/** nf_tcp_handle_invalid: an out-of-window FIN/RST answering one the other way shortens an assured entry's life. */
function handleInvalid(e: CtEntry, t: CtTcp, dir: number, index: number, s: TcpCtSettings, now: number): void {
  if (!(e.status & IPS_ASSURED)) return;
  if (index !== TCP_RST_SET && index !== TCP_FIN_SET) return;
  if (t.lastDir !== dir && (t.lastIndex === TCP_FIN_SET || t.lastIndex === TCP_RST_SET)) {
    const left = e.deadline - now;
    if (left < 120_000) return;
    const unack = s.tcpTimeouts[TCP_CONNTRACK_UNACK] * 1000;
    if (left > unack) e.deadline = now + unack;
  } else {
    t.lastIndex = index;
    t.lastDir = dir;
  }
}

/** tcp_can_early_drop */
function closing(state: number): boolean {
  return state === TCP_CONNTRACK_FIN_WAIT || state === TCP_CONNTRACK_LAST_ACK || state === TCP_CONNTRACK_TIME_WAIT || state === TCP_CONNTRACK_CLOSE || state === TCP_CONNTRACK_CLOSE_WAIT;
}

function established(e: CtEntry): boolean {
  return e.state === TCP_CONNTRACK_ESTABLISHED && (e.status & IPS_ASSURED) !== 0;
}

/**
 * nf_conntrack_tcp_packet after tcp_error and tcp_new: moves the entry's state
 * for a packet in direction `dir` (`len` = bytes from the TCP header to the end
 * of the datagram). Returns the new timeout in seconds, or TCP_INVALID,
 * TCP_IGNORE, TCP_REPEAT, TCP_KILL. Sets IPS_ASSURED itself.
 */
export function tcpPacket(e: CtEntry, dir: number, b: Uint8Array, l4: number, len: number, s: TcpCtSettings, now: number): number {
  const t = e.tcp!;
  const flags = b[l4 + 13];
  let oldState = e.state;
  const index = conntrackIndex(flags);
  let newState = TABLE[(dir * 6 + index) * 10 + oldState];
  let skipWindow = false;
  switch (newState) {
    case TCP_CONNTRACK_SYN_SENT:
      if (oldState < TCP_CONNTRACK_TIME_WAIT) break;
      // RFC 1122 §4.2.2.13: a SYN may reopen a connection in TIME-WAIT; an aborted one likewise.
      if ((t.seen[dir].flags | t.seen[1 - dir].flags) & IP_CT_TCP_FLAG_CLOSE_INIT || (t.lastDir === dir && t.lastIndex === TCP_RST_SET)) return TCP_REPEAT;
      newState = TCP_CONNTRACK_IGNORE;
  }
  switch (newState) {
    case TCP_CONNTRACK_IGNORE:
      if (index === TCP_SYNACK_SET && t.lastIndex === TCP_SYN_SET && t.lastDir !== dir && getU32(b, l4 + 8) === t.lastEnd) {
        // This SYN-ACK answers a SYN we ignored: the ends are in sync and we are not; take the SYN's values.
        oldState = TCP_CONNTRACK_SYN_SENT;
        newState = TCP_CONNTRACK_SYN_RECV;
        const ld = t.seen[t.lastDir];
        ld.end = ld.maxend = t.lastEnd;
        ld.maxwin = t.lastWin === 0 ? 1 : t.lastWin;
        ld.scale = t.lastWscale;
        t.lastFlags &= ~IP_CT_EXP_CHALLENGE_ACK;
        ld.flags = t.lastFlags;
        const me = t.seen[dir];
        me.end = me.maxend = me.maxwin = me.maxack = me.scale = 0;
        me.flags &= IP_CT_TCP_FLAG_BE_LIBERAL;
        break;
      }
      t.lastIndex = index;
      t.lastDir = dir;
      t.lastSeq = getU32(b, l4 + 4);
      t.lastEnd = seqPlusLen(b, l4, len);
      t.lastWin = getU16(b, l4 + 14);
      if (index === TCP_SYN_SET && dir === CT_DIR_ORIGINAL) {
        // A SYN in ORIGINAL: note its options in case the server answers it.
        t.lastFlags = t.lastWscale = 0;
        const doff = (b[l4 + 12] >>> 4) << 2;
        let p = l4 + 20;
        let left = doff - 20;
        while (left > 0) {
          const op = b[p++];
          if (op === 0) break;
          if (op === 1) {
            left--;
            continue;
          }
          if (left < 2) break;
          const size = b[p++];
          if (size < 2 || size > left) break;
          if (op === 4 && size === 2) t.lastFlags |= IP_CT_TCP_FLAG_SACK_PERM;
          else if (op === 3 && size === 3) {
            t.lastFlags |= IP_CT_TCP_FLAG_WINDOW_SCALE;
            t.lastWscale = b[p] > 14 ? 14 : b[p];
          }
          p += size - 2;
          left -= size;
        }
        // RFC 5961 §4: a challenge ACK may answer it; in LAST_ACK it must not count as the last ACK.
        if (oldState === TCP_CONNTRACK_LAST_ACK) t.lastFlags |= IP_CT_EXP_CHALLENGE_ACK;
      }
      if (oldState === TCP_CONNTRACK_SYN_SENT && index === TCP_ACK_SET && dir === CT_DIR_REPLY) t.lastAck = getU32(b, l4 + 8);
      return TCP_IGNORE;
    case TCP_CONNTRACK_MAX:
      invalidBecause('packet (index %i) in dir %d invalid, state %s', 0);
      why.index = index;
      why.dir = dir;
      why.state = oldState;
      return TCP_INVALID;
    case TCP_CONNTRACK_TIME_WAIT:
      // RFC 5961: a challenge ACK to a spurious SYN is not the ACK of the last FIN.
      if (oldState === TCP_CONNTRACK_LAST_ACK && index === TCP_ACK_SET && t.lastDir !== dir && t.lastIndex === TCP_SYN_SET && t.lastFlags & IP_CT_EXP_CHALLENGE_ACK) {
        t.lastFlags &= ~IP_CT_EXP_CHALLENGE_ACK;
        return TCP_IGNORE;
      }
      break;
    case TCP_CONNTRACK_SYN_SENT2:
      t.lastFlags |= IP_CT_TCP_SIMULTANEOUS_OPEN;
      break;
    case TCP_CONNTRACK_SYN_RECV:
      if (dir === CT_DIR_REPLY && index === TCP_ACK_SET && t.lastFlags & IP_CT_TCP_SIMULTANEOUS_OPEN) newState = TCP_CONNTRACK_ESTABLISHED;
      break;
    case TCP_CONNTRACK_CLOSE: {
      if (index !== TCP_RST_SET) break;
      if (closing(oldState)) {
        skipWindow = true;
        break;
      }
      const seq = getU32(b, l4 + 4);
      const other = t.seen[1 - dir];
      if (other.flags & IP_CT_TCP_FLAG_MAXACK_SET && t.lastIndex !== TCP_SYN_SET) {
        // Most likely the answer to a SYN let through above.
        if (seq === 0 && !established(e)) break;
        // RFC 5961 §3.2: a RST below what the other side has acked is invalid.
        if (before(seq, other.maxack) && s.tcpIgnoreInvalidRst === 0) {
          invalidBecause('invalid rst', 0);
          return TCP_INVALID;
        }
        if (!established(e) || seq === other.maxack) break;
        // The RST ending a train of data (its seq is where the last segment ended).
        if (t.lastIndex === TCP_ACK_SET && t.lastDir === dir && seq === t.lastEnd) break;
        // Not exactly in sequence: keep the state for a possible challenge ACK.
        newState = oldState;
      }
      const ackSeq = getU32(b, l4 + 8);
      if ((((e.status & IPS_SEEN_REPLY) !== 0 && t.lastIndex === TCP_SYN_SET) || ((e.status & IPS_ASSURED) === 0 && t.lastIndex === TCP_ACK_SET)) && ackSeq === t.lastEnd) {
        // A RST to a SYN or ACK we let through as ignored: skip the window check.
        skipWindow = true;
        break;
      }
      if (oldState === TCP_CONNTRACK_SYN_SENT && t.lastIndex === TCP_ACK_SET && t.lastDir === CT_DIR_REPLY && seq === t.lastAck) skipWindow = true;
      break;
    }
  }

  if (!skipWindow) {
    const res = inWindow(t, oldState, dir, index, b, l4, len, s);
    if (res === W_IGNORE) return TCP_IGNORE;
    if (res === W_INVALID) {
      handleInvalid(e, t, dir, index, s, now);
      return TCP_INVALID;
    }
  }
  t.lastIndex = index;
  t.lastDir = dir;
  e.state = newState;
  if (oldState !== newState && newState === TCP_CONNTRACK_FIN_WAIT) t.seen[dir].flags |= IP_CT_TCP_FLAG_CLOSE_INIT;

  const to = s.tcpTimeouts;
  let timeout: number;
  if (t.retrans >= s.tcpMaxRetrans && to[newState] > to[TCP_CONNTRACK_RETRANS]) timeout = to[TCP_CONNTRACK_RETRANS];
  else if (index === TCP_RST_SET) timeout = to[TCP_CONNTRACK_CLOSE];
  else if ((t.seen[0].flags | t.seen[1].flags) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED && to[newState] > to[TCP_CONNTRACK_UNACK]) timeout = to[TCP_CONNTRACK_UNACK];
  else if (s.tcpNoWindowCheck === 0 && t.lastWin === 0 && to[newState] > to[TCP_CONNTRACK_RETRANS]) timeout = to[TCP_CONNTRACK_RETRANS];
  else timeout = to[newState];

  if ((e.status & IPS_SEEN_REPLY) === 0) {
    // Only a RST came back: no connection, the entry goes now.
    if (flags & 0x04) return TCP_KILL;
    // A retransmitted SYN does not renew the timeout (else port reuse keeps the entry alive forever).
    if (index === TCP_SYN_SET && oldState === TCP_CONNTRACK_SYN_SENT) return TCP_IGNORE;
    // Picked up mid-stream without a reply yet: no long ESTABLISHED timeout.
    if (newState === TCP_CONNTRACK_ESTABLISHED && timeout > to[TCP_CONNTRACK_UNACK]) timeout = to[TCP_CONNTRACK_UNACK];
  } else if ((e.status & IPS_ASSURED) === 0 && (oldState === TCP_CONNTRACK_SYN_RECV || oldState === TCP_CONNTRACK_ESTABLISHED) && newState === TCP_CONNTRACK_ESTABLISHED) {
    // A valid ACK in ESTABLISHED after SYN_RECV, or an answer to a picked-up connection.
    e.status |= IPS_ASSURED;
  }
  return timeout;
}

/** tcp_can_early_drop: closing states, which gc may evict even when assured. */
export const tcpCanEarlyDrop = closing;
