import { describe, expect, it } from 'vitest';
import { VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import { RulesetError } from '../../src/netfilter/ruleset.js';
import { PRIORITY } from '../../src/netfilter/ast.js';
import { echoRequest } from '../helpers/frames.js';
import {
  accept,
  base,
  cmp,
  cont,
  counter,
  drop,
  eq,
  f,
  goto,
  jump,
  ret,
  runInput,
  tcpDatagram,
  testRuleset,
  udpDatagram,
} from '../helpers/nft.js';

const syn = tcpDatagram('10.0.0.1', '10.0.0.2', 40000, 22);
const udp53 = udpDatagram('10.0.0.1', '10.0.0.2', 5353, 53);

const mark = (v: number) => ({ kind: 'meta-set' as const, key: 'mark' as const, value: v });

describe('netfilter verdicts', () => {
  it('policy applies at the end of a base chain', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input', 0, 'drop'));
    rs.addRule('ip', 't', 'in', [eq(f.tcp('dport'), 22), accept]);
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
  });

  it('jump returns to the next rule; goto does not; return and continue', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input', 0, 'drop'));
    rs.addChain('ip', 't', 'sub');
    rs.addChain('ip', 't', 'gone');
    // sub: mark 1, return for TCP, else mark 2.
    rs.addRule('ip', 't', 'sub', [mark(1)]);
    rs.addRule('ip', 't', 'sub', [eq(f.ip('protocol'), 6), ret]);
    rs.addRule('ip', 't', 'sub', [mark(2), cont, mark(3)]);
    rs.addRule('ip', 't', 'in', [jump('sub')]);
    rs.addRule('ip', 't', 'in', [eq(f.meta('mark'), 1), accept]);
    rs.addRule('ip', 't', 'in', [eq(f.meta('mark'), 3), goto('gone')]);
    rs.addRule('ip', 't', 'in', [accept]);
    // TCP: mark 1, back in `in`, accepted by rule 2.
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
    // UDP: mark 1, 2; `continue` goes on in the same rule: mark 3; back, goto gone (empty):
    // the end of a goto'd chain with nothing on the stack is the base chain's policy.
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
  });

  it('jump to an unknown chain, a base chain, or a loop fails the commit', () => {
    const { rs } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addChain('ip', 't', 'a');
    rs.addChain('ip', 't', 'b');
    expect(() => rs.addRule('ip', 't', 'in', [jump('nope')])).toThrow(RulesetError);
    expect(() => rs.addRule('ip', 't', 'a', [jump('in')])).toThrow(/base chain/);
    rs.addRule('ip', 't', 'a', [jump('b')]);
    expect(() => rs.addRule('ip', 't', 'b', [goto('a')])).toThrow(/itself/);
  });

  it('drop in one base chain ends the packet; accept only ends its own chain', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 'a');
    rs.addTable('inet', 'b');
    rs.addChain('ip', 'a', 'first', base('input', PRIORITY.mangle));
    rs.addChain('inet', 'b', 'second', base('input', PRIORITY.filter));
    rs.addChain('ip', 'a', 'third', base('input', PRIORITY.security));
    rs.addRule('ip', 'a', 'first', [counter, accept]);
    rs.addRule('inet', 'b', 'second', [counter, eq(f.ip('protocol'), 17), drop]);
    rs.addRule('ip', 'a', 'third', [counter]);
    const h1 = rs.state().tables[0].chains[0].rules[0].handle;
    const h2 = rs.state().tables[1].chains[0].rules[0].handle;
    const h3 = rs.state().tables[0].chains[1].rules[0].handle;
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
    expect(rs.ruleCounter('ip', 'a', h1)).toEqual({ packets: 2, bytes: 40 + 28 });
    expect(rs.ruleCounter('inet', 'b', h2)).toEqual({ packets: 2, bytes: 40 + 28 });
    // The UDP datagram never reached the security-priority chain.
    expect(rs.ruleCounter('ip', 'a', h3)).toEqual({ packets: 1, bytes: 40 });
  });

  it('counters survive a commit that keeps their rule; named counters', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addCounter('ip', 't', 'pings');
    rs.addChain('ip', 't', 'in', base('input'));
    const h = rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 1), counter, { kind: 'counter', name: 'pings' }]);
    const ping = echoRequest('10.0.0.1', '10.0.0.2');
    runInput(hooks, ping);
    runInput(hooks, syn);
    rs.addRule('ip', 't', 'in', [drop], { insert: true, position: h });
    rs.deleteRule('ip', 't', 'in', rs.state().tables[0].chains[0].rules[0].handle);
    runInput(hooks, ping);
    expect(rs.ruleCounter('ip', 't', h)).toEqual({ packets: 2, bytes: 2 * ping.length });
    expect(rs.counter('ip', 't', 'pings')).toMatchObject({ packets: 2, bytes: 2 * ping.length });
    expect(rs.exprCounter('ip', 't', h, 1)).toEqual({ packets: 2, bytes: 2 * ping.length });
    expect(rs.exprCounter('ip', 't', h, 0)).toBeNull();
    expect(() =>
      rs.edit((s) => {
        s.tables[0].chains[0].rules.push({ handle: h, exprs: [] });
      }),
    ).toThrow(/used twice/);
    rs.resetCounters();
    expect(rs.ruleCounter('ip', 't', h)).toEqual({ packets: 0, bytes: 0 });
  });

  it('a failing commit leaves the old ruleset in force', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 17), drop]);
    const gen = rs.generation;
    const before = rs.state();
    expect(() =>
      rs.edit((s) => {
        s.tables[0].chains[0].rules = [];
        s.tables[0].chains[0].rules.push({ handle: 0, exprs: [cmp(f.ip('saddr'), 'eq', { kind: 'setref', name: 'missing' }), drop] });
      }),
    ).toThrow(/no set missing/);
    expect(rs.generation).toBe(gen);
    expect(rs.state()).toEqual(before);
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
    // Values that do not fit their field fail too.
    expect(() => rs.addRule('ip', 't', 'in', [eq(f.tcp('dport'), 70000)])).toThrow(/16-bit/);
    expect(() => rs.addRule('ip', 't', 'in', [cmp(f.tcp('dport'), 'eq', { kind: 'prefix', addr: 0, len: 8 })])).toThrow(/prefix/);
    // A chain type on a hook it cannot take fails too.
    expect(() => rs.addChain('ip', 't', 'r', { type: 'route', hook: 'input', priority: 0, policy: 'accept' })).toThrow(/cannot hook/);
    expect(hooks.input.empty).toBe(false);
  });

  it('deleting the table unhooks its chains; flush keeps chains', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input', 0, 'drop'));
    rs.addChain('ip', 't', 'out', base('output'));
    expect(hooks.input.empty).toBe(false);
    expect(hooks.output.empty).toBe(false);
    rs.flushTable('ip', 't');
    expect(runInput(hooks, syn)).toBe(VERDICT_DROP);
    rs.deleteTable('ip', 't');
    expect(hooks.input.empty).toBe(true);
    expect(hooks.output.empty).toBe(true);
    expect(runInput(hooks, syn)).toBe(VERDICT_ACCEPT);
  });

  it('replace and position rules by handle', () => {
    const { rs, hooks } = testRuleset();
    rs.addTable('ip', 't');
    rs.addChain('ip', 't', 'in', base('input'));
    const a = rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 17), drop]);
    rs.addRule('ip', 't', 'in', [eq(f.ip('protocol'), 17), accept], { insert: true });
    expect(runInput(hooks, udp53)).toBe(VERDICT_ACCEPT);
    const rules = rs.state().tables[0].chains[0].rules;
    expect(rules[1].handle).toBe(a);
    rs.replaceRule('ip', 't', 'in', rules[0].handle, [counter]);
    expect(runInput(hooks, udp53)).toBe(VERDICT_DROP);
  });
});
