import type { Field, KeyExpr, SetKeyType } from '../netfilter/ast.js';

/**
 * The value types of nft's fields (its datatypes) and their symbolic names, as
 * nft reads and prints them.
 */
export type NftType =
  | 'ipv4_addr'
  | 'inet_service'
  | 'inet_proto'
  | 'mark'
  | 'integer'
  | 'tcp_flag'
  | 'icmp_type'
  | 'icmp_code'
  | 'ecn'
  | 'ct_state'
  | 'ct_status'
  | 'ct_dir'
  | 'pkt_type'
  | 'dscp'
  | 'nf_proto'
  | 'ether_type'
  | 'ifindex'
  /** A duration in ms, written 1m30s (`ct expiration`). */
  | 'time'
  /** A route type (`fib ... type`), RTN_* numbers. */
  | 'fib_addrtype'
  /** `exists` / `missing` (`fib ... oif exists`). */
  | 'boolean';

/** Name tables: name -> value, listed in the order nft prints flag lists (by bit). */
export const SYMBOLS: Partial<Record<NftType, [string, number][]>> = {
  inet_proto: [
    ['icmp', 1],
    ['igmp', 2],
    ['tcp', 6],
    ['udp', 17],
    ['gre', 47],
    ['esp', 50],
    ['ah', 51],
    ['sctp', 132],
  ],
  tcp_flag: [
    ['fin', 0x01],
    ['syn', 0x02],
    ['rst', 0x04],
    ['psh', 0x08],
    ['ack', 0x10],
    ['urg', 0x20],
    ['ecn', 0x40],
    ['cwr', 0x80],
  ],
  icmp_type: [
    ['echo-reply', 0],
    ['destination-unreachable', 3],
    ['source-quench', 4],
    ['redirect', 5],
    ['echo-request', 8],
    ['router-advertisement', 9],
    ['router-solicitation', 10],
    ['time-exceeded', 11],
    ['parameter-problem', 12],
    ['timestamp-request', 13],
    ['timestamp-reply', 14],
    ['info-request', 15],
    ['info-reply', 16],
    ['address-mask-request', 17],
    ['address-mask-reply', 18],
  ],
  icmp_code: [
    ['net-unreachable', 0],
    ['host-unreachable', 1],
    ['prot-unreachable', 2],
    ['port-unreachable', 3],
    ['frag-needed', 4],
    ['net-prohibited', 9],
    ['host-prohibited', 10],
    ['admin-prohibited', 13],
  ],
  ecn: [
    ['not-ect', 0],
    ['ect1', 1],
    ['ect0', 2],
    ['ce', 3],
  ],
  ct_state: [
    ['invalid', 1],
    ['established', 2],
    ['related', 4],
    ['new', 8],
    ['untracked', 64],
  ],
  ct_status: [
    ['expected', 1],
    ['seen-reply', 2],
    ['assured', 4],
    ['confirmed', 8],
    ['snat', 16],
    ['dnat', 32],
    ['dying', 512],
  ],
  ct_dir: [
    ['original', 0],
    ['reply', 1],
  ],
  pkt_type: [
    ['host', 0],
    ['broadcast', 1],
    ['multicast', 2],
    ['other', 3],
  ],
  dscp: [
    ['cs0', 0],
    ['cs1', 8],
    ['af11', 10],
    ['af12', 12],
    ['af13', 14],
    ['cs2', 16],
    ['af21', 18],
    ['af22', 20],
    ['af23', 22],
    ['cs3', 24],
    ['af31', 26],
    ['af32', 28],
    ['af33', 30],
    ['cs4', 32],
    ['af41', 34],
    ['af42', 36],
    ['af43', 38],
    ['cs5', 40],
    ['va', 44],
    ['ef', 46],
    ['cs6', 48],
    ['cs7', 56],
  ],
  nf_proto: [
    ['ipv4', 2],
    ['ipv6', 10],
  ],
  fib_addrtype: [
    ['unspec', 0],
    ['unicast', 1],
    ['local', 2],
    ['broadcast', 3],
    ['anycast', 4],
    ['multicast', 5],
    ['blackhole', 6],
    ['unreachable', 7],
    ['prohibit', 8],
  ],
  boolean: [
    ['missing', 0],
    ['exists', 1],
  ],
  ether_type: [
    ['ip', 0x0800],
    ['arp', 0x0806],
    ['ip6', 0x86dd],
    ['vlan', 0x8100],
  ],
};

/** Types whose values are bit flags (a bare list means "any of these bits"). */
export const FLAG_TYPES: ReadonlySet<NftType> = new Set<NftType>(['tcp_flag', 'ct_state', 'ct_status']);

