import { describe, expect, it } from 'vitest';
import { VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import {
  NAT_DNAT,
  NAT_MASQUERADE,
  NAT_RANGE_MAP_IPS,
  NAT_RANGE_PERSISTENT,
  NAT_RANGE_PROTO_RANDOM,
  NAT_RANGE_PROTO_RANDOM_FULLY,
  NAT_RANGE_PROTO_SPECIFIED,
  NAT_REDIRECT,
  NAT_SNAT,
  UNTRACKED,
} from '../../src/netfilter/compile.js';
import { runNft } from '../../src/control/nft.js';
import { ctEntry, eth0, fakeCt, fakeNat, ip, pkt, runInput, tcpDatagram, testRuleset, udpDatagram, wlan1 } from '../helpers/nft.js';
import type { Packet } from '../../src/packet/packet.js';

function setup(opts: { nat?: boolean; ct?: boolean } = {}) {
  const t = testRuleset();
  const nat = fakeNat();
  const ct = fakeCt();
  if (opts.nat !== false) t.env.nat = nat;
  if (opts.ct !== false) t.env.ct = ct;
  const nft = (text: string) => runNft(t.rs, ['-f', '-'], { readFile: () => '', stdin: text, now: () => t.env.t });
  const ok = (text: string): void => {
    const r = nft(text);
    expect(r.stderr).toBe('');
  };
  return { ...t, nat, ct, nft, ok };
}

const syn = (): Packet => pkt(tcpDatagram('10.0.0.1', '192.0.2.1', 40000, 80));
const udp = (): Packet => pkt(udpDatagram('10.0.0.1', '192.0.2.1', 5000, 53));

describe('nat statements call NatProvider.setup', () => {
  it('snat with address and port ranges and flags; the range passed and the terminal accept', () => {
    const { ok, nat } = setup();
    ok(`table ip t {
      chain post { type nat hook postrouting priority srcnat; policy drop;
        tcp dport 80 snat to 1.2.3.4-1.2.3.9:1000-2000 random,persistent
        counter
      }
    }`);
    expect(nat.chains.map((c) => [c.hook, c.priority, c.live])).toEqual([['postrouting', 100, true]]);
    const v = nat.chains[0].fn(syn(), null, eth0);
    expect(v).toBe(VERDICT_ACCEPT);
    expect(nat.calls).toEqual([
      {
        kind: NAT_SNAT,
        range: {
          flags: NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED | NAT_RANGE_PROTO_RANDOM | NAT_RANGE_PERSISTENT,
          minAddr: ip('1.2.3.4'),
          maxAddr: ip('1.2.3.9'),
          minPort: 1000,
          maxPort: 2000,
        },
        inIf: null,
        outIf: 'eth0',
      },
    ]);
    // No match: on to the policy (drop), setup not called.
    expect(nat.chains[0].fn(udp(), null, eth0)).toBe(VERDICT_DROP);
    expect(nat.calls).toHaveLength(1);
  });

  it('setup returning false drops the packet', () => {
    const { ok, nat } = setup();
    ok('table ip t { chain post { type nat hook postrouting priority srcnat; masquerade fully-random; } }');
    nat.result = false;
    expect(nat.chains[0].fn(syn(), null, wlan1)).toBe(VERDICT_DROP);
    expect(nat.calls[0]).toEqual({
      kind: NAT_MASQUERADE,
      range: { flags: NAT_RANGE_PROTO_RANDOM_FULLY, minAddr: 0, maxAddr: 0, minPort: 0, maxPort: 0 },
      inIf: null,
      outIf: 'wlan1',
    });
  });

  it('dnat to one address and port, redirect to a port, masquerade to ports', () => {
    const { ok, nat } = setup();
    ok(`table ip t {
      chain pre { type nat hook prerouting priority dstnat;
        tcp dport 80 dnat to 10.0.0.9:8080
        udp dport 53 redirect to :5353
      }
      chain post { type nat hook postrouting priority srcnat; meta l4proto udp masquerade to :1024-1030; }
    }`);
    const [pre, post] = nat.chains;
    expect([pre.hook, pre.priority, post.hook, post.priority]).toEqual(['prerouting', -100, 'postrouting', 100]);
    pre.fn(syn(), eth0, null);
    pre.fn(udp(), eth0, null);
    post.fn(udp(), null, eth0);
    expect(nat.calls.map((c) => [c.kind, c.range])).toEqual([
      [NAT_DNAT, { flags: NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, minAddr: ip('10.0.0.9'), maxAddr: ip('10.0.0.9'), minPort: 8080, maxPort: 8080 }],
      [NAT_REDIRECT, { flags: NAT_RANGE_PROTO_SPECIFIED, minAddr: 0, maxAddr: 0, minPort: 5353, maxPort: 5353 }],
      [NAT_MASQUERADE, { flags: NAT_RANGE_PROTO_SPECIFIED, minAddr: 0, maxAddr: 0, minPort: 1024, maxPort: 1030 }],
    ]);
  });

  it('dnat to a map: the address looked up; no element, the rule does not apply', () => {
    const { ok, nat } = setup();
    ok(`table ip t {
      map m { type inet_service : ipv4_addr; elements = { 80 : 10.0.0.1, 443 : 10.0.0.2 } }
      chain pre { type nat hook prerouting priority dstnat;
        dnat to tcp dport map @m
        dnat to ip saddr map { 10.0.0.0/8 : 10.9.9.9 }
      }
    }`);
    const fn = nat.chains[0].fn;
    fn(syn(), eth0, null);
    expect(nat.calls.map((c) => c.range.minAddr)).toEqual([ip('10.0.0.1')]);
    // dport 53 is not in @m: the next rule maps the source 10.0.0.1.
    fn(udp(), eth0, null);
    expect(nat.calls.map((c) => [c.kind, c.range.flags, c.range.minAddr, c.range.maxAddr])).toEqual([
      [NAT_DNAT, NAT_RANGE_MAP_IPS, ip('10.0.0.1'), ip('10.0.0.1')],
      [NAT_DNAT, NAT_RANGE_MAP_IPS, ip('10.9.9.9'), ip('10.9.9.9')],
    ]);
  });

  it('snat to a prefix is the range of its addresses; dnat to a port alone maps no address', () => {
    const { ok, nat } = setup();
    ok(`table ip t {
      chain pre { type nat hook prerouting priority dstnat; tcp dport 80 dnat to :8080-8081; }
      chain post { type nat hook postrouting priority srcnat; snat to 10.0.0.1/30; }
    }`);
    nat.chains[0].fn(syn(), eth0, null);
    nat.chains[1].fn(syn(), null, eth0);
    expect(nat.calls.map((c) => [c.kind, c.range])).toEqual([
      [NAT_DNAT, { flags: NAT_RANGE_PROTO_SPECIFIED, minAddr: 0, maxAddr: 0, minPort: 8080, maxPort: 8081 }],
      [NAT_SNAT, { flags: NAT_RANGE_MAP_IPS, minAddr: ip('10.0.0.0'), maxAddr: ip('10.0.0.3'), minPort: 0, maxPort: 0 }],
    ]);
  });

  it('dnat to an address-and-port map: both from the element', () => {
    const { ok, nat } = setup();
    ok(`table ip t {
      map m { type ipv4_addr . inet_service : ipv4_addr . inet_service; elements = { 192.0.2.1 . 80 : 10.0.0.7 . 8080 } }
      chain pre { type nat hook prerouting priority dstnat;
        dnat ip to ip daddr . tcp dport map @m
        dnat to numgen inc mod 2 map { 0 : 10.0.0.1, 1 : 10.0.0.2 }
      }
    }`);
    const fn = nat.chains[0].fn;
    fn(syn(), eth0, null);
    // 53/udp is not in @m: the numgen map takes it, then the next one.
    fn(udp(), eth0, null);
    fn(udp(), eth0, null);
    expect(nat.calls.map((c) => c.range)).toEqual([
      { flags: NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED, minAddr: ip('10.0.0.7'), maxAddr: ip('10.0.0.7'), minPort: 8080, maxPort: 8080 },
      { flags: NAT_RANGE_MAP_IPS, minAddr: ip('10.0.0.1'), maxAddr: ip('10.0.0.1'), minPort: 0, maxPort: 0 },
      { flags: NAT_RANGE_MAP_IPS, minAddr: ip('10.0.0.2'), maxAddr: ip('10.0.0.2'), minPort: 0, maxPort: 0 },
    ]);
  });

  it('without NAT, nat statements fail to compile and nat chains sit on the hooks', () => {
    const { nft, rs, hooks } = setup({ nat: false });
    const r = nft('table ip t { chain post { type nat hook postrouting priority srcnat; masquerade; } }');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: table ip t: masquerade: this stack has no NAT\n');
    expect(rs.state().tables).toEqual([]);
    // A nat chain without nat statements goes on its hook like a filter chain.
    expect(nft('table ip t { chain in { type nat hook input priority 100; policy drop; } }').code).toBe(0);
    expect(runInput(hooks, syn())).toBe(VERDICT_DROP);
  });

  it('with NAT, nat chains are not on the hooks', () => {
    const { ok, hooks, nat } = setup();
    ok('table ip t { chain in { type nat hook input priority 100; policy drop; } }');
    expect(runInput(hooks, syn())).toBe(VERDICT_ACCEPT);
    expect(nat.chains.map((c) => [c.hook, c.live])).toEqual([['input', true]]);
    // A new commit unregisters the old chain and registers the new one.
    ok('add rule ip t in counter');
    expect(nat.chains.map((c) => [c.hook, c.live])).toEqual([
      ['input', false],
      ['input', true],
    ]);
  });

  it('a nat statement reached by a jump from the wrong hook fails the commit', () => {
    const { nft, ok } = setup();
    ok(`table ip t {
      chain sub { masquerade }
      chain post { type nat hook postrouting priority srcnat; jump sub; }
    }`);
    const r = nft(`table ip t { chain pre { type nat hook prerouting priority dstnat; jump sub; } }`);
    expect(r.stderr).toBe('Error: Could not process rule: Operation not supported\n');
    expect(nft('add rule ip t sub dnat to 1.2.3.4').stderr).toBe('Error: Could not process rule: Operation not supported\n');
  });
});

describe('ct expressions and statements through CtProvider', () => {
  it('ct mark set, meta mark set ct mark, ct mark set meta mark', () => {
    const { ok, hooks } = setup();
    ok(`table ip t { chain in { type filter hook input priority 0;
      ct mark set ct mark | 0x10
      meta mark set ct mark
      meta mark set meta mark | 0x100
      ct mark set meta mark
    } }`);
    const p = syn();
    const e = ctEntry({ mark: 1 });
    p.ct = e;
    runInput(hooks, p);
    expect(e.mark).toBe(0x111);
    expect(p.mark).toBe(0x111);
    // No entry: ct mark reads nothing, so `meta mark set ct mark` ends its rule (the next still runs).
    const q = syn();
    q.mark = 5;
    runInput(hooks, q);
    expect(q.mark).toBe(0x105);
    // Untracked: the same.
    const u = syn();
    u.ct = UNTRACKED;
    runInput(hooks, u);
    expect(u.mark).toBe(0x100);
  });

  it('ct original|reply tuple fields, ct protocol, ct expiration', () => {
    const { ok, hooks } = setup();
    ok(`table ip t { chain in { type filter hook input priority 0; policy drop;
      ct original ip saddr 10.0.0.1 ct reply daddr 10.0.0.1 ct protocol tcp ct original proto-dst 80 ct reply proto-src 80 ct expiration < 1m accept
    } }`);
    const e = ctEntry({
      tuple: [
        [ip('10.0.0.1'), ip('192.0.2.1'), 40000, 80, 6],
        [ip('192.0.2.1'), ip('10.0.0.1'), 80, 40000, 6],
      ],
      expires: 59,
    });
    const p = syn();
    p.ct = e;
    expect(runInput(hooks, p)).toBe(VERDICT_ACCEPT);
    e.expires = 60;
    expect(runInput(hooks, p)).toBe(VERDICT_DROP);
    e.expires = 10;
    e.tuple[1][1] = ip('10.0.0.2');
    expect(runInput(hooks, p)).toBe(VERDICT_DROP);
    // No entry: no match.
    expect(runInput(hooks, syn())).toBe(VERDICT_DROP);
  });

  it('ct count counts the rule\'s live connections (nft_connlimit)', () => {
    const { ok, hooks } = setup();
    ok('table ip t { chain in { type filter hook input priority 0; ct count over 2 drop; } }');
    const conns = [ctEntry(), ctEntry(), ctEntry()];
    const send = (e: object): number => {
      const p = syn();
      p.ct = e;
      return runInput(hooks, p);
    };
    expect(send(conns[0])).toBe(VERDICT_ACCEPT);
    expect(send(conns[1])).toBe(VERDICT_ACCEPT);
    expect(send(conns[0])).toBe(VERDICT_ACCEPT);
    // The third connection makes 3 > 2.
    expect(send(conns[2])).toBe(VERDICT_DROP);
    expect(send(conns[0])).toBe(VERDICT_DROP);
    // One ends: gone from the list when the next connection is counted.
    conns[1].alive = false;
    const d = ctEntry();
    expect(send(d)).toBe(VERDICT_DROP);
    d.alive = false;
    conns[2].alive = false;
    expect(send(ctEntry())).toBe(VERDICT_ACCEPT);
  });

  it('ct count N matches up to N; per element inside a dynamic set', () => {
    const { ok, hooks } = setup();
    ok(`table ip t {
      set s { type ipv4_addr; flags dynamic; }
      chain in { type filter hook input priority 0; add @s { ip saddr ct count over 1 } drop; }
    }`);
    const from = (src: string, e: object): number => {
      const p = pkt(tcpDatagram(src, '192.0.2.1', 40000, 80));
      p.ct = e;
      return runInput(hooks, p);
    };
    expect(from('10.0.0.1', ctEntry())).toBe(VERDICT_ACCEPT);
    expect(from('10.0.0.2', ctEntry())).toBe(VERDICT_ACCEPT);
    // A second connection from 10.0.0.1: over 1.
    expect(from('10.0.0.1', ctEntry())).toBe(VERDICT_DROP);
    expect(from('10.0.0.2', ctEntry())).toBe(VERDICT_DROP);
    expect(from('10.0.0.3', ctEntry())).toBe(VERDICT_ACCEPT);
  });

  it('ct count N without over', () => {
    const { ok, hooks } = setup();
    ok('table ip t { chain in { type filter hook input priority 0; policy drop; ct count 1 accept; } }');
    const p = syn();
    p.ct = ctEntry();
    expect(runInput(hooks, p)).toBe(VERDICT_ACCEPT);
    p.ct = ctEntry();
    expect(runInput(hooks, p)).toBe(VERDICT_DROP);
  });
});

describe('the ruleset tells conntrack whether it is needed', () => {
  it('setNeeded at each commit: ct, notrack, nat statements and nat chains need it', () => {
    const { ok, ct, rs } = setup();
    ok('table ip t { chain in { type filter hook input priority 0; tcp dport 22 accept; } }');
    ok('add rule ip t in ct state established accept');
    ok('flush chain ip t in');
    ok('add rule ip t in udp dport 53 notrack');
    ok('flush ruleset');
    ok('table ip t { chain post { type nat hook postrouting priority srcnat; } }');
    ok('flush ruleset');
    ok('table ip t { set s { type mark; } chain in { type filter hook input priority 0; ct mark @s; } }');
    ok('flush ruleset');
    ok('table ip t { chain in { type filter hook input priority 0; meta mark set ct mark; } }');
    rs.flushRuleset();
    expect(ct.needed).toEqual([
      ['ruleset', false],
      ['ruleset', true],
      ['ruleset', false],
      ['ruleset', true],
      ['ruleset', false],
      ['ruleset', true],
      ['ruleset', false],
      ['ruleset', true],
      ['ruleset', false],
      ['ruleset', true],
      ['ruleset', false],
    ]);
  });

  it('a failed commit does not call it', () => {
    const { nft, ct } = setup();
    expect(nft('table ip t { chain in { type filter hook input priority 0; ct state new jump nowhere; } }').code).toBe(1);
    expect(ct.needed).toEqual([]);
  });
});

describe('base chain policy counters', () => {
  it('count the packets and bytes the policy decides, carry over commits, can be set', () => {
    const { ok, rs, hooks } = setup();
    ok('table ip filter { chain INPUT { type filter hook input priority 0; policy accept; tcp dport 22 drop; } chain x { } }');
    const a = pkt(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 80, { data: 10 }));
    runInput(hooks, a);
    runInput(hooks, pkt(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 22)));
    runInput(hooks, pkt(udpDatagram('10.0.0.1', '10.0.0.2', 1, 53)));
    expect(rs.chainCounter('ip', 'filter', 'INPUT')).toEqual({ packets: 2, bytes: 50 + 28 });
    ok('add rule ip filter INPUT counter');
    expect(rs.chainCounter('ip', 'filter', 'INPUT')).toEqual({ packets: 2, bytes: 78 });
    rs.setChainCounter('ip', 'filter', 'INPUT', 0, 0);
    runInput(hooks, pkt(udpDatagram('10.0.0.1', '10.0.0.2', 1, 53)));
    expect(rs.chainCounter('ip', 'filter', 'INPUT')).toEqual({ packets: 1, bytes: 28 });
  });
});

