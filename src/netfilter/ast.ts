/**
 * The typed rule AST of the chain engine, shaped like nftables' model: a ruleset
 * holds tables; a table holds chains, named sets/maps and named counters; a chain
 * holds rules; a rule is a list of expressions, matches first and statements after,
 * evaluated left to right (a failing match ends the rule).
 *
 * The nft and iptables front ends build this AST; compile.ts turns it into
 * closures. Handles are per table, shared by chains, rules, sets and counters
 * (as nft's are); a handle of 0 means "not assigned yet" and the Ruleset
 * assigns one at commit.
 *
 * How nft syntax maps onto it (for the front ends):
 *
 *   ip saddr 10.0.0.0/8             match ip.saddr eq {prefix addr len}
 *   tcp dport != { 22, 80-90 }      match tcp.dport ne {set [{key 22}, {key 80, end 90}]}
 *   tcp flags & (syn|ack) == syn    match tcp.flags mask 0x12 eq 0x02
 *   tcp flags syn                   match tcp.flags mask 0x02 ne 0
 *   ct state established,related    match ct.state mask 0x06 ne 0
 *   ip saddr . tcp dport @svc       match {concat [ip.saddr, tcp.dport]} eq {setref svc}
 *   iifname "eth*"                  ifname iifname eq ["eth*"]
 *   meta l4proto tcp                match meta.l4proto eq 6
 *   limit rate over 10/second burst 5 packets    limit {rate 10, unit second, per packets, burst 5, over}
 *   numgen inc mod 2 vmap { 0 : jump a, 1 : jump b }   vmap {key numgen, map {set ...}}
 *   counter / counter name "c"      counter / counter {name c}
 *   log prefix "x " level info      log
 *   reject with icmp type host-unreachable   reject {type icmp, code 1} (type 3 codes)
 *   reject with tcp reset           reject {type tcp-reset}
 *   meta mark set 0x10              meta-set 0x10
 *   meta mark set meta mark or 0x10 meta-set {field meta.mark, mask ~0x10, xor 0x10}
 *   meta mark set ip saddr map @m   meta-set {map key ip.saddr, setref m}
 *   ip dscp set cs1 / ip ttl set 1  payload-set
 *   add @s { ip saddr timeout 1m }  set-add {op add, set s, key ip.saddr, timeoutMs 60000}
 *   accept/drop/continue/return/jump c/goto c     verdict
 *
 * iptables maps the same way: a table's built-in chains are base chains at the
 * legacy priorities (PRIORITY), `-j ACCEPT/DROP/RETURN/<chain>` are verdicts
 * (jump), `-m comment` is Rule.comment, and every iptables rule has a counter.
 */

export type Family = 'ip' | 'inet';
export type HookName = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type ChainType = 'filter' | 'nat' | 'route';

/** Linux's standard priorities (NF_IP_PRI_*), by the names nft uses. */
export const PRIORITY = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;

export interface RulesetState {
  tables: Table[];
}

export interface Table {
  family: Family;
  name: string;
  handle: number;
  chains: Chain[];
  sets: NamedSet[];
  counters: NamedCounter[];
}

export interface BaseChainSpec {
  type: ChainType;
  hook: HookName;
  priority: number;
  policy: 'accept' | 'drop';
  /**
   * The chain keeps policy counters that a front end shows (nf_tables' base
   * chain stats, enabled by iptables-nft's -Z, -P and iptables-restore); the
   * engine counts every base chain either way.
   */
  counters?: boolean;
}

export interface Chain {
  name: string;
  handle: number;
  /** Present on a base chain (one attached to a hook). */
  base?: BaseChainSpec;
  rules: Rule[];
}

export interface Rule {
  handle: number;
  /** Matches, then statements. */
  exprs: Expr[];
  comment?: string;
  /**
   * A rule the iptables front end made: its canonical spec as iptables-save
   * prints it after `-A CHAIN` (the front end lists the rule from it).
   */
  iptables?: string;
}

// ---------------------------------------------------------------- values read from a packet

