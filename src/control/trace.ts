/**
 * `trace tcp [SS FILTER] [--interval MS] [--duration S]`: samples the TCP
 * connections the filter selects (ss's grammar: `dport = :5201`, `state
 * established`, ...) every MS ms (default 100) on the daemon's clock and
 * streams one CSV line per connection and sample (tcp/trace.ts's columns),
 * until S seconds have passed, the client interrupts, or it goes away. The
 * client turns the CSV into --csv/--json/--svg files (trace-files.ts).
 */
import type { Stack } from '../stack.js';
import type { CommandStream } from './protocol.js';
import { CommandError } from './words.js';
import { SsExit, tcpSelector } from './ss.js';
import { TRACE_COLUMNS, TcpTracer, sampleToCsv } from '../tcp/trace.js';

export interface TraceOptions {
  filter: string[];
  intervalMs: number;
  durationS: number | null;
}

export function parseTrace(argv: readonly string[]): TraceOptions {
  if (argv[0] !== 'tcp') throw new CommandError(`trace: expected "tcp", got "${argv[0] ?? ''}"`);
  const o: TraceOptions = { filter: [], intervalMs: 100, durationS: null };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--interval' || a === '--duration') {
      const v = Number(argv[++i]);
      if (argv[i] === undefined || !Number.isFinite(v) || v <= 0) throw new CommandError(`trace: ${a} needs a positive number, got "${argv[i] ?? ''}"`);
      if (a === '--interval') {
        if (v < 1) throw new CommandError('trace: --interval is at least 1 ms');
        o.intervalMs = v;
      } else o.durationS = v;
    } else o.filter.push(a);
  }
  return o;
}

export function runTrace(stack: Stack, o: TraceOptions, out: CommandStream): number | Promise<number> {
  let select;
  try {
    select = tcpSelector(stack, o.filter);
  } catch (e) {
    if (e instanceof SsExit) {
      out.err(e.result.stderr.replace(/^ss: /, 'trace: '));
      return 1;
    }
    throw e;
  }
  out.out(TRACE_COLUMNS.join(',') + '\n');
  return new Promise((resolve) => {
    let done = false;
    const tracer = new TcpTracer(stack.time, select, o.intervalMs, (_c, s) => {
      if (!out.closed) out.out(sampleToCsv(s) + '\n');
    });
    const finish = (): void => {
      if (done) return;
      done = true;
      tracer.stop();
      if (stop !== null) stack.time.cancel(stop);
      resolve(0);
    };
    const stop = o.durationS !== null ? stack.time.after(o.durationS * 1000, finish) : null;
    out.onInterrupt(finish);
    out.onClose(finish);
    tracer.begin();
  });
}
