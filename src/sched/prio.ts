/**
 * prio (net/sched/sch_prio.c): `bands` classes N:1..N:bands, each with a leaf
 * qdisc (a pfifo of txqueuelen until one is grafted); a packet goes to the
 * band its priority maps to through `priomap` (priority from its TOS, as
 * pfifo_fast's), and dequeue takes from the lowest band that has a packet.
 * This kernel has no prio: parsing and printing follow iproute2 6.1's
 * q_prio.c, the checks sch_prio.c's prio_tune.
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_SUCCESS, QdiscStats, TcParseError, tcHandle, tcMajor, tcMinor, type Qdisc, type QdiscClasses, type QdiscKind, type SchedHost } from './qdisc.js';
import { FifoQdisc } from './fifo.js';
import { packetPriority, PRIO2BAND, TC_PRIO_MAX } from './prio-map.js';
import { getInteger, getU32, sprintSize } from './units.js';
import { pktLen } from './qdisc.js';

export interface PrioParams {
  bands: number;
  priomap: number[];
}

/** TCQ_PRIO_BANDS and TCQ_MIN_PRIO_BANDS. */
const MAX_BANDS = 16;
const MIN_BANDS = 2;

export class PrioQdisc implements Qdisc {
  readonly kind = 'prio';
  readonly stats = new QdiscStats();
  readonly classes: QdiscClasses;
  bands = 3;
  priomap: number[] = [...PRIO2BAND];
  queues: Qdisc[] = [];
  private readonly hh: number;

  constructor(
    public handle: number,
    public parent: number,
    params: PrioParams,
    host: SchedHost,
  ) {
    this.hh = host.hardHeaderLen;
    const self = this;
    const band = (classid: number): number => (tcMajor(classid) === tcMajor(self.handle) ? tcMinor(classid) - 1 : -1);
    this.classes = {
      leaf(classid) {
        const b = band(classid);
        return b >= 0 && b < self.bands ? self.queues[b] : null;
      },
      graft(classid, q, h) {
        const b = band(classid);
        if (b < 0 || b >= self.bands) throw new TcParseError('Error: Specified class not found.', 2);
        // prio_graft: nothing given is noop_qdisc; here a fresh default pfifo.
        const old = self.queues[b];
        self.stats.qlen -= old.stats.qlen;
        self.stats.backlog -= old.stats.backlog;
        old.reset();
        self.queues[b] = q ?? self.defaultChild(b, h);
      },
      list: () => Array.from({ length: self.bands }, (_, i) => tcHandle(tcMajor(self.handle), i + 1)),
      showClasses(_details, stats, classid) {
        let out = '';
        for (let i = 0; i < self.bands; i++) {
          const id = tcHandle(tcMajor(self.handle), i + 1);
          if (classid !== 0 && classid !== id) continue;
          const q = self.queues[i];
          out += `class prio ${tcMajor(id).toString(16)}:${(i + 1).toString(16)} parent ${tcMajor(self.handle).toString(16)}: `;
          if (q.handle !== 0) out += `leaf ${tcMajor(q.handle).toString(16)}: `;
          out += '\n';
          if (stats) {
            // prio_dump_class_stats: the leaf qdisc's counters.
            const st = q.stats;
            out += ` Sent ${st.bytes} bytes ${st.packets} pkt (dropped ${st.drops}, overlimits ${st.overlimits} requeues ${st.requeues}) \n`;
            out += ` backlog ${sprintSize(st.backlog)} ${st.qlen}p requeues ${st.requeues}\n`;
          }
        }
        return out;
      },
    };
    this.tune(params, host);
  }

  private defaultChild(band: number, host: SchedHost): Qdisc {
    return new FifoQdisc('pfifo', 0, tcHandle(tcMajor(this.handle), band + 1), { limit: undefined }, host);
  }

