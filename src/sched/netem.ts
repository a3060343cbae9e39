/**
 * netem: network emulation (net/sched/sch_netem.c; tc-netem(8)). Each packet
 * may be lost (random with correlation, the 4-state Markov model or
 * Gilbert-Elliott), duplicated, corrupted, delayed by `delay ± jitter` drawn
 * from a distribution table, paced by `rate`, held for `slot`s, or sent at
 * once out of order (`reorder`); delayed packets wait in a queue ordered by
 * departure time (tfifo), departure times being read from the ns clock.
 */
import type { Packet } from '../packet/packet.js';
import { Random } from '../random.js';
import { NET_XMIT_DROP, NET_XMIT_SUCCESS, QdiscStats, tcHandle, tcMajor, TcParseError, type Qdisc, type QdiscClasses, type QdiscKind, type SchedHost } from './qdisc.js';
import { PktRing } from './pktring.js';
import { setCe } from './flowhash.js';
import { distTable, NETEM_DIST_SCALE } from './netem-dist.js';
import { fmtG, getRate64, getS32, getSize, getTime64, getU32, illegal, incomplete, parsePercent, sprintRate, sprintTime64 } from './tcnum.js';
import { getPercentRate64 } from './units.js';
import { pktLen } from './qdisc.js';

const U32 = 4294967295;
const INT_MAX = 0x7fffffff;

/** What `tc` sends (tc_netem_qopt and the TCA_NETEM_* attributes); probabilities scaled to 0..2^32-1. */
export interface NetemOpts {
  limit: number;
  latency: number;
  jitter: number;
  loss: number;
  duplicate: number;
  gap: number;
  delayCorr: number;
  lossCorr: number;
  dupCorr: number;
  reorder: number;
  reorderCorr: number;
  corrupt: number;
  corruptCorr: number;
  /** NETEM_LOSS_GI: p13, p31, p32, p23, p14. */
  gi: [number, number, number, number, number] | null;
  /** NETEM_LOSS_GE: p, r, h, k1. */
  ge: [number, number, number, number] | null;
  /** Bytes per second (0: none). */
  rate: number;
  packetOverhead: number;
  cellSize: number;
  cellOverhead: number;
  slot: { minDelay: number; maxDelay: number; maxPackets: number; maxBytes: number; distDelay: number; distJitter: number; dist: string | null } | null;
  seed: bigint | null;
  ecn: boolean;
  dist: string | null;
  /**
   * Which optional attributes tc sends (the kernel keeps the old value of an
   * absent one on change): TCA_NETEM_CORR (only when a delay, loss, reorder or
   * corrupt correlation was given: q_netem.c counts the duplicate's
   * correlation in no `present`), REORDER, CORRUPT, RATE.
   */
  present: { corr: boolean; reorder: boolean; corrupt: boolean; rate: boolean };
}

const USAGE =
  'Usage: ... netem [ limit PACKETS ]\n' +
  '                 [ delay TIME [ JITTER [ CORRELATION ] ] ]\n' +
  '                 [ distribution {uniform|normal|pareto|paretonormal} ]\n' +
  '                 [ corrupt PERCENT [ CORRELATION ] ]\n' +
  '                 [ duplicate PERCENT [ CORRELATION ] ]\n' +
  '                 [ loss random PERCENT [ CORRELATION ] ]\n' +
  '                 [ loss state P13 [ P31 [ P32 [ P23 [ P14 ] ] ] ] ]\n' +
  '                 [ loss gemodel PERCENT [ R [ 1-H [ 1-K ] ] ] ]\n' +
  '                 [ seed SEED ]\n' +
  '                 [ ecn ]\n' +
  '                 [ reorder PERCENT [ CORRELATION ] [ gap DISTANCE ] ]\n' +
  '                 [ rate RATE [ PACKETOVERHEAD ] [ CELLSIZE ] [ CELLOVERHEAD ] ]\n' +
  '                 [ slot MIN_DELAY [ MAX_DELAY ] [ packets MAX_PACKETS ] [ bytes MAX_BYTES ] ]\n' +
  '                 [ slot distribution {uniform|normal|pareto|paretonormal|custom}\n' +
  '                   DELAY JITTER [ packets MAX_PACKETS ] [ bytes MAX_BYTES ] ]';

