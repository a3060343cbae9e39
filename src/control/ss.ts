/**
 * `ss`: the stack's TCP and UDP sockets as iproute2's ss (misc/ss.c) prints
 * the kernel's: the same options, state names and filters, the same columns
 * (ss-render.ts), the -i/-m/-o/-e extensions in ss's order and number
 * formats, and the -s summary. Scripts that parse ss read ours.
 */
import type { Stack } from '../stack.js';
import type { TcpConnection } from '../tcp/connection.js';
import type { TcpListener } from '../tcp/listen.js';
import type { TimeWaitRecord } from '../tcp/timewait.js';
import type { UdpEndpoint } from '../udp/udp.js';
import { TcpState } from '../tcp/state.js';
import { seqDiff } from '../tcp/seq.js';
import { formatIp4 } from '../wire/addr.js';
import { Col, SsTable } from './ss-render.js';
import { SS_ALL, SS_CONN, SS_STATE_TEXT, SsFilterError, SsState, parseSsFilter, runSsFilter, scanState, type SsFilter } from './ss-filter.js';
import { ServicesDb } from './etc-services.js';
import { cG } from './cformat.js';
import { formatTcpInfo } from './ss-info.js';
import { tcpGetInfo } from '../tcp/info.js';

export { cG };

export interface SsResult {
  code: number;
  stdout: string;
  stderr: string;
}

// ---------------------------------------------------------------------------
// Tables and families, as ss numbers them (misc/ss.c: TCP_DB ..., default_dbs)
// ---------------------------------------------------------------------------

enum Db {
  TCP,
  MPTCP,
  DCCP,
  UDP,
  RAW,
  UNIX_DG,
  UNIX_ST,
  UNIX_SQ,
  PACKET_DG,
  PACKET_R,
  NETLINK,
  SCTP,
  VSOCK_ST,
  VSOCK_DG,
  TIPC,
  XDP,
}

type Family = 'inet' | 'inet6' | 'unix' | 'packet' | 'netlink' | 'vsock' | 'tipc' | 'xdp';

const INET_FAMS: Family[] = ['inet', 'inet6'];
const EST = 1 << SsState.ESTABLISHED;
const CLOSE = 1 << SsState.CLOSE;
const TIPC_SS_CONN = EST | (1 << SsState.LISTEN) | CLOSE;

const DEFAULT_DBS: { states: number; families: Family[] }[] = [
  { states: SS_CONN, families: INET_FAMS }, // TCP
  { states: SS_CONN, families: INET_FAMS }, // MPTCP
  { states: SS_CONN, families: INET_FAMS }, // DCCP
  { states: EST, families: INET_FAMS }, // UDP
  { states: EST, families: INET_FAMS }, // RAW
  { states: CLOSE, families: ['unix'] },
  { states: SS_CONN, families: ['unix'] },
  { states: SS_CONN, families: ['unix'] },
  { states: CLOSE, families: ['packet'] },
  { states: CLOSE, families: ['packet'] },
  { states: CLOSE, families: ['netlink'] },
  { states: SS_CONN, families: INET_FAMS }, // SCTP
  { states: SS_CONN, families: ['vsock'] },
  { states: SS_CONN, families: ['vsock'] },
  { states: TIPC_SS_CONN, families: ['tipc'] },
  { states: CLOSE, families: ['xdp'] },
];

const bit = (...dbs: Db[]): number => dbs.reduce((m, d) => m | (1 << d), 0);
const INET_DBM = bit(Db.TCP, Db.MPTCP, Db.UDP, Db.DCCP, Db.SCTP, Db.RAW);

const DEFAULT_AFS: Record<Family, { dbs: number; states: number }> = {
  inet: { dbs: INET_DBM, states: SS_CONN },
  inet6: { dbs: INET_DBM, states: SS_CONN },
  unix: { dbs: bit(Db.UNIX_DG, Db.UNIX_ST, Db.UNIX_SQ), states: SS_CONN },
  packet: { dbs: bit(Db.PACKET_DG, Db.PACKET_R), states: CLOSE },
  netlink: { dbs: bit(Db.NETLINK), states: CLOSE },
  vsock: { dbs: bit(Db.VSOCK_ST, Db.VSOCK_DG), states: SS_CONN },
  tipc: { dbs: bit(Db.TIPC), states: TIPC_SS_CONN },
  xdp: { dbs: bit(Db.XDP), states: CLOSE },
};

