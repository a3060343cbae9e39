/**
 * The u32 classifier (net/sched/cls_u32.c, read by tc's f_u32.c): per
 * priority one classifier (a tcf_proto) whose root hash table (800:, 801:,
 * ...) holds key nodes; a node may `link` to another hash table, choosing
 * the bucket by `hashkey mask M at OFF` over the packet and moving the
 * header offset on with `offset ... eat`, so lookups go straight to a
 * bucket instead of trying every filter. Hash tables (`handle N: u32
 * divisor D`) belong to the qdisc (struct tc_u_common) and are shared by all
 * its u32 classifiers, so a dump of one priority shows every table of that
 * priority, as the kernel's u32_walk does.
 *
 * Handles are HTID:BUCKET:NODE (12, 8 and 12 bits: 0xHHH BB NNN).
 */
import type { Packet } from '../packet/packet.js';
import { type Ns, TcParseError } from './qdisc.js';
import { type ActClock, type ActionTable, parsePolice, PoliceSyntaxError, policeError, type PoliceAction, TC_ACT_OK, TcFilter, type TcResult } from './act.js';
import type { EstimatorSpec } from './estimator.js';
import { getInteger, getU32 } from './units.js';

/** include/uapi/linux/pkt_cls.h: struct tc_u32_sel flags. */
export const TC_U32_TERMINAL = 1;
export const TC_U32_OFFSET = 2;
export const TC_U32_VAROFFSET = 4;
export const TC_U32_EAT = 8;
/** cls_u32.c: how deep links may nest. */
const TC_U32_MAXDEPTH = 8;

export const u32Htid = (h: number): number => (h & 0xfff00000) >>> 0;
export const u32Hash = (h: number): number => (h >>> 12) & 0xff;
export const u32Node = (h: number): number => h & 0xfff;
export const u32Key = (h: number): number => h & 0xfffff;
const TC_U32_ROOT = 0xfff00000;

/** struct tc_u32_key: the 32-bit word at `off` (plus the eaten offset when offmask is -1) masked equals val. */
export interface U32Key {
  val: number;
  mask: number;
  off: number;
  offmask: number;
}

/** A key node (struct tc_u_knode). */
export class U32Knode {
  handle = 0;
  readonly keys: U32Key[] = [];
  /** TC_U32_* of the selector. */
  flags = 0;
  classid = 0;
  hasClassid = false;
  link: U32Hnode | null = null;
  /** hashkey: mask (host order), offset, and the shift that brings the mask's lowest bit to bit 0. */
  hmask = 0;
  hoff = 0;
  fshift = 0;
  /** offset: plus, at, mask, shift. */
  off = 0;
  offoff = 0;
  offmask = 0;
  offshift = 0;
  actions: PoliceAction[] = [];

  constructor(public up: U32Hnode | null) {}

  /** tcf_exts_exec: the actions in order while they say pipe. */
  execActions(pkt: Packet, now: Ns): number {
    let r = TC_ACT_OK;
    for (const a of this.actions) {
      r = a.act(pkt, now);
      if (r !== 3) break; // TC_ACT_PIPE
    }
    return r;
  }
}

/** A hash table (struct tc_u_hnode): `divisor` buckets of key nodes, each ordered by node id. */
export class U32Hnode {
  readonly buckets: U32Knode[][] = [];
  /** Key nodes that link here. */
  links = 0;

  constructor(
    readonly handle: number,
    readonly prio: number,
    readonly divisor: number,
    readonly isRoot: boolean,
  ) {
    for (let i = 0; i < divisor; i++) this.buckets.push([]);
  }

  empty(): boolean {
    return this.buckets.every((b) => b.length === 0);
  }

  find(handle: number): U32Knode | null {
    const b = this.buckets[u32Hash(handle)];
    if (b === undefined) return null;
    for (const n of b) if (n.handle === handle) return n;
    return null;
  }
}

/** struct tc_u_common: the hash tables of one qdisc, newest first, and the u32 classifiers using them. */
export class U32Common {
  hts: U32Hnode[] = [];
  /** Classifiers (priorities) alive; at 0 the tables go and numbering starts again at 800:. */
  tps = 0;
  private cursor = 1;

  lookup(htid: number): U32Hnode | null {
    for (const h of this.hts) if (h.handle === htid) return h;
    return null;
  }

  /** gen_new_htid: 801:, 802:, ... cyclically (idr_alloc_cyclic over 1..0x7fe). */
  genHtid(): number {
    for (let n = 0; n < 0x7fe; n++) {
      const id = this.cursor;
      this.cursor = id + 1 > 0x7fe ? 1 : id + 1;
      const h = ((id | 0x800) << 20) >>> 0;
      if (this.lookup(h) === null) return h;
    }
    return 0;
  }

