/**
 * Loss recovery as Linux runs it by default (tcp_input.c's tcp_ack and
 * tcp_fastretrans_alert, tcp_recovery.c, the loss probe of tcp_output.c):
 *
 *  - the SACK scoreboard (RFC 2018; RFC 6675 pipe as Scoreboard.inFlight) with
 *    D-SACK (RFC 2883) read on arrival;
 *  - RACK-TLP (RFC 8985): time-based loss marking with a reordering window of
 *    min_RTT/4 that grows with D-SACKs, and the tail loss probe;
 *  - Proportional Rate Reduction (RFC 6937, PRR-SSRB as tcp_cwnd_reduction);
 *  - undo of spurious reductions: timestamps (RFC 3522 Eifel, tcp_packet_delayed),
 *    D-SACK (RFC 3708, tcp_try_undo_dsack) and F-RTO (RFC 5682) after an RTO;
 *  - NewReno (RFC 6582) for a peer without SACK, duplicate ACKs counted as
 *    SACKed segments as Linux does, so limited transmit (RFC 3042) and PRR hold
 *    for both.
 *
 * The connection's congestion states are Linux's: open, disorder, cwr,
 * recovery, loss (tcp_ca_state).
 */
import type { TcpConnection } from '../connection.js';
import { Scoreboard, SB_EVER, SB_FIN, SB_LOST, SB_RETRANS, SB_SACKED } from './scoreboard.js';
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from '../seq.js';
import { ecnOnAck, ecnQueueCwr } from '../ecn.js';

export const CA_OPEN = 0;
export const CA_DISORDER = 1;
export const CA_CWR = 2;
export const CA_RECOVERY = 3;
export const CA_LOSS = 4;
const CA_NAMES = ['open', 'disorder', 'cwr', 'recovery', 'loss'] as const;

/** Which timer the connection's retransmission timer stands for (Linux icsk_pending). */
export const T_RTO = 0;
export const T_TLP = 1;
export const T_REO = 2;

// Linux tcp_input.c FLAG_* for what one ACK did.
export const F_DATA = 0x01;
export const F_WIN_UPDATE = 0x02;
const F_DATA_ACKED = 0x04;
const F_RETRANS_DATA_ACKED = 0x08;
const F_DATA_SACKED = 0x20;
const F_LOST_RETRANS = 0x80;
const F_ORIG_SACK_ACKED = 0x200;
const F_SND_UNA_ADVANCED = 0x400;
const F_DSACKING_ACK = 0x800;
const F_SET_XMIT_TIMER = 0x1000;
const F_DSACK_TLP = 0x2000;
const F_NOT_DUP = F_DATA | F_WIN_UPDATE | F_DATA_ACKED;
const F_FORWARD_PROGRESS = F_DATA_ACKED | F_DATA_SACKED;
const F_CA_ALERT = F_DATA_SACKED | F_DSACKING_ACK;

/** net.ipv4.tcp_recovery bits (include/net/tcp.h). */
export const TCP_RACK_LOSS_DETECTION = 0x1;
export const TCP_RACK_STATIC_REO_WND = 0x2;
export const TCP_RACK_NO_DUPTHRESH = 0x4;

/** RFC 8985 §6.2 step 4 / Linux TCP_RACK_RECOVERY_THRESH: recoveries a grown reo_wnd persists. */
const RACK_RECOVERY_THRESH = 16;
/** Linux TCP_TIMEOUT_MIN_US: 2 ms. */
const TIMEOUT_MIN_MS = 2;
const INFINITE_SSTHRESH = 0x7fffffff;

export class LossRecovery {
  readonly q = new Scoreboard();
  ca = CA_OPEN;
  /** Linux high_seq: snd_nxt when the current episode began (RFC 6582 "recover"). */
  highSeq = 0;
  /** Segments delivered (acked or SACKed) since the connection began (Linux tp->delivered). */
  delivered = 0;
  /** Duplicate ACKs counted as SACKed segments for a peer without SACK (Linux sacked_out under Reno). */
  renoSacked = 0;
  /** Reordering degree in segments (Linux tp->reordering), and how often reordering was seen. */
  reordering: number;
  reordSeen = 0;
  /** Segments reported by D-SACKs (Linux tp->dsack_dups). */
  dsackDups = 0;
  /** Highest SACKed sequence (Linux tcp_highest_sack_seq); valid while fackValid. */
  fack = 0;
  fackValid = false;

  // ---- RACK (RFC 8985 §6.1) ----
  rackXmit = -1;
  rackEndSeq = 0;
  rackRttUs = 0;
  rackAdvanced = false;
  reoWndMult = 1;
  reoWndPersist = 0;
  dsackSeen = false;
  rackLastDelivered = 0;

  // ---- PRR (RFC 6937 §3) ----
  prrDelivered = 0;
  prrOut = 0;

  // ---- undo (Linux undo_marker, undo_retrans, prior_ssthresh, retrans_stamp) ----
  undoMarker = 0;
  undoActive = false;
  undoRetrans = -1;
  priorSsthresh = 0;
  /** When the first retransmission of this episode left (ms), 0 if none. */
  retransStampMs = 0;
  /** F-RTO (RFC 5682) in progress after this RTO. */
  frto = false;

  // ---- TLP (RFC 8985 §7) ----
  tlpHighSeq = 0;
  tlpActive = false;
  tlpRetrans = false;
  /** The output path may send one segment beyond cwnd (the probe of new data). */
  forceOne = false;

  /** The last transmit stamp handed out (ms). */
  private lastStamp = 0;

  /**
   * Transmit times strictly increase, as with Linux's µs clock: two segments sent in the same
   * instant must still be ordered for RACK (RFC 8985 §6.2: "sent after"), so each is a
   * nanosecond after the one before when the clock has not moved.
   */
  private stamp(nowMs: number): number {
    const t = nowMs > this.lastStamp ? nowMs : this.lastStamp + 1e-6;
    this.lastStamp = t;
    return t;
  }

  /** What the retransmission timer stands for. */
  pending = T_RTO;

  /** Scratch for one ACK. */
  private reoBumped = false;
  private flag = 0;
  private newlyLost = 0;
  private priorDelivered = -1;

