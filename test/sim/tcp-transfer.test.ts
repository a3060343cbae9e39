import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { exchangeBothWays, runFor, pattern, sha256 } from '../helpers/tcp-sim.js';
import type { SimImpairments } from '../../src/link/sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

interface Outcome {
  up: string;
  down: string;
  upBytes: number;
  downBytes: number;
  doneAt: number;
  retrans: [number, number];
  segs: [number, number];
}

/**
 * Two stacks on a sim wire exchange `size` bytes each way over one connection
 * (the client writes and half-closes; the server writes back and closes), in
 * virtual time. Returns what each side received and when everything ended.
 */
async function exchange(impair: SimImpairments, size: number, seed: number): Promise<Outcome> {
  const p = simPair({ impair, seed });
  const up = pattern(size, seed * 3 + 1);
  const down = pattern(size, seed * 3 + 2);
  const start = p.time.now();
  const { atServer: gotUp, atClient: gotDown, errors } = await exchangeBothWays(p, up, down);
  expect(errors).toEqual([]);
  expect(gotUp.length).toBe(size);
  expect(gotDown.length).toBe(size);
  return {
    up: sha256(gotUp) === sha256(up) ? 'equal' : 'different',
    down: sha256(gotDown) === sha256(down) ? 'equal' : 'different',
    upBytes: gotUp.length,
    downBytes: gotDown.length,
    doneAt: p.time.now() - start,
    retrans: [p.a.mib.TcpRetransSegs, p.b.mib.TcpRetransSegs],
    segs: [p.a.mib.TcpOutSegs, p.b.mib.TcpOutSegs],
  };
}

describe('TCP bulk transfer between two stacks on a sim wire', () => {
  it('20 MB each way over a clean 1 Gb/s wire arrive intact', async () => {
    const o = await exchange({ delayMs: 1, rateBps: 1e9 }, 20_000_000, 11);
    expect([o.up, o.down]).toEqual(['equal', 'equal']);
    expect(o.retrans).toEqual([0, 0]);
  }, 120_000);

  it('20 MB each way with 3% loss, delay, jitter, reordering and duplication arrive intact, the same on every run', async () => {
    const impair: SimImpairments = { delayMs: 5, jitterMs: 1, loss: 0.03, duplicate: 0.01, reorder: 0.01, rateBps: 100e6 };
    const first = await exchange(impair, 20_000_000, 23);
    expect([first.up, first.down]).toEqual(['equal', 'equal']);
    // Losses were recovered from, not avoided.
    expect(first.retrans[0]).toBeGreaterThan(100);
    expect(first.retrans[1]).toBeGreaterThan(100);
    const second = await exchange(impair, 20_000_000, 23);
    expect(second).toEqual(first);
  }, 300_000);
});

describe('TCP connection counters after a clean close', () => {
  it('TcpCurrEstab counts ESTABLISHED and CLOSE-WAIT and is back to 0 once both ends have closed; TIME_WAIT (counted in TcpExtTW as it begins) ends after 60 s', async () => {
    const p = simPair({ impair: { delayMs: 1 } });
    let serverSide: TcpSocket | null = null;
    // allowHalfOpen: the server keeps its side open after the client's FIN, as a kernel socket does.
    p.b.tcp
      .createServer({ allowHalfOpen: true }, (s: TcpSocket) => {
        serverSide = s;
        s.resume();
      })
      .listen(5002);
    const c = p.a.tcp.connect(5002, '10.0.0.2');
    c.resume();
    await runFor(p.time, 100, { until: () => serverSide !== null });
    expect([p.a.mib.TcpCurrEstab, p.b.mib.TcpCurrEstab]).toEqual([1, 1]);
    // The client closes first: the server sits in CLOSE-WAIT, still counted.
    c.end();
    await runFor(p.time, 50);
    expect([p.a.mib.TcpCurrEstab, p.b.mib.TcpCurrEstab]).toEqual([0, 1]);
    serverSide!.end();
    await runFor(p.time, 50);
    expect([p.a.mib.TcpCurrEstab, p.b.mib.TcpCurrEstab]).toEqual([0, 0]);
    // The client, which closed first, holds TIME_WAIT for 60 s (RFC 9293 §3.4.2, Linux TCP_TIMEWAIT_LEN).
    expect(p.a.tcp.timeWaitCount).toBe(1);
    expect(p.a.tcp.connections.size).toBe(0);
    expect(p.b.tcp.connections.size).toBe(0);
    // Counted as it begins, as Linux's __inet_twsk_schedule counts it.
    expect(p.a.mib.TcpExtTW).toBe(1);
    await runFor(p.time, 59_800, { stepMs: 100 });
    expect(p.a.tcp.timeWaitCount).toBe(1);
    await runFor(p.time, 400, { stepMs: 100 });
    expect(p.a.tcp.timeWaitCount).toBe(0);
    expect(p.a.mib.TcpExtTW).toBe(1);
    expect(p.a.mib.TcpCurrEstab).toBe(0);
  });
});