/** tc's matches(): `arg` is a prefix of `word`. */
const matches = (arg: string, word: string): boolean => arg.length > 0 && word.startsWith(arg);
const isDigit = (s: string | undefined): boolean => s !== undefined && s.length > 0 && s[0] >= '0' && s[0] <= '9';
/** set_percent: rint(per * UINT32_MAX). */
const scalePct = (p: number): number => Math.min(U32, Math.max(0, Math.round(p * U32)));

function distOrFail(name: string): string {
  if (distTable(name) === null) {
    throw new TcParseError(`No distribution data for ${name} (/usr/lib/tc/${name}.dist: No such file or directory)`, 1);
  }
  return name;
}

/** q_netem.c netem_parse_opt. */
export function parseNetem(argv: string[], host?: SchedHost): NetemOpts {
  const o: NetemOpts = {
    limit: 1000, latency: 0, jitter: 0, loss: 0, duplicate: 0, gap: 0, delayCorr: 0, lossCorr: 0, dupCorr: 0,
    reorder: 0, reorderCorr: 0, corrupt: 0, corruptCorr: 0, gi: null, ge: null, rate: 0, packetOverhead: 0,
    cellSize: 0, cellOverhead: 0, slot: null, seed: null, ecn: false, dist: null,
    present: { corr: false, reorder: false, corrupt: false, rate: false },
  };
  let i = 0;
  const nextArg = (): string => {
    if (i + 1 >= argv.length) throw incomplete();
    return argv[++i];
  };
  const pct = (what: string): number => {
    const v = parsePercent(argv[i]);
    if (v === null) throw illegal(`Illegal "${what}"`);
    return scalePct(v);
  };
  const nextIsNumber = (): boolean => i + 1 < argv.length && isDigit(argv[i + 1]);
  const nextIsSigned = (): boolean => i + 1 < argv.length && (isDigit(argv[i + 1]) || argv[i + 1][0] === '-');
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (matches(a, 'limit')) {
      nextArg();
      const v = getSize(argv[i]);
      if (v === null) throw illegal('Illegal "limit"');
      o.limit = v;
    } else if (matches(a, 'latency') || matches(a, 'delay')) {
      nextArg();
      const v = getTime64(argv[i]);
      if (v === null) throw illegal('Illegal "latency"');
      o.latency = v;
      if (nextIsNumber()) {
        nextArg();
        const j = getTime64(argv[i]);
        if (j === null) throw illegal('Illegal "latency"');
        o.jitter = j;
        if (nextIsNumber()) {
          nextArg();
          o.delayCorr = pct('latency');
          o.present.corr = true;
        }
      }
    } else if (matches(a, 'loss') || matches(a, 'drop')) {
      if (o.loss > 0 || o.gi !== null || o.ge !== null) throw illegal('Illegal "duplicate loss argument\n"');
      nextArg();
      if (isDigit(argv[i]) || argv[i] === 'random') {
        if (argv[i] === 'random') nextArg();
        o.loss = pct('loss percent');
        if (nextIsNumber()) {
          nextArg();
          o.lossCorr = pct('loss correlation');
          o.present.corr = true;
        }
      } else if (argv[i] === 'state') {
        nextArg();
        const p13 = parsePercent(argv[i]);
        if (p13 === null) throw illegal('Illegal "loss p13"');
        const gi: [number, number, number, number, number] = [scalePct(p13), scalePct(1 - p13), 0, U32, 0];
        o.gi = gi;
        const names = ['loss p31', 'loss p32', 'loss p23', 'loss p14'];
        for (let k = 0; k < 4 && nextIsNumber(); k++) {
          nextArg();
          gi[k + 1] = pct(names[k]);
        }
      } else if (argv[i] === 'gemodel') {
        nextArg();
        const p = parsePercent(argv[i]);
        if (p === null) throw illegal('Illegal "loss gemodel p"');
        const ge: [number, number, number, number] = [scalePct(p), scalePct(1 - p), 0, 0];
        o.ge = ge;
        if (nextIsNumber()) {
          nextArg();
          ge[1] = pct('loss gemodel r');
          if (nextIsNumber()) {
            nextArg();
            // The option is 1-h; the kernel takes h.
            ge[2] = U32 - pct('loss gemodel h');
            if (nextIsNumber()) {
              nextArg();
              ge[3] = pct('loss gemodel k');
            }
          }
        }
      } else {
        throw illegal(`Unknown loss parameter: ${argv[i]}`);
      }
    } else if (matches(a, 'seed')) {
      nextArg();
      if (!/^\d+$/.test(argv[i]) || BigInt(argv[i]) > 0xffffffffffffffffn) throw illegal('Illegal "seed"');
      o.seed = BigInt(argv[i]);
    } else if (matches(a, 'ecn')) {
      o.ecn = true;
    } else if (matches(a, 'reorder')) {
      nextArg();
      o.present.reorder = true;
      o.reorder = pct('reorder');
      if (nextIsNumber()) {
        nextArg();
        o.reorderCorr = pct('reorder');
        o.present.corr = true;
      }
    } else if (matches(a, 'corrupt')) {
      nextArg();
      o.present.corrupt = true;
      o.corrupt = pct('corrupt');
      if (nextIsNumber()) {
        nextArg();
        o.corruptCorr = pct('corrupt');
        o.present.corr = true;
      }
    } else if (matches(a, 'gap')) {
      nextArg();
      const v = getU32(argv[i]);
      if (v === null) throw illegal('Illegal "gap"');
      o.gap = v;
    } else if (matches(a, 'duplicate')) {
      nextArg();
      o.duplicate = pct('duplicate');
      if (nextIsNumber()) {
        nextArg();
        o.dupCorr = pct('duplicate');
      }
    } else if (matches(a, 'distribution')) {
      nextArg();
      o.dist = distOrFail(argv[i]);
    } else if (matches(a, 'rate')) {
      nextArg();
      let r: number | null;
      if (argv[i].includes('%')) {
        // get_percent_rate64: a share of the device's speed.
        const p = getPercentRate64(argv[i], host?.devName ?? '', host?.speedMbit);
        if ('error' in p) throw illegal(`${p.error}\nIllegal "rate"`);
        r = p.rate;
      } else r = getRate64(argv[i]);
      if (r === null) throw illegal('Illegal "rate"');
      o.rate = r;
      o.present.rate = true;
      if (nextIsSigned()) {
        nextArg();
        const v = getS32(argv[i]);
        if (v === null) throw illegal('Illegal "rate"');
        o.packetOverhead = v;
      }
      if (nextIsNumber()) {
        nextArg();
        const v = getU32(argv[i]);
        if (v === null) throw illegal('Illegal "rate"');
        o.cellSize = v;
      }
      if (nextIsSigned()) {
        nextArg();
        const v = getS32(argv[i]);
        if (v === null) throw illegal('Illegal "rate"');
        o.cellOverhead = v;
      }
    } else if (matches(a, 'slot')) {
      const slot = { minDelay: 0, maxDelay: 0, maxPackets: 0, maxBytes: 0, distDelay: 0, distJitter: 0, dist: null as string | null };
      if (nextIsNumber()) {
        nextArg();
        const mn = getTime64(argv[i]);
        if (mn === null) throw illegal('Illegal "slot min_delay"');
        slot.minDelay = mn;
        if (nextIsNumber()) {
          nextArg();
          const mx = getTime64(argv[i]);
          if (mx === null || mx < mn) throw illegal('Illegal "slot max_delay"');
          slot.maxDelay = mx;
        } else slot.maxDelay = mn;
      } else {
        nextArg();
        if (argv[i] !== 'distribution') throw illegal(`Unknown slot parameter: ${argv[i]}`);
        nextArg();
        slot.dist = distOrFail(argv[i]);
        nextArg();
        const d = getTime64(argv[i]);
        if (d === null) throw illegal('Illegal "slot delay"');
        slot.distDelay = d;
        nextArg();
        const j = getTime64(argv[i]);
        if (j === null) throw illegal('Illegal "slot jitter"');
        if (j <= 0) throw illegal('Non-positive jitter');
        slot.distJitter = j;
      }
      if (i + 1 < argv.length && matches(argv[i + 1], 'packets')) {
        nextArg();
        const v = i + 1 < argv.length ? getS32(argv[i + 1]) : null;
        if (v === null) throw illegal('Illegal "slot packets"');
        slot.maxPackets = v;
        i++;
      }
      if (i + 1 < argv.length && matches(argv[i + 1], 'bytes')) {
        nextArg();
        const v = i + 1 < argv.length ? getSize(argv[i + 1]) : null;
        if (v === null) throw illegal('Illegal "slot bytes"');
        slot.maxBytes = v | 0;
        i++;
      }
      o.slot = slot;
    } else {
      throw new TcParseError(a === 'help' ? USAGE : `What is "${a}"?\n${USAGE}`, 1);
    }
  }
  if (o.reorder) {
    if (o.latency === 0) throw new TcParseError(`reordering not possible without specifying some delay\n${USAGE}`, 1);
    if (o.gap === 0) o.gap = 1;
  } else if (o.gap > 0) {
    throw new TcParseError(`gap specified without reorder probability\n${USAGE}`, 1);
  }
  if (o.ecn && o.loss <= 0 && o.gi === null && o.ge === null) {
    throw new TcParseError(`ecn requested without loss model\n${USAGE}`, 1);
  }
  if (o.dist !== null && (o.latency === 0 || o.jitter === 0)) {
    throw new TcParseError(`distribution specified but no latency and jitter values\n${USAGE}`, 1);
  }
  return o;
}

