import { describe, expect, it } from 'vitest';
import { TcParseError } from '../../src/sched/qdisc.js';
import { netemKind, NetemQdisc } from '../../src/sched/netem.js';
import { distTable } from '../../src/sched/netem-dist.js';
import { FakeHost, ipChecksumOk, udpFrame } from './sched-fake.js';
import type { Packet } from '../../src/packet/packet.js';

const MS = 1e6;

function tcError(f: () => unknown): { code: number; msg: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof TcParseError) return { code: e.exitCode, msg: e.message };
    throw e;
  }
  throw new Error('no error');
}

const mk = (args: string[], host = new FakeHost()): NetemQdisc =>
  netemKind.create(netemKind.parse(args, host), host, 0x10000, 0xffffffff) as NetemQdisc;

/** Options as `tc qdisc show` prints them, seed left out (it is random unless given). */
const show = (args: string[]): string => mk([...args, 'seed', '7']).printOptions(false).replace(' seed 7', '');

describe('netem: tc arguments and output (q_netem.c)', () => {
  it('prints every option as tc does', () => {
    expect(show([])).toBe('limit 1000');
    expect(show(['delay', '20ms'])).toBe('limit 1000 delay 20ms');
    expect(show(['delay', '100ms', '10ms', '25%'])).toBe('limit 1000 delay 100ms  10ms 25%');
    expect(show(['delay', '100ms', '10ms', 'distribution', 'normal'])).toBe('limit 1000 delay 100ms  10ms');
    expect(show(['delay', '1.5', '2us'])).toBe('limit 1000 delay 1ns  2us');
    expect(show(['loss', '0.3%', '25%'])).toBe('limit 1000 loss 0.3% 25%');
    expect(show(['loss', 'random', '1'])).toBe('limit 1000 loss 1%');
    expect(show(['drop', '50%'])).toBe('limit 1000 loss 50%');
    expect(show(['loss', 'state', '10%'])).toBe('limit 1000 loss state p13 10% p31 90% p32 0% p23 100% p14 0%');
    expect(show(['loss', 'state', '1', '2', '3', '4', '5'])).toBe('limit 1000 loss state p13 1% p31 2% p32 3% p23 4% p14 5%');
    expect(show(['loss', 'gemodel', '1%'])).toBe('limit 1000 loss gemodel p 1% r 99% 1-h 100% 1-k 0%');
    expect(show(['loss', 'gemodel', '1%', '10%', '70%', '0.1%'])).toBe('limit 1000 loss gemodel p 1% r 10% 1-h 70% 1-k 0.1%');
    // q_netem.c sends the correlations only when one besides the duplicate's was given.
    expect(show(['duplicate', '1%', '10%'])).toBe('limit 1000 duplicate 1%');
    expect(show(['loss', '1%', '5%', 'duplicate', '1%', '10%'])).toBe('limit 1000 loss 1% 5% duplicate 1% 10%');
    expect(show(['corrupt', '0.1%'])).toBe('limit 1000 corrupt 0.1%');
    expect(show(['delay', '10ms', 'reorder', '25%', '50%', 'gap', '5'])).toBe('limit 1000 delay 10ms reorder 25% 50% gap 5');
    expect(show(['delay', '10ms', 'reorder', '25%'])).toBe('limit 1000 delay 10ms reorder 25% gap 1');
    expect(show(['rate', '1mbit'])).toBe('limit 1000 rate 1Mbit');
    expect(show(['rate', '100kbit', '20', '100', '-5'])).toBe('limit 1000 rate 100Kbit packetoverhead 20 cellsize 100 celloverhead -5');
    expect(show(['slot', '800us', '1ms'])).toBe('limit 1000 slot 800us 1ms');
    expect(show(['slot', '2ms', 'packets', '10', 'bytes', '1k'])).toBe('limit 1000 slot 2ms 2ms packets 10 bytes 1024');
    expect(show(['slot', 'distribution', 'pareto', '1ms', '100us'])).toBe('limit 1000 slot distribution 1ms 100us');
    expect(show(['limit', '5k', 'loss', '1%', 'ecn'])).toBe('limit 5120 loss 1% ecn ');
    expect(mk(['seed', '18446744073709551615']).printOptions(false)).toBe('limit 1000 seed 18446744073709551615');
    expect(mk([]).printOptions(false)).toMatch(/^limit 1000 seed \d+$/);
  });

  it('change keeps what tc does not send again (correlations, reorder, corrupt, rate, ecn, slot)', () => {
    const host = new FakeHost();
    const q = mk(['delay', '10ms', '5ms', '25%', 'loss', '1%', 'ecn', 'corrupt', '2%', 'rate', '1mbit', 'reorder', '10%', 'gap', '3', 'slot', '1ms', 'seed', '1'], host);
    expect(q.printOptions(false)).toBe(
      'limit 1000 delay 10ms  5ms 25% loss 1% reorder 10% corrupt 2% rate 1Mbit slot 1ms 1ms seed 1 ecn  gap 3',
    );
    q.change(netemKind.parse(['delay', '20ms', '1ms', 'seed', '2'], host), host);
    // Loss, gap and the delay are replaced; the rest stays (reorder too, idle without a gap).
    expect(q.printOptions(false)).toBe('limit 1000 delay 20ms  1ms 25% reorder 10% corrupt 2% rate 1Mbit slot 1ms 1ms seed 2 ecn ');
    q.change(netemKind.parse(['loss', 'gemodel', '1%', 'rate', '2mbit', 'corrupt', '0', 'seed', '3'], host), host);
    expect(q.printOptions(false)).toBe(
      'limit 1000 loss gemodel p 1% r 99% 1-h 100% 1-k 0% reorder 10% rate 2Mbit slot 1ms 1ms seed 3 ecn ',
    );
  });

  it('shows -j as tc does', () => {
    const j = mk(['delay', '100ms', '10ms', 'loss', '1%', 'seed', '3']).jsonOptions();
    expect(j.limit).toBe(1000);
    expect(j.delay).toEqual({ delay: 0.1, jitter: 0.01, correlation: 0 });
    expect((j['loss-random'] as { loss: number }).loss).toBeCloseTo(0.01, 9);
    expect(j.seed).toBe(3);
    expect(j.ecn).toBe(false);
    expect(j.gap).toBe(0);
  });

  it('refuses bad arguments as tc does', () => {
    const host = new FakeHost();
    expect(tcError(() => netemKind.parse(['delay', 'abc'], host))).toEqual({ code: 1, msg: 'Illegal "latency"' });
    expect(tcError(() => netemKind.parse(['delay'], host)).code).toBe(255);
    expect(tcError(() => netemKind.parse(['loss', '150%'], host))).toEqual({ code: 1, msg: 'Illegal "loss percent"' });
    expect(tcError(() => netemKind.parse(['loss', 'bursty', '1'], host))).toEqual({ code: 1, msg: 'Illegal "Unknown loss parameter: bursty"' }.msg ? { code: 1, msg: 'Unknown loss parameter: bursty' } : {});
    expect(tcError(() => netemKind.parse(['loss', '1%', 'loss', '2%'], host)).code).toBe(1);
    expect(tcError(() => netemKind.parse(['reorder', '10%'], host)).msg.startsWith('reordering not possible without specifying some delay\n')).toBe(true);
    expect(tcError(() => netemKind.parse(['delay', '1ms', 'gap', '5'], host)).msg.startsWith('gap specified without reorder probability\n')).toBe(true);
    expect(tcError(() => netemKind.parse(['ecn'], host)).msg.startsWith('ecn requested without loss model\n')).toBe(true);
    expect(tcError(() => netemKind.parse(['delay', '10ms', 'distribution', 'normal'], host)).msg.startsWith('distribution specified but no latency and jitter values\n')).toBe(true);
    expect(tcError(() => netemKind.parse(['delay', '10ms', '1ms', 'distribution', 'weird'], host)).msg).toMatch(/^No distribution data for weird /);
    expect(tcError(() => netemKind.parse(['rate', 'fast'], host))).toEqual({ code: 1, msg: 'Illegal "rate"' });
    expect(tcError(() => netemKind.parse(['slot', '2ms', '1ms'], host))).toEqual({ code: 1, msg: 'Illegal "slot max_delay"' });
    expect(tcError(() => netemKind.parse(['slot', 'foo'], host))).toEqual({ code: 1, msg: 'Unknown slot parameter: foo' });
    expect(tcError(() => netemKind.parse(['seed', '-1'], host))).toEqual({ code: 1, msg: 'Illegal "seed"' });
    const e = tcError(() => netemKind.parse(['wobble'], host));
    expect(e.code).toBe(1);
    expect(e.msg.startsWith('What is "wobble"?\nUsage: ... netem')).toBe(true);
  });
});

