import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeNat, testRuleset } from '../helpers/nft.js';
import { runNft, type NftResult } from '../../src/control/nft.js';
import { parseNft } from '../../src/control/nft-parse.js';

const dir = path.join(import.meta.dirname, '../fixtures/nft');

function setup() {
  const { rs, env } = testRuleset();
  env.nat = fakeNat();
  const io = { readFile: (p: string) => fs.readFileSync(p, 'utf8'), now: () => env.t };
  const nft = (line: string, stdin?: string): NftResult => runNft(rs, line.split(' ').filter((w) => w !== ''), { ...io, stdin });
  const ok = (line: string, stdin?: string): string => {
    const r = nft(line, stdin);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  };
  return { rs, env, nft, ok };
}

/** The rule lines of a listed chain, without indentation. */
function rules(listing: string): string[] {
  return listing
    .split('\n')
    .filter((l) => l.startsWith('\t\t') && !l.startsWith('\t\ttype '))
    .map((l) => l.trim());
}

describe('nft rules: parse then print is the canonical form', () => {
  // Every rule line the kernel printed for the fixtures, added again from the command line.
  for (const f of ['basic', 'rules', 'prio', 'nat', 'ct', 'fib', 'typeof']) {
    it(`the rules of ${f}.out`, () => {
      const { ok } = setup();
      ok(`-f ${path.join(dir, f + '.nft')}`);
      const text = fs.readFileSync(path.join(dir, f + '.s.out'), 'utf8');
      let table = '';
      let chain = '';
      let n = 0;
      for (const line of text.split('\n')) {
        const t = /^table (\w+) (\w+) \{/.exec(line);
        if (t) table = `${t[1]} ${t[2]}`;
        const c = /^\tchain (\w+) \{/.exec(line);
        if (c) chain = c[1];
        if (!line.startsWith('\t\t') || line.startsWith('\t\ttype ') || !/^\t\t[a-z]/.test(line) || chain === '') continue;
        if (/^\t\t(elements|flags|size|timeout|packets)/.test(line)) continue;
        const rule = line.trim();
        ok(`add rule ${table} ${chain} ${rule}`);
        const listed = rules(ok(`-s list chain ${table} ${chain}`));
        expect(listed[listed.length - 1]).toBe(rule);
        n++;
      }
      expect(n).toBeGreaterThan(3);
    });
  }

  it.each([
    ['tcp dport ssh accept', 'tcp dport 22 accept'],
    ['tcp dport { http, https }', 'tcp dport { 80, 443 }'],
    ['ip saddr 10.0.0.1 ip daddr != 10.0.0.0/8', 'ip saddr 10.0.0.1 ip daddr != 10.0.0.0/8'],
    ['ct state { established, related } accept', 'ct state { established, related } accept'],
    ['tcp flags syn / syn,ack', 'tcp flags syn / syn,ack'],
    ['tcp flags & (syn|ack) == syn|ack', 'tcp flags syn,ack / syn,ack'],
    ['limit rate 5/second burst 5 packets', 'limit rate 5/second'],
    ['limit rate over 2/hour burst 10 packets drop', 'limit rate over 2/hour burst 10 packets drop'],
    ['limit rate 10 kbytes/second', 'limit rate 10 kbytes/second'],
    ['reject with icmp type port-unreachable', 'reject'],
    ['reject with icmp type net-unreachable', 'reject with icmp net-unreachable'],
    ['reject with tcp reset', 'reject with tcp reset'],
    ['meta mark set 16', 'meta mark set 0x00000010'],
    ['mark set 0x10', 'meta mark set 0x00000010'],
    ['meta mark set meta mark xor 0x3', 'meta mark set meta mark ^ 0x00000003'],
    ['meta iifname "lo" accept', 'iifname "lo" accept'],
    ['counter packets 10 bytes 20', 'counter packets 0 bytes 0'],
    ['ip protocol vmap { udp : accept, tcp : jump other }', 'ip protocol vmap { tcp : jump other, udp : accept }'],
    ['numgen inc mod 3 vmap { 0 : accept, 1 : drop, 2 : continue }', 'numgen inc mod 3 vmap { 0 : accept, 1 : drop, 2 : continue }'],
    ['icmp type echo-request ip length >= 100 ip length <= 200 drop', 'icmp type echo-request ip length 100-200 drop'],
    ['log prefix "in: " level notice', 'log prefix "in: " level notice'],
    ['ip ttl set 5 ip dscp set af21 notrack', 'ip ttl set 5 ip dscp set af21 notrack'],
    ['add @dyn { ip saddr timeout 30s } accept', 'add @dyn { ip saddr timeout 30s } accept'],
    ['ip saddr @dyn return', 'ip saddr @dyn return'],
    ['udp dport 53 accept comment "dns"', 'udp dport 53 accept comment "dns"'],
    ['meta l4proto { tcp, udp } th dport 53', 'meta l4proto { tcp, udp } th dport 53'],
    ['ct mark and 0xf0 == 0x10', 'ct mark & 0x000000f0 == 0x00000010'],
  ])('%s', (input, printed) => {
    const { ok } = setup();
    ok('add table ip t');
    ok('add chain ip t other');
    ok('add set ip t dyn { type ipv4_addr ; flags dynamic,timeout ; }');
    ok('add chain ip t c { type filter hook input priority 0 ; }');
    ok(`add rule ip t c ${input}`);
    expect(rules(ok('list chain ip t c'))).toEqual([printed]);
    // and once more from what was printed
    ok('flush chain ip t c');
    ok(`add rule ip t c ${printed}`);
    expect(rules(ok('list chain ip t c'))).toEqual([printed]);
  });
});

describe('nft commands', () => {
  it('adds, inserts, replaces and deletes rules by handle and position', () => {
    const { ok, nft } = setup();
    ok('add table t');
    ok('add chain t c');
    ok('add rule t c tcp dport 1 accept');
    ok('add rule t c tcp dport 3 accept');
    expect(ok('-a list chain ip t c')).toBe('table ip t {\n\tchain c { # handle 1\n\t\ttcp dport 1 accept # handle 2\n\t\ttcp dport 3 accept # handle 3\n\t}\n}\n');
    ok('add rule t c position 2 tcp dport 2 accept');
    ok('insert rule t c tcp dport 0 accept');
    ok('add rule ip t c index 3 tcp dport 9 accept');
    expect(rules(ok('list chain t c'))).toEqual(['tcp dport 0 accept', 'tcp dport 1 accept', 'tcp dport 2 accept', 'tcp dport 3 accept', 'tcp dport 9 accept']);
    ok('replace rule t c handle 3 tcp dport 33 drop');
    ok('delete rule t c handle 2');
    expect(rules(ok('list chain t c'))).toEqual(['tcp dport 0 accept', 'tcp dport 2 accept', 'tcp dport 33 drop', 'tcp dport 9 accept']);
    const r = nft('delete rule t c handle 99');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: Could not process rule: No such file or directory\ndelete rule t c handle 99\n              ^\n');
    ok('destroy rule t c handle 99');
    ok('flush chain t c');
    expect(rules(ok('list chain t c'))).toEqual([]);
    ok('delete chain t c');
    ok('delete table t');
    expect(ok('list ruleset')).toBe('');
  });

  it('lists tables, chains, sets, maps and counters as nft does', () => {
    const { ok } = setup();
    ok(`-f ${path.join(dir, 'basic.nft')}`);
    expect(ok('list tables')).toBe('table ip t\n');
    expect(ok('-a list tables')).toBe('table ip t # handle 1\n');
    expect(ok('list chains')).toBe(
      'table ip t {\n\tchain c {\n\t\ttype filter hook input priority filter + 5; policy drop;\n\t}\n\tchain c2 {\n\t}\n\tchain c3 {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t}\n}\n',
    );
    expect(ok('list chain ip t c2')).toBe('table ip t {\n\tchain c2 {\n\t\treturn\n\t}\n}\n');
    expect(ok('list set ip t d')).toBe('table ip t {\n\tset d {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t}\n}\n');
    expect(ok('list maps')).toContain('\tmap vm {\n\t\ttype inet_service : verdict\n\t\telements = { 22 : accept, 80 : jump c2 }\n\t}\n');
    expect(ok('list counters')).toBe('table ip t {\n\tcounter cnt {\n\t\tpackets 0 bytes 0\n\t}\n}\n');
    expect(ok('list counter ip t cnt')).toBe('table ip t {\n\tcounter cnt {\n\t\tpackets 0 bytes 0\n\t}\n}\n');
  });

  it('adds and deletes elements; a map takes data', () => {
    const { ok, nft } = setup();
    ok('add table t');
    ok('add set t s { type ipv4_addr ; flags interval ; }');
    ok('add element t s { 10.0.0.0/8, 1.2.3.4 }');
    ok('add map t m { type inet_service : verdict ; }');
    ok('add element t m { 22 : drop }');
    expect(ok('list set t s')).toContain('elements = { 1.2.3.4, 10.0.0.0/8 }');
    ok('delete element t s { 1.2.3.4 }');
    expect(ok('list set t s')).toContain('elements = { 10.0.0.0/8 }');
    expect(ok('list map t m')).toContain('elements = { 22 : drop }');
    expect(nft('delete element t s { 9.9.9.9 }').code).toBe(1);
    const r = nft('add element t m { 23 }');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: syntax error, unexpected '}', expecting ':'\n/);
  });

  it('refuses nft keywords, numbers and quoted strings as table and chain names, as nft does', () => {
    const { ok, nft } = setup();
    expect(nft('add table ip ct')).toMatchObject({ code: 1, stderr: 'Error: syntax error, unexpected ct, expecting string\nadd table ip ct\n             ^^\n' });
    expect(nft('add table ip 123')).toMatchObject({ code: 1, stderr: 'Error: syntax error, unexpected number, expecting string\nadd table ip 123\n             ^^^\n' });
    ok('add table ip t');
    expect(nft('add chain ip t fwd')).toMatchObject({ code: 1, stderr: 'Error: syntax error, unexpected fwd, expecting string\nadd chain ip t fwd\n               ^^^\n' });
    expect(nft('add chain ip t "x"').code).toBe(1);
    // Chain types and hooks are not keywords: these names are fine.
    ok('add chain ip t input');
    ok('add table ip nat');
    ok('add table ip filter');
  });

  it('create fails on what exists; add does not', () => {
    const { ok, nft } = setup();
    ok('add table t');
    ok('add table t');
    expect(nft('create table t')).toMatchObject({ code: 1, stderr: 'Error: Could not process rule: File exists\ncreate table t\n             ^\n' });
  });

  it('a batch with an error changes nothing; -c checks only', () => {
    const { ok, nft } = setup();
    ok('add table t');
    const r = nft('-f -', 'add chain t a\nadd rule t a accept\nadd rule t nochain drop\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('/dev/stdin:3:12-18: Error: Could not process rule: No such file or directory\nadd rule t nochain drop\n           ^^^^^^^\n');
    expect(ok('list ruleset')).toBe('table ip t {\n}\n');
    ok('-c add chain t b');
    expect(ok('list ruleset')).toBe('table ip t {\n}\n');
    // and the commit itself refusing (a jump to a missing chain)
    const j = nft('-f -', 'add chain t b\nadd rule t b jump nowhere\n');
    expect(j.code).toBe(1);
    expect(j.stderr).toMatch(/^Error: .*no chain nowhere/);
    expect(ok('list ruleset')).toBe('table ip t {\n}\n');
  });

  it('flush ruleset, flush table, reset counters', () => {
    const { ok } = setup();
    ok(`-f ${path.join(dir, 'prio.nft')}`);
    ok('flush table ip a');
    expect(rules(ok('list table ip a'))).toEqual([]);
    ok('reset counters');
    ok('flush ruleset inet');
    expect(ok('list tables')).toBe('table ip a\n');
    ok('flush ruleset');
    expect(ok('list ruleset')).toBe('');
  });

  it('reset counters prints the counter objects as they were, then zeroes them', () => {
    const { ok } = setup();
    ok('-f -', 'table ip t {\n\tcounter a { packets 5 bytes 50 }\n\tcounter b { packets 1 bytes 2 }\n}\n');
    expect(ok('reset counter ip t b')).toBe('table ip t {\n\tcounter b {\n\t\tpackets 1 bytes 2\n\t}\n}\n');
    expect(ok('list counter ip t b')).toContain('packets 0 bytes 0');
    expect(ok('reset counters')).toBe('table ip t {\n\tcounter a {\n\t\tpackets 5 bytes 50\n\t}\n\tcounter b {\n\t\tpackets 0 bytes 0\n\t}\n}\n');
    expect(ok('list counters')).toBe('table ip t {\n\tcounter a {\n\t\tpackets 0 bytes 0\n\t}\n\tcounter b {\n\t\tpackets 0 bytes 0\n\t}\n}\n');
  });

  it('lists elements with their timeouts and time to expiry, as nft does', () => {
    const { ok, env } = setup();
    ok('-f -', 'table ip t {\n\tset d { type ipv4_addr; flags dynamic,timeout; timeout 1m; }\n}\n');
    ok('add element ip t d { 1.2.3.4, 5.6.7.8 timeout 10s }');
    env.t += 4;
    expect(ok('list set ip t d')).toBe(
      'table ip t {\n\tset d {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t\telements = { 1.2.3.4 expires 59s996ms, 5.6.7.8 timeout 10s expires 9s996ms }\n\t}\n}\n',
    );
    env.t += 10_000;
    expect(ok('list set ip t d')).toContain('elements = { 1.2.3.4 expires 49s996ms }');
  });

  it('refuses a rule that needs two transport protocols, as nft does', () => {
    const { ok, nft } = setup();
    ok('add table t');
    ok('add chain t c');
    expect(nft('add rule t c udp dport 53 tcp dport 22').stderr.split('\n')[0]).toBe('Error: conflicting protocols specified: udp vs. tcp');
    expect(nft('add rule t c ip protocol udp tcp dport 22').stderr.split('\n')[0]).toBe('Error: conflicting protocols specified: udp vs. tcp');
    expect(nft('add rule t c meta l4proto icmp th dport 22').code).toBe(1);
    ok('add rule t c ip protocol tcp counter tcp dport 22');
  });

  it('iif/oif by interface name, printed by name', () => {
    const { rs, env } = testRuleset();
    const names = ['lo', 'eth0'];
    const io = {
      readFile: () => '',
      now: () => env.t,
      ifindex: (n: string) => (names.includes(n) ? names.indexOf(n) + 1 : null),
      ifname: (i: number) => names[i - 1] ?? null,
    };
    const run = (line: string) => runNft(rs, line.split(' '), io);
    expect(run('add table t').code).toBe(0);
    expect(run('add chain t c').code).toBe(0);
    expect(run('add rule t c iif lo accept').stderr).toBe('');
    expect(run('add rule t c oif != "eth0" meta iif 1 drop').stderr).toBe('');
    expect(rules(run('list chain t c').stdout)).toEqual(['iif "lo" accept', 'oif != "eth0" iif "lo" drop']);
    expect(run('-j list chain t c').stdout).toContain('{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}');
    expect(run('add rule t c iif wlan9').stderr).toBe('Error: Interface does not exist\nadd rule t c iif wlan9\n                 ^^^^^\n');
  });

  it('define and $name', () => {
    const { ok } = setup();
    ok('-f -', 'define ports = { 22, 80 }\ndefine me = 10.0.0.1\ntable ip t {\n\tchain c {\n\t\tip saddr $me tcp dport $ports accept\n\t}\n}\n');
    expect(rules(ok('list chain t c'))).toEqual(['ip saddr 10.0.0.1 tcp dport { 22, 80 } accept']);
  });

  it('-e echoes what was added, as nft does', () => {
    const { ok } = setup();
    const gen = /^# new generation \d+ by process \d+ \(nft\)$/;
    const lines = (out: string): string[] => out.trimEnd().split('\n');
    let o = lines(ok('-e add table t'));
    expect(o[0]).toBe('add table ip t');
    expect(o[1]).toMatch(gen);
    expect(lines(ok('-e add chain t c { type filter hook input priority 0 ; }'))[0]).toBe(
      'add chain ip t c { type filter hook input priority filter; policy accept; }',
    );
    expect(lines(ok('-e add rule t c tcp dport 22 counter accept'))[0]).toBe('add rule ip t c tcp dport 22 counter packets 0 bytes 0 accept');
    expect(lines(ok('-ae add rule t c tcp dport 23 accept'))[0]).toBe('add rule ip t c tcp dport 23 accept # handle 3');
    expect(lines(ok('-e add set t s { type ipv4_addr ; }'))[0]).toBe('add set ip t s { type ipv4_addr; } ');
    expect(lines(ok('-e insert rule t c ip saddr 1.1.1.1'))[0]).toBe('insert rule ip t c ip saddr 1.1.1.1');
    expect(lines(ok('-e add counter t cc'))[0]).toBe('add counter ip t cc { packets 0 bytes 0 } ');
    o = lines(ok('-e -f -', 'table ip t {\n chain d { }\n}\n'));
    expect(o[0]).toBe('add chain ip t d');
    expect(o).toHaveLength(2);
  });

  it('options: combined short flags, unknown ones, -j', () => {
    const { ok, nft } = setup();
    ok('add table t');
    expect(ok('-as list tables')).toBe('table ip t # handle 1\n');
    expect(nft('-Z list tables')).toMatchObject({ code: 1, stderr: "nft: invalid option -- 'Z'\n" });
    expect(ok('-j list tables')).toBe(
      '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "t", "handle": 1}}]}\n',
    );
  });
});

describe('nft errors: line, column and carets as nft prints them', () => {
  it('on the command line', () => {
    const { nft } = setup();
    expect(nft('add rule ip t c tcp dport 22 frob').stderr).toBe(
      'Error: syntax error, unexpected string\nadd rule ip t c tcp dport 22 frob\n                             ^^^^\n',
    );
    expect(nft('add rule ip t c tcp dport 22 frob').code).toBe(1);
    expect(nft('frob table t').stderr).toBe('Error: syntax error, unexpected string\nfrob table t\n^^^^\n');
  });

  it('in a file, with the file name, line and columns', () => {
    const { nft } = setup();
    const r = nft('-f -', 'table ip t {\n\tchain c {\n\t\ttype filter hook input priority bogus;\n\t}\n}\n');
    expect(r.stderr).toBe("/dev/stdin:3:35-39: Error: 'bogus' is not a valid priority\n\t\ttype filter hook input priority bogus;\n\t\t                                ^^^^^\n");
    const u = nft('-f -', 'table ip t {\n\tchain c {\n\t\tip saddr 1.2.3.4 \\\n\t\t\tdrop junk\n\t}\n}\n');
    expect(u.stderr).toMatch(/^\/dev\/stdin:4:9-12: Error: syntax error, unexpected string/);
  });

  it.each([
    ['add rule t c queue', 'the queue statement is not supported'],
    ['add table ip6 t', 'family ip6 is not supported (ip and inet are)'],
    ['add set t s { typeof tcp flags ; }', 'typeof with a key of type tcp_flag is not supported'],
    ['add rule t c fib daddr oifname vmap { "a" : accept }', 'fib ... oifname is supported only compared with names (fib daddr oifname "eth0")'],
    ['add rule t c ip6 saddr ::1', 'ip6 expressions are not supported'],
    ['add rule t c ip options lsrr', 'ip options is not supported'],
    ['add rule t c meta skuid 0', 'meta skuid is not supported'],
    ['add rule t c ct helper "ftp"', 'ct helper is not supported'],
    ['add rule t c log group 1', 'log group is not supported'],
    ['add chain t c { type filter hook ingress priority 0 ; }', 'hook ingress is not supported'],
    ['add rule t c iif nosuch', 'Interface does not exist'],
    ['add quota t q { 10 mbytes }', 'quota objects are not supported'],
  ])('%s names what is not supported', (line, msg) => {
    const { nft } = setup();
    const r = nft(line);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe(`Error: ${msg}`);
  });

  it('parses without a ruleset (the parser alone)', () => {
    const cmds = parseNft('add table t; add chain t c\nlist ruleset # a comment\n');
    expect(cmds.map((c) => c.verb)).toEqual(['add', 'add', 'list']);
  });
});

describe('nft lines in a config file', () => {
  it('are checked before anything runs, naming the line and word', async () => {
    const { parseConfig } = await import('../../src/control/commands.js');
    expect(parseConfig('nft add table t\nnft add chain t c\n').map((l) => l.cmd)).toEqual([
      { kind: 'nft', argv: ['add', 'table', 't'] },
      { kind: 'nft', argv: ['add', 'chain', 't', 'c'] },
    ]);
    expect(() => parseConfig('nft add table t\nnft add rule t c tcp dport 22 frob\n', 'x.conf')).toThrow(
      'x.conf: line 2: word "frob": nft: syntax error, unexpected string',
    );
    // nft -f FILE: the file is read and checked with the config.
    const good = path.join(dir, 'basic.nft');
    expect(parseConfig(`nft -f ${good}\n`)).toHaveLength(1);
    const bad = path.join(fs.mkdtempSync('/tmp/nft-conf-'), 'bad.nft');
    fs.writeFileSync(bad, 'table ip t {\n\tchain c {\n\t\tfrob\n\t}\n}\n');
    expect(() => parseConfig(`nft -f ${bad}\n`, 'y.conf')).toThrow(`y.conf: line 1: nft: ${bad}:3:3-6: Error: syntax error, unexpected string`);
    expect(() => parseConfig('nft -f /nonexistent.nft\n')).toThrow('nft: cannot read /nonexistent.nft: ENOENT');
    fs.rmSync(path.dirname(bad), { recursive: true });
  });
});

/** One test per `$ nft LINE` step of NAME-errors.out, run on NAME-errors.setup: output and exit code as the real nft's. */
function errorSteps(name: string): void {
  const text = fs.readFileSync(path.join(dir, `${name}-errors.out`), 'utf8');
  const steps = text.split(/^\$ nft /m).filter((x) => x !== '');
  for (const st of steps) {
    const line = st.slice(0, st.indexOf('\n'));
    const expected = st.slice(st.indexOf('\n') + 1);
    it(line, () => {
      const { nft, ok } = setup();
      ok(`-f ${path.join(dir, `${name}-errors.setup`)}`);
      const r = nft(line);
      expect(r.stdout + r.stderr + (r.code !== 0 ? `(exit ${r.code})\n` : '')).toBe(expected);
    });
  }
}

describe('nat statements and ct expressions refused as nft and the kernel refuse them', () => {
  // nat-errors.out: each line of nat-errors.txt run by the real nft on nat-errors.setup.
  errorSteps('nat');
});

describe('fib expressions refused as nft and the kernel refuse them', () => {
  // fib-errors.out: each line of fib-errors.txt run by the real nft on fib-errors.setup.
  errorSteps('fib');

  it('a jump from a hook a fib expression may not run on is refused, the ruleset unchanged', () => {
    const { nft, ok } = setup();
    ok(`-f ${path.join(dir, 'fib-errors.setup')}`);
    ok('add rule ip t reg fib saddr . iif oif missing drop');
    ok('add rule ip t inp jump reg');
    const before = ok('list ruleset');
    const r = nft('add rule ip t outp jump reg');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Operation not supported');
    expect(ok('list ruleset')).toBe(before);
  });
});

describe('typeof sets and maps', () => {
  it('take their types from the expressions and read elements by them', () => {
    const { ok } = setup();
    ok('add table ip t');
    ok('add set ip t s { typeof ip saddr . tcp dport ; elements = { 10.0.0.1 . ssh } ; }');
    ok('add map ip t m { typeof ip saddr : meta mark ; flags interval ; elements = { 10.0.0.0/8 : 7 } ; }');
    ok('add set ip t p { typeof ip protocol ; }');
    ok('add element ip t p { tcp, 17 }');
    expect(ok('list set ip t s')).toContain('\t\ttypeof ip saddr . tcp dport\n\t\telements = { 10.0.0.1 . 22 }');
    expect(ok('list map ip t m')).toContain('\t\ttypeof ip saddr : meta mark\n\t\tflags interval\n\t\telements = { 10.0.0.0/8 : 0x00000007 }');
    expect(ok('list set ip t p')).toContain('elements = { tcp, udp }');
    expect(ok('-j list set ip t s')).toContain('"type": ["ipv4_addr", "inet_service"]');
  });

  it('a later type replaces typeof, as nft lists it', () => {
    const { ok } = setup();
    ok('add table ip t');
    ok('add set ip t s { typeof ip saddr ; type ipv4_addr ; }');
    expect(ok('list set ip t s')).toContain('\t\ttype ipv4_addr\n');
  });

  it('the interface index type is iface_index, as nft names it', () => {
    const { ok, nft } = setup();
    ok('add table ip t');
    const r = nft('add set ip t s { type ifindex ; }');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('Error: set type ifindex is not supported');
    ok('add set ip t s { type iface_index ; }');
    expect(ok('list set ip t s')).toContain('\t\ttype iface_index\n');
  });

    it('refuses data a map cannot hold', () => {
    const { nft } = setup();
    nft('add table ip t');
    const r = nft('add map ip t m { typeof ip saddr : tcp flags ; }');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('Error: map data of type tcp_flag is not supported');
  });
});
