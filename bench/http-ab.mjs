#!/usr/bin/env node
// Before/after comparison of the stack's HTTP server (and, if asked, its iperf3 and
// ping figures) between builds of tapstack, rounds interleaving the builds (A B A B ...)
// so that a shared machine's load falls on all of them alike:
//
//   node bench/http-ab.mjs [options] ROOT_A [ROOT_B ...]
//
// Each ROOT is a checkout (or a copy) holding bench/http-stack.mjs, dist/ and
// build/Release. Per round and build: http-stack.mjs on a TAP whose kernel side sits
// in a namespace of its own, a 1 s wrk warm-up, then the figures in turn:
//
//   http1   wrk -t1 -c1 -dS           requests/s (keep-alive)
//   http50  wrk -t1 -c50 -dS          requests/s (keep-alive)
//   ab50    ab -r -c50 -n N           connections/s (one request each)
//   up      iperf3 -c -tS             Gbit/s to the daemon's iperf3 service
//   down    iperf3 -c -tS -R          Gbit/s from it
//   ping    ping -f -c N              pings/s and mean RTT (µs)
//
// For the HTTP figures also the server's CPU time (user + system) per request: on a
// machine busy with other work it varies much less than the rates do.
// (up, down and ping run the daemon, dist/cli.js, with its iperf3 service.)
// Options: --rounds N (3), --seconds S (3), --ab-requests N (20000), --pings N (5000),
// --figures LIST (http1,http50,ab50), --ns NAME and --dev NAME (the namespace and the
// TAP's name, "tsab" and "tsab0"), --net A.B.C (the /24 used, 10.233.170),
// --prof DIR (the HTTP server runs under node --cpu-prof, one profile per round in
// DIR/<build index>/; bench/cpuprofile-top.mjs summarises them).
// Needs root; prints every round and the medians with B's (C's ...) ratio to A.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = { rounds: 3, seconds: 3, abRequests: 20000, pings: 5000, figures: 'http1,http50,ab50', ns: 'tsab', dev: 'tsab0', net: '10.233.170', prof: '' };
const roots = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const take = () => {
    if (i + 1 >= args.length) throw new Error(`${a} needs a value`);
    return args[++i];
  };
  if (a === '--rounds') opt.rounds = Number(take());
  else if (a === '--seconds') opt.seconds = Number(take());
  else if (a === '--ab-requests') opt.abRequests = Number(take());
  else if (a === '--pings') opt.pings = Number(take());
  else if (a === '--figures') opt.figures = take();
  else if (a === '--ns') opt.ns = take();
  else if (a === '--dev') opt.dev = take();
  else if (a === '--net') opt.net = take();
  else if (a === '--prof') opt.prof = path.resolve(take());
  else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
  else roots.push(path.resolve(a));
}
if (roots.length === 0) {
  console.error('usage: http-ab.mjs [options] ROOT_A [ROOT_B ...]');
  process.exit(2);
}
if (process.getuid() !== 0) {
  console.error('http-ab: needs root (TAP devices and network namespaces)');
  process.exit(1);
}
const figures = opt.figures.split(',');
const httpFigures = figures.filter((f) => f === 'http1' || f === 'http50' || f === 'ab50');
const daemonFigures = figures.filter((f) => f === 'up' || f === 'down' || f === 'ping');
const UNITS = { http1: 'req/s', http50: 'req/s', ab50: 'conn/s', http1Cpu: 'µs CPU/req', http50Cpu: 'µs CPU/req', ab50Cpu: 'µs CPU/conn', up: 'Gbit/s', down: 'Gbit/s', ping: 'pings/s', pingRtt: 'µs' };
const stackAddr = `${opt.net}.2`;
const peerAddr = `${opt.net}.1`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'http-ab-'));
let child = null;

function sh(cmd, { allowFail = false, timeoutMs = 120_000 } = {}) {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0 && !allowFail) throw new Error(`failed: ${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function cleanup() {
  if (child !== null && child.exitCode === null) child.kill('SIGTERM');
  sh(`ip netns del ${opt.ns} 2>/dev/null`, { allowFail: true });
  sh(`ip link del ${opt.dev} 2>/dev/null`, { allowFail: true });
  fs.rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Starts argv, waits for `ready` on its stdout (or for `until()`), then moves the TAP into the namespace. */
async function start(argv, ready) {
  sh(`ip netns del ${opt.ns} 2>/dev/null`, { allowFail: true });
  sh(`ip netns add ${opt.ns} && ip -n ${opt.ns} link set lo up`);
  const p = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  child = p;
  let out = '';
  p.stdout.on('data', (b) => (out += b));
  await waitFor(
    () => {
      if (p.exitCode !== null) throw new Error(`${argv.join(' ')} exited: ${out}`);
      return ready(out);
    },
    15_000,
    argv[1],
  );
  sh(`ip link set ${opt.dev} netns ${opt.ns}`);
  sh(`ip -n ${opt.ns} addr add ${peerAddr}/24 dev ${opt.dev} && ip -n ${opt.ns} link set ${opt.dev} up`);
  return p;
}

async function stop(p) {
  if (p.exitCode === null) {
    p.kill('SIGTERM');
    await waitFor(() => p.exitCode !== null || p.signalCode !== null, 15_000, 'the server to exit');
  }
  child = null;
  sh(`ip netns del ${opt.ns} 2>/dev/null`, { allowFail: true });
}

/** CPU time (user + system, seconds) the process has used, from /proc/PID/stat. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) in clock ticks of 1/100 s (USER_HZ on Linux).
  return (Number(f[11]) + Number(f[12])) / 100;
}

function wrk(conns) {
  const out = sh(`ip netns exec ${opt.ns} wrk -t1 -c${conns} -d${opt.seconds}s http://${stackAddr}:8080/`, { timeoutMs: (opt.seconds + 30) * 1000 });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const n = /(\d+) requests in/.exec(out);
  if (!rps || !n || /Non-2xx|Socket errors/.test(out)) throw new Error(`wrk -c${conns}: ${out}`);
  return { rate: Number(rps[1]), count: Number(n[1]) };
}

