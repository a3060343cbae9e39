import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ctlRun, sh, shOk, waitFor, type RunResult } from '../helpers/harness.js';

/**
 * Size tables, link layers, clsact and u32 hash tables on a live daemon: the
 * same `tc` lines on the stack's TAP device and on a kernel veth print the
 * same, and on live frames a clsact egress filter found through a u32 hash
 * bucket polices the stack's pings to the peer. Namespaces tstc-x and tstc-k,
 * subnets 10.233.20.0/24 (the stack) and 10.233.21.0/24 (the kernel veth).
 */

const TAG = `${process.pid % 10000}`;
const NS_STACK = `tstc-x${TAG}`;
const NS_K = `tstc-k${TAG}`;
const DEV = `tstcx${TAG}`;
const KDEV = `tstck${TAG}`;
const STACK_IP = '10.233.20.2';
const PEER_IP = '10.233.20.1';

describe('stab, link layers, clsact and u32 hash tables on a live daemon', () => {
  let dir = '';
  let daemon: ChildProcess | null = null;
  let ctl = '';

  const tapstack = (...argv: string[]): Promise<RunResult> => ctlRun(ctl, ...argv);

  /** Runs one tc line on both devices; both must take it. */
  async function both(line: string): Promise<void> {
    const r = await tapstack('tc', ...line.replace('DEV', DEV).split(' '));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    shOk(`ip netns exec ${NS_K} tc ${line.replace('DEV', KDEV)}`);
  }

  /** What a show line prints on both (the device names made equal). */
  async function show(line: string): Promise<[string, string]> {
    const ours = (await tapstack('tc', ...line.replace('DEV', DEV).split(' '))).stdout;
    const theirs = shOk(`ip netns exec ${NS_K} tc ${line.replace('DEV', KDEV)}`);
    return [ours, theirs.replaceAll(KDEV, DEV)];
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-tcx-'));
    ctl = path.join(dir, 'ctl.sock');
    const conf = path.join(dir, 'tapstack.conf');
    fs.writeFileSync(conf, [`link add ${DEV} type tap`, `addr add ${STACK_IP}/24 dev ${DEV}`].join('\n') + '\n');
    daemon = spawn(process.execPath, [CLI, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'ignore'] });
    await waitFor(() => fs.existsSync(ctl), 10_000);
    await waitFor(async () => (await tapstack('ip', 'link')).stdout.includes(DEV), 10_000);
    shOk(`ip netns add ${NS_STACK}`);
    shOk(`ip link set ${DEV} netns ${NS_STACK}`);
    shOk(`ip -n ${NS_STACK} addr add ${PEER_IP}/24 dev ${DEV}`);
    shOk(`ip -n ${NS_STACK} link set ${DEV} up`);
    shOk(`ip netns add ${NS_K}`);
    // No IPv6 on the kernel's veth: its router solicitations and MLD reports would go
    // out through the htb under test and count in direct_packets_stat.
    shOk(`ip netns exec ${NS_K} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1`);
    shOk(`ip -n ${NS_K} link add ${KDEV} type veth peer name ${KDEV}p`);
    shOk(`ip -n ${NS_K} addr add 10.233.21.1/24 dev ${KDEV}`);
    shOk(`ip -n ${NS_K} link set ${KDEV} up`);
    shOk(`ip -n ${NS_K} link set ${KDEV}p up`);
  }, 30_000);

  afterAll(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await waitFor(() => daemon!.exitCode !== null, 5000).catch(() => daemon!.kill('SIGKILL'));
    }
    for (const ns of [NS_STACK, NS_K]) sh(`ip netns del ${ns} 2>/dev/null`);
    sh(`ip link del ${DEV} 2>/dev/null`);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the kernel and the stack print the same size table, link layer and u32 hash tables', async () => {
    await both('qdisc add dev DEV root handle 1: stab overhead 24 linklayer atm mpu 64 htb default 10');
    await both('class add dev DEV parent 1: classid 1:10 htb rate 2mbit ceil 4mbit overhead 8 mpu 64 linklayer atm');
    await both('qdisc add dev DEV clsact');
    await both('filter add dev DEV egress prio 5 handle 2: protocol ip u32 divisor 256');
    await both('filter add dev DEV egress prio 5 protocol ip u32 ht 800:: match ip dst 10.233.0.0/16 hashkey mask 0x000000ff at 16 link 2:');
    await both('filter add dev DEV egress prio 5 protocol ip u32 ht 2:1: match ip dst 10.233.20.1 classid 1:10');
    try {
      for (const line of ['-d qdisc show dev DEV', '-d class show dev DEV', 'filter show dev DEV egress']) {
        const [ours, theirs] = await show(line);
        expect(ours.replace(/refcnt \d+ /, '')).toBe(theirs.replace(/refcnt \d+ /, ''));
      }
    } finally {
      // Gone on both whatever the outcome, so the next test starts from the default qdisc.
      for (const line of ['qdisc del dev DEV clsact', 'qdisc del dev DEV root']) {
        const r = await tapstack('tc', ...line.replace('DEV', DEV).split(' '));
        const k = sh(`ip netns exec ${NS_K} tc ${line.replace('DEV', KDEV)}`);
        expect([line, r.code, k.code]).toEqual([line, 0, 0]);
      }
    }
  }, 20_000);

  it('a police found through a u32 hash bucket on clsact egress drops the pings over its rate', async () => {
    const tc = async (line: string): Promise<string> => {
      const r = await tapstack('tc', ...line.replace('DEV', DEV).split(' '));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return r.stdout;
    };
    // Learn the peer's address first, so the pings are the only traffic policed.
    expect((await tapstack('ping', '-c', '1', '-W', '2', PEER_IP)).code).toBe(0);
    await tc('qdisc add dev DEV clsact');
    await tc('filter add dev DEV egress prio 1 handle 2: protocol ip u32 divisor 256');
    await tc('filter add dev DEV egress prio 1 protocol ip u32 match ip dst 10.233.20.0/24 hashkey mask 0x000000ff at 16 link 2:');
    // Bucket 1 is the peer (10.233.20.1): 8 kbit/s with room for one 98-byte echo (112 bytes with the Ethernet header).
    await tc(`filter add dev DEV egress prio 1 protocol ip u32 ht 2:1: match ip dst ${PEER_IP} action police rate 8kbit burst 150 conform-exceed drop`);
    const r = await tapstack('ping', '-c', '20', '-i', '0.01', '-W', '1', '-q', PEER_IP);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    expect(m).not.toBeNull();
    const received = Number(m![2]);
    // 20 echoes in 0.2 s: the bucket passes the first, 8 kbit/s refills one more 112-byte frame in 112 ms.
    expect(received).toBeGreaterThanOrEqual(1);
    expect(received).toBeLessThanOrEqual(3);
    const q = JSON.parse((await tapstack('tc', '-s', '-j', 'qdisc', 'show', 'dev', DEV)).stdout) as { kind: string; drops: number; packets: number }[];
    const cls = q.find((x) => x.kind === 'clsact')!;
    expect(cls.drops).toBe(20 - received);
    expect(cls.packets).toBeGreaterThanOrEqual(20);
    expect(await tc('-s filter show dev DEV egress')).toContain(`(dropped ${20 - received}, overlimits ${20 - received} requeues 0)`);
    await tc('qdisc del dev DEV clsact');
    const again = await tapstack('ping', '-c', '5', '-i', '0.01', '-W', '1', '-q', PEER_IP);
    expect(again.stdout).toContain('5 packets transmitted, 5 received');
  }, 20_000);
});
