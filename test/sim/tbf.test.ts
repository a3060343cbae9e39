import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { ip } from '../helpers/sim.js';
import { runFor, pattern } from '../helpers/tcp-sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

function pair(seed: number) {
  const time = new VirtualTime();
  const [da, db] = simLink(time, { seed, names: ['a0', 'b0'] });
  da.impair = { delayMs: 5 };
  db.impair = { delayMs: 5 };
  const a = new Stack({ time, seed: seed + 1 });
  const b = new Stack({ time, seed: seed + 2 });
  const ia = a.addInterface('a0', da);
  const ib = b.addInterface('b0', db);
  a.setUp(ia, true);
  b.setUp(ib, true);
  a.addAddress(ia, ip('10.0.0.1'), 24);
  b.addAddress(ib, ip('10.0.0.2'), 24);
  time.advance(1000);
  const tc = (line: string): void => {
    const r = runTc(stackTcEnv(a), line.split(' '));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  };
  return { time, a, b, ia, ib, tc };
}

describe('tbf on the egress path, in virtual time', () => {
  it('a 10 Mbit/s tbf releases every frame at the nanosecond its tokens are there', () => {
    const { time, a, b, ia, ib, tc } = pair(11);
    tc('qdisc add dev a0 root handle 1: tbf rate 10mbit burst 5k latency 50ms');
    ia.neigh!.set(ip('10.0.0.2'), ib.mac, 'PERMANENT');
    const sock = b.udp.createSocket('udp4');
    sock.bind(7000);
    // Departures, in ns, of the flood's frames (1000 bytes with the Ethernet header).
    const departures: number[] = [];
    a.capture = (iface, frame) => {
      if (iface === ia && frame.length === 1000) departures.push(a.time.nowNs());
    };
    const tx = a.udp.createSocket('udp4');
    tx.bind(7001);
    const payload = Buffer.alloc(1000 - 14 - 20 - 8);
    const t0 = a.time.nowNs();
    const tx0 = ia.stats.txPackets;
    // 16 Mbit/s offered for one second: one frame every 500 µs.
    for (let i = 0; i < 2000; i++) time.after(i * 0.5, () => tx.send(payload, 7000, '10.0.0.2'));
    time.advance(1000);
    // A frame costs 800 µs of tokens (1000 bytes at 1.25 MB/s); the bucket holds 4096 µs.
    // Frame i arrives at 500i µs with 4096 - 300i µs of tokens: frames 0..10 leave at once;
    // frame 11 finds 796 µs and waits 4 µs; from then on the queue never empties and frame
    // k leaves 800 µs after frame k-1.
    const expected = (k: number): number => (k <= 10 ? k * 500_000 : 5_504_000 + (k - 11) * 800_000);
    const last = Math.floor((1e9 - 5_504_000) / 800_000) + 11;
    expect(departures.map((d) => d - t0)).toEqual(Array.from({ length: last + 1 }, (_, k) => expected(k)));
    // What did not fit in the limit (1.25 MB/s × 50 ms + 5 KiB = 67620 bytes) was dropped.
    const q = ia.sched.root;
    expect(q.stats.backlog).toBeLessThanOrEqual(67620);
    expect(q.stats.qlen).toBeGreaterThan(60);
    expect(q.stats.drops).toBe(2000 - departures.length - q.stats.qlen);
    expect(ia.stats.txPackets - tx0).toBe(last + 1);
  });

  it('TCP over a 10 Mbit/s tbf gets the rate, and nothing is resent', async () => {
    const { time, a, b, ia, tc } = pair(21);
    tc('qdisc add dev a0 root handle 1: tbf rate 10mbit burst 10k latency 50ms');
    let got = 0;
    b.tcp
      .createServer((s: TcpSocket) => {
        s.on('data', (d: Buffer) => (got += d.length));
      })
      .listen(9000);
    const data = pattern(20_000_000, 3);
    const c = a.tcp.connect(9000, '10.0.0.2');
    c.on('connect', () => c.write(data));
    // Two seconds to open the window, then five measured.
    await runFor(time, 2000, { stepMs: 5 });
    const bytes0 = ia.stats.txBytes;
    const got0 = got;
    await runFor(time, 5000, { stepMs: 5 });
    const wireRate = ((ia.stats.txBytes - bytes0) * 8) / 5;
    expect(wireRate / 10e6).toBeGreaterThan(0.99);
    expect(wireRate / 10e6).toBeLessThan(1.01);
    // Goodput: the rate less the headers (66 of each 1514 bytes with timestamps).
    expect(((got - got0) * 8) / 5 / 10e6).toBeGreaterThan(0.94);
    // TCP paced itself on the qdisc's room: nothing dropped there, nothing resent.
    expect(ia.sched.root.stats.drops).toBe(0);
    expect(a.mib.TcpRetransSegs).toBe(0);
  });

  it('TCP over a 64 kbit/s tbf gets the rate too', async () => {
    const { time, a, b, ia, tc } = pair(31);
    tc('qdisc add dev a0 root handle 1: tbf rate 64kbit burst 1600 latency 400ms');
    let got = 0;
    b.tcp.createServer((s: TcpSocket) => s.on('data', (d: Buffer) => (got += d.length))).listen(9000);
    const c = a.tcp.connect(9000, '10.0.0.2');
    c.on('connect', () => c.write(pattern(1_000_000, 5)));
    await runFor(time, 5000, { stepMs: 10 });
    const bytes0 = ia.stats.txBytes;
    await runFor(time, 20000, { stepMs: 10 });
    const wireRate = ((ia.stats.txBytes - bytes0) * 8) / 20;
    expect(Math.abs(wireRate / 64000 - 1)).toBeLessThan(0.03);
    expect(got).toBeGreaterThan(100_000);
    expect(ia.sched.root.stats.drops).toBe(0);
    expect(a.mib.TcpRetransSegs).toBe(0);
  });
});
