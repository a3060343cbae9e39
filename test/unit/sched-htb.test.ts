import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Packet } from '../../src/packet/packet.js';
import { HtbQdisc, parseHtbClass, parseHtbQdisc } from '../../src/sched/htb.js';
import { ActionTable, FilterList, FwFilter, parseFilter } from '../../src/sched/filter.js';
import { type SchedHost, TcParseError, tcHandle } from '../../src/sched/qdisc.js';
import { fmtRate, fmtSize, parseRate, parseSize } from '../../src/sched/tcunits-htb.js';

/** A device in virtual time: now() is whatever the test loop says. */
class Host implements SchedHost {
  t = 0;
  wake = Infinity;
  watchdogs = 0;
  readonly mtu = 1500;
  readonly hardHeaderLen = 14;
  readonly txQueueLen = 1000;
  readonly devName = 'e0';
  now(): number {
    return this.t;
  }
  random(): number {
    return 0.5;
  }
  watchdog(at: number): void {
    this.watchdogs++;
    if (at < this.wake) this.wake = at;
  }
}

/** An IPv4 packet of `len` bytes (its header at 0) carrying netfilter mark `mark`. */
function mkPacket(len: number, mark: number): Packet {
  const p = new Packet(new Uint8Array(len), 0, len);
  p.l3 = 0;
  p.mark = mark;
  return p;
}

const H = (maj: number, min: number): number => tcHandle(maj, min);

/** `tc qdisc add ... htb ARGS` and classes from `[classid, parent, args]`; fw filters send mark N to 1:N (hex). */
function tree(host: Host, qargs: string, classes: [number, number, string][]): HtbQdisc {
  const q = new HtbQdisc(parseHtbQdisc(qargs ? qargs.split(' ') : []), host, H(1, 0), 0xffffffff);
  for (const [id, parent, args] of classes) q.changeClass(H(1, id), parent === 0 ? 0xffffffff : H(1, parent), parseHtbClass(args.split(' ')), host, true);
  q.filters = new FilterList(host);
  for (const [id] of classes) {
    const f = new FwFilter();
    f.handle = id;
    f.classid = H(1, id);
    f.prio = 1;
    q.filters.add(f);
  }
  return q;
}

/**
 * Runs a link of `linkBps` bytes/s for `seconds`, keeping `backlog` packets of
 * `len` bytes queued for each mark in `greedy`; returns bytes sent per mark.
 */
function run(q: HtbQdisc, host: Host, linkBps: number, seconds: number, greedy: number[], len = 1000, wakeAt = (at: number): number => at): Map<number, number> {
  const sent = new Map<number, number>();
  const queued = new Map<number, number>();
  for (const m of greedy) {
    sent.set(m, 0);
    queued.set(m, 0);
  }
  const end = seconds * 1e9;
  while (host.t < end) {
    for (const m of greedy) {
      while ((queued.get(m) as number) < 5) {
        q.enqueue(mkPacket(len, m), host);
        queued.set(m, (queued.get(m) as number) + 1);
      }
    }
    host.wake = Infinity;
    const p = q.dequeue(host);
    if (p !== null) {
      sent.set(p.mark, (sent.get(p.mark) ?? 0) + p.end - p.start);
      queued.set(p.mark, (queued.get(p.mark) as number) - 1);
      host.t += ((p.end - p.start) * 1e9) / linkBps;
    } else {
      expect(host.wake).toBeLessThan(Infinity);
      expect(host.wake).toBeGreaterThan(host.t);
      host.t = wakeAt(host.wake);
    }
  }
  return sent;
}

const mbit = (bytes: number, seconds: number): number => (bytes * 8) / seconds / 1e6;

