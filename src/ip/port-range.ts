/**
 * net.ipv4.ip_local_port_range: the ports a socket gets when it binds to port 0
 * or sends before binding. Shared by the transports, as in Linux.
 */
export class LocalPortRange {
  /** Linux's defaults (include/net/ip.h: inet_init_net). */
  low = 32768;
  high = 60999;

  /**
   * The first free port scanning from a random point in the range, wrapping
   * round once; -1 when every port is taken.
   */
  pick(random: () => number, inUse: (port: number) => boolean): number {
    const n = this.high - this.low + 1;
    const start = Math.floor(random() * n);
    for (let i = 0; i < n; i++) {
      const p = this.low + ((start + i) % n);
      if (!inUse(p)) return p;
    }
    return -1;
  }
}
