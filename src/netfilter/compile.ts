import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import type { HookFn } from '../ip/hooks.js';
import { getU16, getU32 } from '../wire/bytes.js';
import { fillIpv4Checksum } from '../wire/ipv4.js';
import {
  CT_DIR_ORIGINAL,
  CT_STATE_NEW,
  CT_STATE_UNTRACKED,
  KEY_BITS,
  NFPROTO_IPV4,
  PKTTYPE_BROADCAST,
  PKTTYPE_HOST,
  PKTTYPE_MULTICAST,
  type Chain,
  type CmpOp,
  type Expr,
  type Field,
  type FibFlag,
  type KeyExpr,
  type LogLevel,
  type NamedSet,
  type NatExpr,
  type Rhs,
  type SetElement,
  type Table,
  type TimeUnit,
  type VerdictAst,
} from './ast.js';
import { SetError, SetStore, type SetEntry } from './sets.js';
import type { MarkValue } from './ast.js';

/**
 * Compiles a table's chains to closures, once per ruleset change. Each rule is a
 * list of ops; an op reads the packet straight from `pkt.buf` at the offsets
 * the evaluation context holds and returns a code: go on, the rule is done
 * (a match failed), or a verdict. Nothing here allocates per packet.
 */

// ---- op results
/** Go on with the next expression of the rule. */
export const CONT = 0;
/** A match failed: on with the next rule. */
export const BREAK = 1;
export const V_ACCEPT = 2;
export const V_DROP = 3;
export const V_RETURN = 4;
/** Jumps: JUMP_BASE + 2 * chain index (+1 for goto). */
export const JUMP_BASE = 16;
/** nft's NFT_JUMP_STACK_SIZE. */
export const JUMP_STACK = 16;

/**
 * What conntrack provides (src/conntrack/ implements it; the Stack wires it in).
 * `state` gives nft's state bits (CT_STATE_INVALID for a packet conntrack could
 * not track, as nft_ct reports it); the others return -1 for a packet without
 * an entry (no match).
 */
export interface CtProvider {
  state(pkt: Packet): number;
  status(pkt: Packet): number;
  mark(pkt: Packet): number;
  direction(pkt: Packet): number;
  /** `ct mark set V`: no effect on a packet without an entry. */
  setMark(pkt: Packet, mark: number): void;
  /**
   * `ct original|reply saddr|daddr|proto-src|proto-dst|protocol`: field 0 saddr,
   * 1 daddr, 2 proto-src, 3 proto-dst, 4 protocol of the tuple of direction
   * `dir` (0 original, 1 reply); -1 without an entry.
   */
  tuple(pkt: Packet, dir: number, field: number): number;
  /** `ct expiration`: seconds left, -1 without an entry. */
  expiration(pkt: Packet): number;
  /** The packet's entry (for `ct count` lists), or null. */
  entry(pkt: Packet): object | null;
  /** Whether an entry `entry` returned is still tracked (not expired or deleted). */
  alive(entry: object): boolean;
  /**
   * Conntrack runs only while something needs it, as Linux loads it on
   * demand: the ruleset says whether its rules use ct, NAT or notrack
   * (`who` names the user, so several can hold it).
   */
  setNeeded(who: string, on: boolean): void;
}

/** enum nf_nat_range flags (NF_NAT_RANGE_*). */
export const NAT_RANGE_MAP_IPS = 1;
export const NAT_RANGE_PROTO_SPECIFIED = 2;
export const NAT_RANGE_PROTO_RANDOM = 4;
export const NAT_RANGE_PERSISTENT = 8;
export const NAT_RANGE_PROTO_RANDOM_FULLY = 16;

/** What a nat statement asks for. */
export const NAT_SNAT = 0;
export const NAT_DNAT = 1;
export const NAT_MASQUERADE = 2;
export const NAT_REDIRECT = 3;

/** struct nf_nat_range2, for IPv4: addresses and ports in host order. */
export interface NatRange {
  flags: number;
  minAddr: number;
  maxAddr: number;
  minPort: number;
  maxPort: number;
}

/**
 * NAT (src/conntrack/nat.ts). Base chains of type nat are registered through
 * `registerChain`, not on the hooks: NAT runs them for the first packet of a
 * connection only (nf_nat_inet_fn) and applies the binding to every packet.
 */
export interface NatProvider {
  /**
   * A nat statement (`snat|dnat|masquerade|redirect`) for `pkt`'s new
   * connection; `range` may be reused by the caller after the call. Returns
   * false when the packet must be dropped (no address to masquerade to, no
   * free tuple), true when it is accepted (nat statements end the chain).
   */
  setup(pkt: Packet, kind: number, range: NatRange, inIf: Interface | null, outIf: Interface | null): boolean;
  registerChain(hook: 'prerouting' | 'input' | 'output' | 'postrouting', priority: number, fn: HookFn): () => void;
}

/**
 * Route lookups for `fib` expressions (src/ip/fib.ts answers them; the Stack
 * wires it in). Neither allocates.
 */
export interface FibProvider {
  /** inet_dev_addr_type: the RTN_* type of `addr` by table local, through `dev` when given. */
  addrType(addr: number, dev: Interface | null): number;
  /**
   * fib_lookup as nft_fib4_eval makes it: the device the route for `dst` leaves
   * through (null: no route, a reject route, a local destination); with `via`,
   * `via` when one of the route's paths uses it, else null.
   */
  routeDev(dst: number, src: number, iif: Interface | null, mark: number, tos: number, via: Interface | null): Interface | null;
}

/** `pkt.ct` of a packet a `notrack` statement marked. */
export const UNTRACKED: { readonly untracked: true } = { untracked: true };

/** The stack's side of the actions that need it. */
export interface NfEnv {
  now(): number;
  /** Uniform in [0, 1). */
  random(): number;
  rejectIcmp(pkt: Packet, type: number, code: number): void;
  rejectTcpReset(pkt: Packet, inIf: Interface | null): void;
  log(prefix: string, level: LogLevel, pkt: Packet, inIf: Interface | null, outIf: Interface | null): void;
  /**
   * Conntrack, once it exists. Until then (null) every tracked packet is seen
   * as the first of its flow: `ct state` new, `ct status` 0, `ct mark` 0,
   * `ct direction` original; a `notrack`ed packet's state is untracked.
   */
  ct: CtProvider | null;
  /** NAT, once it exists; while null, nat chains sit on the hooks like filter chains and nat statements are refused at compile time. */
  nat: NatProvider | null;
  /** Route lookups for `fib`; without them fib expressions are refused at compile time. */
  fib?: FibProvider | null;
}

/** Hook numbers (NF_INET_*), as Ctx.hook holds them. */
export const HOOK_NUM = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;

/** Per-evaluation state; one per nesting depth (a reject's reply is evaluated inside). */
export class Ctx {
  inIf: Interface | null = null;
  outIf: Interface | null = null;
  l3 = 0;
  /** Transport header offset, or -1 (not a first fragment, or truncated). */
  l4 = -1;
  proto = 0;
  /** IP datagram length as the buffer holds it. */
  len = 0;
  now = 0;
  /** The hook the base chain runs on (HOOK_NUM). */
  hook = 0;
  readonly stack = new Int32Array(2 * JUMP_STACK);

