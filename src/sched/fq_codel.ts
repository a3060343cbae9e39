/**
 * fq_codel (RFC 8290; net/sched/sch_fq_codel.c): packets hashed by their
 * 5-tuple into `flows` queues, each run by CoDel; deficit round robin with
 * `quantum` bytes between the flows, new flows (RFC 8290 §4.2 "new_flows")
 * served before old ones, and on overflow a batch dropped from the head of
 * the fattest flow (fq_codel_drop).
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_CN, NET_XMIT_SUCCESS, QdiscStats, TcParseError, type Qdisc, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { flowHash, scale } from './flowhash.js';
import { CodelParams, CodelStats, CodelVars, CT_DISABLED, codelDequeue, ctToUs, usToCt, type CodelSource } from './codel.js';
import { getSize, getTime, getU32, illegal, incomplete, sprintSize, sprintTime } from './tcnum.js';
import { pktLen } from './qdisc.js';

export interface FqCodelOpts {
  limit?: number;
  flows?: number;
  quantum?: number;
  target?: number;
  interval?: number;
  ceThreshold?: number;
  ceSelector?: number;
  ceMask?: number;
  memoryLimit?: number;
  dropBatch?: number;
  ecn?: boolean;
}

const USAGE =
  'Usage: ... fq_codel   [ limit PACKETS ] [ flows NUMBER ]\n' +
  '\t\t\t[ memory_limit BYTES ]\n' +
  '\t\t\t[ target TIME ] [ interval TIME ]\n' +
  '\t\t\t[ quantum BYTES ] [ [no]ecn ]\n' +
  '\t\t\t[ ce_threshold TIME ]\n' +
  '\t\t\t[ ce_threshold_selector VALUE/MASK ]\n' +
  '\t\t\t[ drop_batch SIZE ]';

function next(args: string[], i: number): string {
  if (i + 1 >= args.length) throw incomplete();
  return args[i + 1];
}

function getU8(s: string): number | null {
  const v = getU32(s);
  return v === null || v > 255 ? null : v;
}

/** q_fq_codel.c fq_codel_parse_opt (a 0 means "not given", as there). */
export function parseFqCodel(args: string[]): FqCodelOpts {
  const o: FqCodelOpts = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'limit' || a === 'flows' || a === 'quantum' || a === 'drop_batch') {
      const v = getU32(next(args, i++));
      if (v === null) throw illegal(`Illegal "${a}"`);
      if (v === 0) continue;
      if (a === 'limit') o.limit = v;
      else if (a === 'flows') o.flows = v;
      else if (a === 'quantum') o.quantum = v;
      else o.dropBatch = v;
    } else if (a === 'target' || a === 'interval' || a === 'ce_threshold') {
      const v = getTime(next(args, i++));
      if (v === null) throw illegal(`Illegal "${a}"`);
      if (a === 'target') { if (v !== 0) o.target = v; }
      else if (a === 'interval') { if (v !== 0) o.interval = v; }
      else if (v !== 0xffffffff) o.ceThreshold = v;
    } else if (a === 'ce_threshold_selector') {
      const arg = next(args, i++);
      const slash = arg.indexOf('/');
      if (slash < 0) throw illegal('Missing mask for "ce_threshold_selector"');
      const mask = getU8(arg.slice(slash + 1));
      if (mask === null) throw illegal('Illegal mask for "ce_threshold_selector"');
      const sel = getU8(arg.slice(0, slash));
      if (sel === null) throw illegal('Illegal "ce_threshold_selector"');
      if (sel !== 0xff) {
        o.ceSelector = sel;
        o.ceMask = mask;
      }
    } else if (a === 'memory_limit') {
      const v = getSize(next(args, i++));
      if (v === null) throw illegal('Illegal "memory_limit"');
      if (v !== 0xffffffff) o.memoryLimit = v;
    } else if (a === 'ecn') o.ecn = true;
    else if (a === 'noecn') o.ecn = false;
    else if (a === 'help') throw new TcParseError(USAGE, 1);
    else throw new TcParseError(`What is "${a}"?\n${USAGE}`, 1);
  }
  return o;
}

