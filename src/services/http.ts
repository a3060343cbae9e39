/**
 * `service add http tcp [ADDR]:PORT`: a status page served by Node's http
 * module over the stack's own TCP.
 *
 *   /              HTML: interfaces and addresses, routes, neighbours, TCP
 *                  connections and counters, as the show commands print them
 *   /metrics       Prometheus text exposition (http-metrics.ts)
 *   /tcp           SVG charts of the live TCP connections' cwnd and throughput
 *                  over the last minute (sampled every 250 ms, tcp/trace.ts; the
 *                  32 busiest)
 *   /api/tcp/trace those samples as JSON, by connection
 *   /api/<command> the JSON (`-j`) of a show command, its words as the path:
 *                  /api/ip/addr, /api/ip/-s/link, /api/ip/route/get/10.0.0.1,
 *                  /api/nstat, /api/nstat/-z; 404 for anything else
 *
 * The show commands belong to the control layer, which hands the service a
 * function that runs one (and refuses anything that changes state).
 */
import http from 'node:http';
import type { Tcp } from '../tcp/tcp.js';
import { TcpServer } from '../tcp/server.js';
import type { TcpSocket } from '../tcp/socket.js';
import { SS_STATE_NAMES } from '../tcp/state.js';
import { formatIp4 } from '../wire/addr.js';
import { ServiceError, type RunningService } from './service.js';
import { StackMetrics, type ShowFn } from './http-metrics.js';
import { TcpTracer, TraceHistory } from '../tcp/trace.js';
import { TcpState } from '../tcp/state.js';
import type { TcpConnection } from '../tcp/connection.js';
import { tcpTraceChart } from './tcp-chart.js';

/** The /tcp page's sampling: every 250 ms, a minute kept. */
const TRACE_INTERVAL_MS = 250;
const TRACE_KEEP = 240;
const TRACE_CONNS = 32;

export type { ShowFn } from './http-metrics.js';

