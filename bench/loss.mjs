// Loss section of `npm run bench`: TCP goodput through random loss (1 % and 3 %)
// with 10 ms of added round-trip time, the stack against the kernel's CUBIC
// through the same impairment in the same run.
//
//   tscv-lk (10.233.93.1) -veth- tscv-lm [nft loss] -- tscvla [router daemon: netem delay 5ms on both links]
//     tscvlb -- tscv-ls (10.233.91.1, iperf3 -s) -- tscvle [stack daemon, 10.233.92.2, iperf3 service]
//
// The router is a tapstack daemon (this kernel has no netem): `tc qdisc add dev X root
// netem delay 5ms` on each of its two links adds 5 ms each way. The loss is nft's in the
// kernel router namespace tscv-lm, in its forward chain: `numgen random mod 100 < N drop`
// for TCP segments carrying data, whichever way they go, so every run crosses the same
// impairment. (Not in a sender's own output hook: TCP takes a drop there as a failed
// local send and retries at once, not as loss.) Offloads are off on the kernel's links
// so that nft sees each segment on its own.
//
// Runs, each iperf3 -t BENCH_LOSS_SECONDS from tscv-lk with -C cubic:
//   stack sends      iperf3 -R against the stack's iperf3 service (the stack's cubic sends)
//   kernel sends     iperf3 to the stack's service (the kernel's cubic sends, the stack receives)
//   kernel->kernel   the same two directions against iperf3 -s in tscv-ls (the kernel at both ends)
// The table gives goodput (iperf3's received bits/s) and stack / kernel ratios per
// direction. Plots under bench/out/: the stack's runs from `tapstack trace tcp --svg`
// (the sender's cwnd and throughput), the kernel senders' from `ss -tin` sampled in
// their namespace every 100 ms and drawn with the same chart writer.
//
// Environment: BENCH_LOSS_SECONDS (default 8), BENCH_LOSS_ROUNDS (default 1),
// BENCH_LOSS_RATES (default 1,3: percent).
import { spawn, exec } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SECONDS = Number(process.env.BENCH_LOSS_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_LOSS_ROUNDS ?? 1);
const RATES = (process.env.BENCH_LOSS_RATES ?? '1,3').split(',').map(Number);
const SAMPLE_MS = 100;

function execAsync(cmd) {
  return new Promise((resolve) => exec(cmd, { encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr })));
}

