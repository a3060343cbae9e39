import type { Packet } from '../packet/packet.js';
import type { Interface } from '../link/interface.js';

/**
 * Netfilter hook points (the five of Linux's NF_INET_*). The IP layer runs each
 * hook at its place in the path; an empty hook costs one length check.
 */
export const VERDICT_ACCEPT = 0;
export const VERDICT_DROP = 1;
/** The hook took the packet (queued it, or sent it elsewhere). */
export const VERDICT_STOLEN = 2;
export type Verdict = typeof VERDICT_ACCEPT | typeof VERDICT_DROP | typeof VERDICT_STOLEN;

export type HookFn = (pkt: Packet, inIf: Interface | null, outIf: Interface | null) => Verdict;

export class HookPoint {
  private fns: { prio: number; fn: HookFn }[] = [];
  private list: HookFn[] = [];

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Lower priority runs first, like netfilter's hook priorities. */
  register(fn: HookFn, priority = 0): () => void {
    this.fns.push({ prio: priority, fn });
    this.fns.sort((a, b) => a.prio - b.prio);
    this.list = this.fns.map((e) => e.fn);
    return () => {
      this.fns = this.fns.filter((e) => e.fn !== fn);
      this.list = this.fns.map((e) => e.fn);
    };
  }

  run(pkt: Packet, inIf: Interface | null, outIf: Interface | null): Verdict {
    const l = this.list;
    for (let i = 0; i < l.length; i++) {
      const v = l[i](pkt, inIf, outIf);
      if (v !== VERDICT_ACCEPT) return v;
    }
    return VERDICT_ACCEPT;
  }
}

export class Hooks {
  readonly prerouting = new HookPoint();
  readonly input = new HookPoint();
  readonly forward = new HookPoint();
  readonly output = new HookPoint();
  readonly postrouting = new HookPoint();
}
