/**
 * The client side of an iperf3 test, run from inside the stack against any
 * iperf3 server (iperf_client_api.c iperf_run_client, iperf_connect,
 * iperf_handle_message_client, iperf_create_streams, iperf_client_end).
 * What it prints is up to a ClientReporter, called where iperf3 calls its
 * reporter and its on_connect / on_new_stream / on_test_start callbacks;
 * the figures it keeps are iperf3's, per stream (stream.ts) and per test.
 */
import { randomBytes } from 'node:crypto';
import type { Tcp } from '../../tcp/tcp.js';
import type { Timer } from '../../time/timers.js';
import type { Errno } from '../../errors.js';
import { ControlChannel, type ControlOwner } from './control.js';
import { Iperf3Stream, usOf, type StreamOwner } from './stream.js';
import { CpuMeter } from './cpu.js';
import {
  ACCESS_DENIED,
  CLIENT_TERMINATE,
  CREATE_STREAMS,
  DISPLAY_RESULTS,
  EXCHANGE_RESULTS,
  IPERF_DONE,
  IPERF_START,
  NO_MSG_RCVD_TIMEOUT_MS,
  PARAM_EXCHANGE,
  SERVER_ERROR,
  SERVER_TERMINATE,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
  cookieText,
  encodeJson,
  iperfStrerror,
  makeCookie,
  paramsJson,
  parseResults,
  resultsJson,
  streamId,
  type TestParams,
} from './protocol.js';

/** iperf.h iperf_mode. */
export const SENDER = 1;
export const RECEIVER = 0;
export const BIDIRECTIONAL = -1;

/** What the client prints, called as iperf3 calls its callbacks. */
export interface ClientReporter {
  /** on_connect: the parameters went to the server. */
  onConnect(): void;
  /** on_new_stream: a data stream is connected. */
  onNewStream(s: Iperf3Stream): void;
  /** on_test_start. */
  onTestStart(): void;
  /** reporter_callback: what it prints depends on the client's state. */
  report(): void;
  /** The run is over: null when it went to its end, else iperf3's error text. */
  onEnd(error: string | null): void;
}

export interface ClientOptions {
  addr: number;
  host: string;
  port: number;
  params: TestParams;
}

/** strerror(3) for what a connection can fail with. */
const STRERROR: Partial<Record<Errno, string>> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  ENETUNREACH: 'Network is unreachable',
  EHOSTUNREACH: 'No route to host',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EADDRINUSE: 'Address already in use',
  EPIPE: 'Broken pipe',
};

export function strerror(e: Errno): string {
  return STRERROR[e] ?? e;
}

type Phase = 'connecting' | 'messages' | 'results' | 'server-error' | 'over';

export class Iperf3Client implements ControlOwner, StreamOwner {
  readonly cookie = makeCookie();
  readonly params: TestParams;
  readonly mode: number;
  readonly streams: Iperf3Stream[] = [];
  /** iperf's test->state. */
  state = IPERF_START;
  done = false;
  omitting = false;
  readonly block: Uint8Array;
  /** check_sender_has_retransmits: 1 where this side sends (Linux has tcpi_total_retrans). */
  senderHasRetransmits: number;
  otherSideHasRetransmits = 0;
  cpuUtil: [number, number, number] = [0, 0, 0];
  remoteCpuUtil: [number, number, number] = [0, 0, 0];
  readonly congestionUsed: string;
  remoteCongestionUsed: string | undefined;
  /** TCP_MAXSEG of the control connection. */
  ctrlMss = 0;
  private phase: Phase = 'connecting';
  private ctrl: ControlChannel | null = null;
  private toCreate = 0;
  /** The stream whose handshake is under way. */
  private connecting: Iperf3Stream | null = null;
  private readonly cpu = new CpuMeter();
  private readonly testTimer: Timer;
  private readonly tickTimer: Timer;
  private readonly idleTimer: Timer;
  private readonly omitTimer: Timer;
  private nextTickMs = 0;
  private lastActivity = 0;