describe('tc units (tc_util.c, json_print.c)', () => {
  it('reads rates as bits unless bps, sizes as bytes with kbit = 128 bytes', () => {
    expect(parseRate('10mbit')).toBe(1250000);
    expect(parseRate('64kbit')).toBe(8000);
    expect(parseRate('1kbps')).toBe(1000);
    expect(parseRate('8000')).toBe(1000);
    expect(parseRate('1gbit')).toBe(125000000);
    expect(parseRate('10furlongs')).toBeNull();
    expect(parseSize('15k')).toBe(15360);
    expect(parseSize('1kbit')).toBe(128);
    expect(parseSize('1600')).toBe(1600);
    expect(parseSize('1mb')).toBe(1048576);
  });
  it('prints rates and sizes as tc does', () => {
    expect(fmtRate(1250000)).toBe('10Mbit');
    expect(fmtRate(8000)).toBe('64Kbit');
    expect(fmtRate(125000000)).toBe('1Gbit');
    expect(fmtRate(187)).toBe('1496bit');
    expect(fmtRate(1500)).toBe('12Kbit');
    expect(fmtRate(1501)).toBe('12008bit');
    expect(fmtSize(1600)).toBe('1600b');
    expect(fmtSize(15360)).toBe('15Kb');
    expect(fmtSize(2040)).toBe('2Kb');
    expect(fmtSize(1593)).toBe('1593b');
    expect(fmtSize(3 * 1024 * 1024)).toBe('3Mb');
  });
});

describe('htb parameters (q_htb.c)', () => {
  it('reads default in hex and keeps r2q and direct_qlen', () => {
    const p = parseHtbQdisc(['default', '20', 'r2q', '5', 'direct_qlen', '100']);
    expect(p).toEqual({ defcls: 0x20, r2q: 5, directQlen: 100 });
    expect(parseHtbQdisc(['def', '0x1f']).defcls).toBe(0x1f);
  });
  it('refuses what tc refuses, with its exit codes', () => {
    const code = (f: () => unknown): [number, string] => {
      try {
        f();
      } catch (e) {
        return [(e as TcParseError).exitCode, (e as Error).message.split('\n')[0]];
      }
      return [0, ''];
    };
    expect(code(() => parseHtbClass([]))).toEqual([1, '"rate" is required.']);
    expect(code(() => parseHtbClass(['rate', '1mbit', 'bogus', '3']))).toEqual([1, 'What is "bogus"?']);
    expect(code(() => parseHtbClass(['rate', '1mbit', 'rate', '2mbit']))).toEqual([1, 'Double "rate" spec']);
    expect(code(() => parseHtbClass(['rate', 'fast']))).toEqual([1, 'Illegal "rate"']);
    expect(code(() => parseHtbQdisc(['default', 'zz']))).toEqual([1, 'Illegal "default"']);
  });
  it('computes quantum from r2q and warns as sch_htb does', () => {
    const host = new Host();
    const q = new HtbQdisc(parseHtbQdisc([]), host, H(1, 0), 0xffffffff);
    expect(q.changeClass(H(1, 1), 0xffffffff, parseHtbClass('rate 100mbit'.split(' ')), host, true)).toBe('quantum of class 10001 is big. Consider r2q change.');
    expect(q.changeClass(H(1, 0x10), H(1, 1), parseHtbClass('rate 64kbit'.split(' ')), host, true)).toBe('quantum of class 10010 is small. Consider r2q change.');
    expect(q.changeClass(H(1, 0x20), H(1, 1), parseHtbClass('rate 64kbit quantum 1500'.split(' ')), host, true)).toBe('');
    expect(q.changeClass(H(1, 0x30), H(1, 1), parseHtbClass('rate 10mbit'.split(' ')), host, true)).toBe('');
    expect(q.classMap.get(H(1, 0x10))?.quantum).toBe(1000);
    expect(q.classMap.get(H(1, 0x20))?.quantum).toBe(1500);
    expect(q.classMap.get(H(1, 0x30))?.quantum).toBe(125000);
    expect(q.classMap.get(H(1, 1))?.level).toBe(7);
    expect(q.classList().map((c) => (c.classid & 0xffff).toString(16))).toEqual(['1', '10', '20', '30']);
    expect(() => q.deleteClass(H(1, 1))).toThrow('Error: HTB class in use.');
  });
});

/** The kernel's output for the commands of test/fixtures/tc-htb/commands.txt, by command. */
function fixture(): Map<string, string[]> {
  const text = readFileSync(new URL('../fixtures/tc-htb/expected.txt', import.meta.url), 'utf8');
  const out = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('$ ')) {
      cur = [];
      if (!out.has(line.slice(2))) out.set(line.slice(2), cur);
    } else cur.push(line);
  }
  return out;
}

