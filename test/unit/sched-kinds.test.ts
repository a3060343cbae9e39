import { describe, expect, it } from 'vitest';
import { Packet } from '../../src/packet/packet.js';
import type { SchedHost } from '../../src/sched/qdisc.js';
import { QDISC_KINDS } from '../../src/sched/kinds.js';
import { PfifoFastQdisc } from '../../src/sched/pfifo-fast.js';
import { RateCfg, TbfQdisc, parseTbf } from '../../src/sched/tbf.js';
import { packetPriority } from '../../src/sched/prio-map.js';

class FakeHost implements SchedHost {
  t = 0;
  wake: number[] = [];
  mtu = 1500;
  hardHeaderLen = 14;
  txQueueLen = 1000;
  devName = 'x0';
  now(): number {
    return this.t;
  }
  random(): number {
    return 0.5;
  }
  watchdog(at: number): void {
    this.wake.push(at);
  }
}

/** An Ethernet frame of `len` bytes carrying IPv4 with TOS `tos`. */
function frame(len: number, tos = 0, id = 0): Packet {
  const p = Packet.alloc(len);
  const b = p.buf;
  const s = p.start;
  b[s + 12] = 0x08;
  b[s + 13] = 0x00;
  b[s + 14] = 0x45;
  b[s + 15] = tos;
  b[s + 18] = id >> 8;
  b[s + 19] = id & 0xff;
  return p;
}
const idOf = (p: Packet | null): number => (p === null ? -1 : (p.buf[p.start + 18] << 8) | p.buf[p.start + 19]);

describe('pfifo_fast', () => {
  it('maps TOS to a priority as ip_tos2prio does, and the priority to a band by prio2band', () => {
    // TOS 0x10 (lowdelay) is interactive (6) → band 0; 0x08 (throughput) is bulk (2) → band 2;
    // 0x00 best effort → band 1; 0x18 → interactive bulk (4) → band 1; 0x02 (ECN bit) is ignored.
    expect(packetPriority(frame(100, 0x10), 14)).toBe(6);
    expect(packetPriority(frame(100, 0x08), 14)).toBe(2);
    expect(packetPriority(frame(100, 0x18), 14)).toBe(4);
    expect(packetPriority(frame(100, 0x12), 14)).toBe(6);
    expect(packetPriority(frame(100, 0xb8), 14)).toBe(4); // EF: (0xb8 & 0x1e) >> 1 = 12 → 4
  });

  it('dequeues band 0 before band 1 before band 2, FIFO within a band', () => {
    const h = new FakeHost();
    const q = new PfifoFastQdisc(0, 0xffffffff, h);
    q.enqueue(frame(100, 0x08, 1)); // band 2
    q.enqueue(frame(100, 0x00, 2)); // band 1
    q.enqueue(frame(100, 0x10, 3)); // band 0
    q.enqueue(frame(100, 0x00, 4)); // band 1
    q.enqueue(frame(100, 0x10, 5)); // band 0
    const order: number[] = [];
    for (let p = q.dequeue(); p !== null; p = q.dequeue()) order.push(idOf(p));
    expect(order).toEqual([3, 5, 2, 4, 1]);
    expect(q.stats.packets).toBe(5);
    expect(q.stats.bytes).toBe(500);
  });

  it('takes txqueuelen packets per band and drops beyond', () => {
    const h = new FakeHost();
    h.txQueueLen = 3;
    const q = new PfifoFastQdisc(0, 0xffffffff, h);
    for (let i = 0; i < 5; i++) q.enqueue(frame(100, 0, i));
    q.enqueue(frame(100, 0x10, 9));
    expect(q.stats.qlen).toBe(4);
    expect(q.stats.drops).toBe(2);
    expect(idOf(q.dequeue())).toBe(9);
  });
});

describe('pfifo and bfifo', () => {
  it('bfifo takes packets while their bytes fit the limit, pfifo counts packets', () => {
    const h = new FakeHost();
    const bk = QDISC_KINDS.get('bfifo')!;
    const b = bk.create(bk.parse(['limit', '3000'], h), h, 0x10000, 0xffffffff);
    expect(b.enqueue(frame(1500), h)).toBe(0);
    expect(b.enqueue(frame(1400), h)).toBe(0);
    expect(b.enqueue(frame(101), h)).toBe(1); // 3001 > 3000
    expect(b.enqueue(frame(100), h)).toBe(0); // exactly 3000
    expect(b.stats.backlog).toBe(3000);
    expect(b.stats.drops).toBe(1);
    const pk = QDISC_KINDS.get('pfifo')!;
    const p = pk.create(pk.parse(['limit', '2'], h), h, 0x20000, 0xffffffff);
    p.enqueue(frame(60), h);
    p.enqueue(frame(60), h);
    expect(p.enqueue(frame(60), h)).toBe(1);
    // Without a limit: txqueuelen packets, txqueuelen × (mtu + header) bytes.
    expect(pk.create(pk.parse([], h), h, 0x30000, 0xffffffff).printOptions(false)).toBe('limit 1000p');
    expect(bk.create(bk.parse([], h), h, 0x40000, 0xffffffff).printOptions(false)).toBe('limit 1514000b');
  });
});

