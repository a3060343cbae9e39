import { describe, expect, it } from 'vitest';
import { TcParseError, NET_XMIT_SUCCESS } from '../../src/sched/qdisc.js';
import { codelKind, CodelQdisc, controlLaw } from '../../src/sched/codel.js';
import { fqCodelKind, FqCodelQdisc } from '../../src/sched/fq_codel.js';
import { sfqKind, SfqQdisc } from '../../src/sched/sfq.js';
import { fmtG, getRate64, getSize, getTime, getTime64, parsePercent, sprintRate, sprintSize, sprintTime, sprintTime64 } from '../../src/sched/tcnum.js';
import { FakeHost, ipChecksumOk, runLink, srcOf, udpFrame } from './sched-fake.js';
import type { Packet } from '../../src/packet/packet.js';

function tcError(f: () => unknown): { code: number; msg: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof TcParseError) return { code: e.exitCode, msg: e.message };
    throw e;
  }
  throw new Error('no error');
}

const MS = 1e6;

describe('tc number formats (iproute2 lib/utils.c, json_print_math.c)', () => {
  it('reads times, sizes, rates and percents as tc does', () => {
    expect(getTime('5ms')).toBe(5000);
    expect(getTime('100')).toBe(100); // a bare time is µs
    expect(getTime('1.5s')).toBe(1500000);
    expect(getTime('5parsecs')).toBeNull();
    expect(getTime64('20ms')).toBe(20e6);
    expect(getTime64('7')).toBe(7);
    expect(getTime64('3us')).toBe(3000);
    expect(getSize('1kbit')).toBe(128);
    expect(getSize('4k')).toBe(4096);
    expect(getSize('32Mb')).toBe(32 << 20);
    expect(getSize('1.5')).toBe(1); // get_size truncates
    expect(getSize('-1')).toBeNull();
    expect(getRate64('10mbit')).toBe(1250000);
    expect(getRate64('100')).toBe(12); // a bare rate is bit/s
    expect(getRate64('1kbps')).toBe(1000); // kbps: kilobytes per second
    expect(getRate64('1furlong')).toBeNull();
    expect(parsePercent('25%')).toBeCloseTo(0.25, 12);
    expect(parsePercent('25')).toBeCloseTo(0.25, 12);
    expect(parsePercent('101%')).toBeNull();
    expect(parsePercent('5x')).toBeNull();
  });

  it('prints as tc prints', () => {
    expect(sprintTime(4999)).toBe('5ms');
    expect(sprintTime(99999)).toBe('100ms');
    expect(sprintTime(1234567)).toBe('1.23s');
    expect(sprintTime(999)).toBe('999us');
    expect(sprintTime64(20e6)).toBe('20ms');
    expect(sprintTime64(1500)).toBe('1.5us');
    expect(sprintTime64(12)).toBe('12ns');
    expect(sprintSize(32 << 20)).toBe('32Mb');
    expect(sprintSize(1514)).toBe('1514b');
    expect(sprintSize(4096)).toBe('4Kb');
    expect(sprintRate(125000)).toBe('1Mbit');
    expect(sprintRate(1250000)).toBe('10Mbit');
    expect(sprintRate(125125)).toBe('1001Kbit');
    expect(sprintRate(12)).toBe('96bit');
    expect(fmtG(0.30000000069849193)).toBe('0.3');
    expect(fmtG(1e-7)).toBe('1e-07');
    expect(fmtG(123456789)).toBe('1.23457e+08');
  });
});

