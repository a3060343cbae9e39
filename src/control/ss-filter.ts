/**
 * ss's state names and its filter language (iproute2 misc/ss.c scan_state,
 * parse_hostcond, run_ssfilter; misc/ssfilter.y): `state established`,
 * `sport = :22`, `dst 10.0.0.0/8`, `( sport = :7 or dport = :7 )`, `not`,
 * `and`, `or`, comparisons, `autobound`. Words are split again on blanks, as
 * ss does, so a quoted expression works as one argument. Conditions combine
 * left to right: `a or b and c` is `(a or b) and c`.
 */

/** Socket states numbered as the kernel's (include/net/tcp_states.h), ss's SS_*. */
export enum SsState {
  UNKNOWN = 0,
  ESTABLISHED = 1,
  SYN_SENT = 2,
  SYN_RECV = 3,
  FIN_WAIT1 = 4,
  FIN_WAIT2 = 5,
  TIME_WAIT = 6,
  CLOSE = 7,
  CLOSE_WAIT = 8,
  LAST_ACK = 9,
  LISTEN = 10,
  CLOSING = 11,
}

export const SS_MAX = 12;
export const SS_ALL = (1 << SS_MAX) - 1;
/** ss's default: every state but listening, closed, time-wait and syn-recv. */
export const SS_CONN = SS_ALL & ~((1 << SsState.LISTEN) | (1 << SsState.CLOSE) | (1 << SsState.TIME_WAIT) | (1 << SsState.SYN_RECV));

/** What ss prints in the State column. */
export const SS_STATE_TEXT: readonly string[] = [
  'UNKNOWN',
  'ESTAB',
  'SYN-SENT',
  'SYN-RECV',
  'FIN-WAIT-1',
  'FIN-WAIT-2',
  'TIME-WAIT',
  'UNCONN',
  'CLOSE-WAIT',
  'LAST-ACK',
  'LISTEN',
  'CLOSING',
];

const STATE_WORDS: readonly string[] = [
  'UNKNOWN',
  'established',
  'syn-sent',
  'syn-recv',
  'fin-wait-1',
  'fin-wait-2',
  'time-wait',
  'unconnected',
  'close-wait',
  'last-ack',
  'listening',
  'closing',
];

/** ss's scan_state: a state or group name (any case) to a bit mask; null if unknown. */
export function scanState(word: string): number | null {
  const s = word.toLowerCase();
  if (s === 'close' || s === 'closed') return 1 << SsState.CLOSE;
  if (s === 'syn-rcv') return 1 << SsState.SYN_RECV;
  if (s === 'all') return SS_ALL;
  if (s === 'connected') return SS_ALL & ~((1 << SsState.CLOSE) | (1 << SsState.LISTEN));
  if (s === 'synchronized') return SS_ALL & ~((1 << SsState.CLOSE) | (1 << SsState.LISTEN) | (1 << SsState.SYN_SENT));
  if (s === 'bucket') return (1 << SsState.SYN_RECV) | (1 << SsState.TIME_WAIT);
  if (s === 'big') return SS_ALL & ~((1 << SsState.SYN_RECV) | (1 << SsState.TIME_WAIT));
  for (let i = 0; i < SS_MAX; i++) if (s === STATE_WORDS[i].toLowerCase()) return 1 << i;
  return null;
}

/** An address and port condition: `addr/plen` (plen 0: any address), port -1 for any. */
export interface HostCond {
  addr: number;
  plen: number;
  port: number;
  /** An IPv6 prefix: matches none of our (IPv4) sockets. */
  v6: boolean;
}

export type SsFilter =
  | { op: 'and' | 'or'; a: SsFilter; b: SsFilter }
  | { op: 'not'; a: SsFilter }
  | { op: 'src' | 'dst'; cond: HostCond }
  | { op: 'sport-ge' | 'sport-le' | 'dport-ge' | 'dport-le'; port: number }
  | { op: 'autobound' };

/** The socket a filter is tried on. */
export interface SsEndpoints {
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
}