/** crndstate: a correlated random source (sch_netem.c get_crandom). */
class Crnd {
  rho = 0;
  last = 0;
}

/** tc's percent print: %g of 100·p/UINT32_MAX. */
const pctStr = (v: number): string => `${fmtG((100 * v) / U32)}%`;

export class NetemQdisc implements Qdisc {
  readonly kind = 'netem';
  readonly stats = new QdiscStats();
  /** netem's one class (1:1, any classid finds it) holding the child qdisc, null until one is grafted. */
  readonly classes: QdiscClasses;
  child: Qdisc | null = null;
  private peeked: Packet | null = null;
  o!: NetemOpts;
  seed = 0n;
  private prng = new Random(0);
  private readonly delayCor = new Crnd();
  private readonly lossCor = new Crnd();
  private readonly dupCor = new Crnd();
  private readonly reorderCor = new Crnd();
  private readonly corruptCor = new Crnd();
  private dist: Int16Array | null = null;
  private slotDist: Int16Array | null = null;
  /** Loss model: 0 random, 1 four states, 2 Gilbert-Elliott; and its state (1-based as in the kernel). */
  private lossModel = 0;
  private clgState = 1;
  private counter = 0;
  private reorderP = 0;
  /** Slot state: slots configured, and when the next one opens. */
  private slotOn = false;
  private slotNext = 0;
  private packetsLeft = 0;
  private bytesLeft = 0;
  private slotMaxPackets = INT_MAX;
  private slotMaxBytes = INT_MAX;
  /** Delayed packets by departure time (tfifo), and those sent ahead of them (reorder). */
  private readonly tfifo = new PktRing();
  private readonly head = new PktRing();
  // xstats-like counters (reported by tc -s where the kernel has them).
  delayed = 0;
  duplicated = 0;
  corrupted = 0;
  reordered = 0;
  ecnMarked = 0;

