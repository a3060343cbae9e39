import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, injectFrames } from '../helpers/harness.js';
import { concat, echoRequest, ethHeader, fixIpChecksum, hex } from '../helpers/frames.js';

const STACK_MAC = '02:00:00:00:12:02';
const PEER_MAC = '02:00:00:00:12:01';

describe('malformed frames from the kernel side are dropped and counted', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 12, mac: STACK_MAC });
    // Resolve each other first, so the injected frames are the only traffic counted.
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });
  afterAll(async () => {
    await tb?.close();
  });

  const ip4 = (payload: Uint8Array) => concat(ethHeader(STACK_MAC, PEER_MAC, 0x0800), payload);

  it('counts each kind of bad IPv4 header under its Linux name', async () => {
    const good = () => echoRequest(tb.peerIp, tb.stackIp);
    const truncated = good().slice(0, 10);
    const badCsum = good();
    badCsum[10] ^= 0xff;
    const ihl4 = good();
    ihl4[0] = 0x44;
    fixIpChecksum(ihl4);
    const version6in4 = good();
    version6in4[0] = 0x65;
    fixIpChecksum(version6in4);
    const tooLong = good();
    tooLong[2] = 0x03; // total length 0x03xx: beyond the frame
    fixIpChecksum(tooLong);

    const n0 = await tb.nstat();
    const errs = injectFrames(tb, [truncated, badCsum, ihl4, version6in4, tooLong].map((p) => hex(ip4(p))));
    expect(errs).toEqual([0, 0, 0, 0, 0]);
    await new Promise((r) => setTimeout(r, 200));
    const n1 = await tb.nstat();
    expect(n1.IpInReceives - n0.IpInReceives).toBe(5);
    // Truncated header, IHL < 5, version 6 and the bad checksum: header errors.
    expect(n1.IpInHdrErrors - n0.IpInHdrErrors).toBe(4);
    expect(n1.IpExtInCsumErrors - n0.IpExtInCsumErrors).toBe(1);
    expect(n1.IpExtInTruncatedPkts - n0.IpExtInTruncatedPkts).toBe(1);
    expect(n1.IpInDelivers - n0.IpInDelivers).toBe(0);
    expect(n1.IcmpOutEchoReps - n0.IcmpOutEchoReps).toBe(0);
  });

  it('counts unknown EtherTypes and IPv6 as link drops', async () => {
    const d0 = await tb.linkDrops();
    const unknown = concat(ethHeader(STACK_MAC, PEER_MAC, 0x88b5), new Uint8Array(46));
    const ipv6 = concat(ethHeader(STACK_MAC, PEER_MAC, 0x86dd), new Uint8Array([0x60, ...new Array(39).fill(0)]));
    const otherHost = concat(ethHeader('02:00:00:00:99:99', PEER_MAC, 0x0800), echoRequest(tb.peerIp, tb.stackIp));
    expect(injectFrames(tb, [unknown, ipv6, otherHost].map(hex))).toEqual([0, 0, 0]);
    await new Promise((r) => setTimeout(r, 200));
    const d1 = await tb.linkDrops();
    expect(d1['unknown-ethertype'] - d0['unknown-ethertype']).toBe(1);
    // The kernel may send its own IPv6 (MLD, ND) now and then: at least ours.
    expect(d1.ipv6 - d0.ipv6).toBeGreaterThanOrEqual(1);
    expect(d1.otherhost - d0.otherhost).toBe(1);
  });

  it('cannot be sent a runt: the kernel refuses frames shorter than an Ethernet header', () => {
    // AF_PACKET checks the link header length (dev_validate_header), so a runt
    // never reaches a TAP device; the stack's runt counter is tested on the sim link.
    const errs = injectFrames(tb, ['0200000012020200', '02000000120202000000120100']);
    expect(errs).toEqual([22, 22]);
  });

  it('still answers ping afterwards', () => {
    const r = tb.peer(`ping -c 3 -i 0.2 -W 2 ${tb.stackIp}`);
    expect(r.stdout).toContain('3 packets transmitted, 3 received');
  });

  it('answers a well-formed injected echo request (the injection path itself works)', async () => {
    const n0 = await tb.nstat();
    injectFrames(tb, [hex(ip4(echoRequest(tb.peerIp, tb.stackIp, { ident: 7, seq: 9 })))]);
    await new Promise((r) => setTimeout(r, 200));
    const n1 = await tb.nstat();
    expect(n1.IcmpInEchos - n0.IcmpInEchos).toBe(1);
    expect(n1.IcmpOutEchoReps - n0.IcmpOutEchoReps).toBe(1);
  });
});