  reset(): void {
    this.hts = [];
    this.cursor = 1;
  }
}

/** What one `tc filter add|change|replace ... u32 ...` asks for (its netlink attributes). */
export interface U32Request {
  /** tcm_handle (0: none). */
  handle: number;
  /** TCA_U32_HASH (null: none). */
  htid: number | null;
  /** TCA_U32_DIVISOR (0: none). */
  divisor: number;
  /** TCA_U32_LINK (null: none). */
  link: number | null;
  /** TCA_U32_SEL given. */
  selOk: boolean;
  /** The selector, class and actions of the node to make. */
  node: U32Knode;
}

const kernel = (msg: string): TcParseError => new TcParseError(`Error: ${msg}.`, 2);
const rtnl = (msg: string): TcParseError => new TcParseError(`RTNETLINK answers: ${msg}`, 2);

/** One u32 classifier: the priority's root hash table and the qdisc's tables. */
export class U32Filter extends TcFilter {
  readonly kind = 'u32';
  root: U32Hnode | null = null;
  common: U32Common | null = null;
  /** The request parsed from tc's words, applied when the filter list takes it (u32_change). */
  req: U32Request | null = null;
  // The walk's stack (u32_classify's stack[TC_U32_MAXDEPTH]), kept to spare the fast path allocations.
  private readonly stNode: (U32Knode | null)[] = new Array<U32Knode | null>(TC_U32_MAXDEPTH).fill(null);
  private readonly stOff = new Int32Array(TC_U32_MAXDEPTH);
  private readonly stIdx = new Int32Array(TC_U32_MAXDEPTH);

  match(): boolean {
    return false;
  }

  override bindsTo(classid: number): boolean {
    if (this.root === null) return false;
    for (const b of this.root.buckets) for (const n of b) if (n.hasClassid && n.classid === classid) return true;
    for (const h of this.common!.hts) if (h !== this.root && h.prio === this.prio) for (const b of h.buckets) for (const n of b) if (n.hasClassid && n.classid === classid) return true;
    return false;
  }

  /** u32_init: the root table (800: for the qdisc's first u32 classifier). */
  init(common: U32Common): void {
    const h = common.tps === 0 ? 0x80000000 : common.genHtid();
    if (common.tps === 0) common.reset();
    this.common = common;
    this.root = new U32Hnode(h, this.prio, 1, true);
    common.hts.unshift(this.root);
    common.tps++;
  }

  /** u32_destroy: the root table goes; the last classifier of the qdisc takes every table with it. */
  destroy(): void {
    const c = this.common;
    if (c === null || this.root === null) return;
    for (const b of this.root.buckets) for (const n of b) this.unlinkNode(n);
    c.hts = c.hts.filter((h) => h !== this.root);
    if (--c.tps === 0) {
      for (const h of c.hts) for (const b of h.buckets) for (const n of b) for (const a of n.actions) a.unbind();
      c.reset();
    }
    this.root = null;
  }

  private unlinkNode(n: U32Knode): void {
    if (n.link !== null) n.link.links--;
    for (const a of n.actions) a.unbind();
  }

  /** u32_get: the table or node `handle` names, or null. */
  get(handle: number): U32Hnode | U32Knode | null {
    const c = this.common!;
    const ht = u32Htid(handle) === TC_U32_ROOT ? this.root : c.lookup(u32Htid(handle));
    if (ht === null) return null;
    if (u32Key(handle) === 0) return ht;
    return ht.find(handle);
  }

