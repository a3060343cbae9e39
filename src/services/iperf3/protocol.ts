/**
 * The iperf3 control protocol (esnet/iperf 3.x, iperf_api.h and iperf_api.c),
 * spoken by the built-in server and by `tapstack iperf3 -c`:
 *
 * - the client opens the control connection and writes a 37-byte cookie
 *   (36 characters of [a-z2-7] and a NUL); every data stream it opens later
 *   starts with the same cookie, which is how the server tells them apart;
 * - the server drives the test with one signed state byte at a time
 *   (PARAM_EXCHANGE, CREATE_STREAMS, TEST_START, TEST_RUNNING,
 *   EXCHANGE_RESULTS, DISPLAY_RESULTS); the client answers with TEST_END when
 *   its timer runs out and IPERF_DONE at the very end;
 * - parameters and results travel as JSON, each preceded by its length as a
 *   32-bit big-endian integer (iperf_api.c JSON_write / JSON_read).
 */
import { randomBytes } from 'node:crypto';

// iperf_api.h: the state bytes.
export const TEST_START = 1;
export const TEST_RUNNING = 2;
export const TEST_END = 4;
export const PARAM_EXCHANGE = 9;
export const CREATE_STREAMS = 10;
export const SERVER_TERMINATE = 11;
export const CLIENT_TERMINATE = 12;
export const EXCHANGE_RESULTS = 13;
export const DISPLAY_RESULTS = 14;
export const IPERF_START = 15;
export const IPERF_DONE = 16;
export const ACCESS_DENIED = -1;
export const SERVER_ERROR = -2;

/** iperf.h COOKIE_SIZE: an ASCII uuid-sized string with its NUL. */
export const COOKIE_SIZE = 37;
/** iperf_api.h PORT. */
export const DEFAULT_PORT = 5201;
/** iperf_api.h DEFAULT_TCP_BLKSIZE: 128 KiB per read and write. */
export const DEFAULT_TCP_BLKSIZE = 128 * 1024;
/** iperf.h MAX_BLOCKSIZE, MAX_STREAMS, MAX_TIME. */
export const MAX_BLOCKSIZE = 1024 * 1024;
export const MAX_STREAMS = 128;
export const MAX_TIME = 86400;
/** iperf_api.h DEFAULT_PACING_TIMER (µs), sent among the client's parameters. */
export const DEFAULT_PACING_TIMER = 1000;
/** iperf_api.h DEFAULT_NO_MSG_RCVD_TIMEOUT: a receiver gives up after 120 s without data. */
export const NO_MSG_RCVD_TIMEOUT_MS = 120_000;
/** The protocol version we speak, sent as client_version (iperf 3.12). */
export const PROTOCOL_VERSION = '3.12';

/** iperf_api.h error numbers that cross the wire after SERVER_ERROR. */
export const IE = {
  DURATION: 5,
  NUMSTREAMS: 6,
  BLOCKSIZE: 7,
  RECVPARAMS: 114,
  PROTOCOL: 131,
} as const;

/** iperf_error.c's text for the errors a server may report. */
export function iperfStrerror(ie: number): string {
  switch (ie) {
    case IE.DURATION:
      return `test duration too long (maximum = ${MAX_TIME} seconds)`;
    case IE.NUMSTREAMS:
      return `number of parallel streams too large (maximum = ${MAX_STREAMS})`;
    case IE.BLOCKSIZE:
      return `block size too large (maximum = ${MAX_BLOCKSIZE} bytes)`;
    case IE.RECVPARAMS:
      return 'unable to receive parameters from client';
    case IE.PROTOCOL:
      return 'protocol does not exist';
    default:
      return `server error ${ie}`;
  }
}

const COOKIE_CHARS = 'abcdefghijklmnopqrstuvwxyz234567';

/** iperf_util.c make_cookie: 36 random characters of [a-z2-7], then NUL. */
export function makeCookie(): Uint8Array {
  const r = randomBytes(COOKIE_SIZE);
  const out = new Uint8Array(COOKIE_SIZE);
  for (let i = 0; i < COOKIE_SIZE - 1; i++) out[i] = COOKIE_CHARS.charCodeAt(r[i] % COOKIE_CHARS.length);
  out[COOKIE_SIZE - 1] = 0;
  return out;
}

/** The cookie as the text iperf prints (up to its NUL). */
export function cookieText(c: Uint8Array): string {
  let n = c.indexOf(0);
  if (n < 0) n = c.length;
  return String.fromCharCode(...c.subarray(0, n));
}

/** iperf compares cookies with strcmp: equal up to the first NUL. */
export function cookiesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return cookieText(a) === cookieText(b);
}

/** A state byte on the wire (a signed char). */
export function stateByte(state: number): Uint8Array {
  return Uint8Array.of(state & 0xff);
}

