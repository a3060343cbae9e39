/**
 * Containers for what comes and goes with traffic: TCP's connection and TIME_WAIT tables,
 * its list of live connections, a listener's SYN queue, a server's sockets, IPv4's
 * reassembly queues.
 *
 * They are not Map or Set on purpose. A V8 Map or Set that outgrows its table (or is
 * cleared) moves to a new one and leaves the old table pointing at it, for iterators that
 * may still walk the old one; the old table also keeps the entries it had. Under
 * connection churn the tables turn over every few dozen connections, and once one of them
 * reaches the old generation, that dead table holds the whole chain of its successors,
 * and through them every connection that was ever in any of them, until the next full
 * collection. Every connection's objects then survive young-generation collections and
 * are copied into the old generation (measured: about 4.7 KB a connection under
 * `ab -c 50`, and a full collection about every 0.75 s), and the full collections
 * this brings arm V8's memory reducer, which slows the process down later.
 *
 * Here the links live in the objects and are cleared when an object leaves, so a removed
 * object is referenced from nowhere and dies young.
 */

/** One object's membership of one LinkedSet. */
export class ListLink<T> {
  prev: ListLink<T> | null = null;
  next: ListLink<T> | null = null;
  list: LinkedSet<T> | null = null;
  constructor(readonly owner: T) {}
}

/** A set in insertion order, over links the members carry (one link per set an object can be in). */
export class LinkedSet<T> implements Iterable<T> {
  private head: ListLink<T> | null = null;
  private tail: ListLink<T> | null = null;
  size = 0;

  has(l: ListLink<T>): boolean {
    return l.list === this;
  }

  add(l: ListLink<T>): void {
    if (l.list === this) return;
    if (l.list !== null) l.list.delete(l);
    l.list = this;
    l.prev = this.tail;
    l.next = null;
    if (this.tail !== null) this.tail.next = l;
    else this.head = l;
    this.tail = l;
    this.size++;
  }

  delete(l: ListLink<T>): boolean {
    if (l.list !== this) return false;
    if (l.prev !== null) l.prev.next = l.next;
    else this.head = l.next;
    if (l.next !== null) l.next.prev = l.prev;
    else this.tail = l.prev;
    l.prev = null;
    l.next = null;
    l.list = null;
    this.size--;
    return true;
  }

  clear(): void {
    while (this.head !== null) this.delete(this.head);
  }

  /**
   * Members in the order they joined, as they were when the walk began; one that leaves
   * before its turn is skipped. (Listings only: the walk copies the links.)
   */
  *[Symbol.iterator](): Iterator<T> {
    const links: ListLink<T>[] = [];
    for (let l = this.head; l !== null; l = l.next) links.push(l);
    for (const l of links) if (l.list === this) yield l.owner;
  }

  values(): Iterator<T> {
    return this[Symbol.iterator]();
  }
}

/** What a HashChains holds: its bucket chain link and the hash it was filed under. */
export interface Chained<T> {
  hashNext: T | null;
  hashValue: number;
}

/**
 * A hash table of objects chained through their own hashNext (as Linux's ehash): buckets in
 * one array that doubles when the count passes its length. Lookups walk `first(hash)` and
 * compare keys themselves.
 */
export class HashChains<T extends Chained<T>> {
  private buckets: (T | null)[];
  private mask: number;
  count = 0;

  constructor(initialBits = 8) {
    this.buckets = new Array<T | null>(1 << initialBits).fill(null);
    this.mask = (1 << initialBits) - 1;
  }

  /** The chain that objects filed under `hash` are in (with others of the same bucket). */
  first(hash: number): T | null {
    return this.buckets[hash & this.mask];
  }

  insert(x: T, hash: number): void {
    if (this.count >= this.buckets.length) this.grow();
    x.hashValue = hash;
    const i = hash & this.mask;
    x.hashNext = this.buckets[i];
    this.buckets[i] = x;
    this.count++;
  }

  /** Takes `x` out of its chain; false if it was not in the table. */
  remove(x: T): boolean {
    const i = x.hashValue & this.mask;
    let p = this.buckets[i];
    if (p === x) this.buckets[i] = x.hashNext;
    else {
      while (p !== null && p.hashNext !== x) p = p.hashNext;
      if (p === null) return false;
      p.hashNext = x.hashNext;
    }
    x.hashNext = null;
    this.count--;
    return true;
  }

  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    const buckets = new Array<T | null>(n).fill(null);
    const mask = n - 1;
    for (let i = 0; i < old.length; i++) {
      let x = old[i];
      while (x !== null) {
        const next = x.hashNext;
        const j = x.hashValue & mask;
        x.hashNext = buckets[j];
        buckets[j] = x;
        x = next;
      }
      old[i] = null;
    }
    this.buckets = buckets;
    this.mask = mask;
  }
}
