/**
 * Node's own http, https and tls modules over the stack's TCP sockets,
 * unchanged: the servers are fed the stack server's 'connection' events and the
 * clients get their sockets from `createConnection`.
 *
 * Two Stacks over the sim link in virtual time. Node's modules arm only a few
 * timers of their own (the http server's connection check every 30 s of real
 * time, nothing a test of a few hundred milliseconds meets); the timeouts they
 * set on sockets (keepAliveTimeout, headersTimeout's socket.setTimeout) run on
 * the stack's clock, so they follow virtual time like TCP's own timers. TLS
 * does its crypto synchronously. `drive` therefore advances virtual time a
 * millisecond at a time and lets Node's callbacks run between steps, until
 * the exchange is over.
 */
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, realTimePair, simPair, type SimPair } from '../helpers/sim.js';
import { tcpOf } from '../helpers/frames.js';
import { pattern, runFor, sha256 } from '../helpers/tcp-sim.js';
import type { TcpConnectOptions, TcpSocket } from '../../src/tcp/socket.js';
import type { TcpServer } from '../../src/tcp/server.js';
import { TcpState } from '../../src/tcp/state.js';
import type { Stack } from '../../src/stack.js';

const PORT = 8080;
const SERVER = '10.0.0.2';

/** Runs virtual time until `p` settles (or `ms` of virtual time pass). */
async function drive<T>(pair: SimPair, p: Promise<T>, ms = 60_000): Promise<T> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await runFor(pair.time, ms, { until: () => settled });
  if (!settled) throw new Error(`not done after ${ms} ms of virtual time`);
  return p;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reused: boolean;
  socket: Duplex;
}

function request(opts: http.RequestOptions, body: Buffer | null, mod: typeof http | typeof https = http): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = mod.request(opts, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), reused: req.reusedSocket, socket: req.socket! }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/** Answers with the method, the path, the body's length and its SHA-256; `/big` sends 1 MB back. */
function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    if (req.url === '/big') {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(pattern(1 << 20, 9));
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, length: body.length, sha: sha256(body), remote: req.socket.remoteAddress }));
  });
}

/** Feeds the stack server's connections to a Node server, counting them. */
function feed(tcpServer: TcpServer, nodeServer: http.Server | https.Server): { connections: number } {
  const count = { connections: 0 };
  tcpServer.on('connection', (s: TcpSocket) => {
    count.connections++;
    nodeServer.emit('connection', s);
  });
  return count;
}

