// NAT section of `npm run bench`: the stack as a masquerading router between a
// client namespace and a server namespace, against a kernel router namespace with
// the same nft ruleset, in the same run:
//
//   table ip nat { chain postrouting { type nat hook postrouting priority srcnat;
//                                      oifname "<server side>" masquerade } }
//
// The server side has no route back to the client's subnet, so whatever gets
// through was masqueraded.
//   tcp    iperf3 -t BENCH_TCP_SECONDS client -> server at MTU 1500, Gb/s
//   conn   new TCP connections per second for BENCH_CONN_SECONDS (bench/conn-tool.c,
//          8 in flight; the server writes a line and closes); each is a new conntrack
//          entry, and the routers' `conntrack -C` is printed after the rounds
//   udp    64-byte datagrams/s blasted through one flow, counted where they arrive;
//          also with the ruleset flushed (no conntrack) for comparison
// Then conntrack's share of the stack's time: a second daemon runs under
// `node --cpu-prof` while 64-byte UDP goes through it with masquerade, and the
// self time of functions in dist/conntrack/*.js is summed against the daemon's
// busy (not idle) time.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const TCP_SECONDS = Number(process.env.BENCH_TCP_SECONDS ?? 3);
const UDP_SECONDS = Number(process.env.BENCH_UDP_SECONDS ?? 3);
const CONN_SECONDS = Number(process.env.BENCH_CONN_SECONDS ?? 2);
const CONCURRENCY = 8;

const ruleset = (outDev) =>
  `table ip nat {\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "${outDev}" masquerade\n  }\n}\n`;

