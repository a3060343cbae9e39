/**
 * Where a test's kernel peer lives: a network namespace made for the test, or,
 * with TAPSTACK_TEST_PEER=local (containers with only NET_ADMIN cannot make
 * namespaces), the current namespace. Tests that drive devices directly use
 * this; tests of the daemon use harness.ts, which follows the same switch.
 */
import { execFileSync, spawn } from 'node:child_process';

/** Runs a command and returns its stdout; throws when it fails. */
export function run(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a command to completion without blocking the event loop (a device in this process answers meanwhile). */
export function runAsync(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('close', (code) => done({ code, out }));
  });
}

export const PEER_LOCAL = process.env.TAPSTACK_TEST_PEER === 'local';

export interface PeerSide {
  readonly ns: string | null;
  create(): void;
  destroy(): void;
  /** Moves a device's kernel side to the peer. */
  moveIn(dev: string): void;
  /** `ip ARGS` on the peer side. */
  ip(...args: string[]): string;
  /** Runs a command on the peer side and returns its stdout. */
  run(...argv: string[]): string;
  /** [command, args] that run `argv` on the peer side, for spawn. */
  command(argv: string[]): [string, string[]];
}

export function peerSide(nsName: string): PeerSide {
  const ns = PEER_LOCAL ? null : nsName;
  const exec = (cmd: string, args: string[]): string =>
    execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const command = (argv: string[]): [string, string[]] => (ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0], argv.slice(1)]);
  return {
    ns,
    create() {
      if (!ns) return;
      exec('ip', ['netns', 'add', ns]);
      exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    },
    destroy() {
      if (ns) exec('ip', ['netns', 'del', ns]);
    },
    moveIn(dev) {
      if (ns) exec('ip', ['link', 'set', dev, 'netns', ns]);
    },
    ip: (...args) => exec('ip', ns ? ['-n', ns, ...args] : args),
    run: (...argv) => exec(...command(argv)),
    command,
  };
}
