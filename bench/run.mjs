#!/usr/bin/env node
// npm run bench: tapstack against references measured in the same run.
//
// Ping flood (ping -f -c N, one request outstanding at a time, so it measures
// per-packet latency through each responder):
//   stack   tapstack's daemon on a TAP device
//   c       bench/c-responder.c: epoll, one frame per read/write (the floor for a
//           userspace responder over TAP)
//   kernel  the kernel answering over a veth pair
// UDP (bench/udp-tool.c as the client for both):
//   echo     round trips per second, one 64-byte datagram outstanding, to the stack's
//            echo service and to a kernel echo server over veth
//   discard  1472-byte datagrams per second received by the stack's discard service
//            and by a kernel discard server (UdpInDatagrams before and after)
// Each target's kernel side sits in a namespace of its own. Rounds interleave the
// targets; the medians of the rounds are printed with the ratios.
//
// TCP (bench/tcp.mjs): the stack, pasta, slirp4netns and the kernel over veth side by
// side (iperf3, HTTP, new connections, ping), written also to bench/out/tcp.json and .svg.
// Many connections (bench/conns.mjs): 10,000 keep-alive connections, wrk -c 1000 and
// accept/close churn against the stack's HTTP server.
//
// Environment: BENCH_ROUNDS (default 5), BENCH_COUNT (pings per run, default 20000),
// BENCH_UDP_SECONDS (length of each UDP run, default 3).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tcpBench } from './tcp.mjs';
import { forwardBench } from './forward.mjs';
import { natBench } from './nat.mjs';
import { htbBench } from './tc-htb.mjs';
import { tcBench } from './tc.mjs';
import { lossBench } from './loss.mjs';
import { connsBench } from './conns.mjs';
import { harness, sh, waitFor, peerSide } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const COUNT = Number(process.env.BENCH_COUNT ?? 20000);
const UDP_SECONDS = Number(process.env.BENCH_UDP_SECONDS ?? 3);
// BENCH_SECTIONS: which parts to run, from ping,udp,tcp,conns,loss,forward,nat,htb,tc (default all).
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'ping,udp,tcp,conns,loss,forward,nat,htb,tc').split(','));
const { WORK, children, links, netns } = harness('tapstack-bench-');

if (process.getuid() !== 0) {
  console.error('bench: needs root (TAP devices and network namespaces): sudo npm run bench');
  process.exit(1);
}


