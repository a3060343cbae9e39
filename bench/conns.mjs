// Many-connections section of `npm run bench` (BENCH_SECTIONS=conns): the stack's
// HTTP server (bench/http-stack.mjs: node:http over tapstack on a TAP) under
//
//   hold    BENCH_CONNS (default 10,000) concurrent keep-alive connections from
//           bench/conn-tool.c `hold`, each answered, held, asked again, closed:
//           RSS and JS heap per connection (after a full GC) and what is left after;
//           the same against node:http over the kernel (veth) for reference
//   wrk     wrk -t2 -c 1000 for BENCH_CONNS_SECONDS (default 5): requests/s and socket
//           errors, with the TAP's kernel-side queue at the kernel's default
//           txqueuelen (1000) and at BENCH_CONNS_TXQLEN (default 4096)
//   churn   ab -c 100 without keep-alive (the server closes first, so TIME_WAIT is
//           the stack's) for BENCH_CONNS_CHURN connections (default 200,000) in four
//           steps: RSS, heap, TIME_WAIT count and TcpExtTCPTimeWaitOverflow after each
//
// The load's namespace gets ip_local_port_range 1024 65000. Results go to
// bench/out/conns.json. BENCH_CONNS_TW_BUCKETS sets the stack's net.ipv4.tcp_max_tw_buckets.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const CONNS = Number(process.env.BENCH_CONNS ?? 10000);
const SECONDS = Number(process.env.BENCH_CONNS_SECONDS ?? 5);
const TXQLEN = Number(process.env.BENCH_CONNS_TXQLEN ?? 4096);
const CHURN = Number(process.env.BENCH_CONNS_CHURN ?? 200000);
const TW_BUCKETS = process.env.BENCH_CONNS_TW_BUCKETS;

