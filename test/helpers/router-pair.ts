/**
 * Two routers side by side for differential tests: the stack (RouterTestbed,
 * namespaces tsrt-a*, tsrt-b*) and a kernel router namespace (tsrk-r*, with
 * clients tsrk-a*, tsrk-b*). Both sides use the same addresses (a = 10.231.A.1,
 * b = 10.231.B.1, the router .2 on each; or NET.A.1 ... for another NET), the
 * same router-side device names and the same MACs, so one ruleset text and one probe apply to both and
 * their answers (log lines included) can be compared as they are.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RouterTestbed } from './router.js';
import { CLI, sh, shAsync, shOk, type RunResult } from './harness.js';

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'router-probe.py');

export interface Probe {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  flags?: string;
  ttl?: number;
  tos?: number;
  len?: number;
  df?: boolean;
  icmpType?: number;
  icmpCode?: number;
  badChecksum?: boolean;
}

export interface ProbeResult {
  far: { ttl: number; tos: number; len: number; proto: number; df: boolean }[];
  back: { src: string; proto: string; type?: number; code?: number; flags?: string }[];
}

/** One side's view: where to run commands, and how to drive its router. */
export interface RouterView {
  name: 'stack' | 'kernel';
  nsA: string;
  nsB: string;
  devA: string;
  devB: string;
  /** Runs a shell command in client a's (or b's) namespace. */
  onA(c: string, timeoutMs?: number): Promise<RunResult>;
  onB(c: string, timeoutMs?: number): Promise<RunResult>;
  /** Runs `nft ARGS` (or `iptables ARGS`) on the router; `input` goes to its stdin. */
  nft(args: string, input?: string): Promise<RunResult>;
  iptables(args: string): Promise<RunResult>;
}