export type IpField = 'saddr' | 'daddr' | 'protocol' | 'length' | 'ttl' | 'dscp' | 'ecn' | 'id' | 'version' | 'hdrlength';
export type TcpField = 'sport' | 'dport' | 'flags' | 'sequence' | 'ackseq' | 'window';
export type UdpField = 'sport' | 'dport' | 'length';
export type IcmpField = 'type' | 'code' | 'id' | 'sequence';
export type MetaKey =
  | 'l4proto'
  | 'protocol'
  | 'nfproto'
  | 'mark'
  | 'length'
  | 'pkttype'
  | 'iif'
  | 'oif'
  | 'iifname'
  | 'oifname';
export type CtKey =
  | 'state'
  | 'status'
  | 'mark'
  | 'direction'
  | 'expiration'
  | 'saddr'
  | 'daddr'
  | 'proto-src'
  | 'proto-dst'
  | 'protocol';
/** The tuple keys, which take a direction (`ct original saddr`). */
export const CT_TUPLE_KEYS: readonly CtKey[] = ['saddr', 'daddr', 'proto-src', 'proto-dst'];

/**
 * Something read from the packet or its metadata, as an unsigned number.
 * Transport fields (tcp/udp/th/icmp) carry nft's implicit dependency: they
 * only match packets of that protocol that are first fragments.
 */
export type Field =
  | { kind: 'payload'; proto: 'ip'; field: IpField }
  | { kind: 'payload'; proto: 'tcp'; field: TcpField }
  | { kind: 'payload'; proto: 'udp'; field: UdpField }
  /** Transport header ports of TCP or UDP (nft's `th`). */
  | { kind: 'payload'; proto: 'th'; field: 'sport' | 'dport' }
  | { kind: 'payload'; proto: 'icmp'; field: IcmpField }
  | { kind: 'meta'; key: Exclude<MetaKey, 'iifname' | 'oifname'> }
  /**
   * `ct KEY`, or `ct original|reply KEY` for the tuple keys; `ip` for the
   * address written as `ct original ip saddr` (nft's NFT_CT_SRC_IP, listed the
   * same way but a different key in -j output). `expiration` is in ms.
   */
  | { kind: 'ct'; key: CtKey; dir?: 'original' | 'reply'; ip?: boolean }
  | { kind: 'numgen'; mode: 'random' | 'inc'; mod: number; offset?: number }
  /**
   * `fib FLAGS oif|type` (nft_fib): a route lookup for the packet's address.
   * `flags` in nft's order (saddr, daddr, mark, iif, oif), one of saddr/daddr.
   * `oif` is the ifindex of the device the route leaves through (0: none);
   * with `present` (`exists`/`missing`) 1 or 0. `type` is the address's
   * RTN_* type (inet_dev_addr_type). `oifname` results are the `fib-name` expression.
   */
  | { kind: 'fib'; flags: FibFlag[]; result: 'oif' | 'type'; present?: boolean };

/** The lookup inputs of a fib expression (NFTA_FIB_F_*), in nft's print order. */
export type FibFlag = 'saddr' | 'daddr' | 'mark' | 'iif' | 'oif';
export const FIB_FLAGS: readonly FibFlag[] = ['saddr', 'daddr', 'mark', 'iif', 'oif'];

/** A key made of one field or a concatenation (`ip saddr . tcp dport`). */
export type KeyExpr = Field | { kind: 'concat'; fields: Field[] };

// ---------------------------------------------------------------- right-hand sides

export type CmpOp = 'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge';

/** One key of a set element: a number, or one number per field of a concatenation. */
export type ElemKey = number | number[];

export interface SetElement {
  key: ElemKey;
  /** Inclusive end of a range element (interval sets). A prefix a/n is key a, end a|~mask. */
  end?: ElemKey;
  /** Per-element timeout (sets with the timeout flag). */
  timeoutMs?: number;
  /** The connection count an element added by `add @s { KEY ct count ... }` carries (listed with it). */
  connlimit?: { count: number; over?: boolean };
  /** Map data: a verdict (verdict maps) or a number (data maps). */
  data?: VerdictAst | number;
  comment?: string;
}

export type Rhs =
  | { kind: 'value'; value: number }
  | { kind: 'range'; lo: number; hi: number }
  | { kind: 'prefix'; addr: number; len: number }
  /** An anonymous set `{ 22, 80, 1000-2000 }`. */
  | { kind: 'set'; elements: SetElement[] }
  /** A named set `@name`. */
  | { kind: 'setref'; name: string };