  constructor(private readonly c: TcpConnection) {
    this.reordering = c.host.settings.reordering;
  }

  reset(): void {
    this.q.clear();
    this.ca = CA_OPEN;
    this.renoSacked = 0;
  }

  private get mib() {
    return this.c.host.mib;
  }

  private get rack(): boolean {
    return (this.c.host.settings.recovery & TCP_RACK_LOSS_DETECTION) !== 0;
  }

  /** Segments the peer holds above a hole: SACKed ones, or duplicate ACKs without SACK (Linux sacked_out). */
  get sackedOut(): number {
    return this.q.sackedOut + this.renoSacked;
  }

  /** Linux tcp_packets_in_flight. */
  inFlight(): number {
    return this.q.inFlight(this.renoSacked);
  }

  /** The state now (read through a call, so a switch on it does not narrow it). */
  private caNow(): number {
    return this.ca;
  }

  private setCa(state: number): void {
    if (this.ca === state) return;
    this.ca = state;
    this.c.cc.setState(this.c, CA_NAMES[state]);
  }

  // =====================================================================
  // Sending
  // =====================================================================

  /** New data left: one record (Linux tcp_event_new_data_sent). */
  onNewData(seq: number, end: number, fin: boolean, nowMs: number): void {
    const prior = this.q.count;
    this.q.push(seq, end, this.stamp(nowMs), this.delivered, fin);
    if (this.ca === CA_CWR || this.ca === CA_RECOVERY) this.prrOut++;
    const c = this.c;
    // tcp_event_new_data_sent: the RTO starts with the first segment out, or replaces a probe timer.
    if (prior === 0 || (this.pending === T_TLP && c.rtxTimer.armed)) this.rearmRto(nowMs);
  }

  /** After a burst of new data: schedule the loss probe (tcp_write_xmit's tail). */
  afterSend(nowMs: number): void {
    if (!this.forceOne) this.scheduleLossProbe(false, nowMs);
  }

  /** Resends the record at slot k (in pieces of the current MSS if it is larger). */
  private retransmitSlot(k: number, nowMs: number): void {
    const c = this.c;
    const q = this.q;
    const seq = q.seq[k];
    const segEnd = q.end[k];
    const fin = (q.flags[k] & SB_FIN) !== 0;
    let off = seqDiff(seq, c.sndUna);
    if (off < 0) off = 0;
    let left = seqDiff(segEnd, c.sndUna) - off - (fin ? 1 : 0);
    if (left < 0) left = 0;
    const mss = c.sendMss();
    do {
      const len = Math.min(left, mss);
      const last = len === left;
      c.host.sendData(c, (c.sndUna + off) >>> 0, off, len, fin && last, true);
      if (c.pacer.enabled) c.pacer.sent(len, c.host.time.nowNs(), c.dataSegsOut);
      c.noteRetrans(len);
      off += len;
      left -= len;
    } while (left > 0);
    q.markRetrans(k, this.stamp(nowMs));
    // tcp_event_data_sent: lsndtime moves with every data segment, resent ones included.
    c.lastSendMs = nowMs;
    if (this.retransStampMs === 0) this.retransStampMs = nowMs;
    if (this.undoRetrans < 0) this.undoRetrans = 0;
    this.undoRetrans++;
    if (this.ca === CA_CWR || this.ca === CA_RECOVERY) this.prrOut++;
  }

  /**
   * Resends what is marked lost while the window allows (Linux tcp_xmit_retransmit_queue;
   * RFC 6675 §5 NextSeg rule 1). Returns the segments sent.
   */
  xmitRetransmitQueue(nowMs: number): number {
    const q = this.q;
    if (q.retransOut >= q.lostOut) return 0;
    const c = this.c;
    let sent = 0;
    let budget = c.host.txBudget(c);
    for (let i = 0; i < q.count; i++) {
      if (q.retransOut >= q.lostOut) break;
      if (this.inFlight() >= c.cwnd) {
        c.cwv.limitedNow = true;
        break;
      }
      const k = q.slot(i);
      const f = q.flags[k];
      if ((f & (SB_SACKED | SB_RETRANS)) !== 0 || (f & SB_LOST) === 0) continue;
      if (c.pacer.enabled && !c.pacePermits()) break;
      if (budget <= 0) {
        c.host.resumeLater(c);
        break;
      }
      budget--;
      this.retransmitSlot(k, nowMs);
      if (this.ca === CA_LOSS) this.mib.TcpExtTCPSlowStartRetrans++;
      else this.mib.TcpExtTCPFastRetrans++;
      // tcp_xmit_retransmit_queue: resending the head restarts the RTO.
      if (i === 0) this.rearmRto(nowMs);
      sent++;
    }
    return sent;
  }

  // =====================================================================
  // ACK processing (Linux tcp_ack)
  // =====================================================================

  /**
   * One acceptable ACK, after snd_una has moved to `ack` (from prevUna) and the
   * RTT sample was taken. `dup` says it is a duplicate ACK by RFC 5681's rules.
   */
  onAck(blocks: Uint32Array, nBlocks: number, prevUna: number, ack: number, dup: boolean, flags: number, tcpFlags: number, tsEcr: number, nowMs: number): void {
    const c = this.c;
    const q = this.q;
    this.flag = flags;
    this.reoBumped = false;
    this.newlyLost = 0;
    this.priorDelivered = -1;
    const delivered0 = this.delivered;
    const priorFack = this.fackValid ? this.fack : prevUna;
    if (c.sackOk && nBlocks > 0) this.sacktag(blocks, nBlocks, prevUna, ack, nowMs);
    let ackedPkts = 0;
    if (seqGt(ack, prevUna)) {
      this.flag |= F_SND_UNA_ADVANCED;
      ackedPkts = this.cleanRtxQueue(ack, priorFack, nowMs);
    }
    // Without SACK, what the cumulative ACK covers takes its duplicate ACKs with it.
    if (!c.sackOk && ackedPkts > 0) this.removeRenoSacks(ackedPkts);
    if (this.fackValid && seqLe(this.fack, c.sndUna)) this.fackValid = false;
    this.updateReoWnd();
    if (this.tlpActive) this.processTlpAck(ack);
    const dubious = !(this.flag & F_NOT_DUP) || (this.flag & F_CA_ALERT) !== 0 || this.ca !== CA_OPEN;
    if (dubious) this.fastretransAlert(prevUna, dup, tsEcr, nowMs);
    const ackedSacked = this.delivered - delivered0;
    // Linux tcp_cong_control: PRR while the window is being reduced, else the module grows it.
    if (this.ca === CA_CWR || this.ca === CA_RECOVERY) this.cwndReduction(ackedSacked);
    else if (this.ca !== CA_LOSS && this.flag & F_SND_UNA_ADVANCED && c.ecnFlags !== 0 && ecnOnAck(c, tcpFlags, ackedSacked, this.inFlight())) {
      // RFC 3168 §6.1.2: an ECE's reduction (ecn.ts) set cwnd on this ACK.
    } else if (this.mayRaiseCwnd()) c.cc.congAvoid(c, ack, ackedSacked, nowMs * 1000);
    if (c.cwnd > c.cwndClamp) c.cwnd = c.cwndClamp;
    if (q.count === 0) {
      if (!c.probing) c.host.time.cancel(c.rtxTimer);
    } else if (this.flag & F_SET_XMIT_TIMER) this.setXmitTimer(nowMs);
  }

