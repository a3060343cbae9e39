import { describe, expect, it } from 'vitest';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PerformanceObserver } from 'node:perf_hooks';
import { ACK, CtRig, PSH, SYN, ip, tcp, udp } from '../helpers/ct.js';
import type { CtEntry } from '../../src/conntrack/entry.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('conntrack at scale', () => {
  it('a million entries fit, each costs a few hundred bytes of heap, and lookups stay O(1)', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_max', '1100000');
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', String(1 << 20));
    r.sysctl.set('net.netfilter.nf_conntrack_checksum', '0');
    const N = 1_000_000;
    // One datagram rewritten in place: source address and port make each flow new.
    const p = udp('10.0.0.0', 1, '10.200.0.1', 53);
    const b = p.buf;
    const o = p.l3;
    // A first entry allocates the table itself; measure the entries only.
    r.forward(p);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 1; i < N; i++) {
      const src = (0x0a000000 + Math.floor(i / 60000)) >>> 0;
      b[o + 12] = src >>> 24;
      b[o + 13] = (src >>> 16) & 0xff;
      b[o + 14] = (src >>> 8) & 0xff;
      b[o + 15] = src & 0xff;
      const port = 1 + (i % 60000);
      b[o + 20] = port >> 8;
      b[o + 21] = port & 0xff;
      p.ct = null;
      r.forward(p);
    }
    gc();
    const perEntry = (process.memoryUsage().heapUsed - before) / (N - 1);
    expect(r.ct.count).toBe(N);
    expect(perEntry).toBeLessThan(400);
    // Lookups from the reply direction: every entry is found, and no hash chain is long.
    const server = ip('10.200.0.1');
    const look = (i: number): CtEntry | null => r.ct.find(17, server, (0x0a000000 + Math.floor(i / 60000)) >>> 0, 53, 1 + (i % 60000));
    expect(look(0)!.osp).toBe(1);
    expect(look(999_999)!.osp).toBe(1 + (999_999 % 60000));
    expect(r.ct.longestChain()).toBeLessThanOrEqual(16);
    const t0 = performance.now();
    let hits = 0;
    for (let k = 0; k < 200_000; k++) if (look((k * 7919) % N) !== null) hits++;
    const us = ((performance.now() - t0) * 1000) / 200_000;
    expect(hits).toBe(200_000);
    console.log(`conntrack: ${perEntry.toFixed(0)} bytes/entry; ${us.toFixed(2)} us per lookup among 1M entries; longest chain ${r.ct.longestChain()}`);
    // A walk over the table would take milliseconds per lookup.
    expect(us).toBeLessThan(50);
  }, 120_000);

  it('tracking packets of an existing TCP connection allocates nothing (no young-generation GC over 500,000 packets)', async () => {
    const r = new CtRig();
    const C = '10.0.0.1';
    const S = '10.0.1.2';
    r.forward(tcp(C, 40000, S, 80, { seq: 100, flags: SYN, win: 64240 }));
    r.forward(tcp(S, 80, C, 40000, { seq: 900, ack: 101, flags: SYN | ACK, win: 64240 }));
    r.forward(tcp(C, 40000, S, 80, { seq: 101, ack: 901, flags: ACK, win: 64240 }));
    const data = tcp(C, 40000, S, 80, { seq: 101, ack: 901, flags: ACK | PSH, win: 64240, data: 1400 });
    const ackBack = tcp(S, 80, C, 40000, { seq: 901, ack: 1501, flags: ACK, win: 64240 });
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        data.ct = null;
        r.forward(data);
        ackBack.ct = null;
        r.forward(ackBack);
      }
    };
    run(20_000); // warm up: compiled code, no more lazy allocations
    gc();
    let minor = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 1) minor++;
    });
    obs.observe({ entryTypes: ['gc'] });
    run(250_000);
    await new Promise((res) => setTimeout(res, 50));
    obs.disconnect();
    expect(data.ct).not.toBeNull();
    expect(r.ct.stateName(data.ct as CtEntry)).toBe('ESTABLISHED');
    expect(minor).toBeLessThanOrEqual(1);
  }, 60_000);
});
