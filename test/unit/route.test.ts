import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { ip } from '../helpers/sim.js';

function host() {
  const time = new VirtualTime();
  const s = new Stack({ time, seed: 1 });
  const [d0] = simLink(time, { names: ['e0', 'x'] });
  const [d1] = simLink(time, { names: ['e1', 'y'] });
  const e0 = s.addInterface('e0', d0);
  const e1 = s.addInterface('e1', d1);
  s.setUp(e0, true);
  s.setUp(e1, true);
  s.addAddress(e0, ip('10.0.0.2'), 24);
  s.addAddress(e1, ip('10.1.0.2'), 16);
  return { s, e0, e1 };
}

describe('routing table', () => {
  it('adds connected routes with addresses and picks the longest prefix', () => {
    const { s, e0, e1 } = host();
    s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.0.1') });
    s.addRoute({ dst: ip('10.1.5.0'), prefixLen: 24, gateway: ip('10.0.0.254') });
    const r = (a: string) => s.ip.routes.lookup(ip(a));
    expect(r('10.0.0.9')?.dev).toBe(e0);
    expect(r('10.0.0.9')?.gateway).toBe(0);
    expect(r('10.1.9.9')?.dev).toBe(e1);
    expect(r('10.1.5.7')?.gateway).toBe(ip('10.0.0.254'));
    expect(r('10.1.5.7')?.dev).toBe(e0);
    expect(r('8.8.8.8')?.gateway).toBe(ip('10.0.0.1'));
  });

  it('refuses a gateway that is not on a connected subnet, and duplicate routes', () => {
    const { s } = host();
    expect(() => s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('192.0.2.1') })).toThrow('Nexthop has invalid gateway');
    s.addRoute({ dst: ip('172.16.0.0'), prefixLen: 12, gateway: ip('10.0.0.1') });
    expect(() => s.addRoute({ dst: ip('172.16.0.0'), prefixLen: 12, gateway: ip('10.0.0.1') })).toThrow('File exists');
    s.addRoute({ dst: ip('172.16.0.0'), prefixLen: 12, gateway: ip('10.0.0.3'), replace: true });
    expect(s.ip.routes.lookup(ip('172.20.0.1'))?.gateway).toBe(ip('10.0.0.3'));
  });

  it('prefers the lower metric among equal prefixes', () => {
    const { s } = host();
    s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.0.1'), metric: 100 });
    s.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.1.0.1'), metric: 10 });
    expect(s.ip.routes.lookup(ip('1.2.3.4'))?.gateway).toBe(ip('10.1.0.1'));
    s.ip.routes.del({ dst: 0, prefixLen: 0, metric: 10 });
    expect(s.ip.routes.lookup(ip('1.2.3.4'))?.gateway).toBe(ip('10.0.0.1'));
  });

  it('skips routes through a down interface and forgets routes of a deleted address', () => {
    const { s, e1 } = host();
    expect(s.ip.routes.lookup(ip('10.1.2.3'))?.dev).toBe(e1);
    s.setUp(e1, false);
    expect(s.ip.routes.lookup(ip('10.1.2.3'))).toBeNull();
    s.setUp(e1, true);
    s.delAddress(e1, ip('10.1.0.2'), 16);
    expect(s.ip.routes.lookup(ip('10.1.2.3'))).toBeNull();
    expect(s.ip.isLocal(ip('10.1.0.2'))).toBe(false);
  });
});

describe('addresses and their connected routes', () => {
  it('keeps the subnet route while another address on the subnet remains', () => {
    const { s, e0 } = host();
    s.addAddress(e0, ip('10.0.0.3'), 24);
    s.delAddress(e0, ip('10.0.0.3'), 24);
    expect(s.ip.routes.lookup(ip('10.0.0.9'))?.src).toBe(ip('10.0.0.2'));
    // Deleting the first one hands the route to the one that is left.
    s.addAddress(e0, ip('10.0.0.4'), 24);
    s.delAddress(e0, ip('10.0.0.2'), 24);
    const r = s.ip.routes.lookup(ip('10.0.0.9'));
    expect(r?.dev).toBe(e0);
    expect(r?.src).toBe(ip('10.0.0.4'));
    s.delAddress(e0, ip('10.0.0.4'), 24);
    expect(s.ip.routes.lookup(ip('10.0.0.9'))).toBeNull();
  });
});