  constructor(
    readonly tcp: Tcp,
    readonly opts: ClientOptions,
    private readonly reporter: ClientReporter,
  ) {
    const p = opts.params;
    this.params = p;
    this.mode = p.bidirectional ? BIDIRECTIONAL : p.reverse ? RECEIVER : SENDER;
    this.senderHasRetransmits = this.mode !== RECEIVER ? 1 : 0;
    this.congestionUsed = p.congestion ?? tcp.settings.congestionControl;
    this.block = new Uint8Array(randomBytes(p.len));
    const time = tcp.time;
    this.testTimer = time.timer(() => this.testTimeUp());
    this.tickTimer = time.timer(() => this.tick());
    this.idleTimer = time.timer(() => this.idleCheck());
    this.omitTimer = time.timer(() => this.omitOver());
  }

  get cookieString(): string {
    return cookieText(this.cookie);
  }

  /** iperf_connect: the control connection, then the cookie. */
  start(): void {
    const c = this.tcp.newConnection();
    const ctrl = new ControlChannel(this.tcp, c, this);
    this.ctrl = ctrl;
    const err = this.tcp.activeOpen(c, this.opts.addr, this.opts.port);
    if (err !== null) {
      c.user = null;
      this.fail(`unable to connect to server: ${strerror(err)}`);
      return;
    }
    this.activity();
    this.tcp.time.arm(this.idleTimer, NO_MSG_RCVD_TIMEOUT_MS);
  }

  // ---- StreamOwner ----

  get counting(): boolean {
    return this.state === TEST_RUNNING;
  }

  get sending(): boolean {
    return this.state === TEST_RUNNING && !this.done;
  }

  activity(): void {
    this.lastActivity = this.tcp.time.now();
  }

  streamCookie(): void {
    /* the client's streams send the cookie, they don't read one */
  }

  streamConnected(s: Iperf3Stream): void {
    this.connecting = null;
    if (this.phase === 'over') return;
    // iperf_tcp_connect: the cookie goes first on every stream.
    s.conn.write(this.cookie);
    this.tcp.defer(s.conn);
    s.id = streamId(this.streams.length);
    this.streams.push(s);
    this.reporter.onNewStream(s);
    this.connectStream();
  }

  streamClosed(s: Iperf3Stream, err: Errno | null): void {
    if (this.phase === 'over' || this.done) return;
    if (!this.streams.includes(s)) {
      this.fail(`unable to connect stream: ${strerror(err ?? 'ECONNRESET')}`);
      return;
    }
    if (err !== null) this.fail(s.sender ? `unable to write to stream socket: ${strerror(err)}` : `unable to read from stream socket: ${strerror(err)}`);
  }

  // ---- ControlOwner ----

  controlConnected(): void {
    const ctrl = this.ctrl!;
    this.ctrlMss = ctrl.conn.mss;
    ctrl.send(this.cookie);
    this.phase = 'messages';
  }

  controlInput(): void {
    this.activity();
    const r = this.ctrl!.reader;
    while (this.phase !== 'over') {
      if (this.phase === 'results') {
        const j = r.takeJson();
        if (j === undefined) return;
        this.getResults(j);
      } else if (this.phase === 'server-error') {
        if (r.available < 8) return;
        const ie = r.takeInt32()!;
        r.takeInt32();
        this.fail(iperfStrerror(ie));
      } else {
        const m = r.takeState();
        if (m === null) return;
        this.message(m);
      }
    }
  }

  controlEof(): void {
    if (this.phase !== 'over') this.fail('control socket has closed unexpectedly');
  }

  controlClosed(err: Errno | null): void {
    if (this.phase === 'over') return;
    if (this.phase === 'connecting') this.fail(`unable to connect to server: ${strerror(err ?? 'ECONNRESET')}`);
    else this.fail('control socket has closed unexpectedly');
  }

  // ---- the test ----