  constructor(opts: NetemOpts, host: SchedHost, public handle: number, public parent: number) {
    this.change(opts, host);
    const self = this;
    const id = (): number => tcHandle(tcMajor(self.handle), 1);
    // sch_netem.c netem_class_ops: netem_find answers 1 for any classid; the class is dumped only with a child.
    this.classes = {
      leaf: () => self.child,
      find: () => true,
      graft(_classid, q) {
        const old = self.child;
        if (old !== null) {
          // qdisc_replace → qdisc_purge_queue: the old child's packets leave netem's counts.
          self.stats.qlen -= old.stats.qlen;
          self.stats.backlog -= old.stats.backlog;
          old.reset();
        }
        self.child = q;
      },
      list: () => (self.child !== null ? [id()] : []),
      showClasses(_details, stats, classid) {
        if (self.child === null || (classid !== 0 && classid !== id())) return '';
        const maj = tcMajor(self.handle).toString(16);
        let out = `class netem ${maj}:1 parent ${maj}: `;
        if (self.child.handle !== 0) out += `leaf ${tcMajor(self.child.handle).toString(16)}: `;
        return out + (stats ? '\n\n' : '\n');
      },
    };
  }

  // sch_netem.c netem_change: limit, gap, loss, duplicate, delay and jitter are
  // always replaced, the loss model falls back to random; correlations,
  // reorder, corrupt, rate, ecn, slot and the distribution only when tc sends them.
  change(params: unknown, host: SchedHost): void {
    const o = params as NetemOpts;
    const prev: NetemOpts | undefined = this.o;
    const e: NetemOpts = { ...o, present: { ...o.present } };
    if (!o.present.corr) {
      e.delayCorr = prev?.delayCorr ?? 0;
      e.lossCorr = prev?.lossCorr ?? 0;
      e.dupCorr = prev?.dupCorr ?? 0;
    }
    if (!o.present.reorder) e.reorderCorr = prev?.reorderCorr ?? 0;
    if (!o.present.corrupt) {
      e.corrupt = prev?.corrupt ?? 0;
      e.corruptCorr = prev?.corruptCorr ?? 0;
    }
    if (!o.present.rate && prev !== undefined) {
      e.rate = prev.rate;
      e.packetOverhead = prev.packetOverhead;
      e.cellSize = prev.cellSize;
      e.cellOverhead = prev.cellOverhead;
    }
    if (!o.ecn) e.ecn = prev?.ecn ?? false;
    if (o.slot === null) e.slot = prev?.slot ?? null;
    if (o.dist === null) e.dist = prev?.dist ?? null;
    this.o = e;
    this.dist = e.dist !== null ? distTable(e.dist) : null;
    this.counter = 0;
    // A gap means reorder 100% unless a probability is sent with it; neither keeps the old one.
    if (o.gap) this.reorderP = U32;
    if (o.present.reorder) this.reorderP = o.reorder;
    e.reorder = this.reorderP;
    if (o.present.corr) {
      this.initCrnd(this.delayCor, e.delayCorr, host);
      this.initCrnd(this.lossCor, e.lossCorr, host);
      this.initCrnd(this.dupCor, e.dupCorr, host);
    }
    if (o.present.reorder) this.initCrnd(this.reorderCor, e.reorderCorr, host);
    if (o.present.corrupt) this.initCrnd(this.corruptCor, e.corruptCorr, host);
    this.lossModel = o.gi !== null ? 1 : o.ge !== null ? 2 : 0;
    this.clgState = 1;
    if (o.slot !== null) {
      const s = o.slot;
      this.slotDist = s.dist !== null ? distTable(s.dist) : null;
      this.slotMaxPackets = s.maxPackets || INT_MAX;
      this.slotMaxBytes = s.maxBytes || INT_MAX;
      this.packetsLeft = this.slotMaxPackets;
      this.bytesLeft = this.slotMaxBytes;
      this.slotOn = !!(s.minDelay || s.maxDelay || s.distJitter);
      this.slotNext = this.slotOn ? host.now() : 0;
    }
    // The PRNG: the given seed, or a random one (shown by tc either way).
    this.seed = o.seed ?? ((BigInt(Math.floor(host.random() * 4294967296)) << 32n) | BigInt(Math.floor(host.random() * 4294967296)));
    this.prng = new Random(Number(this.seed & 0xffffffffn) ^ Number(this.seed >> 32n));
  }

