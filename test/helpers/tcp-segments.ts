/**
 * One stack on a sim wire, and a peer played by hand: the test crafts each TCP
 * segment (header, options, data), puts it on the wire at an instant of its
 * choosing, and reads back every segment the stack sent, parsed. Nothing runs
 * until the test moves virtual time, so each rule is checked segment by segment.
 */
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink, type SimDevice } from '../../src/link/sim.js';
import type { Interface } from '../../src/link/interface.js';
import { emitTcp, parseTcp, tcpOptionsLen, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, type TcpOptionsSpec } from '../../src/wire/tcp.js';
import { formatIp4 } from '../../src/wire/addr.js';
import type { TcpConnection, TcpUser } from '../../src/tcp/connection.js';
import type { TimeWaitRecord } from '../../src/tcp/timewait.js';
import { TcpListener } from '../../src/tcp/listen.js';
import type { Errno } from '../../src/errors.js';
import { concat, ethHeader, ipHeader } from './frames.js';
import { ip } from './sim.js';

/** The stack under test, and the peer the test plays. */
export const US = '10.0.0.2';
export const PEER = '10.0.0.1';
const PEER_MAC = '02:00:00:00:00:01';

const FLAG_LETTERS: [string, number][] = [
  ['S', TCP_SYN],
  ['F', TCP_FIN],
  ['R', TCP_RST],
  ['P', TCP_PSH],
  ['U', TCP_URG],
  ['A', TCP_ACK],
];

/** 'SA', 'A', 'FA', 'R', 'RA', 'PA', ... in that letter order. */
export function flagString(f: number): string {
  let s = '';
  for (const [l, b] of FLAG_LETTERS) if (f & b) s += l;
  return s;
}

function flagBits(f: string | number): number {
  if (typeof f === 'number') return f;
  let b = 0;
  for (const ch of f) {
    const e = FLAG_LETTERS.find(([l]) => l === ch);
    if (e === undefined) throw new Error(`unknown flag ${ch}`);
    b |= e[1];
  }
  return b;
}

/** A segment the peer sends. */
export interface SegSpec {
  seq: number;
  ack?: number;
  /** Letters (S F R P U A) or the bits. */
  flags: string | number;
  /** The window field as sent (scaled by the peer's shift outside SYNs). Default 65535. */
  wnd?: number;
  urg?: number;
  /** Options; `ts: 'auto'` (the default while the peer uses timestamps) fills TSval from the peer's clock and TSecr from the stack's last TSval. */
  opts?: Omit<TcpOptionsSpec, 'ts'> & { ts?: { val: number; ecr: number } | null | 'auto' };
  data?: Uint8Array | string;
  sport?: number;
  dport?: number;
  src?: string;
}

/** A segment the stack sent, parsed. */
export interface SentSeg {
  at: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: string;
  wnd: number;
  urg: number;
  opts: TcpOptionsSpec;
  /** The options' kinds in the order they appear (NOPs included), to check the layout. */
  optKinds: number[];
  data: Buffer;
}

/** An IPv4 datagram holding the TCP segment, checksums right. */
export function tcpDatagram(src: string, dst: string, sport: number, dport: number, spec: SegSpec, opts: TcpOptionsSpec): Uint8Array {
  const data = typeof spec.data === 'string' ? Buffer.from(spec.data) : (spec.data ?? new Uint8Array(0));
  const hl = 20 + tcpOptionsLen(opts);
  const seg = new Uint8Array(hl + data.length);
  seg.set(data, hl);
  emitTcp(
    {
      srcPort: sport,
      dstPort: dport,
      seq: spec.seq >>> 0,
      ack: (spec.ack ?? 0) >>> 0,
      flags: flagBits(spec.flags),
      window: spec.wnd ?? 65535,
      urgent: spec.urg ?? 0,
      options: opts,
      payloadLen: data.length,
    },
    seg,
    0,
    ip(src),
    ip(dst),
  );
  return concat(ipHeader(src, dst, 6, seg.length), seg);
}

