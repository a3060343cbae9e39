// Forwarding section of `npm run bench`: the stack as a router between two
// namespaces, against a kernel router namespace, in the same run, with the same
// nft ruleset loaded on both (`nft -f`) in turn:
//   0 rules             no table at all
//   100 rules           100 plain forward-chain rules that never match the traffic
//   10,000 rules        10,000 of them
//   10,000-element set  one interval set of 10,000 address blocks that never match,
//                       `ip saddr @set drop`, then a final accept
// and for each:
//   ping   ping -f from one side to the other, pings/s (one outstanding)
//   udp    64-byte datagrams/s blasted through, counted where they arrive
//   tcp    iperf3 -t BENCH_FORWARD_SECONDS through the router at MTU 1500, Gb/s
// The table gives stack/kernel ratios and the stack's loss from 0 rules to the
// 10,000-element set (and to 10,000 plain rules).
//
// Environment: BENCH_FORWARD_ROUNDS (default: BENCH_ROUNDS up to 3),
// BENCH_FORWARD_SECONDS (each UDP and TCP run, default 2), BENCH_FORWARD_PINGS
// (pings per ping -f run, default 10000), BENCH_FORWARD_CASES (a comma list of
// 0,100,10000,set; default all).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SECONDS = Number(process.env.BENCH_FORWARD_SECONDS ?? 2);
const PINGS = Number(process.env.BENCH_FORWARD_PINGS ?? 10000);
const CASES = (process.env.BENCH_FORWARD_CASES ?? '0,100,10000,set').split(',');

/** `n` forward rules none of the bench's packets match (sources in 198.18.0.0/15, the benchmarking block). */
function plainRules(n) {
  const lines = ['table ip bench {', '\tchain fwd_filter {', '\t\ttype filter hook forward priority filter; policy accept;'];
  for (let i = 0; i < n; i++) lines.push(`\t\tip saddr 198.18.${(i >> 8) & 255}.${i & 255} udp dport ${1000 + (i % 50000)} drop`);
  lines.push('\t\taccept', '\t}', '}', '');
  return lines.join('\n');
}

/** An interval set of `n` /30 blocks in 198.18.0.0/15, matched once, then accept. */
function setRules(n) {
  const elems = [];
  for (let i = 0; i < n; i++) elems.push(`198.${18 + (i >> 14)}.${(i >> 6) & 255}.${(i & 63) * 4}/30`);
  return [
    'table ip bench {',
    '\tset blocked {',
    '\t\ttype ipv4_addr',
    '\t\tflags interval',
    `\t\telements = { ${elems.join(', ')} }`,
    '\t}',
    '',
    '\tchain fwd_filter {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tip saddr @blocked drop',
    '\t\taccept',
    '\t}',
    '}',
    '',
  ].join('\n');
}

const CASE_DEFS = {
  0: { label: '0 rules', text: null },
  100: { label: '100 rules', text: () => plainRules(100) },
  10000: { label: '10,000 rules', text: () => plainRules(10000) },
  set: { label: '10,000-element set', text: () => setRules(10000) },
};

