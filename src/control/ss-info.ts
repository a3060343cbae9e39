/**
 * tcp_info as iproute2's ss prints it after a socket's line (misc/ss.c
 * tcp_show_info and tcp_stats_print, iproute2 6.1): the fields in ss's order,
 * each only when ss would print it, with its number formats (%g for times in
 * ms, sprint_bw for rates). `parseTcpInfoText` reads such a line back into
 * tcp_info's fields, for the kernel's lines (the bench samples `ss -ti` in a
 * namespace) and for tests that compare with them.
 */
import type { TcpInfo } from '../tcp/info.js';
import { cFixed, cG } from './cformat.js';

export interface TcpInfoFormat {
  /** -n: rates as plain integers (sprint_bw without units). */
  numeric: boolean;
  /** -o/-e style options (ts, sack, ...) as ss prints them with -i. */
  showOptions: boolean;
}

/** ss's sprint_bw: bits per second. */
export function sprintBw(bw: number, numeric: boolean): string {
  if (numeric) return cFixed(bw, 0);
  if (bw >= 1e12) return `${cG(bw / 1e12, 3)}T`;
  if (bw >= 1e9) return `${cG(bw / 1e9, 3)}G`;
  if (bw >= 1e6) return `${cG(bw / 1e6, 3)}M`;
  if (bw >= 1e3) return `${cG(bw / 1e3, 3)}k`;
  return cG(bw);
}

/** The text ss prints for one connection's tcp_info (it starts with a space). */
export function formatTcpInfo(i: TcpInfo, o: TcpInfoFormat): string {
  let s = '';
  if (o.showOptions) {
    if (i.optTs) s += ' ts';
    if (i.optSack) s += ' sack';
    if (i.optEcn) s += ' ecn';
    if (i.optEcnSeen) s += ' ecnseen';
    if (i.optFastOpen) s += ' fastopen';
  }
  s += ` ${i.ccName}`;
  if (i.optWscale) s += ` wscale:${i.sndWscale},${i.rcvWscale}`;
  if (i.rto && i.rto !== 3_000_000) s += ` rto:${cG(i.rto / 1000)}`;
  if (i.backoff) s += ` backoff:${i.backoff}`;
  if (i.rtt) s += ` rtt:${cG(i.rtt / 1000)}/${cG(i.rttvar / 1000)}`;
  if (i.ato) s += ` ato:${cG(i.ato / 1000)}`;
  if (i.sndMss) s += ` mss:${i.sndMss}`;
  if (i.pmtu) s += ` pmtu:${i.pmtu}`;
  if (i.rcvMss) s += ` rcvmss:${i.rcvMss}`;
  if (i.advmss) s += ` advmss:${i.advmss}`;
  if (i.sndCwnd) s += ` cwnd:${i.sndCwnd}`;
  // ss shows ssthresh only below 0xffff ("infinite" otherwise).
  if (i.sndSsthresh && i.sndSsthresh < 0xffff) s += ` ssthresh:${i.sndSsthresh}`;
  if (i.bytesSent) s += ` bytes_sent:${i.bytesSent}`;
  if (i.bytesRetrans) s += ` bytes_retrans:${i.bytesRetrans}`;
  if (i.bytesAcked) s += ` bytes_acked:${i.bytesAcked}`;
  if (i.bytesReceived) s += ` bytes_received:${i.bytesReceived}`;
  if (i.segsOut) s += ` segs_out:${i.segsOut}`;
  if (i.segsIn) s += ` segs_in:${i.segsIn}`;
  if (i.dataSegsOut) s += ` data_segs_out:${i.dataSegsOut}`;
  if (i.dataSegsIn) s += ` data_segs_in:${i.dataSegsIn}`;
  // ss computes "send" itself: cwnd * mss * 8 / rtt.
  if (i.rtt > 0 && i.sndMss && i.sndCwnd) s += ` send ${sprintBw((i.sndCwnd * i.sndMss * 8000000) / i.rtt, o.numeric)}bps`;
  if (i.lastDataSent) s += ` lastsnd:${i.lastDataSent}`;
  if (i.lastDataRecv) s += ` lastrcv:${i.lastDataRecv}`;
  if (i.lastAckRecv) s += ` lastack:${i.lastAckRecv}`;
  if (i.pacingRate && i.pacingRate !== Infinity) {
    s += ` pacing_rate ${sprintBw(i.pacingRate * 8, o.numeric)}bps`;
    if (i.maxPacingRate !== Infinity && i.maxPacingRate) s += `/${sprintBw(i.maxPacingRate * 8, o.numeric)}bps`;
  }
  if (i.deliveryRate) s += ` delivery_rate ${sprintBw(i.deliveryRate * 8, o.numeric)}bps`;
  if (i.delivered) s += ` delivered:${i.delivered}`;
  if (i.deliveredCe) s += ` delivered_ce:${i.deliveredCe}`;
  if (i.deliveryRateAppLimited) s += ' app_limited';
  if (i.busyTime) {
    s += ` busy:${Math.floor(i.busyTime / 1000)}ms`;
    if (i.rwndLimited) s += ` rwnd_limited:${Math.floor(i.rwndLimited / 1000)}ms(${cFixed((100 * i.rwndLimited) / i.busyTime, 1)}%)`;
    if (i.sndbufLimited) s += ` sndbuf_limited:${Math.floor(i.sndbufLimited / 1000)}ms(${cFixed((100 * i.sndbufLimited) / i.busyTime, 1)}%)`;
  }
  if (i.unacked) s += ` unacked:${i.unacked}`;
  if (i.retrans || i.totalRetrans) s += ` retrans:${i.retrans}/${i.totalRetrans}`;
  if (i.lost) s += ` lost:${i.lost}`;
  if (i.sacked) s += ` sacked:${i.sacked}`;
  if (i.dsackDups) s += ` dsack_dups:${i.dsackDups}`;
  if (i.fackets) s += ` fackets:${i.fackets}`;
  if (i.reordering !== 3) s += ` reordering:${i.reordering}`;
  if (i.reordSeen) s += ` reord_seen:${i.reordSeen}`;
  if (i.rcvRtt) s += ` rcv_rtt:${cG(i.rcvRtt / 1000)}`;
  if (i.rcvSpace) s += ` rcv_space:${i.rcvSpace}`;
  if (i.rcvSsthresh) s += ` rcv_ssthresh:${i.rcvSsthresh}`;
  if (i.notsentBytes) s += ` notsent:${i.notsentBytes}`;
  if (i.minRtt) s += ` minrtt:${cG(i.minRtt / 1000)}`;
  if (i.rcvOoopack) s += ` rcv_ooopack:${i.rcvOoopack}`;
  if (i.sndWnd) s += ` snd_wnd:${i.sndWnd}`;
  return s;
}