describe('htb output against the kernel (test/fixtures/tc-htb)', () => {
  const fx = fixture();
  it('prints the qdisc line options as tc does', () => {
    const host = new Host();
    const q = new HtbQdisc(parseHtbQdisc(['default', '20']), host, H(1, 0), 0xffffffff);
    expect(`qdisc htb 1: root refcnt 2 ${q.printOptions(false)}`).toBe(fx.get('tc qdisc show dev e0')?.[0]);
    const q2 = new HtbQdisc(parseHtbQdisc('r2q 1 direct_qlen 100 default 0x1f'.split(' ')), host, H(1, 0), 0xffffffff);
    expect(`qdisc htb 1: root refcnt 2 ${q2.printOptions(false)}`).toBe(fx.get('tc qdisc show dev e0')?.[0].replace('r2q 10 default 0x20', 'r2q 1 default 0x1f').replace('1000', '100'));
  });
  it('prints classes as tc class show and tc -d class show do', () => {
    const host = new Host();
    const q = new HtbQdisc(parseHtbQdisc(['default', '20']), host, H(1, 0), 0xffffffff);
    const add = (cmd: string): string => {
      const w = cmd.split(' ');
      const parent = w[w.indexOf('parent') + 1];
      const classid = w[w.indexOf('classid') + 1];
      const h = (s: string): number => (s === '1:' ? 0xffffffff : H(1, parseInt(s.split(':')[1], 16)));
      const warn = q.changeClass(h(classid), h(parent), parseHtbClass(w.slice(w.indexOf('htb') + 1)), host, true);
      return warn === '' ? '' : `Warning: sch_htb: ${warn}`;
    };
    for (const cmd of [
      'tc class add dev e0 parent 1: classid 1:1 htb rate 100mbit',
      'tc class add dev e0 parent 1:1 classid 1:10 htb rate 30mbit ceil 100mbit prio 1',
      'tc class add dev e0 parent 1:1 classid 1:20 htb rate 10mbit ceil 50mbit burst 15k cburst 1600',
      'tc class add dev e0 parent 1:1 classid 1:30 htb rate 64kbit quantum 1500',
      'tc class add dev e0 parent 1:1 classid 1:40 htb rate 1gbit',
    ]) {
      expect(add(cmd)).toBe((fx.get(cmd) ?? [])[0] ?? '');
    }
    const shown = fx.get('tc class show dev e0') ?? [];
    const detail = fx.get('tc -d class show dev e0') ?? [];
    expect(q.classList().map((cl) => q.printClass(cl, false, false))).toEqual(shown.filter((l) => l !== ''));
    expect(q.classList().map((cl) => q.printClass(cl, true, false))).toEqual(detail.filter((l) => l !== ''));
    q.changeClass(H(1, 0x30), H(1, 1), parseHtbClass('rate 2mbit ceil 4mbit prio 7'.split(' ')), host, false);
    expect(q.printClass(q.classMap.get(H(1, 0x30))!, false, false)).toBe(fx.get('tc class show dev e0 classid 1:30')?.[0]);
  });
  it('prints tc -s class show with lended, borrowed, giants and tokens', () => {
    const host = new Host();
    const q = new HtbQdisc(parseHtbQdisc('r2q 1 direct_qlen 100 default 0x1f'.split(' ')), host, H(1, 0), 0xffffffff);
    expect(q.changeClass(H(1, 1), 0xffffffff, parseHtbClass(['rate', '10mbit']), host, true)).toBe('quantum of class 10001 is big. Consider r2q change.');
    const cl = q.classMap.get(H(1, 1));
    const want = (fx.get('tc -s class show dev e0') ?? []).join('\n');
    expect(`${q.printClass(cl!, false, true)}`).toBe(want.replace(/\n$/, '\n'));
  });
});

