/**
 * ECN and TCP Fast Open against the Linux kernel, both ways. The stack runs in this
 * process on a TAP device whose kernel side is in a namespace of its own (tcp_ecn and
 * tcp_fastopen are per namespace); the kernel's side is tcp-ext-peer.py, and what the
 * kernel says (`ss -tio`: ecn, ecnseen, fastopen; its TcpExt counters) is the proof.
 * Kernel commands run asynchronously while the stack answers.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerSide, run, runAsync } from '../helpers/peer.js';
import { ROOT, waitFor } from '../helpers/harness.js';
import { Stack } from '../../src/stack.js';
import { configure, openTap } from '../../src/library.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import { ECN_OK, ECN_SEEN } from '../../src/tcp/ecn.js';
import { TcpState } from '../../src/tcp/state.js';
import { fastOpenCookie } from '../../src/tcp/fastopen.js';
import { parseIp4 } from '../../src/wire/addr.js';

const TAG = process.pid.toString(36).slice(-4);
const NS = `tsexns${TAG}`;
const DEV = `tsex${TAG}`;
const KERNEL_IP = '10.233.60.1';
const STACK_IP = '10.233.60.2';
const PEER_PY = path.join(ROOT, 'test/helpers/tcp-ext-peer.py');
const peer = peerSide(NS);

/** The kernel's TcpExt counters in its namespace (nstat -as: absolute, history untouched). */
async function kernelNstat(): Promise<Record<string, number>> {
  const [cmd, args] = peer.command(['nstat', '-asz']);
  const r = await runAsync(cmd, args);
  const out: Record<string, number> = {};
  for (const line of r.out.split('\n')) {
    const m = /^(\S+)\s+(\d+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function peerPy(...args: string[]): Promise<string> {
  const [cmd, a] = peer.command(['python3', PEER_PY, ...args]);
  const r = await runAsync(cmd, a);
  if (r.code !== 0) throw new Error(`tcp-ext-peer.py ${args.join(' ')}: ${r.out}`);
  return r.out;
}

/** Starts the kernel's server; resolves once it listens, with its output to come in `done`. */
async function peerServer(port: number, n: number, qlen: number): Promise<{ done: Promise<string> }> {
  const [cmd, a] = peer.command(['python3', PEER_PY, 'server', KERNEL_IP, String(port), String(n), String(qlen)]);
  const child = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<string>((res, rej) =>
    child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`server exited ${code}: ${out}`)))),
  );
  await waitFor(() => out.includes('listening'), 5000);
  // Wrapped: an async function returning a promise would wait for it.
  return { done };
}

/** The stack connects to the kernel, sends `data` (into the SYN with fastOpen) and reads to EOF. */
function stackClient(stack: Stack, port: number, data: Buffer, fastOpen = false): Promise<{ answer: string; sock: TcpSocket }> {
  return new Promise((res, rej) => {
    const s = stack.tcp.connect({ port, host: KERNEL_IP, fastOpen });
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.on('error', rej);
    s.on('end', () => res({ answer, sock: s }));
    s.end(data);
  });
}