describe('codel: tc arguments and output (q_codel.c)', () => {
  const host = new FakeHost();
  const mk = (args: string[]): CodelQdisc => codelKind.create(codelKind.parse(args, host), host, 0x10000, 0xffffffff) as CodelQdisc;

  it('shows the defaults the kernel dumps', () => {
    const q = mk([]);
    expect(q.printOptions(false)).toBe('limit 1000p target 5ms interval 100ms ');
    expect(q.jsonOptions()).toEqual({ limit: 1000, target: 4999, interval: 99999 });
  });

  it('takes every option', () => {
    const q = mk(['limit', '2000', 'target', '3ms', 'interval', '30ms', 'ecn', 'ce_threshold', '2ms']);
    expect(q.printOptions(false)).toBe('limit 2000p target 3ms ce_threshold 2ms interval 30ms ecn ');
    q.change(codelKind.parse(['noecn'], host), host);
    expect(q.printOptions(false)).toBe('limit 2000p target 3ms ce_threshold 2ms interval 30ms ');
  });

  it('refuses bad arguments with tc exit codes', () => {
    expect(tcError(() => codelKind.parse(['limit', 'x'], host))).toEqual({ code: 1, msg: 'Illegal "limit"' });
    expect(tcError(() => codelKind.parse(['target', '5parsecs'], host))).toEqual({ code: 1, msg: 'Illegal "target"' });
    expect(tcError(() => codelKind.parse(['interval'], host)).code).toBe(255);
    const e = tcError(() => codelKind.parse(['bogus'], host));
    expect(e.code).toBe(1);
    expect(e.msg.startsWith('What is "bogus"?\nUsage: ... codel')).toBe(true);
  });

  it('prints xstats as tc -s does', () => {
    const q = mk([]);
    expect(q.printXstats()).toBe('  count 0 lastcount 0 ldelay 0us drop_next 0us\n  maxpacket 0 ecn_mark 0 drop_overlimit 0\n');
  });

  it('drops beyond limit at enqueue (drop_overlimit)', () => {
    const q = mk(['limit', '3']);
    for (let i = 0; i < 5; i++) q.enqueue(udpFrame(100), host);
    expect(q.stats.qlen).toBe(3);
    expect(q.stats.drops).toBe(2);
    expect(q.dropOverlimit).toBe(2);
  });
});

describe('CoDel control law (RFC 8289 §5.5) in virtual time', () => {
  it('drops at interval/sqrt(count) once the sojourn stays above target for an interval', () => {
    const host = new FakeHost();
    const q = codelKind.create(codelKind.parse(['limit', '10000'], host), host, 0x10000, 0xffffffff) as CodelQdisc;
    for (let i = 0; i < 5000; i++) q.enqueue(udpFrame(1000), host);
    // One packet leaves every 1 ms: the queue stays standing for 5 s.
    const dropTimes: number[] = [];
    let drops = 0;
    for (let t = 0; t < 2000 * MS; t += MS) {
      host.t = t;
      q.dequeue(host);
      while (drops < q.stats.drops) {
        dropTimes.push(t);
        drops++;
      }
    }
    expect(dropTimes.length).toBeGreaterThan(20);
    // First drop: the first dequeue an interval after the sojourn went above target.
    const interval = 97656 * 1024; // 100 ms in codel time units
    const t1 = dropTimes[0];
    expect(t1).toBeGreaterThanOrEqual(100 * MS);
    expect(t1).toBeLessThanOrEqual(106 * MS);
    // Then drop k happens at the first 1 ms tick at or after t1 + Σ_{i<k} interval/√i.
    let due = t1;
    for (let k = 1; k < dropTimes.length; k++) {
      due = controlLaw(due, interval, k);
      expect(dropTimes[k]).toBeGreaterThanOrEqual(due);
      expect(dropTimes[k] - due).toBeLessThan(MS);
    }
    // The gaps shrink as 1/sqrt(count).
    expect(dropTimes[1] - dropTimes[0]).toBeGreaterThan(99 * MS);
    expect(dropTimes[4] - dropTimes[3]).toBeLessThan(51 * MS);
    expect(q.vars.dropping).toBe(true);
    expect(q.printXstats()).toMatch(/^ {2}count \d+ lastcount 1 ldelay \d+(\.\d+)?(ms|s) dropping drop_next -?\d/);
  });

  it('marks ECN-capable packets CE instead of dropping them, fixing the checksum', () => {
    const host = new FakeHost();
    const q = codelKind.create(codelKind.parse(['ecn'], host), host, 0x10000, 0xffffffff) as CodelQdisc;
    for (let i = 0; i < 800; i++) q.enqueue(udpFrame(1000, 1, 1000, 0x02), host); // ECT(0)
    const out: Packet[] = [];
    for (let t = 0; t < 800 * MS; t += MS) {
      host.t = t;
      const p = q.dequeue(host);
      if (p !== null) out.push(p);
    }
    expect(q.stats.drops).toBe(0);
    const ce = out.filter((p) => (p.buf[p.start + 15] & 3) === 3);
    expect(ce.length).toBe(q.cstats.ecnMark);
    expect(ce.length).toBeGreaterThan(5);
    for (const p of out) expect(ipChecksumOk(p)).toBe(true);
  });

  it('leaves a queue below target alone', () => {
    const host = new FakeHost();
    const q = codelKind.create(codelKind.parse([], host), host, 0x10000, 0xffffffff) as CodelQdisc;
    for (let t = 0; t < 2000 * MS; t += MS) {
      host.t = t;
      q.enqueue(udpFrame(1000), host);
      q.enqueue(udpFrame(1000), host);
      q.dequeue(host);
      q.dequeue(host);
    }
    expect(q.stats.drops).toBe(0);
    expect(q.stats.packets).toBe(4000);
  });
});