  /** u32_change for a new table or node (an existing handle was refused before, as cls_api does). */
  change(r: U32Request): void {
    const c = this.common!;
    if (r.divisor !== 0) {
      // A new hash table.
      const divisor = r.divisor;
      if ((divisor & (divisor - 1)) !== 0) throw kernel('cls_u32: Divisor is not a power of 2');
      if (divisor > 0x100) throw kernel('cls_u32: Exceeded maximum 256 hash buckets');
      if (u32Key(r.handle) !== 0) throw kernel('cls_u32: Divisor can only be used on a hash table');
      let handle = r.handle;
      if (handle === 0) {
        handle = c.genHtid();
        if (handle === 0) throw rtnl('Cannot allocate memory');
      } else if (c.lookup(handle) !== null) throw rtnl('File exists');
      c.hts.unshift(new U32Hnode(handle, this.prio, divisor, false));
      return;
    }
    let ht: U32Hnode | null;
    let htid: number;
    if (r.htid !== null) {
      htid = r.htid;
      if (u32Htid(htid) === TC_U32_ROOT) {
        ht = this.root!;
        htid = ht.handle;
      } else {
        ht = c.lookup(u32Htid(htid));
        if (ht === null) throw kernel('cls_u32: Specified hash table not found');
      }
    } else {
      ht = this.root!;
      htid = ht.handle;
    }
    if (ht.divisor - 1 < u32Hash(htid)) throw kernel('cls_u32: Specified hash table bucket exceeds the divisor');
    let handle: number;
    if (r.handle !== 0) {
      if (u32Htid(r.handle) !== 0 && u32Htid((r.handle ^ htid) >>> 0) !== 0) throw kernel('cls_u32: Handle specified hash table address mismatch');
      handle = ((htid & 0xfffff000) | u32Node(r.handle)) >>> 0;
      if (ht.find(handle) !== null) throw rtnl('No space left on device');
    } else {
      // gen_new_kid: the lowest free node id from 0x800 in the bucket.
      const base = (htid & 0xfffff000) >>> 0;
      let id = 0x800;
      while (id <= 0xfff && ht.find((base | id) >>> 0) !== null) id++;
      if (id > 0xfff) throw rtnl('No space left on device');
      handle = (base | id) >>> 0;
    }
    if (!r.selOk) throw kernel('cls_u32: Selector not specified');
    const n = r.node;
    if (r.link !== null) {
      if (u32Key(r.link) !== 0) throw kernel('cls_u32: u32 Link handle must be a hash table');
      if (r.link !== 0) {
        const down = c.lookup(r.link);
        if (down === null) throw kernel('cls_u32: Link hash table not found');
        if (down.isRoot) throw kernel('cls_u32: Not linking to root node');
        n.link = down;
        down.links++;
      }
    }
    n.handle = handle;
    n.up = ht;
    const b = ht.buckets[u32Hash(handle)];
    let i = 0;
    while (i < b.length && u32Node(b[i].handle) <= u32Node(handle)) i++;
    b.splice(i, 0, n);
  }

  /**
   * u32_change of a node that is there (`tc filter change|replace ... handle
   * H:B:N`): the selector stays (u32_init_knode copies it); the class, link
   * and actions given replace the node's (u32_set_parms).
   */
  changeExisting(x: U32Hnode | U32Knode, r: U32Request): void {
    if (!(x instanceof U32Knode)) throw kernel('cls_u32: Key node id cannot be zero');
    const n = r.node;
    if (r.link !== null) {
      if (u32Key(r.link) !== 0) throw kernel('cls_u32: u32 Link handle must be a hash table');
      let down: U32Hnode | null = null;
      if (r.link !== 0) {
        down = this.common!.lookup(r.link);
        if (down === null) throw kernel('cls_u32: Link hash table not found');
        if (down.isRoot) throw kernel('cls_u32: Not linking to root node');
        down.links++;
      }
      if (x.link !== null) x.link.links--;
      x.link = down;
    }
    if (n.hasClassid) {
      x.classid = n.classid;
      x.hasClassid = true;
    }
    // tcf_exts_validate: the actions given replace the old ones.
    for (const a of x.actions) a.unbind();
    x.actions = n.actions;
  }

  /**
   * u32_delete of `handle`: a node, or a table nothing links to; true when the
   * classifier is left empty and goes (the kernel's `last`).
   */
  delete(handle: number): boolean {
    const x = this.get(handle);
    if (x === null) throw kernel('Specified filter handle not found');
    const c = this.common!;
    if (x instanceof U32Knode) {
      const b = x.up!.buckets[u32Hash(x.handle)];
      b.splice(b.indexOf(x), 1);
      this.unlinkNode(x);
    } else {
      if (x.isRoot) throw kernel('cls_u32: Not allowed to delete root node');
      if (x.links > 0) throw kernel('cls_u32: Can not delete in-use filter');
      for (const b of x.buckets) for (const n of b) this.unlinkNode(n);
      c.hts = c.hts.filter((h) => h !== x);
    }
    return c.tps === 1 && this.root!.empty();
  }

