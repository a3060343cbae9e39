/**
 * A connection's tcp_info, in the units Linux's tcp_get_info gives them (times
 * in µs unless named _ms, rates in bytes per second), for `ss -i`, the trace
 * sampler and iperf3. Fields the stack does not keep are 0, as ss then leaves
 * them out.
 */
import type { TcpConnection } from './connection.js';
import { pacingRate } from './pacing.js';
import { seqDiff } from './seq.js';
import { TcpState } from './state.js';
import { ECN_OK, ECN_SEEN } from './ecn.js';

export interface TcpInfo {
  ccName: string;
  optTs: boolean;
  optSack: boolean;
  optWscale: boolean;
  optEcn: boolean;
  optEcnSeen: boolean;
  optFastOpen: boolean;
  sndWscale: number;
  rcvWscale: number;
  rto: number;
  ato: number;
  backoff: number;
  sndMss: number;
  rcvMss: number;
  pmtu: number;
  advmss: number;
  rtt: number;
  rttvar: number;
  sndCwnd: number;
  sndSsthresh: number;
  bytesSent: number;
  bytesRetrans: number;
  bytesAcked: number;
  bytesReceived: number;
  segsOut: number;
  segsIn: number;
  dataSegsOut: number;
  dataSegsIn: number;
  lastDataSent: number; // ms ago
  lastDataRecv: number;
  lastAckRecv: number;
  pacingRate: number;
  maxPacingRate: number; // Infinity: none
  deliveryRate: number;
  delivered: number;
  deliveredCe: number;
  deliveryRateAppLimited: boolean;
  busyTime: number;
  rwndLimited: number;
  sndbufLimited: number;
  unacked: number;
  retrans: number;
  totalRetrans: number;
  lost: number;
  sacked: number;
  dsackDups: number;
  fackets: number;
  reordering: number;
  reordSeen: number;
  rcvRtt: number;
  rcvSpace: number;
  rcvSsthresh: number;
  notsentBytes: number;
  minRtt: number;
  rcvOoopack: number;
  sndWnd: number;
  /** Not in tcp_info: the connection's state for the trace (ss shows it in its own column). */
  caState: 'open' | 'disorder' | 'recovery' | 'loss';
  /** Bytes in flight (snd_nxt - snd_una). */
  inFlightBytes: number;
}

/** Receive-side values the connection does not keep (yet). */
interface RecoveryCounters {
  rcvSsthresh?: number;
}

/** Linux's tcp_get_info for an established (or closing) connection at `now` (ms). */
export function tcpGetInfo(c: TcpConnection, now: number): TcpInfo {
  const mss = c.mss;
  const rec = c as unknown as RecoveryCounters;
  const ago = (t: number): number => (t > 0 ? Math.max(0, Math.floor(now - t)) : 0);
  const inflight = Math.max(0, seqDiff(c.sndMax, c.sndUna));
  const sentData = Math.min(Math.max(0, seqDiff(c.sndNxt, c.sndUna)), c.sendBuf.length);
  const s = c.host.settings;
  const [busy, rwnd, sndbuf] = c.chrono.stats(now);
  return {
    ccName: c.cc.name,
    optTs: c.tsOk,
    optSack: c.sackOk,
    optWscale: c.wscaleOk,
    // tcpi_options' TCPI_OPT_ECN and TCPI_OPT_ECN_SEEN.
    optEcn: (c.ecnFlags & ECN_OK) !== 0,
    optEcnSeen: (c.ecnFlags & ECN_SEEN) !== 0,
    // TCPI_OPT_SYN_DATA: the SYN's data was acknowledged (client) or taken (server).
    optFastOpen: c.synDataAcked,
    sndWscale: c.sndWscale,
    rcvWscale: c.rcvWscale,
    rto: Math.round(c.rtoMs()) * 1000,
    // icsk_ack.ato: Linux sets it (TCP_ATO_MIN, 40 ms) once data has arrived.
    ato: c.dataSegsIn > 0 ? 40_000 : 0,
    backoff: c.backoff,
    sndMss: mss,
    rcvMss: c.rcvMss,
    pmtu: c.pmtu,
    advmss: c.advMss,
    rtt: Math.floor(c.rtt.srttUs),
    rttvar: Math.floor(c.rtt.rttvarUs),
    sndCwnd: c.cwnd,
    sndSsthresh: c.ssthresh,
    bytesSent: c.bytesSent,
    bytesRetrans: c.bytesRetrans,
    bytesAcked: c.bytesAcked,
    bytesReceived: c.bytesReceived,
    segsOut: c.segsOut,
    segsIn: c.segsIn,
    dataSegsOut: c.dataSegsOut,
    dataSegsIn: c.dataSegsIn,
    lastDataSent: ago(c.lastSendMs),
    lastDataRecv: ago(c.lastRecvMs),
    lastAckRecv: ago(c.lastAckRecvMs || c.lastRecvMs),
    // sk_pacing_rate as tcp_update_pacing_rate last set it, computed from the state now;
    // before the handshake's ACK it is still ~0 (ss shows none).
    pacingRate: c.state === TcpState.SYN_SENT || c.state === TcpState.SYN_RECEIVED ? Infinity : pacingRate(mss, c.cwnd, c.packetsOut, c.ssthresh, c.rtt.srttUs, s.pacingSsRatio, s.pacingCaRatio, c.pacer.maxRate),
    maxPacingRate: c.pacer.maxRate,
    deliveryRate: c.rate.rate,
    delivered: c.rate.delivered,
    deliveredCe: 0,
    deliveryRateAppLimited: c.rate.sampleAppLimited || c.rate.appLimited !== 0,
    busyTime: busy,
    rwndLimited: rwnd,
    sndbufLimited: sndbuf,
    unacked: inflight > 0 && mss > 0 ? Math.ceil(inflight / mss) : 0,
    retrans: c.retransOut,
    totalRetrans: c.totalRetrans,
    lost: c.lostOut,
    sacked: c.sackedOut,
    dsackDups: c.dsackDups,
    fackets: 0,
    reordering: c.reordering,
    reordSeen: c.reordSeen,
    rcvRtt: c.rcvRtt.rttUs,
    rcvSpace: c.rcvSpace,
    rcvSsthresh: rec.rcvSsthresh ?? 0,
    notsentBytes: c.sendBuf.length - sentData,
    minRtt: Math.floor(c.rtt.minRttUs),
    rcvOoopack: c.rcvOoopack,
    sndWnd: c.sndWnd,
    caState: c.inLoss ? 'loss' : c.inRecovery ? 'recovery' : c.sackedOut > 0 || c.lostOut > 0 ? 'disorder' : 'open',
    inFlightBytes: inflight,
  };
}
