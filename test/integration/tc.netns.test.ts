import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { CLI, ctlRun, sh, shAsync, shOk, waitFor, type RunResult } from '../helpers/harness.js';

/**
 * tbf on live frames, the stack and the kernel side by side: the same `tc`
 * line on the stack's TAP device (through `tapstack tc`) and on a kernel veth,
 * the same TCP bulk transfer through each (iperf3), and the rates the
 * receivers saw compared with the configured one. Namespaces tstc-*, subnets
 * 10.231.90.0/24 (the stack) and 10.231.91.0/24 (the kernel pair). TCP (iperf3) and
 * UDP (a paced sender, test/helpers/udp-pace.py).
 */

const TAG = `${process.pid % 10000}`;
const NS_STACK = `tstc-s${TAG}`;
const NS_K1 = `tstc-a${TAG}`;
const NS_K2 = `tstc-b${TAG}`;
const DEV = `tstc${TAG}`;
const STACK_IP = '10.231.90.2';
const PEER_IP = '10.231.90.1';

interface IperfEnd {
  error?: string;
}

describe('tbf on live frames, stack and kernel in the same run', () => {
  let dir = '';
  let daemon: ChildProcess | null = null;
  let ctl = '';
  let log = '';

  const tapstack = (...argv: string[]): Promise<RunResult> => ctlRun(ctl, ...argv);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-tc-'));
    ctl = path.join(dir, 'ctl.sock');
    const conf = path.join(dir, 'tapstack.conf');
    fs.writeFileSync(conf, [`link add ${DEV} type tap`, `addr add ${STACK_IP}/24 dev ${DEV}`, 'service add echo udp :7'].join('\n') + '\n');
    daemon = spawn(process.execPath, [CLI, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    daemon.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    await waitFor(() => fs.existsSync(ctl), 10_000);
    await waitFor(async () => (await tapstack('ip', 'link')).stdout.includes(DEV), 10_000);
    shOk(`ip netns add ${NS_STACK}`);
    shOk(`ip link set ${DEV} netns ${NS_STACK}`);
    shOk(`ip -n ${NS_STACK} addr add ${PEER_IP}/24 dev ${DEV}`);
    shOk(`ip -n ${NS_STACK} link set ${DEV} up`);
    shOk(`ip -n ${NS_STACK} link set lo up`);
    // The kernel pair: tstc-a (sender, tbf on its veth) and tstc-b (receiver).
    shOk(`ip netns add ${NS_K1}`);
    shOk(`ip netns add ${NS_K2}`);
    shOk(`ip -n ${NS_K1} link add tstck1 type veth peer name tstck2 netns ${NS_K2}`);
    shOk(`ip -n ${NS_K1} addr add 10.231.91.1/24 dev tstck1`);
    shOk(`ip -n ${NS_K2} addr add 10.231.91.2/24 dev tstck2`);
    for (const [ns, d] of [[NS_K1, 'tstck1'], [NS_K2, 'tstck2']]) {
      shOk(`ip -n ${ns} link set ${d} up`);
      shOk(`ip -n ${ns} link set lo up`);
      // No offloads: the kernel's tbf then shapes frames of the same size as the stack's.
      sh(`ip netns exec ${ns} ethtool -K ${d} tso off gso off gro off 2>/dev/null`);
    }
    // iperf3 servers: one for the stack's client, one for the kernel's.
    shOk(`ip netns exec ${NS_STACK} sh -c 'iperf3 -s -D -B ${PEER_IP} --pidfile ${dir}/s.pid'`);
    shOk(`ip netns exec ${NS_K2} sh -c 'iperf3 -s -D -B 10.231.91.2 --pidfile ${dir}/k.pid'`);
    await waitFor(() => fs.existsSync(`${dir}/s.pid`) && fs.existsSync(`${dir}/k.pid`), 5000);
  }, 30_000);

  afterAll(async () => {
    for (const f of ['s.pid', 'k.pid']) {
      const p = path.join(dir, f);
      if (fs.existsSync(p)) sh(`kill ${fs.readFileSync(p, 'utf8').trim()}`);
    }
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await waitFor(() => daemon!.exitCode !== null, 5000).catch(() => daemon!.kill('SIGKILL'));
    }
    for (const ns of [NS_STACK, NS_K1, NS_K2]) sh(`ip netns del ${ns} 2>/dev/null`);
    sh(`ip link del ${DEV} 2>/dev/null`);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Bytes the device `dev` in `ns` has received (frames with their Ethernet header, as tbf counts them). */
  function rxBytes(ns: string, dev: string): number {
    return Number(shOk(`ip netns exec ${ns} cat /sys/class/net/${dev}/statistics/rx_bytes`).trim());
  }

  /**
   * Runs `transfer` (a TCP bulk transfer of 5 s) and measures the receiver's
   * wire rate from 1.5 s to 4.5 s, after slow start and before the end.
   */
  async function measure(transfer: Promise<unknown>, ns: string, dev: string): Promise<number> {
    await new Promise((r) => setTimeout(r, 1500));
    // Each reading is timed when it returns: `cat` reads the counter just before it
    // exits, while starting it (fork, exec, entering the namespace) can take a slice of
    // a 64 kbit/s window on a busy machine.
    const b0 = rxBytes(ns, dev);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const b1 = rxBytes(ns, dev);
    const t1 = performance.now();
    await transfer;
    return ((b1 - b0) * 8) / ((t1 - t0) / 1000);
  }

  async function stackRate(secs: number): Promise<number> {
    const run = tapstack('iperf3', '-c', PEER_IP, '-t', String(secs), '-J').then((r) => {
      const j = JSON.parse(r.stdout) as IperfEnd;
      if (r.code !== 0 || j.error) throw new Error(`tapstack iperf3: ${j.error ?? r.stderr}\n${log}`);
    });
    return measure(run, NS_STACK, DEV);
  }

  async function kernelRate(secs: number): Promise<number> {
    const run = shAsync(`ip netns exec ${NS_K1} iperf3 -c 10.231.91.2 -t ${secs} -J`, 60_000).then((r) => {
      const j = JSON.parse(r.stdout) as IperfEnd;
      if (r.code !== 0 || j.error) throw new Error(`iperf3: ${j.error ?? r.stderr}`);
    });
    return measure(run, NS_K2, 'tstck2');
  }

  for (const [rate, burst, bps] of [
    ['10mbit', '10k', 10e6],
    ['100mbit', '64k', 100e6],
  ] as const) {
    it(`tc qdisc add ... tbf rate ${rate}: both deliver the rate within 3%`, async () => {
      const line = `qdisc replace dev DEV root handle 1: tbf rate ${rate} burst ${burst} latency 50ms`;
      const r = await tapstack('tc', ...line.replace('DEV', DEV).split(' '));
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      shOk(`ip netns exec ${NS_K1} tc ${line.replace('DEV', 'tstck1')}`);
      // Both show the same qdisc line (the kernel's device name aside).
      const ours = (await tapstack('tc', 'qdisc', 'show', 'dev', DEV)).stdout;
      const theirs = shOk(`ip netns exec ${NS_K1} tc qdisc show dev tstck1`);
      expect(ours.replace(/refcnt \d+ /, '')).toBe(theirs.replace(/refcnt \d+ /, ''));
      const stack = await stackRate(5);
      const kernel = await kernelRate(5);
      console.log(`tbf ${rate}: stack ${(stack / 1e6).toFixed(2)} Mbit/s, kernel ${(kernel / 1e6).toFixed(2)} Mbit/s (on the wire)`);
      // The rate within 3%, as the kernel delivers it. When the machine is too busy for the
      // kernel's own TCP to keep the rate in this run (94-96% of 100 Mbit/s was seen with
      // the rest of the suite on both cores), the stack is held to the kernel's figure.
      expect(stack).toBeLessThan(bps * 1.03);
      if (Math.abs(kernel / bps - 1) < 0.03) expect(Math.abs(stack / bps - 1)).toBeLessThan(0.03);
      else {
        expect(kernel).toBeLessThan(bps);
        expect(stack / kernel).toBeGreaterThan(0.97);
      }
    }, 60_000);
  }

  // UDP through the same shapers, at 64 kbit/s too: a paced sender offers twice the
  // rate. On the stack the shaped traffic is its echo service's answers; on the kernel,
  // the datagrams themselves on their way from tstc-a to tstc-b.
  const PACER = path.join(path.dirname(fileURLToPath(import.meta.url)), '../helpers/udp-pace.py');
  for (const [rate, burst, bps, size] of [
    ['10mbit', '10k', 10e6, 1000],
    ['64kbit', '1600', 64e3, 200],
  ] as const) {
    it(`tc qdisc add ... tbf rate ${rate}: UDP at twice the rate leaves at the rate, on both`, async () => {
      const line = `qdisc replace dev DEV root handle 1: tbf rate ${rate} burst ${burst} latency 50ms`;
      expect((await tapstack('tc', ...line.replace('DEV', DEV).split(' '))).code).toBe(0);
      shOk(`ip netns exec ${NS_K1} tc ${line.replace('DEV', 'tstck1')}`);
      const pace = (ns: string, host: string, port: number) =>
        shAsync(`ip netns exec ${ns} /usr/bin/python3 ${PACER} ${host} ${port} ${size} ${2 * bps} 5`, 30_000).then((r) => {
          if (r.code !== 0) throw new Error(`udp-pace: ${r.stderr}`);
        });
      const stack = await measure(pace(NS_STACK, STACK_IP, 7), NS_STACK, DEV);
      const kernel = await measure(pace(NS_K1, '10.231.91.2', 9), NS_K2, 'tstck2');
      console.log(`tbf ${rate} UDP: stack ${(stack / 1e3).toFixed(1)} kbit/s, kernel ${(kernel / 1e3).toFixed(1)} kbit/s (on the wire)`);
      expect(Math.abs(stack / bps - 1)).toBeLessThan(0.03);
      expect(Math.abs(kernel / bps - 1)).toBeLessThan(0.03);
      // What the shaper could not send it dropped, and tc -s says so.
      const q = JSON.parse((await tapstack('tc', '-s', '-j', 'qdisc', 'show', 'dev', DEV)).stdout) as { kind: string; drops: number }[];
      expect(q.find((x) => x.kind === 'tbf')!.drops).toBeGreaterThan(0);
    }, 60_000);
  }

  it('tc -s counts what ip -s link counts', async () => {
    const link = async () => {
      const l = JSON.parse((await tapstack('ip', '-j', '-s', 'link')).stdout) as { ifname: string; stats64: { tx: { bytes: number; packets: number } } }[];
      return l.find((x) => x.ifname === DEV)!.stats64.tx;
    };
    // A fresh qdisc starts from zero; what it sends from then on is what the device sent.
    expect((await tapstack('tc', 'qdisc', 'replace', 'dev', DEV, 'root', 'handle', '2:', 'tbf', 'rate', '20mbit', 'burst', '20k', 'latency', '20ms')).code).toBe(0);
    const before = await link();
    await tapstack('iperf3', '-c', PEER_IP, '-t', '1');
    await new Promise((r) => setTimeout(r, 300));
    const after = await link();
    const q = JSON.parse((await tapstack('tc', '-s', '-j', 'qdisc', 'show', 'dev', DEV)).stdout) as { kind: string; bytes: number; packets: number; drops: number }[];
    const tbf = q.find((x) => x.kind === 'tbf')!;
    expect(tbf.packets).toBeGreaterThan(1000);
    expect(tbf.bytes).toBe(after.bytes - before.bytes);
    expect(tbf.packets).toBe(after.packets - before.packets);
    // Back to the default qdisc.
    expect((await tapstack('tc', 'qdisc', 'del', 'dev', DEV, 'root')).code).toBe(0);
    expect((await tapstack('tc', 'qdisc', 'show', 'dev', DEV)).stdout).toBe('qdisc pfifo_fast 0: root refcnt 2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n');
  }, 30_000);
});
