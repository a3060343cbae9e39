import { describe, expect, it } from 'vitest';
import {
  TCPOPT_EOL,
  TCPOPT_FASTOPEN,
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK,
  TCPOPT_SACK_PERM,
  TCPOPT_TIMESTAMP,
  TCPOPT_WINDOW,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_HEADER_LEN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  TcpOptions,
  TcpView,
  emitTcp,
  emitTcpOptions,
  fillTcpChecksum,
  parseTcp,
  parseTcpOptions,
  tcpOptionsLen,
  verifyTcpChecksum,
  type TcpOptionsSpec,
} from '../../src/wire/tcp.js';
import * as wire from '../../src/wire/index.js';
import { Ipv4View } from '../../src/wire/ipv4.js';
import { WireError } from '../../src/wire/error.js';
import { hex } from '../fixtures/wire-frames.js';
import {
  TCP_ACK_FRAME,
  TCP_DATA_FRAME,
  TCP_FIN_FRAME,
  TCP_RST_FRAME,
  TCP_SACK1_FRAME,
  TCP_SACK2_FRAME,
  TCP_SYNACK_FRAME,
  TCP_SYN_FRAME,
  TCP_TFO_DATA_SYN_FRAME,
  TCP_TFO_REQUEST_FRAME,
  TCP_TFO_SYNACK_FRAME,
} from '../fixtures/tcp-frames.js';

const ALL_FRAMES: [string, string][] = Object.entries({
  TCP_SYN_FRAME,
  TCP_SYNACK_FRAME,
  TCP_ACK_FRAME,
  TCP_DATA_FRAME,
  TCP_FIN_FRAME,
  TCP_RST_FRAME,
  TCP_TFO_REQUEST_FRAME,
  TCP_TFO_SYNACK_FRAME,
  TCP_TFO_DATA_SYN_FRAME,
  TCP_SACK1_FRAME,
  TCP_SACK2_FRAME,
});

const A = 0x0ae70001; // 10.231.0.1
const B = 0x0ae70002; // 10.231.0.2
const SCAPY = 0x0ae70003; // 10.231.0.3

function tcpOf(frameHex: string): { f: Uint8Array; ip: Ipv4View; v: TcpView } {
  const f = hex(frameHex);
  const ip = new Ipv4View(f, 14, f.length - 14);
  expect(ip.check()).toBeNull();
  expect(ip.protocol).toBe(6);
  return { f, ip, v: new TcpView(f, ip.payloadOff, ip.payloadLen) };
}

function optionsOf(v: TcpView): TcpOptions {
  const o = new TcpOptions();
  expect(parseTcpOptions(v.buf, v.optionsOff, v.optionsLen, o)).toBeNull();
  return o;
}

/** The captured option bytes of a segment. */
function optionBytes(v: TcpView): Uint8Array {
  return v.buf.slice(v.optionsOff, v.optionsOff + v.optionsLen);
}

/** parseTcpOptions over the given bytes, in a buffer with something else around them. */
function parseBytes(opts: number[], out = new TcpOptions()): string | null {
  const buf = new Uint8Array(opts.length + 8).fill(0xee);
  buf.set(opts, 4);
  return parseTcpOptions(buf, 4, opts.length, out);
}

