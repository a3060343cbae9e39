import { describe, expect, it } from 'vitest';
import { simPair, ip } from '../helpers/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import '../../src/control/tc-filter.js';
import { actionTable } from '../../src/control/tc-filter.js';

/** Two stacks on a sim link; `tc` lines run against stack a, frames of a0 recorded with their departure time (ns). */
function setup(seed: number) {
  const p = simPair({ seed });
  const env = stackTcEnv(p.a);
  const tc = (line: string): string => {
    const r = runTc(env, line.split(' '));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };
  p.ia.neigh!.set(ip('10.0.0.2'), p.ib.mac, 'PERMANENT');
  // b knows a too, so nothing but the test's frames leaves a (no ARP replies).
  p.ib.neigh!.set(ip('10.0.0.1'), p.ia.mac, 'PERMANENT');
  const departures: number[] = [];
  p.a.capture = (iface, frame) => {
    if (iface === p.ia && frame.length === 1000) departures.push(p.a.time.nowNs());
  };
  const tx = p.a.udp.createSocket('udp4');
  tx.bind(7001);
  /** A 1000-byte frame (with the Ethernet header) to 10.0.0.2:`port`. */
  const send = (port = 7000, dst = '10.0.0.2'): void => tx.send(new Uint8Array(1000 - 14 - 20 - 8), port, dst);
  /** Counts the datagrams b takes in on port 7000. */
  const receiver = (): { got: number } => {
    const r = { got: 0 };
    const rx = p.b.udp.createSocket('udp4');
    rx.on('message', () => r.got++);
    rx.bind(7000);
    return r;
  };
  return { ...p, env, tc, departures, send, receiver };
}

/** Gaps between consecutive departures. */
const gaps = (d: number[]): number[] => d.slice(1).map((t, i) => t - d[i]);

describe('link layers and size tables change what a shaper charges (psched_l2t_ns, __qdisc_calculate_pkt_len)', () => {
  // 1 Mbit/s is 125000 B/s: 8000 ns a byte, exactly (psched_ratecfg_precompute's mult is exact here).
  const ns = (bytes: number): number => bytes * 8000;

  it('tbf linklayer atm overhead 10: a 1000-byte frame costs 22 cells of 53 bytes', () => {
    const s = setup(31);
    s.tc('qdisc add dev a0 root handle 1: tbf rate 1mbit burst 2k latency 500ms linklayer atm overhead 10');
    for (let i = 0; i < 20; i++) s.send();
    s.time.advance(1000);
    expect(s.departures.length).toBe(20);
    // (1000 + 10) / 48 → 22 cells → 1166 bytes on the wire below.
    const g = gaps(s.departures).slice(2);
    expect(new Set(g)).toEqual(new Set([ns(1166)]));
  });

  it('htb linklayer atm mpu 1200: the class is charged the larger of mpu and the frame, in cells', () => {
    const s = setup(32);
    s.tc('qdisc add dev a0 root handle 1: htb default 10');
    s.tc('class add dev a0 parent 1: classid 1:10 htb rate 1mbit burst 2k cburst 2k mpu 1200 linklayer atm');
    expect(s.tc('class show dev a0')).toBe('class htb 1:10 root prio 0 rate 1Mbit ceil 1Mbit linklayer atm burst 2Kb cburst 2Kb \n');
    for (let i = 0; i < 20; i++) s.send();
    s.time.advance(1000);
    expect(s.departures.length).toBe(20);
    // max(1000, 1200) = 1200 → 25 cells → 1325 bytes.
    const g = gaps(s.departures).slice(4);
    for (const x of g) expect(Math.abs(x - ns(1325))).toBeLessThanOrEqual(1);
  });

  it('stab overhead 24 makes a tbf slower by exactly 24 bytes a frame', () => {
    const plain = setup(33);
    plain.tc('qdisc add dev a0 root handle 1: tbf rate 1mbit burst 2k latency 500ms');
    const st = setup(33);
    st.tc('qdisc add dev a0 root handle 1: stab overhead 24 tbf rate 1mbit burst 2k latency 500ms');
    for (const s of [plain, st]) {
      for (let i = 0; i < 20; i++) s.send();
      s.time.advance(1000);
      expect(s.departures.length).toBe(20);
    }
    expect(new Set(gaps(plain.departures).slice(2))).toEqual(new Set([ns(1000)]));
    expect(new Set(gaps(st.departures).slice(2))).toEqual(new Set([ns(1024)]));
    // The qdisc counts the lengths the size table gave: 24 bytes more for every frame.
    const [sq, pq] = [st.ia.sched.root.stats, plain.ia.sched.root.stats];
    expect(sq.packets).toBe(pq.packets);
    expect(sq.bytes - pq.bytes).toBe(24 * sq.packets);
    expect(st.tc('-d qdisc show dev a0')).toBe(
      'qdisc tbf 1: root refcnt 2 rate 1Mbit burst 2Kb/1 mpu 0b lat 500ms linklayer ethernet \n overhead 24 \n',
    );
  });

  it('stab linklayer atm: the table rounds 1000 bytes up to 21 cells (1113 bytes)', () => {
    const s = setup(34);
    s.tc('qdisc add dev a0 root handle 1: stab linklayer atm tbf rate 1mbit burst 2k latency 500ms');
    for (let i = 0; i < 10; i++) s.send();
    s.time.advance(1000);
    expect(new Set(gaps(s.departures).slice(2))).toEqual(new Set([ns(1113)]));
  });
});

