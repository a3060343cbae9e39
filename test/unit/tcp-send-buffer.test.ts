import { describe, expect, it } from 'vitest';
import { SendArena, SendBuffer } from '../../src/tcp/send-buffer.js';

describe('SendArena and SendBuffer', () => {
  it('copies: changing the written buffer afterwards changes nothing held; small copies share a slab, large ones do not', () => {
    const arena = new SendArena();
    const a = Buffer.from('hello');
    const b = Buffer.from('world!');
    const ca = arena.copy(a);
    const cb = arena.copy(b);
    a.fill(0);
    b.fill(0);
    expect(Buffer.from(ca).toString()).toBe('hello');
    expect(Buffer.from(cb).toString()).toBe('world!');
    expect(ca.buffer).toBe(cb.buffer);
    // 8-byte aligned pieces, one after the other.
    expect(cb.byteOffset - ca.byteOffset).toBe(8);
    const big = Buffer.alloc(10_000, 7);
    const cbig = arena.copy(big);
    big.fill(1);
    expect(cbig.buffer).not.toBe(ca.buffer);
    expect(cbig.byteLength).toBe(10_000);
    expect(cbig.every((x) => x === 7)).toBe(true);
  });

  it('a full slab is left to the pieces that use it and a new one begins', () => {
    const arena = new SendArena();
    const first = arena.copy(Buffer.alloc(4096, 1));
    let last = first;
    for (let i = 0; i < 16; i++) last = arena.copy(Buffer.alloc(4096, 2));
    expect(last.buffer).not.toBe(first.buffer);
    expect(first.every((x) => x === 1)).toBe(true);
  });

  it('copyOut reads across chunks from any offset, and consume drops acknowledged bytes', () => {
    const sb = new SendBuffer();
    const arena = new SendArena();
    const src = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    sb.push(arena.copy(src.subarray(0, 5)));
    sb.push(arena.copy(src.subarray(5, 12)));
    sb.push(arena.copy(src.subarray(12)));
    src.fill(0);
    const out = Buffer.alloc(10);
    sb.copyOut(3, 10, out, 0);
    expect(out.toString()).toBe('defghijklm');
    sb.consume(6);
    expect(sb.length).toBe(20);
    sb.copyOut(0, 10, out, 0);
    expect(out.toString()).toBe('ghijklmnop');
    sb.copyOut(15, 5, out, 0);
    expect(out.subarray(0, 5).toString()).toBe('vwxyz');
  });
});