export async function connsBench(ctx) {
  const { sh, netns, peerSide, waitFor, children, links, WORK, ROOT, fmt } = ctx;
  const tool = path.join(WORK, 'conn-tool');
  execFileSync('cc', ['-O2', '-o', tool, path.join(ROOT, 'bench/conn-tool.c')]);
  const ns = netns('tscn-c');
  const dev = 'tscnc0';
  links.push(dev);
  const url = 'http://10.233.126.2:8080/';
  const sysctls = TW_BUCKETS ? [`net.ipv4.tcp_max_tw_buckets=${TW_BUCKETS}`] : [];
  const srv = spawn(process.execPath, ['--expose-gc', path.join(ROOT, 'bench/http-stack.mjs'), dev, '10.233.126.2/24', '8080', '120', ...sysctls], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(srv);
  const lines = [];
  let waiting = null;
  readline.createInterface({ input: srv.stdout }).on('line', (l) => {
    if (waiting !== null) {
      const w = waiting;
      waiting = null;
      w(l);
    } else lines.push(l);
  });
  await waitFor(() => lines.some((l) => l.includes('listening')), 10_000);
  peerSide(dev, ns, '10.233.126.1');
  sh(`ip netns exec ${ns} sysctl -q -w net.ipv4.ip_local_port_range="1024 65000"`);

  /** The server's stats line, after a full GC. */
  const stats = () =>
    new Promise((resolve) => {
      waiting = (l) => resolve(JSON.parse(l));
      srv.stdin.write('gc\n');
    });
  const settle = (ms) => new Promise((r) => setTimeout(r, ms));
  const mb = (b) => fmt(b / 1048576, 1);
  const result = { conns: CONNS };

  // Warm up: JIT, ARP, the first connections.
  sh(`ip netns exec ${ns} wrk -t1 -c10 -d1s ${url}`);
  await settle(500);
  const base = await stats();

  // ---- hold ----
  const hold = spawn('ip', ['netns', 'exec', ns, tool, 'hold', '10.233.126.2', '8080', String(CONNS), '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(hold);
  let holdOut = '';
  hold.stdout.on('data', (b) => (holdOut += b));
  await waitFor(() => holdOut.includes('open ') || hold.exitCode !== null, 180_000);
  const held = await stats();
  await waitFor(() => holdOut.includes('closed') || hold.exitCode !== null, 180_000);
  // The clients' FINs come all at once; what the TAP's kernel-side queue could not hold
  // the clients send again. Wait (up to 30 s) for the table to empty.
  const closedAt = Date.now();
  let after = await stats();
  while (after.connections > base.connections && Date.now() - closedAt < 30_000) {
    await settle(500);
    after = await stats();
  }
  const drainSeconds = (Date.now() - closedAt) / 1000;
  const open = /open (\d+) answered (\d+) errors (\d+) seconds ([\d.]+)/.exec(holdOut);
  const again = /again (\d+) errors (\d+)/.exec(holdOut);
  if (!open || !again) throw new Error(`conn-tool hold: ${holdOut}`);
  result.hold = {
    answered: Number(open[2]),
    errors: Number(open[3]),
    openSeconds: Number(open[4]),
    answeredAgain: Number(again[1]),
    errorsAgain: Number(again[2]),
    before: base,
    held,
    after,
    drainSeconds,
    rssPerConn: (held.rss - base.rss) / CONNS,
    heapPerConn: (held.heapUsed - base.heapUsed) / CONNS,
  };
  console.log(`\nMany connections: bench/http-stack.mjs (node:http over tapstack), load from a kernel namespace\n`);
  console.log(
    `hold ${fmt(CONNS)} keep-alive connections: answered ${fmt(result.hold.answered)} (errors ${result.hold.errors}) in ${open[4]} s, again ${fmt(result.hold.answeredAgain)} (errors ${result.hold.errorsAgain}); ` +
      `server connections ${held.connections}`,
  );
  console.log(
    `  RSS ${mb(base.rss)} -> ${mb(held.rss)} MB: ${fmt(result.hold.rssPerConn)} B per connection; JS heap ${mb(base.heapUsed)} -> ${mb(held.heapUsed)} MB: ${fmt(result.hold.heapPerConn)} B per connection`,
  );
  console.log(
    `  after closing all: ${after.connections} connections (${JSON.stringify(after.states)}) ${drainSeconds.toFixed(1)} s later, RSS ${mb(after.rss)} MB, heap ${mb(after.heapUsed)} MB`,
  );

  // The same hold against node:http over the kernel (bench/http-kernel.mjs across a veth
  // pair), for what Node's http and a kernel socket cost per connection in that process.
  {
    const ka = netns('tscn-cka');
    const kb = netns('tscn-ckb');
    sh(`ip link add tscnck0 netns ${ka} type veth peer name tscnck1 netns ${kb}`);
    sh(`ip -n ${ka} addr add 10.233.128.1/24 dev tscnck0 && ip -n ${ka} link set tscnck0 up`);
    sh(`ip -n ${kb} addr add 10.233.128.2/24 dev tscnck1 && ip -n ${kb} link set tscnck1 up`);
    sh(`ip netns exec ${ka} sysctl -q -w net.ipv4.ip_local_port_range="1024 65000"`);
    sh(`ip netns exec ${kb} sysctl -q -w net.core.somaxconn=4096`);
    // `ip netns exec` runs node in its own place: the child's pid is node's.
    const k = spawn('ip', ['netns', 'exec', kb, process.execPath, path.join(ROOT, 'bench/http-kernel.mjs'), '10.233.128.2', '8080', '120'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(k);
    let kout = '';
    k.stdout.on('data', (b) => (kout += b));
    await waitFor(() => kout.includes('listening'), 10_000);
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${k.pid}/status`, 'utf8'))[1]) * 1024;
    sh(`ip netns exec ${ka} wrk -t1 -c10 -d1s http://10.233.128.2:8080/`);
    await settle(500);
    const r0 = rss();
    const kh = spawn('ip', ['netns', 'exec', ka, tool, 'hold', '10.233.128.2', '8080', String(CONNS), '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(kh);
    let khOut = '';
    kh.stdout.on('data', (b) => (khOut += b));
    await waitFor(() => khOut.includes('open ') || kh.exitCode !== null, 180_000);
    await settle(500);
    const r1 = rss();
    await waitFor(() => khOut.includes('closed') || kh.exitCode !== null, 180_000);
    const ko = /open (\d+) answered (\d+) errors (\d+) seconds ([\d.]+)/.exec(khOut);
    result.holdKernel = { answered: ko ? Number(ko[2]) : null, errors: ko ? Number(ko[3]) : null, rssBefore: r0, rssHeld: r1, rssPerConn: (r1 - r0) / CONNS };
    console.log(
      `  reference, node:http over the kernel (veth): answered ${fmt(result.holdKernel.answered ?? 0)} (errors ${result.holdKernel.errors}); RSS ${mb(r0)} -> ${mb(r1)} MB: ${fmt(result.holdKernel.rssPerConn)} B per connection (kernel socket memory not included)`,
    );
    k.kill('SIGTERM');
  }

  // ---- wrk -c 1000 ----
  result.wrk = [];
  for (const qlen of [1000, TXQLEN]) {
    sh(`ip -n ${ns} link set ${dev} txqueuelen ${qlen}`);
    const out = sh(`ip netns exec ${ns} wrk -t2 -c1000 -d${SECONDS}s ${url}`, { timeoutMs: (SECONDS + 60) * 1000 });
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
    const lat = /Latency\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
    const drops = Number(/TX:.*\n\s*\d+\s+\d+\s+\d+\s+(\d+)/.exec(sh(`ip -n ${ns} -s link show ${dev}`))?.[1] ?? 0);
    await settle(3000);
    const st = await stats();
    const w = {
      txqueuelen: qlen,
      requestsPerSecond: rps ? Number(rps[1]) : null,
      socketErrors: se ? { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] } : { connect: 0, read: 0, write: 0, timeout: 0 },
      non2xx: non2xx ? Number(non2xx[1]) : 0,
      latency: lat ? { avg: lat[1], stdev: lat[2], max: lat[3] } : null,
      kernelTxDropsTotal: drops,
      afterConnections: st.connections,
    };
    result.wrk.push(w);
    const e = w.socketErrors;
    console.log(
      `wrk -t2 -c1000 -d${SECONDS}s, TAP txqueuelen ${qlen}: ${fmt(w.requestsPerSecond ?? 0)} req/s, socket errors connect ${e.connect} read ${e.read} write ${e.write} timeout ${e.timeout}, non-2xx ${w.non2xx}, ` +
        `latency avg ${w.latency?.avg} max ${w.latency?.max}; kernel-side TAP drops so far ${drops}; 3 s later ${st.connections} connections left`,
    );
  }

  // ---- churn ----
  const step = Math.ceil(CHURN / 4);
  const churn = [{ ...(await stats()), after: 0 }];
  let done = 0;
  let failed = 0;
  const t0 = Date.now();
  while (done < CHURN) {
    const n = Math.min(step, CHURN - done);
    const out = sh(`ip netns exec ${ns} ab -q -n ${n} -c 100 ${url}`, { timeoutMs: 600_000 });
    const f = /Failed requests:\s+(\d+)/.exec(out);
    const rps = /Requests per second:\s+([\d.]+)/.exec(out);
    failed += f ? Number(f[1]) : n;
    done += n;
    churn.push({ ...(await stats()), after: done, requestsPerSecond: rps ? Number(rps[1]) : null });
  }
  result.churn = { total: CHURN, failed, seconds: (Date.now() - t0) / 1000, steps: churn };
  console.log(`ab -c 100 without keep-alive, ${fmt(CHURN)} connections in ${result.churn.seconds.toFixed(0)} s, failed ${failed}:`);
  console.log('  after      conn/s   RSS MB   heap MB   TIME-WAIT   TcpExtTW   TWOverflow   connections');
  for (const s of churn)
    console.log(
      `  ${fmt(s.after).padStart(8)} ${(s.requestsPerSecond ? fmt(s.requestsPerSecond) : '-').padStart(9)} ${mb(s.rss).padStart(8)} ${mb(s.heapUsed).padStart(9)} ${fmt(s.timeWait).padStart(11)} ${fmt(s.TcpExtTW).padStart(10)} ${fmt(s.TcpExtTCPTimeWaitOverflow).padStart(12)} ${fmt(s.connections).padStart(13)}`,
    );
  const first = churn[1];
  const last = churn[churn.length - 1];
  console.log(`  RSS from the first step to the last: ${mb(first.rss)} -> ${mb(last.rss)} MB (${(((last.rss - first.rss) / first.rss) * 100).toFixed(1)}%)`);

  const outDir = path.join(ROOT, 'bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'conns.json'), JSON.stringify({ date: new Date().toISOString(), ...result }, null, 2) + '\n');
  console.log(`written: bench/out/conns.json`);
  srv.kill('SIGTERM');
  return result;
}
