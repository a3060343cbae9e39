/**
 * Ethernet II header (IEEE 802.3 with an EtherType) with any number of stacked
 * 802.1Q / 802.1ad tags between the source address and the EtherType.
 */
import * as bytes from './bytes.js';
import { WireError } from './error.js';
import { ByteView } from './view.js';

// Module constants, not imported bindings: see bytes.ts.
const { copyBytes, getU16, setU16 } = bytes;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** IEEE 802.1Q customer tag. */
export const ETHERTYPE_VLAN = 0x8100;
/** IEEE 802.1ad service tag (the outer tag of QinQ). */
export const ETHERTYPE_QINQ = 0x88a8;
export const ETH_HEADER_LEN = 14;
/** One 802.1Q/802.1ad tag: TPID (2 bytes) + TCI (2 bytes). */
export const VLAN_TAG_LEN = 4;

function isTagTpid(t: number): boolean {
  return t === ETHERTYPE_VLAN || t === ETHERTYPE_QINQ;
}

export interface VlanTag {
  /** Tag protocol identifier: ETHERTYPE_VLAN or ETHERTYPE_QINQ. */
  tpid: number;
  /** Priority code point, 0-7 (IEEE 802.1Q §6.9.3). */
  pcp: number;
  /** Drop eligible indicator. */
  dei: boolean;
  /** VLAN identifier, 0-4095. */
  vid: number;
}

export interface EthernetRepr {
  dst: Uint8Array;
  src: Uint8Array;
  /** Outermost first; empty for an untagged frame. */
  vlans: VlanTag[];
  /** The EtherType after the tags. */
  etherType: number;
}

export class EthernetView extends ByteView {
  /** 'runt' if the header, tags included, does not fit in the bytes given. */
  check(): string | null {
    if (this.len < ETH_HEADER_LEN) return 'runt';
    if (this.headerLen > this.len) return 'runt';
    return null;
  }

  /** Number of 802.1Q/802.1ad tags, counting only tags whose TPID lies within the bytes. */
  get vlanCount(): number {
    const b = this.buf;
    const end = this.off + this.len;
    let p = this.off + 12;
    let n = 0;
    while (p + 2 <= end && isTagTpid(getU16(b, p))) {
      n++;
      p += VLAN_TAG_LEN;
    }
    return n;
  }

  /** 14 plus 4 per tag. */
  get headerLen(): number {
    return ETH_HEADER_LEN + VLAN_TAG_LEN * this.vlanCount;
  }

  /** Destination MAC: a new 6-byte copy, or written into `out` at `outOff` (no allocation). */
  dst(out?: Uint8Array, outOff = 0): Uint8Array {
    if (out === undefined) return copyBytes(this.buf, this.off, this.off + 6);
    copyMac(this.buf, this.off, out, outOff);
    return out;
  }

  src(out?: Uint8Array, outOff = 0): Uint8Array {
    if (out === undefined) return copyBytes(this.buf, this.off + 6, this.off + 12);
    copyMac(this.buf, this.off + 6, out, outOff);
    return out;
  }

  setDst(mac: Uint8Array, macOff = 0): void {
    copyMac(mac, macOff, this.buf, this.off);
  }

  setSrc(mac: Uint8Array, macOff = 0): void {
    copyMac(mac, macOff, this.buf, this.off + 6);
  }

  /** Absolute offset of the destination MAC, for macEquals without a copy. */
  get dstOff(): number {
    return this.off;
  }

  get srcOff(): number {
    return this.off + 6;
  }

  /** The EtherType after any tags. */
  get etherType(): number {
    return getU16(this.buf, this.off + 12 + VLAN_TAG_LEN * this.vlanCount);
  }

  set etherType(v: number) {
    setU16(this.buf, this.off + 12 + VLAN_TAG_LEN * this.vlanCount, v);
  }

  /** TPID of tag `i` (0 = outermost). */
  vlanTpid(i: number): number {
    return getU16(this.buf, this.off + 12 + VLAN_TAG_LEN * i);
  }

  /** Whole tag control information of tag `i`: PCP(3) DEI(1) VID(12). */
  vlanTci(i: number): number {
    return getU16(this.buf, this.off + 14 + VLAN_TAG_LEN * i);
  }

  vlanId(i: number): number {
    return this.vlanTci(i) & 0x0fff;
  }

  vlanPcp(i: number): number {
    return this.vlanTci(i) >>> 13;
  }

  vlanDei(i: number): boolean {
    return (this.vlanTci(i) & 0x1000) !== 0;
  }

  setVlanTci(i: number, tci: number): void {
    setU16(this.buf, this.off + 14 + VLAN_TAG_LEN * i, tci);
  }

  /** The bytes after the header (a view, not a copy). */
  payload(): Uint8Array {
    return this.buf.subarray(this.off + this.headerLen, this.off + this.len);
  }
}

function copyMac(src: Uint8Array, so: number, dst: Uint8Array, d: number): void {
  dst[d] = src[so];
  dst[d + 1] = src[so + 1];
  dst[d + 2] = src[so + 2];
  dst[d + 3] = src[so + 3];
  dst[d + 4] = src[so + 4];
  dst[d + 5] = src[so + 5];
}

export function ethernetHeaderLen(repr: EthernetRepr): number {
  return ETH_HEADER_LEN + VLAN_TAG_LEN * repr.vlans.length;
}

export function parseEthernet(v: EthernetView | Uint8Array): EthernetRepr {
  const view = v instanceof EthernetView ? v : new EthernetView(v, 0, v.length);
  const err = view.check();
  if (err !== null) throw new WireError('ethernet', err);
  const vlans: VlanTag[] = [];
  const n = view.vlanCount;
  for (let i = 0; i < n; i++) {
    vlans.push({ tpid: view.vlanTpid(i), pcp: view.vlanPcp(i), dei: view.vlanDei(i), vid: view.vlanId(i) });
  }
  return { dst: view.dst(), src: view.src(), vlans, etherType: view.etherType };
}

/** Writes the header (tags included) at `off`; returns its length. */
export function emitEthernet(repr: EthernetRepr, buf: Uint8Array, off: number): number {
  copyMac(repr.dst, 0, buf, off);
  copyMac(repr.src, 0, buf, off + 6);
  let p = off + 12;
  for (const t of repr.vlans) {
    const tci = ((t.pcp & 7) << 13) | (t.dei ? 0x1000 : 0) | (t.vid & 0x0fff);
    setU16(buf, p, t.tpid);
    setU16(buf, p + 2, tci);
    p += VLAN_TAG_LEN;
  }
  setU16(buf, p, repr.etherType);
  return p + 2 - off;
}
