/**
 * `conntrack ...`: conntrack-tools' command line (1.4.7) over the stack's
 * connection tracking table. Options are read as the tool reads them
 * (getopt_long with its optional arguments and unique long-option prefixes;
 * the protocol options such as --sport exist only after -p), checked against
 * the tool's table of which options each command takes, and carried out with
 * the tool's filters, so output, messages and exit codes are the tool's:
 * 2 for a parameter problem (with the "Try ..." line), 1 for a failed
 * operation or when -D/-U/-G found nothing.
 */
import {
  IPS_ASSURED,
  IPS_DST_NAT_DONE,
  IPS_EXPECTED,
  IPS_FIXED_TIMEOUT,
  IPS_OFFLOAD,
  IPS_SEEN_REPLY,
  IPS_SRC_NAT_DONE,
  type CtEntry,
} from '../conntrack/entry.js';
import type { Stack } from '../stack.js';
import { CONNTRACK_VERSION, XML_FOOTER, XML_HEADER, ctime, eventTimestamp, formatEntry, formatEntryXml, formatStats, type CtEventKind } from './conntrack-format.js';

/** What the command needs of the connection tracking table (src/conntrack/conntrack.ts). */
export interface ConntrackView {
  readonly stats: object;
  readonly count: number;
  find(proto: number, src: number, dst: number, sport: number, dport: number): CtEntry | null;
  forEach(fn: (e: CtEntry) => void): void;
  delete(e: CtEntry): void;
  flush(): number;
  timeLeft(e: CtEntry): number;
  stateName(e: CtEntry): string;
  on(fn: (ev: CtEventKind, e: CtEntry) => void): () => void;
  setEntryMark(e: CtEntry, mark: number): void;
}

export interface ConntrackEnv {
  ct: ConntrackView;
  /** The stack clock, ms (what CtEntry.start is in). */
  now(): number;
  /** Wall-clock ms (Date.now()): -o timestamp and ktimestamp. */
  wallNow(): number;
  /** An integer sysctl: net.netfilter.nf_conntrack_acct and _timestamp. */
  sysctl(name: string): number;
  random(): number;
}

export interface CtResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** What a streaming `conntrack -E` writes to and hears from. */
export interface CtEventOutput {
  out(text: string): void;
  err(text: string): void;
  /** ^C on the client: print the summary and end with 0, as conntrack's signal handler does. */
  onInterrupt?(cb: () => void): void;
  /** The client went away. */
  onClose(cb: () => void): void;
}

const PROGNAME = 'conntrack';
const OTHER_PROBLEM = 1;
const PARAMETER_PROBLEM = 2;

/** exit_error(): the message on stderr, the "Try" line for parameter problems, then exit. */
class CtExit extends Error {
  constructor(
    readonly stderr: string,
    readonly code: number,
  ) {
    super(stderr);
  }
}

function exitError(status: number, msg: string): never {
  let err = `${CONNTRACK_VERSION}: ${msg}\n`;
  if (status === PARAMETER_PROBLEM) err += `Try \`${PROGNAME} -h' or '${PROGNAME} --help' for more information.\n`;
  throw new CtExit(err, status);
}

// Commands (enum ct_command bits).
const CT_LIST = 0;
const CT_CREATE = 1;
const CT_UPDATE = 2;
const CT_DELETE = 3;
const CT_GET = 4;
const CT_FLUSH = 5;
const CT_EVENT = 6;
const CT_VERSION = 7;
const CT_HELP = 8;
const EXP_LIST = 9;
const EXP_CREATE = 10;
const EXP_DELETE = 11;
const EXP_GET = 12;
const EXP_FLUSH = 13;
const EXP_EVENT = 14;
const CT_COUNT = 15;
const EXP_COUNT = 16;
const CT_STATS = 17;
const EXP_STATS = 18;
const CT_ADD = 19;
const NUMBER_OF_CMD = 20;

// Options (enum ct_options bits), in the columns' order of the legality table below.
const O_SRC = 0;
const O_DST = 1;
const O_RSRC = 2;
const O_RDST = 3;
const O_PROTO = 4;
const O_TIMEOUT = 5;
const O_STATUS = 6;
const O_ZERO = 7;
const O_EVMASK = 8;
const O_EXPSRC = 9;
const O_EXPDST = 10;
const O_MASKSRC = 11;
const O_MASKDST = 12;
const O_NATRANGE = 13;
const O_MARK = 14;
const O_ID = 15;
const O_FAMILY = 16;
const O_SNAT = 17;
const O_DNAT = 18;
const O_OUTPUT = 19;
const O_SECMARK = 20;
const O_BUFSIZE = 21;
const O_ANYNAT = 22;
const O_ZONE = 23;
const O_LABEL = 24;
const O_ADDLABEL = 25;
const O_DELLABEL = 26;
const O_OZONE = 27;
const O_RZONE = 28;

const OPT_NAMES = [
  'src', 'dst', 'reply-src', 'reply-dst', 'protonum', 'timeout', 'status', 'zero', 'event-mask',
  'tuple-src', 'tuple-dst', 'mask-src', 'mask-dst', 'nat-range', 'mark', 'id', 'family', 'src-nat',
  'dst-nat', 'output', 'secmark', 'buffer-size', 'any-nat', 'zone', 'label', 'label-add', 'label-del',
  'orig-zone', 'reply-zone',
];

const bit = (b: number): number => 2 ** b;
/** Options the filters compare an entry with (CT_COMPARISON). */
const COMPARISON = [O_PROTO, O_SRC, O_DST, O_RSRC, O_RDST, O_MARK, O_SECMARK, O_STATUS, O_ID, O_ZONE, O_LABEL, O_OZONE, O_RZONE].reduce((m, b) => m + bit(b), 0);

/**
 * Which options each command takes (conntrack.c's commands_v_options): 0 not
 * allowed, 1 required, 2 optional, 3 required in pairs (--src/--dst or
 * --reply-src/--reply-dst).
 */
const LEGAL: Record<number, string> = {
  //                 sdrqptuze[]{}amifngocbjwl<>()
  [CT_LIST]:        '22222022000220202222202220022',
  [CT_CREATE]:      '33331120000002200220000202022',
  [CT_UPDATE]:      '22222220000220222222000022200',
  [CT_DELETE]:      '22222220000220222222000220022',
  [CT_GET]:         '33331000000000020002000020000',
  [CT_FLUSH]:       '00000000000000002000000000000',
  [CT_EVENT]:       '22222000200220202222222220022',
  [CT_VERSION]:     '00000000000000000000000000000',
  [CT_HELP]:        '00002000000000000000000000000',
  [EXP_LIST]:       '00000000000000002002000000000',
  [EXP_CREATE]:     '11221120011110000000000000000',
  [EXP_DELETE]:     '11221000000000000000000000000',
  [EXP_GET]:        '11221000000000000000000000000',
  [EXP_FLUSH]:      '00000000000000000000000000000',
  [EXP_EVENT]:      '00000000000000000002000000000',
  [CT_COUNT]:       '00000000000000000000000000000',
  [EXP_COUNT]:      '00000000000000000000000000000',
  [CT_STATS]:       '00000000000000000000000000000',
  [EXP_STATS]:      '00000000000000000000000000000',
  [CT_ADD]:         '33331120000002200220000202022',
};

