/**
 * The kernel as the oracle for TCP: the same crafted segment goes to the stack
 * (a Testbed, probed from the kernel side of its TAP device) and to a Linux TCP
 * listener in a second pair of namespaces joined by a veth with the same shape
 * of addressing (prober .1, target .2), and the answers are compared.
 * test/helpers/tcp-probe.py builds, sends and captures on either side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT, sh, shOk, uniqueName, waitFor, type Testbed } from './harness.js';

const PROBE_PY = path.join(ROOT, 'test/helpers/tcp-probe.py');
/** Debian's python, which has what tcp-probe.py needs (the python3 on PATH may not). */
const PYTHON = '/usr/bin/python3';

/** A TCP option as tcp-probe.py takes it. */
export type ProbeOption = ['mss', number] | ['sackok'] | ['ts', number, number] | ['ts', number] | ['nop'] | ['ws', number] | ['eol'] | ['raw', string];

/** A segment to send (tcp-probe.py's SEGMENT). */
export interface ProbeSegment {
  sport?: number;
  dport?: number;
  /** Letters of FSRPAUEC, or the flags byte. */
  flags: string | number;
  seq?: number;
  ack?: number;
  window?: number;
  urg?: number;
  options?: ProbeOption[];
  data?: string;
  dataLen?: number;
  badChecksum?: boolean;
  /** The data offset field in 32-bit words, when it should lie. */
  dataOffset?: number;
  /** Cuts the TCP segment to this many bytes (after its checksum is made). */
  truncate?: number;
}

/** A segment that came back. Options: [kind, ...values]; NOP is [1], MSS [2, mss], TS [8, val, ecr]. */
export interface Answer {
  flags: number;
  flagsStr: string;
  seq: number;
  ack: number;
  window: number;
  urg: number;
  options: (number | string)[][];
  len: number;
  data: string;
  /** In a connection probe: seq minus the target's snd_nxt, ack minus the prober's. */
  seqRel?: number;
  ackRel?: number;
}

export interface ConnState {
  sport: number;
  clientNxt: number;
  serverNxt: number;
  clientTs: number | null;
  serverTs: number | null;
  serverWindow: number;
}

export interface ConnResult {
  answers: Answer[];
  conn: ConnState;
  after?: { data?: string; eof?: boolean; error?: string };
}

/** One side of the comparison: where the prober runs and whom it probes. */
export interface Side {
  name: 'stack' | 'kernel';
  /** The namespace the prober runs in (null: this one). */
  ns: string | null;
  iface: string;
  src: string;
  dst: string;
}

function runPython(side: Side, req: object, timeoutMs: number): Promise<unknown> {
  const args = [PROBE_PY, JSON.stringify({ iface: side.iface, src: side.src, dst: side.dst, ...req })];
  const [cmd, argv] = side.ns ? ['ip', ['netns', 'exec', side.ns, PYTHON, ...args]] : [PYTHON, args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0) reject(new Error(`tcp-probe.py on the ${side.name} side failed (${code}): ${err}`));
      else resolve(JSON.parse(out));
    });
  });
}

/** Counters from /proc/net/snmp and /proc/net/netstat under nstat's names (TcpInErrs, TcpExtPAWSEstab). */
export function parseProcCounters(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const h = /^(\w+): (.*)$/.exec(lines[i]);
    const v = /^(\w+): (.*)$/.exec(lines[i + 1]);
    if (!h || !v || h[1] !== v[1] || !/^[-\d ]+$/.test(v[2])) continue;
    const names = h[2].trim().split(/\s+/);
    const vals = v[2].trim().split(/\s+/).map(Number);
    names.forEach((n, j) => (out[h[1] + n] = vals[j]));
    i++;
  }
  return out;
}

/**
 * Two namespaces joined by a veth: a prober at 10.232.N.1 and a kernel
 * listener at 10.232.N.2 (socat echoing on each of `echoPorts`).
 */
export class KernelPair {
  readonly nsProbe = uniqueName('tkp');
  readonly nsListen = uniqueName('tkl');
  readonly devProbe = uniqueName('vkp');
  readonly devListen = uniqueName('vkl');
  readonly proberIp: string;
  readonly listenerIp: string;
  private readonly listeners: ChildProcess[] = [];

  private constructor(subnet: number) {
    this.proberIp = `10.232.${subnet}.1`;
    this.listenerIp = `10.232.${subnet}.2`;
  }

  static async start(subnet: number, echoPorts: number[]): Promise<KernelPair> {
    const k = new KernelPair(subnet);
    try {
      await k.boot(echoPorts);
    } catch (e) {
      k.close();
      throw e;
    }
    return k;
  }

