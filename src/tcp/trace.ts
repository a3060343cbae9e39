/**
 * Samples TCP connections on a timer of the Stack's clock, for `tapstack trace
 * tcp` and the HTTP status page's charts: time, cwnd, ssthresh, srtt, bytes in
 * flight, delivered, and the throughput since the previous sample. Nothing is
 * done per packet; each tick reads a few fields of each traced connection.
 */
import type { Time, Timer } from '../time/timers.js';
import type { TcpConnection } from './connection.js';
import { tcpGetInfo } from './info.js';
import { SS_STATE_NAMES } from './state.js';
import { formatIp4 } from '../wire/addr.js';

export interface TcpTraceSample {
  /** Seconds since the trace started. */
  t: number;
  local: string;
  peer: string;
  state: string;
  cwnd: number;
  /** Segments; null while "infinite" (ss shows none). */
  ssthresh: number | null;
  srttMs: number;
  inflightBytes: number;
  delivered: number;
  bytesAcked: number;
  bytesReceived: number;
  retrans: number;
  lost: number;
  pacingRateBps: number;
  deliveryRateBps: number;
  /** Bits per second acknowledged or received since the previous sample. */
  throughputBps: number;
}

/** The CSV columns, in order (also the JSON keys' order). */
export const TRACE_COLUMNS = [
  'time_s',
  'local',
  'peer',
  'state',
  'cwnd',
  'ssthresh',
  'srtt_ms',
  'inflight_bytes',
  'delivered',
  'bytes_acked',
  'bytes_received',
  'retrans',
  'lost',
  'pacing_rate_bps',
  'delivery_rate_bps',
  'throughput_bps',
] as const;

export function sampleToCsv(s: TcpTraceSample): string {
  return [
    s.t.toFixed(3),
    s.local,
    s.peer,
    s.state,
    s.cwnd,
    s.ssthresh ?? '',
    s.srttMs.toFixed(3),
    s.inflightBytes,
    s.delivered,
    s.bytesAcked,
    s.bytesReceived,
    s.retrans,
    s.lost,
    Math.round(s.pacingRateBps),
    Math.round(s.deliveryRateBps),
    Math.round(s.throughputBps),
  ].join(',');
}

export function csvToSample(line: string): TcpTraceSample {
  const f = line.split(',');
  if (f.length !== TRACE_COLUMNS.length) throw new Error(`trace: expected ${TRACE_COLUMNS.length} fields, got ${f.length}: ${line}`);
  const n = (i: number): number => Number(f[i]);
  return {
    t: n(0),
    local: f[1],
    peer: f[2],
    state: f[3],
    cwnd: n(4),
    ssthresh: f[5] === '' ? null : n(5),
    srttMs: n(6),
    inflightBytes: n(7),
    delivered: n(8),
    bytesAcked: n(9),
    bytesReceived: n(10),
    retrans: n(11),
    lost: n(12),
    pacingRateBps: n(13),
    deliveryRateBps: n(14),
    throughputBps: n(15),
  };
}

interface Prev {
  bytes: number;
  at: number;
}

/** Calls `onSample` for each connection `select` returns, every `intervalMs` of the Stack's clock. */
export class TcpTracer {
  private readonly timer: Timer;
  private readonly prev = new Map<TcpConnection, Prev>();
  private readonly start: number;

  constructor(
    private readonly time: Time,
    private readonly select: () => Iterable<TcpConnection>,
    private readonly intervalMs: number,
    private readonly onSample: (c: TcpConnection, s: TcpTraceSample) => void,
  ) {
    this.start = time.now();
    this.timer = time.timer(() => this.tick());
  }

  begin(): void {
    this.tick();
  }

  stop(): void {
    this.time.cancel(this.timer);
    this.prev.clear();
  }

  private tick(): void {
    const now = this.time.now();
    const seen = new Set<TcpConnection>();
    for (const c of this.select()) {
      seen.add(c);
      this.onSample(c, this.sample(c, now));
    }
    for (const c of this.prev.keys()) if (!seen.has(c)) this.prev.delete(c);
    this.time.arm(this.timer, this.intervalMs);
  }

  private sample(c: TcpConnection, now: number): TcpTraceSample {
    const i = tcpGetInfo(c, now);
    const bytes = c.bytesAcked + c.bytesReceived;
    const p = this.prev.get(c);
    let tput = 0;
    if (p !== undefined && now > p.at) tput = ((bytes - p.bytes) * 8000) / (now - p.at);
    if (p === undefined) this.prev.set(c, { bytes, at: now });
    else {
      p.bytes = bytes;
      p.at = now;
    }
    return {
      t: (now - this.start) / 1000,
      local: `${formatIp4(c.localAddr)}:${c.localPort}`,
      peer: `${formatIp4(c.remoteAddr)}:${c.remotePort}`,
      state: SS_STATE_NAMES[c.state],
      cwnd: i.sndCwnd,
      ssthresh: i.sndSsthresh < 0xffff ? i.sndSsthresh : null,
      srttMs: i.rtt / 1000,
      inflightBytes: i.inFlightBytes,
      delivered: i.delivered,
      bytesAcked: i.bytesAcked,
      bytesReceived: i.bytesReceived,
      retrans: i.totalRetrans,
      lost: i.lost,
      pacingRateBps: i.pacingRate === Infinity ? 0 : i.pacingRate * 8,
      deliveryRateBps: i.deliveryRate * 8,
      throughputBps: tput,
    };
  }
}

/** The last `keep` samples of each connection a tracer sees (the HTTP page's history). */
export class TraceHistory {
  readonly byConn = new Map<TcpConnection, TcpTraceSample[]>();
  constructor(private readonly keep: number) {}

  add(c: TcpConnection, s: TcpTraceSample): void {
    let a = this.byConn.get(c);
    if (a === undefined) this.byConn.set(c, (a = []));
    a.push(s);
    if (a.length > this.keep) a.splice(0, a.length - this.keep);
  }

  /** Forgets connections that are gone. */
  prune(live: (c: TcpConnection) => boolean): void {
    for (const c of this.byConn.keys()) if (!live(c)) this.byConn.delete(c);
  }
}