  private initCrnd(c: Crnd, rho: number, host: SchedHost): void {
    c.rho = rho;
    c.last = Math.floor(host.random() * 4294967296);
  }

  private u32(): number {
    return this.prng.u32();
  }

  /** get_crandom: value·(1−ρ) + last·ρ, with ρ = (rho+1)/2^32. */
  private crandom(c: Crnd): number {
    const value = this.u32();
    if (c.rho === 0) return value;
    const rho = c.rho + 1;
    const answer = Math.floor((value * (4294967296 - rho) + c.last * rho) / 4294967296);
    c.last = answer;
    return answer;
  }

  /** tabledist: mu ± sigma, uniform or by the table. */
  private tabledist(mu: number, sigma: number, c: Crnd | null, table: Int16Array | null): number {
    if (sigma === 0) return mu;
    const rnd = c !== null ? this.crandom(c) : this.u32();
    if (table === null) return (rnd % (2 * sigma)) + mu - sigma;
    const t = table[rnd % table.length];
    let x = (sigma % NETEM_DIST_SCALE) * t;
    x += x >= 0 ? NETEM_DIST_SCALE / 2 : -NETEM_DIST_SCALE / 2;
    return Math.trunc(x / NETEM_DIST_SCALE) + Math.trunc(sigma / NETEM_DIST_SCALE) * t + mu;
  }

  // loss_4state: states 1 TX_IN_GAP, 2 TX_IN_BURST, 3 LOST_IN_BURST, 4 LOST_IN_GAP.
  private loss4state(): boolean {
    const gi = this.o.gi as [number, number, number, number, number];
    const [p13, p31, p32, p23, p14] = gi;
    const rnd = this.u32();
    switch (this.clgState) {
      case 1:
        if (rnd < p14) {
          this.clgState = 4;
          return true;
        }
        if (rnd < p13 + p14) {
          this.clgState = 3;
          return true;
        }
        return false;
      case 2:
        if (rnd < p23) {
          this.clgState = 3;
          return true;
        }
        return false;
      case 3:
        if (rnd < p32) this.clgState = 2;
        else if (rnd < p31 + p32) this.clgState = 1;
        else return true;
        return false;
      default:
        this.clgState = 1;
        return false;
    }
  }

