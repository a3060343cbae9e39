import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterTestbed } from '../helpers/router.js';
import { shOk } from '../helpers/harness.js';

// Two namespaces routed through the stack: a = 10.231.50.0/24, b = 10.231.51.0/24
// (whose link has MTU 1400). Needs namespaces: the container run (TAPSTACK_TEST_PEER=local) leaves this file out.
describe('the stack forwards between two namespaces (RFC 1812)', () => {
  let tb: RouterTestbed;
  beforeAll(async () => {
    tb = await RouterTestbed.start({ subnet: 50 }, { subnet: 51, mtu: 1400 }, ['sysctl -w net.ipv4.ip_forward=1']);
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  it('forwards ping both ways', () => {
    const ab = tb.a.run(`ping -c 3 -i 0.2 -W 2 ${tb.b.peerIp}`);
    expect(ab.stdout).toContain('3 packets transmitted, 3 received');
    // One hop: the kernel's 64 less one.
    expect(ab.stdout).toMatch(/ttl=63/);
    const ba = tb.b.run(`ping -c 3 -i 0.2 -W 2 ${tb.a.peerIp}`);
    expect(ba.stdout).toContain('3 packets transmitted, 3 received');
  });

  it('carries a UDP exchange (socat)', async () => {
    const server = tb.b.runAsync(`socat -T 5 UDP4-RECVFROM:5000 SYSTEM:'tr a-z A-Z'`, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const client = tb.a.run(`echo hello router | socat -T 3 - UDP4:${tb.b.peerIp}:5000`, { timeoutMs: 10_000 });
    expect(client.stdout).toBe('HELLO ROUTER\n');
    await server;
  });

  it('carries a 10 MB TCP transfer unchanged (socat, sha256)', async () => {
    const file = path.join(tb.dir, 'blob');
    shOk(`head -c 10485760 /dev/urandom > ${file}`);
    const want = shOk(`sha256sum < ${file}`).split(' ')[0];
    const server = tb.b.runAsync(`socat -u TCP4-LISTEN:5001,reuseaddr - | sha256sum`, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    const client = await tb.a.runAsync(`socat -u OPEN:${file} TCP4:${tb.b.peerIp}:5001`, 60_000);
    expect(client.code).toBe(0);
    const got = (await server).stdout.split(' ')[0];
    expect(got).toBe(want);
    fs.rmSync(file);
  }, 90_000);

  it('shows as hop 1 in traceroute -n (time exceeded)', () => {
    const r = tb.a.run(`traceroute -n -w 2 -q 1 -m 5 ${tb.b.peerIp}`, { timeoutMs: 30_000 });
    expect(r.stdout).toMatch(new RegExp(`^ 1\\s+${tb.a.stackIp.replace(/\./g, '\\.')}\\s`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ 2\\s+${tb.b.peerIp.replace(/\./g, '\\.')}\\s`, 'm'));
  });

  it('answers ping -M do -s 1472 towards the MTU 1400 link with fragmentation needed (mtu = 1400)', () => {
    const r = tb.a.run(`ping -c 2 -i 0.3 -W 1 -M do -s 1472 ${tb.b.peerIp}`);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/Frag needed and DF set \(mtu = 1400\)|message too long, mtu=1400/);
    // The kernel learnt the path MTU from it.
    expect(tb.a.run(`ip route get ${tb.b.peerIp}`).stdout).toMatch(/mtu 1400/);
  });

  it('counts IpForwDatagrams in nstat', async () => {
    const n = await tb.nstat();
    // The 10 MB transfer came in as TSO super-packets over the TAP and was forwarded
    // as such; ip_forward_finish counts each once, as Linux does.
    expect(n.IpForwDatagrams).toBeGreaterThan(150);
    const text = await tb.ctlRun('nstat', '-a');
    expect(text.stdout).toMatch(/IpForwDatagrams\s+\d+/);
  });

  it('stops forwarding with sysctl -w net.ipv4.ip_forward=0 and counts the drops', async () => {
    expect((await tb.ctlRun('sysctl', '-w', 'net.ipv4.ip_forward=0')).stdout.trim()).toBe('net.ipv4.ip_forward = 0');
    const before = await tb.nstat();
    const r = tb.a.run(`ping -c 2 -i 0.2 -W 1 ${tb.b.peerIp}`);
    expect(r.stdout).toContain('2 packets transmitted, 0 received');
    const after = await tb.nstat();
    expect(after.IpInAddrErrors - before.IpInAddrErrors).toBe(2);
    expect(after.IpForwDatagrams).toBe(before.IpForwDatagrams);
    await tb.ctlRun('sysctl', '-w', 'net.ipv4.conf.all.forwarding=1');
    expect(tb.a.run(`ping -c 1 -W 2 ${tb.b.peerIp}`).stdout).toContain('1 received');
  });
});
