/**
 * One iptables rule: its parsed form, the canonical spec iptables-save prints,
 * the `-L` columns, and the chain engine's expressions for it.
 *
 * Options are parsed getopt-style as iptables does: `!` inverts the option after
 * it, `-m NAME` loads a match whose options follow, and an option of the
 * protocol given with `-p` (`--dport`) loads that protocol's match implicitly
 * (which iptables-save then prints as `-m tcp`).
 */
import type { Expr, Field, LogLevel, NatExpr, NatFlag, Rhs, TimeUnit } from '../netfilter/ast.js';
import { CT_STATE_ESTABLISHED, CT_STATE_INVALID, CT_STATE_NEW, CT_STATE_RELATED, CT_STATE_UNTRACKED } from '../netfilter/ast.js';
import { PKTTYPE_BROADCAST, PKTTYPE_HOST, PKTTYPE_MULTICAST, PKTTYPE_OTHERHOST } from '../netfilter/ast.js';
import type { ServicesDb } from './etc-services.js';
import { formatNat } from './nft-print.js';

export const IPT_VERSION = 'v1.8.9 (nf_tables)';

/** An error as iptables reports it: the text on stderr (without newline) and the exit code. */
export class IptError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** A parameter problem: iptables' exit 2 with the `Try ...` line. */
export function paramError(msg: string, prog = 'iptables'): IptError {
  return new IptError(`${prog} ${IPT_VERSION}: ${msg}\nTry \`${prog} -h' or '${prog} --help' for more information.`, 2);
}

export interface Addr {
  neg: boolean;
  addr: number;
  mask: number;
}
export interface Ports {
  neg: boolean;
  lo: number;
  hi: number;
}

export type Match =
  | { m: 'tcp'; sport?: Ports; dport?: Ports; flags?: { neg: boolean; mask: number; comp: number }; none?: boolean }
  | { m: 'udp'; sport?: Ports; dport?: Ports; none?: boolean }
  | { m: 'icmp'; neg: boolean; type: number; codeLo: number; codeHi: number; set: boolean }
  | { m: 'multiport'; dir: 'sports' | 'dports' | ''; neg: boolean; ports: [number, number][] }
  | { m: 'state'; neg: boolean; states: number }
  | ({ m: 'conntrack'; neg: boolean; states: number } & CtOpts)
  | { m: 'connmark'; neg: boolean; value: number; mask: number; set: boolean }
  | { m: 'limit'; n: number; unit: 'sec' | 'min' | 'hour' | 'day'; burst: number }
  | { m: 'mark'; neg: boolean; value: number; mask: number; set: boolean }
  | { m: 'comment'; text: string }
  | { m: 'iprange'; src?: { neg: boolean; lo: number; hi: number }; dst?: { neg: boolean; lo: number; hi: number } }
  | { m: 'length'; neg: boolean; lo: number; hi: number; set: boolean }
  | { m: 'ttl'; op: 'eq' | 'ne' | 'gt' | 'lt'; value: number; set: boolean }
  | { m: 'pkttype'; neg: boolean; type: 'unicast' | 'broadcast' | 'multicast' | 'otherhost' | '' }
  | { m: 'dscp'; neg: boolean; value: number; set: boolean };

/** `-m conntrack` beyond --ctstate (libxt_conntrack). */
export interface CtOpts {
  proto?: { neg: boolean; p: number };
  origsrc?: Addr;
  origdst?: Addr;
  replsrc?: Addr;
  repldst?: Addr;
  origsrcport?: Ports;
  origdstport?: Ports;
  replsrcport?: Ports;
  repldstport?: Ports;
  status?: { neg: boolean; v: number };
  expire?: { neg: boolean; lo: number; hi: number };
  dir?: 'ORIGINAL' | 'REPLY';
}

/** NAT targets: addresses and ports as given (0 when absent). */
export interface NatTarget {
  t: 'SNAT' | 'DNAT' | 'MASQUERADE' | 'REDIRECT';
  addr?: number;
  addrEnd?: number;
  port?: number;
  portEnd?: number;
  random?: boolean;
  fully?: boolean;
  persistent?: boolean;
  set: boolean;
}

export type Target =
  | { t: 'ACCEPT' | 'DROP' | 'RETURN' }
  | { t: 'chain'; chain: string; goto: boolean }
  | { t: 'REJECT'; with: string }
  | { t: 'LOG'; prefix?: string; level: number }
  | { t: 'MARK'; value: number; mask: number; set: boolean }
  | { t: 'DSCP'; value: number; set: boolean }
  | NatTarget
  /** CONNMARK: set (ct mark = (ct mark & ~ctmask) ^ ctmark), save or restore with masks. */
  | { t: 'CONNMARK'; op: 'set' | 'save' | 'restore' | ''; ctmark: number; ctmask: number; nfmask: number };

export interface IptRule {
  src?: Addr;
  dst?: Addr;
  iif?: { neg: boolean; name: string };
  oif?: { neg: boolean; name: string };
  proto?: { neg: boolean; p: number };
  matches: Match[];
  target?: Target;
}

// ---------------------------------------------------------------- names

const PROTOS: Record<string, number> = {
  all: 0, icmp: 1, igmp: 2, ipencap: 4, tcp: 6, egp: 8, udp: 17, gre: 47, esp: 50, ah: 51, ipv6: 41,
  'ipv6-icmp': 58, icmpv6: 58, ospf: 89, pim: 103, vrrp: 112, l2tp: 115, sctp: 132, mh: 135, udplite: 136,
};
/** The name iptables prints for a protocol number (its own table, then /etc/protocols). */
const PROTO_NAMES: Record<number, string> = {
  1: 'icmp', 2: 'igmp', 4: 'ipencap', 6: 'tcp', 8: 'egp', 17: 'udp', 41: 'ipv6', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'icmpv6',
  89: 'ospf', 103: 'pim', 112: 'vrrp', 115: 'l2tp', 132: 'sctp', 135: 'mh', 136: 'udplite',
};

/** iptables' ICMP type names (libipt_icmp), in its order: name, type, code range. */
const ICMP_TYPES: [string, number, number, number][] = [
  ['any', 0xff, 0, 0xff],
  ['echo-reply', 0, 0, 0xff],
  ['destination-unreachable', 3, 0, 0xff],
  ['network-unreachable', 3, 0, 0],
  ['host-unreachable', 3, 1, 1],
  ['protocol-unreachable', 3, 2, 2],
  ['port-unreachable', 3, 3, 3],
  ['fragmentation-needed', 3, 4, 4],
  ['source-route-failed', 3, 5, 5],
  ['network-unknown', 3, 6, 6],
  ['host-unknown', 3, 7, 7],
  ['network-prohibited', 3, 9, 9],
  ['host-prohibited', 3, 10, 10],
  ['TOS-network-unreachable', 3, 11, 11],
  ['TOS-host-unreachable', 3, 12, 12],
  ['communication-prohibited', 3, 13, 13],
  ['host-precedence-violation', 3, 14, 14],
  ['precedence-cutoff', 3, 15, 15],
  ['source-quench', 4, 0, 0xff],
  ['redirect', 5, 0, 0xff],
  ['network-redirect', 5, 0, 0],
  ['host-redirect', 5, 1, 1],
  ['TOS-network-redirect', 5, 2, 2],
  ['TOS-host-redirect', 5, 3, 3],
  ['echo-request', 8, 0, 0xff],
  ['router-advertisement', 9, 0, 0xff],
  ['router-solicitation', 10, 0, 0xff],
  ['time-exceeded', 11, 0, 0xff],
  ['ttl-zero-during-transit', 11, 0, 0],
  ['ttl-zero-during-reassembly', 11, 1, 1],
  ['parameter-problem', 12, 0, 0xff],
  ['ip-header-bad', 12, 0, 0],
  ['required-option-missing', 12, 1, 1],
  ['timestamp-request', 13, 0, 0xff],
  ['timestamp-reply', 14, 0, 0xff],
  ['address-mask-request', 17, 0, 0xff],
  ['address-mask-reply', 18, 0, 0xff],
];
// Aliases iptables accepts on input.
const ICMP_ALIASES: Record<string, string> = { pong: 'echo-reply', ping: 'echo-request', 'ttl-exceeded': 'time-exceeded' };

/** REJECT's types: the canonical name, aliases, and the ICMP code (-1: tcp reset). */
const REJECT_TYPES: [string, string, number][] = [
  ['icmp-net-unreachable', 'net-unreach', 0],
  ['icmp-host-unreachable', 'host-unreach', 1],
  ['icmp-proto-unreachable', 'proto-unreach', 2],
  ['icmp-port-unreachable', 'port-unreach', 3],
  ['icmp-net-prohibited', 'net-prohib', 9],
  ['icmp-host-prohibited', 'host-prohib', 10],
  ['tcp-reset', 'tcp-rst', -1],
  ['icmp-admin-prohibited', 'admin-prohib', 13],
];

const LOG_LEVELS: [string, number][] = [
  ['alert', 1], ['crit', 2], ['debug', 7], ['emerg', 0], ['error', 3], ['info', 6], ['notice', 5], ['panic', 0], ['warning', 4],
];
const LOG_LEVEL_PRINT = ['emerg', 'alert', 'crit', 'error', 'warn', 'notice', 'info', 'debug'];
const LOG_LEVEL_AST: LogLevel[] = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

/** IPS_SRC_NAT / IPS_DST_NAT of a connection's status (as `ct status snat|dnat`). */
const IPS_SRC_NAT = 0x10;
const IPS_DST_NAT = 0x20;

/** --ctstate SNAT / DNAT, kept beside nft's state bits. */
const STATE_SNAT = 0x100;
const STATE_DNAT = 0x200;

/** conntrack states in the order iptables prints them. */
const STATES: [string, number][] = [
  ['INVALID', CT_STATE_INVALID],
  ['NEW', CT_STATE_NEW],
  ['RELATED', CT_STATE_RELATED],
  ['ESTABLISHED', CT_STATE_ESTABLISHED],
  ['UNTRACKED', CT_STATE_UNTRACKED],
  // conntrack's virtual states: the connection's source / destination was NATed.
  ['SNAT', STATE_SNAT],
  ['DNAT', STATE_DNAT],
];

/** The flags --tcp-flags knows (iptables has no names for ECE and CWR). */
const TCP_FLAGS: [string, number][] = [
  ['FIN', 0x01], ['SYN', 0x02], ['RST', 0x04], ['PSH', 0x08], ['ACK', 0x10], ['URG', 0x20],
];

const DSCP_CLASSES: Record<string, number> = {
  CS0: 0, CS1: 8, CS2: 16, CS3: 24, CS4: 32, CS5: 40, CS6: 48, CS7: 56, BE: 0,
  AF11: 10, AF12: 12, AF13: 14, AF21: 18, AF22: 20, AF23: 22, AF31: 26, AF32: 28, AF33: 30, AF41: 34, AF42: 36, AF43: 38, EF: 46,
};

