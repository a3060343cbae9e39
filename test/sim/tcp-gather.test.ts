/**
 * Scatter-gather transmit. A data segment's payload of 4 KB or more stays in the
 * socket's send buffer: the device gets the headers and then views of that buffer
 * (Device.sendBatchGather, a writev() on a TAP), with no copy on the way. Whatever
 * reads the payload before the device (a capture, netfilter rules, software GSO on
 * a link without offloads) gets the bytes copied in first.
 */
import { describe, expect, it } from 'vitest';
import { simPair, type SimPair } from '../helpers/sim.js';
import { exchangeBothWays, pattern, sha256 } from '../helpers/tcp-sim.js';
import { cmd } from '../helpers/nat-sim.js';

/** Counts a's frames, and those it handed over as a head plus payload views. */
function countFrames(p: SimPair): { frames: number; gathered: number; gatheredBytes: number } {
  const n = { frames: 0, gathered: 0, gatheredBytes: 0 };
  const send = p.da.sendBatch.bind(p.da);
  p.da.sendBatch = (frames, count) => {
    n.frames += count;
    return send(frames, count);
  };
  const gather = p.da.sendBatchGather.bind(p.da);
  p.da.sendBatchGather = (frames, g, count) => {
    n.frames += count;
    for (let i = 0; i < count; i++) {
      const q = g[i];
      if (q === null) continue;
      n.gathered++;
      n.gatheredBytes += q.end - q.gatherAt;
    }
    return gather(frames, g, count);
  };
  return n;
}

/** The TCP payload of each IPv4 frame (Ethernet, after any virtio_net_hdr) to `dport`, in order. */
function payloadTo(frames: Uint8Array[], dport: number): Buffer {
  const out: Buffer[] = [];
  for (const f of frames) {
    if (f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 6) continue;
    const l3 = 14;
    const l4 = l3 + ((f[l3] & 0x0f) << 2);
    if (((f[l4 + 2] << 8) | f[l4 + 3]) !== dport) continue;
    const end = l3 + ((f[l3 + 2] << 8) | f[l3 + 3]);
    out.push(Buffer.from(f.subarray(l4 + ((f[l4 + 12] >> 4) << 2), end)));
  }
  return Buffer.concat(out);
}

describe('TCP scatter-gather transmit', () => {
  it('over a link with offloads, with loss: super-packets leave as headers plus send-buffer views, and both peers get the bytes as written', async () => {
    const p = simPair({ offload: true, impair: { delayMs: 2, loss: 0.05, rateBps: 2e9 }, seed: 61 });
    const n = countFrames(p);
    const up = pattern(3_000_000, 5);
    const down = pattern(2_000_000, 6);
    const r = await exchangeBothWays(p, up, down);
    expect(r.errors).toEqual([]);
    expect(sha256(r.atServer)).toBe(sha256(up));
    expect(sha256(r.atClient)).toBe(sha256(down));
    // Most of what a sent went gathered, retransmissions included.
    expect(n.gathered).toBeGreaterThan(0);
    expect(n.gatheredBytes).toBeGreaterThan(up.length / 2);
    expect(p.a.mib.TcpRetransSegs).toBeGreaterThan(0);
    // The interface counts a gathered frame's whole length.
    expect(p.ia.stats.txBytes).toBeGreaterThan(up.length);
  }, 60_000);

  it('a capture sees whole frames: nothing is gathered, and the captured payload is the data in order', async () => {
    const p = simPair({ offload: true, impair: { delayMs: 1, rateBps: 1e9 }, seed: 62 });
    const n = countFrames(p);
    const sent: Uint8Array[] = [];
    p.a.capture = (iface, f) => {
      if (iface === p.ia) sent.push(f.slice());
    };
    const up = pattern(1_000_000, 7);
    const r = await exchangeBothWays(p, up, new Uint8Array(0));
    expect(sha256(r.atServer)).toBe(sha256(up));
    expect(n.gathered).toBe(0);
    expect(n.frames).toBeGreaterThan(0);
    // Received frames are captured as well; those to port 5001 are a's.
    expect(sha256(payloadTo(sent, 5001))).toBe(sha256(up));
  }, 60_000);

  it('a netfilter OUTPUT rule sees the payload: segments are copied whole before the hook, and counted', async () => {
    const p = simPair({ offload: true, impair: { delayMs: 1, rateBps: 1e9 }, seed: 63 });
    const n = countFrames(p);
    cmd(p.a, 'nft add table ip f', 'nft add chain ip f out { type filter hook output priority 0 ; }', 'nft add rule ip f out tcp dport 5001 counter');
    const up = pattern(1_000_000, 8);
    const r = await exchangeBothWays(p, up, new Uint8Array(0));
    expect(sha256(r.atServer)).toBe(sha256(up));
    expect(n.gathered).toBe(0);
  }, 60_000);

  it('without offloads the stack cuts super-packets itself: nothing is gathered and the bytes arrive as written', async () => {
    const p = simPair({ offload: false, impair: { delayMs: 1, loss: 0.01, rateBps: 1e9 }, seed: 64 });
    const n = countFrames(p);
    const up = pattern(1_000_000, 9);
    const r = await exchangeBothWays(p, up, new Uint8Array(0));
    expect(sha256(r.atServer)).toBe(sha256(up));
    expect(n.gathered).toBe(0);
    expect(n.frames).toBeGreaterThan(up.length / 1500);
  }, 60_000);
});