/** Long options (name, argument: 0 none, 1 required, 2 optional, short letter). */
const LONG_OPTS: [string, 0 | 1 | 2, string][] = [
  ['dump', 2, 'L'], ['create', 2, 'I'], ['add', 2, 'A'], ['delete', 2, 'D'], ['update', 2, 'U'],
  ['get', 2, 'G'], ['flush', 2, 'F'], ['event', 2, 'E'], ['counter', 2, 'C'], ['stats', 0, 'S'],
  ['version', 0, 'V'], ['help', 0, 'h'], ['orig-src', 1, 's'], ['src', 1, 's'], ['orig-dst', 1, 'd'],
  ['dst', 1, 'd'], ['reply-src', 1, 'r'], ['reply-dst', 1, 'q'], ['protonum', 1, 'p'], ['timeout', 1, 't'],
  ['status', 1, 'u'], ['zero', 0, 'z'], ['event-mask', 1, 'e'], ['tuple-src', 1, '['], ['tuple-dst', 1, ']'],
  ['mask-src', 1, '{'], ['mask-dst', 1, '}'], ['nat-range', 1, 'a'], ['mark', 1, 'm'], ['secmark', 1, 'c'],
  ['id', 2, 'i'], ['family', 1, 'f'], ['src-nat', 2, 'n'], ['dst-nat', 2, 'g'], ['output', 1, 'o'],
  ['buffer-size', 1, 'b'], ['any-nat', 2, 'j'], ['zone', 1, 'w'], ['label', 1, 'l'], ['label-add', 1, '<'],
  ['label-del', 2, '>'], ['orig-zone', 1, '('], ['reply-zone', 1, ')'],
];

/** The short options and whether they take an argument (the tool's getopt string). */
const SHORT_OPTS = parseShortSpec(':L::I::U::D::G::E::F::A::hVs:d:r:q:p:t:u:e:a:z[:]:{:}:m:i:f:o:n::g::c:b:C::Sj::w:l:<:>::(:):');

function parseShortSpec(spec: string): Map<string, 0 | 1 | 2> {
  const m = new Map<string, 0 | 1 | 2>();
  for (let i = spec[0] === ':' ? 1 : 0; i < spec.length; i++) {
    const c = spec[i];
    let n: 0 | 1 | 2 = 0;
    if (spec[i + 1] === ':') {
      n = spec[i + 2] === ':' ? 2 : 1;
      i += n;
    }
    m.set(c, n);
  }
  return m;
}

/** A protocol's own options, present once -p names it (the tool's extensions/libct_proto_*.c). */
interface ProtoHandler {
  name: string;
  num: number;
  /** Long options: name -> code. */
  opts: [string, string][];
  /** Option codes in the order of the legality table's columns, and their names in messages. */
  flags: string[];
  flagNames: string[];
  legal: Partial<Record<number, string>>;
  /** Pairs that must come together (first the original ports, then the reply ports), and the message for each. */
  pairs: [number, number, string][];
}

const PORT_OPTS: [string, string][] = [
  ['orig-port-src', '1'], ['sport', '1'], ['orig-port-dst', '2'], ['dport', '2'], ['reply-port-src', '3'],
  ['reply-port-dst', '4'], ['mask-port-src', '5'], ['mask-port-dst', '6'],
];
const PORT_PAIRS: [number, number, string][] = [
  [0, 1, "you have to specify `--sport' and `--dport'"],
  [2, 3, "you have to specify `--reply-src-port' and `--reply-dst-port'"],
];

const TCP: ProtoHandler = {
  name: 'tcp',
  num: 6,
  opts: [...PORT_OPTS, ['state', '7'], ['tuple-port-src', '8'], ['tuple-port-dst', '9']],
  flags: ['1', '2', '3', '4', '5', '6', '7', '8', '9'],
  flagNames: ['sport', 'dport', 'reply-port-src', 'reply-port-dst', 'mask-port-src', 'mask-port-dst', 'state', 'tuple-port-src', 'tuple-port-dst'],
  legal: {
    [CT_LIST]: '222200200', [CT_CREATE]: '333300100', [CT_UPDATE]: '222200200', [CT_DELETE]: '222200200',
    [CT_GET]: '333300200', [CT_EVENT]: '222200200', [EXP_CREATE]: '110011011', [EXP_DELETE]: '111100000',
    [EXP_GET]: '111100000', [CT_ADD]: '333300100',
  },
  pairs: PORT_PAIRS,
};

const UDP: ProtoHandler = {
  name: 'udp',
  num: 17,
  opts: [...PORT_OPTS, ['tuple-port-src', '7'], ['tuple-port-dst', '8']],
  flags: ['1', '2', '3', '4', '5', '6', '7', '8'],
  flagNames: ['sport', 'dport', 'reply-port-src', 'reply-port-dst', 'mask-port-src', 'mask-port-dst', 'tuple-port-src', 'tuple-port-dst'],
  legal: {
    [CT_LIST]: '22220000', [CT_CREATE]: '33330000', [CT_UPDATE]: '22220000', [CT_DELETE]: '22220000',
    [CT_GET]: '33330000', [CT_EVENT]: '22220000', [EXP_CREATE]: '11001111', [EXP_DELETE]: '11110000',
    [EXP_GET]: '11110000', [CT_ADD]: '33330000',
  },
  pairs: PORT_PAIRS,
};

const ICMP: ProtoHandler = {
  name: 'icmp',
  num: 1,
  opts: [['icmp-type', '1'], ['icmp-code', '2'], ['icmp-id', '3']],
  flags: ['1', '2', '3'],
  flagNames: ['icmp-type', 'icmp-code', 'icmp-id'],
  legal: {
    [CT_LIST]: '222', [CT_CREATE]: '112', [CT_UPDATE]: '222', [CT_DELETE]: '222', [CT_GET]: '112',
    [CT_EVENT]: '222', [CT_ADD]: '112',
  },
  pairs: [],
};

/** Protocols without options of their own here (the tool's "unknown" handler). */
const generic = (name: string, num: number): ProtoHandler => ({ name, num, opts: [], flags: [], flagNames: [], legal: {}, pairs: [] });

/** Names getprotobyname() knows (/etc/protocols), for -p NAME of a protocol without its own options. */
const PROTO_BY_NAME: Record<string, number> = {
  ip: 0, hopopt: 0, igmp: 2, ggp: 3, ipencap: 4, st: 5, egp: 8, igp: 9, pup: 12, hmp: 20, 'xns-idp': 22,
  rdp: 27, 'iso-tp4': 29, dccp: 33, xtp: 36, ddp: 37, 'idpr-cmtp': 38, ipv6: 41, 'ipv6-route': 43,
  'ipv6-frag': 44, idrp: 45, rsvp: 46, gre: 47, esp: 50, ah: 51, skip: 57, 'ipv6-icmp': 58, icmpv6: 58,
  'ipv6-nonxt': 59, 'ipv6-opts': 60, rspf: 73, vmtp: 81, eigrp: 88, ospf: 89, 'ax.25': 93, ipip: 94,
  etherip: 97, encap: 98, pim: 103, ipcomp: 108, vrrp: 112, l2tp: 115, isis: 124, sctp: 132, fc: 133,
  'mobility-header': 135, udplite: 136, 'mpls-in-ip': 137, manet: 138, hip: 139, shim6: 140, wesp: 141,
  rohc: 142, ethernet: 143,
};

function findProto(name: string): ProtoHandler | null {
  const lower = name.toLowerCase();
  for (const h of [TCP, UDP, ICMP]) if (h.name === lower) return h;
  if (Object.hasOwn(PROTO_BY_NAME, name)) return generic(name, PROTO_BY_NAME[name]);
  const n = strtoul(name, 0);
  if (n.end === 0 || n.end !== name.length || n.value > 255) return null;
  for (const h of [TCP, UDP, ICMP]) if (h.num === n.value) return h;
  return generic(name, n.value);
}