describe('u32 hash tables pick the bucket from the packet (cls_u32.c u32_classify)', () => {
  /** Packets of each htb class, from `tc -s class show`. */
  function classPackets(out: string): Record<string, number> {
    const r: Record<string, number> = {};
    for (const m of out.matchAll(/^class htb (\S+) .*\n Sent \d+ bytes (\d+) pkt/gm)) r[m[1]] = Number(m[2]);
    return r;
  }

  it('hashkey on the last byte of the destination sends 10.0.0.7 and 10.0.0.9 to their buckets, others to the default', () => {
    const s = setup(41);
    for (const h of [7, 8, 9]) s.ia.neigh!.set(ip(`10.0.0.${h}`), s.ib.mac, 'PERMANENT');
    s.tc('qdisc add dev a0 root handle 1: htb default 10');
    for (const c of [10, 20, 30]) s.tc(`class add dev a0 parent 1: classid 1:${c} htb rate 10mbit`);
    s.tc('filter add dev a0 parent 1: prio 5 handle 2: protocol ip u32 divisor 256');
    s.tc('filter add dev a0 parent 1: prio 5 protocol ip u32 ht 800:: match ip dst 10.0.0.0/24 hashkey mask 0x000000ff at 16 link 2:');
    s.tc('filter add dev a0 parent 1: prio 5 protocol ip u32 ht 2:7: match ip dst 10.0.0.7 flowid 1:20');
    s.tc('filter add dev a0 parent 1: prio 5 protocol ip u32 ht 2:9: match ip dst 10.0.0.9 flowid 1:30');
    // In bucket 9 but not matching there: falls back out of the table, not terminal, so unclassified.
    s.tc('filter add dev a0 parent 1: prio 5 protocol ip u32 ht 2:9: match ip src 1.2.3.4 flowid 1:20');
    for (let i = 0; i < 3; i++) s.send(7000, '10.0.0.7');
    for (let i = 0; i < 5; i++) s.send(7000, '10.0.0.9');
    for (let i = 0; i < 2; i++) s.send(7000, '10.0.0.8');
    s.time.advance(100);
    expect(classPackets(s.tc('-s class show dev a0'))).toEqual({ '1:10': 2, '1:20': 3, '1:30': 5 });
  });

  it('offset ... eat moves past the IP header (its length from IHL) before the linked table matches the UDP port', () => {
    const s = setup(42);
    s.tc('qdisc add dev a0 root handle 1: htb default 10');
    for (const c of [10, 20]) s.tc(`class add dev a0 parent 1: classid 1:${c} htb rate 10mbit`);
    s.tc('filter add dev a0 parent 1: prio 1 handle 3: protocol ip u32 divisor 256');
    // Bucket: the low byte of the destination port, read at 20 before the offset applies.
    s.tc('filter add dev a0 parent 1: prio 1 protocol ip u32 match ip protocol 17 0xff offset at 0 mask 0x0f00 shift 6 eat hashkey mask 0x000000ff at 20 link 3:');
    s.tc('filter add dev a0 parent 1: prio 1 protocol ip u32 ht 3:50: match udp dst 5200 0xffff flowid 1:20');
    s.send(5200);
    s.send(5200);
    s.send(5201);
    s.time.advance(100);
    expect(classPackets(s.tc('-s class show dev a0'))).toEqual({ '1:10': 1, '1:20': 2 });
  });
});

