import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { pattern, runFor } from '../helpers/tcp-sim.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import { TcpListener } from '../../src/tcp/listen.js';
import type { TcpConnection, TcpUser } from '../../src/tcp/connection.js';
import type { Errno } from '../../src/errors.js';
import { tcpOf } from '../helpers/frames.js';

describe('TCP windows between two stacks', () => {
  it('RFC 9293 §3.8.6.2.1: a sender stays inside the window its peer offers; a full receiver closes its window without dropping what it offered (RFC 7323 Appendix F: the edge recedes by less than one scale unit, never more)', async () => {
    const p = simPair();
    let srv: TcpSocket | null = null;
    // A reader that does not read: the window closes as its buffer fills.
    p.b.tcp.createServer({ pauseOnConnect: true }, (s) => (srv = s)).listen(80);
    const cli = p.a.tcp.connect(80, '10.0.0.2');
    let edge: number | null = null;
    let edgeBack = 0;
    let maxBack = 0;
    let wscale = 0;
    let beyond = 0;
    p.b.capture = (_i, f) => {
      if (f[23] !== 6) return;
      const s = tcpOf(f);
      if (s.src !== 0x0a000002 || !(s.flags & 0x10)) return;
      if (s.flags & 0x02) wscale = 10;
      const e = (s.ack + (s.flags & 0x02 ? s.win : s.win << wscale)) >>> 0;
      if (edge !== null && ((e - edge) | 0) < 0) {
        edgeBack++;
        maxBack = Math.max(maxBack, (edge - e) | 0);
      }
      edge = e;
    };
    p.a.capture = (_i, f) => {
      if (f[23] !== 6 || edge === null) return;
      const s = tcpOf(f);
      if (s.src !== 0x0a000001 || s.len === 0) return;
      if (((s.seq + s.len - edge) | 0) > 0) beyond++;
    };
    await runFor(p.time, 50, { until: () => srv !== null });
    const big = pattern(4 << 20);
    for (let o = 0; o < big.length; o += 65536) cli.write(big.subarray(o, o + 65536));
    await runFor(p.time, 2000);
    const b = [...p.b.tcp.connections][0];
    expect(b.rcvWscale).toBe(10);
    // The window did close: what b holds is about its buffer.
    expect(b.rcvWndNow()).toBeLessThan(2048);
    expect(srv!.readableLength).toBeLessThanOrEqual(b.rcvBufSize + 1024);
    expect(beyond).toBe(0);
    expect(maxBack).toBeLessThan(1 << 10);
    // Nothing the sender was allowed to send was thrown away, and it did not have to time out.
    expect(p.b.mib.TcpExtTCPRcvQDrop).toBe(0);
    expect(p.a.mib.TcpExtTCPTimeouts).toBe(0);
    // Reading opens it again and everything arrives.
    let got = 0;
    srv!.on('data', (d: Buffer) => (got += d.length));
    srv!.resume();
    await runFor(p.time, 30_000, { until: () => got === big.length });
    expect(got).toBe(big.length);
  });

  it('data and a FIN that arrive while the connection waits in the accept queue reach the user that takes it', async () => {
    const p = simPair();
    const taken: { c: TcpConnection; user: TcpUser & { text: string; eof: boolean } }[] = [];
    let accepting = false;
    const l = new TcpListener(p.b.tcp, 0, 81, 16, {
      incoming(c: TcpConnection): boolean {
        if (!accepting) return false;
        const user = {
          text: '',
          eof: false,
          onConnected(): void {},
          onData(d: Uint8Array): void {
            this.text += Buffer.from(d).toString();
          },
          onEof(): void {
            this.eof = true;
          },
          onRoom(): void {},
          onClosed(_e: Errno | null): void {},
          rcvQueued(): number {
            return 0;
          },
        };
        c.user = user;
        taken.push({ c, user });
        return true;
      },
    });
    expect(p.b.tcp.addListener(l)).toBeNull();
    const cli = p.a.tcp.connect(81, '10.0.0.2');
    cli.on('connect', () => cli.end('early bytes'));
    cli.resume();
    await runFor(p.time, 100);
    expect(l.acceptQueue.length).toBe(1);
    const queued = l.acceptQueue[0];
    // Acknowledged, FIN included, while nobody holds it.
    expect(queued.rcvOff).toBe('early bytes'.length);
    accepting = true;
    l.drain();
    await runFor(p.time, 10);
    expect(taken.length).toBe(1);
    expect(taken[0].user.text).toBe('early bytes');
    expect(taken[0].user.eof).toBe(true);
  });

  it('a read that takes nothing, as a new socket\'s first, sends no window update (tcp_cleanup_rbuf wants bytes read); a read of data that doubles the window does', async () => {
    const p = simPair();
    let srv: TcpSocket | null = null;
    p.b.tcp.createServer((s) => {
      srv = s;
      // Flowing at once: the stream's first _read finds the buffer empty.
      s.resume();
    }).listen(82);
    const fromB: { flags: number; len: number; win: number }[] = [];
    p.b.capture = (_i, f) => {
      if (f[23] !== 6) return;
      const s = tcpOf(f);
      if (s.src === 0x0a000002) fromB.push(s);
    };
    const cli = p.a.tcp.connect(82, '10.0.0.2');
    cli.resume();
    await runFor(p.time, 200, { until: () => srv !== null });
    await runFor(p.time, 200);
    // The SYN-ACK, and nothing after it while no data came.
    expect(fromB.map((s) => s.flags)).toEqual([0x12]);
    const synWin = fromB[0].win;
    cli.write(Buffer.alloc(100, 1));
    await runFor(p.time, 200);
    // One ACK for the data, which also moves the window out to the free buffer, near
    // twice what the SYN-ACK offered: this read took bytes.
    expect(fromB.length).toBe(2);
    expect(fromB[1].flags).toBe(0x10);
    const c = [...p.b.tcp.connections][0];
    expect(fromB[1].win << c.rcvWscale).toBeGreaterThan(1.9 * synWin);
    cli.destroy();
  });
});
