import { describe, expect, it } from 'vitest';
import { RealTime, VirtualTime } from '../../src/time/timers.js';

describe('timer queue on virtual time', () => {
  it('runs timers in deadline order, each at its own time, FIFO on ties', () => {
    const t = new VirtualTime();
    const seen: string[] = [];
    t.after(30, () => seen.push(`c@${t.now()}`));
    t.after(10, () => seen.push(`a@${t.now()}`));
    t.after(10, () => seen.push(`b@${t.now()}`));
    t.advance(25);
    expect(seen).toEqual(['a@10', 'b@10']);
    expect(t.now()).toBe(25);
    t.advance(5);
    expect(seen).toEqual(['a@10', 'b@10', 'c@30']);
  });

  it('re-arms and cancels reusable timers', () => {
    const t = new VirtualTime();
    let fired = 0;
    const timer = t.timer(() => fired++);
    t.arm(timer, 100);
    t.arm(timer, 200); // re-arming moves it, doesn't duplicate it
    expect(t.pending).toBe(1);
    t.advance(150);
    expect(fired).toBe(0);
    t.advance(50);
    expect(fired).toBe(1);
    t.arm(timer, 10);
    t.cancel(timer);
    t.advance(100);
    expect(fired).toBe(1);
    expect(timer.armed).toBe(false);
  });

  it('runs timers armed by timers within the same advance', () => {
    const t = new VirtualTime();
    const at: number[] = [];
    const tick = t.timer(() => {
      at.push(t.now());
      if (at.length < 5) t.arm(tick, 7);
    });
    t.arm(tick, 7);
    t.advance(100);
    expect(at).toEqual([7, 14, 21, 28, 35]);
  });

  it('keeps the heap ordered through many random inserts and cancels', () => {
    const t = new VirtualTime();
    const order: number[] = [];
    const timers = [];
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 2000; i++) {
      const d = Math.floor(rnd() * 10000);
      timers.push(t.after(d, () => order.push(t.now())));
    }
    for (let i = 0; i < 2000; i += 3) t.cancel(timers[i]);
    t.advance(20000);
    expect(order.length).toBe(2000 - Math.ceil(2000 / 3));
    for (let i = 1; i < order.length; i++) expect(order[i]).toBeGreaterThanOrEqual(order[i - 1]);
  });
});

describe('timer queue on real time', () => {
  it('a timer cancelled or pushed back leaves the Node timer early; nothing fires before its deadline, each fires after it', async () => {
    const t = new RealTime();
    const fired: Array<[string, number]> = [];
    const start = t.now();
    const a = t.timer(() => fired.push(['a', t.now() - start]));
    const b = t.timer(() => fired.push(['b', t.now() - start]));
    t.arm(a, 60);
    t.arm(b, 10);
    t.cancel(b); // the earliest deadline moves later: 10 -> 60
    t.arm(b, 20);
    t.arm(b, 40); // pushed back
    await new Promise((r) => setTimeout(r, 120));
    t.stop();
    expect(fired.map((f) => f[0])).toEqual(['b', 'a']);
    expect(fired[0][1]).toBeGreaterThanOrEqual(40);
    expect(fired[1][1]).toBeGreaterThanOrEqual(60);
    expect(a.armed || b.armed).toBe(false);
  });
});
