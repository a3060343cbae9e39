/**
 * The client side of `tapstack trace tcp`: the daemon streams CSV
 * (control/trace.ts); `--csv FILE`, `--json FILE` and `--svg FILE` write it,
 * as an array of samples, or as one chart per connection (cwnd and
 * throughput over time) stacked in one SVG. Without a file option the CSV
 * goes to stdout as it comes.
 */
import fs from 'node:fs';
import { csvToSample, TRACE_COLUMNS, type TcpTraceSample } from '../tcp/trace.js';
import { tcpTraceChart } from '../services/tcp-chart.js';

export interface TraceFiles {
  csv?: string;
  json?: string;
  svg?: string;
}

/** Takes --csv/--json/--svg FILE out of a trace command line. */
export function splitTraceFiles(argv: readonly string[]): { argv: string[]; files: TraceFiles } {
  const rest: string[] = [];
  const files: TraceFiles = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--csv' || a === '--json' || a === '--svg') {
      const v = argv[++i];
      if (v === undefined) throw new Error(`trace: ${a} needs a file name`);
      files[a.slice(2) as keyof TraceFiles] = v;
    } else rest.push(a);
  }
  return { argv: rest, files };
}

/** Samples from the CSV text (header first). */
export function parseTraceCsv(text: string): TcpTraceSample[] {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines.length === 0) return [];
  if (lines[0] !== TRACE_COLUMNS.join(',')) throw new Error(`trace: unexpected header "${lines[0]}"`);
  return lines.slice(1).map(csvToSample);
}

/** One chart per connection, one below the other, in one SVG document. */
export function traceSvg(samples: readonly TcpTraceSample[], title = 'tapstack trace tcp'): string {
  const byConn = new Map<string, TcpTraceSample[]>();
  for (const s of samples) {
    const k = `${s.local} ${s.peer}`;
    let a = byConn.get(k);
    if (a === undefined) byConn.set(k, (a = []));
    a.push(s);
  }
  const W = 800;
  const H = 400;
  const charts = [...byConn.entries()];
  if (charts.length === 0) return tcpTraceChart([], `${title}: no connection matched`, { width: W, height: H });
  if (charts.length === 1) return tcpTraceChart(charts[0][1], `${title}: ${charts[0][0]}`, { width: W, height: H });
  const parts = charts.map(([k, s], i) => `<g transform="translate(0 ${i * H})">\n${tcpTraceChart(s, `${title}: ${k}`, { width: W, height: H })}</g>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H * charts.length}" viewBox="0 0 ${W} ${H * charts.length}">\n${parts.join('\n')}\n</svg>\n`;
}

export function writeTraceFiles(csv: string, files: TraceFiles): void {
  if (files.csv !== undefined) fs.writeFileSync(files.csv, csv);
  if (files.json === undefined && files.svg === undefined) return;
  const samples = parseTraceCsv(csv);
  if (files.json !== undefined) fs.writeFileSync(files.json, JSON.stringify(samples, null, 1) + '\n');
  if (files.svg !== undefined) fs.writeFileSync(files.svg, traceSvg(samples));
}