/** Sends `n` packets `every` ns apart through `q`, returning each packet's delay (ns) in the order they left. */
function delays(q: NetemQdisc, host: FakeHost, n: number, every: number, len = 100): { d: number[]; sent: number; order: number[] } {
  const enq = new Map<Packet, [number, number]>();
  const d: number[] = [];
  const order: number[] = [];
  host.t = 0;
  let i = 0;
  const end = n * every + 10_000 * MS;
  // Event loop: arrivals, and the watchdog's wakeups.
  let nextArrival = 0;
  while (host.t <= end) {
    if (i < n && nextArrival <= host.t) {
      const p = udpFrame(len);
      enq.set(p, [host.t, i]);
      q.enqueue(p, host);
      i++;
      nextArrival += every;
    }
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) {
      const [t0, k] = enq.get(p) ?? [NaN, -1];
      d.push(host.t - t0);
      order.push(k);
    }
    const wake = host.wakeups.length ? Math.min(...host.wakeups.filter((w) => w > host.t), Infinity) : Infinity;
    host.wakeups = host.wakeups.filter((w) => w > host.t);
    const next = Math.min(i < n ? nextArrival : Infinity, wake);
    if (next === Infinity) break;
    host.t = next;
  }
  return { d, sent: i, order };
}

const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
const sd = (a: number[]): number => {
  const m = mean(a);
  return Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length);
};

