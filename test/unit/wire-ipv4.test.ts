import { describe, expect, it } from 'vitest';
import {
  IPOPT_LSRR,
  IPOPT_NOOP,
  IPOPT_RR,
  IPOPT_SEC,
  IPPROTO_ICMP,
  IPPROTO_UDP,
  Ipv4View,
  copiedOptions,
  emitIpv4,
  ipv4HeaderLen,
  optionCopied,
  parseIpv4,
  type Ipv4Repr,
} from '../../src/wire/ipv4.js';
import { formatIp4 } from '../../src/wire/addr.js';
import { WireError } from '../../src/wire/error.js';
import {
  ECHO_REPLY_FRAME,
  ECHO_REQUEST_FRAME,
  FRAG_FIRST_FRAME,
  FRAG_LAST_FRAME,
  FRAG_NEEDED_FRAME,
  PORT_UNREACH_FRAME,
  QINQ_ECHO_FRAME,
  RR_ECHO_REPLY_FRAME,
  RR_ECHO_REQUEST_FRAME,
  TIME_EXCEEDED_FRAME,
  TTL1_ECHO_FRAME,
  UDP_CLOSED_PORT_FRAME,
  UDP_FRAME,
  hex,
} from '../fixtures/wire-frames.js';

const ALL_IP: [string, string, number][] = [
  ['echo request', ECHO_REQUEST_FRAME, 14],
  ['echo reply', ECHO_REPLY_FRAME, 14],
  ['first fragment', FRAG_FIRST_FRAME, 14],
  ['last fragment', FRAG_LAST_FRAME, 14],
  ['record route request', RR_ECHO_REQUEST_FRAME, 14],
  ['record route reply', RR_ECHO_REPLY_FRAME, 14],
  ['udp', UDP_FRAME, 14],
  ['udp to closed port', UDP_CLOSED_PORT_FRAME, 14],
  ['port unreachable', PORT_UNREACH_FRAME, 14],
  ['ttl 1 echo', TTL1_ECHO_FRAME, 14],
  ['time exceeded', TIME_EXCEEDED_FRAME, 14],
  ['fragmentation needed', FRAG_NEEDED_FRAME, 14],
  ['qinq echo', QINQ_ECHO_FRAME, 22],
];

function ipOf(frameHex: string, off = 14): { f: Uint8Array; v: Ipv4View } {
  const f = hex(frameHex);
  return { f, v: new Ipv4View(f, off, f.length - off) };
}

