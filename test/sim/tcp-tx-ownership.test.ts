/**
 * Who owns written bytes. A Node stream's writer may use a buffer again once write()'s
 * callback has run ("the data has been fully handled"), while TCP may not have sent
 * those bytes yet, or may have to send them again after a loss: the socket's send
 * buffer must hold a copy of its own. Writers here overwrite every buffer in its
 * callback, over a lossy sim link, and the peer must still get what was written.
 */
import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { pattern, runFor, sha256 } from '../helpers/tcp-sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

describe('TCP send buffers: a buffer reused after write() called back', () => {
  it('one 2 MB buffer zeroed in its callback, then one 16 KB buffer refilled and written again 100 times, with loss: the peer gets the bytes as written', async () => {
    const p = simPair({ impair: { delayMs: 5, loss: 0.02, rateBps: 100e6 }, seed: 41 });
    const got: Buffer[] = [];
    let ended = false;
    const server = p.b.tcp.createServer((s: TcpSocket) => {
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => (ended = true));
    });
    server.listen(5002);

    const big = pattern(2_000_000, 11);
    const expected: Buffer[] = [Buffer.from(big)];
    const small = Buffer.allocUnsafe(16_384);
    const errors: Error[] = [];
    let callbacks = 0;
    const c = p.a.tcp.connect(5002, '10.0.0.2');
    c.on('error', (e) => errors.push(e));
    c.on('connect', () => {
      c.write(big, () => {
        callbacks++;
        big.fill(0);
      });
      let round = 0;
      const next = (): void => {
        if (round === 100) {
          c.end();
          return;
        }
        pattern(small.length, 100 + round).copy(small);
        expected.push(Buffer.from(small));
        round++;
        c.write(small, () => {
          callbacks++;
          small.fill(0xff);
          next();
        });
      };
      next();
    });
    await runFor(p.time, 600_000, { stepMs: 2, until: () => ended });

    expect(errors).toEqual([]);
    expect(ended).toBe(true);
    expect(callbacks).toBe(101);
    const want = Buffer.concat(expected);
    const have = Buffer.concat(got);
    expect(have.length).toBe(want.length);
    expect(sha256(have)).toBe(sha256(want));
    // Some bytes went again after their callback had run.
    expect(p.a.mib.TcpRetransSegs).toBeGreaterThan(0);
  }, 120_000);

  it('strings in any encoding are sent as their encoded bytes, also when they wait for send-buffer room, and bytesWritten counts those bytes', async () => {
    const p = simPair({ impair: { delayMs: 5, loss: 0.02, rateBps: 50e6 }, seed: 43 });
    const got: Buffer[] = [];
    let ended = false;
    const server = p.b.tcp.createServer((s: TcpSocket) => {
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => (ended = true));
    });
    server.listen(5003);

    const kinds: [string, BufferEncoding][] = [
      ['grüße 日本語 🙂 ', 'utf8'],
      ['caf\u00e9 ', 'latin1'],
      ['deadbeef', 'hex'],
      // Unpadded: repeated, it stays one base64 text (Buffer.byteLength estimates padded ones).
      ['aGVsbG8h', 'base64'],
      ['\u00e9\u4e2d', 'utf16le'],
    ];
    const expected: Buffer[] = [];
    const errors: Error[] = [];
    const counted: number[] = [];
    let total = 0;
    const c = p.a.tcp.connect(5003, '10.0.0.2');
    c.on('error', (e) => errors.push(e));
    c.on('connect', () => {
      // 4,000 writes of 20 to 7,000 bytes: far more than the send buffer holds, so most
      // wait in the stream's buffer or the socket's own queue before they go in.
      for (let i = 0; i < 4000; i++) {
        const [base, enc] = kinds[i % kinds.length];
        const str = i % 97 === 0 ? base.repeat(400) : base.repeat(1 + (i % 7));
        const bytes = Buffer.from(str, enc);
        expected.push(bytes);
        total += bytes.length;
        c.write(str, enc);
        counted.push(c.bytesWritten - total);
      }
      c.end();
    });
    await runFor(p.time, 600_000, { stepMs: 2, until: () => ended });

    expect(errors).toEqual([]);
    expect(ended).toBe(true);
    // Right after each write, bytesWritten is every byte written so far: sent, held or waiting.
    expect(counted.filter((d) => d !== 0).slice(0, 5)).toEqual([]);
    expect(c.bytesWritten).toBe(total);
    const want = Buffer.concat(expected);
    const have = Buffer.concat(got);
    expect(have.length).toBe(want.length);
    expect(sha256(have)).toBe(sha256(want));
  }, 120_000);
});