  /** prio_tune. */
  private tune(p: PrioParams, host: SchedHost): void {
    if (p.bands > MAX_BANDS || p.bands < MIN_BANDS) throw new TcParseError('RTNETLINK answers: Invalid argument', 2);
    for (let i = 0; i <= TC_PRIO_MAX; i++) if (p.priomap[i] >= p.bands) throw new TcParseError('RTNETLINK answers: Invalid argument', 2);
    const queues = this.queues.slice(0, p.bands);
    for (let i = p.bands; i < this.queues.length; i++) {
      const q = this.queues[i];
      this.stats.qlen -= q.stats.qlen;
      this.stats.backlog -= q.stats.backlog;
      q.reset();
    }
    for (let i = queues.length; i < p.bands; i++) queues.push(this.defaultChild(i, host));
    this.queues = queues;
    this.bands = p.bands;
    this.priomap = [...p.priomap];
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    const q = this.queues[this.priomap[packetPriority(pkt, this.hh) & TC_PRIO_MAX]];
    const len = pktLen(pkt);
    const r = q.enqueue(pkt, host);
    if (r !== NET_XMIT_SUCCESS) {
      this.stats.drops++;
      return r;
    }
    this.stats.backlog += len;
    this.stats.qlen++;
    return NET_XMIT_SUCCESS;
  }

  dequeue(host: SchedHost): Packet | null {
    for (let i = 0; i < this.bands; i++) {
      const p = this.queues[i].dequeue(host);
      if (p === null) continue;
      const len = pktLen(p);
      const st = this.stats;
      st.backlog -= len;
      st.qlen--;
      st.packets++;
      st.bytes += len;
      return p;
    }
    return null;
  }

  peek(host: SchedHost): Packet | null {
    for (let i = 0; i < this.bands; i++) {
      const p = this.queues[i].peek(host);
      if (p !== null) return p;
    }
    return null;
  }

  reset(): void {
    for (const q of this.queues) q.reset();
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  change(params: unknown, host: SchedHost): void {
    this.tune(params as PrioParams, host);
  }

  printOptions(): string {
    // q_prio.c prio_print_opt (multiqueue is never on here).
    return `bands ${this.bands} priomap ${this.priomap.join(' ')}`;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    return { bands: this.bands, priomap: [...this.priomap], multiqueue: false };
  }

  jsonXstats(): null {
    return null;
  }
}

const USAGE = 'Usage: ... prio bands NUMBER priomap P1 P2...[multiqueue]';

/** q_prio.c prio_parse_opt. */
export function parsePrio(args: string[]): PrioParams {
  let pmap = false;
  let idx = 0;
  let bands = 3;
  const priomap = [...PRIO2BAND];
  const fail = (m: string): never => {
    throw new TcParseError(m, 1);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === 'bands') {
      if (pmap) fail(USAGE);
      if (++i >= args.length) throw new TcParseError('Command line is not complete. Try option "help"', 255);
      const b = getInteger(args[i], 10);
      if (b === null || b < -0x80000000 || b > 0x7fffffff) fail('Illegal "bands"');
      bands = b!;
    } else if (a === 'priomap') {
      if (pmap) fail('Error: duplicate priomap');
      pmap = true;
    } else if (a === 'multiqueue') {
      throw new TcParseError('RTNETLINK answers: Operation not supported', 2);
    } else if (a === 'help') {
      fail(USAGE);
    } else {
      if (!pmap) fail(`What is "${a}"?\n${USAGE}`);
      const band = getU32(a, 10);
      if (band === null) fail('Illegal "priomap" element');
      if (band! >= bands) fail('"priomap" element is out of bands');
      if (idx > TC_PRIO_MAX) fail(`"priomap" index > TC_PRIO_MAX=${TC_PRIO_MAX}`);
      priomap[idx++] = band!;
    }
  }
  return { bands, priomap };
}

export const prioKind: QdiscKind = {
  name: 'prio',
  parse: (args) => parsePrio(args),
  create: (params, host, handle, parent) => new PrioQdisc(handle, parent, params as PrioParams, host),
};