/** The ICMP codes `reject with icmp X` names (destination unreachable). */
export const ICMP_REJECT: [string, number][] = [
  ['net-unreachable', 0],
  ['host-unreachable', 1],
  ['prot-unreachable', 2],
  ['port-unreachable', 3],
  ['net-prohibited', 9],
  ['host-prohibited', 10],
  ['admin-prohibited', 13],
];

export function symbolValue(t: NftType, name: string): number | undefined {
  return SYMBOLS[t]?.find(([n]) => n === name)?.[1];
}

export function symbolName(t: NftType, v: number): string | undefined {
  return SYMBOLS[t]?.find(([, x]) => x === v)?.[0];
}

/** The nft type of a field. */
export function fieldType(f: Field): NftType {
  switch (f.kind) {
    case 'payload':
      switch (f.proto) {
        case 'ip':
          return f.field === 'saddr' || f.field === 'daddr'
            ? 'ipv4_addr'
            : f.field === 'protocol'
              ? 'inet_proto'
              : f.field === 'dscp'
                ? 'dscp'
                : f.field === 'ecn'
                  ? 'ecn'
                  : 'integer';
        case 'tcp':
          return f.field === 'sport' || f.field === 'dport' ? 'inet_service' : f.field === 'flags' ? 'tcp_flag' : 'integer';
        case 'udp':
          return f.field === 'length' ? 'integer' : 'inet_service';
        case 'th':
          return 'inet_service';
        case 'icmp':
          return f.field === 'type' ? 'icmp_type' : f.field === 'code' ? 'icmp_code' : 'integer';
      }
      break;
    case 'meta':
      switch (f.key) {
        case 'l4proto':
          return 'inet_proto';
        case 'protocol':
          return 'ether_type';
        case 'nfproto':
          return 'nf_proto';
        case 'mark':
          return 'mark';
        case 'pkttype':
          return 'pkt_type';
        case 'iif':
        case 'oif':
          return 'ifindex';
        default:
          return 'integer';
      }
    case 'ct':
      switch (f.key) {
        case 'state':
          return 'ct_state';
        case 'status':
          return 'ct_status';
        case 'mark':
          return 'mark';
        case 'direction':
          return 'ct_dir';
        case 'expiration':
          return 'time';
        case 'saddr':
        case 'daddr':
          return 'ipv4_addr';
        case 'proto-src':
        case 'proto-dst':
          return 'inet_service';
        case 'protocol':
          return 'inet_proto';
      }
      break;
    case 'numgen':
      return 'integer';
    case 'fib':
      return f.result === 'type' ? 'fib_addrtype' : f.present === true ? 'boolean' : 'ifindex';
  }
  return 'integer';
}

export function keyTypes(k: KeyExpr): NftType[] {
  return k.kind === 'concat' ? k.fields.map(fieldType) : [fieldType(k)];
}

/** Set declaration types (`type ipv4_addr . inet_service`) as nft types. */
export function setKeyNftType(t: SetKeyType): NftType {
  switch (t) {
    case 'ct_state':
      return 'ct_state';
    default:
      return t;
  }
}

export const SET_KEY_TYPES: readonly SetKeyType[] = ['ipv4_addr', 'inet_service', 'inet_proto', 'mark', 'ifindex', 'integer', 'ct_state'];

/** A set key type by the name nft gives it (`type iface_index`), and back. */
export function setTypeName(t: SetKeyType): string {
  return t === 'ifindex' ? 'iface_index' : t;
}

export function setTypeByName(name: string): SetKeyType | undefined {
  return SET_KEY_TYPES.find((t) => setTypeName(t) === name);
}

/** nft's time format: 1d2h3m4s5ms. */
export function formatTime(ms: number): string {
  if (ms === 0) return '0s';
  let out = '';
  const parts: [number, string][] = [
    [86400000, 'd'],
    [3600000, 'h'],
    [60000, 'm'],
    [1000, 's'],
    [1, 'ms'],
  ];
  let r = ms;
  for (const [n, u] of parts) {
    const q = Math.floor(r / n);
    if (q > 0) out += `${q}${u}`;
    r -= q * n;
  }
  return out;
}

/** Reads nft's time format (`1h30m`, `10s`, `500ms`, a bare number is seconds); null if malformed. */
export function parseTime(s: string): number | null {
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+)(ms|d|h|m|s)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += n * { d: 86400000, h: 3600000, m: 60000, s: 1000, ms: 1 }[m[2] as 'd' | 'h' | 'm' | 's' | 'ms'];
    pos = re.lastIndex;
  }
  return pos === s.length && s.length > 0 ? total : null;
}
