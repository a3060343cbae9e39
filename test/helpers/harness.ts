/**
 * Integration harness: a tapstack daemon on a real TAP/TUN device whose kernel
 * side is the peer. Normally the kernel side is moved into a network namespace
 * made for the test; with TAPSTACK_TEST_PEER=local (containers with only
 * NET_ADMIN, which can't make namespaces) it stays in the current namespace.
 * Everything made is removed in `close()`, which tests call from afterAll/finally.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runRemote } from '../../src/control/client.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli.js');
export const PEER_MODE: 'netns' | 'local' = process.env.TAPSTACK_TEST_PEER === 'local' ? 'local' : 'netns';

let counter = 0;
/** A short unique name (device names have at most 15 characters). */
export function uniqueName(prefix: string): string {
  counter++;
  return `${prefix}${process.pid % 100000}${counter}`.slice(0, 15);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(cmd: string, opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, input: opts.input });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function shOk(cmd: string, opts: { timeoutMs?: number } = {}): string {
  const r = sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Runs a command asynchronously (so the daemon in this process's children keeps running). */
export function shAsync(cmd: string, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Runs a command on the daemon listening on control socket `ctl`: its exit code and output. */
export async function ctlRun(ctl: string, ...argv: string[]): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const code = await runRemote(ctl, argv, (s) => (stdout += s), (s) => (stderr += s));
  return { code, stdout, stderr };
}

export interface DaemonSetup {
  /** 'tap' or 'tun'. */
  type: 'tap' | 'tun';
  /** Third octet of the /24 (10.231.X.0/24 unless `net` says otherwise), unique per test file. */
  subnet: number;
  mac?: string;
  mtu?: number;
  pcap?: boolean;
  extraConfig?: string[];
  /** Prefix of the peer's namespace name (default `tsns`). */
  nsPrefix?: string;
  /** Prefix of the device's name (default `tst`/`tsu`). */
  devPrefix?: string;
  /** The first two octets of the subnet (default `10.231`). */
  net?: string;
}

/** A daemon plus its peer: the kernel side of the device, in a namespace or here. */
export class Testbed {
  readonly dir: string;
  readonly ctl: string;
  readonly dev: string;
  readonly ns: string | null;
  readonly stackIp: string;
  readonly peerIp: string;
  readonly pcapPath: string | null;
  daemon: ChildProcess | null = null;
  daemonLog = '';
  exitCode: number | null = null;

  private constructor(readonly setup: DaemonSetup) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-test-'));
    this.ctl = path.join(this.dir, 'ctl.sock');
    this.dev = uniqueName(setup.devPrefix ?? (setup.type === 'tap' ? 'tst' : 'tsu'));
    this.ns = PEER_MODE === 'netns' ? uniqueName(setup.nsPrefix ?? 'tsns') : null;
    this.stackIp = `${setup.net ?? '10.231'}.${setup.subnet}.2`;
    this.peerIp = `${setup.net ?? '10.231'}.${setup.subnet}.1`;
    this.pcapPath = setup.pcap ? path.join(this.dir, 'capture.pcap') : null;
  }

  static async start(setup: DaemonSetup): Promise<Testbed> {
    const tb = new Testbed(setup);
    try {
      await tb.boot();
    } catch (e) {
      await tb.close();
      throw e;
    }
    return tb;
  }

  /** Wraps a shell command so it runs on the peer's side. */
  peerCmd(cmd: string): string {
    return this.ns ? `ip netns exec ${this.ns} sh -c '${cmd.replace(/'/g, `'\\''`)}'` : cmd;
  }

  peer(cmd: string, opts: { timeoutMs?: number } = {}): RunResult {
    return sh(this.peerCmd(cmd), opts);
  }

  peerAsync(cmd: string, timeoutMs?: number): Promise<RunResult> {
    return shAsync(this.peerCmd(cmd), timeoutMs);
  }

  /** Runs a command on the daemon through its control socket. */
  ctlRun(...argv: string[]): Promise<RunResult> {
    return ctlRun(this.ctl, ...argv);
  }

  async ctlJson<T>(...argv: string[]): Promise<T> {
    const r = await this.ctlRun(...argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  async nstat(): Promise<Record<string, number>> {
    return (await this.ctlJson<{ kernel: Record<string, number> }>('nstat', '-j', '-z')).kernel;
  }

  async linkDrops(): Promise<Record<string, number>> {
    const links = await this.ctlJson<{ ifname: string; drop_reasons: Record<string, number> }[]>('ip', '-j', '-s', 'link');
    return links.find((l) => l.ifname === this.dev)!.drop_reasons;
  }

  private configText(): string {
    const s = this.setup;
    const link = [`link add ${this.dev} type ${s.type}`];
    if (s.mac) link.push(`mac ${s.mac}`);
    if (s.mtu) link.push(`mtu ${s.mtu}`);
    return [link.join(' '), `addr add ${this.stackIp}/24 dev ${this.dev}`, ...(s.extraConfig ?? [])].join('\n') + '\n';
  }

  private async boot(): Promise<void> {
    const conf = path.join(this.dir, 'tapstack.conf');
    fs.writeFileSync(conf, this.configText());
    const args = [CLI, 'daemon', '-c', conf, '--ctl', this.ctl, '--log-level', 'warn'];
    if (this.pcapPath) args.push('--pcap', this.pcapPath);
    const d = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.daemon = d;
    d.stdout!.on('data', (b: Buffer) => (this.daemonLog += b.toString()));
    d.stderr!.on('data', (b: Buffer) => (this.daemonLog += b.toString()));
    d.on('exit', (code) => (this.exitCode = code ?? -1));
    await waitFor(async () => {
      if (this.exitCode !== null) throw new Error(`daemon exited with ${this.exitCode}: ${this.daemonLog}`);
      if (!fs.existsSync(this.ctl)) return false;
      const links = await this.ctlJson<{ ifname: string }[]>('ip', '-j', 'link').catch(() => []);
      return links.some((l) => l.ifname === this.dev);
    }, 10_000);
    if (this.ns) {
      shOk(`ip netns add ${this.ns}`);
      shOk(`ip link set ${this.dev} netns ${this.ns}`);
      shOk(this.peerCmd('ip link set lo up'));
    }
    shOk(this.peerCmd(`ip addr add ${this.peerIp}/24 dev ${this.dev}`));
    if (this.setup.mtu) shOk(this.peerCmd(`ip link set ${this.dev} mtu ${this.setup.mtu}`));
    shOk(this.peerCmd(`ip link set ${this.dev} up`));
  }

  /** Stops the daemon (SIGTERM) and waits for it to exit. */
  async stopDaemon(): Promise<number | null> {
    const d = this.daemon;
    if (d && this.exitCode === null) {
      d.kill('SIGTERM');
      await waitFor(async () => this.exitCode !== null, 5000).catch(() => d.kill('SIGKILL'));
    }
    return this.exitCode;
  }

  async close(): Promise<void> {
    await this.stopDaemon();
    if (this.ns) sh(`ip netns del ${this.ns}`);
    // The daemon removes its device; make sure of it even if it was killed.
    sh(`ip link del ${this.dev} 2>/dev/null`);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function waitFor(pred: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Parses iputils ping's summary. */
export function pingSummary(out: string): { sent: number; received: number; loss: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in:\n${out}`);
  const sent = Number(m[1]);
  const received = Number(m[2]);
  return { sent, received, loss: sent - received };
}

/** Sends raw frames (hex) out of `dev` with an AF_PACKET socket; returns per-frame errno (0 = sent). */
export function injectFrames(tb: Testbed, framesHex: string[]): number[] {
  const py = [
    'import socket, sys, errno',
    's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
    `s.bind((sys.argv[1], 0))`,
    'out = []',
    'for h in sys.argv[2:]:',
    '    try:',
    '        s.send(bytes.fromhex(h)); out.append(0)',
    '    except OSError as e:',
    '        out.append(e.errno)',
    'print(" ".join(map(str, out)))',
  ].join('\n');
  const script = path.join(tb.dir, 'inject.py');
  fs.writeFileSync(script, py);
  const r = shOk(tb.peerCmd(`/usr/bin/python3 ${script} ${tb.dev} ${framesHex.join(' ')}`));
  return r.trim().split(/\s+/).map(Number);
}