describe('clsact egress filters run before the root qdisc (sch_handle_egress)', () => {
  it('a 1 Mbit/s police on egress drops what a 2 Mbit/s flow sends beyond rate and burst; the root qdisc never sees it', () => {
    const s = setup(51);
    s.tc('qdisc add dev a0 clsact');
    s.tc('filter add dev a0 egress protocol ip prio 1 u32 match ip dst 10.0.0.2/32 action police rate 1mbit burst 10k conform-exceed drop');
    const rx = s.receiver();
    const n = 2500;
    for (let i = 0; i < n; i++) {
      s.send();
      s.time.advance(4);
    }
    s.time.advance(100);
    // 125000 B/s for 10 s plus the 10 KiB bucket: 1250 + 10 frames, within a few.
    expect(rx.got).toBeGreaterThanOrEqual(1255);
    expect(rx.got).toBeLessThanOrEqual(1265);
    const cls = s.ia.sched.ingress!;
    expect(cls.stats.drops).toBe(n - rx.got);
    expect(cls.stats.packets).toBe(n);
    expect(s.departures.length).toBe(rx.got);
    const show = s.tc('-s filter show dev a0 egress');
    expect(show).toContain(` police 0x1 rate 1Mbit burst 10Kb mtu 2Kb action drop overhead 0b \n\tref 1 bind 1 \n`);
    expect(show).toContain(`\tAction statistics:\n\tSent ${n * 1000} bytes ${n} pkt (dropped ${n - rx.got}, overlimits ${n - rx.got} requeues 0) \n`);
    expect(s.tc('-s qdisc show dev a0')).toContain(`qdisc clsact ffff: parent ffff:fff1 \n Sent ${n * 1000} bytes ${n} pkt (dropped ${n - rx.got}, overlimits 0 requeues 0) \n`);
  });

  it('police peakrate 2mbit mtu 2k holds a burst to the peak rate although the bucket is deep', () => {
    const s = setup(52);
    s.tc('qdisc add dev a0 clsact');
    s.tc('filter add dev a0 egress protocol ip prio 1 matchall action police rate 1mbit burst 200k peakrate 2mbit mtu 2k conform-exceed drop');
    const rx = s.receiver();
    // 4 Mbit/s (a frame each 2 ms) for 1 s: rate and its 200 KiB bucket would pass 330 frames; 2 Mbit/s of peak passes half.
    for (let i = 0; i < 500; i++) {
      s.send();
      s.time.advance(2);
    }
    s.time.advance(100);
    // A frame costs 4 ms of peak tokens, 2 ms come a frame; the 2 KiB (8.192 ms) peak bucket adds a frame or two.
    expect(rx.got).toBeGreaterThanOrEqual(250);
    expect(rx.got).toBeLessThanOrEqual(253);
    expect(s.tc('filter show dev a0 egress')).toContain(' police 0x1 rate 1Mbit burst 200Kb mtu 2Kb peakrate 2Mbit action drop overhead 0b \n');
  });

  it('police avrate against the filter estimator: a flow under avrate passes, one over it is cut once the average reaches it', () => {
    const s = setup(53);
    s.tc('qdisc add dev a0 clsact');
    s.tc('filter add dev a0 egress protocol ip prio 1 estimator 250ms 1sec u32 match ip dst 10.0.0.2/32 action police avrate 1mbit conform-exceed drop');
    const rx = s.receiver();
    // 0.5 Mbit/s for 4 s: all of it passes.
    for (let i = 0; i < 250; i++) {
      s.send();
      s.time.advance(16);
    }
    expect(rx.got).toBe(250);
    // Then 2 Mbit/s: the EWMA (weight 1/4 every 250 ms) passes 1 Mbit/s within a second, and from then on all is dropped.
    const before = rx.got;
    for (let i = 0; i < 1000; i++) {
      s.send();
      s.time.advance(4);
    }
    s.time.advance(100);
    const passed = rx.got - before;
    expect(passed).toBeGreaterThan(50);
    expect(passed).toBeLessThan(250);
    const act = actionTable(s.env).police.get(1)!;
    expect(act.drops).toBe(1000 - passed);
    // The estimate settles on the offered 250000 B/s.
    expect(Math.abs(act.est!.bps(s.a.time.nowNs()) - 250000)).toBeLessThan(250000 * 0.03);
    // tc -s shows the estimate (print_tcstats2_attr's rate line): close to 2 Mbit/s, 250 pps.
    const m = /\tAction statistics:\n\tSent \d+ bytes \d+ pkt \(dropped \d+, overlimits \d+ requeues 0\) \n\trate (\d+)Kbit (\d+)pps\tbacklog 0b 0p requeues 0\n/.exec(
      s.tc('-s filter show dev a0 egress'),
    );
    expect(m).not.toBeNull();
    expect(Math.abs(Number(m![1]) - 2000)).toBeLessThan(60);
    expect(Math.abs(Number(m![2]) - 250)).toBeLessThan(8);
  });
});

