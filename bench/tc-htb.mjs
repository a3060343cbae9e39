// htb section of `npm run bench`: what an htb tree with 100 classes costs the
// stack's forwarding. In one process (sim links, virtual time, so only CPU is
// measured), host a blasts 64-byte UDP datagrams at 100 ports of host b through
// router r; r's outgoing device has either its default qdisc (pfifo_fast) or
//   htb default 1; 1:1 rate 10gbit; 100 leaves 1:10.. rate 100mbit ceil 10gbit
//   under it, and 100 u32 filters (one per destination port, prio 1) to them,
// with rates far above the offered load, so nothing is held back and the
// difference is the classification and scheduling work per packet. Prints the
// datagrams forwarded per second of CPU time (medians of the rounds) and the loss.
//
// Environment: BENCH_HTB_PACKETS (datagrams per run, default 200000).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const PACKETS = Number(process.env.BENCH_HTB_PACKETS ?? 200000);

export async function htbBench(ctx) {
  const { ROOT, ROUNDS, median, fmt } = ctx;
  const lib = (p) => import(pathToFileURL(path.join(ROOT, 'dist', p)).href);
  const { Stack } = await lib('stack.js');
  const { VirtualTime } = await lib('time/timers.js');
  const { simLink } = await lib('link/sim.js');
  const { runTc } = await lib('control/tc.js');
  const { stackTcEnv } = await lib('control/exec.js');
  const { parseIp4 } = await lib('wire/addr.js');

  function run(htb) {
    const time = new VirtualTime();
    const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
    const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'] });
    const a = new Stack({ time, seed: 11 });
    const r = new Stack({ time, seed: 12 });
    const b = new Stack({ time, seed: 13 });
    const ia = a.addInterface('a0', da);
    const r0 = r.addInterface('r0', dr0);
    const r1 = r.addInterface('r1', dr1);
    const ib = b.addInterface('b0', db);
    for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]]) s.setUp(i, true);
    a.addAddress(ia, parseIp4('10.0.1.2'), 24);
    r.addAddress(r0, parseIp4('10.0.1.1'), 24);
    r.addAddress(r1, parseIp4('10.0.2.1'), 24);
    b.addAddress(ib, parseIp4('10.0.2.2'), 24);
    a.addRoute({ dst: 0, prefixLen: 0, gateway: parseIp4('10.0.1.1') });
    b.addRoute({ dst: 0, prefixLen: 0, gateway: parseIp4('10.0.2.1') });
    r.sysctl.set('net.ipv4.ip_forward', '1');
    time.advance(1000);
    if (htb) {
      const env = stackTcEnv(r);
      const tc = (line) => {
        const res = runTc(env, line.split(' '));
        if (res.code !== 0) throw new Error(`tc ${line}: ${res.stderr}`);
      };
      tc('qdisc add dev r1 root handle 1: htb default 1');
      tc('class add dev r1 parent 1: classid 1:1 htb rate 10gbit');
      for (let i = 0; i < 100; i++) {
        const id = (0x10 + i).toString(16);
        tc(`class add dev r1 parent 1:1 classid 1:${id} htb rate 100mbit ceil 10gbit`);
        tc(`filter add dev r1 parent 1: protocol ip prio 1 u32 match ip dport ${7000 + i} 0xffff flowid 1:${id}`);
      }
    }
    let got = 0;
    for (let i = 0; i < 100; i++) {
      const s = b.udp.createSocket('udp4');
      s.on('message', () => got++);
      s.bind(7000 + i);
    }
    const tx = a.udp.createSocket('udp4');
    time.advance(1);
    const payload = new Uint8Array(64 - 28);
    const c0 = process.cpuUsage();
    for (let n = 0; n < PACKETS; n += 100) {
      for (let i = 0; i < 100; i++) tx.send(payload, 7000 + i, '10.0.2.2');
      time.advance(0.1);
    }
    time.advance(100);
    const c = process.cpuUsage(c0);
    return { pps: got / ((c.user + c.system) / 1e6), loss: 1 - got / PACKETS };
  }

  const res = { base: [], htb: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const k of i % 2 ? ['htb', 'base'] : ['base', 'htb']) res[k].push(run(k === 'htb'));
  }
  const pps = (k) => median(res[k].map((x) => x.pps));
  const loss = (k) => Math.max(...res[k].map((x) => x.loss));
  console.log('\nhtb: 64-byte UDP forwarded through a sim router, datagrams per CPU second (a, r and b in one process)');
  console.log(`  default qdisc (pfifo_fast)     ${fmt(pps('base')).padStart(10)}   loss ${(loss('base') * 100).toFixed(1)}%`);
  console.log(`  htb, 100 classes + 100 u32     ${fmt(pps('htb')).padStart(10)}   loss ${(loss('htb') * 100).toFixed(1)}%`);
  console.log(`  cost of the htb tree: ${((1 - pps('htb') / pps('base')) * 100).toFixed(1)}% of the forwarding rate`);
}