  // loss_gilb_ell: state 1 good, 2 bad; one draw for the transition, one for the loss.
  private lossGilbEll(): boolean {
    const [p, r, h, k1] = this.o.ge as [number, number, number, number];
    const rnd1 = this.u32();
    const rnd2 = this.u32();
    if (this.clgState === 1) {
      if (rnd1 < p) this.clgState = 2;
      return rnd2 < k1;
    }
    if (rnd1 < r) this.clgState = 1;
    return rnd2 > h;
  }

  private lossEvent(): boolean {
    if (this.lossModel === 1) return this.loss4state();
    if (this.lossModel === 2) return this.lossGilbEll();
    return this.o.loss !== 0 && this.o.loss >= this.crandom(this.lossCor);
  }

  /** packet_time_ns: transmission time at `rate` with the overheads and cells. */
  private packetTimeNs(len: number): number {
    const o = this.o;
    len += o.packetOverhead;
    if (o.cellSize) {
      let cells = Math.floor(len / o.cellSize);
      if (len > cells * o.cellSize) cells++;
      len = cells * (o.cellSize + o.cellOverhead);
    }
    return Math.floor((len * 1e9) / o.rate);
  }

  private getSlotNext(now: number): void {
    const s = this.o.slot;
    if (s === null) return;
    let next: number;
    if (this.slotDist === null) next = s.minDelay + Math.floor((this.u32() * (s.maxDelay - s.minDelay)) / 4294967296);
    else next = this.tabledist(s.distDelay, Math.min(INT_MAX, s.distJitter), null, this.slotDist);
    this.slotNext = now + next;
    this.packetsLeft = this.slotMaxPackets;
    this.bytesLeft = this.slotMaxBytes;
  }

  private get tLen(): number {
    return this.tfifo.length;
  }

  enqueue(pkt: Packet, host: SchedHost): number {
    return this.enqueueOne(pkt, host, this.o.duplicate);
  }

  private enqueueOne(pkt: Packet, host: SchedHost, duplicate: number): number {
    const o = this.o;
    let count = 1;
    if (duplicate && duplicate >= this.crandom(this.dupCor)) count++;
    if (this.lossEvent()) {
      // With ecn, a packet that can carry CE is marked instead (and counted as a drop).
      if (o.ecn && setCe(pkt, host)) {
        this.stats.drops++;
        this.ecnMarked++;
      } else count--;
    }
    if (count === 0) {
      this.stats.drops++;
      pkt.sent();
      // NET_XMIT_SUCCESS | __NET_XMIT_BYPASS: the parent does not count a drop.
      return NET_XMIT_SUCCESS;
    }
    // The duplicate is taken before the original may be corrupted.
    const dup = count > 1 ? pkt.clone() : null;
    if (o.corrupt && o.corrupt >= this.crandom(this.corruptCor)) {
      const len = pkt.end - pkt.start;
      pkt.buf[pkt.start + (this.u32() % len)] ^= 1 << this.u32() % 8;
      this.corrupted++;
    }
    if (this.tLen >= o.limit) {
      this.stats.drops++;
      pkt.sent();
      return NET_XMIT_DROP;
    }
    if (dup !== null) {
      // Re-enqueued from the top without being duplicated again.
      this.duplicated++;
      this.enqueueOne(dup, host, 0);
    }
    const len = pktLen(pkt);
    this.stats.backlog += len;
    this.stats.qlen++;
    if (o.gap === 0 || this.counter < o.gap - 1 || this.reorderP < this.crandom(this.reorderCor)) {
      let delay = this.tabledist(o.latency, Math.min(INT_MAX, o.jitter), this.delayCor, this.dist);
      let now = host.now();
      if (o.rate) {
        // Paced: behind the last packet's departure, minus the delay already spent waiting.
        let last = -1;
        if (this.tfifo.length > 0) last = this.tfifo.lastTime();
        if (this.head.length > 0 && this.head.lastTime() > last) last = this.head.lastTime();
        if (last >= 0) {
          delay -= last - now;
          if (delay < 0) delay = 0;
          now = last;
        }
        delay += this.packetTimeNs(len);
      }
      if (delay > 0) this.delayed++;
      this.counter++;
      this.tfifo.insertByTime(pkt, now + delay);
    } else {
      // One out of N goes to the front at once.
      this.counter = 0;
      this.head.unshift(pkt, host.now());
      this.stats.requeues++;
      this.reordered++;
    }
    return NET_XMIT_SUCCESS;
  }

