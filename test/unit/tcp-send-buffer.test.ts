import { describe, expect, it } from 'vitest';
import { SendArena, SendBuffer } from '../../src/tcp/send-buffer.js';

/** A send buffer holding a-z as three chunks (a-e, f-l, m-z) copied through an arena. */
function alphabet(): { sb: SendBuffer; arena: SendArena; src: Buffer } {
  const sb = new SendBuffer();
  const arena = new SendArena();
  const src = Buffer.from('abcdefghijklmnopqrstuvwxyz');
  sb.push(arena.copy(src.subarray(0, 5)));
  sb.push(arena.copy(src.subarray(5, 12)));
  sb.push(arena.copy(src.subarray(12)));
  return { sb, arena, src };
}

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
    const { sb, src } = alphabet();
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

  it('views gives the same bytes as copyOut without copying, stays valid after consume, and gives up beyond max pieces', () => {
    const { sb, arena } = alphabet();
    const out: Uint8Array[] = [];
    const k = sb.views(3, 10, out, 4);
    expect(k).toBe(3);
    expect(Buffer.concat(out.slice(0, k)).toString()).toBe('defghijklm');
    // Views, not copies: the pieces lie in the arena's one slab.
    expect(out[0].buffer).toBe(out[1].buffer);
    expect(out[1].buffer).toBe(out[2].buffer);
    sb.consume(20);
    expect(Buffer.concat(out.slice(0, k)).toString()).toBe('defghijklm');
    // From the new front: one piece; three needed with a max of two: 0, and nothing kept.
    expect(sb.views(0, 6, out, 1)).toBe(1);
    expect(Buffer.from(out[0]).toString()).toBe('uvwxyz');
    sb.push(arena.copy(Buffer.from('12')));
    sb.push(arena.copy(Buffer.from('34')));
    const few: Uint8Array[] = [];
    expect(sb.views(4, 6, few, 2)).toBe(0);
    expect(few.every((v) => v.length === 0)).toBe(true);
    expect(sb.views(4, 6, few, 3)).toBe(3);
    expect(Buffer.concat(few).toString()).toBe('yz1234');
  });

  it('copyString encodes a string straight into the slab, in its encoding, and a large one into a buffer of its own', () => {
    const arena = new SendArena();
    const cases: [string, BufferEncoding][] = [
      ['HTTP/1.1 200 OK\r\n\r\nhello', 'utf8'],
      ['grüße, 日本語, 🙂', 'utf8'],
      ['caf\u00e9', 'latin1'],
      ['00ff7f80', 'hex'],
      ['aGVsbG8gd29ybGQ=', 'base64'],
      ['ab\u00e9', 'utf16le'],
      ['', 'utf8'],
    ];
    const pieces = cases.map(([s, enc]) => arena.copyString(s, enc));
    cases.forEach(([s, enc], i) => expect(Buffer.from(pieces[i]).equals(Buffer.from(s, enc))).toBe(true));
    // Small ones share one slab, 8-byte aligned, as copy() does.
    expect(pieces[1].buffer).toBe(pieces[0].buffer);
    expect(pieces[1].byteOffset % 8).toBe(0);
    // 2,000 three-byte characters: 6,000 bytes, over the small limit.
    const big = '日'.repeat(2000);
    const cbig = arena.copyString(big, 'utf8');
    expect(cbig.byteLength).toBe(6000);
    expect(cbig.buffer).not.toBe(pieces[0].buffer);
    expect(Buffer.from(cbig).toString('utf8')).toBe(big);
    // 1,500 one-byte characters bound to 4,500 bytes by length alone, but measured 1,500: slab.
    const ascii = 'x'.repeat(1500);
    const cascii = arena.copyString(ascii, 'utf8');
    expect(cascii.buffer).toBe(pieces[0].buffer);
    expect(Buffer.from(cascii).toString()).toBe(ascii);
  });

  it('copyString starts a new slab when the string does not fit in what is left of one', () => {
    const arena = new SendArena();
    const first = arena.copy(Buffer.alloc(4096, 1));
    for (let i = 0; i < 14; i++) arena.copy(Buffer.alloc(4096, 2));
    // 61,440 bytes used: a 3,000-byte string (bound 9,000 by length) fits the 4,096 left.
    const fits = arena.copyString('é'.repeat(1500), 'utf8');
    expect(fits.buffer).toBe(first.buffer);
    expect(fits.byteLength).toBe(3000);
    // 64,440 used: 1,096 left, and 1,100 bytes do not fit.
    const next = arena.copyString('z'.repeat(1100), 'latin1');
    expect(next.buffer).not.toBe(first.buffer);
    expect(Buffer.from(next).toString('latin1')).toBe('z'.repeat(1100));
    expect(Buffer.from(fits).toString('utf8')).toBe('é'.repeat(1500));
  });
});
