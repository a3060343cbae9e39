import { CHECKSUM_PARTIAL } from '../packet/packet.js';
import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';
import { VERDICT_ACCEPT, VERDICT_DROP, type HookFn, type Hooks, type Verdict } from '../ip/hooks.js';
import {
  NAT_DNAT,
  NAT_MASQUERADE,
  NAT_RANGE_MAP_IPS,
  NAT_RANGE_PERSISTENT,
  NAT_RANGE_PROTO_RANDOM,
  NAT_RANGE_PROTO_RANDOM_FULLY,
  NAT_RANGE_PROTO_SPECIFIED,
  NAT_REDIRECT,
  NAT_SNAT,
  type NatProvider,
  type NatRange,
} from '../netfilter/compile.js';
import {
  CtEntry,
  IP_CT_IS_REPLY,
  IP_CT_NEW,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
  IPS_CONFIRMED,
  IPS_DST_NAT,
  IPS_DST_NAT_DONE,
  IPS_DYING,
  IPS_FIXED_TIMEOUT,
  IPS_NAT_DONE_MASK,
  IPS_NAT_MASK,
  IPS_SRC_NAT,
  IPS_SRC_NAT_DONE,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_TIME_WAIT,
} from './entry.js';
import { MANIP_DST, MANIP_SRC, icmpChecksumOk, manipIcmpError, manipIpv4, natHasPorts } from './nat-mangle.js';

/**
 * NAT, as Linux's nf_nat_core.c and nf_nat_proto.c: every new connection is
 * bound once per manip type (source, destination) on its first packet, by a
 * nat rule or by a null binding, and the binding (the entry's reply tuple) is
 * applied to each of its packets in both directions.
 */

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const ICMP_REDIRECT = 5;

/** include/uapi/linux/netfilter/nf_nat.h: NF_NAT_RANGE_PROTO_RANDOM_ALL. */
const RANGE_RANDOM_ALL = NAT_RANGE_PROTO_RANDOM | NAT_RANGE_PROTO_RANDOM_FULLY;
/** nf_nat_core.c: NF_NAT_MAX_ATTEMPTS, and NF_NAT_HARDER_THRESH (the last tries may evict a closing entry). */
const MAX_ATTEMPTS = 128;
const HARDER_THRESH = MAX_ATTEMPTS / 4;

/** Hook numbers, in the order of nf_nat_ipv4_ops. */
export const NAT_HOOK_PREROUTING = 0;
export const NAT_HOOK_POSTROUTING = 1;
export const NAT_HOOK_OUTPUT = 2;
export const NAT_HOOK_INPUT = 3;
const HOOK_NAMES = ['prerouting', 'postrouting', 'output', 'input'] as const;
/** nf_nat_ipv4_ops priorities: NF_IP_PRI_NAT_DST (-100), NF_IP_PRI_NAT_SRC (100). */
const HOOK_PRIORITY = [-100, 100, -100, 100];

/** What NAT needs of conntrack (src/conntrack/conntrack.ts provides it). */
export interface NatConntrack {
  /** nf_conntrack_tuple_taken: a confirmed entry other than `ignore` has this tuple in either direction. */
  tupleTaken(proto: number, src: number, dst: number, sport: number, dport: number, ignore: CtEntry | null): boolean;
  /** The confirmed entry with this tuple in either direction, or null; `foundDir` tells which. */
  find(proto: number, src: number, dst: number, sport: number, dport: number): CtEntry | null;
  readonly foundDir: number;
  /** nf_conntrack_alter_reply, for an entry not confirmed yet. */
  setReply(e: CtEntry, rs: number, rd: number, rsp: number, rdp: number): void;
  setNeeded(who: string, on: boolean): void;
  forEach(fn: (e: CtEntry) => void): void;
  delete(e: CtEntry): void;
  onDestroy: ((e: CtEntry) => void) | null;
}

export interface NatDeps {
  ct: NatConntrack;
  hooks: Hooks;
  now(): number;
  /** Uniform in [0, 1). */
  random(): number;
  /** The address masquerade uses: the out interface's address for reaching `dst` (inet_select_addr), 0 if none. */
  masqueradeAddress(outIf: Interface, dst: number): number;
  /** The address REDIRECT uses: the in interface's primary address, 127.0.0.1 for locally generated packets (inIf null). */
  redirectAddress(inIf: Interface | null): number;
}

