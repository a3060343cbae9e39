import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';

describe('two stacks on a sim link', () => {
  it('ping each other; the first ping waits for ARP and is answered', () => {
    const { time, a, b, ia, ib } = simPair({ impair: { delayMs: 5 } });
    const r = simPing(time, a, ip('10.0.0.2'), 5);
    expect(r.replies.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
    // The first round trip includes the ARP exchange: two extra one-way delays.
    expect(r.rtts[0]).toBe(20);
    expect(r.rtts.slice(1)).toEqual([10, 10, 10, 10]);
    expect(r.replies[0].data.length).toBe(56);
    expect(r.replies[0].ttl).toBe(64);
    expect(ia.neigh!.get(ip('10.0.0.2'))?.state).toBe('REACHABLE');
    // b learnt a from its request (STALE, as Linux does), and confirmed nothing else.
    expect(ib.neigh!.get(ip('10.0.0.1'))?.mac).toEqual(ia.mac);
    expect(b.mib.IcmpInEchos).toBe(5);
    expect(b.mib.IcmpOutEchoReps).toBe(5);
    expect(b.icmpMsg.in[8]).toBe(5);
    expect(b.icmpMsg.out[0]).toBe(5);
    expect(a.mib.IcmpInEchoReps).toBe(5);
    // And the other way round.
    const back = simPing(time, b, ip('10.0.0.1'), 3, { ident: 99 });
    expect(back.replies.map((x) => x.seq)).toEqual([1, 2, 3]);
  });

  it('every size up to the MTU echoes back intact', () => {
    const { time, a } = simPair();
    for (const size of [0, 1, 56, 1000, 1472]) {
      const r = simPing(time, a, ip('10.0.0.2'), 1, { size, ident: size + 1 });
      expect(r.replies.length).toBe(1);
      const d = r.replies[0].data;
      expect(d.length).toBe(size);
      for (let i = 0; i < size; i++) if (d[i] !== (i & 0xff)) throw new Error(`byte ${i} differs`);
    }
  });

  it('with loss and delay the outcome is the same on every run', () => {
    const run = () => {
      const { time, a, da, db } = simPair({ impair: { delayMs: 20, jitterMs: 10, loss: 0.2 }, seed: 42 });
      const r = simPing(time, a, ip('10.0.0.2'), 200, { intervalMs: 100 });
      return { seqs: r.replies.map((x) => x.seq), rtts: r.rtts, lost: da.stats.lost + db.stats.lost };
    };
    const first = run();
    const second = run();
    expect(second).toEqual(first);
    // About 36% of round trips lose one of two frames at 20% loss each way.
    expect(first.seqs.length).toBeGreaterThan(100);
    expect(first.seqs.length).toBeLessThan(170);
    expect(first.lost).toBeGreaterThan(40);
    for (const t of first.rtts) expect(t).toBeGreaterThanOrEqual(40);
    // Most round trips are two one-way delays; a lost ARP exchange adds a 1 s retransmit.
    const plain = first.rtts.filter((t) => t <= 60).length;
    expect(plain / first.rtts.length).toBeGreaterThan(0.8);
  });

  it('ping over a raw IP link (TUN-like) needs no ARP', () => {
    const { time, a, ia } = simPair({ linkType: 'ip', impair: { delayMs: 1 } });
    const r = simPing(time, a, ip('10.0.0.2'), 3);
    expect(r.replies.length).toBe(3);
    expect(r.rtts).toEqual([2, 2, 2]);
    expect(ia.neigh).toBeNull();
  });

  it('an unanswered neighbour goes INCOMPLETE then FAILED, dropping the queued packets', () => {
    const { time, a, ia } = simPair();
    const r = simPing(time, a, ip('10.0.0.9'), 1, { waitMs: 0, intervalMs: 0 });
    expect(r.replies.length).toBe(0);
    expect(ia.neigh!.get(ip('10.0.0.9'))?.state).toBe('INCOMPLETE');
    time.advance(3500);
    expect(ia.neigh!.get(ip('10.0.0.9'))?.state).toBe('FAILED');
    expect(a.mib.ArpOutRequests).toBeGreaterThanOrEqual(3 + 1 /* gratuitous */);
    expect(ia.drops['neigh-failed']).toBe(1);
  });
});
