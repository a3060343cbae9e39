/**
 * One test on the iperf3 server, from the control connection's cookie to
 * IPERF_DONE (iperf_server_api.c iperf_run_server, iperf_accept,
 * iperf_handle_message_server; iperf_api.c iperf_exchange_parameters and
 * iperf_exchange_results). Whatever way it ends, every connection it made is
 * closed and its timers are stopped.
 */
import { randomBytes } from 'node:crypto';
import type { Tcp } from '../../tcp/tcp.js';
import type { TcpConnection } from '../../tcp/connection.js';
import type { Timer } from '../../time/timers.js';
import type { Errno } from '../../errors.js';
import { ControlChannel, deny, type ControlOwner } from './control.js';
import { Iperf3Stream, usOf, type StreamOwner } from './stream.js';
import { CpuMeter } from './cpu.js';
import {
  CLIENT_TERMINATE,
  COOKIE_SIZE,
  CREATE_STREAMS,
  DISPLAY_RESULTS,
  EXCHANGE_RESULTS,
  IE,
  IPERF_DONE,
  IPERF_START,
  NO_MSG_RCVD_TIMEOUT_MS,
  PARAM_EXCHANGE,
  TEST_END,
  TEST_RUNNING,
  TEST_START,
  cookiesEqual,
  defaultParams,
  encodeJson,
  parseParams,
  parseResults,
  resultsJson,
  serverErrorBytes,
  stateByte,
  streamId,
  type TestParams,
} from './protocol.js';

/**
 * iperf_server_api.c create_server_timers: "max_rtt = 4 seconds, 10 state
 * transitions": the time a test may take beyond its duration. We also give a
 * test this long to get from its first byte to TEST_RUNNING.
 */
const GRACE_MS = 4 * 10 * 1000;

/** What a test needs from the service that runs it. */
export interface TestHost {
  readonly tcp: Tcp;
  /** The test is over (why: null when it ended as iperf3 ends a test). */
  testEnded(t: ServerTest, why: string | null): void;
}

type Phase = 'cookie' | 'params' | 'streams' | 'running' | 'results' | 'display' | 'over';

export class ServerTest implements ControlOwner, StreamOwner {
  readonly tcp: Tcp;
  private readonly ctrl: ControlChannel;
  private phase: Phase = 'cookie';
  /** iperf's test->state: the last state byte sent or received. */
  private state = IPERF_START;
  private cookie: Uint8Array | null = null;
  params: TestParams = defaultParams();
  block: Uint8Array = new Uint8Array(0);
  /** The test's streams in id order, once they brought the cookie. */
  readonly streams: Iperf3Stream[] = [];
  /** Connections that have not shown their cookie yet. */
  private readonly candidates = new Set<Iperf3Stream>();
  private toReceive = 0;
  private toSend = 0;
  private received = 0;
  private sent = 0;
  private done = false;
  private omitting = false;
  private readonly cpu = new CpuMeter();
  private cpuUtil: [number, number, number] = [0, 0, 0];
  private lastActivity: number;
  private readonly deadline: Timer;
  private readonly idleTimer: Timer;
  private readonly omitTimer: Timer;
  /** The client's results, for whoever wants to compare (tests). */
  clientBytes = 0;

  constructor(
    private readonly service: TestHost,
    c: TcpConnection,
  ) {
    this.tcp = service.tcp;
    const time = this.tcp.time;
    this.lastActivity = time.now();
    this.deadline = time.timer(() => this.end('the test took too long', true));
    this.idleTimer = time.timer(() => this.idleCheck());
    this.omitTimer = time.timer(() => this.omitOver());
    time.arm(this.deadline, GRACE_MS);
    time.arm(this.idleTimer, NO_MSG_RCVD_TIMEOUT_MS);
    this.ctrl = new ControlChannel(this.tcp, c, this);
  }

  // ---- StreamOwner ----

  get counting(): boolean {
    return this.state === TEST_RUNNING;
  }

  get sending(): boolean {
    return this.state === TEST_RUNNING && !this.done;
  }

  get acceptingStreams(): boolean {
    return this.phase === 'streams';
  }

  activity(): void {
    this.lastActivity = this.tcp.time.now();
  }

