import { describe, expect, it } from 'vitest';
import { VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import type { Expr } from '../../src/netfilter/ast.js';
import { CT_STATE_ESTABLISHED, CT_STATE_NEW, CT_STATE_UNTRACKED, PKTTYPE_BROADCAST, PKTTYPE_HOST } from '../../src/netfilter/ast.js';
import { echoRequest } from '../helpers/frames.js';
import {
  base,
  cmp,
  drop,
  eq,
  eth0,
  f,
  ip,
  pkt,
  runInput,
  tcpDatagram,
  testRuleset,
  udpDatagram,
  wlan1,
} from '../helpers/nft.js';
import type { Interface } from '../../src/link/interface.js';

/** One input chain whose only rule is `matches... drop`; true if the datagram is dropped. */
function matcher(...matches: Expr[]): (d: Uint8Array, inIf?: Interface | null) => boolean {
  const { rs, hooks } = testRuleset();
  rs.addTable('ip', 't');
  rs.addChain('ip', 't', 'in', base('input'));
  rs.addRule('ip', 't', 'in', [...matches, drop]);
  return (d, inIf = eth0) => runInput(hooks, d, inIf) === VERDICT_DROP;
}

const syn = tcpDatagram('10.0.0.1', '10.0.0.2', 40000, 22);
const udp53 = udpDatagram('10.0.0.1', '10.0.0.2', 5353, 53);
const ping = echoRequest('10.0.0.1', '10.0.0.2');

describe('netfilter matches', () => {
  it('ip saddr/daddr: values, prefixes, ranges, !=', () => {
    expect(matcher(eq(f.ip('saddr'), ip('10.0.0.1')))(syn)).toBe(true);
    expect(matcher(eq(f.ip('saddr'), ip('10.0.0.9')))(syn)).toBe(false);
    expect(matcher(cmp(f.ip('daddr'), 'eq', { kind: 'prefix', addr: ip('10.0.0.0'), len: 24 }))(syn)).toBe(true);
    expect(matcher(cmp(f.ip('daddr'), 'eq', { kind: 'prefix', addr: ip('10.0.1.0'), len: 24 }))(syn)).toBe(false);
    expect(matcher(cmp(f.ip('daddr'), 'ne', { kind: 'prefix', addr: ip('10.0.1.0'), len: 24 }))(syn)).toBe(true);
    expect(matcher(cmp(f.ip('saddr'), 'eq', { kind: 'range', lo: ip('10.0.0.0'), hi: ip('10.0.0.1') }))(syn)).toBe(true);
    expect(matcher(cmp(f.ip('saddr'), 'ne', ip('10.0.0.1')))(syn)).toBe(false);
    // 0.0.0.0/0 matches everything, and addresses above 2^31 compare unsigned.
    expect(matcher(cmp(f.ip('saddr'), 'eq', { kind: 'prefix', addr: 0, len: 0 }))(syn)).toBe(true);
    const hi = tcpDatagram('192.168.1.1', '10.0.0.2', 1, 2);
    expect(matcher(cmp(f.ip('saddr'), 'gt', ip('128.0.0.0')))(hi)).toBe(true);
  });

  it('ip protocol, length, ttl, dscp', () => {
    expect(matcher(eq(f.ip('protocol'), 6))(syn)).toBe(true);
    expect(matcher(eq(f.ip('protocol'), 17))(syn)).toBe(false);
    expect(matcher(eq(f.ip('length'), 40))(syn)).toBe(true);
    expect(matcher(cmp(f.ip('length'), 'gt', 1000))(tcpDatagram('1.1.1.1', '2.2.2.2', 1, 2, { data: 1200 }))).toBe(true);
    expect(matcher(cmp(f.ip('ttl'), 'lt', 10))(tcpDatagram('1.1.1.1', '2.2.2.2', 1, 2, { ttl: 5 }))).toBe(true);
    expect(matcher(cmp(f.ip('ttl'), 'lt', 10))(syn)).toBe(false);
    // DSCP 46 (EF) is TOS 0xb8.
    expect(matcher(eq(f.ip('dscp'), 46))(udpDatagram('1.1.1.1', '2.2.2.2', 1, 2, { tos: 0xb8 }))).toBe(true);
    expect(matcher(eq(f.ip('dscp'), 46))(udp53)).toBe(false);
  });

  it('tcp/udp/th ports carry their protocol dependency', () => {
    expect(matcher(eq(f.tcp('dport'), 22))(syn)).toBe(true);
    expect(matcher(eq(f.tcp('sport'), 40000))(syn)).toBe(true);
    expect(matcher(eq(f.udp('dport'), 22))(syn)).toBe(false);
    // `tcp dport != 22` does not match UDP either.
    expect(matcher(cmp(f.tcp('dport'), 'ne', 22))(udp53)).toBe(false);
    expect(matcher(cmp(f.tcp('dport'), 'ne', 80))(syn)).toBe(true);
    expect(matcher(eq(f.udp('dport'), 53))(udp53)).toBe(true);
    expect(matcher(cmp(f.udp('sport'), 'ge', 1024))(udp53)).toBe(true);
    expect(matcher(eq(f.th('dport'), 53))(udp53)).toBe(true);
    expect(matcher(eq(f.th('dport'), 22))(syn)).toBe(true);
    expect(matcher(eq(f.th('dport'), 22))(ping)).toBe(false);
    expect(matcher(cmp(f.tcp('dport'), 'eq', { kind: 'range', lo: 20, hi: 25 }))(syn)).toBe(true);
    expect(matcher(cmp(f.tcp('dport'), 'eq', { kind: 'set', elements: [{ key: 80 }, { key: 443 }, { key: 22 }] }))(syn)).toBe(true);
    expect(matcher(cmp(f.tcp('dport'), 'ne', { kind: 'set', elements: [{ key: 80 }, { key: 443 }] }))(syn)).toBe(true);
    expect(matcher(cmp(f.tcp('dport'), 'eq', { kind: 'set', elements: [{ key: 1, end: 1023 }] }))(syn)).toBe(true);
  });

  it('a non-first fragment has no transport header', () => {
    const frag = syn.slice();
    frag[6] = 0;
    frag[7] = 10; // offset 80 bytes
    expect(matcher(eq(f.tcp('dport'), 22))(frag)).toBe(false);
    expect(matcher(eq(f.ip('protocol'), 6))(frag)).toBe(true);
  });

  it('tcp flags with a mask', () => {
    const synAck = tcpDatagram('10.0.0.1', '10.0.0.2', 1, 2, { flags: 0x12 });
    // tcp flags & (syn|ack) == syn
    const synOnly = matcher(cmp(f.tcp('flags'), 'eq', 0x02, 0x12));
    expect(synOnly(syn)).toBe(true);
    expect(synOnly(synAck)).toBe(false);
    // tcp flags syn (any flags with SYN set): flags & syn != 0
    const anySyn = matcher(cmp(f.tcp('flags'), 'ne', 0, 0x02));
    expect(anySyn(synAck)).toBe(true);
    expect(anySyn(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 2, { flags: 0x10 }))).toBe(false);
  });

  it('icmp type and code', () => {
    expect(matcher(eq(f.icmp('type'), 8))(ping)).toBe(true);
    expect(matcher(eq(f.icmp('type'), 0))(ping)).toBe(false);
    expect(matcher(eq(f.icmp('code'), 0))(ping)).toBe(true);
    expect(matcher(eq(f.icmp('type'), 8))(syn)).toBe(false);
  });

  it('meta l4proto, nfproto, protocol, length, mark, iif, pkttype', () => {
    expect(matcher(eq(f.meta('l4proto'), 17))(udp53)).toBe(true);
    expect(matcher(eq(f.meta('nfproto'), 2))(udp53)).toBe(true);
    expect(matcher(eq(f.meta('protocol'), 0x0800))(udp53)).toBe(true);
    expect(matcher(eq(f.meta('length'), 28))(udp53)).toBe(true);
    expect(matcher(eq(f.meta('iif'), 2))(udp53)).toBe(true);
    expect(matcher(eq(f.meta('iif'), 3))(udp53)).toBe(false);
    const m = matcher(eq(f.meta('mark'), 0x10));
    const p = pkt(udp53);
    expect(m(udp53)).toBe(false);
    p.mark = 0x10;
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addRule('ip', 't', 'in', [cmp(f.meta('mark'), 'eq', 0x10, 0xff), drop]);
    expect(runInput(hooks, p)).toBe(VERDICT_DROP);
    const pt = matcher(eq(f.meta('pkttype'), PKTTYPE_BROADCAST));
    expect(pt(udp53)).toBe(false);
    const bc = pkt(udpDatagram('10.0.0.1', '10.0.0.255', 1, 2));
    bc.linkBroadcast = true;
    const { rs: rs2, hooks: h2 } = testRuleset();
    rs2.addTable('ip', 't');
    rs2.addChain('ip', 't', 'in', base('input'));
    rs2.addRule('ip', 't', 'in', [eq(f.meta('pkttype'), PKTTYPE_BROADCAST), drop]);
    expect(runInput(h2, bc)).toBe(VERDICT_DROP);
    expect(matcher(eq(f.meta('pkttype'), PKTTYPE_HOST))(udp53)).toBe(true);
  });

  it('iifname with a wildcard, and !=', () => {
    const m = matcher({ kind: 'ifname', dir: 'iifname', op: 'eq', names: ['eth*'] });
    expect(m(syn, eth0)).toBe(true);
    expect(m(syn, wlan1)).toBe(false);
    const exact = matcher({ kind: 'ifname', dir: 'iifname', op: 'ne', names: ['wlan1', 'lo'] });
    expect(exact(syn, eth0)).toBe(true);
    expect(exact(syn, wlan1)).toBe(false);
  });

  it('ct state: without conntrack every packet is new; notrack makes it untracked', () => {
    const isNew = (e: Expr) => e;
    expect(matcher(isNew(cmp(f.ct('state'), 'ne', 0, CT_STATE_NEW)))(syn)).toBe(true);
    expect(matcher(cmp(f.ct('state'), 'ne', 0, CT_STATE_ESTABLISHED))(syn)).toBe(false);
    expect(matcher(eq(f.ct('direction'), 0))(syn)).toBe(true);
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'pre', base('input', -300));
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addRule('ip', 't', 'pre', [{ kind: 'notrack' }]);
    rs.addRule('ip', 't', 'in', [cmp(f.ct('state'), 'eq', CT_STATE_UNTRACKED), drop]);
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
  });

  it('ct keys come from the conntrack provider once there is one', () => {
    const { rs, hooks, env } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input', 0, 'drop'));
    rs.addRule('ip', 't', 'in', [cmp(f.ct('state'), 'ne', 0, CT_STATE_ESTABLISHED), cmp(f.ct('mark'), 'eq', 5), { kind: 'verdict', verdict: { kind: 'accept' } }]);
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
    env.ct = { state: () => CT_STATE_ESTABLISHED, status: () => 0, mark: () => 5, direction: () => 1 };
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
    env.ct = { state: () => -1, status: () => -1, mark: () => -1, direction: () => -1 };
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
  });

  it('a concatenation against an anonymous set', () => {
    const m = matcher({
      kind: 'match',
      left: { kind: 'concat', fields: [f.ip('saddr'), f.tcp('dport')] },
      op: 'eq',
      right: { kind: 'set', elements: [{ key: [ip('10.0.0.1'), 22] }, { key: [ip('10.0.0.3'), 80] }] },
    });
    expect(m(syn)).toBe(true);
    expect(m(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 80))).toBe(false);
    expect(m(udp53)).toBe(false);
  });

  it('statements: meta mark set, ip ttl/dscp set (checksum kept right)', async () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addRule('ip', 't', 'in', [
      { kind: 'meta-set', key: 'mark', value: 0xabc },
      { kind: 'payload-set', proto: 'ip', field: 'ttl', value: 7 },
      { kind: 'payload-set', proto: 'ip', field: 'dscp', value: 46 },
    ]);
    const p = pkt(udp53);
    expect(runInput(hooks, p)).toBe(VERDICT_ACCEPT);
    expect(p.mark).toBe(0xabc);
    expect(p.buf[p.l3 + 8]).toBe(7);
    expect(p.buf[p.l3 + 1]).toBe(0xb8);
    const { checksum } = await import('../../src/wire/checksum.js');
    expect(checksum(p.buf, p.l3, 20)).toBe(0);
  });

  it('meta mark set from a field with a bitwise, and from a data map', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addSet('ip', 't', { name: 'marks', type: ['ipv4_addr'], map: 'mark', flags: { interval: true }, elements: [{ key: ip('10.0.0.0'), end: ip('10.0.0.255'), data: 7 }] });
    // meta mark set meta mark or 0x100
    rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 6), { kind: 'meta-set', key: 'mark', value: { kind: 'field', field: f.meta('mark'), mask: ~0x100 >>> 0, xor: 0x100 } }]);
    rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 17), { kind: 'meta-set', key: 'mark', value: { kind: 'map', key: f.ip('saddr'), map: { kind: 'setref', name: 'marks' } } }, drop]);
    const t = pkt(syn);
    t.mark = 0x3;
    runInput(hooks, t);
    expect(t.mark).toBe(0x103);
    const u = pkt(udp53);
    expect(runInput(hooks, u)).toBe(VERDICT_DROP);
    expect(u.mark).toBe(7);
    // No element: the rule ends before its drop.
    const other = pkt(udpDatagram('10.9.0.1', '10.0.0.2', 1, 2));
    expect(runInput(hooks, other)).toBe(VERDICT_ACCEPT);
    expect(other.mark).toBe(0);
    expect(() => rs.addRule('ip', 't', 'in', [{ kind: 'vmap', key: f.ip('saddr'), map: { kind: 'setref', name: 'marks' } }])).toThrow(/not a verdict map/);
  });

  it('reject: ICMP port unreachable by default, a chosen code, tcp reset', () => {
    const { rs, hooks, env } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addRule('ip', 't', 'in', [eq(f.udp('dport'), 53), { kind: 'reject' }]);
    rs.addRule('ip', 't', 'in', [eq(f.udp('dport'), 54), { kind: 'reject', with: { type: 'icmp', code: 13 } }]);
    rs.addRule('ip', 't', 'in', [eq(f.tcp('dport'), 22), { kind: 'reject', with: { type: 'tcp-reset' } }]);
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
    expect(runInput(hooks, udpDatagram('1.1.1.1', '2.2.2.2', 1, 54))).toBe(VERDICT_DROP);
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
    expect(env.rejects).toEqual([
      { kind: 'icmp', type: 3, code: 3 },
      { kind: 'icmp', type: 3, code: 13 },
      { kind: 'tcp' },
    ]);
  });

  it('log statement passes prefix and level', () => {
    const { rs, hooks, env } = testRuleset();
    rs.addTable('inet', 't');
    rs.addChain('inet', 't', 'in', base('input'));
    rs.addRule('inet', 't', 'in', [{ kind: 'log', prefix: 'IN-DROP: ', level: 'info' }, drop]);
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
    expect(env.logs).toEqual([{ prefix: 'IN-DROP: ', level: 'info' }]);
  });
});