export const BUILTIN_TARGETS = [
  'ACCEPT', 'DROP', 'RETURN', 'QUEUE', 'REJECT', 'LOG', 'MARK', 'DSCP', 'DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'CONNMARK', 'CT', 'NOTRACK', 'TCPMSS',
  'NFLOG', 'NFQUEUE', 'TPROXY', 'CLASSIFY', 'TTL', 'TOS', 'SET', 'AUDIT', 'CHECKSUM', 'TRACE', 'SECMARK', 'CONNSECMARK', 'NETMAP', 'IDLETIMER', 'TEE', 'HMARK', 'LED', 'SYNPROXY',
];
const NAT_TARGETS = ['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT'];

// ---------------------------------------------------------------- small parsers

function parseNum(s: string): number | null {
  if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s, 16);
  if (/^0[0-7]*$/.test(s)) return parseInt(s, 8);
  if (/^[1-9][0-9]*$/.test(s)) return parseInt(s, 10);
  return null;
}

function parseU32(s: string, what: string, opt: string): number {
  const n = parseNum(s);
  if (n === null || n > 0xffffffff) throw paramError(`${what}: bad integer value for option "${opt}", or out of range.\n`);
  return n;
}

/** xtables' dotted quad: up to four parts, the missing ones 0 (`1.2.3` is 1.2.3.0). */
function parseAddr(s: string): number | null {
  const parts = s.split('.');
  if (parts.length === 0 || parts.length > 4 || parts.some((p) => !/^\d{1,3}$/.test(p))) return null;
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const n = i < parts.length ? parseInt(parts[i], 10) : 0;
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

export function fmtAddr(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

function maskLen(mask: number): number {
  for (let l = 0; l <= 32; l++) if (lenMask(l) === mask >>> 0) return l;
  return -1;
}

function lenMask(l: number): number {
  return l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0;
}

function parseAddrMask(s: string): { addr: number; mask: number } {
  const slash = s.indexOf('/');
  const a = parseAddr(slash < 0 ? s : s.slice(0, slash));
  if (a === null) throw paramError(`host/network \`${slash < 0 ? s : s.slice(0, slash)}' not found`);
  let mask = 0xffffffff;
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    if (/^\d+$/.test(m)) {
      if (parseInt(m, 10) > 32) throw paramError(`invalid mask \`${m}' specified`);
      mask = lenMask(parseInt(m, 10));
    } else {
      const mm = m.includes('.') ? parseAddr(m) : null;
      if (mm === null) throw paramError(`invalid mask \`${m}' specified`);
      mask = mm;
    }
  }
  return { addr: (a & mask) >>> 0, mask: mask >>> 0 };
}

function parsePort(s: string, proto: string, services: ServicesDb): number {
  const n = /^\d+$/.test(s) ? parseInt(s, 10) : services.port(s, proto);
  if (n === null || n > 65535) throw paramError(`invalid port/service \`${s}' specified`);
  return n;
}

function parsePortRange(s: string, proto: string, services: ServicesDb, neg: boolean): Ports {
  const i = s.indexOf(':');
  if (i < 0) {
    const p = parsePort(s, proto, services);
    return { neg, lo: p, hi: p };
  }
  const lo = i === 0 ? 0 : parsePort(s.slice(0, i), proto, services);
  const hi = i === s.length - 1 ? 65535 : parsePort(s.slice(i + 1), proto, services);
  if (lo > hi) throw paramError(`invalid portrange (min > max)`);
  return { neg, lo, hi };
}

function whole(p: Ports): Ports | undefined {
  return p.lo === 0 && p.hi === 65535 ? undefined : p;
}

function parseTcpFlags(s: string): number {
  let v = 0;
  for (const f of s.split(',')) {
    const u = f.toUpperCase();
    if (u === 'ALL') v |= 0x3f;
    else if (u === 'NONE') continue;
    else {
      const x = TCP_FLAGS.find(([n]) => n === u);
      if (x === undefined) throw paramError(`Unknown TCP flag \`${f}'`);
      v |= x[1];
    }
  }
  return v;
}

function parseIcmpType(s: string, neg: boolean): Match {
  const name = ICMP_ALIASES[s] ?? s;
  const exact = ICMP_TYPES.filter(([n]) => n === name);
  const pre = ICMP_TYPES.filter(([n]) => n.startsWith(name));
  const hit = exact.length > 0 ? exact : pre;
  if (hit.length > 1) throw paramError(`Ambiguous ICMP type \`${s}': \`${hit[0][0]}' or \`${hit[1][0]}'?`);
  if (hit.length === 1) {
    const [, type, lo, hi] = hit[0];
    return { m: 'icmp', neg, type, codeLo: lo, codeHi: hi, set: true };
  }
  const m = /^(\d+)(?:\/(\d+))?$/.exec(s);
  if (m === null) throw paramError(`Unknown ICMP type \`${s}'`);
  const type = parseInt(m[1], 10);
  if (type > 255) throw paramError(`Unknown ICMP type \`${s}'`);
  if (m[2] === undefined) return { m: 'icmp', neg, type, codeLo: 0, codeHi: 0xff, set: true };
  const code = parseInt(m[2], 10);
  if (code > 255) throw paramError(`Invalid ICMP code \`${m[2]}'`);
  return { m: 'icmp', neg, type, codeLo: code, codeHi: code, set: true };
}

function parseStates(s: string, what: string): number {
  let v = 0;
  for (const w of s.split(',')) {
    const x = STATES.find(([n]) => n === w.toUpperCase());
    if (x === undefined || (what === 'state' && x[1] > 0xff)) throw paramError(`Bad ${what} "${w}"`);
    v |= x[1];
  }
  return v;
}

/** `P[-Q]` of --to-ports / after `:` in --to-source: a port range, which needs a protocol with ports. */
function parseNatPorts(t: NatTarget, v: string, proto: string): void {
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp' && proto !== 'dccp') throw paramError('Need TCP, UDP, SCTP or DCCP with port specification');
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  const lo = m === null ? NaN : parseInt(m[1], 10);
  const hi = m === null ? NaN : m[2] === undefined ? lo : parseInt(m[2], 10);
  if (!(lo >= 0 && lo <= 65535)) throw paramError(`Port \`${m === null ? v : m[1]}' not valid`);
  if (!(hi >= 0 && hi <= 65535)) throw paramError(`Port \`${m![2]}' not valid`);
  if (hi < lo) throw paramError(`Port range \`${m![2]}' funky`);
  t.port = lo;
  if (m![2] !== undefined) t.portEnd = hi;
}

/** One option of `-m conntrack` (libxt_conntrack). */
function conntrackOption(mt: Extract<Match, { m: 'conntrack' }>, opt: string, v: string, neg: boolean): void {
  const port = (): Ports => {
    const m = /^(\d+)(?::(\d+))?$/.exec(v);
    if (m === null) throw paramError(`conntrack: bad value for option "${opt}", or out of range (0-65535).\n`);
    // libxt_conntrack keeps the low 16 bits of a larger number.
    const lo = parseInt(m[1], 10) & 0xffff;
    const hi = m[2] === undefined ? lo : parseInt(m[2], 10) & 0xffff;
    return { neg, lo, hi };
  };
  switch (opt) {
    case '--ctstate':
      mt.neg = neg;
      mt.states = parseStates(v, 'ctstate');
      return;
    case '--ctproto': {
      const p = PROTOS[v.toLowerCase()] ?? (/^\d+$/.test(v) && parseInt(v, 10) <= 255 ? parseInt(v, 10) : undefined);
      if (p === undefined) throw paramError(`unknown protocol "${v}" specified`);
      mt.proto = { neg, p };
      return;
    }
    case '--ctorigsrc':
    case '--ctorigdst':
    case '--ctreplsrc':
    case '--ctrepldst': {
      // libxt_conntrack keeps the address as written (not masked); the kernel compares under the mask.
      const slash = v.indexOf('/');
      const a = parseAddrMask(v);
      const raw = parseAddr(slash < 0 ? v : v.slice(0, slash)) ?? a.addr;
      mt[opt.slice(4) as 'origsrc' | 'origdst' | 'replsrc' | 'repldst'] = { neg, addr: raw, mask: a.mask };
      return;
    }
    case '--ctorigsrcport':
    case '--ctorigdstport':
    case '--ctreplsrcport':
    case '--ctrepldstport':
      mt[opt.slice(4) as 'origsrcport' | 'origdstport' | 'replsrcport' | 'repldstport'] = port();
      return;
    case '--ctstatus': {
      let x = 0;
      for (const w of v.split(',')) {
        if (w.toUpperCase() === 'NONE') continue;
        const b = CT_STATUS.find(([n]) => n === w.toUpperCase());
        if (b === undefined) throw paramError(`Bad ctstatus "${w}"`);
        x |= b[1];
      }
      mt.status = { neg, v: x };
      return;
    }
    case '--ctexpire': {
      const m = /^(\d+)(?::(\d+))?$/.exec(v);
      if (m === null) throw paramError(`conntrack: bad value for option "--ctexpire", or out of range (0-4294967295).\n`);
      const lo = parseInt(m[1], 10);
      const hi = m[2] === undefined ? lo : parseInt(m[2], 10);
      mt.expire = { neg, lo, hi };
      return;
    }
    case '--ctdir': {
      if (neg) throw paramError('conntrack: option "--ctdir" cannot be inverted.\n');
      const d = v.toUpperCase();
      if (d !== 'ORIGINAL' && d !== 'REPLY') throw paramError(`conntrack: Bad value for "--ctdir" option: "${v}"`);
      mt.dir = d;
      return;
    }
  }
}

/** xt_limit's rates: a period in 1/10000 s per packet. */
const LIMIT_SCALE = 10000;
const RATES: ['day' | 'hour' | 'min' | 'sec', number][] = [
  ['day', LIMIT_SCALE * 24 * 60 * 60],
  ['hour', LIMIT_SCALE * 60 * 60],
  ['min', LIMIT_SCALE * 60],
  ['sec', LIMIT_SCALE],
];

/**
 * Parses `N[/unit]` into xt_limit's period and prints it back as libxt_limit
 * does (the largest unit that keeps the rate whole: 24/day is 1/hour).
 */
function parseRate(s: string): { n: number; unit: 'sec' | 'min' | 'hour' | 'day' } {
  const m = /^(\d+)(?:\/([a-z]+))?$/i.exec(s);
  const bad = paramError(`bad rate "${s}"'`);
  if (m === null) throw bad;
  const n = parseInt(m[1], 10);
  if (n === 0) throw bad;
  let mult = LIMIT_SCALE;
  if (m[2] !== undefined) {
    const u = m[2].toLowerCase();
    const hit = (['second', 'minute', 'hour', 'day'] as const).find((full) => full.startsWith(u));
    if (hit === undefined) throw bad;
    mult = RATES.find(([name]) => hit.startsWith(name))![1];
  }
  const period = Math.floor(mult / n);
  if (period === 0) throw paramError(`Rate too fast "${s}"`);
  let i = 1;
  for (; i < RATES.length; i++) {
    const rm = RATES[i][1];
    if (period > rm || Math.floor(rm / period) < rm % period) break;
  }
  const [unit, um] = RATES[i - 1];
  return { n: Math.floor(um / period), unit };
}

// ---------------------------------------------------------------- option parsing

/** The options a match module takes. */
const MATCH_OPTS: Record<string, readonly string[]> = {
  tcp: ['--sport', '--source-port', '--dport', '--destination-port', '--tcp-flags', '--syn'],
  udp: ['--sport', '--source-port', '--dport', '--destination-port'],
  icmp: ['--icmp-type'],
  multiport: ['--dports', '--destination-ports', '--sports', '--source-ports', '--ports'],
  state: ['--state'],
  conntrack: [
    '--ctstate', '--ctproto', '--ctorigsrc', '--ctorigdst', '--ctreplsrc', '--ctrepldst', '--ctorigsrcport', '--ctorigdstport', '--ctreplsrcport',
    '--ctrepldstport', '--ctstatus', '--ctexpire', '--ctdir',
  ],
  connmark: ['--mark'],
  limit: ['--limit', '--limit-burst'],
  mark: ['--mark'],
  comment: ['--comment'],
  iprange: ['--src-range', '--dst-range'],
  length: ['--length'],
  ttl: ['--ttl-eq', '--ttl-gt', '--ttl-lt'],
  pkttype: ['--pkt-type'],
  dscp: ['--dscp', '--dscp-class'],
};

/** Matches and targets iptables has that tapstack does not (refused by name). */
const UNSUPPORTED_MATCHES = [
  'addrtype', 'ah', 'bpf', 'cgroup', 'cluster', 'connbytes', 'connlabel', 'connlimit', 'cpu', 'dccp', 'devgroup', 'ecn', 'esp',
  'hashlimit', 'helper', 'ipcomp', 'ipvs', 'mac', 'nfacct', 'osf', 'owner', 'physdev', 'policy', 'quota', 'rateest', 'realm', 'recent', 'rpfilter',
  'sctp', 'set', 'socket', 'statistic', 'string', 'tcpmss', 'time', 'tos', 'u32', 'udplite',
];
const TARGET_OPTS: Record<string, readonly string[]> = {
  REJECT: ['--reject-with'],
  LOG: ['--log-prefix', '--log-level'],
  MARK: ['--set-mark', '--set-xmark', '--and-mark', '--or-mark', '--xor-mark'],
  DSCP: ['--set-dscp', '--set-dscp-class'],
  SNAT: ['--to-source', '--random', '--random-fully', '--persistent'],
  DNAT: ['--to-destination', '--random', '--persistent'],
  MASQUERADE: ['--to-ports', '--random', '--random-fully'],
  REDIRECT: ['--to-ports', '--random'],
  CONNMARK: ['--set-mark', '--set-xmark', '--and-mark', '--or-mark', '--xor-mark', '--save-mark', '--restore-mark', '--mask', '--nfmask', '--ctmask'],
};

/** CONNMARK's operations, in libxt_CONNMARK's option order. */
const CONNMARK_OPS = ['--set-xmark', '--set-mark', '--and-mark', '--or-mark', '--xor-mark', '--save-mark', '--restore-mark'];

/** Target options that take no argument. */
const TARGET_FLAGS = ['--random', '--random-fully', '--persistent', '--save-mark', '--restore-mark'];

/** conntrack status bits (IPS_*) by the names --ctstatus takes, in the order iptables prints them. */
const CT_STATUS: [string, number][] = [
  ['EXPECTED', 1],
  ['SEEN_REPLY', 2],
  ['ASSURED', 4],
  ['CONFIRMED', 8],
];

function newMatch(name: string): Match {
  switch (name) {
    case 'tcp':
      return { m: 'tcp' };
    case 'udp':
      return { m: 'udp' };
    case 'icmp':
      return { m: 'icmp', neg: false, type: 0xff, codeLo: 0, codeHi: 0xff, set: false };
    case 'multiport':
      return { m: 'multiport', dir: '', neg: false, ports: [] };
    case 'state':
      return { m: 'state', neg: false, states: 0 };
    case 'conntrack':
      return { m: 'conntrack', neg: false, states: 0 };
    case 'connmark':
      return { m: 'connmark', neg: false, value: 0, mask: 0xffffffff, set: false };
    case 'limit':
      return { m: 'limit', n: 3, unit: 'hour', burst: 5 };
    case 'mark':
      return { m: 'mark', neg: false, value: 0, mask: 0xffffffff, set: false };
    case 'comment':
      return { m: 'comment', text: '' };
    case 'iprange':
      return { m: 'iprange' };
    case 'length':
      return { m: 'length', neg: false, lo: 0, hi: 0xffff, set: false };
    case 'ttl':
      return { m: 'ttl', op: 'eq', value: 0, set: false };
    case 'pkttype':
      return { m: 'pkttype', neg: false, type: '' };
    case 'dscp':
      return { m: 'dscp', neg: false, value: 0, set: false };
  }
  if (UNSUPPORTED_MATCHES.includes(name)) throw paramError(`match \`${name}' is not supported by tapstack`);
  throw paramError(`Couldn't load match \`${name}':No such file or directory\n`);
}

/** The options of the rule part of a command (everything but the command and -t/-n/-v/...). */
export interface RuleParser {
  /** Consumes the option at `args[i]` (with `neg` from a preceding `!`); returns the next index, or -1 if it is not a rule option. */
  option(args: readonly string[], i: number, neg: boolean): number;
  /** The rule, checked; `chain` names the chain in a kernel-style refusal. */
  finish(chain?: string): IptRule;
}

export function ruleParser(table: string, services: ServicesDb): RuleParser {
  const r: IptRule = { matches: [] };
  let targetName: string | null = null;
  let natTarget: string | null = null;
  const seen = new Set<string>();
  const once = (flag: string): void => {
    if (seen.has(flag)) throw paramError(`multiple ${flag} flags not allowed`);
    seen.add(flag);
  };
  const protoName = (): string => (r.proto === undefined ? '' : (PROTO_NAMES[r.proto.p] ?? String(r.proto.p)));
  const arg = (args: readonly string[], i: number): string => {
    const v = args[i + 1];
    if (v === undefined) throw paramError(`option "${args[i]}" requires an argument`);
    // The old `-s ! ADDR` form: iptables takes the `!` and finds the address a stray word.
    if (v === '!' && args[i + 2] !== undefined) throw new IptError(`Bad argument \`${args[i + 2]}'\nTry \`iptables -h' or 'iptables --help' for more information.`, 2);
    return v;
  };

  // Options given once per match (or target), keyed by the match object.
  const used = new Map<object, Set<string>>();
  const onlyOnce = (owner: object, key: string, msg: string): void => {
    let u = used.get(owner);
    if (u === undefined) used.set(owner, (u = new Set()));
    if (u.has(key)) throw paramError(msg);
    u.add(key);
  };
  const matchOption = (mt: Match, opt: string, v: string | undefined, neg: boolean): void => {
    if (mt.m === 'tcp' || mt.m === 'udp') {
      if (opt === '--syn' || opt === '--tcp-flags') onlyOnce(mt, 'flags', "Only one of `--syn' or `--tcp-flags'  allowed");
      else if (opt.includes('sport') || opt === '--source-port') onlyOnce(mt, 'sport', "Only one `--source-port' allowed");
      else onlyOnce(mt, 'dport', "Only one `--destination-port' allowed");
    } else if (mt.m !== 'multiport') onlyOnce(mt, opt, `${mt.m}: option "${opt}" can only be used once.\n`);
    const need = (): string => {
      if (v === undefined) throw paramError(`option "${opt}" requires an argument`);
      return v;
    };
    switch (mt.m) {
      case 'tcp':
      case 'udp':
        // A whole range (`:`) matches every port: iptables-nft keeps no match for it.
        // (`! --sport :` matches nothing; iptables-nft drops the match, as here.)
        if (opt === '--sport' || opt === '--source-port') mt.sport = whole(parsePortRange(need(), mt.m, services, neg));
        else if (opt === '--dport' || opt === '--destination-port') mt.dport = whole(parsePortRange(need(), mt.m, services, neg));
        if ((opt.includes('port')) && neg && mt.sport === undefined && mt.dport === undefined) mt.none = true;
        else if (mt.m === 'tcp' && opt === '--syn') mt.flags = { neg, mask: 0x17, comp: 0x02 };
        return;
      case 'icmp': {
        const x = parseIcmpType(need(), neg);
        Object.assign(mt, x);
        return;
      }
      case 'multiport': {
        if (mt.dir !== '' || mt.ports.length > 0) throw paramError('multiport can only have one option');
        mt.dir = opt === '--ports' ? '' : opt.startsWith('--d') ? 'dports' : 'sports';
        if (opt === '--ports') throw paramError('multiport --ports is not supported by tapstack (use --dports or --sports)');
        const p = protoName();
        if (p !== 'tcp' && p !== 'udp') throw paramError('multiport needs `-p tcp\', `-p udp\', `-p udplite\', `-p sctp\' or `-p dccp\'');
        const list = need().split(',');
        if (list.length > 15) throw paramError('too many ports specified');
        mt.neg = neg;
        mt.ports = list.map((s) => {
          const x = parsePortRange(s, p, services, false);
          return [x.lo, x.hi];
        });
        return;
      }
      case 'state':
        mt.neg = neg;
        mt.states = parseStates(need(), 'state');
        return;
      case 'conntrack':
        conntrackOption(mt, opt, need(), neg);
        return;
      case 'connmark': {
        const parts = need().split('/');
        if (parts.length > 2) throw paramError('connmark: trailing garbage after value for option "--mark".\n');
        const [a, b] = parts;
        mt.neg = neg;
        mt.value = parseU32(a, 'connmark', '--mark');
        mt.mask = b === undefined ? 0xffffffff : parseU32(b, 'connmark', '--mark');
        mt.set = true;
        return;
      }
      case 'limit':
        if (neg) throw paramError('limit does not support invert');
        if (opt === '--limit') Object.assign(mt, parseRate(need()));
        else {
          const b = /^\d+$/.test(need()) ? parseInt(need(), 10) : null;
          if (b === null || b > 10000) throw paramError('limit: bad value for option "--limit-burst", or out of range (0-10000).\n');
          mt.burst = b;
        }
        return;
      case 'mark': {
        const s = need();
        const [a, b] = s.split('/');
        mt.neg = neg;
        mt.value = parseU32(a, 'mark', '--mark');
        mt.mask = b === undefined ? 0xffffffff : parseU32(b, 'mark', '--mark');
        mt.set = true;
        return;
      }
      case 'iprange': {
        const [a, b] = need().split('-');
        const lo = parseAddr(a);
        const hi = b === undefined ? lo : parseAddr(b);
        if (lo === null || hi === null) throw paramError(`iprange: bad address range \`${v}'`);
        if (opt === '--src-range') mt.src = { neg, lo, hi };
        else mt.dst = { neg, lo, hi };
        return;
      }
      case 'length': {
        const x = /^(\d*)(?::(\d*))?$/.exec(need());
        const lo = x === null ? NaN : x[1] === '' ? 0 : parseInt(x[1], 10);
        const hi = x === null ? NaN : x[2] === undefined ? lo : x[2] === '' ? 0xffff : parseInt(x[2], 10);
        if (!(lo <= 0xffff && hi <= 0xffff && lo <= hi)) {
          const near = x === null ? v : !(lo <= 0xffff) ? x[1] : x[2] ?? v;
          throw paramError(`length: bad value for option "--length" near "${near}", or out of range (0-65535).\n`);
        }
        Object.assign(mt, { neg, lo, hi, set: true });
        return;
      }
      case 'ttl': {
        if (mt.set) throw paramError('Can\'t specify TTL option twice');
        const n = /^\d+$/.test(need()) ? parseInt(need(), 10) : 256;
        if (n > 255) throw paramError(`ttl: bad value for option "${opt}", or out of range (0-255).\n`);
        if (neg && opt !== '--ttl-eq') throw paramError(`ttl: option "${opt}" cannot be inverted.\n`);
        Object.assign(mt, { op: opt === '--ttl-eq' ? (neg ? 'ne' : 'eq') : opt === '--ttl-gt' ? 'gt' : 'lt', value: n, set: true });
        return;
      }
      case 'pkttype': {
        const t = need().toLowerCase();
        const type = t === 'host' ? 'unicast' : t;
        if (type !== 'unicast' && type !== 'broadcast' && type !== 'multicast' && type !== 'otherhost') throw paramError(`Bad packet type '${v}'`);
        Object.assign(mt, { neg, type });
        return;
      }
      case 'dscp': {
        let n: number | null | undefined;
        if (opt === '--dscp-class') {
          n = DSCP_CLASSES[need().toUpperCase()];
          if (n === undefined) throw paramError(`Use --dscp-class with an unknown class \`${v}'`);
        } else n = parseNum(need());
        if (n === null || n > 63) throw paramError('dscp: bad value for option "--dscp", or out of range (0-63).\n');
        Object.assign(mt, { neg, value: n, set: true });
        return;
      }
      case 'comment':
        if (neg) throw paramError('comment does not support invert');
        if (need().length > 255) throw paramError('COMMENT must be shorter than 256 characters');
        mt.text = need();
        return;
    }
  };

  const targetOption = (opt: string, v: string | undefined): void => {
    const t = r.target!;
    if (t.t === 'LOG' || t.t === 'REJECT') onlyOnce(t, opt, `${t.t}: option "${opt}" can only be used once.\n`);
    if (v === undefined) throw paramError(`option "${opt}" requires an argument`);
    switch (t.t) {
      case 'REJECT': {
        const x = REJECT_TYPES.find(([n, a]) => n === v || a === v);
        if (x === undefined) throw paramError(`unknown reject type "${v}"`);
        t.with = x[0];
        return;
      }
      case 'LOG':
        if (opt === '--log-prefix') {
          // Like libxt_LOG: a longer prefix is cut to 29 characters.
          t.prefix = v.slice(0, 29);
        } else {
          const x = LOG_LEVELS.find(([n]) => n === v.toLowerCase());
          const n = /^[0-7]$/.test(v) ? parseInt(v, 10) : x?.[1];
          if (n === undefined) throw paramError(`log level "${v}" unknown\n`);
          t.level = n;
        }
        return;
      case 'MARK': {
        if (t.set) throw paramError('MARK target: Can\'t specify --set-mark twice');
        const [a, b] = v.split('/');
        const val = parseU32(a, 'MARK', opt);
        const m = b === undefined ? undefined : parseU32(b, 'MARK', opt);
        if (opt === '--set-xmark') Object.assign(t, { value: val, mask: m ?? 0xffffffff });
        else if (opt === '--set-mark') Object.assign(t, { value: val, mask: ((m ?? 0xffffffff) | val) >>> 0 });
        else if (opt === '--and-mark') Object.assign(t, { value: 0, mask: ~val >>> 0 });
        else if (opt === '--or-mark') Object.assign(t, { value: val, mask: val });
        else Object.assign(t, { value: val, mask: 0 });
        t.set = true;
        return;
      }
      case 'DSCP': {
        if (t.set) throw paramError('DSCP target: Only use --set-dscp ONCE!');
        let n: number | null | undefined;
        if (opt === '--set-dscp-class') {
          n = DSCP_CLASSES[v.toUpperCase()];
          if (n === undefined) throw paramError(`Invalid DSCP value \`${v}'`);
        } else n = parseNum(v);
        if (n === null || n > 63) throw paramError('DSCP: bad value for option "--set-dscp", or out of range (0-63).\n');
        t.value = n;
        t.set = true;
        return;
      }
      default:
        return;
    }
  };

  /** Options of the NAT targets and CONNMARK (flags without an argument among them). */
  /** CONNMARK's operations as given (xtables checks their exclusions once all options are read). */
  const connmarkOps: string[] = [];
  const natOption = (t: NatTarget, opt: string, v: string | undefined): void => {
    if (opt === '--random') t.random = true;
    else if (opt === '--random-fully') t.fully = true;
    else if (opt === '--persistent') t.persistent = true;
    else {
      if (v === undefined) throw paramError(`option "${opt}" requires an argument`);
      if (t.set) throw paramError(`${t.t}: option "${opt}" can only be used once.\n`);
      if (opt === '--to-ports') parseNatPorts(t, v, protoName());
      else {
        // ADDR[-ADDR][:PORT[-PORT]] (libxt_NAT).
        const colon = v.indexOf(':');
        const a = colon < 0 ? v : v.slice(0, colon);
        if (a !== '') {
          const [lo, hi] = a.split('-');
          const x = parseAddr(lo);
          const y = hi === undefined ? x : parseAddr(hi);
          if (x === null || y === null || lo.split('.').length !== 4 || (hi !== undefined && hi.split('.').length !== 4)) throw paramError(`Bad IP address "${a}"`);
          t.addr = x;
          if (hi !== undefined) t.addrEnd = y!;
        }
        if (colon >= 0) parseNatPorts(t, v.slice(colon + 1), protoName());
      }
      t.set = true;
    }
  };

  const connmarkOption = (t: Extract<Target, { t: 'CONNMARK' }>, opt: string, v: string | undefined): void => {
    if (CONNMARK_OPS.includes(opt)) {
      if (connmarkOps.includes(opt)) throw paramError(`CONNMARK: option "${opt}" can only be used once.\n`);
      connmarkOps.push(opt);
    }
    if (opt === '--save-mark' || opt === '--restore-mark') {
      t.op = opt === '--save-mark' ? 'save' : 'restore';
      return;
    }
    if (v === undefined) throw paramError(`option "${opt}" requires an argument`);
    if (opt === '--mask' || opt === '--nfmask' || opt === '--ctmask') {
      const m = parseU32(v, 'CONNMARK', opt);
      if (opt !== '--ctmask') t.nfmask = m;
      if (opt !== '--nfmask') t.ctmask = m;
      return;
    }
    const [a, b] = v.split('/');
    const val = parseU32(a, 'CONNMARK', opt);
    const m = b === undefined ? undefined : parseU32(b, 'CONNMARK', opt);
    t.op = 'set';
    if (opt === '--set-xmark') Object.assign(t, { ctmark: val, ctmask: m ?? 0xffffffff });
    else if (opt === '--set-mark') Object.assign(t, { ctmark: val, ctmask: ((m ?? 0xffffffff) | val) >>> 0 });
    else if (opt === '--and-mark') Object.assign(t, { ctmark: 0, ctmask: ~val >>> 0 });
    else if (opt === '--or-mark') Object.assign(t, { ctmark: val, ctmask: val });
    else Object.assign(t, { ctmark: val, ctmask: 0 });
  };

  return {
    option(args, i, neg) {
      const o = args[i];
      switch (o) {
        case '-p':
        case '--protocol': {
          once('-p');
          const v = arg(args, i).toLowerCase();
          let p: number | undefined = PROTOS[v];
          if (p === undefined && /^\d+$/.test(v) && parseInt(v, 10) <= 255) p = parseInt(v, 10);
          if (p === undefined) throw paramError(`unknown protocol "${args[i + 1]}" specified`);
          if (p === 0 && neg) throw paramError('rule would never match protocol');
          r.proto = { neg, p };
          return i + 2;
        }
        case '-s':
        case '--source':
        case '--src':
        case '-d':
        case '--destination':
        case '--dst': {
          const src = o === '-s' || o === '--source' || o === '--src';
          once(src ? '-s' : '-d');
          const a = parseAddrMask(arg(args, i));
          if (src) r.src = { neg, ...a };
          else r.dst = { neg, ...a };
          return i + 2;
        }
        case '-i':
        case '--in-interface':
        case '-o':
        case '--out-interface': {
          const inn = o === '-i' || o === '--in-interface';
          once(inn ? '-i' : '-o');
          const name = arg(args, i);
          if (name.length >= 16) throw paramError(`interface name \`${name}' must be shorter than IFNAMSIZ (15)`);
          // `+` alone is any interface: no match at all.
          if (name === '+' && !neg) return i + 2;
          if (inn) r.iif = { neg, name };
          else r.oif = { neg, name };
          return i + 2;
        }
        case '-m':
        case '--match': {
          if (neg) throw paramError('unexpected ! flag before --match');
          const name = arg(args, i);
          r.matches.push(newMatch(name));
          return i + 2;
        }
        case '-j':
        case '--jump':
        case '-g':
        case '--goto': {
          once('-j');
          if (neg) throw paramError('cannot have ! before -j');
          const name = arg(args, i);
          targetName = name;
          if (NAT_TARGETS.includes(name)) {
            natTarget = name;
            r.target = { t: name as NatTarget['t'], set: false };
            return i + 2;
          }
          const goto = o === '-g' || o === '--goto';
          if (name === 'ACCEPT' || name === 'DROP' || name === 'RETURN') r.target = { t: name };
          else if (name === 'REJECT') r.target = { t: 'REJECT', with: 'icmp-port-unreachable' };
          else if (name === 'LOG') r.target = { t: 'LOG', level: 4 };
          else if (name === 'MARK') r.target = { t: 'MARK', value: 0, mask: 0, set: false };
          else if (name === 'DSCP') r.target = { t: 'DSCP', value: 0, set: false };
          else if (name === 'CONNMARK') r.target = { t: 'CONNMARK', op: '', ctmark: 0, ctmask: 0xffffffff, nfmask: 0xffffffff };
          else if (BUILTIN_TARGETS.includes(name)) throw paramError(`target ${name} is not supported by tapstack`);
          else r.target = { t: 'chain', chain: name, goto };
          if (goto && r.target.t !== 'chain') throw paramError(`goto '${name}' is not a chain`);
          return i + 2;
        }
        case '-f':
        case '--fragment':
          throw paramError('-f (fragments) is not supported by tapstack');
      }
      if (!o.startsWith('--')) return -1;
      if (targetName === 'LOG' && ['--log-tcp-sequence', '--log-tcp-options', '--log-ip-options', '--log-uid', '--log-macdecode'].includes(o))
        throw paramError(`LOG ${o} is not supported by tapstack`);
      // A target's option?
      if (targetName !== null && r.target !== undefined && (TARGET_OPTS[targetName] ?? []).includes(o)) {
        if (neg) throw paramError(`unexpected ! flag before ${o}`);
        const flag = TARGET_FLAGS.includes(o);
        const t = r.target;
        if (t.t === 'SNAT' || t.t === 'DNAT' || t.t === 'MASQUERADE' || t.t === 'REDIRECT') natOption(t, o, flag ? undefined : args[i + 1]);
        else if (t.t === 'CONNMARK') connmarkOption(t, o, flag ? undefined : args[i + 1]);
        else targetOption(o, args[i + 1]);
        return flag ? i + 1 : i + 2;
      }
      // The most recent match that takes the option; else the protocol's match, loaded implicitly.
      let mt: Match | undefined;
      for (let k = r.matches.length - 1; k >= 0; k--) {
        if (MATCH_OPTS[r.matches[k].m].includes(o)) {
          mt = r.matches[k];
          break;
        }
      }
      if (mt === undefined) {
        const p = protoName();
        if (p !== '' && !r.proto!.neg && MATCH_OPTS[p]?.includes(o) === true) {
          mt = newMatch(p);
          r.matches.push(mt);
        }
      }
      if (mt === undefined) throw paramError(`unknown option "${o}"`);
      const takesArg = o !== '--syn';
      if (o === '--tcp-flags') {
        if (mt.m !== 'tcp') throw paramError(`unknown option "${o}"`);
        const a = args[i + 1];
        const b = args[i + 2];
        if (a === undefined || b === undefined) throw paramError('--tcp-flags requires two args.');
        onlyOnce(mt, 'flags', "Only one of `--syn' or `--tcp-flags'  allowed");
        mt.flags = { neg, mask: parseTcpFlags(a), comp: parseTcpFlags(b) };
        return i + 3;
      }
      matchOption(mt, o, takesArg ? args[i + 1] : undefined, neg);
      return takesArg ? i + 2 : i + 1;
    },
    finish(chainName = '') {
      const nt = r.target;
      if (natTarget !== null && nt !== undefined && (nt.t === 'SNAT' || nt.t === 'DNAT')) {
        if (!nt.set) throw paramError(`${nt.t}: option "--to-${nt.t === 'SNAT' ? 'source' : 'destination'}" must be specified\n`);
      }
      if (connmarkOps.length > 1) {
        const [a, b] = CONNMARK_OPS.filter((o) => connmarkOps.includes(o));
        throw paramError(`CONNMARK: option "${a}" cannot be used together with "${b}".\n`);
      }
      if (r.target?.t === 'CONNMARK' && r.target.op === '') throw paramError('CONNMARK target: No operation specified');
      for (const mt of r.matches) {
        if ((mt.m === 'tcp' || mt.m === 'udp') && (r.proto === undefined || r.proto.neg || PROTO_NAMES[r.proto.p] !== mt.m)) {
          // With options iptables refuses it; without, the kernel does.
          if (mt.sport !== undefined || mt.dport !== undefined || (mt.m === 'tcp' && mt.flags !== undefined))
            throw paramError(`${mt.m.toUpperCase()} match requires '-p ${mt.m}'`);
          throw new IptError(`iptables ${IPT_VERSION}:  RULE_APPEND failed (Invalid argument): rule in chain ${chainName}`, 4);
        }
        if (mt.m === 'multiport' && mt.dir === '') throw paramError('multiport expects an option');
        if (mt.m === 'state' && mt.states === 0) throw paramError('state match: You must specify "--state"');
        if (mt.m === 'conntrack' && Object.keys(mt).length === 3 && mt.states === 0) throw paramError('conntrack: At least one option is required');
        if (mt.m === 'connmark' && !mt.set) throw paramError('connmark: option "--mark" must be specified\n');
        if (mt.m === 'mark' && !mt.set) throw paramError('mark: option "--mark" must be specified\n');
        if (mt.m === 'comment' && mt.text === '') throw paramError('comment: option "--comment" must be specified\n');
        if (mt.m === 'length' && !mt.set) throw paramError('length: option "--length" must be specified\n');
        if (mt.m === 'ttl' && !mt.set) throw paramError('TTL match: You must specify one of `--ttl-eq\', `--ttl-lt\', `--ttl-gt');
        if (mt.m === 'pkttype' && mt.type === '') throw paramError('pkttype: option "--pkt-type" must be specified\n');
        if (mt.m === 'dscp' && !mt.set) throw paramError('DSCP match: Parameter --dscp is required');
        if (mt.m === 'icmp' && !mt.set) throw paramError('icmp: option "--icmp-type" must be specified\n');
      }
      r.matches = r.matches.filter((mt) => !((mt.m === 'tcp' || mt.m === 'udp') && mt.none === true && mt.sport === undefined && mt.dport === undefined));
      // The kernel's table checks: REJECT belongs to filter, DSCP to mangle, NAT targets to nat; and their hooks.
      const natHooks: Record<string, string[]> = {
        SNAT: ['POSTROUTING', 'INPUT'],
        MASQUERADE: ['POSTROUTING'],
        DNAT: ['PREROUTING', 'OUTPUT'],
        REDIRECT: ['PREROUTING', 'OUTPUT'],
      };
      const hooks = r.target !== undefined ? natHooks[r.target.t] : undefined;
      const builtin = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].includes(chainName);
      if (
        (r.target?.t === 'REJECT' && table !== 'filter') ||
        (r.target?.t === 'DSCP' && table !== 'mangle') ||
        (hooks !== undefined && (table !== 'nat' || (builtin && !hooks.includes(chainName))))
      )
        throw new IptError(`iptables ${IPT_VERSION}:  RULE_APPEND failed (Invalid argument): rule in chain ${chainName}`, 4);
      if (r.target?.t === 'MARK' && !r.target.set) throw paramError('MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required');
      if (r.target?.t === 'DSCP' && !r.target.set) throw paramError('DSCP target: Parameter --set-dscp is required');
      return r;
    },
  };
}

