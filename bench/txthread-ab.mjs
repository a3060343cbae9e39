#!/usr/bin/env node
// A/B of TAP transmit settings or of two checkouts: two (or three) sets of
// servers side by side, rounds alternating A B A B so that a shared machine's
// load falls on both alike.
//
//   node bench/txthread-ab.mjs [ROUNDS]        (root; build dist/ first)
//
// A variant is `on` or `off` (this checkout with `link add ... txthread on|off`
// and openTap's txThread) or the path of a checkout (its dist/cli.js and
// bench/http-stack.mjs, built, with its defaults). Per variant:
// bench/http-stack.mjs on a TAP (wrk -t1 -c1 and -c50 keep-alive, ab -c50
// without keep-alive) and a daemon with the iperf3 service on a TAP of MTU 1500
// and one of 65521 (iperf3 up and down (-R), one stream; ping -f). Prints every
// round, the medians, the median of the per-round ratios (B/A run back to
// back) and the server's CPU (its JS thread, the whole process) in cores.
// Environment: TXAB_VARIANTS (default "off,on"), TXAB_SECONDS (each wrk, ab
// and iperf3 run, default 2), TXAB_PINGS (default 5000), TXAB_FIGURES (a
// comma list out of http1,http50,ab50,flood,rtt,up1500,down1500,upMax,downMax).
// Names: namespaces txab-*, devices txab*, subnets 10.233.160.0/24 to 10.233.168.0/24.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { harness, sh, waitFor, peerSide } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = Number(process.argv[2] ?? 3);
const VARIANTS = (process.env.TXAB_VARIANTS ?? 'off,on').split(',');
const SECONDS = Number(process.env.TXAB_SECONDS ?? 2);
const PINGS = Number(process.env.TXAB_PINGS ?? 5000);
const ALL = ['http1', 'http50', 'ab50', 'flood', 'rtt', 'up1500', 'down1500', 'upMax', 'downMax'];
const FIGS = (process.env.TXAB_FIGURES ?? ALL.join(',')).split(',');
const { WORK, children, links, netns } = harness('txab-');

if (VARIANTS.length * 3 > 10) throw new Error('at most 3 variants (10 subnets)');


async function server(argv, env, ready, name) {
  const p = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.push(p);
  let out = '';
  p.stdout.on('data', (b) => (out += b));
  await waitFor(() => {
    if (p.exitCode !== null) throw new Error(`${name} exited: ${out}`);
    return out.includes(ready);
  }, 10_000);
  return p;
}

/** A variant's checkout and the words it adds to `link add`. */
function variant(v) {
  if (v === 'on' || v === 'off') return { root: ROOT, words: ` txthread ${v}`, env: { BENCH_TXTHREAD: v }, name: v };
  return { root: path.resolve(v), words: '', env: {}, name: path.basename(path.resolve(v)) };
}

async function daemon(tag, vr, mtu, octet) {
  const ns = netns(`txab-${tag}`);
  const dev = `txab${tag}`;
  links.push(dev);
  const conf = path.join(WORK, `${tag}.conf`);
  fs.writeFileSync(conf, [`link add ${dev} type tap mtu ${mtu}${vr.words}`, `addr add 10.233.${octet}.2/24 dev ${dev}`, 'service add iperf3 tcp :5201', ''].join('\n'));
  const ctl = path.join(WORK, `${tag}.sock`);
  const d = spawn(process.execPath, [path.join(vr.root, 'dist/cli.js'), 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(d);
  await waitFor(() => fs.existsSync(ctl) && sh(`ip link show ${dev}`, { allowFail: true }).length > 0, 10_000);
  peerSide(dev, ns, `10.233.${octet}.1`);
  sh(`ip -n ${ns} link set ${dev} mtu ${mtu}`);
  return { ns, host: `10.233.${octet}.2`, pid: d.pid };
}

async function setup(v, i) {
  const vr = variant(v);
  const o = 160 + 3 * i;
  const hns = netns(`txab-h${i}`);
  const hdev = `txabh${i}`;
  links.push(hdev);
  const hp = await server([process.execPath, path.join(vr.root, 'bench/http-stack.mjs'), hdev, `10.233.${o}.2/24`, '8080', '60'], vr.env, 'listening', 'http-stack');
  peerSide(hdev, hns, `10.233.${o}.1`);
  const std = await daemon(`s${i}`, vr, 1500, o + 1);
  const max = await daemon(`m${i}`, vr, 65521, o + 2);
  return { name: i > 0 && vr.name === variant(VARIANTS[0]).name ? `${vr.name}#${i + 1}` : vr.name, http: { ns: hns, url: `http://10.233.${o}.2:8080/`, pid: hp.pid }, std, max };
}

function wrk(t, conns) {
  const out = sh(`ip netns exec ${t.ns} wrk -t1 -c${conns} -d${SECONDS}s ${t.url}`, { timeoutMs: (SECONDS + 30) * 1000 });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`wrk: ${out}`);
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`wrk -c${conns} saw errors: ${out}`);
  return Number(rps[1]);
}