describe('ECN and Fast Open with the Linux kernel', () => {
  let stack: Stack;
  let sysBefore: string[] = [];

  beforeAll(() => {
    stack = new Stack();
    openTap(stack, DEV);
    configure(stack, [`addr add ${STACK_IP}/24 dev ${DEV}`]);
    peer.create();
    peer.moveIn(DEV);
    peer.ip('addr', 'add', `${KERNEL_IP}/24`, 'dev', DEV);
    peer.ip('link', 'set', DEV, 'up');
    if (!peer.ns) sysBefore = ['tcp_ecn', 'tcp_fastopen'].map((k) => run('sysctl', '-n', `net.ipv4.${k}`).trim());
  });
  afterAll(() => {
    try {
      stack?.close();
    } finally {
      if (peer.ns) peer.destroy();
      else {
        run('sysctl', '-qw', `net.ipv4.tcp_ecn=${sysBefore[0]}`, `net.ipv4.tcp_fastopen=${sysBefore[1]}`);
        run('sh', '-c', `ip link del ${DEV} 2>/dev/null || true`);
      }
    }
  });

  it('ECN: the kernel (tcp_ecn=1) connects to the stack (tcp_ecn=2); both use it, ECT data both ways', async () => {
    peer.run('sysctl', '-qw', 'net.ipv4.tcp_ecn=1');
    let conn: TcpSocket['conn'] = null;
    const server = stack.tcp
      .createServer((s: TcpSocket) => {
        conn = s.conn;
        let n = 0;
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => s.end(`got ${n}`));
      })
      .listen(7101);
    const ect0 = stack.mib.IpExtInECT0Pkts;
    try {
      const out = await peerPy('client', STACK_IP, '7101', '100000');
      expect(out).toMatch(/ANSWER got 100000/);
      // The kernel's own view of the connection: ECN agreed (ss prints `ecn` after ts and sack).
      expect(out).toMatch(/^SS .* ts sack ecn /m);
      expect(conn).not.toBeNull();
      expect(conn!.ecnFlags & ECN_OK).toBe(ECN_OK);
      expect(conn!.ecnFlags & ECN_SEEN).toBe(ECN_SEEN);
      expect(stack.mib.IpExtInECT0Pkts - ect0).toBeGreaterThan(50);
    } finally {
      server.close();
    }
  });

  it('ECN: the stack (tcp_ecn=1) connects to the kernel (tcp_ecn=2), which sees ECT (ecnseen)', async () => {
    peer.run('sysctl', '-qw', 'net.ipv4.tcp_ecn=2');
    stack.sysctl.set('net.ipv4.tcp_ecn', '1');
    try {
      const { done } = await peerServer(7102, 100000, 0);
      const { answer, sock } = await stackClient(stack, 7102, Buffer.alloc(100000, 7));
      const out = await done;
      expect(answer).toBe('got 100000');
      expect(out).toMatch(/^SS .* ts sack ecn ecnseen /m);
      expect(sock.destroyed || sock.readableEnded).toBe(true);
    } finally {
      stack.sysctl.set('net.ipv4.tcp_ecn', '2');
    }
  });

  it('Fast Open: the kernel client gets a cookie from the stack, then its data goes in the SYN to the stack server', async () => {
    stack.sysctl.set('net.ipv4.tcp_fastopen', '3');
    const seen: { text: string; state: TcpState }[] = [];
    const server = stack.tcp
      .createServer({ fastOpen: 16 }, (s: TcpSocket) => {
        s.on('data', (d: Buffer) => {
          seen.push({ text: d.toString(), state: s.conn!.state });
          s.end(`re:${d.toString()}`);
        });
      })
      .listen(7103);
    const before = await kernelNstat();
    const passive0 = stack.mib.TcpExtTCPFastOpenPassive;
    try {
      // The first: no cookie yet, so the SYN asks for one and the data follows the handshake.
      expect(await peerPy('tfo-client', STACK_IP, '7103', 'first')).toMatch(/ANSWER re:first/);
      expect(stack.mib.TcpExtTCPFastOpenCookieReqd).toBeGreaterThanOrEqual(1);
      // The kernel keeps the stack's cookie: SipHash of its address and ours under our key.
      const cookie = Buffer.from(stack.tcp.fastOpen.cookie(parseIp4(KERNEL_IP)!, parseIp4(STACK_IP)!)!).toString('hex');
      const [cmd, a] = peer.command(['ip', 'tcp_metrics', 'show', STACK_IP]);
      expect((await runAsync(cmd, a)).out).toContain(`fo_cookie ${cookie}`);
      // The second: data in the SYN, taken before the handshake ended.
      const out = await peerPy('tfo-client', STACK_IP, '7103', 'second');
      expect(out).toMatch(/ANSWER re:second/);
      expect(out).toMatch(/^SS .* fastopen /m);
      expect(seen.map((x) => x.text)).toEqual(['first', 'second']);
      expect(seen[1].state).toBe(TcpState.SYN_RECEIVED);
      expect(stack.mib.TcpExtTCPFastOpenPassive - passive0).toBe(1);
      const after = await kernelNstat();
      expect((after.TcpExtTCPFastOpenActive ?? 0) - (before.TcpExtTCPFastOpenActive ?? 0)).toBe(1);
      expect((after.TcpExtTCPFastOpenActiveFail ?? 0) - (before.TcpExtTCPFastOpenActiveFail ?? 0)).toBe(0);
    } finally {
      server.close();
      stack.sysctl.set('net.ipv4.tcp_fastopen', '1');
    }
  });

  it('Fast Open: the stack client gets the kernel’s cookie (our SipHash of its key agrees), then sends its data in the SYN', async () => {
    const KEY = '00112233-44556677-8899aabb-ccddeeff';
    peer.run('sysctl', '-qw', 'net.ipv4.tcp_fastopen=3', `net.ipv4.tcp_fastopen_key=${KEY}`);
    const keyBytes = Buffer.alloc(16);
    KEY.split('-').forEach((w, i) => keyBytes.writeUInt32LE(parseInt(w, 16), 4 * i));
    const before = await kernelNstat();
    {
      const { done } = await peerServer(7104, 5, 16);
      const { answer } = await stackClient(stack, 7104, Buffer.from('first'), true);
      expect(answer).toBe('got 5');
      expect(await done).not.toMatch(/ fastopen /);
    }
    const expected = fastOpenCookie(keyBytes, parseIp4(STACK_IP)!, parseIp4(KERNEL_IP)!);
    expect(stack.tcp.fastOpen.cached(parseIp4(KERNEL_IP)!)).toEqual(expected);
    const active0 = stack.mib.TcpExtTCPFastOpenActive;
    {
      const { done } = await peerServer(7104, 6, 16);
      const { answer, sock } = await stackClient(stack, 7104, Buffer.from('second'), true);
      expect(answer).toBe('got 6');
      // The kernel's own view: the connection began with data in the SYN.
      expect(await done).toMatch(/^SS .* fastopen /m);
      expect(sock.bytesWritten).toBe(6);
    }
    expect(stack.mib.TcpExtTCPFastOpenActive - active0).toBe(1);
    const after = await kernelNstat();
    expect((after.TcpExtTCPFastOpenPassive ?? 0) - (before.TcpExtTCPFastOpenPassive ?? 0)).toBe(1);
    expect((after.TcpExtTCPFastOpenCookieReqd ?? 0) - (before.TcpExtTCPFastOpenCookieReqd ?? 0)).toBe(1);
  });

  it("Fast Open: curl --tcp-fastopen gets the daemon's HTTP status page (`service add http ... fastopen 16`) with its request in the SYN", async () => {
    configure(stack, ['sysctl -w net.ipv4.tcp_fastopen=3', 'service add http tcp :7105 fastopen 16']);
    try {
      // The kernel forgets the cookie it got above: the first request asks for one.
      peer.run('ip', 'tcp_metrics', 'flush', 'all');
      const passive0 = stack.mib.TcpExtTCPFastOpenPassive;
      const reqd0 = stack.mib.TcpExtTCPFastOpenCookieReqd;
      const [cmd, a] = peer.command(['curl', '-s', '--max-time', '5', '--tcp-fastopen', '-o', '/dev/null', '-w', '%{http_code}', `http://${STACK_IP}:7105/`]);
      expect((await runAsync(cmd, a)).out).toBe('200');
      expect((await runAsync(cmd, a)).out).toBe('200');
      expect(stack.mib.TcpExtTCPFastOpenPassive - passive0).toBe(1);
      expect(stack.mib.TcpExtTCPFastOpenCookieReqd - reqd0).toBe(1);
    } finally {
      configure(stack, ['service del http tcp :7105', 'sysctl -w net.ipv4.tcp_fastopen=1']);
    }
  });
});
