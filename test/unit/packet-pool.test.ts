import { describe, expect, it } from 'vitest';
import { DEFAULT_HEADROOM, Packet, PacketPool } from '../../src/packet/packet.js';

describe('PacketPool', () => {
  it('hands a sent packet out again, with fresh offsets and metadata', () => {
    const pool = new PacketPool(512, 4);
    const p = pool.alloc(100);
    expect(p.buf.length).toBe(512);
    expect(p.start).toBe(DEFAULT_HEADROOM);
    expect(p.length).toBe(100);
    p.push(20);
    p.l3 = p.start;
    p.l4 = p.start + 20;
    p.mark = 7;
    p.ifindex = 3;
    p.linkBroadcast = true;
    p.ct = {};
    p.sent();
    expect(pool.available).toBe(1);
    const q = pool.alloc(60, 40);
    expect(q).toBe(p);
    expect(pool.available).toBe(0);
    expect([q.start, q.end, q.l3, q.l4, q.mark, q.ifindex, q.linkBroadcast, q.ct]).toEqual([40, 100, -1, -1, 0, 0, false, null]);
  });

  it('gives requests larger than its buffers a plain packet that never comes back', () => {
    const pool = new PacketPool(256, 4);
    const p = pool.alloc(256 - DEFAULT_HEADROOM + 1);
    expect(p.pool).toBeNull();
    p.sent();
    expect(pool.available).toBe(0);
  });

  it('leaves grown packets to the GC and keeps at most maxFree', () => {
    const pool = new PacketPool(256, 2);
    const grown = pool.alloc(10, 0);
    grown.push(14); // no headroom: the buffer is replaced by a bigger one
    expect(grown.buf.length).toBeGreaterThan(256);
    grown.sent();
    expect(pool.available).toBe(0);
    const ps = [pool.alloc(10), pool.alloc(10), pool.alloc(10)];
    for (const p of ps) p.sent();
    expect(pool.available).toBe(2);
  });

  it('packets not from a pool ignore sent()', () => {
    const p = Packet.alloc(10);
    p.sent();
    expect(p.pool).toBeNull();
  });
});
