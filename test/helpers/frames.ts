import { checksum } from '../../src/wire/checksum.js';
import { parseIp4, parseMac } from '../../src/wire/addr.js';

/** Builds raw frames for injection tests, field by field, so each can be broken on purpose. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export function ethHeader(dst: string, src: string, etherType: number): Uint8Array {
  const h = new Uint8Array(14);
  h.set(parseMac(dst)!, 0);
  h.set(parseMac(src)!, 6);
  h[12] = etherType >> 8;
  h[13] = etherType & 0xff;
  return h;
}

/** The TCP header fields of a captured Ethernet frame carrying IPv4 and TCP. */
export function tcpOf(f: Uint8Array): { src: number; sport: number; dport: number; seq: number; ack: number; flags: number; win: number; len: number } {
  const ihl = (f[14] & 15) * 4;
  const t = 14 + ihl;
  const dv = new DataView(f.buffer, f.byteOffset);
  return {
    src: dv.getUint32(26),
    sport: dv.getUint16(t),
    dport: dv.getUint16(t + 2),
    seq: dv.getUint32(t + 4),
    ack: dv.getUint32(t + 8),
    flags: f[t + 13],
    win: dv.getUint16(t + 14),
    len: dv.getUint16(16) - ihl - (f[t + 12] >> 4) * 4,
  };
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An ICMP echo request in an IPv4 header with a correct checksum. */
export function echoRequest(src: string, dst: string, opts: { ident?: number; seq?: number; data?: number } = {}): Uint8Array {
  const dlen = opts.data ?? 32;
  const icmp = new Uint8Array(8 + dlen);
  icmp[0] = 8;
  icmp[4] = (opts.ident ?? 0x4242) >> 8;
  icmp[5] = (opts.ident ?? 0x4242) & 0xff;
  icmp[7] = opts.seq ?? 1;
  for (let i = 0; i < dlen; i++) icmp[8 + i] = i;
  const c = checksum(icmp, 0, icmp.length);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
  return concat(ipHeader(src, dst, 1, icmp.length), icmp);
}

export function ipHeader(src: string, dst: string, proto: number, payloadLen: number): Uint8Array {
  const h = new Uint8Array(20);
  const total = 20 + payloadLen;
  h[0] = 0x45;
  h[2] = total >> 8;
  h[3] = total & 0xff;
  h[4] = 0x12;
  h[5] = 0x34;
  h[8] = 64;
  h[9] = proto;
  const s = parseIp4(src)!;
  const d = parseIp4(dst)!;
  for (let i = 0; i < 4; i++) {
    h[12 + i] = (s >>> (24 - 8 * i)) & 0xff;
    h[16 + i] = (d >>> (24 - 8 * i)) & 0xff;
  }
  fixIpChecksum(h);
  return h;
}

export function fixIpChecksum(ipDatagram: Uint8Array): void {
  const hl = (ipDatagram[0] & 0x0f) * 4;
  ipDatagram[10] = 0;
  ipDatagram[11] = 0;
  const c = checksum(ipDatagram, 0, Math.min(Math.max(hl, 20), ipDatagram.length));
  ipDatagram[10] = c >> 8;
  ipDatagram[11] = c & 0xff;
}

/** True when `b` holds `bytes` at `off`. */
export function equalAt(b: Uint8Array, off: number, bytes: number[]): boolean {
  return bytes.every((v, i) => b[off + i] === v);
}