// ---------------------------------------------------------------- verdicts

export type VerdictAst =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'continue' }
  | { kind: 'return' }
  | { kind: 'jump'; chain: string }
  | { kind: 'goto'; chain: string };

// ---------------------------------------------------------------- expressions

export type SizeUnit = 'bytes' | 'kbytes' | 'mbytes';
export type TimeUnit = 'second' | 'minute' | 'hour' | 'day' | 'week';
export type LogLevel = 'emerg' | 'alert' | 'crit' | 'err' | 'warn' | 'notice' | 'info' | 'debug';

export type Expr =
  /**
   * `left [& mask] op right`. With a set, range or prefix on the right, `eq`
   * means "is in" and `ne` "is not in"; the ordering ops take a value.
   */
  | { kind: 'match'; left: KeyExpr; mask?: number; op: CmpOp; right: Rhs }
  /** `iifname "eth*"`: a trailing `*` matches any name with that prefix. */
  | { kind: 'ifname'; dir: 'iifname' | 'oifname'; op: 'eq' | 'ne'; names: string[] }
  /** `fib FLAGS oifname "eth0"`: the name of the device a fib lookup answers ("" for none), matched as ifname matches. */
  | { kind: 'fib-name'; flags: FibFlag[]; op: 'eq' | 'ne'; names: string[] }
  /** `limit rate [over] N/unit [burst M packets|bytes]`. A bytes rate is in bytes per unit. */
  | { kind: 'limit'; rate: number; unit: TimeUnit; per: 'packets' | 'bytes'; burst?: number; over?: boolean }
  | { kind: 'verdict'; verdict: VerdictAst }
  /** `reject` (ICMP port unreachable), `reject with icmp type X`, `reject with tcp reset`. */
  | { kind: 'reject'; with?: { type: 'icmp'; code: number; /** written as nft's family-neutral `icmpx` (inet) */ icmpx?: boolean } | { type: 'tcp-reset' } }
  /** Anonymous counter (the rule's own), or a named one with `name`. */
  | { kind: 'counter'; name?: string }
  | { kind: 'log'; prefix?: string; level?: LogLevel }
  /**
   * `meta mark set VALUE`: a number, or a value computed per packet: a field
   * with nft's bitwise `(x & mask) ^ xor` (`meta mark set meta mark or 0x10`
   * is mask ~0x10, xor 0x10), or a data map lookup (`ip saddr map @marks`;
   * no element: the rule ends there, as nft's lookup breaks).
   */
  | { kind: 'meta-set'; key: 'mark'; value: number | MarkValue }
  | { kind: 'payload-set'; proto: 'ip'; field: 'dscp' | 'ttl'; value: number }
  | { kind: 'notrack' }
  /** `ct mark set VALUE` (the same values as meta-set). */
  | { kind: 'ct-set'; key: 'mark'; value: number | MarkValue }
  /**
   * iptables' CONNMARK --save-mark / --restore-mark with masks (nft has no
   * syntax for it): save ct mark = (ct mark & ~ctmask) ^ (mark & nfmask);
   * restore mark = (mark & ~nfmask) ^ (ct mark & ctmask).
   */
  | { kind: 'connmark'; op: 'save' | 'restore'; nfmask: number; ctmask: number }
  /**
   * An iptables match or target kept as iptables-nft keeps it (an xt
   * expression): evaluated as `exprs`, listed by nft as `text` (its
   * translation, or `xt target NAME` when there is none).
   */
  | { kind: 'xt'; type: 'match' | 'target'; name: string; text: string; exprs: Expr[] }
  /**
   * iptables' `--ctstate` with SNAT/DNAT (xt_conntrack): any of the nft state
   * bits `states`, or any of the `status` bits (IPS_SRC_NAT, IPS_DST_NAT).
   */
  | { kind: 'ct-state-nat'; states: number; status: number; neg: boolean }
  /** `ct count [over] N` (nft_connlimit): connections this rule has seen that are alive. */
  | { kind: 'connlimit'; count: number; over?: boolean }
  /**
   * `snat|dnat [ip] to ADDR[-ADDR][:PORT[-PORT]] [flags]`, `snat|dnat to KEY map {...}`,
   * `masquerade [to :PORT[-PORT]] [flags]`, `redirect [to :PORT[-PORT]] [flags]`.
   */
  | NatExpr
  /** `key vmap { k : verdict, ... }` or `key vmap @map`. */
  | { kind: 'vmap'; key: KeyExpr; map: { kind: 'set'; elements: SetElement[] } | { kind: 'setref'; name: string } }
  /** `add @set { key [timeout T] }` / `update @set { ... }`. */
  | { kind: 'set-add'; op: 'add' | 'update'; set: string; key: KeyExpr; timeoutMs?: number; connlimit?: { count: number; over?: boolean } };

