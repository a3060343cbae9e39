import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { ip, simPair, type SimPair } from './sim.js';
import { Recorder } from './tcp-segments.js';
import { TcpListener } from '../../src/tcp/listen.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import type { SimImpairments } from '../../src/link/sim.js';
import type { VirtualTime } from '../../src/time/timers.js';

/** Lets Node run its queued callbacks (stream events, nextTicks, immediates). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * Advances virtual time by `ms` in steps of `stepMs`, letting Node's callbacks
 * run between steps, until `until()` holds (if given). Returns the virtual time spent.
 */
export async function runFor(time: VirtualTime, ms: number, opts: { stepMs?: number; until?: () => boolean } = {}): Promise<number> {
  const step = opts.stepMs ?? 1;
  const start = time.now();
  await settle();
  while (time.now() - start < ms) {
    if (opts.until?.()) break;
    time.advance(step);
    await settle();
  }
  return time.now() - start;
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Consumes what arrives at once (only counting it), so the receive window stays open. */
export class BulkSink extends Recorder {
  received = 0;
  override onData(d: Uint8Array): void {
    this.received += d.length;
  }
}

/** A sender that refills the send buffer (`fill`) once connected and whenever there is room. */
export abstract class Filler extends Recorder {
  abstract fill(): void;
  override onConnected(): void {
    super.onConnected();
    this.fill();
  }
  override onRoom(): void {
    super.onRoom();
    this.fill();
  }
}

/** Keeps the send buffer full: a bulk sender limited only by the network. */
export class BulkSource extends Filler {
  constructor(private readonly c: TcpConnection) {
    super();
  }
  fill(): void {
    const c = this.c;
    while (c.sendRoom > 0) c.write(new Uint8Array(Math.min(c.sendRoom, 65536)));
  }
}

/**
 * a (10.0.0.1) opens one connection to a listener on b (10.0.0.2) port 5001; b's
 * receive buffer may grow large enough never to limit the sender. The accepted
 * connection's user is `sink` (a new BulkSink if not given), the client's is
 * `source(c)` (a BulkSource if not given); `beforeOpen` runs just before the SYN goes.
 */
export function bulkPair(opts: {
  impair: SimImpairments;
  seed?: number;
  sysA?: Record<string, string>;
  sysB?: Record<string, string>;
  sink?: Recorder;
  source?: (c: TcpConnection) => Recorder;
  beforeOpen?: (p: SimPair, c: TcpConnection) => void;
}): { p: SimPair; c: TcpConnection; server: () => TcpConnection } {
  const p = simPair({ impair: opts.impair, seed: opts.seed });
  p.b.sysctl.set('net.ipv4.tcp_rmem', '4096 33554432 33554432');
  for (const [k, v] of Object.entries(opts.sysA ?? {})) p.a.sysctl.set(k, v);
  for (const [k, v] of Object.entries(opts.sysB ?? {})) p.b.sysctl.set(k, v);
  let server: TcpConnection | null = null;
  const l = new TcpListener(p.b.tcp, 0, 5001, 16, {
    incoming: (c) => {
      server = c;
      c.user = opts.sink ?? new BulkSink();
      return true;
    },
  });
  expect(p.b.tcp.addListener(l)).toBeNull();
  const c = p.a.tcp.newConnection();
  c.user = opts.source?.(c) ?? new BulkSource(c);
  opts.beforeOpen?.(p, c);
  expect(p.a.tcp.activeOpen(c, ip('10.0.0.2'), 5001)).toBeNull();
  return { p, c, server: () => server! };
}

/**
 * The client on a writes `up` and half-closes; the server on b (port 5001) writes
 * `down` back and closes. Runs virtual time (up to 600 s) until the client is closed
 * and the server has seen the end; returns what each side received and the client's errors.
 */
export async function exchangeBothWays(p: SimPair, up: Uint8Array, down: Uint8Array): Promise<{ atServer: Buffer; atClient: Buffer; errors: Error[] }> {
  const atServer: Buffer[] = [];
  const atClient: Buffer[] = [];
  let serverEnded = false;
  let clientClosed = false;
  const server = p.b.tcp.createServer((s: TcpSocket) => {
    s.on('data', (d: Buffer) => atServer.push(d));
    s.on('end', () => (serverEnded = true));
    s.write(down);
    s.end();
  });
  server.listen(5001);
  const c = p.a.tcp.connect(5001, '10.0.0.2');
  c.on('connect', () => {
    c.write(up);
    c.end();
  });
  c.on('data', (d: Buffer) => atClient.push(d));
  c.on('close', () => (clientClosed = true));
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  await runFor(p.time, 600_000, { stepMs: 2, until: () => clientClosed && serverEnded });
  return { atServer: Buffer.concat(atServer), atClient: Buffer.concat(atClient), errors };
}
