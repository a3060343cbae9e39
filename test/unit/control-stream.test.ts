import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlServer, type CommandHandler } from '../../src/control/server.js';
import { runRemote } from '../../src/control/client.js';
import { INPUT_WINDOW } from '../../src/control/protocol.js';
import { silentLogger } from '../../src/log.js';

/** The control socket carrying a command's stdin and binary stdout, with its pacing. */
describe('control socket streams', () => {
  let server: ControlServer | null = null;
  let dir = '';
  afterEach(async () => {
    await server?.close();
    server = null;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(handler: CommandHandler): Promise<string> {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-ctl-'));
    const p = path.join(dir, 'ctl.sock');
    server = new ControlServer(p, handler, silentLogger);
    await server.listen();
    return p;
  }

  it('stdin reaches the command and its bytes come back, with no more than a window in flight', async () => {
    let held = 0;
    let maxHeld = 0;
    const p = await start(
      (argv, io) =>
        new Promise<number>((resolve) => {
          // A slow consumer: it takes a chunk every millisecond, then acknowledges it.
          const queue: Buffer[] = [];
          let ended = false;
          const tick = setInterval(() => {
            const b = queue.shift();
            if (b !== undefined) {
              held -= b.length;
              io.write(b);
              io.ack(b.length);
            } else if (ended) {
              clearInterval(tick);
              resolve(argv.length);
            }
          }, 1);
          io.onInput(
            (chunk) => {
              queue.push(chunk);
              held += chunk.length;
              maxHeld = Math.max(maxHeld, held);
            },
            () => (ended = true),
          );
        }),
    );
    const data = crypto.randomBytes(3 * 1024 * 1024 + 11);
    const chunks: Buffer[] = [];
    const stdout = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const code = await runRemote(p, ['x', 'y'], () => {}, () => {}, { stdin: Readable.from([data.subarray(0, 1000), data.subarray(1000)]), stdout });
    expect(code).toBe(2);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(maxHeld).toBeLessThanOrEqual(INPUT_WINDOW + 64 * 1024);
  });

  it('a client that stops reading stops the command: write() says so and drain comes later', async () => {
    let sawFull = false;
    let drained = false;
    const p = await start(
      (_argv, io) =>
        new Promise<number>((resolve) => {
          const block = Buffer.alloc(64 * 1024, 1);
          let sent = 0;
          const pump = (): void => {
            while (sent < 16 * 1024 * 1024) {
              sent += block.length;
              if (!io.write(block)) {
                sawFull = true;
                io.onDrain(() => {
                  drained = true;
                  pump();
                });
                return;
              }
            }
            resolve(0);
          };
          pump();
        }),
    );
    let got = 0;
    const slow = new PassThrough({ highWaterMark: 16 * 1024 });
    slow.on('data', (b: Buffer) => {
      got += b.length;
      slow.pause();
      setTimeout(() => slow.resume(), 0);
    });
    const code = await runRemote(p, ['big'], () => {}, () => {}, { stdout: slow });
    expect(code).toBe(0);
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBe(16 * 1024 * 1024);
    expect(sawFull).toBe(true);
    expect(drained).toBe(true);
  });

  it('a client that ignores its credit is cut off; the command hears the client went', async () => {
    let closed = false;
    const p = await start(
      (_argv, io) =>
        new Promise<number>((resolve) => {
          io.onInput(
            () => {},
            () => {},
          );
          io.onClose(() => {
            closed = true;
            resolve(1);
          });
        }),
    );
    const c = net.connect(p);
    c.on('error', () => {});
    await new Promise<void>((r) => c.once('connect', () => r()));
    c.write(JSON.stringify({ argv: ['x'] }) + '\n');
    const chunk = JSON.stringify({ type: 'in', data: Buffer.alloc(60 * 1024).toString('base64') }) + '\n';
    for (let i = 0; i < 20; i++) c.write(chunk);
    await new Promise<void>((r) => c.once('close', () => r()));
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(true);
  });

  it('the terminal width goes along with the request', async () => {
    let seen: number | undefined;
    const p = await start((_argv, io) => {
      seen = io.columns;
      return 0;
    });
    await runRemote(p, ['ss'], () => {}, () => {}, { columns: 123 });
    expect(seen).toBe(123);
    await runRemote(p, ['ss'], () => {}, () => {});
    expect(seen).toBeUndefined();
  });
});