  /** A new connection while streams are being made: it shows its cookie first (iperf_tcp_accept). */
  addStream(c: TcpConnection): void {
    const s = new Iperf3Stream(this, c, true);
    this.candidates.add(s);
    c.noDelay = this.params.nodelay;
    // iperf_tcp_accept: --fq-rate sets SO_MAX_PACING_RATE (bytes/s) on the stream, which paces it.
    if (this.params.fqrate > 0) c.setMaxPacingRate(this.params.fqrate / 8);
  }

  streamCookie(s: Iperf3Stream, cookie: Uint8Array): void {
    this.candidates.delete(s);
    if (this.phase !== 'streams' || this.cookie === null || !cookiesEqual(cookie, this.cookie)) {
      s.closed = true;
      deny(this.tcp, s.conn);
      return;
    }
    // iperf_run_server: the streams the server receives on are accepted first.
    if (this.received < this.toReceive) {
      this.received++;
      s.sender = false;
    } else if (this.sent < this.toSend) {
      this.sent++;
      s.sender = true;
    } else {
      s.abort();
      return;
    }
    s.id = streamId(this.streams.length);
    this.streams.push(s);
    if (this.received === this.toReceive && this.sent === this.toSend) this.startTest();
  }

  streamConnected(): void {
    /* the server's streams are accepted, never connected */
  }

  streamClosed(s: Iperf3Stream, err: Errno | null): void {
    this.candidates.delete(s);
    if (this.done || this.phase === 'over' || !this.streams.includes(s)) return;
    // iperf_recv / iperf_send fail: the server gives the test up.
    if (err !== null) this.end(err === 'ETIMEDOUT' ? 'a stream timed out' : `a stream failed: ${err}`, true);
  }

  // ---- ControlOwner ----

  controlConnected(): void {
    /* accepted connections are connected already */
  }

  controlInput(): void {
    this.activity();
    const r = this.ctrl.reader;
    while (this.phase !== 'over') {
      switch (this.phase) {
        case 'cookie': {
          const ck = r.take(COOKIE_SIZE);
          if (ck === null) return;
          this.cookie = ck;
          this.sendState(PARAM_EXCHANGE);
          this.phase = 'params';
          break;
        }
        case 'params': {
          const j = r.takeJson();
          if (j === undefined) return;
          this.takeParams(j);
          break;
        }
        case 'results': {
          const j = r.takeJson();
          if (j === undefined) return;
          this.exchangeResults(j);
          break;
        }
        default: {
          const m = r.takeState();
          if (m === null) return;
          this.message(m);
        }
      }
    }
  }

  controlEof(): void {
    // iperf_handle_message_server: a read of 0 bytes ends the test.
    if (this.phase !== 'over') this.end('the client has unexpectedly closed the connection', false);
  }

  controlClosed(err: Errno | null): void {
    if (this.phase !== 'over') this.end(err === null ? 'the control connection closed' : `the control connection failed: ${err}`, true);
  }

  // ---- the test ----

  private sendState(s: number): void {
    this.state = s;
    this.ctrl.send(stateByte(s));
  }

  /** get_parameters, then the streams' listener (iperf_exchange_parameters). */
  private takeParams(j: unknown): void {
    const p = j instanceof Error ? { error: IE.RECVPARAMS } : parseParams(j);
    if ('error' in p) {
      this.ctrl.send(serverErrorBytes(p.error, 0));
      this.end(`refused the parameters (iperf error ${p.error})`, false);
      return;
    }
    this.params = p;
    this.block = new Uint8Array(randomBytes(p.len));
    if (p.bidirectional) {
      this.toReceive = p.parallel;
      this.toSend = p.parallel;
    } else if (p.reverse) this.toSend = p.parallel;
    else this.toReceive = p.parallel;
    this.phase = 'streams';
    this.sendState(CREATE_STREAMS);
  }

  /** Every stream is here: TEST_START, the clocks, TEST_RUNNING (iperf_run_server). */
  private startTest(): void {
    const time = this.tcp.time;
    this.sendState(TEST_START);
    const now = usOf(time.now());
    for (const s of this.streams) s.start(now);
    this.cpu.reset();
    const p = this.params;
    if (p.time !== 0) time.arm(this.deadline, (p.time + p.omit) * 1000 + GRACE_MS);
    else time.cancel(this.deadline);
    if (p.omit > 0) {
      this.omitting = true;
      time.arm(this.omitTimer, p.omit * 1000);
    }
    this.phase = 'running';
    this.sendState(TEST_RUNNING);
    for (const s of this.streams) if (s.sender && s.fill()) this.tcp.defer(s.conn);
  }