function ab(conc) {
  const out = sh(`ip netns exec ${opt.ns} ab -q -r -c ${conc} -n ${opt.abRequests} http://${stackAddr}:8080/`, { timeoutMs: 120_000 });
  const rps = /Requests per second:\s+([\d.]+)/.exec(out);
  const failed = /Failed requests:\s+(\d+)/.exec(out);
  const n = /Complete requests:\s+(\d+)/.exec(out);
  if (!rps || !n || !failed || Number(failed[1]) !== 0) throw new Error(`ab -c${conc}: ${out}`);
  return { rate: Number(rps[1]), count: Number(n[1]) };
}

function iperf(reverse) {
  const out = sh(`ip netns exec ${opt.ns} iperf3 -c ${stackAddr} -p 5201 -t ${opt.seconds} -J${reverse ? ' -R' : ''}`, { allowFail: true, timeoutMs: (opt.seconds + 30) * 1000 });
  const j = JSON.parse(out);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

function ping() {
  const out = sh(`ip netns exec ${opt.ns} ping -q -f -c ${opt.pings} -W 1 ${stackAddr}`, { allowFail: true });
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
  const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(out);
  if (!m || !rtt) throw new Error(`ping: ${out}`);
  return { rate: (Number(m[2]) * 1000) / Math.max(Number(m[3]), 1), rtt: Number(rtt[1]) * 1000 };
}

async function httpRound(root, idx, round) {
  const node = [process.execPath];
  if (opt.prof) {
    const dir = path.join(opt.prof, String(idx));
    fs.mkdirSync(dir, { recursive: true });
    node.push('--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `round${round}.cpuprofile`);
  }
  const p = await start([...node, path.join(root, 'bench/http-stack.mjs'), opt.dev, `${stackAddr}/24`, '8080'], (out) => out.includes('listening'));
  const r = {};
  try {
    sh(`ip netns exec ${opt.ns} wrk -t1 -c10 -d1s http://${stackAddr}:8080/`);
    for (const f of httpFigures) {
      // The server's CPU time per request too: on a busy machine it varies less than the rate.
      const cpu0 = cpuSeconds(p.pid);
      const x = f === 'http1' ? wrk(1) : f === 'http50' ? wrk(50) : ab(50);
      r[f] = x.rate;
      r[`${f}Cpu`] = ((cpuSeconds(p.pid) - cpu0) * 1e6) / x.count;
    }
  } finally {
    await stop(p);
  }
  return r;
}

async function daemonRound(root) {
  const conf = path.join(work, 'daemon.conf');
  const ctl = path.join(work, 'daemon.sock');
  fs.rmSync(ctl, { force: true });
  fs.writeFileSync(conf, [`link add ${opt.dev} type tap`, `addr add ${stackAddr}/24 dev ${opt.dev}`, 'service add iperf3 tcp :5201', ''].join('\n'));
  const p = await start([process.execPath, path.join(root, 'dist/cli.js'), 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], () => fs.existsSync(ctl) && sh(`ip link show ${opt.dev}`, { allowFail: true }).length > 0);
  const r = {};
  try {
    iperf(false);
    for (const f of daemonFigures) {
      if (f === 'up') r.up = iperf(false);
      else if (f === 'down') r.down = iperf(true);
      else {
        const x = ping();
        r.ping = x.rate;
        r.pingRtt = x.rtt;
      }
    }
  } finally {
    await stop(p);
  }
  return r;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const keys = [...httpFigures.flatMap((f) => [f, `${f}Cpu`]), ...daemonFigures.flatMap((f) => (f === 'ping' ? ['ping', 'pingRtt'] : [f]))];
const results = roots.map(() => Object.fromEntries(keys.map((k) => [k, []])));
const fmt = (k, v) => (UNITS[k] === 'Gbit/s' || UNITS[k].includes('CPU') ? v.toFixed(2) : v.toFixed(0));

for (let round = 0; round < opt.rounds; round++) {
  for (let i = 0; i < roots.length; i++) {
    const r = {};
    if (httpFigures.length > 0) Object.assign(r, await httpRound(roots[i], i, round));
    if (daemonFigures.length > 0) Object.assign(r, await daemonRound(roots[i]));
    for (const k of keys) results[i][k].push(r[k]);
    console.log(`round ${round + 1} ${String.fromCharCode(65 + i)} ${keys.map((k) => `${k} ${fmt(k, r[k])}`).join('  ')}`);
  }
}
console.log(`\nmedians of ${opt.rounds} rounds (${opt.seconds} s runs; load average ${os.loadavg()[0].toFixed(2)})`);
for (const k of keys) {
  const m = results.map((x) => median(x[k]));
  const ratios = m.slice(1).map((v) => ` ${((v / m[0] - 1) * 100).toFixed(1).replace(/^(?!-)/, '+')}%`);
  console.log(`${k.padEnd(8)} ${m.map((v, i) => `${String.fromCharCode(65 + i)} ${fmt(k, v)}`).join('  ')} ${UNITS[k]}${ratios.join('')}`);
}
for (let i = 0; i < roots.length; i++) console.log(`${String.fromCharCode(65 + i)}: ${roots[i]}`);