// ---------------------------------------------------------------- canonical spec (-S, iptables-save)

/** xtables_save_string: bare when only [A-Za-z0-9_-], else in double quotes with \" \\ \' escaped. */
export function saveString(s: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(s)) return s;
  return `"${s.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

function savePorts(p: Ports): string {
  return p.lo === p.hi ? String(p.lo) : `${p.lo}:${p.hi}`;
}

function tcpFlagNames(v: number): string {
  if (v === 0) return 'NONE';
  return TCP_FLAGS.filter(([, b]) => (v & b) !== 0)
    .map(([n]) => n)
    .join(',');
}

function stateNames(v: number): string {
  return STATES.filter(([, b]) => (v & b) !== 0)
    .map(([n]) => n)
    .join(',');
}

function saveMatch(mt: Match): string {
  const inv = (neg: boolean): string => (neg ? '! ' : '');
  switch (mt.m) {
    case 'tcp':
    case 'udp': {
      let s = `-m ${mt.m}`;
      if (mt.sport !== undefined) s += ` ${inv(mt.sport.neg)}--sport ${savePorts(mt.sport)}`;
      if (mt.dport !== undefined) s += ` ${inv(mt.dport.neg)}--dport ${savePorts(mt.dport)}`;
      if (mt.m === 'tcp' && mt.flags !== undefined) s += ` ${inv(mt.flags.neg)}--tcp-flags ${tcpFlagNames(mt.flags.mask)} ${tcpFlagNames(mt.flags.comp)}`;
      return s;
    }
    case 'icmp': {
      if (mt.type === 0xff) return `-m icmp ${inv(mt.neg)}--icmp-type any`;
      const code = mt.codeLo === 0 && mt.codeHi === 0xff ? '' : `/${mt.codeLo}`;
      return `-m icmp ${inv(mt.neg)}--icmp-type ${mt.type}${code}`;
    }
    case 'multiport':
      return `-m multiport ${inv(mt.neg)}--${mt.dir} ${mt.ports.map(([a, b]) => (a === b ? String(a) : `${a}:${b}`)).join(',')}`;
    case 'state':
      return `-m state ${inv(mt.neg)}--state ${stateNames(mt.states)}`;
    case 'conntrack':
      return `-m conntrack${conntrackText(mt, '--')}`;
    case 'connmark':
      return `-m connmark ${inv(mt.neg)}--mark ${hex(mt.value)}${mt.mask !== 0xffffffff ? `/${hex(mt.mask)}` : ''}`;
    case 'limit':
      return `-m limit --limit ${mt.n}/${mt.unit}${mt.burst !== 5 ? ` --limit-burst ${mt.burst}` : ''}`;
    case 'mark':
      return `-m mark ${inv(mt.neg)}--mark ${hex(mt.value)}${mt.mask !== 0xffffffff ? `/${hex(mt.mask)}` : ''}`;
    case 'comment':
      return `-m comment --comment ${saveString(mt.text)}`;
    case 'iprange': {
      let s = '-m iprange';
      if (mt.src !== undefined) s += ` ${inv(mt.src.neg)}--src-range ${fmtAddr(mt.src.lo)}-${fmtAddr(mt.src.hi)}`;
      if (mt.dst !== undefined) s += ` ${inv(mt.dst.neg)}--dst-range ${fmtAddr(mt.dst.lo)}-${fmtAddr(mt.dst.hi)}`;
      return s;
    }
    case 'length':
      return `-m length ${inv(mt.neg)}--length ${mt.lo === mt.hi ? mt.lo : `${mt.lo}:${mt.hi}`}`;
    case 'ttl':
      return `-m ttl ${mt.op === 'ne' ? '! --ttl-eq' : `--ttl-${mt.op}`} ${mt.value}`;
    case 'pkttype':
      return `-m pkttype ${inv(mt.neg)}--pkt-type ${mt.type}`;
    case 'dscp':
      return `-m dscp ${inv(mt.neg)}--dscp 0x${mt.value.toString(16).padStart(2, '0')}`;
  }
}

function saveTarget(t: Target): string {
  switch (t.t) {
    case 'ACCEPT':
    case 'DROP':
    case 'RETURN':
      return `-j ${t.t}`;
    case 'chain':
      return `${t.goto ? '-g' : '-j'} ${t.chain}`;
    case 'REJECT':
      return `-j REJECT --reject-with ${t.with}`;
    case 'LOG':
      return `-j LOG${t.prefix !== undefined ? ` --log-prefix ${saveString(t.prefix)}` : ''}${t.level !== 4 ? ` --log-level ${t.level}` : ''}`;
    case 'MARK':
      return `-j MARK --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
    case 'DSCP':
      return `-j DSCP --set-dscp 0x${t.value.toString(16).padStart(2, '0')}`;
    case 'SNAT':
    case 'DNAT':
    case 'MASQUERADE':
    case 'REDIRECT': {
      let s = `-j ${t.t}`;
      if (t.t === 'SNAT' || t.t === 'DNAT') s += ` --to-${t.t === 'SNAT' ? 'source' : 'destination'} ${natRange(t)}`;
      else if (t.port !== undefined) s += ` --to-ports ${natPorts(t)}`;
      if (t.random === true) s += ' --random';
      if (t.fully === true) s += ' --random-fully';
      if (t.persistent === true) s += ' --persistent';
      return s;
    }
    case 'CONNMARK':
      if (t.op === 'set') return `-j CONNMARK --set-xmark ${hex(t.ctmark)}/${hex(t.ctmask)}`;
      return `-j CONNMARK --${t.op}-mark --nfmask ${hex(t.nfmask)} --ctmask ${hex(t.ctmask)}`;
  }
}

