/**
 * `tapstack iperf3 -c HOST [-p PORT] [-t S] [-R] [-P N] [-l LEN] [-J] [--bidir]`:
 * an iperf3 client run by the stack itself against any iperf3 server,
 * printing what iperf3 prints. A streaming command, like ping.
 */
import type { Stack } from '../stack.js';
import type { CommandOutput } from './protocol.js';
import { parseIp4 } from '../wire/addr.js';
import { Iperf3Client } from '../services/iperf3/client.js';
import { DEFAULT_PORT, MAX_BLOCKSIZE, MAX_STREAMS, MAX_TIME, defaultParams, type TestParams } from '../services/iperf3/protocol.js';
import { Iperf3Report } from './iperf3-report.js';

export interface Iperf3Options {
  host: string;
  addr: number;
  port: number;
  json: boolean;
  params: TestParams;
}

/** A command-line error, printed as iperf3 prints its own (exit status 1). */
export class Iperf3ArgError extends Error {}

/** iperf3 options this client does not run, named in the refusal. */
const UNSUPPORTED = new Map<string, string>([
  ['-u', 'UDP tests'],
  ['--udp', 'UDP tests'],
  ['--sctp', 'SCTP tests'],
  ['-b', 'a target bitrate'],
  ['--bitrate', 'a target bitrate'],
  ['--bandwidth', 'a target bitrate'],
  ['-n', 'a byte count'],
  ['--bytes', 'a byte count'],
  ['-k', 'a block count'],
  ['--blockcount', 'a block count'],
  ['-w', 'a socket buffer size'],
  ['--window', 'a socket buffer size'],
  ['-M', 'setting the MSS'],
  ['--set-mss', 'setting the MSS'],
  ['-i', 'another reporting interval'],
  ['--interval', 'another reporting interval'],
  ['-s', 'server mode (use "service add iperf3 tcp :5201")'],
  ['--server', 'server mode (use "service add iperf3 tcp :5201")'],
  ['-6', 'IPv6'],
  ['--version6', 'IPv6'],
  ['-Z', 'zero copy'],
  ['--zerocopy', 'zero copy'],
  ['-F', 'file transfers'],
  ['--file', 'file transfers'],
  ['--get-server-output', 'the server output'],
]);

/** units.c unit_atoi: a number with an optional K, M, G or T (powers of 1024). */
function unitAtoi(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)$/.exec(s);
  if (m === null) return null;
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.trunc(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/** iperf_parse_arguments, for the client options we run. */
export function parseIperf3(argv: readonly string[]): Iperf3Options {
  const p = defaultParams();
  let host: string | undefined;
  let port = DEFAULT_PORT;
  let json = false;
  let i = 0;
  const value = (opt: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const v = argv[++i];
    if (v === undefined) throw new Iperf3ArgError(`option requires an argument -- '${opt.replace(/^-+/, '')}'`);
    return v;
  };
  const intValue = (opt: string, inline: string | undefined, min: number, what: string): number => {
    const v = value(opt, inline);
    if (!/^\d+$/.test(v) || Number(v) < min) throw new Iperf3ArgError(`parameter error - ${what} must be a whole number of at least ${min}, not "${v}"`);
    return Number(v);
  };
  for (; i < argv.length; i++) {
    let a = argv[i];
    let inline: string | undefined;
    // getopt: "--time=5", and a short option's value glued on ("-t5", "-P4").
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    } else if (/^-[cptPlCO].+/.test(a)) {
      inline = a.slice(2);
      a = a.slice(0, 2);
    }
    switch (a) {
      case '-c':
      case '--client':
        host = value(a, inline);
        break;
      case '-p':
      case '--port': {
        port = intValue(a, inline, 1, 'the port');
        if (port > 65535) throw new Iperf3ArgError('parameter error - the port must be at most 65535');
        break;
      }
      case '-t':
      case '--time':
        p.time = intValue(a, inline, 0, 'the time');
        if (p.time > MAX_TIME) throw new Iperf3ArgError(`parameter error - test duration too long (maximum = ${MAX_TIME} seconds)`);
        break;
      case '-P':
      case '--parallel':
        p.parallel = intValue(a, inline, 1, 'the number of streams');
        if (p.parallel > MAX_STREAMS) throw new Iperf3ArgError(`parameter error - number of parallel streams too large (maximum = ${MAX_STREAMS})`);
        break;
      case '-l':
      case '--length': {
        const v = value(a, inline);
        const n = unitAtoi(v);
        if (n === null || n < 1) throw new Iperf3ArgError(`parameter error - block size invalid: "${v}"`);
        if (n > MAX_BLOCKSIZE) throw new Iperf3ArgError(`parameter error - block size too large (maximum = ${MAX_BLOCKSIZE} bytes)`);
        p.len = n;
        break;
      }
      case '-O':
      case '--omit':
        p.omit = intValue(a, inline, 0, 'the omitted time');
        break;
      case '-C':
      case '--congestion':
        p.congestion = value(a, inline);
        break;
      case '-R':
      case '--reverse':
        if (p.bidirectional) throw new Iperf3ArgError('parameter error - cannot be both reverse and bidirectional');
        p.reverse = true;
        break;
      case '--bidir':
        if (p.reverse) throw new Iperf3ArgError('parameter error - cannot be both reverse and bidirectional');
        p.bidirectional = true;
        break;
      case '-N':
      case '--no-delay':
        p.nodelay = true;
        break;
      case '-J':
      case '--json':
        json = true;
        break;
      case '-4':
      case '--version4':
        break;
      default: {
        const what = UNSUPPORTED.get(a);
        if (what !== undefined) throw new Iperf3ArgError(`parameter error - ${a}: ${what} not supported by this client`);
        throw new Iperf3ArgError(a.startsWith('-') ? `unrecognized option '${a}'` : `unexpected argument '${a}'`);
      }
    }
  }
  if (host === undefined) throw new Iperf3ArgError('parameter error - must either be a client (-c) or server (-s)');
  const addr = parseIp4(host);
  if (addr === null) throw new Iperf3ArgError(`error - unable to connect to server: expected an IPv4 address, not "${host}"`);
  return { host, addr, port, json, params: p };
}

/**
 * Runs one test; resolves to iperf3's exit status. When the command's client
 * goes away (^C), the server hears CLIENT_TERMINATE.
 */
export function runIperf3(stack: Stack, o: Iperf3Options, out: CommandOutput): Promise<number> {
  return new Promise((resolve) => {
    let poll: NodeJS.Timeout | null = null;
    const report = new Iperf3Report(out, o.json, (status) => {
      if (poll !== null) clearInterval(poll);
      resolve(status);
    });
    const client = new Iperf3Client(stack.tcp, { addr: o.addr, host: o.host, port: o.port, params: o.params }, report);
    report.attach(client);
    poll = setInterval(() => {
      if (out.closed) client.terminate();
    }, 250);
    poll.unref();
    client.start();
  });
}