/** -A names: the ones whose sockets the stack has; the rest are refused. */
const QUERY_NAMES: Record<string, Db[]> = {
  all: [Db.UDP, Db.DCCP, Db.TCP, Db.MPTCP, Db.RAW, Db.UNIX_ST, Db.UNIX_DG, Db.UNIX_SQ, Db.PACKET_R, Db.PACKET_DG, Db.NETLINK, Db.SCTP, Db.VSOCK_ST, Db.VSOCK_DG, Db.XDP],
  inet: [Db.UDP, Db.DCCP, Db.TCP, Db.MPTCP, Db.SCTP, Db.RAW],
  udp: [Db.UDP],
  tcp: [Db.TCP],
};

class Filter {
  dbs = 0;
  states = 0;
  families = new Set<Family>();

  dbSet(db: Db, enable: boolean): void {
    if (enable) {
      this.states |= DEFAULT_DBS[db].states;
      this.dbs |= 1 << db;
    } else this.dbs &= ~(1 << db);
  }

  afSet(af: Family): void {
    this.states |= DEFAULT_AFS[af].states;
    this.families.add(af);
  }

  mergeDefaults(): void {
    for (let db = 0; db < DEFAULT_DBS.length; db++) {
      if (!(this.dbs & (1 << db))) continue;
      const fams = DEFAULT_DBS[db].families;
      if (!fams.some((f) => this.families.has(f))) for (const f of fams) this.families.add(f);
    }
    for (const af of [...this.families]) if (!(DEFAULT_AFS[af].dbs & this.dbs)) this.dbs |= DEFAULT_AFS[af].dbs;
  }