/** The tool's template: what the options set (undefined: not given). */
interface Tmpl {
  os?: number;
  od?: number;
  rs?: number;
  rd?: number;
  l4proto?: number;
  rl4proto?: number;
  osp?: number;
  odp?: number;
  rsp?: number;
  rdp?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  tcpState?: number;
  status?: number;
  statusKernel: { val: number; mask: number } | null;
  mark: { value: number; mask: number };
  markKernel: boolean;
  id?: number;
  secmark?: number;
  zone?: number;
  origZone?: number;
  replZone?: number;
  snatIp?: number;
  snatPort?: number;
  dnatIp?: number;
  dnatPort?: number;
  /** -s/-d with a prefix: the netmask (the address itself is then not compared exactly). */
  srcMask?: number;
  dstMask?: number;
  timeout?: number;
}

// -o bits (the tool's _O_*).
const O_XML = 1;
const O_EXT = 2;
const O_TMS = 4;
const OUT_ID = 8;
const O_KTMS = 16;
const O_CL = 32;
const O_SAVE = 64;

// -e bits.
const EV_NEW = 1;
const EV_UPD = 2;
const EV_DEL = 4;

export interface CtCommand {
  cmd: number;
  table: 'conntrack' | 'expect' | 'dying' | 'unconfirmed';
  options: number;
  family: 0 | 4 | 6;
  proto: ProtoHandler | null;
  t: Tmpl;
  eventMask: number;
  output: number;
  /** Warnings the tool prints while reading its options. */
  warnings: string;
}

const TABLE_NAMES = ['expect', 'conntrack', 'dying', 'unconfirmed'] as const;

/** strtoul(s, &end, base) on a C string: value and how many characters it read (0: none). */
function strtoul(s: string, base: number): { value: number; end: number } {
  let i = 0;
  while (i < s.length && /\s/.test(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') neg = s[i++] === '-';
  if ((base === 0 || base === 16) && s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-f]/i.test(s[i + 2] ?? '')) {
    base = 16;
    i += 2;
  } else if (base === 0) base = s[i] === '0' ? 8 : 10;
  const start = i;
  let v = 0n;
  for (; i < s.length; i++) {
    const d = parseInt(s[i], 36);
    if (Number.isNaN(d) || d >= base) break;
    v = v * BigInt(base) + BigInt(d);
  }
  if (i === start) return { value: 0, end: 0 };
  if (v > 0xffffffffffffffffn) v = 0xffffffffffffffffn;
  if (neg) v = (1n << 64n) - v;
  return { value: Number(v & 0xffffffffn), end: i };
}

/** atoi(): leading digits, 0 when there are none. */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m === null ? 0 : Number(m[1]) | 0;
}

/** inet_aton(): a, a.b, a.b.c or a.b.c.d, each part decimal, octal (0...) or hex (0x...). */
function inetAton(s: string): number | null {
  const parts = s.split('.');
  if (parts.length > 4) return null;
  const vals: number[] = [];
  for (const p of parts) {
    if (p === '') return null;
    const r = strtoul(p, 0);
    if (r.end !== p.length || /^\s|^[+-]/.test(p)) return null;
    vals.push(r.value);
  }
  const last = vals[vals.length - 1];
  const head = vals.slice(0, -1);
  if (head.some((v) => v > 255)) return null;
  const room = 2 ** (8 * (4 - head.length));
  if (last >= room) return null;
  let n = 0;
  for (const v of head) n = n * 256 + v;
  return n * room + last;
}

const isIPv6 = (s: string): boolean => /^[0-9a-f:.]+$/i.test(s) && s.includes(':') && s.split('::').length <= 2;

/** parse_addr(): the family (4, 6 or 0 when invalid), the IPv4 address and the prefix (-1 none, -2 invalid). */
function parseAddr(cp: string, withMask: boolean): { family: 0 | 4 | 6; addr: number; mask: number } {
  let text = cp.slice(0, 45);
  let mask = -1;
  if (withMask) {
    const slash = text.indexOf('/');
    if (slash >= 0) {
      const m = /^[+-]?\d*/.exec(text.slice(slash + 1))![0];
      const v = m === '' || m === '+' || m === '-' ? 0 : Number(m);
      mask = v < 0 || m.length !== text.length - slash - 1 ? -2 : v;
      text = text.slice(0, slash);
    }
  }
  const a = inetAton(text);
  if (a !== null) return { family: 4, addr: a, mask: mask > 32 ? -2 : mask };
  if (isIPv6(text)) return { family: 6, addr: 0, mask: mask > 128 ? -2 : mask };
  return { family: 0, addr: 0, mask };
}

function longName(c: string): string {
  return LONG_OPTS.find((o) => o[2] === c)?.[0] ?? 'unknown';
}

/** do_parse_parameter(): one word of -u/-e/-o, matched case-insensitively on its first `len` letters. */
function parseParameterWord(word: string, names: readonly string[], values: readonly number[], warn: (s: string) => void): number | null {
  const n = word.length;
  const eq = (a: string): boolean => n <= a.length && a.slice(0, n).toLowerCase() === word.toLowerCase();
  if (eq('SRC_NAT')) {
    warn('WARNING: ignoring SRC_NAT, use --src-nat instead\n');
    return 0;
  }
  if (eq('DST_NAT')) {
    warn('WARNING: ignoring DST_NAT, use --dst-nat instead\n');
    return 0;
  }
  for (let i = 0; i < names.length; i++) if (eq(names[i])) return values[i];
  return null;
}

const STATUS_NAMES = ['ASSURED', 'SEEN_REPLY', 'UNSET', 'FIXED_TIMEOUT', 'EXPECTED', 'OFFLOAD', 'HW_OFFLOAD'];
const STATUS_VALUES = [IPS_ASSURED, IPS_SEEN_REPLY, 0, IPS_FIXED_TIMEOUT, IPS_EXPECTED, IPS_OFFLOAD, 1 << 15];
const EVENT_NAMES = ['ALL', 'NEW', 'UPDATES', 'DESTROY'];
const EVENT_VALUES = [EV_NEW | EV_UPD | EV_DEL, EV_NEW, EV_UPD, EV_DEL];
const OUTPUT_NAMES = ['xml', 'extended', 'timestamp', 'id', 'ktimestamp', 'labels', 'userspace', 'save'];
const OUTPUT_VALUES = [O_XML, O_EXT, O_TMS, OUT_ID, O_KTMS, O_CL, 0, O_SAVE];

/** parse_parameter(): a comma-separated list; the first bad word fails with the rest of the list. */
function parseParameter(arg: string, names: readonly string[], values: readonly number[], warn: (s: string) => void): number {
  let v = 0;
  let rest = arg;
  for (;;) {
    const comma = rest.indexOf(',');
    const word = comma < 0 ? rest : rest.slice(0, comma);
    const r = word === '' ? null : parseParameterWord(word, names, values, warn);
    if (r === null) exitError(PARAMETER_PROBLEM, `Bad parameter \`${rest}'`);
    v |= r;
    if (comma < 0) return v;
    rest = rest.slice(comma + 1);
  }
}

/** parse_parameter_mask() for -u: `!NAME` goes to the mask, UNREPLIED means "SEEN_REPLY clear". */
function parseStatus(arg: string, t: { status: number; mask: number }, warn: (s: string) => void): void {
  let rest = arg;
  for (;;) {
    const comma = rest.indexOf(',');
    if (comma === 0) exitError(PARAMETER_PROBLEM, `Bad parameter \`${rest}'`);
    let word = comma < 0 ? rest : rest.slice(0, comma);
    const negated = word.startsWith('!');
    if (negated) {
      word = word.slice(1);
      if (comma === 1) exitError(PARAMETER_PROBLEM, `Bad parameter \`${rest.slice(1)}'`);
    }
    const bad = negated ? rest.slice(1) : rest;
    if (!negated && rest.startsWith('UNREPLIED')) {
      t.mask |= IPS_SEEN_REPLY;
    } else {
      const r = word === '' ? null : parseParameterWord(word, STATUS_NAMES, STATUS_VALUES, warn);
      if (r === null) exitError(PARAMETER_PROBLEM, `Bad parameter \`${bad}'`);
      if (negated) t.mask |= r;
      else t.status |= r;
    }
    if (comma < 0) return;
    rest = rest.slice(comma + 1);
  }
}