/** RTNETLINK's answer to a value the kernel refuses (tc exits 2). */
const einval = (msg?: string): TcParseError =>
  new TcParseError(msg !== undefined ? `Error: ${msg}.` : 'RTNETLINK answers: Invalid argument', 2);

/** C's "%#x". */
const hashX = (v: number): string => (v === 0 ? '0' : `0x${v.toString(16)}`);

/** skb->truesize as SKB_TRUESIZE counts it: the data plus sk_buff and skb_shared_info (256 + 320 bytes). */
const truesize = (p: Packet): number => p.end - p.start + 576;

class Flow {
  readonly q = new PktRing(4);
  deficit = 0;
  readonly vars = new CodelVars();
  /** 0 none, 1 new_flows, 2 old_flows. */
  list = 0;
  next = -1;
}

/** A FIFO of flow indices (the kernel's new_flows / old_flows list heads). */
class FlowList {
  head = -1;
  tail = -1;
  length = 0;
}

export class FqCodelQdisc implements Qdisc, CodelSource {
  readonly kind = 'fq_codel';
  readonly stats = new QdiscStats();
  readonly classes = null;
  readonly cparams = new CodelParams();
  readonly cstats = new CodelStats();
  limit = 10 * 1024;
  flowsCnt = 1024;
  quantum: number;
  dropBatch = 64;
  memoryLimit = 32 << 20;
  memoryUsage = 0;
  dropOverlimit = 0;
  dropOvermemory = 0;
  newFlowCount = 0;
  flows: Flow[] = [];
  private readonly newFlows = new FlowList();
  private readonly oldFlows = new FlowList();
  private readonly perturbation: number;
  private cur: Flow | null = null;
  enqTime = 0;
  private host: SchedHost;
  private peeked: Packet | null = null;

  constructor(opts: FqCodelOpts, host: SchedHost, public handle: number, public parent: number) {
    this.host = host;
    this.quantum = host.mtu + host.hardHeaderLen;
    this.cparams.mtu = host.mtu + host.hardHeaderLen;
    this.cparams.ecn = true;
    this.perturbation = Math.floor(host.random() * 4294967296) >>> 0;
    this.apply(opts, true);
    for (let i = 0; i < this.flowsCnt; i++) this.flows.push(new Flow());
  }

  // sch_fq_codel.c fq_codel_change
  private apply(o: FqCodelOpts, init: boolean): void {
    if (o.flows !== undefined) {
      if (!init) throw einval();
      if (o.flows === 0 || o.flows > 65536) throw einval();
    }
    if (o.quantum !== undefined && o.quantum > 1 << 20) throw einval('Invalid quantum');
    if (o.flows !== undefined) this.flowsCnt = o.flows;
    if (o.target !== undefined) this.cparams.target = usToCt(o.target);
    if (o.ceThreshold !== undefined) this.cparams.ceThreshold = usToCt(o.ceThreshold);
    if (o.ceSelector !== undefined) {
      this.cparams.ceSelector = o.ceSelector;
      this.cparams.ceMask = o.ceMask ?? 0;
    }
    if (o.interval !== undefined) this.cparams.interval = usToCt(o.interval);
    if (o.limit !== undefined) this.limit = o.limit;
    if (o.ecn !== undefined) this.cparams.ecn = o.ecn;
    if (o.quantum !== undefined) this.quantum = Math.max(256, o.quantum);
    if (o.dropBatch !== undefined) this.dropBatch = Math.max(1, o.dropBatch);
    if (o.memoryLimit !== undefined) this.memoryLimit = Math.min(2 ** 31, o.memoryLimit);
  }

  change(params: unknown, host: SchedHost): void {
    this.host = host;
    this.apply(params as FqCodelOpts, false);
    while (this.stats.qlen > this.limit || this.memoryUsage > this.memoryLimit) {
      const p = this.dequeue(host);
      if (p === null) break;
      // Counted as sent by dequeue; the kernel frees it and reduces the tree's backlog.
      this.stats.packets--;
      this.stats.bytes -= pktLen(p);
      this.stats.drops++;
      p.sent();
    }
  }

  private listPush(l: FlowList, idx: number, which: number): void {
    const f = this.flows[idx];
    f.next = -1;
    f.list = which;
    if (l.tail < 0) l.head = idx;
    else this.flows[l.tail].next = idx;
    l.tail = idx;
    l.length++;
  }