  /** u32_classify. */
  override classifyTp(pkt: Packet, l3: number, res: TcResult, now: Ns): number {
    const b = pkt.buf;
    const start = pkt.start;
    const end = pkt.end;
    let ht = this.root!;
    let off = l3;
    let off2 = 0;
    let sdepth = 0;
    let bucket = ht.buckets[0];
    let idx = 0;
    for (;;) {
      let pushed = false;
      while (idx < bucket.length) {
        const n = bucket[idx];
        let ok = true;
        const keys = n.keys;
        for (let i = 0; i < keys.length; i++) {
          const k = keys[i];
          const t = off + k.off + (off2 & k.offmask);
          // skb_header_pointer fails: the whole classifier answers no match.
          if (t < start || t + 4 > end) return -1;
          const w = ((b[t] << 24) | (b[t + 1] << 16) | (b[t + 2] << 8) | b[t + 3]) >>> 0;
          if ((((w ^ k.val) & k.mask) >>> 0) !== 0) {
            ok = false;
            break;
          }
        }
        if (!ok) {
          idx++;
          continue;
        }
        const down = n.link;
        if (down === null) {
          // check_terminal
          if ((n.flags & TC_U32_TERMINAL) !== 0) {
            res.classid = n.classid;
            const r = n.actions.length === 0 ? TC_ACT_OK : n.execActions(pkt, now);
            if (r >= 0) return r;
          }
          idx++;
          continue;
        }
        // PUSH
        if (sdepth >= TC_U32_MAXDEPTH) return -1;
        this.stNode[sdepth] = n;
        this.stOff[sdepth] = off;
        this.stIdx[sdepth] = idx;
        sdepth++;
        let sel = 0;
        if (down.divisor > 1) {
          const t = off + n.hoff;
          if (t < start || t + 4 > end) return -1;
          const w = ((b[t] << 24) | (b[t + 1] << 16) | (b[t + 2] << 8) | b[t + 3]) >>> 0;
          sel = (down.divisor - 1) & (((w & n.hmask) >>> 0) >>> n.fshift);
        }
        if ((n.flags & (TC_U32_VAROFFSET | TC_U32_OFFSET | TC_U32_EAT)) !== 0) {
          if ((n.flags & (TC_U32_OFFSET | TC_U32_VAROFFSET)) !== 0) {
            off2 = n.off + 3;
            if ((n.flags & TC_U32_VAROFFSET) !== 0) {
              const t = off + n.offoff;
              if (t < start || t + 2 > end) return -1;
              off2 += (((b[t] << 8) | b[t + 1]) & n.offmask) >>> n.offshift;
            }
            off2 &= ~3;
          }
          if ((n.flags & TC_U32_EAT) !== 0) {
            off += off2;
            off2 = 0;
          }
          if (off >= end) break; // to POP
        }
        ht = down;
        bucket = ht.buckets[sel];
        idx = 0;
        pushed = true;
        break;
      }
      if (pushed) continue;
      // POP
      if (sdepth === 0) return -1;
      sdepth--;
      const n = this.stNode[sdepth]!;
      off = this.stOff[sdepth];
      idx = this.stIdx[sdepth];
      ht = n.up!;
      bucket = ht.buckets[u32Hash(n.handle)];
      if ((n.flags & TC_U32_TERMINAL) !== 0) {
        res.classid = n.classid;
        const r = n.actions.length === 0 ? TC_ACT_OK : n.execActions(pkt, now);
        if (r >= 0) return r;
      }
      idx++;
    }
  }

  /** Every table of this priority in the qdisc, then their nodes, as u32_walk dumps them. */
  walk(): (U32Hnode | U32Knode)[] {
    const out: (U32Hnode | U32Knode)[] = [];
    for (const h of this.common!.hts) {
      if (h.prio !== this.prio) continue;
      out.push(h);
      for (const b of h.buckets) for (const n of b) out.push(n);
    }
    return out;
  }
}

// ---- printing (f_u32.c u32_print_opt) ----

const hex8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** sprint_u32_handle. */
export function sprintU32Handle(h: number): string {
  if (h === 0) return 'none';
  const htid = u32Htid(h) >>> 20;
  const hash = u32Hash(h);
  const node = u32Node(h);
  let s = '';
  if (htid !== 0) s += `${htid.toString(16)}:`;
  if (node !== 0 || hash !== 0) {
    if (hash !== 0) s += hash.toString(16);
    if (node !== 0) s += `:${node.toString(16)}`;
  }
  return s;
}

/** The text after `filter ... u32 chain 0 ` for a table or a node (without actions), lines joined by `\n`. */
export function printU32(x: U32Hnode | U32Knode, fmtClass: (h: number) => string): string {
  if (x instanceof U32Hnode) return `fh ${sprintU32Handle(x.handle)} ht divisor ${x.divisor} `;
  const n = x;
  let s = `fh ${sprintU32Handle(n.handle)} order ${u32Node(n.handle)} `;
  s += `key ht ${(u32Htid(n.handle) >>> 20).toString(16)} bkt ${u32Hash(n.handle).toString(16)} `;
  if (n.hasClassid) s += `${(n.flags & TC_U32_TERMINAL) !== 0 ? '*' : ''}flowid ${fmtClass(n.classid)} `;
  else if ((n.flags & TC_U32_TERMINAL) !== 0) s += 'terminal flowid ';
  if (n.link !== null) s += `link ${sprintU32Handle(n.link.handle)} `;
  s += 'not_in_hw ';
  for (const k of n.keys) s += `\n  match ${hex8(k.val)}/${hex8(k.mask)} at ${k.offmask ? 'nexthdr+' : ''}${k.off}`;
  if ((n.flags & (TC_U32_VAROFFSET | TC_U32_OFFSET)) !== 0) {
    s += '\n    offset ';
    if ((n.flags & TC_U32_VAROFFSET) !== 0) s += `${n.offmask.toString(16).padStart(4, '0')}>>${n.offshift} at ${n.offoff} `;
    if (n.off !== 0) s += `plus ${n.off} `;
  }
  if ((n.flags & TC_U32_EAT) !== 0) s += ' eat ';
  if (n.hmask !== 0) s += `\n    hash mask ${hex8(n.hmask)} at ${n.hoff} `;
  return s;
}