describe('TCP header', () => {
  it('SYN: fields of the kernel SYN', () => {
    const { ip, v } = tcpOf(TCP_SYN_FRAME);
    expect(ip.src).toBe(A);
    expect(ip.dst).toBe(B);
    expect(v.check()).toBeNull();
    expect(v.srcPort).toBe(40100);
    expect(v.dstPort).toBe(7001);
    expect(v.seq).toBe(3261657224); // above 2^31: read unsigned
    expect(v.ack).toBe(0);
    expect(v.headerLen).toBe(40);
    expect(v.flags).toBe(TCP_SYN);
    expect(v.window).toBe(64240);
    expect(v.checksum).toBe(0xab12);
    expect(v.urgent).toBe(0);
    expect(v.optionsOff).toBe(34 + 20);
    expect(v.optionsLen).toBe(20);
    expect(v.payloadOff).toBe(34 + 40);
    expect(v.payloadLen).toBe(0);
    expect(v.payload().length).toBe(0);
  });

  it('SYN-ACK, data, FIN and RST', () => {
    const sa = tcpOf(TCP_SYNACK_FRAME).v;
    expect([sa.srcPort, sa.dstPort, sa.seq, sa.ack]).toEqual([7001, 40100, 2440358839, 3261657225]);
    expect(sa.flags).toBe(TCP_SYN | TCP_ACK);
    expect([sa.headerLen, sa.window, sa.checksum]).toEqual([40, 65160, 0x304f]);

    const d = tcpOf(TCP_DATA_FRAME).v;
    expect(d.check()).toBeNull();
    expect([d.seq, d.ack]).toEqual([3261657225, 2440358840]);
    expect(d.flags).toBe(TCP_PSH | TCP_ACK);
    expect([d.headerLen, d.optionsLen, d.window, d.checksum]).toEqual([32, 12, 63, 0x34f6]);
    expect(d.payloadOff).toBe(34 + 32);
    expect(d.payloadLen).toBe(10);
    expect(Buffer.from(d.payload()).toString()).toBe('hello tcp\n');

    const fin = tcpOf(TCP_FIN_FRAME).v;
    expect(fin.flags).toBe(TCP_FIN | TCP_ACK);
    expect(fin.seq).toBe(3261657225 + 10);
    expect(fin.payloadLen).toBe(0);

    const rst = tcpOf(TCP_RST_FRAME).v;
    expect(rst.check()).toBeNull();
    expect([rst.srcPort, rst.dstPort, rst.seq, rst.ack]).toEqual([9, 40101, 0, 3675529994]);
    expect(rst.flags).toBe(TCP_RST | TCP_ACK);
    expect([rst.headerLen, rst.optionsLen, rst.window, rst.payloadLen]).toEqual([20, 0, 0, 0]);
  });

  it('flag bits are those of byte 13', () => {
    expect([TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR]).toEqual([
      1, 2, 4, 8, 16, 32, 64, 128,
    ]);
    expect(TCP_HEADER_LEN).toBe(20);
  });

  it('setters write every field; headerLen clears the reserved bits', () => {
    const buf = new Uint8Array(64).fill(0xff);
    const v = new TcpView(buf, 4, 40);
    v.srcPort = 0x1234;
    v.dstPort = 0xfedc;
    v.seq = 0xdeadbeef;
    v.ack = 0x80000001;
    v.headerLen = 24;
    v.flags = TCP_CWR | TCP_ECE | TCP_URG | TCP_FIN;
    v.window = 0xabcd;
    v.checksum = 0x0102;
    v.urgent = 0x0304;
    expect(Array.from(buf.subarray(4, 24))).toEqual([
      0x12, 0x34, 0xfe, 0xdc, 0xde, 0xad, 0xbe, 0xef, 0x80, 0x00, 0x00, 0x01, 0x60, 0xe1, 0xab, 0xcd, 0x01, 0x02,
      0x03, 0x04,
    ]);
    expect(buf[3]).toBe(0xff);
    expect(buf[24]).toBe(0xff);
    expect([v.srcPort, v.dstPort, v.seq, v.ack, v.headerLen, v.flags, v.window, v.checksum, v.urgent]).toEqual([
      0x1234, 0xfedc, 0xdeadbeef, 0x80000001, 24, 0xe1, 0xabcd, 0x0102, 0x0304,
    ]);
    expect([v.optionsOff, v.optionsLen, v.payloadOff, v.payloadLen]).toEqual([24, 4, 28, 16]);
    v.headerLen = 60;
    expect(buf[16]).toBe(0xf0);
    // Reserved bits set on the wire don't disturb the data offset.
    buf[16] = 0x5f;
    expect(v.headerLen).toBe(20);
  });

  it('check() names truncation and bad data offsets', () => {
    const { f, v } = tcpOf(TCP_SYN_FRAME);
    for (const len of [0, 1, 19]) expect(v.reset(f, 34, len).check(), `len ${len}`).toBe('truncated');
    // Data offset 10 words = 40 bytes: 39 bytes is too few, 40 is the bare header.
    expect(v.reset(f, 34, 39).check()).toBe('data-offset');
    expect(v.reset(f, 34, 40).check()).toBeNull();
    const g = f.slice();
    const gv = new TcpView(g, 34, 40);
    for (const doff of [0, 4]) {
      g[34 + 12] = doff << 4;
      expect(gv.check(), `offset ${doff}`).toBe('data-offset');
    }
    g[34 + 12] = 15 << 4; // 60 bytes, 40 available
    expect(gv.check()).toBe('data-offset');
    g[34 + 12] = 5 << 4;
    expect(gv.check()).toBeNull();
    expect(gv.reset(g, 34, 20).check()).toBeNull();

    expect(() => parseTcp(f.subarray(34, 50))).toThrow(new WireError('tcp', 'truncated'));
    expect(() => parseTcp(f.subarray(34, 70))).toThrow(new WireError('tcp', 'data-offset'));
    const bad = f.slice(34, 74);
    bad[20] = TCPOPT_MSS;
    bad[21] = 5;
    expect(() => parseTcp(bad)).toThrow(new WireError('tcp', 'malformed-options'));
  });
});