  setup(pkt: Packet, inIf: Interface | null, outIf: Interface | null, now: number): void {
    const b = pkt.buf;
    const l3 = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
    this.inIf = inIf;
    this.outIf = outIf;
    this.l3 = l3;
    this.now = now;
    this.len = pkt.end - l3;
    this.proto = b[l3 + 9];
    const hl = (b[l3] & 0x0f) << 2;
    const frag = ((b[l3 + 6] & 0x1f) << 8) | b[l3 + 7];
    this.l4 = frag === 0 && l3 + hl < pkt.end ? l3 + hl : -1;
  }
}

export type Op = (p: Packet, c: Ctx) => number;
type Loader = (p: Packet, c: Ctx) => number;

export class CompileError extends Error {}

export interface CompiledBase {
  chain: number;
  name: string;
  policy: number;
}

export interface CompiledTable {
  /** Rules of each chain, by chain index (the table's chain order). */
  readonly chains: Op[][];
  /** Per chain, the address test of each rule that starts with one (see `prefilter`). */
  readonly prefilters: ChainPrefilter[];
  readonly chainNames: string[];
  readonly bases: CompiledBase[];
  /** Anonymous (rule) counters: [packets, bytes] per slot. */
  readonly counters: Float64Array;
  /** `${ruleHandle}.${exprIndex}` -> slot. */
  readonly counterSlots: Map<string, number>;
  readonly named: Float64Array;
  readonly namedSlots: Map<string, number>;
  readonly stores: Map<string, SetStore>;
  /** Token buckets of `limit` expressions, by `${ruleHandle}.${exprIndex}`. */
  readonly limits: Map<string, LimitState>;
  /**
   * Base chain policy counters ([packets, bytes] per chain index): packets that
   * reached the policy, as nf_tables counts a base chain's stats (iptables -L
   * shows them on the chain line).
   */
  readonly policyCounters: Float64Array;
  /** Whether any rule needs conntrack (ct, notrack, nat) or a nat chain exists. */
  readonly needsCt: boolean;
}

export interface LimitState {
  tokens: number;
  last: number;
  max: number;
}

// ---------------------------------------------------------------- fields

function fieldBits(f: Field): number {
  switch (f.kind) {
    case 'payload':
      switch (f.proto) {
        case 'ip':
          return f.field === 'saddr' || f.field === 'daddr' ? 32 : f.field === 'length' || f.field === 'id' ? 16 : 8;
        case 'tcp':
          return f.field === 'sequence' || f.field === 'ackseq' ? 32 : f.field === 'flags' ? 8 : 16;
        case 'udp':
        case 'th':
          return 16;
        case 'icmp':
          return f.field === 'type' || f.field === 'code' ? 8 : 16;
      }
      break;
    case 'meta':
      return f.key === 'l4proto' || f.key === 'nfproto' || f.key === 'pkttype' ? 8 : f.key === 'protocol' ? 16 : 32;
    case 'ct':
      return f.key === 'direction' || f.key === 'protocol' ? 8 : f.key === 'proto-src' || f.key === 'proto-dst' ? 16 : 32;
    case 'numgen':
      return 32;
    case 'fib':
      // nft_fib_store_result: the present flag stores one byte.
      return f.present === true ? 8 : 32;
  }
}

function transport(proto: number, off: number, size: number, read: (b: Uint8Array, o: number) => number): Loader {
  return (p, c) => (c.proto === proto && c.l4 >= 0 && c.l4 + off + size <= p.end ? read(p.buf, c.l4 + off) : -1);
}

const u8 = (b: Uint8Array, o: number): number => b[o];

function loader(f: Field, env: NfEnv): Loader {
  switch (f.kind) {
    case 'payload':
      switch (f.proto) {
        case 'ip':
          switch (f.field) {
            case 'saddr':
              return (p, c) => getU32(p.buf, c.l3 + 12);
            case 'daddr':
              return (p, c) => getU32(p.buf, c.l3 + 16);
            case 'protocol':
              return (p, c) => p.buf[c.l3 + 9];
            case 'length':
              return (p, c) => getU16(p.buf, c.l3 + 2);
            case 'ttl':
              return (p, c) => p.buf[c.l3 + 8];
            case 'dscp':
              return (p, c) => p.buf[c.l3 + 1] >>> 2;
            case 'ecn':
              return (p, c) => p.buf[c.l3 + 1] & 3;
            case 'id':
              return (p, c) => getU16(p.buf, c.l3 + 4);
            case 'version':
              return (p, c) => p.buf[c.l3] >>> 4;
            case 'hdrlength':
              return (p, c) => p.buf[c.l3] & 0x0f;
          }
          break;
        case 'tcp':
          switch (f.field) {
            case 'sport':
              return transport(6, 0, 2, getU16);
            case 'dport':
              return transport(6, 2, 2, getU16);
            case 'sequence':
              return transport(6, 4, 4, getU32);
            case 'ackseq':
              return transport(6, 8, 4, getU32);
            case 'flags':
              return transport(6, 13, 1, u8);
            case 'window':
              return transport(6, 14, 2, getU16);
          }
          break;
        case 'udp':
          return transport(17, f.field === 'sport' ? 0 : f.field === 'dport' ? 2 : 4, 2, getU16);
        case 'th': {
          const off = f.field === 'sport' ? 0 : 2;
          return (p, c) => ((c.proto === 6 || c.proto === 17) && c.l4 >= 0 && c.l4 + off + 2 <= p.end ? getU16(p.buf, c.l4 + off) : -1);
        }
        case 'icmp':
          switch (f.field) {
            case 'type':
              return transport(1, 0, 1, u8);
            case 'code':
              return transport(1, 1, 1, u8);
            case 'id':
              return transport(1, 4, 2, getU16);
            case 'sequence':
              return transport(1, 6, 2, getU16);
          }
      }
      break;
    case 'meta':
      switch (f.key) {
        case 'l4proto':
          return (p, c) => c.proto;
        case 'protocol':
          return () => 0x0800;
        case 'nfproto':
          return () => NFPROTO_IPV4;
        case 'mark':
          return (p) => p.mark >>> 0;
        case 'length':
          return (p, c) => c.len;
        case 'pkttype':
          return (p, c) => {
            if (!p.linkBroadcast) return PKTTYPE_HOST;
            return p.buf[c.l3 + 16] >>> 4 === 0xe ? PKTTYPE_MULTICAST : PKTTYPE_BROADCAST;
          };
        case 'iif':
          return (p, c) => (c.inIf === null ? 0 : c.inIf.index);
        case 'oif':
          return (p, c) => (c.outIf === null ? 0 : c.outIf.index);
      }
      break;
    case 'ct':
      switch (f.key) {
        case 'state':
          return (p) => (p.ct === UNTRACKED ? CT_STATE_UNTRACKED : env.ct === null ? CT_STATE_NEW : env.ct.state(p));
        case 'status':
          return (p) => (p.ct === UNTRACKED ? -1 : env.ct === null ? 0 : env.ct.status(p));
        case 'mark':
          return (p) => (p.ct === UNTRACKED ? -1 : env.ct === null ? 0 : env.ct.mark(p));
        case 'direction':
          return (p) => (p.ct === UNTRACKED ? -1 : env.ct === null ? CT_DIR_ORIGINAL : env.ct.direction(p));
        case 'expiration':
          // nft_ct reports the time left in ms; conntrack keeps seconds.
          return (p) => {
            if (p.ct === UNTRACKED || env.ct === null) return -1;
            const s = env.ct.expiration(p);
            return s < 0 ? -1 : s * 1000;
          };
        default: {
          // The tuple: field 0 saddr, 1 daddr, 2 proto-src, 3 proto-dst, 4 protocol.
          const field = CT_TUPLE_FIELD[f.key];
          const dir = f.dir === 'reply' ? 1 : 0;
          return (p) => (p.ct === UNTRACKED || env.ct === null ? -1 : env.ct.tuple(p, dir, field));
        }
      }
    case 'fib':
      return fibLoader(f, env);
    case 'numgen': {
      const mod = f.mod;
      const offset = f.offset ?? 0;
      if (!Number.isInteger(mod) || mod < 1) throw new CompileError(`numgen mod must be a positive integer, not ${mod}`);
      if (f.mode === 'random') return () => Math.floor(env.random() * mod) + offset;
      let n = 0;
      return () => {
        const v = n;
        n = n + 1 === mod ? 0 : n + 1;
        return v + offset;
      };
    }
  }
  throw new CompileError(`unknown field ${JSON.stringify(f)}`);
}

