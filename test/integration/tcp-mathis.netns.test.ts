/**
 * Goodput under random loss on a live path, the kernel's CUBIC beside the stack's, each
 * set against the Mathis et al. (1997) bound for Reno, MSS/RTT · sqrt(3/2)/sqrt(p).
 *
 *   mtk (kernel sender 10.233.182.1; the stack's TAP, 10.233.183.2, has its kernel side here)
 *     -veth- mtm (kernel router: nft drops N% of the data segments it forwards)
 *     -TAP- tapstack router daemon (netem delay 10ms on both its links: 20 ms RTT)
 *     -TAP- mtr (kernel receiver 10.233.181.1: tcp-loss-peer.py sink)
 *
 * The loss is nft's `numgen random mod 100 < N drop` in mtm's forward chain, for segments
 * carrying data towards the receiver only (ACKs pass, as in test/sim/tcp-loss.test.ts), each
 * port with its own counters, so p = drops / data segments forwarded is measured per
 * sender. Offloads are off on the kernel's links, so nft sees single segments. The kernel
 * sender is told to use CUBIC (TCP_CONGESTION; this host's default may differ); the kernel
 * receiver and the stack's peer are the same kernel socket code.
 *
 * Each rate runs the two senders at once, each for a transfer sized to take about 20 s.
 * The kernel's sender counters (nstat in mtk) give its recoveries, timeouts and probes.
 * What it asserts: data intact on both, the drop rate near N%, and both senders' goodput
 * printed with its ratio to Mathis at the measured p and RTT, which is the number
 * docs/ARCHITECTURE.md and test/sim/tcp-loss.test.ts refer to. Goodput comparisons between
 * the two are not asserted here: a 20 s run at 10% loss varies by about a tenth from run
 * to run.
 *
 * Heavy (namespaces, 20 s transfers): run it under the shared lock,
 *   flock /tmp/tapstack-heavy.lock npx vitest run test/integration/tcp-mathis.netns.test.ts
 * MATHIS_RATES (percent, default 1,3,10) picks the rates, MATHIS_SCALE (default 1) makes
 * each transfer that many times longer, MATHIS_GRO=1 leaves GRO on in the router.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/peer.js';
import { ROOT, waitFor } from '../helpers/harness.js';
import { RouterTestbed } from '../helpers/router.js';
import { Stack } from '../../src/stack.js';
import { configure, openTap } from '../../src/library.js';

const NS_K = 'mtk';
const NS_M = 'mtm';
const NS_R = 'mtr';
const TAP = 'mts0';
const STACK_IP = '10.233.183.2';
const K_TAP_IP = '10.233.183.1';
const K_IP = '10.233.182.1';
const M_VETH_IP = '10.233.182.2';
const K_PORT = 5301;
const S_PORT = 5302;
const PEER_PY = path.join(ROOT, 'test/helpers/tcp-loss-peer.py');
const RATES = (process.env.MATHIS_RATES ?? '1,3,10').split(',').map(Number);
/** Longer runs (fewer rates per locked run): MATHIS_SCALE times the bytes and the time. */
const SCALE = Number(process.env.MATHIS_SCALE ?? 1);
/** MATHIS_GRO=1: the router merges segments (GRO), so receivers see bursts as super-packets. */
const GRO = process.env.MATHIS_GRO === '1';
/** Bytes per rate: about 20 s of CUBIC at 20 ms RTT. */
const SIZE: Record<number, number> = { 1: 16 << 20, 3: 8 << 20, 10: 3 << 20 };

const nsx = (ns: string, ...argv: string[]): string => run('ip', 'netns', 'exec', ns, ...argv);

function patternBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

/** Mathis et al.: bytes per second for Reno at loss rate p. */
function mathis(mss: number, rttS: number, p: number): number {
  return (mss / rttS) * (Math.sqrt(3 / 2) / Math.sqrt(p));
}

interface SinkResult {
  bytes: number;
  seconds: number;
  sha: string;
}

