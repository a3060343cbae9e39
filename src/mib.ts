/**
 * Stack-wide protocol counters, named as Linux names them in /proc/net/snmp and
 * /proc/net/netstat (the names `nstat` prints), so scripts written for a Linux
 * host read ours the same way.
 */
export const MIB_NAMES = [
  // IP-MIB (RFC 4293) as Linux exposes it.
  'IpInReceives',
  'IpInHdrErrors',
  'IpInAddrErrors',
  'IpForwDatagrams',
  'IpInUnknownProtos',
  'IpInDiscards',
  'IpInDelivers',
  'IpOutRequests',
  'IpOutDiscards',
  'IpOutNoRoutes',
  'IpReasmTimeout',
  'IpReasmReqds',
  'IpReasmOKs',
  'IpReasmFails',
  'IpFragOKs',
  'IpFragFails',
  'IpFragCreates',
  'IpExtInNoRoutes',
  'IpExtInTruncatedPkts',
  'IpExtInMcastPkts',
  'IpExtOutMcastPkts',
  'IpExtInBcastPkts',
  'IpExtOutBcastPkts',
  'IpExtInOctets',
  'IpExtOutOctets',
  'IpExtInCsumErrors',
  'IpExtInNoECTPkts',
  'IpExtInECT1Pkts',
  'IpExtInECT0Pkts',
  'IpExtInCEPkts',
  'IpExtReasmOverlaps',
  // ICMP-MIB.
  'IcmpInMsgs',
  'IcmpInErrors',
  'IcmpInCsumErrors',
  'IcmpInDestUnreachs',
  'IcmpInTimeExcds',
  'IcmpInParmProbs',
  'IcmpInEchos',
  'IcmpInEchoReps',
  'IcmpOutMsgs',
  'IcmpOutErrors',
  'IcmpOutRateLimitGlobal',
  'IcmpOutRateLimitHost',
  'IcmpOutDestUnreachs',
  'IcmpOutTimeExcds',
  'IcmpOutParmProbs',
  'IcmpOutRedirects',
  'IcmpOutEchos',
  'IcmpOutEchoReps',
  // UDP-MIB (RFC 4113) with Linux's additions.
  'UdpInDatagrams',
  'UdpNoPorts',
  'UdpInErrors',
  'UdpOutDatagrams',
  'UdpRcvbufErrors',
  'UdpSndbufErrors',
  'UdpInCsumErrors',
  'UdpIgnoredMulti',
  // TCP-MIB (RFC 4022) as Linux exposes it, then the TcpExt ones of /proc/net/netstat.
  'TcpActiveOpens',
  'TcpPassiveOpens',
  'TcpAttemptFails',
  'TcpEstabResets',
  'TcpCurrEstab',
  'TcpInSegs',
  'TcpOutSegs',
  'TcpRetransSegs',
  'TcpInErrs',
  'TcpOutRsts',
  'TcpInCsumErrors',
  'TcpExtSyncookiesSent',
  'TcpExtSyncookiesRecv',
  'TcpExtSyncookiesFailed',
  'TcpExtEmbryonicRsts',
  'TcpExtTW',
  'TcpExtTWRecycled',
  'TcpExtTWKilled',
  'TcpExtPAWSEstab',
  'TcpExtDelayedACKs',
  'TcpExtListenOverflows',
  'TcpExtListenDrops',
  'TcpExtTCPRenoRecovery',
  'TcpExtTCPSackRecovery',
  'TcpExtTCPTimeouts',
  'TcpExtTCPDSACKOldSent',
  'TcpExtTCPDSACKOfoSent',
  'TcpExtTCPAbortOnData',
  'TcpExtTCPAbortOnClose',
  'TcpExtTCPAbortOnTimeout',
  'TcpExtTCPAbortOnLinger',
  'TcpExtTCPRcvQDrop',
  'TcpExtTCPChallengeACK',
  'TcpExtTCPSYNChallenge',
  'TcpExtTCPACKSkippedSeq',
  'TcpExtTCPACKSkippedChallenge',
  'TcpExtTCPACKSkippedFinWait2',
  'TcpExtTCPACKSkippedTimeWait',
  'TcpExtTCPTimeWaitOverflow',
  'TcpExtTCPOFOQueue',
  'TcpExtTCPFastOpenActive',
  'TcpExtTCPFastOpenActiveFail',
  'TcpExtTCPFastOpenPassive',
  'TcpExtTCPFastOpenPassiveFail',
  'TcpExtTCPFastOpenListenOverflow',
  'TcpExtTCPFastOpenCookieReqd',
  'TcpExtTCPFastOpenBlackhole',
  'TcpExtTCPSynRetrans',
  'TcpExtTCPOrigDataSent',
  'TcpExtTCPHystartTrainDetect',
  'TcpExtTCPHystartDelayDetect',
  'TcpExtTCPHystartTrainCwnd',
  'TcpExtTCPHystartDelayCwnd',
  // Loss recovery (tcp_input.c, tcp_recovery.c, tcp_timer.c).
  'TcpExtTCPLossProbes',
  'TcpExtTCPLossProbeRecovery',
  'TcpExtTCPSACKReorder',
  'TcpExtTCPRenoReorder',
  'TcpExtTCPTSReorder',
  'TcpExtTCPDSACKRecv',
  'TcpExtTCPDSACKOfoRecv',
  'TcpExtTCPDSACKRecvSegs',
  'TcpExtTCPSpuriousRTOs',
  'TcpExtTCPLostRetransmit',
  'TcpExtTCPFastRetrans',
  'TcpExtTCPSlowStartRetrans',
  'TcpExtTCPLossUndo',
  'TcpExtTCPFullUndo',
  'TcpExtTCPPartialUndo',
  'TcpExtTCPDSACKUndo',
  'TcpExtTCPSackRecoveryFail',
  'TcpExtTCPRenoRecoveryFail',
  'TcpExtTCPLossFailures',
  'TcpExtTCPSackFailures',
  'TcpExtTCPRenoFailures',
  'TcpExtTCPSACKReneging',
  'TcpExtTCPFastOpenPassiveAltKey',
  'TcpExtIPReversePathFilter',
  // ARP (Linux keeps these per neighbour table; nstat has no names for them).
  'ArpInRequests',
  'ArpInReplies',
  'ArpOutRequests',
  'ArpOutReplies',
  'ArpInErrors',
  'ArpUnresolvedDiscards',
] as const;

export type MibName = (typeof MIB_NAMES)[number];
export type Mib = Record<MibName, number>;

export function newMib(): Mib {
  // Built in one go: adding ~60 properties one keyed store at a time leaves V8
  // with a dictionary-mode object, and every counter bump a hash lookup.
  return Object.fromEntries(MIB_NAMES.map((n) => [n, 0])) as Mib;
}

/**
 * ICMP message counts by type (Linux's IcmpMsgInTypeN / IcmpMsgOutTypeN),
 * kept in arrays indexed by type so the hot path doesn't build strings.
 */
export class IcmpMsgCounters {
  readonly in = new Float64Array(256);
  readonly out = new Float64Array(256);

  /** Non-zero counters as nstat names them. */
  entries(): [string, number][] {
    const r: [string, number][] = [];
    for (let t = 0; t < 256; t++) if (this.in[t]) r.push([`IcmpMsgInType${t}`, this.in[t]]);
    for (let t = 0; t < 256; t++) if (this.out[t]) r.push([`IcmpMsgOutType${t}`, this.out[t]]);
    return r;
  }
}
