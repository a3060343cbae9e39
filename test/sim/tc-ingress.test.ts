import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { IngressQdisc } from '../../src/sched/ingress.js';
import { ActionTable, FilterList, parseFilter } from '../../src/sched/filter.js';

describe('ingress policing before the IP layer (sch_handle_ingress, act_police.c)', () => {
  it('a 1 Mbit/s police drops what a 2 Mbit/s UDP flow sends beyond rate and burst', () => {
    const p = simPair();
    const clock = { now: () => p.time.now() * 1e6 };
    const table = new ActionTable();
    const ing = new IngressQdisc('ingress', 0xffff0000, 0xfffffff1);
    ing.filters = new FilterList(clock);
    const f = parseFilter('u32', 'match ip src 10.0.0.1/32 action police rate 1mbit burst 10k conform-exceed drop flowid :1'.split(' '), null, clock, table);
    f.prio = 1;
    ing.filters.add(f);
    p.ib.sched.ingress = ing;

    const server = p.b.udp.createSocket('udp4');
    let got = 0;
    server.on('message', () => got++);
    server.bind(5000);
    const client = p.a.udp.createSocket();
    p.time.advance(1);
    const payload = new Uint8Array(1000 - 28);
    // 1000-byte datagrams every 4 ms for 10 s: 2 Mbit/s.
    const n = 2500;
    for (let i = 0; i < n; i++) {
      client.send(payload, 5000, '10.0.0.2');
      p.time.advance(4);
    }
    p.time.advance(100);
    // 125000 B/s for 10 s, plus the 10 KiB bucket: 1250 + 10 datagrams, within a few.
    expect(got).toBeGreaterThanOrEqual(1255);
    expect(got).toBeLessThanOrEqual(1265);
    const act = table.police.get(1)!;
    expect(act.drops).toBe(n - got);
    expect(ing.stats.drops).toBe(n - got);
    expect(ing.stats.packets).toBe(n); // every IP packet is counted, dropped or not (ARP does not pass here)
    expect(table.list(false)).toBe(
      'total acts 1\n\n\taction order 0:  police 0x1 rate 1Mbit burst 10Kb mtu 2Kb action drop overhead 0b \n\tref 1 bind 1 \n',
    );
    // Other sources are not policed; without the hook everything arrives.
    p.ib.sched.ingress = null;
    const before = got;
    for (let i = 0; i < 100; i++) {
      client.send(payload, 5000, '10.0.0.2');
      p.time.advance(1);
    }
    p.time.advance(100);
    expect(got - before).toBe(100);
  });
});