async function sink(port: number, timeoutS: number): Promise<{ done: Promise<SinkResult> }> {
  const child = spawn('ip', ['netns', 'exec', NS_R, 'timeout', String(timeoutS), 'python3', PEER_PY, 'sink', '10.233.181.1', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<SinkResult>((res, rej) =>
    child.on('close', (code) => {
      const m = /^RESULT (\d+) ([\d.]+) ([0-9a-f]+)$/m.exec(out);
      if (code !== 0 || m === null) rej(new Error(`sink exited ${code}: ${out}`));
      else res({ bytes: Number(m[1]), seconds: Number(m[2]), sha: m[3] });
    }),
  );
  await waitFor(() => out.includes('listening'), 5000);
  return { done };
}

/** nft's counters for a port: [data segments forwarded, dropped]. */
function counters(port: number): [number, number] {
  const out = nsx(NS_M, 'nft', 'list', 'table', 'inet', 'mtloss');
  const seen = new RegExp(`dport ${port} meta length > 200 counter packets (\\d+)`).exec(out);
  const drop = new RegExp(`dport ${port} meta length > 200 numgen random mod 100 < \\d+ counter packets (\\d+)`).exec(out);
  return [Number(seen?.[1] ?? -1), Number(drop?.[1] ?? -1)];
}

function setLoss(pct: number): void {
  nsx(NS_M, 'sh', '-c', 'nft delete table inet mtloss 2>/dev/null; true');
  const rule = (port: number): string =>
    `    ip daddr 10.233.181.1 tcp dport ${port} meta length > 200 counter\n    ip daddr 10.233.181.1 tcp dport ${port} meta length > 200 numgen random mod 100 < ${pct} counter drop\n`;
  const rules = `table inet mtloss {\n  chain lossy {\n    type filter hook forward priority 0; policy accept;\n${rule(K_PORT)}${rule(S_PORT)}  }\n}\n`;
  if (spawnSync('ip', ['netns', 'exec', NS_M, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'inherit'] }).status !== 0) throw new Error('nft failed');
}

/** A namespace's TCP counters: the kernel sender's in mtk, the kernel receivers' in mtr. */
function kernelMib(ns = NS_K): Record<string, number> {
  const out = nsx(ns, 'nstat', '-asz', '--json');
  return (JSON.parse(out) as { kernel: Record<string, number> }).kernel;
}

describe('goodput under random loss against the Mathis bound: kernel CUBIC and the stack on one live path', () => {
  let stack: Stack;
  let tb: RouterTestbed;
  let rttS = 0;

  beforeAll(async () => {
    tb = await RouterTestbed.start(
      { subnet: 180, net: '10.233', dev: 'mtra', ns: NS_M },
      { subnet: 181, net: '10.233', dev: 'mtrb', ns: NS_R },
      [
        'sysctl -w net.ipv4.ip_forward=1',
        'tc qdisc add dev mtra root netem delay 10ms limit 10000',
        'tc qdisc add dev mtrb root netem delay 10ms limit 10000',
        'route add 10.233.182.0/24 via 10.233.180.1',
        'route add 10.233.183.0/24 via 10.233.180.1',
        // Segment by segment to the receiver, as on the sim wire (GRO would merge a burst into one
        // super-packet). The kernel receivers still send fewer ACKs than one per two segments: an
        // ACK goes when the reading process wakes (tcp_cleanup_rbuf), as the printed counts show.
        ...(GRO ? [] : ['link set mtra gro off', 'link set mtrb gro off']),
      ],
    );
    // The sender's namespace, behind mtm.
    run('ip', 'netns', 'add', NS_K);
    run('ip', 'link', 'add', 'mtk0', 'netns', NS_K, 'type', 'veth', 'peer', 'name', 'mtm0', 'netns', NS_M);
    run('ip', '-n', NS_K, 'link', 'set', 'lo', 'up');
    run('ip', '-n', NS_K, 'addr', 'add', `${K_IP}/24`, 'dev', 'mtk0');
    run('ip', '-n', NS_K, 'link', 'set', 'mtk0', 'up');
    run('ip', '-n', NS_K, 'route', 'add', 'default', 'via', M_VETH_IP);
    run('ip', '-n', NS_M, 'addr', 'add', `${M_VETH_IP}/24`, 'dev', 'mtm0');
    run('ip', '-n', NS_M, 'link', 'set', 'mtm0', 'up');
    run('ip', '-n', NS_M, 'route', 'add', '10.233.183.0/24', 'via', K_IP);
    nsx(NS_M, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    nsx(NS_K, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // Single segments through nft: no TSO/GSO at the senders' ends, no GRO on the way.
    nsx(NS_K, 'ethtool', '-K', 'mtk0', 'tso', 'off', 'gso', 'off', 'gro', 'off');
    nsx(NS_M, 'ethtool', '-K', 'mtm0', 'tso', 'off', 'gso', 'off', 'gro', 'off');
    nsx(NS_M, 'sh', '-c', 'ethtool -K mtra tso off gso off gro off 2>/dev/null; true');
    nsx(NS_R, 'sh', '-c', 'ethtool -K mtrb tso off gso off gro off 2>/dev/null; true');
    // The stack, its TAP's kernel side in mtk.
    stack = new Stack();
    openTap(stack, TAP, { offload: false });
    configure(stack, [`addr add ${STACK_IP}/24 dev ${TAP}`, `route add default via ${K_TAP_IP}`]);
    run('ip', 'link', 'set', TAP, 'netns', NS_K);
    run('ip', '-n', NS_K, 'addr', 'add', `${K_TAP_IP}/24`, 'dev', TAP);
    run('ip', '-n', NS_K, 'link', 'set', TAP, 'up');
    nsx(NS_K, 'sh', '-c', `ethtool -K ${TAP} tso off gso off gro off 2>/dev/null; true`);
    // The path's RTT, once ARP is done.
    nsx(NS_K, 'ping', '-c', '2', '-i', '0.2', '10.233.181.1');
    const m = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\//.exec(nsx(NS_K, 'ping', '-c', '10', '-i', '0.1', '10.233.181.1'));
    rttS = Number(m?.[1] ?? 0) / 1000;
  }, 30_000);

  afterAll(async () => {
    try {
      stack?.close();
    } finally {
      spawnSync('sh', ['-c', `ip netns pids ${NS_K} | xargs -r kill -9; ip netns del ${NS_K}`]);
      await tb?.close();
    }
  });

  for (const pct of RATES) {
    it(`${pct}% random loss on data segments, 20 ms RTT: both senders' goodput against Mathis`, async () => {
      expect(rttS).toBeGreaterThan(0.019);
      expect(rttS).toBeLessThan(0.03);
      const size = Math.round((SIZE[pct] ?? 4 << 20) * SCALE);
      const want = createHash('sha256').update(patternBytes(size)).digest('hex');
      setLoss(pct);
      const mib0 = kernelMib();
      const rcv0 = kernelMib(NS_R);
      const stack0 = { ...stack.mib } as Record<string, number>;
      const k = await sink(K_PORT, 90 * SCALE);
      const s = await sink(S_PORT, 90 * SCALE);
      const sender = spawn('ip', ['netns', 'exec', NS_K, 'timeout', String(90 * SCALE), 'python3', PEER_PY, 'send', '10.233.181.1', String(K_PORT), String(size), 'cubic'], { stdio: 'ignore' });
      const sock = stack.tcp.connect({ port: S_PORT, host: '10.233.181.1' });
      sock.on('data', () => {});
      sock.end(patternBytes(size));
      const [kr, sr] = await Promise.all([k.done, s.done]);
      sender.kill();
      const mib1 = kernelMib();
      const rcv1 = kernelMib(NS_R);
      const rd = (n: string): number => (rcv1[n] ?? 0) - (rcv0[n] ?? 0);
      const kd = (n: string): number => (mib1[n] ?? 0) - (mib0[n] ?? 0);
      const sd = (n: string): number => (stack.mib as unknown as Record<string, number>)[n] - stack0[n];
      const [kSeen, kDrop] = counters(K_PORT);
      const [sSeen, sDrop] = counters(S_PORT);
      const mss = 1448;
      const line = (who: string, r: SinkResult, seen: number, drop: number, d: (n: string) => number): string => {
        const p = drop / seen;
        const g = r.bytes / r.seconds;
        const m = mathis(mss, rttS, p);
        return `${who}: ${(g / 1e6).toFixed(3)} MB/s in ${r.seconds.toFixed(1)} s; p ${(100 * p).toFixed(2)}% (${drop}/${seen}); Mathis ${(m / 1e6).toFixed(3)} MB/s, ratio ${(g / m).toFixed(2)}; recoveries ${d('TcpExtTCPSackRecovery')}, timeouts ${d('TcpExtTCPTimeouts')}, probes ${d('TcpExtTCPLossProbes')}, resent ${d('TcpRetransSegs')}`;
      };
      console.log(
        `${pct}% loss, RTT ${(rttS * 1000).toFixed(2)} ms\n  ${line('kernel cubic', kr, kSeen, kDrop, kd)}\n  ${line('stack cubic ', sr, sSeen, sDrop, sd)}\n` +
          `  kernel receivers (both flows): ${rd('TcpInSegs')} segments in, ${rd('TcpOutSegs')} out (ACKs), ${rd('TcpExtDelayedACKs')} delayed ACKs, ${rd('TcpExtTCPOFOQueue')} out of order`,
      );
      expect(kr.bytes).toBe(size);
      expect(kr.sha).toBe(want);
      expect(sr.bytes).toBe(size);
      expect(sr.sha).toBe(want);
      for (const [seen, drop] of [
        [kSeen, kDrop],
        [sSeen, sDrop],
      ]) {
        expect(drop / seen).toBeGreaterThan((pct / 100) * 0.7);
        expect(drop / seen).toBeLessThan((pct / 100) * 1.3);
      }
    }, 120_000 * SCALE);
  }
});
