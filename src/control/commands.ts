import { CommandError, Words, splitWords } from './words.js';
import { NftUsageError, parseNftArgs } from './nft.js';
import { parseNft } from './nft-parse.js';
import { NftSyntaxError, formatNftError } from './nft-lex.js';
import fs from 'node:fs';
import { IptError, splitQuoted } from './iptables-rule.js';
import { parseIptables } from './iptables.js';
import { parseIp4, parseMac } from '../wire/addr.js';
import { SERVICE_DEFAULT_PORTS, SERVICE_NAMES, serviceProtos, type ServiceName, type ServiceProto } from '../services/registry.js';
import { parseRoute, parseRule, type RouteCommand } from './ip-route.js';
import { checkConntrackArgs, conntrackChanges } from './conntrack.js';
import { tcChanges, TcError } from './tc.js';
import { parseEthtool, parseFeatures } from './ethtool.js';
import type { OffloadFeature } from '../link/offload.js';

/**
 * The command language: the lines of a config file and the commands the control
 * socket takes, in the syntax of the Linux tools they mimic. `ip` in front is
 * optional (`addr add ...` and `ip addr add ...` are the same command).
 */
export type Command =
  | { kind: 'link-add'; name: string; type: 'tap' | 'tun'; mac?: Uint8Array; mtu?: number; vnetHdr: boolean; offload?: boolean; txThread?: boolean }
  | { kind: 'link-del'; name: string }
  | { kind: 'link-set'; name: string; up?: boolean; mtu?: number; features?: [OffloadFeature, boolean][]; gsoMaxSize?: number }
  | { kind: 'addr-add' | 'addr-del'; addr: number; prefixLen: number; dev: string }
  | RouteCommand
  | { kind: 'neigh-add' | 'neigh-replace'; ip: number; mac: Uint8Array; dev: string; nud: 'PERMANENT' | 'REACHABLE' | 'STALE' }
  | { kind: 'neigh-del'; ip: number; dev: string }
  | { kind: 'neigh-flush'; dev?: string }
  | { kind: 'show'; what: 'link' | 'addr' | 'neigh'; stats: boolean; json: boolean; dev?: string }
  | { kind: 'nstat'; json: boolean; zeros: boolean }
  | { kind: 'sysctl-set'; name: string; value: string; quiet: boolean }
  | { kind: 'sysctl-get'; names: string[]; valueOnly: boolean; all: boolean }
  | { kind: 'service-add' | 'service-del'; name: ServiceName; proto: ServiceProto; addr: number; port: number; fastOpen?: number }
  | { kind: 'service-list' }
  /** `nft ARGS...`, run by control/nft.ts. */
  | { kind: 'nft'; argv: string[] }
  /** `iptables ARGS...`, run by control/iptables.ts. */
  | { kind: 'iptables'; argv: string[] }
  /** `conntrack ARGS...`, run by control/conntrack.ts (-D, -F and -U change the table). */
  | { kind: 'conntrack'; argv: string[]; changes: boolean }
  /** `tc ARGS...`, run by control/tc.ts. */
  | { kind: 'tc'; argv: string[]; changes: boolean }
  /** `ethtool -k|-K|-S DEV ...` (control/ethtool.ts); -K changes features. */
  | { kind: 'ethtool'; argv: string[]; changes: boolean };

/** Commands that change state (allowed in a config file). */
export function isConfigCommand(c: Command): boolean {
  if (c.kind === 'conntrack' || c.kind === 'tc' || c.kind === 'ethtool') return c.changes;
  return c.kind !== 'show' && c.kind !== 'route-get' && c.kind !== 'route-show' && c.kind !== 'rule-show' && c.kind !== 'nstat' && c.kind !== 'sysctl-get' && c.kind !== 'service-list';
}

const OBJECTS = ['link', 'address', 'route', 'rule', 'neighbour', 'neighbor'] as const;