  private omitOver(): void {
    this.omitting = false;
    const now = usOf(this.tcp.time.now());
    for (const s of this.streams) s.resetStats(now, s.sender);
  }

  /** iperf_handle_message_server. */
  private message(m: number): void {
    switch (m) {
      case TEST_START:
      case TEST_RUNNING:
        return;
      case TEST_END:
        if (this.phase === 'running') this.testEnd();
        else this.end('TEST_END before the test ran', false);
        return;
      case IPERF_DONE:
        this.end(this.phase === 'display' ? null : 'IPERF_DONE before the results', false);
        return;
      case CLIENT_TERMINATE:
        this.end('the client has terminated', false);
        return;
      default:
        this.end(`received an unknown control message (${m})`, false);
    }
  }

  /**
   * TEST_END: the figures are taken, the streams closed (a receiving stream
   * with a RST, as Linux closes a socket with unread data), and the results
   * exchanged.
   */
  private testEnd(): void {
    this.state = TEST_END;
    this.done = true;
    this.cpuUtil = this.cpu.read();
    this.tcp.time.cancel(this.omitTimer);
    const now = usOf(this.tcp.time.now());
    for (const s of this.streams) {
      s.stats(now, this.omitting, s.sender);
      if (s.sender) s.close();
      else s.abort();
    }
    this.tcp.time.arm(this.deadline, GRACE_MS);
    this.phase = 'results';
    this.sendState(EXCHANGE_RESULTS);
  }

  /** iperf_exchange_results on the server: the client's results in, ours out. */
  private exchangeResults(j: unknown): void {
    const r = j instanceof Error ? null : parseResults(j);
    if (r === null) {
      this.end('unable to receive results', false);
      return;
    }
    for (const sr of r.streams) {
      const s = this.streams.find((x) => x.id === sr.id);
      if (s === undefined) {
        this.end('stream has an invalid id', false);
        return;
      }
      this.clientBytes += sr.bytes;
    }
    const mode = this.params.bidirectional ? 'bidir' : this.params.reverse ? 'sender' : 'receiver';
    this.ctrl.send(
      encodeJson(
        resultsJson({
          cpuUtil: this.cpuUtil,
          // iperf_api.c send_results: -1 from a side that only received.
          senderHasRetransmits: mode === 'receiver' ? -1 : 1,
          congestionUsed: this.tcp.settings.congestionControl,
          streams: this.streams.map((s) => ({
            id: s.id,
            bytes: s.sender ? s.bytesSent - s.bytesSentOmit : s.bytesReceived,
            retransmits: s.sender ? s.streamRetrans : -1,
            jitter: 0,
            errors: 0,
            packets: 0,
            startTime: 0,
            endTime: (s.endUs - s.startUs) / 1e6,
          })),
        }),
      ),
    );
    this.phase = 'display';
    this.sendState(DISPLAY_RESULTS);
  }

  /** iperf_run_server's no-message timeout: a client that went silent ends the test. */
  private idleCheck(): void {
    const idle = this.tcp.time.now() - this.lastActivity;
    if (idle >= NO_MSG_RCVD_TIMEOUT_MS) this.end('idle timeout for receiving data', true);
    else this.tcp.time.arm(this.idleTimer, NO_MSG_RCVD_TIMEOUT_MS - idle);
  }

  /** Bytes the server's streams moved: what each stream sent or received. */
  get bytes(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const s of this.streams) {
      if (s.sender) sent += s.bytesSent - s.bytesSentOmit;
      else received += s.bytesReceived;
    }
    return { sent, received };
  }

  /**
   * The test is over (cleanup_server): timers stop and every connection is
   * closed; `hard` resets them, for a client that is gone or misbehaved.
   */
  end(why: string | null, hard: boolean): void {
    if (this.phase === 'over') return;
    this.phase = 'over';
    this.done = true;
    const time = this.tcp.time;
    time.cancel(this.deadline);
    time.cancel(this.idleTimer);
    time.cancel(this.omitTimer);
    for (const s of this.candidates) s.abort();
    this.candidates.clear();
    for (const s of this.streams) {
      if (hard || !s.sender) s.abort();
      else s.close();
    }
    if (hard) this.ctrl.abort();
    else this.ctrl.close();
    this.service.testEnded(this, why);
  }
}