/** A TcpInfo with everything zero (ss prints nothing for a zero field). */
export function emptyTcpInfo(): TcpInfo {
  return {
    ccName: '',
    optTs: false,
    optSack: false,
    optWscale: false,
    optEcn: false,
    optEcnSeen: false,
    optFastOpen: false,
    sndWscale: 0,
    rcvWscale: 0,
    rto: 0,
    ato: 0,
    backoff: 0,
    sndMss: 0,
    rcvMss: 0,
    pmtu: 0,
    advmss: 0,
    rtt: 0,
    rttvar: 0,
    sndCwnd: 0,
    sndSsthresh: 0,
    bytesSent: 0,
    bytesRetrans: 0,
    bytesAcked: 0,
    bytesReceived: 0,
    segsOut: 0,
    segsIn: 0,
    dataSegsOut: 0,
    dataSegsIn: 0,
    lastDataSent: 0,
    lastDataRecv: 0,
    lastAckRecv: 0,
    pacingRate: 0,
    maxPacingRate: Infinity,
    deliveryRate: 0,
    delivered: 0,
    deliveredCe: 0,
    deliveryRateAppLimited: false,
    busyTime: 0,
    rwndLimited: 0,
    sndbufLimited: 0,
    unacked: 0,
    retrans: 0,
    totalRetrans: 0,
    lost: 0,
    sacked: 0,
    dsackDups: 0,
    fackets: 0,
    reordering: 3,
    reordSeen: 0,
    rcvRtt: 0,
    rcvSpace: 0,
    rcvSsthresh: 0,
    notsentBytes: 0,
    minRtt: 0,
    rcvOoopack: 0,
    sndWnd: 0,
    caState: 'open',
    inFlightBytes: 0,
  };
}

/** Bits per second as sprint_bw printed them (with -n, or with k/M/G/T). */
function readBw(t: string): number {
  const m = /^([\d.]+)([kMGT]?)bps$/.exec(t);
  if (m === null) throw new Error(`ss: bad rate "${t}"`);
  const mult = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]]!;
  return Number(m[1]) * mult;
}

const MS_US = (v: string): number => Math.round(Number(v) * 1000);

/**
 * Reads the tcp_info line ss printed back into tcp_info's fields (rates in
 * bytes/s, times in µs). Fields given in ms with fewer digits (busy, rwnd_limited)
 * come back to the ms; `send` is not a tcp_info field and is ignored, as are
 * congestion control sub-blocks such as bbr:(...). Unknown words are an error.
 */