  private deliver(p: Packet): Packet {
    const len = pktLen(p);
    this.stats.backlog -= len;
    this.stats.qlen--;
    this.stats.packets++;
    this.stats.bytes += len;
    return p;
  }

  /**
   * netem_dequeue: reordered packets first, then the tfifo's head once its
   * time (and slot) has come. With a child qdisc (class 1:1) every packet
   * due moves on into the child, and what leaves is what the child gives.
   */
  dequeue(host: SchedHost): Packet | null {
    const st = this.peeked;
    if (st !== null) {
      // qdisc_dequeue_peeked: the packet peek() took out is counted once more until now.
      this.peeked = null;
      this.stats.qlen--;
      this.stats.backlog -= pktLen(st);
      return st;
    }
    const c = this.child;
    for (;;) {
      const h = this.head.shift();
      if (h !== null) return this.deliver(h);
      if (this.tfifo.length === 0) break;
      const now = host.now();
      const t = this.tfifo.peekTime();
      if (this.slotOn && this.slotNext < t) this.getSlotNext(now);
      if (t <= now && this.slotNext <= now) {
        const p = this.tfifo.shift() as Packet;
        if (this.slotOn) {
          this.packetsLeft--;
          this.bytesLeft -= pktLen(p);
          if (this.packetsLeft <= 0 || this.bytesLeft <= 0) this.getSlotNext(now);
        }
        if (c === null) return this.deliver(p);
        const len = pktLen(p);
        if (c.enqueue(p, host) !== NET_XMIT_SUCCESS) {
          // The child dropped it (and counted it): gone from netem's queue too.
          this.stats.drops++;
          this.stats.backlog -= len;
          this.stats.qlen--;
        }
        continue;
      }
      if (c !== null) {
        const p = c.dequeue(host);
        if (p !== null) return this.deliver(p);
      }
      host.watchdog(Math.max(t, this.slotNext));
      return null;
    }
    if (c !== null) {
      const p = c.dequeue(host);
      if (p !== null) return this.deliver(p);
    }
    return null;
  }

  peek(host: SchedHost): Packet | null {
    if (this.child !== null) {
      // No peek of its own with a child (qdisc_peek_dequeued): dequeue one and keep it.
      if (this.peeked === null) {
        const p = this.dequeue(host);
        if (p === null) return null;
        this.peeked = p;
        this.stats.qlen++;
        this.stats.backlog += pktLen(p);
      }
      return this.peeked;
    }
    const h = this.head.peek();
    if (h !== null) return h;
    if (this.tfifo.length === 0) return null;
    const now = host.now();
    if (this.tfifo.peekTime() <= now && this.slotNext <= now) return this.tfifo.peek();
    return null;
  }

  reset(): void {
    for (let p = this.head.shift(); p !== null; p = this.head.shift()) p.sent();
    for (let p = this.tfifo.shift(); p !== null; p = this.tfifo.shift()) p.sent();
    if (this.peeked !== null) this.peeked.sent();
    this.peeked = null;
    this.child?.reset();
    this.stats.qlen = 0;
    this.stats.backlog = 0;
  }

