import fs from 'node:fs';
import { pino } from 'pino';
import { Stack } from '../stack.js';
import { Controller, type DeviceFactory } from './exec.js';
import { isConfigCommand, parseCommand, parseConfig } from './commands.js';
import { CommandError } from './words.js';
import { ControlServer } from './server.js';
import { parsePing, runPing } from './ping.js';
import { Iperf3ArgError, parseIperf3, runIperf3 } from './iperf3.js';
import { runSs } from './ss.js';
import { parseNc, runNc } from './nc.js';
import { parseTrace, runTrace } from './trace.js';
import { runIptablesCommand } from './iptables.js';
import { runNft, stackNftIo } from './nft.js';
import { runTc, tcChanges } from './tc.js';
import { stackTcEnv } from './exec.js';
import { conntrackChanges, runConntrackStream, stackConntrackEnv } from './conntrack.js';
import type { CommandStream } from './protocol.js';
import { PcapWriter } from '../link/pcap.js';
import type { Logger } from '../log.js';

export interface DaemonOptions {
  configPath: string;
  ctlPath: string;
  pcapPath?: string;
  logLevel: string;
  devices: DeviceFactory;
}

export class DaemonError extends Error {}

/** A running daemon: the Stack, its control socket and its capture file. */
export class Daemon {
  private pcap: PcapWriter | null = null;
  private pcapTimer: NodeJS.Timeout | null = null;
  private closing = false;

  private constructor(
    readonly stack: Stack,
    readonly controller: Controller,
    readonly server: ControlServer,
    readonly log: Logger,
  ) {}

