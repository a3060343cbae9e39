import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import type { SystemError } from '../../src/errors.js';
import type { Expr } from '../../src/netfilter/ast.js';

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
});
