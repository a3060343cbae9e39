import { describe, expect, it } from 'vitest';
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_EXC_TTL,
  ICMP_FRAG_NEEDED,
  ICMP_HEADER_LEN,
  ICMP_PARAM_PROBLEM,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  IcmpView,
  emitIcmp,
  icmpLen,
  parseIcmp,
  type IcmpRepr,
} from '../../src/wire/icmp.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { UdpView } from '../../src/wire/udp.js';
import { WireError } from '../../src/wire/error.js';
import { updateChecksum16 } from '../../src/wire/checksum.js';
import {
  ECHO_REPLY_FRAME,
  ECHO_REQUEST_FRAME,
  FRAG_FIRST_FRAME,
  FRAG_NEEDED_FRAME,
  PORT_UNREACH_FRAME,
  QINQ_ECHO_FRAME,
  RR_ECHO_REPLY_FRAME,
  RR_ECHO_REQUEST_FRAME,
  TIME_EXCEEDED_FRAME,
  TTL1_ECHO_FRAME,
  UDP_CLOSED_PORT_FRAME,
  hex,
} from '../fixtures/wire-frames.js';

/** The ICMP message of a captured frame: the IP payload, by the IP header's lengths. */
function icmpOf(frameHex: string, ethLen = 14): { f: Uint8Array; v: IcmpView } {
  const f = hex(frameHex);
  const ip = new Ipv4View(f, ethLen, f.length - ethLen);
  expect(ip.check()).toBeNull();
  return { f, v: new IcmpView(f, ip.payloadOff, ip.payloadLen) };
}

const ALL_ICMP: [string, string, number][] = [
  ['echo request', ECHO_REQUEST_FRAME, 14],
  ['echo reply', ECHO_REPLY_FRAME, 14],
  ['rr echo request', RR_ECHO_REQUEST_FRAME, 14],
  ['rr echo reply', RR_ECHO_REPLY_FRAME, 14],
  ['port unreachable', PORT_UNREACH_FRAME, 14],
  ['ttl 1 echo', TTL1_ECHO_FRAME, 14],
  ['time exceeded', TIME_EXCEEDED_FRAME, 14],
  ['frag needed', FRAG_NEEDED_FRAME, 14],
  ['qinq echo', QINQ_ECHO_FRAME, 22],
];

