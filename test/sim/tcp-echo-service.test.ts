/**
 * The built-in TCP echo service (RFC 862) between two stacks on a sim wire, in
 * virtual time: whatever the client sends comes back byte for byte, also when
 * one in-order chunk handed to the service is larger than its whole send buffer
 * (a 64 KB super-packet over an offloading link, or a hole filled in front of
 * queued out-of-order data).
 */
import { describe, expect, it } from 'vitest';
import { simPair, ip } from '../helpers/sim.js';
import { pattern, runFor, sha256 } from '../helpers/tcp-sim.js';
import { Filler } from '../helpers/tcp-sim.js';
import { TcpService } from '../../src/services/tcp-basic.js';
import type { TcpConnection } from '../../src/tcp/connection.js';

/** Writes `data` in pieces as the send buffer has room, half-closes after it, keeps what comes back. */
class EchoClient extends Filler {
  private off = 0;
  constructor(
    private readonly c: TcpConnection,
    private readonly data: Buffer,
  ) {
    super();
  }
  fill(): void {
    const c = this.c;
    while (this.off < this.data.length && c.sendRoom > 0) {
      const n = Math.min(c.sendRoom, 65536, this.data.length - this.off);
      c.write(this.data.subarray(this.off, this.off + n));
      this.off += n;
    }
    if (this.off === this.data.length && !c.finQueued) c.shutdownWrite();
  }
}

async function echo(opts: { size: number; seed: number; loss: number; sysB?: Record<string, string> }) {
  const p = simPair({ offload: true, seed: opts.seed, impair: { loss: opts.loss } });
  for (const [k, v] of Object.entries(opts.sysB ?? {})) p.b.sysctl.set(k, v);
  const svc = new TcpService(p.b.tcp, 'echo', 0, 7, 'echo');
  const data = pattern(opts.size, opts.seed);
  const c = p.a.tcp.newConnection();
  const client = new EchoClient(c, data);
  c.user = client;
  expect(p.a.tcp.activeOpen(c, ip('10.0.0.2'), 7)).toBeNull();
  const spent = await runFor(p.time, 600_000, { stepMs: 5, until: () => client.eof });
  const back = Buffer.concat(client.chunks);
  const server = [...svc.conns][0];
  return { p, spent, back, data, client, server };
}

describe('TCP echo service', () => {
  it('echoes chunks larger than its send buffer (tcp_wmem max 16384, 64 KB super-packets)', async () => {
    // Linux's write(2) on a socket takes what the send buffer has room for and
    // blocks for the rest (tcp_sendmsg: sk_stream_wait_memory), so an echo server
    // with a small SO_SNDBUF still echoes any read, piece by piece.
    const { spent, back, data, p } = await echo({ size: 2 << 20, seed: 11, loss: 0, sysB: { 'net.ipv4.tcp_wmem': '4096 16384 16384' } });
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
    // A clean run, no persist stall: 2 MB over the sim wire in well under a second.
    expect(spent).toBeLessThan(5000);
    expect(p.b.mib.TcpExtTCPTimeouts).toBe(0);
  });

  it('echoes 1 MB through 5% random loss each way with offloads, over several seeds', async () => {
    // Early losses keep the service's congestion window, and with it its send buffer
    // (tcp_sndbuf_expand), below one 64 KB super-packet from the client.
    for (let seed = 1; seed <= 8; seed++) {
      const { back, data, spent } = await echo({ size: 1 << 20, seed, loss: 0.05 });
      expect({ seed, len: back.length }).toEqual({ seed, len: data.length });
      expect(sha256(back)).toBe(sha256(data));
      expect(spent).toBeLessThan(60_000);
    }
  }, 120_000);
});