describe('TCP checksum', () => {
  it('every captured segment verifies, and fill reproduces the kernel checksum', () => {
    for (const [name, h] of ALL_FRAMES) {
      const { f, ip, v } = tcpOf(h);
      expect(v.check(), name).toBeNull();
      expect(verifyTcpChecksum(v, ip.src, ip.dst), name).toBe(true);
      const want = v.checksum;
      const g = f.slice();
      const gv = new TcpView(g, v.off, v.len);
      gv.checksum = 0x5555;
      fillTcpChecksum(gv, ip.src, ip.dst);
      expect(gv.checksum, name).toBe(want);
      expect(g, name).toEqual(f);
    }
  });

  it('a corrupted byte or a wrong pseudo-header fails', () => {
    const { f, ip, v } = tcpOf(TCP_DATA_FRAME);
    for (let i = 0; i < v.len; i++) {
      const g = f.slice();
      g[v.off + i] ^= 0x10;
      expect(verifyTcpChecksum(new TcpView(g, v.off, v.len), ip.src, ip.dst), `byte ${i}`).toBe(false);
    }
    expect(verifyTcpChecksum(v, ip.src, SCAPY)).toBe(false);
    // The pseudo-header length is the view's: one byte fewer fails.
    expect(verifyTcpChecksum(new TcpView(f, v.off, v.len - 1), ip.src, ip.dst)).toBe(false);
  });
});