  has(db: Db): boolean {
    return (this.dbs & (1 << db)) !== 0;
  }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

export interface SsOptions {
  numeric: boolean;
  showOptions: boolean;
  details: boolean;
  mem: boolean;
  info: boolean;
  summary: boolean;
  header: boolean;
  oneline: boolean;
  /** Only the summary (ss -s with no table or filter asked for). */
  summaryOnly: boolean;
  tcp: boolean;
  udp: boolean;
  inet: boolean;
  states: number;
  netidColumn: boolean;
  stateColumn: boolean;
  filter: SsFilter | null;
}

/** A parse that ends ss early (usage, errors, or one of its "nothing to show" notes). */
export class SsExit extends Error {
  constructor(readonly result: SsResult) {
    super(result.stderr);
  }
}

const USAGE = `Usage: ss [ OPTIONS ]
       ss [ OPTIONS ] [ FILTER ]
   -h, --help          this message
   -n, --numeric       don't resolve service names
   -a, --all           display all sockets
   -l, --listening     display listening sockets
   -o, --options       show timer information
   -e, --extended      show detailed socket information
   -m, --memory        show socket memory usage
   -p, --processes     show process using socket (the stack's sockets have none)
   -i, --info          show internal TCP information
   -s, --summary       show socket usage summary

   -4, --ipv4          display only IP version 4 sockets
   -6, --ipv6          display only IP version 6 sockets
   -t, --tcp           display only TCP sockets
   -u, --udp           display only UDP sockets
   -f, --family=FAMILY display sockets of type FAMILY
       FAMILY := {inet|inet6|help}

   -H, --no-header     Suppress header line
   -O, --oneline       socket's data printed on a single line

   -A, --query=QUERY, --socket=QUERY
       QUERY := {all|inet|tcp|udp}[,QUERY]

       FILTER := [ state STATE-FILTER ] [ EXPRESSION ]
       STATE-FILTER := {all|connected|synchronized|bucket|big|TCP-STATES}
         TCP-STATES := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|closed|close-wait|last-ack|listening|closing}
          connected := {established|syn-sent|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
       synchronized := {established|syn-recv|fin-wait-{1,2}|time-wait|close-wait|last-ack|closing}
             bucket := {syn-recv|time-wait}
                big := {established|syn-sent|fin-wait-{1,2}|closed|close-wait|last-ack|listening|closing}
       EXPRESSION: src|dst [=] ADDR[/PLEN][:PORT], sport|dport OP [:]PORT, autobound,
                   joined by and|or|not and ( ), OP one of = != < > <= >=
`;

const LONG_OPTS: Record<string, string> = {
  numeric: 'n',
  resolve: 'r',
  options: 'o',
  extended: 'e',
  memory: 'm',
  info: 'i',
  processes: 'p',
  threads: 'T',
  bpf: 'b',
  events: 'E',
  dccp: 'd',
  tcp: 't',
  sctp: 'S',
  udp: 'u',
  raw: 'w',
  unix: 'x',
  tipc: '--tipc',
  vsock: '--vsock',
  all: 'a',
  listening: 'l',
  ipv4: '4',
  ipv6: '6',
  packet: '0',
  family: 'f',
  socket: 'A',
  query: 'A',
  summary: 's',
  diag: 'D',
  filter: 'F',
  version: 'V',
  help: 'h',
  context: 'Z',
  contexts: 'z',
  net: 'N',
  tipcinfo: '--tipcinfo',
  tos: '--tos',
  cgroup: '--cgroup',
  kill: 'K',
  'no-header': 'H',
  xdp: '--xdp',
  mptcp: 'M',
  oneline: 'O',
  'inet-sockopt': '--inet-sockopt',
};

const WITH_ARG = new Set(['f', 'A', 'D', 'F', 'N']);
const SHORT = new Set('dhaletuwxnro460spTbEf:mMiA:D:F:vVzZN:KHSO'.replace(/:/g, '').split(''));

/** What each refused option is, for the message. */
const NOT_HERE: Record<string, string> = {
  r: '-r (resolve host names: the stack has no resolver)',
  b: '-b (bpf filters)',
  E: '-E (events)',
  d: '-d (DCCP sockets)',
  S: '-S (SCTP sockets)',
  w: '-w (raw sockets)',
  x: '-x (Unix domain sockets)',
  '0': '-0 (packet sockets)',
  M: '-M (MPTCP sockets)',
  D: '-D (tcpdiag dump)',
  F: '-F (filter file)',
  V: '-V (version)',
  v: '-v (version)',
  z: '-z (SELinux contexts)',
  Z: '-Z (SELinux contexts)',
  N: '-N (network namespaces: the stack is one)',
  K: '-K (kill sockets)',
  '--tipc': '--tipc (TIPC sockets)',
  '--vsock': '--vsock (vsock sockets)',
  '--xdp': '--xdp (XDP sockets)',
  '--tipcinfo': '--tipcinfo',
  '--tos': '--tos',
  '--cgroup': '--cgroup',
  '--inet-sockopt': '--inet-sockopt',
};

function usageExit(msg: string): never {
  throw new SsExit({ code: 255, stdout: '', stderr: (msg ? msg + '\n' : '') + USAGE });
}

function notHere(what: string): never {
  throw new SsExit({ code: 1, stdout: '', stderr: `ss: ${what} is not supported by tapstack: it has TCP and UDP sockets over IPv4\n` });
}

/** Parses ss's command line (getopt_long with GNU's argument permutation, then states and the filter). */
export function parseSsArgs(argv: readonly string[], services: ServicesDb = ServicesDb.load()): SsOptions {
  const f = new Filter();
  let doDefault = true;
  let stateFilter = 0;
  let sawQuery = false;
  const o = {
    numeric: false,
    showOptions: false,
    details: false,
    mem: false,
    info: false,
    summary: false,
    header: true,
    oneline: false,
  };
  const rest: string[] = [];
  const apply = (ch: string, arg: string | undefined): void => {
    switch (ch) {
      case 'n':
        o.numeric = true;
        return;
      case 'o':
        o.showOptions = true;
        return;
      case 'e':
        o.showOptions = true;
        o.details = true;
        return;
      case 'm':
        o.mem = true;
        return;
      case 'i':
        o.info = true;
        return;
      case 'p':
      case 'T':
        // Processes: the stack's sockets belong to no process's file table, so there is nothing to add.
        return;
      case 't':
        f.dbSet(Db.TCP, true);
        doDefault = false;
        return;
      case 'u':
        f.dbSet(Db.UDP, true);
        doDefault = false;
        return;
      case 'a':
        stateFilter = SS_ALL;
        return;
      case 'l':
        stateFilter = (1 << SsState.LISTEN) | CLOSE;
        return;
      case '4':
        f.afSet('inet');
        doDefault = false;
        return;
      case '6':
        f.afSet('inet6');
        doDefault = false;
        return;
      case 'f':
        if (arg === 'inet' || arg === 'inet6') {
          f.afSet(arg);
          doDefault = false;
        } else if (arg === 'help') usageExit('');
        else if (arg === 'link' || arg === 'unix' || arg === 'netlink' || arg === 'tipc' || arg === 'vsock' || arg === 'xdp') notHere(`-f ${arg}`);
        else usageExit(`ss: "${arg}" is invalid family`);
        return;
      case 'A': {
        if (!sawQuery) {
          f.dbs = 0;
          stateFilter = stateFilter || SS_CONN;
          sawQuery = true;
          doDefault = false;
        }
        for (const part of (arg ?? '').split(',')) {
          const enable = !part.startsWith('!');
          const name = enable ? part : part.slice(1);
          const dbs = QUERY_NAMES[name];
          if (dbs === undefined) {
            if (/^(mptcp|dccp|sctp|raw|unix|unix_dgram|u_dgr|unix_stream|u_str|unix_seqpacket|u_seq|packet|packet_raw|p_raw|packet_dgram|p_dgr|netlink|tipc|vsock|vsock_stream|v_str|vsock_dgram|v_dgr|xdp)$/.test(name)) notHere(`-A ${name}`);
            usageExit(`ss: "${part}" is illegal socket table id`);
          }
          for (const d of dbs) f.dbSet(d, enable);
        }
        return;
      }
      case 's':
        o.summary = true;
        return;
      case 'H':
        o.header = false;
        return;
      case 'O':
        o.oneline = true;
        return;
      case 'h':
        throw new SsExit({ code: 0, stdout: USAGE, stderr: '' });
      default: {
        const what = NOT_HERE[ch];
        if (what !== undefined) notHere(what);
        usageExit(`ss: invalid option -- '${ch}'`);
      }
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const matches = Object.keys(LONG_OPTS).filter((k) => k.startsWith(name));
      const exact = Object.keys(LONG_OPTS).find((k) => k === name);
      const distinct = [...new Set(matches.map((m) => LONG_OPTS[m]))];
      if (exact === undefined && distinct.length > 1) usageExit(`ss: option '${a}' is ambiguous; possibilities:${matches.map((m) => ` '--${m}'`).join('')}`);
      if (exact === undefined && matches.length === 0) usageExit(`ss: unrecognized option '${a}'`);
      const ch = LONG_OPTS[exact ?? matches[0]];
      let arg: string | undefined;
      if (WITH_ARG.has(ch)) {
        if (eq >= 0) arg = a.slice(eq + 1);
        else if (i + 1 < argv.length) arg = argv[++i];
        else usageExit(`ss: option '--${exact ?? matches[0]}' requires an argument`);
      } else if (eq >= 0) usageExit(`ss: option '--${exact ?? matches[0]}' doesn't allow an argument`);
      apply(ch, arg);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j];
        if (!SHORT.has(ch)) usageExit(`ss: invalid option -- '${ch}'`);
        if (WITH_ARG.has(ch)) {
          let arg: string;
          if (j + 1 < a.length) arg = a.slice(j + 1);
          else if (i + 1 < argv.length) arg = argv[++i];
          else usageExit(`ss: option requires an argument -- '${ch}'`);
          apply(ch, arg);
          break;
        }
        apply(ch, undefined);
      }
      continue;
    }
    rest.push(a);
  }

  let k = 0;
  let sawStates = false;
  while (k < rest.length) {
    const w = rest[k];
    if (w !== 'state' && w !== 'exclude' && w !== 'excl') break;
    const name = rest[k + 1];
    if (name === undefined) usageExit('');
    const m = scanState(name);
    if (m === null) throw new SsExit({ code: 255, stdout: '', stderr: `ss: wrong state name: ${name}\n` });
    if (w === 'state') {
      if (!sawStates) stateFilter = 0;
      stateFilter |= m;
    } else {
      if (!sawStates) stateFilter = SS_ALL;
      stateFilter &= ~m;
    }
    sawStates = true;
    k += 2;
  }
  const exprWords = rest.slice(k);
  const summaryOnly = o.summary && doDefault && exprWords.length === 0 && k === 0;

  if (doDefault) {
    stateFilter = stateFilter || SS_CONN;
    for (const d of QUERY_NAMES.all) f.dbSet(d, true);
  }
  if (stateFilter) f.states = stateFilter;
  f.mergeDefaults();
  const early = (msg: string): SsExit => new SsExit({ code: 0, stdout: '', stderr: msg + '\n' });
  if (!summaryOnly) {
    if (f.dbs === 0) throw early('ss: no socket tables to show with such filter.');
    if (f.families.size === 0) throw early('ss: no families to show with such filter.');
    if (f.states === 0) throw early('ss: no socket states to show with such filter.');
  }

  let filter: SsFilter | null = null;
  try {
    filter = parseSsFilter(exprWords, {
      tcp: f.has(Db.TCP),
      udp: f.has(Db.UDP),
      servicePort: (name, proto) => services.port(name, proto),
    });
  } catch (e) {
    if (e instanceof SsFilterError) throw new SsExit({ code: e.code, stdout: '', stderr: e.message + '\n' + (e.usage ? USAGE : '') });
    throw e;
  }

  return {
    ...o,
    summaryOnly,
    tcp: f.has(Db.TCP),
    udp: f.has(Db.UDP),
    inet: f.families.has('inet'),
    states: f.states,
    netidColumn: (f.dbs & (f.dbs - 1)) !== 0,
    stateColumn: (f.states & (f.states - 1)) !== 0,
    filter,
  };
}

