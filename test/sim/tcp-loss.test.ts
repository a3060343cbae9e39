/**
 * Loss recovery between two stacks on a sim wire, in virtual time: RACK's
 * reordering window (RFC 8985 §6), the tail loss probe (§7), PRR against RFC
 * 6937's example, F-RTO undoing a spurious timeout (RFC 5682), D-SACK on both
 * sides (RFC 2883, RFC 3708), Reno without SACK (RFC 6582), and bulk transfers
 * under random and bursty loss held to the Mathis et al. bound for Reno.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { SimPair } from '../helpers/sim.js';
import { Recorder } from '../helpers/tcp-segments.js';
import { bulkPair, Filler, pattern } from '../helpers/tcp-sim.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import type { SimDevice } from '../../src/link/sim.js';
import { Random } from '../../src/random.js';
import { TcpOptions, parseTcpOptions } from '../../src/wire/tcp.js';

/** One TCP segment leaving a device, as the taps see it. */
interface Frame {
  at: number;
  seq: number;
  ack: number;
  flags: number;
  len: number;
  /** SACK blocks, [left, right] pairs. */
  sack: number[];
}

/** What a tap does with a frame: pass it, drop it, or hold it back this many ms. */
type Verdict = 'pass' | 'drop' | number;

/**
 * Watches (and may drop or delay) every TCP segment leaving `dev`. Frames are
 * copied when held back (the device's buffers are reused after each batch).
 */
function tap(p: SimPair, dev: SimDevice, fn: (f: Frame) => Verdict): Frame[] {
  const log: Frame[] = [];
  const send = dev.sendBatch.bind(dev);
  const opts = new TcpOptions();
  dev.sendBatch = (frames: readonly Uint8Array[], count: number): number => {
    const keep: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const f = frames[i];
      const eth = 14;
      if (f.length < eth + 40 || f[12] !== 0x08 || f[13] !== 0x00 || f[eth + 9] !== 6) {
        keep.push(f);
        continue;
      }
      const ihl = (f[eth] & 0x0f) * 4;
      const total = (f[eth + 2] << 8) | f[eth + 3];
      const t = eth + ihl;
      const u32 = (o: number): number => ((f[o] << 24) | (f[o + 1] << 16) | (f[o + 2] << 8) | f[o + 3]) >>> 0;
      const hl = (f[t + 12] >> 4) * 4;
      parseTcpOptions(f, t + 20, hl - 20, opts);
      const sack: number[] = [];
      for (let b = 0; b < opts.sackCount; b++) sack.push(opts.sack[2 * b], opts.sack[2 * b + 1]);
      const fr: Frame = { at: p.time.now(), seq: u32(t + 4), ack: u32(t + 8), flags: f[t + 13], len: total - ihl - hl, sack };
      log.push(fr);
      const v = fn(fr);
      if (v === 'drop') continue;
      if (typeof v === 'number') {
        const copy = f.slice();
        p.time.after(v, () => send([copy], 1));
        continue;
      }
      keep.push(f);
    }
    if (keep.length > 0) send(keep, keep.length);
    return count;
  };
  return log;
}

