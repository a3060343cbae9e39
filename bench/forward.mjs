// Forwarding section of `npm run bench`: the stack as a router between two
// namespaces, against a kernel router namespace, in the same run:
//   ping   ping -f from one side to the other, pings/s (one outstanding)
//   udp    64-byte datagrams/s blasted through, counted where they arrive
//   tcp    iperf3 -t BENCH_TCP_SECONDS through the router at MTU 1500, Gb/s
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SECONDS = Number(process.env.BENCH_TCP_SECONDS ?? 3);
const UDP_SECONDS = Number(process.env.BENCH_UDP_SECONDS ?? 3);

export async function forwardBench(ctx) {
  const { sh, netns, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt, udpTool } = ctx;
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
    const d = spawn(process.execPath, [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
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
    return { name: 'stack', a, b, target: '10.250.71.1', pid: d.pid };
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
    return { name: 'kernel', a, b, target: '10.250.73.1' };
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
  const ping = (t) => {
    const out = sh(`ip netns exec ${t.a} ping -q -f -c 20000 -W 1 ${t.target}`, { allowFail: true, timeoutMs: 300_000 });
    const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/s.exec(out);
    if (!m) throw new Error(`ping through ${t.name}: ${out}`);
    return (Number(m[2]) * 1000) / Math.max(Number(m[3]), 1);
  };
  const udp = async (t) => {
    const before = udpIn(t);
    const out = sh(`ip netns exec ${t.a} ${udpTool} blast ${t.target} 9 64 ${UDP_SECONDS}`, { timeoutMs: (UDP_SECONDS + 30) * 1000 });
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
  for (const t of targets) ping(t);
  const res = Object.fromEntries(targets.map((t) => [t.name, { ping: [], udp: [], tcp: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      res[t.name].ping.push(ping(t));
      res[t.name].udp.push(await udp(t));
      res[t.name].tcp.push(iperf(t));
    }
    process.stderr.write(`forward round ${r + 1}/${ROUNDS} done\n`);
  }
  const m = (n, k) => median(res[n][k]);
  console.log(`\nForwarding between two namespaces, no rules, medians of ${ROUNDS} rounds\n`);
  console.log('router    ping -f/s   UDP 64 B dgrams/s   iperf3 Gb/s   ping vs kernel   UDP vs kernel   TCP vs kernel');
  for (const t of targets)
    console.log(
      `${t.name.padEnd(8)} ${fmt(m(t.name, 'ping')).padStart(10)}  ${fmt(m(t.name, 'udp')).padStart(18)}  ${fmt(m(t.name, 'tcp'), 2).padStart(12)}  ${(fmt((100 * m(t.name, 'ping')) / m('kernel', 'ping'), 1) + '%').padStart(15)}  ${(fmt((100 * m(t.name, 'udp')) / m('kernel', 'udp'), 1) + '%').padStart(14)}  ${(fmt((100 * m(t.name, 'tcp')) / m('kernel', 'tcp'), 1) + '%').padStart(14)}`,
    );
}
