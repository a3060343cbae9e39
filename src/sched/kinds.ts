/**
 * The qdisc kinds tc knows, by name (tc's get_qdisc_kind). A kind module adds
 * itself here with one line.
 */
import type { QdiscKind } from './qdisc.js';
import { bfifoKind, pfifoKind } from './fifo.js';
import { pfifoFastKind } from './pfifo-fast.js';
import { clsactKind, ingressKind } from './ingress.js';
import { netemKind } from './netem.js';
import { codelKind } from './codel.js';
import { fqCodelKind } from './fq_codel.js';
import { sfqKind } from './sfq.js';
import { tbfKind } from './tbf.js';
import { prioKind } from './prio.js';
import { htbKind } from './htb.js';

export const QDISC_KINDS = new Map<string, QdiscKind>();

export function registerKind(k: QdiscKind): void {
  QDISC_KINDS.set(k.name, k);
}

registerKind(pfifoKind);
registerKind(bfifoKind);
registerKind(pfifoFastKind);
registerKind(ingressKind);
registerKind(clsactKind);
registerKind(netemKind);
registerKind(codelKind);
registerKind(fqCodelKind);
registerKind(sfqKind);
registerKind(tbfKind);
registerKind(prioKind);
registerKind(htbKind);
