import { describe, expect, it } from 'vitest';
import {
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  ETH_HEADER_LEN,
  EthernetView,
  emitEthernet,
  ethernetHeaderLen,
  parseEthernet,
} from '../../src/wire/ethernet.js';
import { WireError } from '../../src/wire/error.js';
import { formatMac } from '../../src/wire/addr.js';
import {
  ARP_REPLY_FRAME,
  ARP_REQUEST_FRAME,
  ECHO_REQUEST_FRAME,
  QINQ_ECHO_FRAME,
  VLAN_ARP_FRAME,
  hex,
} from '../fixtures/wire-frames.js';

/** emit(parse(x)) must give back the header bytes exactly. */
function roundTrip(frame: Uint8Array): void {
  const repr = parseEthernet(frame);
  const hl = ethernetHeaderLen(repr);
  const out = new Uint8Array(hl + 4).fill(0xee);
  expect(emitEthernet(repr, out, 2)).toBe(hl);
  expect(out.subarray(2, 2 + hl)).toEqual(frame.subarray(0, hl));
  expect(out[0]).toBe(0xee);
  expect(out[hl + 2]).toBe(0xee);
}

describe('Ethernet', () => {
  it('untagged ARP request: broadcast destination, EtherType 0x0806', () => {
    const f = hex(ARP_REQUEST_FRAME);
    const v = new EthernetView(f, 0, f.length);
    expect(v.check()).toBeNull();
    expect(formatMac(v.dst())).toBe('ff:ff:ff:ff:ff:ff');
    expect(formatMac(v.src())).toBe('02:00:00:00:00:0a');
    expect(v.etherType).toBe(ETHERTYPE_ARP);
    expect(v.vlanCount).toBe(0);
    expect(v.headerLen).toBe(ETH_HEADER_LEN);
    expect(v.payload().length).toBe(28);
    expect(parseEthernet(v)).toEqual({
      dst: new Uint8Array([255, 255, 255, 255, 255, 255]),
      src: new Uint8Array([2, 0, 0, 0, 0, 0x0a]),
      vlans: [],
      etherType: ETHERTYPE_ARP,
    });
    roundTrip(f);
    roundTrip(hex(ARP_REPLY_FRAME));
    roundTrip(hex(ECHO_REQUEST_FRAME));
  });

  it('802.1Q tag: VID 100, PCP 5, DEI set', () => {
    const f = hex(VLAN_ARP_FRAME);
    const v = new EthernetView(f, 0, f.length);
    expect(v.check()).toBeNull();
    expect(v.vlanCount).toBe(1);
    expect(v.headerLen).toBe(18);
    expect(v.vlanTpid(0)).toBe(ETHERTYPE_VLAN);
    expect(v.vlanId(0)).toBe(100);
    expect(v.vlanPcp(0)).toBe(5);
    expect(v.vlanDei(0)).toBe(true);
    expect(v.etherType).toBe(ETHERTYPE_ARP);
    expect(parseEthernet(f).vlans).toEqual([{ tpid: ETHERTYPE_VLAN, pcp: 5, dei: true, vid: 100 }]);
    roundTrip(f);
  });

  it('802.1ad + 802.1Q (QinQ): S-VID 300 outside C-VID 30', () => {
    const f = hex(QINQ_ECHO_FRAME);
    const v = new EthernetView(f, 0, f.length);
    expect(v.check()).toBeNull();
    expect(v.vlanCount).toBe(2);
    expect(v.headerLen).toBe(22);
    expect(v.etherType).toBe(ETHERTYPE_IPV4);
    const r = parseEthernet(f);
    expect(r.vlans).toEqual([
      { tpid: ETHERTYPE_QINQ, pcp: 0, dei: false, vid: 300 },
      { tpid: ETHERTYPE_VLAN, pcp: 0, dei: false, vid: 30 },
    ]);
    // The payload starts with an IPv4 header.
    expect(v.payload()[0]).toBe(0x45);
    roundTrip(f);
  });

  it('setters write in place, copies do not alias, out parameters do not allocate', () => {
    const f = hex(VLAN_ARP_FRAME);
    const v = new EthernetView(new Uint8Array(0), 0, 0).reset(f, 0, f.length);
    const src = v.src();
    v.setSrc(new Uint8Array([2, 1, 2, 3, 4, 5]));
    expect(formatMac(src)).toBe('02:00:00:00:00:0a');
    const out = new Uint8Array(8);
    expect(v.src(out, 2)).toBe(out);
    expect(formatMac(out, 2)).toBe('02:01:02:03:04:05');
    v.setDst(new Uint8Array([9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6]), 6);
    expect(formatMac(v.dst())).toBe('01:02:03:04:05:06');
    v.etherType = ETHERTYPE_IPV4;
    expect(f[16]).toBe(0x08);
    expect(f[17]).toBe(0x00);
    v.setVlanTci(0, 0x0fff);
    expect(v.vlanId(0)).toBe(4095);
    expect(v.vlanPcp(0)).toBe(0);
    // Parsing from a Node Buffer must copy the MACs out of it.
    const b = Buffer.from(f);
    const r = parseEthernet(b);
    b.fill(0);
    expect(formatMac(r.src)).toBe('02:01:02:03:04:05');
  });

  it('check() names runts, including a truncated tag', () => {
    const f = hex(QINQ_ECHO_FRAME);
    const v = new EthernetView(f, 0, 0);
    for (const len of [0, 6, 13]) expect(v.reset(f, 0, len).check(), `len ${len}`).toBe('runt');
    // 14 bytes end inside the first tag; 18 inside the second; 21 one short of the EtherType.
    for (const len of [14, 17, 18, 21]) expect(v.reset(f, 0, len).check(), `len ${len}`).toBe('runt');
    expect(v.reset(f, 0, 22).check()).toBeNull();
    expect(() => parseEthernet(f.subarray(0, 10))).toThrow(WireError);
    const a = hex(ARP_REQUEST_FRAME);
    expect(v.reset(a, 0, 14).check()).toBeNull();
  });

  it('emits tags with every field in range', () => {
    const buf = new Uint8Array(22);
    const n = emitEthernet(
      {
        dst: new Uint8Array([1, 2, 3, 4, 5, 6]),
        src: new Uint8Array([7, 8, 9, 10, 11, 12]),
        vlans: [
          { tpid: ETHERTYPE_QINQ, pcp: 7, dei: true, vid: 4095 },
          { tpid: ETHERTYPE_VLAN, pcp: 1, dei: false, vid: 1 },
        ],
        etherType: 0x86dd,
      },
      buf,
      0,
    );
    expect(n).toBe(22);
    expect(Buffer.from(buf).toString('hex')).toBe('0102030405060708090a0b0c88a8ffff8100200186dd');
  });
});
