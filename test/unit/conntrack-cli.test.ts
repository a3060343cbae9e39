import * as fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ControlServer } from '../../src/control/server.js';
import { parseConfig } from '../../src/control/commands.js';
import { silentLogger } from '../../src/log.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { configure } from '../../src/library.js';
import { Controller } from '../../src/control/exec.js';
import {
  CtEntry,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_DST_NAT,
  IPS_DST_NAT_DONE,
  IPS_SEEN_REPLY,
  IPS_SRC_NAT,
  IPS_SRC_NAT_DONE,
  TCP_CONNTRACK_CLOSE_WAIT,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_FIN_WAIT,
  TCP_CONNTRACK_LAST_ACK,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_TIME_WAIT,
} from '../../src/conntrack/entry.js';
import { runConntrack, runConntrackStream, type ConntrackEnv, type ConntrackView } from '../../src/control/conntrack.js';
import type { CtEventKind } from '../../src/control/conntrack-format.js';
import { parseIp4 } from '../../src/wire/addr.js';

/**
 * `conntrack` against what conntrack-tools 1.4.7 printed over the kernel's table
 * (test/fixtures/conntrack/expected.txt, made by scripts/capture-conntrack.sh):
 * a table holding the same connections (tuples, states, statuses, marks) gives
 * the same stdout, stderr and exit code for every command, byte for byte. The
 * only values taken from the fixture are those the kernel's clock and hash
 * decide: each entry's seconds left and its id.
 */
const FIXTURE = new URL('../fixtures/conntrack/expected.txt', import.meta.url);

interface Case {
  section: string;
  args: string[];
  stdout: string[];
  stderr: string[];
  code: number;
}

function cases(): Case[] {
  const list: Case[] = [];
  let section = '';
  for (const line of fs.readFileSync(FIXTURE, 'utf8').split('\n')) {
    if (line.startsWith('## ')) section = line.slice(3);
    else if (line.startsWith('$ conntrack')) list.push({ section, args: line.slice('$ conntrack'.length).split(' ').filter((w) => w !== ''), stdout: [], stderr: [], code: 0 });
    else if (line === '') continue;
    else {
      const c = list[list.length - 1];
      const m = /^\(exit (\d+)\)$/.exec(line);
      if (m) c.code = Number(m[1]);
      else if (line.startsWith('! ')) c.stderr.push(line.slice(2));
      else c.stdout.push(line);
    }
  }
  return list;
}

const STATE_NAMES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];

/** A table with the Conntrack class's interface, its timeouts set by hand. */
class FakeTable implements ConntrackView {
  entries: CtEntry[] = [];
  /** Seconds left, as the kernel's clock had them: sets the deadline. */
  left = {
    set: (e: CtEntry, seconds: number): void => {
      e.deadline = this.now + seconds * 1000 + 500;
    },
  };
  stats = { found: 0, invalid: 0, insert: 0, insert_failed: 0, drop: 0, early_drop: 0, error: 0, search_restart: 0 };
  private listeners: ((ev: CtEventKind, e: CtEntry) => void)[] = [];
  get count(): number {
    return this.entries.length;
  }
  find(proto: number, s: number, d: number, sp: number, dp: number): CtEntry | null {
    for (const e of this.entries) {
      if (e.proto !== proto) continue;
      if (e.os === s && e.od === d && e.osp === sp && e.odp === dp) return e;
      if (e.rs === s && e.rd === d && e.rsp === sp && e.rdp === dp) return e;
    }
    return null;
  }
  forEach(fn: (e: CtEntry) => void): void {
    for (const e of [...this.entries]) fn(e);
  }
  delete(e: CtEntry): void {
    this.entries = this.entries.filter((x) => x !== e);
    this.emit('destroy', e);
  }
  flush(): number {
    const n = this.entries.length;
    for (const e of [...this.entries]) this.delete(e);
    return n;
  }
  now = 1_000_000;
  /** Wall-clock ms at `now`. */
  wall = 1_764_637_000_000;
  timeLeft(e: CtEntry): number {
    const ms = e.deadline - this.now;
    return ms <= 0 ? 0 : Math.floor(ms / 1000);
  }
  stateName(e: CtEntry): string {
    return e.proto === 6 ? STATE_NAMES[e.state] : '';
  }
  on(fn: (ev: CtEventKind, e: CtEntry) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((f) => f !== fn);
    };
  }
  setEntryMark(e: CtEntry, mark: number): void {
    e.mark = mark;
    this.emit('update', e);
  }
  emit(ev: CtEventKind, e: CtEntry): void {
    for (const f of [...this.listeners]) f(ev, e);
  }
}