/** SERVER_ERROR followed by iperf's error number and errno, each 32-bit big-endian. */
export function serverErrorBytes(ie: number, errno: number): Uint8Array {
  const b = new Uint8Array(9);
  b[0] = SERVER_ERROR & 0xff;
  const v = new DataView(b.buffer);
  v.setInt32(1, ie);
  v.setInt32(5, errno);
  return b;
}

/** Largest JSON message taken from a peer (results for 128 streams are a few kB). */
export const MAX_JSON = 1 << 20;

/** JSON_write: the length as a 32-bit big-endian integer, then the text. */
export function encodeJson(value: unknown): Uint8Array {
  const text = Buffer.from(JSON.stringify(value), 'utf8');
  const out = new Uint8Array(4 + text.length);
  new DataView(out.buffer).setUint32(0, text.length);
  out.set(text, 4);
  return out;
}

/**
 * Bytes of the control connection as they arrive, read in the pieces the
 * protocol expects: a cookie, a state byte, a length-prefixed JSON object.
 */
export class ControlReader {
  private buf = new Uint8Array(256);
  private start = 0;
  private end = 0;

  get available(): number {
    return this.end - this.start;
  }

  push(data: Uint8Array): void {
    if (this.end + data.length > this.buf.length) {
      const live = this.available;
      if (live + data.length <= this.buf.length) this.buf.copyWithin(0, this.start, this.end);
      else {
        const next = new Uint8Array(Math.max(live + data.length, this.buf.length * 2));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(data, this.end);
    this.end += data.length;
  }

  /** `n` bytes (a copy), or null while fewer have arrived. */
  take(n: number): Uint8Array | null {
    if (this.available < n) return null;
    const out = this.buf.slice(this.start, this.start + n);
    this.start += n;
    return out;
  }

  /** One state byte as a signed value, or null. */
  takeState(): number | null {
    if (this.available < 1) return null;
    const v = this.buf[this.start++];
    return v >= 0x80 ? v - 0x100 : v;
  }

  /** A 32-bit big-endian integer (signed), or null. */
  takeInt32(): number | null {
    const b = this.take(4);
    return b === null ? null : new DataView(b.buffer).getInt32(0);
  }

  /**
   * A length-prefixed JSON value: `undefined` while incomplete, an Error when
   * the length is absurd or the text isn't JSON.
   */
  takeJson(): unknown {
    if (this.available < 4) return undefined;
    const b = this.buf;
    const s = this.start;
    const len = ((b[s] << 24) | (b[s + 1] << 16) | (b[s + 2] << 8) | b[s + 3]) >>> 0;
    if (len > MAX_JSON) return new Error(`JSON message of ${len} bytes`);
    if (this.available < 4 + len) return undefined;
    const text = Buffer.from(b.buffer, b.byteOffset + s + 4, len).toString('utf8');
    this.start += 4 + len;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return new Error('malformed JSON');
    }
  }
}

// =====================================================================
// Parameters (iperf_api.c send_parameters / get_parameters)
// =====================================================================

export interface TestParams {
  protocol: 'tcp' | 'udp' | 'sctp';
  omit: number;
  /** Seconds; 0 when the test is bounded by bytes or blocks. */
  time: number;
  /** Bytes to send (-n), 0 for none. */
  num: number;
  /** Blocks to send (-k), 0 for none. */
  blockcount: number;
  parallel: number;
  reverse: boolean;
  bidirectional: boolean;
  /** Block size (-l). */
  len: number;
  /** -b in bits per second, 0 for unlimited. */
  bandwidth: number;
  /** -w, 0 for the default. */
  window: number;
  nodelay: boolean;
  mss: number;
  congestion?: string;
  /** --fq-rate in bits per second, 0 for none: the sockets' SO_MAX_PACING_RATE (iperf_tcp.c). */
  fqrate: number;
  clientVersion?: string;
}

export function defaultParams(): TestParams {
  return {
    protocol: 'tcp',
    omit: 0,
    time: 10,
    num: 0,
    blockcount: 0,
    parallel: 1,
    reverse: false,
    bidirectional: false,
    len: DEFAULT_TCP_BLKSIZE,
    bandwidth: 0,
    window: 0,
    nodelay: false,
    mss: 0,
    fqrate: 0,
  };
}

/** The parameters as the client sends them, in send_parameters' order. */
export function paramsJson(p: TestParams): Record<string, unknown> {
  const j: Record<string, unknown> = {};
  j[p.protocol] = true;
  j.omit = p.omit;
  j.time = p.time;
  j.num = p.num;
  j.blockcount = p.blockcount;
  if (p.mss) j.MSS = p.mss;
  if (p.nodelay) j.nodelay = true;
  j.parallel = p.parallel;
  if (p.reverse) j.reverse = true;
  if (p.bidirectional) j.bidirectional = true;
  if (p.window) j.window = p.window;
  if (p.len) j.len = p.len;
  if (p.bandwidth) j.bandwidth = p.bandwidth;
  j.pacing_timer = DEFAULT_PACING_TIMER;
  if (p.congestion !== undefined) j.congestion = p.congestion;
  if (p.fqrate) j.fqrate = p.fqrate;
  j.client_version = p.clientVersion ?? PROTOCOL_VERSION;
  return j;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** cJSON's valueint: numbers truncate toward zero; anything else reads as 0. */
function int(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * The server's reading of the client's parameters (get_parameters: a key's
 * presence is what counts for the flags). Returns an iperf error number when
 * the test can't be run here.
 */
export function parseParams(v: unknown): TestParams | { error: number } {
  if (!isObject(v)) return { error: IE.RECVPARAMS };
  const p = defaultParams();
  p.protocol = 'udp' in v ? 'udp' : 'sctp' in v ? 'sctp' : 'tcp';
  if ('omit' in v) p.omit = int(v.omit);
  if ('time' in v) p.time = int(v.time);
  p.num = int(v.num);
  p.blockcount = int(v.blockcount);
  if ('MSS' in v) p.mss = int(v.MSS);
  p.nodelay = 'nodelay' in v;
  if ('parallel' in v) p.parallel = int(v.parallel);
  p.reverse = 'reverse' in v;
  p.bidirectional = 'bidirectional' in v;
  if ('window' in v) p.window = int(v.window);
  if ('len' in v) p.len = int(v.len);
  if ('bandwidth' in v) p.bandwidth = int(v.bandwidth);
  if (typeof v.congestion === 'string') p.congestion = v.congestion;
  if ('fqrate' in v) p.fqrate = int(v.fqrate);
  if (typeof v.client_version === 'string') p.clientVersion = v.client_version;
  // The client checks these (iperf_parse_arguments); a server that trusted them
  // could be made to open unbounded streams or buffers.
  if (p.protocol !== 'tcp') return { error: IE.PROTOCOL };
  if (p.parallel < 1 || p.parallel > MAX_STREAMS) return { error: IE.NUMSTREAMS };
  if (p.len < 1 || p.len > MAX_BLOCKSIZE) return { error: IE.BLOCKSIZE };
  if (p.time < 0 || p.time > MAX_TIME || p.omit < 0 || p.omit > MAX_TIME) return { error: IE.DURATION };
  return p;
}

// =====================================================================
// Results (iperf_api.c send_results / get_results)
// =====================================================================

export interface StreamResultWire {
  id: number;
  bytes: number;
  retransmits: number;
  jitter: number;
  errors: number;
  packets: number;
  startTime: number;
  endTime: number;
}

export interface TestResults {
  cpuUtil: [number, number, number];
  /** 1 or 0 from a sender, -1 from a side that only received. */
  senderHasRetransmits: number;
  congestionUsed?: string;
  streams: StreamResultWire[];
}

export function resultsJson(r: TestResults): Record<string, unknown> {
  const j: Record<string, unknown> = {
    cpu_util_total: r.cpuUtil[0],
    cpu_util_user: r.cpuUtil[1],
    cpu_util_system: r.cpuUtil[2],
    sender_has_retransmits: r.senderHasRetransmits,
  };
  if (r.congestionUsed !== undefined) j.congestion_used = r.congestionUsed;
  j.streams = r.streams.map((s) => ({
    id: s.id,
    bytes: s.bytes,
    retransmits: s.retransmits,
    jitter: s.jitter,
    errors: s.errors,
    packets: s.packets,
    start_time: s.startTime,
    end_time: s.endTime,
  }));
  return j;
}

/** get_results: the required keys must be there, else the results are refused. */
export function parseResults(v: unknown): TestResults | null {
  if (!isObject(v)) return null;
  const need = ['cpu_util_total', 'cpu_util_user', 'cpu_util_system', 'sender_has_retransmits'];
  if (!need.every((k) => k in v)) return null;
  if (!Array.isArray(v.streams)) return null;
  const streams: StreamResultWire[] = [];
  for (const s of v.streams as unknown[]) {
    if (!isObject(s)) return null;
    if (!['id', 'bytes', 'retransmits', 'jitter', 'errors', 'packets'].every((k) => k in s)) return null;
    streams.push({
      id: int(s.id),
      bytes: num(s.bytes),
      retransmits: int(s.retransmits),
      jitter: num(s.jitter),
      errors: int(s.errors),
      packets: int(s.packets),
      // Servers before 3.2 send no times; 0 and 0 mean "not known".
      startTime: num(s.start_time),
      endTime: num(s.end_time),
    });
  }
  return {
    cpuUtil: [num(v.cpu_util_total), num(v.cpu_util_user), num(v.cpu_util_system)],
    senderHasRetransmits: int(v.sender_has_retransmits),
    congestionUsed: typeof v.congestion_used === 'string' ? v.congestion_used : undefined,
    streams,
  };
}

/** iperf_api.c iperf_add_stream: the first stream is 1, the next ones 3, 4, 5, ... */
export function streamId(index: number): number {
  return index === 0 ? 1 : index + 2;
}