// ---------------------------------------------------------------- fib (nft_fib.c, nft_fib_ipv4.c)

/** Which hooks a fib expression may run on (nft_fib_validate, as this kernel line has it), as a HOOK_NUM bit mask. */
export function fibHooks(result: 'oif' | 'oifname' | 'type', flags: readonly FibFlag[]): number {
  const b = (h: keyof typeof HOOK_NUM): number => 1 << HOOK_NUM[h];
  if (result !== 'type') return b('prerouting') | b('input') | b('forward');
  if (flags.includes('iif')) return b('prerouting') | b('input') | b('forward');
  if (flags.includes('oif')) return b('output') | b('postrouting') | b('forward');
  return 0x1f;
}

/** The error the kernel gives a fib expression on a hook it may not run on (nft_chain_validate_hooks: EOPNOTSUPP). */
export const FIB_HOOK_ERROR = 'Could not process rule: Operation not supported';

/** get_saddr: no route is looked up from a multicast, limited broadcast or zero-network source. */
function fibSaddr(a: number): number {
  return a >>> 28 === 0xe || a === 0xffffffff || a >>> 24 === 0 ? 0 : a;
}

/**
 * nft_fib4_eval: the device the packet's route goes through, or null.
 * daddr: the route to the destination; saddr: the route back to the source
 * (addresses swapped). iif/oif: the answer must be that device. mark: the
 * packet's mark in the lookup.
 */
function fibOutDev(fib: FibProvider, p: Packet, c: Ctx, daddr: boolean, iif: boolean, oif: boolean, mark: boolean): Interface | null {
  const via = oif ? c.outIf : iif ? c.inIf : null;
  // nft_fib_is_loopback: a datagram looped back to us is taken to be from its device.
  if (c.hook === HOOK_NUM.prerouting && p.loopback) return c.inIf;
  const b = p.buf;
  const l3 = c.l3;
  const s = getU32(b, l3 + 12);
  const d = getU32(b, l3 + 16);
  // From 0.0.0.0/8 to 255.255.255.255 or 224.0.0.0/24 (DHCP, IGMP): the device it is on.
  if (s >>> 24 === 0 && (d === 0xffffffff || (d & 0xffffff00) === 0xe0000000)) return c.inIf ?? c.outIf;
  const m = mark ? p.mark >>> 0 : 0;
  // DSCP_BITS: the TOS byte without ECN.
  const tos = b[l3 + 1] & 0xfc;
  if (daddr) return fib.routeDev(d, fibSaddr(s), null, m, tos, via);
  // The way back: in forward, it would come in through the device this one leaves by.
  return fib.routeDev(s, fibSaddr(d), iif && c.hook === HOOK_NUM.forward ? c.outIf : null, m, tos, via);
}

function fibLoader(f: Extract<Field, { kind: 'fib' }>, env: NfEnv): Loader {
  const fib = env.fib;
  if (fib === undefined || fib === null) throw new CompileError('fib: this stack has no routing');
  const daddr = f.flags.includes('daddr');
  const iif = f.flags.includes('iif');
  const oif = f.flags.includes('oif');
  const mark = f.flags.includes('mark');
  if (f.result === 'type') {
    const off = daddr ? 16 : 12;
    // nft_fib4_eval_type: the type of the address, on the input or output device.
    if (iif) return (p, c) => fib.addrType(getU32(p.buf, c.l3 + off), c.inIf);
    if (oif) return (p, c) => fib.addrType(getU32(p.buf, c.l3 + off), c.outIf);
    return (p, c) => fib.addrType(getU32(p.buf, c.l3 + off), null);
  }
  if (f.present === true) return (p, c) => (fibOutDev(fib, p, c, daddr, iif, oif, mark) === null ? 0 : 1);
  return (p, c) => {
    const dev = fibOutDev(fib, p, c, daddr, iif, oif, mark);
    return dev === null ? 0 : dev.index;
  };
}

/** `fib FLAGS oifname ...`: the device's name, "" for none. */
function fibNameLoader(flags: readonly FibFlag[], env: NfEnv): (p: Packet, c: Ctx) => string {
  const fib = env.fib;
  if (fib === undefined || fib === null) throw new CompileError('fib: this stack has no routing');
  const daddr = flags.includes('daddr');
  const iif = flags.includes('iif');
  const oif = flags.includes('oif');
  const mark = flags.includes('mark');
  return (p, c) => {
    const dev = fibOutDev(fib, p, c, daddr, iif, oif, mark);
    return dev === null ? '' : dev.name;
  };
}

function keyFields(k: KeyExpr): Field[] {
  return k.kind === 'concat' ? k.fields : [k];
}

/**
 * A loader for a key packed as `store` packs it: one number per group of fields.
 * One group: returns the packed key. Several: fills `scratch` and returns 0.
 * Returns -1 when a field is absent.
 */
function keyLoader(k: KeyExpr, store: SetStore, env: NfEnv, scratch: Float64Array): Loader {
  const fields = keyFields(k);
  if (fields.length !== store.widths.length) throw new CompileError(`key has ${fields.length} fields, the set ${store.widths.length}`);
  const lds = fields.map((f, i) => {
    if (fieldBits(f) > store.widths[i]) throw new CompileError(`key field ${i + 1} is wider than the set's type`);
    return loader(f, env);
  });
  if (lds.length === 1) return lds[0];
  const groups = store.groups;
  const mults = store.widths.map((w) => 2 ** w);
  const pack = (p: Packet, c: Ctx, g: number): number => {
    const from = groups[g];
    const to = g + 1 < groups.length ? groups[g + 1] : lds.length;
    let v = 0;
    for (let i = from; i < to; i++) {
      const x = lds[i](p, c);
      if (x < 0) return -1;
      v = v * mults[i] + x;
    }
    return v;
  };
  if (groups.length === 1) return (p, c) => pack(p, c, 0);
  return (p, c) => {
    for (let g = 0; g < groups.length; g++) {
      const v = pack(p, c, g);
      if (v < 0) return -1;
      scratch[g] = v;
    }
    return 0;
  };
}

