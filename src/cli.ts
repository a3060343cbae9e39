#!/usr/bin/env node
import { Daemon, DaemonError } from './control/daemon.js';
import { runRemote, ControlClientError } from './control/client.js';
import { DEFAULT_CTL_PATH } from './control/protocol.js';
import { ControlServerError } from './control/server.js';
import { parseConfig } from './control/commands.js';
import { CommandError } from './control/words.js';
import { kernelDevices } from './control/devices.js';
import { splitTraceFiles, writeTraceFiles } from './control/trace-files.js';
import fs from 'node:fs';
import path from 'node:path';

const USAGE = `Usage:
  tapstack daemon -c FILE [--ctl PATH] [--pcap FILE] [--log-level LEVEL]
      Run the stack with the devices, addresses and routes in FILE.
  tapstack check -c FILE
      Check a config file without running it.
  tapstack [--ctl PATH] COMMAND...
      Send a command to the running daemon (default socket ${DEFAULT_CTL_PATH}):
        ip [-j] [-s] link|addr|route|neigh [show [dev NAME]]
        ip route get ADDRESS
        nstat [-j] [-z]
        ping ADDRESS [-c N] [-s SIZE] [-i SECONDS] [-M do|dont] [-W SECONDS] [-t TTL] [-q]
        iperf3 -c ADDRESS [-p PORT] [-t SECONDS] [-R|--bidir] [-P N] [-l LEN] [-J]
        sysctl [-w] NAME=VALUE | sysctl [-n] NAME... | sysctl -a
        link add NAME type tap|tun [mac MAC] [mtu N] [vnet_hdr]
        link del NAME | link set NAME up|down|mtu N
        addr add|del A.B.C.D/LEN dev NAME
        route add|del|replace default|A.B.C.D/LEN [via GW] [dev NAME] [src A] [metric N]
        neigh add|replace|del A.B.C.D lladdr MAC dev NAME [nud permanent|reachable|stale]
        neigh flush [dev NAME]
        service [list] | service add|del echo|discard|chargen|http udp|tcp [ADDR]:PORT
        ss [-tuanlioemsHO46] [state STATE] [FILTER] [--watch MS]
        trace tcp [FILTER] [--interval MS] [--duration S] [--csv FILE] [--json FILE] [--svg FILE]
        nc [-v] HOST PORT | nc -l [-v] [ADDR] PORT
        iptables [-t TABLE] -A|-I|-D|-R|-F|-Z|-N|-X|-E|-P|-L|-S|-C ... (as iptables)
        iptables-save [-c] [-t TABLE] | iptables-restore [-n] [-c] [-t] [-T TABLE] [FILE]
        nft [-a] [-s] [-n] [-y] [-t] [-c] [-f FILE|-] COMMAND...
        conntrack -L|-G|-D|-U|-E|-F|-C|-S [-p PROTO] [-s|-d|-r|-q ADDR] [--sport|--dport N]
                  [-m MARK[/MASK]] [-u STATUS] [-n|-g|-j] [-o extended,id,timestamp,xml] (as conntrack)
      ("ip" in front of link/addr/route/neigh is optional.)

Config file: one command a line, as above; "#" starts a comment.
Log levels: fatal, error, warn, info, debug, trace, silent.
`;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function fail(msg: string, code = 2): never {
  process.stderr.write(`tapstack: ${msg}\n`);
  process.exit(code);
}

function optionValue(args: string[], i: number, name: string): string {
  const v = args[i + 1];
  if (v === undefined || v.startsWith('-')) fail(`${name} needs a value`);
  return v;
}