describe('netem in virtual time', () => {
  it('delays every packet by exactly the configured delay, the watchdog set to the departure', () => {
    const host = new FakeHost();
    const q = mk(['delay', '20ms'], host);
    const { d } = delays(q, host, 200, 3 * MS + 17);
    expect(d.length).toBe(200);
    for (const x of d) expect(x).toBe(20 * MS);
    expect(q.stats.packets).toBe(200);
    expect(q.stats.qlen).toBe(0);
  });

  it('jitter: uniform over delay ± jitter', () => {
    const host = new FakeHost(3);
    const q = mk(['delay', '50ms', '10ms'], host);
    const { d } = delays(q, host, 20000, 100_000);
    expect(d.length).toBe(20000);
    expect(Math.min(...d)).toBeGreaterThanOrEqual(40 * MS);
    expect(Math.max(...d)).toBeLessThan(60 * MS);
    expect(Math.abs(mean(d) - 50 * MS)).toBeLessThan(0.15 * MS); // 3σ of the mean: 3·5.77ms/√20000
    expect(sd(d) / MS).toBeGreaterThan(5.6); // uniform: 10/√3 = 5.77 ms
    expect(sd(d) / MS).toBeLessThan(5.95);
  });

  for (const dist of ['normal', 'pareto', 'paretonormal']) {
    it(`jitter: the ${dist} table gives delay + jitter·(table mean), spread jitter·(table spread)`, () => {
      const table = Array.from(distTable(dist) as Int16Array).map((t) => t / 8192);
      const host = new FakeHost(5);
      const q = mk(['delay', '100ms', '20ms', 'distribution', dist], host);
      const { d } = delays(q, host, 20000, 100_000);
      const wantMean = 100 * MS + 20 * MS * mean(table);
      const wantSd = 20 * MS * sd(table);
      expect(Math.abs(mean(d) - wantMean)).toBeLessThan((4 * wantSd) / Math.sqrt(d.length));
      expect(sd(d) / wantSd).toBeGreaterThan(0.95);
      expect(sd(d) / wantSd).toBeLessThan(1.05);
      if (dist === 'normal') {
        expect(Math.abs(mean(table))).toBeLessThan(0.01);
        expect(Math.abs(sd(table) - 1)).toBeLessThan(0.01);
        const within1 = d.filter((x) => Math.abs(x - 100 * MS) < 20 * MS).length / d.length;
        expect(within1).toBeGreaterThan(0.66);
        expect(within1).toBeLessThan(0.705);
      } else {
        // Pareto: a long tail above the delay.
        expect(Math.max(...d) - 100 * MS).toBeGreaterThan(2 * (100 * MS - Math.min(...d)));
      }
    });
  }

  it('delay correlation: as in Linux, the correlated value is taken modulo the table, which undoes it', () => {
    // sch_netem.c tabledist: rnd % (2·sigma) (or % table size) of the correlated
    // 32-bit value leaves successive delays almost uncorrelated; tc-netem(8) calls
    // correlation deprecated for this reason. The delays keep their range and mean.
    const host = new FakeHost(9);
    const q = mk(['delay', '100ms', '50ms', '75%'], host);
    const { d } = delays(q, host, 20000, 1000 * MS);
    const m = mean(d);
    let num = 0;
    let den = 0;
    for (let i = 0; i < d.length; i++) {
      den += (d[i] - m) ** 2;
      if (i > 0) num += (d[i] - m) * (d[i - 1] - m);
    }
    expect(Math.abs(num / den)).toBeLessThan(0.05);
    expect(Math.abs(m - 100 * MS)).toBeLessThan(1 * MS);
    expect(Math.min(...d)).toBeGreaterThanOrEqual(50 * MS);
    expect(Math.max(...d)).toBeLessThan(150 * MS);
  });

  it('loss, random: the ratio within bounds', () => {
    const host = new FakeHost(11);
    const q = mk(['limit', '1000000', 'loss', '10%'], host);
    const n = 100000;
    for (let i = 0; i < n; i++) q.enqueue(udpFrame(60), host);
    const ratio = q.stats.drops / n;
    expect(Math.abs(ratio - 0.1)).toBeLessThan(0.003); // 3σ = 3·√(0.09/1e5) ≈ 0.0028
    expect(q.stats.qlen).toBe(n - q.stats.drops);
  });

  it('loss with correlation: get_crandom mixes each value with the last (x = u(1-ρ) + x₋₁ρ)', () => {
    const host = new FakeHost(12);
    const q = mk(['limit', '1000000', 'loss', '10%', '50%'], host);
    const lost: boolean[] = [];
    const n = 1000000;
    const pkt = udpFrame(60);
    for (let i = 0; i < n; i++) {
      const before = q.stats.drops;
      q.enqueue(pkt, host);
      lost.push(q.stats.drops > before);
      if (q.stats.qlen > 0) q.reset();
    }
    // The same recurrence on another generator: the loss ratio and burstiness it gives.
    const sim = new FakeHost(777);
    let x = sim.random();
    let simLost = 0;
    let simPairs = 0;
    let prev = false;
    for (let i = 0; i < 2000000; i++) {
      x = sim.random() * 0.5 + x * 0.5;
      const l = x <= 0.1;
      if (l) simLost++;
      if (l && prev) simPairs++;
      prev = l;
    }
    const rate = lost.filter(Boolean).length / n;
    const simRate = simLost / 2000000;
    expect(Math.abs(rate - simRate) / simRate).toBeLessThan(0.15);
    let pairs = 0;
    for (let i = 1; i < n; i++) if (lost[i] && lost[i - 1]) pairs++;
    // Losses come in bursts: P(loss | loss before) far above the loss ratio.
    expect(pairs / lost.filter(Boolean).length).toBeGreaterThan(5 * rate);
    expect(Math.abs(pairs / lost.filter(Boolean).length - simPairs / simLost)).toBeLessThan(0.08);
  });

  it('loss state (4-state Markov): the stationary loss ratio', () => {
    const host = new FakeHost(13);
    // p13 5%, p31 40%, p32 20%, p23 10%, p14 1%.
    const q = mk(['limit', '1000000', 'loss', 'state', '5%', '40%', '20%', '10%', '1%'], host);
    const n = 200000;
    for (let i = 0; i < n; i++) q.enqueue(udpFrame(60), host);
    // Stationary distribution of 1 (gap tx), 2 (burst tx), 3 (burst loss), 4 (gap loss).
    const [p13, p31, p32, p23, p14] = [0.05, 0.4, 0.2, 0.1, 0.01];
    let pi = [1, 0, 0, 0];
    for (let k = 0; k < 10000; k++) {
      const [a, b, c, d] = pi;
      pi = [
        a * (1 - p13 - p14) + c * p31 + d,
        b * (1 - p23) + c * p32,
        a * p13 + b * p23 + c * (1 - p31 - p32),
        a * p14,
      ];
    }
    const expected = pi[2] + pi[3];
    expect(Math.abs(q.stats.drops / n - expected)).toBeLessThan(0.01);
  });

  it('loss gemodel (Gilbert-Elliott): the stationary loss ratio', () => {
    const host = new FakeHost(14);
    const q = mk(['limit', '1000000', 'loss', 'gemodel', '5%', '30%', '80%', '2%'], host);
    const n = 200000;
    for (let i = 0; i < n; i++) q.enqueue(udpFrame(60), host);
    const [p, r, lossBad, lossGood] = [0.05, 0.3, 0.8, 0.02];
    const piBad = p / (p + r);
    const expected = (1 - piBad) * lossGood + piBad * lossBad;
    expect(Math.abs(q.stats.drops / n - expected)).toBeLessThan(0.01);
  });

  it('duplicate: the ratio within bounds, copies identical', () => {
    const host = new FakeHost(15);
    const q = mk(['limit', '1000000', 'duplicate', '5%'], host);
    const n = 100000;
    for (let i = 0; i < n; i++) q.enqueue(udpFrame(60), host);
    const extra = q.stats.qlen - n;
    expect(Math.abs(extra / n - 0.05)).toBeLessThan(0.0021);
    expect(q.duplicated).toBe(extra);
  });

  it('corrupt: flips one bit in about the asked share of packets', () => {
    const host = new FakeHost(16);
    const q = mk(['limit', '1000000', 'corrupt', '20%'], host);
    const n = 20000;
    for (let i = 0; i < n; i++) q.enqueue(udpFrame(200), host);
    let bad = 0;
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) {
      const ref = udpFrame(200);
      let bits = 0;
      for (let k = 0; k < 200; k++) {
        let x = p.buf[p.start + k] ^ ref.buf[ref.start + k];
        while (x) {
          bits += x & 1;
          x >>= 1;
        }
      }
      expect(bits).toBeLessThanOrEqual(1);
      bad += bits;
    }
    expect(Math.abs(bad / n - 0.2)).toBeLessThan(0.009);
  });

  it('reorder 25% gap 5: four of five delayed, then one in four of the rest sent at once', () => {
    const host = new FakeHost(17);
    const q = mk(['delay', '10ms', 'reorder', '25%', 'gap', '5'], host);
    const { order, d } = delays(q, host, 20000, MS);
    const immediate = d.filter((x) => x === 0).length;
    // After 4 delayed packets, each packet goes at once with probability 25%:
    // the expected share of immediate ones is 0.25 / (4 + 1/0.25·... ) — count from the rule.
    let expectedImmediate = 0;
    let counter = 0;
    const sim = new FakeHost(99);
    for (let i = 0; i < 20000; i++) {
      if (counter < 4 || sim.random() >= 0.25) counter++;
      else {
        counter = 0;
        expectedImmediate++;
      }
    }
    expect(Math.abs(immediate - expectedImmediate) / expectedImmediate).toBeLessThan(0.06);
    expect(q.stats.requeues).toBe(immediate);
    expect(q.reordered).toBe(immediate);
    // Out of order: an immediate packet overtakes the delayed ones before it.
    let inversions = 0;
    for (let i = 1; i < order.length; i++) if (order[i] < order[i - 1]) inversions++;
    expect(inversions).toBeGreaterThan(immediate * 0.9);
    for (const x of d) expect(x === 0 || x === 10 * MS).toBe(true);
  });

  it('rate: packets leave at the configured rate, exact to the ns', () => {
    const host = new FakeHost();
    const q = mk(['rate', '1mbit'], host);
    // 50 packets of 1000 bytes at once: one every 8 ms.
    const { d } = delays(q, host, 50, 0, 1000);
    expect(d.length).toBe(50);
    for (let i = 0; i < 50; i++) expect(d[i]).toBe((i + 1) * 8 * MS);
  });

  it('rate with overhead and cells, and a delay on top', () => {
    const host = new FakeHost();
    // 100 bytes + 20 = 120 → 3 cells of 48 → 3·(48+5) = 159 bytes at 1 Mbit/s = 1272 µs.
    const q = mk(['delay', '5ms', 'rate', '1mbit', '20', '48', '5'], host);
    const { d } = delays(q, host, 10, 0, 100);
    expect(d[0]).toBe(5 * MS + 1_272_000);
    expect(d[9]).toBe(5 * MS + 10 * 1_272_000);
  });

  it('slot: packets leave in bursts at slot boundaries', () => {
    const host = new FakeHost(21);
    const q = mk(['slot', '10ms', '10ms', 'packets', '3'], host);
    const { d } = delays(q, host, 12, 0, 100);
    // Three at once (the first slot opens at once), then three per 10 ms slot.
    expect(d).toEqual([0, 0, 0, 10 * MS, 10 * MS, 10 * MS, 20 * MS, 20 * MS, 20 * MS, 30 * MS, 30 * MS, 30 * MS]);
  });

  it('limit: packets beyond the time queue are dropped', () => {
    const host = new FakeHost();
    const q = mk(['delay', '1s', 'limit', '10'], host);
    for (let i = 0; i < 15; i++) q.enqueue(udpFrame(100), host);
    expect(q.stats.qlen).toBe(10);
    expect(q.stats.drops).toBe(5);
    expect(q.stats.backlog).toBe(1000);
  });

  it('ecn: a loss marks ECT packets CE (checksum fixed) and drops the others', () => {
    const host = new FakeHost(22);
    const q = mk(['loss', '30%', 'ecn'], host);
    for (let i = 0; i < 400; i++) q.enqueue(udpFrame(100, 1, 1, i % 2 ? 0x01 : 0x00), host);
    const out: Packet[] = [];
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) out.push(p);
    const ce = out.filter((p) => (p.buf[p.start + 15] & 3) === 3);
    expect(ce.length).toBe(q.ecnMarked);
    expect(ce.length).toBeGreaterThan(30);
    for (const p of out) expect(ipChecksumOk(p)).toBe(true);
    // Not-ECT packets are lost: 400 in, fewer out.
    expect(out.length).toBe(400 - (q.stats.drops - q.ecnMarked));
  });

  it('the same seed gives the same losses', () => {
    const run = (): number[] => {
      const host = new FakeHost(1);
      const q = mk(['loss', '20%', 'seed', '12345'], host);
      const lost: number[] = [];
      for (let i = 0; i < 200; i++) {
        const before = q.stats.drops;
        q.enqueue(udpFrame(60), host);
        if (q.stats.drops > before) lost.push(i);
      }
      return lost;
    };
    expect(run()).toEqual(run());
  });
});