function optionKinds(seg: Uint8Array): number[] {
  const hl = (seg[12] >> 4) * 4;
  const kinds: number[] = [];
  let i = 20;
  while (i < hl) {
    const k = seg[i];
    kinds.push(k);
    if (k === 0) break;
    if (k === 1) {
      i++;
      continue;
    }
    i += Math.max(2, seg[i + 1]);
  }
  return kinds;
}

/** Records what a connection tells its user. */
export class Recorder implements TcpUser {
  chunks: Buffer[] = [];
  connected = false;
  eof = false;
  /** undefined while open; null for a clean close, else the errno. */
  closed: Errno | null | undefined = undefined;
  rooms = 0;
  /** Bytes the test says are still unread (they hold receive-window space). */
  queued = 0;

  onConnected(): void {
    this.connected = true;
  }
  onData(d: Uint8Array): void {
    this.chunks.push(Buffer.from(d));
  }
  onEof(): void {
    this.eof = true;
  }
  onRoom(): void {
    this.rooms++;
  }
  onClosed(err: Errno | null): void {
    this.closed = err;
  }
  rcvQueued(): number {
    return this.queued;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }
  get bytes(): number {
    return this.chunks.reduce((s, c) => s + c.length, 0);
  }
}

export class TcpPeer {
  /** Every TCP segment the stack put on the wire, oldest first; take() empties it. */
  readonly out: SentSeg[] = [];
  /** Every non-TCP IPv4 datagram (ICMP, say) the stack sent. */
  readonly other: Uint8Array[] = [];
  /** The peer adds timestamps to what it sends (SegSpec.opts.ts 'auto'). */
  useTs = true;
  /** The peer's TSval clock: ms of virtual time plus this. */
  tsBase = 1_000_000;
  /** The last TSval the stack sent (echoed by 'auto'). */
  lastTsVal = 0;
  sport = 40000;
  dport = 80;

  constructor(
    readonly time: VirtualTime,
    readonly stack: Stack,
    readonly iface: Interface,
    readonly wire: SimDevice,
  ) {
    wire.start({
      frame: (f) => this.capture(f),
      batchEnd: () => undefined,
    });
  }

  private capture(f: Uint8Array): void {
    if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return;
    const ipd = f.subarray(14);
    const ihl = (ipd[0] & 0x0f) * 4;
    const total = (ipd[2] << 8) | ipd[3];
    if (ipd[9] !== 6) {
      this.other.push(ipd.slice(0, total));
      return;
    }
    const seg = ipd.slice(ihl, total);
    const r = parseTcp(seg);
    if (r.options.ts) this.lastTsVal = r.options.ts.val;
    const addr = (o: number): string => formatIp4(((ipd[o] << 24) | (ipd[o + 1] << 16) | (ipd[o + 2] << 8) | ipd[o + 3]) >>> 0);
    this.out.push({
      at: this.time.now(),
      src: addr(12),
      dst: addr(16),
      sport: r.srcPort,
      dport: r.dstPort,
      seq: r.seq,
      ack: r.ack,
      flags: flagString(r.flags),
      wnd: r.window,
      urg: r.urgent,
      opts: r.options,
      optKinds: optionKinds(seg),
      data: Buffer.from(seg.subarray(seg.length - r.payloadLen)),
    });
  }

  /** The peer's TSval now. */
  tsVal(): number {
    return (this.tsBase + Math.floor(this.time.now())) >>> 0;
  }

  /** Puts the segment on the wire and lets the stack handle it (and answer) at this instant. */
  send(spec: SegSpec): void {
    const { ts, ...rest } = spec.opts ?? {};
    const opts: TcpOptionsSpec = { ...rest };
    const t = ts === undefined ? (this.useTs ? 'auto' : null) : ts;
    if (t === 'auto') opts.ts = { val: this.tsVal(), ecr: flagBits(spec.flags) & TCP_SYN && !(flagBits(spec.flags) & TCP_ACK) ? 0 : this.lastTsVal };
    else opts.ts = t;
    const d = tcpDatagram(spec.src ?? PEER, US, spec.sport ?? this.sport, spec.dport ?? this.dport, spec, opts);
    this.sendDatagram(d);
  }