function natPorts(t: NatTarget): string {
  return `${t.port}${t.portEnd !== undefined ? `-${t.portEnd}` : ''}`;
}

/** `A[-B][:P[-Q]]` as libxt_NAT prints a range. */
function natRange(t: NatTarget): string {
  let s = t.addr !== undefined ? fmtAddr(t.addr) + (t.addrEnd !== undefined && t.addrEnd !== t.addr ? `-${fmtAddr(t.addrEnd)}` : '') : '';
  if (t.port !== undefined) s += `:${natPorts(t)}`;
  return s;
}

/** An address as libxt_conntrack prints it: bare for /32, else with its prefix length. */
function ctAddr(a: Addr): string {
  const l = maskLen(a.mask);
  // libxt_conntrack prints a mask only when it is a prefix length.
  if (a.mask === 0xffffffff || l < 0) return fmtAddr(a.addr);
  return `${fmtAddr(a.addr)}/${l}`;
}

/** libxt_conntrack's options in its order, each ` [! ]PREFIXname value` (prefix `--` to save, `` to list). */
function conntrackText(mt: Extract<Match, { m: 'conntrack' }>, prefix: string): string {
  let s = '';
  const inv = (neg: boolean): string => (neg ? (prefix === '' ? ' !' : ' !') : '');
  const port = (p: Ports): string => (p.lo === p.hi ? String(p.lo) : `${p.lo}:${p.hi}`);
  if (mt.states !== 0) s += `${inv(mt.neg)} ${prefix}ctstate ${stateNames(mt.states)}`;
  if (mt.proto !== undefined) s += `${inv(mt.proto.neg)} ${prefix}ctproto ${mt.proto.p}`;
  for (const k of ['origsrc', 'origdst', 'replsrc', 'repldst'] as const) {
    const a = mt[k];
    if (a !== undefined) s += `${inv(a.neg)} ${prefix}ct${k} ${ctAddr(a)}`;
  }
  for (const k of ['origsrcport', 'origdstport', 'replsrcport', 'repldstport'] as const) {
    const p = mt[k];
    if (p !== undefined) s += `${inv(p.neg)} ${prefix}ct${k} ${port(p)}`;
  }
  if (mt.status !== undefined) {
    const names = CT_STATUS.filter(([, b]) => (mt.status!.v & b) !== 0).map(([n]) => n);
    s += `${inv(mt.status.neg)} ${prefix}ctstatus ${names.length > 0 ? names.join(',') : 'NONE'}`;
  }
  if (mt.expire !== undefined) s += `${inv(mt.expire.neg)} ${prefix}ctexpire ${mt.expire.lo === mt.expire.hi ? mt.expire.lo : `${mt.expire.lo}:${mt.expire.hi}`}`;
  if (mt.dir !== undefined) s += ` ${prefix}ctdir ${mt.dir}`;
  return s;
}