  private mayRaiseCwnd(): boolean {
    if (this.reordering > this.c.host.settings.reordering) return (this.flag & F_FORWARD_PROGRESS) !== 0;
    return (this.flag & F_DATA_ACKED) !== 0;
  }

  /** RFC 2018 / RFC 2883 / RFC 6675: the SACK blocks of one ACK (Linux tcp_sacktag_write_queue). */
  private sacktag(blocks: Uint32Array, n: number, prevUna: number, ack: number, nowMs: number): void {
    const c = this.c;
    const q = this.q;
    const mss = c.mss;
    // RFC 2883 §4: a first block below the cumulative ACK, or inside the second, reports a duplicate.
    const s0 = blocks[0];
    const e0 = blocks[1];
    let dup = false;
    if (seqLt(s0, ack)) {
      dup = true;
      this.mib.TcpExtTCPDSACKRecv++;
    } else if (n > 1 && seqGe(s0, blocks[2]) && seqLe(e0, blocks[3])) {
      dup = true;
      this.mib.TcpExtTCPDSACKOfoRecv++;
    }
    if (dup) {
      const segs = Math.max(1, Math.round(seqDiff(e0, s0) / mss));
      this.mib.TcpExtTCPDSACKRecvSegs += segs;
      this.dsackDups += segs;
      this.dsackSeen = true;
      this.flag |= F_DSACKING_ACK;
      // RFC 3708 §3 / Linux "dumb counting" for data already acknowledged: each D-SACK
      // for a retransmission of this episode means one retransmission was needless.
      if (this.undoActive && this.undoRetrans > 0 && seqLe(e0, prevUna) && seqGt(e0, this.undoMarker)) this.undoRetrans = Math.max(0, this.undoRetrans - segs);
      // The probe and its original both arrived (RFC 8985 §7.4.2): a D-SACK of the probed tail.
      if (this.tlpActive && this.tlpRetrans && seqLe(e0, this.tlpHighSeq) && seqGt(e0, prevUna)) this.flag |= F_DSACK_TLP;
    }
    const priorFack = this.fackValid ? this.fack : c.sndUna;
    let reord = -1;
    for (let b = 0; b < n; b++) {
      const s = blocks[2 * b];
      const e = blocks[2 * b + 1];
      if (seqLe(e, s) || seqGt(e, c.sndMax)) continue;
      if (b === 0 && dup) {
        // A D-SACK of data still queued (this ACK's cumulative part included): a retransmission not needed.
        if (seqGt(e, prevUna)) this.dsackInQueue(seqLt(s, prevUna) ? prevUna : s, e, prevUna);
        continue;
      }
      if (seqLe(e, ack)) continue;
      for (let i = q.firstEndingAfter(s, c.sndUna); i < q.count; i++) {
        const k = q.slot(i);
        if (seqGt(q.end[k], e)) break;
        if (seqLt(q.seq[k], s)) continue;
        const f = q.flags[k];
        if (f & SB_SACKED) continue;
        q.markSacked(k);
        this.delivered++;
        this.noteDelivered(k, f, nowMs);
        this.flag |= F_DATA_SACKED;
        if (!(f & SB_EVER)) {
          // RFC 5682 appendix B (SACK-enhanced F-RTO, Linux): data sent before the episode and never resent.
          if (seqLe(q.end[k], this.highSeq)) this.flag |= F_ORIG_SACK_ACKED;
          // Linux tcp_sacktag_one: a never-resent segment SACKed below the highest SACK arrived out of order.
          if (seqLt(q.seq[k], priorFack) && (reord < 0 || seqLt(q.seq[k], reord))) reord = q.seq[k];
        }
        if (!this.fackValid || seqGt(q.end[k], this.fack)) {
          this.fack = q.end[k];
          this.fackValid = true;
        }
      }
    }
    if (reord >= 0) this.checkSackReordering(reord, priorFack, false);
  }

  private dsackInQueue(s: number, e: number, base: number): void {
    const q = this.q;
    for (let i = q.firstEndingAfter(s, base); i < q.count; i++) {
      const k = q.slot(i);
      if (seqGe(q.seq[k], e)) break;
      if (q.flags[k] & SB_EVER && this.undoActive && this.undoRetrans > 0) this.undoRetrans--;
    }
  }

  /** RFC 8985 §6.2 steps 1-2 for one newly delivered segment (Linux tcp_rack_advance). */
  private noteDelivered(k: number, f: number, nowMs: number): void {
    const q = this.q;
    const xmit = q.xmit[k];
    if (q.deliv[k] > this.priorDelivered) this.priorDelivered = q.deliv[k];
    const rttUs = (nowMs - xmit) * 1000;
    // RFC 8985 §6.2 step 2: a retransmitted segment acknowledged sooner than min_RTT was the original.
    if (f & SB_EVER && rttUs < this.c.rtt.minRttUs) return;
    this.rackAdvanced = true;
    this.rackRttUs = rttUs;
    const endSeq = q.end[k];
    if (this.rackXmit < 0 || xmit > this.rackXmit || (xmit === this.rackXmit && seqGt(endSeq, this.rackEndSeq))) {
      this.rackXmit = xmit;
      this.rackEndSeq = endSeq;
    }
  }

