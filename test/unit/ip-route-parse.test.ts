import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/control/commands.js';
import { ip } from '../helpers/sim.js';

const p = (s: string) => parseCommand(s.split(' '));
const err = (s: string) => {
  try {
    p(s);
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
};

describe('ip route and ip rule grammar', () => {
  it('takes types, tables by name or number, mtu, proto and multipath next hops', () => {
    expect(p('ip route add blackhole 10.66.0.0/16')).toEqual({ kind: 'route-add', type: 'blackhole', dst: ip('10.66.0.0'), prefixLen: 16 });
    expect(p('ip route add throw 10.66.0.0/16 table 5')).toEqual({ kind: 'route-add', type: 'throw', dst: ip('10.66.0.0'), prefixLen: 16, table: 5 });
    // The grammar takes every type iproute2 names; the kernel's refusals come later.
    expect(p('ip route add nat 10.66.0.1')).toEqual({ kind: 'route-add', type: 'nat', dst: ip('10.66.0.1'), prefixLen: 32 });
    expect(p('ip route add broadcast 10.66.0.255')).toEqual({ kind: 'route-add', type: 'broadcast', dst: ip('10.66.0.255'), prefixLen: 32 });
    expect(p('ip route add to unreachable 10.67.0.0/16 metric 7 table main')).toMatchObject({ type: 'unreachable', metric: 7, table: 254 });
    expect(p('ip r replace 10.70.0.0/16 via 10.0.0.1 mtu lock 1400 proto static table 100')).toMatchObject({
      kind: 'route-replace',
      mtu: 1400,
      proto: 'static',
      table: 100,
    });
    expect(p('ip route add 10.80.0.0/16 nexthop via 10.0.0.1 dev e0 weight 2 nexthop via 10.1.0.1')).toMatchObject({
      nexthops: [{ via: ip('10.0.0.1'), dev: 'e0', weight: 2 }, { via: ip('10.1.0.1') }],
    });
    expect(p('ip r s table all')).toEqual({ kind: 'route-show', json: false, table: 'all' });
    expect(p('ip -j r l table default dev e0')).toEqual({ kind: 'route-show', json: true, table: 253, dev: 'e0' });
    expect(p('ip route flush table 100')).toEqual({ kind: 'route-flush', table: 100 });
    expect(p('ip r g 10.9.0.5 from 10.1.0.2 iif e1 mark 0x7 tos 0x10')).toEqual({
      kind: 'route-get',
      dst: ip('10.9.0.5'),
      json: false,
      from: ip('10.1.0.2'),
      iif: 'e1',
      mark: 7,
      tos: 0x10,
    });
  });

  it('takes rule selectors and actions, with iproute2 defaults', () => {
    expect(p('ip ru')).toEqual({ kind: 'rule-show', json: false });
    expect(p('ip -j rule list')).toEqual({ kind: 'rule-show', json: true });
    expect(p('ip rule add from 10.1.0.0/16 lookup 100')).toEqual({
      kind: 'rule-add',
      rule: { src: ip('10.1.0.0'), srcLen: 16, table: 100, action: 'lookup' },
    });
    expect(p('ip rule add not to 10.2.0.0/24 fwmark 3/0xff iif e0 oif e1 tos 8 pref 50 table main')).toEqual({
      kind: 'rule-add',
      rule: { invert: true, dst: ip('10.2.0.0'), dstLen: 24, fwmark: 3, fwmask: 0xff, iif: 'e0', oif: 'e1', tos: 8, pref: 50, table: 254, action: 'lookup' },
    });
    // No table and no type: main, as iprule_modify does.
    expect(p('ip rule add from 10.5.0.1')).toMatchObject({ rule: { table: 254, action: 'lookup' } });
    expect(p('ip rule add from all type prohibit priority 9')).toEqual({ kind: 'rule-add', rule: { src: 0, srcLen: 0, action: 'prohibit', pref: 9 } });
    expect(p('ip rule del pref 100')).toEqual({ kind: 'rule-del', rule: { pref: 100 } });
    expect(p('ip rule flush')).toEqual({ kind: 'rule-flush' });
  });

  it('names what it does not take', () => {
    expect(err('ip route add 10.0.0.1/24 via 10.0.0.9')).toBe('word "10.0.0.1/24": Error: Invalid prefix for given prefix length.');
    expect(err('ip route add 10.0.0.0/8 via 10.0.0.1 table nosuch')).toContain('"table" value is invalid');
    expect(err('ip route add 10.0.0.0/8 nexthop weight 1')).toContain('expected via GATEWAY or dev NAME in nexthop');
    expect(err('ip route add 10.0.0.0/8 realm 3')).toContain('unknown or unsupported word');
    expect(err('ip route flush')).toContain('"ip route flush" requires arguments.');
    expect(err('ip rule add fwmark x lookup 5')).toContain('"fwmark" value is invalid');
    expect(err('ip rule add from 10.0.0.0/8 goto 5')).toContain('unsupported rule keyword');
  });
});
