import type { CtSctp } from './sctp.js';
/**
 * One tracked connection, as Linux's struct nf_conn: an original and a reply
 * tuple, a status word, a protocol state and an absolute deadline.
 *
 * Tuples are kept as plain numbers (no tuple objects): for TCP/UDP the ports,
 * for ICMP `sport` = the echo id and `dport` = (type << 8) | code, as Linux
 * keeps src.u.icmp.id and dst.u.icmp.{type,code}; for other protocols 0, 0.
 *
 * The table (conntrack.ts) owns the hash links; NAT (nat.ts) may rewrite the
 * reply tuple of an entry that is not confirmed yet, through the table's
 * `setReply`.
 */

/** ip_conntrack_status bits (include/uapi/linux/netfilter/nf_conntrack_common.h). */
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT;
export const IPS_SEQ_ADJUST = 1 << 6;
export const IPS_SRC_NAT_DONE = 1 << 7;
export const IPS_DST_NAT_DONE = 1 << 8;
export const IPS_NAT_DONE_MASK = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;
export const IPS_DYING = 1 << 9;
export const IPS_FIXED_TIMEOUT = 1 << 10;
export const IPS_TEMPLATE = 1 << 11;
export const IPS_UNTRACKED = 1 << 12;
export const IPS_HELPER = 1 << 13;
export const IPS_OFFLOAD = 1 << 14;

/** enum ip_conntrack_info: what a packet is to its entry (pkt.ctInfo). */
export const IP_CT_ESTABLISHED = 0;
export const IP_CT_RELATED = 1;
export const IP_CT_NEW = 2;
export const IP_CT_IS_REPLY = 3;
export const IP_CT_ESTABLISHED_REPLY = 3;
export const IP_CT_RELATED_REPLY = 4;

export const CT_DIR_ORIGINAL = 0;
export const CT_DIR_REPLY = 1;

/** enum tcp_conntrack. */
export const TCP_CONNTRACK_NONE = 0;
export const TCP_CONNTRACK_SYN_SENT = 1;
export const TCP_CONNTRACK_SYN_RECV = 2;
export const TCP_CONNTRACK_ESTABLISHED = 3;
export const TCP_CONNTRACK_FIN_WAIT = 4;
export const TCP_CONNTRACK_CLOSE_WAIT = 5;
export const TCP_CONNTRACK_LAST_ACK = 6;
export const TCP_CONNTRACK_TIME_WAIT = 7;
export const TCP_CONNTRACK_CLOSE = 8;
export const TCP_CONNTRACK_SYN_SENT2 = 9;

/** One direction's TCP window tracking (struct ip_ct_tcp_state). */
export class CtTcpSide {
  /** td_end, td_maxend, td_maxwin, td_maxack (sequence numbers as unsigned 32-bit). */
  end = 0;
  maxend = 0;
  maxwin = 0;
  maxack = 0;
  scale = 0;
  /** IP_CT_TCP_FLAG_* bits. */
  flags = 0;

  reset(): void {
    this.end = 0;
    this.maxend = 0;
    this.maxwin = 0;
    this.maxack = 0;
    this.scale = 0;
    this.flags = 0;
  }
}

/** struct ip_ct_tcp_state flags (include/uapi/linux/netfilter/nf_conntrack_tcp.h). */
export const IP_CT_TCP_FLAG_WINDOW_SCALE = 0x01;
export const IP_CT_TCP_FLAG_SACK_PERM = 0x02;
export const IP_CT_TCP_FLAG_CLOSE_INIT = 0x04;
export const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;
export const IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED = 0x10;
export const IP_CT_TCP_FLAG_MAXACK_SET = 0x20;
/** ip_ct_tcp.last_flags only (include/net/netfilter/nf_conntrack_tcp.h). */
export const IP_CT_EXP_CHALLENGE_ACK = 0x40;
export const IP_CT_TCP_SIMULTANEOUS_OPEN = 0x80;

export class CtEntry {
  /** conntrack -o id: a number unique among live entries. */
  id = 0;
  proto = 0;
  // original direction
  os = 0;
  od = 0;
  osp = 0;
  odp = 0;
  // reply direction
  rs = 0;
  rd = 0;
  rsp = 0;
  rdp = 0;
  /** IPS_* bits. */
  status = 0;
  /** Protocol state: TCP_CONNTRACK_* for TCP, SCTP_CONNTRACK_* for SCTP; 0 otherwise. */
  state = 0;
  /** Absolute deadline in the stack clock's ms. */
  deadline = 0;
  /** ct mark. */
  mark = 0;
  /** Creation time (stack clock ms), for UDP's 2 s rule and -o timestamp. */
  start = 0;
  /** When the entry was destroyed (stack clock ms; 0 while live), for -o timestamp's stop. */
  stop = 0;
  /** Per-direction accounting (nf_conntrack_acct). */
  pkts0 = 0;
  bytes0 = 0;
  pkts1 = 0;
  bytes1 = 0;
  /** TCP tracking state (null for other protocols). */
  tcp: CtTcp | null = null;
  /** SCTP tracking state: the verification tags (null for other protocols). */
  sctp: CtSctp | null = null;
  /** UDP: when the entry may turn into a stream (creation + 2 s, ct->proto.udp.stream_ts). */
  streamTs = 0;
  /** NAT: the index of the interface a masqueraded entry leaves by (nf_conn_nat's masq_index), else 0. */
  masqIndex = 0;

  // Hash links, owned by the table: the next node in the chain of this
  // entry's original (0) and reply (1) tuple, and which tuple of that next
  // node the chain holds.
  /** @internal */ n0: CtEntry | null = null;
  /** @internal */ n1: CtEntry | null = null;
  /** @internal */ d0 = 0;
  /** @internal */ d1 = 0;
  /** @internal Linked into the table (confirmed and not deleted). */
  hashed = false;
}

/** struct ip_ct_tcp. */
export class CtTcp {
  readonly seen: [CtTcpSide, CtTcpSide] = [new CtTcpSide(), new CtTcpSide()];
  lastDir = 0;
  lastIndex = 0;
  lastSeq = 0;
  lastAck = 0;
  lastEnd = 0;
  lastWin = 0;
  lastWscale = 0;
  lastFlags = 0;
  retrans = 0;
}
