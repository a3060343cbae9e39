/**
 * Fast Open and ECN pieces on their own: SipHash against the reference vectors, Linux's
 * cookie layout, tcp_fastopen_key as /proc prints and reads it, the option codec (kind
 * 34 and the experimental 254/0xF989, laid out as tcp_options_write does), and the
 * sysctls' defaults and ranges.
 */
import { describe, expect, it } from 'vitest';
import { FastOpen, fastOpenCookie, siphash24 } from '../../src/tcp/fastopen.js';
import { TcpSettings } from '../../src/tcp/settings.js';
import { newMib } from '../../src/mib.js';
import { VirtualTime } from '../../src/time/timers.js';
import { TcpOptions, emitTcpOptions, parseTcpOptions, tcpOptionsLen } from '../../src/wire/tcp.js';
import { Stack } from '../../src/stack.js';

const seq = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);

function fastOpen(secret = 0x5a): FastOpen {
  return new FastOpen(new TcpSettings(), newMib(), new VirtualTime(), (n) => new Uint8Array(n).fill(secret));
}

describe('SipHash-2-4 and the Fast Open cookie', () => {
  it('matches the reference vectors (key 00..0f, message 00..n-1)', () => {
    // From the SipHash paper's vectors_sip64, read as little-endian 64-bit numbers.
    expect(siphash24(seq(16), seq(0))).toBe(0x726fdb47dd0e0e31n);
    expect(siphash24(seq(16), seq(7))).toBe(0xab0200f58b01d137n);
    expect(siphash24(seq(16), seq(8))).toBe(0x93f5f5799a932462n);
    expect(siphash24(seq(16), seq(15))).toBe(0xa129ca6149be45e5n);
  });

  it('is the SipHash of saddr then daddr in network order, its 8 bytes little-endian (tcp_fastopen_cookie_gen)', () => {
    const key = seq(16);
    // 0.1.2.3 -> 4.5.6.7: the message is 00..07.
    const c = fastOpenCookie(key, 0x00010203, 0x04050607);
    expect(Buffer.from(c).toString('hex')).toBe('6224939a79f5f593');
    expect(fastOpenCookie(key, 0x04050607, 0x00010203)).not.toEqual(c);
  });
});

describe('net.ipv4.tcp_fastopen_key', () => {
  it('reads as zeros until a listener makes a key, then as four little-endian words', () => {
    const f = fastOpen(0x5a);
    expect(f.keyText()).toBe('00000000-00000000-00000000-00000000');
    expect(f.cookie(1, 2)).toBeNull();
    f.initKeyOnce();
    expect(f.keyText()).toBe('5a5a5a5a-5a5a5a5a-5a5a5a5a-5a5a5a5a');
    f.initKeyOnce();
    expect(f.keyText()).toBe('5a5a5a5a-5a5a5a5a-5a5a5a5a-5a5a5a5a');
  });

  it('takes "primary[,backup]" as sscanf %x-%x-%x-%x does, and the words are stored little-endian', () => {
    const f = fastOpen();
    expect(f.setKeyText('00010203-4-05060708-090a0b0c')).toBeNull();
    expect(f.keyText()).toBe('00010203-00000004-05060708-090a0b0c');
    const key = Uint8Array.from([3, 2, 1, 0, 4, 0, 0, 0, 8, 7, 6, 5, 0xc, 0xb, 0xa, 9]);
    expect(f.cookie(0x0a000001, 0x0a000002)).toEqual(fastOpenCookie(key, 0x0a000001, 0x0a000002));
    expect(f.setKeyText('1-2-3-4,aaaaaaaa-bbbbbbbb-cccccccc-dddddddd')).toBeNull();
    expect(f.keyText()).toBe('00000001-00000002-00000003-00000004,aaaaaaaa-bbbbbbbb-cccccccc-dddddddd');
    // A number longer than 32 bits keeps its low 32 bits, as %x into a u32 does.
    expect(f.setKeyText('123456789-0-0-0')).toBeNull();
    expect(f.keyText()).toBe('23456789-00000000-00000000-00000000');
    expect(f.setKeyText('1-2-3')).toBe('Invalid argument');
    expect(f.setKeyText('1-2-3-4,zz')).toBe('Invalid argument');
    expect(f.keyText()).toBe('23456789-00000000-00000000-00000000');
  });
});