  private listShift(l: FlowList): void {
    const f = this.flows[l.head];
    l.head = f.next;
    if (l.head < 0) l.tail = -1;
    f.next = -1;
    f.list = 0;
    l.length--;
  }

  classify(pkt: Packet, host: SchedHost): number {
    return scale(flowHash(pkt, host, this.perturbation), this.flowsCnt);
  }

  /** fq_codel_drop: up to `max` packets from the head of the fattest flow, until half its backlog is gone. */
  private dropFattest(max: number): number {
    let maxBacklog = 0;
    let idx = 0;
    for (let i = 0; i < this.flowsCnt; i++) {
      if (this.flows[i].q.bytes > maxBacklog) {
        maxBacklog = this.flows[i].q.bytes;
        idx = i;
      }
    }
    const threshold = maxBacklog >> 1;
    const f = this.flows[idx];
    let len = 0;
    let n = 0;
    do {
      const p = f.q.shift() as Packet;
      len += pktLen(p);
      this.memoryUsage -= truesize(p);
      this.stats.backlog -= pktLen(p);
      this.stats.qlen--;
      p.sent();
    } while (++n < max && len < threshold && f.q.length > 0);
    this.stats.drops += n;
    return idx;
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    const idx = this.classify(pkt, host);
    const f = this.flows[idx];
    const len = pktLen(pkt);
    f.q.push(pkt, host.now());
    this.stats.backlog += len;
    if (f.list === 0) {
      this.listPush(this.newFlows, idx, 1);
      this.newFlowCount++;
      f.deficit = this.quantum;
    }
    this.memoryUsage += truesize(pkt);
    const memoryLimited = this.memoryUsage > this.memoryLimit;
    if (++this.stats.qlen <= this.limit && !memoryLimited) return NET_XMIT_SUCCESS;
    const prevQlen = this.stats.qlen;
    const dropped = this.dropFattest(this.dropBatch);
    const n = prevQlen - this.stats.qlen;
    this.dropOverlimit += n;
    if (memoryLimited) this.dropOvermemory += n;
    // The packet's own flow lost packets: tell the sender to slow down.
    return dropped === idx ? NET_XMIT_CN : NET_XMIT_SUCCESS;
  }

  codelDequeue(): Packet | null {
    const f = this.cur as Flow;
    if (f.q.length === 0) return null;
    this.enqTime = f.q.peekTime();
    const p = f.q.shift() as Packet;
    this.memoryUsage -= truesize(p);
    this.stats.qlen--;
    this.stats.backlog -= pktLen(p);
    return p;
  }

  codelDrop(pkt: Packet): void {
    this.stats.drops++;
    pkt.sent();
  }

  codelBacklog(): number {
    return this.stats.backlog;
  }

  private dequeueInner(host: SchedHost): Packet | null {
    const now = host.now();
    for (;;) {
      let l = this.newFlows;
      if (l.head < 0) {
        l = this.oldFlows;
        if (l.head < 0) return null;
      }
      const idx = l.head;
      const f = this.flows[idx];
      if (f.deficit <= 0) {
        // RFC 8290 §4.2: out of credit, to the end of the old list with a new quantum.
        f.deficit += this.quantum;
        this.listShift(l);
        this.listPush(this.oldFlows, idx, 2);
        continue;
      }
      this.cur = f;
      const p = codelDequeue(this, f.vars, this.cparams, this.cstats, now, host);
      if (p === null) {
        this.listShift(l);
        // Force a pass through old_flows to prevent starvation (RFC 8290 §4.2).
        if (l === this.newFlows && this.oldFlows.head >= 0) this.listPush(this.oldFlows, idx, 2);
        continue;
      }
      f.deficit -= pktLen(p);
      return p;
    }
  }

  dequeue(host: SchedHost): Packet | null {
    let p = this.peeked;
    if (p !== null) {
      this.peeked = null;
      this.stats.qlen--;
      this.stats.backlog -= pktLen(p);
    } else p = this.dequeueInner(host);
    if (p !== null) {
      this.stats.packets++;
      this.stats.bytes += pktLen(p);
    }
    return p;
  }

