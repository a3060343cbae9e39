import { describe, expect, it } from 'vitest';
import { ip, simPair } from '../helpers/sim.js';
import { concat, ethHeader, ipHeader, fixIpChecksum, echoRequest } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';
import type { SimPair } from '../helpers/sim.js';

/** Captures what `a` receives (the frames b sends back) by tapping a's device. */
function icmpFromB(p: SimPair): { type: number; code: number; pointer: number; quote: Uint8Array }[] {
  const seen: { type: number; code: number; pointer: number; quote: Uint8Array }[] = [];
  const orig = p.ia.frame.bind(p.ia);
  p.ia.frame = (f: Uint8Array) => {
    if (f[12] === 8 && f[13] === 0 && f[23] === 1) {
      const o = 14 + (f[14] & 0xf) * 4;
      if (f[o] !== 0 && f[o] !== 8) seen.push({ type: f[o], code: f[o + 1], pointer: f[o + 4], quote: f.slice(o + 8) });
    }
    orig(f);
  };
  return seen;
}

function send(p: SimPair, datagram: Uint8Array, dstMac?: string): void {
  p.ib.frame(concat(ethHeader(dstMac ?? formatMac(p.ib.mac), formatMac(p.ia.mac), 0x0800), datagram));
  p.ib.batchEnd();
  p.time.advance(10);
}

describe('ICMP errors sent by the stack', () => {
  it('answers an unknown protocol with protocol unreachable quoting the header and 8 bytes', () => {
    const p = simPair();
    const seen = icmpFromB(p);
    const payload = new Uint8Array(40).map((_, i) => i);
    const d = concat(ipHeader('10.0.0.1', '10.0.0.2', 253, payload.length), payload);
    send(p, d);
    expect(p.b.mib.IpInUnknownProtos).toBe(1);
    expect(seen).toHaveLength(1);
    expect(seen[0].type).toBe(3);
    expect(seen[0].code).toBe(2);
    expect(seen[0].quote.slice(0, 28)).toEqual(d.slice(0, 28));
    expect(p.b.mib.IcmpOutDestUnreachs).toBe(1);
    expect(p.b.icmpMsg.out[3]).toBe(1);
  });

  it('answers a malformed option with parameter problem pointing at it', () => {
    const p = simPair();
    const seen = icmpFromB(p);
    // Header with 4 bytes of options: a record-route option claiming 9 bytes.
    const inner = echoRequest('10.0.0.1', '10.0.0.2');
    const d = concat(inner.slice(0, 20), new Uint8Array([7, 9, 4, 0]), inner.slice(20));
    d[0] = 0x46;
    const total = d.length;
    d[2] = total >> 8;
    d[3] = total & 0xff;
    fixIpChecksum(d);
    send(p, d);
    expect(p.b.mib.IpInHdrErrors).toBe(1);
    expect(seen).toEqual([expect.objectContaining({ type: 12, code: 0, pointer: 21 })]);
  });

  it('sends no error about a broadcast, a non-first fragment or an ICMP error', () => {
    const p = simPair();
    const seen = icmpFromB(p);
    const payload = new Uint8Array(16);
    send(p, concat(ipHeader('10.0.0.1', '10.0.0.255', 253, 16), payload), 'ff:ff:ff:ff:ff:ff');
    const frag = concat(ipHeader('10.0.0.1', '10.0.0.2', 253, 16), payload);
    frag[7] = 3; // offset 24
    fixIpChecksum(frag);
    send(p, frag);
    // An ICMP destination unreachable with a bad option: no error about an error.
    const err = new Uint8Array(36);
    err[0] = 3;
    const d = concat(ipHeader('10.0.0.1', '10.0.0.2', 1, 36 + 4), err);
    const withOpt = concat(d.slice(0, 20), new Uint8Array([7, 9, 4, 0]), d.slice(20));
    withOpt[0] = 0x46;
    fixIpChecksum(withOpt);
    send(p, withOpt);
    expect(seen).toEqual([]);
  });

  it('limits errors per destination like Linux: a burst of 6, then one a second', () => {
    const p = simPair();
    const seen = icmpFromB(p);
    const d = concat(ipHeader('10.0.0.1', '10.0.0.2', 253, 8), new Uint8Array(8));
    for (let i = 0; i < 20; i++) send(p, d);
    expect(seen.length).toBe(6);
    expect(p.b.mib.IcmpOutRateLimitHost).toBe(14);
    p.time.advance(1000);
    send(p, d);
    send(p, d);
    expect(seen.length).toBe(7);
    // With the limit off (sysctl), every one is answered.
    p.b.sysctl.set('net.ipv4.icmp_ratelimit', '0');
    for (let i = 0; i < 5; i++) send(p, d);
    expect(seen.length).toBe(12);
  });

  it('ignores broadcast pings by default and answers them when told to', () => {
    const p = simPair();
    const bcast = echoRequest('10.0.0.1', '10.0.0.255');
    send(p, bcast, 'ff:ff:ff:ff:ff:ff');
    expect(p.b.mib.IcmpOutEchoReps).toBe(0);
    p.b.sysctl.set('net.ipv4.icmp_echo_ignore_broadcasts', '0');
    send(p, bcast, 'ff:ff:ff:ff:ff:ff');
    expect(p.b.mib.IcmpOutEchoReps).toBe(1);
    expect(ip('10.0.0.2')).toBe(p.b.ip.local.keys().next().value);
  });
});
