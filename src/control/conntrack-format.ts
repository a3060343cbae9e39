/**
 * Lines as conntrack(8) (conntrack-tools 1.4.7 over libnetfilter_conntrack)
 * prints them: one connection per line, fields separated by one space, in
 * the order `[EVENT] [ipv4     2 ]PROTO    N [TIMEOUT ][STATE ]ORIGINAL
 * [counters ][UNREPLIED ]REPLY [counters ][ASSURED ][mark=N ][delta-time=N ]
 * [use=N ][id=N]`. test/unit/conntrack-cli.test.ts compares them with the
 * real tool's output (scripts/capture-conntrack.sh).
 */
import { IPS_ASSURED, IPS_SEEN_REPLY, type CtEntry } from '../conntrack/entry.js';
import { formatIp4 } from '../wire/addr.js';

export const CONNTRACK_VERSION = 'conntrack v1.4.7 (conntrack-tools)';

/** libnetfilter_conntrack's proto2str[]; other protocols print as "unknown". */
const PROTO_NAMES: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  47: 'gre',
  58: 'icmpv6',
  132: 'sctp',
  136: 'udplite',
};

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? 'unknown';
}

export type CtEventKind = 'new' | 'update' | 'destroy';

export interface EntryFields {
  /** Seconds left, or null when the line has none. */
  timeout: number | null;
  /** TCP state name ("" for other protocols). */
  state: string;
  /** -o extended: the layer 3 protocol first. */
  extended: boolean;
  /** -o id. */
  id: boolean;
  /** mark=N is printed (dumps always; events only for a non-zero mark). */
  mark: boolean;
  /** use=N, or null (events have none). */
  use: number | null;
  /** Per-direction packets= bytes= (nf_conntrack_acct). */
  acct: boolean;
  /** delta-time=N (nf_conntrack_timestamp), or null. */
  deltaTime: number | null;
  /** -o ktimestamp with timestamps on: `[start=...] ` as ctime() prints it. */
  start: string | null;
  /** The same for a destroy event's `[stop=...] `. */
  stop: string | null;
  /** An event line's kind, or null for a dump. */
  event: CtEventKind | null;
}

const EVENT_TAG: Record<CtEventKind, string> = { new: '    [NEW]', update: ' [UPDATE]', destroy: '[DESTROY]' };

function tuple(proto: number, s: number, d: number, sp: number, dp: number): string {
  let t = `src=${formatIp4(s)} dst=${formatIp4(d)} `;
  switch (proto) {
    case 6:
    case 17:
    case 136:
    case 132:
    case 33:
      t += `sport=${sp} dport=${dp} `;
      break;
    case 47:
      t += `srckey=0x${sp.toString(16)} dstkey=0x${dp.toString(16)} `;
      break;
    case 1:
      // The ICMP tuple keeps the echo id as the source "port" and type/code as the destination.
      t += `type=${dp >>> 8} code=${dp & 0xff} id=${sp} `;
      break;
  }
  return t;
}

/** One connection as conntrack prints it (without the newline). */
export function formatEntry(e: CtEntry, f: EntryFields): string {
  let s = f.event !== null ? `${EVENT_TAG[f.event]} ` : '';
  if (f.extended) s += 'ipv4     2 ';
  s += `${protoName(e.proto).padEnd(8)} ${e.proto} `;
  if (f.timeout !== null) s += `${f.timeout} `;
  if (f.state !== '') s += `${f.state} `;
  s += tuple(e.proto, e.os, e.od, e.osp, e.odp);
  if (f.acct) s += `packets=${e.pkts0} bytes=${e.bytes0} `;
  if ((e.status & IPS_SEEN_REPLY) === 0) s += '[UNREPLIED] ';
  s += tuple(e.proto, e.rs, e.rd, e.rsp, e.rdp);
  if (f.acct) s += `packets=${e.pkts1} bytes=${e.bytes1} `;
  if ((e.status & IPS_ASSURED) !== 0) s += '[ASSURED] ';
  if (f.mark) s += `mark=${e.mark >>> 0} `;
  if (f.deltaTime !== null) s += `delta-time=${f.deltaTime} `;
  if (f.start !== null) s += `[start=${f.start}] `;
  if (f.stop !== null) s += `[stop=${f.stop}] `;
  if (f.use !== null) s += `use=${f.use} `;
  if (f.id) s += `id=${e.id >>> 0} `;
  return s.slice(0, -1);
}