function ab(t, conc) {
  const out = sh(`ip netns exec ${t.ns} ab -q -r -t ${SECONDS} -n 10000000 -c ${conc} ${t.url}`, { timeoutMs: (SECONDS + 60) * 1000 });
  const rps = /Requests per second:\s+([\d.]+)/.exec(out);
  const failed = /Failed requests:\s+(\d+)/.exec(out);
  if (!rps || !failed) throw new Error(`ab: ${out}`);
  if (Number(failed[1]) !== 0) throw new Error(`ab -c ${conc}: ${failed[1]} failed requests\n${out}`);
  return Number(rps[1]);
}

function ping(t, count) {
  const out = sh(`ip netns exec ${t.ns} ping -q -f -c ${count} -W 1 ${t.host}`, { allowFail: true, timeoutMs: 120_000 });
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
  const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(out);
  if (!m || !rtt) throw new Error(`ping:\n${out}`);
  return { rate: (Number(m[2]) * 1000) / Math.max(Number(m[3]), 1), rtt: Number(rtt[1]) * 1000 };
}

function iperf(t, reverse) {
  const args = `-c ${t.host} -p 5201 -t ${SECONDS} -J${reverse ? ' -R' : ''}`;
  const out = sh(`ip netns exec ${t.ns} iperf3 ${args}`, { allowFail: true, timeoutMs: (SECONDS + 30) * 1000 });
  const j = JSON.parse(out);
  if (j.error) throw new Error(`iperf3 ${args}: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

/** [figure, run, the server process measured]: its JS thread's and its own CPU seconds are read around each run. */
const measure = {
  http1: [(p) => wrk(p.http, 1), (p) => p.http.pid],
  http50: [(p) => wrk(p.http, 50), (p) => p.http.pid],
  ab50: [(p) => ab(p.http, 50), (p) => p.http.pid],
  flood: [(p) => ping(p.std, PINGS).rate, (p) => p.std.pid],
  rtt: [(p) => ping(p.std, PINGS).rtt, (p) => p.std.pid],
  up1500: [(p) => iperf(p.std, false), (p) => p.std.pid],
  down1500: [(p) => iperf(p.std, true), (p) => p.std.pid],
  upMax: [(p) => iperf(p.max, false), (p) => p.max.pid],
  downMax: [(p) => iperf(p.max, true), (p) => p.max.pid],
};

const TICK = Number(sh('getconf CLK_TCK').trim()) || 100;
/** utime + stime in seconds of /proc/PID[/task/TID]/stat. */
function cpu(file) {
  const f = fs.readFileSync(file, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICK;
}
function run(f, p) {
  const pid = measure[f][1](p);
  const m0 = cpu(`/proc/${pid}/task/${pid}/stat`);
  const a0 = cpu(`/proc/${pid}/stat`);
  const t0 = process.hrtime.bigint();
  const v = measure[f][0](p);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return { v, main: (cpu(`/proc/${pid}/task/${pid}/stat`) - m0) / wall, all: (cpu(`/proc/${pid}/stat`) - a0) / wall };
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const peers = [];
for (let i = 0; i < VARIANTS.length; i++) peers.push(await setup(VARIANTS[i], i));
process.stderr.write('txab: servers up, warming up\n');
// Warm up: ARP, JIT, first connections.
for (const p of peers) {
  wrk(p.http, 1);
  ping(p.std, 300);
  iperf(p.std, false);
}
const res = peers.map(() => Object.fromEntries(FIGS.map((f) => [f, []])));
const cpus = peers.map(() => Object.fromEntries(FIGS.map((f) => [f, { main: [], all: [] }])));
const digits = (f) => (f === 'rtt' ? 1 : f.includes('up') || f.includes('down') ? 2 : 0);
for (let r = 0; r < ROUNDS; r++) {
  for (const f of FIGS) {
    // Alternate which variant goes first, figure by figure and round by round.
    const order = peers.map((_, i) => i);
    if ((r + FIGS.indexOf(f)) % 2 === 1) order.reverse();
    for (const i of order) {
      const x = run(f, peers[i]);
      res[i][f].push(x.v);
      cpus[i][f].main.push(x.main);
      cpus[i][f].all.push(x.all);
    }
  }
  const line = FIGS.map((f) => `${f} ${peers.map((p, i) => `${p.name}=${res[i][f][r].toFixed(digits(f))}`).join(' ')}`).join(' | ');
  console.log(`round ${r + 1}: ${line}`);
}
// The paired ratio (B / A of the same round, run back to back) cancels load
// that drifts between rounds better than a ratio of medians does.
console.log(`\nmedians of ${ROUNDS} rounds, ${SECONDS} s runs, load average ${os.loadavg()[0].toFixed(2)}; CPU: the server's JS thread / whole process, in cores`);
for (const f of FIGS) {
  const meds = peers.map((_, i) => median(res[i][f]));
  const paired = peers.length > 1 ? `  ${peers[1].name}/${peers[0].name} ${(meds[1] / meds[0]).toFixed(3)}, paired ${median(res[1][f].map((b, r) => b / res[0][f][r])).toFixed(3)}` : '';
  const c = peers.map((p, i) => `${median(cpus[i][f].main).toFixed(2)}/${median(cpus[i][f].all).toFixed(2)}`).join(' ');
  console.log(`${f.padEnd(9)} ${peers.map((p, i) => `${p.name} ${meds[i].toFixed(digits(f))}`.padEnd(18)).join('')}${paired}  cpu ${c}`);
}