/** split_address_and_port() for -n/-g/-j ADDR[:PORT]. */
function splitAddressPort(arg: string): { addr: string; port: string | null } {
  const br = arg.indexOf('[');
  if (br >= 0) {
    const close = arg.indexOf(']', br + 1);
    if (close === br + 1) exitError(PARAMETER_PROBLEM, 'No IPv6 address specified');
    if (close < 0) exitError(PARAMETER_PROBLEM, "No closing ']' around IPv6 address");
    const colon = arg.indexOf(':', close);
    if (colon < 0) return { addr: arg, port: null };
    return { addr: arg.slice(br + 1, close), port: checkPort(arg.slice(colon + 1)) };
  }
  const colon = arg.indexOf(':');
  if (colon >= 0 && arg.indexOf(':', colon + 1) < 0) return { addr: arg.slice(0, colon), port: checkPort(arg.slice(colon + 1)) };
  return { addr: arg, port: null };
}

function checkPort(p: string): string {
  if (p === '') exitError(PARAMETER_PROBLEM, "No port specified after `:'");
  if (!/^\d+$/.test(p) || Number(p) > 65535) exitError(PARAMETER_PROBLEM, `Invalid port \`${p}'`);
  return p;
}

/** generic_opt_check(): the first option (by column) that is missing or not allowed fails. */
function optCheck(given: number, row: string, names: string[], pairs: [number, number, string][] | null): void {
  let special = false;
  for (let i = 0; i < names.length; i++) {
    const need = row[i] ?? '0';
    const has = (given & bit(i)) !== 0;
    if (!has && need === '1') exitError(PARAMETER_PROBLEM, `You need to supply the \`--${names[i]}' option for this command`);
    if (has && need === '0') exitError(PARAMETER_PROBLEM, `Illegal option \`--${names[i]}' with this command`);
    if (need === '3') special = true;
  }
  if (!special || pairs === null) return;
  let partial = -1;
  for (let i = 0; i < pairs.length; i++) {
    const m = bit(pairs[i][0]) + bit(pairs[i][1]);
    if ((given & m) === m) return;
    if ((given & m) !== 0 && partial < 0) partial = i;
  }
  exitError(PARAMETER_PROBLEM, pairs[Math.max(partial, 0)][2]);
}

