/**
 * pfifo_fast (sch_generic.c): three FIFO bands, band 0 first; a packet's band
 * is prio2band[priority] (priority from its TOS, prio-map.ts). The limit is
 * txqueuelen packets per band, as pfifo_fast_enqueue checks each band's ring.
 * It takes no options (q_fifo.c has no parse_qopt for it).
 */
import type { Packet } from '../packet/packet.js';
import { NET_XMIT_SUCCESS, QdiscStats, qdiscDrop, TcParseError, type Qdisc, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { packetPriority, PRIO2BAND } from './prio-map.js';
import { pktLen } from './qdisc.js';

export class PfifoFastQdisc implements Qdisc {
  readonly kind = 'pfifo_fast';
  readonly stats = new QdiscStats();
  readonly classes = null;
  readonly bands = [new PktRing(), new PktRing(), new PktRing()];
  private limit: number;
  /** The device's link header length (fixed for a device). */
  private readonly hh: number;

  constructor(
    public handle: number,
    public parent: number,
    private readonly host: SchedHost,
  ) {
    this.limit = Math.max(host.txQueueLen, 1);
    this.hh = host.hardHeaderLen;
  }

  enqueue(pkt: Packet): number {
    const band = this.bands[PRIO2BAND[packetPriority(pkt, this.hh)]];
    if (band.length >= this.limit) return qdiscDrop(this, pkt);
    band.push(pkt);
    const st = this.stats;
    st.qlen++;
    st.backlog += pktLen(pkt);
    return NET_XMIT_SUCCESS;
  }

  dequeue(): Packet | null {
    if (this.stats.qlen === 0) return null;
    const b = this.bands;
    const p = b[0].length > 0 ? b[0].shift()! : b[1].length > 0 ? b[1].shift()! : b[2].shift()!;
    const st = this.stats;
    const len = pktLen(p);
    st.qlen--;
    st.backlog -= len;
    st.packets++;
    st.bytes += len;
    return p;
  }

  peek(): Packet | null {
    const b = this.bands;
    return b[0].peek() ?? b[1].peek() ?? b[2].peek();
  }

  reset(): void {
    for (const b of this.bands) b.drain((p) => p.sent());
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  change(): void {
    this.limit = Math.max(this.host.txQueueLen, 1);
  }

  room(): number {
    return this.limit - this.stats.qlen;
  }

  capacity(): number {
    return this.limit;
  }

  printOptions(): string {
    return `bands 3 priomap ${PRIO2BAND.join(" ")}`;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    return { bands: 3, priomap: [...PRIO2BAND], multiqueue: false };
  }

  jsonXstats(): null {
    return null;
  }
}

export const pfifoFastKind: QdiscKind = {
  name: 'pfifo_fast',
  parse(args) {
    // q_fifo.c: pfifo_fast_qdisc_util has no parse_qopt.
    if (args.length > 0) throw new TcParseError(`qdisc 'pfifo_fast' does not support option parsing`, 255);
    return {};
  },
  create: (_params, host, handle, parent) => new PfifoFastQdisc(handle, parent, host),
};
