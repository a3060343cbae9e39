import type { Time, Timer } from '../time/timers.js';
import type { Packet } from '../packet/packet.js';

/**
 * The IPv4 neighbour (ARP) table of one interface, with Linux's neighbour states
 * (include/net/neighbour.h, RFC 4861 §7.3.2 for the state machine it follows):
 *
 *   INCOMPLETE  request sent, no answer yet; packets wait in a bounded queue
 *   REACHABLE   confirmed recently (for reachable_time)
 *   STALE       not confirmed lately; still used, and use starts a check
 *   DELAY       used while STALE; waiting delay_first_probe_time for a confirmation
 *   PROBE       unicast requests sent to confirm the known address
 *   FAILED      no answer after all probes; the waiting packets were dropped
 *   PERMANENT   set by hand
 */
export type NeighState = 'INCOMPLETE' | 'REACHABLE' | 'STALE' | 'DELAY' | 'PROBE' | 'FAILED' | 'PERMANENT';

/** Linux's defaults from /proc/sys/net/ipv4/neigh/default. */
export interface NeighParams {
  baseReachableTimeMs: number;
  delayFirstProbeTimeMs: number;
  retransTimeMs: number;
  mcastProbes: number;
  ucastProbes: number;
  /** Most bytes queued per unresolved neighbour (unres_qlen_bytes). */
  unresQlenBytes: number;
  /** Hard limit on entries (gc_thresh3). */
  gcThresh3: number;
  /** Entries unused this long are collected (gc_stale_time). */
  gcStaleTimeMs: number;
  gcIntervalMs: number;
}

export const DEFAULT_NEIGH_PARAMS: NeighParams = {
  baseReachableTimeMs: 30_000,
  delayFirstProbeTimeMs: 5_000,
  retransTimeMs: 1_000,
  mcastProbes: 3,
  ucastProbes: 3,
  unresQlenBytes: 212_992,
  gcThresh3: 1024,
  gcStaleTimeMs: 60_000,
  gcIntervalMs: 30_000,
};

export class NeighEntry {
  mac: Uint8Array | null = null;
  state: NeighState = 'INCOMPLETE';
  /** Probes sent in the current INCOMPLETE or PROBE round. */
  probes = 0;
  /** Last confirmation (ARP reply or request from it), and last use. */
  confirmed = 0;
  used = 0;
  updated = 0;
  queue: Packet[] = [];
  queueBytes = 0;
  readonly timer: Timer;
  constructor(
    readonly ip: number,
    onTimer: (e: NeighEntry) => void,
    time: Time,
  ) {
    this.timer = time.timer(() => onTimer(this));
  }
}

/** What the table needs from its interface. */
export interface NeighOwner {
  /** Broadcast (target MAC unknown) or unicast ARP request for `ip`. */
  sendArpRequest(ip: number, unicastTo: Uint8Array | null): void;
  /** Sends a packet that waited for resolution, now that `mac` is known. */
  sendResolved(pkt: Packet, mac: Uint8Array): void;
  /** A waiting packet was dropped (queue overflow, or resolution failed). */
  dropUnresolved(pkt: Packet, reason: 'overflow' | 'failed'): void;
}

export class NeighbourTable {
  private readonly entries = new Map<number, NeighEntry>();
  readonly params: NeighParams;
  private readonly gcTimer: Timer;
  /** Entries removed to stay under gcThresh3. */
  evictions = 0;

  constructor(
    private readonly time: Time,
    private readonly owner: NeighOwner,
    params: Partial<NeighParams> = {},
    /** Source of randomness for reachable_time; the Stack's seeded one in tests. */
    private readonly random: () => number = Math.random,
  ) {
    this.params = { ...DEFAULT_NEIGH_PARAMS, ...params };
    this.gcTimer = time.timer(() => this.gc());
  }

  get size(): number {
    return this.entries.size;
  }

  get(ip: number): NeighEntry | undefined {
    return this.entries.get(ip);
  }