const STRERROR: Record<string, string> = {
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

/** Commands under /api/ that are not iproute2's: the rest get `ip` in front. */
const TOP_COMMANDS = new Set(['ip', 'nstat', 'ss']);

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

export class HttpStatusService implements RunningService {
  private readonly server: TcpServer;
  private readonly web: http.Server;
  private readonly metrics: StackMetrics;
  private readonly history = new TraceHistory(TRACE_KEEP);
  private readonly tracer: TcpTracer;

  constructor(
    private readonly tcp: Tcp,
    addr: number,
    port: number,
    label: string,
    private readonly show: ShowFn,
    fastOpen = 0,
  ) {
    // listen() reports its errors asynchronously, as Node's does; `service add` fails at once.
    const err = tcp.listenError(addr, port);
    if (err !== null) throw new ServiceError(`${label}: ${STRERROR[err] ?? err}`, err);
    this.metrics = new StackMetrics(show, tcp);
    this.web = http.createServer((req, res) => this.handle(req, res));
    this.server = new TcpServer(tcp, fastOpen > 0 ? { fastOpen } : {}, (s: TcpSocket) => this.web.emit('connection', s));
    this.server.on('error', () => {
      /* checked above */
    });
    this.server.listen(port, formatIp4(addr));
    const live = (c: { state: TcpState }): boolean => c.state !== TcpState.CLOSED && c.state !== TcpState.TIME_WAIT && c.state !== TcpState.LISTEN;
    // The busiest TRACE_CONNS live connections, by bytes moved.
    const select = (): TcpConnection[] => {
      this.history.prune(live);
      const list = [...tcp.connections].filter(live);
      if (list.length > TRACE_CONNS) list.sort((x, y) => y.bytesAcked + y.bytesReceived - (x.bytesAcked + x.bytesReceived)).length = TRACE_CONNS;
      return list;
    };
    this.tracer = new TcpTracer(tcp.time, select, TRACE_INTERVAL_MS, (c, smp) => this.history.add(c, smp));
    this.tracer.begin();
  }

  close(): void {
    this.tracer.stop();
    this.server.close();
    this.server.closeAllConnections();
    this.web.close();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // The request body, if any, is read and ignored.
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (path === '/' || path === '/index.html') this.send(res, 200, 'text/html; charset=utf-8', this.page());
      else if (path === '/metrics')
        this.metrics.text().then(
          (text) => this.send(res, 200, this.metrics.contentType, text),
          (e: Error) => this.send(res, 500, 'text/plain', `${e.message}\n`),
        );
      else if (path === '/tcp') this.send(res, 200, 'text/html; charset=utf-8', this.tcpPage());
      else if (path === '/api/tcp/trace') this.send(res, 200, 'application/json', JSON.stringify(this.traces()));
      else if (path.startsWith('/api/')) this.api(res, path.slice(5));
      else this.send(res, 404, 'text/plain', 'not found\n');
    } catch (e) {
      this.send(res, 500, 'text/plain', `${(e as Error).message}\n`);
    }
  }

  private send(res: http.ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  /** /api/ip/addr -> `ip -j addr`; 404 when it is not a show command with JSON output. */
  private api(res: http.ServerResponse, rest: string): void {
    let words: string[];
    try {
      words = rest.split('/').filter((w) => w !== '').map(decodeURIComponent);
    } catch {
      this.send(res, 400, 'application/json', JSON.stringify({ error: 'bad path' }));
      return;
    }
    if (words.length === 0 || !TOP_COMMANDS.has(words[0])) words.unshift('ip');
    const argv = [words[0], '-j', ...words.slice(1)];
    let out: string;
    try {
      out = this.show(argv);
      JSON.parse(out);
    } catch (e) {
      const msg = e instanceof SyntaxError ? 'no JSON output' : (e as Error).message;
      this.send(res, 404, 'application/json', JSON.stringify({ error: `${words.join(' ')}: ${msg}` }));
      return;
    }
    this.send(res, 200, 'application/json', out);
  }

  private section(title: string, argv: readonly string[], fallback?: () => string): string {
    let text: string;
    try {
      text = this.show(argv);
    } catch (e) {
      if (fallback === undefined) text = (e as Error).message;
      else {
        text = fallback();
        argv = [];
      }
    }
    const cmd = argv.length > 0 ? ` <small><code>${escapeHtml(argv.join(' '))}</code></small>` : '';
    return `<h2>${escapeHtml(title)}${cmd}</h2>\n<pre>${escapeHtml(text)}</pre>\n`;
  }

  /** TCP connections, for when there is no `ss` command to ask. */
  private connections(): string {
    const rows = [['State', 'Local Address:Port', 'Peer Address:Port']];
    for (const l of this.tcp.listenerList()) rows.push(['LISTEN', `${formatIp4(l.addr)}:${l.port}`, '0.0.0.0:*']);
    for (const c of this.tcp.connections)
      rows.push([SS_STATE_NAMES[c.state], `${formatIp4(c.localAddr)}:${c.localPort}`, `${formatIp4(c.remoteAddr)}:${c.remotePort}`]);
    return rows.map((r) => `${r[0].padEnd(11)} ${r[1].padEnd(22)} ${r[2]}`).join('\n');
  }

  private traces(): { local: string; peer: string; samples: unknown[] }[] {
    return [...this.history.byConn.values()].filter((a) => a.length > 0).map((a) => ({ local: a[0].local, peer: a[0].peer, samples: a }));
  }

  /** cwnd and throughput of each live connection over the last minute, as SVG charts. */
  private tcpPage(): string {
    const charts = this.traces().map((t) => tcpTraceChart(t.samples as Parameters<typeof tcpTraceChart>[0], `${t.local} ${t.peer}`, { width: 800, height: 300 }));
    return [
      '<!doctype html>\n<html><head><meta charset="utf-8"><title>tapstack: TCP</title><meta http-equiv="refresh" content="5">',
      '<style>body{font-family:sans-serif;margin:1em 2em}svg{display:block;margin:1em 0}</style>',
      '</head><body>\n<h1>TCP connections</h1>\n',
      `<p>cwnd and throughput, sampled every ${TRACE_INTERVAL_MS} ms; <a href="/api/tcp/trace">/api/tcp/trace</a> has the numbers.</p>\n`,
      charts.length > 0 ? charts.join('\n') : '<p>No live connections.</p>\n',
      '</body></html>\n',
    ].join('');
  }

  private page(): string {
    return [
      '<!doctype html>\n<html><head><meta charset="utf-8"><title>tapstack</title>',
      '<style>body{font-family:sans-serif;margin:1em 2em}pre{background:#f4f4f4;padding:.5em;overflow-x:auto}h2{font-size:1.1em;margin-top:1.5em}</style>',
      '</head><body>\n<h1>tapstack</h1>\n',
      '<p><a href="/tcp">/tcp</a> · <a href="/metrics">/metrics</a> · <a href="/api/ip/addr">/api/ip/addr</a> · <a href="/api/ip/route">/api/ip/route</a> · ',
      '<a href="/api/ip/neigh">/api/ip/neigh</a> · <a href="/api/nstat">/api/nstat</a></p>\n',
      this.section('Interfaces and addresses', ['ip', '-s', 'addr']),
      this.section('Routes', ['ip', 'route']),
      this.section('Neighbours', ['ip', 'neigh']),
      this.section('TCP connections', ['ss', '-tan'], () => this.connections()),
      this.section('Counters', ['nstat']),
      this.section('Services', ['service']),
      '</body></html>\n',
    ].join('');
  }
}
