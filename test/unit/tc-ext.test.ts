import { describe, expect, it } from 'vitest';
import { buildStab, parseStab, rateLen, LINKLAYER_ATM, LINKLAYER_ETHERNET } from '../../src/sched/stab.js';
import { RateEstimator, setupEstimator } from '../../src/sched/estimator.js';
import { getU32Handle, sprintU32Handle } from '../../src/sched/cls-u32.js';
import { getPercentRate64 } from '../../src/sched/units.js';
import { DevSched } from '../../src/sched/sched.js';
import { VirtualTime } from '../../src/time/timers.js';
import { GSO_UDP_L4 } from '../../src/packet/packet.js';
import { udpFrame } from './sched-fake.js';

describe('size tables (tc_calc_size_table, __qdisc_calculate_pkt_len)', () => {
  it('without ATM or mpu a table is only the overhead', () => {
    const t = buildStab(parseStab(['overhead', '24', 'tbf'], 0).spec);
    expect(t.data).toBeNull();
    expect([t.pktLen(0), t.pktLen(1000), t.pktLen(1514)]).toEqual([24, 1024, 1538]);
    // A negative overhead never gives less than 1.
    expect(buildStab(parseStab(['overhead', '-100'], 0).spec).pktLen(40)).toBe(1);
  });

  it('ATM: 512 slots of 4 bytes up to 2047, each the cells its upper end needs', () => {
    const t = buildStab(parseStab(['linklayer', 'atm'], 0).spec);
    expect([t.spec.mtu, t.spec.tsize, t.spec.cellLog, t.spec.cellAlign, t.spec.sizeLog]).toEqual([2047, 512, 2, -1, 0]);
    // 48 bytes fit one cell, 49 need two; 1000 → 21 cells.
    expect([t.pktLen(48), t.pktLen(49), t.pktLen(1000), t.pktLen(1500)]).toEqual([53, 106, 1113, 32 * 53]);
    // Past the table: the last slot's size times the wraps, plus the remainder's slot.
    expect(t.pktLen(4000)).toBe(t.data![511] * 1 + t.data![(3999 >> 2) - 512]);
  });

  it('mpu raises short packets; overhead counts before the lookup', () => {
    const t = buildStab(parseStab(['mpu', '64', 'overhead', '4', 'linklayer', 'ethernet'], 0).spec);
    expect([t.pktLen(20), t.pktLen(60), t.pktLen(100)]).toEqual([64, 64, 104]);
  });

  it('rate charges (psched_l2t_ns len): overhead, mpu, then ATM cells', () => {
    expect(rateLen(1000, 10, 0, LINKLAYER_ATM)).toBe(22 * 53);
    expect(rateLen(40, 0, 64, LINKLAYER_ETHERNET)).toBe(64);
    expect(rateLen(40, 0, 96, LINKLAYER_ATM)).toBe(2 * 53);
  });
});

describe('rate estimators (tc_setup_estimator, gen_estimator.c est_timer)', () => {
  it('chooses the period and weight as tc does', () => {
    expect(setupEstimator(250000, 1000000)).toEqual({ interval: -2, ewmaLog: 2 });
    expect(setupEstimator(1000000, 8000000)).toEqual({ interval: 0, ewmaLog: 3 });
    expect(setupEstimator(100000000, 1000000)).toBeNull();
  });

  it('keeps the kernel integer EWMA, scaled by 2^8, period by period', () => {
    const c = { bytes: 0, packets: 0 };
    const e = new RateEstimator({ interval: -2, ewmaLog: 2 }, { now: () => 0 }, c);
    // 1000 bytes in each 250 ms: 4000 B/s offered.
    c.bytes = 1000;
    c.packets = 1;
    // First period: (1000 << 10 >> 2) = 256000 → 1000 B/s.
    expect(e.bps(250e6)).toBe(1000);
    c.bytes = 2000;
    c.packets = 2;
    // Second: 256000 + 256000 - (256000 >> 2) = 448000 → 1750 B/s.
    expect(e.bps(500e6)).toBe(1750);
    // Idle for a long while: it decays to what the integer shifts leave, without a timer.
    expect(e.bps(3600e9)).toBeLessThan(4);
  });
});

describe('u32 handles (f_u32.c get_u32_handle, sprint_u32_handle)', () => {
  it('reads and prints HTID:BUCKET:NODE', () => {
    expect(getU32Handle('800::800')).toBe(0x80000800);
    expect(getU32Handle('2:7:')).toBe(0x00207000);
    expect(getU32Handle('2:')).toBe(0x00200000);
    expect(getU32Handle('0x80000801')).toBe(0x80000801);
    expect(getU32Handle('2:300:')).toBeNull();
    expect(getU32Handle('1000:')).toBeNull();
    expect(getU32Handle('12')).toBeNull();
    expect([sprintU32Handle(0x80000800), sprintU32Handle(0x00207800), sprintU32Handle(0x00200000), sprintU32Handle(0)]).toEqual([
      '800::800',
      '2:7:800',
      '2:',
      'none',
    ]);
  });
});

describe('rate N% (get_percent_rate64)', () => {
  it('takes the share of the link speed, and refuses what tc refuses', () => {
    expect(getPercentRate64('50%', 'e0', 10000)).toEqual({ rate: 625000000 });
    expect(getPercentRate64('12.5%', 'e0', 100)).toEqual({ rate: 1562500 });
    expect(getPercentRate64('50%', '', 100)).toEqual({ error: 'No device specified; specify device to rate limit by percentage' });
    expect(getPercentRate64('50%', 'e0', undefined)).toEqual({ error: 'fopen /sys/class/net/e0/speed: No such file or directory' });
    expect(getPercentRate64('x%', 'e0', 100)).toEqual({ error: 'Specified rate value could not be read or is malformed' });
    expect(getPercentRate64('101%', 'e0', 100)).toEqual({ error: 'Invalid rate specified; should be between [0,100]% but is 101%' });
  });
});

describe('qdisc_pkt_len on the egress path (qdisc_pkt_len_init, __qdisc_calculate_pkt_len)', () => {
  const dev = { name: 'e0', mtu: 1500, txQueueLen: 1000, hardHeaderLen: 14, kick: (): void => undefined };

  it('a super-packet counts the headers each further segment repeats; a size table applies to the total', () => {
    const s = new DevSched(dev, new VirtualTime(), () => 0.5);
    const p = udpFrame(3000);
    p.l3 = p.start + 14;
    p.gsoSize = 1000;
    p.gsoType = GSO_UDP_L4;
    p.gsoSegs = 3;
    s.enqueue(p);
    // Two more segments, each with Ethernet + IP + UDP headers again.
    expect(s.root.stats.backlog).toBe(3000 + 2 * (14 + 20 + 8));
    const q = new DevSched(dev, new VirtualTime(), () => 0.5);
    q.root.stab = buildStab(parseStab(['overhead', '10'], 0).spec);
    q.enqueue(udpFrame(500));
    expect(q.root.stats.backlog).toBe(510);
  });
});