describe('fq_codel: tc arguments and output (q_fq_codel.c)', () => {
  const host = new FakeHost();
  const mk = (args: string[]): FqCodelQdisc =>
    fqCodelKind.create(fqCodelKind.parse(args, host), host, 0x10000, 0xffffffff) as FqCodelQdisc;

  it('shows the defaults the kernel dumps', () => {
    expect(mk([]).printOptions(false)).toBe(
      'limit 10240p flows 1024 quantum 1514 target 5ms interval 100ms memory_limit 32Mb ecn drop_batch 64 ',
    );
    expect(mk([]).jsonOptions()).toEqual({
      limit: 10240, flows: 1024, quantum: 1514, target: 4999, interval: 99999, memory_limit: 33554432, ecn: true, drop_batch: 64,
    });
  });

  it('takes every option', () => {
    const q = mk(['limit', '100', 'flows', '16', 'quantum', '300', 'target', '2ms', 'interval', '20ms', 'noecn',
      'ce_threshold', '1ms', 'memory_limit', '4Mb', 'drop_batch', '8']);
    // 1 ms is 976 units of 1024 ns, dumped as 999 µs.
    expect(q.printOptions(false)).toBe(
      'limit 100p flows 16 quantum 300 target 2ms ce_threshold 999us interval 20ms memory_limit 4Mb drop_batch 8 ',
    );
    const s = mk(['ce_threshold', '1ms', 'ce_threshold_selector', '0x1/0xfc']);
    expect(s.printOptions(false)).toContain('ce_threshold 999us ce_threshold_selector 0x1/0xfc interval');
  });

  it('refuses what tc or the kernel refuse', () => {
    expect(tcError(() => fqCodelKind.parse(['flows', '-1'], host))).toEqual({ code: 1, msg: 'Illegal "flows"' });
    expect(tcError(() => fqCodelKind.parse(['memory_limit', '1q'], host))).toEqual({ code: 1, msg: 'Illegal "memory_limit"' });
    expect(tcError(() => fqCodelKind.parse(['ce_threshold_selector', '3'], host))).toEqual({
      code: 1, msg: 'Missing mask for "ce_threshold_selector"',
    });
    expect(tcError(() => fqCodelKind.parse(['quantum'], host)).code).toBe(255);
    expect(tcError(() => mk(['quantum', '2000000']))).toEqual({ code: 2, msg: 'Error: Invalid quantum.' });
    expect(tcError(() => mk(['flows', '70000'])).code).toBe(2);
    const q = mk([]);
    expect(tcError(() => q.change(fqCodelKind.parse(['flows', '8'], host), host)).code).toBe(2);
  });

  it('prints xstats as tc -s does', () => {
    const q = mk([]);
    q.enqueue(udpFrame(200), host);
    q.enqueue(udpFrame(300, 2), host);
    expect(q.printXstats()).toBe(
      `  maxpacket 0 drop_overlimit 0 new_flow_count 2 ecn_mark 0 memory_used ${q.memoryUsage}\n  new_flows_len 2 old_flows_len 0\n`,
    );
    q.dequeue(host);
    q.dequeue(host);
    q.dequeue(host);
    expect(q.printXstats()).toBe('  maxpacket 300 drop_overlimit 0 new_flow_count 2 ecn_mark 0\n  new_flows_len 0 old_flows_len 0\n');
  });
});