  peek(host: SchedHost): Packet | null {
    if (this.peeked === null) {
      const p = this.dequeueInner(host);
      if (p !== null) {
        this.stats.qlen++;
        this.stats.backlog += pktLen(p);
      }
      this.peeked = p;
    }
    return this.peeked;
  }

  reset(): void {
    for (const f of this.flows) {
      for (let p = f.q.shift(); p !== null; p = f.q.shift()) p.sent();
      f.vars.reset();
      f.deficit = 0;
      f.list = 0;
      f.next = -1;
    }
    if (this.peeked !== null) this.peeked.sent();
    this.peeked = null;
    this.newFlows.head = this.newFlows.tail = -1;
    this.oldFlows.head = this.oldFlows.tail = -1;
    this.newFlows.length = this.oldFlows.length = 0;
    this.memoryUsage = 0;
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  get newFlowsLen(): number {
    return this.newFlows.length;
  }

  get oldFlowsLen(): number {
    return this.oldFlows.length;
  }

  printOptions(): string {
    // q_fq_codel.c fq_codel_print_opt over what fq_codel_dump sends.
    const c = this.cparams;
    let s = `limit ${this.limit}p flows ${this.flowsCnt} quantum ${this.quantum} target ${sprintTime(ctToUs(c.target))} `;
    if (c.ceThreshold !== CT_DISABLED) {
      s += `ce_threshold ${sprintTime(ctToUs(c.ceThreshold))} `;
      if (c.ceMask || c.ceSelector) s += `ce_threshold_selector ${hashX(c.ceSelector)}/${hashX(c.ceMask)} `;
    }
    s += `interval ${sprintTime(ctToUs(c.interval))} memory_limit ${sprintSize(this.memoryLimit)} `;
    if (c.ecn) s += 'ecn ';
    s += `drop_batch ${this.dropBatch} `;
    return s;
  }

  printXstats(): string {
    let s = `  maxpacket ${this.cstats.maxpacket} drop_overlimit ${this.dropOverlimit} new_flow_count ${this.newFlowCount} ecn_mark ${this.cstats.ecnMark}`;
    if (this.cstats.ceMark) s += ` ce_mark ${this.cstats.ceMark}`;
    if (this.memoryUsage) s += ` memory_used ${this.memoryUsage}`;
    if (this.dropOvermemory) s += ` drop_overmemory ${this.dropOvermemory}`;
    s += `\n  new_flows_len ${this.newFlows.length} old_flows_len ${this.oldFlows.length}\n`;
    return s;
  }

  jsonOptions(): Record<string, unknown> {
    const c = this.cparams;
    const o: Record<string, unknown> = { limit: this.limit, flows: this.flowsCnt, quantum: this.quantum, target: ctToUs(c.target) };
    if (c.ceThreshold !== CT_DISABLED) {
      o.ce_threshold = ctToUs(c.ceThreshold);
      if (c.ceMask || c.ceSelector) {
        o.ce_threshold_selector = c.ceSelector;
        o.ce_threshold_mask = c.ceMask;
      }
    }
    o.interval = ctToUs(c.interval);
    o.memory_limit = this.memoryLimit;
    if (c.ecn) o.ecn = true;
    o.drop_batch = this.dropBatch;
    return o;
  }

  jsonXstats(): Record<string, unknown> {
    const o: Record<string, unknown> = {
      maxpacket: this.cstats.maxpacket,
      drop_overlimit: this.dropOverlimit,
      new_flow_count: this.newFlowCount,
      ecn_mark: this.cstats.ecnMark,
    };
    if (this.cstats.ceMark) o.ce_mark = this.cstats.ceMark;
    if (this.memoryUsage) o.memory_used = this.memoryUsage;
    if (this.dropOvermemory) o.drop_overmemory = this.dropOvermemory;
    o.new_flows_len = this.newFlows.length;
    o.old_flows_len = this.oldFlows.length;
    return o;
  }
}

export const fqCodelKind: QdiscKind = {
  name: 'fq_codel',
  parse: (args) => parseFqCodel(args),
  create: (params, host, handle, parent) => new FqCodelQdisc(params as FqCodelOpts, host, handle, parent),
};
