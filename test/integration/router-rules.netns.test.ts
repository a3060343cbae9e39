import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterPair, type Probe, type ProbeResult } from '../helpers/router-pair.js';

// The stack as a router and a kernel router namespace side by side, with the
// same addresses (a = 10.231.40.0/24, b = 10.231.41.0/24), device names and
// MACs, the same ruleset loaded with `nft -f` on both, the same probes sent
// through each: what passes, what the sender hears back, the TTL and DSCP at
// the far side and the rule counters must be the kernel's.
// Needs namespaces: the container run (TAPSTACK_TEST_PEER=local) leaves this file out.

const A = 40;
const B = 41;
const a = (h: number): string => `10.231.${A}.${h}`;
const bHost = `10.231.${B}.1`;

/** One probe's outcome as a line, so a difference reads as one. */
function outcome(name: string, r: ProbeResult): string {
  const far = r.far.map((f) => `ttl ${f.ttl} tos 0x${f.tos.toString(16)} len ${f.len}${f.df ? ' DF' : ''}`).join(', ');
  const back = r.back.map((x) => (x.proto === 'icmp' ? `icmp ${x.type}/${x.code} from ${x.src}` : `${x.proto} ${x.flags ?? ''} from ${x.src}`)).join(', ');
  return `${name}: far [${far}] back [${back}]`;
}

