/**
 * ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol pairs are
 * reported as 'unsupported'.
 */
import * as bytes from './bytes.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { copyBytes, getU16, getU32, setU16, setU32 } = bytes;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** RFC 826 with hlen 6 and plen 4: 8 fixed bytes + 2 * (6 + 4). */
export const ARP_LEN = 28;
/** IANA ARP hardware type for Ethernet. */
export const ARP_HTYPE_ETHERNET = 1;
const PTYPE_IPV4 = 0x0800;

export interface ArpRepr {
  op: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}

export class ArpView extends ByteView {
  /**
   * 'truncated' if the fixed part or the addresses don't fit; 'unsupported' unless
   * Ethernet/IPv4 with 6- and 4-byte addresses (the only lengths the accessors know).
   */
  check(): string | null {
    if (this.len < 8) return 'truncated';
    if (this.htype !== ARP_HTYPE_ETHERNET || this.ptype !== PTYPE_IPV4 || this.hlen !== 6 || this.plen !== 4) {
      return 'unsupported';
    }
    if (this.len < ARP_LEN) return 'truncated';
    return null;
  }

  get htype(): number {
    return getU16(this.buf, this.off);
  }

  set htype(v: number) {
    setU16(this.buf, this.off, v);
  }

  get ptype(): number {
    return getU16(this.buf, this.off + 2);
  }

  set ptype(v: number) {
    setU16(this.buf, this.off + 2, v);
  }

  get hlen(): number {
    return this.buf[this.off + 4];
  }

  set hlen(v: number) {
    this.buf[this.off + 4] = v;
  }

  get plen(): number {
    return this.buf[this.off + 5];
  }

  set plen(v: number) {
    this.buf[this.off + 5] = v;
  }

  get op(): number {
    return getU16(this.buf, this.off + 6);
  }

  set op(v: number) {
    setU16(this.buf, this.off + 6, v);
  }

  /** Sender hardware address: a copy, or written into `out` at `outOff`. */
  senderMac(out?: Uint8Array, outOff = 0): Uint8Array {
    return this.macAt(8, out, outOff);
  }

  setSenderMac(mac: Uint8Array, macOff = 0): void {
    this.setMacAt(8, mac, macOff);
  }

  /** Absolute offset of the sender MAC, for macEquals without a copy. */
  get senderMacOff(): number {
    return this.off + 8;
  }

  get senderIp(): number {
    return getU32(this.buf, this.off + 14);
  }

  set senderIp(v: number) {
    setU32(this.buf, this.off + 14, v);
  }

  targetMac(out?: Uint8Array, outOff = 0): Uint8Array {
    return this.macAt(18, out, outOff);
  }

  setTargetMac(mac: Uint8Array, macOff = 0): void {
    this.setMacAt(18, mac, macOff);
  }

  get targetMacOff(): number {
    return this.off + 18;
  }

  get targetIp(): number {
    return getU32(this.buf, this.off + 24);
  }

  set targetIp(v: number) {
    setU32(this.buf, this.off + 24, v);
  }

  private macAt(rel: number, out: Uint8Array | undefined, outOff: number): Uint8Array {
    const p = this.off + rel;
    if (out === undefined) return copyBytes(this.buf, p, p + 6);
    for (let i = 0; i < 6; i++) out[outOff + i] = this.buf[p + i];
    return out;
  }

  private setMacAt(rel: number, mac: Uint8Array, macOff: number): void {
    const p = this.off + rel;
    for (let i = 0; i < 6; i++) this.buf[p + i] = mac[macOff + i];
  }
}

export function parseArp(v: ArpView | Uint8Array): ArpRepr {
  const view = v instanceof ArpView ? v : new ArpView(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('arp', err);
  return {
    op: view.op,
    senderMac: view.senderMac(),
    senderIp: view.senderIp,
    targetMac: view.targetMac(),
    targetIp: view.targetIp,
  };
}

/** Writes an Ethernet/IPv4 ARP packet at `off`; returns ARP_LEN. */
export function emitArp(repr: ArpRepr, buf: Uint8Array, off: number): number {
  const v = new ArpView(buf, off, ARP_LEN);
  v.htype = ARP_HTYPE_ETHERNET;
  v.ptype = PTYPE_IPV4;
  v.hlen = 6;
  v.plen = 4;
  v.op = repr.op;
  v.setSenderMac(repr.senderMac);
  v.senderIp = repr.senderIp;
  v.setTargetMac(repr.targetMac);
  v.targetIp = repr.targetIp;
  return ARP_LEN;
}
