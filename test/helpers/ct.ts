import { Packet } from '../../src/packet/packet.js';
import { Hooks, VERDICT_ACCEPT } from '../../src/ip/hooks.js';
import { Sysctl } from '../../src/sysctl.js';
import { Conntrack } from '../../src/conntrack/conntrack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { checksum, pseudoHeaderSum } from '../../src/wire/checksum.js';
import { fillIpv4Checksum } from '../../src/wire/ipv4.js';
import { setU32 } from '../../src/wire/bytes.js';
import { parseIp4 } from '../../src/wire/addr.js';
import type { Logger } from '../../src/log.js';

/** Datagrams for the conntrack tests, with valid checksums, and a table on bare hooks. */

export function ip(s: string): number {
  const v = parseIp4(s);
  if (v === null) throw new Error(`bad address ${s}`);
  return v;
}

export const SYN = 0x02;
export const ACK = 0x10;
export const FIN = 0x01;
export const RST = 0x04;
export const PSH = 0x08;
export const URG = 0x20;

/** An IPv4 datagram of protocol `proto` carrying `l4`. */
export function datagram(src: string, dst: string, proto: number, l4: Uint8Array): Packet {
  const p = Packet.alloc(20 + l4.length);
  const b = p.buf;
  const o = p.start;
  b[o] = 0x45;
  const len = 20 + l4.length;
  b[o + 2] = len >> 8;
  b[o + 3] = len & 0xff;
  b[o + 8] = 64;
  b[o + 9] = proto;
  setU32(b, o + 12, ip(src));
  setU32(b, o + 16, ip(dst));
  fillIpv4Checksum(b, o, 20);
  b.set(l4, o + 20);
  p.l3 = o;
  return p;
}

export interface Seg {
  seq: number;
  ack?: number;
  flags: number;
  win?: number;
  /** Payload bytes. */
  data?: number;
  /** Raw option bytes (padded to 4 by the caller). */
  opts?: number[];
}

export function tcp(src: string, sport: number, dst: string, dport: number, s: Seg): Packet {
  const opts = s.opts ?? [];
  const hl = 20 + opts.length;
  const t = new Uint8Array(hl + (s.data ?? 0));
  t[0] = sport >> 8;
  t[1] = sport & 0xff;
  t[2] = dport >> 8;
  t[3] = dport & 0xff;
  const dv = new DataView(t.buffer);
  dv.setUint32(4, s.seq >>> 0);
  dv.setUint32(8, (s.ack ?? 0) >>> 0);
  t[12] = (hl / 4) << 4;
  t[13] = s.flags;
  dv.setUint16(14, s.win ?? 65535);
  t.set(opts, 20);
  for (let i = hl; i < t.length; i++) t[i] = i & 0xff;
  const c = checksum(t, 0, t.length, pseudoHeaderSum(ip(src), ip(dst), 6, t.length));
  dv.setUint16(16, c);
  return datagram(src, dst, 6, t);
}

export function udp(src: string, sport: number, dst: string, dport: number, len = 8): Packet {
  const u = new Uint8Array(8 + len);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport);
  dv.setUint16(2, dport);
  dv.setUint16(4, u.length);
  for (let i = 8; i < u.length; i++) u[i] = i;
  let c = checksum(u, 0, u.length, pseudoHeaderSum(ip(src), ip(dst), 17, u.length));
  if (c === 0) c = 0xffff;
  dv.setUint16(6, c);
  return datagram(src, dst, 17, u);
}

export function icmp(src: string, dst: string, type: number, code: number, rest: Uint8Array | { id: number; seq: number }): Packet {
  const body = rest instanceof Uint8Array ? rest : new Uint8Array([rest.id >> 8, rest.id & 0xff, rest.seq >> 8, rest.seq & 0xff]);
  const m = new Uint8Array(4 + body.length);
  m[0] = type;
  m[1] = code;
  m.set(body, 4);
  const c = checksum(m, 0, m.length);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return datagram(src, dst, 1, m);
}

/** An ICMP error of `type`/`code` from `src` to `dst` quoting the first 28 bytes of `orig`. */
export function icmpError(src: string, dst: string, type: number, code: number, orig: Packet): Packet {
  const q = orig.buf.subarray(orig.l3, Math.min(orig.end, orig.l3 + 28));
  const body = new Uint8Array(4 + q.length);
  body.set(q, 4);
  return icmp(src, dst, type, code, body);
}

export function generic(src: string, dst: string, proto: number): Packet {
  return datagram(src, dst, proto, new Uint8Array(16));
}

/** A conntrack on bare hooks and a virtual clock. */
export class CtRig {
  readonly time = new VirtualTime(1_000_000);
  readonly hooks = new Hooks();
  readonly sysctl = new Sysctl();
  readonly ct: Conntrack;
  private seedState = 1;

  constructor(opts: { logger?: Logger } = {}) {
    this.ct = new Conntrack({
      logger: opts.logger,
      now: () => this.time.now(),
      hooks: this.hooks,
      sysctl: this.sysctl,
      random: () => {
        this.seedState = (this.seedState * 16807) % 2147483647;
        return this.seedState / 2147483647;
      },
      time: this.time,
    });
    this.ct.setNeeded('test', true);
  }

  /** A forwarded packet: PREROUTING, then POSTROUTING (confirm). Returns whether it got through. */
  forward(p: Packet): boolean {
    if (this.hooks.prerouting.run(p, null, null) !== VERDICT_ACCEPT) return false;
    return this.hooks.postrouting.run(p, null, null) === VERDICT_ACCEPT;
  }
}
