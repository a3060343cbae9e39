import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, pingSummary } from '../helpers/harness.js';

describe('the kernel pings the stack over a TAP device', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 11, mac: '02:00:00:00:11:02' });
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('answers ping -c 5, the first one included', () => {
    const r = tb.peer(`ping -c 5 -i 0.2 -W 2 ${tb.stackIp}`);
    expect(r.stdout).toContain('5 packets transmitted, 5 received');
    expect(r.stdout).toMatch(/64 bytes from .*icmp_seq=1 ttl=64/);
  });

  it("puts the stack's MAC in the kernel's neighbour table", () => {
    const out = tb.peer(`ip -j neigh show dev ${tb.dev}`).stdout;
    const entries = JSON.parse(out) as { dst: string; lladdr?: string; state: string[] }[];
    const e = entries.find((x) => x.dst === tb.stackIp);
    expect(e?.lladdr).toBe('02:00:00:00:11:02');
    expect(e?.state[0]).toMatch(/REACHABLE|STALE|DELAY/);
  });

  it('learns the kernel side in its own neighbour table', async () => {
    const kernelMac = tb.peer(`cat /sys/class/net/${tb.dev}/address`).stdout.trim();
    const neigh = await tb.ctlJson<{ dst: string; lladdr?: string; state: string[] }[]>('ip', '-j', 'neigh');
    const e = neigh.find((x) => x.dst === tb.peerIp);
    expect(e?.lladdr).toBe(kernelMac);
  });

  it('answers the largest ping that fits a 1500 MTU (-s 1472)', () => {
    const r = tb.peer(`ping -c 3 -i 0.2 -s 1472 -M do -W 2 ${tb.stackIp}`);
    expect(r.stdout).toContain('3 packets transmitted, 3 received');
    expect(r.stdout).toContain('1480 bytes from');
  });

  it('loses none of 2000 pings at 2 ms intervals', async () => {
    const before = await tb.nstat();
    const r = await tb.peerAsync(`ping -q -c 2000 -i 0.002 -W 2 ${tb.stackIp}`, 60_000);
    const s = pingSummary(r.stdout);
    expect(s).toEqual({ sent: 2000, received: 2000, loss: 0 });
    const after = await tb.nstat();
    expect(after.IcmpInEchos - before.IcmpInEchos).toBe(2000);
    expect(after.IcmpOutEchoReps - before.IcmpOutEchoReps).toBe(2000);
  });

  it('counts what it saw in ip -s link and nstat', async () => {
    const links = await tb.ctlJson<{ ifname: string; stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(
      'ip',
      '-j',
      '-s',
      'link',
    );
    const l = links.find((x) => x.ifname === tb.dev)!;
    expect(l.stats64.rx.packets).toBeGreaterThanOrEqual(2008);
    expect(l.stats64.tx.packets).toBeGreaterThanOrEqual(2008);
    const n = await tb.nstat();
    expect(n.IcmpMsgInType8).toBe(n.IcmpInEchos);
    expect(n.IpInHdrErrors).toBe(0);
  });
});