describe('tbf token arithmetic (sch_tbf.c)', () => {
  it('computes ns per byte as psched_ratecfg_precompute does', () => {
    const r = new RateCfg(1250000); // 10 Mbit/s: 800 ns a byte
    expect(r.l2t(1000)).toBe(800000);
    expect(r.l2t(1514)).toBe(1211200);
    const g = new RateCfg(125000000); // 1 Gbit/s: 8 ns a byte
    expect(g.l2t(1514)).toBe(12112);
    expect(new RateCfg(8000).l2t(1)).toBe(125000); // 64 kbit/s
  });

  it('sends a burst at once, then each packet when its tokens are there, and sets the watchdog', () => {
    const h = new FakeHost();
    const q = new TbfQdisc(0x10000, 0xffffffff, parseTbf('rate 10mbit burst 3000 limit 100000'.split(' ')), h);
    for (let i = 0; i < 5; i++) q.enqueue(frame(1000, 0, i), h);
    // 3000 bytes of tokens: three frames now.
    expect(idOf(q.dequeue(h))).toBe(0);
    expect(idOf(q.dequeue(h))).toBe(1);
    expect(idOf(q.dequeue(h))).toBe(2);
    expect(q.dequeue(h)).toBeNull();
    expect(q.stats.overlimits).toBe(1);
    // The fourth needs 800 µs of tokens: the watchdog is set for then.
    expect(h.wake).toEqual([800000]);
    h.t = 799999;
    expect(q.dequeue(h)).toBeNull();
    expect(h.wake[1]).toBe(800000);
    h.t = 800000;
    expect(idOf(q.dequeue(h))).toBe(3);
    h.t = 1600000;
    expect(idOf(q.dequeue(h))).toBe(4);
    expect(q.stats.packets).toBe(5);
    expect(q.stats.bytes).toBe(5000);
    expect(q.stats.qlen).toBe(0);
  });

  it('with a peakrate, spaces packets by the peak bucket too', () => {
    const h = new FakeHost();
    // Peak 20 Mbit/s with a 1000-byte mtu bucket: one frame each 400 µs even with tokens in the burst.
    const q = new TbfQdisc(0x10000, 0xffffffff, parseTbf('rate 10mbit burst 10000 limit 100000 peakrate 20mbit mtu 1000'.split(' ')), h);
    for (let i = 0; i < 3; i++) q.enqueue(frame(1000, 0, i), h);
    expect(idOf(q.dequeue(h))).toBe(0);
    expect(q.dequeue(h)).toBeNull();
    expect(h.wake).toEqual([400000]);
    h.t = 400000;
    expect(idOf(q.dequeue(h))).toBe(1);
    h.t = 800000;
    expect(idOf(q.dequeue(h))).toBe(2);
  });

  it('drops a frame larger than the bucket, and what does not fit the limit', () => {
    const h = new FakeHost();
    const q = new TbfQdisc(0x10000, 0xffffffff, parseTbf('rate 10mbit burst 1000 limit 2500'.split(' ')), h);
    expect(q.enqueue(frame(1001), h)).toBe(1);
    expect(q.enqueue(frame(1000), h)).toBe(0);
    expect(q.enqueue(frame(1000), h)).toBe(0);
    expect(q.enqueue(frame(1000), h)).toBe(1);
    expect(q.stats.drops).toBe(2);
    expect(q.stats.backlog).toBe(2000);
  });
});

describe('prio (sch_prio.c)', () => {
  it('sends each packet to the band its TOS priority maps to, and dequeues the lowest band first', () => {
    const h = new FakeHost();
    const k = QDISC_KINDS.get('prio')!;
    // Four bands; priority 0 (best effort) to band 3, 6 (interactive) to band 0, the rest as pfifo_fast's map.
    const q = k.create(k.parse('bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1'.split(' '), h), h, 0x10000, 0xffffffff);
    q.enqueue(frame(100, 0x00, 1), h); // priority 0 → band 3
    q.enqueue(frame(100, 0x08, 2), h); // priority 2 → band 2
    q.enqueue(frame(100, 0x18, 3), h); // priority 4 → band 1
    q.enqueue(frame(100, 0x10, 4), h); // priority 6 → band 0
    q.enqueue(frame(100, 0x00, 5), h);
    const order: number[] = [];
    for (let p = q.dequeue(h); p !== null; p = q.dequeue(h)) order.push(idOf(p));
    expect(order).toEqual([4, 3, 2, 1, 5]);
    expect(q.classes!.list()).toEqual([0x10001, 0x10002, 0x10003, 0x10004]);
    expect(q.classes!.leaf(0x10004)!.stats.packets).toBe(2);
    expect(q.printOptions(false)).toBe('bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1');
  });

  it('reads its options as q_prio.c does and refuses what prio_tune refuses', () => {
    const h = new FakeHost();
    const k = QDISC_KINDS.get('prio')!;
    expect(() => k.parse(['bands', 'x'], h)).toThrow('Illegal "bands"');
    expect(() => k.parse(['priomap', '3'], h)).toThrow('"priomap" element is out of bands');
    expect(() => k.parse(['foo'], h)).toThrow('What is "foo"?');
    expect(() => k.parse(['priomap', '1', 'priomap'], h)).toThrow('Error: duplicate priomap');
    expect(() => k.create(k.parse(['bands', '1', 'priomap', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0'], h), h, 0x10000, 0xffffffff)).toThrow('Invalid argument');
    // Three bands by default with pfifo_fast's map; priomap elements past those given keep it.
    expect(k.create(k.parse(['priomap', '0', '0'], h), h, 0x10000, 0xffffffff).printOptions(false)).toBe('bands 3 priomap 0 0 2 2 1 2 0 0 1 1 1 1 1 1 1 1');
  });
});