/** What the parser needs from the rest of ss: which tables are shown, and port names. */
export interface FilterContext {
  tcp: boolean;
  udp: boolean;
  /** getservbyname for a protocol. */
  servicePort(name: string, proto: 'tcp' | 'udp'): number | null;
}

/**
 * A filter that can't be parsed. `code` is ss's exit status: 255 with usage
 * for a syntax error, 1 for a condition it can't read.
 */
export class SsFilterError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly usage: boolean,
  ) {
    super(message);
  }
}

type Tok =
  | { t: '(' | ')' | '!' | '&' | '|' | 'eq' | 'ne' | 'ge' | 'le' | 'gt' | 'lt' | 'src' | 'dst' | 'sport' | 'dport' | 'autobound' | 'end' }
  | { t: 'host'; cond: HostCond }
  | { t: 'unsupported'; word: string };

/** Splits words on blanks; a backslash escapes the next character (ssfilter.y get_token_from_line). */
export function filterWords(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of argv) {
    let tok = '';
    let have = false;
    for (let i = 0; i < a.length; i++) {
      const ch = a[i];
      if (ch === ' ' || ch === '\t') {
        if (have) out.push(tok);
        tok = '';
        have = false;
        continue;
      }
      have = true;
      if (ch === '\\') {
        i++;
        if (i < a.length) tok += a[i];
        continue;
      }
      tok += ch;
    }
    if (have) out.push(tok);
  }
  return out;
}

const KEYWORDS: Record<string, Tok['t']> = {
  '!': '!',
  not: '!',
  '&': '&',
  '&&': '&',
  and: '&',
  '|': '|',
  '||': '|',
  or: '|',
  '(': '(',
  ')': ')',
  dst: 'dst',
  src: 'src',
  dport: 'dport',
  sport: 'sport',
  '>=': 'ge',
  ge: 'ge',
  geq: 'ge',
  '<=': 'le',
  le: 'le',
  leq: 'le',
  '!=': 'ne',
  ne: 'ne',
  neq: 'ne',
  '=': 'eq',
  '==': 'eq',
  eq: 'eq',
  '>': 'gt',
  gt: 'gt',
  '<': 'lt',
  lt: 'lt',
  autobound: 'autobound',
};

const SYNTAX = 'ss: bison bellows (while parsing filter): "syntax error!" Sorry.';

/** Parses ss's filter expression; null when there is none. */
export function parseSsFilter(argv: readonly string[], ctx: FilterContext): SsFilter | null {
  const words = filterWords(argv);
  let pos = 0;
  let tokType: 'src' | 'dst' | 'sport' | 'dport' | 'dev' | 'fwmark' | 'cgroup' | null = null;
  let look: Tok | null = null;

  const lex = (): Tok => {
    if (pos >= words.length) return { t: 'end' };
    const w = words[pos++];
    const k = KEYWORDS[w];
    if (k !== undefined) {
      if (k === 'src' || k === 'dst' || k === 'sport' || k === 'dport') tokType = k;
      return { t: k } as Tok;
    }
    if (w === 'dev' || w === 'fwmark' || w === 'cgroup') {
      tokType = w;
      return { t: 'unsupported', word: w };
    }
    if (tokType === 'dev' || tokType === 'fwmark' || tokType === 'cgroup') return { t: 'unsupported', word: tokType };
    return { t: 'host', cond: parseHostCond(w, tokType === 'sport' || tokType === 'dport', ctx) };
  };
  const peek = (): Tok => (look ??= lex());
  const take = (): Tok => {
    const t = peek();
    look = null;
    return t;
  };
  const syntax = (): never => {
    throw new SsFilterError(SYNTAX, 255, true);
  };
  const host = (): HostCond => {
    const t = take();
    if (t.t === 'unsupported') throw unsupported(t.word);
    if (t.t !== 'host') return syntax();
    return t.cond;
  };

  const startsExpr = (t: Tok): boolean => t.t === '(' || t.t === '!' || t.t === 'src' || t.t === 'dst' || t.t === 'sport' || t.t === 'dport' || t.t === 'autobound' || t.t === 'unsupported';

  const expr = (): SsFilter => {
    const t = take();
    switch (t.t) {
      case '(': {
        const e = exprlist();
        if (take().t !== ')') syntax();
        return e;
      }
      case '!':
        return { op: 'not', a: expr() };
      case 'src':
      case 'dst': {
        if (peek().t === 'eq') take();
        return { op: t.t, cond: host() };
      }
      case 'sport':
      case 'dport': {
        const side = t.t;
        const o = peek();
        let op: Tok['t'] = 'eq';
        if (o.t === 'eq' || o.t === 'ne' || o.t === 'ge' || o.t === 'le' || o.t === 'gt' || o.t === 'lt') {
          take();
          op = o.t;
        }
        const c = host();
        const ge = `${side}-ge` as const;
        const le = `${side}-le` as const;
        const eqNode: SsFilter = { op: side === 'sport' ? 'src' : 'dst', cond: c };
        switch (op) {
          case 'ge':
            return { op: ge, port: c.port };
          case 'le':
            return { op: le, port: c.port };
          case 'gt':
            return { op: 'not', a: { op: le, port: c.port } };
          case 'lt':
            return { op: 'not', a: { op: ge, port: c.port } };
          case 'ne':
            return { op: 'not', a: eqNode };
          default:
            return eqNode;
        }
      }
      case 'autobound':
        return { op: 'autobound' };
      case 'unsupported':
        throw unsupported(t.word);
      default:
        return syntax();
    }
  };

  const exprlist = (): SsFilter => {
    let e = expr();
    for (;;) {
      const t = peek();
      if (t.t === '|') {
        take();
        e = { op: 'or', a: e, b: expr() };
      } else if (t.t === '&') {
        take();
        e = { op: 'and', a: e, b: expr() };
      } else if (startsExpr(t)) {
        e = { op: 'and', a: e, b: expr() };
      } else return e;
    }
  };

  if (peek().t === 'end') return null;
  const f = exprlist();
  if (peek().t !== 'end') syntax();
  return f;
}

