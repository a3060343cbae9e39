// tc section of `npm run bench`: shaping accuracy of tbf, the stack's and the
// kernel's in the same run. The same line
//
//   tc qdisc replace dev DEV root handle 1: tbf rate R burst B latency 50ms
//
// goes on the stack's TAP device (`tapstack tc`) and on a kernel veth; a TCP
// bulk transfer (the stack's `tapstack iperf3 -c` / the kernel's iperf3) runs
// BENCH_TC_SECONDS through each, and the receiver's wire rate (rx_bytes of its
// device, frames with their Ethernet header as tbf counts them) is measured
// from 1.5 s in until 1 s before the end. Printed: configured rate, measured
// rate and their ratio, for 10 Mbit/s, 100 Mbit/s and 1 Gbit/s.
//
//   stack   tsb-tc (10.250.90.1, iperf3 -s) -- tsbtc [daemon, 10.250.90.2]
//   kernel  tsb-tca (10.250.91.1, tbf on tsbtca) -- tsb-tcb (10.250.91.2, iperf3 -s)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SECONDS = Number(process.env.BENCH_TC_SECONDS ?? 5);
const ALL_RATES = [
  ['10mbit', '10k', 10e6],
  ['100mbit', '64k', 100e6],
  ['1gbit', '512k', 1e9],
];
// BENCH_TC_RATES: a comma-separated subset (e.g. 10mbit,1gbit).
const RATES = process.env.BENCH_TC_RATES ? ALL_RATES.filter(([r]) => process.env.BENCH_TC_RATES.split(',').includes(r)) : ALL_RATES;

export async function tcBench(ctx) {
  const { sh, netns, waitFor, children, links, WORK, ROOT, fmt } = ctx;
  const cli = path.join(ROOT, 'dist/cli.js');
  const ctl = path.join(WORK, 'tc-ctl.sock');
  const conf = path.join(WORK, 'tc.conf');
  fs.writeFileSync(conf, ['link add tsbtc type tap', 'addr add 10.250.90.2/24 dev tsbtc', ''].join('\n'));
  const d = spawn(process.execPath, [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: 'ignore' });
  children.push(d);
  links.push('tsbtc');
  await waitFor(() => fs.existsSync(ctl) && sh(`${process.execPath} ${cli} --ctl ${ctl} ip link`, { allowFail: true }).includes('tsbtc'), 10_000);
  const tapstack = (args, opts) => sh(`${process.execPath} ${cli} --ctl ${ctl} ${args}`, opts);
  const sn = netns('tsb-tc');
  sh(`ip link set tsbtc netns ${sn}`);
  sh(`ip -n ${sn} addr add 10.250.90.1/24 dev tsbtc && ip -n ${sn} link set tsbtc up`);

  const ka = netns('tsb-tca');
  const kb = netns('tsb-tcb');
  sh(`ip link add tsbtca netns ${ka} type veth peer name tsbtcb netns ${kb}`);
  sh(`ip -n ${ka} addr add 10.250.91.1/24 dev tsbtca && ip -n ${ka} link set tsbtca up`);
  sh(`ip -n ${kb} addr add 10.250.91.2/24 dev tsbtcb && ip -n ${kb} link set tsbtcb up`);
  // No segmentation offloads on the kernel's pair: its tbf shapes frames of the stack's size.
  for (const [ns, dev] of [[ka, 'tsbtca'], [kb, 'tsbtcb']]) sh(`ip netns exec ${ns} ethtool -K ${dev} tso off gso off gro off`, { allowFail: true });
  children.push(spawn('ip', ['netns', 'exec', sn, 'iperf3', '-s', '-B', '10.250.90.1'], { stdio: 'ignore' }));
  children.push(spawn('ip', ['netns', 'exec', kb, 'iperf3', '-s', '-B', '10.250.91.2'], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 500));

  const rx = (ns, dev) => Number(sh(`ip netns exec ${ns} cat /sys/class/net/${dev}/statistics/rx_bytes`).trim());
  const run = (cmd) =>
    new Promise((resolve) => {
      const c = spawn('sh', ['-c', cmd], { stdio: 'ignore' });
      c.on('exit', resolve);
    });
  async function measure(cmd, ns, dev) {
    const done = run(cmd);
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = performance.now();
    const b0 = rx(ns, dev);
    await new Promise((r) => setTimeout(r, (SECONDS - 2.5) * 1000));
    const t1 = performance.now();
    const b1 = rx(ns, dev);
    await done;
    return ((b1 - b0) * 8) / ((t1 - t0) / 1000);
  }

  console.log(`\ntc: tbf shaping accuracy (TCP for ${SECONDS} s, receiver's wire rate from 1.5 s to ${SECONDS - 1} s)`);
  console.log('  configured      stack (ratio)              kernel (ratio)');
  for (const [rate, burst, bps] of RATES) {
    const line = (dev) => `qdisc replace dev ${dev} root handle 1: tbf rate ${rate} burst ${burst} latency 50ms`;
    tapstack(`tc ${line('tsbtc')}`);
    sh(`ip netns exec ${ka} tc ${line('tsbtca')}`);
    const stack = await measure(`${process.execPath} ${cli} --ctl ${ctl} iperf3 -c 10.250.90.1 -t ${SECONDS}`, sn, 'tsbtc');
    const kernel = await measure(`ip netns exec ${ka} iperf3 -c 10.250.91.2 -t ${SECONDS}`, kb, 'tsbtcb');
    const cell = (x) => `${fmt(x / 1e6, 2).padStart(9)} Mbit/s (${fmt(x / bps, 3)})`;
    console.log(`  ${`${fmt(bps / 1e6)} Mbit/s`.padEnd(14)}${cell(stack).padEnd(27)}${cell(kernel)}`);
  }
  // The ceiling: the same transfers with the default qdiscs (no shaping).
  tapstack('tc qdisc del dev tsbtc root', { allowFail: true });
  sh(`ip netns exec ${ka} tc qdisc del dev tsbtca root`, { allowFail: true });
  const stack = await measure(`${process.execPath} ${cli} --ctl ${ctl} iperf3 -c 10.250.90.1 -t ${SECONDS}`, sn, 'tsbtc');
  const kernel = await measure(`ip netns exec ${ka} iperf3 -c 10.250.91.2 -t ${SECONDS}`, kb, 'tsbtcb');
  console.log(`  ${'unshaped'.padEnd(14)}${`${fmt(stack / 1e6, 2).padStart(9)} Mbit/s`.padEnd(27)}${fmt(kernel / 1e6, 2).padStart(9)} Mbit/s`);
}
