import { describe, expect, it } from 'vitest';
import { CtRig, datagram, generic, icmp, icmpError, ip, udp, tcp, SYN } from '../helpers/ct.js';
import {
  CtEntry,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
} from '../../src/conntrack/entry.js';
import { UNTRACKED } from '../../src/netfilter/compile.js';
import { CT_STATE_ESTABLISHED, CT_STATE_INVALID, CT_STATE_NEW, CT_STATE_RELATED } from '../../src/netfilter/ast.js';
import type { CtEvent } from '../../src/conntrack/conntrack.js';
import { checksum, pseudoHeaderSum } from '../../src/wire/checksum.js';
import { crc32c, sctpChecksumWord } from '../../src/wire/crc32c.js';
import type { Packet } from '../../src/packet/packet.js';

/** A datagram of protocol `proto` whose payload starts with `head` (generic() pads it to 16 bytes). */
function withHead(src: string, dst: string, proto: number, head: number[]): Packet {
  const p = generic(src, dst, proto);
  p.buf.set(head, p.l3 + 20);
  return p;
}

/** An SCTP packet: common header with `vtag`, then chunks [type, flags, value bytes]; a right CRC32c unless `badCrc`. */
function sctp(src: string, sport: number, dst: string, dport: number, vtag: number, chunks: [number, number, number[]][], badCrc = false): Packet {
  const body: number[] = [sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, vtag >>> 24, (vtag >>> 16) & 0xff, (vtag >>> 8) & 0xff, vtag & 0xff, 0, 0, 0, 0];
  for (const [type, flags, value] of chunks) {
    const len = 4 + value.length;
    body.push(type, flags, len >> 8, len & 0xff, ...value);
    while (body.length % 4) body.push(0);
  }
  const d = new Uint8Array(body);
  const w = sctpChecksumWord(crc32c(d, 0, d.length)) ^ (badCrc ? 1 : 0);
  d.set([w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff], 8);
  const p = datagram(src, dst, 132, d);
  return p;
}

/** INIT / INIT ACK's value: Initiate Tag, a_rwnd, streams, initial TSN. */
const initValue = (tag: number): number[] => [tag >>> 24, (tag >>> 16) & 0xff, (tag >>> 8) & 0xff, tag & 0xff, 0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1];

/** A 16-byte UDP-Lite datagram (RFC 3828): coverage `cscov`, checksum with `pseudoProto` in the pseudo-header. */
function udplite(src: string, sport: number, dst: string, dport: number, cscov: number, pseudoProto: number, check = true): Packet {
  const p = generic(src, dst, 136);
  const b = p.buf;
  const o = p.l3 + 20;
  b.set([sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, cscov >> 8, cscov & 0xff, 0, 0], o);
  for (let i = 8; i < 16; i++) b[o + i] = i;
  if (check) {
    const c = checksum(b, o, cscov === 0 ? 16 : cscov, pseudoHeaderSum(ip(src), ip(dst), pseudoProto, 16)) || 0xffff;
    b[o + 6] = c >> 8;
    b[o + 7] = c & 0xff;
  }
  return p;
}