describe('fq_codel in virtual time (RFC 8290)', () => {
  it("keeps a sparse flow's delay near zero while an unresponsive flow is dropped", () => {
    const host = new FakeHost();
    const q = fqCodelKind.create(fqCodelKind.parse([], host), host, 0x10000, 0xffffffff) as FqCodelQdisc;
    const rate = 1_250_000; // 10 Mbit/s link
    const enq = new Map<Packet, number>();
    const sparseDelays: number[] = [];
    let nextFlood = 0;
    let dropsEarly = 0;
    let dropsLate = 0;
    runLink(q, host, rate, 5000 * MS, (t) => {
      // 20 Mbit/s of UDP from 10.0.0.1, and a 100-byte "ping" every 10 ms from 10.0.0.2.
      while (nextFlood <= t) {
        const p = udpFrame(1500, 1);
        enq.set(p, t);
        q.enqueue(p, host);
        nextFlood += 600_000;
      }
      if (t === 2500 * MS) dropsEarly = q.stats.drops;
      if (t % (10 * MS) === 0) {
        const p = udpFrame(100, 2, 7);
        enq.set(p, t);
        q.enqueue(p, host);
      }
    }, (p, t) => {
      const d = t - (enq.get(p) as number);
      if (srcOf(p) === 2) sparseDelays.push(d);
    });
    dropsLate = q.stats.drops - dropsEarly;
    expect(sparseDelays.length).toBeGreaterThan(490);
    // The sparse flow waits at most for the packet on the wire (1.2 ms) and one flood packet.
    expect(Math.max(...sparseDelays)).toBeLessThan(2.5 * MS);
    // The flood loses packets to CoDel (not to the 10240-packet limit), at a
    // rate that grows with the control law.
    expect(q.stats.drops).toBeGreaterThan(300);
    expect(q.dropOverlimit).toBe(0);
    expect(dropsLate).toBeGreaterThan(2 * dropsEarly);
    expect(q.printXstats()).toMatch(/^ {2}maxpacket 1500 drop_overlimit 0 new_flow_count \d+ ecn_mark 0/);
  });

  it('shares the link by bytes between flows of different packet sizes (DRR quantum)', () => {
    const host = new FakeHost();
    const q = fqCodelKind.create(fqCodelKind.parse(['target', '1s', 'interval', '10s'], host), host, 0x10000, 0xffffffff) as FqCodelQdisc;
    const bytes = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      q.enqueue(udpFrame(1500, 1), host);
      for (let k = 0; k < 5; k++) q.enqueue(udpFrame(300, 2), host);
    }
    for (let i = 0; i < 4000; i++) {
      const p = q.dequeue(host) as Packet;
      bytes[srcOf(p)] += p.end - p.start;
    }
    const ratio = bytes[1] / bytes[2];
    expect(ratio).toBeGreaterThan(0.95);
    expect(ratio).toBeLessThan(1.05);
  });

  it('drops from the fattest flow when over limit, half its backlog at most, drop_batch at a time', () => {
    const host = new FakeHost();
    const q = fqCodelKind.create(fqCodelKind.parse(['limit', '100', 'drop_batch', '8'], host), host, 0x10000, 0xffffffff) as FqCodelQdisc;
    for (let i = 0; i < 90; i++) q.enqueue(udpFrame(1000, 1), host);
    for (let i = 0; i < 10; i++) q.enqueue(udpFrame(1000, 2), host);
    expect(q.enqueue(udpFrame(1000, 2), host)).toBe(NET_XMIT_SUCCESS);
    expect(q.stats.drops).toBe(8);
    expect(q.dropOverlimit).toBe(8);
    expect(q.stats.qlen).toBe(93);
  });
});

describe('sfq: tc arguments and output (q_sfq.c)', () => {
  const host = new FakeHost();
  const mk = (args: string[]): SfqQdisc => sfqKind.create(sfqKind.parse(args, host), host, 0x10000, 0xffffffff) as SfqQdisc;

  it('shows what the kernel dumps', () => {
    expect(mk([]).printOptions(false)).toBe('limit 127p quantum 1514b depth 127 divisor 1024 ');
    expect(mk([]).printOptions(true)).toBe('limit 127p quantum 1514b depth 127 flows 128 divisor 1024 ');
    expect(mk(['perturb', '10', 'quantum', '3000', 'headdrop', 'divisor', '256', 'depth', '20', 'limit', '3000']).printOptions(true)).toBe(
      'limit 2560p quantum 3000b depth 20 headdrop flows 128 divisor 256 perturb 10sec ',
    );
    expect(mk(['limit', '50']).printOptions(true)).toBe('limit 50p quantum 1514b depth 127 flows 50 divisor 1024 ');
  });

  it('refuses what tc or the kernel refuse', () => {
    expect(tcError(() => sfqKind.parse(['limit', '1'], host))).toEqual({ code: 1, msg: 'Illegal "limit", must be > 1' });
    expect(tcError(() => sfqKind.parse(['perturb', 'x'], host))).toEqual({ code: 1, msg: 'Illegal "perturb"' });
    expect(tcError(() => sfqKind.parse(['depth'], host)).code).toBe(255);
    expect(tcError(() => sfqKind.parse(['foo'], host)).msg.startsWith('What is "foo"?\nUsage: ... sfq')).toBe(true);
    expect(tcError(() => mk(['divisor', '1000'])).code).toBe(2);
  });
});