/** Looks the packet's key up: the entry, null if not in the set, undefined if the packet has no such key. */
function lookupFn(store: SetStore, ld: Loader, scratch: Float64Array): (p: Packet, c: Ctx) => SetEntry | null | undefined {
  if (store.groupCount === 1) {
    return (p, c) => {
      const k = ld(p, c);
      return k < 0 ? undefined : store.lookup(k, c.now);
    };
  }
  return (p, c) => (ld(p, c) < 0 ? undefined : store.lookupGroups(scratch, c.now));
}

const CT_TUPLE_FIELD: Record<string, number> = { saddr: 0, daddr: 1, 'proto-src': 2, 'proto-dst': 3, protocol: 4 };

/** Which hooks each nat statement may run from (nft_nat_validate, nft_masq_validate, nft_redir_validate). */
const NAT_HOOKS: Record<NatExpr['type'], readonly string[]> = {
  snat: ['postrouting', 'input'],
  masquerade: ['postrouting'],
  dnat: ['prerouting', 'output'],
  redirect: ['prerouting', 'output'],
};

/** The error the kernel gives a nat statement outside a nat chain on one of its hooks (EOPNOTSUPP). */
export const NAT_HOOK_ERROR = 'Could not process rule: Operation not supported';

/** Whether a nat statement may sit in a chain of this type on this hook. */
export function natAllowed(type: NatExpr['type'], base: { type: string; hook: string }): boolean {
  return base.type === 'nat' && NAT_HOOKS[type].includes(base.hook);
}

/** The hook masks (fibHooks) of the fib expressions in `e`, pushed onto `out`. */
function fibMasks(e: Expr, out: number[]): void {
  const key = (k: KeyExpr): void => {
    for (const f of keyFields(k)) if (f.kind === 'fib') out.push(fibHooks(f.result, f.flags));
  };
  switch (e.kind) {
    case 'match':
      return key(e.left);
    case 'fib-name':
      out.push(fibHooks('oifname', e.flags));
      return;
    case 'vmap':
    case 'set-add':
      return key(e.key);
    case 'meta-set':
    case 'ct-set':
      if (typeof e.value !== 'number') key(e.value.kind === 'field' ? e.value.field : e.value.key);
      return;
    case 'nat':
      if (e.addrMap !== undefined) key(e.addrMap.key);
      return;
    case 'xt':
      for (const x of e.exprs) fibMasks(x, out);
      return;
  }
}

/** Whether an expression needs conntrack (ct matches and statements, notrack, nat). */
export function usesConntrack(e: Expr): boolean {
  switch (e.kind) {
    case 'match':
      return keyFields(e.left).some((f) => f.kind === 'ct');
    case 'vmap':
      return keyFields(e.key).some((f) => f.kind === 'ct');
    case 'meta-set':
      return typeof e.value !== 'number' && (e.value.kind === 'field' ? e.value.field.kind === 'ct' : keyFields(e.value.key).some((f) => f.kind === 'ct'));
    case 'ct-set':
    case 'ct-state-nat':
    case 'connmark':
    case 'connlimit':
    case 'notrack':
    case 'nat':
      return true;
    case 'set-add':
      return e.connlimit !== undefined || keyFields(e.key).some((f) => f.kind === 'ct');
    case 'xt':
      return e.exprs.some(usesConntrack);
    default:
      return false;
  }
}

/**
 * nft_connlimit's list: the connections a rule (or a set element) has
 * counted, dropped once conntrack no longer tracks them.
 */
class ConnList {
  private readonly entries = new Set<object>();

  /** Counts the packet's connection (if new to the list) and returns how many are alive. */
  count(env: NfEnv, p: Packet): number {
    const ct = env.ct;
    if (ct === null) return this.entries.size;
    const e = ct.entry(p);
    if (e !== null && !this.entries.has(e)) {
      // As nf_conncount_add: stale entries go when a connection is added.
      for (const x of this.entries) if (!ct.alive(x)) this.entries.delete(x);
      this.entries.add(e);
    }
    return this.entries.size;
  }
}

// ---------------------------------------------------------------- compile a table

const UNIT_MS: Record<TimeUnit, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000, week: 604_800_000 };

export function verdictCode(v: VerdictAst, chainIndex: (name: string) => number): number {
  switch (v.kind) {
    case 'accept':
      return V_ACCEPT;
    case 'drop':
      return V_DROP;
    case 'continue':
      return CONT;
    case 'return':
      return V_RETURN;
    case 'jump':
      return JUMP_BASE + 2 * chainIndex(v.chain);
    case 'goto':
      return JUMP_BASE + 2 * chainIndex(v.chain) + 1;
  }
}

/** Builds a set's store from its declaration and elements. */
export function buildStore(s: NamedSet, now: number, chainIndex: (name: string) => number): SetStore {
  if (s.type.length === 0) throw new CompileError(`set ${s.name} has no type`);
  const widths = s.type.map((t) => KEY_BITS[t]);
  const mapData = (d: VerdictAst | number | undefined): number => {
    if (s.map === undefined) return 0;
    if (d === undefined) throw new CompileError(`map ${s.name}: element without data`);
    if (s.map === 'verdict') {
      if (typeof d === 'number') throw new CompileError(`map ${s.name}: data must be a verdict`);
      return verdictCode(d, chainIndex);
    }
    if (typeof d !== 'number') throw new CompileError(`map ${s.name}: data must be a number`);
    return d;
  };
  try {
    const store = new SetStore(widths, s.flags?.interval === true, s.timeoutMs ?? 0, s.size ?? 65536, mapData);
    for (const e of s.elements) {
      if (e.timeoutMs !== undefined && s.flags?.timeout !== true && s.timeoutMs === undefined)
        throw new CompileError(`set ${s.name}: element timeout needs the timeout flag`);
      store.add(e, now, false);
    }
    return store;
  } catch (err) {
    if (err instanceof SetError) throw new CompileError(`set ${s.name}: ${err.message}`);
    throw err;
  }
}

function cmpOp(ld: Loader, op: CmpOp, k: number): Op {
  switch (op) {
    case 'eq':
      return (p, c) => (ld(p, c) === k ? CONT : BREAK);
    case 'ne':
      return (p, c) => {
        const v = ld(p, c);
        return v >= 0 && v !== k ? CONT : BREAK;
      };
    case 'lt':
      return (p, c) => {
        const v = ld(p, c);
        return v >= 0 && v < k ? CONT : BREAK;
      };
    case 'gt':
      return (p, c) => (ld(p, c) > k ? CONT : BREAK);
    case 'le':
      return (p, c) => {
        const v = ld(p, c);
        return v >= 0 && v <= k ? CONT : BREAK;
      };
    case 'ge':
      return (p, c) => (ld(p, c) >= k ? CONT : BREAK);
  }
}

function rangeOp(ld: Loader, neg: boolean, lo: number, hi: number): Op {
  if (neg)
    return (p, c) => {
      const v = ld(p, c);
      return v >= 0 && (v < lo || v > hi) ? CONT : BREAK;
    };
  return (p, c) => {
    const v = ld(p, c);
    return v >= lo && v <= hi ? CONT : BREAK;
  };
}