  /** Linux tcp_check_sack_reordering: how far out of order data arrived, in segments. */
  private checkSackReordering(lowSeq: number, fack: number, ts: boolean): void {
    if (!seqLt(lowSeq, fack)) return;
    const mss = this.c.mss;
    const metric = seqDiff(fack, lowSeq);
    if (metric > this.reordering * mss) this.reordering = Math.min(Math.ceil(metric / mss), this.c.host.settings.maxReordering);
    this.reordSeen++;
    if (ts) this.mib.TcpExtTCPTSReorder++;
    else this.mib.TcpExtTCPSACKReorder++;
  }

  /** Records the cumulative ACK has passed (Linux tcp_clean_rtx_queue). Returns the segments acknowledged. */
  private cleanRtxQueue(ack: number, priorFack: number, nowMs: number): number {
    const q = this.q;
    const c = this.c;
    let acked = 0;
    let reord = -1;
    while (q.count > 0) {
      const k = q.slot(0);
      if (seqGt(q.end[k], ack)) {
        // Partly acknowledged: the rest stays, from the new snd_una.
        if (seqGt(ack, q.seq[k])) q.seq[k] = ack;
        break;
      }
      const f = q.flags[k];
      if (f & SB_EVER) this.flag |= F_RETRANS_DATA_ACKED;
      else if (!(f & SB_SACKED)) {
        if (seqLe(q.end[k], this.highSeq)) this.flag |= F_ORIG_SACK_ACKED;
        if (reord < 0) reord = q.seq[k];
      }
      // Linux tcp_clean_rtx_queue counts delivery and advances RACK here only with SACK;
      // without it, tcp_remove_reno_sacks counts what the cumulative ACK delivered.
      if (!(f & SB_SACKED) && c.sackOk) {
        this.delivered++;
        this.noteDelivered(k, f, nowMs);
      }
      q.popHead();
      acked++;
    }
    if (acked > 0) this.flag |= F_DATA_ACKED | F_SET_XMIT_TIMER;
    c.packetsOut = q.count;
    c.cc.pktsAcked(c, acked, c.lastRttUs, nowMs * 1000);
    if (c.sackOk && reord >= 0 && this.fackValid) this.checkSackReordering(reord, priorFack, false);
    if (q.count === 0 || !(q.flags[q.slot(0)] & SB_EVER)) {
      // Nothing resent is outstanding any more (tcp_any_retrans_done).
      if (q.retransOut === 0 && this.ca === CA_OPEN) this.retransStampMs = 0;
    }
    return acked;
  }

  // ---- Reno: duplicate ACKs as SACKed segments (Linux tcp_add_reno_sack and friends) ----

  private addRenoSack(): void {
    const prior = this.renoSacked;
    this.renoSacked++;
    this.checkRenoReordering(0);
    const d = this.renoSacked - prior;
    if (d > 0) this.delivered += d;
  }

  private removeRenoSacks(acked: number): void {
    // One segment filled the hole; the rest of those acknowledged were counted by their duplicate ACKs.
    this.delivered += Math.max(acked - this.renoSacked, 1);
    if (acked - 1 >= this.renoSacked) this.renoSacked = 0;
    else this.renoSacked -= acked - 1;
    this.checkRenoReordering(acked);
  }

  private checkRenoReordering(addend: number): void {
    const q = this.q;
    let holes = Math.max(q.lostOut, 1);
    holes = Math.min(holes, q.count);
    if (this.renoSacked + holes <= q.count) return;
    this.renoSacked = Math.max(0, q.count - holes);
    this.reordering = Math.min(q.count + addend, this.c.host.settings.maxReordering);
    this.reordSeen++;
    this.mib.TcpExtTCPRenoReorder++;
  }

  // =====================================================================
  // RACK (RFC 8985 §6)
  // =====================================================================

  /** RFC 8985 §6.2 step 4 (Linux tcp_rack_update_reo_wnd): D-SACKs widen the window for 16 recoveries. */
  private updateReoWnd(): void {
    if (this.c.host.settings.recovery & TCP_RACK_STATIC_REO_WND || this.priorDelivered < 0) return;
    // A D-SACK within a round trip of the last widening is not counted again.
    if (this.priorDelivered < this.rackLastDelivered) this.dsackSeen = false;
    if (this.dsackSeen) {
      this.reoBumped = true;
      this.reoWndMult = Math.min(0xff, this.reoWndMult + 1);
      this.dsackSeen = false;
      this.rackLastDelivered = this.delivered;
      this.reoWndPersist = RACK_RECOVERY_THRESH;
    } else if (this.reoWndPersist === 0) this.reoWndMult = 1;
  }

  /** RFC 8985 §6.2 step 4 (Linux tcp_rack_reo_wnd), in µs. */
  reoWndUs(): number {
    const c = this.c;
    if (this.reordSeen === 0) {
      // No reordering seen: be quick in recovery, or once DupThresh segments are SACKed.
      if (this.ca >= CA_RECOVERY) return 0;
      if (this.sackedOut >= this.reordering && !(c.host.settings.recovery & TCP_RACK_NO_DUPTHRESH)) return 0;
    }
    return Math.min((c.rtt.minRttUs / 4) * this.reoWndMult, c.rtt.srttUs);
  }