export async function lossBench(ctx) {
  const { sh, netns, waitFor, children, links, WORK, ROOT, fmt, median } = ctx;
  const cli = path.join(ROOT, 'dist/cli.js');
  const { parseTcpInfoText } = await import(path.join(ROOT, 'dist/control/ss-info.js'));
  const { parseTraceCsv, traceSvg } = await import(path.join(ROOT, 'dist/control/trace-files.js'));
  const outDir = path.join(ROOT, 'bench/out');
  fs.mkdirSync(outDir, { recursive: true });

  async function daemon(name, lines, devs) {
    const conf = path.join(WORK, `${name}.conf`);
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    const ctl = path.join(WORK, `${name}.sock`);
    const d = spawn(process.execPath, [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(d);
    links.push(...devs);
    await waitFor(() => fs.existsSync(ctl) && devs.every((dev) => sh(`ip link show ${dev}`, { allowFail: true }).length > 0), 10_000);
    return ctl;
  }

  const K = netns('tscv-lk');
  const M = netns('tscv-lm');
  const S = netns('tscv-ls');
  sh(`ip link add tscvlk0 netns ${K} type veth peer name tscvlm0 netns ${M}`);
  sh(`ip -n ${K} addr add 10.233.93.1/24 dev tscvlk0 && ip -n ${K} link set tscvlk0 up && ip -n ${K} route add default via 10.233.93.2`);
  sh(`ip -n ${M} addr add 10.233.93.2/24 dev tscvlm0 && ip -n ${M} link set tscvlm0 up`);
  sh(`ip netns exec ${M} sysctl -qw net.ipv4.ip_forward=1`);
  const routerCtl = await daemon(
    'loss-router',
    [
      'link add tscvla type tap',
      'link add tscvlb type tap',
      'addr add 10.233.90.2/24 dev tscvla',
      'addr add 10.233.91.2/24 dev tscvlb',
      'route add 10.233.92.0/24 via 10.233.91.1',
      'route add 10.233.93.0/24 via 10.233.90.1',
      'sysctl -w net.ipv4.ip_forward=1',
      'tc qdisc add dev tscvla root netem delay 5ms',
      'tc qdisc add dev tscvlb root netem delay 5ms',
    ],
    ['tscvla', 'tscvlb'],
  );
  const stackCtl = await daemon(
    'loss-stack',
    ['link add tscvle type tap', 'addr add 10.233.92.2/24 dev tscvle', 'route add default via 10.233.92.1', 'service add iperf3 tcp :5201'],
    ['tscvle'],
  );
  for (const [dev, ns, addr, gw] of [
    ['tscvla', M, '10.233.90.1', '10.233.90.2'],
    ['tscvlb', S, '10.233.91.1', '10.233.91.2'],
    ['tscvle', S, '10.233.92.1', null],
  ]) {
    sh(`ip link set ${dev} netns ${ns}`);
    sh(`ip -n ${ns} addr add ${addr}/24 dev ${dev} && ip -n ${ns} link set ${dev} up`);
    if (gw) sh(`ip -n ${ns} route add default via ${gw}`);
  }
  sh(`ip netns exec ${S} sysctl -qw net.ipv4.ip_forward=1`);
  // nft in tscv-lm must see each segment on its own: no TSO/GSO from the kernel ends, no GRO on the way in.
  sh(`ip netns exec ${K} ethtool -K tscvlk0 tso off gso off gro off`);
  sh(`ip netns exec ${M} ethtool -K tscvlm0 tso off gso off gro off`);
  sh(`ip netns exec ${M} ethtool -K tscvla gso off gro off`, { allowFail: true });
  sh(`ip netns exec ${S} ethtool -K tscvlb tso off gso off gro off`, { allowFail: true });
  const server = spawn('ip', ['netns', 'exec', S, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
  children.push(server);
  await waitFor(() => sh(`ip netns exec ${S} ss -tln`, { allowFail: true }).includes(':5201'), 5000);
  // ARP first, then the path's RTT.
  sh(`ip netns exec ${K} ping -c 2 -i 0.2 10.233.92.2`, { allowFail: true });
  const rttM = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\//.exec(sh(`ip netns exec ${K} ping -c 10 -i 0.1 10.233.92.2`));
  const rtt = rttM ? `${rttM[1]}/${rttM[2]}` : '?';

  function setLoss(pct) {
    sh(`ip netns exec ${M} nft delete table inet tscvloss`, { allowFail: true });
    if (pct === 0) return;
    const rule = `ip protocol tcp meta length gt 200 numgen random mod 100 lt ${pct} drop`;
    sh(`ip netns exec ${M} nft -f - <<'EOF'\ntable inet tscvloss {\n chain lossy { type filter hook forward priority 0; ${rule}; }\n}\nEOF`);
  }

  /** Samples the kernel sender's connection (`filter` in `ns`) with ss -tin until `done` settles. */
  async function sampleSs(ns, filter, done) {
    const samples = [];
    const start = Date.now();
    let prev = null;
    let finished = false;
    done.then(() => (finished = true));
    while (!finished) {
      const at = Date.now();
      const r = await execAsync(`ip netns exec ${ns} ss -tin ${filter}`);
      const infos = r.stdout
        .split('\n')
        .filter((l) => l.startsWith('\t'))
        .map((l) => {
          try {
            return parseTcpInfoText(l);
          } catch {
            return null;
          }
        })
        .filter((i) => i !== null && i.bytesAcked > 0);
      if (infos.length > 0) {
        const i = infos.reduce((a, b) => (b.bytesAcked > a.bytesAcked ? b : a));
        const t = (at - start) / 1000;
        const tput = prev !== null && t > prev.t ? ((i.bytesAcked - prev.bytes) * 8) / (t - prev.t) : 0;
        samples.push({
          t,
          local: ns,
          peer: filter,
          state: 'ESTAB',
          cwnd: i.sndCwnd,
          ssthresh: i.sndSsthresh > 0 && i.sndSsthresh < 0xffff ? i.sndSsthresh : null,
          srttMs: i.rtt / 1000,
          inflightBytes: i.unacked * i.sndMss,
          delivered: i.delivered,
          bytesAcked: i.bytesAcked,
          bytesReceived: i.bytesReceived,
          retrans: i.totalRetrans,
          lost: i.lost,
          pacingRateBps: i.pacingRate * 8,
          deliveryRateBps: i.deliveryRate * 8,
          throughputBps: tput,
        });
        prev = { t, bytes: i.bytesAcked };
      }
      const wait = SAMPLE_MS - (Date.now() - at);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    return samples;
  }

  /** One iperf3 run from K; returns Mb/s received and the congestion control each end used. */
  async function iperf(host, reverse) {
    const r = await execAsync(`ip netns exec ${K} iperf3 -c ${host} -p 5201 -t ${SECONDS} -C cubic -J${reverse ? ' -R' : ''}`);
    let j;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 to ${host}${reverse ? ' -R' : ''}: ${r.stdout.slice(0, 300)}${r.stderr}`);
    }
    if (j.error) throw new Error(`iperf3 to ${host}${reverse ? ' -R' : ''}: ${j.error}`);
    return { mbps: j.end.sum_received.bits_per_second / 1e6, cc: `${j.end.sender_tcp_congestion ?? '?'}/${j.end.receiver_tcp_congestion ?? '?'}`, retrans: j.end.sum_sent.retransmits ?? 0 };
  }

  /** The stack's sending connection traced by `tapstack trace tcp` while `run` goes. */
  async function withStackTrace(file, run) {
    const csv = path.join(WORK, 'trace.csv');
    const tr = execAsync(`${process.execPath} ${cli} --ctl ${stackCtl} trace tcp sport = :5201 --interval ${SAMPLE_MS} --duration ${SECONDS + 1.5} --csv ${csv}`);
    const res = await run();
    const t = await tr;
    if (t.code !== 0) throw new Error(`trace tcp: ${t.stderr}`);
    const all = parseTraceCsv(fs.readFileSync(csv, 'utf8'));
    // The data stream: the connection that sent the most.
    const most = new Map();
    for (const s of all) most.set(s.peer, Math.max(most.get(s.peer) ?? 0, s.bytesAcked));
    const peer = [...most.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    fs.writeFileSync(file, traceSvg(all.filter((s) => s.peer === peer), 'stack sends (tapstack trace tcp)'));
    return res;
  }

  /** A kernel sender's connection sampled with ss while `run` goes. */
  async function withSsTrace(file, ns, filter, title, run) {
    let settle;
    const done = new Promise((r) => (settle = r));
    const sampling = sampleSs(ns, filter, done);
    const res = await run();
    settle();
    const samples = await sampling;
    fs.writeFileSync(file, traceSvg(samples, title));
    return res;
  }

  const CASES = [
    { key: 'stack-send', label: 'stack sends', host: '10.233.92.2', reverse: true, ref: 'kernel-send-r' },
    { key: 'kernel-send-r', label: 'kernel sends (ref.)', host: '10.233.91.1', reverse: true },
    { key: 'stack-recv', label: 'stack receives', host: '10.233.92.2', reverse: false, ref: 'kernel-recv' },
    { key: 'kernel-recv', label: 'kernel receives (ref.)', host: '10.233.91.1', reverse: false },
  ];
  const res = {};
  const plots = [];
  // Warm up (ARP, JIT) without loss.
  setLoss(0);
  await iperf('10.233.92.2', true);
  for (const pct of RATES) {
    setLoss(pct);
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of CASES) {
        const file = path.join(outDir, `loss-${pct}pct-${c.key}.svg`);
        const run = () => iperf(c.host, c.reverse);
        let out;
        if (c.key === 'stack-send') out = await withStackTrace(file, run);
        else if (c.key === 'stack-recv') out = await withSsTrace(file, K, 'dport = :5201', `kernel sends to the stack (ss -tin), ${pct}% loss`, run);
        else if (c.key === 'kernel-send-r') out = await withSsTrace(file, S, 'sport = :5201', `kernel sends to the kernel (ss -tin), ${pct}% loss`, run);
        else out = await withSsTrace(file, K, 'dport = :5201', `kernel sends to the kernel (ss -tin), ${pct}% loss`, run);
        if (r === 0) plots.push(path.relative(ROOT, file));
        const k = `${pct}:${c.key}`;
        (res[k] ??= { mbps: [], cc: out.cc, retrans: [] }).mbps.push(out.mbps);
        res[k].retrans.push(out.retrans);
      }
      process.stderr.write(`loss ${pct}% round ${r + 1}/${ROUNDS} done\n`);
    }
  }
  setLoss(0);
  // The stack's own view of what it sent, for the record.
  const nstat = JSON.parse(sh(`${process.execPath} ${cli} --ctl ${stackCtl} nstat -j -z`)).kernel;
  void routerCtl;

  console.log(`\nTCP through loss, iperf3 -t ${SECONDS} -C cubic, one stream, RTT min/avg ${rtt} ms (netem on the router daemon), loss by nft numgen; Mb/s, medians of ${ROUNDS} round(s)\n`);
  console.log('loss  direction        stack Mb/s   kernel->kernel Mb/s   stack / kernel   cc (sender/receiver)   sender retrans');
  const figures = [];
  for (const pct of RATES) {
    for (const c of CASES.filter((x) => x.ref)) {
      const s = res[`${pct}:${c.key}`];
      const k = res[`${pct}:${c.ref}`];
      const sm = median(s.mbps);
      const km = median(k.mbps);
      figures.push({ lossPct: pct, direction: c.label, stackMbps: sm, kernelMbps: km, ratio: sm / km, cc: s.cc, kernelCc: k.cc });
      console.log(
        `${(pct + '%').padEnd(5)} ${c.label.padEnd(15)} ${fmt(sm, 2).padStart(11)}  ${fmt(km, 2).padStart(20)}  ${(fmt((100 * sm) / km, 1) + '%').padStart(15)}   ${`${s.cc} | ${k.cc}`.padEnd(21)}  ${String(median(s.retrans)).padStart(13)}`,
      );
    }
  }
  console.log(`\nplots: ${plots.join(', ')}`);
  console.log(`stack: TcpRetransSegs ${nstat.TcpRetransSegs ?? 0}, TcpExtTCPSackRecovery ${nstat.TcpExtTCPSackRecovery ?? 0}, TcpExtTCPLossProbes ${nstat.TcpExtTCPLossProbes ?? 0}`);
  fs.writeFileSync(path.join(outDir, 'loss.json'), JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, rttMinAvgMs: rtt, figures, plots }, null, 1) + '\n');
}