describe('qdisc rate estimators (gen_estimator.c)', () => {
  it('tc -s shows the rate a 1 Mbit/s tbf sends, as the EWMA has it', () => {
    const s = setup(81);
    s.tc('qdisc add dev a0 root handle 1: estimator 250ms 1sec tbf rate 1mbit burst 2k latency 100ms');
    // 2 Mbit/s offered for 5 s; the tbf sends 1 Mbit/s (125 frames of 1000 bytes a second).
    for (let i = 0; i < 1250; i++) {
      s.send();
      s.time.advance(4);
    }
    const m = /\n rate (\d+)(K|M)bit (\d+)pps backlog \d+b \d+p requeues 0\n$/.exec(s.tc('-s qdisc show dev a0'));
    expect(m).not.toBeNull();
    const kbit = Number(m![1]) * (m![2] === 'M' ? 1000 : 1);
    expect(Math.abs(kbit - 1000)).toBeLessThan(10);
    expect(Math.abs(Number(m![3]) - 125)).toBeLessThanOrEqual(2);
    // Idle, it decays (weight 1/4 every 250 ms).
    s.time.advance(8000);
    expect(s.tc('-s qdisc show dev a0')).toMatch(/\n rate \d+bit 0pps backlog 0b 0p requeues 0\n$/);
  });
});