describe('TCP options: parse', () => {
  it('the kernel SYN: MSS, SACK-permitted, timestamps, window scale', () => {
    const o = optionsOf(tcpOf(TCP_SYN_FRAME).v);
    expect(o.mss).toBe(1460);
    expect(o.wscale).toBe(10);
    expect(o.sackPermitted).toBe(true);
    expect([o.tsPresent, o.tsVal, o.tsEcr]).toEqual([true, 707458831, 0]);
    expect(o.sackCount).toBe(0);
    expect(o.fastOpen).toBeNull();
  });

  it('the SYN-ACK echoes the SYN timestamp', () => {
    const o = optionsOf(tcpOf(TCP_SYNACK_FRAME).v);
    expect([o.mss, o.wscale, o.sackPermitted]).toEqual([1460, 10, true]);
    expect([o.tsPresent, o.tsVal, o.tsEcr]).toEqual([true, 2988591051, 707458831]);
  });

  it('data, ACK and FIN carry timestamps only', () => {
    for (const h of [TCP_DATA_FRAME, TCP_ACK_FRAME, TCP_FIN_FRAME]) {
      const o = optionsOf(tcpOf(h).v);
      expect([o.mss, o.wscale, o.sackPermitted, o.sackCount, o.fastOpen]).toEqual([0, -1, false, 0, null]);
      expect([o.tsPresent, o.tsVal, o.tsEcr]).toEqual([true, 707458831, 2988591051]);
    }
    const none = optionsOf(tcpOf(TCP_RST_FRAME).v);
    expect([none.mss, none.wscale, none.sackPermitted, none.tsPresent, none.sackCount]).toEqual([
      0,
      -1,
      false,
      false,
      0,
    ]);
  });

  it('SACK blocks, newest first', () => {
    const o1 = optionsOf(tcpOf(TCP_SACK1_FRAME).v);
    expect([o1.tsPresent, o1.tsVal, o1.tsEcr]).toEqual([true, 3516492008, 5000]);
    expect(o1.sackCount).toBe(1);
    expect(Array.from(o1.sack.subarray(0, 2))).toEqual([1000011, 1000021]);
    const o2 = optionsOf(tcpOf(TCP_SACK2_FRAME).v);
    expect(o2.tsVal).toBe(3516492357);
    expect(o2.sackCount).toBe(2);
    expect(Array.from(o2.sack.subarray(0, 4))).toEqual([1000031, 1000041, 1000011, 1000021]);
  });

  it('Fast Open: a cookie request, a cookie, a cookie with data', () => {
    const { f: rf, v: rv } = tcpOf(TCP_TFO_REQUEST_FRAME);
    const req = optionsOf(rv);
    expect([req.mss, req.wscale, req.sackPermitted, req.tsPresent]).toEqual([1460, 10, true, true]);
    expect(req.fastOpen).not.toBeNull();
    expect(req.fastOpen!.length).toBe(0);
    // A view into the segment, not a copy.
    expect(req.fastOpen!.buffer).toBe(rf.buffer);

    const cookie = hex('882adb900eba0f06');
    const sa = optionsOf(tcpOf(TCP_TFO_SYNACK_FRAME).v);
    expect(sa.fastOpen).toEqual(cookie);
    const { v: dv } = tcpOf(TCP_TFO_DATA_SYN_FRAME);
    expect(optionsOf(dv).fastOpen).toEqual(cookie);
    expect(dv.headerLen).toBe(52);
    expect(Buffer.from(dv.payload()).toString()).toBe('tfo two\n');
  });

  it('one TcpOptions serves segment after segment', () => {
    const o = new TcpOptions();
    for (const h of [TCP_TFO_SYNACK_FRAME, TCP_SACK2_FRAME, TCP_RST_FRAME]) {
      const v = tcpOf(h).v;
      expect(parseTcpOptions(v.buf, v.optionsOff, v.optionsLen, o)).toBeNull();
    }
    expect([o.mss, o.wscale, o.sackPermitted, o.tsPresent, o.tsVal, o.tsEcr, o.sackCount, o.fastOpen]).toEqual([
      0,
      -1,
      false,
      false,
      0,
      0,
      0,
      null,
    ]);
    o.mss = 9;
    o.sackCount = 3;
    o.clear();
    expect([o.mss, o.sackCount]).toEqual([0, 0]);
  });

  it('malformed: length byte missing, below 2 or past the end', () => {
    expect(parseBytes([TCPOPT_MSS])).toBe('malformed'); // no length byte
    expect(parseBytes([TCPOPT_NOP, TCPOPT_NOP, TCPOPT_NOP, 30])).toBe('malformed');
    for (const kind of [TCPOPT_MSS, TCPOPT_TIMESTAMP, 30]) {
      expect(parseBytes([kind, 0, 0, 0]), `kind ${kind} length 0`).toBe('malformed');
      expect(parseBytes([kind, 1, 0, 0]), `kind ${kind} length 1`).toBe('malformed');
    }
    expect(parseBytes([TCPOPT_MSS, 4, 0x05])).toBe('malformed'); // 4 claimed, 3 there
    expect(parseBytes([TCPOPT_NOP, TCPOPT_TIMESTAMP, 10, 0, 0, 0, 1, 0, 0, 0])).toBe('malformed');
    expect(parseBytes([30, 6, 1, 2])).toBe('malformed'); // unknown, past the end
    // The region ends where told to, whatever follows in the buffer.
    const buf = new Uint8Array([TCPOPT_MSS, 4, 0x05, 0xb4]);
    expect(parseTcpOptions(buf, 0, 3, new TcpOptions())).toBe('malformed');
    expect(parseTcpOptions(buf, 0, 4, new TcpOptions())).toBeNull();
  });

  it('malformed: known options with the wrong length', () => {
    const cases: [string, number[]][] = [
      ['MSS 3', [TCPOPT_MSS, 3, 5, TCPOPT_NOP]],
      ['MSS 5', [TCPOPT_MSS, 5, 5, 0xb4, 0]],
      ['WS 2', [TCPOPT_WINDOW, 2]],
      ['WS 4', [TCPOPT_WINDOW, 4, 7, 0]],
      ['SACK_PERM 3', [TCPOPT_SACK_PERM, 3, 0]],
      ['TS 8', [TCPOPT_TIMESTAMP, 8, 0, 0, 0, 1, 0, 0]],
      ['TS 12', [TCPOPT_TIMESTAMP, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]],
      ['SACK 2 (no block)', [TCPOPT_SACK, 2]],
      ['SACK 9', [TCPOPT_SACK, 9, ...new Array(7).fill(0)]],
      ['SACK 11', [TCPOPT_SACK, 11, ...new Array(9).fill(0)]],
      ['SACK 17', [TCPOPT_SACK, 17, ...new Array(15).fill(0)]],
      ['SACK 5 blocks', [TCPOPT_SACK, 42, ...new Array(40).fill(0)]],
      ['FASTOPEN 3', [TCPOPT_FASTOPEN, 3, 1]],
      ['FASTOPEN 4', [TCPOPT_FASTOPEN, 4, 1, 2]],
      ['FASTOPEN 7', [TCPOPT_FASTOPEN, 7, 1, 2, 3, 4, 5]],
      ['FASTOPEN 20', [TCPOPT_FASTOPEN, 20, ...new Array(18).fill(1)]],
    ];
    for (const [what, bytes] of cases) expect(parseBytes(bytes), what).toBe('malformed');
    // The lengths next to them are fine.
    const ok: [string, number[]][] = [
      ['SACK 1 block', [TCPOPT_SACK, 10, ...new Array(8).fill(0)]],
      ['SACK 4 blocks', [TCPOPT_SACK, 34, ...new Array(32).fill(0)]],
      ['FASTOPEN 2', [TCPOPT_FASTOPEN, 2]],
      ['FASTOPEN 6', [TCPOPT_FASTOPEN, 6, 1, 2, 3, 4]],
      ['FASTOPEN 18', [TCPOPT_FASTOPEN, 18, ...new Array(16).fill(1)]],
    ];
    for (const [what, bytes] of ok) expect(parseBytes(bytes), what).toBeNull();
  });

  it('four SACK blocks (no timestamps), unsigned', () => {
    const o = new TcpOptions();
    const blocks = [0xfffffff0, 0x00000010, 1, 2, 3, 4, 0x80000000, 0x80000100];
    const opt = [TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, 34];
    for (const b of blocks) opt.push(b >>> 24, (b >>> 16) & 0xff, (b >>> 8) & 0xff, b & 0xff);
    expect(parseBytes(opt, o)).toBeNull();
    expect(o.sackCount).toBe(4);
    expect(Array.from(o.sack)).toEqual(blocks);
  });

  it('unknown kinds are skipped by their length; EOL ends the list', () => {
    const o = new TcpOptions();
    // MPTCP (30) with 6 bytes, an experimental option (254) with 4, then MSS.
    expect(parseBytes([30, 6, 1, 2, 3, 4, 254, 4, 0xf9, 0x89, TCPOPT_MSS, 4, 0x05, 0x78], o)).toBeNull();
    expect(o.mss).toBe(1400);
    // An unknown option's body is not read as options: a "kind 2" inside it is data.
    expect(parseBytes([99, 4, TCPOPT_MSS, 4, TCPOPT_WINDOW, 3, 7, TCPOPT_NOP], o)).toBeNull();
    expect([o.mss, o.wscale]).toEqual([0, 7]);
    // After EOL nothing is read, not even garbage.
    expect(parseBytes([TCPOPT_WINDOW, 3, 7, TCPOPT_EOL, TCPOPT_MSS, 0, 0xff, 0xff], o)).toBeNull();
    expect([o.wscale, o.mss]).toEqual([7, 0]);
    expect(parseBytes([TCPOPT_EOL, TCPOPT_MSS, 4, 1, 2], o)).toBeNull();
    expect(o.mss).toBe(0);
    expect(parseBytes([], o)).toBeNull();
    // A window-scale shift above 14 is reported as sent.
    expect(parseBytes([TCPOPT_NOP, TCPOPT_WINDOW, 3, 15], o)).toBeNull();
    expect(o.wscale).toBe(15);
  });
});

