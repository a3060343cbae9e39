/**
 * Who owns received bytes. A TAP's receive slots are read into again at the next
 * batch, so what a socket keeps of a segment must be its own; pieces the connection
 * queued out of order (or before a user took it) are copies already and are handed
 * over without another. With both sim ends delivering every frame from one buffer
 * that is overwritten after each batch (SimDevice.reuseRx), data kept by the
 * sockets across thousands of later batches must still be what was sent.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { exchangeBothWays, pattern, sha256 } from '../helpers/tcp-sim.js';
import { TcpSocket } from '../../src/tcp/socket.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('TCP receive buffers: data handed to a socket stays intact', () => {
  it('2 MB each way over reused receive buffers, with reordering, loss and duplicates: every kept chunk intact; out-of-order pieces handed over uncopied', async () => {
    const p = simPair({ impair: { delayMs: 2, jitterMs: 1, loss: 0.01, duplicate: 0.01, reorder: 0.05, rateBps: 200e6 }, seed: 31 });
    p.da.reuseRx = true;
    p.db.reuseRx = true;
    const handed = { owned: 0, copied: 0 };
    const onData = TcpSocket.prototype.onData;
    vi.spyOn(TcpSocket.prototype, 'onData').mockImplementation(function (this: TcpSocket, d: Uint8Array, owned: boolean) {
      if (owned) handed.owned++;
      else handed.copied++;
      onData.call(this, d, owned);
    });
    const up = pattern(2_000_000, 5);
    const down = pattern(2_000_000, 6);
    const { atServer, atClient, errors } = await exchangeBothWays(p, up, down);
    expect(errors).toEqual([]);
    expect(atServer.length).toBe(up.length);
    expect(atClient.length).toBe(down.length);
    // The chunks were kept (concatenated only at the end) while the buffers were overwritten.
    expect(sha256(atServer)).toBe(sha256(up));
    expect(sha256(atClient)).toBe(sha256(down));
    // Both kinds of hand-over happened: views of the receive buffer (copied by the
    // socket) and the out-of-order queue's own pieces (kept as they are).
    expect(handed.copied).toBeGreaterThan(100);
    expect(handed.owned).toBeGreaterThan(10);
    expect(p.a.mib.TcpRetransSegs + p.b.mib.TcpRetransSegs).toBeGreaterThan(0);
  }, 120_000);

  it('a socket that would keep views of the receive buffer would see them overwritten (the sim device reuses it)', async () => {
    const p = simPair({ impair: { delayMs: 1 }, seed: 32 });
    p.db.reuseRx = true;
    // Keep the views the connection hands over, uncopied, beside what the socket makes of them.
    const views: Uint8Array[] = [];
    const onData = TcpSocket.prototype.onData;
    vi.spyOn(TcpSocket.prototype, 'onData').mockImplementation(function (this: TcpSocket, d: Uint8Array, owned: boolean) {
      if (this.localPort === 5001) views.push(d);
      onData.call(this, d, owned);
    });
    const up = pattern(200_000, 7);
    const { atServer, errors } = await exchangeBothWays(p, up, pattern(10, 8));
    expect(errors).toEqual([]);
    expect(sha256(atServer)).toBe(sha256(up));
    // The raw views now hold the device's filler, not the data.
    const kept = Buffer.concat(views.filter((v) => v.length > 0));
    expect(kept.length).toBe(up.length);
    expect(sha256(kept)).not.toBe(sha256(up));
    expect(kept.every((b) => b === 0xee)).toBe(true);
  }, 60_000);
});