function saveAddr(a: Addr): string {
  const l = maskLen(a.mask);
  return `${fmtAddr(a.addr)}/${l >= 0 ? l : fmtAddr(a.mask)}`;
}

/** The rule as iptables-save prints it after `-A CHAIN` (without a leading space). */
export function saveRule(r: IptRule): string {
  const out: string[] = [];
  const inv = (neg: boolean): string => (neg ? '! ' : '');
  if (r.src !== undefined && !(r.src.mask === 0 && !r.src.neg)) out.push(`${inv(r.src.neg)}-s ${saveAddr(r.src)}`);
  if (r.dst !== undefined && !(r.dst.mask === 0 && !r.dst.neg)) out.push(`${inv(r.dst.neg)}-d ${saveAddr(r.dst)}`);
  if (r.iif !== undefined) out.push(`${inv(r.iif.neg)}-i ${r.iif.name}`);
  if (r.oif !== undefined) out.push(`${inv(r.oif.neg)}-o ${r.oif.name}`);
  if (r.proto !== undefined && !(r.proto.p === 0 && !r.proto.neg)) out.push(`${inv(r.proto.neg)}-p ${PROTO_NAMES[r.proto.p] ?? r.proto.p}`);
  for (const mt of r.matches) out.push(saveMatch(mt));
  if (r.target !== undefined) out.push(saveTarget(r.target));
  return out.join(' ');
}

