import { describe, expect, it } from 'vitest';
import { simPair, type SimPair } from '../helpers/sim.js';
import { BulkSink, BulkSource, runFor } from '../helpers/tcp-sim.js';
import { TcpListener } from '../../src/tcp/listen.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { VNET_HDR_LEN } from '../../src/wire/vnet.js';
import { ip } from '../helpers/sim.js';

/** net.ipv4.tcp_limit_output_bytes (1 MB) in full-size frames, as Tcp.txBudget counts it. */
const TSQ_FRAMES = Math.floor(1048576 / 1514);

/**
 * `n` bulk senders from a to b over a virtio-net sim wire (super-packets cross it whole).
 * What arrives at a is held and handed over every millisecond as one receive batch, as a
 * TAP read returns everything the kernel queued while the stack was busy: many ACKs of
 * every connection in one batch, each of which lets its connection send. Every write to
 * a's device (one flush) is recorded as segments per local port.
 */
function bulkSenders(n: number): { p: SimPair; conns: TcpConnection[]; sinks: BulkSink[]; flushes: Map<number, number>[]; deliver: () => void } {
  const p = simPair({ offload: true, impair: { delayMs: 1 }, seed: 11 });
  p.b.sysctl.set('net.ipv4.tcp_rmem', '4096 33554432 33554432');
  p.a.sysctl.set('net.ipv4.tcp_wmem', '4096 16777216 16777216');
  const sinks: BulkSink[] = [];
  const l = new TcpListener(p.b.tcp, 0, 5001, 16, {
    incoming: (c) => {
      const s = new BulkSink();
      sinks.push(s);
      c.user = s;
      return true;
    },
  });
  expect(p.b.tcp.addListener(l)).toBeNull();
  const conns: TcpConnection[] = [];
  for (let i = 0; i < n; i++) {
    const c = p.a.tcp.newConnection();
    c.user = new BulkSource(c);
    expect(p.a.tcp.activeOpen(c, ip('10.0.0.2'), 5001)).toBeNull();
    conns.push(c);
  }
  // a's receive side: frames wait (copied) for the next batch.
  const held: { f: Uint8Array; hl: number }[] = [];
  p.da.start({ frame: (f, hl = 0) => held.push({ f: f.slice(), hl }), batchEnd: () => {} });
  const deliver = (): void => {
    if (held.length === 0) return;
    const batch = held.splice(0);
    for (const h of batch) p.ia.frame(h.f, h.hl);
    p.ia.batchEnd();
  };
  // a's transmit side: segments per local port in each flush.
  // Heads only with scatter-gather (sendBatchGather): the headers are all this reads.
  const flushes: Map<number, number>[] = [];
  const count = (frames: readonly Uint8Array[], count: number): void => {
    const m = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const f = frames[i];
      const gsoSize = f[4] | (f[5] << 8);
      const l3 = VNET_HDR_LEN + 14;
      const l4 = l3 + ((f[l3] & 0x0f) << 2);
      const payload = ((f[l3 + 2] << 8) | f[l3 + 3]) - (l4 - l3) - ((f[l4 + 12] >> 4) << 2);
      if (payload <= 0) continue;
      const port = (f[l4] << 8) | f[l4 + 1];
      m.set(port, (m.get(port) ?? 0) + (gsoSize > 0 ? Math.ceil(payload / gsoSize) : 1));
    }
    flushes.push(m);
  };
  const send = p.da.sendBatch.bind(p.da);
  p.da.sendBatch = (frames, n) => {
    count(frames, n);
    return send(frames, n);
  };
  const gather = p.da.sendBatchGather.bind(p.da);
  p.da.sendBatchGather = (frames, g, n) => {
    count(frames, n);
    return gather(frames, g, n);
  };
  return { p, conns, sinks, flushes, deliver };
}

/**
 * TCP small queues with super-packets: a connection keeps at most
 * tcp_limit_output_bytes in its device's queue however many ACKs of one receive
 * batch let it send (tcp_small_queue_check counts the socket's bytes, not the
 * queue's packets), so several bulk senders share a flush, and the buffers of
 * their super-packets come back to the pool for the next one (six senders: more
 * super-packets per flush than the 64 buffers the pool once kept).
 */
describe('TCP small queues', () => {
  it('six bulk senders whose ACKs share receive batches queue at most tcp_limit_output_bytes each per flush and reuse their buffers', async () => {
    const { p, conns, sinks, flushes, deliver } = bulkSenders(6);
    const step = async (ms: number): Promise<void> => {
      for (let t = 0; t < ms; t++) {
        await runFor(p.time, 1);
        deliver();
      }
    };
    // Slow start until every window is far beyond what one flush may carry.
    await step(40);
    expect(conns.every((c) => c.cwnd > 4 * TSQ_FRAMES)).toBe(true);
    flushes.length = 0;
    const made = p.a.tcp.superPool.created;
    const before = sinks.map((s) => s.received);
    await step(30);
    // Each connection's share of a flush stays within the limit, and the limit is what
    // holds them (a batch's ACKs free far more window than that)...
    let most = 0;
    for (const m of flushes) for (const segs of m.values()) most = Math.max(most, segs);
    expect(most).toBeLessThanOrEqual(TSQ_FRAMES);
    expect(most).toBeGreaterThan(TSQ_FRAMES - 64);
    // ...every connection moves (none waits for the others)...
    const moved = sinks.map((s, i) => s.received - before[i]);
    expect(Math.min(...moved)).toBeGreaterThan(Math.max(...moved) / 2);
    // ...super-packets stay full-sized, and their buffers are reused, not made anew.
    expect(p.ia.offload.txGsoSegments / p.ia.offload.txGsoPackets).toBeGreaterThan(40);
    expect(p.a.tcp.superPool.created).toBe(made);
    expect(p.a.mib.TcpRetransSegs).toBe(0);
  });
});
