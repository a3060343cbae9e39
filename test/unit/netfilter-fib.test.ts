import { describe, expect, it } from 'vitest';
import { configure } from '../../src/library.js';
import { runNft, stackNftIo } from '../../src/control/nft.js';
import type { Stack } from '../../src/stack.js';
import { simLink } from '../../src/link/sim.js';
import { ip, simPair } from '../helpers/sim.js';

/**
 * fib expressions on a stack (nft_fib_ipv4.c): the lookups they make through the
 * stack's rules and tables, on two hosts on a sim wire (a 10.0.0.1, b 10.0.0.2).
 */

function nft(s: Stack, text: string): void {
  const r = runNft(s.nft, ['-f', '-'], stackNftIo(s, text));
  expect(r.stderr).toBe('');
}

function counters(s: Stack): number[] {
  const r = runNft(s.nft, ['list', 'ruleset'], stackNftIo(s));
  return [...r.stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
}

const data = new Uint8Array(16);

/** A second device on a, x0 with 10.9.0.1/24 (its wire's other end, y0, left unattached). */
function addX0(a: Stack): void {
  const [dx] = simLink(a.time, { names: ['x0', 'y0'] });
  const ix = a.addInterface('x0', dx, {});
  a.setUp(ix, true);
  a.addAddress(ix, ip('10.9.0.1'), 24);
}

describe('fib', () => {
  it('saddr . iif oif missing: a source routed back through another way, or not at all, is dropped; our own looped datagrams pass', () => {
    const { time, a, b } = simPair();
    nft(a, `table ip t {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		fib saddr . iif oif missing counter drop
		counter
	}
}
`);
    const got: number[] = [];
    const stop = a.icmp.listenEcho(7, (r) => got.push(r.seq));
    const stopB = b.icmp.listenEcho(7, (r) => got.push(100 + r.seq));
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 1, data);
    // A source a routes nowhere, and a's own address from outside.
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 2, data, { src: ip('192.0.2.9') });
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 3, data, { src: ip('10.0.0.1') });
    // a to itself: the datagram loops back and is taken to be from its device (nft_fib_is_loopback).
    a.icmp.sendEcho(ip('10.0.0.1'), 7, 4, data);
    time.advance(1000);
    stop();
    stopB();
    expect(got.sort((x, y) => x - y)).toEqual([4, 101]);
    // Dropped: the two spoofed requests. Passed: b's request and a's request and reply to itself.
    expect(counters(a)).toEqual([2, 3]);
  });

  it('mark: the lookup takes the packet mark to the fwmark rules only with the mark flag', () => {
    const { time, a, b } = simPair();
    configure(a, ['ip route add 192.0.2.0/24 dev a0 table 100', 'ip rule add fwmark 0x5 table 100']);
    nft(a, `table ip t {
	chain setmark {
		type filter hook prerouting priority mangle - 10; policy accept;
		meta mark set 0x5
	}

	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		fib saddr . mark . iif oif exists counter
		fib saddr . iif oif exists counter
		fib saddr . mark oif "a0" counter
		fib saddr oif 0 counter
	}
}
`);
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 1, data, { src: ip('192.0.2.9') });
    time.advance(100);
    expect(counters(a)).toEqual([1, 0, 1, 1]);
  });

  it('type: what table local says an address is, through the device when asked', () => {
    const { time, a, ia } = simPair();
    const f = a.ip.fib;
    expect(f.addrType(ip('10.0.0.1'), null)).toBe(2); // local
    expect(f.addrType(ip('10.0.0.255'), null)).toBe(3); // broadcast (table local's route)
    expect(f.addrType(ip('255.255.255.255'), null)).toBe(3);
    expect(f.addrType(ip('0.1.2.3'), null)).toBe(3);
    expect(f.addrType(ip('224.0.0.5'), null)).toBe(5);
    expect(f.addrType(ip('10.0.0.2'), null)).toBe(1);
    expect(f.addrType(ip('10.0.0.1'), ia)).toBe(2);
    addX0(a);
    configure(a, ['ip route add blackhole 10.8.0.0/16 table local']);
    // Not through a0, so unicast as seen from a0; a reject route in table local answers unicast.
    expect(f.addrType(ip('10.9.0.1'), ia)).toBe(1);
    expect(f.addrType(ip('10.9.0.1'), null)).toBe(2);
    expect(f.addrType(ip('10.8.1.1'), null)).toBe(1);
  });

  it('daddr type local on input, daddr oif on prerouting: our addresses have no device to leave by', () => {
    const { time, a, b } = simPair();
    nft(a, `table ip t {
	chain pre {
		type filter hook prerouting priority filter; policy accept;
		fib daddr oif missing counter
		fib daddr oifname "a0" counter
	}

	chain inp {
		type filter hook input priority filter; policy accept;
		fib daddr type local counter
		fib daddr . iif type local counter
		fib daddr type broadcast counter
	}
}
`);
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 1, data);
    time.advance(100);
    expect(counters(a)).toEqual([1, 0, 1, 1, 0]);
  });

  it('iif: a route back with several paths passes when one of them is through the device it came in on', () => {
    const { time, a, b } = simPair();
    addX0(a);
    configure(a, [
      'ip route add 192.0.2.0/24 nexthop via 10.9.0.2 dev x0 nexthop via 10.0.0.2 dev a0',
      'ip route add 198.51.100.0/24 via 10.9.0.2 dev x0',
    ]);
    nft(a, `table ip t {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		fib saddr . iif oif missing counter drop
		fib saddr . iif oifname "a0" counter
		fib saddr oifname "x0" counter
	}
}
`);
    // Sources the multipath hash spreads over both paths: all pass, and without
    // iif the answer is the route's first path (as the kernel gives it).
    for (let h = 1; h <= 8; h++) b.icmp.sendEcho(ip('10.0.0.1'), 7, h, data, { src: ip(`192.0.2.${h}`) });
    b.icmp.sendEcho(ip('10.0.0.1'), 7, 9, data, { src: ip('198.51.100.9') });
    time.advance(100);
    expect(counters(a)).toEqual([1, 8, 8]);
  });

  it('saddr . iif in forward: the way back is looked up as coming in through the device the datagram leaves by', () => {
    const { time, a, b } = simPair();
    addX0(a);
    // 192.0.2.0/24 is routed back through a0 only for datagrams that come in on x0.
    configure(a, ['sysctl -w net.ipv4.ip_forward=1', 'ip route add 192.0.2.0/24 via 10.0.0.2 dev a0 table 100', 'ip rule add iif x0 table 100']);
    configure(b, ['ip route add 10.9.0.0/24 via 10.0.0.1']);
    nft(a, `table ip t {
	chain forw {
		type filter hook forward priority filter; policy accept;
		fib saddr . iif oif missing counter drop
		counter
	}

	chain pre {
		type filter hook prerouting priority filter; policy accept;
		fib saddr . iif oif missing counter
	}
}
`);
    b.icmp.sendEcho(ip('10.9.0.2'), 7, 1, data, { src: ip('192.0.2.9') });
    time.advance(100);
    // In prerouting the rule's iif is lo's: no way back, missing.
    expect(counters(a)).toEqual([0, 1, 1]);
  });
});