export type NatFlag = 'random' | 'fully-random' | 'persistent';

export interface NatExpr {
  kind: 'nat';
  type: 'snat' | 'dnat' | 'masquerade' | 'redirect';
  /** `snat ip to ...` as written (nft lists it without `ip`). */
  ip?: boolean;
  addr?: number;
  addrEnd?: number;
  /** The address from a map lookup (`dnat to ip saddr map { a : b }`). */
  addrMap?: {
    key: KeyExpr;
    map: { kind: 'set'; elements: SetElement[] } | { kind: 'setref'; name: string };
    /** The data is `address . port` (`dnat ip addr . port to ...`), packed as addr * 65536 + port. */
    withPort?: boolean;
  };
  port?: number;
  portEnd?: number;
  flags?: NatFlag[];
}

export type MarkValue =
  | { kind: 'field'; field: Field; mask?: number; xor?: number }
  | { kind: 'map'; key: KeyExpr; map: { kind: 'set'; elements: SetElement[] } | { kind: 'setref'; name: string } };

// ---------------------------------------------------------------- sets, maps, counters

export type SetKeyType = 'ipv4_addr' | 'inet_service' | 'inet_proto' | 'mark' | 'ifindex' | 'integer' | 'ct_state';

/** Bits of each key type (for packing concatenations into one numeric key). */
export const KEY_BITS: Record<SetKeyType, number> = {
  ipv4_addr: 32,
  inet_service: 16,
  inet_proto: 8,
  mark: 32,
  ifindex: 32,
  integer: 32,
  ct_state: 32,
};

export interface NamedSet {
  name: string;
  handle: number;
  /** One type, or several for a concatenation (`ipv4_addr . inet_service`). */
  type: SetKeyType[];
  /** A map: elements carry data of this type. */
  /** `ipv4_addr . inet_service` data (NAT's address and port) is packed as addr * 65536 + port. */
  map?: 'verdict' | 'mark' | 'ipv4_addr' | 'inet_service' | 'integer' | 'ipv4_addr . inet_service';
  flags?: { interval?: boolean; timeout?: boolean; constant?: boolean; dynamic?: boolean };
  /** Default timeout of elements (timeout flag). */
  timeoutMs?: number;
  /** Most elements (nft's `size`); adds from rules beyond it fail. */
  size?: number;
  elements: SetElement[];
  /**
   * Declared with `typeof EXPR [: EXPR]` (listed that way): the key's
   * expression, and a map's data expression. `type` and `map` hold what they give.
   */
  typeofKey?: KeyExpr;
  typeofData?: KeyExpr;
}

export interface NamedCounter {
  name: string;
  handle: number;
  packets: number;
  bytes: number;
}

// ---------------------------------------------------------------- ct values (as nft numbers them)

export const CT_STATE_INVALID = 1;
export const CT_STATE_ESTABLISHED = 2;
export const CT_STATE_RELATED = 4;
export const CT_STATE_NEW = 8;
export const CT_STATE_UNTRACKED = 64;
export const CT_DIR_ORIGINAL = 0;
export const CT_DIR_REPLY = 1;

/** nft's `meta pkttype` values. */
export const PKTTYPE_HOST = 0;
export const PKTTYPE_BROADCAST = 1;
export const PKTTYPE_MULTICAST = 2;
export const PKTTYPE_OTHERHOST = 3;

/** `meta nfproto ipv4`. */
export const NFPROTO_IPV4 = 2;
