import { describe, expect, it } from 'vitest';
import { simPair, type SimPair } from '../helpers/sim.js';
import { concat, echoRequest, ethHeader, fixIpChecksum } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';
import { checksum } from '../../src/wire/checksum.js';
import { VERDICT_ACCEPT } from '../../src/ip/hooks.js';
import type { EchoReply } from '../../src/ip/icmp.js';
import { formatLogLine } from '../../src/netfilter/env.js';

/** An echo request from a (10.0.0.1) to b (10.0.0.2) with `dataLen` bytes i & 0xff. */
function echo(icmpIdent: number, dataLen: number): Uint8Array {
  return echoRequest('10.0.0.1', '10.0.0.2', { ident: icmpIdent, seq: 1, data: dataLen });
}

/**
 * The fragment of IP datagram `d` (20-byte header) carrying payload bytes
 * [s, e), with IP identification `ident`. MF is set unless it ends the payload.
 */
function frag(d: Uint8Array, s: number, e: number, ident: number, opts: { more?: boolean; bytes?: Uint8Array } = {}): Uint8Array {
  const payload = d.subarray(20);
  const body = opts.bytes ?? payload.slice(s, e);
  const f = concat(d.slice(0, 20), body);
  const total = f.length;
  f[2] = total >> 8;
  f[3] = total & 0xff;
  f[4] = ident >> 8;
  f[5] = ident & 0xff;
  const more = opts.more ?? e < payload.length;
  const units = s >> 3;
  f[6] = (more ? 0x20 : 0) | (units >> 8);
  f[7] = units & 0xff;
  fixIpChecksum(f);
  return f;
}

/** Splits `d`'s payload at `cuts` (multiples of 8) into fragments. */
function split(d: Uint8Array, cuts: number[], ident: number): Uint8Array[] {
  const bounds = [0, ...cuts, d.length - 20];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push(frag(d, bounds[i], bounds[i + 1], ident));
  return out;
}

/** Puts an IP datagram on b's wire as if a had sent it. */
function inject(p: SimPair, datagram: Uint8Array): void {
  p.ib.frame(concat(ethHeader(formatMac(p.ib.mac), formatMac(p.ia.mac), 0x0800), datagram));
  p.ib.batchEnd();
}

/** ICMP errors b sends to a. */
function errorsFromB(p: SimPair): { type: number; code: number; quote: Uint8Array }[] {
  const seen: { type: number; code: number; quote: Uint8Array }[] = [];
  const orig = p.ia.frame.bind(p.ia);
  p.ia.frame = (f: Uint8Array) => {
    if (f[12] === 8 && f[13] === 0 && f[23] === 1) {
      const o = 14 + (f[14] & 0xf) * 4;
      if (f[o] !== 0 && f[o] !== 8) seen.push({ type: f[o], code: f[o + 1], quote: f.slice(o + 8) });
    }
    orig(f);
  };
  return seen;
}