  /** Puts a crafted IPv4 datagram on the wire, delivered at this instant. */
  sendDatagram(d: Uint8Array): void {
    const frame = concat(ethHeader(formatMacOf(this.iface.mac), PEER_MAC, 0x0800), d);
    this.wire.sendBatch([frame], 1);
    this.time.advance(0);
  }

  /** Moves virtual time on by `ms`, every timer running at its own deadline. */
  advance(ms: number): void {
    this.time.advance(ms);
  }

  /** Moves time to an absolute instant. */
  advanceTo(at: number): void {
    this.time.advance(at - this.time.now());
  }

  /** What the stack sent since the last take(). */
  take(): SentSeg[] {
    return this.out.splice(0);
  }

  /** Exactly one segment sent since the last take(); fails otherwise. */
  one(): SentSeg {
    const s = this.take();
    if (s.length !== 1) throw new Error(`expected one segment, got ${s.length}: ${s.map(describeSeg).join(' | ') || 'none'}`);
    return s[0];
  }

  /** Listens on `port` (raw connections, each given a Recorder as it is accepted). */
  listen(port = this.dport, backlog = 128): { listener: TcpListener; accepted: TcpConnection[] } {
    const accepted: TcpConnection[] = [];
    const listener = new TcpListener(this.stack.tcp, 0, port, backlog, {
      incoming: (c) => {
        c.user = new Recorder();
        accepted.push(c);
        return true;
      },
    });
    const err = this.stack.tcp.addListener(listener);
    if (err !== null) throw new Error(err);
    return { listener, accepted };
  }

  /** Active open from the stack towards the peer's port; the SYN is on the wire when it returns. */
  connect(rport = this.sport, lport = this.dport): { c: TcpConnection; user: Recorder } {
    const c = this.stack.tcp.newConnection();
    const user = new Recorder();
    c.user = user;
    const err = this.stack.tcp.activeOpen(c, ip(PEER), rport, 0, lport);
    if (err !== null) throw new Error(err);
    this.time.advance(0);
    return { c, user };
  }

  /** The connection in the stack's table for the peer's default ports, or null. */
  lookup(sport = this.sport, dport = this.dport): TcpConnection | null {
    return this.stack.tcp.lookup(ip(US), dport, ip(PEER), sport);
  }

  /** The TIME_WAIT record for the peer's default ports, or null. */
  timeWait(sport = this.sport, dport = this.dport): TimeWaitRecord | null {
    return this.stack.tcp.timeWait.lookup(ip(US), dport, ip(PEER), sport);
  }
}

