import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import type { SystemError } from '../../src/errors.js';
import type { Expr } from '../../src/netfilter/ast.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';

/** a (10.0.1.2) -- r0 (10.0.1.1) router r1 (10.0.2.1) -- b (10.0.2.2), forwarding on. */
function routed() {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
  const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'] });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const b = new Stack({ time, seed: 13 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const r1 = r.addInterface('r1', dr1);
  const ib = b.addInterface('b0', db);
  for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(r1, ip('10.0.2.1'), 24);
  b.addAddress(ib, ip('10.0.2.2'), 24);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  b.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  time.advance(1000);
  return { time, a, r, b };
}

const icmpEcho: Expr = { kind: 'match', left: { kind: 'payload', proto: 'icmp', field: 'type' }, op: 'eq', right: { kind: 'value', value: 8 } };

describe('netfilter on a stack', () => {
  it('a filter on the input hook drops pings and counts them; deleting it lets them through', () => {
    const { time, a, b } = simPair();
    b.nft.addTable('inet', 'filter');
    b.nft.addChain('inet', 'filter', 'input', { type: 'filter', hook: 'input', priority: 0, policy: 'accept' });
    const h = b.nft.addRule('inet', 'filter', 'input', [icmpEcho, { kind: 'counter' }, { kind: 'verdict', verdict: { kind: 'drop' } }]);
    const r = simPing(time, a, ip('10.0.0.2'), 3);
    expect(r.replies).toEqual([]);
    // 20 bytes of IP header, 8 of ICMP, 56 of data.
    expect(b.nft.ruleCounter('inet', 'filter', h)).toEqual({ packets: 3, bytes: 3 * 84 });
    expect(b.mib.IcmpInEchos).toBe(0);
    b.nft.deleteTable('inet', 'filter');
    expect(simPing(time, a, ip('10.0.0.2'), 2, { ident: 7 }).replies.length).toBe(2);
  });

  it('set timeouts run on the stack\'s virtual clock', () => {
    const { time, a, b } = simPair();
    b.nft.addTable('ip', 'f');
    b.nft.addSet('ip', 'f', { name: 'pingers', type: ['ipv4_addr'], flags: { timeout: true }, timeoutMs: 10_000, elements: [] });
    b.nft.addChain('ip', 'f', 'in', { type: 'filter', hook: 'input', priority: 0, policy: 'accept' });
    b.nft.addRule('ip', 'f', 'in', [icmpEcho, { kind: 'set-add', op: 'update', set: 'pingers', key: { kind: 'payload', proto: 'ip', field: 'saddr' } }]);
    simPing(time, a, ip('10.0.0.2'), 1, { waitMs: 1000 });
    const [e] = b.nft.elements('ip', 'f', 'pingers');
    expect(e.key).toBe(ip('10.0.0.1'));
    expect(e.expires - time.now()).toBeGreaterThan(7000);
    time.advance(9000);
    expect(b.nft.elements('ip', 'f', 'pingers')).toEqual([]);
  });

  it('reject with icmp: the pinger hears port unreachable; on output, the stack refuses to send', () => {
    const { time, a, b } = simPair();
    b.nft.addTable('ip', 'f');
    b.nft.addChain('ip', 'f', 'in', { type: 'filter', hook: 'input', priority: 0, policy: 'accept' });
    b.nft.addRule('ip', 'f', 'in', [icmpEcho, { kind: 'reject' }]);
    const before = a.mib.IcmpInDestUnreachs;
    simPing(time, a, ip('10.0.0.2'), 1);
    expect(a.mib.IcmpInDestUnreachs).toBe(before + 1);
    a.nft.addTable('ip', 'f');
    a.nft.addChain('ip', 'f', 'out', { type: 'filter', hook: 'output', priority: 0, policy: 'drop' });
    const outDiscards = a.mib.IpOutDiscards;
    expect(simPing(time, a, ip('10.0.0.2'), 2, { ident: 9 }).replies).toEqual([]);
    expect(a.mib.IpOutDiscards).toBeGreaterThanOrEqual(outDiscards + 2);
  });

  it('reject with tcp reset: connect to a listening port fails with ECONNREFUSED', async () => {
    const p = simPair();
    const server = p.b.tcp.createServer({}, () => {});
    server.listen(22);
    p.b.nft.addTable('ip', 'f');
    p.b.nft.addChain('ip', 'f', 'in', { type: 'filter', hook: 'input', priority: 0, policy: 'accept' });
    p.b.nft.addRule('ip', 'f', 'in', [
      { kind: 'match', left: { kind: 'payload', proto: 'tcp', field: 'dport' }, op: 'eq', right: { kind: 'value', value: 22 } },
      { kind: 'reject', with: { type: 'tcp-reset' } },
    ]);
    const c = p.a.tcp.connect(22, '10.0.0.2');
    let err: SystemError | null = null;
    c.on('error', (e) => (err = e as SystemError));
    await runFor(p.time, 2000, { stepMs: 10, until: () => err !== null });
    expect(err).not.toBeNull();
    expect(err!.code).toBe('ECONNREFUSED');
    server.close();
  });

  it('a forward chain with iifname/oifname lets pings out from r0 to r1 and their replies back, nothing else', () => {
    const { time, a, r, b } = routed();
    const icmpType = (v: number): Expr => ({ kind: 'match', left: { kind: 'payload', proto: 'icmp', field: 'type' }, op: 'eq', right: { kind: 'value', value: v } });
    r.nft.addTable('inet', 'fw');
    r.nft.addChain('inet', 'fw', 'forward', { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' });
    const out = r.nft.addRule('inet', 'fw', 'forward', [
      { kind: 'ifname', dir: 'iifname', op: 'eq', names: ['r0'] },
      { kind: 'ifname', dir: 'oifname', op: 'eq', names: ['r*'] },
      icmpType(8),
      { kind: 'counter' },
      { kind: 'verdict', verdict: { kind: 'accept' } },
    ]);
    r.nft.addRule('inet', 'fw', 'forward', [{ kind: 'ifname', dir: 'oifname', op: 'eq', names: ['r0'] }, icmpType(0), { kind: 'verdict', verdict: { kind: 'accept' } }]);
    expect(simPing(time, a, ip('10.0.2.2'), 2).replies.length).toBe(2);
    expect(r.nft.ruleCounter('inet', 'fw', out)?.packets).toBe(2);
    expect(simPing(time, b, ip('10.0.1.2'), 2, { ident: 5 }).replies.length).toBe(0);
    expect(r.mib.IpForwDatagrams).toBe(4);
  });
});
