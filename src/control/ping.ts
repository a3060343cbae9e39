import type { Stack } from '../stack.js';
import type { CommandOutput } from './protocol.js';
import type { EchoReply, IcmpErrorInfo } from '../ip/icmp.js';
import { formatIp4 } from '../wire/addr.js';
import { Words, CommandError } from './words.js';
import { parseIp4 } from '../wire/addr.js';
import { routeMtu } from '../ip/route.js';

export interface PingOptions {
  dst: number;
  count: number;
  /** ICMP data bytes (iputils' -s). */
  size: number;
  intervalMs: number;
  /** -M do: set DF and fail rather than fragment. */
  dontFrag: boolean;
  /** -W: how long to wait for the last replies, ms. */
  waitMs: number;
  ttl?: number;
  quiet: boolean;
}

/** `ping HOST [-c N] [-s SIZE] [-i SECONDS] [-M do|dont|want] [-W SECONDS] [-t TTL] [-q]` */
export function parsePing(argv: readonly string[]): PingOptions {
  const w = new Words(argv);
  const o: Partial<PingOptions> & { count: number; size: number; intervalMs: number; dontFrag: boolean; waitMs: number; quiet: boolean } = {
    count: 4,
    size: 56,
    intervalMs: 1000,
    dontFrag: false,
    waitMs: 10_000,
    quiet: false,
  };
  const num = (what: string, min: number, max: number, float = false): number => {
    const s = w.next(what);
    const v = Number(s);
    if (!(float ? /^\d+(\.\d+)?$/ : /^\d+$/).test(s) || v < min || v > max) throw w.error(`expected ${what} from ${min} to ${max}`, s);
    return v;
  };
  while (!w.done) {
    const x = w.next('a host or option');
    if (x === '-c') o.count = num('a count', 1, 1_000_000);
    else if (x === '-s') o.size = num('a size', 0, 65507);
    else if (x === '-i') o.intervalMs = Math.round(num('an interval in seconds', 0.001, 3600, true) * 1000);
    else if (x === '-W') o.waitMs = Math.round(num('a timeout in seconds', 0.001, 3600, true) * 1000);
    else if (x === '-t') o.ttl = num('a TTL', 1, 255);
    else if (x === '-q') o.quiet = true;
    else if (x === '-M') {
      const m = w.next('do, dont or want');
      if (m === 'do') o.dontFrag = true;
      else if (m === 'dont' || m === 'want') o.dontFrag = false;
      else throw w.error('expected do, dont or want', m);
    } else if (x.startsWith('-')) throw w.error('unknown option (expected -c, -s, -i, -M, -W, -t or -q)', x);
    else {
      if (o.dst !== undefined) throw w.error('only one host', x);
      const d = parseIp4(x);
      if (d === null) throw w.error('expected an IPv4 address', x);
      o.dst = d;
    }
  }
  if (o.dst === undefined) throw new CommandError('expected a host to ping');
  return o as PingOptions;
}

const UNREACH_TEXT: Record<number, string> = {
  0: 'Destination Net Unreachable',
  1: 'Destination Host Unreachable',
  2: 'Destination Protocol Unreachable',
  3: 'Destination Port Unreachable',
  4: 'Frag needed',
  13: 'Communication administratively prohibited',
};

let nextIdent = 0;

/**
 * Pings from the stack itself and prints what iputils' ping prints. Resolves to
 * ping's exit status: 0 when a reply came, 1 when none did, 2 on an error.
 */