  list(): NeighEntry[] {
    return [...this.entries.values()];
  }

  /**
   * Resolves `ip` for an outgoing packet: returns the MAC to send to now, or null
   * when the packet was queued (or dropped) to wait for resolution.
   */
  resolve(ip: number, pkt: Packet): Uint8Array | null {
    const now = this.time.now();
    let e = this.entries.get(ip);
    if (e !== undefined) {
      switch (e.state) {
        case 'REACHABLE':
        case 'PERMANENT':
        case 'DELAY':
        case 'PROBE':
          e.used = now;
          return e.mac;
        case 'STALE':
          // RFC 4861 §7.3.3: using a STALE entry starts the DELAY timer.
          e.used = now;
          e.state = 'DELAY';
          e.updated = now;
          this.time.arm(e.timer, this.params.delayFirstProbeTimeMs);
          return e.mac;
        case 'INCOMPLETE':
          e.used = now;
          this.enqueue(e, pkt);
          return null;
        case 'FAILED':
          // A new packet to a failed neighbour starts resolution again (as Linux does).
          break;
      }
    } else {
      e = this.create(ip);
    }
    e.used = now;
    e.state = 'INCOMPLETE';
    e.updated = now;
    e.probes = 0;
    this.enqueue(e, pkt);
    this.probe(e);
    return null;
  }

  /**
   * Something from `ip` told us its MAC. `solicited`: an ARP reply addressed to
   * us, which confirms reachability; anything else (a request, a broadcast or
   * gratuitous reply) only makes the entry STALE. `create`: make an entry when
   * none exists (requests addressed to us do; unsolicited replies don't).
   */
  learn(ip: number, mac: Uint8Array, solicited: boolean, create: boolean): void {
    const now = this.time.now();
    let e = this.entries.get(ip);
    if (e === undefined) {
      if (!create) return;
      e = this.create(ip);
      e.state = 'STALE';
    }
    if (e.state === 'PERMANENT') return;
    const changed = e.mac === null || !sameMac(e.mac, mac);
    if (changed) e.mac = new Uint8Array(mac);
    if (solicited) {
      e.state = 'REACHABLE';
      e.confirmed = now;
      this.time.arm(e.timer, this.reachableTime());
    } else if (e.state === 'INCOMPLETE' || e.state === 'FAILED' || changed) {
      e.state = 'STALE';
      this.time.cancel(e.timer);
    } else if (e.state === 'DELAY' || e.state === 'PROBE') {
      // A request from the neighbour shows it is alive but not that it hears
      // us; keep checking (Linux does the same for non-solicited updates).
    }
    e.updated = now;
    e.probes = 0;
    this.flush(e);
  }

  /** `ip neigh add|replace ... lladdr MAC nud permanent|reachable|stale`. */
  set(ip: number, mac: Uint8Array, state: 'PERMANENT' | 'REACHABLE' | 'STALE'): void {
    let e = this.entries.get(ip);
    if (e === undefined) e = this.create(ip);
    e.mac = new Uint8Array(mac);
    e.state = state;
    e.updated = this.time.now();
    this.time.cancel(e.timer);
    if (state === 'REACHABLE') this.time.arm(e.timer, this.reachableTime());
    this.flush(e);
  }

  delete(ip: number): boolean {
    const e = this.entries.get(ip);
    if (!e) return false;
    this.remove(e, 'failed');
    return true;
  }

  /** Removes every entry that isn't PERMANENT (`ip neigh flush`). */
  flushAll(): void {
    for (const e of [...this.entries.values()]) if (e.state !== 'PERMANENT') this.remove(e, 'failed');
  }

  close(): void {
    for (const e of [...this.entries.values()]) this.remove(e, 'failed');
    this.time.cancel(this.gcTimer);
  }

  private create(ip: number): NeighEntry {
    if (this.entries.size >= this.params.gcThresh3) this.evictOne();
    const e = new NeighEntry(ip, (x) => this.onTimer(x), this.time);
    this.entries.set(ip, e);
    if (!this.gcTimer.armed) this.time.arm(this.gcTimer, this.params.gcIntervalMs);
    return e;
  }

