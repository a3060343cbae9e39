// Open/close churn, fd and netdev leaks, finalizers and process exit of the
// native TAP/TUN addon. Needs root (or CAP_NET_ADMIN).
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openTap, openTun } from '../../src/link/tap.js';
import type { DeviceReceiver } from '../../src/link/device.js';

const ADDON = resolve(import.meta.dirname, '../../build/Release/tapstack_native.node');
// Unique per run so parallel runs (and other tests) never see our devices.
const PREFIX = `nl${process.pid.toString(36)}`;
const tmp = mkdtempSync(join(tmpdir(), 'tapstack-native-'));

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function netdevsWithPrefix(prefix: string): string[] {
  const out = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.split(':')[1]?.trim().split('@')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
}

const nullRx: DeviceReceiver = { frame() {}, batchEnd() {} };

/** Lets pending uv_close callbacks and finalizer immediates run. */
function turn(): Promise<void> {
  return new Promise((done) => setImmediate(done));
}

/** Runs an ES module script in a fresh node; the addon path is argv[2]. */
function runChild(source: string, nodeArgs: string[] = []): { status: number | null; signal: string | null; stdout: string; stderr: string } {
  const file = join(tmp, `child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, source);
  const r = spawnSync(process.execPath, [...nodeArgs, file, ADDON], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('native TAP/TUN lifecycle', () => {
  for (const kind of ['tap', 'tun'] as const) {
    it(`opens, starts and closes a ${kind.toUpperCase()} 300 times without leaking fds or netdevs`, async () => {
      const prefix = `${PREFIX}${kind[1]}`;
      const open = kind === 'tap' ? openTap : openTun;
      // Warm up once so lazily created things (the receive dispatch) are not counted as leaks.
      open(`${prefix}%d`, { batch: 2, maxFrame: 2048 }).close();
      await turn();
      const before = openFds();
      // Each cycle registers and unregisters a netdev (10-20 ms in the kernel); a leak
      // of one fd or device in any cycle shows in the counts below.
      for (let i = 0; i < 300; i++) {
        const dev = open(`${prefix}%d`, { batch: 4, maxFrame: 2048 });
        expect(dev.name).toMatch(new RegExp(`^${prefix}\\d+$`));
        expect(dev.linkType).toBe(kind === 'tap' ? 'ether' : 'ip');
        if (i % 2 === 0) dev.start(nullRx);
        dev.close();
        expect(dev.fd).toBe(-1);
        dev.close(); // idempotent
      }
      await turn();
      expect(openFds()).toBe(before);
      expect(netdevsWithPrefix(prefix)).toEqual([]);
    }, 180_000); // the kernel takes ~10-20 ms to unregister a netdev
  }

  it('returns the name the kernel picked for a pattern', () => {
    const dev = openTap('tap%d', { batch: 1, maxFrame: 2048 });
    try {
      expect(dev.name).toMatch(/^tap\d+$/);
      expect(dev.ifindex).toBeGreaterThan(0);
    } finally {
      dev.close();
    }
    const tun = openTun('', { batch: 1, maxFrame: 2048 });
    try {
      expect(tun.name).toMatch(/^tun\d+$/);
    } finally {
      tun.close();
    }
  });

  it('lets the process exit once every started device is closed', () => {
    const r = runChild(`
      import { createRequire } from 'node:module';
      const a = createRequire(import.meta.url)(process.argv[2]);
      a.init(() => {});
      const open = () => a.open('${PREFIX}x%d', true, false, new ArrayBuffer(2 * (4 + 2048)), 2, 2048);
      for (let i = 0; i < 100; i++) {
        const d = open();
        d.start();
        if (i % 3 === 0) d.stop();
        d.close();
      }
      // Closing inside a receive-less turn of the loop, after the handle was re-created.
      const d = open();
      d.start();
      setTimeout(() => { d.close(); console.log('closed'); }, 50);
    `);
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('closed');
  });

  it('keeps the process alive while a device is started', () => {
    const r = runChild(`
      import { createRequire } from 'node:module';
      const a = createRequire(import.meta.url)(process.argv[2]);
      a.init(() => {});
      const d = a.open('${PREFIX}k%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
      d.start();
      let exited = false;
      process.on('beforeExit', () => { exited = true; });
      setTimeout(() => { console.log(exited ? 'exited early' : 'alive'); d.close(); }, 300);
    `);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('alive');
  });

  it('closes the fds of handles that are garbage collected without close()', () => {
    const r = runChild(
      `
      import { createRequire } from 'node:module';
      import { readdirSync } from 'node:fs';
      const a = createRequire(import.meta.url)(process.argv[2]);
      a.init(() => {});
      const fds = () => readdirSync('/proc/self/fd').length;
      const before = fds();
      (function () {
        for (let i = 0; i < 200; i++) {
          const d = a.open('${PREFIX}g%d', i % 2 === 0, false, new ArrayBuffer(4 + 2048), 1, 2048);
          // Started devices are collected too when nothing refers to them.
          if (i % 4 === 0) d.start();
        }
      })();
      const during = fds();
      for (let i = 0; i < 10 && fds() !== before; i++) {
        globalThis.gc();
        await new Promise((r) => setImmediate(r));
      }
      console.log(JSON.stringify({ before, during, after: fds() }));
    `,
      ['--expose-gc'],
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const counts = JSON.parse(r.stdout) as { before: number; during: number; after: number };
    expect(counts.during).toBeGreaterThanOrEqual(counts.before + 200);
    expect(counts.after).toBe(counts.before);
    expect(netdevsWithPrefix(`${PREFIX}g`)).toEqual([]);
  });

  it('closes open devices when the environment tears down (worker exit)', () => {
    const r = runChild(`
      import { createRequire } from 'node:module';
      import { Worker } from 'node:worker_threads';
      import { readdirSync } from 'node:fs';
      import { execFileSync } from 'node:child_process';
      const fds = () => readdirSync('/proc/self/fd').length;
      // Node keeps a few fds after its first worker; start one so they are not counted.
      const warm = new Worker('require("node:worker_threads").parentPort.postMessage(0)', { eval: true });
      await new Promise((r) => warm.once('message', r));
      await warm.terminate();
      const before = fds();
      const src = \`
        const a = require(process.argv[2]);
        const { parentPort } = require('node:worker_threads');
        a.init(() => {});
        const keep = [];
        for (let i = 0; i < 5; i++) {
          const d = a.open('${PREFIX}w%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
          if (i < 3) d.start();
          keep.push(d);
        }
        parentPort.postMessage('opened');
      \`;
      const w = new Worker(src, { eval: true, argv: [process.argv[2]] });
      await new Promise((r) => w.once('message', r));
      const during = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('${PREFIX}w').length - 1;
      await w.terminate();
      await new Promise((r) => setImmediate(r));
      const left = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).split('${PREFIX}w').length - 1;
      console.log(JSON.stringify({ during, left, leaked: fds() - before }));
    `);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { during: number; left: number; leaked: number };
    expect(out.during).toBe(5);
    expect(out.left).toBe(0);
    expect(out.leaked).toBe(0);
  });
});