// ---------------------------------------------------------------- -L columns

export interface ListFlags {
  numeric: boolean;
}

/**
 * A rule as `iptables -v -A ...` echoes it (iptables' FMT_NOTABLE form:
 * numeric, but the protocol by name).
 */
export function verboseRule(r: IptRule, services: ServicesDb): string {
  const p = r.proto?.p ?? 0;
  const iface = (i: { neg: boolean; name: string } | undefined): string => (i === undefined ? '*' : `${i.neg ? '!' : ''}${i.name}`);
  const addr = (a: Addr | undefined): string => {
    if (a === undefined) return '0.0.0.0/0';
    const l = maskLen(a.mask);
    return `${fmtAddr(a.addr)}${l === 32 ? '' : l >= 0 ? `/${l}` : `/${fmtAddr(a.mask)}`}`;
  };
  let s = `${targetName(r)} ${r.proto?.neg === true ? '!' : ' '}${p === 0 ? 'all' : (PROTO_NAMES[p] ?? String(p))} opt -- `;
  s += `in ${iface(r.iif)} out ${iface(r.oif)} `;
  s += `${r.src?.neg === true ? '!' : ' '}${addr(r.src)} ${r.dst?.neg === true ? '!' : ' '}-> ${addr(r.dst)}  `;
  return `${s}${listExtra(r, true, services)}\n`;
}

export function listProto(r: IptRule, numeric: boolean): string {
  const p = r.proto?.p ?? 0;
  const name = p === 0 ? 'all' : PROTO_NAMES[p];
  return `${r.proto?.neg === true ? '!' : ' '}${numeric || name === undefined ? String(p).padEnd(5) : name.padEnd(5)}`;
}

export function listAddr(a: Addr | undefined, numeric: boolean): string {
  const neg = a?.neg === true ? '!' : ' ';
  if (a === undefined || (a.mask === 0 && !numeric)) return `${neg}${(numeric ? '0.0.0.0/0' : 'anywhere').padEnd(19)} `;
  const l = maskLen(a.mask);
  const m = l === 32 ? '' : l >= 0 ? `/${l}` : `/${fmtAddr(a.mask)}`;
  return `${neg}${`${fmtAddr(a.addr)}${m}`.padEnd(19)} `;
}

export function listIface(i: { neg: boolean; name: string } | undefined, numeric: boolean): string {
  return `${i?.neg === true ? '!' : ''}${i !== undefined ? i.name : numeric ? '*' : 'any'}`;
}

/** The match and target summary after the destination column (each part starts with a space). */
export function listExtra(r: IptRule, numeric: boolean, services: ServicesDb): string {
  let s = '';
  const port = (p: number, proto: string): string => (numeric ? String(p) : (services.name(p, proto) ?? String(p)));
  const ports = (name: string, p: Ports | undefined, proto: string): string => {
    if (p === undefined) return '';
    const inv = p.neg ? '!' : '';
    if (p.lo === p.hi) return ` ${name}:${inv}${port(p.lo, proto)}`;
    return ` ${name}s:${inv}${port(p.lo, proto)}:${port(p.hi, proto)}`;
  };
  for (const mt of r.matches) {
    switch (mt.m) {
      case 'tcp':
      case 'udp':
        s += ` ${mt.m}${ports('spt', mt.sport, mt.m)}${ports('dpt', mt.dport, mt.m)}`;
        if (mt.m === 'tcp' && mt.flags !== undefined) {
          const f = mt.flags;
          s += ` flags:${f.neg ? '!' : ''}`;
          s += numeric
            ? `0x${f.mask.toString(16).toUpperCase().padStart(2, '0')}/0x${f.comp.toString(16).toUpperCase().padStart(2, '0')}`
            : `${tcpFlagNames(f.mask)}/${tcpFlagNames(f.comp)}`;
        }
        break;
      case 'icmp': {
        const inv = mt.neg ? '!' : '';
        const name = ICMP_TYPES.find(([, t, lo, hi]) => t === mt.type && lo === mt.codeLo && hi === mt.codeHi);
        if (!numeric && name !== undefined) s += ` icmp ${inv}${name[0]}`;
        else {
          s += ` icmp${mt.neg ? ' !' : ''}type ${mt.type}`;
          if (mt.codeLo === mt.codeHi) s += ` code ${mt.codeLo}`;
          else if (!(mt.codeLo === 0 && mt.codeHi === 0xff)) s += ` codes ${mt.codeLo}-${mt.codeHi}`;
        }
        break;
      }
      case 'multiport': {
        const proto = PROTO_NAMES[r.proto?.p ?? 0] ?? '';
        s += ` multiport ${mt.dir} ${mt.neg ? ' !' : ''}${mt.ports.map(([a, b]) => (a === b ? port(a, proto) : `${port(a, proto)}:${port(b, proto)}`)).join(',')}`;
        break;
      }
      case 'state':
        s += `${mt.neg ? ' !' : ''} state ${stateNames(mt.states)}`;
        break;
      case 'conntrack':
        s += conntrackText(mt, '');
        break;
      case 'connmark':
        s += ` connmark match ${mt.neg ? '!' : ''} ${hex(mt.value)}${mt.mask !== 0xffffffff ? `/${hex(mt.mask)}` : ''}`;
        break;
      case 'limit':
        s += ` limit: avg ${mt.n}/${mt.unit} burst ${mt.burst}`;
        break;
      case 'mark':
        s += ` mark match ${mt.neg ? '! ' : ''}${hex(mt.value)}${mt.mask !== 0xffffffff ? `/${hex(mt.mask)}` : ''}`;
        break;
      case 'comment':
        s += ` /* ${mt.text} */`;
        break;
      case 'iprange':
        if (mt.src !== undefined) s += ` source IP range ${mt.src.neg ? '! ' : ''}${fmtAddr(mt.src.lo)}-${fmtAddr(mt.src.hi)}`;
        if (mt.dst !== undefined) s += ` destination IP range ${mt.dst.neg ? '! ' : ''}${fmtAddr(mt.dst.lo)}-${fmtAddr(mt.dst.hi)}`;
        break;
      case 'length':
        s += ` length ${mt.neg ? '!' : ''}${mt.lo === mt.hi ? mt.lo : `${mt.lo}:${mt.hi}`}`;
        break;
      case 'ttl':
        s += ` TTL match TTL ${{ eq: '==', ne: '!=', gt: '>', lt: '<' }[mt.op]} ${mt.value}`;
        break;
      case 'pkttype':
        s += ` PKTTYPE ${mt.neg ? '!=' : '='} ${mt.type}`;
        break;
      case 'dscp':
        s += ` DSCP match ${mt.neg ? '!' : ''}0x${mt.value.toString(16).padStart(2, '0')}`;
        break;
    }
  }
  const t = r.target;
  if (t === undefined) return s;
  switch (t.t) {
    case 'REJECT':
      s += ` reject-with ${t.with}`;
      break;
    case 'LOG':
      s += numeric ? ` LOG flags 0 level ${t.level}` : ` LOG level ${LOG_LEVEL_PRINT[t.level]}`;
      if (t.prefix !== undefined) s += ` prefix "${t.prefix}"`;
      break;
    case 'MARK':
      if (t.mask === 0xffffffff) s += ` MARK set ${hex(t.value)}`;
      else if (t.value === 0) s += ` MARK and ${hex(~t.mask)}`;
      else if (t.value === t.mask) s += ` MARK or ${hex(t.value)}`;
      else if (t.mask === 0) s += ` MARK xor ${hex(t.value)}`;
      else s += ` MARK xset ${hex(t.value)}/${hex(t.mask)}`;
      break;
    case 'DSCP':
      s += ` DSCP set 0x${t.value.toString(16).padStart(2, '0')}`;
      break;
    case 'chain':
      if (t.goto) s += '[goto] ';
      break;
    case 'SNAT':
    case 'DNAT':
      s += ` to:${natRange(t)}`;
      break;
    case 'MASQUERADE':
      if (t.port !== undefined) s += ` masq ports: ${natPorts(t)}`;
      break;
    case 'REDIRECT':
      if (t.port !== undefined) s += ` redir ports ${natPorts(t)}`;
      break;
    case 'CONNMARK': {
      const x = (n: number): string => hex(n);
      if (t.op === 'set') {
        if (t.ctmark === 0) s += ` CONNMARK and ${x(~t.ctmask)}`;
        else if (t.ctmark === t.ctmask) s += ` CONNMARK or ${x(t.ctmark)}`;
        else if (t.ctmask === 0) s += ` CONNMARK xor ${x(t.ctmark)}`;
        else if (t.ctmask === 0xffffffff) s += ` CONNMARK set ${x(t.ctmark)}`;
        else s += ` CONNMARK xset ${x(t.ctmark)}/${x(t.ctmask)}`;
      } else if (t.op === 'save') {
        if (t.nfmask === 0xffffffff && t.ctmask === 0xffffffff) s += ' CONNMARK save';
        else if (t.nfmask === t.ctmask) s += ` CONNMARK save mask ${x(t.nfmask)}`;
        else s += ` CONNMARK save nfmask ${x(t.nfmask)} ctmask ~${x(t.ctmask)}`;
      } else if (t.ctmask === 0xffffffff && t.nfmask === 0xffffffff) s += ' CONNMARK restore';
      else if (t.ctmask === t.nfmask) s += ` CONNMARK restore mask ${x(t.ctmask)}`;
      else s += ` CONNMARK restore ctmask ${x(t.ctmask)} nfmask ~${x(t.nfmask)}`;
      break;
    }
    default:
      break;
  }
  if (t.t === 'SNAT' || t.t === 'DNAT' || t.t === 'MASQUERADE' || t.t === 'REDIRECT') {
    if (t.random === true) s += ' random';
    if (t.fully === true) s += ' random-fully';
    if (t.persistent === true) s += ' persistent';
  }
  return s;
}

