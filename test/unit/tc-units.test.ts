import { describe, expect, it } from 'vitest';
import { calcXmitSize, calcXmitTime, fmtG, getRate, getRate64, getSize, getSizeAndCell, getTime, getTime64, sprintRate, sprintSize, sprintTime, sprintTime64 } from '../../src/sched/units.js';

describe('tc units (iproute2 lib/utils_math.c, lib/utils.c)', () => {
  it('reads rates as tc does: a bare rate is bit/s, kbps is kilobytes/s', () => {
    expect(getRate('8')).toBe(1);
    expect(getRate('10mbit')).toBe(1250000);
    expect(getRate('10Mbit')).toBe(1250000);
    expect(getRate('1kbit')).toBe(125);
    expect(getRate('1kibit')).toBe(128);
    expect(getRate('125kbps')).toBe(125000);
    expect(getRate('1MBps')).toBe(1000000);
    expect(getRate('1.5mbit')).toBe(187500);
    expect(getRate('1gbit')).toBe(125000000);
    expect(getRate('10mibit')).toBe(1310720);
    expect(getRate('10mbot')).toBeNull();
    expect(getRate('-1mbit')).toBeNull();
    expect(getRate('mbit')).toBeNull();
    // 50 Gbit/s does not fit get_rate's 32 bits; get_rate64 takes it.
    expect(getRate('50gbit')).toBeNull();
    expect(getRate64('50gbit')).toBe(6250000000);
  });

  it('reads sizes: k/kb/m/mb/g are binary, kbit as a size is 128 bytes', () => {
    expect(getSize('1514')).toBe(1514);
    expect(getSize('5k')).toBe(5120);
    expect(getSize('5kb')).toBe(5120);
    expect(getSize('1m')).toBe(1048576);
    expect(getSize('1mb')).toBe(1048576);
    expect(getSize('1kbit')).toBe(128);
    expect(getSize('10kbit')).toBe(1280);
    expect(getSize('1mbit')).toBe(131072);
    expect(getSize('100b')).toBe(100);
    expect(getSize('5q')).toBeNull();
    expect(getSize('5g')).toBeNull(); // more than 32 bits
    expect(getSizeAndCell('20k/8')).toEqual({ size: 20480, cellLog: 3 });
    expect(getSizeAndCell('20k/7')).toBeNull();
    expect(getSizeAndCell('1600')).toEqual({ size: 1600, cellLog: -1 });
  });

  it('reads times: a bare time is µs', () => {
    expect(getTime('70')).toBe(70);
    expect(getTime('50ms')).toBe(50000);
    expect(getTime('1s')).toBe(1000000);
    expect(getTime('1.5ms')).toBe(1500);
    expect(getTime('1500us')).toBe(1500);
    expect(getTime('2secs')).toBe(2000000);
    expect(getTime('50xs')).toBeNull();
    expect(getTime64('5ms')).toBe(5000000);
    expect(getTime64('100')).toBe(100);
    expect(getTime64('3us')).toBe(3000);
  });

  it('prints rates, sizes and times as iproute2 does', () => {
    expect(sprintRate(1250000)).toBe('10Mbit');
    expect(sprintRate(187500)).toBe('1500Kbit');
    expect(sprintRate(8000)).toBe('64Kbit');
    expect(sprintRate(1310720)).toBe('10485Kbit');
    expect(sprintRate(6250000000)).toBe('50Gbit');
    expect(sprintRate(100)).toBe('800bit');
    expect(sprintSize(5120)).toBe('5Kb');
    expect(sprintSize(1514)).toBe('1514b');
    expect(sprintSize(1048576)).toBe('1Mb');
    expect(sprintSize(1048500)).toBe('1048500b');
    expect(sprintSize(3072 + 10)).toBe('3Kb');
    expect(sprintTime(50000)).toBe('50ms');
    expect(sprintTime(1000000)).toBe('1s');
    expect(sprintTime(1500)).toBe('1.5ms');
    expect(sprintTime(999999)).toBe('1e+03ms');
    expect(sprintTime(8390)).toBe('8.39ms');
    expect(sprintTime(68)).toBe('68us');
    expect(sprintTime64(5000000)).toBe('5ms');
    expect(sprintTime64(800)).toBe('800ns');
    expect(fmtG(0.0001234, 3)).toBe('0.000123');
    expect(fmtG(123456789)).toBe('1.23457e+08');
  });

  it('converts between bytes and psched ticks (64 ns) as tc_core.c does', () => {
    // 5 KiB at 10 Mbit/s: 4.096 ms = 64000 ticks.
    expect(calcXmitTime(1250000, 5120)).toBe(64000);
    expect(calcXmitSize(1250000, 64000)).toBe(5120);
    // iproute2 6.1 truncates to whole µs, then to whole ticks.
    expect(calcXmitTime(1500000, 3000)).toBe(31250);
    expect(calcXmitTime(1500000, 3001)).toBe(31250);
    expect(calcXmitSize(125000000, 131072)).toBe(1048500);
  });
});