function listen(p: SimPair, icmpIdent: number): EchoReply[] {
  const got: EchoReply[] = [];
  p.a.icmp.listenEcho(icmpIdent, (r) => got.push(r));
  return got;
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

function expectEchoData(r: EchoReply, len: number): void {
  expect(r.data.length).toBe(len);
  for (let i = 0; i < len; i++) if (r.data[i] !== (i & 0xff)) throw new Error(`byte ${i} differs`);
}

describe('IPv4 reassembly', () => {
  it('reassembles the fragments of a datagram in every order', () => {
    const p = simPair();
    const orders = permutations([0, 1, 2, 3]);
    const seenByInput: { len: number; flags: number }[] = [];
    p.b.ip.hooks.input.register((pkt) => {
      const b = pkt.buf;
      seenByInput.push({ len: (b[pkt.start + 2] << 8) | b[pkt.start + 3], flags: (b[pkt.start + 6] << 8) | b[pkt.start + 7] });
      return VERDICT_ACCEPT;
    });
    orders.forEach((order, k) => {
      const icmpIdent = 100 + k;
      const got = listen(p, icmpIdent);
      // 8 + 100 bytes of ICMP: fragments of 32, 32, 24 and 20 bytes.
      const d = echo(icmpIdent, 100);
      const frags = split(d, [32, 64, 88], 0x4000 + k);
      for (const i of order) inject(p, frags[i]);
      p.time.advance(50);
      expect(got.length, `order ${order.join(',')}`).toBe(1);
      expectEchoData(got[0], 100);
    });
    expect(p.b.mib.IpReasmReqds).toBe(4 * 24);
    expect(p.b.mib.IpReasmOKs).toBe(24);
    expect(p.b.mib.IpReasmFails).toBe(0);
    expect(p.b.mib.IcmpOutEchoReps).toBe(24);
    expect(p.b.ip.reasm.count).toBe(0);
    expect(p.b.ip.reasm.memory).toBe(0);
    // The INPUT hook sees each whole datagram once, with the fragment fields cleared.
    expect(seenByInput.length).toBe(24);
    for (const s of seenByInput) expect(s).toEqual({ len: 20 + 108, flags: 0 });
  });

  it('drops duplicated fragments and still reassembles', () => {
    const p = simPair();
    const got = listen(p, 7);
    const d = echo(7, 200);
    const f = split(d, [48, 96, 160], 0x77);
    for (const i of [2, 0, 2, 1, 0, 2, 3]) inject(p, f[i]);
    p.time.advance(50);
    expect(got.length).toBe(1);
    expectEchoData(got[0], 200);
    expect(p.b.mib.IpReasmReqds).toBe(7);
    expect(p.b.mib.IpReasmOKs).toBe(1);
    expect(p.b.mib.IpReasmFails).toBe(0);
    expect(p.b.mib.IpExtReasmOverlaps).toBe(0);
    // A piece lying inside two others that arrived separately is a duplicate too.
    const got2 = listen(p, 8);
    const d2 = echo(8, 200);
    inject(p, frag(d2, 0, 64, 0x88));
    inject(p, frag(d2, 64, 128, 0x88));
    inject(p, frag(d2, 32, 96, 0x88));
    inject(p, frag(d2, 128, 208, 0x88));
    p.time.advance(50);
    expect(got2.length).toBe(1);
    expect(p.b.mib.IpExtReasmOverlaps).toBe(0);
  });

  it('discards a datagram whose fragments overlap, as Linux does', () => {
    const p = simPair();
    const got = listen(p, 9);
    const d = echo(9, 200);
    inject(p, frag(d, 0, 64, 0x99));
    inject(p, frag(d, 48, 112, 0x99)); // 16 bytes over the first
    expect(p.b.mib.IpExtReasmOverlaps).toBe(1);
    expect(p.b.mib.IpReasmFails).toBe(1);
    expect(p.b.ip.reasm.count).toBe(0);
    // A "duplicate" carrying other bytes is an overlap too.
    inject(p, frag(d, 0, 64, 0x9a));
    const forged = d.slice(20, 20 + 32);
    forged[5] ^= 0xff;
    inject(p, frag(d, 0, 32, 0x9a, { bytes: forged, more: true }));
    expect(p.b.mib.IpExtReasmOverlaps).toBe(2);
    expect(p.b.mib.IpReasmFails).toBe(2);
    // The rest arriving later starts a new queue, which lacks fragment zero and times out.
    inject(p, frag(d, 112, 208, 0x99));
    p.time.advance(31_000);
    expect(got.length).toBe(0);
    expect(p.b.mib.IpReasmOKs).toBe(0);
    expect(p.b.mib.IpReasmTimeout).toBe(1);
  });

  it('refuses data beyond 65535 bytes and fragments that contradict the last one', () => {
    const p = simPair();
    const d = echo(10, 200);
    // The "ping of death": offset 65528 with 16 bytes reaches past 65535.
    inject(p, frag(d, 65528, 65544, 0xa0, { bytes: new Uint8Array(16), more: false }));
    expect(p.b.mib.IpReasmFails).toBe(1);
    expect(p.b.ip.reasm.count).toBe(0);
    // Reaching exactly 65535 with a 20-byte header is allowed (waits for the rest).
    inject(p, frag(d, 65504, 65515, 0xa1, { bytes: new Uint8Array(11), more: false }));
    expect(p.b.ip.reasm.count).toBe(1);
    // A second queue: two different ends.
    inject(p, frag(d, 64, 128, 0xa2, { more: false }));
    inject(p, frag(d, 128, 208, 0xa2, { more: false }));
    expect(p.b.mib.IpReasmFails).toBe(2);
    // A zero-length fragment spoils its datagram, as in Linux.
    inject(p, frag(d, 0, 64, 0xa3));
    inject(p, frag(d, 64, 64, 0xa3, { bytes: new Uint8Array(0), more: true }));
    expect(p.b.mib.IpReasmFails).toBe(3);
    expect(p.b.ip.reasm.count).toBe(1);
  });

  it('times out an incomplete datagram after ipfrag_time and answers with time exceeded quoting fragment zero', () => {
    const p = simPair();
    const errs = errorsFromB(p);
    const got = listen(p, 11);
    const d = echo(11, 200);
    const f = split(d, [48, 96, 160], 0xb1);
    inject(p, f[0]);
    inject(p, f[1]);
    inject(p, f[3]);
    expect(p.b.ip.reasm.count).toBe(1);
    expect(p.b.ip.reasm.memory).toBeGreaterThan(208);
    p.time.advance(29_900);
    expect(p.b.mib.IpReasmTimeout).toBe(0);
    expect(errs.length).toBe(0);
    p.time.advance(200);
    expect(got.length).toBe(0);
    expect(p.b.mib.IpReasmTimeout).toBe(1);
    expect(p.b.mib.IpReasmFails).toBe(1);
    expect(p.b.ip.reasm.count).toBe(0);
    expect(p.b.ip.reasm.memory).toBe(0);
    expect(errs.length).toBe(1);
    expect(errs[0].type).toBe(11);
    expect(errs[0].code).toBe(1);
    // The quote is fragment zero as it arrived: its header (MF set) and data.
    expect(errs[0].quote.slice(0, 20 + 48)).toEqual(f[0]);
    expect(p.b.mib.IcmpOutTimeExcds).toBe(1);
    expect(p.a.mib.IcmpInTimeExcds).toBe(1);
  });

  it('sends no time exceeded when fragment zero never came', () => {
    const p = simPair();
    const errs = errorsFromB(p);
    const d = echo(12, 200);
    const f = split(d, [48, 96, 160], 0xc1);
    inject(p, f[1]);
    inject(p, f[2]);
    inject(p, f[3]);
    p.time.advance(31_000);
    expect(p.b.mib.IpReasmTimeout).toBe(1);
    expect(p.b.mib.IpReasmFails).toBe(1);
    expect(errs.length).toBe(0);
    expect(p.b.mib.IcmpOutTimeExcds).toBe(0);
  });

  it('takes net.ipv4.ipfrag_time from sysctl', () => {
    const p = simPair();
    expect(p.b.sysctl.get('net.ipv4.ipfrag_time')).toBe(30);
    expect(p.b.sysctl.get('net.ipv4.ipfrag_high_thresh')).toBe(4194304);
    p.b.sysctl.set('net.ipv4.ipfrag_time', '5');
    const errs = errorsFromB(p);
    const d = echo(13, 200);
    inject(p, frag(d, 0, 64, 0xd1));
    p.time.advance(4_990);
    expect(p.b.mib.IpReasmTimeout).toBe(0);
    p.time.advance(20);
    expect(p.b.mib.IpReasmTimeout).toBe(1);
    expect(errs.map((e) => [e.type, e.code])).toEqual([[11, 1]]);
    expect(() => p.b.sysctl.set('net.ipv4.ipfrag_time', '0')).toThrow(/Invalid argument/);
  });

  it('stays under ipfrag_high_thresh in a flood of incomplete datagrams, evicting the oldest', () => {
    const p = simPair();
    const thresh = p.b.sysctl.get('net.ipv4.ipfrag_high_thresh');
    const d = echo(14, 4000);
    const n = 5000;
    let peak = 0;
    for (let i = 0; i < n; i++) {
      // The second of three 1480-byte pieces: never completes on its own.
      inject(p, frag(d, 1480, 2960, i));
      peak = Math.max(peak, p.b.ip.reasm.memory);
    }
    const r = p.b.ip.reasm;
    expect(peak).toBeLessThanOrEqual(thresh);
    expect(r.memory).toBeGreaterThan(thresh - 2000);
    const kept = r.count;
    // Every queue holds one 1480-byte piece and is charged the same.
    const perQueue = r.memory / kept;
    expect(Number.isInteger(perQueue)).toBe(true);
    expect(perQueue).toBeGreaterThan(1480);
    expect(kept).toBeGreaterThan(2000);
    expect(kept).toBeLessThan(3000);
    expect(p.b.mib.IpReasmFails).toBe(n - kept);
    expect(p.b.mib.IpReasmReqds).toBe(n);
    // The newest queue is still there: the rest of its datagram completes it.
    const got = listen(p, 14);
    inject(p, frag(d, 0, 1480, n - 1));
    inject(p, frag(d, 2960, 4008, n - 1));
    p.time.advance(50);
    expect(got.length).toBe(1);
    expectEchoData(got[0], 4000);
    // The oldest is gone: its other pieces only start a new queue.
    inject(p, frag(d, 0, 1480, 0));
    inject(p, frag(d, 2960, 4008, 0));
    p.time.advance(50);
    expect(got.length).toBe(1);
    expect(p.b.mib.IpReasmOKs).toBe(1);
    // Everything left times out, and the memory is all given back.
    p.time.advance(31_000);
    expect(r.count).toBe(0);
    expect(r.memory).toBe(0);
    // A lower limit applies at once to the next fragment.
    p.b.sysctl.set('net.ipv4.ipfrag_high_thresh', '100000');
    for (let i = 0; i < 200; i++) inject(p, frag(d, 1480, 2960, 10_000 + i));
    expect(r.memory).toBeLessThanOrEqual(100_000);
    expect(r.count).toBe(Math.floor(100_000 / perQueue));
  });

  it('delivers the reassembled datagram with a valid header checksum and the first fragment options', () => {
    const p = simPair();
    const got = listen(p, 15);
    const d = echo(15, 64);
    // Fragment zero carries 4 bytes of options (NOP x3, End); later ones none.
    const f0 = frag(d, 0, 40, 0xf1);
    const withOpt = concat(f0.slice(0, 20), new Uint8Array([1, 1, 1, 0]), f0.slice(20));
    withOpt[0] = 0x46;
    withOpt[3] += 4;
    fixIpChecksum(withOpt);
    let header: Uint8Array | null = null;
    p.b.ip.hooks.input.register((pkt) => {
      header = pkt.buf.slice(pkt.start, pkt.start + 24);
      return VERDICT_ACCEPT;
    });
    inject(p, frag(d, 40, 72, 0xf1));
    inject(p, withOpt);
    p.time.advance(50);
    expect(got.length).toBe(1);
    expectEchoData(got[0], 64);
    const h = header as unknown as Uint8Array;
    expect(h[0]).toBe(0x46);
    expect((h[2] << 8) | h[3]).toBe(24 + 72);
    expect(h.slice(20, 24)).toEqual(new Uint8Array([1, 1, 1, 0]));
    expect(checksum(h, 0, 24)).toBe(0);
  });

  it('keeps the first fragment\'s link header before the whole datagram (a log line\'s MAC=)', () => {
    const p = simPair();
    const lines: string[] = [];
    p.b.ip.hooks.input.register((pkt, inIf) => {
      lines.push(formatLogLine('', pkt, inIf, null));
      return VERDICT_ACCEPT;
    });
    const frags = split(echo(7, 100), [48], 0x5151);
    // The last fragment first, so the datagram is completed by one that is not its head.
    inject(p, frags[1]);
    inject(p, frags[0]);
    p.time.advance(50);
    expect(lines.length).toBe(1);
    const mac = [...p.ib.mac, ...p.ia.mac].map((x) => x.toString(16).padStart(2, '0')).join(':');
    expect(lines[0]).toContain(`IN=b0 OUT= MAC=${mac}:08:00 SRC=10.0.0.1 DST=10.0.0.2 LEN=128 `);
  });
});
