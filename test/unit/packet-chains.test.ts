import { describe, expect, it } from 'vitest';
import { HashChains, LinkedSet, ListLink, type Chained } from '../../src/packet/chains.js';

class Item implements Chained<Item> {
  hashNext: Item | null = null;
  hashValue = 0;
  readonly link = new ListLink<Item>(this);
  constructor(readonly key: number) {}
}

function find(t: HashChains<Item>, key: number, hash: number): Item | null {
  for (let x = t.first(hash); x !== null; x = x.hashNext) if (x.key === key) return x;
  return null;
}

describe('LinkedSet', () => {
  it('keeps insertion order and size, and adding a member twice changes nothing', () => {
    const s = new LinkedSet<Item>();
    const items = [1, 2, 3, 4].map((k) => new Item(k));
    for (const x of items) s.add(x.link);
    s.add(items[1].link);
    expect(s.size).toBe(4);
    expect([...s].map((x) => x.key)).toEqual([1, 2, 3, 4]);
    expect(s.has(items[2].link)).toBe(true);
  });

  it('a removed member keeps no link to the set or its neighbours', () => {
    const s = new LinkedSet<Item>();
    const items = [1, 2, 3].map((k) => new Item(k));
    for (const x of items) s.add(x.link);
    expect(s.delete(items[1].link)).toBe(true);
    expect(s.delete(items[1].link)).toBe(false);
    const l = items[1].link;
    expect([l.prev, l.next, l.list]).toEqual([null, null, null]);
    expect([...s].map((x) => x.key)).toEqual([1, 3]);
    s.delete(items[0].link);
    s.delete(items[2].link);
    expect(s.size).toBe(0);
    expect([...s]).toEqual([]);
  });

  it('a walk survives removal of the member it is at, and skips members removed before their turn', () => {
    const s = new LinkedSet<Item>();
    const items = [1, 2, 3, 4, 5].map((k) => new Item(k));
    for (const x of items) s.add(x.link);
    const seen: number[] = [];
    for (const x of s) {
      seen.push(x.key);
      s.delete(x.link);
      if (x.key === 2) s.delete(items[3].link);
    }
    expect(seen).toEqual([1, 2, 3, 5]);
    expect(s.size).toBe(0);
  });

  it('moving a link to another set takes it out of the first', () => {
    const a = new LinkedSet<Item>();
    const b = new LinkedSet<Item>();
    const x = new Item(7);
    a.add(x.link);
    b.add(x.link);
    expect([a.size, b.size]).toEqual([0, 1]);
    expect(a.has(x.link)).toBe(false);
    a.clear();
    b.clear();
    expect(b.size).toBe(0);
    expect(x.link.list).toBeNull();
  });
});

describe('HashChains', () => {
  it('finds every item after the table has doubled many times, including items whose hashes share a bucket', () => {
    const t = new HashChains<Item>(2);
    const items: Item[] = [];
    // Hashes up to 2^32 - 1, and pairs that differ only above the bucket mask.
    for (let k = 0; k < 5000; k++) {
      const x = new Item(k);
      items.push(x);
      t.insert(x, (k % 2 === 0 ? k * 2654435761 : (k - 1) * 2654435761 + 2 ** 20) >>> 0);
    }
    expect(t.count).toBe(5000);
    for (const x of items) expect(find(t, x.key, x.hashValue)).toBe(x);
  });

  it('removes items from the head, middle and end of a chain and clears their link', () => {
    const t = new HashChains<Item>(1);
    const a = new Item(1);
    const b = new Item(2);
    const c = new Item(3);
    t.insert(a, 4);
    t.insert(b, 4);
    t.insert(c, 4);
    expect(t.remove(b)).toBe(true);
    expect(b.hashNext).toBeNull();
    expect(find(t, 1, 4)).toBe(a);
    expect(find(t, 3, 4)).toBe(c);
    expect(t.remove(c)).toBe(true);
    expect(t.remove(a)).toBe(true);
    expect(t.remove(a)).toBe(false);
    expect(t.count).toBe(0);
    expect(t.first(4)).toBeNull();
  });
});