  /**
   * RFC 8985 §6.2 step 5 (Linux tcp_rack_detect_loss): every segment sent before the
   * most recently delivered one, and not delivered within RACK.rtt + reo_wnd of its
   * sending, is lost. Returns the time (ms) until the next one would be, or 0.
   */
  private rackDetectLoss(nowMs: number): number {
    const q = this.q;
    if (this.rackXmit < 0) return 0;
    const reoMs = this.reoWndUs() / 1000;
    const rttMs = this.rackRttUs / 1000;
    let timeout = 0;
    for (let i = 0; i < q.count; i++) {
      const k = q.slot(i);
      const f = q.flags[k];
      if (f & SB_SACKED) continue;
      if (f & SB_LOST && !(f & SB_RETRANS)) continue;
      const x = q.xmit[k];
      const after = this.rackXmit > x || (this.rackXmit === x && seqGt(this.rackEndSeq, q.end[k]));
      if (!after) {
        // Records are in sequence order; one never resent was sent after all before it,
        // and everything behind it was first sent later still.
        if (!(f & SB_EVER)) break;
        continue;
      }
      const remaining = x + rttMs + reoMs - nowMs;
      if (remaining <= 0) {
        if (q.markLost(k)) {
          this.newlyLost++;
          if (f & SB_RETRANS) this.mib.TcpExtTCPLostRetransmit++;
        }
      } else if (remaining > timeout) timeout = remaining;
    }
    return timeout;
  }

  /** Linux tcp_rack_mark_lost: returns true when the reordering timer was armed. */
  private rackMarkLost(nowMs: number): boolean {
    if (!this.rackAdvanced) return false;
    this.rackAdvanced = false;
    const timeout = this.rackDetectLoss(nowMs);
    if (timeout > 0) {
      this.armTimer(T_REO, Math.min(timeout + TIMEOUT_MIN_MS, this.c.rtoMs()));
      return true;
    }
    return false;
  }

  /** RFC 8985 §6.3 (Linux tcp_rack_reo_timeout). */
  onReoTimeout(nowMs: number): void {
    const prior = this.inFlight();
    this.flag = 0;
    this.newlyLost = 0;
    this.rackDetectLoss(nowMs);
    if (prior !== this.inFlight()) {
      if (this.ca !== CA_RECOVERY && this.ca !== CA_LOSS) {
        this.enterRecovery();
        this.cwndReduction(1);
      }
      this.xmitRetransmitQueue(nowMs);
    }
    if (this.pending !== T_RTO || !this.c.rtxTimer.armed) this.rearmRto(nowMs);
  }

  /** RFC 6675 §4 IsLost with DupThresh, when RACK is off (tcp_recovery without bit 0). */
  private markLostByDupThresh(): void {
    const q = this.q;
    let sackedAbove = 0;
    for (let i = q.count - 1; i >= 0; i--) {
      const k = q.slot(i);
      const f = q.flags[k];
      if (f & SB_SACKED) sackedAbove++;
      else if (sackedAbove >= this.reordering && !(f & SB_LOST)) {
        q.markLost(k);
        this.newlyLost++;
      }
    }
  }

  /** Linux tcp_newreno_mark_lost: the head is lost at DupThresh, and again at each partial ACK. */
  private newrenoMarkLost(sndUnaAdvanced: boolean): void {
    const q = this.q;
    if (q.count === 0) return;
    if ((this.ca < CA_RECOVERY && this.renoSacked >= this.reordering) || (this.ca === CA_RECOVERY && sndUnaAdvanced)) {
      const k = q.slot(0);
      if (q.flags[k] & SB_LOST) return;
      if (q.markLost(k)) this.newlyLost++;
    }
  }

  private identifyPacketLoss(nowMs: number): void {
    const q = this.q;
    if (q.count === 0) return;
    if (!this.c.sackOk) this.newrenoMarkLost((this.flag & F_SND_UNA_ADVANCED) !== 0);
    else if (this.rack) {
      const priorRetrans = q.retransOut;
      if (this.rackMarkLost(nowMs)) this.flag &= ~F_SET_XMIT_TIMER;
      if (priorRetrans > q.retransOut) this.flag |= F_LOST_RETRANS;
    } else this.markLostByDupThresh();
  }

  // =====================================================================
  // The state machine (Linux tcp_fastretrans_alert)
  // =====================================================================

  private fastretransAlert(prevUna: number, dup: boolean, tsEcr: number, nowMs: number): void {
    const c = this.c;
    const q = this.q;
    if (q.count === 0 && this.renoSacked > 0) this.renoSacked = 0;
    // D: the episode ends once everything sent before it is acknowledged.
    if (this.ca === CA_OPEN) this.retransStampMs = 0;
    else if (seqGe(c.sndUna, this.highSeq)) {
      if (this.ca === CA_CWR) {
        if (c.sndUna !== this.highSeq) {
          this.endCwndReduction();
          this.setCa(CA_OPEN);
        }
      } else if (this.ca === CA_RECOVERY) {
        if (!c.sackOk) this.renoSacked = 0;
        if (this.tryUndoRecovery(tsEcr)) return;
        this.endCwndReduction();
      }
    }
    switch (this.ca) {
      case CA_RECOVERY:
        if (!(this.flag & F_SND_UNA_ADVANCED)) {
          if (!c.sackOk && dup) this.addRenoSack();
        } else if (this.tryUndoPartial(prevUna, tsEcr)) return;
        if (this.tryUndoDsack()) this.tryToOpen();
        this.identifyPacketLoss(nowMs);
        if (this.caNow() !== CA_RECOVERY) {
          if (!this.timeToRecover()) return;
          this.enterRecovery();
        }
        return;
      case CA_LOSS:
        this.processLoss(dup, tsEcr);
        this.identifyPacketLoss(nowMs);
        // Go on to the open state's checks only if the window was undone or retransmissions were lost.
        if (!(this.caNow() === CA_OPEN || this.flag & F_LOST_RETRANS)) return;
        break;
      default:
        break;
    }
    // Open, disorder, CWR.
    if (!c.sackOk) {
      if (this.flag & F_SND_UNA_ADVANCED) this.renoSacked = 0;
      if (dup) this.addRenoSack();
    }
    if (this.ca === CA_DISORDER) this.tryUndoDsack();
    this.identifyPacketLoss(nowMs);
    if (!this.timeToRecover()) {
      this.tryToOpen();
      return;
    }
    this.enterRecovery();
  }

  /** Linux tcp_time_to_recover. */
  private timeToRecover(): boolean {
    if (this.q.lostOut > 0) return true;
    // Without RACK: DupThresh (RFC 5681 §3.2, RFC 6675 §5).
    return !this.rack && this.sackedOut + 1 > this.reordering;
  }

