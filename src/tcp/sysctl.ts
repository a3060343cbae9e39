/** TCP's knobs under their Linux sysctl names (net.ipv4.tcp_*, net.core.somaxconn). */
import type { Sysctl } from '../sysctl.js';
import type { TcpSettings } from './settings.js';
import type { FastOpen } from './fastopen.js';
import { availableCongestionControl } from './cc/index.js';

const INT_MAX = 2 ** 31 - 1;

export function registerTcpSysctls(k: Sysctl, s: TcpSettings, fastOpen?: FastOpen): void {
  const mem = (name: string, key: 'rmem' | 'wmem'): void =>
    k.registerVector(name, {
      count: 3,
      get: () => [...s[key]],
      set: (v) => {
        s[key] = [v[0], v[1], v[2]];
      },
      min: 1,
      max: INT_MAX,
    });
  mem('net.ipv4.tcp_rmem', 'rmem');
  mem('net.ipv4.tcp_wmem', 'wmem');
  k.field('net.core.rmem_max', s, 'rmemMax', 0, INT_MAX);
  k.flag('net.ipv4.tcp_moderate_rcvbuf', s, 'moderateRcvbuf');
  k.flag('net.ipv4.tcp_timestamps', s, 'timestamps');
  k.flag('net.ipv4.tcp_window_scaling', s, 'windowScaling');
  k.flag('net.ipv4.tcp_sack', s, 'sack');
  k.flag('net.ipv4.tcp_dsack', s, 'dsack');
  // Linux's ranges (net/ipv4/sysctl_net_ipv4.c): syn retries 1..127, linear timeouts 0..MAX_TCP_SYNCNT.
  k.field('net.ipv4.tcp_syn_retries', s, 'synRetries', 1, 127);
  k.field('net.ipv4.tcp_syn_linear_timeouts', s, 'synLinearTimeouts', 0, 127);
  k.field('net.ipv4.tcp_synack_retries', s, 'synackRetries', 0, 255);
  k.field('net.ipv4.tcp_retries1', s, 'retries1', 0, 255);
  k.field('net.ipv4.tcp_retries2', s, 'retries2', 0, 255);
  k.field('net.ipv4.tcp_orphan_retries', s, 'orphanRetries', 0, 255);
  k.field('net.ipv4.tcp_rto_min_us', s, 'rtoMinUs', 1, INT_MAX);
  // sysctl_net_ipv4.c: tcp_min_rtt_wlen 0..ONE_DAY_SECS.
  k.field('net.ipv4.tcp_min_rtt_wlen', s, 'minRttWlen', 0, 86400);
  k.field('net.ipv4.tcp_fin_timeout', s, 'finTimeout', 1, INT_MAX);
  k.field('net.ipv4.tcp_max_tw_buckets', s, 'maxTwBuckets', 0, INT_MAX);
  // sysctl_net_ipv4.c: tcp_tw_reuse 0..2, tcp_tw_reuse_delay 1..TCP_PAWS_MSL s in ms.
  k.field('net.ipv4.tcp_tw_reuse', s, 'twReuse', 0, 2);
  k.field('net.ipv4.tcp_tw_reuse_delay', s, 'twReuseDelay', 1, 60000);
  k.field('net.ipv4.tcp_keepalive_time', s, 'keepaliveTime', 1, 32767);
  k.field('net.ipv4.tcp_keepalive_intvl', s, 'keepaliveIntvl', 1, 32767);
  k.field('net.ipv4.tcp_keepalive_probes', s, 'keepaliveProbes', 1, 127);
  k.field('net.ipv4.tcp_syncookies', s, 'syncookies', 0, 2);
  k.field('net.ipv4.tcp_max_syn_backlog', s, 'maxSynBacklog', 0, INT_MAX);
  k.field('net.core.somaxconn', s, 'somaxconn', 0, INT_MAX);
  k.flag('net.ipv4.tcp_slow_start_after_idle', s, 'slowStartAfterIdle');
  k.field('net.ipv4.tcp_invalid_ratelimit', s, 'invalidRatelimit', 0, INT_MAX);
  k.field('net.ipv4.tcp_challenge_ack_limit', s, 'challengeAckLimit', 0, INT_MAX);
  k.flag('net.ipv4.tcp_stdurg', s, 'stdurg');
  k.flag('net.ipv4.tcp_abort_on_overflow', s, 'abortOnOverflow');
  k.flag('net.ipv4.tcp_rfc1337', s, 'rfc1337');
  k.field('net.ipv4.tcp_reordering', s, 'reordering', 1, INT_MAX);
  // Linux's range for both: 0..1000 (net/ipv4/sysctl_net_ipv4.c, extra2 = &thousand).
  k.field('net.ipv4.tcp_pacing_ss_ratio', s, 'pacingSsRatio', 0, 1000);
  k.field('net.ipv4.tcp_pacing_ca_ratio', s, 'pacingCaRatio', 0, 1000);
  // tcp_cubic's module parameters under the path Linux shows them at, below /sys:
  // `sysctl -w module/tcp_cubic/parameters/hystart=2` is `echo 2 > /sys/module/tcp_cubic/parameters/hystart`.
  // As in Linux, a change applies to connections made afterwards.
  const cubicRanges: Record<keyof TcpSettings['cubic'], [number, number]> = {
    fast_convergence: [0, 1],
    tcp_friendliness: [0, 1],
    hystart: [0, 2],
    hystart_detect: [0, 3],
    hystart_low_window: [0, INT_MAX],
    hystart_ack_delta_us: [0, INT_MAX],
  };
  for (const [name, [min, max]] of Object.entries(cubicRanges) as [keyof TcpSettings['cubic'], [number, number]][]) {
    k.field(`module.tcp_cubic.parameters.${name}`, s.cubic, name, min, max);
  }
  // RFC 3168 ECN; Linux's AccECN modes (3 to 5) are not modelled.
  k.field('net.ipv4.tcp_ecn', s, 'ecn', 0, 2);
  k.flag('net.ipv4.tcp_ecn_fallback', s, 'ecnFallback');
  k.field('net.ipv4.tcp_max_reordering', s, 'maxReordering', 1, INT_MAX);
  // Linux: tcp_recovery and tcp_frto are plain integers; tcp_early_retrans is 0..4.
  k.field('net.ipv4.tcp_recovery', s, 'recovery', 0, INT_MAX);
  k.field('net.ipv4.tcp_frto', s, 'frto', 0, INT_MAX);
  k.field('net.ipv4.tcp_early_retrans', s, 'earlyRetrans', 0, 4);
  // Fast Open (fastopen.ts): the bits are a plain int to Linux (proc_dointvec).
  k.field('net.ipv4.tcp_fastopen', s, 'fastOpen', -INT_MAX - 1, INT_MAX);
  k.field('net.ipv4.tcp_fastopen_blackhole_timeout_sec', s, 'fastOpenBlackholeTimeoutSec', 0, INT_MAX);
  if (fastOpen !== undefined) {
    k.registerText('net.ipv4.tcp_fastopen_key', {
      get: () => fastOpen.keyText(),
      set: (v) => fastOpen.setKeyText(v),
    });
  }
  k.registerText('net.ipv4.tcp_congestion_control', {
    get: () => s.congestionControl,
    set: (v) => {
      if (!availableCongestionControl().includes(v)) return 'No such file or directory';
      s.congestionControl = v;
      return null;
    },
  });
  k.registerText('net.ipv4.tcp_available_congestion_control', {
    get: () => availableCongestionControl().join(' '),
    set: () => 'Permission denied',
    readOnly: true,
  });
  k.registerText('net.ipv4.tcp_allowed_congestion_control', {
    get: () => availableCongestionControl().join(' '),
    set: () => 'Permission denied',
    readOnly: true,
  });
}