export function runPing(stack: Stack, o: PingOptions, out: CommandOutput): Promise<number> {
  const time = stack.time;
  const dstS = formatIp4(o.dst);
  // A fresh identifier per run, so concurrent pings don't see each other's replies.
  let ident = (Math.floor(stack.random() * 0x10000) + nextIdent++) & 0xffff;
  while (stack.icmp.echoInUse(ident)) ident = (ident + 1) & 0xffff;
  return new Promise((resolve) => {
    const data = new Uint8Array(o.size);
    for (let i = 0; i < o.size; i++) data[i] = (i + 8) & 0xff;
    const sentAt = new Map<number, number>();
    const rtts: number[] = [];
    let sent = 0;
    let received = 0;
    let errors = 0;
    let localErrors = 0;
    const start = time.now();
    let finished = false;
    out.out(`PING ${dstS} (${dstS}) ${o.size}(${o.size + 28}) bytes of data.\n`);

    const onReply = (r: EchoReply): void => {
      const t0 = sentAt.get(r.seq);
      if (t0 === undefined || r.src !== o.dst) return;
      sentAt.delete(r.seq);
      const rtt = time.now() - t0;
      received++;
      rtts.push(rtt);
      if (!o.quiet) out.out(`${r.icmpLen} bytes from ${formatIp4(r.src)}: icmp_seq=${r.seq} ttl=${r.ttl} time=${fmtRtt(rtt)} ms\n`);
      if (sent >= o.count && sentAt.size === 0) finish();
    };
    const stopEcho = stack.icmp.listenEcho(ident, onReply);
    const onError = (e: IcmpErrorInfo): void => {
      if (finished || e.origProto !== 1 || e.origDst !== o.dst || e.origPayload.length < 8) return;
      const p = e.origPayload;
      if (p[0] !== 8 || ((p[4] << 8) | p[5]) !== ident) return;
      const seq = (p[6] << 8) | p[7];
      if (!sentAt.delete(seq)) return;
      errors++;
      const what = e.type === 3 ? (UNREACH_TEXT[e.code] ?? `Dest Unreachable, Bad Code: ${e.code}`) : e.type === 11 ? 'Time to live exceeded' : `Parameter problem`;
      if (!o.quiet) out.out(`From ${formatIp4(e.reporter)} icmp_seq=${seq} ${what}\n`);
      if (sent >= o.count && sentAt.size === 0) finish();
    };
    stack.icmp.onError(onError);

    const sendOne = (): void => {
      if (finished) return;
      if (out.closed) return finish();
      sent++;
      const seq = sent & 0xffff;
      sentAt.set(seq, time.now());
      const err = stack.icmp.sendEcho(o.dst, ident, seq, data, { dontFrag: o.dontFrag, ttl: o.ttl });
      if (err !== null) {
        sentAt.delete(seq);
        localErrors++;
        if (err === 'EMSGSIZE') {
          // The route output took: through the rules, with a route's own mtu.
          const route = stack.ip.routeOrErrno({ dst: o.dst });
          out.out(`ping: local error: message too long, mtu=${typeof route === 'string' ? 0 : routeMtu(route)}\n`);
        } else if (err === 'ENETUNREACH') out.err('ping: sendmsg: Network is unreachable\n');
        else out.err(`ping: sendmsg: ${err}\n`);
      }
      if (sent < o.count) time.after(o.intervalMs, sendOne);
      else if (sentAt.size === 0) finish();
      else time.after(o.waitMs, finish);
    };

    function finish(): void {
      if (finished) return;
      finished = true;
      stopEcho();
      stack.icmp.offError(onError);
      const elapsed = Math.round(time.now() - start);
      const lossPct = sent === 0 ? 0 : ((sent - received) * 100) / sent;
      let summary = `\n--- ${dstS} ping statistics ---\n${sent} packets transmitted, ${received} received`;
      if (errors > 0) summary += `, +${errors} errors`;
      summary += `, ${fmtLoss(lossPct)}% packet loss, time ${elapsed}ms\n`;
      if (rtts.length > 0) {
        const min = Math.min(...rtts);
        const max = Math.max(...rtts);
        const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
        const mdev = Math.sqrt(rtts.reduce((a, b) => a + (b - avg) ** 2, 0) / rtts.length);
        summary += `rtt min/avg/max/mdev = ${[min, avg, max, mdev].map((v) => v.toFixed(3)).join('/')} ms\n`;
      }
      out.out(summary);
      resolve(received > 0 ? 0 : localErrors > 0 && errors === 0 ? 2 : 1);
    }

    sendOne();
  });
}

function fmtRtt(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3);
}

/** iputils prints loss with up to 4 significant digits: 0, 20, 33.3333. */
function fmtLoss(p: number): string {
  return Number.isInteger(p) ? String(p) : String(Number(p.toPrecision(6)));
}