  printOptions(): string {
    // q_netem.c netem_print_opt over what sch_netem.c netem_dump sends.
    const o = this.o;
    let s = `limit ${o.limit}`;
    if (o.latency !== 0) {
      s += ` delay ${sprintTime64(o.latency)}`;
      if (o.jitter !== 0) s += `  ${sprintTime64(o.jitter)}`;
      if (o.jitter && o.delayCorr) s += ` ${pctStr(o.delayCorr)}`;
    }
    if (o.loss) {
      s += ` loss ${pctStr(o.loss)}`;
      if (o.lossCorr) s += ` ${pctStr(o.lossCorr)}`;
    }
    if (o.gi !== null) {
      const [p13, p31, p32, p23, p14] = o.gi;
      s += ` loss state p13 ${pctStr(p13)} p31 ${pctStr(p31)} p32 ${pctStr(p32)} p23 ${pctStr(p23)} p14 ${pctStr(p14)}`;
    }
    if (o.ge !== null) {
      const [p, r, h, k1] = o.ge;
      s += ` loss gemodel p ${pctStr(p)} r ${pctStr(r)} 1-h ${pctStr(U32 - h)} 1-k ${pctStr(k1)}`;
    }
    if (o.duplicate) {
      s += ` duplicate ${pctStr(o.duplicate)}`;
      if (o.dupCorr) s += ` ${pctStr(o.dupCorr)}`;
    }
    if (this.reorderP) {
      s += ` reorder ${pctStr(this.reorderP)}`;
      if (o.reorderCorr) s += ` ${pctStr(o.reorderCorr)}`;
    }
    if (o.corrupt) {
      s += ` corrupt ${pctStr(o.corrupt)}`;
      if (o.corruptCorr) s += ` ${pctStr(o.corruptCorr)}`;
    }
    if (o.rate) {
      s += ` rate ${sprintRate(o.rate)}`;
      if (o.packetOverhead) s += ` packetoverhead ${o.packetOverhead}`;
      if (o.cellSize) s += ` cellsize ${o.cellSize}`;
      if (o.cellOverhead) s += ` celloverhead ${o.cellOverhead}`;
    }
    const sl = o.slot;
    if (sl !== null && (sl.minDelay || sl.maxDelay || sl.distJitter)) {
      if (sl.distJitter > 0) s += ` slot distribution ${sprintTime64(sl.distDelay)} ${sprintTime64(sl.distJitter)}`;
      else s += ` slot ${sprintTime64(sl.minDelay)} ${sprintTime64(sl.maxDelay)}`;
      const mp = this.slotMaxPackets === INT_MAX ? 0 : this.slotMaxPackets;
      const mb = this.slotMaxBytes === INT_MAX ? 0 : this.slotMaxBytes;
      if (mp) s += ` packets ${mp}`;
      if (mb) s += ` bytes ${mb}`;
    }
    s += ` seed ${this.seed}`;
    if (o.ecn) s += ' ecn ';
    if (o.gap) s += ` gap ${o.gap}`;
    return s;
  }

  printXstats(): string {
    return '';
  }

  jsonOptions(): Record<string, unknown> {
    const o = this.o;
    const j: Record<string, unknown> = { limit: o.limit };
    if (o.latency !== 0) j.delay = { delay: o.latency / 1e9, jitter: o.jitter / 1e9, correlation: o.delayCorr / U32 };
    if (o.loss) j['loss-random'] = { loss: o.loss / U32, correlation: o.lossCorr / U32 };
    if (o.gi !== null) {
      const [p13, p31, p32, p23, p14] = o.gi;
      j['loss-state'] = { p13: p13 / U32, p31: p31 / U32, p32: p32 / U32, p23: p23 / U32, p14: p14 / U32 };
    }
    if (o.ge !== null) {
      const [p, r, h, k1] = o.ge;
      j['loss-gemodel'] = { p: p / U32, r: r / U32, '1-h': (U32 - h) / U32, '1-k': k1 / U32 };
    }
    if (o.duplicate) j.duplicate = { duplicate: o.duplicate / U32, correlation: o.dupCorr / U32 };
    if (this.reorderP) j.reorder = { reorder: this.reorderP / U32, correlation: o.reorderCorr / U32 };
    if (o.corrupt) j.corrupt = { corrupt: o.corrupt / U32, correlation: o.corruptCorr / U32 };
    if (o.rate) j.rate = { rate: o.rate, packetoverhead: o.packetOverhead, cellsize: o.cellSize, celloverhead: o.cellOverhead };
    const sl = o.slot;
    if (sl !== null && (sl.minDelay || sl.maxDelay || sl.distJitter)) {
      const mp = this.slotMaxPackets === INT_MAX ? 0 : this.slotMaxPackets;
      const mb = this.slotMaxBytes === INT_MAX ? 0 : this.slotMaxBytes;
      j.slot =
        sl.distJitter > 0
          ? { distribution: sl.distDelay / 1e9, jitter: sl.distJitter / 1e9, packets: mp, bytes: mb }
          : { 'min-delay': sl.minDelay / 1e9, 'max-delay': sl.maxDelay / 1e9, packets: mp, bytes: mb };
    }
    j.seed = Number(this.seed) <= Number.MAX_SAFE_INTEGER ? Number(this.seed) : this.seed.toString();
    j.ecn = o.ecn;
    j.gap = o.gap;
    return j;
  }

  jsonXstats(): Record<string, unknown> | null {
    return null;
  }
}

export const netemKind: QdiscKind = {
  name: 'netem',
  parse: (args, host) => parseNetem(args, host),
  create: (params, host, handle, parent) => new NetemQdisc(params as NetemOpts, host, handle, parent),
};