function prefixRange(addr: number, len: number): [number, number] {
  if (!Number.isInteger(len) || len < 0 || len > 32) throw new CompileError(`bad prefix length ${len}`);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const lo = (addr & mask) >>> 0;
  return [lo, (lo | ~mask) >>> 0];
}

/** An anonymous set's declaration, from the key it is matched against. */
function anonSet(key: KeyExpr, elements: SetElement[], map: NamedSet['map']): NamedSet {
  const fields = keyFields(key);
  const interval = elements.some((e) => e.end !== undefined);
  const type = fields.map((f) => (fieldBits(f) === 32 ? 'ipv4_addr' : fieldBits(f) === 16 ? 'inet_service' : 'inet_proto') as NamedSet['type'][number]);
  return { name: '<anonymous>', handle: 0, type, map, flags: { interval }, elements };
}

export interface CompileInput {
  table: Table;
  env: NfEnv;
  now: number;
  /** The table as compiled before: its counters and set contents carry over. */
  old?: CompiledTable;
}

export function compileTable({ table, env, now, old }: CompileInput): CompiledTable {
  const where = `table ${table.family} ${table.name}`;
  const chainIdx = new Map<string, number>();
  table.chains.forEach((ch, i) => {
    if (chainIdx.has(ch.name)) throw new CompileError(`${where}: chain ${ch.name} defined twice`);
    chainIdx.set(ch.name, i);
  });
  const edges: number[][] = table.chains.map(() => []);
  let current = 0;
  const plainIndex = (name: string): number => {
    const i = chainIdx.get(name);
    if (i === undefined) throw new CompileError(`${where}: no chain ${name}`);
    if (table.chains[i].base !== undefined) throw new CompileError(`${where}: cannot jump to base chain ${name}`);
    return i;
  };
  /** As plainIndex, and records the edge for the loop check. */
  const chainIndex = (name: string): number => {
    const i = plainIndex(name);
    edges[current].push(i);
    return i;
  };
  const stores = new Map<string, SetStore>();
  for (const s of table.sets) {
    if (stores.has(s.name)) throw new CompileError(`${where}: set ${s.name} defined twice`);
    const store = buildStore(s, now, plainIndex);
    const prev = old?.stores.get(s.name);
    if (prev !== undefined && store.sameShape(prev)) store.carryOver(prev, now);
    stores.set(s.name, store);
  }

  const counterSlots = new Map<string, number>();
  const limits = new Map<string, LimitState>();
  const namedSlots = new Map<string, number>();
  table.counters.forEach((c, i) => {
    if (namedSlots.has(c.name)) throw new CompileError(`${where}: counter ${c.name} defined twice`);
    namedSlots.set(c.name, i);
  });
  const named = new Float64Array(2 * table.counters.length);
  table.counters.forEach((c, i) => {
    named[2 * i] = c.packets;
    named[2 * i + 1] = c.bytes;
  });
  let nCounters = 0;
  // Counters are created as rules are compiled; the array is filled in after, so ops index a holder.
  const counterHolder: { a: Float64Array } = { a: new Float64Array(0) };

  const setRef = (name: string): SetStore => {
    const s = stores.get(name);
    if (s === undefined) throw new CompileError(`${where}: no set ${name}`);
    return s;
  };
  const declOf = (name: string): NamedSet => table.sets.find((s) => s.name === name)!;
  /** The nat statements of each chain (checked against the hooks that reach it). */
  const natUse: NatExpr['type'][][] = table.chains.map(() => []);
  /** The hook masks of each chain's fib expressions (fibHooks). */
  const fibUse: number[][] = table.chains.map(() => []);
  let needsCt = table.chains.some((ch) => ch.base?.type === 'nat');

  /** A mark computed per packet (meta/ct mark set): the value, or -1 (the rule ends). */
  const markLoader = (val: MarkValue): Loader => {
    if (val.kind === 'field') {
      const ld = loader(val.field, env);
      const mask = (val.mask ?? 0xffffffff) >>> 0;
      const xor = (val.xor ?? 0) >>> 0;
      return (p, c) => {
        const x = ld(p, c);
        return x < 0 ? -1 : ((x & mask) ^ xor) >>> 0;
      };
    }
    let store: SetStore;
    if (val.map.kind === 'set') store = buildStore(anonSet(val.key, val.map.elements, 'mark'), now, chainIndex);
    else {
      const m = declOf(val.map.name)?.map;
      if (m === undefined || m === 'verdict') throw new CompileError(`${where}: @${val.map.name} is not a data map`);
      store = setRef(val.map.name);
    }
    const scratch = new Float64Array(store.groupCount);
    const look = lookupFn(store, keyLoader(val.key, store, env, scratch), scratch);
    return (p, c) => {
      const en = look(p, c);
      return en === null || en === undefined ? -1 : en.data >>> 0;
    };
  };

  const compileExpr = (e: Expr, rule: number, idx: number): Op => {
    switch (e.kind) {
      case 'match': {
        const r: Rhs = e.right;
        if (r.kind === 'set' || r.kind === 'setref') {
          if (e.op !== 'eq' && e.op !== 'ne') throw new CompileError(`${where}: a set takes == or !=`);
          if (r.kind === 'setref' && declOf(r.name)?.map !== undefined) throw new CompileError(`${where}: @${r.name} is a map`);
          const store = r.kind === 'set' ? buildStore(anonSet(e.left, r.elements, undefined), now, chainIndex) : setRef(r.name);
          const scratch = new Float64Array(store.groupCount);
          let ld = keyLoader(e.left, store, env, scratch);
          if (e.mask !== undefined) {
            if (e.left.kind === 'concat') throw new CompileError(`${where}: a mask on a concatenation`);
            const inner = ld;
            const mask = e.mask;
            ld = (p, c) => {
              const v = inner(p, c);
              return v < 0 ? -1 : (v & mask) >>> 0;
            };
          }
          const look = lookupFn(store, ld, scratch);
          if (e.op === 'eq')
            return (p, c) => {
              const en = look(p, c);
              return en !== null && en !== undefined ? CONT : BREAK;
            };
          return (p, c) => (look(p, c) === null ? CONT : BREAK);
        }
        if (e.left.kind === 'concat') throw new CompileError(`${where}: a concatenation is matched against a set`);
        let ld = loader(e.left, env);
        if (e.mask !== undefined) {
          const inner = ld;
          const mask = e.mask;
          ld = (p, c) => {
            const v = inner(p, c);
            return v < 0 ? -1 : (v & mask) >>> 0;
          };
        }
        const bits = fieldBits(e.left);
        const fits = (v: number): boolean => Number.isInteger(v) && v >= 0 && v < 2 ** bits;
        if (r.kind === 'value') {
          if (!fits(r.value)) throw new CompileError(`${where}: ${r.value} does not fit a ${bits}-bit field`);
          return cmpOp(ld, e.op, r.value);
        }
        if (e.op !== 'eq' && e.op !== 'ne') throw new CompileError(`${where}: a range or prefix takes == or !=`);
        if (r.kind === 'prefix' && bits !== 32) throw new CompileError(`${where}: a prefix needs a 32-bit field`);
        const [lo, hi] = r.kind === 'range' ? [r.lo, r.hi] : prefixRange(r.addr, r.len);
        if (!fits(lo) || !fits(hi)) throw new CompileError(`${where}: range ${lo}-${hi} does not fit a ${bits}-bit field`);
        if (hi < lo) throw new CompileError(`${where}: range ${lo}-${hi} is empty`);
        return rangeOp(ld, e.op === 'ne', lo, hi);
      }
      case 'fib-name':
      case 'ifname': {
        const fibName = e.kind === 'fib-name' ? fibNameLoader(e.flags, env) : null;
        const exact = new Set<string>();
        const prefixes: string[] = [];
        for (const n of e.names) {
          if (n.endsWith('*')) prefixes.push(n.slice(0, -1));
          else exact.add(n);
        }
        const inDir = e.kind === 'ifname' && e.dir === 'iifname';
        const hit = e.op === 'eq' ? CONT : BREAK;
        const miss = e.op === 'eq' ? BREAK : CONT;
        return (p, c) => {
          let name: string;
          if (fibName !== null) name = fibName(p, c);
          else {
            const i = inDir ? c.inIf : c.outIf;
            name = i === null ? '' : i.name;
          }
          if (exact.has(name)) return hit;
          for (let k = 0; k < prefixes.length; k++) if (name.startsWith(prefixes[k])) return hit;
          return miss;
        };
      }
      case 'limit': {
        if (!(e.rate > 0)) throw new CompileError(`${where}: limit rate must be positive`);
        const unitMs = UNIT_MS[e.unit];
        const bytes = e.per === 'bytes';
        const burst = e.burst ?? (bytes ? 0 : 5);
        // As nft_limit_init: a bucket of time refilled by elapsed time, holding
        // `burst` packets' worth (a packet limit), or (rate + burst) bytes' worth.
        const max = bytes ? (unitMs * (e.rate + burst)) / e.rate : (unitMs * burst) / e.rate;
        const pktCost = unitMs / e.rate;
        const byteCost = unitMs / e.rate;
        const over = e.over === true;
        const key = `${rule}.${idx}`;
        // The bucket carries over a commit that keeps the rule (and its limit).
        const prev = old?.limits.get(key);
        const st = prev !== undefined && prev.max === max ? prev : { tokens: max, last: now, max };
        limits.set(key, st);
        return (p, c) => {
          let t = st.tokens + (c.now - st.last);
          if (t > max) t = max;
          st.last = c.now;
          const cost = bytes ? byteCost * c.len : pktCost;
          if (t >= cost) {
            st.tokens = t - cost;
            return over ? BREAK : CONT;
          }
          st.tokens = t;
          return over ? CONT : BREAK;
        };
      }
      case 'verdict': {
        const v = verdictCode(e.verdict, chainIndex);
        return () => v;
      }
      case 'reject': {
        const w = e.with;
        if (w !== undefined && w.type === 'tcp-reset')
          return (p, c) => {
            if (c.proto === 6 && c.l4 >= 0) env.rejectTcpReset(p, c.inIf);
            return V_DROP;
          };
        const code = w === undefined ? 3 : w.code;
        return (p) => {
          env.rejectIcmp(p, 3, code);
          return V_DROP;
        };
      }
      case 'counter': {
        if (e.name !== undefined) {
          const slot = namedSlots.get(e.name);
          if (slot === undefined) throw new CompileError(`${where}: no counter ${e.name}`);
          return (p, c) => {
            named[2 * slot]++;
            named[2 * slot + 1] += c.len;
            return CONT;
          };
        }
        const slot = nCounters++;
        counterSlots.set(`${rule}.${idx}`, slot);
        const h = counterHolder;
        return (p, c) => {
          const a = h.a;
          a[2 * slot]++;
          a[2 * slot + 1] += c.len;
          return CONT;
        };
      }
      case 'log': {
        const prefix = e.prefix ?? '';
        const level = e.level ?? 'warn';
        return (p, c) => {
          env.log(prefix, level, p, c.inIf, c.outIf);
          return CONT;
        };
      }
      case 'meta-set':
      case 'ct-set': {
        const val = e.value;
        const ct = e.kind === 'ct-set';
        if (typeof val === 'number') {
          const v = val >>> 0;
          if (ct)
            return (p) => {
              if (env.ct !== null && p.ct !== UNTRACKED) env.ct.setMark(p, v);
              return CONT;
            };
          return (p) => {
            p.mark = v;
            return CONT;
          };
        }
        const ld = markLoader(val);
        if (ct)
          return (p, c) => {
            const x = ld(p, c);
            if (x < 0) return BREAK;
            if (env.ct !== null && p.ct !== UNTRACKED) env.ct.setMark(p, x);
            return CONT;
          };
        return (p, c) => {
          const x = ld(p, c);
          if (x < 0) return BREAK;
          p.mark = x;
          return CONT;
        };
      }
      case 'xt': {
        const ops = e.exprs.map((x, k) => compileExpr(x, rule, idx * 64 + k + 1_000_000));
        if (ops.length === 1) return ops[0];
        return (p, c) => {
          for (let i = 0; i < ops.length; i++) {
            const r = ops[i](p, c);
            if (r !== CONT) return r;
          }
          return CONT;
        };
      }
      case 'ct-state-nat': {
        const st = loader({ kind: 'ct', key: 'state' }, env);
        const stat = loader({ kind: 'ct', key: 'status' }, env);
        const states = e.states;
        const status = e.status;
        const hitCode = e.neg ? BREAK : CONT;
        const missCode = e.neg ? CONT : BREAK;
        return (p, c) => {
          const v = st(p, c);
          const s = stat(p, c);
          return (v > 0 && (v & states) !== 0) || (s > 0 && (s & status) !== 0) ? hitCode : missCode;
        };
      }
      case 'connmark': {
        const nfmask = e.nfmask >>> 0;
        const ctmask = e.ctmask >>> 0;
        // xt_CONNMARK: nothing happens to a packet without an entry.
        if (e.op === 'save')
          return (p) => {
            const ct = env.ct;
            if (ct === null || p.ct === UNTRACKED) return CONT;
            const m = ct.mark(p);
            if (m >= 0) ct.setMark(p, ((m & ~ctmask) ^ (p.mark & nfmask)) >>> 0);
            return CONT;
          };
        return (p) => {
          const ct = env.ct;
          if (ct === null || p.ct === UNTRACKED) return CONT;
          const m = ct.mark(p);
          if (m >= 0) p.mark = ((p.mark & ~nfmask) ^ (m & ctmask)) >>> 0;
          return CONT;
        };
      }
      case 'connlimit': {
        const list = new ConnList();
        const limit = e.count;
        const over = e.over === true;
        // nft_connlimit_do_eval: break when (count > limit) ^ over.
        return (p) => (list.count(env, p) > limit !== over ? BREAK : CONT);
      }
      case 'nat': {
        const nat = env.nat;
        if (nat === null) throw new CompileError(`${where}: ${e.type}: this stack has no NAT`);
        natUse[current].push(e.type);
        const kind = { snat: NAT_SNAT, dnat: NAT_DNAT, masquerade: NAT_MASQUERADE, redirect: NAT_REDIRECT }[e.type];
        let flags = 0;
        for (const f of e.flags ?? []) flags |= f === 'random' ? NAT_RANGE_PROTO_RANDOM : f === 'fully-random' ? NAT_RANGE_PROTO_RANDOM_FULLY : NAT_RANGE_PERSISTENT;
        if (e.port !== undefined) flags |= NAT_RANGE_PROTO_SPECIFIED;
        const minPort = e.port ?? 0;
        const maxPort = e.portEnd ?? minPort;
        if (minPort > 0xffff || maxPort > 0xffff || maxPort < minPort) throw new CompileError(`${where}: bad port range ${minPort}-${maxPort}`);
        // One range per statement, filled per packet (setup may not keep it).
        const range: NatRange = { flags: 0, minAddr: 0, maxAddr: 0, minPort, maxPort };
        if (e.addrMap !== undefined) {
          const m = e.addrMap;
          let store: SetStore;
          const want = m.withPort === true ? 'ipv4_addr . inet_service' : 'ipv4_addr';
          if (m.map.kind === 'set') store = buildStore(anonSet(m.key, m.map.elements, want), now, chainIndex);
          else {
            const d = declOf(m.map.name)?.map;
            if (d !== want) throw new CompileError(`${where}: @${m.map.name} is not a map to ${want}`);
            store = setRef(m.map.name);
          }
          if (m.withPort === true) {
            // Data packed as addr * 65536 + port.
            const fl = flags | NAT_RANGE_MAP_IPS | NAT_RANGE_PROTO_SPECIFIED;
            const scratch = new Float64Array(store.groupCount);
            const look = lookupFn(store, keyLoader(m.key, store, env, scratch), scratch);
            return (p, c) => {
              const en = look(p, c);
              if (en === null || en === undefined) return BREAK;
              const a = Math.floor(en.data / 65536) >>> 0;
              const port = en.data % 65536;
              range.flags = fl;
              range.minAddr = a;
              range.maxAddr = a;
              range.minPort = port;
              range.maxPort = port;
              return nat.setup(p, kind, range, c.inIf, c.outIf) ? V_ACCEPT : V_DROP;
            };
          }
          const scratch = new Float64Array(store.groupCount);
          const look = lookupFn(store, keyLoader(m.key, store, env, scratch), scratch);
          const fl = flags | NAT_RANGE_MAP_IPS;
          return (p, c) => {
            const en = look(p, c);
            if (en === null || en === undefined) return BREAK;
            range.flags = fl;
            range.minAddr = en.data >>> 0;
            range.maxAddr = en.data >>> 0;
            range.minPort = minPort;
            range.maxPort = maxPort;
            return nat.setup(p, kind, range, c.inIf, c.outIf) ? V_ACCEPT : V_DROP;
          };
        }
        const minAddr = (e.addr ?? 0) >>> 0;
        const maxAddr = (e.addrEnd ?? minAddr) >>> 0;
        if (maxAddr < minAddr) throw new CompileError(`${where}: bad address range`);
        if (e.addr !== undefined) flags |= NAT_RANGE_MAP_IPS;
        const fl = flags;
        return (p, c) => {
          range.flags = fl;
          range.minAddr = minAddr;
          range.maxAddr = maxAddr;
          range.minPort = minPort;
          range.maxPort = maxPort;
          return nat.setup(p, kind, range, c.inIf, c.outIf) ? V_ACCEPT : V_DROP;
        };
      }
      case 'payload-set': {
        const v = e.value;
        if (e.field === 'ttl') {
          if (!(v >= 0 && v <= 255)) throw new CompileError(`${where}: ttl ${v} out of range`);
          return (p, c) => {
            p.buf[c.l3 + 8] = v;
            fillIpv4Checksum(p.buf, c.l3, (p.buf[c.l3] & 0x0f) << 2);
            return CONT;
          };
        }
        if (!(v >= 0 && v <= 63)) throw new CompileError(`${where}: dscp ${v} out of range`);
        return (p, c) => {
          p.buf[c.l3 + 1] = (v << 2) | (p.buf[c.l3 + 1] & 3);
          fillIpv4Checksum(p.buf, c.l3, (p.buf[c.l3] & 0x0f) << 2);
          return CONT;
        };
      }
      case 'notrack':
        return (p) => {
          p.ct = UNTRACKED;
          return CONT;
        };
      case 'vmap': {
        let store: SetStore;
        if (e.map.kind === 'set') store = buildStore(anonSet(e.key, e.map.elements, 'verdict'), now, chainIndex);
        else {
          if (declOf(e.map.name)?.map !== 'verdict') throw new CompileError(`${where}: @${e.map.name} is not a verdict map`);
          store = setRef(e.map.name);
          // Record the map's jump targets for the loop check.
          for (const el of declOf(e.map.name).elements) if (typeof el.data === 'object') verdictCode(el.data, chainIndex);
        }
        const scratch = new Float64Array(store.groupCount);
        const look = lookupFn(store, keyLoader(e.key, store, env, scratch), scratch);
        return (p, c) => {
          const en = look(p, c);
          return en === null || en === undefined ? CONT : en.data;
        };
      }
      case 'set-add': {
        const store = setRef(e.set);
        const decl = declOf(e.set);
        if (decl.map !== undefined) throw new CompileError(`${where}: cannot add to map @${e.set} from a rule`);
        if (decl.flags?.constant === true) throw new CompileError(`${where}: @${e.set} is constant`);
        const fields = keyFields(e.key);
        const lds = fields.map((f) => loader(f, env));
        const scratch = new Float64Array(store.groupCount);
        const look = lookupFn(store, keyLoader(e.key, store, env, scratch), scratch);
        const timeout = e.timeoutMs ?? store.defaultTimeoutMs;
        const update = e.op === 'update';
        if (e.connlimit !== undefined) {
          // `add @s { ip saddr ct count over N }`: a connlimit list per element.
          const lists = new WeakMap<SetEntry, ConnList>();
          const limit = e.connlimit.count;
          const over = e.connlimit.over === true;
          const counted = (en: SetEntry, p: Packet): number => {
            let l = lists.get(en);
            if (l === undefined) lists.set(en, (l = new ConnList()));
            return l.count(env, p) > limit !== over ? BREAK : CONT;
          };
          return (p, c) => {
            let en = look(p, c);
            if (en === undefined) return BREAK;
            if (en === null) {
              const key: number[] = [];
              for (let i = 0; i < lds.length; i++) {
                const v = lds[i](p, c);
                if (v < 0) return BREAK;
                key.push(v);
              }
              try {
                store.add({ key: key.length === 1 ? key[0] : key }, c.now, true, timeout);
              } catch {
                return BREAK;
              }
              en = look(p, c);
              if (en === null || en === undefined) return BREAK;
            } else if (update && timeout > 0) en.expires = c.now + timeout;
            return counted(en, p);
          };
        }
        return (p, c) => {
          const en = look(p, c);
          if (en === undefined) return BREAK;
          if (en !== null) {
            if (update && timeout > 0) en.expires = c.now + timeout;
            return CONT;
          }
          // A new element: the one place a packet allocates (the element itself).
          const key: number[] = [];
          for (let i = 0; i < lds.length; i++) {
            const v = lds[i](p, c);
            if (v < 0) return BREAK;
            key.push(v);
          }
          try {
            store.add({ key: key.length === 1 ? key[0] : key }, c.now, true, timeout);
          } catch {
            return BREAK;
          }
          return CONT;
        };
      }
    }
  };

  const prefilters = table.chains.map((ch: Chain) => prefilter(ch));
  const chains: Op[][] = table.chains.map((ch: Chain, ci) => {
    current = ci;
    return ch.rules.map((rule) => {
      if (!needsCt && rule.exprs.some(usesConntrack)) needsCt = true;
      for (const e of rule.exprs) fibMasks(e, fibUse[ci]);
      const ops = rule.exprs.map((e, i) => compileExpr(e, rule.handle, i));
      if (ops.length === 0) return () => CONT;
      if (ops.length === 1) return ops[0];
      if (ops.length === 2) {
        const [a, b] = ops;
        return (p: Packet, c: Ctx) => {
          const r = a(p, c);
          return r !== CONT ? r : b(p, c);
        };
      }
      return (p: Packet, c: Ctx) => {
        for (let i = 0; i < ops.length; i++) {
          const r = ops[i](p, c);
          if (r !== CONT) return r;
        }
        return CONT;
      };
    });
  });
  counterHolder.a = new Float64Array(2 * nCounters);
  if (old !== undefined) {
    for (const [k, slot] of counterSlots) {
      const o = old.counterSlots.get(k);
      if (o === undefined) continue;
      counterHolder.a[2 * slot] = old.counters[2 * o];
      counterHolder.a[2 * slot + 1] = old.counters[2 * o + 1];
    }
    for (const [k, slot] of namedSlots) {
      const o = old.namedSlots.get(k);
      if (o === undefined) continue;
      named[2 * slot] = old.named[2 * o];
      named[2 * slot + 1] = old.named[2 * o + 1];
    }
  }

  // nft refuses rulesets whose jumps loop.
  const state = new Uint8Array(table.chains.length);
  const visit = (i: number): void => {
    if (state[i] === 1) throw new CompileError(`${where}: chain ${table.chains[i].name} jumps back into itself`);
    if (state[i] === 2) return;
    state[i] = 1;
    for (const j of edges[i]) visit(j);
    state[i] = 2;
  };
  table.chains.forEach((_, i) => visit(i));

  // A nat statement may only run from a nat chain on its hooks, a fib expression on its hooks (the kernel's validate, also through jumps).
  table.chains.forEach((ch, i) => {
    if (ch.base === undefined) return;
    const seen = new Uint8Array(table.chains.length);
    const walk = (j: number): void => {
      if (seen[j] === 1) return;
      seen[j] = 1;
      for (const t of natUse[j]) if (!natAllowed(t, ch.base!)) throw new CompileError(NAT_HOOK_ERROR);
      for (const m of fibUse[j]) if ((m & (1 << HOOK_NUM[ch.base!.hook])) === 0) throw new CompileError(FIB_HOOK_ERROR);
      for (const k of edges[j]) walk(k);
    };
    walk(i);
  });

  const policyCounters = new Float64Array(2 * table.chains.length);
  if (old !== undefined)
    table.chains.forEach((ch, i) => {
      const o = old.chainNames.indexOf(ch.name);
      if (o < 0 || ch.base === undefined) return;
      policyCounters[2 * i] = old.policyCounters[2 * o];
      policyCounters[2 * i + 1] = old.policyCounters[2 * o + 1];
    });

  const bases: CompiledBase[] = [];
  table.chains.forEach((ch, i) => {
    if (ch.base !== undefined) bases.push({ chain: i, name: ch.name, policy: ch.base.policy === 'drop' ? V_DROP : V_ACCEPT });
  });
  return {
    chains,
    prefilters,
    chainNames: table.chains.map((c) => c.name),
    bases,
    counters: counterHolder.a,
    counterSlots,
    named,
    namedSlots,
    stores,
    limits,
    policyCounters,
    needsCt,
  };
}