export function targetName(r: IptRule): string {
  const t = r.target;
  if (t === undefined) return '';
  return t.t === 'chain' ? t.chain : t.t;
}

// ---------------------------------------------------------------- the engine's expressions

const IP_SADDR: Field = { kind: 'payload', proto: 'ip', field: 'saddr' };
const IP_DADDR: Field = { kind: 'payload', proto: 'ip', field: 'daddr' };

function addrExpr(f: Field, a: Addr): Expr | null {
  if (a.mask === 0) return a.neg ? { kind: 'match', left: f, mask: 0, op: 'ne', right: { kind: 'value', value: 0 } } : null;
  const l = maskLen(a.mask);
  const op = a.neg ? 'ne' : 'eq';
  if (l === 32) return { kind: 'match', left: f, op, right: { kind: 'value', value: a.addr } };
  if (l >= 0) return { kind: 'match', left: f, op, right: { kind: 'prefix', addr: a.addr, len: l } };
  return { kind: 'match', left: f, mask: a.mask, op, right: { kind: 'value', value: a.addr } };
}

function portsRhs(p: Ports): Rhs {
  return p.lo === p.hi ? { kind: 'value', value: p.lo } : { kind: 'range', lo: p.lo, hi: p.hi };
}

function ifname(dir: 'iifname' | 'oifname', i: { neg: boolean; name: string }): Expr {
  const name = i.name.endsWith('+') ? `${i.name.slice(0, -1)}*` : i.name;
  return { kind: 'ifname', dir, op: i.neg ? 'ne' : 'eq', names: [name] };
}

const UNITS: Record<string, TimeUnit> = { sec: 'second', min: 'minute', hour: 'hour', day: 'day' };

/** The chain engine's expressions for a rule: matches, its counter, then its target. */
export function ruleExprs(r: IptRule): Expr[] {
  const e: Expr[] = [];
  if (r.iif !== undefined) e.push(ifname('iifname', r.iif));
  if (r.oif !== undefined) e.push(ifname('oifname', r.oif));
  if (r.src !== undefined) {
    const x = addrExpr(IP_SADDR, r.src);
    if (x !== null) e.push(x);
  }
  if (r.dst !== undefined) {
    const x = addrExpr(IP_DADDR, r.dst);
    if (x !== null) e.push(x);
  }
  if (r.proto !== undefined && !(r.proto.p === 0 && !r.proto.neg))
    e.push({ kind: 'match', left: { kind: 'meta', key: 'l4proto' }, op: r.proto.neg ? 'ne' : 'eq', right: { kind: 'value', value: r.proto.p } });
  for (const mt of r.matches) {
    switch (mt.m) {
      case 'tcp':
      case 'udp':
        if (mt.sport !== undefined) e.push({ kind: 'match', left: { kind: 'payload', proto: mt.m, field: 'sport' }, op: mt.sport.neg ? 'ne' : 'eq', right: portsRhs(mt.sport) });
        if (mt.dport !== undefined) e.push({ kind: 'match', left: { kind: 'payload', proto: mt.m, field: 'dport' }, op: mt.dport.neg ? 'ne' : 'eq', right: portsRhs(mt.dport) });
        if (mt.m === 'tcp' && mt.flags !== undefined)
          e.push({ kind: 'match', left: { kind: 'payload', proto: 'tcp', field: 'flags' }, mask: mt.flags.mask, op: mt.flags.neg ? 'ne' : 'eq', right: { kind: 'value', value: mt.flags.comp } });
        break;
      case 'icmp': {
        if (mt.type === 0xff) break;
        const whole = mt.codeLo === 0 && mt.codeHi === 0xff;
        if (mt.neg && !whole) {
          // Not this type and code: one lookup of the pair.
          e.push({
            kind: 'match',
            left: { kind: 'concat', fields: [{ kind: 'payload', proto: 'icmp', field: 'type' }, { kind: 'payload', proto: 'icmp', field: 'code' }] },
            op: 'ne',
            right: { kind: 'set', elements: [{ key: [mt.type, mt.codeLo], end: mt.codeHi !== mt.codeLo ? [mt.type, mt.codeHi] : undefined }] },
          });
          break;
        }
        e.push({ kind: 'match', left: { kind: 'payload', proto: 'icmp', field: 'type' }, op: mt.neg ? 'ne' : 'eq', right: { kind: 'value', value: mt.type } });
        if (!whole)
          e.push({
            kind: 'match',
            left: { kind: 'payload', proto: 'icmp', field: 'code' },
            op: 'eq',
            right: mt.codeLo === mt.codeHi ? { kind: 'value', value: mt.codeLo } : { kind: 'range', lo: mt.codeLo, hi: mt.codeHi },
          });
        break;
      }
      case 'multiport': {
        const proto = r.proto?.p === 17 ? 'udp' : 'tcp';
        e.push({
          kind: 'match',
          left: { kind: 'payload', proto, field: mt.dir === 'sports' ? 'sport' : 'dport' },
          op: mt.neg ? 'ne' : 'eq',
          right: { kind: 'set', elements: mt.ports.map(([a, b]) => (a === b ? { key: a } : { key: a, end: b })) },
        });
        break;
      }
      // iptables-nft keeps these as xt matches; nft lists their translation.
      case 'state':
        e.push({
          kind: 'xt',
          type: 'match',
          name: 'conntrack',
          text: `ct state ${mt.neg ? '! ' : ''}${stateNames(mt.states).toLowerCase()}`,
          exprs: [{ kind: 'match', left: { kind: 'ct', key: 'state' }, mask: mt.states, op: mt.neg ? 'eq' : 'ne', right: { kind: 'value', value: 0 } }],
        });
        break;
      case 'conntrack':
        e.push({ kind: 'xt', type: 'match', name: 'conntrack', text: conntrackXlate(mt), exprs: conntrackExprs(mt) });
        break;
      case 'connmark': {
        const v = hex((mt.value & mt.mask) >>> 0);
        e.push({
          kind: 'xt',
          type: 'match',
          name: 'connmark',
          text: mt.mask === 0xffffffff ? `ct mark ${mt.neg ? '!= ' : ''}${v}` : `ct mark and ${hex(mt.mask)} ${mt.neg ? '!=' : '=='} ${v}`,
          exprs: [
            {
              kind: 'match',
              left: { kind: 'ct', key: 'mark' },
              mask: mt.mask === 0xffffffff ? undefined : mt.mask,
              op: mt.neg ? 'ne' : 'eq',
              right: { kind: 'value', value: (mt.value & mt.mask) >>> 0 },
            },
          ],
        });
        break;
      }
      case 'limit':
        e.push({ kind: 'limit', rate: mt.n, unit: UNITS[mt.unit], per: 'packets', burst: mt.burst });
        break;
      case 'mark':
        e.push({
          kind: 'match',
          left: { kind: 'meta', key: 'mark' },
          mask: mt.mask === 0xffffffff ? undefined : mt.mask,
          op: mt.neg ? 'ne' : 'eq',
          right: { kind: 'value', value: (mt.value & mt.mask) >>> 0 },
        });
        break;
      case 'comment':
        break;
      case 'iprange':
        for (const [f, x] of [[IP_SADDR, mt.src], [IP_DADDR, mt.dst]] as const)
          if (x !== undefined) e.push({ kind: 'match', left: f, op: x.neg ? 'ne' : 'eq', right: x.lo === x.hi ? { kind: 'value', value: x.lo } : { kind: 'range', lo: x.lo, hi: x.hi } });
        break;
      case 'length':
        e.push({
          kind: 'match',
          left: { kind: 'payload', proto: 'ip', field: 'length' },
          op: mt.neg ? 'ne' : 'eq',
          right: mt.lo === mt.hi ? { kind: 'value', value: mt.lo } : { kind: 'range', lo: mt.lo, hi: mt.hi },
        });
        break;
      case 'ttl':
        e.push({ kind: 'match', left: { kind: 'payload', proto: 'ip', field: 'ttl' }, op: mt.op, right: { kind: 'value', value: mt.value } });
        break;
      case 'pkttype':
        e.push({
          kind: 'match',
          left: { kind: 'meta', key: 'pkttype' },
          op: mt.neg ? 'ne' : 'eq',
          right: { kind: 'value', value: { unicast: PKTTYPE_HOST, broadcast: PKTTYPE_BROADCAST, multicast: PKTTYPE_MULTICAST, otherhost: PKTTYPE_OTHERHOST, '': 0 }[mt.type] },
        });
        break;
      case 'dscp':
        e.push({ kind: 'match', left: { kind: 'payload', proto: 'ip', field: 'dscp' }, op: mt.neg ? 'ne' : 'eq', right: { kind: 'value', value: mt.value } });
        break;
    }
  }
  e.push({ kind: 'counter' });
  const t = r.target;
  if (t !== undefined) {
    switch (t.t) {
      case 'ACCEPT':
        e.push({ kind: 'verdict', verdict: { kind: 'accept' } });
        break;
      case 'DROP':
        e.push({ kind: 'verdict', verdict: { kind: 'drop' } });
        break;
      case 'RETURN':
        e.push({ kind: 'verdict', verdict: { kind: 'return' } });
        break;
      case 'chain':
        e.push({ kind: 'verdict', verdict: { kind: t.goto ? 'goto' : 'jump', chain: t.chain } });
        break;
      case 'REJECT': {
        const code = REJECT_TYPES.find(([n]) => n === t.with)![2];
        e.push({ kind: 'reject', with: code < 0 ? { type: 'tcp-reset' } : { type: 'icmp', code } });
        break;
      }
      case 'LOG':
        e.push({ kind: 'log', prefix: t.prefix, level: LOG_LEVEL_AST[t.level] });
        break;
      case 'MARK':
        e.push({
          kind: 'meta-set',
          key: 'mark',
          value: t.mask === 0xffffffff ? t.value : { kind: 'field', field: { kind: 'meta', key: 'mark' }, mask: ~t.mask >>> 0, xor: t.value },
        });
        break;
      case 'DSCP':
        e.push({ kind: 'payload-set', proto: 'ip', field: 'dscp', value: t.value });
        break;
      case 'SNAT':
      case 'DNAT':
      case 'MASQUERADE':
      case 'REDIRECT': {
        const flags: NatFlag[] = [];
        if (t.random === true) flags.push('random');
        if (t.fully === true) flags.push('fully-random');
        if (t.persistent === true) flags.push('persistent');
        const x: NatExpr = { kind: 'nat', type: t.t.toLowerCase() as NatExpr['type'] };
        if (t.addr !== undefined) x.addr = t.addr;
        if (t.addrEnd !== undefined) x.addrEnd = t.addrEnd;
        if (t.port !== undefined) x.port = t.port;
        if (t.portEnd !== undefined) x.portEnd = t.portEnd;
        if (flags.length > 0) x.flags = flags;
        e.push({ kind: 'xt', type: 'target', name: t.t, text: formatNat(x, {}, true), exprs: [x] });
        break;
      }
      case 'CONNMARK': {
        const ALL = 0xffffffff;
        const inner: Expr[] = [];
        if (t.op === 'set')
          inner.push({
            kind: 'ct-set',
            key: 'mark',
            value: t.ctmask === ALL ? t.ctmark : { kind: 'field', field: { kind: 'ct', key: 'mark' }, mask: ~t.ctmask >>> 0, xor: t.ctmark },
          });
        else if (t.nfmask === ALL && t.ctmask === ALL)
          inner.push(
            t.op === 'save'
              ? { kind: 'ct-set', key: 'mark', value: { kind: 'field', field: { kind: 'meta', key: 'mark' } } }
              : { kind: 'meta-set', key: 'mark', value: { kind: 'field', field: { kind: 'ct', key: 'mark' } } },
          );
        else inner.push({ kind: 'connmark', op: t.op === 'save' ? 'save' : 'restore', nfmask: t.nfmask, ctmask: t.ctmask });
        e.push({ kind: 'xt', type: 'target', name: 'CONNMARK', text: connmarkXlate(t), exprs: inner });
        break;
      }
    }
  }
  return e;
}

