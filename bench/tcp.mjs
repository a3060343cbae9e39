// TCP section of `npm run bench`: the stack, pasta, slirp4netns and the kernel over
// veth side by side, in one run, rounds interleaving the targets:
//
//   stack        tapstack's daemon on a TAP (built-in iperf3 service, ICMP), and
//                bench/http-stack.mjs (node:http over tapstack) for HTTP; the load
//                runs in the namespace holding the TAP's kernel side
//   pasta        a namespace attached by pasta (passt) to a sealed stand-in host
//                namespace whose iperf3 -s and bench/http-kernel.mjs it reaches at
//                the gateway address (pasta maps it to the host's loopback)
//   slirp4netns  the same through slirp4netns (the host is 10.0.2.2)
//   kernel       two namespaces over a veth pair, iperf3 -s and http-kernel.mjs in one
//   node floor   (ping only, with the stack) bench/node-responder.mjs: ARP and echo
//                replies rewritten in place in JavaScript on the stack's own TAP class
//                and addon, no stack behind them; flooded right after the stack in
//                each round, it shows what Node and the addon cost a ping by themselves
//
// Each round measures figure by figure, every peer back to back (starting at another
// peer each round), so the runs compared sit seconds apart.
//
// Figures (up: from the load's namespace to the server; down: iperf3 -R):
//   iperf3 one stream up/down at MTU 1500 and at the largest MTU each supports
//   (stack: a TAP's 65521; pasta 65520; slirp4netns 65521; veth 65535), iperf3 -P 4
//   up/down at 1500, HTTP requests/s (wrk, one thread) on 1 and on 50 keep-alive
//   connections, new connections/s (ab -c 50, one request each, no keep-alive),
//   ping -f: mean RTT and pings/s; and for wrk -c 50 and ab -c 50 the CPU time the
//   serving side spent per request (user + system from /proc/PID/stat, summed over its
//   processes: the stack's one process; node:http for the kernel; pasta or slirp4netns
//   plus node:http for those), which varies much less than the rates on a busy machine.
// It prints the medians with each peer's ratio to the stack and writes them to
// bench/out/tcp.json and bench/out/tcp.svg.
//
// Environment: BENCH_TCP_ROUNDS (default 5), BENCH_TCP_SECONDS (each iperf3 run,
// default 2), BENCH_HTTP_SECONDS (each wrk and ab run, default 2), BENCH_TCP_PINGS
// (pings per flood, default 5000), BENCH_TCP_PEERS (default stack,pasta,slirp4netns,kernel),
// BENCH_HTTP_WARMUPS (passes of the HTTP loads per peer before the rounds, default 3),
// BENCH_HTTP_REWARM_S (seconds of the same load before each measured HTTP run, default 2),
// BENCH_HTTP_STACK_NODE_ARGS (node options for bench/http-stack.mjs, e.g. --cpu-prof).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { barChart } from './svg.mjs';

const ROUNDS = Number(process.env.BENCH_TCP_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_TCP_SECONDS ?? 2);
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 2);
const PINGS = Number(process.env.BENCH_TCP_PINGS ?? 5000);
const PEERS = (process.env.BENCH_TCP_PEERS ?? 'stack,pasta,slirp4netns,kernel').split(',');
const KEEPALIVE_S = 60;
/** Passes of the HTTP loads (wrk -c 1, wrk -c 50, ab -c 50) per peer before the rounds. */
const HTTP_WARMUPS = Number(process.env.BENCH_HTTP_WARMUPS ?? 3);
/**
 * Seconds of unmeasured load on a server right before each of its HTTP figures (0: none).
 * A Node process that has had a full (mark-compact) collection arms V8's memory reducer,
 * which collects again once the process idles (within a minute after a burst of them, or some
 * 100 s after a lone one at startup). That collection finds the last load's sockets and
 * requests dead and deoptimizes the optimized code that held them weakly (130 functions
 * of node:http, streams and the stack in one trace). The next seconds of load run
 * unoptimized code and recompile it: the stack's server, whose large module graph
 * costs it a mark-compact at startup, measured 4-22k requests/s at wrk -c 50
 * in its first 2 s after 90-100 s idle, in five runs, against 31-45k just before. The
 * kernel's server (no full collection in the same test) showed no such drop. The bench
 * compares steady rates, so every peer's server gets the same load for these seconds first.
 * They cover the recompiling, not all of the rest: the reducer also shrinks the young
 * generation, which grows back only over many more seconds of load. (ab's connection
 * churn no longer brings on full collections in the stack's server: see
 * src/packet/chains.ts.)
 */