/** The same in `tc -j` (print_* with PRINT_ANY keys): the options object's pairs. */
export function u32JsonPairs(x: U32Hnode | U32Knode, fmtClass: (h: number) => string): [string, unknown][] {
  if (x instanceof U32Hnode) return [['fh', sprintU32Handle(x.handle)], ['ht_divisor', x.divisor]];
  const n = x;
  const o: [string, unknown][] = [
    ['fh', sprintU32Handle(n.handle)],
    ['order', u32Node(n.handle)],
    ['key_ht', (u32Htid(n.handle) >>> 20).toString(16)],
    ['bkt', u32Hash(n.handle).toString(16)],
  ];
  if (n.hasClassid) o.push(['flowid', fmtClass(n.classid)]);
  if (n.link !== null) o.push(['link', sprintU32Handle(n.link.handle)]);
  o.push(['not_in_hw', true]);
  for (const k of n.keys)
    o.push(['match', [['value', (k.val >>> 0).toString(16)], ['mask', (k.mask >>> 0).toString(16)], ['offmask', k.offmask ? 'nexthdr+' : ''], ['off', k.off]]]);
  if ((n.flags & TC_U32_VAROFFSET) !== 0) o.push(['offset_mask', n.offmask.toString(16)], ['offset_shift', n.offshift], ['offset_off', n.offoff]);
  if ((n.flags & (TC_U32_VAROFFSET | TC_U32_OFFSET)) !== 0 && n.off !== 0) o.push(['plus', n.off]);
  if (n.hmask !== 0) o.push(['hash_mask', n.hmask.toString(16)], ['hash_off', n.hoff]);
  return o;
}

// ---- parsing (f_u32.c u32_parse_opt) ----

export const U32_USAGE =
  'Usage: ... u32 [ match SELECTOR ... ] [ link HTID ] [ classid CLASSID ]\n' +
  '               [ action ACTION_SPEC ] [ offset OFFSET_SPEC ]\n' +
  '               [ ht HTID ] [ hashkey HASHKEY_SPEC ]\n' +
  '               [ sample SAMPLE ] [skip_hw | skip_sw]\n' +
  'or         u32 divisor DIVISOR\n' +
  '\n' +
  'Where: SELECTOR := SAMPLE SAMPLE ...\n' +
  '       SAMPLE := { ip | ip6 | udp | tcp | icmp | u{32|16|8} | mark }\n' +
  '                 SAMPLE_ARGS [ divisor DIVISOR ]\n' +
  '       FILTERID := X:Y:Z\n' +
  '\n' +
  'NOTE: CLASSID is parsed at hexadecimal input.';

/** get_u32_handle: HTID:HASH:NODE in hex (or 0xNNNNNNNN); null if it does not read. */
export function getU32Handle(s: string): number | null {
  if (!s.includes(':')) {
    if (s.startsWith('0x')) return getU32(s, 16);
    return null;
  }
  const parts = s.split(':');
  // strtoul on each part: empty reads 0; anything else must be hex digits only up to the next ':'.
  const hex = (p: string | undefined): number | null => {
    if (p === undefined || p === '') return 0;
    if (!/^[0-9a-fA-F]+$/.test(p)) return null;
    return parseInt(p, 16);
  };
  const htid = hex(parts[0]);
  const hash = hex(parts[1]);
  const node = parts.length > 2 ? hex(parts.slice(2).join(':')) : 0;
  if (htid === null || hash === null || node === null) return null;
  if (htid >= 0x1000 || hash >= 0x100 || node >= 0x1000) return null;
  return ((htid << 20) | (hash << 12) | node) >>> 0;
}

/** A selector word list being read; `i` points at the next word. */
interface Words {
  a: string[];
  i: number;
}

const incomplete = (): TcParseError => new TcParseError('Command line is not complete. Try option "help"', 255);

function nextArg(w: Words): string {
  if (++w.i >= w.a.length) throw incomplete();
  return w.a[w.i];
}