describe('htb class order (the kernel class hash, as the capture shows it)', () => {
  it('lists classes bucket by bucket, newest first in a bucket, across hash growth', () => {
    const host = new Host();
    const q = new HtbQdisc(parseHtbQdisc([]), host, H(1, 0), 0xffffffff);
    // Added in this order on the kernel, `tc class show` listed 1:11 1:10 1:51 1:50 1:1 ... 1:9.
    for (const m of [1, 2, 3, 4, 5, 6, 7, 8, 9, 0x10, 0x11, 0x50, 0x51]) q.changeClass(H(1, m), 0xffffffff, parseHtbClass(['rate', '1mbit']), host, true);
    expect(q.classList().map((c) => (c.classid & 0xffff).toString(16))).toEqual(['11', '10', '51', '50', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    q.deleteClass(H(1, 0x10));
    expect(q.classList().map((c) => (c.classid & 0xffff).toString(16))).toEqual(['11', '51', '50', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });
});

describe('htb scheduling in virtual time (sch_htb.c)', () => {
  it('a class alone sends at its rate, exact to its burst', () => {
    const host = new Host();
    const q = tree(host, '', [[1, 0, 'rate 10mbit burst 15k cburst 15k']]);
    const sent = run(q, host, 125e6, 5, [1]);
    // 5 s at 1.25 MB/s plus the initial burst (both buckets hold 15 KiB), within one packet.
    expect(Math.abs((sent.get(1) as number) - (5 * 1250000 + 15360))).toBeLessThanOrEqual(1000);
    expect(host.watchdogs).toBeGreaterThan(0);
  });

  it('a watchdog that fires late (on the next whole ms, plus 1 ms) loses no rate: the batch catches up', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 10mbit'],
      [0x10, 1, 'rate 6mbit ceil 10mbit'],
      [0x20, 1, 'rate 2mbit ceil 10mbit'],
    ]);
    // A 1 Gbit/s device, so a late wakeup sends its whole batch at once.
    const sent = run(q, host, 125e6, 10, [0x10, 0x20], 1000, (at) => Math.ceil(at / 1e6) * 1e6 + 1e6);
    const a = mbit(sent.get(0x10) as number, 10);
    const b = mbit(sent.get(0x20) as number, 10);
    expect(a + b).toBeGreaterThan(10 * 0.995);
    expect(a + b).toBeLessThan(10 * 1.005);
    expect(a).toBeGreaterThan(7.5 * 0.97);
    expect(b).toBeGreaterThan(2.5 * 0.97);
  });

  for (const [rate, bps, secs, len] of [
    ['64kbit', 8000, 30, 200],
    ['1mbit', 125000, 10, 1000],
    ['100mbit', 12500000, 2, 1500],
    ['1gbit', 125000000, 1, 1500],
  ] as const) {
    it(`a ${rate} class delivers its rate within 0.5% (virtual time, late whole-ms wakeups)`, () => {
      const host = new Host();
      const q = tree(host, '', [[1, 0, `rate ${rate}`]]);
      const sent = run(q, host, 1.25e9, secs, [1], len, (at) => Math.ceil(at / 1e6) * 1e6);
      // The rate over the run, plus the 1600-byte burst the class starts with.
      const want = bps + 1600 / secs;
      const got = (sent.get(1) as number) / secs;
      expect(got).toBeGreaterThan(want * 0.995);
      expect(got).toBeLessThan(want * 1.005);
    });
  }

  it('children get their rate and share the parent excess by quantum, up to the parent', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 10mbit'],
      [0x10, 1, 'rate 6mbit ceil 10mbit'],
      [0x20, 1, 'rate 2mbit ceil 10mbit'],
    ]);
    const sent = run(q, host, 125e6, 10, [0x10, 0x20]);
    const a = mbit(sent.get(0x10) as number, 10);
    const b = mbit(sent.get(0x20) as number, 10);
    expect(a + b).toBeCloseTo(10, 1);
    // The excess (2 Mbit/s) goes 3:1, the quanta's ratio (75000:25000): 7.5 and 2.5.
    expect(a).toBeGreaterThan(7.5 * 0.97);
    expect(a).toBeLessThan(7.5 * 1.03);
    expect(b).toBeGreaterThan(2.5 * 0.97);
    expect(b).toBeLessThan(2.5 * 1.03);
    const c10 = q.classMap.get(H(1, 0x10))!;
    const c1 = q.classMap.get(H(1, 1))!;
    expect(c10.borrows).toBeGreaterThan(0);
    expect(c10.lends).toBeGreaterThan(0);
    expect(c1.lends).toBeGreaterThan(0);
    expect(c1.stats.bytes).toBe((sent.get(0x10) as number) + (sent.get(0x20) as number));
  });

  it('a child borrows up to its ceil and no further', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 20mbit'],
      [0x10, 1, 'rate 1mbit ceil 4mbit'],
      [0x20, 1, 'rate 1mbit ceil 20mbit'],
    ]);
    const sent = run(q, host, 125e6, 10, [0x10]);
    const a = mbit(sent.get(0x10) as number, 10);
    expect(a).toBeGreaterThan(4 * 0.99);
    expect(a).toBeLessThan(4 * 1.01);
  });

  it('an idle sibling lends: one busy child takes the parent rate up to its ceil', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 8mbit'],
      [0x10, 1, 'rate 2mbit ceil 8mbit'],
      [0x20, 1, 'rate 6mbit ceil 8mbit'],
    ]);
    const sent = run(q, host, 125e6, 10, [0x10]);
    expect(mbit(sent.get(0x10) as number, 10)).toBeCloseTo(8, 1);
  });

  it('DRR: equal rates, quanta 1500 and 4500 split the excess 1:3', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 10mbit'],
      [0x10, 1, 'rate 1mbit ceil 10mbit quantum 1500'],
      [0x20, 1, 'rate 1mbit ceil 10mbit quantum 4500'],
    ]);
    const sent = run(q, host, 125e6, 10, [0x10, 0x20]);
    const a = mbit(sent.get(0x10) as number, 10);
    const b = mbit(sent.get(0x20) as number, 10);
    expect(a).toBeGreaterThan(3 * 0.97);
    expect(a).toBeLessThan(3 * 1.03);
    expect(b).toBeGreaterThan(7 * 0.97);
    expect(b).toBeLessThan(7 * 1.03);
  });

  it('the lower prio value borrows first', () => {
    const host = new Host();
    const q = tree(host, '', [
      [1, 0, 'rate 10mbit'],
      [0x10, 1, 'rate 2mbit ceil 10mbit prio 1'],
      [0x20, 1, 'rate 2mbit ceil 10mbit prio 0'],
    ]);
    const sent = run(q, host, 125e6, 10, [0x10, 0x20]);
    expect(mbit(sent.get(0x10) as number, 10)).toBeCloseTo(2, 1);
    expect(mbit(sent.get(0x20) as number, 10)).toBeCloseTo(8, 1);
  });

  it('unclassified packets go to the default class, else the direct queue (unshaped, counted)', () => {
    const host = new Host();
    const q = tree(host, 'default 20', [[0x20, 0, 'rate 1mbit']]);
    q.enqueue(mkPacket(100, 99), host);
    expect(q.classMap.get(H(1, 0x20))!.stats.qlen).toBe(1);
    expect(q.directPkts).toBe(0);
    const q2 = tree(host, 'direct_qlen 2', [[0x20, 0, 'rate 1mbit']]);
    for (let i = 0; i < 3; i++) q2.enqueue(mkPacket(100, 99), host);
    expect(q2.directPkts).toBe(2);
    expect(q2.stats.drops).toBe(1);
    expect(q2.dequeue(host)).not.toBeNull();
    expect(q2.dequeue(host)).not.toBeNull();
    expect(q2.printOptions(false)).toBe('r2q 10 default 0 direct_packets_stat 2 direct_qlen 2');
  });

  it('tokens go negative by the packet time and come back with the clock', () => {
    const host = new Host();
    const q = tree(host, '', [[1, 0, 'rate 10mbit burst 1600']]);
    const cl = q.classMap.get(H(1, 1))!;
    const full = cl.tokens;
    expect(full).toBe(20000 * 64); // 1600 B at 1.25 MB/s = 1.28 ms = 20000 ticks of 64 ns
    for (let i = 0; i < 3; i++) q.enqueue(mkPacket(1000, 1), host);
    expect(q.dequeue(host)).not.toBeNull();
    expect(cl.tokens).toBeCloseTo(full - 800000, 6); // 1000 B = 800 µs
    // 480 µs left: the class may still send (tokens >= 0) and goes 320 µs into debt.
    expect(q.dequeue(host)).not.toBeNull();
    expect(cl.tokens).toBeCloseTo(-320000, 6);
    expect(q.dequeue(host)).toBeNull();
    expect(host.wake).toBeCloseTo(320000, 3);
    host.t = 319999;
    expect(q.dequeue(host)).toBeNull();
    host.t = 320000;
    expect(q.dequeue(host)).not.toBeNull();
    expect(q.printClass(cl, false, true).split('\n')[4]).toBe(` tokens: ${Math.trunc(cl.tokens / 64)} ctokens: ${Math.trunc(cl.ctokens / 64)}`);
  });
});

