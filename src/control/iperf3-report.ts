/**
 * What `tapstack iperf3 -c` prints: iperf3's lines (iperf_locale.c formats,
 * units.c unit_snprintf) and its `-J` document, built where iperf3 builds them
 * (iperf_api.c iperf_on_connect, connect_msg, iperf_on_test_start,
 * iperf_print_intermediate, print_interval_results, iperf_print_results).
 * TCP only: the client runs no UDP tests.
 */
import os from 'node:os';
import type { CommandOutput } from './protocol.js';
import { JsonObject, cjsonPrint, type JsonValue } from './cjson.js';
import { formatIp4 } from '../wire/addr.js';
import { BIDIRECTIONAL, type ClientReporter, type Iperf3Client } from '../services/iperf3/client.js';
import type { Iperf3Stream } from '../services/iperf3/stream.js';
import { DISPLAY_RESULTS, TEST_END, TEST_RUNNING } from '../services/iperf3/protocol.js';

export const VERSION_TEXT = 'tapstack (iperf 3.12 protocol)';

// iperf_locale.c
const REPORT_BW_HEADER = '[ ID] Interval           Transfer     Bitrate\n';
const REPORT_BW_HEADER_BIDIR = '[ ID][Role] Interval           Transfer     Bitrate\n';
const REPORT_BW_RETRANS_HEADER = '[ ID] Interval           Transfer     Bitrate         Retr\n';
const REPORT_BW_RETRANS_HEADER_BIDIR = '[ ID][Role] Interval           Transfer     Bitrate         Retr\n';
const REPORT_BW_RETRANS_CWND_HEADER = '[ ID] Interval           Transfer     Bitrate         Retr  Cwnd\n';
const REPORT_BW_RETRANS_CWND_HEADER_BIDIR = '[ ID][Role] Interval           Transfer     Bitrate         Retr  Cwnd\n';
const REPORT_BW_SEPARATOR = '- - - - - - - - - - - - - - - - - - - - - - - - -\n';
const REPORT_OMITTED = '(omitted)';

/**
 * C's `%.<p>f`: like toFixed, except that an exact tie rounds to even (glibc
 * rounds the exact binary value in the current rounding mode).
 */
export function cFixed(x: number, p: number): string {
  const s = x.toFixed(p);
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 1 + p);
  if (rest[0] === '5' && /^50*$/.test(rest)) {
    // A tie: toFixed went away from zero; C goes to the even neighbour.
    const lastDigit = Number(exact[p > 0 ? dot + p : dot - 1]);
    if (lastDigit % 2 === 0) {
      const t = exact.slice(0, p > 0 ? dot + 1 + p : dot);
      return (x < 0 ? '-' : '') + t;
    }
  }
  return s;
}

const pad = (s: string, w: number): string => s.padStart(w);
const f62 = (x: number): string => pad(cFixed(x, 2), 6);
const f62l = (x: number): string => cFixed(x, 2).padEnd(6);
const d3 = (n: number): string => pad(String(n), 3);
/** `%3u` of a C int: -1 prints as 4294967295. */
const u3 = (n: number): string => pad(String(n >>> 0), 3);

const BYTE_LABELS = ['Byte', 'KByte', 'MByte', 'GByte', 'TByte'];
const BIT_LABELS = ['bit', 'Kbit', 'Mbit', 'Gbit', 'Tbit'];

/** units.c unit_snprintf with 'A' (bytes, 1024 steps) or 'a' (bits, 1000 steps). */
export function unitFormat(value: number, fmt: 'A' | 'a'): string {
  const bits = fmt === 'a';
  let n = bits ? value * 8 : value;
  const step = bits ? 1000 : 1024;
  let conv = 0;
  let tmp = n;
  while (tmp >= step && conv < 4) {
    tmp /= step;
    conv++;
  }
  n *= 1 / step ** conv;
  const label = (bits ? BIT_LABELS : BYTE_LABELS)[conv];
  // "print such that we always fit in 4 places"
  const digits = n < 9.995 ? 2 : n < 99.95 ? 1 : 0;
  return `${pad(cFixed(n, digits), 4)} ${label}`;
}

