/**
 * Loss recovery against the Linux kernel. Both transfers go from namespace A to
 * namespace B through a tapstack daemon routing between them with netem (5 ms each
 * way), and B's own nft drops 3% of the data segments reaching it (`numgen random
 * mod 100 < 3 drop` on input). In the same run the kernel (CUBIC) sends from A, then
 * the stack, on a TAP device whose kernel side is in A (A forwards it), sends the
 * same bytes; the stack must reach 80% of the kernel's goodput.
 *
 * The other way round, the stack receives: the kernel (CUBIC) in B sends at once to the
 * stack (through A, which forwards to the TAP) and to a kernel sink in A, A's nft dropping
 * 3% of the data segments of each (forward hook for the stack's, input hook for its own).
 * The kernel sending to the stack must reach 80% of its goodput to the kernel: how the
 * receiver acknowledges (every second segment, SACK at once) sets the sender's pace.
 * Where one pair of transfers has the stack below 80%, a second pair runs and the two
 * together decide (goodputs()).
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

const TAG = process.pid.toString(36).slice(-4);
const NS_A = `tslsa${TAG}`;
const NS_B = `tslsb${TAG}`;
const TAP = `tsls${TAG}`;
const STACK_IP = '10.233.42.2';
const A_TAP_IP = '10.233.42.1';
const PORT = 5201;
const PEER_PY = path.join(ROOT, 'test/helpers/tcp-loss-peer.py');
const SIZE = 8 << 20;
const K_PORT = 5202;
/** The stack receiving, and the kernel sink in A it is compared with. */
const R_PORT = 5203;
const KR_PORT = 5204;

/** The test pattern of tcp-loss-peer.py: bytes 0..255 repeated. */
function patternBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = i & 0xff;
  return b;
}

const nsx = (ns: string, ...argv: string[]): string => run('ip', 'netns', 'exec', ns, ...argv);

interface SinkResult {
  bytes: number;
  seconds: number;
  sha: string;
  ss: string;
}