describe('classifiers (cls_u32.c, cls_fw.c, cls_matchall.c)', () => {
  /** An IPv4/UDP header: 10.0.0.1:5000 → 10.0.0.2:53, TOS 0x10. */
  function udp(src: number[], dst: number[], sport: number, dport: number, tos = 0): Packet {
    const b = new Uint8Array(28);
    b[0] = 0x45;
    b[1] = tos;
    b[3] = 28;
    b[8] = 64;
    b[9] = 17;
    b.set(src, 12);
    b.set(dst, 16);
    b[20] = sport >> 8;
    b[21] = sport & 255;
    b[22] = dport >> 8;
    b[23] = dport & 255;
    const p = new Packet(b, 0, 28);
    p.l3 = 0;
    return p;
  }
  const clock = { now: () => 0 };
  const filt = (s: string, prio: number): ReturnType<typeof parseFilter> => {
    const w = s.split(' ');
    const f = parseFilter(w[0], w.slice(1), null, clock);
    f.prio = prio;
    return f;
  };

  it('u32 matches addresses, ports, protocol and tos at the offsets tc packs them', () => {
    const l = new FilterList(clock);
    l.add(filt('u32 match ip dst 10.0.0.1/32 flowid 1:10', 1));
    l.add(filt('u32 match ip src 192.168.1.0/24 match ip dport 80 0xffff flowid 1:20', 1));
    l.add(filt('u32 match ip protocol 17 0xff match ip tos 0x10 0xff flowid 1:30', 2));
    l.add(filt('u32 match ip sport 53 0xffff match u8 0x45 0xff at 0 flowid 1:40', 3));
    expect(l.classify(udp([1, 1, 1, 1], [10, 0, 0, 1], 1, 2)).classid).toBe(H(1, 0x10));
    expect(l.classify(udp([192, 168, 1, 7], [9, 9, 9, 9], 1, 80)).classid).toBe(H(1, 0x20));
    expect(l.classify(udp([192, 168, 2, 7], [9, 9, 9, 9], 1, 80)).verdict).toBe(-1);
    expect(l.classify(udp([1, 1, 1, 1], [9, 9, 9, 9], 1, 2, 0x10)).classid).toBe(H(1, 0x30));
    expect(l.classify(udp([1, 1, 1, 1], [9, 9, 9, 9], 53, 2)).classid).toBe(H(1, 0x40));
    expect(l.classify(udp([1, 1, 1, 1], [9, 9, 9, 9], 54, 2)).verdict).toBe(-1);
  });

  it('tc filter show prints u32 as the kernel does', () => {
    const fx = fixture();
    const l = new FilterList(clock);
    l.add(filt('u32 match ip dst 10.0.0.1/32 flowid 1:10', 1));
    l.add(filt('u32 match ip src 192.168.1.0/24 match ip dport 80 0xffff flowid 1:20', 1));
    l.add(filt('u32 match ip protocol 17 0xff match ip tos 0x10 0xff flowid 1:30', 2));
    l.add(filt('u32 match ip sport 53 0xffff match u8 0x45 0xff at 0 flowid 1:30', 3));
    const lines = (k: string): string => `${(fx.get(k) ?? []).join('\n')}\n`;
    expect(l.show(H(1, 0), 0, 0)).toBe(lines('tc filter show dev e0'));
    expect(l.show(H(1, 0), H(1, 0), 1)).toBe(lines('tc filter show dev e0 parent 1: prio 1'));
    l.del(2);
    expect(l.show(H(1, 0), 0, 0)).toBe(`${secondShow()}\n`);
    const ing = new FilterList(clock);
    ing.add(filt('u32 match ip src 10.0.0.0/8 flowid :1', 1));
    expect(ing.show(0xffff0000, 0xffff0000, 0)).toBe(lines('tc filter show dev e0 parent ffff:'));
  });

  it('protocol ip filters pass over packets that are not IPv4 (no IP header offset: ARP)', () => {
    const l = new FilterList(clock);
    l.add(filt('matchall classid 1:9', 9));
    const arp = new Packet(new Uint8Array(42), 0, 42);
    expect(l.classify(arp).verdict).toBe(-1);
    arp.l3 = 0;
    expect(l.classify(arp).classid).toBe(H(1, 9));
  });

  it('fw matches the netfilter mark (masked), matchall everything', () => {
    const l = new FilterList(clock);
    const fw = parseFilter('fw', ['flowid', '1:6'], '6', clock);
    fw.prio = 1;
    l.add(fw);
    const fwm = parseFilter('fw', ['classid', '1:7'], '0x10/0xf0', clock);
    fwm.prio = 2;
    l.add(fwm);
    l.add(filt('matchall classid 1:9', 9));
    const p = udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 1);
    p.mark = 6;
    expect(l.classify(p).classid).toBe(H(1, 6));
    p.mark = 0x1f;
    expect(l.classify(p).classid).toBe(H(1, 7));
    p.mark = 0;
    expect(l.classify(p).classid).toBe(H(1, 9));
    expect(() => parseFilter('flower', [], null, clock)).toThrow('Error: TC classifier not found.');
  });

  it('tc filter show prints fw and matchall as f_fw.c and f_matchall.c do (this kernel has neither)', () => {
    const l = new FilterList(clock);
    const fw = parseFilter('fw', ['classid', '1:6'], '6', clock);
    fw.prio = 5;
    l.add(fw);
    const fwm = parseFilter('fw', ['flowid', '1:7'], '0x10/0xf0', clock);
    fwm.prio = 6;
    l.add(fwm);
    const ma = parseFilter('matchall', ['classid', '1:30'], null, clock);
    ma.prio = 9;
    l.add(ma);
    expect(l.show(H(1, 0), 0, 0)).toBe(
      'filter parent 1: protocol ip pref 5 fw chain 0 \n' +
        'filter parent 1: protocol ip pref 5 fw chain 0 handle 0x6 classid 1:6 \n' +
        'filter parent 1: protocol ip pref 6 fw chain 0 \n' +
        'filter parent 1: protocol ip pref 6 fw chain 0 handle 0x10/0xf0 classid 1:7 \n' +
        'filter parent 1: protocol ip pref 9 matchall chain 0 \n' +
        'filter parent 1: protocol ip pref 9 matchall chain 0 handle 0x1 flowid 1:30 \n  not_in_hw\n',
    );
  });
});