  private tryToOpen(): void {
    if (!this.anyRetransDone()) this.retransStampMs = 0;
    if (this.ca !== CA_CWR) this.tryKeepOpen();
  }

  private tryKeepOpen(): void {
    const state = this.sackedOut + this.q.lostOut > 0 || this.anyRetransDone() ? CA_DISORDER : CA_OPEN;
    if (this.ca !== state) {
      this.setCa(state);
      this.highSeq = this.c.sndNxt;
    }
  }

  private anyRetransDone(): boolean {
    const q = this.q;
    if (q.retransOut > 0) return true;
    return q.count > 0 && (q.flags[q.slot(0)] & SB_EVER) !== 0;
  }

  /** Linux tcp_current_ssthresh. */
  private currentSsthresh(): number {
    const c = this.c;
    if (this.ca === CA_CWR || this.ca === CA_RECOVERY) return c.ssthresh;
    return Math.max(c.ssthresh, (c.cwnd >> 1) + (c.cwnd >> 2));
  }

  private initUndo(): void {
    this.undoMarker = this.c.sndUna;
    this.undoActive = true;
    this.undoRetrans = this.q.retransOut > 0 ? this.q.retransOut : -1;
  }

  /** RFC 6937 §3 "on entering recovery" (Linux tcp_init_cwnd_reduction). */
  private initCwndReduction(): void {
    const c = this.c;
    this.highSeq = c.sndNxt;
    this.tlpActive = false;
    c.cwndCnt = 0;
    c.priorCwnd = c.cwnd;
    this.prrDelivered = 0;
    this.prrOut = 0;
    c.ssthresh = c.cc.ssthresh(c);
    ecnQueueCwr(c);
  }

  /** RFC 6675 §5 / RFC 6582: the start of fast recovery (Linux tcp_enter_recovery). */
  private enterRecovery(): void {
    const c = this.c;
    this.priorSsthresh = 0;
    this.initUndo();
    if (c.sackOk) this.mib.TcpExtTCPSackRecovery++;
    else this.mib.TcpExtTCPRenoRecovery++;
    if (this.ca !== CA_CWR && this.ca !== CA_RECOVERY) {
      this.priorSsthresh = this.currentSsthresh();
      this.initCwndReduction();
    }
    this.setCa(CA_RECOVERY);
  }

  /** ECN's window reduction (Linux tcp_enter_cwr): PRR down to a new ssthresh, no retransmission. */
  enterCwr(): void {
    this.priorSsthresh = 0;
    if (this.ca < CA_CWR) {
      this.undoActive = false;
      this.initCwndReduction();
      this.setCa(CA_CWR);
    }
  }

  /** RFC 6937 §3, PRR-SSRB as Linux's tcp_cwnd_reduction. */
  private cwndReduction(newlyAckedSacked: number): void {
    const c = this.c;
    if (newlyAckedSacked <= 0 || c.priorCwnd === 0) return;
    const inflight = this.inFlight();
    const delta = c.ssthresh - inflight;
    this.prrDelivered += newlyAckedSacked;
    let sndcnt: number;
    if (delta < 0) {
      // Proportional part: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
      sndcnt = Math.floor((c.ssthresh * this.prrDelivered + c.priorCwnd - 1) / c.priorCwnd) - this.prrOut;
    } else {
      // Slow-start reduction bound: up to what was delivered, plus one when snd_una advanced cleanly.
      sndcnt = Math.max(this.prrDelivered - this.prrOut, newlyAckedSacked);
      if (this.flag & F_SND_UNA_ADVANCED && this.newlyLost === 0) sndcnt++;
      sndcnt = Math.min(delta, sndcnt);
    }
    // The fast retransmit goes out on entering recovery whatever the arithmetic says.
    if (this.prrOut === 0 && sndcnt < 1) sndcnt = 1;
    c.cwnd = Math.max(1, inflight + sndcnt);
  }

  private endCwndReduction(): void {
    const c = this.c;
    if (c.ssthresh < INFINITE_SSTHRESH && (this.ca === CA_CWR || this.undoActive)) c.cwnd = c.ssthresh;
    c.cc.cwndEvent(c, 'complete-cwr', c.host.time.now() * 1000);
  }

  // ---- undo ----

  /** RFC 3522 (Eifel): the ACK echoes a timestamp from before the first retransmission (Linux tcp_packet_delayed). */
  private packetDelayed(tsEcr: number): boolean {
    const c = this.c;
    if (this.retransStampMs === 0 || !c.tsOk || tsEcr === 0) return false;
    return seqLt(tsEcr, c.tsNow(this.retransStampMs));
  }

  private mayUndo(tsEcr: number): boolean {
    return this.undoActive && (this.undoRetrans === 0 || this.packetDelayed(tsEcr));
  }

  /** Linux tcp_undo_cwnd_reduction. */
  private undoCwndReduction(unmarkLoss: boolean): void {
    const c = this.c;
    if (unmarkLoss) this.q.unmarkLost();
    if (this.priorSsthresh > 0) {
      c.cwnd = c.cc.undoCwnd(c, c.priorCwnd);
      if (this.priorSsthresh > c.ssthresh) c.ssthresh = this.priorSsthresh;
    }
    this.undoActive = false;
    this.rackAdvanced = true;
  }

  private tryUndoRecovery(tsEcr: number): boolean {
    const c = this.c;
    if (this.mayUndo(tsEcr)) {
      this.undoCwndReduction(false);
      if (this.ca === CA_LOSS) this.mib.TcpExtTCPLossUndo++;
      else this.mib.TcpExtTCPFullUndo++;
    }
    // RFC 6582 §3.2 step 3 (Linux): without SACK, hold the state until data above high_seq is acknowledged.
    if (c.sndUna === this.highSeq && !c.sackOk) return true;
    this.setCa(CA_OPEN);
    // RFC 8985 §6.2 step 4: each recovery ended without a D-SACK counts down reo_wnd_persist.
    if (!this.reoBumped && this.reoWndPersist > 0) this.reoWndPersist--;
    return false;
  }

