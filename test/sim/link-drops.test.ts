import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { concat, echoRequest, ethHeader, fixIpChecksum } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';
import type { Interface } from '../../src/link/interface.js';
import { formatLinks } from '../../src/control/format.js';

/** Delivers raw frames to `iface` as if they came off its wire. */
function deliver(iface: Interface, ...frames: Uint8Array[]): void {
  for (const f of frames) iface.frame(f);
  iface.batchEnd();
}

describe('link-layer input', () => {
  it('counts runts, frames for other hosts, tagged frames, IPv6 and unknown EtherTypes', () => {
    const { b, ib } = simPair();
    const me = formatMac(ib.mac);
    const rx0 = ib.stats.rxPackets;
    deliver(
      ib,
      new Uint8Array(13),
      new Uint8Array(0),
      concat(ethHeader('02:99:99:99:99:99', '02:00:00:00:00:01', 0x0800), echoRequest('10.0.0.1', '10.0.0.2')),
      concat(ethHeader(me, '02:00:00:00:00:01', 0x8100), new Uint8Array(50)),
      concat(ethHeader(me, '02:00:00:00:00:01', 0x86dd), new Uint8Array(40)),
      concat(ethHeader(me, '02:00:00:00:00:01', 0x1234), new Uint8Array(46)),
      concat(ethHeader(me, '02:00:00:00:00:01', 0x0806), new Uint8Array(10)),
    );
    expect(ib.drops.runt).toBe(2);
    expect(ib.drops.otherhost).toBe(1);
    expect(ib.drops.vlan).toBe(1);
    expect(ib.drops.ipv6).toBe(1);
    expect(ib.drops['unknown-ethertype']).toBe(1);
    expect(ib.drops['arp-invalid']).toBe(1);
    expect(ib.stats.rxDropped).toBe(7);
    expect(ib.stats.rxPackets - rx0).toBe(7);
    expect(b.mib.IpInReceives).toBe(0);
  });

  it('counts bad IPv4 headers under Linux names and drops them', () => {
    const { b, ib } = simPair();
    const eth = () => ethHeader(formatMac(ib.mac), '02:00:00:00:00:01', 0x0800);
    const good = () => echoRequest('10.0.0.1', '10.0.0.2');
    const badSum = good();
    badSum[11] ^= 1;
    const ihl = good();
    ihl[0] = 0x43;
    fixIpChecksum(ihl);
    const long = good();
    long[2] = 0xff;
    fixIpChecksum(long);
    const short = good();
    short[3] = 10; // total length below the header length
    fixIpChecksum(short);
    deliver(ib, ...[good().slice(0, 19), badSum, ihl, long, short].map((p) => concat(eth(), p)));
    expect(b.mib.IpInReceives).toBe(5);
    expect(b.mib.IpInHdrErrors).toBe(4);
    expect(b.mib.IpExtInCsumErrors).toBe(1);
    expect(b.mib.IpExtInTruncatedPkts).toBe(1);
    expect(b.mib.IcmpInMsgs).toBe(0);
  });

  it('trims Ethernet padding off a short datagram', () => {
    const { time, b, ib } = simPair();
    const frame = concat(ethHeader(formatMac(ib.mac), '02:00:00:00:00:01', 0x0800), echoRequest('10.0.0.1', '10.0.0.2', { data: 0 }), new Uint8Array(18));
    deliver(ib, frame);
    time.advance(10);
    expect(b.mib.IcmpInEchos).toBe(1);
    expect(b.mib.IcmpInCsumErrors).toBe(0);
    expect(b.mib.IcmpOutEchoReps).toBe(1);
  });

  it('drops frames while the interface is down', () => {
    const { time, a, b, ib } = simPair();
    b.setUp(ib, false);
    const r = simPing(time, a, ip('10.0.0.2'), 2);
    expect(r.replies.length).toBe(0);
    expect(ib.drops['link-down']).toBeGreaterThan(0);
  });
});

describe('a device that fails', () => {
  it('leaves its link without a carrier: routes unused, NO-CARRIER shown, the rest works', () => {
    const { time, a, ia, da } = simPair();
    const before = simPing(time, a, ip('10.0.0.2'), 1);
    expect(before.replies.length).toBe(1);
    da.onError!(new Error('gone'));
    expect(ia.carrier).toBe(false);
    expect(ia.running).toBe(false);
    expect(a.ip.routes.lookup(ip('10.0.0.2'))).toBeNull();
    expect(a.icmp.sendEcho(ip('10.0.0.2'), 1, 1, new Uint8Array(8))).toBe('ENETUNREACH');
    expect(ia.stats.rxErrors).toBe(1);
    const links = JSON.parse(formatLinks([ia], false, true)) as { flags: string[]; operstate: string }[];
    expect(links[0].flags).toEqual(['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP']);
    expect(links[0].operstate).toBe('DOWN');
  });
});