/** The second `tc filter show dev e0` of the fixture (after `tc filter del ... prio 2`). */
function secondShow(): string {
  const text = readFileSync(new URL('../fixtures/tc-htb/expected.txt', import.meta.url), 'utf8');
  const parts = text.split('$ tc filter show dev e0\n');
  return parts[2].split('\n$ ')[0].replace(/\n$/, '');
}

describe('police (act_police.c, m_police.c)', () => {
  const clock = { now: () => 0 };
  it('passes the rate and burst, drops the rest', () => {
    const t = { now: 0 };
    const l = new FilterList({ now: () => t.now });
    const f = parseFilter('matchall', 'action police rate 1mbit burst 10k conform-exceed drop/ok flowid :1'.split(' '), null, clock);
    f.prio = 1;
    l.add(f);
    let ok = 0;
    let dropped = 0;
    // 2 Mbit/s of 1000-byte packets for 10 s: one every 4 ms.
    for (let i = 0; i < 2500; i++) {
      t.now = i * 4e6;
      const r = l.classify(mkPacket(1000, 0));
      if (r.verdict === 2) dropped++;
      else if (r.verdict === 0) ok++;
    }
    const a = f.actions[0];
    // 10 s at 125000 B/s plus the 10 KiB bucket: 1250 + 10 packets.
    expect(ok).toBeGreaterThanOrEqual(1259);
    expect(ok).toBeLessThanOrEqual(1261);
    expect(dropped).toBe(2500 - ok);
    expect(a.drops).toBe(dropped);
    expect(a.overlimits).toBe(dropped);
  });
  it('packets longer than mtu exceed whatever the bucket holds; reclassify restarts the walk up to 16 times, then drops', () => {
    const t = { now: 0 };
    const l = new FilterList({ now: () => t.now });
    const f = parseFilter('matchall', 'action police rate 1mbit burst 100k mtu 1000 conform-exceed drop/ok flowid 1:1'.split(' '), null, clock);
    f.prio = 1;
    l.add(f);
    expect(l.classify(mkPacket(1000, 0)).verdict).toBe(0);
    expect(l.classify(mkPacket(1001, 0)).verdict).toBe(2);
    expect(f.actions[0].overlimits).toBe(1);
    const r = new FilterList({ now: () => t.now });
    const g = parseFilter('matchall', 'action police rate 8kbit burst 1000 flowid 1:1'.split(' '), null, clock);
    g.prio = 1;
    r.add(g);
    expect(r.classify(mkPacket(600, 0)).verdict).toBe(0);
    // The bucket is empty: exceed is reclassify (m_police.c's default), the walk starts over until the limit.
    expect(r.classify(mkPacket(600, 0)).verdict).toBe(2);
    expect(g.actions[0].overlimits).toBe(16);
  });

  it('exceed actions: continue goes to the next filter, reclassify restarts, pipe/pass classify', () => {
    const t = { now: 0 };
    const l = new FilterList({ now: () => t.now });
    const f1 = parseFilter('matchall', 'action police rate 8kbit burst 1000 conform-exceed continue/pipe flowid 1:1'.split(' '), null, clock);
    f1.prio = 1;
    l.add(f1);
    const f2 = parseFilter('matchall', ['flowid', '1:2'], null, clock);
    f2.prio = 2;
    l.add(f2);
    const r1 = l.classify(mkPacket(600, 0));
    expect([r1.verdict, r1.classid]).toEqual([3, H(1, 1)]);
    const r2 = l.classify(mkPacket(600, 0));
    expect([r2.verdict, r2.classid]).toEqual([0, H(1, 2)]);
  });
  it('prints as m_police.c: burst from ticks, mtu 2Kb by default, the exceed/conform pair', () => {
    const f = parseFilter('matchall', 'action police rate 1mbit burst 10k conform-exceed drop/pipe'.split(' '), null, clock);
    expect(f.actions[0].print()).toBe(' police 0x1 rate 1Mbit burst 10Kb mtu 2Kb action drop/pipe overhead 0b \n\tref 1 bind 1 \n');
    const g = parseFilter('matchall', 'police rate 500kbit burst 1600 mtu 1500'.split(' '), null, clock);
    expect(g.actions[0].print()).toBe(' police 0x1 rate 500Kbit burst 1600b mtu 1500b action reclassify overhead 0b \n\tref 1 bind 1 \n');
  });
});