  private tryUndoDsack(): boolean {
    if (this.undoActive && this.undoRetrans === 0) {
      this.reoWndPersist = Math.min(RACK_RECOVERY_THRESH, this.reoWndPersist + 1);
      this.undoCwndReduction(false);
      this.mib.TcpExtTCPDSACKUndo++;
      return true;
    }
    return false;
  }

  private tryUndoPartial(prevUna: number, tsEcr: number): boolean {
    if (this.undoActive && this.packetDelayed(tsEcr)) {
      // The hole was filled by the original, not the retransmission: reordering.
      this.checkSackReordering(prevUna, this.fackValid ? this.fack : this.c.sndNxt, true);
      if (this.q.retransOut > 0) return true;
      if (!this.anyRetransDone()) this.retransStampMs = 0;
      this.undoCwndReduction(true);
      this.mib.TcpExtTCPPartialUndo++;
      this.tryKeepOpen();
      return true;
    }
    return false;
  }

  private tryUndoLoss(frtoUndo: boolean, tsEcr: number): boolean {
    if (frtoUndo || this.mayUndo(tsEcr)) {
      this.undoCwndReduction(true);
      this.mib.TcpExtTCPLossUndo++;
      if (frtoUndo) this.mib.TcpExtTCPSpuriousRTOs++;
      this.c.retransmits = 0;
      if (frtoUndo || this.c.sackOk) this.setCa(CA_OPEN);
      this.frto = false;
      return true;
    }
    return false;
  }

  /** After an RTO (Linux tcp_process_loss), with F-RTO (RFC 5682 §3.1, SACK-enhanced). */
  private processLoss(dup: boolean, tsEcr: number): void {
    const c = this.c;
    const recovered = seqGe(c.sndUna, this.highSeq);
    if (this.flag & F_SND_UNA_ADVANCED && this.tryUndoLoss(false, tsEcr)) return;
    if (this.frto) {
      // RFC 5682 §3.1 step 3.b: data never retransmitted was acknowledged: the RTO was spurious.
      if (this.flag & F_ORIG_SACK_ACKED && this.tryUndoLoss(true, tsEcr)) return;
      if (seqGt(c.sndNxt, this.highSeq)) {
        // Step 3.a: a duplicate ACK after new data went out: the loss was real.
        if (this.flag & F_DATA_SACKED || dup) this.frto = false;
      } else if (this.flag & F_SND_UNA_ADVANCED && !recovered) {
        this.highSeq = c.sndNxt;
        // Step 2.b: send new data next (output does, if the window has room), else fall back.
        const unsent = c.sendBuf.length - Math.min(seqDiff(c.sndNxt, c.sndUna), c.sendBuf.length);
        if (unsent > 0 && seqDiff(c.sndNxt, c.sndUna) < c.sndWnd) {
          this.frtoNewData = true;
          return;
        }
        this.frto = false;
      }
    }
    if (recovered) {
      // Step 2.a: everything up to the RTO is acknowledged.
      this.tryUndoRecovery(tsEcr);
      return;
    }
    if (!c.sackOk) {
      if (seqGt(c.sndNxt, this.highSeq) && dup) this.addRenoSack();
      else if (this.flag & F_SND_UNA_ADVANCED) this.renoSacked = 0;
    }
  }

  /** F-RTO step 2.b asked output to send new data before any retransmission. */
  frtoNewData = false;

  /** An RTO (Linux tcp_enter_loss): all but recently sent segments are lost; cwnd is 1 + what is in flight. */
  enterLoss(nowMs: number): void {
    const c = this.c;
    const s = c.host.settings;
    const newRecovery = this.ca < CA_RECOVERY;
    this.timeoutMarkLost(nowMs);
    // Reduce ssthresh once per window (RFC 5681 §3.1; Linux tcp_enter_loss).
    if (this.ca <= CA_DISORDER || !seqGt(this.highSeq, c.sndUna) || (this.ca === CA_LOSS && c.retransmits === 0)) {
      this.priorSsthresh = this.currentSsthresh();
      c.priorCwnd = c.cwnd;
      c.ssthresh = c.cc.ssthresh(c);
      c.cc.cwndEvent(c, 'loss', nowMs * 1000);
      this.initUndo();
    }
    c.cwnd = this.inFlight() + 1;
    c.cwndCnt = 0;
    // Many duplicate ACKs before a timeout: the reordering degree was overestimated.
    if (this.ca <= CA_DISORDER && this.sackedOut >= s.reordering) this.reordering = Math.min(this.reordering, s.reordering);
    this.setCa(CA_LOSS);
    this.highSeq = c.sndNxt;
    this.tlpActive = false;
    ecnQueueCwr(c);
    // RFC 5682 §3.1 step 1: F-RTO unless recovery was already under way (a repeated timeout keeps it).
    this.frto = s.frto > 0 && (newRecovery || c.retransmits > 0);
    this.frtoNewData = false;
  }

  /** Linux tcp_timeout_mark_lost: the head always, the rest unless RACK says they may still arrive. */
  private timeoutMarkLost(nowMs: number): void {
    const q = this.q;
    if (q.count === 0) return;
    const head = q.slot(0);
    // RFC 2018 §8: a SACKed head after a timeout means the peer reneged: forget the SACKs.
    if (q.flags[head] & SB_SACKED) {
      q.clearSacked();
      this.mib.TcpExtTCPSACKReneging++;
    }
    this.renoSacked = 0;
    for (let i = 0; i < q.count; i++) {
      const k = q.slot(i);
      if (q.flags[k] & SB_SACKED) continue;
      // Sent less than RACK.rtt ago (tcp_rack_skb_timeout with no reordering window).
      if (this.rack && i > 0 && q.xmit[k] + this.rackRttUs / 1000 - nowMs > 0) continue;
      if (q.flags[k] & SB_RETRANS) this.mib.TcpExtTCPLostRetransmit++;
      q.markLost(k);
    }
  }

  /** Resends the head at an RTO (tcp_retransmit_timer), whatever cwnd says. */
  retransmitHead(nowMs: number): void {
    const q = this.q;
    if (q.count === 0) return;
    const k = q.slot(0);
    this.retransmitSlot(k, nowMs);
  }