// ---------------------------------------------------------------------------
// Number formats
// ---------------------------------------------------------------------------

/** ss's print_ms_timer. */
export function printMsTimer(timeout: number): string {
  let secs = Math.floor(timeout / 1000);
  const minutes = Math.floor(secs / 60);
  secs %= 60;
  let msecs = timeout % 1000;
  let buf = '';
  if (minutes) {
    msecs = 0;
    buf = `${minutes}min`;
    if (minutes > 9) secs = 0;
  }
  if (secs) {
    if (secs > 9) msecs = 0;
    buf += `${secs}${msecs ? '.' : 'sec'}`;
  }
  if (msecs) buf += `${String(msecs).padStart(3, '0')}ms`;
  return buf;
}

// ---------------------------------------------------------------------------
// The stack's sockets as ss sees them
// ---------------------------------------------------------------------------

/** Timer kinds as inet_diag numbers them (idiag_timer). */
const TIMER_NAMES = ['off', 'on', 'keepalive', 'timewait', 'persist', 'unknown'];

interface Row {
  netid: 'tcp' | 'udp';
  state: SsState;
  rq: number;
  wq: number;
  laddr: number;
  lport: number;
  raddr: number;
  rport: number;
  timer: { kind: number; expiresMs: number; retrans: number } | null;
  /** inet_diag's shutdown bits (1: receive side, 2: send side); null where the kernel sends none. */
  shutdown: number | null;
  /** skmem values: r, rb, t, tb, f, w, o, bl, d; null where the kernel sends none. */
  skmem: number[] | null;
  /** The -i text (each field with its leading blank); null where there is none. */
  info: (() => string) | null;
  key: object;
}