/** Parses one command given as words. Throws CommandError naming the word. */
export function parseCommand(argv: readonly string[]): Command {
  let words = [...argv];
  let json = false;
  let stats = false;
  if (words[0] === 'nstat') return parseNstat(new Words(words.slice(1)));
  if (words[0] === 'sysctl') return parseSysctl(new Words(words.slice(1)));
  if (words[0] === 'service') return parseService(new Words(words.slice(1)));
  if (words[0] === 'nft') return checkNft(words.slice(1));
  if (words[0] === 'iptables') return checkIptables(words.slice(1));
  if (words[0] === 'conntrack') return checkConntrack(words.slice(1));
  if (words[0] === 'tc') return checkTc(words.slice(1));
  if (words[0] === 'ethtool') return { kind: 'ethtool', argv: words.slice(1), changes: parseEthtool(words.slice(1)).op === 'set' };
  if (words[0] === 'ip') {
    words = words.slice(1);
    // iproute2's global options come before the object.
    while (words.length > 0 && words[0].startsWith('-')) {
      const o = words.shift()!;
      if (o === '-j' || o === '-json' || o === '--json') json = true;
      else if (o === '-s' || o === '-stats' || o === '-statistics') stats = true;
      else if (o === '-4') continue;
      else throw new CommandError('unknown option (expected -j, -s or -4)', null, o);
    }
  }
  const w = new Words(words);
  if (w.done) throw new CommandError('expected a command (link, addr, route, neigh, nstat, sysctl, service)');
  const obj = w.choose(OBJECTS, 'an object');
  switch (obj) {
    case 'link':
      return parseLink(w, json, stats);
    case 'address':
      return parseAddr(w, json, stats);
    case 'route':
      return parseRoute(w, json);
    case 'rule':
      return parseRule(w, json);
    case 'neighbour':
    case 'neighbor':
      return parseNeigh(w, json, stats);
  }
}