describe('on the stack: the ruleset drives conntrack and NAT', () => {
  it('conntrack runs while rules need it; nat chains are registered with NAT', async () => {
    const { Stack } = await import('../../src/stack.js');
    const { VirtualTime } = await import('../../src/time/timers.js');
    const { runIptables } = await import('../../src/control/iptables.js');
    const s = new Stack({ time: new VirtualTime(), seed: 1 });
    const nft = (text: string) => runNft(s.nft, ['-f', '-'], { readFile: () => '', stdin: text, now: () => s.time.now() });
    expect(s.conntrack.active).toBe(false);
    expect(nft('table ip f { chain in { type filter hook input priority 0; tcp dport 22 accept; } }').stderr).toBe('');
    expect(s.conntrack.active).toBe(false);
    expect(nft('add rule ip f in ct state established accept').stderr).toBe('');
    expect(s.conntrack.active).toBe(true);
    expect(nft('flush ruleset').stderr).toBe('');
    expect(s.conntrack.active).toBe(false);
    expect(nft('table ip n { chain post { type nat hook postrouting priority srcnat; masquerade; } }').stderr).toBe('');
    expect(s.nat.chainsRegistered).toBe(1);
    expect(s.conntrack.active).toBe(true);
    nft('flush ruleset');
    expect(s.nat.chainsRegistered).toBe(0);
    expect(runIptables(s.nft, ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE']).code).toBe(0);
    expect(s.nat.chainsRegistered).toBe(1);
    expect(s.conntrack.active).toBe(true);
  });
});

describe('ct count in dynamic sets, listed as nft lists them', () => {
  it('elements carry the rule\'s ct count; a set with timeouts refuses it', () => {
    const { ok, nft, hooks, rs, env } = setup();
    ok(`table ip t {
  set s { type ipv4_addr; flags dynamic; }
  set u { type ipv4_addr; flags dynamic; }
  chain o { type filter hook output priority 0; add @s { ip daddr ct count over 3 }; update @u { ip daddr ct count 5 }; }
}`);
    const p = pkt(udpDatagram('127.0.0.1', '127.0.0.1', 1, 2));
    p.ct = ctEntry();
    hooks.output.run(p, null, eth0);
    // What nft listed after one ping through lo with this ruleset (nftables 1.0.6).
    expect(nft('list ruleset').stdout).toBe(
      'table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic\n\t\telements = { 127.0.0.1 ct count over 3 }\n\t}\n\n' +
        '\tset u {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic\n\t\telements = { 127.0.0.1 ct count 5 }\n\t}\n\n' +
        '\tchain o {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tadd @s { ip daddr ct count over 3 }\n\t\tupdate @u { ip daddr ct count 5 }\n\t}\n}\n',
    );
    const j = runNft(rs, ['-j', 'list', 'ruleset'], { readFile: () => '', now: () => env.t });
    expect(j.stdout).toContain('"elem": [{"elem": {"val": "127.0.0.1", "ct count": {"val": 3, "inv": true}}}]');
    const r = nft('table ip t { set w { type ipv4_addr; flags dynamic,timeout; timeout 1m; } }\nadd rule ip t o update @w { ip daddr ct count 5 }');
    expect(r.stderr.split('\n')[0]).toMatch(/^\/dev\/stdin:2:\d+-\d+: Error: Could not process rule: Operation not supported$/);
  });
});