describe('the stack applies nft rules as a kernel router does (differential)', () => {
  let pair: RouterPair;
  beforeAll(async () => {
    pair = await RouterPair.start(A, B, [a(5), a(10), a(20), a(130)]);
    // ICMP errors are rate-limited per destination (icmp_ratelimit); these probes
    // draw many in a row, so the limit is off on every host that sends them.
    await pair.both(async (v) => {
      await v.onB('sysctl -qw net.ipv4.icmp_ratelimit=0');
      await v.onA('sysctl -qw net.ipv4.icmp_ratelimit=0');
    });
    await pair.stack.ctlRun('sysctl', '-w', 'net.ipv4.icmp_ratelimit=0');
    await pair.both(async (v) => (v.name === 'kernel' ? v.onA(`ip netns exec ${pair.kr} sysctl -qw net.ipv4.icmp_ratelimit=0`) : v.onA('true')));
  }, 60_000);
  afterAll(async () => {
    await pair?.close();
  });

  it('filter rules of every kind: verdicts, answers and counters', async () => {
    const ruleset = `table ip filt {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 10.231.${A}.20-10.231.${A}.29, 10.231.${A}.128/25 }
	}

	set svc {
		type inet_service
		elements = { 7001, 7002 }
	}

	chain pre_mangle {
		type filter hook prerouting priority mangle; policy accept;
		ip saddr ${a(10)} counter meta mark set 0x0000002a
	}

	chain fwd_filter {
		type filter hook forward priority filter; policy drop;
		iifname "${pair.devB}" counter accept
		ip saddr @blocked counter drop
		meta mark 0x0000002a tcp dport 7100 counter accept
		ip saddr 10.231.${A}.0/28 ip daddr ${bHost} tcp dport 7000 counter accept
		tcp dport { 7010-7019, 7030 } counter accept
		udp dport 7040-7049 counter accept
		tcp dport @svc counter reject with tcp reset
		tcp flags & (syn | ack) == syn tcp dport 7050 counter accept
		tcp flags syn tcp dport 7051 counter accept
		icmp type echo-request ip length > 200 counter drop
		ip ttl < 10 udp dport 7060 counter accept
		ip dscp cs1 udp dport 7061 counter accept
		udp dport 7062 counter reject with icmp type host-prohibited
		udp dport 7063 counter reject with icmp type admin-prohibited
		udp dport 7064 counter reject
		udp dport 7065 counter reject with icmp type net-unreachable
		oifname "trtb*" udp dport 7070 counter jump sub
		udp dport vmap { 7080 : accept, 7081 : drop, 7082 : jump sub }
		udp dport 7090 limit rate 1/minute burst 3 packets counter accept
		udp dport 7091 limit rate over 1/minute burst 2 packets counter drop
		udp dport 7091 counter accept
		ip saddr != 10.231.${A}.0/24 counter drop
		icmp type echo-request counter accept
	}

	chain sub {
		ip ttl 40 counter return
		udp dport 7070 counter goto sub2
		counter accept
	}

	chain sub2 {
		ip length 100 counter drop
		counter accept
	}
}
`;
    await pair.load(ruleset);
    let port = 40000;
    const tcp = (src: string, dport: number, more: Partial<Probe> = {}): Probe => ({ src, dst: bHost, proto: 'tcp', sport: port++, dport, flags: 'S', ...more });
    const udp = (src: string, dport: number, more: Partial<Probe> = {}): Probe => ({ src, dst: bHost, proto: 'udp', sport: port++, dport, ...more });
    const icmp = (more: Partial<Probe> = {}): Probe => ({ src: a(1), dst: bHost, proto: 'icmp', ...more });
    const probes: [string, Probe][] = [
      ['tcp 7000 from .1', tcp(a(1), 7000)],
      ['tcp 7000 from .5', tcp(a(5), 7000)],
      ['tcp 7000 from .20 (blocked range)', tcp(a(20), 7000)],
      ['tcp 7000 from .130 (blocked prefix)', tcp(a(130), 7000)],
      ['tcp 7100 from .10 (marked)', tcp(a(10), 7100)],
      ['tcp 7100 from .1 (not marked)', tcp(a(1), 7100)],
      ['tcp 7015 (set range)', tcp(a(1), 7015)],
      ['tcp 7030 (set element)', tcp(a(1), 7030)],
      ['tcp 7020 (not in set)', tcp(a(1), 7020)],
      ['udp 7040', udp(a(1), 7040)],
      ['udp 7049', udp(a(1), 7049)],
      ['udp 7050 (not in range)', udp(a(1), 7050)],
      ['tcp 7001 syn (reset)', tcp(a(1), 7001)],
      ['tcp 7002 ack (reset)', tcp(a(1), 7002, { flags: 'A' })],
      ['tcp 7050 syn', tcp(a(1), 7050)],
      ['tcp 7050 syn+ack', tcp(a(1), 7050, { flags: 'SA' })],
      ['tcp 7051 syn', tcp(a(1), 7051)],
      ['tcp 7051 syn+ack', tcp(a(1), 7051, { flags: 'SA' })],
      ['tcp 7051 ack', tcp(a(1), 7051, { flags: 'A' })],
      ['echo 300 bytes', icmp({ len: 300 })],
      ['echo 100 bytes', icmp({ len: 100 })],
      ['udp 7060 ttl 5', udp(a(1), 7060, { ttl: 5 })],
      ['udp 7060 ttl 64', udp(a(1), 7060)],
      ['udp 7061 dscp cs1', udp(a(1), 7061, { tos: 0x20 })],
      ['udp 7061 dscp 0', udp(a(1), 7061)],
      ['udp 7062 host-prohibited', udp(a(1), 7062)],
      ['udp 7063 admin-prohibited', udp(a(1), 7063)],
      ['udp 7064 reject', udp(a(1), 7064)],
      ['udp 7065 net-unreachable', udp(a(1), 7065)],
      ['udp 7062 bad checksum', udp(a(1), 7062, { badChecksum: true })],
      ['tcp 7001 bad checksum', tcp(a(1), 7001, { badChecksum: true })],
      ['udp 7070 ttl 41 (return)', udp(a(1), 7070, { ttl: 41 })],
      ['udp 7070 len 100 (goto, drop)', udp(a(1), 7070, { len: 100 })],
      ['udp 7070 len 60 (goto, accept)', udp(a(1), 7070, { len: 60 })],
      ['udp 7080 vmap accept', udp(a(1), 7080)],
      ['udp 7081 vmap drop', udp(a(1), 7081)],
      ['udp 7082 vmap jump', udp(a(1), 7082)],
      ...[1, 2, 3, 4, 5].map((i): [string, Probe] => [`udp 7090 limit #${i}`, udp(a(1), 7090)]),
      ...[1, 2, 3, 4].map((i): [string, Probe] => [`udp 7091 limit over #${i}`, udp(a(1), 7091)]),
      ['icmp timestamp (policy drop)', icmp({ icmpType: 13 })],
      ['tcp 7000 ttl 1 (time exceeded)', tcp(a(1), 7000, { ttl: 1 })],
      ['tcp 7000 DF 1500', tcp(a(1), 7000, { df: true, len: 1500 })],
    ];
    const [st, k] = await pair.probe(probes.map((p) => p[1]));
    const kernel = probes.map((p, i) => outcome(p[0], k[i]));
    const stack = probes.map((p, i) => outcome(p[0], st[i]));
    expect(stack).toEqual(kernel);
    // The kernel's answers are what the rules say (so the comparison is not of two silences).
    const delivered = k.filter((r) => r.far.length > 0).length;
    expect(delivered).toBeGreaterThan(15);
    expect(k[12].back).toEqual([{ src: bHost, proto: 'tcp', flags: 'RA' }]);
    expect(k[25].back).toEqual([{ src: a(2), proto: 'icmp', type: 3, code: 10 }]);
    const [cs, ck] = await pair.counters();
    expect(cs).toEqual(ck);
    expect(ck.some((n) => n > 0)).toBe(true);
  }, 60_000);
});