/** Parses a command written as one line. */
export function parseLine(line: string): Command | null {
  // iptables lines quote as iptables-restore does (`--comment "two words"`).
  const words = /^\s*iptables\s/.test(line) ? splitQuoted(line.replace(/\s+#[^"]*$/, '')) : splitWords(line);
  return words.length === 0 ? null : parseCommand(words);
}

/** Parses a whole config file; errors carry the line number. */
export function parseConfig(text: string, file?: string): { line: number; cmd: Command }[] {
  const out: { line: number; cmd: Command }[] = [];
  text.split('\n').forEach((l, i) => {
    let cmd: Command | null;
    try {
      cmd = parseLine(l);
    } catch (e) {
      if (e instanceof CommandError) throw e.at(i + 1, file);
      throw e;
    }
    if (cmd === null) return;
    if (!isConfigCommand(cmd)) throw new CommandError('show commands do not belong in a config file', i + 1, splitWords(l)[0]).at(i + 1, file);
    out.push({ line: i + 1, cmd });
  });
  return out;
}

function showOrList(w: Words, what: 'link' | 'addr' | 'neigh', json: boolean, stats: boolean): Command {
  let dev: string | undefined;
  while (!w.done) {
    const x = w.next('dev NAME');
    if (x === 'dev') dev = w.next('a device name');
    else dev = x; // `ip link show tap0`
  }
  return { kind: 'show', what, stats, json, dev };
}

function parseLink(w: Words, json: boolean, stats: boolean): Command {
  if (w.done) return { kind: 'show', what: 'link', stats, json };
  const verb = w.choose(['add', 'delete', 'set', 'show', 'list'] as const, 'a link command');
  if (verb === 'show' || verb === 'list') return showOrList(w, 'link', json, stats);
  if (verb === 'delete') {
    if (w.accept('dev')) {
      /* `ip link del dev NAME` */
    }
    const name = w.next('a device name');
    w.end();
    return { kind: 'link-del', name };
  }
  if (verb === 'set') {
    if (w.accept('dev')) {
      /* `ip link set dev NAME ...` */
    }
    const name = w.next('a device name');
    const cmd: Command = { kind: 'link-set', name };
    if (w.done) throw w.error('expected up, down, mtu N, offload FEATURE on|off, gro on|off or gso_max_size N');
    while (!w.done) {
      const k = w.choose(['up', 'down', 'mtu', 'offload', 'gro', 'gso_max_size'] as const, 'up, down, mtu N, offload FEATURE on|off, gro on|off or gso_max_size N');
      if (k === 'up') cmd.up = true;
      else if (k === 'down') cmd.up = false;
      else if (k === 'offload') {
        // `offload tso off gro on ...`: the feature pairs run to the end of the line.
        const rest: string[] = [];
        while (!w.done) rest.push(w.next('a feature'));
        cmd.features = [...(cmd.features ?? []), ...parseFeatures(rest, 0)];
      } else if (k === 'gro') {
        const v = w.choose(['on', 'off'] as const, 'on or off');
        cmd.features = [...(cmd.features ?? []), ['gro', v === 'on']];
      } else if (k === 'gso_max_size') cmd.gsoMaxSize = intArg(w, 'a size', 1, 65536);
      else cmd.mtu = intArg(w, 'an MTU', 68, 65535);
    }
    return cmd;
  }
  // link add NAME type tap|tun [mac MAC] [mtu N] [vnet_hdr] [offload on|off] [txthread on|off]
  if (w.accept('name') || w.accept('dev')) {
    /* iproute2 spelling: `ip link add name NAME ...` */
  }
  const name = w.next('a device name');
  if (!/^[A-Za-z0-9_.:%-]{1,15}$/.test(name)) throw w.error('expected a device name of 1 to 15 letters, digits or _.:%-', name);
  let type: 'tap' | 'tun' | undefined;
  let mac: Uint8Array | undefined;
  let mtu: number | undefined;
  let vnetHdr = false;
  let offload: boolean | undefined;
  let txThread: boolean | undefined;
  while (!w.done) {
    const k = w.choose(['type', 'mac', 'address', 'mtu', 'vnet_hdr', 'offload', 'txthread'] as const, 'type, mac, mtu, vnet_hdr, offload on|off or txthread on|off');
    if (k === 'offload') {
      offload = w.choose(['on', 'off'] as const, 'on or off') === 'on';
      continue;
    }
    if (k === 'txthread') {
      txThread = w.choose(['on', 'off'] as const, 'on or off') === 'on';
      continue;
    }
    if (k === 'type') type = w.choose(['tap', 'tun'] as const, 'a device type');
    else if (k === 'mac' || k === 'address') {
      const s = w.next('a MAC address');
      const m = parseMac(s);
      if (!m) throw w.error('expected a MAC address like 02:00:00:00:00:02', s);
      if ((m[0] & 1) !== 0) throw w.error('expected a unicast MAC address (the first byte must be even)', s);
      mac = m;
    } else if (k === 'mtu') mtu = intArg(w, 'an MTU', 68, 65535);
    else vnetHdr = true;
  }
  if (!type) throw w.error('expected "type tap" or "type tun"');
  if (type === 'tun' && mac) throw w.error('a tun device has no MAC address', 'mac');
  // virtio-net offloads are on unless asked otherwise; a bare `vnet_hdr` keeps the plain header.
  const cmd: Command = offload === undefined ? { kind: 'link-add', name, type, mac, mtu, vnetHdr } : { kind: 'link-add', name, type, mac, mtu, vnetHdr, offload };
  if (txThread !== undefined) cmd.txThread = txThread;
  return cmd;
}

function parseAddr(w: Words, json: boolean, stats: boolean): Command {
  if (w.done) return { kind: 'show', what: 'addr', stats, json };
  const verb = w.choose(['add', 'delete', 'show', 'list'] as const, 'an address command');
  if (verb === 'show' || verb === 'list') return showOrList(w, 'addr', json, stats);
  const s = w.next('an address like 10.0.0.2/24');
  const { addr, len } = cidrArg(w, s, true);
  let dev: string | undefined;
  while (!w.done) {
    w.choose(['dev'] as const, 'dev NAME');
    dev = w.next('a device name');
  }
  if (!dev) throw w.error('expected dev NAME');
  return { kind: verb === 'add' ? 'addr-add' : 'addr-del', addr, prefixLen: len, dev };
}

function parseNeigh(w: Words, json: boolean, stats: boolean): Command {
  if (w.done) return { kind: 'show', what: 'neigh', stats, json };
  const verb = w.choose(['add', 'delete', 'replace', 'flush', 'show', 'list'] as const, 'a neighbour command');
  if (verb === 'show' || verb === 'list') return showOrList(w, 'neigh', json, stats);
  if (verb === 'flush') {
    let dev: string | undefined;
    if (!w.done) {
      w.choose(['dev'] as const, 'dev NAME');
      dev = w.next('a device name');
    }
    w.end();
    return { kind: 'neigh-flush', dev };
  }
  const ip = ipArg(w, 'a neighbour address');
  let mac: Uint8Array | undefined;
  let dev: string | undefined;
  let nud: 'PERMANENT' | 'REACHABLE' | 'STALE' = 'PERMANENT';
  while (!w.done) {
    const k = w.choose(['lladdr', 'dev', 'nud'] as const, 'lladdr, dev or nud');
    if (k === 'lladdr') {
      const s = w.next('a MAC address');
      mac = parseMac(s) ?? undefined;
      if (!mac) throw w.error('expected a MAC address', s);
    } else if (k === 'dev') dev = w.next('a device name');
    else nud = w.choose(['permanent', 'reachable', 'stale'] as const, 'a state').toUpperCase() as typeof nud;
  }
  if (!dev) throw w.error('expected dev NAME');
  if (verb === 'delete') return { kind: 'neigh-del', ip, dev };
  if (!mac) throw w.error('expected lladdr MAC');
  return { kind: verb === 'add' ? 'neigh-add' : 'neigh-replace', ip, mac, dev, nud };
}

function parseNstat(w: Words): Command {
  let json = false;
  let zeros = false;
  while (!w.done) {
    const o = w.next('an option');
    if (o === '-j' || o === '--json') json = true;
    else if (o === '-z' || o === '--zeros') zeros = true;
    else if (o === '-a' || o === '--ignore' || o === '-s' || o === '--no-update') continue; // counters are absolute here
    else if (/^-[ajsz]+$/.test(o)) {
      if (o.includes('j')) json = true;
      if (o.includes('z')) zeros = true;
    } else throw w.error('unknown option (expected -a, -z, -s or -j)', o);
  }
  return { kind: 'nstat', json, zeros };
}

/** sysctl(8): `sysctl [-w] [-q] NAME=VALUE`, `sysctl [-n] NAME...`, `sysctl -a`. */
function parseSysctl(w: Words): Command {
  let write = false;
  let quiet = false;
  let valueOnly = false;
  let all = false;
  const rest: string[] = [];
  while (!w.done) {
    const x = w.next('a sysctl key');
    if (x === '-w' || x === '--write') write = true;
    else if (x === '-q' || x === '--quiet') quiet = true;
    else if (x === '-n' || x === '--values') valueOnly = true;
    else if (x === '-a' || x === '--all' || x === '-A' || x === '-X') all = true;
    else if (x.startsWith('-')) throw w.error('unknown option (expected -w, -n, -q or -a)', x);
    else rest.push(x);
  }
  const assigns = rest.filter((r) => r.includes('='));
  if (assigns.length > 0 || write) {
    // A value of several integers may come as more words: `NAME=32768 60999`.
    const more = rest.slice(1);
    const stray = rest[0]?.includes('=') ? more.find((x) => !/^-?\d+$/.test(x)) : rest[0];
    if (rest.length === 0 || stray !== undefined) throw w.error('expected one NAME=VALUE', stray);
    const [name, first] = splitOnce(assigns[0]);
    const value = [first, ...more].join(' ').trim();
    if (!/^[a-z0-9_./-]+$/i.test(name) || value === '') throw w.error('expected NAME=VALUE', assigns[0]);
    return { kind: 'sysctl-set', name, value, quiet };
  }
  if (!all && rest.length === 0) throw w.error('expected a key, NAME=VALUE or -a');
  return { kind: 'sysctl-get', names: rest, valueOnly, all };
}

/**
 * `service [list]` and `service add|del NAME PROTO [ADDR]:PORT [fastopen QLEN]`, e.g.
 * `service add echo udp :7`; `fastopen` gives a TCP service's listener a Fast Open queue.
 */
function parseService(w: Words): Command {
  if (w.done) return { kind: 'service-list' };
  const verb = w.choose(['add', 'delete', 'list', 'show'] as const, 'a service command');
  if (verb === 'list' || verb === 'show') {
    w.end();
    return { kind: 'service-list' };
  }
  const name = w.choose(SERVICE_NAMES, 'a service');
  const proto = w.choose(serviceProtos(name), `a protocol ${name} is served over`);
  const dflt = SERVICE_DEFAULT_PORTS[name];
  const s = (w.done || w.peek() === 'fastopen') && dflt !== undefined ? `:${dflt}` : w.next('ADDR:PORT or :PORT');
  const colon = s.lastIndexOf(':');
  if (colon < 0) throw w.error('expected ADDR:PORT or :PORT', s);
  const a = s.slice(0, colon);
  const p = s.slice(colon + 1);
  let addr = 0;
  if (a !== '') {
    const v = parseIp4(a);
    if (v === null) throw w.error('expected an IPv4 address before ":" (or nothing, for any address)', s);
    addr = v;
  }
  if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw w.error('expected a port from 1 to 65535 after ":"', s);
  let fastOpen: number | undefined;
  if (verb === 'add' && proto === 'tcp' && w.accept('fastopen')) {
    // setsockopt(TCP_FASTOPEN, QLEN) on the listener (net.ipv4.tcp_fastopen must have the server bit).
    const q = w.next('QLEN');
    if (!/^\d+$/.test(q) || Number(q) > 2147483647) throw w.error('expected a Fast Open queue length (0 or more) after fastopen', q);
    fastOpen = Number(q);
  }
  w.end();
  return { kind: verb === 'add' ? 'service-add' : 'service-del', name, proto, addr, port: Number(p), ...(fastOpen !== undefined ? { fastOpen } : {}) };
}

/** `nft ...`: syntax checked here (a config file fails before anything runs); carried out by control/nft.ts. */
function checkNft(argv: string[]): Command {
  let words: string[];
  let file: string | undefined;
  try {
    ({ words, opts: { file } } = parseNftArgs(argv));
  } catch (e) {
    if (e instanceof NftUsageError) throw new CommandError(`nft: ${e.message}`);
    throw e;
  }
  if (file !== undefined && file !== '-') {
    // `nft -f FILE` in a config file: the file is checked with the config, so an error in it stops everything.
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new CommandError(`nft: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, null, file);
    }
    try {
      parseNft(text);
    } catch (e) {
      if (e instanceof NftSyntaxError) throw new CommandError(`nft: ${formatNftError(text, e, file).trimEnd()}`);
      throw e;
    }
    return { kind: 'nft', argv };
  }
  try {
    parseNft(words.join(' '));
  } catch (e) {
    if (e instanceof NftSyntaxError) {
      const text = words.join(' ');
      const at = text.slice(e.tok.col - 1, e.tok.col - 1 + e.tok.len);
      throw new CommandError(`nft: ${e.detail}`, null, at === '' ? null : at);
    }
    throw e;
  }
  return { kind: 'nft', argv };
}

function splitOnce(s: string): [string, string] {
  const i = s.indexOf('=');
  return [s.slice(0, i).trim(), s.slice(i + 1).trim()];
}

function intArg(w: Words, what: string, min: number, max: number): number {
  const s = w.next(what);
  if (!/^\d+$/.test(s)) throw w.error(`expected ${what} (a number)`, s);
  const n = Number(s);
  if (n < min || n > max) throw w.error(`expected ${what} from ${min} to ${max}`, s);
  return n;
}

function ipArg(w: Words, what: string): number {
  const s = w.next(what);
  const ip = parseIp4(s);
  if (ip === null) throw w.error(`expected ${what} (A.B.C.D)`, s);
  return ip;
}

function cidrArg(w: Words, s: string, keepHost: boolean): { addr: number; len: number } {
  const [a, l, extra] = s.split('/');
  const addr = parseIp4(a);
  if (addr === null || extra !== undefined) throw w.error('expected an address like 10.0.0.2/24', s);
  let len = 32;
  if (l !== undefined) {
    if (!/^\d+$/.test(l) || Number(l) > 32) throw w.error('expected a prefix length from 0 to 32', s);
    len = Number(l);
  }
  if (!keepHost) {
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    if (((addr & mask) >>> 0) !== addr) throw w.error('expected a network address (host bits set)', s);
  }
  return { addr, len };
}

/** `iptables ...`: syntax checked here (a config file fails before anything runs); carried out by control/iptables.ts. */
function checkIptables(argv: string[]): Command {
  try {
    parseIptables(argv);
  } catch (e) {
    if (e instanceof IptError) throw new CommandError(e.message.split('\n')[0]);
    throw e;
  }
  return { kind: 'iptables', argv };
}

/** `conntrack ...`: checked here as conntrack-tools checks its command line; carried out by control/conntrack.ts. */
function checkConntrack(argv: string[]): Command {
  const err = checkConntrackArgs(argv);
  if (err !== null) throw new CommandError(err);
  return { kind: 'conntrack', argv, changes: conntrackChanges(argv) };
}

/** `tc ...`: global options checked here; carried out by control/tc.ts. */
function checkTc(argv: string[]): Command {
  let changes: boolean;
  try {
    changes = tcChanges(argv);
  } catch (e) {
    if (e instanceof TcError) throw new CommandError(`tc: ${e.message.trimEnd()}`);
    throw e;
  }
  return { kind: 'tc', argv, changes };
}
