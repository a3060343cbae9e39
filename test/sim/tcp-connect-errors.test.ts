import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import type { SystemError } from '../../src/errors.js';

/** How connect() fails, as Node reports it for a kernel socket. */
describe('TCP connect errors', () => {
  async function connectError(host: string, port: number, waitMs: number): Promise<{ err: SystemError | null; at: number }> {
    const p = simPair();
    const c = p.a.tcp.connect(port, host);
    let err: SystemError | null = null;
    let at = -1;
    const start = p.time.now();
    c.on('error', (e) => {
      err = e as SystemError;
      at = p.time.now() - start;
    });
    await runFor(p.time, waitMs, { stepMs: 10, until: () => err !== null });
    return { err, at };
  }

  it('a closed port: the peer answers RST, connect fails with ECONNREFUSED at once (RFC 9293 §3.10.7.3)', async () => {
    const { err, at } = await connectError('10.0.0.2', 4444, 5000);
    expect(err).not.toBeNull();
    expect(err!.code).toBe('ECONNREFUSED');
    expect(err!.syscall).toBe('connect');
    expect(err!.message).toBe('connect ECONNREFUSED 10.0.0.2:4444');
    expect(err!.address).toBe('10.0.0.2');
    expect(err!.port).toBe(4444);
    expect(at).toBeLessThan(50);
  });

  it('a neighbour that never answers ARP: ICMP host unreachable from our own stack, EHOSTUNREACH after the 3 probes (Linux arp_error_report)', async () => {
    const { err, at } = await connectError('10.0.0.9', 80, 10_000);
    expect(err).not.toBeNull();
    expect(err!.code).toBe('EHOSTUNREACH');
    expect(err!.message).toBe('connect EHOSTUNREACH 10.0.0.9:80');
    // ucast/mcast probes 3, one a second (retrans_time_ms 1000): about 3 s.
    expect(at).toBeGreaterThanOrEqual(2900);
    expect(at).toBeLessThan(3200);
  });

  it('no route: ENETUNREACH without sending anything', async () => {
    const p = simPair();
    const before = p.a.mib.TcpOutSegs;
    const c = p.a.tcp.connect(80, '192.0.2.1');
    let err: SystemError | null = null;
    c.on('error', (e) => (err = e as SystemError));
    await runFor(p.time, 100, { until: () => err !== null });
    expect(err!.code).toBe('ENETUNREACH');
    expect(err!.message).toBe('connect ENETUNREACH 192.0.2.1:80');
    expect(p.a.mib.TcpOutSegs).toBe(before);
  });

  it('a name that is not an address: ENOTFOUND from the lookup, as Node reports it', async () => {
    const p = simPair();
    const c = p.a.tcp.connect(80, 'no.such.host.invalid');
    let err: SystemError | null = null;
    c.on('error', (e) => (err = e as SystemError));
    await runFor(p.time, 100, { until: () => err !== null });
    expect(err!.code).toBe('ENOTFOUND');
    expect(err!.syscall).toBe('getaddrinfo');
  });
});