  /** PMTU fell (Linux tcp_simple_retransmit): what was sent larger than the new MSS is resent. */
  simpleRetransmit(nowMs: number): void {
    const q = this.q;
    const c = this.c;
    const mss = c.mss;
    let marked = 0;
    for (let i = 0; i < q.count; i++) {
      const k = q.slot(i);
      if (seqDiff(q.end[k], q.seq[k]) > mss && q.markLost(k)) marked++;
    }
    if (marked === 0) return;
    if (this.ca !== CA_LOSS) {
      this.highSeq = c.sndNxt;
      c.ssthresh = this.currentSsthresh();
      this.priorSsthresh = 0;
      this.undoActive = false;
      this.setCa(CA_LOSS);
    }
    this.xmitRetransmitQueue(nowMs);
  }

  // =====================================================================
  // Timers: RTO, the tail loss probe (RFC 8985 §7), the reordering timer
  // =====================================================================

  armTimer(kind: number, ms: number): void {
    this.pending = kind;
    this.c.host.time.arm(this.c.rtxTimer, ms);
  }

  /** Linux tcp_rto_delta_us: time left until the head's RTO (ms). */
  private rtoDelta(nowMs: number): number {
    const q = this.q;
    if (q.count === 0) return this.c.rtoMs();
    return q.xmit[q.slot(0)] + this.c.rtoMs() - nowMs;
  }

  /** Linux tcp_rearm_rto. */
  rearmRto(nowMs: number): void {
    const c = this.c;
    if (c.probing) return;
    if (this.q.count === 0) {
      c.host.time.cancel(c.rtxTimer);
      return;
    }
    let rto = c.rtoMs();
    if ((this.pending === T_TLP || this.pending === T_REO) && c.rtxTimer.armed) rto = Math.max(this.rtoDelta(nowMs), 0.001);
    this.armTimer(T_RTO, rto);
  }

  private setXmitTimer(nowMs: number): void {
    if (!this.scheduleLossProbe(true, nowMs)) this.rearmRto(nowMs);
  }

  /** RFC 8985 §7.2 (Linux tcp_schedule_loss_probe): PTO = 2·SRTT, plus the peer's delayed ACK when one segment is out. */
  scheduleLossProbe(advancingRto: boolean, nowMs: number): boolean {
    const c = this.c;
    const s = c.host.settings;
    const q = this.q;
    if ((s.earlyRetrans !== 3 && s.earlyRetrans !== 4) || q.count === 0 || !c.sackOk || (this.ca !== CA_OPEN && this.ca !== CA_CWR) || c.probing) return false;
    let timeout: number;
    if (c.rtt.srttUs > 0) {
      timeout = (2 * c.rtt.srttUs) / 1000;
      timeout += q.count === 1 ? s.rtoMinUs / 1000 : TIMEOUT_MIN_MS;
    } else timeout = 1000;
    const rtoDelta = advancingRto ? c.rtoMs() : this.rtoDelta(nowMs);
    if (rtoDelta > 0) timeout = Math.min(timeout, rtoDelta);
    this.armTimer(T_TLP, timeout);
    return true;
  }

  /** RFC 8985 §7.3 (Linux tcp_send_loss_probe): new data if the window allows, else the last segment again. */
  sendLossProbe(nowMs: number): void {
    const c = this.c;
    const q = this.q;
    this.pending = T_RTO;
    if (this.tlpActive) {
      this.rearmRto(nowMs);
      return;
    }
    this.tlpRetrans = false;
    const before = q.count;
    const outstanding = seqDiff(c.sndNxt, c.sndUna);
    const unsent = c.sendBuf.length - Math.min(outstanding, c.sendBuf.length);
    if (unsent > 0 && outstanding + Math.min(unsent, c.mss) <= c.sndWnd) {
      this.forceOne = true;
      c.output();
      this.forceOne = false;
      if (q.count <= before) {
        this.rearmRto(nowMs);
        return;
      }
    } else {
      if (q.count === 0) {
        this.rearmRto(nowMs);
        return;
      }
      const k = q.slot(q.count - 1);
      // Only the last MSS of it (tcp_send_loss_probe fragments a larger tail).
      const mss = c.mss;
      const len = seqDiff(q.end[k], q.seq[k]) - (q.flags[k] & SB_FIN ? 1 : 0);
      if (len > mss) q.seq[k] = (q.end[k] - mss - (q.flags[k] & SB_FIN ? 1 : 0)) >>> 0;
      this.retransmitSlot(k, nowMs);
      this.tlpRetrans = true;
    }
    this.mib.TcpExtTCPLossProbes++;
    this.tlpActive = true;
    this.tlpHighSeq = c.sndNxt;
    this.rearmRto(nowMs);
  }

  /** RFC 8985 §7.4 (Linux tcp_process_tlp_ack): did the probe repair a loss? */
  private processTlpAck(ack: number): void {
    if (seqLt(ack, this.tlpHighSeq)) return;
    if (!this.tlpRetrans) this.tlpActive = false;
    else if (this.flag & F_DSACK_TLP) this.tlpActive = false;
    else if (seqGt(ack, this.tlpHighSeq)) {
      // The probe repaired a loss: reduce the window once (RFC 8985 §7.4.2).
      this.initCwndReduction();
      this.setCa(CA_CWR);
      this.endCwndReduction();
      this.tryKeepOpen();
      this.mib.TcpExtTCPLossProbeRecovery++;
    } else if (!(this.flag & (F_SND_UNA_ADVANCED | F_NOT_DUP | F_DATA_SACKED))) this.tlpActive = false;
  }

  /** tcp_retransmit_timer's counters for the first timeout of an episode. */
  countTimeout(): void {
    const m = this.mib;
    if (this.ca === CA_RECOVERY) {
      if (this.c.sackOk) m.TcpExtTCPSackRecoveryFail++;
      else m.TcpExtTCPRenoRecoveryFail++;
    } else if (this.ca === CA_LOSS) m.TcpExtTCPLossFailures++;
    else if (this.ca === CA_DISORDER || this.sackedOut > 0) {
      if (this.c.sackOk) m.TcpExtTCPSackFailures++;
      else m.TcpExtTCPRenoFailures++;
    }
  }
}
