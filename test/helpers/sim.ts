import { Stack } from '../../src/stack.js';
import { RealTime, VirtualTime, type Time } from '../../src/time/timers.js';
import { simLink, type SimDevice, type SimImpairments } from '../../src/link/sim.js';
import type { Interface } from '../../src/link/interface.js';
import { parseIp4 } from '../../src/wire/addr.js';
import type { EchoReply } from '../../src/ip/icmp.js';

export function ip(s: string): number {
  const v = parseIp4(s);
  if (v === null) throw new Error(`bad address ${s}`);
  return v;
}

export interface SimPair {
  time: VirtualTime;
  a: Stack;
  b: Stack;
  ia: Interface;
  ib: Interface;
  da: SimDevice;
  db: SimDevice;
}

type PairOptions = { impair?: SimImpairments; seed?: number; linkType?: 'ether' | 'ip'; mtu?: number; offload?: boolean };

/** Two hosts, 10.0.0.1 (a) and 10.0.0.2 (b), on one sim wire. */
export function simPair(opts: PairOptions = {}): SimPair {
  const time = new VirtualTime();
  const p = wire(time, opts);
  // Let the gratuitous ARPs of the new addresses land before the test starts.
  time.advance(1000);
  return { time, ...p };
}

/**
 * The same two hosts in real time: frames cross the wire from timers, and Node's
 * callbacks (nextTicks, microtasks, immediates) run between them as they do
 * between a TAP's reads. `close()` both stacks when done (it stops the clock).
 */
export function realTimePair(opts: PairOptions = {}): Omit<SimPair, 'time'> & { time: RealTime } {
  const time = new RealTime();
  return { time, ...wire(time, opts) };
}

function wire(time: Time, opts: PairOptions): Omit<SimPair, 'time'> {
  const [da, db] = simLink(time, { seed: opts.seed ?? 7, linkType: opts.linkType, mtu: opts.mtu, names: ['a0', 'b0'], offload: opts.offload });
  if (opts.impair) {
    da.impair = { ...opts.impair };
    db.impair = { ...opts.impair };
  }
  const a = new Stack({ time, seed: (opts.seed ?? 7) + 1 });
  const b = new Stack({ time, seed: (opts.seed ?? 7) + 2 });
  const ia = a.addInterface('a0', da, { mtu: opts.mtu });
  const ib = b.addInterface('b0', db, { mtu: opts.mtu });
  a.setUp(ia, true);
  b.setUp(ib, true);
  a.addAddress(ia, ip('10.0.0.1'), 24);
  b.addAddress(ib, ip('10.0.0.2'), 24);
  return { a, b, ia, ib, da, db };
}

/**
 * Pings `dst` from `from` `count` times, one every `intervalMs` of virtual time,
 * and returns the replies received by `waitMs` after the last one.
 */
export function simPing(
  time: VirtualTime,
  from: Stack,
  dst: number,
  count: number,
  opts: { intervalMs?: number; size?: number; ident?: number; waitMs?: number } = {},
): { replies: EchoReply[]; rtts: number[] } {
  const ident = opts.ident ?? 0x1234;
  const size = opts.size ?? 56;
  const sentAt = new Map<number, number>();
  const replies: EchoReply[] = [];
  const rtts: number[] = [];
  const stop = from.icmp.listenEcho(ident, (r) => {
    replies.push(r);
    const t = sentAt.get(r.seq);
    if (t !== undefined) rtts.push(time.now() - t);
  });
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = i & 0xff;
  for (let seq = 1; seq <= count; seq++) {
    sentAt.set(seq, time.now());
    from.icmp.sendEcho(dst, ident, seq, data);
    time.advance(opts.intervalMs ?? 1000);
  }
  time.advance(opts.waitMs ?? 5000);
  stop();
  return { replies, rtts };
}
