/**
 * TCP Fast Open (RFC 7413) between two stacks on a sim wire, in virtual time: the
 * cookie request, data in the SYN handed to the server before the handshake ends and
 * answered within one round trip, a lost SYN, a refused cookie, the backup key, the
 * Fast Open queue, data without cookies, and the experimental option.
 */
import { describe, expect, it } from 'vitest';
import { ip, simPair, type SimPair } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import { tap, type Seen } from '../helpers/tcp-tap.js';
import type { TcpSocket } from '../../src/tcp/socket.js';
import type { TcpServer } from '../../src/tcp/server.js';
import { TcpState } from '../../src/tcp/state.js';
import { fastOpenCookie } from '../../src/tcp/fastopen.js';
import { TCP_ACK, TCP_SYN } from '../../src/wire/tcp.js';
import { configure } from '../../src/library.js';

const RTT = 20;
const KEY = '01020304-05060708-090a0b0c-0d0e0f10';
/** KEY's bytes: each word little-endian, as Linux stores what the sysctl reads. */
const KEY_BYTES = Uint8Array.from([4, 3, 2, 1, 8, 7, 6, 5, 0x0c, 0x0b, 0x0a, 9, 0x10, 0x0f, 0x0e, 0x0d]);
const SYN = (s: Seen): boolean => (s.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
const SYNACK = (s: Seen): boolean => (s.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK);

interface Setup {
  p: SimPair;
  fromA: Seen[];
  fromB: Seen[];
  server: TcpServer;
  /** What the server saw: the request, and the connection's state when it came. */
  requests: { text: string; state: TcpState }[];
}

/** b serves on :80 with Fast Open (queue `qlen`), answering each request with "re:" + it; a is the client. */
function setup(opts: { qlen?: number; serverBits?: string; dropFromA?: (s: Seen) => boolean } = {}): Setup {
  const p = simPair({ impair: { delayMs: RTT / 2 } });
  p.b.sysctl.set('net.ipv4.tcp_fastopen', opts.serverBits ?? '3');
  p.b.sysctl.set('net.ipv4.tcp_fastopen_key', KEY);
  const fromA = tap(p.da, (_f, _o, s) => !(opts.dropFromA?.(s) ?? false));
  const fromB = tap(p.db);
  const requests: Setup['requests'] = [];
  const server = p.b.tcp
    .createServer({ fastOpen: opts.qlen ?? 16 }, (s: TcpSocket) => {
      s.on('data', (d: Buffer) => {
        requests.push({ text: d.toString(), state: s.conn!.state });
        s.end(`re:${d.toString()}`);
      });
    })
    .listen(80);
  return { p, fromA, fromB, server, requests };
}

/** A Fast Open request from a; resolves with the answer and the virtual ms it took. */
async function request(p: SimPair, text: string, fastOpen = true): Promise<{ answer: string; ms: number; sock: TcpSocket }> {
  const t0 = p.time.now();
  const sock = p.a.tcp.connect({ port: 80, host: '10.0.0.2', fastOpen });
  let answer = '';
  let ended = false;
  let at = -1;
  sock.on('data', (d: Buffer) => {
    answer += d.toString();
    if (at < 0) at = p.time.now();
  });
  sock.on('end', () => (ended = true));
  sock.end(text);
  await runFor(p.time, 5000, { until: () => ended });
  expect(ended).toBe(true);
  return { answer, ms: at - t0, sock };
}

describe('TCP Fast Open (RFC 7413) between two stacks', () => {
  it('the first connection asks for a cookie; the next sends its request in the SYN and has the answer in one round trip', async () => {
    const { p, fromA, fromB, requests } = setup();
    const r1 = await request(p, 'one');
    expect(r1.answer).toBe('re:one');
    // RFC 7413 §4.1.1: a cookie request is the option with no cookie; the SYN has no data.
    const syn1 = fromA.filter(SYN)[0];
    expect(syn1.fastOpen).toEqual(new Uint8Array(0));
    expect(syn1.fastOpenExp).toBe(false);
    expect(syn1.len).toBe(0);
    // The SYN-ACK hands out Linux's cookie: SipHash of the client's then the server's address.
    const cookie = fastOpenCookie(KEY_BYTES, ip('10.0.0.1'), ip('10.0.0.2'));
    expect(fromB.filter(SYNACK)[0].fastOpen).toEqual(cookie);
    expect(p.a.tcp.fastOpen.cached(ip('10.0.0.2'))).toEqual(cookie);
    expect(p.b.mib.TcpExtTCPFastOpenCookieReqd).toBe(1);
    // Without Fast Open: the answer comes two round trips after connect.
    expect(r1.ms).toBeGreaterThanOrEqual(2 * RTT);

    const n = fromA.length;
    const r2 = await request(p, 'two');
    expect(r2.answer).toBe('re:two');
    const syn2 = fromA.slice(n).filter(SYN)[0];
    expect(syn2.fastOpen).toEqual(cookie);
    expect(syn2.data.toString()).toBe('two');
    // The SYN-ACK acknowledges the data (RFC 7413 §4.2.2) and carries no cookie.
    const sa2 = fromB.filter(SYNACK)[1];
    expect((sa2.ack - syn2.seq) >>> 0).toBe(1 + 3);
    expect(sa2.fastOpen).toBeNull();
    // The server had the request before the handshake ended, and answered at once.
    expect(requests[1]).toEqual({ text: 'two', state: TcpState.SYN_RECEIVED });
    expect(r2.ms).toBeLessThan(2 * RTT);
    expect(r2.ms).toBeGreaterThanOrEqual(RTT);
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActive).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActiveFail).toBe(0);
    expect(p.a.mib.TcpRetransSegs).toBe(0);
  });

  it('the SYN carries what fits beside every option (MSS - 40 = 1420 bytes); the rest follows the handshake', async () => {
    const { p, fromA } = setup();
    await request(p, 'one');
    // A server that answers once the whole request is in.
    let got = '';
    p.b.tcp
      .createServer({ fastOpen: 16 }, (x: TcpSocket) => {
        x.on('data', (d: Buffer) => (got += d.toString()));
        x.on('end', () => x.end(`got ${got.length}`));
      })
      .listen(82);
    const n = fromA.length;
    const big = 'x'.repeat(5000);
    const sock = p.a.tcp.connect({ port: 82, host: '10.0.0.2', fastOpen: true });
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString()));
    sock.end(big);
    await runFor(p.time, 2000, { until: () => answer !== '' });
    expect(answer).toBe('got 5000');
    expect(got).toBe(big);
    const syn = fromA.slice(n).filter(SYN)[0];
    expect(syn.len).toBe(1420);
    expect(p.a.mib.TcpExtTCPFastOpenActive).toBe(1);
    expect(p.a.mib.TcpRetransSegs).toBe(0);
  });

  it('a lost SYN with data is resent without data or option; the data follows the handshake (TCPFastOpenActiveFail)', async () => {
    let synsWithData = 0;
    const { p, fromA } = setup({ dropFromA: (s) => SYN(s) && s.len > 0 && ++synsWithData === 1 });
    await request(p, 'one');
    const n = fromA.length;
    const r = await request(p, 'lost');
    expect(r.answer).toBe('re:lost');
    const syns = fromA.slice(n).filter(SYN);
    expect(syns.length).toBe(2);
    expect(syns[0].data.toString()).toBe('lost');
    expect(syns[1].len).toBe(0);
    expect(syns[1].fastOpen).toBeNull();
    // After the handshake, the data goes again as a retransmission.
    const after = fromA.slice(n).filter((s) => !(s.flags & TCP_SYN) && s.len > 0);
    expect(after[0].data.toString()).toBe('lost');
    expect(after[0].seq).toBe((syns[0].seq + 1) >>> 0);
    expect(p.a.mib.TcpExtTCPFastOpenActiveFail).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActive).toBe(0);
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(0);
  });

  it('a refused cookie (the key changed): the SYN-ACK acknowledges only the SYN and brings a new cookie; the data is resent; the new cookie works', async () => {
    const { p, fromB, requests } = setup();
    await request(p, 'one');
    const old = p.a.tcp.fastOpen.cached(ip('10.0.0.2'));
    p.b.sysctl.set('net.ipv4.tcp_fastopen_key', '11111111-22222222-33333333-44444444');
    const n = fromB.length;
    const r = await request(p, 'refused');
    expect(r.answer).toBe('re:refused');
    const sa = fromB.slice(n).filter(SYNACK)[0];
    const fresh = p.b.tcp.fastOpen.cookie(ip('10.0.0.1'), ip('10.0.0.2'));
    expect(sa.fastOpen).toEqual(fresh);
    expect(fresh).not.toEqual(old);
    expect(p.b.mib.TcpExtTCPFastOpenPassiveFail).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActiveFail).toBe(1);
    expect(p.a.tcp.fastOpen.cached(ip('10.0.0.2'))).toEqual(fresh);
    // The request reached the server only after the handshake.
    expect(requests[1].text).toBe('refused');
    expect([TcpState.ESTABLISHED, TcpState.CLOSE_WAIT]).toContain(requests[1].state);
    const r3 = await request(p, 'again');
    expect(r3.answer).toBe('re:again');
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
  });

  it('a cookie of the backup key is taken (TCPFastOpenPassiveAltKey) and the SYN-ACK hands out the primary one', async () => {
    const { p, fromB } = setup();
    await request(p, 'one');
    const NEW = 'aaaaaaaa-bbbbbbbb-cccccccc-dddddddd';
    p.b.sysctl.set('net.ipv4.tcp_fastopen_key', `${NEW},${KEY}`);
    expect(p.b.sysctl.text('net.ipv4.tcp_fastopen_key')).toBe(`${NEW},${KEY}`);
    const n = fromB.length;
    const r = await request(p, 'alt');
    expect(r.answer).toBe('re:alt');
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
    expect(p.b.mib.TcpExtTCPFastOpenPassiveAltKey).toBe(1);
    const primary = p.b.tcp.fastOpen.cookie(ip('10.0.0.1'), ip('10.0.0.2'), 0);
    expect(fromB.slice(n).filter(SYNACK)[0].fastOpen).toEqual(primary);
    expect(p.a.tcp.fastOpen.cached(ip('10.0.0.2'))).toEqual(primary);
  });

  it('the Fast Open queue (qlen 1): a second pending Fast Open connection is refused (TCPFastOpenListenOverflow) and goes the normal way', async () => {
    // The first Fast Open connection never finishes its handshake: its ACKs are lost.
    let hold = -1;
    const { p } = setup({ qlen: 1, dropFromA: (s) => s.sport === hold && !(s.flags & TCP_SYN) });
    await request(p, 'one');
    const first = p.a.tcp.connect({ port: 80, host: '10.0.0.2', fastOpen: true });
    first.on('error', () => {});
    first.write('held');
    await runFor(p.time, 1);
    hold = first.localPort!;
    await runFor(p.time, 3 * RTT);
    const r = await request(p, 'second');
    expect(r.answer).toBe('re:second');
    expect(p.b.mib.TcpExtTCPFastOpenListenOverflow).toBe(1);
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActiveFail).toBe(1);
    first.destroy();
  });

  it('tcp_fastopen 0x4 and 0x200: data in the SYN without any option', async () => {
    const { p, fromA, fromB } = setup({ serverBits: String(0x202) });
    p.a.sysctl.set('net.ipv4.tcp_fastopen', String(0x5));
    const r = await request(p, 'bare');
    expect(r.answer).toBe('re:bare');
    const syn = fromA.filter(SYN)[0];
    expect(syn.fastOpen).toBeNull();
    expect(syn.data.toString()).toBe('bare');
    expect(fromB.filter(SYNACK)[0].fastOpen).toBeNull();
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenActive).toBe(1);
  });

  it('a server without Fast Open: the cookie request goes unanswered, so the next one uses the experimental option (254, 0xF989)', async () => {
    const { p, fromA } = setup({ serverBits: '1' });
    await request(p, 'one');
    await request(p, 'two');
    const syns = fromA.filter(SYN);
    expect(syns[0].fastOpen).toEqual(new Uint8Array(0));
    expect(syns[0].fastOpenExp).toBe(false);
    expect(syns[1].fastOpen).toEqual(new Uint8Array(0));
    expect(syns[1].fastOpenExp).toBe(true);
    expect(p.b.mib.TcpExtTCPFastOpenCookieReqd).toBe(2);
  });

  it('timeouts on a Fast Open connection pause active Fast Open for tcp_fastopen_blackhole_timeout_sec (TCPFastOpenBlackhole)', async () => {
    let blackhole = false;
    const { p, fromA } = setup({ dropFromA: (s) => blackhole && !(s.flags & TCP_SYN) && s.len > 0 });
    p.a.sysctl.set('net.ipv4.tcp_fastopen_blackhole_timeout_sec', '60');
    await request(p, 'one');
    // A Fast Open connection whose later data vanishes: its third timeout is the sign.
    p.b.tcp.createServer({ fastOpen: 16 }, (x: TcpSocket) => x.on('data', () => {})).listen(81);
    const sock = p.a.tcp.connect({ port: 81, host: '10.0.0.2', fastOpen: true });
    sock.on('error', () => {});
    sock.on('data', () => {});
    sock.write('two');
    await runFor(p.time, 3 * RTT);
    expect(p.a.mib.TcpExtTCPFastOpenActive).toBe(1);
    blackhole = true;
    sock.write('more');
    await runFor(p.time, 2000);
    blackhole = false;
    expect(p.a.mib.TcpExtTCPFastOpenActiveFail).toBe(1);
    expect(p.a.mib.TcpExtTCPFastOpenBlackhole).toBe(1);
    sock.destroy();
    // Paused: a plain SYN, no option, no data.
    let n = fromA.length;
    expect((await request(p, 'three')).answer).toBe('re:three');
    let syn = fromA.slice(n).filter(SYN)[0];
    expect(syn.fastOpen).toBeNull();
    expect(syn.len).toBe(0);
    // After the timeout, the cookie is used again.
    await runFor(p.time, 60_000, { stepMs: 1000 });
    n = fromA.length;
    expect((await request(p, 'four')).answer).toBe('re:four');
    syn = fromA.slice(n).filter(SYN)[0];
    expect(syn.data.toString()).toBe('four');
  });

  it('a Fast Open socket destroyed before its SYN leaves lets its port go', async () => {
    const { p, fromA } = setup();
    await request(p, 'one');
    const n = p.a.tcp.connections.size;
    const sock = p.a.tcp.connect({ port: 80, host: '10.0.0.2', fastOpen: true });
    sock.destroy();
    const syns = fromA.filter(SYN).length;
    await runFor(p.time, 100);
    expect(p.a.tcp.connections.size).toBe(n);
    expect(fromA.filter(SYN).length).toBe(syns);
  });

  it('without the client bit, fastOpen is a plain connect', async () => {
    const { p, fromA } = setup();
    p.a.sysctl.set('net.ipv4.tcp_fastopen', '0');
    await request(p, 'one');
    expect(fromA.filter(SYN)[0].fastOpen).toBeNull();
  });

  it("the daemon's echo service with `fastopen 16` echoes what came in the SYN", async () => {
    const p = simPair({ impair: { delayMs: RTT / 2 } });
    configure(p.b, ['sysctl -w net.ipv4.tcp_fastopen=3', 'service add echo tcp :7 fastopen 16']);
    expect(p.b.services.list().map((x) => x.fastOpen)).toEqual([16]);
    const fromA = tap(p.da);
    const echo = async (text: string): Promise<string> => {
      const sock = p.a.tcp.connect({ port: 7, host: '10.0.0.2', fastOpen: true });
      let got = '';
      sock.on('data', (d: Buffer) => (got += d.toString()));
      sock.write(text);
      await runFor(p.time, 1000, { until: () => got === text });
      sock.destroy();
      return got;
    };
    expect(await echo('hello')).toBe('hello');
    expect(await echo('again')).toBe('again');
    const syns = fromA.filter(SYN);
    expect(syns[1].data.toString()).toBe('again');
    expect(p.b.mib.TcpExtTCPFastOpenPassive).toBe(1);
    expect(() => configure(p.b, ['service add echo udp :8 fastopen 3'])).toThrow(/fastopen/);
    expect(() => configure(p.b, ['service add discard tcp :9 fastopen x'])).toThrow(/Fast Open queue length/);
  });
});