/** Consumes and hashes what arrives. */
class Sink extends Recorder {
  received = 0;
  private readonly hash = createHash('sha256');
  override onData(d: Uint8Array): void {
    this.received += d.length;
    this.hash.update(d);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Sends `data` (all of it, as the send buffer makes room), or what the test writes. */
class Source extends Filler {
  private off = 0;
  constructor(
    private readonly c: TcpConnection,
    private readonly data: Uint8Array | null,
  ) {
    super();
  }
  fill(): void {
    const d = this.data;
    if (d === null) return;
    const c = this.c;
    while (this.off < d.length && c.sendRoom > 0) {
      const n = Math.min(c.sendRoom, 65536, d.length - this.off);
      c.write(d.subarray(this.off, this.off + n));
      this.off += n;
    }
    if (this.off === d.length) c.shutdownWrite();
  }
}

interface Flow {
  p: SimPair;
  c: TcpConnection;
  sink: Sink;
  server: () => TcpConnection;
}

/** a (10.0.0.1) sends to b (10.0.0.2); `rttMs` of propagation; `data` null: the test writes. */
function flow(opts: { rttMs: number; data: Uint8Array | null; sysA?: Record<string, string>; sysB?: Record<string, string>; seed?: number }): Flow {
  const sink = new Sink();
  const { p, c, server } = bulkPair({
    impair: { delayMs: opts.rttMs / 2 },
    seed: opts.seed,
    sysA: opts.sysA,
    sysB: opts.sysB,
    sink,
    source: (c) => new Source(c, opts.data),
  });
  p.time.advance(opts.rttMs * 2);
  return { p, c, sink, server };
}

/** Writes `n` full segments now. */
function burst(f: Flow, n: number): void {
  f.c.write(new Uint8Array(n * f.c.mss).fill(0x5a));
  f.p.b.tcp.batched(() => f.c.output());
  f.p.a.tcp.batched(() => f.c.output());
}

/** Warms the connection up (RTT samples, min_RTT) with some data, then lets it go idle. */
function warm(f: Flow): void {
  for (let i = 0; i < 5; i++) {
    burst(f, 4);
    f.p.time.advance(50);
  }
  expect(f.c.sndUna).toBe(f.c.sndMax);
}

const isData = (fr: Frame): boolean => fr.len > 0;

describe('RACK (RFC 8985 §6)', () => {
  it('RFC 8985 §6.2: a segment overtaken by later ones is marked lost once min_RTT/4 has passed, and not before', () => {
    const RTT = 20;
    const run = (holdMs: number): { retrans: number; lossAt: number; sentAt: number; f: Flow } => {
      const f = flow({ rttMs: RTT, data: null });
      warm(f);
      expect(f.c.minRttUs).toBe(RTT * 1000);
      // Two segments: the first is held back holdMs on the wire, the second overtakes it.
      // One SACKed segment is below DupThresh, so RACK waits reo_wnd = min_RTT/4 = 5 ms.
      let target = -1;
      let sentAt = -1;
      let lossAt = -1;
      tap(f.p, f.p.da, (fr) => {
        if (!isData(fr)) return 'pass';
        if (target < 0) {
          target = fr.seq;
          sentAt = fr.at;
          return holdMs;
        }
        if (fr.seq === target && lossAt < 0) lossAt = fr.at;
        return 'pass';
      });
      const before = f.p.a.mib.TcpRetransSegs;
      burst(f, 2);
      f.p.time.advance(200);
      return { retrans: f.p.a.mib.TcpRetransSegs - before, lossAt, sentAt, f };
    };
    // Held 4 ms: it arrives (ACK at 24 ms) before RACK's deadline (20 + 5 ms, on a 2 ms timer floor).
    const early = run(4);
    expect(early.retrans).toBe(0);
    expect(early.f.p.a.mib.TcpExtTCPSACKReorder).toBe(1);
    expect(early.f.c.reordSeen).toBe(1);
    // Held 10 ms: it is deemed lost at RACK.rtt + reo_wnd (+ Linux's 2 ms timer floor) after it left.
    const late = run(10);
    expect(late.retrans).toBe(1);
    const waited = late.lossAt - late.sentAt;
    expect(waited).toBeGreaterThanOrEqual(RTT + RTT / 4);
    expect(waited).toBeLessThanOrEqual(RTT + RTT / 4 + 2 + 1);
    expect(late.f.p.a.mib.TcpExtTCPSackRecovery).toBe(1);
    expect(late.f.p.a.mib.TcpExtTCPTimeouts).toBe(0);
  });
});

describe('min_RTT (RFC 8985 §6.2, Linux tcp_min_rtt_wlen)', () => {
  it('RACK\'s min_RTT is the lowest RTT of the last tcp_min_rtt_wlen seconds: after the path lengthens, it and reo_wnd follow once the window has passed', () => {
    const f = flow({ rttMs: 20, data: null, sysA: { 'net.ipv4.tcp_min_rtt_wlen': '10' } });
    expect(f.p.b.sysctl.get('net.ipv4.tcp_min_rtt_wlen')).toBe(300);
    warm(f);
    expect(f.c.minRttUs).toBe(20_000);
    expect(f.c.rec.reoWndUs()).toBe(5_000);
    // The path grows to 60 ms of RTT; data keeps flowing.
    f.p.da.impair.delayMs = 30;
    f.p.db.impair.delayMs = 30;
    const lengthened = f.p.time.now();
    const minAt: [number, number][] = [];
    while (f.p.time.now() - lengthened < 12_000) {
      burst(f, 2);
      f.p.time.advance(100);
      minAt.push([f.p.time.now() - lengthened, f.c.minRttUs]);
    }
    // Within the window the 20 ms sample still rules; past it, only 60 ms samples are left.
    for (const [t, m] of minAt) {
      if (t < 9_900) expect(m).toBe(20_000);
      if (t > 10_200) expect(m).toBe(60_000);
    }
    // reo_wnd = min_RTT/4, times what D-SACKs of the probes the longer path made needless have added.
    expect(f.c.rec.reoWndUs()).toBe(Math.min(15_000 * f.c.rec.reoWndMult, f.c.srttUs));
  });
});

describe('Tail loss probe (RFC 8985 §7)', () => {
  it('RFC 8985 §7.2-7.4: the lost tail of a flight is resent by the probe, not by an RTO; the next window shows the loss was repaired', () => {
    const RTT = 20;
    const f = flow({ rttMs: RTT, data: null });
    warm(f);
    const mib = f.p.a.mib;
    // Ten segments; the last is lost once.
    let n = 0;
    let lastSeq = -1;
    // SRTT and RTO as they stand when the probe leaves (no ACK came since the timer was set).
    let srtt = 0;
    let rto = 0;
    const sent = tap(f.p, f.p.da, (fr) => {
      if (!isData(fr)) return 'pass';
      if (++n === 10) {
        lastSeq = fr.seq;
        return 'drop';
      }
      if (fr.seq === lastSeq) {
        srtt = f.c.srttUs / 1000;
        rto = f.c.rtoMs();
      }
      return 'pass';
    });
    const acks = tap(f.p, f.p.db, () => 'pass');
    burst(f, 10);
    const t0 = f.p.time.now();
    f.p.time.advance(1000);
    const rtx = sent.filter((fr) => isData(fr) && fr.seq === lastSeq);
    expect(rtx.length).toBe(2);
    // One segment is out once the others are acknowledged: PTO = 2·SRTT + the peer's delayed-ACK
    // allowance (tcp_rto_min), no later than the RTO would have fired (Linux tcp_schedule_loss_probe).
    const lastAck = acks.filter((a) => a.at < rtx[1].at).at(-1)!.at + RTT / 2;
    expect(rtx[1].at - lastAck).toBeCloseTo(Math.min(2 * srtt + 200, rto), 0);
    expect(rtx[1].at - lastAck).toBeLessThanOrEqual(rto + 0.5);
    expect(rtx[1].at).toBeGreaterThan(t0);
    expect(mib.TcpExtTCPLossProbes).toBe(1);
    expect(mib.TcpExtTCPTimeouts).toBe(0);
    // A resent segment is data sent too (tcp_event_data_sent sets lsndtime): tcpi_last_data_sent counts from the probe.
    expect(f.c.lastSendMs).toBe(rtx[1].at);
    expect(f.sink.received).toBe(f.c.bytesAcked - 1);
    // The next data acknowledged beyond the probe shows it repaired a loss (RFC 8985 §7.4.2).
    burst(f, 4);
    f.p.time.advance(200);
    expect(mib.TcpExtTCPLossProbeRecovery).toBe(1);
    expect(mib.TcpExtTCPTimeouts).toBe(0);
  });

  it('RFC 8985 §7.2: with more than one segment out, the probe goes 2·SRTT (+2 ms) after the last ACK and RACK repairs the rest', () => {
    const RTT = 20;
    const f = flow({ rttMs: RTT, data: null });
    warm(f);
    const mib = f.p.a.mib;
    // Ten segments; the last two are lost once.
    let n = 0;
    const lost: number[] = [];
    let srtt = 0;
    const sent = tap(f.p, f.p.da, (fr) => {
      if (!isData(fr)) return 'pass';
      if (fr.seq === lost[1]) srtt = f.c.srttUs / 1000;
      n++;
      if (n === 9 || n === 10) {
        lost.push(fr.seq);
        return 'drop';
      }
      return 'pass';
    });
    const acks = tap(f.p, f.p.db, () => 'pass');
    burst(f, 10);
    f.p.time.advance(1000);
    const probe = sent.find((fr) => isData(fr) && fr.seq === lost[1] && fr.at > sent[0].at)!;
    const lastAck = acks.filter((a) => a.at < probe.at).at(-1)!.at + RTT / 2;
    expect(probe.at - lastAck).toBeCloseTo(2 * srtt + 2, 0);
    // The probe's SACK shows segment 9 missing; RACK marks it lost after reo_wnd and it is resent.
    expect(sent.filter((fr) => isData(fr) && fr.seq === lost[0]).length).toBe(2);
    expect(mib.TcpExtTCPLossProbes).toBe(1);
    expect(mib.TcpExtTCPTimeouts).toBe(0);
    expect(f.c.sndUna).toBe(f.c.sndMax);
  });
});

/** Every frame the sender's device hands up, through `fn` first. */
function onArrival(dev: SimDevice, fn: () => void): void {
  const rx = (dev as unknown as { rx: { frame(b: Uint8Array): void } }).rx;
  const frame = rx.frame.bind(rx);
  rx.frame = (b: Uint8Array): void => {
    fn();
    frame(b);
  };
}

/**
 * RFC 6937 §3.1's starting point: a Reno flow with 20 segments in flight in congestion
 * avoidance (cwnd = ssthresh = 20). The sender's data frames are logged in `events` as
 * 'N' (new) or 'R' (retransmission); the n-th new segment (from 1) is dropped when
 * `lose(n)` says so.
 */
function prrFlow(lose: (n: number) => boolean): { f: Flow; c: TcpConnection; events: string[] } {
  const f = flow({ rttMs: 20, data: null, sysA: { 'net.ipv4.tcp_congestion_control': 'reno' } });
  warm(f);
  const c = f.c;
  c.cwnd = 20;
  c.ssthresh = 20;
  const events: string[] = [];
  let first = -1;
  let high = -1;
  let n = 0;
  tap(f.p, f.p.da, (fr) => {
    if (!isData(fr)) return 'pass';
    if (first < 0) first = fr.seq;
    const rel = (fr.seq - first) | 0;
    if (rel > high) {
      high = rel;
      events.push('N');
      if (lose(++n)) return 'drop';
    } else events.push('R');
    return 'pass';
  });
  return { f, c, events };
}

describe('Proportional Rate Reduction (RFC 6937)', () => {
  it("RFC 6937 section 'Examples', one loss: cwnd = pipe = 20, ssthresh 10; N N R on the first three duplicate ACKs, then one new segment every other ACK, ending at ssthresh", () => {
    // The first segment of the window is lost once.
    const { f, c, events } = prrFlow((n) => n === 1);
    let exitCwnd = -1;
    let wasRecovering = false;
    let acksIn = 0;
    let pipeAt19 = -1;
    onArrival(f.p.da, () => {
      if (wasRecovering && !c.inRecovery && exitCwnd < 0) exitCwnd = c.cwnd;
      wasRecovering = c.inRecovery;
      // pipe (RFC 6675 §4) once the 19th duplicate ACK has been taken in.
      if (acksIn++ === 19) pipeAt19 = c.rec.inFlight();
      events.push('A');
    });
    burst(f, 40);
    expect(events.filter((e) => e === 'N').length).toBe(20);
    f.p.time.advance(500);
    if (wasRecovering && !c.inRecovery && exitCwnd < 0) exitCwnd = c.cwnd;
    // What the sender sent in answer to each of the 19 duplicate ACKs the 19 segments after the hole bring.
    const answers: string[] = [];
    let cur = '';
    for (const e of events.slice(20)) {
      if (e === 'A') {
        answers.push(cur);
        cur = '';
      } else cur += e;
    }
    answers.push(cur);
    // answers[0] is what went out before the first ACK (nothing); answers[i] follows ACK i.
    expect(answers[0]).toBe('');
    // RFC 6937 §3.1's PRR table for this case (ACKs 1 to 19):
    //   sent:  N  N  R     N     N     N     N     N     N        N  N
    //   pipe: 19 19 18 18 18 17 17 16 16 15 15 14 14 13 13 12 12 11 10
    // Limited transmit on the first two (RFC 3042), the fast retransmit on the third, then one
    // segment every other ACK. The stack follows Linux's tcp_cwnd_reduction, whose RecoverFS
    // is prior_cwnd (20) and whose reduction bound adds a segment only when snd_una advances;
    // it matches the table to the 16th ACK; it then sends on the 17th what the table sends on
    // the 18th, and nothing on the 19th (one segment fewer in all), ending as the table does
    // with pipe at ssthresh.
    const rfc = ['N', 'N', 'R', '', 'N', '', 'N', '', 'N', '', 'N', '', 'N', '', 'N', '', '', 'N', 'N'];
    expect(answers.slice(1, 17).join(','), events.join('')).toEqual(rfc.slice(0, 16).join(','));
    expect(answers.slice(17, 20)).toEqual(['N', '', '']);
    const total = (a: string[]): number => a.join('').length;
    expect(total(answers.slice(1, 20))).toBe(total(rfc) - 1);
    expect(pipeAt19).toBe(10);
    const mib = f.p.a.mib;
    expect(c.ssthresh).toBe(10);
    expect(mib.TcpExtTCPSackRecovery).toBe(1);
    expect(mib.TcpRetransSegs).toBe(1);
    // RFC 6937 §3: recovery ends with cwnd at ssthresh.
    expect(exitCwnd).toBe(10);
  });

  it("RFC 6937 section 'Examples', 15 segments lost: N N then one retransmission per duplicate ACK, the table's PRR-CRB row (RFC 9937 keeps the slow-start bound for ACKs that advance snd_una)", () => {
    // The first 15 segments of the window are lost once.
    const { f, c, events } = prrFlow((n) => n <= 15);
    onArrival(f.p.da, () => events.push('A'));
    burst(f, 40);
    f.p.time.advance(20);
    const answers = events.slice(20).join('').split('A');
    // RFC 6937 §3.1, 15 losses (ACKs for segments 15 to 19; 0 to 14 lost):
    //   PRR-CRB   sent:  N  N  R  R  R    (pipe 19 19 4 4 4)
    //   PRR-SSRB  sent:  N  N 2R 2R 2R    (pipe 19 19 4 5 6)
    // Linux's tcp_cwnd_reduction (and RFC 9937) allows the extra segment of the slow-start
    // bound only on an ACK that advances snd_una without new loss; duplicate ACKs get the
    // conservative bound, as the CRB row.
    expect(answers.slice(1, 6)).toEqual(['N', 'N', 'R', 'R', 'R']);
    expect(c.ssthresh).toBe(10);
    // pipe is 4 when each retransmission is decided, as the CRB row shows; 5 with the last one out.
    expect(c.rec.inFlight()).toBe(5);
  });
});

describe('F-RTO (RFC 5682)', () => {
  it('RFC 5682 §3.1 (SACK-enhanced, as Linux): a delay spike fires the RTO though nothing was lost; new data is acknowledged, the RTO is undone and cwnd restored', () => {
    const RTT = 20;
    // Timestamps off on the sender, so that the Eifel check (RFC 3522) cannot undo it first.
    const f = flow({ rttMs: RTT, data: pattern(4 << 20), sysA: { 'net.ipv4.tcp_timestamps': '0' } });
    const c = f.c;
    const mib = f.p.a.mib;
    // In slow start, some way into the transfer.
    f.p.time.advance(100);
    expect(c.tsOk).toBe(false);
    expect(mib.TcpRetransSegs).toBe(0);
    // 400 ms during which the receiver's ACKs are held on the wire (none is lost).
    let spikeEnd = -1;
    tap(f.p, f.p.db, () => {
      const now = f.p.time.now();
      return now < spikeEnd ? spikeEnd - now : 'pass';
    });
    const cwndBefore = c.cwnd;
    const ssthreshBefore = c.ssthresh;
    spikeEnd = f.p.time.now() + 400;
    f.p.time.advance(300);
    expect(mib.TcpExtTCPTimeouts).toBe(1);
    expect(c.inLoss).toBe(true);
    expect(c.cwnd).toBeLessThan(cwndBefore);
    f.p.time.advance(400);
    // RFC 5682 §3.1 step 3.b: data never retransmitted was acknowledged after the RTO.
    expect(mib.TcpExtTCPSpuriousRTOs).toBe(1);
    expect(mib.TcpExtTCPLossUndo).toBe(1);
    expect(c.inLoss).toBe(false);
    // The window is what it was before the timeout (Linux tcp_undo_cwnd_reduction).
    expect(c.ssthresh).toBeGreaterThanOrEqual(ssthreshBefore);
    expect(c.cwnd).toBeGreaterThanOrEqual(cwndBefore);
    expect(mib.TcpExtTCPTimeouts).toBe(1);
    f.p.time.advance(5000);
    expect(f.sink.received).toBe(4 << 20);
    expect(f.sink.digest()).toBe(createHash('sha256').update(pattern(4 << 20)).digest('hex'));
  });
});

describe('Receiver ACKs after a silence (Linux tcp_event_data_recv)', () => {
  it('in-order data after more than an RTO of silence is acknowledged segment by segment, as after a sender timeout; otherwise every second segment', () => {
    const f = flow({ rttMs: 20, data: null });
    warm(f);
    const acks = tap(f.p, f.p.db, () => 'pass');
    const count = (fn: () => void): number => {
      const n0 = acks.length;
      fn();
      return acks.length - n0;
    };
    // Past the first 16 quick ACKs: four segments draw two ACKs.
    expect(count(() => {
      burst(f, 4);
      f.p.time.advance(30);
    })).toBe(2);
    // 100 ms later (less than the receiver's RTO), still two.
    f.p.time.advance(100);
    expect(count(() => {
      burst(f, 4);
      f.p.time.advance(30);
    })).toBe(2);
    // After a second of silence (more than its RTO, about 220 ms), one ACK per segment.
    f.p.time.advance(1000);
    expect(f.server().rtoMs()).toBeLessThan(1000);
    expect(count(() => {
      burst(f, 4);
      f.p.time.advance(30);
    })).toBe(4);
  });
});

describe('D-SACK (RFC 2883, RFC 3708)', () => {
  it('RFC 2883 §4: a duplicate segment is reported in the first SACK block, below the cumulative ACK', () => {
    const f = flow({ rttMs: 20, data: null });
    warm(f);
    // The third segment of a burst reaches the receiver twice (sent again 1 ms later).
    let n = 0;
    let dupSeq = -1;
    let dupLen = 0;
    tap(f.p, f.p.da, (fr) => {
      if (isData(fr) && ++n === 3) {
        dupSeq = fr.seq;
        dupLen = fr.len;
      }
      return 'pass';
    });
    const wire = f.p.da.sendBatch.bind(f.p.da);
    f.p.da.sendBatch = (frames: readonly Uint8Array[], count: number): number => {
      const before = n;
      wire(frames, count);
      if (before < 3 && n >= 3) {
        for (let i = 0; i < count; i++) {
          const fr = frames[i];
          const seq = ((fr[38] << 24) | (fr[39] << 16) | (fr[40] << 8) | fr[41]) >>> 0;
          if (seq === dupSeq) {
            const copy = fr.slice();
            f.p.time.after(1, () => wire([copy], 1));
          }
        }
      }
      return count;
    };
    const acks = tap(f.p, f.p.db, () => 'pass');
    burst(f, 4);
    f.p.time.advance(200);
    const seq3 = dupSeq;
    const d = acks.find((a) => a.sack.length > 0);
    expect(d).toBeDefined();
    expect(d!.sack[0]).toBe(seq3);
    expect(d!.sack[1]).toBe((seq3 + dupLen) >>> 0);
    expect((d!.ack - d!.sack[1]) | 0).toBeGreaterThanOrEqual(0);
    expect(f.p.b.mib.TcpExtTCPDSACKOldSent).toBe(1);
    expect(f.p.a.mib.TcpExtTCPDSACKRecv).toBe(1);
    expect(f.c.dsackDups).toBe(1);
  });

  it('RFC 3708: a fast retransmit caused by reordering is undone once a D-SACK shows both copies arrived; reo_wnd grows (RFC 8985 §6.2 step 4)', () => {
    const RTT = 20;
    // Without timestamps, only the D-SACK can tell the retransmission was needless.
    const f = flow({ rttMs: RTT, data: null, sysA: { 'net.ipv4.tcp_timestamps': '0' } });
    warm(f);
    const c = f.c;
    const mib = f.p.a.mib;
    c.cwnd = 20;
    c.ssthresh = 20;
    // The first segment of a burst of 20 is held 15 ms: the later ones overtake it, three SACKs
    // (DupThresh) make RACK mark it lost at once, and the original arrives before the retransmission.
    let n = 0;
    let first = -1;
    tap(f.p, f.p.da, (fr) => {
      if (!isData(fr) || ++n !== 1) return 'pass';
      first = fr.seq;
      return 15;
    });
    // The receiver's ACK for the original is lost, so the D-SACK for the retransmission comes
    // with the cumulative ACK that ends recovery (a D-SACK after the end finds nothing to undo).
    const end = (): number => (first + 20 * c.mss) >>> 0;
    let dropped = 0;
    const acks = tap(f.p, f.p.db, (a) => (dropped === 0 && a.ack === end() && a.sack.length === 0 && ++dropped ? 'drop' : 'pass'));
    burst(f, 20);
    f.p.time.advance(300);
    expect(dropped).toBe(1);
    expect(mib.TcpRetransSegs).toBe(1);
    expect(mib.TcpExtTCPSackRecovery).toBe(1);
    const d = acks.find((a) => a.sack.length > 0 && a.ack === end())!;
    expect(d.sack.slice(0, 2)).toEqual([first, (first + c.mss) >>> 0]);
    expect(mib.TcpExtTCPDSACKRecv).toBe(1);
    expect(c.dsackDups).toBe(1);
    // Every retransmission of the episode came back as a duplicate: undone as the episode ends
    // (Linux tcp_try_undo_recovery counts it TCPFullUndo; TCPDSACKUndo is for recoveries that go on).
    expect(mib.TcpExtTCPFullUndo).toBe(1);
    expect(c.cwnd).toBeGreaterThanOrEqual(20);
    expect(c.ssthresh).toBeGreaterThanOrEqual(20);
    // RFC 8985 §6.2 step 4: reo_wnd is now twice min_RTT/4, for the next 16 recoveries.
    expect(c.rec.reoWndMult).toBe(2);
    expect(c.rec.reoWndPersist).toBe(16);
  });
});


/**
 * Mathis, Semke, Mahdavi, Ott (1997), "The macroscopic behavior of the TCP congestion
 * avoidance algorithm": Reno's throughput MSS/RTT · C/sqrt(p), C = sqrt(3/2) (an ACK per
 * segment, or growth counted in segments acknowledged as Linux counts it, RFC 3465).
 * Bytes per second.
 */
function mathis(mss: number, rttMs: number, p: number): number {
  return (mss / (rttMs / 1000)) * (Math.sqrt(3 / 2) / Math.sqrt(p));
}

/**
 * Padhye, Firoiu, Towsley, Kurose (1998), "Modeling TCP throughput", eq. (33): Mathis's
 * model with the time spent in retransmission timeouts added (T0 the first timeout of a
 * series, backed off after), which is the regime of small windows. b = 1 (growth counted
 * in segments acknowledged). p is the paper's: loss indications per segment sent. Bytes per second.
 */
function pftk(mss: number, rttMs: number, t0Ms: number, p: number): number {
  const rtt = rttMs / 1000;
  const t0 = t0Ms / 1000;
  const b = 1;
  const denom = rtt * Math.sqrt((2 * b * p) / 3) + t0 * Math.min(1, 3 * Math.sqrt((3 * b * p) / 8)) * p * (1 + 32 * p * p);
  return mss / denom;
}

interface BulkResult {
  goodput: number;
  /** Data segments sent, and those the wire dropped. */
  sent: number;
  dropped: number;
  /** Segments dropped / data segments sent, and loss events (a burst is one) / data segments sent. */
  lossRate: number;
  eventRate: number;
  /**
   * Congestion signals per data segment sent, from the sender's counters: recoveries
   * entered (TcpExtTCPSackRecovery, TcpExtTCPRenoRecovery), losses repaired by a loss
   * probe (TcpExtTCPLossProbeRecovery) and retransmission timeouts (TcpExtTCPTimeouts).
   */
  signalRate: number;
  /** The smoothed RTT and the (not backed-off) RTO, averaged over the transfer (ms). */
  meanRttMs: number;
  meanRtoMs: number;
  wallMs: number;
  f: Flow;
}

/**
 * Sends `size` bytes a -> b over `rttMs`, data segments dropped where `drop` says (ACKs
 * pass), and returns the goodput: bytes per second of virtual time until the last byte arrived.
 */
function bulkUnderLoss(
  size: number,
  rttMs: number,
  drop: (n: number) => boolean,
  opts: { sysA?: Record<string, string>; sysB?: Record<string, string>; onStart?: (f: Flow) => void } = {},
): BulkResult {
  const wall0 = Date.now();
  const data = pattern(size, 7);
  const f = flow({ rttMs, data, sysA: opts.sysA, sysB: opts.sysB });
  opts.onStart?.(f);
  let sent = 0;
  let dropped = 0;
  let events = 0;
  let last = false;
  tap(f.p, f.p.da, (fr) => {
    if (!isData(fr)) return 'pass';
    sent++;
    const d = drop(sent);
    if (d && !last) events++;
    last = d;
    if (d) {
      dropped++;
      return 'drop';
    }
    return 'pass';
  });
  const t0 = f.p.time.now() - rttMs * 2;
  const limit = t0 + 3_600_000;
  let samples = 0;
  let rttSum = 0;
  let rtoSum = 0;
  while (f.sink.received < size && f.p.time.now() < limit) {
    f.p.time.advance(10);
    samples++;
    rttSum += f.c.srttUs / 1000;
    rtoSum += f.c.rtt.rtoUs / 1000;
  }
  const t1 = f.p.time.now();
  expect(f.sink.received).toBe(size);
  expect(f.sink.digest()).toBe(createHash('sha256').update(data).digest('hex'));
  const m = f.p.a.mib;
  const signals = m.TcpExtTCPSackRecovery + m.TcpExtTCPRenoRecovery + m.TcpExtTCPLossProbeRecovery + m.TcpExtTCPTimeouts;
  return {
    goodput: size / ((t1 - t0) / 1000),
    sent,
    dropped,
    lossRate: dropped / sent,
    eventRate: events / sent,
    signalRate: signals / sent,
    meanRttMs: rttSum / samples,
    meanRtoMs: rtoSum / samples,
    wallMs: Date.now() - wall0,
    f,
  };
}

const MB = 1 << 20;

function report(name: string, r: BulkResult, rttMs: number): void {
  const m = mathis(r.f.c.mss, rttMs, r.lossRate);
  const pf = pftk(r.f.c.mss, r.meanRttMs, r.meanRtoMs, r.signalRate);
  const mib = r.f.p.a.mib;
  const mb = (x: number): string => (x / 1e6).toFixed(3);
  console.log(
    `${name}: loss ${(r.lossRate * 100).toFixed(2)}% (events ${(r.eventRate * 100).toFixed(2)}%, congestion signals ${(r.signalRate * 100).toFixed(2)}%), goodput ${mb(r.goodput)} MB/s; ` +
      `Mathis ${mb(m)} (${(r.goodput / m).toFixed(2)}x); PFTK at the run's p, RTT ${r.meanRttMs.toFixed(1)} ms, T0 ${r.meanRtoMs.toFixed(0)} ms: ${mb(pf)} (${(r.goodput / pf).toFixed(2)}x); ` +
      `recoveries ${mib.TcpExtTCPSackRecovery + mib.TcpExtTCPRenoRecovery}, timeouts ${mib.TcpExtTCPTimeouts}, probes ${mib.TcpExtTCPLossProbes}, resent ${mib.TcpRetransSegs}; wall ${r.wallMs} ms`,
  );
}

/**
 * Bulk transfers at 20 ms RTT (the sim wire's delay, no queue), data segments dropped, ACKs
 * passing.
 *
 * What is asserted, and why:
 *  - Bursts of loss: goodput >= Mathis as issue 10 states it, MSS/RTT · sqrt(3/2)/sqrt(p) with
 *    p = segments lost / data segments sent and RTT = the path's 20 ms. SACK repairs a burst in
 *    one recovery, so the bound holds with room.
 *  - Random loss, 1%, 3%, 10%: that bound is not reached, by the stack nor by Linux. The same
 *    path built live (test/integration/tcp-mathis.netns.test.ts: kernel CUBIC sender and
 *    receiver, 21.5 ms by a tapstack router's netem, nft numgen loss) measured the kernel at
 *    0.90 to 0.93, 0.81 to 0.86 and 0.57 to 0.59 of it over runs of 30 to 80 s, the stack's
 *    sender beside it at 0.89, 0.79 to 0.82 and 0.61 to 0.62; here, with the stack at both
 *    ends, 0.88, 0.72 and 0.54. The kernel receivers there sent 0.17 to 0.56 ACKs per
 *    segment (an ACK as the reading process wakes, tcp_cleanup_rbuf), so no segment waited
 *    for a second one; the receiver here reads at once and acknowledges every second
 *    segment, as Linux's does for a reader that keeps up. Linux's CUBIC
 *    grows its Reno-friendly window at about 0.46 segments per window acknowledged here (8/15
 *    nominally, the window trailing W_est) and reduces to 0.7 at each of about one signal per
 *    loss; at 10% most windows are 2 to 4 segments and timeouts take about a tenth of the
 *    time. What is asserted there instead is a derived bound: Padhye et al.'s model, which is
 *    Mathis's with the timeouts added, evaluated with the run's own p (congestion signals per
 *    segment sent, counted from TcpExtTCPSackRecovery, TcpExtTCPLossProbeRecovery and
 *    TcpExtTCPTimeouts), its own mean smoothed RTT and its own mean RTO as T0. The ratio to
 *    Mathis is printed for each run.
 */
describe('Bulk transfers under loss (Mathis et al., Padhye et al.)', () => {
  const RTT = 20;
  for (const p of [0.01, 0.03, 0.1]) {
    it(`${p * 100}% random loss, RTT ${RTT} ms: 50 MB arrive intact, at no less than Padhye et al.'s model at the run's own congestion signals, RTT and RTO`, () => {
      const rng = new Random(1000 + p * 1000);
      const r = bulkUnderLoss(50 * MB, RTT, () => rng.next() < p);
      report(`random ${p * 100}%`, r, RTT);
      const mib = r.f.p.a.mib;
      expect(r.lossRate).toBeGreaterThan(p * 0.9);
      expect(r.lossRate).toBeLessThan(p * 1.1);
      expect(mib.TcpExtTCPSackRecovery).toBeGreaterThan(0);
      // Each lost segment is resent about once: lost retransmissions, not spurious ones, make the rest.
      expect(mib.TcpRetransSegs).toBeLessThanOrEqual(r.dropped + mib.TcpExtTCPLostRetransmit + mib.TcpExtTCPTimeouts);
      expect(r.goodput).toBeGreaterThanOrEqual(pftk(r.f.c.mss, r.meanRttMs, r.meanRtoMs, r.signalRate));
    }, 60_000);
  }

  it(`bursts of 2 to 5 segments lost (1% of segments start one), RTT ${RTT} ms: 50 MB arrive intact at no less than Mathis's bound at the segment loss rate; SACK repairs a burst in one recovery`, () => {
    const rng = new Random(4242);
    let left = 0;
    const r = bulkUnderLoss(50 * MB, RTT, () => {
      if (left > 0) {
        left--;
        return true;
      }
      if (rng.next() < 0.01) {
        left = 1 + Math.floor(rng.next() * 4);
        return true;
      }
      return false;
    });
    report('bursts', r, RTT);
    const mib = r.f.p.a.mib;
    expect(r.goodput).toBeGreaterThanOrEqual(mathis(r.f.c.mss, RTT, r.lossRate));
    // RFC 6675: a burst is repaired in one recovery episode, not one per segment lost.
    expect(mib.TcpExtTCPSackRecovery).toBeLessThan(r.eventRate * ((50 * MB) / r.f.c.mss) * 1.1);
    expect(mib.TcpExtTCPTimeouts).toBeLessThan(mib.TcpExtTCPSackRecovery / 20);
  }, 60_000);

  it('RFC 6582: with tcp_sack=0 at the receiver, NewReno recovers 3% random loss; 10 MB arrive intact, each lost segment resent about once', () => {
    const rng = new Random(77);
    // What is outstanding at each timeout: go-back-N resends at most that.
    let outstandingAtRto = 0;
    // Timeouts that left something outstanding unmarked, or cwnd above one segment.
    let unmarkedAtRto = 0;
    const r = bulkUnderLoss(10 * MB, RTT, () => rng.next() < 0.03, {
      sysB: { 'net.ipv4.tcp_sack': '0' },
      onStart: (f) => {
        const rec = f.c.rec;
        const enterLoss = rec.enterLoss.bind(rec);
        rec.enterLoss = (now: number): void => {
          outstandingAtRto += rec.q.count;
          enterLoss(now);
          if (rec.q.lostOut !== rec.q.count || f.c.cwnd !== 1) unmarkedAtRto++;
        };
      },
    });
    report('reno, no SACK, 3%', r, RTT);
    const mib = r.f.p.a.mib;
    expect(r.f.c.sackOk).toBe(false);
    expect(mib.TcpExtTCPRenoRecovery).toBeGreaterThan(0);
    expect(mib.TcpExtTCPSackRecovery).toBe(0);
    // Without SACK a cumulative ACK counts as delivered what it covers beyond the duplicate
    // ACKs already counted (tcp_remove_reno_sacks), and RACK is not advanced by it, so an RTO
    // marks all outstanding lost and cwnd restarts from one segment (tcp_enter_loss). Fast
    // recovery resends each hole once (one per partial ACK, RFC 6582 §3.2 step 5); after a
    // timeout, go-back-N resends at most what was outstanding when it fired.
    expect(mib.TcpExtTCPTimeouts).toBeGreaterThan(0);
    expect(unmarkedAtRto).toBe(0);
    // Nothing on this wire reorders: the reordering degree stays at tcp_reordering.
    expect(mib.TcpExtTCPRenoReorder).toBe(0);
    expect(r.f.c.reordering).toBe(3);
    expect(mib.TcpExtTCPFastRetrans).toBeLessThanOrEqual(r.dropped);
    expect(mib.TcpExtTCPSlowStartRetrans).toBeLessThanOrEqual(outstandingAtRto);
    expect(mib.TcpRetransSegs).toBe(mib.TcpExtTCPFastRetrans + mib.TcpExtTCPSlowStartRetrans + mib.TcpExtTCPTimeouts);
    expect(r.goodput).toBeGreaterThanOrEqual(pftk(r.f.c.mss, r.meanRttMs, r.meanRtoMs, r.signalRate));
  }, 60_000);
});