  private async boot(echoPorts: number[]): Promise<void> {
    shOk(`ip netns add ${this.nsProbe}`);
    shOk(`ip netns add ${this.nsListen}`);
    shOk(`ip link add ${this.devProbe} netns ${this.nsProbe} type veth peer name ${this.devListen} netns ${this.nsListen}`);
    for (const [ns, dev, ip] of [
      [this.nsProbe, this.devProbe, this.proberIp],
      [this.nsListen, this.devListen, this.listenerIp],
    ]) {
      shOk(`ip -n ${ns} link set lo up`);
      shOk(`ip -n ${ns} addr add ${ip}/24 dev ${dev}`);
      shOk(`ip -n ${ns} link set ${dev} up`);
    }
    for (const port of echoPorts) {
      // Its own process group, so close() ends the children socat forks per connection too.
      const p = spawn('ip', ['netns', 'exec', this.nsListen, 'socat', `TCP4-LISTEN:${port},fork,reuseaddr`, 'EXEC:cat'], {
        stdio: 'ignore',
        detached: true,
      });
      this.listeners.push(p);
    }
    await waitFor(() => {
      const out = sh(`ip netns exec ${this.nsListen} ss -Hltn`).stdout;
      return echoPorts.every((p) => new RegExp(`:${p}\\s`).test(out));
    }, 5000);
    shOk(`ip netns exec ${this.nsProbe} ping -c 1 -W 2 ${this.listenerIp}`);
  }

  /** The listener namespace's TCP counters. */
  counters(): Record<string, number> {
    return parseProcCounters(shOk(`ip netns exec ${this.nsListen} cat /proc/net/snmp /proc/net/netstat`));
  }

  close(): void {
    for (const p of this.listeners) {
      if (p.pid !== undefined && p.exitCode === null) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
    }
    sh(`ip netns del ${this.nsProbe} 2>/dev/null`);
    sh(`ip netns del ${this.nsListen} 2>/dev/null`);
  }
}

export interface Both<T> {
  stack: T;
  kernel: T;
}

/** Sends the same probes to the stack and to the kernel, side by side. */
export class Oracle {
  readonly stackSide: Side;
  readonly kernelSide: Side;

  constructor(
    readonly tb: Testbed,
    readonly kernel: KernelPair,
  ) {
    this.stackSide = { name: 'stack', ns: tb.ns, iface: tb.dev, src: tb.peerIp, dst: tb.stackIp };
    this.kernelSide = { name: 'kernel', ns: kernel.nsProbe, iface: kernel.devProbe, src: kernel.proberIp, dst: kernel.listenerIp };
  }

  private both<T>(f: (s: Side) => Promise<T>): Promise<Both<T>> {
    return Promise.all([f(this.stackSide), f(this.kernelSide)]).then(([stack, kernel]) => ({ stack, kernel }));
  }

  /** Each probe in turn; for each, what came back within `waitS` seconds. */
  raw(probes: ProbeSegment[], waitS = 1): Promise<Both<Answer[][]>> {
    return this.both(async (s) => ((await runPython(s, { mode: 'raw', probes, wait: waitS }, 30_000 + probes.length * waitS * 1000)) as { answers: Answer[][] }).answers);
  }

  /** A probe into a fresh connection to `dport` (seq/ack/TSval relative: see tcp-probe.py). */
  conn(dport: number, probe: ProbeSegment, opts: { after?: 'echo' | 'none'; waitS?: number } = {}): Promise<Both<ConnResult>> {
    return this.both(async (s) => (await runPython(s, { mode: 'conn', dport, probe, after: opts.after ?? 'echo', wait: opts.waitS ?? 1 }, 30_000)) as ConnResult);
  }

  /** Random segments at the stack only (robustness; nothing to compare). */
  async flood(dport: number, count: number, seed: number): Promise<{ sent: number }> {
    return (await runPython(this.stackSide, { mode: 'flood', dport, count, seed }, 300_000)) as { sent: number };
  }

  async counters(): Promise<Both<Record<string, number>>> {
    return { stack: await this.tb.nstat(), kernel: this.kernel.counters() };
  }

  /** How much each named counter grew since `before`, on each side. */
  async deltas(before: Both<Record<string, number>>, names: string[]): Promise<Both<Record<string, number>>> {
    const now = await this.counters();
    const d = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
      Object.fromEntries(names.map((n) => [n, (a[n] ?? 0) - (b[n] ?? 0)]));
    return { stack: d(now.stack, before.stack), kernel: d(now.kernel, before.kernel) };
  }
}

/** The option kinds in order, NOPs and EOL included: the layout compared across the two. */
export function optionKinds(a: Answer): number[] {
  return a.options.map((o) => o[0] as number);
}

export function option(a: Answer, kind: number): (number | string)[] | undefined {
  return a.options.find((o) => o[0] === kind);
}