/** get_system_info: uname's fields. */
export function systemInfo(): string {
  return `${os.type()} ${os.hostname()} ${os.release()} ${os.version()} ${os.machine()}`;
}

export class Iperf3Report implements ClientReporter {
  private readonly top = new JsonObject();
  private readonly start = new JsonObject();
  private readonly connected: JsonValue[] = [];
  private readonly intervals: JsonValue[] = [];
  private readonly end = new JsonObject();
  private client: Iperf3Client | null = null;
  /** The exit status: 0, or 1 after an error (text output). */
  status = 0;

  constructor(
    private readonly out: CommandOutput,
    readonly json: boolean,
    private readonly onFinished: (status: number) => void,
  ) {
    // iperf_json_start, then run_client's version and system_info.
    this.top.add('start', this.start).add('intervals', this.intervals).add('end', this.end);
    this.start.add('connected', this.connected);
    this.start.add('version', VERSION_TEXT);
    this.start.add('system_info', systemInfo());
  }

  attach(c: Iperf3Client): void {
    this.client = c;
  }

  private get c(): Iperf3Client {
    return this.client!;
  }

  private print(s: string): void {
    if (!this.json) this.out.out(s);
  }

  // ---- callbacks ----

  onConnect(): void {
    const c = this.c;
    const now = new Date();
    if (this.json) {
      this.start.add('timestamp', JsonObject.of({ time: now.toUTCString(), timesecs: Math.floor(now.getTime() / 1000) }));
      this.start.add('connecting_to', JsonObject.of({ host: c.opts.host, port: c.opts.port }));
      this.start.add('cookie', c.cookieString);
      if (c.params.mss) this.start.add('tcp_mss', c.params.mss);
      else this.start.add('tcp_mss_default', c.ctrlMss);
      this.start.add('target_bitrate', c.params.bandwidth);
    } else {
      this.print(`Connecting to host ${c.opts.host}, port ${c.opts.port}\n`);
      if (c.params.reverse) this.print(`Reverse mode, remote host ${c.opts.host} is sending\n`);
    }
  }

  onNewStream(s: Iperf3Stream): void {
    const k = s.conn;
    if (this.json) {
      this.connected.push(
        JsonObject.of({
          socket: s.socket,
          local_host: formatIp4(k.localAddr),
          local_port: k.localPort,
          remote_host: formatIp4(k.remoteAddr),
          remote_port: k.remotePort,
        }),
      );
      // iperf_tcp_connect adds these for every stream.
      this.start.add('sock_bufsize', this.c.params.window);
      this.start.add('sndbuf_actual', k.sndBufSize);
      this.start.add('rcvbuf_actual', k.rcvBufSize);
    } else {
      this.print(`[${d3(s.socket)}] local ${formatIp4(k.localAddr)} port ${k.localPort} connected to ${formatIp4(k.remoteAddr)} port ${k.remotePort}\n`);
    }
  }

  onTestStart(): void {
    const c = this.c;
    const p = c.params;
    if (!this.json) return;
    this.start.add(
      'test_start',
      JsonObject.of({
        protocol: 'TCP',
        num_streams: p.parallel,
        blksize: p.len,
        omit: p.omit,
        duration: p.time,
        bytes: p.num,
        blocks: p.blockcount,
        reverse: p.reverse ? 1 : 0,
        tos: 0,
        target_bitrate: p.bandwidth,
      }),
    );
  }

  /** iperf_reporter_callback. */
  report(): void {
    const st = this.c.state;
    if (st === TEST_RUNNING) this.printIntermediate();
    else if (st === TEST_END || st === DISPLAY_RESULTS) {
      this.printIntermediate();
      this.printResults();
    }
  }

  onEnd(error: string | null): void {
    if (this.json) {
      if (error !== null) this.top.add('error', error);
      this.out.out(cjsonPrint(this.top) + '\n');
      // iperf 3.12 returns success once the error is in the JSON document.
      this.onFinished(0);
      return;
    }
    if (error !== null) {
      this.out.err(`iperf3: error - ${error}\n`);
      this.onFinished(1);
      return;
    }
    this.out.out('\niperf Done.\n');
    this.onFinished(0);
  }

  // ---- intervals ----

