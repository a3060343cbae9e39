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
    const [dx] = simLink(time, { names: ['x0', 'y0'] });
    const ix = a.addInterface('x0', dx, {});
    a.setUp(ix, true);
    a.addAddress(ix, ip('10.9.0.1'), 24);
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
});