  private enqueue(e: NeighEntry, pkt: Packet): void {
    // The waiting packet may live in a device's receive buffer: keep a copy.
    const own = pkt.clone();
    e.queue.push(own);
    e.queueBytes += own.length;
    // Linux drops the oldest waiting packets past unres_qlen_bytes.
    while (e.queueBytes > this.params.unresQlenBytes && e.queue.length > 1) {
      const old = e.queue.shift()!;
      e.queueBytes -= old.length;
      this.owner.dropUnresolved(old, 'overflow');
    }
  }

  private flush(e: NeighEntry): void {
    if (e.queue.length === 0 || e.mac === null) return;
    const q = e.queue;
    e.queue = [];
    e.queueBytes = 0;
    for (const p of q) this.owner.sendResolved(p, e.mac);
  }

  private probe(e: NeighEntry): void {
    e.probes++;
    this.owner.sendArpRequest(e.ip, e.state === 'PROBE' ? e.mac : null);
    this.time.arm(e.timer, this.params.retransTimeMs);
  }

  private onTimer(e: NeighEntry): void {
    const now = this.time.now();
    switch (e.state) {
      case 'INCOMPLETE':
        if (e.probes < this.params.mcastProbes) this.probe(e);
        else this.fail(e);
        break;
      case 'REACHABLE':
        e.state = 'STALE';
        e.updated = now;
        break;
      case 'DELAY':
        if (e.confirmed >= e.updated) {
          e.state = 'REACHABLE';
          this.time.arm(e.timer, this.reachableTime());
        } else {
          e.state = 'PROBE';
          e.probes = 0;
          this.probe(e);
        }
        e.updated = now;
        break;
      case 'PROBE':
        if (e.probes < this.params.ucastProbes) this.probe(e);
        else this.fail(e);
        break;
      default:
        break;
    }
  }

  private fail(e: NeighEntry): void {
    e.state = 'FAILED';
    e.updated = this.time.now();
    e.probes = 0;
    const q = e.queue;
    e.queue = [];
    e.queueBytes = 0;
    for (const p of q) this.owner.dropUnresolved(p, 'failed');
  }

  private remove(e: NeighEntry, reason: 'overflow' | 'failed'): void {
    this.time.cancel(e.timer);
    this.entries.delete(e.ip);
    for (const p of e.queue) this.owner.dropUnresolved(p, reason);
    e.queue = [];
    e.queueBytes = 0;
  }

  /** Makes room: FAILED first, then the least recently used STALE, then any. */
  private evictOne(): void {
    let victim: NeighEntry | undefined;
    let rank = 99;
    for (const e of this.entries.values()) {
      const r = e.state === 'FAILED' ? 0 : e.state === 'STALE' ? 1 : e.state === 'PERMANENT' ? 9 : 2;
      if (r < rank || (r === rank && victim !== undefined && e.used < victim.used)) {
        victim = e;
        rank = r;
      }
    }
    if (victim !== undefined && rank < 9) {
      this.evictions++;
      this.remove(victim, 'overflow');
    }
  }

  /** Periodic collection of FAILED entries and STALE ones unused for gc_stale_time. */
  private gc(): void {
    const now = this.time.now();
    for (const e of [...this.entries.values()]) {
      if (e.state === 'FAILED' && now - e.updated >= this.params.retransTimeMs) this.remove(e, 'failed');
      else if (e.state === 'STALE' && now - Math.max(e.used, e.updated) >= this.params.gcStaleTimeMs)
        this.remove(e, 'failed');
    }
    if (this.entries.size > 0) this.time.arm(this.gcTimer, this.params.gcIntervalMs);
  }

  /** RFC 4861 §6.3.2: a random value between 0.5 and 1.5 times the base. */
  private reachableTime(): number {
    return this.params.baseReachableTimeMs * (0.5 + this.random());
  }
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}
