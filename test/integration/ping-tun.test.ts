import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, pingSummary } from '../helpers/harness.js';

describe('the kernel pings the stack over a TUN device', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tun', subnet: 13 });
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('answers ping -c 5', () => {
    const r = tb.peer(`ping -c 5 -i 0.2 -W 2 ${tb.stackIp}`);
    expect(r.stdout).toContain('5 packets transmitted, 5 received');
  });

  it('answers ping -s 1472', () => {
    const r = tb.peer(`ping -c 3 -i 0.2 -s 1472 -M do -W 2 ${tb.stackIp}`);
    expect(r.stdout).toContain('3 packets transmitted, 3 received');
    expect(r.stdout).toContain('1480 bytes from');
  });

  it('loses none of 2000 pings at 2 ms intervals', async () => {
    const r = await tb.peerAsync(`ping -q -c 2000 -i 0.002 -W 2 ${tb.stackIp}`, 60_000);
    expect(pingSummary(r.stdout)).toEqual({ sent: 2000, received: 2000, loss: 0 });
  });

  it('shows a TUN link without a MAC and without neighbours', async () => {
    const links = await tb.ctlJson<{ ifname: string; link_type: string; flags: string[]; address?: string }[]>('ip', '-j', 'link');
    const l = links.find((x) => x.ifname === tb.dev)!;
    expect(l.link_type).toBe('none');
    expect(l.flags).toContain('NOARP');
    expect(l.address).toBeUndefined();
    expect(await tb.ctlJson('ip', '-j', 'neigh')).toEqual([]);
  });
});