describe('netem with a child qdisc (sch_netem.c: class 1:1)', () => {
  it('delayed packets go on into a tbf grafted on netem, which shapes them', () => {
    const s = setup(61);
    s.tc('qdisc add dev a0 root handle 1: netem delay 10ms');
    s.tc('qdisc add dev a0 parent 1: handle 10: tbf rate 1mbit burst 2k latency 500ms');
    expect(s.tc('qdisc show dev a0')).toBe(
      'qdisc netem 1: root refcnt 2 limit 1000 delay 10ms seed ' +
        /seed (\d+)/.exec(s.tc('qdisc show dev a0'))![1] +
        '\nqdisc tbf 10: parent 1: rate 1Mbit burst 2Kb lat 500ms \n',
    );
    expect(s.tc('class show dev a0')).toBe('class netem 1:1 parent 1: leaf 10: \nclass tbf 10:1 parent 10: \n');
    const t0 = s.a.time.nowNs();
    for (let i = 0; i < 10; i++) s.send();
    s.time.advance(1000);
    expect(s.departures.length).toBe(10);
    const rel = s.departures.map((d) => d - t0);
    // The 2 KiB bucket (16.384 ms) passes two frames at 10 ms, then one each 8 ms.
    expect(rel.slice(0, 2)).toEqual([10e6, 10e6]);
    expect(rel[2]).toBe(10e6 + 8e6 * 3 - 16.384e6);
    expect(new Set(gaps(s.departures).slice(2))).toEqual(new Set([8e6]));
    const q = s.ia.sched.root;
    expect([q.stats.packets, q.stats.qlen, q.stats.backlog]).toEqual([10, 0, 0]);
    // Without the child netem sends at once after the delay.
    s.tc('qdisc del dev a0 parent 1:1 handle 10:');
    expect(s.tc('class show dev a0')).toBe('');
    expect(s.tc('qdisc show dev a0')).not.toContain('tbf');
    s.departures.length = 0;
    const t1 = s.a.time.nowNs();
    for (let i = 0; i < 5; i++) s.send();
    s.time.advance(100);
    expect(s.departures.map((d) => d - t1)).toEqual([10e6, 10e6, 10e6, 10e6, 10e6]);
  });

  it('a child that holds 3000 bytes drops what does not fit once the delay is over', () => {
    const s = setup(62);
    s.tc('qdisc add dev a0 root handle 1: netem delay 5ms');
    s.tc('qdisc add dev a0 parent 1:1 handle 10: tbf rate 1mbit burst 1k limit 3000');
    for (let i = 0; i < 10; i++) s.send();
    s.time.advance(1000);
    // Every frame due moves into the child before any leaves (netem_dequeue): tbf takes three and drops the rest.
    expect(s.departures.length).toBe(3);
    const q = s.ia.sched.root;
    expect(q.stats.drops).toBe(7);
    expect([q.stats.qlen, q.stats.backlog]).toEqual([0, 0]);
  });
});

describe('rate as a share of the link speed (tc_util.c get_percent_rate64)', () => {
  it('reads /sys/class/net/DEV/speed as the link gives it, refusing a link that is down', () => {
    const s = setup(71);
    // A sim link without a rate reports what a TAP does: 10000 Mbit/s.
    s.tc('qdisc add dev a0 root handle 1: netem rate 50%');
    expect(s.tc('qdisc show dev a0')).toMatch(/^qdisc netem 1: root refcnt 2 limit 1000 rate 5Gbit seed \d+\n$/);
    s.da.impair = { rateBps: 100e6 };
    s.tc('qdisc del dev a0 root');
    s.tc('qdisc add dev a0 root handle 1: tbf rate 25% burst 10k latency 50ms');
    expect(s.tc('qdisc show dev a0')).toBe('qdisc tbf 1: root refcnt 2 rate 25Mbit burst 10Kb lat 50ms \n');
    s.a.setUp(s.ia, false);
    const r = runTc(s.env, 'qdisc replace dev a0 root handle 1: netem rate 50%'.split(' '));
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: 'property "speed" in file /sys/class/net/a0/speed is currently unknown\nFailed to parse /sys/class/net/a0/speed\nIllegal "rate"\n',
    });
    const r2 = runTc(s.env, 'qdisc replace dev a0 root handle 1: tbf rate 150% burst 10k latency 50ms'.split(' '));
    expect(r2.code).toBe(1);
    s.a.setUp(s.ia, true);
    const r3 = runTc(s.env, 'qdisc replace dev a0 root handle 1: tbf rate 150% burst 10k latency 50ms'.split(' '));
    expect(r3).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Invalid rate specified; should be between [0,100]% but is 150%\ntbf: illegal value for "rate": "150%"\n',
    });
  });
});