const ip = (s: string): number => parseIp4(s)!;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const NAT_DONE = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE;

function entry(proto: number, o: [string, string, number, number], r: [string, string, number, number], status: number, state = 0, mark = 0): CtEntry {
  const e = new CtEntry();
  e.proto = proto;
  [e.os, e.od, e.osp, e.odp] = [ip(o[0]), ip(o[1]), o[2], o[3]];
  [e.rs, e.rd, e.rsp, e.rdp] = [ip(r[0]), ip(r[1]), r[2], r[3]];
  // The router has a nat table, so every connection got its (possibly null) NAT binding.
  e.status = status | IPS_CONFIRMED | NAT_DONE;
  e.state = state;
  e.mark = mark;
  return e;
}

const A = '10.231.61.2';
const RA = '10.231.61.1';
const RB = '10.231.62.1';
const B = '10.231.62.2';
const REPLIED = IPS_SEEN_REPLY;
const ASSURED = IPS_SEEN_REPLY | IPS_ASSURED;

/** The connections scripts/capture-conntrack.sh makes. */
function traffic(): CtEntry[] {
  return [
    entry(6, [A, RA, 40008, 8080], [B, A, 80, 40008], ASSURED | IPS_DST_NAT, TCP_CONNTRACK_ESTABLISHED),
    entry(17, [A, B, 40007, 5007], [B, RB, 5007, 40007], REPLIED | IPS_SRC_NAT),
    entry(6, [A, B, 40001, 5001], [B, A, 5001, 40001], ASSURED, TCP_CONNTRACK_ESTABLISHED, 42),
    entry(6, [A, B, 40003, 5003], [B, A, 5003, 40003], ASSURED, TCP_CONNTRACK_TIME_WAIT),
    entry(6, [A, B, 40006, 5006], [B, RB, 5006, 40006], ASSURED | IPS_SRC_NAT, TCP_CONNTRACK_ESTABLISHED),
    entry(17, [A, B, 40004, 5004], [B, A, 5004, 40004], REPLIED),
    // ICMP echo id 4660: the original tuple's "ports" are id and type 8/code 0, the reply's id and type 0.
    entry(1, [A, B, 4660, 8 << 8], [B, A, 4660, 0], REPLIED),
    entry(17, [A, B, 40005, 5005], [B, A, 5005, 40005], 0),
    entry(6, [A, B, 40002, 5002], [B, A, 5002, 40002], 0, TCP_CONNTRACK_SYN_SENT),
  ];
}