function unsupported(word: string): SsFilterError {
  return new SsFilterError(`ss: the "${word}" condition is not supported by tapstack (its sockets have no ${word === 'dev' ? 'bound device' : word === 'fwmark' ? 'marks' : 'cgroups'})`, 1, false);
}

const CANNOT = 'Cannot parse dst/src address.';

/** iproute2's get_integer with base 0: decimal, 0x hex or 0 octal. */
function cInteger(s: string): number | null {
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(s)) return parseInt(s, 16);
  if (/^[+-]?0[0-7]*$/.test(s)) return parseInt(s, 8);
  if (/^[+-]?[1-9][0-9]*$/.test(s)) return parseInt(s, 10);
  return null;
}

/** iproute2's get_addr_ipv4: one to four dotted parts, the missing ones zero ("10/8"). */
function parseIpv4Loose(s: string): number | null {
  const parts = s.split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  let n = 0;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    let v = 0;
    if (p !== undefined) {
      if (!/^\d{1,3}$/.test(p)) return null;
      v = Number(p);
      if (v > 255) return null;
    }
    n = n * 256 + v;
  }
  return n >>> 0;
}

/** ss's parse_hostcond for inet sockets. */
export function parseHostCond(word: string, isPort: boolean, ctx: FilterContext): HostCond {
  let addr = word;
  const a: HostCond = { addr: 0, plen: 0, port: -1, v6: false };
  let v6Only = false;
  for (const fam of ['unix:', 'link:', 'netlink:', 'vsock:']) {
    if (addr.startsWith(fam)) throw new SsFilterError(`ss: "${fam}" addresses are not supported by tapstack (it has only TCP and UDP sockets)`, 1, false);
  }
  if (addr.startsWith('inet:')) addr = addr.slice(5);
  else if (addr.startsWith('inet6:')) {
    addr = addr.slice(6);
    v6Only = true;
  }
  let port: string | null;
  if (addr.startsWith('[')) {
    addr = addr.slice(1);
    const close = addr.indexOf(']');
    if (close < 0) throw new SsFilterError(CANNOT, 1, false);
    port = addr.slice(close + 1);
    addr = addr.slice(0, close);
  } else if (addr.startsWith('*')) {
    port = addr.slice(1);
    addr = '*';
  } else {
    const slash = addr.indexOf('/');
    const from = slash >= 0 ? slash : 0;
    const colon = addr.lastIndexOf(':');
    if (colon >= from) {
      port = addr.slice(colon);
      addr = addr.slice(0, colon);
    } else port = null;
  }
  if (isPort) {
    port = word.replace(/^(inet6?:)/, '');
    addr = '';
  }
  if (port !== null && port !== '') {
    if (port.startsWith(':')) port = port.slice(1);
    if (port !== '' && port[0] !== '*') {
      const n = cInteger(port);
      if (n !== null) a.port = n;
      else {
        const u = ctx.udp ? ctx.servicePort(port, 'udp') : null;
        const t = ctx.tcp ? ctx.servicePort(port, 'tcp') : null;
        if (u !== null && t !== null && u !== t) throw new SsFilterError(`Error: ambiguous port "${port}".\n${CANNOT}`, 1, false);
        const p = u ?? t;
        if (p === null) throw new SsFilterError(`Error: "${port}" does not look like a port.\n${CANNOT}`, 1, false);
        a.port = p;
      }
    }
  }
  if (!isPort && addr !== '' && addr[0] !== '*') {
    const [ap, lp, extra] = addr.split('/');
    let plenOk = lp === undefined || (/^\d+$/.test(lp) && extra === undefined);
    if (ap === 'default' || ap === 'any' || ap === 'all') {
      a.plen = 0;
    } else if (ap.includes(':')) {
      // An IPv6 prefix: valid for ss, and no IPv4 socket matches it.
      if (!/^[0-9a-fA-F:.]+$/.test(ap)) throw new SsFilterError(`Error: an inet prefix is expected rather than "${addr}".\n${CANNOT}`, 1, false);
      a.v6 = true;
      a.plen = lp === undefined ? 128 : Number(lp);
      if (plenOk && a.plen > 128) plenOk = false;
    } else {
      const v = parseIpv4Loose(ap);
      if (v === null) throw new SsFilterError(`Error: an inet prefix is expected rather than "${addr}".\n${CANNOT}`, 1, false);
      a.addr = v;
      a.plen = lp === undefined ? 32 : Number(lp);
      if (plenOk && a.plen > 32) plenOk = false;
    }
    if (!plenOk) throw new SsFilterError(`Error: an inet prefix is expected rather than "${addr}".\n${CANNOT}`, 1, false);
  }
  if (v6Only) a.v6 = true;
  return a;
}