describe('sfq in virtual time', () => {
  it('serves competing flows equally, whatever they offer', () => {
    const host = new FakeHost();
    const q = sfqKind.create(sfqKind.parse(['limit', '127'], host), host, 0x10000, 0xffffffff) as SfqQdisc;
    const got = [0, 0, 0, 0];
    let n1 = 0;
    runLink(q, host, 1_250_000, 3000 * MS, (t) => {
      // Flow 1 offers 3x what flow 2 offers; both more than the link carries together.
      if (t % 400_000 === 0) {
        for (let k = 0; k < 3; k++) q.enqueue(udpFrame(1000, 1), host);
        n1 += 3;
        q.enqueue(udpFrame(1000, 2), host);
      }
    }, (p) => {
      got[srcOf(p)]++;
    });
    expect(n1).toBeGreaterThan(got[1]);
    const ratio = got[1] / got[2];
    expect(ratio).toBeGreaterThan(0.97);
    expect(ratio).toBeLessThan(1.03);
    expect(q.stats.drops).toBeGreaterThan(0);
  });

  it('drops from the longest flow over limit (its tail, or its head with headdrop)', () => {
    const host = new FakeHost();
    const q = sfqKind.create(sfqKind.parse(['limit', '10'], host), host, 0x10000, 0xffffffff) as SfqQdisc;
    const a: Packet[] = [];
    for (let i = 0; i < 8; i++) {
      const p = udpFrame(100 + i, 1);
      a.push(p);
      q.enqueue(p, host);
    }
    q.enqueue(udpFrame(100, 2), host);
    q.enqueue(udpFrame(100, 2), host);
    q.enqueue(udpFrame(100, 2), host); // 11th: flow 1's tail goes
    expect(q.stats.drops).toBe(1);
    const out: number[] = [];
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) if (srcOf(p) === 1) out.push(p.end - p.start);
    expect(out).toEqual([100, 101, 102, 103, 104, 105, 106]);

    const h = sfqKind.create(sfqKind.parse(['depth', '4', 'headdrop'], host), host, 0x10000, 0xffffffff) as SfqQdisc;
    for (let i = 0; i < 6; i++) h.enqueue(udpFrame(100 + i, 1), host);
    const hout: number[] = [];
    for (let p = h.dequeue(host); p !== null; p = h.dequeue(host)) hout.push(p.end - p.start);
    expect(hout).toEqual([102, 103, 104, 105]);
    expect(h.stats.drops).toBe(2);
  });

  it('perturb changes the hash seed every period and keeps every queued packet', () => {
    const host = new FakeHost();
    const q = sfqKind.create(sfqKind.parse(['perturb', '1'], host), host, 0x10000, 0xffffffff) as SfqQdisc;
    const seed0 = q.perturbation;
    for (let i = 0; i < 20; i++) q.enqueue(udpFrame(100, i + 1), host);
    host.t = 1.5e9;
    q.enqueue(udpFrame(100, 99), host);
    expect(q.perturbation).not.toBe(seed0);
    let n = 0;
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) n++;
    expect(n).toBe(21);
    expect(q.stats.backlog).toBe(0);
  });
});

describe('sfq with more flows than slots', () => {
  it('limit caps the slots (flows = min(flows, limit)): a new flow without a slot is dropped', () => {
    const host = new FakeHost();
    const q = sfqKind.create(sfqKind.parse(['limit', '3'], host), host, 0x10000, 0xffffffff) as SfqQdisc;
    for (const src of [1, 2, 3, 4]) q.enqueue(udpFrame(100, src), host);
    expect(q.stats.drops).toBe(1);
    const out: number[] = [];
    for (let p = q.dequeue(host); p !== null; p = q.dequeue(host)) out.push(srcOf(p));
    expect(out).toEqual([1, 2, 3]);
    expect(q.jsonOptions()).toEqual({ limit: 3, quantum: 1514, depth: 127, divisor: 1024 });
  });
});