/** Sets the seconds left and ids of the entries a case's expected lines show (the kernel's clock and hash). */
function clockFrom(table: FakeTable, lines: string[]): void {
  for (const l of lines) {
    const x = /^<flow[^>]*><meta direction="original"><layer3 [^>]*><src>([\d.]+)<\/src><dst>([\d.]+)<\/dst><\/layer3><layer4 protonum="(\d+)"[^>]*>(?:<sport>(\d+)<\/sport><dport>(\d+)<\/dport>)?/.exec(l);
    if (x !== null) {
      // -o xml: the ICMP tuple has no fields there, and there is one ICMP entry.
      const e = table.entries.find(
        (y) => y.os === ip(x[1]) && y.od === ip(x[2]) && y.proto === Number(x[3]) && (x[4] === undefined || (y.osp === Number(x[4]) && y.odp === Number(x[5]))),
      );
      if (e === undefined) continue;
      table.left.set(e, Number(/<timeout>(\d+)<\/timeout>/.exec(l)![1]));
      e.id = Number(/<id>(\d+)<\/id>/.exec(l)![1]);
      continue;
    }
    const f = l.replace(/^ *\[\w+\] /, '').replace(/^ipv4 +2 /, '').split(/ +/);
    const m = /src=(\S+) dst=(\S+) (?:sport=(\d+) dport=(\d+)|type=(\d+) code=(\d+) id=(\d+))/.exec(l);
    if (m === null) continue;
    const [sp, dp] = m[3] !== undefined ? [Number(m[3]), Number(m[4])] : [Number(m[7]), (Number(m[5]) << 8) | Number(m[6])];
    const e = table.entries.find((x) => x.os === ip(m[1]) && x.od === ip(m[2]) && x.osp === sp && x.odp === dp);
    if (e === undefined) continue;
    table.left.set(e, Number(f[2]));
    const id = /(?:use=\d+|dport=\d+|mark=\d+) id=(\d+)(?: \[USERSPACE\].*)?$/.exec(l);
    if (id) e.id = Number(id[1]);
  }
}

function env(table: FakeTable, sysctls: Record<string, number> = {}): ConntrackEnv {
  return {
    ct: table,
    now: () => table.now,
    wallNow: () => table.wall,
    sysctl: (n) => sysctls[n] ?? 0,
    random: () => 0.5,
  };
}

/** The entries in the order of the capture's first listing (the kernel's hash order), so listings compare line by line. */
function inKernelOrder(entries: CtEntry[], all: Case[]): CtEntry[] {
  const first = all.find((c) => c.args.join(' ') === '-L')!.stdout;
  const pos = (e: CtEntry): number => first.findIndex((l) => l.includes(e.proto === 1 ? `id=${e.osp} ` : `sport=${e.osp} dport=${e.odp} `));
  return [...entries].sort((a, b) => pos(a) - pos(b));
}