/** Socket cookies (ss's sk:), one per object for as long as it lives. */
const cookies = new WeakMap<object, number>();
let nextCookie = 1;
function cookie(o: object): number {
  let c = cookies.get(o);
  if (c === undefined) {
    c = nextCookie++;
    cookies.set(o, c);
  }
  return c;
}

const TCP_TO_SS: readonly SsState[] = [
  SsState.CLOSE, // CLOSED
  SsState.LISTEN,
  SsState.SYN_SENT,
  SsState.SYN_RECV,
  SsState.ESTABLISHED,
  SsState.FIN_WAIT1,
  SsState.FIN_WAIT2,
  SsState.CLOSE_WAIT,
  SsState.CLOSING,
  SsState.LAST_ACK,
  SsState.TIME_WAIT,
];

/** net.core.wmem_default / rmem_default, what a UDP socket's buffers are. */
const UDP_BUF_DEFAULT = 212992;

function listenerRow(stack: Stack, l: TcpListener): Row {
  const s = stack.tcp.settings;
  return {
    netid: 'tcp',
    state: SsState.LISTEN,
    // inet_diag: a listener's queues are the accept queue and its limit.
    rq: l.acceptQueue.length,
    wq: l.backlog,
    laddr: l.addr,
    lport: l.port,
    raddr: 0,
    rport: 0,
    timer: null,
    shutdown: 0,
    skmem: [0, s.rmem[1], 0, s.wmem[1], 0, 0, 0, 0, 0],
    // Linux's tcp_get_info for a listener: cwnd, and the accept queue as unacked.
    info: () => ` ${s.congestionControl} cwnd:10${l.acceptQueue.length ? ` unacked:${l.acceptQueue.length}` : ''}`,
    key: l,
  };
}