  /** stream_must_be_sender for each pass: senders first on the client. */
  private modes(): number[] {
    return this.c.mode === BIDIRECTIONAL ? [-1, 0] : [this.c.mode];
  }

  private roleTag(sender: boolean): string {
    return this.c.mode === BIDIRECTIONAL ? `[${sender ? 'TX' : 'RX'}-C]` : '';
  }

  private printIntermediate(): void {
    const c = this.c;
    const streams = c.streams;
    // "ignore very short intervals (less than 10% of the interval time) that have no data"
    const ok = streams.some((s) => s.last !== null && (s.last.duration >= 0.1 || s.last.bytes > 0));
    if (!ok) return;
    let jInterval: JsonObject | null = null;
    let jStreams: JsonValue[] | null = null;
    if (this.json) {
      jStreams = [];
      jInterval = new JsonObject().add('streams', jStreams);
      this.intervals.push(jInterval);
    }
    for (const mode of this.modes()) {
      const mustBeSender = mode * mode === 1;
      const mbuf = this.roleTag(mustBeSender);
      let bytes = 0;
      let retransmits = 0;
      for (const s of streams) {
        if (s.sender !== mustBeSender) continue;
        this.printIntervalResults(s, jStreams);
        const irp = s.last!;
        bytes += irp.bytes;
        if (c.senderHasRetransmits === 1) retransmits += irp.retrans;
      }
      if (c.params.parallel <= 1 && !this.json) continue;
      let sumName = 'sum';
      if (c.mode === BIDIRECTIONAL && !mustBeSender) sumName = 'sum_bidir_reverse';
      const sp = streams[0];
      const irp = sp?.last;
      if (sp === undefined || irp == null) continue;
      const bandwidth = bytes / irp.duration;
      const start = (irp.startUs - sp.startUs) / 1e6;
      const end = (irp.endUs - sp.startUs) / 1e6;
      const ubuf = unitFormat(bytes, 'A');
      const nbuf = unitFormat(bandwidth, 'a');
      if (c.senderHasRetransmits === 1 && mustBeSender) {
        jInterval?.add(
          sumName,
          JsonObject.of({ start, end, seconds: irp.duration, bytes, bits_per_second: bandwidth * 8, retransmits, omitted: irp.omitted, sender: mustBeSender }),
        );
        this.print(`[SUM]${mbuf} ${f62(start)}-${f62l(end)} sec  ${ubuf}s  ${nbuf}s/sec  ${d3(retransmits)}             ${irp.omitted ? REPORT_OMITTED : ''}\n`);
      } else {
        jInterval?.add(sumName, JsonObject.of({ start, end, seconds: irp.duration, bytes, bits_per_second: bandwidth * 8, omitted: c.omitting, sender: mustBeSender }));
        this.print(`[SUM]${mbuf} ${f62(start)}-${f62l(end)} sec  ${ubuf}s  ${nbuf}s/sec                  ${c.omitting ? REPORT_OMITTED : ''}\n`);
      }
    }
  }