/** pack_key: merges with a key at the same offset (refusing a contradiction); false where tc fails. */
function packKey(keys: U32Key[], val: number, mask: number, off: number, offmask: number): boolean {
  val = (val & mask) >>> 0;
  for (const k of keys) {
    if (k.off === off && k.offmask === offmask) {
      const inter = (mask & k.mask) >>> 0;
      if ((((val ^ k.val) & inter) >>> 0) !== 0) return false;
      k.val = (k.val | val) >>> 0;
      k.mask = (k.mask | mask) >>> 0;
      return true;
    }
  }
  if (keys.length >= 128 || off % 4 !== 0) return false;
  keys.push({ val, mask: mask >>> 0, off, offmask });
  return true;
}

function packKey16(keys: U32Key[], v: number, m: number, off: number, offmask: number): boolean {
  if (v > 0xffff || m > 0xffff) return false;
  if ((off & 3) === 0) {
    v <<= 16;
    m <<= 16;
  }
  return packKey(keys, v >>> 0, m >>> 0, off & ~3, offmask);
}

function packKey8(keys: U32Key[], v: number, m: number, off: number, offmask: number): boolean {
  if (v > 0xff || m > 0xff) return false;
  const sh = [24, 16, 8, 0][off & 3];
  return packKey(keys, (v << sh) >>> 0, (m << sh) >>> 0, off & ~3, offmask);
}

/** parse_at: `[nexthdr+]N`. */
function parseAt(w: Words, at: { off: number; offmask: number }): boolean {
  let p = w.a[w.i];
  if (p === undefined) return false;
  if (p.length > 8 && p.startsWith('nexthdr+')) {
    at.offmask = -1;
    p = p.slice(8);
  } else if (p.length <= 8 && 'nexthdr+'.startsWith(p)) {
    at.offmask = -1;
    p = nextArg(w);
  }
  const v = getInteger(p);
  if (v === null || v < -0x80000000 || v > 0x7fffffff) return false;
  at.off = v;
  w.i++;
  return true;
}

/** parse_u32/u16/u8: `VAL MASK [at [nexthdr+]OFF]`. */
function parseUn(w: Words, keys: U32Key[], width: 32 | 16 | 8, off: number, offmask: number): boolean {
  if (w.a.length - w.i < 2) return false;
  const v = getU32(w.a[w.i], 0);
  if (v === null) return false;
  w.i++;
  const m = getU32(w.a[w.i], 16);
  if (m === null) return false;
  w.i++;
  if (width === 8 && (v > 0xff || m > 0xff)) return false;
  const at = { off, offmask };
  if (w.i < w.a.length && w.a[w.i] === 'at') {
    nextArg(w);
    if (!parseAt(w, at)) return false;
  }
  if (width === 32) return packKey(keys, v, m, at.off, at.offmask);
  if (width === 16) return packKey16(keys, v, m, at.off, at.offmask);
  return packKey8(keys, v, m, at.off, at.offmask);
}

/** parse_ip_addr: `A.B.C.D[/LEN] [at OFF]`. */
function parseIpAddr(w: Words, keys: U32Key[], off: number): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(w.a[w.i] ?? '');
  if (m === null || [m[1], m[2], m[3], m[4]].some((x) => +x > 255) || (m[5] !== undefined && +m[5] > 32)) return false;
  w.i++;
  const addr = ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0;
  const len = m[5] === undefined ? 32 : +m[5];
  const at = { off, offmask: 0 };
  if (w.i < w.a.length && w.a[w.i] === 'at') {
    nextArg(w);
    if (!parseAt(w, at)) return false;
  }
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return packKey(keys, addr, mask, at.off, at.offmask);
}

const matchesWord = (a: string, w: string): boolean => a.length > 0 && a.length <= w.length && w.startsWith(a);

