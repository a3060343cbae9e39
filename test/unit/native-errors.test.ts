// Errors from the native TAP/TUN addon: Node-style .code/.errno/.syscall,
// and a privilege hint when not allowed. Needs root (it drops privileges in
// child processes to test the refusals).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openTap, openTun } from '../../src/link/tap.js';
import { loadNative, type NativeError } from '../../src/link/native.js';

const ADDON = resolve(import.meta.dirname, '../../build/Release/tapstack_native.node');
const PREFIX = `ne${process.pid.toString(36)}`;

function caught(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (err) {
    return err as NativeError;
  }
  throw new Error('expected an error');
}

function expectErrno(err: NativeError, code: string, syscall: string): void {
  expect(err).toBeInstanceOf(Error);
  expect(err.code).toBe(code);
  const errno = (constants.errno as Record<string, number | undefined>)[code];
  if (errno !== undefined) {
    expect(err.errno).toBe(-errno);
    expect(getSystemErrorName(err.errno)).toBe(code);
  }
  expect(err.syscall).toBe(syscall);
  expect(err.message.startsWith(`${code}: `)).toBe(true);
}

/**
 * Runs `fn` with a copy of the addon that any user can load, removed afterwards.
 * The checkout itself may not be readable by others (a clone under `mktemp -d`
 * is mode 0700), and an unprivileged user must get as far as the open.
 */