/** A SYN-RECEIVED connection made by a listener: Linux keeps these as request socks, with less to show. */
function isRequestSock(c: TcpConnection): boolean {
  return c.state === TcpState.SYN_RECEIVED && c.listener !== null;
}

function connectionRow(stack: Stack, c: TcpConnection, o: SsOptions): Row {
  const now = stack.time.now();
  const st = c.state;
  const state = TCP_TO_SS[st];
  // A connection in TIME-WAIT is shown as Linux's timewait sock (the records are: timeWaitRow).
  // An orphan kept in FIN-WAIT-2 (tcp_fin_timeout above 60 s) is a full socket on its keepalive timer.
  const tw = st === TcpState.TIME_WAIT;
  const req = isRequestSock(c);
  // Send-Q: write_seq - snd_una, which counts an unacknowledged SYN or FIN.
  let wq = c.sendBuf.length;
  if (st === TcpState.SYN_SENT) wq += 1;
  if (c.finQueued && (st === TcpState.ESTABLISHED || st === TcpState.CLOSE_WAIT || st === TcpState.FIN_WAIT_1 || st === TcpState.CLOSING || st === TcpState.LAST_ACK)) wq += 1;
  const rq = tw || req ? 0 : (c.user?.rcvQueued() ?? 0);
  let timer: Row['timer'] = null;
  if (c.rtxTimer.armed) timer = { kind: c.probing ? 4 : 1, expiresMs: c.rtxTimer.deadline - now, retrans: c.probing ? c.probesOut : c.retransmits };
  else if (c.keepTimer.armed) {
    // TIME-WAIT is Linux's timewait sock; otherwise the keepalive timer (FIN-WAIT-2's too).
    if (tw) timer = { kind: 3, expiresMs: c.keepTimer.deadline - now, retrans: 0 };
    else timer = { kind: 2, expiresMs: c.keepTimer.deadline - now, retrans: c.keepProbes };
  }
  if (timer !== null) timer.expiresMs = Math.max(0, Math.round(timer.expiresMs));
  // sk_shutdown: RCV_SHUTDOWN once the peer's FIN is in, SEND_SHUTDOWN once ours is queued.
  const peerFin = st === TcpState.CLOSE_WAIT || st === TcpState.LAST_ACK || st === TcpState.CLOSING || tw;
  const shutdown = tw || req ? null : (peerFin ? 1 : 0) | (c.finQueued ? 2 : 0);
  const skmem = tw || req ? null : [rq + c.oooBytes, c.rcvBufSize, 0, c.sndBufSize, 0, c.sendBuf.length, 0, 0, 0];
  return {
    netid: 'tcp',
    state,
    rq,
    wq: tw || req ? 0 : wq,
    laddr: c.localAddr,
    lport: c.localPort,
    raddr: c.remoteAddr,
    rport: c.remotePort,
    timer,
    shutdown,
    skmem,
    info: tw || req ? null : () => tcpInfo(c, now, o),
    key: c,
  };
}

/**
 * A TIME_WAIT or FIN_WAIT_2 record (Linux's timewait sock, listed in its substate as
 * inet_twsk_diag_fill does): no queues, memory or tcp_info; the timewait timer.
 */
function timeWaitRow(now: number, r: TimeWaitRecord): Row {
  return {
    netid: 'tcp',
    state: r.substate === TcpState.FIN_WAIT_2 ? SsState.FIN_WAIT2 : SsState.TIME_WAIT,
    rq: 0,
    wq: 0,
    laddr: r.localAddr,
    lport: r.localPort,
    raddr: r.remoteAddr,
    rport: r.remotePort,
    timer: { kind: 3, expiresMs: Math.max(0, Math.round(r.expiresMs - now)), retrans: 0 },
    shutdown: null,
    skmem: null,
    info: null,
    key: r,
  };
}

/** Linux's tcp_info through ss's tcp_show_info/tcp_stats_print (ss-info.ts). */
function tcpInfo(c: TcpConnection, now: number, o: SsOptions): string {
  return formatTcpInfo(tcpGetInfo(c, now), { numeric: o.numeric, showOptions: o.showOptions });
}

