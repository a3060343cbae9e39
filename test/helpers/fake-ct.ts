import type { Packet } from '../../src/packet/packet.js';
import type { Hooks } from '../../src/ip/hooks.js';
import { VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import {
  CtEntry,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
  IP_CT_RELATED,
  IP_CT_RELATED_REPLY,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
} from '../../src/conntrack/entry.js';
import type { NatConntrack } from '../../src/conntrack/nat.js';

/** nf_conntrack_proto_icmp.c's inverse types (echo, timestamp, info, address mask). */
const ICMP_INV: Record<number, number> = { 8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17 };

function key(p: number, s: number, d: number, sp: number, dp: number): string {
  return `${p}/${s}/${d}/${sp}/${dp}`;
}

/**
 * A small tracker for NAT's tests: the NatConntrack calls, and (with `hooks`)
 * entries found or made in PREROUTING/OUTPUT at -200 and confirmed in
 * POSTROUTING/INPUT last, ICMP errors RELATED to the flow they quote. No
 * protocol state and no timeouts: only what NAT's behaviour depends on.
 */
export class FakeConntrack implements NatConntrack {
  readonly table = new Map<string, { e: CtEntry; dir: number }>();
  readonly needed = new Set<string>();
  onDestroy: ((e: CtEntry) => void) | null = null;
  insertFailed = 0;

  constructor(hooks?: Hooks) {
    if (hooks === undefined) return;
    hooks.prerouting.register((p) => this.track(p), -200);
    hooks.output.register((p) => this.track(p), -200);
    hooks.postrouting.register((p) => this.confirmPkt(p), 0x7fffffff);
    hooks.input.register((p) => this.confirmPkt(p), 0x7fffffff);
  }

  get count(): number {
    return this.table.size / 2;
  }

  tupleTaken(proto: number, src: number, dst: number, sport: number, dport: number, ignore: CtEntry | null): boolean {
    const f = this.table.get(key(proto, src, dst, sport, dport));
    return f !== undefined && f.e !== ignore;
  }

  foundDir = 0;

  find(proto: number, src: number, dst: number, sport: number, dport: number): CtEntry | null {
    const f = this.table.get(key(proto, src, dst, sport, dport));
    if (f === undefined) return null;
    this.foundDir = f.dir;
    return f.e;
  }

  setReply(e: CtEntry, rs: number, rd: number, rsp: number, rdp: number): void {
    if (e.status & IPS_CONFIRMED) throw new Error('setReply on a confirmed entry');
    e.rs = rs;
    e.rd = rd;
    e.rsp = rsp;
    e.rdp = rdp;
  }

  setNeeded(who: string, on: boolean): void {
    if (on) this.needed.add(who);
    else this.needed.delete(who);
  }

  forEach(fn: (e: CtEntry) => void): void {
    const seen = new Set<CtEntry>();
    for (const { e } of [...this.table.values()]) {
      if (seen.has(e)) continue;
      seen.add(e);
      fn(e);
    }
  }

  delete(e: CtEntry): void {
    this.table.delete(key(e.proto, e.os, e.od, e.osp, e.odp));
    this.table.delete(key(e.proto, e.rs, e.rd, e.rsp, e.rdp));
    if (this.onDestroy !== null) this.onDestroy(e);
  }

  /** A new (unconfirmed) entry with the reply tuple the inverse of the original. */
  make(proto: number, s: number, d: number, sp: number, dp: number): CtEntry {
    const e = new CtEntry();
    e.proto = proto;
    e.os = s;
    e.od = d;
    e.osp = sp;
    e.odp = dp;
    e.rs = d;
    e.rd = s;
    if (proto === 1) {
      e.rsp = sp;
      e.rdp = (ICMP_INV[dp >> 8] ?? 0) << 8;
    } else {
      e.rsp = dp;
      e.rdp = sp;
    }
    return e;
  }

  /** __nf_conntrack_confirm: false on a clash with a confirmed entry. */
  confirm(e: CtEntry): boolean {
    if (e.status & IPS_CONFIRMED) return true;
    const k0 = key(e.proto, e.os, e.od, e.osp, e.odp);
    const k1 = key(e.proto, e.rs, e.rd, e.rsp, e.rdp);
    if (this.table.has(k0) || this.table.has(k1)) {
      this.insertFailed++;
      return false;
    }
    this.table.set(k0, { e, dir: 0 });
    this.table.set(k1, { e, dir: 1 });
    e.status |= IPS_CONFIRMED;
    return true;
  }

  private confirmPkt(p: Packet): 0 | 1 {
    const e = p.ct;
    if (!(e instanceof CtEntry)) return VERDICT_ACCEPT;
    return this.confirm(e) ? VERDICT_ACCEPT : VERDICT_DROP;
  }

  /** The tuple of the datagram at `ip` (proto, s, d, sp, dp), or null when not a first fragment with ports. */
  private tuple(b: Uint8Array, ip: number, end: number): [number, number, number, number, number] | null {
    const proto = b[ip + 9];
    const s = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    const d = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    const t = ip + ((b[ip] & 15) << 2);
    if (proto === 6 || proto === 17) {
      if (end - t < 4) return null;
      return [proto, s, d, (b[t] << 8) | b[t + 1], (b[t + 2] << 8) | b[t + 3]];
    }
    if (proto === 1) {
      if (end - t < 8) return null;
      return [proto, s, d, (b[t + 4] << 8) | b[t + 5], (b[t] << 8) | b[t + 1]];
    }
    return [proto, s, d, 0, 0];
  }

  private track(p: Packet): 0 | 1 {
    if (p.ct !== null) return VERDICT_ACCEPT;
    const b = p.buf;
    const ip = p.l3 >= 0 ? p.l3 : p.start;
    const t = this.tuple(b, ip, p.end);
    if (t === null) return VERDICT_ACCEPT;
    const [proto, s, d, sp, dp] = t;
    const hl = (b[ip] & 15) << 2;
    if (proto === 1 && [3, 4, 5, 11, 12].includes(b[ip + hl])) {
      // An error: RELATED to the flow whose packet it quotes (nf_conntrack_icmpv4_error).
      const inner = this.tuple(b, ip + hl + 8, p.end);
      if (inner === null) return VERDICT_ACCEPT;
      const [ip2, is, id, isp, idp] = inner;
      // Its inverse is a tuple of the entry: the error travels the other way.
      const f =
        ip2 === 1
          ? this.table.get(key(ip2, id, is, isp, (ICMP_INV[idp >> 8] ?? 0) << 8))
          : this.table.get(key(ip2, id, is, idp, isp));
      if (f === undefined) return VERDICT_ACCEPT;
      p.ct = f.e;
      p.ctInfo = f.dir === 1 ? IP_CT_RELATED_REPLY : IP_CT_RELATED;
      return VERDICT_ACCEPT;
    }
    const f = this.table.get(key(proto, s, d, sp, dp));
    if (f !== undefined) {
      p.ct = f.e;
      if (f.dir === 1) {
        f.e.status |= IPS_SEEN_REPLY;
        p.ctInfo = IP_CT_ESTABLISHED_REPLY;
      } else p.ctInfo = f.e.status & IPS_SEEN_REPLY ? IP_CT_ESTABLISHED : IP_CT_NEW;
      return VERDICT_ACCEPT;
    }
    p.ct = this.make(proto, s, d, sp, dp);
    p.ctInfo = IP_CT_NEW;
    return VERDICT_ACCEPT;
  }
}