describe('TCP options: emit', () => {
  it("reproduces the kernel's option bytes for every captured segment", () => {
    for (const [name, h] of ALL_FRAMES) {
      const v = tcpOf(h).v;
      const want = optionBytes(v);
      const spec = parseTcp(v).options;
      expect(tcpOptionsLen(spec), name).toBe(want.length);
      const out = new Uint8Array(48).fill(0xcc);
      expect(emitTcpOptions(spec, out, 4), name).toBe(want.length);
      expect(out.subarray(4, 4 + want.length), name).toEqual(want);
      expect(out[3]).toBe(0xcc);
      expect(out[4 + want.length]).toBe(0xcc);
    }
  });

  it('SYN from a spec: MSS, SACK_PERM+TS in one word, NOP+WS', () => {
    const spec: TcpOptionsSpec = { mss: 1460, sackPermitted: true, ts: { val: 707458831, ecr: 0 }, wscale: 10 };
    const out = new Uint8Array(20);
    expect(emitTcpOptions(spec, out, 0)).toBe(20);
    expect(out).toEqual(hex('020405b4 0402080a 2a2af70f 00000000 0103030a'));
    expect(out).toEqual(optionBytes(tcpOf(TCP_SYN_FRAME).v));
  });

  it('data from a spec: NOP, NOP, TS', () => {
    const out = new Uint8Array(12);
    expect(emitTcpOptions({ ts: { val: 707458831, ecr: 2988591051 } }, out, 0)).toBe(12);
    expect(out).toEqual(optionBytes(tcpOf(TCP_DATA_FRAME).v));
  });

  it('SACK blocks after timestamps: NOP, NOP, SACK', () => {
    const spec: TcpOptionsSpec = {
      ts: { val: 3516492357, ecr: 5000 },
      sack: new Uint32Array([1000031, 1000041, 1000011, 1000021, 7, 8, 9, 10]),
      sackCount: 2,
    };
    const out = new Uint8Array(32);
    expect(tcpOptionsLen(spec)).toBe(32);
    expect(emitTcpOptions(spec, out, 0)).toBe(32);
    expect(out).toEqual(optionBytes(tcpOf(TCP_SACK2_FRAME).v));
  });

  it('layouts the captures lack: SACK_PERM without TS, four SACK blocks, no options', () => {
    const out = new Uint8Array(40);
    expect(emitTcpOptions({ mss: 536, sackPermitted: true, wscale: 0 }, out, 0)).toBe(12);
    expect(out.subarray(0, 12)).toEqual(hex('02040218 01010402 01030300'));
    expect(emitTcpOptions({ sackPermitted: true }, out, 0)).toBe(4);
    expect(out.subarray(0, 4)).toEqual(hex('01010402'));

    const four = [1, 2, 3, 4, 5, 6, 0xfffffffe, 0xffffffff];
    expect(emitTcpOptions({ sack: four }, out, 0)).toBe(36);
    expect(out.subarray(0, 36)).toEqual(
      hex('01010522 00000001 00000002 00000003 00000004 00000005 00000006 fffffffe ffffffff'),
    );
    const o = new TcpOptions();
    expect(parseTcpOptions(out, 0, 36, o)).toBeNull();
    expect(Array.from(o.sack)).toEqual(four);

    // Absent values: mss 0, wscale -1 (TcpOptions' "absent"), ts null, sackCount 0.
    expect(tcpOptionsLen({})).toBe(0);
    const absent = { mss: 0, wscale: -1, sackPermitted: false, ts: null, sack: four, sackCount: 0 };
    expect(emitTcpOptions(absent, out, 0)).toBe(0);
    expect(tcpOptionsLen({ sack: [] })).toBe(0);
  });

  it('SACK blocks are cut to what fits, as Linux does beside timestamps', () => {
    const sack = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const ts = { val: 1, ecr: 2 };
    expect(tcpOptionsLen({ sack })).toBe(4 + 4 * 8); // at most 4 blocks
    expect(tcpOptionsLen({ ts, sack })).toBe(12 + 4 + 3 * 8); // 3 fit beside TS
    expect(tcpOptionsLen({ ts, sack, sackCount: 1 })).toBe(12 + 4 + 8);
    expect(tcpOptionsLen({ sack: [1, 2, 3] })).toBe(12); // whole blocks only
    const out = new Uint8Array(40);
    expect(emitTcpOptions({ ts, sack }, out, 0)).toBe(40);
    const o = new TcpOptions();
    expect(parseTcpOptions(out, 0, 40, o)).toBeNull();
    expect(o.sackCount).toBe(3);
    expect(Array.from(o.sack.subarray(0, 6))).toEqual([1, 2, 3, 4, 5, 6]);
    // Nothing fits beside MSS, TS, WS and a 16-byte cookie.
    expect(tcpOptionsLen({ mss: 1, ts, wscale: 1, fastOpen: new Uint8Array(16), sack })).toBe(40);
  });

  it('Fast Open: cookie request and cookies padded with NOPs', () => {
    const out = new Uint8Array(24).fill(0xcc);
    expect(emitTcpOptions({ fastOpen: new Uint8Array(0) }, out, 0)).toBe(4);
    expect(out.subarray(0, 4)).toEqual(hex('22020101'));
    expect(emitTcpOptions({ fastOpen: hex('a1a2a3a4') }, out, 0)).toBe(8);
    expect(out.subarray(0, 8)).toEqual(hex('2206a1a2a3a40101'));
    expect(emitTcpOptions({ fastOpen: hex('a1a2a3a4a5a6') }, out, 0)).toBe(8);
    expect(out.subarray(0, 8)).toEqual(hex('2208a1a2a3a4a5a6'));
    for (const bad of [1, 3, 17]) {
      expect(() => tcpOptionsLen({ fastOpen: new Uint8Array(bad) }), `cookie ${bad}`).toThrow(WireError);
    }
  });

  it('everything at once fills exactly the 40 option bytes', () => {
    const spec: TcpOptionsSpec = {
      mss: 1460,
      sackPermitted: true,
      ts: { val: 1, ecr: 2 },
      wscale: 7,
      fastOpen: hex('0102030405060708090a0b0c0d0e0f10'),
    };
    const out = new Uint8Array(40);
    expect(tcpOptionsLen(spec)).toBe(40);
    expect(emitTcpOptions(spec, out, 0)).toBe(40);
    expect(out).toEqual(
      hex('020405b4 0402080a 00000001 00000002 01030307 2212 0102030405060708090a0b0c0d0e0f10 0101'),
    );
    const o = new TcpOptions();
    expect(parseTcpOptions(out, 0, 40, o)).toBeNull();
    expect(o.fastOpen).toEqual(spec.fastOpen);
  });
});

