/** One connection's trace as a chart: cwnd (segments, left axis) and throughput (Mb/s, right axis) over time. */
import type { TcpTraceSample } from '../tcp/trace.js';
import { lineChart } from './svg-chart.js';

export function tcpTraceChart(samples: readonly TcpTraceSample[], title: string, opts: { width?: number; height?: number } = {}): string {
  return lineChart({
    title,
    xLabel: 'time (s)',
    leftLabel: 'cwnd (segments)',
    rightLabel: 'throughput (Mb/s)',
    width: opts.width,
    height: opts.height,
    series: [
      { name: 'cwnd', color: '#1f77b4', axis: 'left', points: samples.map((s) => [s.t, s.cwnd] as const) },
      { name: 'ssthresh', color: '#7f7f7f', axis: 'left', points: samples.map((s) => [s.t, s.ssthresh ?? NaN] as const) },
      // The first sample of a connection has no interval behind it.
      { name: 'throughput', color: '#d62728', axis: 'right', points: samples.slice(1).map((s) => [s.t, s.throughputBps / 1e6] as const) },
    ],
  });
}
