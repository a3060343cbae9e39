/** A SchedHost on a virtual ns clock, and frames to queue, for the qdisc unit tests. */
import { Packet } from '../../src/packet/packet.js';
import { Random } from '../../src/random.js';
import type { Qdisc, SchedHost } from '../../src/sched/qdisc.js';
import { checksum } from '../../src/wire/checksum.js';

export class FakeHost implements SchedHost {
  t = 0;
  wakeups: number[] = [];
  readonly rng: Random;
  readonly mtu = 1500;
  readonly hardHeaderLen = 14;
  readonly txQueueLen = 1000;
  readonly devName = 'eth0';
  constructor(seed = 1) {
    this.rng = new Random(seed);
  }
  now(): number {
    return this.t;
  }
  random(): number {
    return this.rng.next();
  }
  watchdog(at: number): void {
    this.wakeups.push(at);
  }
}

/** An Ethernet + IPv4 + UDP frame of `len` bytes (with the link header) from 10.0.0.`src`:`sport`. */
export function udpFrame(len: number, src = 1, sport = 1000, tos = 0, dport = 2000): Packet {
  const p = Packet.alloc(len);
  const b = p.buf;
  const o = p.start;
  b.fill(0, o, p.end);
  b[o + 12] = 0x08;
  b[o + 13] = 0x00;
  const ip = o + 14;
  b[ip] = 0x45;
  b[ip + 1] = tos;
  const tl = len - 14;
  b[ip + 2] = tl >> 8;
  b[ip + 3] = tl & 0xff;
  b[ip + 8] = 64;
  b[ip + 9] = 17;
  b.set([10, 0, 0, src], ip + 12);
  b.set([10, 0, 1, 1], ip + 16);
  const c = checksum(b, ip, 20);
  b[ip + 10] = c >> 8;
  b[ip + 11] = c & 0xff;
  b[ip + 20] = sport >> 8;
  b[ip + 21] = sport & 0xff;
  b[ip + 22] = dport >> 8;
  b[ip + 23] = dport & 0xff;
  return p;
}

/** The IPv4 header checksum of a frame from udpFrame verifies. */
export function ipChecksumOk(p: Packet): boolean {
  return checksum(p.buf, p.start + 14, 20) === 0;
}

/** Source host byte of a frame from udpFrame. */
export const srcOf = (p: Packet): number => p.buf[p.start + 14 + 15];

/**
 * A device sending at `rateBps` bytes/s: runs `q` from `from` to `to` ns,
 * calling `arrivals(t)` at each 10 µs step to enqueue, and `sent(p, t)` for
 * each packet as it leaves (departure when the link is free).
 */
export function runLink(
  q: Qdisc,
  host: FakeHost,
  rateBps: number,
  to: number,
  arrivals: (t: number) => void,
  sent: (p: Packet, t: number) => void,
  step = 10_000,
): void {
  let busyUntil = 0;
  for (let t = host.t; t <= to; t += step) {
    host.t = t;
    arrivals(t);
    while (busyUntil <= t) {
      const p = q.dequeue(host);
      if (p === null) break;
      sent(p, t);
      busyUntil = Math.max(busyUntil, t) + ((p.end - p.start) * 1e9) / rateBps;
    }
  }
}