/** parse_selector: u32|u16|u8|ip|tcp|udp|icmp (ip6, mark and ether are not kept by this stack's u32). */
function parseSelector(w: Words, keys: U32Key[]): boolean {
  const kind = w.a[w.i];
  if (kind === undefined) return false;
  if (matchesWord(kind, 'u32')) {
    nextArg(w);
    return parseUn(w, keys, 32, 0, 0);
  }
  if (matchesWord(kind, 'u16')) {
    nextArg(w);
    return parseUn(w, keys, 16, 0, 0);
  }
  if (matchesWord(kind, 'u8')) {
    nextArg(w);
    return parseUn(w, keys, 8, 0, 0);
  }
  if (matchesWord(kind, 'ip')) {
    nextArg(w);
    if (w.a.length - w.i < 2) return false;
    const f = w.a[w.i];
    if (f === 'src' || f === 'dst') {
      nextArg(w);
      return parseIpAddr(w, keys, f === 'src' ? 12 : 16);
    }
    if (f === 'tos' || matchesWord(f, 'dsfield') || matchesWord(f, 'precedence')) {
      nextArg(w);
      return parseUn(w, keys, 8, 1, 0);
    }
    const u8f: Record<string, number> = { ihl: 0, protocol: 9, icmp_type: 20, icmp_code: 21 };
    if (u8f[f] !== undefined) {
      nextArg(w);
      return parseUn(w, keys, 8, u8f[f], 0);
    }
    if (f === 'sport' || f === 'dport') {
      nextArg(w);
      return parseUn(w, keys, 16, f === 'sport' ? 20 : 22, 0);
    }
    const frag: Record<string, [number, number]> = { nofrag: [0, 0x3fff], firstfrag: [0x2000, 0x3fff], df: [0x4000, 0x4000], mf: [0x2000, 0x2000] };
    if (frag[f] !== undefined) {
      w.i++;
      return packKey16(keys, frag[f][0], frag[f][1], 6, 0);
    }
    return false;
  }
  if (matchesWord(kind, 'udp') || matchesWord(kind, 'tcp')) {
    nextArg(w);
    if (w.a.length - w.i < 2) return false;
    const f = w.a[w.i];
    if (f !== 'src' && f !== 'dst') return false;
    nextArg(w);
    return parseUn(w, keys, 16, f === 'src' ? 0 : 2, -1);
  }
  if (matchesWord(kind, 'icmp')) {
    nextArg(w);
    if (w.a.length - w.i < 2) return false;
    const f = w.a[w.i];
    if (f !== 'type' && f !== 'code') return false;
    nextArg(w);
    return parseUn(w, keys, 8, f === 'type' ? 0 : 1, -1);
  }
  return false;
}

/** get_tc_classid for flowid/classid. */
function parseClassid(s: string): number | null {
  if (s === 'root') return 0xffffffff;
  if (s === 'none') return 0;
  const m = /^([0-9a-fA-F]*)(?::([0-9a-fA-F]*))?$/.exec(s);
  if (m === null || (m[1] === '' && m[2] === undefined)) return null;
  const maj = m[1] === '' ? 0 : parseInt(m[1], 16);
  if (m[2] === undefined) return maj > 0xffffffff ? null : maj >>> 0;
  const min = m[2] === '' ? 0 : parseInt(m[2], 16);
  if (maj >= 0x10000 || min >= 0x10000) return null;
  return ((maj << 16) | min) >>> 0;
}

/**
 * u32_parse_opt: the words after `u32` (and the `handle` tc was given) as
 * the request the kernel gets; police/action words bind into `table`.
 */