/** How nft lists a CONNMARK target (libxt_CONNMARK's translation; none for unequal masks). */
function connmarkXlate(t: Extract<Target, { t: 'CONNMARK' }>): string {
  const ALL = 0xffffffff;
  if (t.op === 'set') {
    if (t.ctmask === ALL) return `ct mark set ${hex(t.ctmark)}`;
    if (t.ctmark === 0) return `ct mark set ct mark and ${hex(~t.ctmask)}`;
    if (t.ctmark === t.ctmask) return `ct mark set ct mark or ${hex(t.ctmark)}`;
    if (t.ctmask === 0) return `ct mark set ct mark xor ${hex(t.ctmark)}`;
    return `ct mark set ct mark xor ${hex(t.ctmark)} and ${hex(~t.ctmask)}`;
  }
  if (t.nfmask !== t.ctmask) return 'xt target CONNMARK';
  const and = t.nfmask === ALL ? '' : ` and ${hex(t.nfmask)}`;
  return t.op === 'save' ? `ct mark set mark${and}` : `meta mark set ct mark${and}`;
}

/** How nft lists a conntrack match (libxt_conntrack's translation, in its order). */
function conntrackXlate(mt: Extract<Match, { m: 'conntrack' }>): string {
  const parts: string[] = [];
  const ne = (neg: boolean): string => (neg ? '!= ' : '');
  const range = (lo: number, hi: number): string => (lo === hi ? String(lo) : `${lo}-${hi}`);
  if (mt.dir !== undefined) parts.push(`ct direction ${mt.dir.toLowerCase()}`);
  if (mt.proto !== undefined) parts.push(`ct ${mt.dir === 'REPLY' ? 'reply' : 'original'} protocol ${ne(mt.proto.neg)}${mt.proto.p}`);
  // With SNAT or DNAT among the states libxt_conntrack writes `ct status` of one of them (and no negation).
  if ((mt.states & (STATE_SNAT | STATE_DNAT)) !== 0) parts.push(`ct status ${(mt.states & STATE_SNAT) !== 0 ? 'snat' : 'dnat'}`);
  else if (mt.states !== 0) parts.push(`ct state ${mt.neg ? '! ' : ''}${stateNames(mt.states).toLowerCase()}`);
  if (mt.status !== undefined) {
    const names = CT_STATUS.filter(([, b]) => (mt.status!.v & b) !== 0).map(([n]) => n.toLowerCase().replace('_', '-'));
    parts.push(`ct status${mt.status.neg ? ' !' : ''}${names.length > 0 ? ` ${names.join(',')}` : ''}`);
  }
  if (mt.expire !== undefined) parts.push(`ct expiration ${ne(mt.expire.neg)}${range(mt.expire.lo, mt.expire.hi)}`);
  const addrs = [
    ['origsrc', 'original saddr'],
    ['origdst', 'original daddr'],
    ['replsrc', 'reply saddr'],
    ['repldst', 'reply daddr'],
  ] as const;
  for (const [k, name] of addrs) {
    const a = mt[k];
    if (a === undefined) continue;
    // A mask that is no prefix is left out of the translation.
    const l = maskLen(a.mask);
    parts.push(`ct ${name} ${ne(a.neg)}${fmtAddr(a.addr)}${l >= 0 && l < 32 ? `/${l}` : ''}`);
  }
  const ports = [
    ['origsrcport', 'original proto-src'],
    ['origdstport', 'original proto-dst'],
    ['replsrcport', 'reply proto-src'],
    ['repldstport', 'reply proto-dst'],
  ] as const;
  for (const [k, name] of ports) {
    const p = mt[k];
    if (p !== undefined) parts.push(`ct ${name} ${ne(p.neg)}${range(p.lo, p.hi)}`);
  }
  return parts.join(' ');
}

/** `-m conntrack` as ct expressions (xt_conntrack's checks, each one a match). */
function conntrackExprs(mt: Extract<Match, { m: 'conntrack' }>): Expr[] {
  const e: Expr[] = [];
  if ((mt.states & (STATE_SNAT | STATE_DNAT)) !== 0) {
    // xt_conntrack: any of the states, SNAT meaning IPS_SRC_NAT in the status, DNAT IPS_DST_NAT.
    const nat = ((mt.states & STATE_SNAT) !== 0 ? IPS_SRC_NAT : 0) | ((mt.states & STATE_DNAT) !== 0 ? IPS_DST_NAT : 0);
    e.push({ kind: 'ct-state-nat', states: mt.states & 0xff, status: nat, neg: mt.neg });
  } else if (mt.states !== 0) e.push({ kind: 'match', left: { kind: 'ct', key: 'state' }, mask: mt.states, op: mt.neg ? 'eq' : 'ne', right: { kind: 'value', value: 0 } });
  if (mt.proto !== undefined) e.push({ kind: 'match', left: { kind: 'ct', key: 'protocol' }, op: mt.proto.neg ? 'ne' : 'eq', right: { kind: 'value', value: mt.proto.p } });
  const addrs = [
    ['origsrc', 'original', 'saddr'],
    ['origdst', 'original', 'daddr'],
    ['replsrc', 'reply', 'saddr'],
    ['repldst', 'reply', 'daddr'],
  ] as const;
  for (const [k, dir, key] of addrs) {
    const a = mt[k];
    if (a === undefined) continue;
    const x = addrExpr({ kind: 'ct', key, dir }, a);
    if (x !== null) e.push(x);
  }
  const ports = [
    ['origsrcport', 'original', 'proto-src'],
    ['origdstport', 'original', 'proto-dst'],
    ['replsrcport', 'reply', 'proto-src'],
    ['repldstport', 'reply', 'proto-dst'],
  ] as const;
  for (const [k, dir, key] of ports) {
    const p = mt[k];
    if (p !== undefined) e.push({ kind: 'match', left: { kind: 'ct', key, dir }, op: p.neg ? 'ne' : 'eq', right: portsRhs(p) });
  }
  if (mt.status !== undefined) e.push({ kind: 'match', left: { kind: 'ct', key: 'status' }, mask: mt.status.v, op: mt.status.neg ? 'eq' : 'ne', right: { kind: 'value', value: 0 } });
  if (mt.expire !== undefined) {
    // ct expiration is in ms; xt_conntrack compares whole seconds.
    const { lo, hi, neg } = mt.expire;
    // An empty range (`--ctexpire 100:10`) iptables takes: it never matches (negated: always, given an entry).
    if (lo > hi) {
      if (neg) e.push({ kind: 'match', left: { kind: 'ct', key: 'expiration' }, op: 'ge', right: { kind: 'value', value: 0 } });
      else
        e.push(
          { kind: 'match', left: { kind: 'ct', key: 'expiration' }, op: 'ge', right: { kind: 'value', value: lo * 1000 } },
          { kind: 'match', left: { kind: 'ct', key: 'expiration' }, op: 'le', right: { kind: 'value', value: hi * 1000 } },
        );
    } else e.push({ kind: 'match', left: { kind: 'ct', key: 'expiration' }, op: neg ? 'ne' : 'eq', right: lo === hi ? { kind: 'value', value: lo * 1000 } : { kind: 'range', lo: lo * 1000, hi: hi * 1000 } });
  }
  if (mt.dir !== undefined) e.push({ kind: 'match', left: { kind: 'ct', key: 'direction' }, op: 'eq', right: { kind: 'value', value: mt.dir === 'REPLY' ? 1 : 0 } });
  return e;
}

/** The comment of a rule (`-m comment`), for Rule.comment. */
export function ruleComment(r: IptRule): string | undefined {
  const c = r.matches.find((m) => m.m === 'comment');
  return c?.m === 'comment' ? c.text : undefined;
}

/** Splits a line as iptables-restore does: words, with "double quotes" and \-escapes inside them. */
export function splitQuoted(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}
