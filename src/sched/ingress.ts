/**
 * The ingress and clsact qdiscs (sch_ingress.c): no queue, only a place for
 * filters on packets coming in (and, for clsact, going out) at handle ffff:,
 * parent ffff:fff1. Packets that pass through are counted in their stats.
 * clsact has two filter blocks, ingress (ffff:fff2) and egress (ffff:fff3);
 * ingress has one, which any minor of ffff: names (ingress_find). The u32
 * hash tables are the qdisc's, shared by both blocks.
 *
 * As the egress hook (net/core/dev.c sch_handle_egress) clsact runs its
 * egress filters on each packet the device is to send, before the root
 * qdisc: drop frees the packet and counts it on clsact, stolen frees it,
 * anything else goes on to the root qdisc.
 *
 * As the Interface's ingressHook (net/core/dev.c sch_handle_ingress) it runs
 * the filters on each received IP packet before the IP layer: a packet whose
 * verdict is drop is counted and freed, stolen ones are freed; others go on.
 * Lengths are the IP datagram's (the link header is already pulled, as
 * qdisc_pkt_len is at ingress).
 */
import type { Packet } from '../packet/packet.js';
import type { RateEstimator } from './estimator.js';
import { type FilterList, TC_ACT_SHOT, TC_ACT_STOLEN, U32Common } from './filter.js';
import { type EgressHook, NET_XMIT_SUCCESS, QdiscStats, TcParseError, type IngressHook, type Qdisc, type QdiscKind } from './qdisc.js';

export class IngressQdisc implements Qdisc, IngressHook, EgressHook {
  readonly stats = new QdiscStats();
  readonly classes = null;
  /** Filters at ffff: (clsact: ffff:fff2); null until the first `tc filter add`. */
  filters: FilterList | null = null;
  /** clsact's egress filters (ffff:fff3); null until the first `tc filter add ... egress`. */
  egressFilters: FilterList | null = null;
  /** `estimator`: over the packets that pass (it advances itself: this qdisc is not in the egress path's list). */
  est: RateEstimator | null = null;
  /** u32's hash tables (tc_u_common), one set for the qdisc. */
  readonly u32 = new U32Common();

  constructor(
    readonly kind: 'ingress' | 'clsact',
    public handle: number,
    public parent: number,
  ) {}

  /** A packet went through (mini_qdisc_bstats_cpu_update). */
  count(len: number): void {
    this.est?.advance();
    this.stats.packets++;
    this.stats.bytes += len;
  }

  ingress(pkt: Packet): boolean {
    this.count(pkt.end - pkt.start);
    if (this.filters === null) return false;
    pkt.l3 = pkt.start; // the IP header, as the IP layer will set it
    return this.consumed(this.filters.classify(pkt).verdict, pkt);
  }

  /** sch_handle_egress: true when the packet was consumed (dropped or stolen). */
  egress(pkt: Packet): boolean {
    const fl = this.egressFilters;
    // No egress filters: no egress mini-qdisc, nothing run or counted.
    if (fl === null || fl.filters.length === 0) return false;
    this.count(pkt.end - pkt.start);
    return this.consumed(fl.classify(pkt).verdict, pkt);
  }

  /** A shot packet is counted as a drop; shot or stolen, it is consumed and freed. */
  private consumed(v: number, pkt: Packet): boolean {
    if (v === TC_ACT_SHOT) {
      this.stats.drops++;
      pkt.sent();
      return true;
    }
    if (v === TC_ACT_STOLEN) {
      pkt.sent();
      return true;
    }
    return false;
  }

  enqueue(pkt: Packet): number {
    this.count(pkt.end - pkt.start);
    return NET_XMIT_SUCCESS;
  }

  dequeue(): null {
    return null;
  }

  peek(): null {
    return null;
  }

  reset(): void {}

  change(): void {}

  printOptions(): string {
    return this.kind === 'ingress' ? '---------------- ' : '';
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    return {};
  }

  jsonXstats(): null {
    return null;
  }
}

export const ingressKind: QdiscKind = {
  name: 'ingress',
  parse(args) {
    // q_ingress.c: `handle X` is read and ignored.
    for (let i = 0; i < args.length; i++) {
      if (args[i] === 'handle') {
        if (++i >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
      } else {
        throw new TcParseError(`What is "${args[i]}"?\nUsage: ... ingress`, 1);
      }
    }
    return {};
  },
  create: (_p, _host, handle, parent) => new IngressQdisc('ingress', handle, parent),
};

export const clsactKind: QdiscKind = {
  name: 'clsact',
  parse(args) {
    if (args.length > 0) throw new TcParseError(`What is "${args[0]}"?\nUsage: ... clsact`, 1);
    return {};
  },
  create: (_p, _host, handle, parent) => new IngressQdisc('clsact', handle, parent),
};
