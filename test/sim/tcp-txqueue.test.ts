import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { ip } from '../helpers/sim.js';
import { runFor, pattern, sha256 } from '../helpers/tcp-sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

/**
 * A sender whose congestion window is far larger than its interface's queue
 * (like Linux's TCP small queues) stops queueing when the queue is nearly full
 * and goes on once the device has written, instead of having its own bursts
 * dropped at the queue and resent.
 */
describe('TCP and its interface queue', () => {
  it('a window larger than the transmit queue drops nothing at the queue and resends nothing', async () => {
    const time = new VirtualTime();
    const [da, db] = simLink(time, { seed: 3, names: ['a0', 'b0'] });
    da.impair = { delayMs: 20, rateBps: 1e9 };
    db.impair = { delayMs: 20, rateBps: 1e9 };
    const a = new Stack({ time, seed: 4 });
    const b = new Stack({ time, seed: 5 });
    const ia = a.addInterface('a0', da, { txQueueLen: 128 });
    const ib = b.addInterface('b0', db);
    a.setUp(ia, true);
    b.setUp(ib, true);
    a.addAddress(ia, ip('10.0.0.1'), 24);
    b.addAddress(ib, ip('10.0.0.2'), 24);
    time.advance(1000);
    const got: Buffer[] = [];
    let ended = false;
    b.tcp
      .createServer((s: TcpSocket) => {
        s.on('data', (d: Buffer) => got.push(d));
        s.on('end', () => (ended = true));
      })
      .listen(9000);
    // Without a restart after idle, the whole window may leave at once when writing resumes.
    a.tcp.settings.slowStartAfterIdle = false;
    const first = pattern(20_000_000, 9);
    const second = pattern(10_000_000, 10);
    const c = a.tcp.connect(9000, '10.0.0.2');
    c.on('connect', () => c.write(first));
    const conn = () => [...a.tcp.connections][0];
    await runFor(time, 60_000, { until: () => got.reduce((n, d) => n + d.length, 0) === first.length && conn().sndUna === conn().sndMax });
    // The window grew well past the queue's 128 frames...
    expect(conn().cwnd).toBeGreaterThan(300);
    expect(conn().sndWnd / conn().mss).toBeGreaterThan(300);
    // ...and the next write meets it all at once.
    c.end(second);
    await runFor(time, 60_000, { until: () => ended });
    expect(sha256(Buffer.concat(got))).toBe(sha256(Buffer.concat([first, second])));
    // ...yet nothing was dropped at the queue, and nothing had to be sent twice.
    expect(ia.drops['txqueue-full']).toBe(0);
    expect(a.mib.TcpRetransSegs).toBe(0);
  });
});