describe('IPv4 header', () => {
  it('echo request fields (values as tshark decodes them)', () => {
    const { v } = ipOf(ECHO_REQUEST_FRAME);
    expect(v.check()).toBeNull();
    expect(v.version).toBe(4);
    expect(v.ihl).toBe(5);
    expect(v.headerLen).toBe(20);
    expect(v.dscp).toBe(0);
    expect(v.ecn).toBe(0);
    expect(v.totalLength).toBe(84);
    expect(v.ident).toBe(0x4714);
    expect(v.dontFrag).toBe(true);
    expect(v.moreFrags).toBe(false);
    expect(v.reservedFlag).toBe(false);
    expect(v.fragOffset).toBe(0);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(IPPROTO_ICMP);
    expect(v.headerChecksum).toBe(0xdef8);
    expect(formatIp4(v.src)).toBe('10.77.0.1');
    expect(formatIp4(v.dst)).toBe('10.77.0.2');
    expect(v.optionsLen).toBe(0);
    expect(v.payloadOff).toBe(34);
    expect(v.payloadLen).toBe(64);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('fragments: MF and offset in bytes', () => {
    const a = ipOf(FRAG_FIRST_FRAME).v;
    expect([a.totalLength, a.ident, a.moreFrags, a.dontFrag, a.fragOffset]).toEqual([1500, 0x4715, true, false, 0]);
    const b = ipOf(FRAG_LAST_FRAME).v;
    expect([b.totalLength, b.ident, b.moreFrags, b.dontFrag, b.fragOffset]).toEqual([548, 0x4715, false, false, 1480]);
    expect(a.verifyChecksum() && b.verifyChecksum()).toBe(true);
    // 2008 bytes of ICMP (8 + 2000 data) split 1480 + 528.
    expect(a.payloadLen + b.payloadLen).toBe(2008);
  });

  it('DSCP/ECN of an ICMP error (tos 0xc0, internetwork control)', () => {
    const { v } = ipOf(PORT_UNREACH_FRAME);
    expect(v.tos).toBe(0xc0);
    expect(v.dscp).toBe(48);
    expect(v.ecn).toBe(0);
    expect(v.protocol).toBe(IPPROTO_ICMP);
    expect(ipOf(UDP_FRAME).v.protocol).toBe(IPPROTO_UDP);
  });

  it('record-route option: header length 60, options range', () => {
    const { f, v } = ipOf(RR_ECHO_REQUEST_FRAME);
    expect(v.check()).toBeNull();
    expect(v.ihl).toBe(15);
    expect(v.headerLen).toBe(60);
    expect(v.optionsOff).toBe(34);
    expect(v.optionsLen).toBe(40);
    expect(v.payloadLen).toBe(24);
    // Linux put a NOP before the RR option (type 7, length 39, pointer 8, first slot ours).
    expect([...f.subarray(34, 42)]).toEqual([IPOPT_NOOP, IPOPT_RR, 39, 8, 10, 77, 0, 1]);
    expect(v.verifyChecksum()).toBe(true);
    const r = parseIpv4(v);
    expect(r.options?.length).toBe(40);
    expect(ipv4HeaderLen(r)).toBe(60);
    // RR is not copied into fragments (RFC 791 §3.1: copied flag 0).
    expect(copiedOptions(r.options!)).toEqual(new Uint8Array(0));
  });

  it('parse gives the Repr', () => {
    const { v } = ipOf(FRAG_LAST_FRAME);
    expect(parseIpv4(v)).toEqual({
      src: 0x0a4d0001,
      dst: 0x0a4d0002,
      protocol: IPPROTO_ICMP,
      ttl: 64,
      tos: 0,
      ident: 0x4715,
      dontFrag: false,
      moreFrags: false,
      fragOffset: 1480,
      payloadLen: 528,
    } satisfies Ipv4Repr);
  });

  it('emit(parse(x)) reproduces every captured header byte for byte', () => {
    for (const [name, h, off] of ALL_IP) {
      const f = hex(h);
      const v = new Ipv4View(f, off, f.length - off);
      expect(v.check(), name).toBeNull();
      expect(v.verifyChecksum(), name).toBe(true);
      const repr = parseIpv4(v);
      const out = new Uint8Array(64).fill(0xaa);
      const n = emitIpv4(repr, out, 3);
      expect(n, name).toBe(v.headerLen);
      expect(out.subarray(3, 3 + n), name).toEqual(f.subarray(off, off + n));
      expect(out[3 + n], name).toBe(0xaa);
    }
  });

  it('a corrupted byte fails verifyChecksum; fillChecksum repairs it', () => {
    for (const [name, h, off] of ALL_IP) {
      const f = hex(h);
      const v = new Ipv4View(f, off, f.length - off);
      for (let i = 0; i < v.headerLen; i++) {
        const g = f.slice();
        g[off + i] ^= 0x10;
        expect(new Ipv4View(g, off, g.length - off).verifyChecksum(), `${name} byte ${i}`).toBe(false);
      }
      v.ttl = v.ttl - 1;
      expect(v.verifyChecksum()).toBe(false);
      v.fillChecksum();
      expect(v.verifyChecksum()).toBe(true);
    }
  });

  it('setters write the right bits and leave the rest', () => {
    const { f, v } = ipOf(ECHO_REQUEST_FRAME);
    const before = f.slice();
    v.dscp = 46;
    v.ecn = 3;
    expect(f[15]).toBe((46 << 2) | 3);
    v.ecn = 0;
    expect(v.dscp).toBe(46);
    v.moreFrags = true;
    v.fragOffset = 8 * 0x1fff;
    expect(v.dontFrag).toBe(true);
    expect(v.moreFrags).toBe(true);
    expect(v.fragOffset).toBe(65528);
    v.dontFrag = false;
    v.moreFrags = false;
    v.fragOffset = 0;
    expect(f[20]).toBe(0);
    expect(f[21]).toBe(0);
    v.dontFrag = true;
    v.tos = 0;
    expect(f.subarray(14, 34)).toEqual(before.subarray(14, 34));
    v.src = 0xc0a80001;
    v.dst = 0xffffffff;
    v.ident = 0xbeef;
    v.totalLength = 1234;
    v.ttl = 3;
    v.protocol = 17;
    v.version = 4;
    v.ihl = 5;
    expect([formatIp4(v.src), formatIp4(v.dst), v.ident, v.totalLength, v.ttl, v.protocol]).toEqual([
      '192.168.0.1',
      '255.255.255.255',
      0xbeef,
      1234,
      3,
      17,
    ]);
  });

  it('check() names each invalid case', () => {
    const { f } = ipOf(RR_ECHO_REQUEST_FRAME);
    const v = new Ipv4View(f, 14, 0);
    expect(v.reset(f, 14, 0).check()).toBe('truncated');
    expect(v.reset(f, 14, 19).check()).toBe('truncated');
    // IHL says 60 bytes; 40 available.
    expect(v.reset(f, 14, 40).check()).toBe('ihl');
    // Header complete but total length 84 beyond the 70 bytes given.
    expect(v.reset(f, 14, 70).check()).toBe('total-length');
    expect(v.reset(f, 14, 84).check()).toBeNull();
    const mutate = (i: number, val: number): Ipv4View => {
      const g = hex(ECHO_REQUEST_FRAME);
      g[14 + i] = val;
      return new Ipv4View(g, 14, g.length - 14);
    };
    expect(mutate(0, 0x65).check()).toBe('version');
    expect(mutate(0, 0x45 - 1).check()).toBe('ihl');
    expect(mutate(0, 0x40).check()).toBe('ihl');
    // Total length 19 (below the header) and 85 (one past the frame's 84).
    expect(mutate(3, 19).check()).toBe('total-length');
    expect(mutate(3, 85).check()).toBe('total-length');
    // Link padding after the datagram is fine.
    const padded = new Uint8Array(200);
    padded.set(hex(ECHO_REQUEST_FRAME).subarray(14));
    const pv = new Ipv4View(padded, 0, padded.length);
    expect(pv.check()).toBeNull();
    expect(pv.payloadLen).toBe(64);
    expect(() => parseIpv4(padded.subarray(0, 10))).toThrow(WireError);
  });

  it('a quoted header in an ICMP error: full header, datagram cut short', () => {
    // Fragmentation needed: 548 bytes of a 1228-byte datagram quoted.
    const f = hex(FRAG_NEEDED_FRAME);
    const q = new Ipv4View(f, 14 + 20 + 8, f.length - 42);
    expect(q.check()).toBe('total-length');
    expect(q.totalLength).toBe(1228);
    expect(q.verifyChecksum()).toBe(true);
    expect(formatIp4(q.dst)).toBe('10.77.1.1');
  });
});

describe('emit', () => {
  it('pads options to 4 bytes and fills the checksum', () => {
    const repr: Ipv4Repr = {
      src: 0x0a000001,
      dst: 0x0a000002,
      protocol: IPPROTO_UDP,
      ttl: 64,
      ident: 1,
      dontFrag: false,
      moreFrags: true,
      fragOffset: 2960,
      payloadLen: 100,
      options: new Uint8Array([IPOPT_NOOP, 0x94, 4, 0, 0]), // NOP + router alert (RFC 2113), 5 bytes
    };
    expect(ipv4HeaderLen(repr)).toBe(28);
    const buf = new Uint8Array(28).fill(0x77);
    expect(emitIpv4(repr, buf, 0)).toBe(28);
    const v = new Ipv4View(buf, 0, 28 + 100);
    expect(v.ihl).toBe(7);
    expect(v.totalLength).toBe(128);
    expect(v.fragOffset).toBe(2960);
    expect(v.moreFrags).toBe(true);
    expect(v.tos).toBe(0);
    expect([...buf.subarray(25, 28)]).toEqual([0, 0, 0]);
    expect(v.verifyChecksum()).toBe(true);
  });

  it('refuses more than 40 bytes of options or a datagram over 65535', () => {
    const base: Ipv4Repr = { src: 1, dst: 2, protocol: 1, ttl: 1, ident: 0, dontFrag: false, moreFrags: false, fragOffset: 0, payloadLen: 0 };
    const buf = new Uint8Array(80);
    expect(() => emitIpv4({ ...base, options: new Uint8Array(41) }, buf, 0)).toThrow(WireError);
    expect(() => emitIpv4({ ...base, payloadLen: 65516 }, buf, 0)).toThrow(WireError);
    expect(emitIpv4({ ...base, payloadLen: 65515 }, buf, 0)).toBe(20);
  });
});

describe('options copied into fragments', () => {
  it('optionCopied reads the top bit of the type', () => {
    expect(optionCopied(IPOPT_LSRR)).toBe(true);
    expect(optionCopied(IPOPT_SEC)).toBe(true);
    expect(optionCopied(IPOPT_RR)).toBe(false);
    expect(optionCopied(IPOPT_NOOP)).toBe(false);
    expect(optionCopied(0x44)).toBe(false); // timestamp
  });

  it('keeps only copied options, padded with End of Option List', () => {
    const opts = new Uint8Array([
      IPOPT_NOOP,
      IPOPT_RR, 7, 4, 0, 0, 0, 0, // record route, one slot
      IPOPT_LSRR, 7, 4, 10, 0, 0, 9, // loose source route via 10.0.0.9
      0x94, 4, 0, 0, // router alert (copied)
      0, // End of Option List
      IPOPT_LSRR, 3, 1, // after EOL: ignored
    ]);
    expect(copiedOptions(opts)).toEqual(new Uint8Array([IPOPT_LSRR, 7, 4, 10, 0, 0, 9, 0x94, 4, 0, 0, 0]));
    // A sub-range, and the result always a multiple of 4.
    expect(copiedOptions(opts, 8, 7)).toEqual(new Uint8Array([IPOPT_LSRR, 7, 4, 10, 0, 0, 9, 0]));
    // Malformed lengths stop the scan.
    expect(copiedOptions(new Uint8Array([IPOPT_LSRR, 1, 0, 0]))).toEqual(new Uint8Array(0));
    expect(copiedOptions(new Uint8Array([0x94, 4, 0, 0, IPOPT_LSRR, 9, 0, 0]))).toEqual(new Uint8Array([0x94, 4, 0, 0]));
    expect(copiedOptions(new Uint8Array([IPOPT_NOOP, IPOPT_LSRR]))).toEqual(new Uint8Array(0));
  });
});
