// TCP section of `npm run bench`, in the same run as its references:
//
// iperf3 (-t BENCH_TCP_SECONDS, one stream), up = from the client's namespace to the
// server, down = -R:
//   stack        the real iperf3 client in a namespace against the stack's built-in
//                iperf3 service over a TAP device, at MTU 1500 and 9000
//   kernel       iperf3 client and server in two namespaces over a veth pair, at the
//                same MTUs
//   pasta        iperf3 in a namespace made by pasta (passt), to a server on the
//                host side, MTU 1500
//   slirp4netns  the same through slirp4netns
// HTTP, Node's http server with the same handler on both:
//   stack        examples/http-server.mjs (node:http over tapstack on a TAP)
//   kernel       bench/http-kernel.mjs (node:http over the kernel, veth)
//   keep-alive   wrk -t1 -c1: requests/s on one connection
//   new conns    ab -c 16 without keep-alive: requests/s, one connection each
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SECONDS = Number(process.env.BENCH_TCP_SECONDS ?? 3);
const HTTP_SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 3);

export async function tcpBench(ctx) {
  const { sh, netns, peerSide, waitFor, children, links, WORK, ROOT, ROUNDS, median, fmt } = ctx;
  const cli = path.join(ROOT, 'dist/cli.js');

  /** A daemon with the iperf3 service on a TAP of `mtu`, its kernel side in a namespace. */
  async function stackTarget(name, mtu, octet) {
    const ns = netns(`tsb-t${octet}`);
    const dev = `tsbt${octet}`;
    links.push(dev);
    const conf = path.join(WORK, `${name}.conf`);
    fs.writeFileSync(conf, [`link add ${dev} type tap mtu ${mtu}`, `addr add 10.250.${octet}.2/24 dev ${dev}`, 'service add iperf3 tcp :5201', ''].join('\n'));
    const ctl = path.join(WORK, `${name}.sock`);
    const d = spawn(process.execPath, [cli, 'daemon', '-c', conf, '--ctl', ctl, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(d);
    await waitFor(() => fs.existsSync(ctl) && sh(`ip link show ${dev}`, { allowFail: true }).length > 0, 10_000);
    peerSide(dev, ns, `10.250.${octet}.1`);
    sh(`ip -n ${ns} link set ${dev} mtu ${mtu}`);
    return { name, ns, host: `10.250.${octet}.2`, pid: d.pid };
  }

  /** Two namespaces over a veth pair of `mtu`, iperf3 -s in the second. */
  function kernelTarget(name, mtu, octet) {
    const a = netns(`tsb-k${octet}a`);
    const b = netns(`tsb-k${octet}b`);
    sh(`ip link add tsbk${octet}a netns ${a} mtu ${mtu} type veth peer name tsbk${octet}b netns ${b} mtu ${mtu}`);
    sh(`ip -n ${a} addr add 10.250.${octet}.1/24 dev tsbk${octet}a && ip -n ${a} link set tsbk${octet}a up`);
    sh(`ip -n ${b} addr add 10.250.${octet}.2/24 dev tsbk${octet}b && ip -n ${b} link set tsbk${octet}b up`);
    const s = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
    children.push(s);
    return { name, ns: a, serverNs: b, host: `10.250.${octet}.2` };
  }

  /**
   * A "host" namespace with an iperf3 server and a default route (pasta and
   * slirp4netns copy the host's routing), for the userspace references.
   */
  function hostNamespace() {
    const h = netns('tsb-uh');
    const g = netns('tsb-ug');
    sh(`ip link add tsbu0 netns ${h} type veth peer name tsbu1 netns ${g}`);
    sh(`ip -n ${h} addr add 10.250.60.1/24 dev tsbu0 && ip -n ${h} link set tsbu0 up`);
    sh(`ip -n ${g} addr add 10.250.60.254/24 dev tsbu1 && ip -n ${g} link set tsbu1 up`);
    sh(`ip -n ${h} route add default via 10.250.60.254`);
    const s = spawn('ip', ['netns', 'exec', h, 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
    children.push(s);
    return h;
  }

  function parseIperf(out, what) {
    try {
      const j = JSON.parse(out);
      if (j.error) throw new Error(j.error);
      return j.end.sum_received.bits_per_second;
    } catch (e) {
      throw new Error(`iperf3 ${what}: ${e.message}\n${out.slice(0, 400)}`);
    }
  }

  /** Gb/s of one iperf3 run from `ns` (or through `wrap`) to `host`. */
  function iperf(t, reverse) {
    const args = `-c ${t.host} -p 5201 -t ${SECONDS} -J${reverse ? ' -R' : ''}`;
    const cmd = t.wrap ? t.wrap(`iperf3 ${args}`) : `ip netns exec ${t.ns} iperf3 ${args}`;
    const out = sh(cmd, { allowFail: true, timeoutMs: (SECONDS + 30) * 1000 });
    return parseIperf(out, `${t.name}${reverse ? ' -R' : ''}`) / 1e9;
  }

  const targets = [await stackTarget('stack-1500', 1500, 51), await stackTarget('stack-9000', 9000, 52), kernelTarget('kernel-1500', 1500, 53), kernelTarget('kernel-9000', 9000, 54)];
  const h = hostNamespace();
  const haveTool = (t) => sh(`command -v ${t}`, { allowFail: true }).trim() !== '';
  if (haveTool('pasta'))
    targets.push({
      name: 'pasta-1500',
      host: '10.250.60.254',
      // pasta maps the gateway's address to the host side's loopback.
      wrap: (cmd) => `ip netns exec ${h} pasta --quiet --runas 0 -I pst0 --config-net -- ${cmd} 2>/dev/null`,
    });
  if (haveTool('slirp4netns')) {
    // slirp4netns attaches to the namespace of a process; 10.0.2.2 is the host side's loopback.
    const holder = spawn('ip', ['netns', 'exec', h, 'unshare', '-n', 'sleep', '100000'], { stdio: 'ignore' });
    children.push(holder);
    await waitFor(() => sh(`pgrep -f "unshare -n sleep 100000"`, { allowFail: true }).trim() !== '', 5000);
    await new Promise((r) => setTimeout(r, 200));
    const pid = sh(`pgrep -xf "sleep 100000"`, { allowFail: true }).trim().split('\n')[0];
    const sl = spawn('ip', ['netns', 'exec', h, 'slirp4netns', '--configure', '--mtu=1500', pid, 'tap0'], { stdio: 'ignore' });
    children.push(sl);
    await waitFor(() => sh(`nsenter -t ${pid} -n ip -br addr show tap0`, { allowFail: true }).includes('10.0.2.100'), 5000);
    targets.push({ name: 'slirp4netns-1500', host: '10.0.2.2', wrap: (cmd) => `nsenter -t ${pid} -n ${cmd}` });
  }
  // Warm up: ARP, JIT.
  for (const t of targets) iperf({ ...t }, false);
  const res = Object.fromEntries(targets.map((t) => [t.name, { up: [], down: [], cpu: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of targets) {
      res[t.name].up.push(iperf(t, false));
      res[t.name].down.push(iperf(t, true));
    }
    process.stderr.write(`tcp round ${r + 1}/${ROUNDS} done\n`);
  }
  const m = (n, d) => median(res[n][d]);
  console.log(`\nTCP, iperf3 -t ${SECONDS}, one stream, Gb/s, medians of ${ROUNDS} rounds (up: client namespace to server; down: -R)\n`);
  console.log('target              up Gb/s   down Gb/s   up vs kernel   down vs kernel');
  for (const t of targets) {
    const mtu = t.name.split('-')[1];
    const k = `kernel-${mtu}`;
    console.log(
      `${t.name.padEnd(18)} ${fmt(m(t.name, 'up'), 2).padStart(8)}  ${fmt(m(t.name, 'down'), 2).padStart(10)}  ${(fmt((100 * m(t.name, 'up')) / m(k, 'up'), 1) + '%').padStart(13)}  ${(fmt((100 * m(t.name, 'down')) / m(k, 'down'), 1) + '%').padStart(15)}`,
    );
  }
  for (const o of ['pasta-1500', 'slirp4netns-1500'])
    if (res[o]) console.log(`stack-1500 / ${o}: up ${(m('stack-1500', 'up') / m(o, 'up')).toFixed(2)}x, down ${(m('stack-1500', 'down') / m(o, 'down')).toFixed(2)}x`);

  // ---- HTTP ----
  const webNs = netns('tsb-w');
  const wdev = 'tsbw0';
  links.push(wdev);
  const web = spawn(process.execPath, [path.join(ROOT, 'examples/http-server.mjs'), '--dev', wdev, '--addr', '10.250.61.2/24', '--port', '8080'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(web);
  let webOut = '';
  web.stdout.on('data', (b) => (webOut += b));
  await waitFor(() => webOut.includes('listening'), 10_000);
  peerSide(wdev, webNs, '10.250.61.1');
  const kweb = kernelTarget('kernel-web', 1500, 62);
  const kw = spawn('ip', ['netns', 'exec', kweb.serverNs, process.execPath, path.join(ROOT, 'bench/http-kernel.mjs'), '10.250.62.2', '8080'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(kw);
  let kwOut = '';
  kw.stdout.on('data', (b) => (kwOut += b));
  await waitFor(() => kwOut.includes('listening'), 10_000);
  const webTargets = [
    { name: 'stack', ns: webNs, url: 'http://10.250.61.2:8080/', pid: web.pid },
    { name: 'kernel', ns: kweb.ns, url: 'http://10.250.62.2:8080/', pid: kw.pid },
  ];
  const wrk = (t) => {
    const out = sh(`ip netns exec ${t.ns} wrk -t1 -c1 -d${HTTP_SECONDS}s ${t.url}`, { timeoutMs: (HTTP_SECONDS + 30) * 1000 });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const errs = /Non-2xx|Socket errors/.exec(out);
    if (!rps) throw new Error(`wrk ${t.name}: ${out}`);
    if (errs) throw new Error(`wrk ${t.name} saw errors: ${out}`);
    return Number(rps[1]);
  };
  const ab = (t) => {
    const n = 4000;
    const out = sh(`ip netns exec ${t.ns} ab -q -n ${n} -c 16 ${t.url}`, { timeoutMs: 120_000 });
    const rps = /Requests per second:\s+([\d.]+)/.exec(out);
    const failed = /Failed requests:\s+(\d+)/.exec(out);
    if (!rps || !failed) throw new Error(`ab ${t.name}: ${out}`);
    if (Number(failed[1]) !== 0) throw new Error(`ab ${t.name}: ${failed[1]} failed requests`);
    return Number(rps[1]);
  };
  for (const t of webTargets) wrk(t);
  const hres = Object.fromEntries(webTargets.map((t) => [t.name, { ka: [], nc: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of webTargets) {
      hres[t.name].ka.push(wrk(t));
      hres[t.name].nc.push(ab(t));
    }
    process.stderr.write(`http round ${r + 1}/${ROUNDS} done\n`);
  }
  const hm = (n, d) => median(hres[n][d]);
  console.log(`\nHTTP, node:http with the same handler, medians of ${ROUNDS} rounds\n`);
  console.log('target    keep-alive req/s (wrk -c1)   new connections/s (ab -c16)   keep-alive vs kernel   new conns vs kernel');
  for (const t of webTargets)
    console.log(
      `${t.name.padEnd(8)} ${fmt(hm(t.name, 'ka')).padStart(27)}  ${fmt(hm(t.name, 'nc')).padStart(28)}  ${(fmt((100 * hm(t.name, 'ka')) / hm('kernel', 'ka'), 1) + '%').padStart(21)}  ${(fmt((100 * hm(t.name, 'nc')) / hm('kernel', 'nc'), 1) + '%').padStart(20)}`,
    );
}