function nsCmd(ns: string, c: string): string {
  return `ip netns exec ${ns} sh -c '${c.replace(/'/g, `'\\''`)}'`;
}

export class RouterPair {
  stack!: RouterTestbed;
  readonly id = process.pid % 100000;
  readonly kr: string;
  readonly ka: string;
  readonly kb: string;
  readonly devA: string;
  readonly devB: string;
  /** The stack side's namespaces. */
  private readonly sa: string;
  private readonly sb: string;
  readonly aIp: string;
  readonly bIp: string;
  readonly routerA: string;
  readonly routerB: string;
  private readonly made: string[] = [];
  views!: [RouterView, RouterView];

  private constructor(
    readonly subA: number,
    readonly subB: number,
    private readonly prefix?: string,
    readonly net = '10.231',
  ) {
    // Names: tsrk-*/tsrt-* namespaces and trt* devices, or all under `prefix` (e.g. tsnt).
    const id = this.id;
    this.kr = prefix ? `${prefix}-kr${id}` : `tsrk-r${id}`;
    this.ka = prefix ? `${prefix}-ka${id}` : `tsrk-a${id}`;
    this.kb = prefix ? `${prefix}-kb${id}` : `tsrk-b${id}`;
    this.sa = prefix ? `${prefix}-sa${id}` : `tsrt-a${id}`;
    this.sb = prefix ? `${prefix}-sb${id}` : `tsrt-b${id}`;
    this.devA = prefix ? `${prefix}a${id}` : `trta${id}`;
    this.devB = prefix ? `${prefix}b${id}` : `trtb${id}`;
    this.aIp = `${net}.${subA}.1`;
    this.bIp = `${net}.${subB}.1`;
    this.routerA = `${net}.${subA}.2`;
    this.routerB = `${net}.${subB}.2`;
  }

  private mac(sub: number, host: number): string {
    return `02:00:0a:e7:${sub.toString(16).padStart(2, '0')}:${host.toString(16).padStart(2, '0')}`;
  }

  /** Builds both routers; `extraA` are more addresses (/24) for client a. */
  static async start(subA: number, subB: number, extraA: string[] = [], prefix?: string, net?: string): Promise<RouterPair> {
    const p = new RouterPair(subA, subB, prefix, net);
    try {
      await p.boot(extraA);
    } catch (e) {
      await p.close();
      throw e;
    }
    return p;
  }

  private async boot(extraA: string[]): Promise<void> {
    const [A, B] = [this.subA, this.subB];
    this.stack = await RouterTestbed.start(
      { subnet: A, net: this.net, dev: this.devA, ns: this.sa, mac: this.mac(A, 2), peerMac: this.mac(A, 1) },
      { subnet: B, net: this.net, dev: this.devB, ns: this.sb, mac: this.mac(B, 2), peerMac: this.mac(B, 1) },
      ['sysctl -w net.ipv4.ip_forward=1'],
    );
    for (const ns of [this.kr, this.ka, this.kb]) {
      sh(`ip netns del ${ns} 2>/dev/null`);
      shOk(`ip netns add ${ns}`);
      this.made.push(ns);
      shOk(`ip -n ${ns} link set lo up`);
    }
    const prefix = this.prefix;
    const kdevA = prefix ? `${prefix}ka${this.id}` : `trka${this.id}`;
    const kdevB = prefix ? `${prefix}kb${this.id}` : `trkb${this.id}`;
    for (const [sub, ns, cdev, rdev] of [
      [A, this.ka, kdevA, this.devA],
      [B, this.kb, kdevB, this.devB],
    ] as const) {
      shOk(`ip link add ${cdev} netns ${ns} type veth peer name ${rdev} netns ${this.kr}`);
      shOk(`ip -n ${ns} link set ${cdev} address ${this.mac(sub, 1)}`);
      shOk(`ip -n ${this.kr} link set ${rdev} address ${this.mac(sub, 2)}`);
      shOk(`ip -n ${ns} addr add ${this.net}.${sub}.1/24 dev ${cdev} && ip -n ${ns} link set ${cdev} up`);
      shOk(`ip -n ${ns} route add default via ${this.net}.${sub}.2`);
      shOk(`ip -n ${this.kr} addr add ${this.net}.${sub}.2/24 dev ${rdev} && ip -n ${this.kr} link set ${rdev} up`);
    }
    shOk(`ip netns exec ${this.kr} sysctl -qw net.ipv4.ip_forward=1`);
    for (const extra of extraA) {
      shOk(`ip -n ${this.ka} addr add ${extra}/24 dev ${kdevA}`);
      shOk(this.stack.a.cmd(`ip addr add ${extra}/24 dev ${this.devA}`));
    }
    const st = this.stack;
    const ctl = `${process.execPath} ${CLI} --ctl ${st.ctl}`;
    this.views = [
      {
        name: 'stack',
        nsA: st.a.ns,
        nsB: st.b.ns,
        devA: this.devA,
        devB: this.devB,
        onA: (c, t) => st.a.runAsync(c, t),
        onB: (c, t) => st.b.runAsync(c, t),
        nft: (args, input) => shAsync(`${ctl} nft ${args}${input !== undefined ? ` <<'EOF'\n${input}EOF` : ''}`),
        // Through the control socket (no process per command); the words go unquoted.
        iptables: (args) => st.ctlRun('iptables', ...args.split(' ')),
      },
      {
        name: 'kernel',
        nsA: this.ka,
        nsB: this.kb,
        devA: kdevA,
        devB: kdevB,
        onA: (c, t) => shAsync(nsCmd(this.ka, c), t),
        onB: (c, t) => shAsync(nsCmd(this.kb, c), t),
        nft: (args, input) => shAsync(`ip netns exec ${this.kr} nft ${args}${input !== undefined ? ` <<'EOF'\n${input}EOF` : ''}`),
        iptables: (args) => shAsync(`ip netns exec ${this.kr} iptables-nft ${args}`),
      },
    ];
    // Both ways work before any rule (and ARP is settled on every link).
    await this.both((v) => v.onA(`ping -c 1 -W 2 ${this.bIp}`));
  }

  /** Runs `f` on both routers at once: [stack, kernel]. */
  both<T>(f: (v: RouterView) => Promise<T>): Promise<[T, T]> {
    return Promise.all([f(this.views[0]), f(this.views[1])]);
  }

  /** Loads a ruleset file on both (`nft -f -`), after `flush ruleset`. */
  async load(ruleset: string): Promise<void> {
    const r = await this.both(async (v) => {
      const f = await v.nft('flush ruleset');
      if (f.code !== 0) throw new Error(`${v.name}: nft flush ruleset: ${f.stderr}`);
      return v.nft('-f -', ruleset);
    });
    for (const [i, x] of r.entries()) if (x.code !== 0) throw new Error(`${this.views[i].name}: nft -f: ${x.stderr}`);
  }

  /** Sends the probes from client a on both sides; the results, [stack, kernel]. */
  probe(probes: Probe[], opts: { gap?: number; wait?: number } = {}): Promise<[ProbeResult[], ProbeResult[]]> {
    return this.both(async (v) => {
      const req = JSON.stringify({ iface: v.devA, farNs: v.nsB, farIface: v.devB, gap: opts.gap ?? 0.02, wait: opts.wait ?? 1, probes });
      const r = await shAsync(`ip netns exec ${v.nsA} /usr/bin/python3 ${PROBE} <<'EOF'\n${req}\nEOF`, 60_000);
      if (r.code !== 0) throw new Error(`${v.name}: router-probe.py: ${r.stderr}`);
      return JSON.parse(r.stdout) as ProbeResult[];
    });
  }

  /** The `counter packets N` figures of `nft list ruleset`, in order, on both. */
  async counters(): Promise<[number[], number[]]> {
    return this.both(async (v) => {
      const r = await v.nft('list ruleset');
      if (r.code !== 0) throw new Error(`${v.name}: nft list ruleset: ${r.stderr}`);
      return [...r.stdout.matchAll(/counter packets (\d+) bytes \d+/g)].map((m) => Number(m[1]));
    });
  }

  async close(): Promise<void> {
    await this.stack?.close();
    for (const ns of this.made) {
      sh(`ip netns pids ${ns} | xargs -r kill -9`);
      sh(`ip netns del ${ns}`);
    }
  }
}