describe('node:http over the stack', () => {
  let pair: SimPair;
  let count: { connections: number };
  let tcpServer: TcpServer;
  let httpServer: http.Server;

  beforeAll(() => {
    pair = simPair();
    httpServer = http.createServer(handler);
    tcpServer = pair.b.tcp.createServer();
    count = feed(tcpServer, httpServer);
    tcpServer.listen(PORT);
  });
  afterAll(() => {
    tcpServer.close();
    httpServer.close();
  });

  const connect = (): Duplex => pair.a.tcp.connect(PORT, SERVER);

  it('GET', async () => {
    const r = await drive(pair, request({ host: SERVER, port: PORT, path: '/hello?x=1', createConnection: connect }, null));
    expect(r.status).toBe(200);
    const j = JSON.parse(r.body.toString()) as Record<string, unknown>;
    expect(j).toMatchObject({ method: 'GET', url: '/hello?x=1', length: 0, remote: '10.0.0.1' });
  });

  it('POST of 1 MB, and 1 MB back', async () => {
    const body = pattern(1 << 20, 5);
    const r = await drive(
      pair,
      request({ host: SERVER, port: PORT, method: 'POST', path: '/upload', headers: { 'content-type': 'application/octet-stream' }, createConnection: connect }, body),
    );
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toMatchObject({ method: 'POST', length: 1 << 20, sha: sha256(body) });
    const big = await drive(pair, request({ host: SERVER, port: PORT, path: '/big', createConnection: connect }, null));
    expect(big.body.length).toBe(1 << 20);
    expect(sha256(big.body)).toBe(sha256(pattern(1 << 20, 9)));
  });

  it('keep-alive: several requests (GET and 1 MB POSTs) on one connection through an http.Agent', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // The Agent makes its sockets with createConnection: the stack's, here.
    agent.createConnection = (() => connect()) as typeof agent.createConnection;
    const before = count.connections;
    const sockets = new Set<Duplex>();
    const body = pattern(1 << 20, 6);
    for (let i = 0; i < 6; i++) {
      const post = i % 2 === 1;
      const r = await drive(
        pair,
        request({ host: SERVER, port: PORT, path: `/k${i}`, method: post ? 'POST' : 'GET', agent }, post ? body : null),
      );
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString())).toMatchObject({ url: `/k${i}`, length: post ? body.length : 0 });
      expect(r.headers.connection).toBe('keep-alive');
      expect(r.reused).toBe(i > 0);
      sockets.add(r.socket);
    }
    expect(sockets.size).toBe(1);
    expect(count.connections - before).toBe(1);
    agent.destroy();
    await runFor(pair.time, 100);
  });

  it('a request to a port nobody listens on fails with ECONNREFUSED', async () => {
    const r = request({ host: SERVER, port: 8081, path: '/', createConnection: () => pair.a.tcp.connect(8081, SERVER) }, null);
    await expect(drive(pair, r)).rejects.toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect', address: SERVER, port: 8081 });
  });

  it('the request timeout option fires on the stack clock while the SYN goes unanswered', async () => {
    const t0 = pair.time.now();
    const timedOut = new Promise<number>((resolve, reject) => {
      // Node hands createConnection its options, timeout included, as it would net.createConnection.
      const createConnection = (opts: http.ClientRequestArgs): Duplex => pair.a.tcp.connect(opts as TcpConnectOptions);
      const req = http.request({ host: '10.0.0.9', port: PORT, path: '/', timeout: 1500, createConnection });
      req.on('timeout', () => {
        resolve(pair.time.now() - t0);
        req.destroy();
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ECONNRESET') reject(e);
      });
      req.end();
    });
    const t = await drive(pair, timedOut);
    expect(t).toBeGreaterThanOrEqual(1500);
    expect(t).toBeLessThan(1600);
  });

  it('pipelined requests on one raw socket are answered in order', async () => {
    const s = connect();
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise<void>((r) => s.on('end', () => r()));
    s.write(`GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await drive(pair, ended);
    const text = Buffer.concat(got).toString();
    const urls = [...text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(['/p1', '/p2', '/p3']);
    expect(text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    s.destroy();
  });

  it('a client that gives up halfway through a 1 MB upload: the server request sees it, both stacks let go', async () => {
    const aborted = new Promise<string>((resolve) => {
      httpServer.once('request', (req: http.IncomingMessage) => {
        req.on('aborted', () => resolve('aborted'));
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
    });
    const req = http.request({ host: SERVER, port: PORT, method: 'POST', path: '/partial', headers: { 'content-length': String(1 << 20) }, createConnection: connect });
    req.on('error', () => {});
    req.write(pattern(300_000, 3));
    await runFor(pair.time, 50);
    req.destroy();
    expect(await drive(pair, aborted)).toMatch(/aborted|ECONNRESET/);
    await runFor(pair.time, 1000);
    // Whoever closed first waits in TIME-WAIT; nothing else is left.
    const live = (st: Stack, port: number): number => [...st.tcp.connections].filter((c) => (c.localPort === port || c.remotePort === port) && c.state !== TcpState.TIME_WAIT).length;
    expect(live(pair.a, PORT)).toBe(0);
    expect(live(pair.b, PORT)).toBe(0);
  });

  it('the server keepAliveTimeout closes an idle connection (a socket timeout on the stack clock)', async () => {
    httpServer.keepAliveTimeout = 2000;
    const s = connect();
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('data', () => {});
    s.write('GET /idle HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = pair.time.now();
    await drive(pair, closed, 10_000);
    const t = pair.time.now() - t0;
    // Node's server arms the socket with keepAliveTimeout plus a second of grace (Node 20.20: 3000 here).
    expect(t).toBeGreaterThanOrEqual(2000);
    expect(t).toBeLessThanOrEqual(3100);
  });
});

describe('node:https and node:tls over the stack', () => {
  let pair: SimPair;
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  let tcpServer: TcpServer;
  let httpsServer: https.Server;
  let count: { connections: number };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-tls-'));
    // A self-signed certificate; node:crypto makes keys but not certificates.
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=test', '-days', '1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
      { stdio: 'ignore' },
    );
    key = fs.readFileSync(path.join(dir, 'key.pem'));
    cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    pair = simPair();
    httpsServer = https.createServer({ key, cert }, handler);
    tcpServer = pair.b.tcp.createServer();
    count = feed(tcpServer, httpsServer);
    tcpServer.listen(443);
  });
  afterAll(() => {
    tcpServer?.close();
    httpsServer?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tlsConnect = (): tls.TLSSocket => tls.connect({ socket: pair.a.tcp.connect(443, SERVER), rejectUnauthorized: false, servername: 'test' });

  it('tls.connect over a stack socket: handshake, the certificate, and HTTP/1.1 by hand', async () => {
    const t = tlsConnect();
    const got: Buffer[] = [];
    const secure = new Promise<void>((r) => t.on('secureConnect', () => r()));
    await drive(pair, secure);
    expect(t.authorized).toBe(false); // self-signed
    expect(t.getPeerCertificate().subject.CN).toBe('test');
    expect(t.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    t.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise<void>((r) => t.on('end', () => r()));
    t.write('GET /tls HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n');
    await drive(pair, ended);
    const text = Buffer.concat(got).toString();
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain('"url":"/tls"');
    t.destroy();
  });

  it('a client that checks the certificate refuses the self-signed one', async () => {
    const t = tls.connect({ socket: pair.a.tcp.connect(443, SERVER), servername: 'test' });
    const failed = new Promise<NodeJS.ErrnoException>((resolve) => t.on('error', resolve));
    const closed = new Promise<void>((r) => t.on('close', () => r()));
    const err = await drive(pair, failed);
    expect(err.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    await drive(pair, closed);
  });

  it('https.request: GET and a 1 MB POST', async () => {
    const r = await drive(pair, request({ host: SERVER, port: 443, path: '/s', createConnection: tlsConnect }, null, https));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toMatchObject({ method: 'GET', url: '/s', length: 0 });
    const body = pattern(1 << 20, 7);
    const p = await drive(pair, request({ host: SERVER, port: 443, method: 'POST', path: '/up', createConnection: tlsConnect }, body, https));
    expect(JSON.parse(p.body.toString())).toMatchObject({ method: 'POST', length: 1 << 20, sha: sha256(body) });
    const big = await drive(pair, request({ host: SERVER, port: 443, path: '/big', createConnection: tlsConnect }, null, https));
    expect(sha256(big.body)).toBe(sha256(pattern(1 << 20, 9)));
  });

  it('https keep-alive: several requests on one TLS connection', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    agent.createConnection = (() => tlsConnect()) as typeof agent.createConnection;
    const before = count.connections;
    const body = pattern(200_000, 8);
    for (let i = 0; i < 5; i++) {
      const r = await drive(pair, request({ host: SERVER, port: 443, path: `/t${i}`, method: 'POST', agent }, body, https));
      expect(JSON.parse(r.body.toString())).toMatchObject({ url: `/t${i}`, sha: sha256(body) });
      expect(r.reused).toBe(i > 0);
    }
    expect(count.connections - before).toBe(1);
    agent.destroy();
    await runFor(pair.time, 100);
  });
});

interface ServerSeg {
  flags: number;
  len: number;
  ack: number;
  /** The client's port. */
  to: number;
}

/** The server's segments from `port`, in the order it sent them (Ethernet frames). */
function serverSegments(b: Stack, port: number): ServerSeg[] {
  const out: ServerSeg[] = [];
  b.capture = (_i, f) => {
    if (f[12] !== 8 || f[13] !== 0 || f[23] !== 6) return;
    const s = tcpOf(f);
    if (s.src !== ip(SERVER) || s.sport !== port) return;
    out.push({ flags: s.flags, ack: s.ack, len: s.len, to: s.dport });
  };
  return out;
}

describe('the ACK of a request, in real time', () => {
  let p: ReturnType<typeof realTimePair>;
  beforeAll(() => {
    p = realTimePair({ seed: 30 });
  });
  afterAll(() => {
    p.a.close();
    p.b.close();
  });

  /** A raw client's request with Connection: close; resolves with everything the server sent. */
  function ask(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = p.a.tcp.connect(port, SERVER);
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      s.on('end', () => {
        s.end();
        resolve(Buffer.concat(got).toString());
      });
      s.on('error', reject);
      s.write('GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
  }

  it('rides on a reply written at once: the server sends the SYN-ACK, the reply with the ACK and its FIN, and the last ACK', async () => {
    const web = http.createServer((_req, res) => res.end('hello'));
    const srv = p.b.tcp.createServer((s) => web.emit('connection', s)).listen(83);
    const segs = serverSegments(p.b, 83);
    const text = await ask(83);
    expect(text).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*hello$/);
    await new Promise((r) => setTimeout(r, 50));
    srv.close();
    const data = segs.findIndex((s) => s.len > 0);
    expect(data).toBe(1);
    expect(segs[0].flags).toBe(0x12);
    // No bare ACK went before the reply, and the reply acknowledges the whole request.
    expect(segs[data].flags & 0x11).toBe(0x11);
    expect(segs.length).toBe(3);
    expect(segs[2]).toMatchObject({ flags: 0x10, len: 0 });
    expect(p.b.mib.TcpExtDelayedACKs).toBe(0);
  });

  it('rides on the reply for every one of 30 connections at once, and each reply carries its FIN (ab -c 30 with Connection: close)', async () => {
    const web = http.createServer((req, res) => {
      req.on('data', () => {});
      req.on('end', () => res.end(`hello ${req.url}`));
    });
    const srv = p.b.tcp.createServer((s) => web.emit('connection', s)).listen(85);
    const segs = serverSegments(p.b, 85);
    const texts = await Promise.all(Array.from({ length: 30 }, () => ask(85)));
    for (const t of texts) expect(t).toMatch(/hello \/now$/);
    await new Promise((r) => setTimeout(r, 50));
    srv.close();
    const byClient = new Map<number, string[]>();
    for (const s of segs) {
      const l = byClient.get(s.to) ?? [];
      l.push(`${s.flags.toString(16)}${s.len > 0 ? '+data' : ''}`);
      byClient.set(s.to, l);
    }
    expect(byClient.size).toBe(30);
    // SYN-ACK; the reply with ACK, PSH and FIN; the ACK of the client's FIN.
    for (const l of byClient.values()) expect(l).toEqual(['12', '19+data', '10']);
  });

  it('goes by itself, not by the delayed-ACK timer, when the reply takes longer', async () => {
    const web = http.createServer((_req, res) => setTimeout(() => res.end('later'), 100));
    const srv = p.b.tcp.createServer((s) => web.emit('connection', s)).listen(84);
    const segs = serverSegments(p.b, 84);
    const acks0 = p.b.mib.TcpExtDelayedACKs;
    const text = await ask(84);
    expect(text).toMatch(/later$/);
    await new Promise((r) => setTimeout(r, 50));
    srv.close();
    // SYN-ACK, the bare ACK of the request, then the reply.
    expect(segs[0].flags).toBe(0x12);
    expect(segs[1]).toMatchObject({ flags: 0x10, len: 0 });
    expect(segs[2].len).toBeGreaterThan(0);
    expect(segs[2].ack).toBe(segs[1].ack);
    expect(p.b.mib.TcpExtDelayedACKs).toBe(acks0);
  });
});

describe('writes held for the end of the tick', () => {
  it("another connection's batch does not send them: a reply and the end() after it leave as one segment", async () => {
    const p = simPair();
    const accepted: TcpSocket[] = [];
    p.b.tcp.createServer((s) => accepted.push(s)).listen(86);
    const clients = [p.a.tcp.connect(86, SERVER), p.a.tcp.connect(86, SERVER)];
    for (const c of clients) c.resume();
    await runFor(p.time, 50, { until: () => accepted.length === 2 });
    const [x, y] = accepted;
    const ports = new Map(accepted.map((s) => [s.remotePort!, s]));
    const segs = serverSegments(p.b, 86);
    // y's reply is written outside a batch, so it waits for the microtask; y is also on the
    // deferred list (as a read that opens the window puts it there). x's end() runs a batch
    // of its own in between, and only then does y end.
    y.write('reply');
    const yc = [...p.b.tcp.connections].find((c) => c.remotePort === y.remotePort)!;
    p.b.tcp.defer(yc);
    x.end();
    y.end();
    await runFor(p.time, 50);
    const fromY = segs.filter((s) => ports.get(s.to) === y);
    expect(fromY[0]).toMatchObject({ len: 5 });
    expect(fromY[0].flags & 0x01).toBe(0x01);
    for (const c of clients) c.destroy();
  });
});