describe('conntrack: the kernel-recorded sessions', () => {
  const all = cases();

  it('has the fixture', () => {
    expect(all.length).toBeGreaterThan(100);
  });

  it('replays every command of the capture in order, with its output, errors and exit code', () => {
    const table = new FakeTable();
    table.entries = inKernelOrder(traffic(), all);
    const sysctls: Record<string, number> = {};
    let checked = 0;
    for (const c of all) {
      const cmd = c.args.join(' ');
      // Event streams are replayed below, each with the events that made it.
      if (c.args.includes('-E') && c.section !== 'errors') continue;
      if (c.section === 'accounting' && table.entries.length === 0) {
        // The capture turns nf_conntrack_acct on and sends one datagram each way.
        sysctls['net.netfilter.nf_conntrack_acct'] = 1;
        const e = entry(17, [A, B, 40016, 5010], [B, A, 5010, 40016], REPLIED);
        [e.pkts0, e.bytes0, e.pkts1, e.bytes1] = [1, 29, 1, 29];
        table.entries.push(e);
      }
      if (c.section === 'timestamps' && sysctls['net.netfilter.nf_conntrack_timestamp'] !== 1) {
        // The capture turns nf_conntrack_timestamp on and makes one more flow; its start time and
        // age are the kernel clock's (taken from the -o ktimestamp line).
        sysctls['net.netfilter.nf_conntrack_acct'] = 0;
        sysctls['net.netfilter.nf_conntrack_timestamp'] = 1;
        const e = entry(17, [A, B, 40017, 5010], [B, A, 5010, 40017], REPLIED);
        const stamped = all.find((x) => x.args.includes('ktimestamp'))!.stdout[0];
        const delta = Number(/delta-time=(\d+)/.exec(stamped)![1]);
        const [, mon, day, hh, mm, ss, year] = /\[start=\w+ (\w+) +(\d+) (\d+):(\d+):(\d+) (\d+)\]/.exec(stamped)!;
        const startMs = new Date(Number(year), MONTHS.indexOf(mon), Number(day), Number(hh), Number(mm), Number(ss)).getTime();
        e.start = table.now - delta * 1000 - 100;
        table.wall = startMs + delta * 1000 + 100;
        table.entries.push(e);
      }
      if (c.section === 'errors') {
        sysctls['net.netfilter.nf_conntrack_acct'] = 0;
        sysctls['net.netfilter.nf_conntrack_timestamp'] = 0;
      }
      // An update of the timeout prints what it set; the others print the clock as the kernel had it.
      if (!(c.args.includes('-U') && c.args.includes('-t'))) clockFrom(table, c.stdout);
      const r = runConntrack(env(table, sysctls), c.args);
      const want = c.stdout.map((l) => l + '\n').join('');
      // The kernel prints one line per CPU; the stack runs on one.
      const got = cmd === '-S' || cmd === '--stats' ? r.stdout + want.split('\n').slice(1).join('\n') : r.stdout;
      expect({ cmd, stdout: got, stderr: r.stderr, code: r.code }).toEqual({
        cmd,
        stdout: want,
        stderr: c.stderr.map((l) => l + '\n').join(''),
        code: c.code,
      });
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });
});

describe('conntrack -E', () => {
  const evCases = cases().filter((c) => c.args.includes('-E') && c.section !== 'errors');
  // The port id is the deleting socket's; the kernel finds the program's name only while it still runs.
  const portid = (s: string): string => s.replace(/portid=\d+( progname=\S+)?/g, 'portid=N');

  function stream(table: FakeTable, args: string[]) {
    let out = '';
    let err = '';
    let interrupt: (() => void) | null = null;
    const done = runConntrackStream(env(table), args, {
      out: (t) => (out += t),
      err: (t) => (err += t),
      onInterrupt: (cb) => (interrupt = cb),
      onClose: () => {},
    });
    return {
      get out() {
        return out;
      },
      get err() {
        return err;
      },
      stop: async () => {
        interrupt!();
        return done;
      },
    };
  }

  function expected(c: Case) {
    return { out: portid(c.stdout.map((l) => l + '\n').join('')), err: c.stderr.map((l) => l + '\n').join(''), code: c.code };
  }

  it('streams new, update and destroy as the kernel reported a UDP exchange, a TCP connection and a delete', async () => {
    const c = evCases.find((x) => x.args.join(' ') === '-E')!;
    const table = new FakeTable();
    const s = stream(table, ['-E']);
    const udp = entry(17, [A, B, 40011, 5010], [B, A, 5010, 40011], 0);
    table.left.set(udp, 30);
    table.entries.push(udp);
    table.emit('new', udp);
    udp.status |= IPS_SEEN_REPLY;
    table.emit('update', udp);
    const tcp = entry(6, [A, B, 40012, 5003], [B, A, 5003, 40012], 0, TCP_CONNTRACK_SYN_SENT);
    table.left.set(tcp, 120);
    table.entries.push(tcp);
    table.emit('new', tcp);
    // The handshake, the data and the close as nf_conntrack_proto_tcp moves through them, each with its timeout.
    const steps: [number, number, number][] = [
      [TCP_CONNTRACK_SYN_RECV, IPS_SEEN_REPLY, 60],
      [TCP_CONNTRACK_ESTABLISHED, IPS_SEEN_REPLY | IPS_ASSURED, 432000],
      [TCP_CONNTRACK_FIN_WAIT, IPS_SEEN_REPLY | IPS_ASSURED, 120],
      [TCP_CONNTRACK_CLOSE_WAIT, IPS_SEEN_REPLY | IPS_ASSURED, 60],
      [TCP_CONNTRACK_LAST_ACK, IPS_SEEN_REPLY | IPS_ASSURED, 30],
      [TCP_CONNTRACK_TIME_WAIT, IPS_SEEN_REPLY | IPS_ASSURED, 120],
    ];
    for (const [state, status, left] of steps) {
      tcp.state = state;
      tcp.status |= status;
      table.left.set(tcp, left);
      table.emit('update', tcp);
    }
    table.left.set(udp, 29);
    const del = runConntrack(env(table), ['-D', '-p', 'udp', '--sport', '40011']);
    expect(del.code).toBe(0);
    const code = await s.stop();
    expect({ out: portid(s.out), err: s.err, code }).toEqual(expected(c));
  });

  it('-e NEW shows only new connections; -e DESTROY -p udp only their end', async () => {
    const table = new FakeTable();
    const c1 = evCases.find((x) => x.args.join(' ') === '-E -e NEW')!;
    const s1 = stream(table, ['-E', '-e', 'NEW']);
    const u13 = entry(17, [A, B, 40013, 5010], [B, A, 5010, 40013], 0);
    table.left.set(u13, 30);
    table.entries.push(u13);
    table.emit('new', u13);
    u13.status |= IPS_SEEN_REPLY;
    table.emit('update', u13);
    expect({ out: portid(s1.out), err: '', code: 0 }).toEqual({ ...expected(c1), err: '' });
    expect(await s1.stop()).toBe(0);
    expect(s1.err).toBe(expected(c1).err);

    const c2 = evCases.find((x) => x.args.join(' ') === '-E --event-mask DESTROY -p udp')!;
    const s2 = stream(table, ['-E', '--event-mask', 'DESTROY', '-p', 'udp']);
    const u14 = entry(17, [A, B, 40014, 5010], [B, A, 5010, 40014], 0);
    table.left.set(u14, 30);
    table.entries.push(u14);
    table.emit('new', u14);
    u14.status |= IPS_SEEN_REPLY;
    table.emit('update', u14);
    table.left.set(u14, 29);
    table.left.set(u13, 28);
    runConntrack(env(table), ['-D', '-p', 'udp', '--sport', '40014']);
    runConntrack(env(table), ['-D', '-p', 'udp', '--sport', '40013']);
    const code = await s2.stop();
    expect({ out: portid(s2.out), err: s2.err, code }).toEqual(expected(c2));
  });

  it('-o extended,id adds the family and the id to events', async () => {
    const c = evCases.find((x) => x.args.join(' ') === '-E -e NEW,DESTROY -o extended,id -p udp')!;
    const table = new FakeTable();
    const s = stream(table, ['-E', '-e', 'NEW,DESTROY', '-o', 'extended,id', '-p', 'udp']);
    const u = entry(17, [A, B, 40015, 5010], [B, A, 5010, 40015], 0);
    u.id = Number(/id=(\d+)/.exec(c.stdout[0].split(' dport=5010 ')[1])![1]);
    table.left.set(u, 30);
    table.entries.push(u);
    table.emit('new', u);
    u.status |= IPS_SEEN_REPLY;
    table.emit('update', u);
    table.left.set(u, 29);
    runConntrack(env(table), ['-D', '-p', 'udp', '--sport', '40015']);
    const code = await s.stop();
    expect({ out: portid(s.out), err: s.err, code }).toEqual(expected(c));
  });

  it('-o xml opens the document with the first event and closes it on ^C', async () => {
    const c = evCases.find((x) => x.args.join(' ') === '-E -o xml -p udp')!;
    const table = new FakeTable();
    const s = stream(table, ['-E', '-o', 'xml', '-p', 'udp']);
    const u = entry(17, [A, B, 40018, 5010], [B, A, 5010, 40018], 0);
    u.id = Number(/<id>(\d+)<\/id>/.exec(c.stdout[2])![1]);
    table.left.set(u, 30);
    table.entries.push(u);
    table.emit('new', u);
    u.status |= IPS_SEEN_REPLY;
    table.emit('update', u);
    table.left.set(u, 29);
    runConntrack(env(table), ['-D', '-p', 'udp', '--sport', '40018']);
    const code = await s.stop();
    expect({ out: portid(s.out), err: s.err, code }).toEqual(expected(c));
  });

  it('-o ktimestamp: a destroy event carries delta-time, [start=...] and [stop=...] (nf_conntrack_timestamp on)', async () => {
    const c = evCases.find((x) => x.args.join(' ') === '-E -o ktimestamp -p udp')!;
    const table = new FakeTable();
    const sysctls = { 'net.netfilter.nf_conntrack_timestamp': 1 };
    // The kernel's clock: the entry's start and end, as the destroy line shows them.
    const when = (l: string, k: string): number => {
      const [, mon, day, hh, mm, ss, year] = new RegExp(`\\[${k}=\\w+ (\\w+) +(\\d+) (\\d+):(\\d+):(\\d+) (\\d+)\\]`).exec(l)!;
      return new Date(Number(year), MONTHS.indexOf(mon), Number(day), Number(hh), Number(mm), Number(ss)).getTime();
    };
    const gone = c.stdout.find((l) => l.startsWith('[DESTROY]'))!;
    const [startMs, stopMs] = [when(gone, 'start'), when(gone, 'stop')];
    let out = '';
    let err = '';
    let interrupt: (() => void) | null = null;
    const done = runConntrackStream(env(table, sysctls), ['-E', '-o', 'ktimestamp', '-p', 'udp'], {
      out: (t) => (out += t),
      err: (t) => (err += t),
      onInterrupt: (cb) => (interrupt = cb),
      onClose: () => {},
    });
    const u = entry(17, [A, B, 40019, 5010], [B, A, 5010, 40019], 0);
    u.start = table.now;
    table.wall = startMs + 300;
    table.left.set(u, 30);
    table.entries.push(u);
    table.emit('new', u);
    u.status |= IPS_SEEN_REPLY;
    table.emit('update', u);
    table.now += stopMs - startMs;
    table.wall += stopMs - startMs;
    u.stop = table.now;
    table.left.set(u, 28);
    runConntrack(env(table, sysctls), ['-D', '-p', 'udp', '--sport', '40019']);
    interrupt!();
    expect({ out: portid(out), err, code: await done }).toEqual(expected(c));
  });

  it('ends quietly when the client goes, and stops listening', async () => {
    const table = new FakeTable();
    let close: (() => void) | null = null;
    let out = '';
    const done = runConntrackStream(env(table), ['-E'], { out: (t) => (out += t), err: () => {}, onClose: (cb) => (close = cb) });
    close!();
    expect(await done).toBe(0);
    const e = entry(17, [A, B, 1, 2], [B, A, 2, 1], 0);
    table.emit('new', e);
    expect(out).toBe('');
  });
});

describe('conntrack: reading the command line', () => {
  const table = (): FakeTable => {
    const t = new FakeTable();
    t.entries = traffic();
    for (const e of t.entries) t.left.set(e, 100);
    return t;
  };

  it('takes --opt=value, unique long-option prefixes and arguments glued to short options', () => {
    const t = table();
    const a = runConntrack(env(t), ['--dum', '-p', 'tcp', '--sport=40001']);
    const b = runConntrack(env(t), ['-L', '-ptcp', '--sp', '40001']);
    expect(a.stdout.split('\n').length).toBe(2);
    expect(a).toEqual(b);
    expect(a.stdout).toContain('sport=40001 dport=5001');
  });

  it('refuses an ambiguous prefix as an unknown option', () => {
    const r = runConntrack(env(table()), ['-L', '--orig']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe("conntrack v1.4.7 (conntrack-tools): unknown option `--orig'");
  });

  it('-u !ASSURED keeps what is not assured, -u UNREPLIED what saw no reply', () => {
    const t = table();
    const notAssured = runConntrack(env(t), ['-L', '-u', '!ASSURED']).stdout.trim().split('\n');
    expect(notAssured.every((l) => !l.includes('[ASSURED]'))).toBe(true);
    expect(notAssured.length).toBe(t.entries.filter((e) => (e.status & IPS_ASSURED) === 0).length);
  });

  it('-D of one flow removes it from the table (its next packet starts a new entry)', () => {
    const t = table();
    const r = runConntrack(env(t), ['-D', '-p', 'tcp', '-s', A, '-d', B, '--sport', '40001', '--dport', '5001']);
    expect(r.code).toBe(0);
    expect(t.find(6, ip(A), ip(B), 40001, 5001)).toBeNull();
    expect(t.count).toBe(8);
  });

  it('-m V/M on -U sets the bits of M to V and leaves the others', () => {
    const t = table();
    const e = t.entries[2];
    expect(e.mark).toBe(42);
    const r = runConntrack(env(t), ['-U', '-s', A, '-d', B, '-p', 'udp', '--dport', '5004', '-m', '0x100/0xff00']);
    expect(r.code).toBe(0);
    expect(t.entries[5].mark).toBe(0x100);
    expect(e.mark).toBe(42);
  });

  it('-F empties the table; -C counts what is there', () => {
    const t = table();
    expect(runConntrack(env(t), ['-C']).stdout).toBe('9\n');
    runConntrack(env(t), ['-F']);
    expect(runConntrack(env(t), ['-C']).stdout).toBe('0\n');
  });
});

describe('conntrack over the control socket and in config files', () => {
  it('-E streams over the socket and, on the client\'s interrupt, ends with the summary and exit 0', async () => {
    const table = new FakeTable();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-ct-'));
    const p = path.join(dir, 'ctl.sock');
    const server = new ControlServer(p, (argv, io) => runConntrackStream(env(table), argv.slice(1), io), silentLogger);
    await server.listen();
    try {
      const c = net.connect(p);
      const msgs: { type: string; data?: string; code?: number }[] = [];
      let buf = '';
      const ended = new Promise<void>((resolve) => c.on('close', () => resolve()));
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          msgs.push(JSON.parse(buf.slice(0, nl)));
          buf = buf.slice(nl + 1);
        }
      });
      await new Promise<void>((resolve) => c.once('connect', () => resolve()));
      c.write(JSON.stringify({ argv: ['conntrack', '-E', '-p', 'udp'] }) + '\n');
      await new Promise((r) => setTimeout(r, 50));
      const u = entry(17, [A, B, 40011, 5010], [B, A, 5010, 40011], 0);
      table.left.set(u, 30);
      table.emit('new', u);
      table.emit('new', entry(6, [A, B, 1, 2], [B, A, 2, 1], 0, TCP_CONNTRACK_SYN_SENT));
      await new Promise((r) => setTimeout(r, 50));
      c.write(JSON.stringify({ type: 'interrupt' }) + '\n');
      await ended;
      expect(msgs).toEqual([
        { type: 'out', data: '    [NEW] udp      17 30 src=10.231.61.2 dst=10.231.62.2 sport=40011 dport=5010 [UNREPLIED] src=10.231.62.2 dst=10.231.61.2 sport=5010 dport=40011\n' },
        { type: 'err', data: 'conntrack v1.4.7 (conntrack-tools): 1 flow events have been shown.\n' },
        { type: 'exit', code: 0 },
      ]);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a config file takes the commands that change the table and refuses the others, naming the line', () => {
    expect(parseConfig('conntrack -F\nconntrack -D -p udp --dport 53\nconntrack -U -m 1').map((l) => l.cmd.kind)).toEqual(['conntrack', 'conntrack', 'conntrack']);
    expect(() => parseConfig('# listing\nconntrack -L')).toThrow(/line 2: .*show commands do not belong/);
    expect(() => parseConfig('conntrack -F -p tcp')).toThrow("line 1: conntrack v1.4.7 (conntrack-tools): Illegal option `--protonum' with this command");
  });

  it('runs on the stack\'s own table: configure() lines and the controller\'s show commands', () => {
    const stack = new Stack({ time: new VirtualTime(), seed: 1 });
    configure(stack, ['conntrack -F']);
    // A delete that finds nothing fails, as conntrack exits 1 then.
    expect(() => configure(stack, ['conntrack -D -p udp --dport 53'])).toThrow('line 1: conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.');
    const ctl = new Controller(stack, { open: () => { throw new Error('no devices'); } });
    expect(ctl.show(['conntrack', '-C'])).toBe('0\n');
    expect(ctl.show(['conntrack', '-S'])).toBe('cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n');
    expect(() => configure(stack, ['conntrack -L'])).toThrow(/show commands do not belong/);
    stack.close();
  });
});
