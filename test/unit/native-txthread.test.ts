// The addon's transmit thread (native/tx_thread.cc): frame order across the
// direct and queued paths, a full ring, closing and tearing down with frames
// queued, and EIO while the kernel side is down. What the kernel receives is
// captured with tcpdump on the TAP's kernel side. Needs root.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openTap, type TapDevice } from '../../src/link/tap.js';
import { loadNative } from '../../src/link/native.js';
import { Stack } from '../../src/stack.js';
import { formatLinks } from '../../src/control/format.js';

const ADDON = resolve(import.meta.dirname, '../../build/Release/tapstack_native.node');
const PREFIX = `tx${process.pid.toString(36)}`;
const tmp = mkdtempSync(join(tmpdir(), 'tapstack-txthread-'));
const RING = 4 << 20;
const WAIT_US = 4000;
/** An EtherType for local experiments (IEEE 802 local experimental 1): the kernel drops it after the capture. */
const ETHERTYPE = 0x88b5;

afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  // Tests that shrink the ring or hold the writer put the defaults back.
  const n = loadNative();
  n.txHold(false);
  n.txConfigure(RING, WAIT_US);
});

/** A broadcast frame of `size` bytes with `seq` after the Ethernet header; with `hdr`, that many zero bytes in front (a virtio_net_hdr). */
function frame(seq: number, size = 64, hdr = 0): Uint8Array {
  const f = new Uint8Array(hdr + size);
  f.fill(0xff, hdr, hdr + 6);
  f.set([0x02, 0, 0, 0, 0, 0x01], hdr + 6);
  f[hdr + 12] = ETHERTYPE >> 8;
  f[hdr + 13] = ETHERTYPE & 0xff;
  new DataView(f.buffer).setUint32(hdr + 14, seq);
  return f;
}

interface Capture {
  proc: ChildProcess;
  out: Buffer[];
}