/** Why NAT dropped packets. */
export interface NatStats {
  /** masquerade with no address on the out interface ("ate my IP address"). */
  masqNoAddress: number;
  /** redirect with no address on the in interface. */
  redirectNoAddress: number;
  /** A nat statement in a hook where its manip type does not belong, or a second binding. */
  badSetup: number;
  /** A transport header too short to rewrite. */
  truncated: number;
  /** An ICMP error about a NATed flow with a bad checksum, a short quote, or a redirect. */
  icmpError: number;
  /** A masqueraded connection whose packets now leave by another interface (nf_nat_oif_changed). */
  oifChanged: number;
}

interface ChainReg {
  prio: number;
  fn: HookFn;
}

/**
 * jhash2 of one 32-bit word (include/linux/jhash.h, Bob Jenkins' lookup3).
 * `k` and `initval` are the words as Linux reads them on a little-endian host
 * (an address in network order read as a host u32: byte-swapped), so the pick
 * among several NAT addresses is the one Linux makes on x86.
 */
export function jhash1(k: number, initval: number): number {
  let a = (0xdeadbeef + 4 + initval) >>> 0;
  let b = a;
  let c = a;
  a = (a + k) >>> 0;
  // __jhash_final
  c ^= b; c = (c - rol32(b, 14)) >>> 0;
  a ^= c; a = (a - rol32(c, 11)) >>> 0;
  b ^= a; b = (b - rol32(a, 25)) >>> 0;
  c ^= b; c = (c - rol32(b, 16)) >>> 0;
  a ^= c; a = (a - rol32(c, 4)) >>> 0;
  b ^= a; b = (b - rol32(a, 14)) >>> 0;
  c ^= b; c = (c - rol32(b, 24)) >>> 0;
  return c >>> 0;
}

/** reciprocal_scale: (j * n) >> 32 in 64-bit arithmetic, exact (split so no product passes 2^53). */
export function reciprocalScale(j: number, n: number): number {
  const hi = Math.floor(j / 65536) * n;
  const lo = (j & 0xffff) * n;
  return Math.floor((hi + Math.floor(lo / 65536)) / 65536);
}