describe('conntrack table', () => {
  it('creates an entry, confirms it on the way out and finds it from either direction', () => {
    const r = new CtRig();
    const p = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.hooks.prerouting.run(p, null, null);
    const e = p.ct as CtEntry;
    expect(e).toBeInstanceOf(CtEntry);
    expect(p.ctInfo).toBe(IP_CT_NEW);
    expect(e.status & IPS_CONFIRMED).toBe(0);
    expect(r.ct.count).toBe(0);
    r.hooks.postrouting.run(p, null, null);
    expect(e.status & IPS_CONFIRMED).not.toBe(0);
    expect(r.ct.count).toBe(1);
    expect(r.ct.find(17, ip('10.0.0.1'), ip('10.0.1.2'), 5000, 53)).toBe(e);
    expect(r.ct.foundDir).toBe(0);
    expect(r.ct.find(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5000)).toBe(e);
    expect(r.ct.foundDir).toBe(1);
    expect(r.ct.find(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5001)).toBeNull();
    expect([e.rs, e.rd, e.rsp, e.rdp]).toEqual([ip('10.0.1.2'), ip('10.0.0.1'), 53, 5000]);
  });

  it('UDP: unreplied 30 s; a reply makes it ESTABLISHED; assured and stream timeout only for a packet more than 2 s in', () => {
    const r = new CtRig();
    const req = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    expect(r.forward(req)).toBe(true);
    const e = req.ct as CtEntry;
    expect(r.ct.timeLeft(e)).toBe(30);
    r.time.advance(500);
    const rep = udp('10.0.1.2', 53, '10.0.0.1', 5000);
    r.forward(rep);
    expect(rep.ct).toBe(e);
    expect(rep.ctInfo).toBe(IP_CT_ESTABLISHED_REPLY);
    expect(e.status & IPS_SEEN_REPLY).not.toBe(0);
    expect(e.status & IPS_ASSURED).toBe(0);
    expect(r.ct.timeLeft(e)).toBe(30);
    // 1.5 s after creation: replied but not yet a stream.
    r.time.advance(1000);
    const again = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.forward(again);
    expect(again.ctInfo).toBe(IP_CT_ESTABLISHED);
    expect(e.status & IPS_ASSURED).toBe(0);
    expect(r.ct.timeLeft(e)).toBe(30);
    // 2.5 s after creation: a stream.
    r.time.advance(1000);
    r.forward(udp('10.0.1.2', 53, '10.0.0.1', 5000));
    expect(e.status & IPS_ASSURED).not.toBe(0);
    expect(r.ct.timeLeft(e)).toBe(120);
  });

  it('UDP without a reply never becomes assured, however long it goes on', () => {
    const r = new CtRig();
    const p = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.forward(p);
    for (let i = 0; i < 5; i++) {
      r.time.advance(1000);
      r.forward(udp('10.0.0.1', 5000, '10.0.1.2', 53));
    }
    const e = p.ct as CtEntry;
    expect(e.status & (IPS_ASSURED | IPS_SEEN_REPLY)).toBe(0);
    expect(r.ct.timeLeft(e)).toBe(30);
  });

  it('expires in virtual time: gone from lookups and reaped by the sweep with a destroy event', () => {
    const r = new CtRig();
    const events: string[] = [];
    r.ct.on((ev: CtEvent, e) => events.push(`${ev}:${e.proto}`));
    r.forward(udp('10.0.0.1', 5000, '10.0.1.2', 53));
    r.forward(icmp('10.0.0.1', '10.0.1.2', 8, 0, { id: 7, seq: 1 }));
    r.forward(generic('10.0.0.1', '10.0.1.2', 253));
    expect(r.ct.count).toBe(3);
    expect(events).toEqual(['new:17', 'new:1', 'new:253']);
    r.time.advance(29_000);
    expect(r.ct.count).toBe(3);
    r.time.advance(2_000);
    // UDP and ICMP (30 s) are reaped; generic (600 s) stays.
    expect(r.ct.count).toBe(1);
    expect(events.slice(3).sort()).toEqual(['destroy:1', 'destroy:17']);
    expect(r.ct.find(17, ip('10.0.0.1'), ip('10.0.1.2'), 5000, 53)).toBeNull();
    r.time.advance(600_000);
    expect(r.ct.count).toBe(0);
  });

  it('a lookup does not return an entry past its deadline even before the sweep', () => {
    const r = new CtRig();
    r.forward(udp('10.0.0.1', 5000, '10.0.1.2', 53));
    // Step the clock without running timers: only the deadline check at lookup can see it.
    const t = r.time as unknown as { clock: { set(v: number): void; now(): number } };
    t.clock.set(t.clock.now() + 31_000);
    expect(r.ct.find(17, ip('10.0.0.1'), ip('10.0.1.2'), 5000, 53)).toBeNull();
    expect(r.ct.count).toBe(0);
  });

  it('the timeout sysctls change the timeouts of later packets', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_udp_timeout', '5');
    r.sysctl.set('net.netfilter.nf_conntrack_icmp_timeout', '7');
    r.sysctl.set('net.netfilter.nf_conntrack_generic_timeout', '9');
    const u = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    const i = icmp('10.0.0.1', '10.0.1.2', 8, 0, { id: 7, seq: 1 });
    const g = generic('10.0.0.1', '10.0.1.2', 253);
    r.forward(u);
    r.forward(i);
    r.forward(g);
    expect(r.ct.timeLeft(u.ct as CtEntry)).toBe(5);
    expect(r.ct.timeLeft(i.ct as CtEntry)).toBe(7);
    expect(r.ct.timeLeft(g.ct as CtEntry)).toBe(9);
    r.time.advance(6000);
    expect(r.ct.count).toBe(2);
    r.time.advance(4000);
    expect(r.ct.count).toBe(0);
    expect(r.sysctl.get('net.netfilter.nf_conntrack_udp_timeout_stream')).toBe(120);
    expect(r.sysctl.get('net.netfilter.nf_conntrack_tcp_timeout_established')).toBe(432000);
    expect(r.sysctl.get('net.netfilter.nf_conntrack_tcp_be_liberal')).toBe(0);
    expect(r.sysctl.get('net.netfilter.nf_conntrack_tcp_loose')).toBe(1);
    expect(r.sysctl.get('net.netfilter.nf_conntrack_max')).toBe(262144);
    expect(r.sysctl.text('net.netfilter.nf_conntrack_count')).toBe('3'.replace('3', String(r.ct.count)));
    expect(() => r.sysctl.set('net.netfilter.nf_conntrack_count', '5')).toThrow(/permission denied/);
  });

  it('ICMP echo: request NEW, reply ESTABLISHED, never assured; an echo reply without a request is INVALID', () => {
    const r = new CtRig();
    const req = icmp('10.0.0.1', '10.0.1.2', 8, 0, { id: 99, seq: 1 });
    r.forward(req);
    const e = req.ct as CtEntry;
    expect(req.ctInfo).toBe(IP_CT_NEW);
    expect([e.osp, e.odp, e.rsp, e.rdp]).toEqual([99, 8 << 8, 99, 0]);
    const rep = icmp('10.0.1.2', '10.0.0.1', 0, 0, { id: 99, seq: 1 });
    r.forward(rep);
    expect(rep.ct).toBe(e);
    expect(rep.ctInfo).toBe(IP_CT_ESTABLISHED_REPLY);
    r.time.advance(5000);
    r.forward(icmp('10.0.0.1', '10.0.1.2', 8, 0, { id: 99, seq: 2 }));
    r.forward(icmp('10.0.1.2', '10.0.0.1', 0, 0, { id: 99, seq: 2 }));
    expect(e.status & IPS_ASSURED).toBe(0);
    const stray = icmp('10.0.1.2', '10.0.0.1', 0, 0, { id: 5, seq: 1 });
    const before = r.ct.stats.invalid;
    expect(r.forward(stray)).toBe(true);
    expect(stray.ct).toBeNull();
    expect(r.ct.stats.invalid).toBe(before + 1);
    expect(r.ct.state(stray)).toBe(CT_STATE_INVALID);
    // Timestamp request/reply pair up as well.
    const ts = icmp('10.0.0.1', '10.0.1.2', 13, 0, new Uint8Array(16));
    r.forward(ts);
    expect((ts.ct as CtEntry).rdp).toBe(14 << 8);
  });

  it('ICMP errors quoting a tracked flow are RELATED, in the direction they travel', () => {
    const r = new CtRig();
    const out = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.forward(out);
    const e = out.ct as CtEntry;
    // Port unreachable from the server back to the client: reply direction.
    const err = icmpError('10.0.1.2', '10.0.0.1', 3, 3, out);
    r.forward(err);
    expect(err.ct).toBe(e);
    expect(err.ctInfo).toBe(IP_CT_RELATED_REPLY);
    expect(r.ct.state(err)).toBe(CT_STATE_RELATED);
    // A router on the way sends time exceeded to the client: also reply direction, from a third address.
    const ttl = icmpError('10.9.9.9', '10.0.0.1', 11, 0, out);
    r.forward(ttl);
    expect(ttl.ct).toBe(e);
    // An error about the reply direction travels in the original direction.
    const rep = udp('10.0.1.2', 53, '10.0.0.1', 5000);
    r.forward(rep);
    const err2 = icmpError('10.0.0.1', '10.0.1.2', 3, 3, rep);
    r.forward(err2);
    expect(err2.ct).toBe(e);
    expect(err2.ctInfo).toBe(IP_CT_RELATED);
    // An error to someone else than the quoted datagram's source is not related.
    const bogus = icmpError('10.0.1.2', '10.0.7.7', 3, 3, out);
    const errs = r.ct.stats.error;
    r.forward(bogus);
    expect(bogus.ct).toBeNull();
    expect(r.ct.stats.error).toBe(errs + 1);
    // An error about an unknown flow is not tracked either.
    const unknown = icmpError('10.0.1.2', '10.0.0.1', 3, 3, udp('10.0.0.1', 6000, '10.0.1.2', 53));
    r.forward(unknown);
    expect(unknown.ct).toBeNull();
    expect(r.ct.count).toBe(1);
  });

  it('generic protocols: one entry per address pair and protocol, 600 s', () => {
    const r = new CtRig();
    const g = generic('10.0.0.1', '10.0.1.2', 253);
    r.forward(g);
    const e = g.ct as CtEntry;
    expect(r.ct.timeLeft(e)).toBe(600);
    const back = generic('10.0.1.2', '10.0.0.1', 253);
    r.forward(back);
    expect(back.ct).toBe(e);
    expect(back.ctInfo).toBe(IP_CT_ESTABLISHED_REPLY);
    expect(r.ct.stateName(e)).toBe('');
  });

  it('GRE: 30 s unreplied, then 180 s and assured once seen both ways; PPTP (version 1) keyed by call id; its sysctls', () => {
    // nf_conntrack_proto_gre.c: gre_pkt_to_tuple, gre_packet; timeouts GRE_CT_UNREPLIED 30, GRE_CT_REPLIED 180.
    const r = new CtRig();
    const g = withHead('10.0.0.1', '10.0.1.2', 47, [0, 0, 0x08, 0x00]);
    r.forward(g);
    const e = g.ct as CtEntry;
    expect([e.osp, e.odp]).toEqual([0, 0]);
    expect(r.ct.timeLeft(e)).toBe(30);
    const back = withHead('10.0.1.2', '10.0.0.1', 47, [0, 0, 0x08, 0x00]);
    r.forward(back);
    expect(back.ct).toBe(e);
    // The first reply still gets the unreplied timeout (SEEN_REPLY is set after the tracker ran).
    expect(e.status & IPS_ASSURED).toBe(0);
    expect(r.ct.timeLeft(e)).toBe(30);
    r.forward(withHead('10.0.0.1', '10.0.1.2', 47, [0, 0, 0x08, 0x00]));
    expect(e.status & IPS_ASSURED).not.toBe(0);
    expect(r.ct.timeLeft(e)).toBe(180);
    // Version 1 carrying PPP: the call id is the destination key; the source key (the PPTP helper's) is 0.
    const pptp = withHead('10.0.0.5', '10.0.1.2', 47, [0x30, 0x01, 0x88, 0x0b, 0, 0, 0xab, 0xcd]);
    r.forward(pptp);
    const k = pptp.ct as CtEntry;
    expect([k.osp, k.odp, k.rsp, k.rdp]).toEqual([0, 0xabcd, 0xabcd, 0]);
    // Version 1 without PPP has no tuple: invalid.
    const before = r.ct.stats.invalid;
    const bad = withHead('10.0.0.6', '10.0.1.2', 47, [0x30, 0x01, 0x08, 0x00, 0, 0, 0xab, 0xce]);
    r.forward(bad);
    expect(bad.ct).toBeNull();
    expect(r.ct.stats.invalid).toBe(before + 1);
    r.sysctl.set('net.netfilter.nf_conntrack_gre_timeout', '40');
    r.sysctl.set('net.netfilter.nf_conntrack_gre_timeout_stream', '200');
    r.forward(withHead('10.0.0.1', '10.0.1.2', 47, [0, 0, 0x08, 0x00]));
    expect(r.ct.timeLeft(e)).toBe(200);
    const g2 = withHead('10.0.0.7', '10.0.1.2', 47, [0, 0, 0x08, 0x00]);
    r.forward(g2);
    expect(r.ct.timeLeft(g2.ct as CtEntry)).toBe(40);
  });

  it('UDP-Lite: checksum coverage and checksum checked as the kernel does (17 in the pseudo-header); a stream as soon as replied', () => {
    // nf_conntrack_proto_udp.c: udplite_error, nf_conntrack_udplite_packet.
    const r = new CtRig();
    const p = udplite('10.0.0.1', 5000, '10.0.1.2', 6000, 0, 17);
    r.forward(p);
    const e = p.ct as CtEntry;
    expect(e).toBeInstanceOf(CtEntry);
    expect([e.osp, e.odp]).toEqual([5000, 6000]);
    expect(r.ct.timeLeft(e)).toBe(30);
    r.forward(udplite('10.0.1.2', 6000, '10.0.0.1', 5000, 0, 17));
    expect(e.status & IPS_ASSURED).toBe(0);
    expect(r.ct.timeLeft(e)).toBe(30);
    // No 2 s wait as for UDP: the next packet makes it a stream.
    r.forward(udplite('10.0.0.1', 5000, '10.0.1.2', 6000, 12, 17));
    expect(e.status & IPS_ASSURED).not.toBe(0);
    expect(r.ct.timeLeft(e)).toBe(120);
    const invalid = r.ct.stats.invalid;
    for (const bad of [
      udplite('10.0.0.2', 5000, '10.0.1.2', 6000, 0, 136), // RFC 3828's pseudo-header: "bad checksum" to conntrack
      udplite('10.0.0.2', 5001, '10.0.1.2', 6000, 0, 17, false), // checksum missing
      udplite('10.0.0.2', 5002, '10.0.1.2', 6000, 17, 17), // coverage beyond the datagram
      udplite('10.0.0.2', 5003, '10.0.1.2', 6000, 4, 17), // coverage shorter than the header
    ]) {
      r.forward(bad);
      expect(bad.ct).toBeNull();
    }
    expect(r.ct.stats.invalid).toBe(invalid + 4);
  });

  it('SCTP: the states and timeouts of an association, verification tags, out-of-the-blue chunks and the CRC32c', () => {
    // nf_conntrack_proto_sctp.c: sctp_conntracks[], sctp_new, the vtag checks of RFC 9260 §8.5, sctp_error.
    const r = new CtRig();
    const c = (vtag: number, chunks: [number, number, number[]][], bad = false): Packet => sctp('10.0.0.1', 5000, '10.0.1.2', 7300, vtag, chunks, bad);
    const s = (vtag: number, chunks: [number, number, number[]][]): Packet => sctp('10.0.1.2', 7300, '10.0.0.1', 5000, vtag, chunks);
    const init = c(0, [[1, 0, initValue(0x1111)]]);
    r.forward(init);
    const e = init.ct as CtEntry;
    expect(e).toBeInstanceOf(CtEntry);
    const seen = (): string => `${r.ct.stateName(e)} ${r.ct.timeLeft(e)}${e.status & IPS_ASSURED ? ' assured' : ''}`;
    expect(seen()).toBe('CLOSED 10');
    const steps: [Packet, string][] = [
      [s(0x1111, [[2, 0, initValue(0x2222)]]), 'COOKIE_WAIT 3'],
      [c(0x2222, [[10, 0, [0, 1, 2, 3]]]), 'COOKIE_ECHOED 3'],
      [s(0x1111, [[11, 0, []]]), 'ESTABLISHED 210 assured'],
      [c(0x2222, [[0, 3, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x78]]]), 'ESTABLISHED 210 assured'],
      [c(0x2222, [[7, 0, [0, 0, 0, 1]]]), 'SHUTDOWN_SENT 3 assured'],
      [s(0x1111, [[8, 0, []]]), 'SHUTDOWN_ACK_SENT 3 assured'],
      [c(0x2222, [[14, 0, []]]), 'CLOSED 10 assured'],
    ];
    for (const [p, want] of steps) {
      r.forward(p);
      expect(p.ct).toBe(e);
      expect(seen()).toBe(want);
    }
    const invalid = r.ct.stats.invalid;
    for (const bad of [
      c(0x9999, [[0, 3, [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x78]]]), // DATA with a wrong tag
      sctp('10.0.0.3', 5000, '10.0.1.2', 7300, 0, [[1, 0, initValue(1)]], true), // bad CRC32c
      sctp('10.0.0.3', 5001, '10.0.1.2', 7300, 5, [[1, 0, initValue(1)]]), // INIT with a tag
      sctp('10.0.0.3', 5002, '10.0.1.2', 7300, 7, [[6, 0, []]]), // ABORT out of the blue
      sctp('10.0.0.3', 5003, '10.0.1.2', 7300, 7, [[0, 3, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x78]]]), // DATA out of the blue
      sctp('10.0.0.3', 5004, '10.0.1.2', 7300, 0, [[1, 0, initValue(1)], [0, 3, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x78]]]), // INIT not alone
    ]) {
      r.forward(bad);
      expect(bad.ct).toBeNull();
    }
    expect(r.ct.stats.invalid).toBe(invalid + 6);
    // A HEARTBEAT may open an entry; its ACK the other way makes it ESTABLISHED.
    r.sysctl.set('net.netfilter.nf_conntrack_sctp_timeout_heartbeat_sent', '40');
    const hb = sctp('10.0.0.4', 5000, '10.0.1.2', 7300, 0x4444, [[4, 0, [0, 1, 0, 8, 0, 0, 0, 42]]]);
    r.forward(hb);
    const h = hb.ct as CtEntry;
    expect(`${r.ct.stateName(h)} ${r.ct.timeLeft(h)}`).toBe('HEARTBEAT_SENT 40');
    r.forward(sctp('10.0.1.2', 7300, '10.0.0.4', 5000, 0x5555, [[5, 0, [0, 1, 0, 8, 0, 0, 0, 42]]]));
    expect(`${r.ct.stateName(h)} ${r.ct.timeLeft(h)}`).toBe('ESTABLISHED 210');
  });

  it('skips untracked and already-tracked (looped back) packets', () => {
    const r = new CtRig();
    const p = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    p.ct = UNTRACKED;
    r.forward(p);
    expect(p.ct).toBe(UNTRACKED);
    expect(r.ct.count).toBe(0);
    // Locally generated: OUTPUT creates, the looped-back copy keeps its entry through PREROUTING and INPUT.
    const q = udp('10.0.0.1', 5000, '10.0.0.1', 53);
    r.hooks.output.run(q, null, null);
    const e = q.ct as CtEntry;
    const copy = q.clone();
    r.hooks.prerouting.run(copy, null, null);
    expect(copy.ct).toBe(e);
    expect(copy.ctInfo).toBe(IP_CT_NEW);
    r.hooks.input.run(copy, null, null);
    expect(r.ct.count).toBe(1);
    expect(e.status & IPS_SEEN_REPLY).toBe(0);
  });

  it('provider: state, status, direction, mark, tuple; before conntrack runs every packet is new', () => {
    const r = new CtRig();
    const p = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.forward(p);
    expect(r.ct.state(p)).toBe(CT_STATE_NEW);
    const q = udp('10.0.1.2', 53, '10.0.0.1', 5000);
    r.forward(q);
    expect(r.ct.state(q)).toBe(CT_STATE_ESTABLISHED);
    expect(r.ct.direction(q)).toBe(1);
    expect(r.ct.status(q) & IPS_SEEN_REPLY).not.toBe(0);
    expect(r.ct.tuple(q, 0, 0)).toBe(ip('10.0.0.1'));
    expect(r.ct.tuple(q, 1, 2)).toBe(53);
    expect(r.ct.tuple(q, 0, 4)).toBe(17);
    const events: string[] = [];
    r.ct.on((ev) => events.push(ev));
    r.ct.setMark(q, 0x42);
    expect(r.ct.mark(p)).toBe(0x42);
    expect(events).toEqual(['update']);
    expect(r.ct.alive(r.ct.entry(p)!)).toBe(true);
    r.ct.delete(p.ct as CtEntry);
    expect(r.ct.alive(r.ct.entry(p)!)).toBe(false);
    expect(events).toEqual(['update', 'destroy']);
    // A deleted entry's flow starts NEW again.
    const again = udp('10.0.1.2', 53, '10.0.0.1', 5000);
    r.forward(again);
    expect(again.ctInfo).toBe(IP_CT_NEW);
    // Not running: no hooks, and packets read as new (as before conntrack existed).
    r.ct.setNeeded('test', false);
    expect(r.ct.active).toBe(false);
    expect(r.hooks.prerouting.empty).toBe(true);
    const x = udp('10.0.0.1', 1, '10.0.1.2', 2);
    r.forward(x);
    expect(x.ct).toBeNull();
    expect(r.ct.state(x)).toBe(CT_STATE_NEW);
    expect(r.ct.status(x)).toBe(0);
  });

  it('flush and forEach with deletion while iterating', () => {
    const r = new CtRig();
    for (let i = 0; i < 50; i++) r.forward(udp('10.0.0.1', 1000 + i, '10.0.1.2', 53));
    let seen = 0;
    r.ct.forEach((e) => {
      seen++;
      if (e.osp % 2 === 0) r.ct.delete(e);
    });
    expect(seen).toBe(50);
    expect(r.ct.count).toBe(25);
    expect(r.ct.flush()).toBe(25);
    expect(r.ct.count).toBe(0);
  });

  it('nf_conntrack_buckets resizes the table and keeps every entry', () => {
    const r = new CtRig();
    for (let i = 0; i < 300; i++) r.forward(udp('10.0.0.1', 1000 + i, '10.0.1.2', 53));
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', '16');
    expect(r.ct.buckets).toBe(16);
    for (let i = 0; i < 300; i++) expect(r.ct.find(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 1000 + i)).not.toBeNull();
    expect(r.ct.count).toBe(300);
  });

  it('nf_conntrack_max: 100,000 new flows keep the count at the max, with early drops and drops counted', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_max', '1000');
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', '1024');
    // An assured flow is never early-dropped.
    const a = udp('10.0.0.9', 9, '10.0.1.9', 9);
    r.forward(a);
    r.forward(udp('10.0.1.9', 9, '10.0.0.9', 9));
    r.time.advance(3000);
    r.forward(udp('10.0.0.9', 9, '10.0.1.9', 9));
    const assured = a.ct as CtEntry;
    expect(assured.status & IPS_ASSURED).not.toBe(0);
    let passed = 0;
    let most = 0;
    for (let i = 0; i < 100_000; i++) {
      const p = udp(`10.1.${(i >> 8) & 0xff}.${i & 0xff}`, 1024 + (i % 50000), '10.0.1.2', 53);
      if (r.forward(p)) passed++;
      if (r.ct.count > most) most = r.ct.count;
    }
    // early_drop empties a whole bucket of unassured entries, so the count may sit a little under the max.
    expect(most).toBe(1000);
    expect(r.ct.count).toBeGreaterThanOrEqual(990);
    expect(r.ct.stats.early_drop).toBeGreaterThan(0);
    expect(r.ct.stats.drop).toBe(100_000 - passed);
    expect(assured.hashed).toBe(true);
    // Linux counts `insert` only for entries made through ctnetlink.
    expect(r.ct.stats.insert).toBe(0);
    // A TCP SYN too: with no unassured entry near its bucket, a full table drops it.
    r.sysctl.set('net.netfilter.nf_conntrack_max', String(r.ct.count));
    r.ct.forEach((e) => {
      e.status |= IPS_ASSURED;
    });
    const drops = r.ct.stats.drop;
    expect(r.forward(tcp('10.0.0.1', 40000, '10.0.1.2', 80, { seq: 1, flags: SYN }))).toBe(false);
    expect(r.ct.stats.drop).toBe(drops + 1);
  });

  it('a full table that had to drop a packet has the next gc pass evict unassured entries down to 95%', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_max', '100');
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', '65536');
    let i = 0;
    while (r.ct.count < 100) r.forward(udp('10.0.0.1', 1000 + i++, '10.0.1.2', 53));
    // Sparse buckets: early_drop's 8 buckets hold nothing to drop, so new packets are dropped.
    let dropped = 0;
    for (let k = 0; k < 20; k++) if (!r.forward(udp('10.0.0.2', 2000 + k, '10.0.1.2', 53))) dropped++;
    expect(dropped).toBeGreaterThan(0);
    expect(r.ct.stats.drop).toBe(dropped);
    r.time.advance(2000);
    expect(r.ct.count).toBe(94);
    expect(r.forward(udp('10.0.0.3', 3000, '10.0.1.2', 53))).toBe(true);
  });

  it('tupleTaken: a confirmed entry using the tuple in either direction, except the very same flow', () => {
    const r = new CtRig();
    const p = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.forward(p);
    const e = p.ct as CtEntry;
    expect(r.ct.tupleTaken(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5000, null)).toBe(true);
    expect(r.ct.tupleTaken(17, ip('10.0.0.1'), ip('10.0.1.2'), 5000, 53, null)).toBe(true);
    expect(r.ct.stats.found).toBe(2);
    expect(r.ct.tupleTaken(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5000, e)).toBe(false);
    expect(r.ct.tupleTaken(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5001, null)).toBe(false);
    // An unconfirmed entry of the same flow (a racing packet) does not see it as taken.
    const other = new CtEntry();
    Object.assign(other, { proto: 17, os: ip('10.0.0.1'), od: ip('10.0.1.2'), osp: 5000, odp: 53 });
    expect(r.ct.tupleTaken(17, ip('10.0.1.2'), ip('10.0.0.1'), 53, 5000, other)).toBe(false);
  });

  it('confirming a second entry for a tuple already in the table: UDP joins the winner, TCP is dropped (insert_failed)', () => {
    const r = new CtRig();
    const p1 = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    const p2 = udp('10.0.0.1', 5000, '10.0.1.2', 53);
    r.hooks.output.run(p1, null, null);
    r.hooks.output.run(p2, null, null);
    expect(p1.ct).not.toBe(p2.ct);
    r.hooks.postrouting.run(p1, null, null);
    expect(r.hooks.postrouting.run(p2, null, null)).toBe(0);
    expect(p2.ct).toBe(p1.ct);
    expect(r.ct.stats.clash_resolve).toBe(1);
    expect(r.ct.count).toBe(1);
    const t1 = tcp('10.0.0.1', 40000, '10.0.1.2', 80, { seq: 1, flags: SYN });
    const t2 = tcp('10.0.0.1', 40000, '10.0.1.2', 80, { seq: 1, flags: SYN });
    r.hooks.output.run(t1, null, null);
    r.hooks.output.run(t2, null, null);
    r.hooks.postrouting.run(t1, null, null);
    expect(r.hooks.postrouting.run(t2, null, null)).not.toBe(0);
    expect(r.ct.stats.insert_failed).toBe(1);
    expect(r.ct.stats.drop).toBe(1);
    expect(r.ct.count).toBe(2);
  });

  it('nf_conntrack_max 0 means no limit', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_max', '0');
    for (let i = 0; i < 100; i++) expect(r.forward(udp('10.0.0.1', 1000 + i, '10.0.1.2', 53))).toBe(true);
    expect(r.ct.count).toBe(100);
    expect(r.ct.stats.drop).toBe(0);
  });

  it('a hash chain grown past 8 + random(64) entries refuses further inserts (chaintoolong)', () => {
    const r = new CtRig();
    r.sysctl.set('net.netfilter.nf_conntrack_buckets', '1');
    let passed = 0;
    for (let i = 0; i < 200; i++) if (r.forward(udp('10.0.0.1', 1000 + i, '10.0.1.2', 53))) passed++;
    expect(r.ct.stats.chaintoolong).toBe(200 - passed);
    expect(r.ct.stats.insert_failed).toBe(200 - passed);
    // Every entry sits in the one chain twice (both directions): at most 73 links when the last one went in.
    expect(r.ct.count).toBe(passed);
    expect(passed).toBeGreaterThanOrEqual(5);
    expect(passed).toBeLessThanOrEqual(37);
  });
});