  /**
   * Reads and checks the whole config before touching anything, claims the
   * control socket, then carries out the config line by line.
   */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    let text: string;
    try {
      text = fs.readFileSync(opts.configPath, 'utf8');
    } catch (e) {
      throw new DaemonError(`cannot read config ${opts.configPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let lines;
    try {
      lines = parseConfig(text, opts.configPath);
    } catch (e) {
      if (e instanceof CommandError) throw new DaemonError(e.message);
      throw e;
    }
    const log = pino({ name: 'tapstack', level: opts.logLevel }, pino.destination(2));
    const stack = new Stack({ log });
    const controller = new Controller(stack, opts.devices);
    let daemon: Daemon | null = null;
    const server = new ControlServer(opts.ctlPath, (argv, out) => daemon!.handle(argv, out), log);
    await server.listen();
    daemon = new Daemon(stack, controller, server, log);
    try {
      if (opts.pcapPath) daemon.openPcap(opts.pcapPath);
      for (const { line, cmd } of lines) {
        try {
          controller.run(cmd);
        } catch (e) {
          throw new DaemonError(`${opts.configPath}:${line}: ${(e as Error).message}`);
        }
      }
    } catch (e) {
      await daemon.close();
      throw e;
    }
    log.info({ config: opts.configPath, ctl: opts.ctlPath, interfaces: stack.interfaces().map((i) => i.name) }, 'tapstack started');
    return daemon;
  }

  private openPcap(path: string): void {
    const w = PcapWriter.open(path);
    this.pcap = w;
    this.stack.capture = (iface, frame) => w.write(frame, iface.linkType);
    // Records are buffered; write them out at least once a second.
    this.pcapTimer = setInterval(() => w.flush(), 1000);
    this.pcapTimer.unref();
  }

  /** One control-socket command. */
  handle(argv: string[], out: CommandStream): number | Promise<number> {
    if (argv.length === 0) {
      out.err('expected a command\n');
      return 2;
    }
    if (argv[0] === 'ss') {
      const r = runSs(this.stack, argv.slice(1), out.columns ?? null);
      if (r.stdout.length > 0) out.out(r.stdout);
      if (r.stderr.length > 0) out.err(r.stderr);
      return r.code;
    }
    if (argv[0] === 'iptables' || argv[0] === 'iptables-save' || argv[0] === 'iptables-restore') {
      return runIptablesCommand(this.stack.nft, argv, out);
    }
    if (argv[0] === 'nc') {
      let o;
      try {
        o = parseNc(argv.slice(1));
      } catch (e) {
        if (e instanceof CommandError) {
          out.err(`nc: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
      return runNc(this.stack, o, out);
    }
    if (argv[0] === 'nft') return this.nft(argv.slice(1), out);
    if (argv[0] === 'conntrack') return this.conntrack(argv.slice(1), out);
    if (argv[0] === 'tc') {
      const r = runTc(stackTcEnv(this.stack), argv.slice(1));
      if (r.stdout.length > 0) out.out(r.stdout);
      if (r.stderr.length > 0) out.err(r.stderr);
      let changes = false;
      try {
        changes = tcChanges(argv.slice(1));
      } catch {
        /* a bad command line changed nothing */
      }
      if (changes && r.code === 0) this.log.info({ argv }, 'command');
      return r.code;
    }
    if (argv[0] === 'trace') {
      try {
        return runTrace(this.stack, parseTrace(argv.slice(1)), out);
      } catch (e) {
        if (e instanceof CommandError) {
          out.err(`${e.message}\n`);
          return 2;
        }
        throw e;
      }
    }
    if (argv[0] === 'ping') {
      try {
        return runPing(this.stack, parsePing(argv.slice(1)), out);
      } catch (e) {
        if (e instanceof CommandError) {
          out.err(`ping: ${e.message}\n`);
          return 2;
        }
        throw e;
      }
    }
    if (argv[0] === 'iperf3') {
      try {
        return runIperf3(this.stack, parseIperf3(argv.slice(1)), out);
      } catch (e) {
        if (e instanceof Iperf3ArgError) {
          out.err(`iperf3: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
    }
    let cmd;
    try {
      cmd = parseCommand(argv);
    } catch (e) {
      if (e instanceof CommandError) {
        out.err(`Error: ${e.message}\n`);
        return 2;
      }
      throw e;
    }
    try {
      const text = this.controller.run(cmd);
      if (text.length > 0) out.out(text.endsWith('\n') ? text : text + '\n');
      if (isConfigCommand(cmd)) this.log.info({ argv }, 'command');
      return 0;
    } catch (e) {
      const msg = (e as Error).message;
      out.err(`${msg}\n`);
      // iproute2 exits 2 when the kernel refuses (rtnl_talk's errors and extack messages).
      return msg.startsWith('RTNETLINK answers:') || msg.startsWith('Error:') ? 2 : 1;
    }
  }

  /** `nft ...`; `-f -` reads the client's standard input to its end first. */
  private nft(args: string[], out: CommandStream): number | Promise<number> {
    const run = (stdin?: string): number => {
      const r = runNft(this.stack.nft, args, stackNftIo(this.stack, stdin));
      if (r.stdout.length > 0) out.out(r.stdout);
      if (r.stderr.length > 0) out.err(r.stderr);
      if (r.code === 0 && !args.includes('list')) this.log.info({ argv: ['nft', ...args] }, 'command');
      return r.code;
    };
    const i = args.findIndex((a) => a === '-f' || a === '--file');
    if (i < 0 || args[i + 1] !== '-') return run();
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      out.onInput(
        (c) => {
          chunks.push(c);
          out.ack(c.length);
        },
        () => resolve(run(Buffer.concat(chunks).toString('utf8'))),
      );
    });
  }

  /** `conntrack ...`; -E streams events until the client interrupts or goes. */
  private conntrack(args: string[], out: CommandStream): number | Promise<number> {
    const r = runConntrackStream(stackConntrackEnv(this.stack), args, out);
    let changes = false;
    try {
      changes = conntrackChanges(args);
    } catch {
      /* a bad command line changed nothing */
    }
    if (changes && r === 0) this.log.info({ argv: ['conntrack', ...args] }, 'command');
    return r;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.server.close();
    this.stack.close();
    if (this.pcapTimer) clearInterval(this.pcapTimer);
    this.stack.capture = null;
    this.pcap?.close();
    this.log.info('tapstack stopped');
  }
}