async function daemonMain(args: string[]): Promise<void> {
  let config: string | undefined;
  let ctl = DEFAULT_CTL_PATH;
  let pcap: string | undefined;
  let level = 'info';
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-c' || a === '--config') config = optionValue(args, i++, a);
    else if (a === '--ctl') ctl = optionValue(args, i++, a);
    else if (a === '--pcap') pcap = optionValue(args, i++, a);
    else if (a === '--log-level') {
      level = optionValue(args, i++, a);
      if (!LEVELS.includes(level)) fail(`--log-level: expected one of ${LEVELS.join(', ')}, got "${level}"`);
    } else fail(`daemon: unknown option "${a}"\n\n${USAGE}`);
  }
  if (!config) fail('daemon: -c FILE is required');
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ configPath: config, ctlPath: ctl, pcapPath: pcap, logLevel: level, devices: kernelDevices });
  } catch (e) {
    if (e instanceof DaemonError || e instanceof ControlServerError) fail(e.message, 1);
    throw e;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    daemon.log.info({ signal: sig }, 'stopping');
    daemon.close().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`tapstack: error while stopping: ${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function checkMain(args: string[]): void {
  const i = args.indexOf('-c');
  const file = i >= 0 ? args[i + 1] : undefined;
  if (!file) fail('check: -c FILE is required');
  try {
    const lines = parseConfig(fs.readFileSync(file, 'utf8'), file);
    process.stdout.write(`${file}: ${lines.length} commands, OK\n`);
  } catch (e) {
    if (e instanceof CommandError) fail(e.message, 1);
    fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 1);
  }
}

async function main(argv: string[]): Promise<void> {
  let args = argv;
  let ctl = DEFAULT_CTL_PATH;
  if (args[0] === '--ctl') {
    ctl = optionValue(args, 0, '--ctl');
    args = args.slice(2);
  }
  const first = args[0];
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (first === 'daemon') return daemonMain(args.slice(1));
  if (first === 'check') return checkMain(args.slice(1));
  // nft -f FILE: the daemon reads the file, so it gets an absolute path.
  const fi = first === 'nft' ? args.findIndex((a) => a === '-f' || a === '--file') : -1;
  const nftStdin = fi >= 0 && args[fi + 1] === '-';
  if (fi >= 0 && args[fi + 1] !== undefined && !nftStdin) args = [...args.slice(0, fi + 1), path.resolve(args[fi + 1]), ...args.slice(fi + 2)];
  // iptables-restore [FILE]: the daemon reads FILE (an absolute path), or else stdin.
  let iptStdin = false;
  if (first === 'iptables-restore') {
    const fileAt = args.findIndex((a, i) => i > 0 && !a.startsWith('-') && args[i - 1] !== '-T' && args[i - 1] !== '--table');
    if (fileAt > 0) args = [...args.slice(0, fileAt), path.resolve(args[fileAt]), ...args.slice(fileAt + 1)];
    else iptStdin = true;
  }
  // A reader that went away (`| head`): stop quietly, with the status a process
  // killed by SIGPIPE has, as the C tools do, instead of an unhandled EPIPE.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(128 + 13);
    process.stderr.write(`tapstack: stdout: ${e.message}\n`);
    process.exit(1);
  });
  if (first === 'trace') return traceMain(ctl, args);
  if (first === 'ss') {
    const w = args.indexOf('--watch');
    if (w >= 0) return watchMain(ctl, [...args.slice(0, w), ...args.slice(w + 2)], args[w + 1]);
  }
  try {
    // nc (and nft -f -, iptables-restore) stream stdin to the daemon; ss fits its columns to a terminal.
    const code = await runRemote(ctl, args, undefined, undefined, {
      stdin: first === 'nc' || nftStdin || iptStdin ? process.stdin : undefined,
      columns: process.stdout.isTTY ? process.stdout.columns : undefined,
      // conntrack -E ends on ^C with its summary line, as conntrack does.
      interruptible: first === 'conntrack',
    });
    process.exitCode = code;
  } catch (e) {
    if (e instanceof ControlClientError) fail(e.message, 1);
    throw e;
  }
}

/** `trace tcp ...`: CSV to stdout as it comes, or to --csv/--json/--svg files at the end. */
async function traceMain(ctl: string, args: string[]): Promise<void> {
  let split;
  try {
    split = splitTraceFiles(args);
  } catch (e) {
    fail((e as Error).message);
  }
  const toFiles = Object.keys(split.files).length > 0;
  let csv = '';
  try {
    const code = await runRemote(ctl, split.argv, toFiles ? (s) => (csv += s) : undefined, undefined, { interruptible: true });
    if (code === 0 && toFiles) writeTraceFiles(csv, split.files);
    process.exitCode = code;
  } catch (e) {
    if (e instanceof ControlClientError) fail(e.message, 1);
    throw e;
  }
}

/** `ss ... --watch MS`: the listing again every MS ms, until interrupted. */
async function watchMain(ctl: string, args: string[], msText: string | undefined): Promise<void> {
  const ms = Number(msText);
  if (msText === undefined || !Number.isFinite(ms) || ms < 10) fail('ss: --watch needs an interval in ms (at least 10)');
  let stop = false;
  process.once('SIGINT', () => (stop = true));
  while (!stop) {
    let text = '';
    try {
      const code = await runRemote(ctl, args, (s) => (text += s), undefined, { columns: process.stdout.isTTY ? process.stdout.columns : undefined });
      if (code !== 0) {
        process.exitCode = code;
        return;
      }
    } catch (e) {
      if (e instanceof ControlClientError) fail(e.message, 1);
      throw e;
    }
    process.stdout.write(`${new Date().toISOString()}\n${text}\n`);
    await new Promise((r) => setTimeout(r, ms));
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`tapstack: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
