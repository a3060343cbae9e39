/**
 * skb->priority from the IP TOS byte, and the default priomap of pfifo_fast
 * and prio. Linux gives a forwarded datagram `rt_tos2priority(iph->tos)`
 * (ip_forward) and a socket's datagrams the priority IP_TOS set; here every
 * IPv4 packet gets the one of the TOS it carries when it is queued, so a DSCP
 * the chain engine writes selects the band.
 */
import type { Packet } from '../packet/packet.js';

export const TC_PRIO_MAX = 15;

/** net/ipv4/route.c ip_tos2prio[], indexed by IPTOS_TOS(tos) >> 1 (ECN_OR_COST(x) is x). */
const TOS2PRIO = [0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4];

/** sch_generic.c prio2band: the priomap pfifo_fast uses and prio starts from. */
export const PRIO2BAND: readonly number[] = [1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];

/** The priority (0..15) of a frame (`pkt.start` at the link header of `hardHeaderLen` bytes). */
export function packetPriority(pkt: Packet, hardHeaderLen: number): number {
  const b = pkt.buf;
  const s = pkt.start;
  if (hardHeaderLen === 14) {
    if (pkt.end - s < 16 || b[s + 12] !== 0x08 || b[s + 13] !== 0x00) return 0;
  } else if (pkt.end - s < 2 || b[s] >> 4 !== 4) {
    return 0;
  }
  return TOS2PRIO[(b[s + hardHeaderLen + 1] & 0x1e) >> 1];
}
