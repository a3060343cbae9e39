/**
 * The receiver's RTT estimate Linux keeps for tcpi_rcv_rtt (tcp_input.c
 * tcp_rcv_rtt_measure_ts and tcp_rcv_rtt_update, the timestamp variant): a data
 * segment of at least rcv_mss whose TSecr is new gives now - TSecr; the estimate
 * takes a lower sample at once and moves an eighth of the way otherwise.
 */
export class RcvRtt {
  /** rcv_rtt_est.rtt_us, scaled by 8 (0: none yet). */
  rttUs8 = 0;
  private lastTsecr = 0;

  get rttUs(): number {
    return this.rttUs8 >>> 3;
  }

  /** A data segment of `len` bytes with TSecr `tsecr`; `deltaTicks` is our TSval now - tsecr (1 ms ticks). */
  measureTs(tsecr: number, len: number, rcvMss: number, deltaTicks: number): void {
    if (tsecr === this.lastTsecr) return;
    this.lastTsecr = tsecr;
    if (len < rcvMss) return;
    // tcp_rtt_tsopt_us: a same-tick echo counts as one tick; a negative or huge one not at all.
    if (deltaTicks < 0 || deltaTicks >= 0x7fffffff / 1000) return;
    this.update((deltaTicks || 1) * 1000);
  }

  update(sampleUs: number): void {
    const m = sampleUs * 8;
    const old = this.rttUs8;
    this.rttUs8 = old === 0 || m < old ? m : old - (old >>> 3) + sampleUs;
  }
}