describe('the police action table (tc actions, m_action.c)', () => {
  const clock = { now: () => 0 };
  it('adds with the lowest free index or the one given, lists, gets, deletes and flushes', () => {
    const t = new ActionTable();
    t.add('action police rate 1mbit burst 10k'.split(' '), false, clock);
    t.add('action police rate 2mbit burst 20k conform-exceed drop/ok index 5'.split(' '), false, clock);
    expect(() => t.add('action police rate 1mbit burst 1k index 5'.split(' '), false, clock)).toThrow('File exists');
    expect(t.list(false)).toBe(
      'total acts 2\n' +
        '\n\taction order 0:  police 0x1 rate 1Mbit burst 10Kb mtu 2Kb action reclassify overhead 0b \n\tref 1 bind 0 \n' +
        '\n\taction order 1:  police 0x5 rate 2Mbit burst 20Kb mtu 2Kb action drop overhead 0b \n\tref 1 bind 0 \n',
    );
    expect(t.get(5, true)).toBe(
      'total acts 0\n\n\taction order 1:  police 0x5 rate 2Mbit burst 20Kb mtu 2Kb action drop overhead 0b \n\tref 1 bind 0 \n' +
        '\tAction statistics:\n\tSent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) \n\tbacklog 0b 0p requeues 0\n',
    );
    // A filter binding index 5 shares its bucket; a bound action survives flush and refuses delete.
    const l = new FilterList(clock);
    const f = parseFilter('matchall', 'action police index 5 flowid 1:1'.split(' '), null, clock, t);
    f.prio = 1;
    l.add(f);
    expect(f.actions[0]).toBe(t.police.get(5));
    expect([t.police.get(5)!.refcnt, t.police.get(5)!.bindcnt]).toEqual([2, 1]);
    expect(() => t.delete(5)).toThrow('Failed to delete');
    t.flush();
    expect([...t.police.keys()]).toEqual([5]);
    l.del(0);
    expect([t.police.get(5)!.refcnt, t.police.get(5)!.bindcnt]).toEqual([1, 0]);
    t.delete(5);
    expect(() => t.get(5, false)).toThrow('Failed to find');
    // An action made with its filter goes with it.
    const g = parseFilter('matchall', 'action police rate 1mbit burst 10k flowid 1:1'.split(' '), null, clock, t);
    g.prio = 1;
    l.add(g);
    expect([...t.police.keys()]).toEqual([1]);
    l.del(1);
    expect(t.police.size).toBe(0);
  });
});