/** tcpdump on the kernel side of `dev`, our EtherType only, resolved once it listens. */
async function startCapture(dev: string): Promise<Capture> {
  const proc = spawn('tcpdump', ['-i', dev, '-U', '-w', '-', '-B', '16384', '-s', '64', `ether proto ${ETHERTYPE}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  proc.stdout!.on('data', (b: Buffer) => out.push(b));
  let err = '';
  await new Promise<void>((ok, fail) => {
    proc.stderr!.on('data', (b: Buffer) => {
      err += b;
      if (err.includes('listening on')) ok();
    });
    proc.once('exit', () => fail(new Error(`tcpdump: ${err}`)));
  });
  return { proc, out };
}

/** Waits until `count` frames are in (or 3 s pass), stops tcpdump and returns the sequence numbers, in order. */
async function stopCapture(c: Capture, count: number): Promise<number[]> {
  const end = Date.now() + 3000;
  while (seqs(Buffer.concat(c.out)).length < count && Date.now() < end) await sleep(20);
  await sleep(50);
  const exited = new Promise((r) => c.proc.once('exit', r));
  c.proc.kill('SIGINT');
  await exited;
  return seqs(Buffer.concat(c.out));
}

/** The sequence numbers in a pcap stream (24-byte file header, 16-byte record headers). */
function seqs(pcap: Buffer): number[] {
  const r: number[] = [];
  for (let o = 24; o + 16 <= pcap.length; ) {
    const incl = pcap.readUInt32LE(o + 8);
    if (o + 16 + incl > pcap.length) break;
    if (incl >= 18) r.push(pcap.readUInt32BE(o + 16 + 14));
    o += 16 + incl;
  }
  return r;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Until the writer has taken all of the device's queued frames. */
async function drained(dev: TapDevice): Promise<void> {
  const end = Date.now() + 3000;
  while (dev.txThreadStats().pending !== 0) {
    if (Date.now() > end) throw new Error('the transmit thread did not drain');
    await sleep(1);
  }
}

describe('native transmit thread', () => {
  for (const vnetHdr of [false, true]) {
    it(`keeps frame order across direct writes and the ring${vnetHdr ? ' (with a virtio_net_hdr)' : ''}`, async () => {
      const dev = openTap(`${PREFIX}o%d`, { batch: 1, maxFrame: 2048, txThread: true, vnetHdr });
      try {
        dev.setUp();
        const cap = await startCapture(dev.name);
        const native = loadNative();
        let seq = 0;
        const one = (): void => void expect(dev.sendBatch([frame(seq++)], 1)).toBe(1);
        const batch = (n: number, size = 64): void => {
          const fs: Uint8Array[] = [];
          for (let i = 0; i < n; i++) fs.push(frame(seq++, size));
          expect(dev.sendBatch(fs, n)).toBe(n);
        };
        for (let round = 0; round < 20; round++) {
          one(); // nothing queued: written directly
          batch(40); // to the ring
          one(); // queued behind the batch (or direct, if the writer is done already)
          one();
          // Held, the ring keeps the batch: the single frames after it must queue.
          native.txHold(true);
          batch(2 + round);
          one();
          batch(1 + (round % 3));
          native.txHold(false);
          batch(3, 3000); // large frames (above the mean the ring takes) behind queued ones
          await drained(dev);
          batch(3, 3000); // large frames with nothing queued: written directly
          one();
        }
        await drained(dev);
        const got = await stopCapture(cap, seq);
        expect(got).toEqual(Array.from({ length: seq }, (_, i) => i));
        const st = dev.txThreadStats();
        expect(st.on).toBe(true);
        expect(st.queued).toBeGreaterThan(0);
        expect(st.queued).toBeLessThan(seq);
        expect(st.written).toBe(st.queued);
        expect(st.busy + st.linkDown + st.errors + st.discarded + st.pending).toBe(0);
      } finally {
        dev.close();
      }
    }, 30_000);
  }

  it('takes what fits when the ring stays full and drops the rest, as for EAGAIN', async () => {
    const native = loadNative();
    // 64 KiB: 64 records of a 1000-byte frame (16-byte header, padded to 1024).
    native.txConfigure(65536, 0);
    const dev = openTap(`${PREFIX}f%d`, { batch: 1, maxFrame: 2048, txThread: true });
    try {
      dev.setUp();
      const cap = await startCapture(dev.name);
      native.txHold(true);
      const fs = Array.from({ length: 100 }, (_, i) => frame(i, 1000));
      expect(dev.sendBatch(fs, 100)).toBe(64);
      // Still full: a later frame is dropped too, and so is a frame behind the queued ones.
      expect(dev.sendBatch([frame(100, 1000), frame(101, 1000)], 2)).toBe(0);
      expect(dev.sendBatch([frame(102)], 1)).toBe(0);
      expect(dev.txThreadStats()).toMatchObject({ queued: 64, pending: 64, written: 0 });
      // With a wait bound (it can change while frames are queued, the size cannot),
      // a full ring holds the caller up that long before dropping.
      native.txConfigure(65536, 30_000);
      expect(() => native.txConfigure(131072, 30_000)).toThrow(/EBUSY/);
      const t0 = process.hrtime.bigint();
      expect(dev.sendBatch([frame(103, 1000)], 1)).toBe(0);
      expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeGreaterThanOrEqual(29);
      native.txHold(false);
      await drained(dev);
      // Room again: a batch is taken whole.
      expect(dev.sendBatch(Array.from({ length: 8 }, (_, i) => frame(64 + i, 1000)), 8)).toBe(8);
      await drained(dev);
      const got = await stopCapture(cap, 72);
      expect(got).toEqual(Array.from({ length: 72 }, (_, i) => i));
      expect(dev.txThreadStats()).toMatchObject({ queued: 72, written: 72, pending: 0, busy: 0 });
    } finally {
      dev.close();
    }
  }, 20_000);

  it('refuses to resize the ring while frames are queued', () => {
    const native = loadNative();
    const dev = openTap(`${PREFIX}b%d`, { batch: 1, maxFrame: 2048, txThread: true });
    try {
      dev.setUp();
      native.txHold(true);
      expect(dev.sendBatch(Array.from({ length: 8 }, (_, i) => frame(i)), 8)).toBe(8);
      expect(() => native.txConfigure(65536, 0)).toThrow(/EBUSY/);
    } finally {
      dev.close();
    }
  });

  it('discards the queued frames of a device that closes, and writes none of them', async () => {
    const native = loadNative();
    // A persistent device outlives our fd, and the capture on it the close.
    const name = `${PREFIX}c0`;
    expect(spawnSync('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap']).status).toBe(0);
    let cap: Capture | undefined;
    const dev = openTap(name, { batch: 1, maxFrame: 2048, txThread: true });
    try {
      dev.setUp();
      cap = await startCapture(name);
      native.txHold(true);
      const fs = Array.from({ length: 200 }, (_, i) => frame(i, 200));
      expect(dev.sendBatch(fs, 200)).toBe(200);
      expect(dev.txThreadStats().pending).toBe(200);
      dev.close();
      const st = dev.txThreadStats();
      expect(st.pending).toBe(0);
      expect(st.discarded + st.written).toBe(200);
      // The close lifted the hold only to skip the frames: none reach the kernel.
      expect(st.discarded).toBe(200);
      expect(await stopCapture(cap, 1)).toEqual([]);
      cap = undefined;
      // The writer goes on serving other devices.
      const dev2 = openTap(`${PREFIX}c%d`, { batch: 1, maxFrame: 2048, txThread: true });
      try {
        dev2.setUp();
        expect(dev2.sendBatch(Array.from({ length: 8 }, (_, i) => frame(i)), 8)).toBe(8);
        await drained(dev2);
        expect(dev2.txThreadStats()).toMatchObject({ queued: 8, written: 8 });
      } finally {
        dev2.close();
      }
    } finally {
      if (cap) cap.proc.kill();
      dev.close();
      spawnSync('ip', ['link', 'del', name]);
    }
  }, 20_000);

  it('counts frames the writer could not write while the kernel side is down (EIO) in txLinkDown', async () => {
    const dev = openTap(`${PREFIX}d%d`, { batch: 1, maxFrame: 2048, txThread: true });
    try {
      // Not up: every write() fails with EIO. The ring takes the batch; the writer counts the drops.
      const fs = Array.from({ length: 10 }, (_, i) => frame(i));
      expect(dev.sendBatch(fs, 10)).toBe(10);
      await drained(dev);
      expect(dev.txThreadStats()).toMatchObject({ queued: 10, written: 0, linkDown: 10, errors: 0 });
      // A single frame is written directly and dropped the same way.
      expect(dev.sendBatch([frame(10)], 1)).toBe(0);
      expect(dev.txLinkDown).toBe(11);
      // Another errno (EINVAL: shorter than an Ethernet header) is counted with its number.
      dev.setUp();
      const short = Array.from({ length: 8 }, () => new Uint8Array(5));
      expect(dev.sendBatch(short, 8)).toBe(8);
      await drained(dev);
      expect(dev.txThreadStats()).toMatchObject({ errors: 8, errno: 22, linkDown: 10 });
    } finally {
      dev.close();
    }
  });

  it('shows the writer\'s drops in ip -s link: TX dropped and the drops line, by cause', async () => {
    const dev = openTap(`${PREFIX}w%d`, { batch: 1, maxFrame: 2048, txThread: true });
    const stack = new Stack();
    try {
      const iface = stack.addInterface(dev.name, dev);
      // Not up on the kernel side: the ring takes the frames and the writer drops them (EIO).
      expect(dev.sendBatch(Array.from({ length: 6 }, (_, i) => frame(i)), 6)).toBe(6);
      await drained(dev);
      // EINVAL (shorter than an Ethernet header) once it is up: another errno.
      dev.setUp();
      expect(dev.sendBatch(Array.from({ length: 3 }, () => new Uint8Array(5)), 3)).toBe(3);
      await drained(dev);
      expect(iface.stats.txDropped).toBe(0);
      expect(iface.txDroppedTotal()).toBe(9);
      const text = formatLinks([iface], true, false);
      const tx = text.split('\n').findIndex((l) => l.trim().startsWith('TX:'));
      expect(text.split('\n')[tx + 1].trim().split(/\s+/)[3]).toBe('9');
      expect(text).toMatch(/drops: .*link-down 6 .*device-error 3/);
      const j = JSON.parse(formatLinks([iface], true, true))[0];
      expect(j.stats64.tx.dropped).toBe(9);
      expect(j.drop_reasons).toMatchObject({ 'link-down': 6, 'device-error': 3 });
      // Closed, the counts stay what they were.
      dev.close();
      expect(iface.txDroppedTotal()).toBe(9);
    } finally {
      dev.close();
    }
  });

  it('turning the thread off lets the queued frames out first', async () => {
    const native = loadNative();
    const handle = native.open(`${PREFIX}s%d`, true, false, new ArrayBuffer(4 + 2048), 1, 2048);
    try {
      native.setLinkUp(handle.name, true);
      const cap = await startCapture(handle.name);
      handle.setTxThread(true, 2);
      native.txHold(true);
      expect(handle.writeBatch([frame(0), frame(1), frame(2)], 3)).toBe(3);
      // Off waits for the writer to write them (lifting the hold to do so).
      handle.setTxThread(false);
      expect(handle.txStats()).toMatchObject({ on: false, pending: 0, written: 3 });
      expect(handle.write(frame(3))).toBe(1);
      expect(handle.writeBatch([frame(4), frame(5)], 2)).toBe(2);
      expect(handle.txStats().queued).toBe(3);
      expect(await stopCapture(cap, 6)).toEqual([0, 1, 2, 3, 4, 5]);
    } finally {
      handle.close();
    }
  });

  /** Runs an ES module in a fresh node with the addon's path as argv[2]. */
  function runChild(source: string, nodeArgs: string[] = []): { status: number | null; signal: string | null; stdout: string; stderr: string } {
    const file = join(tmp, `child-${Math.random().toString(36).slice(2)}.mjs`);
    writeFileSync(file, source);
    const r = spawnSync(process.execPath, [...nodeArgs, file, ADDON], { encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  }

  const FRAMES = `
    const frame = (seq, size) => {
      const f = new Uint8Array(size);
      f.fill(0xff, 0, 6);
      f[12] = 0x88; f[13] = 0xb5;
      new DataView(f.buffer).setUint32(14, seq);
      return f;
    };
    const batch = (n, size) => Array.from({ length: n }, (_, i) => frame(i, size));
  `;

  it('tears down with frames in flight: process exit, worker exit, garbage collection', () => {
    const r = runChild(
      `
      import { createRequire } from 'node:module';
      import { Worker } from 'node:worker_threads';
      const a = createRequire(import.meta.url)(process.argv[2]);
      ${FRAMES}
      // A worker queues frames (the writer held, then busy) and is terminated.
      const src = \`
        const a = require(process.argv[2]);
        const { parentPort } = require('node:worker_threads');
        ${FRAMES.replace(/`/g, '\\`')}
        const ds = [];
        for (let i = 0; i < 3; i++) {
          const d = a.open('${PREFIX}w%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
          a.setLinkUp(d.name, true);
          d.setTxThread(true, 2);
          ds.push(d);
        }
        a.txHold(true);
        for (const d of ds) d.writeBatch(batch(300, 1500), 300);
        a.txHold(false);
        for (const d of ds) d.writeBatch(batch(300, 1500), 300);
        parentPort.postMessage('queued');
        setInterval(() => { for (const d of ds) d.writeBatch(batch(50, 1500), 50); }, 0);
      \`;
      for (let i = 0; i < 5; i++) {
        const w = new Worker(src, { eval: true, argv: [process.argv[2]] });
        await new Promise((r) => w.once('message', r));
        await w.terminate();
      }
      // Handles dropped with frames queued (the writer held): their finalizers discard them.
      (function () {
        a.txHold(true);
        for (let i = 0; i < 20; i++) {
          const d = a.open('${PREFIX}g%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
          a.setLinkUp(d.name, true);
          d.setTxThread(true, 2);
          d.writeBatch(batch(20, 200), 20);
        }
      })();
      for (let i = 0; i < 10; i++) {
        globalThis.gc();
        await new Promise((r) => setImmediate(r));
      }
      a.txHold(false);
      // The main environment ends with frames queued too.
      const d = a.open('${PREFIX}x%d', true, false, new ArrayBuffer(4 + 2048), 1, 2048);
      a.setLinkUp(d.name, true);
      d.setTxThread(true, 2);
      d.writeBatch(batch(1000, 1500), 1000);
      console.log('done');
    `,
      ['--expose-gc'],
    );
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('done');
    const left = spawnSync('ip', ['-o', 'link'], { encoding: 'utf8' }).stdout.split(PREFIX).length - 1;
    expect(left).toBe(0);
  }, 30_000);
});