describe('ICMP', () => {
  it('echo request from ping -p 74617073746163 (ident, seq, pattern, checksum)', () => {
    const { v } = icmpOf(ECHO_REQUEST_FRAME);
    expect(v.check()).toBeNull();
    expect(v.type).toBe(ICMP_ECHO_REQUEST);
    expect(v.code).toBe(0);
    expect(v.checksum).toBe(0xd319);
    expect(v.ident).toBe(0x180f);
    expect(v.seq).toBe(1);
    expect(v.rest).toBe(0x180f0001);
    expect(v.payloadLen).toBe(56);
    expect(v.verifyChecksum()).toBe(true);
    // ping writes a 16-byte timeval over the start of the data, which holds the pattern
    // "tapstac" repeated from byte 0, so byte 16 is 2 bytes into a cycle.
    expect(Buffer.from(v.payload().subarray(16, 23)).toString()).toBe('pstacta');
    const r = parseIcmp(v);
    expect(r.kind).toBe('echo-request');
    if (r.kind === 'echo-request') {
      expect([r.ident, r.seq, r.data.length]).toEqual([0x180f, 1, 56]);
    }
  });

  it('echo reply carries the request data back', () => {
    const req = parseIcmp(icmpOf(ECHO_REQUEST_FRAME).v);
    const rep = parseIcmp(icmpOf(ECHO_REPLY_FRAME).v);
    expect(rep.kind).toBe('echo-reply');
    expect({ ...rep, kind: 'echo-request' }).toEqual(req);
  });

  it('port unreachable quotes the whole UDP datagram that caused it', () => {
    const { v } = icmpOf(PORT_UNREACH_FRAME);
    expect([v.type, v.code, v.checksum]).toEqual([ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0x11c1]);
    expect(v.verifyChecksum()).toBe(true);
    const r = parseIcmp(v);
    if (r.kind !== 'dest-unreach') throw new Error(r.kind);
    expect(r.code).toBe(ICMP_PORT_UNREACH);
    expect(r.mtu).toBeUndefined();
    // RFC 1122 §3.2.2: at least the IP header and 8 data bytes; Linux sent all of it.
    const orig = hex(UDP_CLOSED_PORT_FRAME).subarray(14);
    expect(r.quote).toEqual(orig);
    const qip = new Ipv4View(r.quote, 0, r.quote.length);
    expect(qip.check()).toBeNull();
    const qudp = new UdpView(r.quote, qip.payloadOff, qip.payloadLen);
    expect([qudp.srcPort, qudp.dstPort]).toEqual([40001, 9]);
  });

  it('time exceeded in transit quotes the TTL-1 echo', () => {
    const { v } = icmpOf(TIME_EXCEEDED_FRAME);
    expect([v.type, v.code, v.checksum]).toEqual([ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0xf4ff]);
    const r = parseIcmp(v);
    if (r.kind !== 'time-exceeded') throw new Error(r.kind);
    const q = new Ipv4View(r.quote, 0, r.quote.length);
    expect(q.ttl).toBe(1);
    expect(q.totalLength).toBe(84);
    expect(r.quote).toEqual(hex(TTL1_ECHO_FRAME).subarray(14));
  });

  it('fragmentation needed: next-hop MTU 1000 (RFC 1191), 548 bytes quoted', () => {
    const { v } = icmpOf(FRAG_NEEDED_FRAME);
    expect([v.type, v.code, v.checksum, v.mtu]).toEqual([ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0x73e1, 1000]);
    expect(v.verifyChecksum()).toBe(true);
    const r = parseIcmp(v);
    expect(r).toMatchObject({ kind: 'dest-unreach', code: ICMP_FRAG_NEEDED, mtu: 1000 });
    if (r.kind === 'dest-unreach') expect(r.quote.length).toBe(548);
  });

  it('emit(parse(x)) reproduces every captured message byte for byte', () => {
    for (const [name, h, off] of ALL_ICMP) {
      const { f, v } = icmpOf(h, off);
      expect(v.verifyChecksum(), name).toBe(true);
      const repr = parseIcmp(v);
      expect(icmpLen(repr), name).toBe(v.len);
      const out = new Uint8Array(v.len + 2).fill(0x55);
      expect(emitIcmp(repr, out, 1), name).toBe(v.len);
      expect(out.subarray(1, 1 + v.len), name).toEqual(f.subarray(v.off, v.off + v.len));
      expect(out[v.len + 1]).toBe(0x55);
    }
  });

  it('a corrupted byte anywhere in the message fails verifyChecksum', () => {
    for (const [name, h, off] of ALL_ICMP) {
      const { f, v } = icmpOf(h, off);
      for (const i of [0, 1, 2, 3, 4, 7, 8, v.len - 1]) {
        const g = f.slice();
        g[v.off + i] ^= 0x01;
        expect(new IcmpView(g, v.off, v.len).verifyChecksum(), `${name} byte ${i}`).toBe(false);
      }
    }
  });

  it('odd-length message: the last byte is summed as a high byte padded with zero', () => {
    const data = hex(FRAG_FIRST_FRAME).subarray(42, 42 + 101);
    const buf = new Uint8Array(109);
    const n = emitIcmp({ kind: 'echo-request', ident: 7, seq: 9, data }, buf, 0);
    expect(n).toBe(109);
    const v = new IcmpView(buf, 0, n);
    expect(v.verifyChecksum()).toBe(true);
    buf[108] ^= 0x80;
    expect(v.verifyChecksum()).toBe(false);
  });

  it('turning a captured request into a reply in place (type edit + RFC 1624) gives the real reply checksum', () => {
    const { v } = icmpOf(ECHO_REQUEST_FRAME);
    const c = updateChecksum16(v.checksum, ICMP_ECHO_REQUEST << 8, ICMP_ECHO_REPLY << 8);
    v.type = ICMP_ECHO_REPLY;
    v.checksum = c;
    expect(v.verifyChecksum()).toBe(true);
    expect(c).toBe(icmpOf(ECHO_REPLY_FRAME).v.checksum);
  });

  it('emits parameter problem with its pointer and unknown types as other', () => {
    const quote = hex(ECHO_REQUEST_FRAME).subarray(14, 42);
    const pp: IcmpRepr = { kind: 'param-problem', code: 0, pointer: 20, quote };
    const buf = new Uint8Array(icmpLen(pp));
    emitIcmp(pp, buf, 0);
    const v = new IcmpView(buf, 0, buf.length);
    expect([v.type, v.code, v.pointer, v.rest >>> 0]).toEqual([ICMP_PARAM_PROBLEM, 0, 20, 20 << 24]);
    expect(v.verifyChecksum()).toBe(true);
    expect(parseIcmp(v)).toEqual(pp);
    // Timestamp request (type 13) is not modelled: it round-trips as 'other'.
    const ts: IcmpRepr = { kind: 'other', type: 13, code: 0, rest: 0x12340001, data: new Uint8Array(12) };
    const tb = new Uint8Array(icmpLen(ts));
    emitIcmp(ts, tb, 0);
    expect(parseIcmp(tb)).toEqual(ts);
    // An echo request with a nonzero code is not an echo we answer: 'other'.
    tb[0] = ICMP_ECHO_REQUEST;
    tb[1] = 1;
    expect(parseIcmp(tb).kind).toBe('other');
  });

  it('check() rejects messages shorter than the 8-byte header', () => {
    const { f, v } = icmpOf(ECHO_REQUEST_FRAME);
    for (const len of [0, 1, 7]) expect(v.reset(f, 34, len).check()).toBe('truncated');
    expect(v.reset(f, 34, ICMP_HEADER_LEN).check()).toBeNull();
    expect(() => parseIcmp(f.subarray(34, 40))).toThrow(WireError);
  });
});