function udpRow(ep: UdpEndpoint): Row {
  const rq = ep.rx.rcvQueued?.() ?? 0;
  return {
    netid: 'udp',
    state: ep.connected ? SsState.ESTABLISHED : SsState.CLOSE,
    rq,
    wq: 0,
    laddr: ep.localAddr || (ep.connected ? ep.srcAddr : 0),
    lport: ep.localPort,
    raddr: ep.remoteAddr,
    rport: ep.remotePort,
    timer: null,
    shutdown: 0,
    skmem: [rq, ep.rx.rcvBufSize?.() ?? UDP_BUF_DEFAULT, 0, UDP_BUF_DEFAULT, 0, 0, 0, 0, 0],
    info: null,
    key: ep,
  };
}

/** ss's socket order: UDP, then TCP listeners, then connections. */
function collect(stack: Stack, o: SsOptions): Row[] {
  const rows: Row[] = [];
  if (!o.inet) return rows;
  if (o.udp) for (const ep of stack.udp.endpoints()) rows.push(udpRow(ep));
  if (o.tcp) {
    for (const l of stack.tcp.listenerList()) rows.push(listenerRow(stack, l));
    for (const c of stack.tcp.connections) if (c.state !== TcpState.CLOSED) rows.push(connectionRow(stack, c, o));
    const now = stack.time.now();
    for (const r of stack.tcp.timeWait.records()) rows.push(timeWaitRow(now, r));
  }
  return rows;
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

function summary(stack: Stack): string {
  let tcpHashed = 0;
  let orphans = 0;
  const tws = stack.tcp.timeWaitCount;
  for (const c of stack.tcp.connections) {
    if (c.state === TcpState.TIME_WAIT || c.state === TcpState.CLOSED || isRequestSock(c)) continue;
    tcpHashed++;
    if (c.orphan) orphans++;
  }
  tcpHashed += stack.tcp.listenerList().length;
  // tcp_sockets_allocated: every TCP socket that is not a timewait one; here, the hashed ones.
  const tcpTotal = tcpHashed;
  let udp = 0;
  for (const ep of stack.udp.endpoints()) {
    void ep;
    udp++;
  }
  const frag = stack.ip.reasm.count;
  const estab = stack.mib.TcpCurrEstab;
  const col = (n: number): string => String(n).padEnd(9);
  return (
    `Total: ${tcpTotal + udp}\n` +
    `TCP:   ${tcpTotal + tws} (estab ${estab}, closed ${tcpTotal - (tcpHashed - tws)}, orphaned ${orphans}, timewait ${tws})\n` +
    '\n' +
    'Transport Total     IP        IPv6\n' +
    `RAW\t  ${col(0)} ${col(0)} ${col(0)}\n` +
    `UDP\t  ${col(udp)} ${col(udp)} ${col(0)}\n` +
    `TCP\t  ${col(tcpHashed)} ${col(tcpHashed)} ${col(0)}\n` +
    `INET\t  ${col(udp + tcpHashed)} ${col(udp + tcpHashed)} ${col(0)}\n` +
    `FRAG\t  ${col(frag)} ${col(frag)} ${col(0)}\n` +
    '\n'
  );
}

/** ss's resolve_service: `*` for port 0, else the service name unless -n or the port is ephemeral. */
function portText(stack: Stack, port: number, proto: 'tcp' | 'udp', o: SsOptions, services: ServicesDb): string {
  if (port === 0) return '*';
  if (!o.numeric) {
    const r = stack.localPorts;
    if (port < r.low || port > r.high) {
      const name = services.name(port, proto);
      if (name !== null) return name;
    }
  }
  return String(port);
}

/** One socket's line as text: what ss puts in each column. */
export interface SsLine {
  netid: string;
  state: string;
  rq: number;
  wq: number;
  local: string;
  lport: string;
  peer: string;
  rport: string;
  /** Timers, details and the -i/-m second line, each part with its leading blank. */
  ext: string;
}

/** Lays out socket lines as ss does (sock_state_print, inet_addr_print, render). */
export function formatSsTable(lines: readonly SsLine[], cols: { netid: boolean; state: boolean; header: boolean }, screenWidth: number | null = null): string {
  const t = new SsTable();
  if (!cols.netid) t.disable(Col.NETID);
  if (!cols.state) t.disable(Col.STATE);
  if (cols.header) t.header();
  for (const l of lines) {
    t.set(Col.NETID);
    t.out(l.netid);
    t.set(Col.STATE);
    t.out(l.state);
    t.set(Col.RECVQ);
    t.out(String(l.rq).padEnd(6));
    t.set(Col.SENDQ);
    t.out(String(l.wq).padEnd(6));
    t.set(Col.ADDR);
    t.out(`${l.local}:`);
    t.next();
    t.out(l.lport);
    t.next();
    t.out(`${l.peer}:`);
    t.next();
    t.out(l.rport);
    t.next();
    t.out(l.ext);
  }
  return t.render(screenWidth);
}

/** Runs `ss ARGS` on the stack. `screenWidth` is the client's terminal width, or null when it has none. */
export function runSs(stack: Stack, argv: readonly string[], screenWidth: number | null = null): SsResult {
  const services = ServicesDb.load();
  let o: SsOptions;
  try {
    o = parseSsArgs(argv, services);
  } catch (e) {
    if (e instanceof SsExit) return e.result;
    throw e;
  }
  let stdout = '';
  if (o.summary) stdout += summary(stack);
  if (o.summaryOnly) return { code: 0, stdout, stderr: '' };

  const range = stack.localPorts;
  const ephemeral = (p: number): boolean => p >= range.low && p <= range.high;
  const lines: SsLine[] = [];
  for (const r of collect(stack, o)) {
    if (!(o.states & (1 << r.state))) continue;
    if (o.filter !== null && !runSsFilter(o.filter, r, ephemeral)) continue;
    let ext = '';
    if (o.showOptions && r.timer !== null) {
      const k = Math.min(r.timer.kind, 5);
      ext += ` timer:(${TIMER_NAMES[k]},${printMsTimer(r.timer.expiresMs)},${r.timer.retrans})`;
    }
    if (o.details) {
      // No socket here has a file, so no inode (as for Linux's orphans and timewait socks).
      ext += ` ino:0 sk:${cookie(r.key).toString(16)}`;
      if (r.shutdown !== null) ext += ` ${r.shutdown & 1 ? '-' : '<'}-${r.shutdown & 2 ? '-' : '>'}`;
    }
    if (o.mem || (o.info && r.netid !== 'udp')) {
      if (!o.oneline) ext += '\n\t';
      if (o.mem && r.skmem !== null) {
        const m = r.skmem;
        ext += ` skmem:(r${m[0]},rb${m[1]},t${m[2]},tb${m[3]},f${m[4]},w${m[5]},o${m[6]},bl${m[7]},d${m[8]})`;
      }
      if (o.info && r.info !== null) ext += r.info();
    }
    lines.push({
      netid: r.netid,
      state: SS_STATE_TEXT[r.state],
      rq: r.rq,
      wq: r.wq,
      local: formatIp4(r.laddr),
      lport: portText(stack, r.lport, r.netid, o, services),
      peer: formatIp4(r.raddr),
      rport: portText(stack, r.rport, r.netid, o, services),
      ext,
    });
  }
  stdout += formatSsTable(lines, { netid: o.netidColumn, state: o.stateColumn, header: o.header }, screenWidth);
  return { code: 0, stdout, stderr: '' };
}

/**
 * The TCP connections an ss filter selects (`state STATE`, `dport = :N`, ...),
 * as `ss -t FILTER` would list them, listeners left out; for `trace tcp`.
 * Throws SsExit with ss's message for a bad filter.
 */
export function tcpSelector(stack: Stack, words: readonly string[]): () => TcpConnection[] {
  const o = parseSsArgs(['-t', ...words]);
  const range = stack.localPorts;
  const ephemeral = (p: number): boolean => p >= range.low && p <= range.high;
  return () => {
    const out: TcpConnection[] = [];
    for (const c of stack.tcp.connections) {
      if (c.state === TcpState.CLOSED || c.state === TcpState.TIME_WAIT) continue;
      const r = connectionRow(stack, c, o);
      if (!(o.states & (1 << r.state))) continue;
      if (o.filter !== null && !runSsFilter(o.filter, r, ephemeral)) continue;
      out.push(c);
    }
    return out;
  };
}