const HTTP_REWARM_S = Number(process.env.BENCH_HTTP_REWARM_S ?? 2);
/** Node options for the stack's HTTP server (`--cpu-prof --cpu-prof-dir=DIR` to profile it in the bench). */
const NODE_ARGS_HTTP = (process.env.BENCH_HTTP_STACK_NODE_ARGS ?? '').split(' ').filter(Boolean);

/** The figures, in table order: key, label, unit, lower is better. */
const FIGURES = [
  ['up1500', 'iperf3 up, MTU 1500', 'Gb/s'],
  ['down1500', 'iperf3 down (-R), MTU 1500', 'Gb/s'],
  ['upMax', 'iperf3 up, largest MTU', 'Gb/s'],
  ['downMax', 'iperf3 down (-R), largest MTU', 'Gb/s'],
  ['upP4', 'iperf3 -P 4 up, MTU 1500', 'Gb/s'],
  ['downP4', 'iperf3 -P 4 down (-R), MTU 1500', 'Gb/s'],
  ['http1', 'HTTP keep-alive, wrk -c 1', 'requests/s'],
  ['http50', 'HTTP keep-alive, wrk -c 50', 'requests/s'],
  ['conns50', 'new connections, ab -c 50', 'connections/s'],
  ['http50Cpu', 'serving CPU per request, wrk -c 50', 'µs', true],
  ['conns50Cpu', 'serving CPU per connection, ab -c 50', 'µs', true],
  ['rtt', 'ping -f mean RTT', 'µs', true],
  ['flood', 'ping -f rate', 'pings/s'],
];

