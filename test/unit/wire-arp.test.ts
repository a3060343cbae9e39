import { describe, expect, it } from 'vitest';
import { ARP_LEN, ARP_REPLY, ARP_REQUEST, ArpView, emitArp, parseArp } from '../../src/wire/arp.js';
import { formatIp4, formatMac } from '../../src/wire/addr.js';
import { WireError } from '../../src/wire/error.js';
import { ARP_REPLY_FRAME, ARP_REQUEST_FRAME, VLAN_ARP_FRAME, hex } from '../fixtures/wire-frames.js';

function arpOf(frameHex: string, ethLen = 14): { f: Uint8Array; v: ArpView } {
  const f = hex(frameHex);
  return { f, v: new ArpView(f, ethLen, f.length - ethLen) };
}

describe('ARP', () => {
  it('kernel request: who has 10.77.0.2, tell 10.77.0.1', () => {
    const { v } = arpOf(ARP_REQUEST_FRAME);
    expect(v.check()).toBeNull();
    expect(v.htype).toBe(1);
    expect(v.ptype).toBe(0x0800);
    expect(v.hlen).toBe(6);
    expect(v.plen).toBe(4);
    expect(v.op).toBe(ARP_REQUEST);
    expect(formatMac(v.senderMac())).toBe('02:00:00:00:00:0a');
    expect(formatIp4(v.senderIp)).toBe('10.77.0.1');
    expect(formatMac(v.targetMac())).toBe('00:00:00:00:00:00');
    expect(formatIp4(v.targetIp)).toBe('10.77.0.2');
    expect(v.senderMacOff).toBe(22);
    expect(v.targetMacOff).toBe(32);
  });

  it('kernel reply: 10.77.0.2 is at 02:00:00:00:00:0b', () => {
    const { v } = arpOf(ARP_REPLY_FRAME);
    expect(parseArp(v)).toEqual({
      op: ARP_REPLY,
      senderMac: new Uint8Array([2, 0, 0, 0, 0, 0x0b]),
      senderIp: 0x0a4d0002,
      targetMac: new Uint8Array([2, 0, 0, 0, 0, 0x0a]),
      targetIp: 0x0a4d0001,
    });
  });

  it('emit(parse(x)) reproduces captured packets byte for byte', () => {
    for (const [h, off] of [
      [ARP_REQUEST_FRAME, 14],
      [ARP_REPLY_FRAME, 14],
      [VLAN_ARP_FRAME, 18],
    ] as const) {
      const f = hex(h);
      const repr = parseArp(new ArpView(f, off, f.length - off));
      const out = new Uint8Array(ARP_LEN + 1);
      expect(emitArp(repr, out, 1)).toBe(ARP_LEN);
      expect(out.subarray(1)).toEqual(f.subarray(off, off + ARP_LEN));
    }
  });

  it('setters write in place', () => {
    const { f, v } = arpOf(ARP_REQUEST_FRAME);
    v.op = ARP_REPLY;
    v.senderIp = 0xc0a80001;
    v.targetIp = 0xffffffff;
    v.setTargetMac(new Uint8Array([1, 2, 3, 4, 5, 6]));
    v.setSenderMac(new Uint8Array([0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]), 1);
    expect(Buffer.from(f.subarray(14)).toString('hex')).toBe(
      '00010800060400' + '02' + 'aabbccddeeff' + 'c0a80001' + '010203040506' + 'ffffffff',
    );
    const out = new Uint8Array(6);
    expect(v.senderMac(out)).toBe(out);
    expect(formatMac(out)).toBe('aa:bb:cc:dd:ee:ff');
  });

  it('check() names truncation and unsupported formats', () => {
    const { f } = arpOf(ARP_REQUEST_FRAME);
    const v = new ArpView(f, 14, 0);
    expect(v.reset(f, 14, 7).check()).toBe('truncated');
    expect(v.reset(f, 14, 27).check()).toBe('truncated');
    expect(v.reset(f, 14, 28).check()).toBeNull();
    for (const [i, bad] of [
      [1, 6], // htype IEEE 802 (6) instead of Ethernet
      [2, 0x86], // ptype 0x86dd
      [4, 8], // hlen
      [5, 16], // plen
    ] as const) {
      const g = f.slice();
      g[14 + i] = bad;
      expect(new ArpView(g, 14, 28).check(), `byte ${i}`).toBe('unsupported');
      // Unsupported even when short: the lengths decide how long it should be.
      expect(new ArpView(g, 14, 10).check(), `byte ${i}`).toBe('unsupported');
    }
    expect(() => parseArp(f.subarray(14, 30))).toThrow(WireError);
  });
});
