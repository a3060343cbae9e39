/**
 * The contract between a TCP connection and its congestion control module,
 * shaped like Linux's struct tcp_congestion_ops. The connection does loss
 * recovery (NewReno, RFC 6582; SACK) and keeps the windows; a module decides
 * how cwnd grows on ACKs and what ssthresh becomes on a loss.
 */

/** What a congestion control module sees of its connection. Windows are in segments (like Linux's snd_cwnd), times in microseconds. */
export interface CcState {
  cwnd: number; // segments, integer >= 1; the module changes it
  /**
   * Segments; 0x7fffffff = "infinite" initially. The module changes it only via
   * the returned value of ssthresh() (the connection stores it) — except
   * HyStart, which sets ssthresh = cwnd when it leaves slow start, as Linux does.
   */
  ssthresh: number;
  cwndCnt: number; // Linux's snd_cwnd_cnt, for additive increase; the module owns it
  cwndClamp: number; // upper bound for cwnd (segments)
  mss: number; // current send MSS in bytes
  srttUs: number; // smoothed RTT (0 until the first sample)
  minRttUs: number; // lowest RTT seen (0 until the first sample)
  /**
   * u32 sequence numbers. HyStart's round tracking uses them: end_seq = snd_nxt
   * at the start of a round; a round ends when snd_una passes it (wrap-aware:
   * (a - b) | 0 > 0).
   */
  sndNxt: number;
  sndUna: number;
  packetsOut: number; // segments in flight
  /** The connection paces its segments (RFC 9406 §4.3: HyStart++'s L is unlimited then). */
  paced?: boolean;
  isCwndLimited: boolean; // was the sender limited by cwnd recently (Linux tcp_is_cwnd_limited); don't grow cwnd otherwise
  /**
   * When the last data segment was sent (Linux's tp->lsndtime), as it stood
   * before the send that raises 'tx-start'. Cubic measures the idle period from
   * it; without it, cubic measures from the last ACK it was shown.
   */
  lastSendUs?: number;
  /**
   * HyStart ended slow start, by the ACK train or the delay increase, with ssthresh set
   * to this cwnd: the connection counts it (Linux TcpExtTCPHystart{Train,Delay}{Detect,Cwnd}).
   */
  hystartExit?(how: 'train' | 'delay', cwnd: number): void;
}

export type CaEvent = 'tx-start' | 'cwnd-restart' | 'complete-cwr' | 'loss';

export type CaState = 'open' | 'disorder' | 'cwr' | 'recovery' | 'loss';

export interface CongestionControl {
  readonly name: string;
  /** Called once, when the connection is established (Linux tcp_init_congestion_control); not again after an RTO. */
  init(s: CcState, nowUs: number): void;
  /** New ssthresh when loss is detected (fast retransmit or RTO), in segments, at least 2. Cubic: also records W_max with fast convergence. */
  ssthresh(s: CcState): number;
  /** An ACK advanced snd_una by `acked` segments while in the Open state (or CWR-free): grow cwnd (slow start below ssthresh, then the module's avoidance). */
  congAvoid(s: CcState, ack: number, acked: number, nowUs: number): void;
  /** Every ACK that newly acknowledges data: `acked` segments, `rttUs` an RTT sample or -1 (HyStart uses it; cubic tracks delay_min). */
  pktsAcked(s: CcState, acked: number, rttUs: number, nowUs: number): void;
  /** The connection's CA state changed (cubic resets on 'loss', i.e. after an RTO). */
  setState(s: CcState, state: CaState): void;
  /** Linux cwnd_event: 'tx-start' after idle (cubic shifts epoch_start by the idle time), etc. */
  cwndEvent(s: CcState, ev: CaEvent, nowUs: number): void;
  /** cwnd to restore on undo of a spurious loss (Linux undo_cwnd: max(cwnd, prior_cwnd)); `priorCwnd` given by the connection. */
  undoCwnd(s: CcState, priorCwnd: number): number;
  // For `ss -i`: neither reno nor cubic reports fields of its own (Linux's have no get_info), so there is no member for it.
}