async function setupStack() {
  const ns = netns('tsb-stack');
  const dev = 'tsbstk0';
  links.push(dev);
  const conf = path.join(WORK, 'stack.conf');
  fs.writeFileSync(
    conf,
    [`link add ${dev} type tap mac 02:00:00:00:b1:02`, `addr add 10.250.1.2/24 dev ${dev}`, 'service add echo udp :7', 'service add discard udp :9', ''].join('\n'),
  );
  const ctl = path.join(WORK, 'ctl.sock');
  const d = spawn(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(d);
  await waitFor(() => fs.existsSync(ctl) && sh(`ip link show ${dev}`, { allowFail: true }).length > 0, 10_000);
  peerSide(dev, ns, '10.250.1.1');
  const udpIn = () => {
    const out = sh(`${process.execPath} ${path.join(ROOT, 'dist/cli.js')} --ctl ${ctl} nstat -j -z`);
    return JSON.parse(out).kernel.UdpInDatagrams;
  };
  return { name: 'stack', ns, target: '10.250.1.2', pid: d.pid, udpIn };
}

async function setupC() {
  const bin = path.join(WORK, 'c-responder');
  execFileSync('cc', ['-O2', '-o', bin, path.join(ROOT, 'bench/c-responder.c')]);
  const ns = netns('tsb-c');
  const dev = 'tsbc0';
  links.push(dev);
  const p = spawn(bin, [dev, '10.250.2.2', '02:00:00:00:b2:02'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(p);
  await waitFor(() => sh(`ip link show ${dev}`, { allowFail: true }).length > 0, 5000);
  peerSide(dev, ns, '10.250.2.1');
  return { name: 'c', ns, target: '10.250.2.2', pid: p.pid };
}

function setupKernel() {
  const a = netns('tsb-ka');
  const b = netns('tsb-kb');
  sh(`ip link add tsbk0 netns ${a} type veth peer name tsbk1 netns ${b}`);
  sh(`ip -n ${a} addr add 10.250.3.1/24 dev tsbk0 && ip -n ${a} link set tsbk0 up`);
  sh(`ip -n ${b} addr add 10.250.3.2/24 dev tsbk1 && ip -n ${b} link set tsbk1 up`);
  for (const [mode, port] of [['echo', 7], ['discard', 9]]) {
    const p = spawn('ip', ['netns', 'exec', b, UDP_TOOL, mode, String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(p);
  }
  const udpIn = () => {
    const snmp = sh(`ip netns exec ${b} cat /proc/net/snmp`).split('\n').filter((l) => l.startsWith('Udp:'));
    const names = snmp[0].split(/\s+/);
    const vals = snmp[1].split(/\s+/);
    return Number(vals[names.indexOf('InDatagrams')]);
  };
  return { name: 'kernel', ns: a, target: '10.250.3.2', udpIn };
}

const UDP_TOOL = path.join(WORK, 'udp-tool');

/** UDP echo round trips per second through `t`'s echo service. */
function udpEcho(t) {
  const out = sh(`ip netns exec ${t.ns} ${UDP_TOOL} rr ${t.target} 7 64 ${UDP_SECONDS}`, { timeoutMs: (UDP_SECONDS + 30) * 1000 });
  const m = /round_trips (\d+) seconds ([\d.]+) timeouts (\d+)/.exec(out);
  if (!m) throw new Error(`unexpected udp-tool output for ${t.name}: ${out}`);
  return { rate: Number(m[1]) / Number(m[2]), timeouts: Number(m[3]) };
}

/** 1472-byte datagrams per second that `t`'s discard service received. */
async function udpDiscard(t) {
  const before = t.udpIn();
  const out = sh(`ip netns exec ${t.ns} ${UDP_TOOL} blast ${t.target} 9 1472 ${UDP_SECONDS}`, { timeoutMs: (UDP_SECONDS + 30) * 1000 });
  const m = /sent (\d+) seconds ([\d.]+)/.exec(out);
  if (!m) throw new Error(`unexpected udp-tool output for ${t.name}: ${out}`);
  // Let what is still queued arrive before counting.
  await new Promise((r) => setTimeout(r, 300));
  const got = t.udpIn() - before;
  return { rate: got / Number(m[2]), sent: Number(m[1]), got };
}

/** One flood: pings per second and mean RTT (µs), from ping's own summary. */
function flood(t, count) {
  const out = sh(`ip netns exec ${t.ns} ping -q -f -c ${count} -W 1 ${t.target}`, { allowFail: true, timeoutMs: 300_000 });
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
  const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(out);
  if (!m || !rtt) throw new Error(`unexpected ping output for ${t.name}:\n${out}`);
  const [sent, recv, ms] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return { rate: (recv * 1000) / Math.max(ms, 1), rttUs: Number(rtt[1]) * 1000, lost: sent - recv };
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid) {
  if (!pid) return 0;
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

async function main() {
  if (SECTIONS.has('ping') || SECTIONS.has('udp')) await pingAndUdp();
  if (SECTIONS.has('tcp')) await tcpBench({ sh, netns, peerSide, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt });
  if (SECTIONS.has('conns')) await connsBench({ sh, netns, peerSide, waitFor, children, links, WORK, ROOT, fmt });
  if (SECTIONS.has('forward')) {
    if (!fs.existsSync(UDP_TOOL)) execFileSync('cc', ['-O2', '-o', UDP_TOOL, path.join(ROOT, 'bench/udp-tool.c')]);
    await forwardBench({ sh, netns, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt, udpTool: UDP_TOOL });
  }
  if (SECTIONS.has('nat')) {
    if (!fs.existsSync(UDP_TOOL)) execFileSync('cc', ['-O2', '-o', UDP_TOOL, path.join(ROOT, 'bench/udp-tool.c')]);
    await natBench({ sh, netns, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt, udpTool: UDP_TOOL });
  }
  if (SECTIONS.has('htb')) await htbBench({ ROOT, ROUNDS, median, fmt });
  if (SECTIONS.has('tc')) await tcBench({ sh, netns, waitFor, children, links, WORK, ROOT, fmt });
  if (SECTIONS.has('loss')) await lossBench({ sh, netns, waitFor, children, links, WORK, ROOT, fmt, median });
}

async function pingAndUdp() {
  execFileSync('cc', ['-O2', '-o', UDP_TOOL, path.join(ROOT, 'bench/udp-tool.c')]);
  const targets = [await setupStack(), await setupC(), setupKernel()];
  if (!SECTIONS.has('ping')) return udpSection(targets);
  // Warm up (ARP, JIT) before measuring.
  for (const t of targets) flood(t, 2000);
  const results = Object.fromEntries(targets.map((t) => [t.name, { rate: [], rtt: [], lost: 0, cpu: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      const c0 = cpuSeconds(t.pid);
      const f = flood(t, COUNT);
      const c1 = cpuSeconds(t.pid);
      const res = results[t.name];
      res.rate.push(f.rate);
      res.rtt.push(f.rttUs);
      res.lost += f.lost;
      if (t.pid) res.cpu.push(((c1 - c0) * 1e6) / COUNT);
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }
  const med = Object.fromEntries(targets.map((t) => [t.name, median(results[t.name].rate)]));
  console.log(`\nping -f -c ${COUNT}, medians of ${ROUNDS} rounds (${os.cpus().length} cores, Node ${process.version})\n`);
  console.log('target    pings/s    mean RTT µs   lost   CPU µs/ping   vs c-responder   vs kernel');
  for (const t of targets) {
    const r = results[t.name];
    const cpu = r.cpu.length ? fmt(median(r.cpu), 1) : '-';
    console.log(
      `${t.name.padEnd(8)} ${fmt(med[t.name]).padStart(8)}  ${fmt(median(r.rtt), 1).padStart(12)}  ${String(r.lost).padStart(5)}  ${cpu.padStart(12)}  ${(fmt((100 * med[t.name]) / med.c, 1) + '%').padStart(15)}  ${(fmt((100 * med[t.name]) / med.kernel, 1) + '%').padStart(10)}`,
    );
  }
  console.log(`\nstack / c-responder = ${(med.stack / med.c).toFixed(3)}; stack / kernel = ${(med.stack / med.kernel).toFixed(3)}`);
  console.log(`per-round pings/s: ${targets.map((t) => `${t.name} [${results[t.name].rate.map((x) => fmt(x)).join(', ')}]`).join('; ')}`);

  if (SECTIONS.has('udp')) await udpSection(targets);
}

/** UDP: the stack's services against the kernel's servers. */
async function udpSection(targets) {
  const udpTargets = targets.filter((t) => t.udpIn);
  udpEcho(udpTargets[0]);
  const udp = Object.fromEntries(udpTargets.map((t) => [t.name, { echo: [], discard: [], sent: [], timeouts: 0 }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of udpTargets) {
      const e = udpEcho(t);
      udp[t.name].echo.push(e.rate);
      udp[t.name].timeouts += e.timeouts;
      const d = await udpDiscard(t);
      udp[t.name].discard.push(d.rate);
      udp[t.name].sent.push(d.sent / UDP_SECONDS);
    }
    process.stderr.write(`udp round ${r + 1}/${ROUNDS} done\n`);
  }
  const echoK = median(udp.kernel.echo);
  const discK = median(udp.kernel.discard);
  console.log(`\nUDP, ${UDP_SECONDS} s runs, medians of ${ROUNDS} rounds\n`);
  console.log('target    echo round trips/s   timeouts   discard 1472 B dgrams/s   (offered/s)   echo vs kernel   discard vs kernel');
  for (const t of udpTargets) {
    const u = udp[t.name];
    const e = median(u.echo);
    const d = median(u.discard);
    console.log(
      `${t.name.padEnd(8)} ${fmt(e).padStart(19)}  ${String(u.timeouts).padStart(9)}  ${fmt(d).padStart(24)}  ${fmt(median(u.sent)).padStart(12)}  ${(fmt((100 * e) / echoK, 1) + '%').padStart(15)}  ${(fmt((100 * d) / discK, 1) + '%').padStart(18)}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`bench: ${e.message}`);
    process.exit(1);
  },
);