function formatMacOf(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** tcpdump-like one-liner for failure messages. */
export function describeSeg(s: SentSeg): string {
  return `${s.flags} seq=${s.seq} ack=${s.ack} win=${s.wnd} len=${s.data.length}`;
}

/** A stack at 10.0.0.2 on a sim wire whose other end the test drives. */
export function tcpPeer(opts: { seed?: number; mtu?: number } = {}): TcpPeer {
  const time = new VirtualTime();
  const [ours, theirs] = simLink(time, { seed: opts.seed ?? 3, mtu: opts.mtu, names: ['s0', 'p0'] });
  const stack = new Stack({ time, seed: opts.seed ?? 3 });
  const iface = stack.addInterface('s0', ours, { mtu: opts.mtu });
  stack.setUp(iface, true);
  stack.addAddress(iface, ip(US), 24);
  // The peer never answers ARP: its address is a permanent neighbour.
  const mac = PEER_MAC.split(':').map((x) => parseInt(x, 16));
  iface.neigh!.set(ip(PEER), new Uint8Array(mac), 'PERMANENT');
  const peer = new TcpPeer(time, stack, iface, theirs);
  time.advance(0);
  peer.take();
  peer.other.length = 0;
  return peer;
}

/** The options a Linux client puts in its SYN (tcp_syn_options), TSval from the peer's clock. */
export function linuxSynOpts(wscale = 7): SegSpec['opts'] {
  return { mss: 1460, sackPermitted: true, ts: 'auto', wscale };
}

/**
 * A passive open completed by hand: SYN from the peer, the stack's SYN-ACK, the
 * peer's ACK `rttMs` later. Returns the connection and both sides' next sequence numbers.
 */
export function acceptFrom(
  peer: TcpPeer,
  o: { irs?: number; opts?: SegSpec['opts']; rttMs?: number; wnd?: number; port?: number } = {},
): { c: TcpConnection; user: Recorder; iss: number; irs: number; synAck: SentSeg; listener: TcpListener } {
  const irs = o.irs ?? 1000;
  const { listener, accepted } = peer.listen(o.port ?? peer.dport);
  peer.send({ seq: irs, flags: 'S', opts: o.opts ?? linuxSynOpts(), wnd: 64240 });
  const synAck = peer.one();
  peer.advance(o.rttMs ?? 0);
  peer.send({ seq: irs + 1, ack: synAck.seq + 1, flags: 'A', wnd: o.wnd ?? 65535 });
  if (accepted.length !== 1) throw new Error('handshake did not complete');
  const c = accepted[0];
  return { c, user: c.user as Recorder, iss: synAck.seq, irs, synAck, listener };
}

/** An active open completed by hand: the stack's SYN, the peer's SYN-ACK `rttMs` later, the stack's ACK. */
export function connectTo(
  peer: TcpPeer,
  o: { irs?: number; opts?: SegSpec['opts']; rttMs?: number; wnd?: number } = {},
): { c: TcpConnection; user: Recorder; iss: number; irs: number; syn: SentSeg } {
  const irs = o.irs ?? 5000;
  const { c, user } = peer.connect();
  const syn = peer.one();
  peer.advance(o.rttMs ?? 0);
  peer.send({ seq: irs, ack: syn.seq + 1, flags: 'SA', opts: o.opts ?? linuxSynOpts(), wnd: o.wnd ?? 65160 });
  const ack = peer.one();
  if (ack.flags !== 'A') throw new Error(`expected the handshake's ACK, got ${describeSeg(ack)}`);
  return { c, user, iss: syn.seq, irs, syn };
}

/** What dropSegments shows its predicate of each TCP segment leaving a device. */
export interface WireSeg {
  seq: number;
  ack: number;
  flags: number;
  len: number;
}

/**
 * Loss on demand: frames leaving `dev` whose TCP segment `pred` picks are
 * lost before the wire sees them. Returns the count of those dropped so far.
 */
export function dropSegments(dev: SimDevice, pred: (s: WireSeg) => boolean): { dropped: number } {
  const stats = { dropped: 0 };
  const send = dev.sendBatch.bind(dev);
  dev.sendBatch = (frames: readonly Uint8Array[], count: number): number => {
    const keep: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const f = frames[i];
      const eth = dev.linkType === 'ether' ? 14 : 0;
      if (f.length >= eth + 40 && (eth === 0 || (f[12] === 0x08 && f[13] === 0x00)) && f[eth + 9] === 6) {
        const ihl = (f[eth] & 0x0f) * 4;
        const total = (f[eth + 2] << 8) | f[eth + 3];
        const t = eth + ihl;
        const u32 = (o: number): number => ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
        const hl = (f[t + 12] >> 4) * 4;
        if (pred({ seq: u32(t + 4), ack: u32(t + 8), flags: f[t + 13], len: total - ihl - hl })) {
          stats.dropped++;
          continue;
        }
      }
      keep.push(f);
    }
    send(keep, keep.length);
    return count;
  };
  return stats;
}