  /** iperf_handle_message_client. */
  private message(m: number): void {
    this.state = m;
    switch (m) {
      case PARAM_EXCHANGE:
        this.ctrl!.send(encodeJson(paramsJson(this.params)));
        this.reporter.onConnect();
        return;
      case CREATE_STREAMS:
        this.toCreate = this.mode === BIDIRECTIONAL ? 2 * this.params.parallel : this.params.parallel;
        this.connectStream();
        return;
      case TEST_START:
        this.initTest();
        return;
      case TEST_RUNNING:
        for (const s of this.streams) if (s.sender && s.fill()) this.tcp.defer(s.conn);
        return;
      case EXCHANGE_RESULTS:
        this.sendResults();
        this.phase = 'results';
        return;
      case DISPLAY_RESULTS:
        this.clientEnd();
        return;
      case IPERF_DONE:
        return;
      case SERVER_TERMINATE:
        // Temporarily in DISPLAY_RESULTS, for the summary of what was done.
        this.cpuUtil = this.cpu.read();
        this.state = DISPLAY_RESULTS;
        this.reporter.report();
        this.state = SERVER_TERMINATE;
        this.fail('the server has terminated');
        return;
      case ACCESS_DENIED:
        this.fail('the server is busy running a test. try again later');
        return;
      case SERVER_ERROR:
        this.phase = 'server-error';
        return;
      default:
        this.fail('received an unknown control message');
    }
  }

  /**
   * iperf_create_streams: one connection after the other (iperf's connect
   * blocks), senders first in a bidirectional test, since the server gives
   * roles in the order it accepts.
   */
  private connectStream(): void {
    const i = this.streams.length;
    if (i >= this.toCreate) return;
    const c = this.tcp.newConnection();
    const s = new Iperf3Stream(this, c, false);
    s.sender = this.mode === BIDIRECTIONAL ? i < this.params.parallel : this.mode === SENDER;
    // The descriptor iperf3 would print: its control socket is 4, each stream
    // takes one descriptor and its buffer file the next.
    s.socket = 5 + 2 * i;
    if (this.params.nodelay) c.noDelay = true;
    this.connecting = s;
    const err = this.tcp.activeOpen(c, this.opts.addr, this.opts.port);
    if (err !== null) {
      c.user = null;
      this.connecting = null;
      this.fail(`unable to connect stream: ${strerror(err)}`);
    }
  }

  /** TEST_START: iperf_init_test and create_client_timers. */
  private initTest(): void {
    const time = this.tcp.time;
    const now = time.now();
    for (const s of this.streams) s.start(usOf(now));
    this.cpu.reset();
    const p = this.params;
    if (p.time !== 0) time.arm(this.testTimer, (p.time + p.omit) * 1000);
    this.nextTickMs = now + 1000;
    time.arm(this.tickTimer, 1000);
    if (p.omit > 0) {
      this.omitting = true;
      time.arm(this.omitTimer, p.omit * 1000);
    }
    this.reporter.onTestStart();
  }

  /** The stats and reporter timers (both every second, stats first). */
  private tick(): void {
    if (this.done) return;
    const time = this.tcp.time;
    this.stats();
    this.reporter.report();
    // Periodic from the first deadline, so the intervals don't drift.
    this.nextTickMs += 1000;
    time.arm(this.tickTimer, this.nextTickMs - time.now());
  }

  private stats(): void {
    const now = usOf(this.tcp.time.now());
    for (const s of this.streams) s.stats(now, this.omitting, s.sender && this.senderHasRetransmits === 1);
  }

  private omitOver(): void {
    this.omitting = false;
    const time = this.tcp.time;
    const now = usOf(time.now());
    for (const s of this.streams) s.resetStats(now, s.sender && this.senderHasRetransmits === 1);
    this.nextTickMs = time.now() + 1000;
    time.arm(this.tickTimer, 1000);
  }

  /** The test timer: "Yes, done!  Send TEST_END." */
  private testTimeUp(): void {
    if (this.done || this.phase === 'over') return;
    this.done = true;
    this.tcp.time.cancel(this.tickTimer);
    this.cpuUtil = this.cpu.read();
    this.stats();
    this.state = TEST_END;
    this.ctrl!.send(Uint8Array.of(TEST_END));
  }