/** Names of the per-CPU counters `conntrack -S` prints, in its order (CTA_STATS_*). */
export const STATS_FIELDS = [
  'found',
  'invalid',
  'insert',
  'insert_failed',
  'drop',
  'early_drop',
  'error',
  'search_restart',
  'clash_resolve',
  'chaintoolong',
] as const;

/** `conntrack -S`: one line per CPU; the stack runs on one. */
export function formatStats(stats: Partial<Record<(typeof STATS_FIELDS)[number], number>>): string {
  let s = 'cpu=0   \t';
  for (const k of STATS_FIELDS) s += `${k}=${(stats[k] ?? 0) >>> 0} `;
  return s + '\n';
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ctime(3) without its newline, in local time: `Wed Dec  2 01:02:03 2026`. */
export function ctime(ms: number): string {
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/** -E -o timestamp: `[SECONDS.MICROSECONDS]\t` before each event. */
export function eventTimestamp(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const usec = Math.floor((ms - sec * 1000) * 1000);
  return `[${String(sec).padStart(8, '0')}.${String(usec).padStart(6, '0')}]\t`;
}

/** One direction's `<meta>` of -o xml (libnetfilter_conntrack's XML layout). */
function xmlTuple(e: CtEntry, dir: 0 | 1, acct: boolean): string {
  const [s, d, sp, dp] = dir === 0 ? [e.os, e.od, e.osp, e.odp] : [e.rs, e.rd, e.rsp, e.rdp];
  let x = `<meta direction="${dir === 0 ? 'original' : 'reply'}"><layer3 protonum="2" protoname="ipv4"><src>${formatIp4(s)}</src><dst>${formatIp4(d)}</dst></layer3>`;
  x += `<layer4 protonum="${e.proto}" protoname="${protoName(e.proto)}">`;
  switch (e.proto) {
    case 6:
    case 17:
    case 136:
    case 132:
    case 33:
      x += `<sport>${sp}</sport><dport>${dp}</dport>`;
      break;
    case 47:
      x += `<srckey>0x${sp.toString(16)}</srckey><dstkey>0x${dp.toString(16)}</dstkey>`;
      break;
  }
  x += '</layer4>';
  if (acct) x += `<counters><packets>${dir === 0 ? e.pkts0 : e.pkts1}</packets><bytes>${dir === 0 ? e.bytes0 : e.bytes1}</bytes></counters>`;
  return x + '</meta>';
}

/** One connection as -o xml prints it: `<flow>` with the two directions and the rest. */
export function formatEntryXml(e: CtEntry, f: EntryFields): string {
  let x = f.event !== null ? `<flow type="${f.event}">` : '<flow>';
  x += xmlTuple(e, 0, f.acct) + xmlTuple(e, 1, f.acct);
  x += '<meta direction="independent">';
  if (f.state !== '') x += `<state>${f.state}</state>`;
  if (f.timeout !== null) x += `<timeout>${f.timeout}</timeout>`;
  if (f.mark) x += `<mark>${e.mark >>> 0}</mark>`;
  if (f.use !== null) x += `<use>${f.use}</use>`;
  x += `<id>${e.id >>> 0}</id>`;
  if ((e.status & IPS_ASSURED) !== 0) x += '<assured/>';
  if ((e.status & IPS_SEEN_REPLY) === 0) x += '<unreplied/>';
  if (f.deltaTime !== null) x += `<deltatime>${f.deltaTime}</deltatime>`;
  return x + '</meta></flow>';
}

export const XML_HEADER = '<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n';
export const XML_FOOTER = '</conntrack>\n';