/**
 * The rules of a chain whose first expression tests a source or destination
 * address (`ip saddr|daddr` == an address, a prefix or a range): the header
 * offset of the word (12 or 16; 0 for a rule without such a test) and its
 * bounds. runChain passes over such a rule when the packet's address is out of
 * bounds without calling the rule's closure, so a long list of address rules is
 * scanned in three contiguous arrays rather than through thousands of closures
 * and their contexts (the match fails there exactly as its op would).
 */
export interface ChainPrefilter {
  readonly off: Uint8Array;
  readonly lo: Float64Array;
  readonly hi: Float64Array;
}

function prefilter(ch: Chain): ChainPrefilter {
  const n = ch.rules.length;
  const f = { off: new Uint8Array(n), lo: new Float64Array(n), hi: new Float64Array(n) };
  ch.rules.forEach((rule, i) => {
    const e = rule.exprs[0];
    if (e === undefined || e.kind !== 'match' || e.op !== 'eq' || e.mask !== undefined) return;
    const l = e.left;
    if (l.kind !== 'payload' || l.proto !== 'ip' || (l.field !== 'saddr' && l.field !== 'daddr')) return;
    const r = e.right;
    let lo: number;
    let hi: number;
    if (r.kind === 'value') lo = hi = r.value;
    else if (r.kind === 'range') [lo, hi] = [r.lo, r.hi];
    else if (r.kind === 'prefix') [lo, hi] = prefixRange(r.addr, r.len);
    else return;
    f.off[i] = l.field === 'saddr' ? 12 : 16;
    f.lo[i] = lo;
    f.hi[i] = hi;
  });
  return f;
}

