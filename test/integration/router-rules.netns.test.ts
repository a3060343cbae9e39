import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shOk } from '../helpers/harness.js';
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

	set ports {
		type inet_service
		flags interval
		elements = { 7110-7119, 7130 }
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
		udp dport @ports counter accept
		meta l4proto udp th dport 7095 counter accept
		ip saddr { ${a(5)}, ${a(10)} } udp dport 7096 counter accept
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
      ['udp 7115 (interval set)', udp(a(1), 7115)],
      ['udp 7130 (interval set element)', udp(a(1), 7130)],
      ['udp 7120 (not in interval set)', udp(a(1), 7120)],
      ['udp 7095 (th dport)', udp(a(1), 7095)],
      ['tcp 7095 (th dport, not udp)', tcp(a(1), 7095)],
      ['udp 7096 from .5 (anonymous address set)', udp(a(5), 7096)],
      ['udp 7096 from .1', udp(a(1), 7096)],
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
    // The listing itself, counters included, is the kernel's nft's.
    const [ls, lk] = await pair.both((v) => v.nft('list ruleset'));
    expect(ls.stdout).toBe(lk.stdout);
  }, 60_000);

  it('what ping and nc print through each: reject types, TCP reset, drop', async () => {
    await pair.load(`table ip t2 {
	chain f {
		type filter hook forward priority filter; policy accept;
		icmp type echo-request ip length 100 counter reject with icmp type host-prohibited
		icmp type echo-request ip length 101 counter reject with icmp type admin-prohibited
		icmp type echo-request ip length 102 counter reject with icmp type net-unreachable
		icmp type echo-request ip length 103 counter reject with icmp type host-unreachable
		icmp type echo-request ip length 104 counter reject with icmp type port-unreachable
		icmp type echo-request ip length 105 counter reject with icmp type net-prohibited
		icmp type echo-request ip length 106 counter drop
		tcp dport 7201 counter reject with tcp reset
		tcp dport 7202 counter drop
		tcp dport 7203 counter reject
	}
}
`);
    const norm = (s: string): string => s.replace(/time=[\d.]+ ms/g, 'time=X ms').replace(/time \d+ms/g, 'time Xms').replace(/^rtt .*$/gm, 'rtt X');
    const pings = [72, 73, 74, 75, 76, 77, 78, 60].map((n) => `ping -n -c 1 -W 1 -s ${n} ${bHost} 2>&1; echo rc=$?`);
    // -w 2: the SYN to the dropped port is sent at 0 s and retransmitted at 1 s (TCP_TIMEOUT_INIT), never at a timeout's edge.
    const ncs = [7200, 7201, 7202, 7203].map((p) => `nc -z -v -w 2 ${bHost} ${p} 2>&1; echo rc=$?`);
    const [st, k] = await pair.both(async (v) => {
      // One connection (nc -z's) and the listener ends by itself.
      const listener = v.onB(`timeout 20 nc -l 7200 >/dev/null`, 25_000);
      await new Promise((r) => setTimeout(r, 300));
      const out: string[] = [];
      for (const c of [...pings, ...ncs]) out.push(norm((await v.onA(c, 15_000)).stdout));
      await listener;
      return out;
    });
    expect(st).toEqual(k);
    expect(k[0]).toContain(`From ${a(2)} icmp_seq=1 Destination Host Prohibited`);
    expect(k[9]).toContain('Connection refused');
    expect(k[8]).toMatch(/succeeded/);
    const [ls, lk] = await pair.both((v) => v.nft('list ruleset'));
    expect(ls.stdout).toBe(lk.stdout);
  }, 60_000);

  it('DSCP, TTL and mark set in prerouting, forward and postrouting reach the far side as the kernel sends them', async () => {
    await pair.load(`table ip m {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		udp dport 7301 counter ip dscp set af21
		udp dport 7302 counter ip ttl set 33
		udp dport 7303 counter meta mark set 0x00000007
	}

	chain f {
		type filter hook forward priority filter; policy accept;
		meta mark 0x00000007 counter ip dscp set cs5
		udp dport 7304 counter ip ttl set 2
	}

	chain post {
		type filter hook postrouting priority srcnat; policy accept;
		udp dport 7305 counter ip dscp set ef
	}
}
`);
    let port = 41000;
    const u = (dport: number, more: Partial<Probe> = {}): Probe => ({ src: a(1), dst: bHost, proto: 'udp', sport: port++, dport, ...more });
    const probes: [string, Probe][] = [
      ['7301 tos 0', u(7301)],
      ['7301 ECN 3 kept', u(7301, { tos: 0x03 })],
      ['7302 ttl 64', u(7302)],
      ['7302 ttl 1 (set before the check)', u(7302, { ttl: 1 })],
      ['7303 marked', u(7303, { tos: 0xb8 })],
      ['7304', u(7304)],
      ['7305', u(7305, { tos: 0x01 })],
      ['7306 untouched', u(7306, { tos: 0x28, ttl: 9 })],
    ];
    const [st, k] = await pair.probe(probes.map((p) => p[1]));
    expect(probes.map((p, i) => outcome(p[0], st[i]))).toEqual(probes.map((p, i) => outcome(p[0], k[i])));
    expect(k[0].far).toMatchObject([{ tos: 0x48 }]);
    const [ls, lk] = await pair.both((v) => v.nft('list ruleset'));
    expect(ls.stdout).toBe(lk.stdout);
  }, 60_000);

  it('an nft -f with an error leaves the old ruleset in force, on both', async () => {
    const good = `table ip keep {
	chain f {
		type filter hook forward priority filter; policy accept;
		udp dport 7501 counter drop
	}
}
`;
    await pair.load(good);
    const bad = `table ip keep {
	chain f {
		type filter hook forward priority filter; policy accept;
		udp dport 7502 counter drop
	}
}
add rule ip keep f udp dport 7503 counter frob
`;
    const [bs, bk] = await pair.both((v) => v.nft('-f -', bad));
    expect(bk.code).toBe(1);
    expect(bs.code).toBe(1);
    expect(bs.stderr).toMatch(/^\S+:7:\d+-\d+: Error: syntax error/);
    const [ls, lk] = await pair.both((v) => v.nft('list ruleset'));
    expect(ls.stdout).toBe(lk.stdout);
    expect(lk.stdout).not.toContain('7502');
    const [st, k] = await pair.probe([7501, 7502, 7503].map((dport, i) => ({ src: a(1), dst: bHost, proto: 'udp', sport: 42000 + i, dport })));
    expect(st).toEqual(k);
    expect(k.map((r) => r.far.length)).toEqual([0, 1, 1]);
  }, 60_000);

  it('iptables rules (iptables-nft on the kernel side) behave and print the same', async () => {
    await pair.both((v) => v.nft('flush ruleset'));
    const rules = [
      '-P FORWARD DROP',
      `-A FORWARD -i ${pair.devB} -j ACCEPT`,
      '-A FORWARD -p tcp --dport 7400 -j ACCEPT',
      '-A FORWARD -p tcp -m multiport --dports 7401,7402:7404 -j ACCEPT',
      '-A FORWARD -p udp --dport 7410 -j REJECT --reject-with icmp-host-prohibited',
      '-A FORWARD -p tcp --dport 7411 -j REJECT --reject-with tcp-reset',
      `-A FORWARD -s ${a(5)}/32 -p udp -j ACCEPT`,
      '-A FORWARD -p icmp --icmp-type echo-request -m limit --limit 1/min --limit-burst 2 -j ACCEPT',
      '-A FORWARD -p tcp --tcp-flags SYN,ACK SYN --dport 7420 -j ACCEPT',
      '-A FORWARD -p tcp --syn --dport 7421 -j ACCEPT',
      '-N sub',
      '-A FORWARD -p udp --dport 7430 -j sub',
      `-A sub -s ${a(1)}/32 -j RETURN`,
      '-A sub -j ACCEPT',
      '-t mangle -A PREROUTING -p udp --dport 7440 -j MARK --set-mark 5',
      '-A FORWARD -m mark --mark 0x5 -j ACCEPT',
      '-t mangle -A FORWARD -p udp --dport 7441 -j DSCP --set-dscp 10',
      '-A FORWARD -p udp --dport 7441 -j ACCEPT',
      `-A FORWARD ! -s ${a(0)}/24 -j DROP`,
    ];
    for (const r of rules) {
      const [rs, rk] = await pair.both((v) => v.iptables(r));
      expect(rk.code, `${r}: ${rk.stderr}`).toBe(0);
      expect(rs.code, `${r}: ${rs.stderr}`).toBe(0);
    }
    let port = 43000;
    const t = (dport: number, more: Partial<Probe> = {}): Probe => ({ src: a(1), dst: bHost, proto: 'tcp', sport: port++, dport, flags: 'S', ...more });
    const u = (dport: number, more: Partial<Probe> = {}): Probe => ({ src: a(1), dst: bHost, proto: 'udp', sport: port++, dport, ...more });
    const probes: [string, Probe][] = [
      ['tcp 7400', t(7400)],
      ['tcp 7403 multiport', t(7403)],
      ['tcp 7405', t(7405)],
      ['udp 7410 host-prohibited', u(7410)],
      ['tcp 7411 reset', t(7411)],
      ['udp from .5', u(7999, { src: a(5) })],
      ...[1, 2, 3].map((i): [string, Probe] => [`echo #${i} (limit)`, { src: a(1), dst: bHost, proto: 'icmp' }]),
      ['tcp 7420 syn', t(7420)],
      ['tcp 7420 syn+ack', t(7420, { flags: 'SA' })],
      ['tcp 7421 syn', t(7421)],
      ['tcp 7421 syn+fin', t(7421, { flags: 'SF' })],
      ['udp 7430 from .1 (return)', u(7430)],
      ['udp 7430 from .5', u(7430, { src: a(5) })],
      ['udp 7440 marked', u(7440)],
      ['udp 7441 dscp 10', u(7441)],
    ];
    const [st, k] = await pair.probe(probes.map((p) => p[1]));
    expect(probes.map((p, i) => outcome(p[0], st[i]))).toEqual(probes.map((p, i) => outcome(p[0], k[i])));
    expect(k[0].far.length).toBe(1);
    const [ss, sk] = await pair.both((v) => v.iptables('-S'));
    expect(ss.stdout).toBe(sk.stdout);
    const [ms, mk] = await pair.both((v) => v.iptables('-t mangle -S'));
    expect(ms.stdout).toBe(mk.stdout);
    const [vs, vk] = await pair.both((v) => v.iptables('-L FORWARD -n -v -x --line-numbers'));
    // The policy line too: FORWARD's policy counters (started by -P) count what the policy dropped.
    expect(vs.stdout).toBe(vk.stdout);
    expect(vk.stdout).toMatch(/^Chain FORWARD \(policy DROP [1-9]\d* packets/);
    const [sv, kv] = await pair.both((v) => v.iptables('-S FORWARD -v'));
    expect(sv.stdout).toBe(kv.stdout);
  }, 60_000);

  it('log lines: the stack writes what the kernel writes (dmesg, nf_log_all_netns=1)', async () => {
    // A prefix of this run only, so lines from elsewhere in the shared ring buffer never count.
    const P = `tsrt${pair.id}x${Date.now() % 10000}`;
    await pair.load(`table ip lg {
	chain pre_mangle {
		type filter hook prerouting priority mangle; policy accept;
		udp dport 7602 meta mark set 0x0000002a
	}

	chain fwd_filter {
		type filter hook forward priority filter; policy accept;
		iifname "${pair.devA}" log prefix "${P}F "
	}

	chain in_filter {
		type filter hook input priority filter; policy accept;
		icmp type echo-request log prefix "${P}I "
	}

	chain out_filter {
		type filter hook output priority filter; policy accept;
		icmp type { echo-reply, time-exceeded } log prefix "${P}O "
	}
}
`);
    const old = shOk('sysctl -n net.netfilter.nf_log_all_netns').trim();
    let kernelLines: string[];
    const logStart = pair.stack.daemonLog.length;
    try {
      shOk('sysctl -qw net.netfilter.nf_log_all_netns=1');
      let port = 44000;
      const probes: Probe[] = [
        { src: a(1), dst: bHost, proto: 'tcp', sport: port++, dport: 7600, flags: 'S', tos: 0x10, df: true },
        { src: a(1), dst: bHost, proto: 'udp', sport: port++, dport: 7601, len: 60 },
        { src: a(1), dst: bHost, proto: 'udp', sport: port++, dport: 7602 },
        { src: a(1), dst: bHost, proto: 'icmp', len: 84 },
        { src: a(1), dst: a(2), proto: 'icmp', ttl: 7 },
        { src: a(1), dst: bHost, proto: 'udp', sport: port++, dport: 7603, ttl: 1 },
      ];
      await pair.probe(probes, { gap: 0.05, wait: 0.5 });
      // The same through iptables' LOG target (a prefix without spaces: the words go as they are).
      await pair.both((v) => v.nft('flush ruleset'));
      for (const r of [`-A FORWARD -p tcp --dport 7610 -j LOG --log-prefix ${P}J:`, `-A INPUT -p icmp -j LOG --log-prefix ${P}K: --log-level 4`]) {
        const [rs, rk] = await pair.both((v) => v.iptables(r));
        expect([rs.code, rk.code], rs.stderr + rk.stderr).toEqual([0, 0]);
      }
      await pair.probe(
        [
          { src: a(1), dst: bHost, proto: 'tcp', sport: port++, dport: 7610, flags: 'SAPUEC', tos: 0xb9 },
          { src: a(1), dst: a(2), proto: 'icmp', len: 40 },
        ],
        { gap: 0.05, wait: 0.5 },
      );
      kernelLines = shOk('dmesg -t')
        .split('\n')
        .filter((l) => l.startsWith(P));
    } finally {
      shOk(`sysctl -qw net.netfilter.nf_log_all_netns=${old}`);
    }
    const stackLines = pair.stack.daemonLog
      .slice(logStart)
      .split('\n')
      .filter((l) => l.includes(P))
      .map((l) => (JSON.parse(l) as { nft: string }).nft);
    // What the routers send themselves (the O lines) carries each one's own IP ID;
    // everything else, MAC= included (both sides use the same MACs), must be the kernel's.
    const own = (l: string): string => (l.startsWith(`${P}O `) ? l.replace(/ ID=\d+ /, ' ID=X ') : l);
    expect(stackLines.map(own)).toEqual(kernelLines.map(own));
    expect(kernelLines.length).toBe(9);
    expect(kernelLines[7]).toMatch(/J:IN=.* CWR ECE URG ACK PSH SYN URGP=0 $/);
    expect(kernelLines[0]).toMatch(/ MAC=02:00:0a:e7:28:02:02:00:0a:e7:28:01:08:00 SRC=/);
  }, 60_000);
});