  /** send_results from the client's side. */
  private sendResults(): void {
    this.ctrl!.send(
      encodeJson(
        resultsJson({
          cpuUtil: this.cpuUtil,
          senderHasRetransmits: this.mode === RECEIVER ? -1 : this.senderHasRetransmits,
          congestionUsed: this.congestionUsed,
          streams: this.streams.map((s) => ({
            id: s.id,
            bytes: s.sender ? s.bytesSent - s.bytesSentOmit : s.bytesReceived,
            retransmits: s.sender && this.senderHasRetransmits === 1 ? s.streamRetrans : -1,
            jitter: 0,
            errors: 0,
            packets: 0,
            startTime: 0,
            endTime: (s.endUs - s.startUs) / 1e6,
          })),
        }),
      ),
    );
  }

  /** get_results: the server's side of each stream. */
  private getResults(j: unknown): void {
    const r = j instanceof Error ? null : parseResults(j);
    if (r === null) {
      this.fail('unable to receive results');
      return;
    }
    this.remoteCpuUtil = r.cpuUtil;
    if (this.mode === RECEIVER) {
      this.senderHasRetransmits = r.senderHasRetransmits;
      this.otherSideHasRetransmits = 0;
    } else if (this.mode === BIDIRECTIONAL) this.otherSideHasRetransmits = r.senderHasRetransmits;
    for (const sr of r.streams) {
      const s = this.streams.find((x) => x.id === sr.id);
      if (s === undefined) {
        this.fail('stream has an invalid id');
        return;
      }
      if (s.sender) {
        s.bytesReceived = sr.bytes;
        s.receiverTime = sr.endTime - sr.startTime;
      } else {
        s.bytesSent = sr.bytes;
        s.streamRetrans = sr.retransmits;
        s.senderTime = sr.endTime - sr.startTime;
      }
    }
    this.remoteCongestionUsed = r.congestionUsed;
    this.phase = 'messages';
  }

  /** DISPLAY_RESULTS: iperf_client_end, then "iperf Done.". */
  private clientEnd(): void {
    this.closeStreams();
    this.reporter.report();
    this.ctrl!.send(Uint8Array.of(IPERF_DONE));
    this.finish(null);
  }

  private closeStreams(): void {
    for (const s of this.streams) {
      // A receiver still being sent to would leave unread data: Linux resets such a socket.
      if (!s.sender && !s.eof) s.abort();
      else s.close();
    }
  }

  /** iperf_run_client's no-message timeout. */
  private idleCheck(): void {
    if (this.phase === 'over') return;
    const idle = this.tcp.time.now() - this.lastActivity;
    if (idle >= NO_MSG_RCVD_TIMEOUT_MS) this.fail('idle timeout for receiving data');
    else this.tcp.time.arm(this.idleTimer, NO_MSG_RCVD_TIMEOUT_MS - idle);
  }

  /**
   * The user gave up (^C): the server hears CLIENT_TERMINATE (iperf_got_sigend),
   * then the streams close as the kernel closes an exiting iperf3's sockets.
   */
  terminate(): void {
    if (this.phase === 'over') return;
    this.ctrl?.send(Uint8Array.of(CLIENT_TERMINATE));
    this.finish('interrupt - the client has terminated');
  }

  /** cleanup_and_fail: streams closed, IPERF_DONE unless the server refused us. */
  private fail(error: string): void {
    if (this.phase === 'over') return;
    if (this.state > 0 && this.phase !== 'connecting') this.ctrl?.send(Uint8Array.of(IPERF_DONE));
    this.finish(error, true);
  }

  private finish(error: string | null, hard = false): void {
    if (this.phase === 'over') return;
    this.phase = 'over';
    this.done = true;
    const time = this.tcp.time;
    time.cancel(this.testTimer);
    time.cancel(this.tickTimer);
    time.cancel(this.idleTimer);
    time.cancel(this.omitTimer);
    if (hard) for (const s of this.streams) s.abort();
    else this.closeStreams();
    this.connecting?.abort();
    this.connecting = null;
    this.ctrl?.close();
    this.reporter.onEnd(error);
  }
}

