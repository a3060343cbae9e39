import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import { ip } from '../helpers/sim.js';
import { runNft, stackNftIo } from '../../src/control/nft.js';

/** a (10.0.1.2) -- r0 router r1 -- b (10.0.2.2); tc runs on r. */
function routed(): { time: VirtualTime; a: Stack; r: Stack; b: Stack; tc: (line: string) => string } {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
  const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'] });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const b = new Stack({ time, seed: 13 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const r1 = r.addInterface('r1', dr1);
  const ib = b.addInterface('b0', db);
  for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(r1, ip('10.0.2.1'), 24);
  b.addAddress(ib, ip('10.0.2.2'), 24);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  b.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  time.advance(1000);
  const env = stackTcEnv(r);
  const tc = (line: string): string => {
    const res = runTc(env, line.split(' '));
    if (res.code !== 0) throw new Error(`tc ${line}: ${res.stderr}`);
    return res.stdout;
  };
  return { time, a, r, b, tc };
}

/**
 * a sends 1000-byte UDP datagrams to b's ports at `mbit` Mbit/s each for
 * `seconds`; returns the Mbit/s b received per port after the first second.
 */
function blast(t: ReturnType<typeof routed>, ports: number[], mbit: number, seconds: number): number[] {
  const got = ports.map(() => 0);
  ports.forEach((port, k) => {
    const s = t.b.udp.createSocket('udp4');
    s.on('message', (m) => {
      if (t.time.now() >= t0 + 1000) got[k] += m.length + 28;
    });
    s.bind(port);
  });
  const tx = t.a.udp.createSocket('udp4');
  const payload = new Uint8Array(1000 - 28);
  const t0 = t.time.now();
  const gapMs = (1000 * 8) / (mbit * 1000);
  const end = t0 + seconds * 1000;
  while (t.time.now() < end) {
    for (const port of ports) tx.send(payload, port, '10.0.2.2');
    t.time.advance(gapMs);
  }
  // What is still queued after `end` is not counted (b counts only what arrives by then).
  const final = got.map((g) => (g * 8) / ((seconds - 1) * 1e6));
  return final;
}

describe('htb on a router (sim, virtual time)', () => {
  it('children share the parent by rate, the excess by quantum, and a lone child borrows up to ceil', () => {
    const t = routed();
    t.tc('qdisc add dev r1 root handle 1: htb default 20');
    t.tc('class add dev r1 parent 1: classid 1:1 htb rate 10mbit');
    t.tc('class add dev r1 parent 1:1 classid 1:10 htb rate 6mbit ceil 10mbit');
    t.tc('class add dev r1 parent 1:1 classid 1:20 htb rate 2mbit ceil 10mbit');
    t.tc('qdisc add dev r1 parent 1:10 handle 10: pfifo limit 200');
    t.tc('filter add dev r1 parent 1: protocol ip prio 1 u32 match ip dport 5001 0xffff flowid 1:10');
    const [a, b] = blast(t, [5001, 5002], 20, 6);
    // UDP payload + IP header is counted here; the shaper counts the frame (with 14 bytes of Ethernet): 1014/1000.
    const k = 1000 / 1014;
    expect(a + b).toBeGreaterThan(10 * k * 0.98);
    expect(a + b).toBeLessThan(10 * k * 1.02);
    // Quanta 75000 and 25000: the 2 Mbit/s of excess goes 3:1.
    expect(a).toBeGreaterThan(7.5 * k * 0.97);
    expect(a).toBeLessThan(7.5 * k * 1.03);
    expect(b).toBeGreaterThan(2.5 * k * 0.97);
    expect(b).toBeLessThan(2.5 * k * 1.03);
    const shown = t.tc('-s class show dev r1 classid 1:10');
    expect(shown).toMatch(/^class htb 1:10 parent 1:1 leaf 10: prio 0 rate 6Mbit ceil 10Mbit burst 1599b cburst 1600b \n Sent \d+ bytes \d+ pkt \(dropped \d+, overlimits \d+ requeues 0\) \n backlog \d+b \d+p requeues 0\n lended: \d+ borrowed: [1-9]\d* giants: 0\n tokens: -?\d+ ctokens: -?\d+\n\n$/);
    expect(t.tc('qdisc show dev r1')).toBe(
      'qdisc htb 1: root refcnt 2 r2q 10 default 0x20 direct_packets_stat 0 direct_qlen 1000\nqdisc pfifo 10: parent 1:10 limit 200p\n',
    );
  });

  it('a class alone is held to its ceil', () => {
    const t = routed();
    t.tc('qdisc add dev r1 root handle 1: htb default 20');
    t.tc('class add dev r1 parent 1: classid 1:1 htb rate 20mbit');
    t.tc('class add dev r1 parent 1:1 classid 1:20 htb rate 1mbit ceil 4mbit');
    const [a] = blast(t, [5002], 10, 6);
    const k = 1000 / 1014;
    expect(a).toBeGreaterThan(4 * k * 0.98);
    expect(a).toBeLessThan(4 * k * 1.02);
  });

  it('fw classifies by the mark the chain engine set (meta mark set), as with iptables MARK on Linux', () => {
    const t = routed();
    const nft = runNft(t.r.nft, ['-f', '-'], stackNftIo(t.r, 'table ip m {\n chain forward {\n  type filter hook forward priority mangle; policy accept;\n  udp dport 5001 meta mark set 6\n }\n}\n'));
    expect([nft.code, nft.stderr]).toEqual([0, ""]);
    t.tc('qdisc add dev r1 root handle 1: htb default 20');
    t.tc('class add dev r1 parent 1: classid 1:1 htb rate 10mbit');
    t.tc('class add dev r1 parent 1:1 classid 1:6 htb rate 1mbit ceil 1mbit');
    t.tc('class add dev r1 parent 1:1 classid 1:20 htb rate 5mbit ceil 10mbit');
    t.tc('filter add dev r1 parent 1: protocol ip prio 5 handle 6 fw flowid 1:6');
    expect(t.tc('filter show dev r1')).toBe(
      'filter parent 1: protocol ip pref 5 fw chain 0 \nfilter parent 1: protocol ip pref 5 fw chain 0 handle 0x6 classid 1:6 \n',
    );
    const [marked, other] = blast(t, [5001, 5002], 5, 6);
    const k = 1000 / 1014;
    expect(marked).toBeGreaterThan(1 * k * 0.97);
    expect(marked).toBeLessThan(1 * k * 1.03);
    expect(other).toBeGreaterThan(5 * k * 0.97);
  });
});