/** Reads a conntrack command line as conntrack-tools does. Throws CtExit. */
export function parseConntrackArgs(argv: readonly string[]): CtCommand {
  let warnings = '';
  const warn = (s: string): void => {
    warnings += s;
  };
  const t: Tmpl = { statusKernel: null, mark: { value: 0, mask: 0 }, markKernel: false };
  let command = -1;
  let table: CtCommand['table'] = 'conntrack';
  let options = 0;
  let family: 0 | 4 | 6 = 0;
  let proto: ProtoHandler | null = null;
  let protoFlags = 0;
  let eventMask = 0;
  let output = 0;
  const status = { status: 0, mask: 0 };
  const setOpt = (b: number): void => {
    options |= bit(b);
  };
  const setFamily = (f: 4 | 6): void => {
    if (family === 0) family = f;
    else if (family !== f) exitError(PARAMETER_PROBLEM, 'mismatched address family');
  };

  let i = 0;
  /** get_optional_arg(): the next word, unless it looks like an option. */
  const optionalArg = (optarg: string | null): string | null => {
    if (optarg !== null) return optarg;
    const w = argv[i];
    if (w !== undefined && w[0] !== '-' && w[0] !== '!') {
      i++;
      return w;
    }
    return null;
  };
  const checkType = (optarg: string | null): CtCommand['table'] => {
    const s = optionalArg(optarg);
    if (s === null) return 'conntrack';
    const tname = TABLE_NAMES.find((n) => n.startsWith(s));
    if (tname === undefined) exitError(PARAMETER_PROBLEM, `unknown type \`${s}'`);
    return tname;
  };
  const addCommand = (c: number): void => {
    if (command >= 0) exitError(PARAMETER_PROBLEM, 'Invalid commands combination');
    command = c;
  };
  /** nfct_parse_addr_from_opt() for -s -d -r -q --mask-src --mask-dst -n -g -j. */
  const addrOpt = (c: string, arg: string): { addr: number; family: 4 | 6 } => {
    const maskOpt = c === 's' ? '{' : c === 'd' ? '}' : null;
    const p = parseAddr(arg, true);
    if (p.family === 0) exitError(PARAMETER_PROBLEM, `Invalid IP address \`${arg}'`);
    setFamily(p.family);
    if (p.mask !== -1 && maskOpt === null) exitError(PARAMETER_PROBLEM, `CIDR notation unavailable for \`--${longName(c)}'`);
    if (p.mask === -2) exitError(PARAMETER_PROBLEM, 'Invalid netmask');
    const a = p.family === 4 ? p.addr : -1; // an IPv6 address matches no entry here
    switch (c) {
      case 's':
        setOpt(O_SRC);
        t.os = a;
        break;
      case 'd':
        setOpt(O_DST);
        t.od = a;
        break;
      case 'r':
        setOpt(O_RSRC);
        t.rs = a;
        break;
      case 'q':
        setOpt(O_RDST);
        t.rd = a;
        break;
      case '{':
        setOpt(O_MASKSRC);
        t.srcMask = a;
        break;
      case '}':
        setOpt(O_MASKDST);
        t.dstMask = a;
        break;
    }
    if (p.mask >= 0 && maskOpt !== null && p.mask !== (p.family === 4 ? 32 : 128)) {
      const m = p.mask === 0 ? 0 : (0xffffffff << (32 - Math.min(p.mask, 32))) >>> 0;
      setOpt(maskOpt === '{' ? O_MASKSRC : O_MASKDST);
      if (maskOpt === '{') t.srcMask = m;
      else t.dstMask = m;
    }
    return { addr: a, family: p.family };
  };
  const protoOpt = (code: string, arg: string): void => {
    const h = proto!;
    const k = h.flags.indexOf(code);
    protoFlags |= bit(k);
    if (h === ICMP) {
      if (code === '1') t.icmpType = atoi(arg) & 0xff;
      else if (code === '2') t.icmpCode = atoi(arg) & 0xff;
      else t.icmpId = atoi(arg) & 0xffff;
      t.l4proto = 1;
      return;
    }
    const port = atoi(arg) & 0xffff;
    switch (code) {
      case '1':
        t.osp = port;
        t.l4proto = h.num;
        break;
      case '2':
        t.odp = port;
        t.l4proto = h.num;
        break;
      case '3':
        t.rsp = port;
        t.rl4proto = h.num;
        break;
      case '4':
        t.rdp = port;
        t.rl4proto = h.num;
        break;
      case '7':
        if (h === TCP) {
          const s = TCP_STATES.indexOf(arg);
          if (arg === 'LISTEN') t.tcpState = 9;
          else if (s < 0) exitError(PARAMETER_PROBLEM, `unknown TCP state \`${arg}'`);
          else t.tcpState = s;
        }
        break;
      // mask and expectation ports: only legal with expectation commands
    }
  };

  while (i < argv.length) {
    const a = argv[i++];
    if (a === '--') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const inline = eq < 0 ? null : a.slice(eq + 1);
      const h = proto as ProtoHandler | null;
      const table2: [string, 0 | 1 | 2, string][] = [...LONG_OPTS, ...(h ? h.opts.map(([n, c]): [string, 0 | 1 | 2, string] => [n, 1, `#${c}`]) : [])];
      let o = table2.find((x) => x[0] === name);
      if (o === undefined && name !== '') {
        const cands = table2.filter((x) => x[0].startsWith(name));
        if (cands.length > 0 && cands.every((x) => x[1] === cands[0][1] && x[2] === cands[0][2])) o = cands[0];
      }
      if (o === undefined || (o[1] === 0 && inline !== null)) exitError(PARAMETER_PROBLEM, `unknown option \`${a}'`);
      let optarg: string | null = inline;
      if (o[1] === 1 && optarg === null) {
        if (i >= argv.length) exitError(PARAMETER_PROBLEM, `option \`${a}' requires an argument`);
        optarg = argv[i++];
      }
      handle(o[2], optarg);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        const spec = SHORT_OPTS.get(c);
        if (spec === undefined || c === ':') exitError(PARAMETER_PROBLEM, `unknown option \`${a}'`);
        if (spec === 0) {
          handle(c, null);
          continue;
        }
        let optarg: string | null = j + 1 < a.length ? a.slice(j + 1) : null;
        if (spec === 1 && optarg === null) {
          if (i >= argv.length) exitError(PARAMETER_PROBLEM, `option \`${a}' requires an argument`);
          optarg = argv[i++];
        }
        handle(c, optarg);
        break;
      }
      continue;
    }
    // getopt moves words that are not options to the end; the tool ignores them.
  }

  function handle(c: string, optarg: string | null): void {
    const arg = optarg ?? '';
    switch (c) {
      case 'L': {
        const ty = checkType(optarg);
        table = ty;
        addCommand(ty === 'expect' ? EXP_LIST : CT_LIST);
        return;
      }
      case 'I':
      case 'D':
      case 'G':
      case 'F':
      case 'E':
      case 'V':
      case 'h':
      case 'C':
      case 'S':
      case 'U':
      case 'A': {
        const ty = checkType(optarg);
        if (ty === 'dying' || ty === 'unconfirmed') exitError(PARAMETER_PROBLEM, "Can't do that command with tables `dying' and `unconfirmed'");
        const exp = ty === 'expect';
        const map: Record<string, [number, number]> = {
          I: [CT_CREATE, EXP_CREATE], D: [CT_DELETE, EXP_DELETE], G: [CT_GET, EXP_GET], F: [CT_FLUSH, EXP_FLUSH],
          E: [CT_EVENT, EXP_EVENT], V: [CT_VERSION, CT_VERSION], h: [CT_HELP, CT_HELP], C: [CT_COUNT, EXP_COUNT],
          S: [CT_STATS, EXP_STATS], U: [CT_UPDATE, -1], A: [CT_ADD, -1],
        };
        const cmd = map[c][exp ? 1 : 0];
        if (cmd < 0) exitError(PARAMETER_PROBLEM, `Can't do --${longName(c)} on expectations`);
        table = ty;
        addCommand(cmd);
        return;
      }
      case 's':
      case 'd':
      case 'r':
      case 'q':
      case '{':
      case '}':
        addrOpt(c, arg);
        return;
      case '[':
      case ']': {
        const p = parseAddr(arg, true);
        if (p.family === 0) exitError(PARAMETER_PROBLEM, `Invalid IP address \`${arg}'`);
        setFamily(p.family);
        if (p.mask === -2) exitError(PARAMETER_PROBLEM, 'Invalid netmask');
        setOpt(c === '[' ? O_EXPSRC : O_EXPDST);
        return;
      }
      case 'p': {
        setOpt(O_PROTO);
        const h = findProto(arg);
        if (h === null) exitError(PARAMETER_PROBLEM, `\`${arg}' unsupported protocol`);
        proto = h;
        t.l4proto = h.num;
        return;
      }
      case 't':
        setOpt(O_TIMEOUT);
        t.timeout = atoi(arg);
        return;
      case 'u':
        setOpt(O_STATUS);
        parseStatus(arg, status, warn);
        t.status = status.status;
        t.statusKernel = { val: status.status, mask: status.mask === 0 ? status.status : status.mask };
        // The tool stores the status in the mark's value too (a later -m replaces it).
        t.mark.value = status.status;
        return;
      case 'e':
        setOpt(O_EVMASK);
        eventMask |= parseParameter(arg, EVENT_NAMES, EVENT_VALUES, warn);
        return;
      case 'o':
        setOpt(O_OUTPUT);
        output |= parseParameter(arg, OUTPUT_NAMES, OUTPUT_VALUES, warn);
        if ((output & O_SAVE) !== 0 && (output & (O_EXT | O_TMS | OUT_ID | O_KTMS | O_CL | O_XML)) !== 0)
          exitError(OTHER_PROBLEM, 'cannot combine save output with any other output type, use -o save only');
        return;
      case 'z':
        setOpt(O_ZERO);
        return;
      case 'n':
      case 'g':
      case 'j': {
        setOpt(c === 'n' ? O_SNAT : c === 'g' ? O_DNAT : O_ANYNAT);
        const s = optionalArg(optarg);
        if (s === null) return;
        const sp = splitAddressPort(s);
        const p = parseAddr(sp.addr, true);
        if (p.family === 0) exitError(PARAMETER_PROBLEM, `Invalid IP address \`${sp.addr}'`);
        setFamily(p.family);
        if (p.mask !== -1) exitError(PARAMETER_PROBLEM, `CIDR notation unavailable for \`--${longName(c)}'`);
        const addr = p.family === 4 ? p.addr : -1;
        const port = sp.port === null ? undefined : atoi(sp.port) & 0xffff;
        if (c === 'n' || c === 'j') {
          t.snatIp = addr;
          if (port !== undefined) t.snatPort = port;
        }
        if (c === 'g' || c === 'j') {
          t.dnatIp = addr;
          if (port !== undefined) t.dnatPort = port;
        }
        return;
      }
      case 'w':
      case '(':
      case ')': {
        setOpt(c === 'w' ? O_ZONE : c === '(' ? O_OZONE : O_RZONE);
        const z = strtoul(arg, 0).value & 0xffff;
        if (c === 'w') t.zone = z;
        else if (c === '(') t.origZone = z;
        else t.replZone = z;
        return;
      }
      case 'i':
        setOpt(O_ID);
        t.id = strtoul(arg, 0).value;
        return;
      case 'c':
        setOpt(O_SECMARK);
        t.secmark = strtoul(arg, 0).value;
        return;
      case 'm': {
        setOpt(O_MARK);
        const v = strtoul(arg, 0);
        t.mark = { value: v.value, mask: arg[v.end] === '/' ? strtoul(arg.slice(v.end + 1), 0).value : 0xffffffff };
        t.markKernel = true;
        return;
      }
      case 'l':
      case '<':
      case '>': {
        setOpt(c === 'l' ? O_LABEL : c === '<' ? O_ADDLABEL : O_DELLABEL);
        if ((options & (bit(O_ADDLABEL) | bit(O_DELLABEL))) === bit(O_ADDLABEL) + bit(O_DELLABEL))
          exitError(OTHER_PROBLEM, 'cannot use --label-add and --label-del at the same time');
        const s = c === '>' ? optionalArg(optarg) : arg;
        if (s === null) return;
        // No label names are defined (connlabel.conf): every name is unknown.
        exitError(PARAMETER_PROBLEM, `unknown label '${s.split(',')[0]}'`);
        return;
      }
      case 'a':
        warn('WARNING: ignoring -a, deprecated option.\n');
        return;
      case 'f':
        setOpt(O_FAMILY);
        if (arg.startsWith('ipv4')) setFamily(4);
        else if (arg.startsWith('ipv6')) setFamily(6);
        else exitError(PARAMETER_PROBLEM, `\`${arg}' unsupported protocol`);
        return;
      case 'b':
        setOpt(O_BUFSIZE);
        return;
      default:
        if (c.startsWith('#') && proto !== null) protoOpt(c.slice(1), arg);
    }
  }

  if (options & bit(O_ANYNAT) && options & (bit(O_SNAT) | bit(O_DNAT)))
    exitError(PARAMETER_PROBLEM, "cannot specify `--src-nat' or `--dst-nat' with `--any-nat'");
  if (command < 0) command = NUMBER_OF_CMD; // no command: the usage text
  if (command < NUMBER_OF_CMD) {
    optCheck(options, LEGAL[command], OPT_NAMES, [
      [O_SRC, O_DST, "you have to specify `--src' and `--dst'"],
      [O_RSRC, O_RDST, "you have to specify `--reply-src' and `--reply-dst'"],
    ]);
    const h = proto as ProtoHandler | null;
    if (command !== CT_HELP && h !== null && h.flags.length > 0) optCheck(protoFlags, h.legal[command] ?? '', h.flagNames, h.pairs.length > 0 ? h.pairs : null);
  }
  return { cmd: command, table, options, family, proto, t, eventMask, output, warnings };
}