export function parseTcpInfoText(text: string): TcpInfo {
  const i = emptyTcpInfo();
  const words = text.trim().split(/\s+/);
  for (let k = 0; k < words.length; k++) {
    const w = words[k];
    const colon = w.indexOf(':');
    const key = colon < 0 ? w : w.slice(0, colon);
    const val = colon < 0 ? '' : w.slice(colon + 1);
    switch (key) {
      case 'ts':
        i.optTs = true;
        break;
      case 'sack':
        i.optSack = true;
        break;
      case 'ecn':
        i.optEcn = true;
        break;
      case 'ecnseen':
        i.optEcnSeen = true;
        break;
      case 'fastopen':
        i.optFastOpen = true;
        break;
      case 'wscale': {
        const [a, b] = val.split(',');
        i.optWscale = true;
        i.sndWscale = Number(a);
        i.rcvWscale = Number(b);
        break;
      }
      case 'rto':
        i.rto = MS_US(val);
        break;
      case 'backoff':
        i.backoff = Number(val);
        break;
      case 'rtt': {
        const [a, b] = val.split('/');
        i.rtt = MS_US(a);
        i.rttvar = MS_US(b);
        break;
      }
      case 'ato':
        i.ato = MS_US(val);
        break;
      case 'mss':
        i.sndMss = Number(val);
        break;
      case 'pmtu':
        i.pmtu = Number(val);
        break;
      case 'rcvmss':
        i.rcvMss = Number(val);
        break;
      case 'advmss':
        i.advmss = Number(val);
        break;
      case 'cwnd':
        i.sndCwnd = Number(val);
        break;
      case 'ssthresh':
        i.sndSsthresh = Number(val);
        break;
      case 'bytes_sent':
        i.bytesSent = Number(val);
        break;
      case 'bytes_retrans':
        i.bytesRetrans = Number(val);
        break;
      case 'bytes_acked':
        i.bytesAcked = Number(val);
        break;
      case 'bytes_received':
        i.bytesReceived = Number(val);
        break;
      case 'segs_out':
        i.segsOut = Number(val);
        break;
      case 'segs_in':
        i.segsIn = Number(val);
        break;
      case 'data_segs_out':
        i.dataSegsOut = Number(val);
        break;
      case 'data_segs_in':
        i.dataSegsIn = Number(val);
        break;
      case 'send':
        k++;
        break;
      case 'lastsnd':
        i.lastDataSent = Number(val);
        break;
      case 'lastrcv':
        i.lastDataRecv = Number(val);
        break;
      case 'lastack':
        i.lastAckRecv = Number(val);
        break;
      case 'pacing_rate': {
        const [a, b] = words[++k].split('/');
        i.pacingRate = readBw(a) / 8;
        if (b !== undefined) i.maxPacingRate = readBw(b) / 8;
        break;
      }
      case 'delivery_rate':
        i.deliveryRate = readBw(words[++k]) / 8;
        break;
      case 'delivered':
        i.delivered = Number(val);
        break;
      case 'delivered_ce':
        i.deliveredCe = Number(val);
        break;
      case 'app_limited':
        i.deliveryRateAppLimited = true;
        break;
      case 'busy':
        i.busyTime = parseInt(val, 10) * 1000;
        break;
      case 'rwnd_limited':
        i.rwndLimited = parseInt(val, 10) * 1000;
        break;
      case 'sndbuf_limited':
        i.sndbufLimited = parseInt(val, 10) * 1000;
        break;
      case 'unacked':
        i.unacked = Number(val);
        break;
      case 'retrans': {
        const [a, b] = val.split('/');
        i.retrans = Number(a);
        i.totalRetrans = Number(b);
        break;
      }
      case 'lost':
        i.lost = Number(val);
        break;
      case 'sacked':
        i.sacked = Number(val);
        break;
      case 'dsack_dups':
        i.dsackDups = Number(val);
        break;
      case 'fackets':
        i.fackets = Number(val);
        break;
      case 'reordering':
        i.reordering = Number(val);
        break;
      case 'reord_seen':
        i.reordSeen = Number(val);
        break;
      case 'rcv_rtt':
        i.rcvRtt = MS_US(val);
        break;
      case 'rcv_space':
        i.rcvSpace = Number(val);
        break;
      case 'rcv_ssthresh':
        i.rcvSsthresh = Number(val);
        break;
      case 'notsent':
        i.notsentBytes = Number(val);
        break;
      case 'minrtt':
        i.minRtt = MS_US(val);
        break;
      case 'rcv_ooopack':
        i.rcvOoopack = Number(val);
        break;
      case 'snd_wnd':
        i.sndWnd = Number(val);
        break;
      case 'rcv_wnd':
      case 'rehash':
      case 'bbr':
      case 'dctcp':
        break;
      default:
        if (k === 0 || (i.ccName === '' && /^[a-z0-9_]+$/.test(w) && colon < 0)) {
          i.ccName = w;
          break;
        }
        if (/^[a-z0-9_]+:\(/.test(w)) break; // a congestion control's own block
        throw new Error(`ss: unexpected word "${w}" in tcp_info`);
    }
  }
  return i;
}
