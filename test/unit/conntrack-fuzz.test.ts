import { describe, expect, it } from 'vitest';
import { CtRig, icmp, icmpError, tcp, udp, generic, ACK, SYN, FIN, RST, PSH } from '../helpers/ct.js';
import { Random } from '../../src/random.js';
import type { Packet } from '../../src/packet/packet.js';
import type { CtEntry } from '../../src/conntrack/entry.js';

/**
 * Random traffic among a few hosts and ports, some of it cut short or corrupted:
 * conntrack never throws, and the table stays consistent (every entry found
 * from both directions, the count right).
 */
describe('conntrack under random traffic', () => {
  it('never throws and keeps the table consistent', () => {
    const rng = new Random(4242);
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_max', '300');
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', '64');
    const hosts = ['10.0.0.1', '10.0.0.2', '10.0.1.1', '10.0.1.2'];
    const pick = <T>(a: T[]): T => a[Math.floor(rng.next() * a.length)];
    const int = (n: number): number => Math.floor(rng.next() * n);
    const flagsSet = [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, FIN, 0, 0xff, SYN | FIN];
    const recent: Packet[] = [];
    for (let i = 0; i < 30_000; i++) {
      const a = pick(hosts);
      let b = pick(hosts);
      if (b === a) b = hosts[(hosts.indexOf(a) + 1) % hosts.length];
      let p: Packet;
      switch (int(5)) {
        case 0:
        case 1:
          p = tcp(a, 1000 + int(4), b, 80 + int(2), { seq: int(3) === 0 ? int(2 ** 32) : 1000 + int(5000), ack: 1000 + int(5000), flags: pick(flagsSet), win: int(65536), data: int(3) === 0 ? int(1500) : 0, opts: int(4) === 0 ? [3, 3, int(20), 1, 4, 2, 5, 10, 0, 0, 0, 0] : [] });
          break;
        case 2:
          p = udp(a, 2000 + int(3), b, 53 + int(2), int(100));
          break;
        case 3:
          p = int(2) === 0 || recent.length === 0 ? icmp(a, b, pick([0, 8, 13, 14, 9, 3, 11, 40]), int(3), { id: int(4), seq: int(10) }) : icmpError(a, b, pick([3, 4, 5, 11, 12]), int(16), pick(recent));
          break;
        default:
          p = generic(a, b, pick([47, 50, 132, 255]));
      }
      // Damage some: cut short, a flipped byte anywhere after the IP header.
      const k = int(10);
      if (k === 0) p.end = p.l3 + 20 + int(Math.max(1, p.end - p.l3 - 20));
      else if (k === 1 && p.end - p.l3 > 21) p.buf[p.l3 + 20 + int(p.end - p.l3 - 20)] ^= 1 << int(8);
      if (int(2) === 0) r.forward(p);
      else {
        r.hooks.output.run(p, null, null);
        r.hooks.postrouting.run(p, null, null);
      }
      if (int(20) === 0) recent.push(p);
      if (recent.length > 20) recent.shift();
      if (int(500) === 0) r.time.advance(int(200_000));
    }
    let n = 0;
    const seen = new Set<CtEntry>();
    r.ct.forEach((e) => {
      n++;
      expect(seen.has(e)).toBe(false);
      seen.add(e);
      expect(r.ct.find(e.proto, e.os, e.od, e.osp, e.odp)).toBe(e);
      expect(r.ct.find(e.proto, e.rs, e.rd, e.rsp, e.rdp)).toBe(e);
    });
    expect(n).toBe(r.ct.count);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThanOrEqual(300);
    const s = r.ct.stats;
    expect(s.invalid).toBeGreaterThan(0);
    expect(s.error).toBeGreaterThan(0);
  });
});
