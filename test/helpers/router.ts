/**
 * Integration harness for the stack as a router: one daemon with two TAP
 * devices, each device's kernel side in its own network namespace, which
 * routes everything else through the stack. Needs namespaces (not
 * TAPSTACK_TEST_PEER=local). Everything made is removed in `close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runRemote } from '../../src/control/client.js';
import { CLI, sh, shAsync, shOk, uniqueName, waitFor, type RunResult } from './harness.js';

export interface RouterSide {
  /** Third octet of 10.231.X.0/24 (or NET.X.0/24): the stack is .2, the namespace .1. */
  subnet: number;
  /** The first two octets (default 10.231). */
  net?: string;
  /** MTU of the link (both ends). */
  mtu?: number;
  /** Device and namespace names (default: unique trt* and trns* ones). */
  dev?: string;
  ns?: string;
  /** The stack's MAC on the link, and the namespace end's. */
  mac?: string;
  peerMac?: string;
}

export class RouterSideBed {
  readonly dev: string;
  readonly ns: string;
  readonly stackIp: string;
  readonly peerIp: string;

  constructor(readonly side: RouterSide) {
    this.dev = side.dev ?? uniqueName('trt');
    this.ns = side.ns ?? uniqueName('trns');
    this.stackIp = `${side.net ?? '10.231'}.${side.subnet}.2`;
    this.peerIp = `${side.net ?? '10.231'}.${side.subnet}.1`;
  }

  cmd(c: string): string {
    return `ip netns exec ${this.ns} sh -c '${c.replace(/'/g, `'\\''`)}'`;
  }

  run(c: string, opts: { timeoutMs?: number } = {}): RunResult {
    return sh(this.cmd(c), opts);
  }

  runAsync(c: string, timeoutMs?: number): Promise<RunResult> {
    return shAsync(this.cmd(c), timeoutMs);
  }
}

export class RouterTestbed {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-router-'));
  readonly ctl = path.join(this.dir, 'ctl.sock');
  readonly a: RouterSideBed;
  readonly b: RouterSideBed;
  daemon: ChildProcess | null = null;
  daemonLog = '';
  exitCode: number | null = null;
  private readonly made: string[] = [];

  private constructor(a: RouterSide, b: RouterSide, private readonly extra: string[]) {
    this.a = new RouterSideBed(a);
    this.b = new RouterSideBed(b);
  }

  static async start(a: RouterSide, b: RouterSide, extraConfig: string[] = []): Promise<RouterTestbed> {
    const tb = new RouterTestbed(a, b, extraConfig);
    try {
      await tb.boot();
    } catch (e) {
      await tb.close();
      throw e;
    }
    return tb;
  }

  async ctlRun(...argv: string[]): Promise<RunResult> {
    let stdout = '';
    let stderr = '';
    const code = await runRemote(this.ctl, argv, (s) => (stdout += s), (s) => (stderr += s));
    return { code, stdout, stderr };
  }

  async nstat(): Promise<Record<string, number>> {
    const r = await this.ctlRun('nstat', '-j', '-z');
    if (r.code !== 0) throw new Error(`nstat: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { kernel: Record<string, number> }).kernel;
  }

  private async boot(): Promise<void> {
    const lines: string[] = [];
    for (const s of [this.a, this.b]) {
      const opts = `${s.side.mac ? ` mac ${s.side.mac}` : ''}${s.side.mtu ? ` mtu ${s.side.mtu}` : ''}`;
      lines.push(`link add ${s.dev} type tap${opts}`, `addr add ${s.stackIp}/24 dev ${s.dev}`);
    }
    lines.push(...this.extra);
    const conf = path.join(this.dir, 'tapstack.conf');
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    const d = spawn(process.execPath, [CLI, 'daemon', '-c', conf, '--ctl', this.ctl, '--log-level', 'warn'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.daemon = d;
    d.stdout!.on('data', (b: Buffer) => (this.daemonLog += b.toString()));
    d.stderr!.on('data', (b: Buffer) => (this.daemonLog += b.toString()));
    d.on('exit', (code) => (this.exitCode = code ?? -1));
    await waitFor(async () => {
      if (this.exitCode !== null) throw new Error(`daemon exited with ${this.exitCode}: ${this.daemonLog}`);
      if (!fs.existsSync(this.ctl)) return false;
      const r = await this.ctlRun('ip', '-j', 'link').catch(() => null);
      if (r === null || r.code !== 0) return false;
      const links = JSON.parse(r.stdout) as { ifname: string }[];
      return links.some((l) => l.ifname === this.b.dev);
    }, 10_000);
    for (const s of [this.a, this.b]) {
      shOk(`ip netns add ${s.ns}`);
      this.made.push(s.ns);
      shOk(`ip link set ${s.dev} netns ${s.ns}`);
      shOk(s.cmd('ip link set lo up'));
      shOk(s.cmd(`ip addr add ${s.peerIp}/24 dev ${s.dev}`));
      if (s.side.mtu) shOk(s.cmd(`ip link set ${s.dev} mtu ${s.side.mtu}`));
      if (s.side.peerMac) shOk(s.cmd(`ip link set ${s.dev} address ${s.side.peerMac}`));
      shOk(s.cmd(`ip link set ${s.dev} up`));
      shOk(s.cmd(`ip route add default via ${s.stackIp}`));
    }
  }

  async close(): Promise<void> {
    const d = this.daemon;
    if (d && this.exitCode === null) {
      d.kill('SIGTERM');
      await waitFor(async () => this.exitCode !== null, 5000).catch(() => d.kill('SIGKILL'));
    }
    // Processes a test left running inside a namespace go with it.
    for (const ns of this.made) {
      sh(`ip netns pids ${ns} | xargs -r kill -9`);
      sh(`ip netns del ${ns}`);
    }
    for (const s of [this.a, this.b]) sh(`ip link del ${s.dev} 2>/dev/null`);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
