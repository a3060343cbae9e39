import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shOk } from '../helpers/harness.js';
import { RouterTestbed } from '../helpers/router.js';
import { kernelCsumErrors, offloadStats } from '../helpers/offload-live.js';

// The stack forwarding between two TAPs with virtio-net offloads, each kernel side in a namespace
// (10.233.103.0/24 and 10.233.104.0/24). Needs namespaces: the container run
// (TAPSTACK_TEST_PEER=local) leaves this file out.

describe('forwarding TAP to TAP with offloads, plain and through SNAT', () => {
  let tb: RouterTestbed;
  beforeAll(async () => {
    tb = await RouterTestbed.start(
      { subnet: 103, net: '10.233', dev: 'tsofra', ns: 'tsof-ra' },
      { subnet: 104, net: '10.233', dev: 'tsofrb', ns: 'tsof-rb' },
      ['sysctl -w net.ipv4.ip_forward=1'],
    );
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  async function transfer(port: number): Promise<void> {
    const file = path.join(tb.dir, `blob${port}`);
    shOk(`head -c 10485760 /dev/urandom > ${file}`);
    const want = shOk(`sha256sum < ${file}`).split(' ')[0];
    const server = tb.b.runAsync(`socat -u TCP4-LISTEN:${port},reuseaddr - | sha256sum`, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    const client = await tb.a.runAsync(`socat -u OPEN:${file} TCP4:${tb.b.peerIp}:${port}`, 60_000);
    expect(client.code).toBe(0);
    expect((await server).stdout.split(' ')[0]).toBe(want);
  }

  it('passes super-packets through whole (in as TSO from one kernel, out as TSO to the other)', async () => {
    const before = await offloadStats((...a) => tb.ctlRun(...a), 'tsofrb');
    await transfer(5001);
    const a = await offloadStats((...x) => tb.ctlRun(...x), 'tsofra');
    const b = await offloadStats((...x) => tb.ctlRun(...x), 'tsofrb');
    expect(a.rx_gso_packets).toBeGreaterThan(50);
    expect(b.tx_gso_packets - before.tx_gso_packets).toBeGreaterThan(50);
    expect(kernelCsumErrors((c) => tb.b.run(c))).toBe(0);
  }, 90_000);

  /** Masquerade out of b (once). */
  async function masquerade(): Promise<void> {
    if ((await tb.ctlRun('nft', 'list', 'table', 'ip', 'tsofnat')).code === 0) return;
    for (const line of ['add table ip tsofnat', 'add chain ip tsofnat post { type nat hook postrouting priority srcnat ; }', `add rule ip tsofnat post oifname tsofrb counter masquerade`]) {
      const x = await tb.ctlRun('nft', ...line.split(' '));
      expect([line, x.code, x.stdout + x.stderr]).toEqual([line, 0, '']);
    }
  }

  it('SNAT (masquerade) fixes partial checksums on the pseudo-header: the kernel receiver takes every segment', async () => {
    await masquerade();
    const seen = tb.b.runAsync(`timeout 8 tcpdump -c 1 -n -i tsofrb 'tcp dst port 5002 and src host 10.233.104.2' 2>/dev/null`, 20_000);
    await new Promise((res) => setTimeout(res, 500));
    await transfer(5002);
    // The far side saw the stack's address as the source: the packets were NATed.
    expect((await seen).stdout).toMatch(/10\.233\.104\.2\.\d+ > 10\.233\.104\.1\.5002/);
    expect(kernelCsumErrors((c) => tb.b.run(c))).toBe(0);
    const b = await offloadStats((...x) => tb.ctlRun(...x), 'tsofrb');
    expect(b.tx_gso_packets).toBeGreaterThan(50);
  }, 90_000);

  it('segments that stay partial through masquerade, finished by the stack before a link without tx checksumming, pass the kernel verification', async () => {
    // No super-packets from a (lro and gro off): every segment comes partial (NEEDS_CSUM) and
    // alone; NAT patches its pseudo-header sum; b can't finish checksums, so the stack does,
    // from that patched sum, and b's kernel checks each one.
    await masquerade();
    for (const [dev, ...f] of [['tsofra', 'lro', 'off', 'gro', 'off'], ['tsofrb', 'tx', 'off']]) {
      const r = await tb.ctlRun('ethtool', '-K', dev, ...f);
      expect(r.code).toBe(0);
    }
    const before = await offloadStats((...x) => tb.ctlRun(...x), 'tsofrb');
    const errs = kernelCsumErrors((c) => tb.b.run(c));
    const seen = tb.b.runAsync(`timeout 8 tcpdump -c 1 -n -i tsofrb 'tcp dst port 5003 and src host 10.233.104.2' 2>/dev/null`, 20_000);
    await new Promise((res) => setTimeout(res, 500));
    await transfer(5003);
    expect((await seen).stdout).toMatch(/10\.233\.104\.2\.\d+ > 10\.233\.104\.1\.5003/);
    const b = await offloadStats((...x) => tb.ctlRun(...x), 'tsofrb');
    expect(b.tx_csum_sw - before.tx_csum_sw).toBeGreaterThan(1000);
    expect(b.tx_gso_packets - before.tx_gso_packets).toBe(0);
    expect(kernelCsumErrors((c) => tb.b.run(c))).toBe(errs);
  }, 90_000);
});
