import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { exchangeBothWays, runFor, pattern, sha256 } from '../helpers/tcp-sim.js';
import type { SimImpairments } from '../../src/link/sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

/**
 * A bulk exchange over a sim wire with the virtio-net offloads on (super-packets
 * and partial checksums cross the wire, as over a TAP) or off (the stack cuts
 * its super-packets and finishes its checksums before the device), in virtual time.
 */
async function exchange(offload: boolean, impair: SimImpairments, size: number, seed: number) {
  const p = simPair({ impair, seed, offload });
  const up = pattern(size, seed * 3 + 1);
  const down = pattern(size, seed * 3 + 2);
  const { atServer, atClient, errors } = await exchangeBothWays(p, up, down);
  expect(errors).toEqual([]);
  return {
    up: sha256(atServer),
    down: sha256(atClient),
    want: [sha256(up), sha256(down)],
    p,
  };
}

describe('offloads over the sim wire', () => {
  for (const offload of [true, false]) {
    it(`8 MB each way arrive intact with offloads ${offload ? 'on: super-packets cross the wire' : 'off: cut in software before the device'}`, async () => {
      const { up, down, want, p } = await exchange(offload, { delayMs: 1, rateBps: 1e9 }, 8_000_000, 5);
      expect([up, down]).toEqual(want);
      const [oa, ob] = [p.ia.offload, p.ib.offload];
      // Both ways, TCP built super-packets (segs_out counts their segments).
      expect(p.a.mib.TcpOutSegs).toBeGreaterThan(8_000_000 / 1448);
      if (offload) {
        expect(oa.txGsoPackets).toBeGreaterThan(0);
        expect(ob.rxGsoPackets).toBe(oa.txGsoPackets);
        expect(ob.txGsoPackets).toBeGreaterThan(0);
        expect(oa.rxGsoSegments).toBe(ob.txGsoSegments);
        expect(oa.txSwGsoPackets + oa.txSwCsum).toBe(0);
        // The wire carried fewer frames than segments.
        expect(p.da.stats.sent).toBeLessThan(p.a.mib.TcpOutSegs / 4);
      } else {
        expect(oa.txGsoPackets + ob.txGsoPackets + oa.rxGsoPackets + ob.rxGsoPackets).toBe(0);
        expect(oa.txSwGsoPackets).toBeGreaterThan(0);
        expect(oa.txSwGsoSegments).toBeGreaterThan(oa.txSwGsoPackets);
        // Every frame on the wire is a wire-sized one: one per segment.
        expect(p.da.stats.sent).toBeGreaterThanOrEqual(p.a.mib.TcpOutSegs);
      }
      expect(p.a.mib.TcpInCsumErrors + p.b.mib.TcpInCsumErrors).toBe(0);
    }, 120_000);
  }

  it('4 MB each way with 2% loss and reordering arrive intact with offloads on (super-packets lost whole)', async () => {
    const { up, down, want, p } = await exchange(true, { delayMs: 3, jitterMs: 1, loss: 0.02, reorder: 0.01, rateBps: 100e6 }, 4_000_000, 9);
    expect([up, down]).toEqual(want);
    expect(p.a.mib.TcpRetransSegs + p.b.mib.TcpRetransSegs).toBeGreaterThan(0);
  }, 300_000);

  it('GSO off: TCP sends one segment per packet', async () => {
    const p = simPair({ seed: 3 });
    p.ia.setOffload('gso', false);
    const got: Buffer[] = [];
    p.b.tcp.createServer((s: TcpSocket) => s.on('data', (d: Buffer) => got.push(d))).listen(5001);
    const c = p.a.tcp.connect(5001, '10.0.0.2');
    const data = pattern(1_000_000, 1);
    c.on('connect', () => c.write(data));
    await runFor(p.time, 60_000, { stepMs: 2, until: () => Buffer.concat(got).length === data.length });
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
    expect(p.ia.offload.txSwGsoPackets).toBe(0);
  }, 60_000);
});