function prefixMatch(addr: number, c: HostCond): boolean {
  if (c.v6) return false;
  if (c.plen === 0) return true;
  const mask = c.plen >= 32 ? 0xffffffff : (0xffffffff << (32 - c.plen)) >>> 0;
  return ((addr ^ c.addr) & mask) >>> 0 === 0;
}

function hostMatch(addr: number, port: number, c: HostCond): boolean {
  if (c.port !== -1 && c.port !== port) return false;
  if (c.v6) return false;
  if (c.plen > 0 || c.addr !== 0) return prefixMatch(addr, c);
  return true;
}

/** run_ssfilter: true when the socket passes. `ephemeral` is ss's is_ephemeral for autobound. */
export function runSsFilter(f: SsFilter, s: SsEndpoints, ephemeral: (port: number) => boolean): boolean {
  switch (f.op) {
    case 'and':
      return runSsFilter(f.a, s, ephemeral) && runSsFilter(f.b, s, ephemeral);
    case 'or':
      return runSsFilter(f.a, s, ephemeral) || runSsFilter(f.b, s, ephemeral);
    case 'not':
      return !runSsFilter(f.a, s, ephemeral);
    case 'src':
      return hostMatch(s.laddr, s.lport, f.cond);
    case 'dst':
      return hostMatch(s.raddr, s.rport, f.cond);
    case 'sport-ge':
      return s.lport >= f.port;
    case 'sport-le':
      return s.lport <= f.port;
    case 'dport-ge':
      return s.rport >= f.port;
    case 'dport-le':
      return s.rport <= f.port;
    case 'autobound':
      return ephemeral(s.lport);
  }
}