  private printIntervalResults(s: Iperf3Stream, jStreams: JsonValue[] | null): void {
    const c = this.c;
    const irp = s.last;
    if (irp === null) return;
    const mbuf = this.roleTag(s.sender);
    const bidir = c.mode === BIDIRECTIONAL;
    if (!this.json && s === c.streams[0]) {
      if (irp.startUs === s.startUs) {
        if (c.senderHasRetransmits === 1) this.print(bidir ? REPORT_BW_RETRANS_CWND_HEADER_BIDIR : REPORT_BW_RETRANS_CWND_HEADER);
        else this.print(bidir ? REPORT_BW_HEADER_BIDIR : REPORT_BW_HEADER);
      } else if (c.params.parallel > 1) this.print(REPORT_BW_SEPARATOR);
    }
    const bandwidth = irp.duration > 0 ? irp.bytes / irp.duration : 0;
    const ubuf = unitFormat(irp.bytes, 'A');
    const nbuf = unitFormat(bandwidth, 'a');
    const st = (irp.startUs - s.startUs) / 1e6;
    const et = (irp.endUs - s.startUs) / 1e6;
    const omitted = irp.omitted ? REPORT_OMITTED : '';
    if (c.senderHasRetransmits === 1 && s.sender) {
      jStreams?.push(
        JsonObject.of({
          socket: s.socket,
          start: st,
          end: et,
          seconds: irp.duration,
          bytes: irp.bytes,
          bits_per_second: bandwidth * 8,
          retransmits: irp.retrans,
          snd_cwnd: irp.sndCwnd,
          snd_wnd: irp.sndWnd,
          rtt: irp.rtt,
          rttvar: irp.rttvar,
          pmtu: irp.pmtu,
          omitted: irp.omitted,
          sender: s.sender,
        }),
      );
      const cbuf = unitFormat(irp.sndCwnd, 'A');
      this.print(`[${d3(s.socket)}]${mbuf} ${f62(st)}-${f62l(et)} sec  ${ubuf}s  ${nbuf}s/sec  ${u3(irp.retrans)}   ${cbuf}s       ${omitted}\n`);
    } else {
      jStreams?.push(
        JsonObject.of({ socket: s.socket, start: st, end: et, seconds: irp.duration, bytes: irp.bytes, bits_per_second: bandwidth * 8, omitted: irp.omitted, sender: s.sender }),
      );
      this.print(`[${d3(s.socket)}]${mbuf} ${f62(st)}-${f62l(et)} sec  ${ubuf}s  ${nbuf}s/sec                  ${omitted}\n`);
    }
  }

  // ---- the summary ----