const TCP_STATES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];

const PORT_PROTOS = new Set([6, 17, 136, 132, 33]);

/** filter_nat(): -n/-g/-j, with libnetfilter_conntrack's idea of "NATed" (the tuples differ, NAT done). */
function filterNat(c: CtCommand, e: CtEntry): boolean {
  const o = c.options;
  let checkS = (o & bit(O_SNAT)) !== 0;
  let checkD = (o & bit(O_DNAT)) !== 0;
  const any = (o & bit(O_ANYNAT)) !== 0;
  if (any) checkS = checkD = true;
  const sDone = (e.status & IPS_SRC_NAT_DONE) !== 0;
  const dDone = (e.status & IPS_DST_NAT_DONE) !== 0;
  const isSnat = sDone && e.rd !== e.os;
  const isDnat = dDone && e.rs !== e.od;
  const isSpat = sDone && e.rdp !== e.osp;
  const isDpat = dDone && e.rsp !== e.odp;
  const side = (ip: number | undefined, port: number | undefined, isNat: boolean, isPat: boolean, natAddr: number, natPort: number): boolean => {
    let has = false;
    if (ip !== undefined) has = isNat && ip === natAddr;
    if (port !== undefined) {
      const ok = isPat && port === natPort;
      if (ip !== undefined && has && !ok) has = false;
      if (ip === undefined && ok) has = true;
    }
    if (ip === undefined && port === undefined) has = isNat || isPat;
    return has;
  };
  const hasS = checkS && side(c.t.snatIp, c.t.snatPort, isSnat, isSpat, e.rd, e.rdp);
  const hasD = checkD && side(c.t.dnatIp, c.t.dnatPort, isDnat, isDpat, e.rs, e.rsp);
  if (any) return !(hasS || hasD);
  if (checkS && checkD) return !(hasS && hasD);
  if (checkS) return !hasS;
  if (checkD) return !hasD;
  return false;
}

/** nfct_cmp(NFCT_CMP_ALL | NFCT_CMP_MASK) with the template: every attribute given must match. */
function cmpAll(c: CtCommand, e: CtEntry, orig = true, repl = true, meta = true): boolean {
  const t = c.t;
  const ports = PORT_PROTOS.has(e.proto);
  if (orig) {
    if (t.os !== undefined && (c.options & bit(O_MASKSRC)) === 0 && t.os !== e.os) return false;
    if (t.od !== undefined && (c.options & bit(O_MASKDST)) === 0 && t.od !== e.od) return false;
    if (t.l4proto !== undefined && t.l4proto !== e.proto) return false;
    if (t.osp !== undefined && (!ports || t.osp !== e.osp)) return false;
    if (t.odp !== undefined && (!ports || t.odp !== e.odp)) return false;
    if (t.icmpType !== undefined && (e.proto !== 1 || t.icmpType !== e.odp >>> 8)) return false;
    if (t.icmpCode !== undefined && (e.proto !== 1 || t.icmpCode !== (e.odp & 0xff))) return false;
    if (t.icmpId !== undefined && (e.proto !== 1 || t.icmpId !== e.osp)) return false;
  }
  if (repl) {
    if (t.rs !== undefined && t.rs !== e.rs) return false;
    if (t.rd !== undefined && t.rd !== e.rd) return false;
    if (t.rl4proto !== undefined && t.rl4proto !== e.proto) return false;
    if (t.rsp !== undefined && (!ports || t.rsp !== e.rsp)) return false;
    if (t.rdp !== undefined && (!ports || t.rdp !== e.rdp)) return false;
  }
  if (meta) {
    if (t.tcpState !== undefined && (e.proto !== 6 || t.tcpState !== e.state)) return false;
    if (t.status !== undefined && (t.status & e.status) !== t.status) return false;
    if (t.id !== undefined && t.id !== e.id >>> 0) return false;
    if (t.secmark !== undefined && t.secmark !== 0) return false;
    if (t.zone !== undefined && t.zone !== 0) return false;
    if (t.origZone !== undefined && t.origZone !== 0) return false;
    if (t.replZone !== undefined && t.replZone !== 0) return false;
  }
  return true;
}

/** nfct_filter(): true when the entry is filtered out. */
function filtered(c: CtCommand, e: CtEntry): boolean {
  if (filterNat(c, e)) return true;
  if (c.options & bit(O_MARK) && ((e.mark & c.t.mark.mask) >>> 0) !== c.t.mark.value >>> 0) return true;
  if (c.options & bit(O_MASKSRC)) {
    if (c.family === 6 || c.t.os === undefined || c.t.srcMask === undefined || ((e.os & c.t.srcMask) >>> 0) !== ((c.t.os & c.t.srcMask) >>> 0)) return true;
  }
  if (c.options & bit(O_MASKDST)) {
    if (c.family === 6 || c.t.od === undefined || c.t.dstMask === undefined || ((e.od & c.t.dstMask) >>> 0) !== ((c.t.od & c.t.dstMask) >>> 0)) return true;
  }
  if (c.options & COMPARISON && !cmpAll(c, e)) return true;
  return false;
}

/** The dump's own filters, applied before nfct_filter (mark, family, status: CTA_FILTER-style). */
function kernelFiltered(c: CtCommand, e: CtEntry, status: boolean): boolean {
  if (c.family === 6) return true;
  if (c.t.markKernel && ((e.mark & c.t.mark.mask) >>> 0) !== c.t.mark.value >>> 0) return true;
  if (status && c.t.statusKernel !== null && ((e.status & c.t.statusKernel.mask) >>> 0) !== c.t.statusKernel.val) return true;
  return false;
}

/** The port id that events caused by a command of this CLI carry ([USERSPACE] portid=N); 0 outside one. */
let actingPortid = 0;
/** -U is changing marks: its update events show mark=N even when it is 0 (IPCT_MARK). */
let markEvent = false;