export function parseU32(args: string[], handleWord: string | null, clock: ActClock, table: ActionTable | null, est: EstimatorSpec | null = null): U32Filter {
  const f = new U32Filter();
  const illegal = (what: string): never => {
    throw new TcParseError(`Illegal "${what}"`, 1);
  };
  let handle = 0;
  if (handleWord !== null) {
    const h = getU32Handle(handleWord);
    if (h === null) throw new TcParseError('Illegal filter ID', 1);
    handle = h;
  }
  const n = new U32Knode(null);
  const req: U32Request = { handle, htid: null, divisor: 0, link: null, selOk: false, node: n };
  f.req = req;
  let htid = 0;
  let sampleOk = false;
  let terminalOk = false;
  let order = 0;
  const w: Words = { a: args, i: 0 };
  while (w.i < args.length) {
    const a = args[w.i];
    if (matchesWord(a, 'match')) {
      nextArg(w);
      if (!parseSelector(w, n.keys)) illegal('match');
      req.selOk = true;
      continue;
    } else if (matchesWord(a, 'offset')) {
      nextArg(w);
      // parse_offset
      while (w.i < args.length) {
        const o = args[w.i];
        if (matchesWord(o, 'plus')) {
          const v = getInteger(nextArg(w));
          if (v === null) illegal('offset');
          n.off = v!;
          n.flags |= TC_U32_OFFSET;
        } else if (matchesWord(o, 'at')) {
          const v = getInteger(nextArg(w));
          if (v === null) illegal('offset');
          if (v! % 2 !== 0) throw new TcParseError('offset "at" must be even\nIllegal "offset"', 1);
          n.offoff = v!;
          n.flags |= TC_U32_VAROFFSET;
        } else if (matchesWord(o, 'mask')) {
          const v = getU32(nextArg(w), 16);
          if (v === null || v > 0xffff) illegal('offset');
          n.offmask = v!;
          n.flags |= TC_U32_VAROFFSET;
        } else if (matchesWord(o, 'shift')) {
          const v = getInteger(nextArg(w));
          if (v === null) illegal('offset');
          n.offshift = v!;
          n.flags |= TC_U32_VAROFFSET;
        } else if (matchesWord(o, 'eat')) {
          n.flags |= TC_U32_EAT;
        } else break;
        w.i++;
      }
      continue;
    } else if (matchesWord(a, 'hashkey')) {
      nextArg(w);
      while (w.i < args.length) {
        const o = args[w.i];
        if (matchesWord(o, 'mask')) {
          const v = getU32(nextArg(w), 16);
          if (v === null) illegal('hashkey');
          n.hmask = v!;
        } else if (matchesWord(o, 'at')) {
          const v = getInteger(nextArg(w));
          if (v === null || v % 4 !== 0) illegal('hashkey');
          n.hoff = v!;
        } else break;
        w.i++;
      }
      continue;
    } else if (matchesWord(a, 'classid') || a === 'flowid') {
      const c = parseClassid(nextArg(w));
      if (c === null) illegal('classid');
      n.classid = c!;
      n.hasClassid = true;
      n.flags |= TC_U32_TERMINAL;
    } else if (matchesWord(a, 'divisor')) {
      const d = getU32(nextArg(w), 0);
      if (d === null || d === 0 || d > 0x100 || ((d - 1) & d) !== 0) illegal('divisor');
      req.divisor = d!;
    } else if (matchesWord(a, 'order')) {
      const o = getU32(nextArg(w), 0);
      if (o === null) illegal('order');
      order = o!;
    } else if (a === 'link') {
      const l = getU32Handle(nextArg(w));
      if (l === null) illegal('link');
      if (l !== 0 && u32Node(l!) !== 0) throw new TcParseError('"link" must be a hash table.', 1);
      req.link = l;
    } else if (a === 'ht') {
      const h = getU32Handle(nextArg(w));
      if (h === null) illegal('ht');
      if (handleWord !== null && u32Node(h!) !== 0) throw new TcParseError('"ht" must be a hash table.', 1);
      htid = sampleOk ? ((htid & 0xff000) | (h! & 0xfff00000)) >>> 0 : (h! & 0xfffff000) >>> 0;
    } else if (a === 'sample') {
      nextArg(w);
      const keys: U32Key[] = [];
      if (!parseSelector(w, keys)) illegal('sample');
      if (keys.length !== 1) throw new TcParseError('"sample" must contain exactly ONE key.', 1);
      let divisor = 0x100;
      if (w.i < args.length && args[w.i] === 'divisor') {
        const d = getU32(nextArg(w), 0);
        if (d === null || d === 0 || d > 0x100 || ((d - 1) & d) !== 0) throw new TcParseError('Illegal sample "divisor"', 1);
        divisor = d!;
        nextArg(w);
      }
      // f_u32.c u32_hash_fold: the masked value shifted down to the mask's lowest bit.
      const k = keys[0];
      const fshift = k.mask !== 0 ? 31 - Math.clz32(k.mask & -k.mask) : 0;
      const hash = ((k.val & k.mask) >>> 0) >>> fshift;
      htid = (((hash % divisor) << 12) | (htid & 0xfff00000)) >>> 0;
      sampleOk = true;
      continue;
    } else if (matchesWord(a, 'action') || matchesWord(a, 'police')) {
      const at = matchesWord(a, 'action') ? w.i + 1 : w.i;
      if (args[at] !== 'police') throw new TcParseError(`bad action type ${args[at]}\nIllegal "action"`, 255);
      let r: { act: PoliceAction; next: number };
      try {
        r = parsePolice(args, at + 1, clock.now(), est);
      } catch (e) {
        if (e instanceof PoliceSyntaxError) throw new TcParseError(policeError(e, at !== w.i, args.length - at), 1);
        throw e;
      }
      let act = r.act;
      const existing = act.index !== 0 && act.rate === 0 && act.avrate === 0 ? table?.police.get(act.index) : undefined;
      if (existing !== undefined) {
        act = existing;
        act.refcnt++;
      } else if (table !== null) table.insert(act, false);
      else act.index = n.actions.length + 1;
      act.bindcnt++;
      n.actions.push(act);
      terminalOk = true;
      w.i = r.next;
      continue;
    } else if (a === 'skip_hw' || a === 'skip_sw') {
      // Only software here: accepted, as the kernel does without offload.
    } else if (a === 'help') {
      throw new TcParseError(U32_USAGE, 1);
    } else {
      throw new TcParseError(`What is "${a}"?\n${U32_USAGE}`, 1);
    }
    w.i++;
  }
  if (terminalOk) n.flags |= TC_U32_TERMINAL;
  if (order !== 0) {
    if (u32Node(req.handle) !== 0 && order !== u32Node(req.handle)) throw new TcParseError('"order" contradicts "handle"', 1);
    req.handle = (req.handle | order) >>> 0;
  }
  if (htid !== 0) req.htid = htid;
  if (n.hmask !== 0) n.fshift = 31 - Math.clz32(n.hmask & -n.hmask);
  return f;
}