/**
 * Runs base chain `base` of `t` over a packet (the context already set up);
 * returns V_ACCEPT or V_DROP, following nft's jump/goto/return semantics.
 */
export function runChain(t: CompiledTable, base: number, policy: number, p: Packet, c: Ctx): number {
  const chains = t.chains;
  const st = c.stack;
  let chain = base;
  let ri = 0;
  let sp = 0;
  const buf = p.buf;
  const l3 = c.l3;
  let saddr = getU32(buf, l3 + 12);
  let daddr = getU32(buf, l3 + 16);
  for (;;) {
    let rules = chains[chain];
    let pre = t.prefilters[chain];
    while (ri < rules.length) {
      const off = pre.off[ri];
      if (off !== 0) {
        const w = off === 12 ? saddr : daddr;
        if (w < pre.lo[ri] || w > pre.hi[ri]) {
          ri++;
          continue;
        }
      }
      const v = rules[ri++](p, c);
      // The rule may have rewritten an address (a payload statement): the prefilter reads them anew.
      saddr = getU32(buf, l3 + 12);
      daddr = getU32(buf, l3 + 16);
      if (v <= BREAK) continue;
      if (v === V_RETURN) break;
      if (v >= JUMP_BASE) {
        if ((v & 1) === 0) {
          if (sp >= st.length) return V_DROP;
          st[sp++] = chain;
          st[sp++] = ri;
        }
        chain = (v - JUMP_BASE) >> 1;
        ri = 0;
        rules = chains[chain];
        pre = t.prefilters[chain];
        continue;
      }
      return v;
    }
    if (sp === 0) {
      // nft_do_chain: the base chain's stats count the packets its policy decides.
      const pc = t.policyCounters;
      pc[2 * base]++;
      pc[2 * base + 1] += c.len;
      return policy;
    }
    ri = st[--sp];
    chain = st[--sp];
  }
}