function line(env: ConntrackEnv, c: CtCommand, e: CtEntry, use: number | null, event: CtEventKind | null, ktimestamp = true): string {
  const timestamps = env.sysctl('net.netfilter.nf_conntrack_timestamp') !== 0;
  const acct = env.sysctl('net.netfilter.nf_conntrack_acct') !== 0;
  const left = env.ct.timeLeft(e);
  const now = env.now();
  const wall = env.wallNow();
  const stamps = timestamps && (event === null || event === 'destroy');
  const startWall = wall - (now - e.start);
  const endWall = event === 'destroy' && e.stop !== 0 ? wall - (now - e.stop) : wall;
  return ((c.output & O_XML) !== 0 ? formatEntryXml : formatEntry)(e, {
    // A destroy event leaves the timeout out once it reached 0 (ctnetlink_dump_timeout's skip_zero).
    timeout: event === 'destroy' && left === 0 ? null : left,
    state: env.ct.stateName(e),
    extended: (c.output & O_EXT) !== 0,
    id: (c.output & OUT_ID) !== 0,
    mark: event === null || e.mark !== 0 || (event === 'update' && markEvent),
    use,
    // Counters exist for entries made while nf_conntrack_acct was on (they counted their first packet).
    acct: (acct || e.pkts0 !== 0 || e.pkts1 !== 0) && (event === null || event === 'destroy'),
    // Timestamps (nf_conntrack_timestamp) are in dumps and destroy events; delta-time is the
    // difference of the whole seconds of the end (now, or the destruction) and the start.
    deltaTime: stamps ? Math.floor(endWall / 1000) - Math.floor(startWall / 1000) : null,
    start: stamps && ktimestamp && (c.output & O_KTMS) !== 0 ? ctime(startWall) : null,
    stop: stamps && ktimestamp && (c.output & O_KTMS) !== 0 && event === 'destroy' ? ctime(endWall) : null,
    event,
  });
}

function summary(msg: string): string {
  return `${CONNTRACK_VERSION}: ${msg}\n`;
}

const USAGE = `Command line interface for the connection tracking system. Version 1.4.7
Usage: conntrack [commands] [options]

Commands: -L (list), -G (get), -D (delete), -U (update), -E (events), -F (flush),
  -C (count), -S (statistics), each optionally followed by a table: conntrack
  (the default), expect, dying or unconfirmed.
Filters: -s/--src, -d/--dst, -r/--reply-src, -q/--reply-dst ADDR[/LEN], -p PROTO
  (then --sport, --dport, --reply-port-src, --reply-port-dst; tcp --state;
  icmp --icmp-type, --icmp-code, --icmp-id), -u/--status, -m/--mark V[/M],
  -n/--src-nat, -g/--dst-nat, -j/--any-nat [ADDR[:PORT]], -f ipv4.
Output: -o extended,id,timestamp,ktimestamp,xml; -e NEW,UPDATES,DESTROY for -E.
`;

/** Carries out a conntrack command that does not stream (everything but -E). */
export function runConntrack(env: ConntrackEnv, argv: readonly string[]): CtResult {
  let c: CtCommand;
  try {
    c = parseConntrackArgs(argv);
  } catch (e) {
    if (e instanceof CtExit) return { stdout: '', stderr: e.stderr, code: e.code };
    throw e;
  }
  let stdout = '';
  let stderr = c.warnings;
  try {
    const r = execute(env, c);
    stdout += r.stdout;
    stderr += r.stderr;
    return { stdout, stderr, code: r.code };
  } catch (e) {
    if (e instanceof CtExit) return { stdout, stderr: stderr + e.stderr, code: e.code };
    throw e;
  }
}

function newPortid(env: ConntrackEnv): number {
  return (Math.floor(env.random() * 0x7fffffff) | 0x80000000) >>> 0;
}

function execute(env: ConntrackEnv, c: CtCommand): CtResult {
  const ct = env.ct;
  let out = '';
  let err = '';
  let counter = 0;
  if ((c.output & O_SAVE) !== 0) exitError(OTHER_PROBLEM, 'save output is not supported here');
  const xml = (c.output & O_XML) !== 0;
  switch (c.cmd) {
    case CT_LIST: {
      // Nothing waits in the dying or unconfirmed lists between packets here.
      if (c.table === 'dying' || c.table === 'unconfirmed') return { stdout: '', stderr: summary('0 flow entries have been shown.'), code: 0 };
      if (c.options & COMPARISON && c.options & bit(O_ZERO)) exitError(PARAMETER_PROBLEM, "Can't use -z with filtering parameters");
      maskCheck(c);
      ct.forEach((e) => {
        if (kernelFiltered(c, e, true) || filtered(c, e)) return;
        // -o xml: the document opens with the first entry and closes after the last.
        if (xml && counter === 0) out += XML_HEADER;
        out += line(env, c, e, 1, null) + '\n';
        counter++;
        if (c.options & bit(O_ZERO)) e.pkts0 = e.bytes0 = e.pkts1 = e.bytes1 = 0;
      });
      if (xml && counter > 0) out += XML_FOOTER;
      err += summary(`${counter} flow entries have been shown.`);
      return { stdout: out, stderr: err, code: 0 };
    }
    case EXP_LIST:
      return { stdout: '', stderr: summary('0 expectations have been shown.'), code: 0 };
    case CT_GET: {
      const t = c.t;
      // The tuple goes to the kernel as the original one; -p alone puts a protocol in it, so without
      // --src/--dst it is incomplete (ctnetlink: EINVAL).
      if (t.os === undefined || t.od === undefined) exitError(OTHER_PROBLEM, 'Operation failed: invalid parameters');
      let sp = 0;
      let dp = 0;
      if (t.l4proto === 1) {
        sp = t.icmpId ?? 0;
        dp = ((t.icmpType ?? 0) << 8) | (t.icmpCode ?? 0);
      } else if (PORT_PROTOS.has(t.l4proto ?? 0)) {
        sp = t.osp ?? 0;
        dp = t.odp ?? 0;
      }
      const e = c.family === 6 ? null : ct.find(t.l4proto ?? 0, t.os, t.od, sp, dp);
      if (e === null) exitError(OTHER_PROBLEM, "Operation failed: such conntrack doesn't exist");
      // The answer goes through the same filter as a dump's: a tuple that found the entry from its
      // reply direction does not compare equal to the original one, and nothing is shown.
      if (!filtered(c, e)) {
        // -o xml opens the document here and, unlike a listing, never closes it.
        if (xml) out += XML_HEADER;
        // The entry is held while its message is built: use=2.
        out += line(env, c, e, 2, null, false) + '\n';
        counter++;
      }
      err += summary(`${counter} flow entries have been shown.`);
      return { stdout: out, stderr: err, code: counter === 0 ? 1 : 0 };
    }
    case CT_DELETE: {
      maskCheck(c);
      const victims: CtEntry[] = [];
      ct.forEach((e) => {
        if (!kernelFiltered(c, e, false) && !filtered(c, e)) victims.push(e);
      });
      const prev = actingPortid;
      actingPortid = newPortid(env);
      try {
        for (const e of victims) {
          ct.delete(e);
          out += line(env, c, e, 1, null, false) + '\n';
          counter++;
        }
      } finally {
        actingPortid = prev;
      }
      err += summary(`${counter} flow entries have been deleted.`);
      return { stdout: out, stderr: err, code: counter === 0 ? 1 : 0 };
    }
    case CT_UPDATE: {
      maskCheck(c);
      const t = c.t;
      const todo: CtEntry[] = [];
      ct.forEach((e) => {
        if (filterNat(c, e) || c.family === 6) return;
        if (c.options & bit(O_MASKSRC) && (t.os === undefined || t.srcMask === undefined || ((e.os & t.srcMask) >>> 0) !== ((t.os & t.srcMask) >>> 0))) return;
        if (c.options & bit(O_MASKDST) && (t.od === undefined || t.dstMask === undefined || ((e.od & t.dstMask) >>> 0) !== ((t.od & t.dstMask) >>> 0))) return;
        if (t.id !== undefined && t.id !== e.id >>> 0) return;
        if (c.options & (bit(O_SRC) | bit(O_DST) | bit(O_PROTO)) && !cmpAll(c, e, true, false, false)) return;
        if (c.options & (bit(O_RSRC) | bit(O_RDST) | bit(O_PROTO)) && !cmpAll(c, e, false, true, false)) return;
        todo.push(e);
      });
      const prev = actingPortid;
      actingPortid = newPortid(env);
      markEvent = (c.options & bit(O_MARK)) !== 0;
      try {
        for (const e of todo) {
          const mark = c.options & bit(O_MARK) ? (((e.mark & ~t.mark.mask) ^ t.mark.value) >>> 0) : e.mark >>> 0;
          const status = c.options & bit(O_STATUS) ? (e.status | (t.status ?? 0)) : e.status;
          const retime = (c.options & bit(O_TIMEOUT)) !== 0 && ct.timeLeft(e) !== t.timeout;
          // Entries the update would not change are left alone and not counted.
          if (mark === e.mark >>> 0 && status === e.status && !retime) continue;
          // The tool sends the change with the command's address family, which only an address or -f
          // sets; ctnetlink refuses a tuple of family AF_UNSPEC (EOPNOTSUPP). The tool reports the failed
          // update, then fails reading the entry back the same way and stops.
          if (c.family === 0) {
            err += 'Operation failed: Operation not supported\n';
            throw new CtExit(err + summary('Operation failed: Operation not supported'), OTHER_PROBLEM);
          }
          e.status = status;
          // ctnetlink_change_timeout: the entry now expires that many seconds from now.
          if (retime) e.deadline = env.now() + Math.max(0, t.timeout ?? 0) * 1000;
          if (mark !== e.mark >>> 0) ct.setEntryMark(e, mark);
          out += line(env, c, e, 2, null, false) + '\n';
          counter++;
        }
      } finally {
        actingPortid = prev;
        markEvent = false;
      }
      err += summary(`${counter} flow entries have been updated.`);
      return { stdout: out, stderr: err, code: counter === 0 ? 1 : 0 };
    }
    case CT_FLUSH: {
      const prev = actingPortid;
      actingPortid = newPortid(env);
      try {
        ct.flush();
      } finally {
        actingPortid = prev;
      }
      return { stdout: '', stderr: summary('connection tracking table has been emptied.'), code: 0 };
    }
    case EXP_FLUSH:
      return { stdout: '', stderr: summary('expectation table has been emptied.'), code: 0 };
    case CT_COUNT:
      return { stdout: `${ct.count}\n`, stderr: '', code: 0 };
    case EXP_COUNT:
      return { stdout: '0\n', stderr: '', code: 0 };
    case CT_STATS:
      return { stdout: formatStats(ct.stats as Record<string, number>), stderr: '', code: 0 };
    case EXP_STATS:
      return { stdout: 'cpu=0   \texpect_new=0 expect_create=0 expect_delete=0 \n', stderr: '', code: 0 };
    case CT_VERSION:
      return { stdout: `${CONNTRACK_VERSION}\n`, stderr: '', code: 0 };
    case CT_EVENT:
    case EXP_EVENT:
      exitError(OTHER_PROBLEM, 'events stream only over the control socket (tapstack conntrack -E)');
      break;
    case EXP_DELETE:
    case EXP_GET:
      exitError(OTHER_PROBLEM, "Operation failed: such conntrack doesn't exist");
      break;
    case CT_CREATE:
    case CT_ADD:
    case EXP_CREATE:
      exitError(OTHER_PROBLEM, 'Operation failed: creating entries is not supported here');
      break;
    default:
      return { stdout: USAGE, stderr: '', code: 0 };
  }
  return { stdout: out, stderr: err, code: 0 };
}

