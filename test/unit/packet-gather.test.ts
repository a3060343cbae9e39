import { describe, expect, it } from 'vitest';
import { Packet, PacketPool } from '../../src/packet/packet.js';

/** A packet of a 4-byte header followed by `payload` as views (not yet in its buffer). */
function gathered(pool: PacketPool, payload: string[]): Packet {
  const total = payload.reduce((n, s) => n + s.length, 0);
  const p = pool.alloc(4 + total);
  p.buf.set([1, 2, 3, 4], p.start);
  const l = p.gatherList();
  payload.forEach((s, i) => (l[i] = Buffer.from(s)));
  p.setGather(p.start + 4, payload.length);
  return p;
}

describe('Packet payload views (scatter-gather)', () => {
  it('linearize copies the views in after the header, once; data() does it by itself', () => {
    const pool = new PacketPool(256, 4);
    const p = gathered(pool, ['abc', 'defg']);
    p.buf.fill(0, p.start + 4, p.end);
    expect(p.gatherCount).toBe(2);
    const d = p.data();
    expect(p.gatherCount).toBe(0);
    expect(Array.from(d.subarray(0, 4))).toEqual([1, 2, 3, 4]);
    expect(Buffer.from(d.subarray(4)).toString()).toBe('abcdefg');
    // The views are let go of (their memory is not held by the packet any longer).
    expect(p.gatherParts!.slice(0, 2).every((v) => v.length === 0)).toBe(true);
  });

  it('a header pushed beyond the headroom moves the payload offset with the bytes', () => {
    const p = gathered(new PacketPool(256, 4), ['hello']);
    const at = p.gatherAt - p.start;
    p.push(200);
    expect(p.gatherAt - p.start).toBe(at + 200);
    p.linearize();
    expect(Buffer.from(p.buf.subarray(p.end - 5, p.end)).toString()).toBe('hello');
  });

  it('clone and own copy the payload too; a sent packet comes back from its pool without views', () => {
    const pool = new PacketPool(256, 4);
    const p = gathered(pool, ['xy', 'z']);
    const c = p.clone();
    expect(Buffer.from(c.data().subarray(4)).toString()).toBe('xyz');
    const q = gathered(pool, ['uvw']);
    q.own();
    expect(Buffer.from(q.data().subarray(4)).toString()).toBe('uvw');
    const r = gathered(pool, ['123']);
    r.sent();
    expect(r.gatherCount).toBe(0);
    const again = pool.alloc(8);
    expect(again).toBe(r);
    expect(again.gatherCount).toBe(0);
  });
});
