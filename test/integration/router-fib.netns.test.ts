import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterPair, type Probe, type ProbeResult } from '../helpers/router-pair.js';

// fib expressions and a typeof set on the stack as a router and on a kernel router
// namespace side by side (a = 10.233.11.0/24, b = 10.233.12.0/24): reverse-path
// filtering the nft way (`fib saddr . iif oif missing drop`), `fib daddr type local`
// on input, the same probes through each; what passes, what comes back and the
// rule counters must be the kernel's. The routers' own rp_filter is off, so the
// rules alone decide.
// Needs namespaces: the container run (TAPSTACK_TEST_PEER=local) leaves this file out.

const NET = '10.233';
const A = 11;
const B = 12;
const a = (h: number): string => `${NET}.${A}.${h}`;
const b = (h: number): string => `${NET}.${B}.${h}`;

function outcome(name: string, r: ProbeResult): string {
  const back = r.back.map((x) => (x.proto === 'icmp' ? `icmp ${x.type}/${x.code} from ${x.src}` : `${x.proto} ${x.flags ?? ''} from ${x.src}`)).join(', ');
  return `${name}: far ${r.far.length} back [${back}]`;
}

describe('fib and typeof on the stack as on a kernel router (differential)', () => {
  let pair: RouterPair;
  beforeAll(async () => {
    pair = await RouterPair.start(A, B, [a(5)], 'tsrt', NET);
    const rp = ['all', 'default', pair.devA, pair.devB].map((d) => `net.ipv4.conf.${d}.rp_filter=0`);
    await pair.both((v) => (v.name === 'kernel' ? v.onA(`ip netns exec ${pair.kr} sysctl -qw ${rp.join(' ')}`) : pair.stack.ctlRun('sysctl', '-w', 'net.ipv4.conf.all.rp_filter=0')));
  }, 60_000);
  afterAll(async () => {
    await pair?.close();
  });

  it('reverse-path filtering, local destinations and a typeof set', async () => {
    await pair.load(`table ip rpf {
	set trusted {
		typeof ip saddr . udp dport
		elements = { ${a(5)} . 7301 }
	}

	chain pre {
		type filter hook prerouting priority raw; policy accept;
		fib saddr . iif oif missing counter drop
		fib daddr type != local fib daddr oif missing counter drop
		fib daddr oifname "${pair.devB}" counter
	}

	chain inp {
		type filter hook input priority filter; policy accept;
		fib daddr type local udp dport 7310 counter drop
		fib daddr . iif type local counter
	}

	chain forw {
		type filter hook forward priority filter; policy accept;
		ip saddr . udp dport @trusted counter accept
		udp dport 7301 counter drop
		fib saddr . iif oif exists fib daddr type unicast counter
	}
}
`);
    let port = 45000;
    const udp = (src: string, dst: string, dport: number): Probe => ({ src, dst, proto: 'udp', sport: port++, dport });
    const probes: [string, Probe][] = [
      ['from a.1 to b', udp(a(1), b(1), 7000)],
      ['from a.5 (a second address of a) to b', udp(a(5), b(1), 7000)],
      ['spoofed from b.7 on a', udp(b(7), b(1), 7000)],
      ['spoofed from an unrouted source', udp('192.0.2.7', b(1), 7000)],
      ["spoofed from the router's own address", udp(a(2), b(1), 7000)],
      ['from a.5 to the trusted port', udp(a(5), b(1), 7301)],
      ['from a.1 to the trusted port', udp(a(1), b(1), 7301)],
      ['to an unrouted destination', udp(a(1), '198.51.100.9', 7000)],
      ['to the router, dropped in input', udp(a(1), a(2), 7310)],
      ['to the router, port unreachable', udp(a(1), a(2), 7311)],
      ["to the router's address on b", udp(a(1), b(2), 7311)],
    ];
    const [st, k] = await pair.probe(probes.map((p) => p[1]));
    const stack = probes.map((p, i) => outcome(p[0], st[i]));
    const kernel = probes.map((p, i) => outcome(p[0], k[i]));
    expect(stack).toEqual(kernel);
    // What the kernel did is what these rules mean.
    expect(k.map((r) => r.far.length)).toEqual([1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(k[9].back).toEqual([{ src: a(2), proto: 'icmp', type: 3, code: 3 }]);
    expect(k[7].back).toEqual([]);
    const [cs, ck] = await pair.counters();
    expect(cs).toEqual(ck);
    // The three spoofed sources; the unrouted destination; the four datagrams to b past
    // those (oifname); the input drop; a.2 local on its own device (b.2 is not, on a's);
    // the trusted one; the other 7301; and the two to b with b's three port unreachables.
    expect(ck).toEqual([3, 1, 4, 1, 1, 1, 1, 5]);
    const [ls, lk] = await pair.both((v) => v.nft('list ruleset'));
    expect(ls.stdout).toBe(lk.stdout);
  });
});
