import { describe, expect, it } from 'vitest';
import {
  UDP_HEADER_LEN,
  UdpView,
  emitUdp,
  fillUdpChecksum,
  parseUdp,
  verifyUdpChecksum,
} from '../../src/wire/udp.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { WireError } from '../../src/wire/error.js';
import { UDP_CLOSED_PORT_FRAME, UDP_FRAME, hex } from '../fixtures/wire-frames.js';

function udpOf(frameHex: string): { f: Uint8Array; ip: Ipv4View; v: UdpView } {
  const f = hex(frameHex);
  const ip = new Ipv4View(f, 14, f.length - 14);
  expect(ip.check()).toBeNull();
  return { f, ip, v: new UdpView(f, ip.payloadOff, ip.payloadLen) };
}

describe('UDP', () => {
  it('nc datagram: ports, length, checksum, payload', () => {
    const { ip, v } = udpOf(UDP_FRAME);
    expect(v.check()).toBeNull();
    expect(v.srcPort).toBe(40000);
    expect(v.dstPort).toBe(7000);
    expect(v.length).toBe(23);
    expect(v.checksum).toBe(0x28f7);
    expect(v.payloadOff).toBe(42);
    expect(v.payloadLen).toBe(15);
    expect(Buffer.from(v.payload()).toString()).toBe('hello tapstack\n');
    expect(verifyUdpChecksum(v, ip.src, ip.dst)).toBe(true);
    expect(parseUdp(v)).toEqual({ srcPort: 40000, dstPort: 7000, payloadLen: 15 });
  });

  it('emit(parse(x)) with the addresses reproduces the captured header (checksum included)', () => {
    for (const h of [UDP_FRAME, UDP_CLOSED_PORT_FRAME]) {
      const { f, ip, v } = udpOf(h);
      const repr = parseUdp(v);
      const out = f.slice(v.off, v.off + v.length);
      out.fill(0xcc, 0, UDP_HEADER_LEN);
      expect(emitUdp(repr, out, 0, ip.src, ip.dst)).toBe(UDP_HEADER_LEN);
      expect(out).toEqual(f.subarray(v.off, v.off + v.length));
      // Without addresses: no checksum (RFC 768 zero), which verifies as "none".
      emitUdp(repr, out, 0);
      const nv = new UdpView(out, 0, out.length);
      expect(nv.checksum).toBe(0);
      expect(verifyUdpChecksum(nv, ip.src, ip.dst)).toBe(true);
    }
  });

  it('a corrupted byte or a wrong pseudo-header fails the checksum', () => {
    const { f, ip, v } = udpOf(UDP_FRAME);
    for (let i = 0; i < v.length; i++) {
      const g = f.slice();
      g[v.off + i] ^= 0x04;
      const gv = new UdpView(g, v.off, v.len);
      // A length beyond the bytes is caught by check() before any checksum.
      if (gv.check() !== null) expect(gv.check(), `byte ${i}`).toBe('length');
      else expect(verifyUdpChecksum(gv, ip.src, ip.dst), `byte ${i}`).toBe(false);
    }
    expect(verifyUdpChecksum(v, ip.src, ip.dst + 1)).toBe(false);
    expect(verifyUdpChecksum(v, ip.dst, ip.src)).toBe(true); // the sum is symmetric in the addresses
  });

  it('fillUdpChecksum sends a computed zero as 0xffff (RFC 768)', () => {
    // Find a 2-byte payload whose checksum computes to zero, by brute force.
    const buf = new Uint8Array(10);
    const v = new UdpView(buf, 0, 10);
    emitUdp({ srcPort: 1, dstPort: 2, payloadLen: 2 }, buf, 0);
    let found = false;
    for (let w = 0; w < 0x10000 && !found; w++) {
      buf[8] = w >>> 8;
      buf[9] = w & 0xff;
      fillUdpChecksum(v, 0x0a000001, 0x0a000002);
      if (v.checksum === 0xffff) found = true;
    }
    expect(found).toBe(true);
    expect(verifyUdpChecksum(v, 0x0a000001, 0x0a000002)).toBe(true);
  });

  it('check() names truncation and bad lengths', () => {
    const { f, v } = udpOf(UDP_FRAME);
    for (const len of [0, 7]) expect(v.reset(f, 34, len).check()).toBe('truncated');
    expect(v.reset(f, 34, 22).check()).toBe('length'); // length 23 > 22 available
    expect(v.reset(f, 34, 23).check()).toBeNull();
    const g = f.slice();
    g[34 + 4] = 0;
    g[34 + 5] = 7; // length 7 < 8
    expect(new UdpView(g, 34, 23).check()).toBe('length');
    expect(() => parseUdp(f.subarray(34, 40))).toThrow(WireError);
    // IP-level padding after the datagram is allowed: the length field rules.
    const padded = new Uint8Array(40);
    padded.set(f.subarray(34, 57));
    const pv = new UdpView(padded, 0, 40);
    expect(pv.check()).toBeNull();
    expect(pv.payload().length).toBe(15);
  });
});
