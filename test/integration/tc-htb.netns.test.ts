import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sh, shAsync, shOk, Testbed, waitFor } from '../helpers/harness.js';

/**
 * htb and policing on live frames. The same tc lines shape the stack's TAP
 * device (10.231.95.0/24, peer in tstch-*) and a kernel veth between two
 * namespaces (tstch-k1 10.231.96.1 → tstch-k2 10.231.96.2), and the rates
 * iperf3 measures over TCP are compared; ingress policing is measured by
 * how many of a ping flood's requests get through.
 */
const K1 = 'tstch-k1';
const K2 = 'tstch-k2';
const kIn = (ns: string, cmd: string): string => `ip netns exec ${ns} ${cmd}`;

interface IperfEnd {
  end: { sum_received: { bits_per_second: number } };
  error?: string;
}

describe('htb and police on live frames, against the kernel', () => {
  let tb: Testbed | undefined;

  beforeAll(async () => {
    for (const ns of [K1, K2]) sh(`ip netns del ${ns} 2>/dev/null`);
    tb = await Testbed.start({ type: 'tap', subnet: 95, nsPrefix: 'tstch-' });
    shOk(`ip netns add ${K1}`);
    shOk(`ip netns add ${K2}`);
    shOk(`ip -n ${K1} link add tstch-v1 type veth peer name tstch-v2 netns ${K2}`);
    shOk(`ip -n ${K1} addr add 10.231.96.1/24 dev tstch-v1`);
    shOk(`ip -n ${K2} addr add 10.231.96.2/24 dev tstch-v2`);
    for (const [ns, d] of [[K1, 'tstch-v1'], [K2, 'tstch-v2']]) {
      shOk(`ip -n ${ns} link set ${d} up`);
      shOk(`ip -n ${ns} link set lo up`);
      // No offloads: the kernel's htb then charges the frames the wire carries, one by one.
      sh(`ip netns exec ${ns} ethtool -K ${d} tso off gso off gro off 2>/dev/null`);
    }
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
    expect(sh(kIn(K1, 'ping -c 1 -W 2 10.231.96.2')).code).toBe(0);
  }, 30_000);

  afterAll(async () => {
    await tb?.close();
    for (const ns of [K1, K2]) sh(`ip netns del ${ns} 2>/dev/null`);
  });

  /** Runs `tc LINE` on the stack (for its device) and on the kernel's tstch-v1; both must succeed. */
  async function tcBoth(line: string): Promise<void> {
    const t = tb as Testbed;
    const r = await t.ctlRun('tc', ...line.replace('DEV', t.dev).split(' '));
    expect([line, r.code, r.stderr.replace(/^Warning: .*\n/, '')]).toEqual([line, 0, '']);
    const k = sh(kIn(K1, `tc ${line.replace('DEV', 'tstch-v1')}`));
    expect([line, k.code]).toEqual([line, 0]);
    // Both print the same warning (or none).
    expect(k.stderr).toBe(r.stderr);
  }

  /** Mbit/s received by a kernel iperf3 server from the stack's iperf3 client (TCP, `secs` s). */
  async function stackRate(port: number, secs: number): Promise<number> {
    const t = tb as Testbed;
    const srv = t.peerAsync(`iperf3 -s -1 -p ${port}`, 60_000);
    await waitFor(() => t.peer('ss -tln').stdout.includes(`:${port}`), 5000);
    const r = await t.ctlRun('iperf3', '-c', t.peerIp, '-p', String(port), '-t', String(secs), '-J');
    await srv;
    const j = JSON.parse(r.stdout) as IperfEnd;
    if (j.error !== undefined) throw new Error(j.error);
    return j.end.sum_received.bits_per_second / 1e6;
  }

  /** The same between the two kernel namespaces, shaped on tstch-v1. */
  async function kernelRate(port: number, secs: number): Promise<number> {
    const s = sh(kIn(K2, `iperf3 -s -1 -D -p ${port}`));
    expect(s.code).toBe(0);
    await waitFor(() => sh(kIn(K2, 'ss -tln')).stdout.includes(`:${port}`), 5000);
    const r = sh(kIn(K1, `iperf3 -c 10.231.96.2 -p ${port} -t ${secs} -J`), { timeoutMs: 60_000 });
    const j = JSON.parse(r.stdout) as IperfEnd;
    if (j.error !== undefined) throw new Error(j.error);
    return j.end.sum_received.bits_per_second / 1e6;
  }

  it('one class at 10mbit: the stack and the kernel deliver the same rate', async () => {
    await tcBoth('qdisc add dev DEV root handle 1: htb default 10');
    await tcBoth('class add dev DEV parent 1: classid 1:1 htb rate 20mbit');
    await tcBoth('class add dev DEV parent 1:1 classid 1:10 htb rate 10mbit ceil 10mbit');
    const s = await stackRate(5311, 5);
    const k = await kernelRate(5312, 5);
    console.log(`htb 10mbit: stack ${s.toFixed(2)} Mbit/s, kernel ${k.toFixed(2)} Mbit/s`);
    // TCP goodput under a 10 Mbit/s frame rate: 1448 of each 1514 bytes at most.
    expect(s).toBeGreaterThan(10 * 0.9);
    expect(s).toBeLessThan(10 * (1448 / 1514) * 1.03);
    expect(Math.abs(s - k) / k).toBeLessThan(0.03);
    const show = (await (tb as Testbed).ctlRun('tc', '-s', 'class', 'show', 'dev', (tb as Testbed).dev, 'classid', '1:10')).stdout;
    expect(show).toMatch(/^class htb 1:10 parent 1:1 prio 0 rate 10Mbit ceil 10Mbit burst 1600b cburst 1600b \n Sent \d{7,} bytes/);
  }, 60_000);

  it('a child at 2mbit borrows up to its 8mbit ceil, as on the kernel', async () => {
    await tcBoth('class change dev DEV parent 1:1 classid 1:10 htb rate 2mbit ceil 8mbit');
    const s = await stackRate(5313, 5);
    const k = await kernelRate(5314, 5);
    console.log(`htb 2mbit ceil 8mbit: stack ${s.toFixed(2)} Mbit/s, kernel ${k.toFixed(2)} Mbit/s`);
    expect(s).toBeGreaterThan(8 * 0.9);
    expect(Math.abs(s - k) / k).toBeLessThan(0.03);
    const st = (await (tb as Testbed).ctlRun('tc', '-s', 'class', 'show', 'dev', (tb as Testbed).dev, 'classid', '1:10')).stdout;
    expect(Number(/borrowed: (\d+)/.exec(st)![1])).toBeGreaterThan(0);
  }, 60_000);

  it('100mbit: the stack and the kernel deliver the same rate', async () => {
    await tcBoth('class change dev DEV parent 1: classid 1:1 htb rate 200mbit');
    await tcBoth('class change dev DEV parent 1:1 classid 1:10 htb rate 100mbit ceil 100mbit');
    const s = await stackRate(5315, 4);
    const k = await kernelRate(5316, 4);
    console.log(`htb 100mbit: stack ${s.toFixed(2)} Mbit/s, kernel ${k.toFixed(2)} Mbit/s`);
    expect(s).toBeGreaterThan(100 * 0.9);
    expect(s).toBeLessThan(100 * 1.03);
    // The kernel's TCP normally delivers 95.6 of the 100 Mbit/s here (headers take the
    // rest). When the machine is too busy for it to reach 95 in this run (90.8 was seen
    // with the rest of the suite on both cores), the stack is held to the kernel's figure
    // from below only.
    if (k > 95) expect(Math.abs(s - k) / k).toBeLessThan(0.03);
    else expect(s / k).toBeGreaterThan(0.97);
  }, 60_000);

  it('two flows split by u32 onto 7mbit and 3mbit children of a 10mbit parent, on both', async () => {
    await tcBoth('class change dev DEV parent 1: classid 1:1 htb rate 10mbit');
    await tcBoth('class change dev DEV parent 1:1 classid 1:10 htb rate 7mbit ceil 10mbit');
    await tcBoth('class add dev DEV parent 1:1 classid 1:20 htb rate 3mbit ceil 10mbit');
    await tcBoth('filter add dev DEV parent 1: protocol ip prio 1 u32 match ip dport 5321 0xffff flowid 1:10');
    await tcBoth('filter add dev DEV parent 1: protocol ip prio 1 u32 match ip dport 5322 0xffff flowid 1:20');
    const [s1, s2] = await Promise.all([stackRate(5321, 5), stackRate(5322, 5)]);
    const kp = [5321, 5322].map((port) => sh(kIn(K2, `iperf3 -s -1 -D -p ${port}`)));
    for (const r of kp) expect(r.code).toBe(0);
    await waitFor(() => {
      const ss = sh(kIn(K2, 'ss -tln')).stdout;
      return ss.includes(':5321') && ss.includes(':5322');
    }, 5000);
    const kr = await Promise.all(
      [5321, 5322].map((port) => shAsync(kIn(K1, `iperf3 -c 10.231.96.2 -p ${port} -t 5 -J`), 60_000)),
    );
    const [k1, k2] = kr.map((r) => (JSON.parse(r.stdout) as IperfEnd).end.sum_received.bits_per_second / 1e6);
    console.log(`htb 7+3 of 10mbit: stack ${s1.toFixed(2)} + ${s2.toFixed(2)}, kernel ${k1.toFixed(2)} + ${k2.toFixed(2)} Mbit/s`);
    // Each flow within 10% of its share of the goodput (1448/1514 of the frame rate), on both.
    const g = 1448 / 1514;
    for (const [x, want] of [[s1, 7 * g], [s2, 3 * g], [k1, 7 * g], [k2, 3 * g]]) {
      expect(x).toBeGreaterThan(want * 0.9);
      expect(x).toBeLessThan(want * 1.1);
    }
    await tcBoth('qdisc del dev DEV root');
  }, 60_000);

  it('ingress police rate 1mbit burst 10k drops what a 2 Mbit/s ping flood sends beyond it', async () => {
    const t = tb as Testbed;
    for (const line of [
      `qdisc add dev ${t.dev} ingress`,
      `filter add dev ${t.dev} parent ffff: protocol ip prio 1 u32 match ip src ${t.peerIp}/32 action police rate 1mbit burst 10k conform-exceed drop flowid :1`,
    ]) {
      const r = await t.ctlRun('tc', ...line.split(' '));
      expect([line, r.code, r.stderr]).toEqual([line, 0, '']);
    }
    // 1000-byte IP packets (972 bytes of ICMP data) every 4 ms for 4 s: 2 Mbit/s.
    const out = t.peer(`ping -q -s 972 -i 0.004 -c 1000 -W 1 ${t.stackIp}`, { timeoutMs: 30_000 }).stdout;
    const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(out);
    expect(m).not.toBeNull();
    const got = Number(m![2]);
    // ping takes `time` ms to send them (somewhat more than 4 s): 125000 B/s over that plus the 10 KiB bucket, in 1000-byte requests.
    const secs = Number(m![3]) / 1000;
    const want = Math.min(1000, (secs * 125000 + 10240) / 1000);
    console.log(`police: ${got} of 1000 passed in ${secs} s (rate and burst allow ${want.toFixed(0)})`);
    expect(want).toBeLessThan(900);
    expect(got).toBeGreaterThan(want * 0.95);
    expect(got).toBeLessThan(want * 1.05);
    const ls = await t.ctlRun('tc', '-s', 'filter', 'show', 'dev', t.dev, 'parent', 'ffff:');
    expect(ls.stdout).toContain(' police 0x1 rate 1Mbit burst 10Kb mtu 2Kb action drop overhead 0b \n\tref 1 bind 1 \n');
    const acts = await t.ctlRun('tc', '-s', 'actions', 'ls', 'action', 'police');
    const d = /dropped (\d+), overlimits (\d+)/.exec(acts.stdout);
    expect(Number(d![1])).toBe(1000 - got - 0);
    expect((await t.ctlRun('tc', 'qdisc', 'del', 'dev', t.dev, 'ingress')).code).toBe(0);
    const after = t.peer(`ping -q -s 972 -i 0.004 -c 200 -W 1 ${t.stackIp}`).stdout;
    expect(after).toContain('200 received');
  }, 60_000);
});