function withReadableAddon<T>(fn: (addon: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tapstack-addon-'));
  try {
    chmodSync(dir, 0o755);
    const copy = join(dir, 'tapstack_native.node');
    copyFileSync(ADDON, copy);
    chmodSync(copy, 0o644);
    return fn(copy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens a TAP in a child node process started with `wrapper` (setpriv ...). */
function openAs(
  wrapper: string[],
  addon = ADDON,
): { code?: string; syscall?: string; message?: string; ok?: boolean } {
  const script = `
    const a = require(${JSON.stringify(addon)});
    try {
      const d = a.open('${PREFIX}p%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
      d.close();
      console.log(JSON.stringify({ ok: true }));
    } catch (e) {
      console.log(JSON.stringify({ code: e.code, syscall: e.syscall, message: e.message }));
    }`;
  const r = spawnSync(wrapper[0], [...wrapper.slice(1), process.execPath, '-e', script], {
    encoding: 'utf8',
    cwd: '/',
    timeout: 20_000,
  });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as { code?: string; syscall?: string; message?: string; ok?: boolean };
}

describe('native TAP/TUN errors', () => {
  it('refuses a name longer than IFNAMSIZ - 1 with ENAMETOOLONG', () => {
    const err = caught(() => openTap('a'.repeat(16)));
    expectErrno(err, 'ENAMETOOLONG', 'TUNSETIFF');
    // 15 bytes is the longest valid name.
    const dev = openTap(`${PREFIX}${'x'.repeat(15 - PREFIX.length)}`, { batch: 1, maxFrame: 2048 });
    dev.close();
  });

  it('rejects names the kernel does not accept with EINVAL', () => {
    expectErrno(caught(() => openTap('bad/name')), 'EINVAL', 'TUNSETIFF');
  });

  it('gives EINVAL when the name is a device of the other kind, EBUSY when already attached', () => {
    const tap = openTap(`${PREFIX}k%d`, { batch: 1, maxFrame: 2048 });
    try {
      expectErrno(caught(() => openTun(tap.name)), 'EINVAL', 'TUNSETIFF');
      const busy = caught(() => openTap(tap.name));
      expectErrno(busy, 'EBUSY', 'TUNSETIFF');
      expect(busy.message).toContain(tap.name);
    } finally {
      tap.close();
    }
  });

  it('reports interface ioctl failures with the ioctl name', () => {
    const native = loadNative();
    expectErrno(caught(() => native.setMtu(`${PREFIX}none`, 1400)), 'ENODEV', 'SIOCSIFMTU');
    expectErrno(caught(() => native.getIfindex(`${PREFIX}none`)), 'ENODEV', 'SIOCGIFINDEX');
    expectErrno(caught(() => native.setLinkUp(`${PREFIX}none`, true)), 'ENODEV', 'SIOCGIFFLAGS');
    const tap = openTap(`${PREFIX}m%d`, { batch: 1, maxFrame: 2048 });
    try {
      expectErrno(caught(() => tap.setMtu(1 << 20)), 'EINVAL', 'SIOCSIFMTU');
    } finally {
      tap.close();
    }
  });

  it('builds the same error shape from a reported errno', () => {
    const err = loadNative().errnoError(77, 'read', 'tap9');
    // EBADFD (what a TUN fd reads once its netdev is gone) is unknown to
    // libuv and Node's tables; the name comes from the C library.
    expectErrno(err, 'EBADFD', 'read');
    expect(err.errno).toBe(-77);
    expect(err.message).toBe("EBADFD: file descriptor in bad state, read 'tap9'");
  });

  it('refuses a receive buffer without room for the lengths and every slot', () => {
    const open = (bytes: number) => loadNative().open(`${PREFIX}r%d`, true, false, new ArrayBuffer(bytes), 2, 2048);
    expect(() => open(2 * 2048)).toThrow(/rxBuffer is smaller than slots \* \(4 \+ slotSize\)/);
    open(2 * (4 + 2048)).close();
  });

  it('throws from writeBatch for a non-Uint8Array and after close drops instead', () => {
    const tap = openTap(`${PREFIX}w%d`, { batch: 1, maxFrame: 2048 });
    expect(() => tap.sendBatch([new Uint16Array(30) as unknown as Uint8Array], 1)).toThrow(TypeError);
    tap.close();
    expect(tap.sendBatch([new Uint8Array(60)], 1)).toBe(0);
  });

  it('writeBatch throws EIO while the kernel side is down; sendBatch counts those as drops', () => {
    const frame = new Uint8Array(60).fill(0xff, 0, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    const handle = loadNative().open(`${PREFIX}d%d`, true, false, new ArrayBuffer(4 + 2048), 1, 2048);
    try {
      const err = caught(() => handle.writeBatch([frame, frame], 2));
      expectErrno(err, 'EIO', 'write');
      expect(err.written).toBe(0);
      // The one-frame path says the same.
      const one = caught(() => handle.write(frame));
      expectErrno(one, 'EIO', 'write');
      expect(one.written).toBe(0);
      expect(() => handle.write(new Uint16Array(30) as unknown as Uint8Array)).toThrow(TypeError);
    } finally {
      handle.close();
    }
    const tap = openTap(`${PREFIX}d%d`, { batch: 1, maxFrame: 2048 });
    try {
      expect(tap.sendBatch([frame, frame], 2)).toBe(0);
      expect(tap.sendBatch([frame], 1)).toBe(0);
      expect(tap.txLinkDown).toBe(3);
      // A malformed frame (shorter than an Ethernet header) still throws.
      tap.setUp();
      expectErrno(caught(() => tap.sendBatch([new Uint8Array(5)], 1)), 'EINVAL', 'write');
    } finally {
      tap.close();
    }
  });

  it('says root or CAP_NET_ADMIN is needed when run as an unprivileged user', () => {
    const r = withReadableAddon((addon) =>
      openAs(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'], addon),
    );
    // EACCES where /dev/net/tun is mode 0600 (open fails), EPERM where it is
    // 0666 (TUNSETIFF fails).
    expect(r.ok).toBeUndefined();
    expect(['EPERM', 'EACCES']).toContain(r.code);
    expect(['open', 'TUNSETIFF']).toContain(r.syscall);
    expect(r.message).toMatch(/root or CAP_NET_ADMIN/);
  });

  it('gives EPERM from TUNSETIFF to root without CAP_NET_ADMIN', () => {
    const r = openAs(['setpriv', '--inh-caps=-net_admin', '--bounding-set=-net_admin']);
    expect(r.code).toBe('EPERM');
    expect(r.syscall).toBe('TUNSETIFF');
    expect(r.message).toMatch(/root or CAP_NET_ADMIN/);
  });
});