describe('the Fast Open option', () => {
  const cookie = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

  it('kind 34: 22 0a cookie, then two NOPs to the word, after MSS (tcp_options_write)', () => {
    const buf = new Uint8Array(40);
    const n = emitTcpOptions({ mss: 1460, fastOpen: cookie }, buf, 0);
    expect(n).toBe(16);
    expect(tcpOptionsLen({ mss: 1460, fastOpen: cookie })).toBe(16);
    expect(Buffer.from(buf.subarray(0, n)).toString('hex')).toBe('020405b4' + '220a0102030405060708' + '0101');
    const o = new TcpOptions();
    expect(parseTcpOptions(buf, 0, n, o)).toBeNull();
    expect(o.fastOpen).toEqual(cookie);
    expect(o.fastOpenExp).toBe(false);
  });

  it('experimental: fe len f9 89 cookie; a request is fe 04 f9 89', () => {
    const buf = new Uint8Array(40);
    let n = emitTcpOptions({ fastOpen: cookie, fastOpenExp: true }, buf, 0);
    expect(Buffer.from(buf.subarray(0, n)).toString('hex')).toBe('fe0cf9890102030405060708');
    const o = new TcpOptions();
    expect(parseTcpOptions(buf, 0, n, o)).toBeNull();
    expect(o.fastOpen).toEqual(cookie);
    expect(o.fastOpenExp).toBe(true);
    n = emitTcpOptions({ fastOpen: new Uint8Array(0), fastOpenExp: true }, buf, 0);
    expect(Buffer.from(buf.subarray(0, n)).toString('hex')).toBe('fe04f989');
    expect(parseTcpOptions(buf, 0, n, o)).toBeNull();
    expect(o.fastOpen).toEqual(new Uint8Array(0));
    expect(o.fastOpenExp).toBe(true);
  });

  it('an experimental option with another magic is skipped by its length', () => {
    const buf = Uint8Array.from([0xfe, 0x06, 0x12, 0x34, 0, 0, 0x02, 0x04, 0x05, 0xb4]);
    const o = new TcpOptions();
    expect(parseTcpOptions(buf, 0, buf.length, o)).toBeNull();
    expect(o.fastOpen).toBeNull();
    expect(o.mss).toBe(1460);
  });
});

describe('ECN and Fast Open sysctls', () => {
  it("have Linux's defaults and ranges", () => {
    const s = new Stack();
    try {
      expect(s.sysctl.text('net.ipv4.tcp_ecn')).toBe('2');
      expect(s.sysctl.text('net.ipv4.tcp_ecn_fallback')).toBe('1');
      expect(s.sysctl.text('net.ipv4.tcp_fastopen')).toBe('1');
      expect(s.sysctl.text('net.ipv4.tcp_fastopen_blackhole_timeout_sec')).toBe('0');
      expect(s.sysctl.text('net.ipv4.tcp_fastopen_key')).toBe('00000000-00000000-00000000-00000000');
      expect(() => s.sysctl.set('net.ipv4.tcp_ecn', '3')).toThrow(/Invalid argument/);
      expect(() => s.sysctl.set('net.ipv4.tcp_fastopen_blackhole_timeout_sec', '-1')).toThrow(/Invalid argument/);
      expect(s.sysctl.set('net.ipv4.tcp_fastopen', String(0x603))).toBe(String(0x603));
      expect(() => s.sysctl.set('net.ipv4.tcp_fastopen_key', 'nonsense')).toThrow(/Invalid argument/);
      // A listener with Fast Open (here every listener, by 0x400) makes the key.
      s.tcp.createServer(() => {}).listen(80);
      expect(s.sysctl.text('net.ipv4.tcp_fastopen_key')).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{8}){3}$/);
      expect(s.sysctl.text('net.ipv4.tcp_fastopen_key')).not.toBe('00000000-00000000-00000000-00000000');
    } finally {
      s.close();
    }
  });
});
