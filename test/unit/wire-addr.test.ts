import { describe, expect, it } from 'vitest';
import {
  BROADCAST_MAC,
  ZERO_MAC,
  formatIp4,
  formatMac,
  isBroadcastMac,
  isMulticastIp4,
  isMulticastMac,
  macEquals,
  parseCidr,
  parseIp4,
  parseMac,
  prefixMask,
} from '../../src/wire/addr.js';
import { ARP_REQUEST_FRAME, hex } from '../fixtures/wire-frames.js';

describe('IPv4 addresses', () => {
  it('parses and formats dotted quads as unsigned numbers', () => {
    expect(parseIp4('10.77.0.1')).toBe(0x0a4d0001);
    expect(parseIp4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIp4('0.0.0.0')).toBe(0);
    expect(parseIp4('192.168.1.200')).toBe(0xc0a801c8);
    expect(formatIp4(0xc0a801c8)).toBe('192.168.1.200');
    expect(formatIp4(0xffffffff)).toBe('255.255.255.255');
    expect(formatIp4(-1)).toBe('255.255.255.255');
  });

  it('is strict', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '1..3.4', '1.2.3.-4', '0x1.2.3.4', '1.2.3.4/8', '1e2.1.1.1', '１.2.3.4']) {
      expect(parseIp4(bad), bad).toBeNull();
    }
  });

  it('prefix masks from 0 to 32', () => {
    expect(prefixMask(0)).toBe(0);
    expect(prefixMask(1)).toBe(0x80000000);
    expect(prefixMask(24)).toBe(0xffffff00);
    expect(prefixMask(31)).toBe(0xfffffffe);
    expect(prefixMask(32)).toBe(0xffffffff);
  });

  it('CIDR keeps the host bits as written', () => {
    expect(parseCidr('10.77.0.1/24')).toEqual({ addr: 0x0a4d0001, len: 24 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ addr: 0, len: 0 });
    expect(parseCidr('1.2.3.4/32')).toEqual({ addr: 0x01020304, len: 32 });
    for (const bad of ['1.2.3.4', '1.2.3.4/33', '1.2.3.4/', '1.2.3.4/024', '1.2.3/8', '1.2.3.4/8/9', '1.2.3.4/-1']) {
      expect(parseCidr(bad), bad).toBeNull();
    }
  });

  it('multicast is 224.0.0.0/4', () => {
    expect(isMulticastIp4(parseIp4('224.0.0.1')!)).toBe(true);
    expect(isMulticastIp4(parseIp4('239.255.255.255')!)).toBe(true);
    expect(isMulticastIp4(parseIp4('223.255.255.255')!)).toBe(false);
    expect(isMulticastIp4(parseIp4('240.0.0.0')!)).toBe(false);
  });
});

describe('MAC addresses', () => {
  it('parses like ip link and formats like Linux', () => {
    expect(parseMac('02:00:00:00:00:0A')).toEqual(new Uint8Array([2, 0, 0, 0, 0, 10]));
    expect(parseMac('2:0:0:0:0:a')).toEqual(new Uint8Array([2, 0, 0, 0, 0, 10]));
    expect(formatMac(new Uint8Array([2, 0, 0, 0, 0, 0xab]))).toBe('02:00:00:00:00:ab');
    for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:00:00', '020:00:00:00:00:00', 'g2:00:00:00:00:00', '02-00-00-00-00-00']) {
      expect(parseMac(bad), bad).toBeNull();
    }
  });

  it('compares at offsets within captured frames', () => {
    const f = hex(ARP_REQUEST_FRAME);
    expect(macEquals(f, 0, BROADCAST_MAC, 0)).toBe(true);
    expect(isBroadcastMac(f, 0)).toBe(true);
    expect(isMulticastMac(f, 0)).toBe(true);
    // Ethernet source and ARP sender hardware address are the same MAC.
    expect(macEquals(f, 6, f, 22)).toBe(true);
    expect(formatMac(f, 6)).toBe('02:00:00:00:00:0a');
    expect(isBroadcastMac(f, 6)).toBe(false);
    expect(isMulticastMac(f, 6)).toBe(false);
    expect(macEquals(f, 32, ZERO_MAC, 0)).toBe(true);
    expect(isMulticastMac(parseMac('01:00:5e:00:00:01')!)).toBe(true);
    expect(isBroadcastMac(parseMac('ff:ff:ff:ff:ff:fe')!)).toBe(false);
  });
});
