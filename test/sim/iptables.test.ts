import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { runIptables, runIptablesSave, iptablesRestore } from '../../src/control/iptables.js';
import type { Stack } from '../../src/stack.js';

function ipt(s: Stack, line: string): string {
  const r = runIptables(s.nft, line.split(' ').slice(1));
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** Sends one UDP datagram from a to b:port; returns whether b's socket got it. */
function udpTo(p: ReturnType<typeof simPair>, port: number): boolean {
  const server = p.b.udp.createSocket('udp4');
  let got = false;
  server.on('message', () => (got = true));
  server.bind(port);
  p.time.advance(0);
  const client = p.a.udp.createSocket();
  client.send('hello', port, '10.0.0.2');
  p.time.advance(100);
  client.close();
  server.close();
  p.time.advance(0);
  return got;
}

describe('iptables rules on a stack', () => {
  it('a rule added with iptables drops the packets it matches and counts them', () => {
    const p = simPair();
    ipt(p.b, 'iptables -A INPUT -s 10.0.0.0/24 -p udp --dport 5000 -j DROP');
    expect(udpTo(p, 5000)).toBe(false);
    expect(udpTo(p, 5001)).toBe(true);
    // 20 bytes of IP header, 8 of UDP, 5 of data.
    expect(ipt(p.b, 'iptables -L INPUT -v -x -n')).toContain('       1       33 DROP       17   --  *      *       10.0.0.0/24          0.0.0.0/0            udp dpt:5000\n');
    expect(runIptablesSave(p.b.nft, ['-c']).stdout).toContain('[1:33] -A INPUT -s 10.0.0.0/24 -p udp -m udp --dport 5000 -j DROP\n');
    ipt(p.b, 'iptables -Z');
    expect(runIptablesSave(p.b.nft, ['-c']).stdout).toContain('[0:0] -A INPUT');
    ipt(p.b, 'iptables -D INPUT 1');
    expect(udpTo(p, 5000)).toBe(true);
  });

  it('user chains, RETURN, policies and REJECT act as in iptables', () => {
    const p = simPair();
    ipt(p.b, 'iptables -N pings');
    ipt(p.b, 'iptables -A INPUT -p icmp --icmp-type echo-request -j pings');
    ipt(p.b, 'iptables -A pings -m limit --limit 1/hour --limit-burst 2 -j RETURN');
    ipt(p.b, 'iptables -A pings -j DROP');
    expect(simPing(p.time, p.a, ip('10.0.0.2'), 4).replies.length).toBe(2);
    // Policy DROP with an accept for ICMP: pings pass, UDP does not.
    ipt(p.b, 'iptables -F pings');
    ipt(p.b, 'iptables -P INPUT DROP');
    ipt(p.b, 'iptables -I INPUT -p icmp -j ACCEPT');
    expect(simPing(p.time, p.a, ip('10.0.0.2'), 1, { ident: 9 }).replies.length).toBe(1);
    expect(udpTo(p, 7000)).toBe(false);
    ipt(p.b, 'iptables -P INPUT ACCEPT');
    expect(udpTo(p, 7000)).toBe(true);
  });

  it('MARK in mangle is seen by -m mark in filter; a restore replaces the table in one step', () => {
    const p = simPair();
    ipt(p.b, 'iptables -t mangle -A PREROUTING -p udp --dport 6000 -j MARK --set-mark 0x7');
    ipt(p.b, 'iptables -A INPUT -m mark --mark 0x7 -j DROP');
    expect(udpTo(p, 6000)).toBe(false);
    expect(udpTo(p, 6001)).toBe(true);
    const r = iptablesRestore(p.b.nft, '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 6001 -j DROP\nCOMMIT\n', { noflush: false, counters: false, test: false });
    expect(r).toEqual({ stdout: '', stderr: '', code: 0 });
    expect(udpTo(p, 6000)).toBe(true);
    expect(udpTo(p, 6001)).toBe(false);
  });
});
