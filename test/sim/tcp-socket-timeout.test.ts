/**
 * A socket's idle timeout (net.Socket's setTimeout) on the stack's clock: 'timeout'
 * comes once, `ms` after the last activity (data in or out); setTimeout(0) stops it and
 * a new setTimeout starts from then, whatever the socket's timer was doing (it is left
 * running when cleared, as node:http clears and sets it around every request).
 */
import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

describe('TcpSocket idle timeout', () => {
  it("fires once, ms after the last data; setTimeout(0) stops it; a new one counts from when it is set", async () => {
    const p = simPair({ impair: { delayMs: 1 } });
    let server: TcpSocket | null = null;
    const fired: number[] = [];
    p.b.tcp.createServer((s: TcpSocket) => {
      server = s;
      s.resume();
      s.on('timeout', () => fired.push(p.time.now()));
    }).listen(7000);
    const c = p.a.tcp.connect(7000, '10.0.0.2');
    c.resume();
    await runFor(p.time, 100, { until: () => server !== null });
    const s = server!;
    const t0 = p.time.now();
    s.setTimeout(1000);
    // Data at +300 and +600 (arriving 1 ms later) moves the deadline each time.
    await runFor(p.time, 300);
    c.write('a');
    await runFor(p.time, 300);
    c.write('b');
    const lastData = p.time.now() + 1;
    await runFor(p.time, 2000);
    expect(fired).toHaveLength(1);
    expect(fired[0] - lastData).toBeGreaterThanOrEqual(1000);
    expect(fired[0] - lastData).toBeLessThanOrEqual(1002);
    expect(fired[0] - t0).toBeGreaterThan(1500);
    // Once fired, it stays quiet until there is activity again.
    await runFor(p.time, 3000);
    expect(fired).toHaveLength(1);

    // Set, cleared before it is due: nothing fires.
    s.setTimeout(500);
    await runFor(p.time, 200);
    s.setTimeout(0);
    await runFor(p.time, 1000);
    expect(fired).toHaveLength(1);
    // Set again with a shorter timeout than the timer left running: due from now.
    s.setTimeout(2000);
    await runFor(p.time, 100);
    s.setTimeout(0);
    const t1 = p.time.now();
    s.setTimeout(300);
    await runFor(p.time, 1000);
    expect(fired).toHaveLength(2);
    expect(fired[1] - t1).toBeGreaterThanOrEqual(300);
    expect(fired[1] - t1).toBeLessThanOrEqual(301);
    // A destroyed socket hears no more timeouts.
    s.setTimeout(100);
    s.destroy();
    await runFor(p.time, 500);
    expect(fired).toHaveLength(2);
    c.destroy();
  });
});