/** Starts a kernel sink in `ns`; resolves once it listens, with its result to come in `done`. */
async function sink(ns: string, host: string, port: number): Promise<{ done: Promise<SinkResult> }> {
  const child = spawn('ip', ['netns', 'exec', ns, 'timeout', '45', 'python3', PEER_PY, 'sink', host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<SinkResult>((res, rej) =>
    child.on('close', (code) => {
      const m = /^RESULT (\d+) ([\d.]+) ([0-9a-f]+)$/m.exec(out);
      if (code !== 0 || m === null) rej(new Error(`sink exited ${code}: ${out}`));
      else res({ bytes: Number(m[1]), seconds: Number(m[2]), sha: m[3], ss: /^SS (.*)$/m.exec(out)?.[1] ?? '' });
    }),
  );
  await waitFor(() => out.includes('listening'), 5000);
  return { done };
}

/** Drops counted by the nft rule for each port (table tsls in B, tslr in A). */
function drops(ns: string, port: number, table = 'tsls'): number {
  const out = nsx(ns, 'nft', 'list', 'table', 'inet', table);
  const m = new RegExp(`dport ${port} numgen random mod 100 < 3 counter packets (\\d+)`).exec(out);
  return Number(m?.[1] ?? -1);
}

describe('loss recovery against the kernel: 3% loss by nft numgen, 10 ms of netem', () => {
  let stack: Stack;
  let tb: RouterTestbed;

  beforeAll(async () => {
    tb = await RouterTestbed.start(
      { subnet: 40, net: '10.233', dev: `tslsra${TAG}`, ns: NS_A },
      { subnet: 41, net: '10.233', dev: `tslsrb${TAG}`, ns: NS_B },
      ['sysctl -w net.ipv4.ip_forward=1', `tc qdisc add dev tslsra${TAG} root netem delay 5ms limit 10000`, `tc qdisc add dev tslsrb${TAG} root netem delay 5ms limit 10000`, `route add 10.233.42.0/24 via 10.233.40.1`],
    );
    // The stack's TAP has its kernel side in A, which forwards it to the router.
    stack = new Stack();
    openTap(stack, TAP);
    configure(stack, [`addr add ${STACK_IP}/24 dev ${TAP}`, `route add default via ${A_TAP_IP}`]);
    run('ip', 'link', 'set', TAP, 'netns', NS_A);
    run('ip', '-n', NS_A, 'addr', 'add', `${A_TAP_IP}/24`, 'dev', TAP);
    run('ip', '-n', NS_A, 'link', 'set', TAP, 'up');
    nsx(NS_A, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // B's own input drops 3% of the segments coming to PORT.
    const rule = (port: number): string => `    tcp dport ${port} numgen random mod 100 < 3 counter drop\n`;
    const rules = `table inet tsls {\n  chain in {\n    type filter hook input priority 0; policy accept;\n${rule(PORT)}${rule(K_PORT)}  }\n}\n`;
    if (spawnSync('ip', ['netns', 'exec', NS_B, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'inherit'] }).status !== 0) throw new Error('nft failed');
    // A drops 3% of the data segments B sends to the stack (forwarded) and to A's own sink (input).
    const rulesA = `table inet tslr {\n  chain forwarded {\n    type filter hook forward priority 0; policy accept;\n${rule(R_PORT)}  }\n  chain in {\n    type filter hook input priority 0; policy accept;\n${rule(KR_PORT)}  }\n}\n`;
    if (spawnSync('ip', ['netns', 'exec', NS_A, 'nft', '-f', '-'], { input: rulesA, stdio: ['pipe', 'ignore', 'inherit'] }).status !== 0) throw new Error('nft failed');
  }, 20_000);

  afterAll(async () => {
    try {
      stack?.close();
    } finally {
      await tb?.close();
    }
  });

  /** Both senders at once, so both meet the same conditions; each receiver's bytes checked whole. */
  async function stackSends(): Promise<{ k: SinkResult; s: SinkResult }> {
    const want = createHash('sha256').update(patternBytes(SIZE)).digest('hex');
    const bIp = tb.b.peerIp;
    // The kernel sends from A with CUBIC (Linux's default; set on the socket, as this
    // host's default may differ), the stack from its TAP in A.
    const k = await sink(NS_B, bIp, K_PORT);
    const s = await sink(NS_B, bIp, PORT);
    const sender = spawn('ip', ['netns', 'exec', NS_A, 'timeout', '30', 'python3', PEER_PY, 'send', bIp, String(K_PORT), String(SIZE), 'cubic'], { stdio: 'ignore' });
    const sock = stack.tcp.connect({ port: PORT, host: bIp });
    sock.on('data', () => {});
    sock.end(patternBytes(SIZE));
    const [kr, sr] = await Promise.all([k.done, s.done]);
    sender.kill();
    const m = stack.mib;
    console.log(
      `kernel: ${(kr.bytes / kr.seconds / 1e6).toFixed(2)} MB/s in ${kr.seconds.toFixed(2)} s (${drops(NS_B, K_PORT)} dropped so far); stack: ${(sr.bytes / sr.seconds / 1e6).toFixed(2)} MB/s in ${sr.seconds.toFixed(2)} s (${drops(NS_B, PORT)} dropped so far, ${m.TcpRetransSegs} resent, ${m.TcpExtTCPSackRecovery} recoveries, ${m.TcpExtTCPLossProbes} probes, ${m.TcpExtTCPTimeouts} timeouts); ratio ${(sr.bytes / sr.seconds / (kr.bytes / kr.seconds)).toFixed(2)}`,
    );
    expect(kr.bytes).toBe(SIZE);
    expect(kr.sha).toBe(want);
    expect(sr.bytes).toBe(SIZE);
    expect(sr.sha).toBe(want);
    return { k: kr, s: sr };
  }

  it('the stack sending reaches at least 80% of the kernel CUBIC goodput through the same impairment, data intact', async () => {
    const [sGood, kGood] = await goodputs(stackSends);
    expect(drops(NS_B, K_PORT)).toBeGreaterThan(0);
    expect(drops(NS_B, PORT)).toBeGreaterThan(0);
    expect(stack.mib.TcpExtTCPSackRecovery).toBeGreaterThan(0);
    expect(sGood).toBeGreaterThanOrEqual(0.8 * kGood);
  }, 45_000);

  /** The kernel in B sends to the stack and to a kernel sink in A at once (CUBIC); both received whole. */
  async function kernelSends(): Promise<{ k: SinkResult; s: SinkResult }> {
    const want = createHash('sha256').update(patternBytes(SIZE)).digest('hex');
    const aIp = tb.a.peerIp;
    // The stack's sink, timed as the kernel's: first byte to EOF.
    let t0 = 0;
    const stackDone = new Promise<SinkResult>((resolve) => {
      const server = stack.tcp.createServer((s) => {
        const h = createHash('sha256');
        let n = 0;
        s.on('data', (d: Buffer) => {
          if (n === 0) t0 = performance.now();
          n += d.length;
          h.update(d);
        });
        s.on('end', () => {
          const seconds = (performance.now() - t0) / 1000;
          s.end();
          server.close();
          resolve({ bytes: n, seconds, sha: h.digest('hex'), ss: '' });
        });
      });
      server.listen(R_PORT);
    });
    const k = await sink(NS_A, aIp, KR_PORT);
    const ofo0 = stack.mib.TcpExtTCPOFOQueue;
    const senders = [STACK_IP, aIp].map((host, i) =>
      spawn('ip', ['netns', 'exec', NS_B, 'timeout', '45', 'python3', PEER_PY, 'send', host, String(i === 0 ? R_PORT : KR_PORT), String(SIZE), 'cubic'], { stdio: 'ignore' }),
    );
    const [kr, sr] = await Promise.all([k.done, stackDone]);
    for (const c of senders) c.kill();
    console.log(
      `kernel -> kernel: ${(kr.bytes / kr.seconds / 1e6).toFixed(2)} MB/s in ${kr.seconds.toFixed(2)} s (${drops(NS_A, KR_PORT, 'tslr')} dropped so far); kernel -> stack: ${(sr.bytes / sr.seconds / 1e6).toFixed(2)} MB/s in ${sr.seconds.toFixed(2)} s (${drops(NS_A, R_PORT, 'tslr')} dropped so far, ${stack.mib.TcpExtTCPOFOQueue - ofo0} out of order); ratio ${(sr.bytes / sr.seconds / (kr.bytes / kr.seconds)).toFixed(2)}`,
    );
    expect(kr.bytes).toBe(SIZE);
    expect(kr.sha).toBe(want);
    expect(sr.bytes).toBe(SIZE);
    expect(sr.sha).toBe(want);
    expect(stack.mib.TcpExtTCPOFOQueue - ofo0).toBeGreaterThan(0);
    return { k: kr, s: sr };
  }

  it('the kernel sending to the stack reaches at least 80% of its goodput to a kernel receiver through the same impairment, data intact', async () => {
    const [sGood, kGood] = await goodputs(kernelSends);
    expect(drops(NS_A, KR_PORT, 'tslr')).toBeGreaterThan(0);
    expect(drops(NS_A, R_PORT, 'tslr')).toBeGreaterThan(0);
    expect(sGood).toBeGreaterThanOrEqual(0.8 * kGood);
  }, 100_000);
});

/**
 * The stack's and the kernel's goodput (bytes/s) from one pair of transfers, or from
 * two when the first pair has the stack below 80%: 8 MB under 3% random loss swings
 * by up to a fifth from one transfer to the next on either side (whichever meets the
 * unluckier drops), so one short pair alone leaves the comparison to chance; a second
 * pair is added to the first and the two together decide.
 */
async function goodputs(pair: () => Promise<{ k: SinkResult; s: SinkResult }>): Promise<[number, number]> {
  const a = await pair();
  if (a.s.bytes / a.s.seconds >= 0.8 * (a.k.bytes / a.k.seconds)) return [a.s.bytes / a.s.seconds, a.k.bytes / a.k.seconds];
  const b = await pair();
  return [(a.s.bytes + b.s.bytes) / (a.s.seconds + b.s.seconds), (a.k.bytes + b.k.bytes) / (a.k.seconds + b.k.seconds)];
}