export async function natBench(ctx) {
  const { sh, netns, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt, udpTool } = ctx;
  const cli = path.join(ROOT, 'dist/cli.js');
  const connTool = path.join(WORK, 'conn-tool');
  execFileSync('cc', ['-O2', '-o', connTool, path.join(ROOT, 'bench/conn-tool.c')]);

  const cpuSeconds = (pid) => {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };

  // The stack: client tsb-nc (10.250.80.1) -- tsbnc [stack] tsbns -- tsb-ns (10.250.81.1).
  const stackConf = path.join(WORK, 'nat-router.conf');
  const stackRules = path.join(WORK, 'nat-stack.nft');
  fs.writeFileSync(stackRules, ruleset('tsbns'));
  fs.writeFileSync(
    stackConf,
    [
      'link add tsbnc type tap',
      'link add tsbns type tap',
      'addr add 10.250.80.2/24 dev tsbnc',
      'addr add 10.250.81.2/24 dev tsbns',
      'sysctl -w net.ipv4.ip_forward=1',
      `nft -f ${stackRules}`,
      '',
    ].join('\n'),
  );
  const sc = netns('tsb-nc');
  const ss = netns('tsb-ns');
  links.push('tsbnc', 'tsbns');

  /** Starts a stack daemon (node options `nodeArgs`) and puts its TAPs' kernel sides in the namespaces. */
  async function startStack(nodeArgs, tag) {
    const ctl = path.join(WORK, `nat-${tag}.sock`);
    const d = spawn(process.execPath, [...nodeArgs, cli, 'daemon', '-c', stackConf, '--ctl', ctl, '--log-level', 'warn'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    children.push(d);
    await waitFor(() => fs.existsSync(ctl) && sh('ip link show tsbns', { allowFail: true }).length > 0, 10_000);
    for (const [dev, ns, addr, gw] of [
      ['tsbnc', sc, '10.250.80.1', '10.250.80.2'],
      ['tsbns', ss, '10.250.81.1', null],
    ]) {
      sh(`ip link set ${dev} netns ${ns}`);
      sh(`ip -n ${ns} addr add ${addr}/24 dev ${dev} && ip -n ${ns} link set ${dev} up`);
      if (gw) sh(`ip -n ${ns} route add default via ${gw}`);
    }
    const ctlCmd = `${process.execPath} ${cli} --ctl ${ctl}`;
    return { d, ctlCmd };
  }
  async function stopStack(d) {
    const exited = new Promise((r) => d.once('exit', r));
    d.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }

  const st = await startStack([], 'main');
  const stack = {
    name: 'stack',
    a: sc,
    b: ss,
    target: '10.250.81.1',
    pid: st.d.pid,
    ctCount: () => Number(sh(`${st.ctlCmd} conntrack -C`).trim()),
    flush: () => sh(`${st.ctlCmd} nft flush ruleset`),
  };

  // The kernel: tsb-nkc (10.250.82.1) -- tsbnka/tsbnkra [tsb-nkr] tsbnkrb/tsbnkb -- tsb-nks (10.250.83.1).
  const kc = netns('tsb-nkc');
  const kr = netns('tsb-nkr');
  const ks = netns('tsb-nks');
  sh(`ip link add tsbnka netns ${kc} type veth peer name tsbnkra netns ${kr}`);
  sh(`ip link add tsbnkb netns ${ks} type veth peer name tsbnkrb netns ${kr}`);
  sh(`ip -n ${kc} addr add 10.250.82.1/24 dev tsbnka && ip -n ${kc} link set tsbnka up && ip -n ${kc} route add default via 10.250.82.2`);
  sh(`ip -n ${ks} addr add 10.250.83.1/24 dev tsbnkb && ip -n ${ks} link set tsbnkb up`);
  sh(`ip -n ${kr} addr add 10.250.82.2/24 dev tsbnkra && ip -n ${kr} link set tsbnkra up`);
  sh(`ip -n ${kr} addr add 10.250.83.2/24 dev tsbnkrb && ip -n ${kr} link set tsbnkrb up`);
  sh(`ip netns exec ${kr} sysctl -qw net.ipv4.ip_forward=1`);
  const kernelRules = path.join(WORK, 'nat-kernel.nft');
  fs.writeFileSync(kernelRules, ruleset('tsbnkrb'));
  sh(`ip netns exec ${kr} nft -f ${kernelRules}`);
  const kernel = {
    name: 'kernel',
    a: kc,
    b: ks,
    target: '10.250.83.1',
    ctCount: () => Number(sh(`ip netns exec ${kr} conntrack -C`).trim()),
    flush: () => sh(`ip netns exec ${kr} nft flush ruleset`),
  };

  const targets = [stack, kernel];
  for (const t of targets) {
    // Room for the connections of every round without reusing a port still in TIME_WAIT.
    sh(`ip netns exec ${t.a} sysctl -qw net.ipv4.ip_local_port_range="10000 65000"`);
    children.push(spawn('ip', ['netns', 'exec', t.b, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }));
    children.push(spawn('ip', ['netns', 'exec', t.b, udpTool, 'discard', '9'], { stdio: 'ignore' }));
    children.push(spawn('ip', ['netns', 'exec', t.b, connTool, 'serve', '80'], { stdio: 'ignore' }));
  }
  for (const t of targets) {
    await waitFor(() => sh(`ip netns exec ${t.b} ss -Hltn sport = :5201`, { allowFail: true }).trim() !== '', 5000);
    await waitFor(() => sh(`ip netns exec ${t.b} ss -Hltn sport = :80`, { allowFail: true }).trim() !== '', 5000);
  }

  const udpIn = (t) => {
    const snmp = sh(`ip netns exec ${t.b} cat /proc/net/snmp`).split('\n').filter((l) => l.startsWith('Udp:'));
    return Number(snmp[1].split(/\s+/)[snmp[0].split(/\s+/).indexOf('InDatagrams')]);
  };
  /** Datagrams/s that arrived, and the stack's CPU µs per datagram. */
  const udp = async (t, seconds = UDP_SECONDS) => {
    const before = udpIn(t);
    const c0 = t.pid ? cpuSeconds(t.pid) : 0;
    const out = sh(`ip netns exec ${t.a} ${udpTool} blast ${t.target} 9 64 ${seconds}`, { timeoutMs: (seconds + 30) * 1000 });
    const m = /sent (\d+) seconds ([\d.]+)/.exec(out);
    if (!m) throw new Error(`udp through ${t.name}: ${out}`);
    await new Promise((r) => setTimeout(r, 300));
    const got = udpIn(t) - before;
    const cpu = t.pid ? ((cpuSeconds(t.pid) - c0) * 1e6) / Math.max(got, 1) : NaN;
    return { rate: got / Number(m[2]), cpu };
  };
  const iperf = (t) => {
    const out = sh(`ip netns exec ${t.a} iperf3 -c ${t.target} -p 5201 -t ${TCP_SECONDS} -J`, { allowFail: true, timeoutMs: (TCP_SECONDS + 30) * 1000 });
    try {
      return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
    } catch {
      throw new Error(`iperf3 through ${t.name}: ${out.slice(0, 300)}`);
    }
  };
  const conns = (t, seconds = CONN_SECONDS) => {
    const out = sh(`ip netns exec ${t.a} ${connTool} connect ${t.target} 80 ${seconds} ${CONCURRENCY}`, { timeoutMs: (seconds + 30) * 1000 });
    const m = /connections (\d+) seconds ([\d.]+) errors (\d+) slow (\d+) unfinished (\d+)/.exec(out);
    if (!m) throw new Error(`connections through ${t.name}: ${out}`);
    return { n: Number(m[1]), rate: Number(m[1]) / Number(m[2]), errors: Number(m[3]), slow: Number(m[4]), unfinished: Number(m[5]) };
  };

  // Warm up (ARP, JIT), then count entries from here on.
  for (const t of targets) {
    await udp(t, 1);
    conns(t, 1);
  }
  const ct0 = Object.fromEntries(targets.map((t) => [t.name, t.ctCount()]));
  const res = Object.fromEntries(targets.map((t) => [t.name, { tcp: [], conn: [], udp: [], udpCpu: [], udp0: [], udp0Cpu: [], made: 0, errors: 0, slow: 0, unfinished: 0 }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      const x = res[t.name];
      x.tcp.push(iperf(t));
      const c = conns(t);
      x.conn.push(c.rate);
      x.made += c.n;
      x.errors += c.errors;
      x.slow += c.slow;
      x.unfinished += c.unfinished;
      const u = await udp(t);
      x.udp.push(u.rate);
      x.udpCpu.push(u.cpu);
    }
    process.stderr.write(`nat round ${r + 1}/${ROUNDS} done\n`);
  }
  const ct1 = Object.fromEntries(targets.map((t) => [t.name, t.ctCount()]));
  // The same UDP with no rules at all: conntrack off the hooks.
  for (const t of targets) t.flush();
  for (const t of targets) await udp(t, 1);
  const rounds0 = Math.ceil(ROUNDS / 2);
  for (let r = 0; r < rounds0; r++) {
    for (const t of targets) {
      const u = await udp(t);
      res[t.name].udp0.push(u.rate);
      res[t.name].udp0Cpu.push(u.cpu);
    }
  }

  const m = (n, k) => median(res[n][k]);
  const pct = (n, k) => (fmt((100 * m(n, k)) / m('kernel', k), 1) + '%').padStart(8);
  console.log(`\nNAT (masquerade) between two namespaces, medians of ${ROUNDS} rounds (no rules: ${rounds0})\n`);
  console.log('router   iperf3 Gb/s  new conn/s  UDP 64 B/s  UDP no rules/s    TCP vs k  conn vs k   UDP vs k  no rules vs k');
  for (const t of targets)
    console.log(
      `${t.name.padEnd(7)} ${fmt(m(t.name, 'tcp'), 2).padStart(12)} ${fmt(m(t.name, 'conn')).padStart(11)} ${fmt(m(t.name, 'udp')).padStart(11)} ${fmt(m(t.name, 'udp0')).padStart(16)}  ${pct(t.name, 'tcp')}   ${pct(t.name, 'conn')}   ${pct(t.name, 'udp')}       ${pct(t.name, 'udp0')}`,
    );
  for (const t of targets) {
    const x = res[t.name];
    console.log(
      `${t.name}: ${fmt(x.made)} connections in the measured rounds (${x.errors} failed, ${x.slow} over 500 ms, ${x.unfinished} unfinished at the end); conntrack -C ${fmt(ct0[t.name])} before, ${fmt(ct1[t.name])} after (a client port used again while its entry is in TIME_WAIT replaces that entry)`,
    );
  }
  console.log(
    `stack CPU per forwarded 64 B datagram: ${fmt(m('stack', 'udpCpu'), 2)} µs with masquerade, ${fmt(m('stack', 'udp0Cpu'), 2)} µs with no rules; UDP with masquerade / no rules = ${(m('stack', 'udp') / m('stack', 'udp0')).toFixed(3)} (kernel ${(m('kernel', 'udp') / m('kernel', 'udp0')).toFixed(3)})`,
  );

  // Conntrack's share: a daemon under the sampling profiler, UDP through it with masquerade.
  await stopStack(st.d);
  const profDir = path.join(WORK, 'nat-prof');
  const prof = await startStack(['--cpu-prof', '--cpu-prof-dir', profDir], 'prof');
  const pt = { ...stack, pid: prof.d.pid };
  await udp(pt, 1);
  // The profile's clock is CLOCK_MONOTONIC in µs, as process.hrtime's: only the measured run counts.
  const from = Number(process.hrtime.bigint() / 1000n);
  const pu = await udp(pt);
  const to = Number(process.hrtime.bigint() / 1000n);
  await stopStack(prof.d);
  const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('nat: the profiled daemon wrote no .cpuprofile');
  const share = profileShare(JSON.parse(fs.readFileSync(path.join(profDir, file), 'utf8')), from, to);
  console.log(
    `\nConntrack and NAT in the stack's time (daemon under --cpu-prof, 64 B UDP through masquerade at ${fmt(pu.rate)}/s): ` +
      `${fmt(share.conntrackPct, 1)}% of ${fmt(share.busyMs)} ms busy (self time in src/conntrack/: ${share.byFile.map(([f, ms]) => `${f} ${fmt((100 * ms) / share.busyMs, 1)}%`).join(', ')}); ` +
      `GC ${fmt(share.gcPct, 1)}%, outside JS ${fmt(share.programPct, 1)}%`,
  );
  console.log(`largest: ${share.topFns.map(([f, ms]) => `${f} ${fmt((100 * ms) / share.busyMs, 1)}%`).join(', ')}`);
}

/**
 * Self time per function from a V8 .cpuprofile, samples between `from` and `to`
 * (µs) only: conntrack's files against the busy (not idle) total.
 */
function profileShare(p, from, to) {
  const self = new Map();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const id = p.samples[i];
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let total = 0;
  let idle = 0;
  let gc = 0;
  let program = 0;
  const byFile = new Map();
  const byFn = new Map();
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    total += us;
    const name = n.callFrame.functionName;
    if (name === '(idle)') idle += us;
    else if (name === '(garbage collector)') gc += us;
    else if (name === '(program)') program += us;
    const f = /\/dist\/conntrack\/([^/]+)\.js$/.exec(n.callFrame.url);
    if (f) {
      byFile.set(f[1] + '.ts', (byFile.get(f[1] + '.ts') ?? 0) + us);
      const fn = `${f[1]}.${name || '(anonymous)'}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const ct = [...byFile.values()].reduce((a, b) => a + b, 0);
  return {
    busyMs: busy / 1000,
    conntrackPct: (100 * ct) / busy,
    gcPct: (100 * gc) / busy,
    programPct: (100 * program) / busy,
    byFile: [...byFile.entries()].sort((a, b) => b[1] - a[1]).map(([f, us]) => [f, us / 1000]),
    topFns: [...byFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([f, us]) => [f, us / 1000]),
  };
}