  private printResults(): void {
    const c = this.c;
    const bidir = c.mode === BIDIRECTIONAL;
    const jStreams: JsonValue[] = [];
    if (this.json) this.end.add('streams', jStreams);
    else {
      this.print(REPORT_BW_SEPARATOR);
      if (c.senderHasRetransmits || c.otherSideHasRetransmits) this.print(bidir ? REPORT_BW_RETRANS_HEADER_BIDIR : REPORT_BW_RETRANS_HEADER);
      else this.print(bidir ? REPORT_BW_HEADER_BIDIR : REPORT_BW_HEADER);
    }
    const own = c.senderHasRetransmits;
    const modes = this.modes();
    for (const mode of modes) {
      const mustBeSender = mode * mode === 1;
      const mbuf = this.roleTag(mustBeSender);
      // Each direction of a bidirectional test has its own sender.
      const hasRetrans = bidir ? (mustBeSender ? own : c.otherSideHasRetransmits) : own;
      let totalRetrans = 0;
      let totalSent = 0;
      let totalReceived = 0;
      let senderTime = 0;
      let receiverTime = 0;
      const startTime = 0;
      const first = c.streams[0];
      if (first !== undefined) {
        const endTime = (first.endUs - first.startUs) / 1e6;
        if (first.sender) {
          first.senderTime = endTime;
          if (first.receiverTime === 0) first.receiverTime = first.senderTime;
        } else {
          first.receiverTime = endTime;
          if (first.senderTime === 0) first.senderTime = first.receiverTime;
        }
        senderTime = first.senderTime;
        receiverTime = first.receiverTime;
        for (const s of c.streams) {
          if (s.sender !== mustBeSender) continue;
          const jStream = new JsonObject();
          if (this.json) jStreams.push(jStream);
          const bytesSent = s.bytesSent - s.bytesSentOmit;
          const bytesReceived = s.bytesReceived;
          totalSent += bytesSent;
          totalReceived += bytesReceived;
          if (hasRetrans) totalRetrans += s.streamRetrans;
          let bandwidth = senderTime > 0 ? bytesSent / senderTime : 0;
          let ubuf = unitFormat(bytesSent, 'A');
          let nbuf = unitFormat(bandwidth, 'a');
          if (hasRetrans) {
            jStream.add(
              'sender',
              JsonObject.of({
                socket: s.socket,
                start: startTime,
                end: senderTime,
                seconds: senderTime,
                bytes: bytesSent,
                bits_per_second: bandwidth * 8,
                retransmits: s.streamRetrans,
                max_snd_cwnd: s.maxSndCwnd,
                max_snd_wnd: s.maxSndWnd,
                max_rtt: s.maxRtt,
                min_rtt: s.minRtt,
                mean_rtt: s.countRtt === 0 ? 0 : Math.trunc(s.sumRtt / s.countRtt),
                sender: mustBeSender,
              }),
            );
            this.print(`[${d3(s.socket)}]${mbuf} ${f62(startTime)}-${f62l(senderTime)} sec  ${ubuf}s  ${nbuf}s/sec  ${u3(s.streamRetrans)}             sender\n`);
          } else {
            jStream.add(
              'sender',
              JsonObject.of({ socket: s.socket, start: startTime, end: senderTime, seconds: senderTime, bytes: bytesSent, bits_per_second: bandwidth * 8, sender: mustBeSender }),
            );
            this.print(`[${d3(s.socket)}]${mbuf} ${f62(startTime)}-${f62l(senderTime)} sec  ${ubuf}s  ${nbuf}s/sec                  sender\n`);
          }
          bandwidth = receiverTime > 0 ? bytesReceived / receiverTime : 0;
          ubuf = unitFormat(bytesReceived, 'A');
          nbuf = unitFormat(bandwidth, 'a');
          jStream.add(
            'receiver',
            JsonObject.of({ socket: s.socket, start: startTime, end: receiverTime, seconds: endTime, bytes: bytesReceived, bits_per_second: bandwidth * 8, sender: mustBeSender }),
          );
          this.print(`[${d3(s.socket)}]${mbuf} ${f62(startTime)}-${f62l(receiverTime)} sec  ${ubuf}s  ${nbuf}s/sec                  receiver\n`);
        }
      }
      if (c.params.parallel > 1 || this.json) {
        const reverseNames = bidir && !mustBeSender;
        const sumSent = reverseNames ? 'sum_sent_bidir_reverse' : 'sum_sent';
        const sumReceived = reverseNames ? 'sum_received_bidir_reverse' : 'sum_received';
        let bandwidth = senderTime > 0 ? totalSent / senderTime : 0;
        let ubuf = unitFormat(totalSent, 'A');
        let nbuf = unitFormat(bandwidth, 'a');
        if (hasRetrans) {
          this.end.add(
            sumSent,
            JsonObject.of({ start: startTime, end: senderTime, seconds: senderTime, bytes: totalSent, bits_per_second: bandwidth * 8, retransmits: totalRetrans, sender: mustBeSender }),
          );
          this.print(`[SUM]${mbuf} ${f62(startTime)}-${f62l(senderTime)} sec  ${ubuf}s  ${nbuf}s/sec  ${d3(totalRetrans)}             sender\n`);
        } else {
          this.end.add(sumSent, JsonObject.of({ start: startTime, end: senderTime, seconds: senderTime, bytes: totalSent, bits_per_second: bandwidth * 8, sender: mustBeSender }));
          this.print(`[SUM]${mbuf} ${f62(startTime)}-${f62l(senderTime)} sec  ${ubuf}s  ${nbuf}s/sec                  sender\n`);
        }
        bandwidth = receiverTime > 0 ? totalReceived / receiverTime : 0;
        ubuf = unitFormat(totalReceived, 'A');
        nbuf = unitFormat(bandwidth, 'a');
        this.end.add(
          sumReceived,
          JsonObject.of({ start: startTime, end: receiverTime, seconds: receiverTime, bytes: totalReceived, bits_per_second: bandwidth * 8, sender: mustBeSender }),
        );
        this.print(`[SUM]${mbuf} ${f62(startTime)}-${f62l(receiverTime)} sec  ${ubuf}s  ${nbuf}s/sec                  receiver\n`);
      }
      if (this.json && mode === modes[modes.length - 1]) {
        this.end.add(
          'cpu_utilization_percent',
          JsonObject.of({
            host_total: c.cpuUtil[0],
            host_user: c.cpuUtil[1],
            host_system: c.cpuUtil[2],
            remote_total: c.remoteCpuUtil[0],
            remote_user: c.remoteCpuUtil[1],
            remote_system: c.remoteCpuUtil[2],
          }),
        );
        const snd = mustBeSender ? c.congestionUsed : c.remoteCongestionUsed;
        const rcv = mustBeSender ? c.remoteCongestionUsed : c.congestionUsed;
        if (snd !== undefined) this.end.add('sender_tcp_congestion', snd);
        if (rcv !== undefined) this.end.add('receiver_tcp_congestion', rcv);
      }
    }
  }
}