describe('TCP parse and emit', () => {
  it('parse: the SYN as a Repr', () => {
    const { v } = tcpOf(TCP_SYN_FRAME);
    expect(parseTcp(v)).toEqual({
      srcPort: 40100,
      dstPort: 7001,
      seq: 3261657224,
      ack: 0,
      flags: TCP_SYN,
      window: 64240,
      urgent: 0,
      options: { mss: 1460, sackPermitted: true, ts: { val: 707458831, ecr: 0 }, wscale: 10 },
      payloadLen: 0,
    });
    expect(parseTcp(tcpOf(TCP_RST_FRAME).v).options).toEqual({});
    expect(parseTcp(tcpOf(TCP_SACK1_FRAME).v).options).toEqual({
      ts: { val: 3516492008, ecr: 5000 },
      sack: [1000011, 1000021],
      sackCount: 1,
    });
  });

  it('parse copies what it keeps: the Repr outlives the buffer', () => {
    const { f, v } = tcpOf(TCP_TFO_SYNACK_FRAME);
    const repr = parseTcp(v);
    f.fill(0);
    expect(repr.options.fastOpen).toEqual(hex('882adb900eba0f06'));
  });

  it('emit(parse(x)) with the addresses reproduces every captured segment byte for byte', () => {
    for (const [name, h] of ALL_FRAMES) {
      const { f, ip, v } = tcpOf(h);
      const repr = parseTcp(v);
      const out = f.slice(v.off, v.off + v.len);
      out.fill(0xcc, 0, v.headerLen);
      expect(emitTcp(repr, out, 0, ip.src, ip.dst), name).toBe(v.headerLen);
      expect(out, name).toEqual(f.subarray(v.off, v.off + v.len));
      // Without addresses the checksum is left 0.
      emitTcp(repr, out, 0);
      const nv = new TcpView(out, 0, out.length);
      expect(nv.checksum, name).toBe(0);
      expect(verifyTcpChecksum(nv, ip.src, ip.dst), name).toBe(false);
      fillTcpChecksum(nv, ip.src, ip.dst);
      expect(out, name).toEqual(f.subarray(v.off, v.off + v.len));
    }
  });

  it('emit at an offset inside a larger buffer', () => {
    const { f, ip, v } = tcpOf(TCP_DATA_FRAME);
    const out = new Uint8Array(200).fill(0xcc);
    out.set(v.payload(), 50 + 32);
    expect(emitTcp(parseTcp(v), out, 50, ip.src, ip.dst)).toBe(32);
    expect(out.subarray(50, 50 + v.len)).toEqual(f.subarray(v.off, v.off + v.len));
    expect(out[49]).toBe(0xcc);
    expect(out[50 + v.len]).toBe(0xcc);
  });

  it('emit refuses a segment longer than 65535 bytes', () => {
    const repr = { ...parseTcp(tcpOf(TCP_RST_FRAME).v), payloadLen: 0xffff - 19 };
    expect(() => emitTcp(repr, new Uint8Array(20), 0)).toThrow(WireError);
  });

  it('is exported from the wire index', () => {
    expect(wire.TcpView).toBe(TcpView);
    expect(wire.parseTcp).toBe(parseTcp);
    expect(wire.TCPOPT_FASTOPEN).toBe(34);
    const kinds = [TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_SACK, TCPOPT_TIMESTAMP];
    expect(kinds).toEqual([0, 1, 2, 3, 4, 5, 8]);
  });
});
