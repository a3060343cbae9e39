/**
 * pfifo and bfifo (sch_fifo.c): one FIFO, a limit in packets or in bytes,
 * tail drop. Without a limit, pfifo takes txqueuelen packets (at least 1)
 * and bfifo txqueuelen × MTU bytes (fifo_init).
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_SUCCESS, QdiscStats, qdiscDrop, TcParseError, type Qdisc, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { getSize, sprintSize } from './units.js';
import { pktLen } from './qdisc.js';

export interface FifoParams {
  limit: number | undefined;
}

export class FifoQdisc implements Qdisc {
  readonly stats = new QdiscStats();
  readonly classes = null;
  readonly q = new PktRing();
  limit = 0;

  constructor(
    readonly kind: 'pfifo' | 'bfifo',
    public handle: number,
    public parent: number,
    params: FifoParams,
    host: SchedHost,
  ) {
    this.change(params, host);
  }

  enqueue(pkt: Packet): number {
    const st = this.stats;
    const len = pktLen(pkt);
    if (this.kind === 'pfifo' ? this.q.length < this.limit : this.q.bytes + len <= this.limit) {
      this.q.push(pkt);
      st.qlen++;
      st.backlog += len;
      return NET_XMIT_SUCCESS;
    }
    return qdiscDrop(this, pkt);
  }

  dequeue(): Packet | null {
    const p = this.q.shift();
    if (p === null) return null;
    const st = this.stats;
    const len = pktLen(p);
    st.qlen--;
    st.backlog -= len;
    st.packets++;
    st.bytes += len;
    return p;
  }

  peek(): Packet | null {
    return this.q.peek();
  }

  reset(): void {
    this.q.drain((p) => p.sent());
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  change(params: unknown, host: SchedHost): void {
    const p = params as FifoParams;
    if (p.limit !== undefined) this.limit = p.limit;
    else if (this.kind === 'pfifo') this.limit = Math.max(host.txQueueLen, 1);
    else this.limit = Math.max(host.txQueueLen, 1) * (host.mtu + host.hardHeaderLen);
  }

  room(host: SchedHost): number {
    if (this.kind === 'pfifo') return this.limit - this.q.length;
    return Math.floor((this.limit - this.q.bytes) / (host.mtu + host.hardHeaderLen));
  }

  capacity(host: SchedHost): number {
    if (this.kind === 'pfifo') return this.limit;
    return Math.floor(this.limit / (host.mtu + host.hardHeaderLen));
  }

  printOptions(): string {
    // q_fifo.c: bfifo's limit as a size, pfifo's in packets.
    return this.kind === 'bfifo' ? `limit ${sprintSize(this.limit)}` : `limit ${this.limit}p`;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    return { limit: this.limit };
  }

  jsonXstats(): null {
    return null;
  }
}

/** q_fifo.c's fifo_parse_opt: `limit SIZE` (a size even for pfifo). */
export function parseFifo(id: string, args: string[]): FifoParams {
  let limit: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'limit') {
      if (i + 1 >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
      const v = getSize(args[++i]);
      if (v === null) throw new TcParseError(`${id}: Illegal value for "limit": "${args[i]}"`, 1);
      limit = v;
    } else {
      throw new TcParseError(`${id}: unknown parameter "${a}"\nUsage: ... <[p|b]fifo | pfifo_head_drop> [ limit NUMBER ]`, 1);
    }
  }
  return { limit };
}

function fifoKind(name: 'pfifo' | 'bfifo'): QdiscKind {
  return {
    name,
    parse: (args) => parseFifo(name, args),
    create: (params, host, handle, parent) => new FifoQdisc(name, handle, parent, params as FifoParams, host),
  };
}

export const pfifoKind = fifoKind('pfifo');
export const bfifoKind = fifoKind('bfifo');
