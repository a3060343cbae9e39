/**
 * iperf_util.c cpu_util: the process's CPU time over the wall-clock time of a
 * test, in percent: total, user, system.
 */
export class CpuMeter {
  private wall = performance.now();
  private usage = process.cpuUsage();

  reset(): void {
    this.wall = performance.now();
    this.usage = process.cpuUsage();
  }

  read(): [number, number, number] {
    const wallUs = (performance.now() - this.wall) * 1000;
    if (wallUs <= 0) return [0, 0, 0];
    const d = process.cpuUsage(this.usage);
    return [((d.user + d.system) / wallUs) * 100, (d.user / wallUs) * 100, (d.system / wallUs) * 100];
  }
}