/** nfct_filter_init(): --mask-src/--mask-dst need the address they mask. */
function maskCheck(c: CtCommand): void {
  if (c.options & bit(O_MASKSRC) && !(c.options & bit(O_SRC))) exitError(PARAMETER_PROBLEM, "Can't use --mask-src without --src");
  if (c.options & bit(O_MASKDST) && !(c.options & bit(O_DST))) exitError(PARAMETER_PROBLEM, "Can't use --mask-dst without --dst");
}

/** True when the command changes the table (-D, -F, -U): the ones a config file may hold. */
export function conntrackChanges(argv: readonly string[]): boolean {
  const c = parseConntrackArgs(argv);
  return c.cmd === CT_DELETE || c.cmd === CT_FLUSH || c.cmd === CT_UPDATE || c.cmd === EXP_FLUSH;
}

/** Checks a command line; returns the tool's error text (without the "Try" line) or null. */
export function checkConntrackArgs(argv: readonly string[]): string | null {
  try {
    parseConntrackArgs(argv);
    return null;
  } catch (e) {
    if (e instanceof CtExit) return e.stderr.split('\n')[0];
    throw e;
  }
}

/**
 * Runs any conntrack command for the control socket: -E prints each event as
 * it happens until the client interrupts (then the summary, exit 0) or goes.
 */
export function runConntrackStream(env: ConntrackEnv, argv: readonly string[], io: CtEventOutput): number | Promise<number> {
  let c: CtCommand;
  try {
    c = parseConntrackArgs(argv);
  } catch (e) {
    if (e instanceof CtExit) {
      io.err(e.stderr);
      return e.code;
    }
    throw e;
  }
  if (c.cmd !== CT_EVENT && c.cmd !== EXP_EVENT) {
    const r = runConntrack(env, argv);
    if (r.stdout.length > 0) io.out(r.stdout);
    if (r.stderr.length > 0) io.err(r.stderr);
    return r.code;
  }
  if (c.warnings.length > 0) io.err(c.warnings);
  if ((c.output & O_SAVE) !== 0 || (c.output & (O_XML | O_TMS)) === O_XML + O_TMS) {
    io.err(summary(`${(c.output & O_SAVE) !== 0 ? 'save output' : 'xml output with timestamps'} is not supported here`));
    return OTHER_PROBLEM;
  }
  const xml = (c.output & O_XML) !== 0;
  try {
    maskCheck(c);
  } catch (e) {
    if (e instanceof CtExit) {
      io.err(e.stderr);
      return e.code;
    }
    throw e;
  }
  const mask = c.options & bit(O_EVMASK) ? c.eventMask : EV_NEW | EV_UPD | EV_DEL;
  const evBit: Record<CtEventKind, number> = { new: EV_NEW, update: EV_UPD, destroy: EV_DEL };
  let counter = 0;
  const expect = c.cmd === EXP_EVENT;
  const off = expect
    ? () => {}
    : env.ct.on((ev, e) => {
        if ((mask & evBit[ev]) === 0 || c.family === 6 || filtered(c, e)) return;
        let s = xml && counter === 0 ? XML_HEADER : '';
        if ((c.output & O_TMS) !== 0) s += eventTimestamp(env.wallNow());
        s += line(env, c, e, null, ev);
        // A change made by a conntrack command names it, as the kernel names the netlink socket it came from.
        if (actingPortid !== 0) s += ` [USERSPACE] portid=${actingPortid} progname=conntrack`;
        io.out(s + '\n');
        counter++;
      });
  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (summaryToo: boolean): void => {
      if (done) return;
      done = true;
      off();
      if (summaryToo && xml && counter > 0) io.out(XML_FOOTER);
      if (summaryToo) io.err(summary(`${counter} ${expect ? 'expectation' : 'flow'} events have been shown.`));
      resolve(0);
    };
    io.onInterrupt?.(() => finish(true));
    io.onClose(() => finish(false));
  });
}

/** The stack's table and clocks as the command sees them. */
export function stackConntrackEnv(stack: Stack): ConntrackEnv {
  return {
    ct: stack.conntrack,
    now: () => stack.time.now(),
    wallNow: () => Date.now(),
    sysctl: (name) => {
      try {
        return stack.sysctl.get(name);
      } catch {
        return 0;
      }
    },
    random: () => stack.random(),
  };
}