export async function tcpBench(ctx) {
  const { sh, netns, peerSide, waitFor, children, links, WORK, ROOT, median, fmt } = ctx;
  const cli = path.join(ROOT, 'dist/cli.js');
  const haveTool = (t) => sh(`command -v ${t}`, { allowFail: true }).trim() !== '';

  /** Spawns a long-running helper and waits for `ready` on its stdout. */
  async function server(argv, ready, name) {
    const p = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(p);
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    await waitFor(() => {
      if (p.exitCode !== null) throw new Error(`${name} exited: ${out}`);
      return out.includes(ready);
    }, 10_000);
    return p;
  }

  /** A daemon with the iperf3 service on a TAP of `mtu` (or the largest the kernel takes). */
  async function stackDaemon(name, mtu, octet) {
    const ns = netns(`tscn-s${octet}`);
    const dev = `tscns${octet}`;
    links.push(dev);
    const conf = path.join(WORK, `${name}.conf`);
    fs.writeFileSync(conf, [`link add ${dev} type tap mtu ${mtu}`, `addr add 10.233.${octet}.2/24 dev ${dev}`, 'service add iperf3 tcp :5201', ''].join('\n'));
    const ctl = path.join(WORK, `${name}.sock`);
    const d = spawn(process.execPath, [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(d);
    await waitFor(() => fs.existsSync(ctl) && sh(`ip link show ${dev}`, { allowFail: true }).length > 0, 10_000);
    peerSide(dev, ns, `10.233.${octet}.1`);
    sh(`ip -n ${ns} link set ${dev} mtu ${mtu}`);
    return { ns, host: `10.233.${octet}.2`, pid: d.pid };
  }

  /** Two namespaces over a veth pair of `mtu`; iperf3 -s (and HTTP if asked) in the second. */
  function vethPair(mtu, octet) {
    const a = netns(`tscn-ka${octet}`);
    const b = netns(`tscn-kb${octet}`);
    sh(`ip link add tscnk${octet}a netns ${a} mtu ${mtu} type veth peer name tscnk${octet}b netns ${b} mtu ${mtu}`);
    sh(`ip -n ${a} addr add 10.233.${octet}.1/24 dev tscnk${octet}a && ip -n ${a} link set tscnk${octet}a up`);
    sh(`ip -n ${b} addr add 10.233.${octet}.2/24 dev tscnk${octet}b && ip -n ${b} link set tscnk${octet}b up`);
    children.push(spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }));
    return { a, b, host: `10.233.${octet}.2` };
  }

  const peers = {};
  const kmax = { stack: 65521, pasta: 65520, slirp4netns: 65521, kernel: 65535 };

  if (PEERS.includes('stack')) {
    const s0 = await stackDaemon('stack-1500', 1500, 120);
    let sMax;
    try {
      sMax = await stackDaemon('stack-max', kmax.stack, 121);
    } catch (e) {
      throw new Error(`the stack at MTU ${kmax.stack}: ${e.message}`);
    }
    const wns = netns('tscn-w');
    const wdev = 'tscnw0';
    links.push(wdev);
    const hs = await server([process.execPath, ...NODE_ARGS_HTTP, path.join(ROOT, 'bench/http-stack.mjs'), wdev, '10.233.122.2/24', '8080', String(KEEPALIVE_S)], 'listening', 'http-stack');
    peerSide(wdev, wns, '10.233.122.1');
    const fns = netns('tscn-f');
    const fdev = 'tscnf0';
    links.push(fdev);
    await server([process.execPath, path.join(ROOT, 'bench/node-responder.mjs'), fdev, '10.233.118.2'], 'ready', 'node-responder');
    peerSide(fdev, fns, '10.233.118.1');
    peers.stack = {
      std: { ns: s0.ns, host: s0.host },
      max: { ns: sMax.ns, host: sMax.host },
      http: { ns: wns, url: 'http://10.233.122.2:8080/', pids: [hs.pid] },
      ping: { ns: s0.ns, host: s0.host },
      floor: { ns: fns, host: '10.233.118.2' },
    };
  }
  if (PEERS.includes('kernel')) {
    const k0 = vethPair(1500, 123);
    const k1 = vethPair(kmax.kernel, 124);
    const hk = await server(['ip', 'netns', 'exec', k0.b, process.execPath, path.join(ROOT, 'bench/http-kernel.mjs'), '0.0.0.0', '8080', String(KEEPALIVE_S)], 'listening', 'http-kernel');
    peers.kernel = {
      std: { ns: k0.a, host: k0.host },
      max: { ns: k1.a, host: k1.host },
      http: { ns: k0.a, url: `http://${k0.host}:8080/`, pids: [hk.pid] },
      ping: { ns: k0.a, host: k0.host },
    };
  }
  const wantPasta = PEERS.includes('pasta') && haveTool('pasta');
  const wantSlirp = PEERS.includes('slirp4netns') && haveTool('slirp4netns');
  if (wantPasta || wantSlirp) {
    // The stand-in host: a namespace with a default route (pasta and slirp4netns copy the
    // host's addressing), iperf3 -s and the kernel HTTP server on every address, and ICMP
    // echo sockets allowed (both answer pings through them).
    const h = netns('tscn-h');
    const g = netns('tscn-g');
    sh(`ip link add tscnu0 netns ${h} type veth peer name tscnu1 netns ${g}`);
    sh(`ip -n ${h} addr add 10.233.125.1/24 dev tscnu0 && ip -n ${h} link set tscnu0 up`);
    sh(`ip -n ${g} addr add 10.233.125.254/24 dev tscnu1 && ip -n ${g} link set tscnu1 up`);
    sh(`ip -n ${h} route add default via 10.233.125.254`);
    sh(`ip netns exec ${h} sysctl -q -w net.ipv4.ping_group_range="0 2147483647"`);
    // One iperf3 server for each of the two peers: measured back to back, the second
    // would otherwise find the server still busy with the first one's test.
    children.push(spawn('ip', ['netns', 'exec', h, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }));
    children.push(spawn('ip', ['netns', 'exec', h, 'iperf3', '-s', '-p', '5202'], { stdio: 'ignore' }));
    const hh = await server(['ip', 'netns', 'exec', h, process.execPath, path.join(ROOT, 'bench/http-kernel.mjs'), '0.0.0.0', '8080', String(KEEPALIVE_S)], 'listening', 'http-kernel (host)');
    if (wantPasta) {
      const attach = async (mtu, i) => {
        const ns = netns(`tscn-p${i}`);
        const p = spawn('ip', ['netns', 'exec', h, 'pasta', '--quiet', '--runas', '0', '-f', '-I', 'pst0', '--config-net', '-m', String(mtu), '--netns', `/run/netns/${ns}`], { stdio: 'ignore' });
        children.push(p);
        await waitFor(() => sh(`ip -n ${ns} -br addr show pst0`, { allowFail: true }).includes('10.233.125.1'), 5000);
        return { ns, host: '10.233.125.254', pid: p.pid };
      };
      const std = await attach(1500, 0);
      const max = await attach(kmax.pasta, 1);
      peers.pasta = { std, max, http: { ns: std.ns, url: 'http://10.233.125.254:8080/', pids: [std.pid, hh.pid] }, ping: std };
    }
    if (wantSlirp) {
      const attach = async (mtu, i) => {
        const ns = netns(`tscn-l${i}`);
        const p = spawn('ip', ['netns', 'exec', h, 'slirp4netns', '--configure', `--mtu=${mtu}`, '--netns-type=path', `/run/netns/${ns}`, 'tap0'], { stdio: 'ignore' });
        children.push(p);
        await waitFor(() => sh(`ip -n ${ns} -br addr show tap0`, { allowFail: true }).includes('10.0.2.100'), 5000);
        return { ns, host: '10.0.2.2', port: 5202, pid: p.pid };
      };
      const std = await attach(1500, 0);
      const max = await attach(kmax.slirp4netns, 1);
      peers.slirp4netns = { std, max, http: { ns: std.ns, url: 'http://10.0.2.2:8080/', pids: [std.pid, hh.pid] }, ping: std };
    }
  }
  const names = PEERS.filter((p) => peers[p]);

  /** iperf3 runs that failed and were run again, by namespace (printed and kept in the JSON). */
  const retried = {};
  function iperf(t, reverse, streams = 1) {
    const args = `-c ${t.host} -p ${t.port ?? 5201} -t ${SECONDS} -J${reverse ? ' -R' : ''}${streams > 1 ? ` -P ${streams}` : ''}`;
    // A failed run (a peer resetting the control connection, seen once with pasta) is run
    // once more after a second, and counted; a second failure ends the bench.
    for (let attempt = 0; ; attempt++) {
      const out = sh(`ip netns exec ${t.ns} iperf3 ${args}`, { allowFail: true, timeoutMs: (SECONDS + 30) * 1000 });
      try {
        const j = JSON.parse(out);
        if (j.error) throw new Error(j.error);
        return j.end.sum_received.bits_per_second / 1e9;
      } catch (e) {
        const err = `iperf3 ${args} in ${t.ns}: ${e.message}`;
        if (attempt > 0) throw new Error(`${err}\n${out.slice(0, 400)}`);
        process.stderr.write(`${err}; running it again\n`);
        retried[t.ns] = (retried[t.ns] ?? 0) + 1;
        sh('sleep 1');
      }
    }
  }

  /** CPU seconds (user + system) the processes `pids` have used so far. */
  const clockTick = Number(sh('getconf CLK_TCK', { allowFail: true }).trim()) || 100;
  function cpuSeconds(pids) {
    let ticks = 0;
    for (const pid of pids) {
      // /proc/PID/stat: fields 14 and 15 (utime, stime) after the parenthesised command.
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    }
    return ticks / clockTick;
  }

  /** wrk's requests/s and the serving side's CPU µs per request. */
  function wrk(t, conns, seconds = HTTP_SECONDS) {
    const cpu0 = cpuSeconds(t.pids);
    const out = sh(`ip netns exec ${t.ns} wrk -t1 -c${conns} -d${seconds}s ${t.url}`, { timeoutMs: (seconds + 30) * 1000 });
    const cpu = cpuSeconds(t.pids) - cpu0;
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const n = /(\d+) requests in/.exec(out);
    if (!rps || !n) throw new Error(`wrk in ${t.ns}: ${out}`);
    if (/Non-2xx|Socket errors/.test(out)) throw new Error(`wrk -c${conns} in ${t.ns} saw errors: ${out}`);
    return { rate: Number(rps[1]), cpuUs: (cpu * 1e6) / Math.max(Number(n[1]), 1) };
  }

  function ab(t, conc, seconds = HTTP_SECONDS) {
    // -t: a time limit (ab stops at -n or when time is up, whichever first).
    const cpu0 = cpuSeconds(t.pids);
    const out = sh(`ip netns exec ${t.ns} ab -q -r -t ${seconds} -n 10000000 -c ${conc} ${t.url}`, { timeoutMs: (seconds + 60) * 1000 });
    const cpu = cpuSeconds(t.pids) - cpu0;
    const rps = /Requests per second:\s+([\d.]+)/.exec(out);
    const failed = /Failed requests:\s+(\d+)/.exec(out);
    const done = /Complete requests:\s+(\d+)/.exec(out);
    if (!rps || !failed || !done) throw new Error(`ab in ${t.ns}: ${out}`);
    if (Number(failed[1]) !== 0) throw new Error(`ab -c ${conc} in ${t.ns}: ${failed[1]} failed requests\n${out}`);
    return { rate: Number(rps[1]), cpuUs: (cpu * 1e6) / Math.max(Number(done[1]), 1) };
  }

  function ping(t, count) {
    const out = sh(`ip netns exec ${t.ns} ping -q -f -c ${count} -W 1 ${t.host}`, { allowFail: true, timeoutMs: 120_000 });
    const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
    const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(out);
    if (!m || !rtt) throw new Error(`ping in ${t.ns}:\n${out}`);
    return { rate: (Number(m[2]) * 1000) / Math.max(Number(m[3]), 1), rtt: Number(rtt[1]) * 1000, lost: Number(m[1]) - Number(m[2]) };
  }

  // Warm up: ARP, JIT, the servers' first connections. Each direction on each server:
  // a daemon's sending path is other code than its receiving path, and a first run of
  // it spends its first few hundred milliseconds compiling. A node:http server on a
  // fresh process takes several passes of HTTP load to reach its steady rate (wrk -c 50
  // on the stack, 2 s runs: 29k, 38k, then 49-51k req/s from the third pass on); the
  // host's server behind pasta and slirp4netns gets the passes of both.
  for (const n of names) {
    const p = peers[n];
    for (const t of [p.std, p.max]) {
      iperf(t, false);
      iperf(t, true);
    }
    for (let k = 0; k < HTTP_WARMUPS; k++) {
      wrk(p.http, 1);
      wrk(p.http, 50);
      ab(p.http, 50);
    }
    ping(p.ping, 500);
    if (p.floor) ping(p.floor, 500);
  }
  const res = Object.fromEntries(names.map((n) => [n, Object.fromEntries(FIGURES.map(([k]) => [k, []]))]));
  const lost = Object.fromEntries(names.map((n) => [n, 0]));
  const floor = { rtt: [], flood: [], lost: 0 };
  const started = Date.now();
  for (let r = 0; r < ROUNDS; r++) {
    // Figure by figure, each peer back to back, so that the runs compared sit seconds
    // apart rather than a peer's whole turn (a minute) apart: on a shared machine the
    // speed drifts over minutes. Each round starts at another peer, so none always runs first.
    const order = names.map((_, i) => names[(i + r) % names.length]);
    const each = (fn) => {
      for (const n of order) fn(peers[n], res[n], n);
    };
    each((p, x) => x.up1500.push(iperf(p.std, false)));
    each((p, x) => x.down1500.push(iperf(p.std, true)));
    each((p, x) => x.upMax.push(iperf(p.max, false)));
    each((p, x) => x.downMax.push(iperf(p.max, true)));
    each((p, x) => x.upP4.push(iperf(p.std, false, 4)));
    each((p, x) => x.downP4.push(iperf(p.std, true, 4)));
    // Each HTTP figure is measured right after unmeasured seconds of the same load on the
    // same server (HTTP_REWARM_S): between two rounds a server idles for over a minute.
    each((p, x) => {
      if (HTTP_REWARM_S > 0) wrk(p.http, 1, HTTP_REWARM_S);
      x.http1.push(wrk(p.http, 1).rate);
    });
    each((p, x) => {
      if (HTTP_REWARM_S > 0) wrk(p.http, 50, HTTP_REWARM_S);
      const w = wrk(p.http, 50);
      x.http50.push(w.rate);
      x.http50Cpu.push(w.cpuUs);
    });
    each((p, x) => {
      if (HTTP_REWARM_S > 0) ab(p.http, 50, HTTP_REWARM_S);
      const a = ab(p.http, 50);
      x.conns50.push(a.rate);
      x.conns50Cpu.push(a.cpuUs);
    });
    each((p, x, n) => {
      const f = ping(p.ping, PINGS);
      x.rtt.push(f.rtt);
      x.flood.push(f.rate);
      lost[n] += f.lost;
      if (p.floor) {
        const g = ping(p.floor, PINGS);
        floor.rtt.push(g.rtt);
        floor.flood.push(g.rate);
        floor.lost += g.lost;
      }
    });
    process.stderr.write(`tcp round ${r + 1}/${ROUNDS} done\n`);
  }
  const med = Object.fromEntries(names.map((n) => [n, Object.fromEntries(FIGURES.map(([k]) => [k, median(res[n][k])]))]));

  // ---- the table ----
  const digits = (unit) => (unit === 'Gb/s' ? 2 : unit === 'µs' ? 1 : 0);
  const others = names.filter((n) => n !== 'stack');
  const hasStack = names.includes('stack');
  console.log(
    `\nTCP, HTTP and ping side by side, medians of ${ROUNDS} rounds (iperf3 -t ${SECONDS}, wrk/ab ${HTTP_SECONDS} s, ping -f -c ${PINGS}; ${os.cpus().length} cores, Node ${process.version}, load average ${os.loadavg()[0].toFixed(1)} at the end)`,
  );
  console.log(`largest MTU: ${names.map((n) => `${n} ${kmax[n]}`).join(', ')}; ratios are peer / stack (below 1: the stack is ahead; for RTT above 1)\n`);
  const head = ['figure'.padEnd(42), ...names.map((n) => n.padStart(12)), ...(hasStack ? others.map((n) => `${n}/stack`.padStart(18)) : [])];
  console.log(head.join(' '));
  for (const [k, label, unit] of FIGURES) {
    const cells = [`${label} (${unit})`.padEnd(42), ...names.map((n) => fmt(med[n][k], digits(unit)).padStart(12))];
    if (hasStack) for (const n of others) cells.push((med.stack[k] > 0 ? (med[n][k] / med.stack[k]).toFixed(2) : '-').padStart(18));
    console.log(cells.join(' '));
  }
  console.log(`ping losses: ${names.map((n) => `${n} ${lost[n]}`).join(', ')}; section took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const floorMed = floor.rtt.length > 0 ? { rtt: median(floor.rtt), flood: median(floor.flood) } : null;
  if (floorMed !== null) {
    console.log(
      `ping -f against a bare Node responder on the stack's TAP class and addon (bench/node-responder.mjs): mean RTT ${fmt(floorMed.rtt, 1)} µs, ${fmt(floorMed.flood)} pings/s (lost ${floor.lost}); the stack adds ${fmt(med.stack.rtt - floorMed.rtt, 1)} µs a ping to it`,
    );
  }
  if (Object.keys(retried).length > 0) console.log(`iperf3 runs that failed once and were run again: ${Object.entries(retried).map(([ns, k]) => `${ns} ${k}`).join(', ')}`);
  if (hasStack) {
    // The goal: ahead of the userspace peers; the kernel is the ceiling.
    const user = others.filter((n) => n !== 'kernel');
    const behind = FIGURES.filter(([k, , , lower]) => user.some((n) => (lower ? med[n][k] < med.stack[k] : med[n][k] > med.stack[k])));
    const leaders = (k, lower) => user.filter((n) => (lower ? med[n][k] < med.stack[k] : med[n][k] > med.stack[k]));
    console.log(
      behind.length === 0
        ? `the stack is ahead of ${user.join(' and ')} on every figure`
        : `figures where ${user.join(' or ')} is ahead of the stack: ${behind.map(([k, l, , lower]) => `${l} (${leaders(k, lower).join(', ')})`).join('; ')}`,
    );
    // How far the rounds of a figure a peer leads spread: on a shared machine the same
    // build moves from round to round by more than many of the gaps between medians.
    if (ROUNDS > 1) {
      for (const [k, l, unit, lower] of behind) {
        const range = (n) => [Math.min(...res[n][k]), Math.max(...res[n][k])];
        const [lo, hi] = range('stack');
        const spans = leaders(k, lower).map((n) => {
          const [a, b] = range(n);
          // Paired by round: the two runs of a round were seconds apart.
          const won = res.stack[k].filter((v, i) => (lower ? v < res[n][k][i] : v > res[n][k][i])).length;
          return `${n} ${fmt(a, digits(unit))}-${fmt(b, digits(unit))}${a <= hi && b >= lo ? ' (overlaps)' : ''}, the stack ahead of it in ${won} of ${ROUNDS} rounds`;
        });
        console.log(`${l}, range of the rounds: stack ${fmt(lo, digits(unit))}-${fmt(hi, digits(unit))}; ${spans.join('; ')}`);
      }
    }
    // A ping figure a peer wins: is the bare Node responder behind that peer as well?
    // Then no responder in Node on this addon would have been ahead of it in this run.
    if (floorMed !== null) {
      for (const [k, l, , lower] of behind.filter(([k]) => k === 'rtt' || k === 'flood')) {
        const ahead = leaders(k, lower);
        const alsoFloor = ahead.filter((n) => (lower ? med[n][k] < floorMed[k] : med[n][k] > floorMed[k]));
        console.log(
          `${l}: the bare Node responder's ${fmt(floorMed[k], k === 'rtt' ? 1 : 0)} is ${alsoFloor.length > 0 ? `behind ${alsoFloor.join(' and ')} too` : `ahead of ${ahead.join(' and ')}: the stack's own work is what loses it`}`,
        );
      }
    }
  }

  // ---- JSON and SVG ----
  const outDir = path.join(ROOT, 'bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    loadAverage: os.loadavg(),
    node: process.version,
    cores: os.cpus().length,
    rounds: ROUNDS,
    seconds: { iperf3: SECONDS, http: HTTP_SECONDS },
    pings: PINGS,
    largestMtu: Object.fromEntries(names.map((n) => [n, kmax[n]])),
    figures: FIGURES.map(([key, label, unit, lower]) => ({
      key,
      label,
      unit,
      lowerIsBetter: !!lower,
      median: Object.fromEntries(names.map((n) => [n, med[n][key]])),
      ratioToStack: hasStack ? Object.fromEntries(others.map((n) => [n, med.stack[key] > 0 ? med[n][key] / med.stack[key] : null])) : null,
      rounds: Object.fromEntries(names.map((n) => [n, res[n][key]])),
    })),
    pingLost: lost,
    // bench/node-responder.mjs, flooded right after the stack in each round.
    nodeFloorPing: floorMed === null ? null : { rtt: floorMed.rtt, flood: floorMed.flood, lost: floor.lost, rounds: { rtt: floor.rtt, flood: floor.flood } },
    iperf3Retried: retried,
    httpWarmups: HTTP_WARMUPS,
    httpRewarmS: HTTP_REWARM_S,
  };
  fs.writeFileSync(path.join(outDir, 'tcp.json'), JSON.stringify(json, null, 2) + '\n');
  const svg = barChart({
    title: 'tapstack, pasta, slirp4netns and the kernel (veth), one run',
    subtitle: `medians of ${ROUNDS} rounds, ${json.date.slice(0, 16)}Z, ${os.cpus().length} cores, Node ${process.version}`,
    names,
    groups: FIGURES.map(([key, label, unit, lower]) => ({
      label,
      unit,
      lowerIsBetter: !!lower,
      bars: names.map((n) => ({ name: n, value: med[n][key], text: `${fmt(med[n][key], digits(unit))}${hasStack && n !== 'stack' && med.stack[key] > 0 ? ` (${(med[n][key] / med.stack[key]).toFixed(2)}x)` : ''}` })),
    })),
  });
  fs.writeFileSync(path.join(outDir, 'tcp.svg'), svg);
  console.log(`written: ${path.relative(ROOT, path.join(outDir, 'tcp.json'))}, ${path.relative(ROOT, path.join(outDir, 'tcp.svg'))}`);
  return json;
}
