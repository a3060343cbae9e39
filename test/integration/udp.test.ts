import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../helpers/harness.js';

/**
 * The kernel's UDP clients (socat, a Python socket) talk to the stack's
 * built-in echo and discard services over a TAP device.
 */
describe('UDP services answer the kernel over a TAP device', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({
      type: 'tap',
      subnet: 24,
      extraConfig: ['service add echo udp :7', 'service add discard udp :9'],
    });
  });
  afterAll(async () => {
    await tb?.close();
  });

  /** Sends `n` random bytes as one datagram to the echo service with socat; returns [sent, received]. */
  async function echo(n: number): Promise<[Buffer, Buffer, string]> {
    const inFile = path.join(tb.dir, `in-${n}`);
    const outFile = path.join(tb.dir, `out-${n}`);
    const data = crypto.randomBytes(n);
    fs.writeFileSync(inFile, data);
    // -b: a buffer big enough for the whole datagram; -t: wait for the answer after stdin ends.
    const r = await tb.peerAsync(`socat -b 65536 -t 1.5 -T 5 - UDP4:${tb.stackIp}:7 < ${inFile} > ${outFile}`, 20_000);
    return [data, fs.readFileSync(outFile), r.stderr];
  }

  for (const n of [1, 1472, 1473, 8000, 65507]) {
    it(`echoes ${n} bytes byte for byte`, async () => {
      const [sent, got, err] = await echo(n);
      expect(err).toBe('');
      expect(got.length).toBe(n);
      expect(got.equals(sent)).toBe(true);
    });
  }

  it('discards what goes to port 9 and answers nothing', async () => {
    const before = await tb.nstat();
    const r = await tb.peerAsync(`printf 'into the void' | socat -t 1 - UDP4:${tb.stackIp}:9`, 10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const after = await tb.nstat();
    expect(after.UdpInDatagrams - before.UdpInDatagrams).toBe(1);
    expect(after.UdpOutDatagrams - before.UdpOutDatagrams).toBe(0);
  });

  it('a closed port: the kernel client sees Connection refused', async () => {
    const before = await tb.nstat();
    const r = await tb.peerAsync(`printf 'anyone?' | socat -t 2 - UDP4:${tb.stackIp}:5555`, 10_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Connection refused');
    // A connected socket: the first send goes, the ICMP error comes back, the second send fails.
    const py = [
      'import socket, time, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `s.connect(("${tb.stackIp}", 5556))`,
      's.send(b"first")',
      'time.sleep(0.5)',
      'try:',
      '    s.send(b"second")',
      '    print("sent")',
      'except OSError as e:',
      '    print(e.errno, e.strerror)',
    ].join('\n');
    const script = path.join(tb.dir, 'refused.py');
    fs.writeFileSync(script, py);
    const p = await tb.peerAsync(`python3 ${script}`, 10_000);
    expect(p.stdout.trim()).toBe('111 Connection refused');
    const after = await tb.nstat();
    expect(after.UdpNoPorts - before.UdpNoPorts).toBe(2);
    expect(after.IcmpOutDestUnreachs - before.IcmpOutDestUnreachs).toBe(2);
  });

  it('lists, adds and removes services through the control socket', async () => {
    const list = await tb.ctlRun('service');
    expect(list.stdout).toBe('echo udp 0.0.0.0:7\ndiscard udp 0.0.0.0:9\n');
    const busy = await tb.ctlRun('service', 'add', 'discard', 'udp', ':7');
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('Address already in use');
    const bad = await tb.ctlRun('service', 'add', 'echo', 'udp', '7');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('word "7": expected ADDR:PORT or :PORT');
    expect((await tb.ctlRun('service', 'add', 'echo', 'udp', `${tb.stackIp}:7007`)).code).toBe(0);
    const r = await tb.peerAsync(`printf 'seven' | socat -t 2 - UDP4:${tb.stackIp}:7007`, 10_000);
    expect(r.stdout).toBe('seven');
    expect((await tb.ctlRun('service', 'del', 'echo', 'udp', `${tb.stackIp}:7007`)).code).toBe(0);
    expect((await tb.ctlRun('service', 'list')).stdout).toBe('echo udp 0.0.0.0:7\ndiscard udp 0.0.0.0:9\n');
  });

  it('counts it all in nstat', async () => {
    const n = await tb.nstat();
    // Five echoes, one discard, one echo on 7007; two refused.
    expect(n.UdpInDatagrams).toBe(7);
    expect(n.UdpOutDatagrams).toBe(6);
    expect(n.UdpNoPorts).toBe(2);
    expect(n.UdpInErrors).toBe(0);
    expect(n.UdpInCsumErrors).toBe(0);
    // The three big echoes came in fragments both ways.
    expect(n.IpReasmOKs).toBeGreaterThanOrEqual(3);
    expect(n.IpFragOKs).toBeGreaterThanOrEqual(3);
  });
});
