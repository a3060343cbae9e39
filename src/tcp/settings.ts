/**
 * TCP's tunables with Linux's names (net.ipv4.tcp_*) and this kernel's defaults.
 * Times are in milliseconds unless the name says otherwise.
 */
export class TcpSettings {
  /** net.ipv4.tcp_rmem: min, default, max receive buffer. */
  rmem: [number, number, number] = [4096, 131072, 33554432];
  /** net.ipv4.tcp_wmem: min, default, max send buffer. */
  wmem: [number, number, number] = [4096, 16384, 4194304];
  /** net.core.rmem_max: with tcp_rmem[2], sets the window scale we offer. */
  rmemMax = 4194304;
  /** net.ipv4.tcp_moderate_rcvbuf: receive buffer autotuning. */
  moderateRcvbuf = true;
  /** net.ipv4.tcp_timestamps (RFC 7323). */
  timestamps = true;
  /** net.ipv4.tcp_window_scaling (RFC 7323). */
  windowScaling = true;
  /** net.ipv4.tcp_sack (RFC 2018). */
  sack = true;
  /** net.ipv4.tcp_dsack (RFC 2883). */
  dsack = true;
  /** net.ipv4.tcp_syn_retries */
  synRetries = 6;
  /** net.ipv4.tcp_syn_linear_timeouts: the first retries keep the initial timeout. */
  synLinearTimeouts = 4;
  /** net.ipv4.tcp_synack_retries */
  synackRetries = 5;
  /** net.ipv4.tcp_retries1 */
  retries1 = 3;
  /** net.ipv4.tcp_retries2 */
  retries2 = 15;
  /** net.ipv4.tcp_orphan_retries (0 means 8, as in Linux). */
  orphanRetries = 0;
  /** net.ipv4.tcp_rto_min_us (RFC 6298 §2.4 lets a host pick its minimum; Linux's is 200 ms). */
  rtoMinUs = 200000;
  /** net.ipv4.tcp_min_rtt_wlen (seconds): the window of the min RTT filter RACK and tcp_info use. */
  minRttWlen = 300;
  /** net.ipv4.tcp_fin_timeout, in seconds. */
  finTimeout = 60;
  /** net.ipv4.tcp_max_tw_buckets */
  maxTwBuckets = 131072;
  /** net.ipv4.tcp_tw_reuse: connect(2) may take over a TIME_WAIT 4-tuple (0 no, 1 yes, 2 only over loopback). */
  twReuse = 2;
  /** net.ipv4.tcp_tw_reuse_delay (ms): how old a TIME_WAIT must be before that. */
  twReuseDelay = 1000;
  /** net.ipv4.tcp_keepalive_time, _intvl (seconds) and _probes. */
  keepaliveTime = 7200;
  keepaliveIntvl = 75;
  keepaliveProbes = 9;
  /** net.ipv4.tcp_syncookies: 1 = only when the SYN queue overflows. */
  syncookies = 1;
  /** net.ipv4.tcp_max_syn_backlog */
  maxSynBacklog = 2048;
  /** net.core.somaxconn */
  somaxconn = 4096;
  /** net.ipv4.tcp_slow_start_after_idle (RFC 5681 §4.1 / RFC 7661). */
  slowStartAfterIdle = true;
  /** net.ipv4.tcp_invalid_ratelimit (ms): challenge and duplicate ACKs per socket. */
  invalidRatelimit = 500;
  /** net.ipv4.tcp_challenge_ack_limit: per second, stack-wide (RFC 5961 §7). */
  challengeAckLimit = 2147483647;
  /** net.ipv4.tcp_base_mss and tcp_mtu_probing are not modelled; PMTU comes from ICMP. */
  /** net.ipv4.tcp_stdurg: 0 = the urgent pointer points after the urgent byte (BSD, Linux default). */
  stdurg = false;
  /** net.ipv4.tcp_abort_on_overflow */
  abortOnOverflow = false;
  /** net.ipv4.tcp_congestion_control */
  congestionControl = 'cubic';
  /** net.ipv4.tcp_no_metrics_save is implied: nothing is cached between connections. */
  /** net.ipv4.tcp_rfc1337: 0 = an RST in TIME_WAIT ends it early (Linux default). */
  rfc1337 = false;
  /** net.ipv4.tcp_reordering: the initial reordering degree (DupThresh, RFC 5681 §3.2). */
  reordering = 3;
  /** net.ipv4.tcp_pacing_ss_ratio / tcp_pacing_ca_ratio: pacing_rate in % of cwnd * mss / srtt (Linux tcp_update_pacing_rate). */
  pacingSsRatio = 200;
  pacingCaRatio = 120;
  /**
   * tcp_cubic's module parameters (/sys/module/tcp_cubic/parameters/*), with Linux's
   * defaults; `hystart` 2 selects HyStart++ (RFC 9406) instead of HyStart.
   */
  readonly cubic = { fast_convergence: 1, tcp_friendliness: 1, hystart: 1, hystart_detect: 3, hystart_low_window: 16, hystart_ack_delta_us: 2000 };
  /** net.ipv4.tcp_ecn: 0 off, 1 request and accept, 2 accept when asked (RFC 3168; ecn.ts). */
  ecn = 2;
  /** net.ipv4.tcp_ecn_fallback: retransmitted SYNs go without ECE|CWR. */
  ecnFallback = true;
  /** net.ipv4.tcp_max_reordering: the most a connection's reordering degree may grow to. */
  maxReordering = 300;
  /** net.ipv4.tcp_recovery: 0x1 RACK loss detection (RFC 8985), 0x2 static reordering window, 0x4 no DupThresh in RACK. */
  recovery = 1;
  /** net.ipv4.tcp_frto: F-RTO (RFC 5682) after a timeout; Linux's 2 = the SACK-enhanced variant when SACK is on. */
  frto = 2;
  /** net.ipv4.tcp_early_retrans: 3 or 4 = the tail loss probe (RFC 8985 §7); 0 turns it off. */
  earlyRetrans = 3;
  /** net.ipv4.tcp_fastopen: TFO_* bits (fastopen.ts); Linux's default is the client only. */
  fastOpen = 1;
  /** net.ipv4.tcp_fastopen_blackhole_timeout_sec: 0 never pauses active Fast Open. */
  fastOpenBlackholeTimeoutSec = 0;
  /** net.ipv4.tcp_adv_win_scale is not used: the full free buffer is offered. */

  /** The window scale we offer (Linux tcp_select_initial_window: the largest receive space). */
  offeredWscale(): number {
    if (!this.windowScaling) return 0;
    const space = Math.max(this.rmem[2], this.rmemMax);
    let ws = 0;
    // RFC 7323 §2.3: at most 14.
    while (ws < 14 && space >>> (ws + 16) > 0) ws++;
    return ws;
  }
}