export async function forwardBench(ctx) {
  const { sh, netns, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt, udpTool } = ctx;
  const rounds = Number(process.env.BENCH_FORWARD_ROUNDS ?? Math.min(ROUNDS, 3));
  const cli = path.join(ROOT, 'dist/cli.js');

  /** The stack routes between 10.250.70.0/24 (namespace a) and 10.250.71.0/24 (namespace b). */
  async function stackRouter() {
    const a = netns('tsb-fsa');
    const b = netns('tsb-fsb');
    const conf = path.join(WORK, 'router.conf');
    links.push('tsbfa', 'tsbfb');
    fs.writeFileSync(
      conf,
      [
        'link add tsbfa type tap',
        'link add tsbfb type tap',
        'addr add 10.250.70.2/24 dev tsbfa',
        'addr add 10.250.71.2/24 dev tsbfb',
        'sysctl -w net.ipv4.ip_forward=1',
        '',
      ].join('\n'),
    );
    const ctl = path.join(WORK, 'router.sock');
    const args = [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'];
    // BENCH_CPU_PROF=DIR: the router daemon writes a V8 CPU profile there when it stops.
    if (process.env.BENCH_CPU_PROF) args.unshift('--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF);
    const d = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(d);
    await waitFor(() => fs.existsSync(ctl) && sh('ip link show tsbfb', { allowFail: true }).length > 0, 10_000);
    for (const [dev, ns, net] of [
      ['tsbfa', a, 70],
      ['tsbfb', b, 71],
    ]) {
      sh(`ip link set ${dev} netns ${ns}`);
      sh(`ip -n ${ns} addr add 10.250.${net}.1/24 dev ${dev} && ip -n ${ns} link set ${dev} up`);
      sh(`ip -n ${ns} route add default via 10.250.${net}.2`);
    }
    const nft = (args) => sh(`${process.execPath} ${cli} --ctl ${ctl} nft ${args}`, { timeoutMs: 300_000 });
    return { name: 'stack', a, b, target: '10.250.71.1', pid: d.pid, nft };
  }

  /** The same through a kernel router namespace. */
  function kernelRouter() {
    const a = netns('tsb-fka');
    const r = netns('tsb-fkr');
    const b = netns('tsb-fkb');
    sh(`ip link add tsbka netns ${a} type veth peer name tsbkra netns ${r}`);
    sh(`ip link add tsbkb netns ${b} type veth peer name tsbkrb netns ${r}`);
    sh(`ip -n ${a} addr add 10.250.72.1/24 dev tsbka && ip -n ${a} link set tsbka up && ip -n ${a} route add default via 10.250.72.2`);
    sh(`ip -n ${b} addr add 10.250.73.1/24 dev tsbkb && ip -n ${b} link set tsbkb up && ip -n ${b} route add default via 10.250.73.2`);
    sh(`ip -n ${r} addr add 10.250.72.2/24 dev tsbkra && ip -n ${r} link set tsbkra up`);
    sh(`ip -n ${r} addr add 10.250.73.2/24 dev tsbkrb && ip -n ${r} link set tsbkrb up`);
    sh(`ip netns exec ${r} sysctl -qw net.ipv4.ip_forward=1`);
    const nft = (args) => sh(`ip netns exec ${r} nft ${args}`, { timeoutMs: 300_000 });
    return { name: 'kernel', a, b, target: '10.250.73.1', nft };
  }

  const targets = [await stackRouter(), kernelRouter()];
  for (const t of targets) {
    children.push(spawn('ip', ['netns', 'exec', t.b, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' }));
    children.push(spawn('ip', ['netns', 'exec', t.b, udpTool, 'discard', '9'], { stdio: 'ignore' }));
  }
  const udpIn = (t) => {
    const snmp = sh(`ip netns exec ${t.b} cat /proc/net/snmp`).split('\n').filter((l) => l.startsWith('Udp:'));
    return Number(snmp[1].split(/\s+/)[snmp[0].split(/\s+/).indexOf('InDatagrams')]);
  };
  const ping = (t, count = PINGS) => {
    const out = sh(`ip netns exec ${t.a} ping -q -f -c ${count} -W 1 ${t.target}`, { allowFail: true, timeoutMs: 300_000 });
    const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
    if (!m) throw new Error(`ping through ${t.name}: ${out}`);
    return (Number(m[2]) * 1000) / Math.max(Number(m[3]), 1);
  };
  const udp = async (t, seconds = SECONDS) => {
    const before = udpIn(t);
    const out = sh(`ip netns exec ${t.a} ${udpTool} blast ${t.target} 9 64 ${seconds}`, { timeoutMs: (seconds + 30) * 1000 });
    const m = /sent (\d+) seconds ([\d.]+)/.exec(out);
    if (!m) throw new Error(`udp through ${t.name}: ${out}`);
    await new Promise((r) => setTimeout(r, 300));
    return (udpIn(t) - before) / Number(m[2]);
  };
  const iperf = (t) => {
    const out = sh(`ip netns exec ${t.a} iperf3 -c ${t.target} -p 5201 -t ${SECONDS} -J`, { allowFail: true, timeoutMs: (SECONDS + 30) * 1000 });
    try {
      return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
    } catch {
      throw new Error(`iperf3 through ${t.name}: ${out.slice(0, 300)}`);
    }
  };
  await waitFor(() => sh(`ip netns exec ${targets[0].b} ss -Hltn sport = :5201`, { allowFail: true }).trim() !== '', 5000);

  // Warm-up (the stack's JIT), not counted.
  for (const t of targets) {
    ping(t, 5000);
    await udp(t, 1);
  }

  // Rounds outermost, so each case sees the machine's ups and downs alike (each
  // round in another order); each round loads each case's ruleset afresh on both
  // routers.
  const res = {};
  const loadMs = {};
  for (const c of CASES) {
    const def = CASE_DEFS[c];
    if (def === undefined) throw new Error(`BENCH_FORWARD_CASES: unknown case ${c} (0, 100, 10000, set)`);
    if (def.text !== null) fs.writeFileSync(path.join(WORK, `forward-${c}.nft`), def.text());
    res[c] = Object.fromEntries(targets.map((t) => [t.name, { ping: [], udp: [], tcp: [] }]));
    loadMs[c] = {};
  }
  for (let r = 0; r < rounds; r++) {
    // Each round starts at another case, so no case always runs first or last.
    const order = CASES.map((_, i) => CASES[(i + r) % CASES.length]);
    for (const c of order) {
      for (const t of targets) {
        t.nft('flush ruleset');
        const t0 = Date.now();
        if (CASE_DEFS[c].text !== null) t.nft(`-f ${path.join(WORK, `forward-${c}.nft`)}`);
        loadMs[c][t.name] = Date.now() - t0;
      }
      for (const t of targets) {
        res[c][t.name].ping.push(ping(t));
        res[c][t.name].udp.push(await udp(t));
        res[c][t.name].tcp.push(iperf(t));
      }
    }
    process.stderr.write(`forward round ${r + 1}/${rounds} done\n`);
  }
  for (const t of targets) t.nft('flush ruleset');

  const m = (c, n, k) => median(res[c][n][k]);
  const pct = (x) => `${fmt(x, 1)}%`;
  console.log(`\nForwarding between two namespaces by ruleset (nft -f on both), medians of ${rounds} rounds`);
  console.log(`(ping -f -c ${PINGS}; UDP and iperf3 runs of ${SECONDS} s)\n`);
  console.log('ruleset              router    ping -f/s  UDP 64 B dgrams/s  iperf3 Gb/s  ping vs kernel  UDP vs kernel  TCP vs kernel');
  for (const c of CASES) {
    for (const t of targets)
      console.log(
        `${(t.name === 'stack' ? CASE_DEFS[c].label : '').padEnd(20)} ${t.name.padEnd(7)} ${fmt(m(c, t.name, 'ping')).padStart(11)}  ${fmt(m(c, t.name, 'udp')).padStart(17)}  ${fmt(m(c, t.name, 'tcp'), 2).padStart(11)}  ${pct((100 * m(c, t.name, 'ping')) / m(c, 'kernel', 'ping')).padStart(14)}  ${pct((100 * m(c, t.name, 'udp')) / m(c, 'kernel', 'udp')).padStart(13)}  ${pct((100 * m(c, t.name, 'tcp')) / m(c, 'kernel', 'tcp')).padStart(13)}`,
      );
  }
  if (CASES.includes('0')) {
    for (const c of ['set', '10000'].filter((x) => CASES.includes(x))) {
      const loss = (k) => pct(100 * (1 - m(c, 'stack', k) / m('0', 'stack', k)));
      console.log(
        `\nThe stack's loss from 0 rules to the ${CASE_DEFS[c].label}: ping ${loss('ping')}, UDP ${loss('udp')}, TCP ${loss('tcp')}${c === 'set' ? ' (target: under 20%)' : ''}`,
      );
    }
  }
  console.log(`\nnft -f load times in the last round (ms), stack / kernel: ${CASES.filter((c) => CASE_DEFS[c].text !== null).map((c) => `${CASE_DEFS[c].label} ${loadMs[c].stack} / ${loadMs[c].kernel}`).join('; ')}`);
}