function rol32(w: number, s: number): number {
  return ((w << s) | (w >>> (32 - s))) >>> 0;
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

export class Nat implements NatProvider {
  readonly stats: NatStats = { masqNoAddress: 0, redirectNoAddress: 0, badSetup: 0, truncated: 0, icmpError: 0, oifChanged: 0 };
  private readonly chains: ChainReg[][] = [[], [], [], []];
  private readonly chainFns: HookFn[][] = [[], [], [], []];
  private chainCount = 0;
  private unhook: (() => void)[] = [];
  private readonly hookFns: HookFn[];
  /** The hook whose nat chains are running (for setup), or -1. */
  private curHook = -1;
  /** Whether any entry was masqueraded (only then is the out interface checked). */
  private anyMasq = false;
  /**
   * nf_nat_bysource: source-mapped entries by original source address and port
   * (key address * 65536 + port; the protocol is checked in the bucket). Only
   * entries whose source was changed are kept: find_appropriate_src can only
   * pick those (an unchanged mapping is out of the range it is asked about).
   */
  private readonly bysource = new Map<number, CtEntry[]>();
  // The tuple being built by getUniqueTuple (Linux's new_tuple).
  private ts = 0;
  private td = 0;
  private tsp = 0;
  private tdp = 0;

  constructor(private readonly deps: NatDeps) {
    this.hookFns = [0, 1, 2, 3].map((h) => (pkt: Packet, inIf: Interface | null, outIf: Interface | null) => this.hook(h, pkt, inIf, outIf));
    deps.ct.onDestroy = (e) => this.forget(e);
  }

  /** Number of nat base chains registered. */
  get chainsRegistered(): number {
    return this.chainCount;
  }

  // ---- NatProvider ----

  registerChain(hook: 'prerouting' | 'input' | 'output' | 'postrouting', priority: number, fn: HookFn): () => void {
    const h = HOOK_NAMES.indexOf(hook);
    if (h < 0) throw new Error(`nat chains cannot hook ${hook}`);
    const list = this.chains[h];
    const reg: ChainReg = { prio: priority, fn };
    // Stable: equal priorities keep their registration order.
    let i = list.length;
    while (i > 0 && list[i - 1].prio > priority) i--;
    list.splice(i, 0, reg);
    this.chainFns[h] = list.map((r) => r.fn);
    if (this.chainCount++ === 0) this.attach();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const l = this.chains[h];
      l.splice(l.indexOf(reg), 1);
      this.chainFns[h] = l.map((r) => r.fn);
      if (--this.chainCount === 0) this.detach();
    };
  }

  setup(pkt: Packet, kind: number, range: NatRange, inIf: Interface | null, outIf: Interface | null): boolean {
    const e = pkt.ct;
    if (!(e instanceof CtEntry)) return true;
    const h = this.curHook;
    const mtype = kind === NAT_SNAT || kind === NAT_MASQUERADE ? MANIP_SRC : MANIP_DST;
    if (h < 0 || hookManip(h) !== mtype || (kind === NAT_MASQUERADE && h !== NAT_HOOK_POSTROUTING) || (kind === NAT_REDIRECT && h !== NAT_HOOK_PREROUTING && h !== NAT_HOOK_OUTPUT)) {
      this.stats.badSetup++;
      return false;
    }
    let flags = range.flags;
    let minAddr = range.minAddr;
    let maxAddr = range.maxAddr;
    if (kind === NAT_MASQUERADE) {
      // nf_nat_masquerade_ipv4: a source of 0.0.0.0 is left alone.
      if (e.os === 0) return true;
      if (outIf === null) return false;
      const b = pkt.buf;
      const ip = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
      const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
      const src = this.deps.masqueradeAddress(outIf, dst);
      if (src === 0) {
        this.stats.masqNoAddress++;
        return false;
      }
      if ((e.status & IPS_CONFIRMED) === 0) {
        e.masqIndex = outIf.index;
        this.anyMasq = true;
      }
      flags |= NAT_RANGE_MAP_IPS;
      minAddr = maxAddr = src;
    } else if (kind === NAT_REDIRECT) {
      // nf_nat_redirect_ipv4: locally generated packets go to 127.0.0.1, others to the in interface's first address.
      const dst = this.deps.redirectAddress(h === NAT_HOOK_OUTPUT ? null : inIf);
      if (dst === 0) {
        this.stats.redirectNoAddress++;
        return false;
      }
      flags |= NAT_RANGE_MAP_IPS;
      minAddr = maxAddr = dst;
    } else if (kind !== NAT_DNAT && kind !== NAT_SNAT) {
      this.stats.badSetup++;
      return false;
    }
    return this.setupInfo(e, flags, minAddr, maxAddr, range.minPort, range.maxPort, mtype);
  }

  /**
   * masq_inet_event: `addr` went away from `iface`; masqueraded entries that
   * left through `iface` with that address as their new source are removed.
   */
  addressRemoved(iface: Interface, addr: number): void {
    if (!this.anyMasq) return;
    const ct = this.deps.ct;
    ct.forEach((e) => {
      if (e.masqIndex === iface.index && e.rd === addr) ct.delete(e);
    });
  }

  /** masq_device_event: `iface` went down; its masqueraded entries are removed. */
  deviceDown(iface: Interface): void {
    if (!this.anyMasq) return;
    const ct = this.deps.ct;
    ct.forEach((e) => {
      if (e.masqIndex === iface.index) ct.delete(e);
    });
  }

  // ---- hooks ----

  private attach(): void {
    const hooks = this.deps.hooks;
    const points = [hooks.prerouting, hooks.postrouting, hooks.output, hooks.input];
    this.unhook = points.map((p, h) => p.register(this.hookFns[h], HOOK_PRIORITY[h]));
    this.deps.ct.setNeeded('nat', true);
  }

  private detach(): void {
    for (const u of this.unhook) u();
    this.unhook = [];
    this.deps.ct.setNeeded('nat', false);
  }

  /** nf_nat_ipv4_fn and nf_nat_inet_fn for hook `h`. */
  private hook(h: number, pkt: Packet, inIf: Interface | null, outIf: Interface | null): Verdict {
    const e = pkt.ct;
    if (!(e instanceof CtEntry)) return VERDICT_ACCEPT;
    const info = pkt.ctInfo;
    const b = pkt.buf;
    const ip = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
    const mtype = hookManip(h);
    if (info === IP_CT_RELATED || info === IP_CT_RELATED_REPLY) {
      if (b[ip + 9] === IPPROTO_ICMP) return this.icmpReplyTranslation(e, info, mtype, b, ip, pkt.end) ? VERDICT_ACCEPT : VERDICT_DROP;
    }
    const done = mtype === MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE;
    if ((info === IP_CT_NEW || info === IP_CT_RELATED || info === IP_CT_RELATED_REPLY) && (e.status & done) === 0) {
      const fns = this.chainFns[h];
      const saved = this.curHook;
      this.curHook = h;
      for (let i = 0; i < fns.length; i++) {
        const v = fns[i](pkt, inIf, outIf);
        if (v !== VERDICT_ACCEPT) {
          this.curHook = saved;
          return v;
        }
        if ((e.status & done) !== 0) break;
      }
      this.curHook = saved;
      // nf_nat_alloc_null_binding: a flow no rule bound keeps its addresses, but
      // gets a unique tuple (a source port that clashes is remapped).
      if ((e.status & done) === 0 && !this.setupInfo(e, NAT_RANGE_MAP_IPS, mtype === MANIP_SRC ? e.rd : e.rs, mtype === MANIP_SRC ? e.rd : e.rs, 0, 0, mtype)) return VERDICT_DROP;
    } else if (this.anyMasq && h === NAT_HOOK_POSTROUTING && info < IP_CT_IS_REPLY && outIf !== null) {
      // nf_nat_oif_changed: a masqueraded flow now routed out another interface is dropped and forgotten.
      const m = e.masqIndex;
      if (m !== 0 && m !== outIf.index) {
        this.stats.oifChanged++;
        if ((e.status & IPS_CONFIRMED) !== 0) this.deps.ct.delete(e);
        return VERDICT_DROP;
      }
    }
    return this.manipPacket(e, info, mtype, b, ip, pkt.end, pkt.ipSummed === CHECKSUM_PARTIAL) ? VERDICT_ACCEPT : VERDICT_DROP;
  }

  /** nf_nat_packet: the manip for this hook and the packet's direction, if the binding changed anything. */
  private manipPacket(e: CtEntry, info: number, mtype: number, b: Uint8Array, ip: number, end: number, partial: boolean): boolean {
    const reply = info >= IP_CT_IS_REPLY;
    let bit = mtype === MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
    if (reply) bit ^= IPS_NAT_MASK;
    if ((e.status & bit) === 0) return true;
    // The packet is made to look like the inverse of the other direction's tuple.
    const icmp = e.proto === IPPROTO_ICMP;
    let addr: number;
    let port: number;
    if (!reply) {
      addr = mtype === MANIP_SRC ? e.rd : e.rs;
      port = mtype === MANIP_SRC && !icmp ? e.rdp : e.rsp;
    } else {
      addr = mtype === MANIP_SRC ? e.od : e.os;
      port = mtype === MANIP_SRC && !icmp ? e.odp : e.osp;
    }
    if (manipIpv4(b, ip, end, mtype, addr, port, partial)) return true;
    this.stats.truncated++;
    return false;
  }

  /**
   * nf_nat_icmp_reply_translation: an ICMP error about a NATed flow. Its quote
   * (a packet of the other direction) gets the reverse of that direction's
   * manip, then the outer header this hook's.
   */
  private icmpReplyTranslation(e: CtEntry, info: number, mtype: number, b: Uint8Array, ip: number, end: number): boolean {
    const hl = (b[ip] & 0x0f) << 2;
    const t = ip + hl;
    if (end - t < 8 + 20 || !icmpChecksumOk(b, t, end)) {
      this.stats.icmpError++;
      return false;
    }
    if (b[t] === ICMP_REDIRECT) {
      // Redirects are only let through for flows NAT left alone.
      if ((e.status & IPS_NAT_DONE_MASK) !== IPS_NAT_DONE_MASK || (e.status & IPS_NAT_MASK) !== 0) {
        this.stats.icmpError++;
        return false;
      }
    }
    const reply = info >= IP_CT_IS_REPLY;
    let bit = mtype === MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
    if (reply) bit ^= IPS_NAT_MASK;
    if ((e.status & bit) === 0) return true;
    // The other direction's tuple, as it is (not inverted).
    const s = reply ? e.os : e.rs;
    const d = reply ? e.od : e.rd;
    const sp = reply ? e.osp : e.rsp;
    const dp = reply ? e.odp : e.rdp;
    const inner = mtype === MANIP_SRC ? MANIP_DST : MANIP_SRC;
    const innerAddr = inner === MANIP_SRC ? s : d;
    const innerPort = inner === MANIP_SRC || e.proto === IPPROTO_ICMP ? sp : dp;
    // The outer header: the inverse of that tuple, so source <- d, destination <- s.
    const outerAddr = mtype === MANIP_SRC ? d : s;
    if (manipIcmpError(b, ip, end, inner, innerAddr, innerPort, mtype, outerAddr)) return true;
    this.stats.icmpError++;
    return false;
  }

  // ---- binding (nf_nat_setup_info) ----

  /**
   * nf_nat_setup_info: the tuple the entry's packets will have after this
   * manip, unique among tracked connections; the reply tuple follows it.
   */
  private setupInfo(e: CtEntry, flags: number, minAddr: number, maxAddr: number, minPort: number, maxPort: number, mtype: number): boolean {
    // A confirmed entry keeps what it has: a rule added later never changes an existing flow.
    if ((e.status & IPS_CONFIRMED) !== 0) return true;
    const done = mtype === MANIP_SRC ? IPS_SRC_NAT_DONE : IPS_DST_NAT_DONE;
    if ((e.status & done) !== 0) {
      this.stats.badSetup++;
      return false;
    }
    this.getUniqueTuple(e, flags, minAddr >>> 0, maxAddr >>> 0, minPort, maxPort, mtype);
    // The current tuple is the inverse of the reply tuple.
    const icmp = e.proto === IPPROTO_ICMP;
    const cs = e.rd;
    const cd = e.rs;
    const csp = icmp ? e.rsp : e.rdp;
    const cdp = icmp ? e.rdp : e.rsp;
    const ns = this.ts;
    const nd = this.td;
    const nsp = this.tsp;
    const ndp = this.tdp;
    if (ns !== cs || nd !== cd || nsp !== csp || ndp !== cdp) {
      // nf_conntrack_alter_reply with the inverse of the new tuple.
      if (icmp) this.deps.ct.setReply(e, nd, ns, nsp, e.rdp);
      else this.deps.ct.setReply(e, nd, ns, ndp, nsp);
      e.status |= mtype === MANIP_SRC ? IPS_SRC_NAT : IPS_DST_NAT;
      if (mtype === MANIP_SRC) this.addBySource(e);
    }
    e.status |= done;
    return true;
  }

  /** get_unique_tuple: leaves the chosen tuple in ts/td/tsp/tdp. */
  private getUniqueTuple(e: CtEntry, flags: number, minAddr: number, maxAddr: number, minPort: number, maxPort: number, mtype: number): void {
    const icmp = e.proto === IPPROTO_ICMP;
    // orig_tuple: the inverse of the reply tuple.
    const os = e.rd;
    const od = e.rs;
    const osp = icmp ? e.rsp : e.rdp;
    const odp = icmp ? e.rdp : e.rsp;
    // 1) Source mappings keep the tuple when it is in range and free, else reuse
    //    the mapping an existing connection from the same source got.
    if (mtype === MANIP_SRC && (flags & RANGE_RANDOM_ALL) === 0) {
      if (this.inRange(e.proto, os, osp, flags, minAddr, maxAddr, minPort, maxPort)) {
        if (!this.used(e, os, od, osp, odp)) {
          this.set(os, od, osp, odp);
          return;
        }
      } else if (this.findAppropriateSrc(e, os, osp, od, odp, flags, minAddr, maxAddr, minPort, maxPort)) {
        if (!this.used(e, this.ts, this.td, this.tsp, this.tdp)) return;
      }
    }
    // 2) The address from the range (find_best_ips_proto).
    this.set(os, od, osp, odp);
    if ((flags & NAT_RANGE_MAP_IPS) !== 0) {
      let a: number;
      if (minAddr === maxAddr) a = minAddr;
      else {
        // Hashing source (and destination, unless persistent) keeps a client on one address.
        const j = jhash1(bswap32(os), (flags & NAT_RANGE_PERSISTENT) !== 0 ? 0 : bswap32(od));
        const dist = (maxAddr - minAddr + 1) >>> 0;
        a = (minAddr + reciprocalScale(j, dist)) >>> 0;
      }
      if (mtype === MANIP_SRC) this.ts = a;
      else this.td = a;
    }
    // 3) The port (or ICMP id), only when the tuple is not already in range and unique.
    if ((flags & RANGE_RANDOM_ALL) === 0) {
      if ((flags & NAT_RANGE_PROTO_SPECIFIED) !== 0) {
        if (this.l4InRange(e.proto, mtype, minPort, maxPort) && (minPort === maxPort || !this.used(e, this.ts, this.td, this.tsp, this.tdp))) return;
      } else if (!this.used(e, this.ts, this.td, this.tsp, this.tdp)) return;
    }
    this.l4UniqueTuple(e, flags, minPort, maxPort, mtype);
  }

  /** nf_nat_l4proto_unique_tuple: searches the port (or id) range from a random start. */
  private l4UniqueTuple(e: CtEntry, flags: number, minPort: number, maxPort: number, mtype: number): void {
    const proto = e.proto;
    let min: number;
    let size: number;
    const icmp = proto === IPPROTO_ICMP;
    if (icmp) {
      // The id is the same in either direction.
      if ((flags & NAT_RANGE_PROTO_SPECIFIED) === 0) {
        min = 0;
        size = 65536;
      } else {
        min = minPort;
        size = maxPort - minPort + 1;
      }
    } else if (natHasPorts(proto)) {
      if ((flags & NAT_RANGE_PROTO_SPECIFIED) === 0) {
        // A destination's port is not changed without a range.
        if (mtype === MANIP_DST) return;
        const port = mtype === MANIP_SRC ? this.tsp : this.tdp;
        // Ports below 1024 stay privileged; below 512 stay below 512 (credential passing).
        if (port < 1024) {
          if (port < 512) {
            min = 1;
            size = 511;
          } else {
            min = 600;
            size = 1023 - 600 + 1;
          }
        } else {
          min = 1024;
          size = 65535 - 1024 + 1;
        }
      } else {
        let lo = minPort;
        let hi = maxPort;
        if (hi < lo) {
          const x = lo;
          lo = hi;
          hi = x;
        }
        min = lo;
        size = hi - lo + 1;
      }
    } else return;
    if (size <= 0) return;
    const src = mtype === MANIP_SRC || icmp;
    let off = Math.floor(this.deps.random() * 65536) & 0xffff;
    let attempts = size > MAX_ATTEMPTS ? MAX_ATTEMPTS : size;
    // A search of the whole range could take too long when it is full: from a
    // random start, then again from another with half as many tries, down to 16.
    for (;;) {
      for (let i = 0; i < attempts; i++, off = (off + 1) & 0xffff) {
        const key = (min + (off % size)) & 0xffff;
        if (src) this.tsp = key;
        else this.tdp = key;
        if (!this.usedHarder(e, this.ts, this.td, this.tsp, this.tdp, attempts - i)) return;
      }
      if (attempts >= size || attempts < 16) return;
      attempts = attempts >>> 1;
      off = Math.floor(this.deps.random() * 65536) & 0xffff;
    }
  }

  private set(s: number, d: number, sp: number, dp: number): void {
    this.ts = s;
    this.td = d;
    this.tsp = sp;
    this.tdp = dp;
  }

  /** nf_nat_used_tuple: another entry already has the reply tuple this one would get. */
  private used(e: CtEntry, s: number, d: number, sp: number, dp: number): boolean {
    if (e.proto === IPPROTO_ICMP) return this.deps.ct.tupleTaken(e.proto, d, s, sp, e.rdp, e);
    return this.deps.ct.tupleTaken(e.proto, d, s, dp, sp, e);
  }

  /**
   * nf_nat_used_tuple_harder: in the last tries for a new TCP connection, an
   * older SNATed one holding the tuple is evicted when it is closing (TIME_WAIT
   * or later) and the new SYN's sequence has advanced past its own.
   */
  private usedHarder(e: CtEntry, s: number, d: number, sp: number, dp: number, left: number): boolean {
    if (left > HARDER_THRESH || e.proto !== IPPROTO_TCP || e.state !== TCP_CONNTRACK_SYN_SENT || e.tcp === null) return this.used(e, s, d, sp, dp);
    const ct = this.deps.ct;
    const old = ct.find(e.proto, d, s, dp, sp);
    if (old === null) return false;
    // Only an entry whose reply tuple this would be; not this one.
    if (ct.foundDir !== 1 || old === e) return true;
    // nf_nat_may_kill: closing, not fixed-timeout or dying, source-NATed.
    if (old.state < TCP_CONNTRACK_TIME_WAIT || (old.status & (IPS_FIXED_TIMEOUT | IPS_DYING)) !== 0 || (old.status & IPS_SRC_NAT) === 0) return true;
    // nf_seq_has_advanced: the reverse direction must see the old flow's packets as out of window.
    if (old.tcp === null || ((e.tcp.seen[0].end - old.tcp.seen[0].end) | 0) <= 0) return true;
    ct.delete(old);
    return false;
  }

  /** in_range: the source part of a tuple lies in the range. */
  private inRange(proto: number, s: number, sp: number, flags: number, minAddr: number, maxAddr: number, minPort: number, maxPort: number): boolean {
    if ((flags & NAT_RANGE_MAP_IPS) !== 0 && (s < minAddr || s > maxAddr)) return false;
    if ((flags & NAT_RANGE_PROTO_SPECIFIED) === 0) return true;
    if (proto === IPPROTO_ICMP || natHasPorts(proto)) return sp >= minPort && sp <= maxPort;
    return true;
  }

  /** l4proto_in_range for the tuple being built. */
  private l4InRange(proto: number, mtype: number, minPort: number, maxPort: number): boolean {
    if (proto === IPPROTO_ICMP) return this.tsp >= minPort && this.tsp <= maxPort;
    if (natHasPorts(proto)) {
      const p = mtype === MANIP_SRC ? this.tsp : this.tdp;
      return p >= minPort && p <= maxPort;
    }
    return true;
  }

  /**
   * find_appropriate_src: an entry from the same source address and port that
   * was mapped into the range gives its mapping (with this tuple's destination).
   */
  private findAppropriateSrc(
    e: CtEntry,
    os: number,
    osp: number,
    od: number,
    odp: number,
    flags: number,
    minAddr: number,
    maxAddr: number,
    minPort: number,
    maxPort: number,
  ): boolean {
    const bucket = this.bysource.get(os * 65536 + osp);
    if (bucket === undefined) return false;
    const icmp = e.proto === IPPROTO_ICMP;
    for (let i = 0; i < bucket.length; i++) {
      const c = bucket[i];
      if (c.proto !== e.proto || c.os !== os || c.osp !== osp) continue;
      const s = c.rd;
      const sp = icmp ? c.rsp : c.rdp;
      if (this.inRange(e.proto, s, sp, flags, minAddr, maxAddr, minPort, maxPort)) {
        this.set(s, od, sp, odp);
        return true;
      }
    }
    return false;
  }

  private addBySource(e: CtEntry): void {
    const key = e.os * 65536 + e.osp;
    let bucket = this.bysource.get(key);
    if (bucket === undefined) {
      bucket = [];
      this.bysource.set(key, bucket);
    } else {
      // An entry that never got confirmed (its first packet was dropped after
      // NAT) is never destroyed: it goes when its bucket is next used.
      for (let i = bucket.length - 1; i >= 0; i--) {
        const c = bucket[i];
        if ((c.status & IPS_CONFIRMED) === 0 && c !== e) bucket.splice(i, 1);
      }
    }
    bucket.push(e);
  }

  /** nf_nat_cleanup_conntrack: a destroyed entry leaves the source map. */
  private forget(e: CtEntry): void {
    if ((e.status & IPS_SRC_NAT) === 0) return;
    const key = e.os * 65536 + e.osp;
    const bucket = this.bysource.get(key);
    if (bucket === undefined) return;
    const i = bucket.indexOf(e);
    if (i >= 0) bucket.splice(i, 1);
    if (bucket.length === 0) this.bysource.delete(key);
  }
}

/** HOOK2MANIP: POSTROUTING and INPUT change the source, PREROUTING and OUTPUT the destination. */
function hookManip(h: number): number {
  return h === NAT_HOOK_POSTROUTING || h === NAT_HOOK_INPUT ? MANIP_SRC : MANIP_DST;
}
