/**
 * `nc`: netcat over the stack's TCP, shaped like OpenBSD's nc. The client's
 * stdin goes to the connection and the connection to its stdout; stdin's end
 * shuts down the sending side (FIN), and nc exits once the connection is over
 * both ways (or fails). `nc -l [ADDR] PORT` takes one connection, then stops
 * listening.
 */
import type { Stack } from '../stack.js';
import type { TcpSocket } from '../tcp/socket.js';
import type { CommandStream } from './protocol.js';
import { CommandError, Words } from './words.js';
import { formatIp4, parseIp4 } from '../wire/addr.js';
import { ServicesDb } from './etc-services.js';

export interface NcOptions {
  listen: boolean;
  /** Remote address (client) or local address to listen on (0: any). */
  addr: number;
  port: number;
  /** -s / -p: where a client connects from. */
  srcAddr?: number;
  srcPort?: number;
  verbose: boolean;
}

const STRERROR: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EPIPE: 'Broken pipe',
  EPROTO: 'Protocol error',
};

function strerror(e: Error): string {
  const code = (e as NodeJS.ErrnoException).code;
  return (code !== undefined ? STRERROR[code] : undefined) ?? e.message;
}

/** `nc [-v] [-n] [-N] [-4] [-s ADDR] [-p PORT] HOST PORT` and `nc -l [-v] [ADDR] PORT` (or `-l -p PORT`). */
export function parseNc(argv: readonly string[]): NcOptions {
  const w = new Words(argv);
  let listen = false;
  let verbose = false;
  let srcAddr: number | undefined;
  let srcPort: number | undefined;
  const pos: string[] = [];
  const portArg = (s: string): number => {
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw w.error('expected a port from 1 to 65535', s);
    return Number(s);
  };
  while (!w.done) {
    const x = w.next('an option, a host or a port');
    if (x.startsWith('-') && x.length > 1) {
      for (let i = 1; i < x.length; i++) {
        const ch = x[i];
        if (ch === 'l') listen = true;
        else if (ch === 'v') verbose = true;
        else if (ch === 'n' || ch === 'N' || ch === '4') continue; // no name lookups here; FIN on EOF always; IPv4 only
        else if (ch === 's' || ch === 'p') {
          const v = i + 1 < x.length ? x.slice(i + 1) : w.next(ch === 's' ? 'a source address' : 'a port');
          if (ch === 's') {
            const a = parseIp4(v);
            if (a === null) throw w.error('expected an IPv4 address', v);
            srcAddr = a;
          } else srcPort = portArg(v);
          break;
        } else if (ch === 'u') throw w.error('UDP is not supported by tapstack nc (TCP only)', x);
        else throw w.error(`unknown option -${ch} (expected -l, -v, -n, -N, -4, -s ADDR or -p PORT)`, x);
      }
    } else pos.push(x);
  }
  if (listen) {
    // nc -l [ADDR] PORT, or the traditional nc -l -p PORT [ADDR]
    let addr = srcAddr ?? 0;
    let port = srcPort;
    if (pos.length > 2) throw new CommandError('expected [ADDR] PORT after -l', null, pos[2]);
    if (pos.length === 2) {
      const a = parseIp4(pos[0]);
      if (a === null) throw new CommandError('expected an IPv4 address to listen on', null, pos[0]);
      addr = a;
      port = portArg(pos[1]);
    } else if (pos.length === 1) {
      if (port === undefined) port = portArg(pos[0]);
      else {
        const a = parseIp4(pos[0]);
        if (a === null) throw new CommandError('expected an IPv4 address to listen on', null, pos[0]);
        addr = a;
      }
    }
    if (port === undefined) throw new CommandError('expected a port to listen on');
    return { listen, addr, port, verbose };
  }
  if (pos.length !== 2) throw new CommandError('expected HOST PORT (or -l [ADDR] PORT)');
  const addr = parseIp4(pos[0]);
  if (addr === null) throw new CommandError(`getaddrinfo for host "${pos[0]}" port ${pos[1]}: Name or service not known (tapstack nc takes IPv4 addresses)`);
  return { listen, addr, port: portArg(pos[1]), srcAddr, srcPort, verbose };
}

/**
 * Runs nc until its connection is over. Input is acknowledged to the client
 * as the socket takes it, and the socket stops reading while the client's
 * output is behind, so neither direction piles up in the daemon.
 */
export function runNc(stack: Stack, o: NcOptions, io: CommandStream): Promise<number> {
  return new Promise((resolve) => {
    let sock: TcpSocket | null = null;
    let connected = false;
    let done = false;
    let code = 0;
    // Input that came before there was a connection; input the socket took above its mark.
    const early: Buffer[] = [];
    let inputEnded = false;
    let owed = 0;
    const finish = (c: number): void => {
      if (done) return;
      done = true;
      resolve(c);
    };
    const feed = (chunk: Buffer): void => {
      const s = sock;
      if (s === null || !connected) {
        early.push(chunk);
        return;
      }
      if (s.destroyed || s.writableEnded) {
        io.ack(chunk.length);
        return;
      }
      if (s.write(chunk)) io.ack(chunk.length);
      else owed += chunk.length;
    };
    /** The connection is up: pump both ways. */
    const start = (s: TcpSocket): void => {
      connected = true;
      for (const b of early.splice(0)) feed(b);
      if (inputEnded) s.end();
    };
    const attach = (s: TcpSocket): void => {
      sock = s;
      s.on('data', (b: Buffer) => {
        if (!io.write(b)) {
          s.pause();
          io.onDrain(() => s.resume());
        }
      });
      s.on('drain', () => {
        if (owed > 0) {
          io.ack(owed);
          owed = 0;
        }
      });
      s.on('error', (e: Error) => {
        code = 1;
        if (connected) io.err(`nc: ${strerror(e)}\n`);
        // OpenBSD nc names a failed connect only with -v.
        else if (o.verbose) io.err(`nc: connect to ${formatIp4(o.addr)} port ${o.port} (tcp) failed: ${strerror(e)}\n`);
      });
      s.on('close', () => finish(code));
    };
    io.onInput(feed, () => {
      inputEnded = true;
      if (sock !== null && connected) sock.end();
    });

    if (o.listen) {
      const server = stack.tcp.createServer({ allowHalfOpen: true });
      io.onClose(() => {
        if (sock !== null) sock.destroy();
        else server.close();
        finish(1);
      });
      server.once('error', (e: Error) => {
        io.err(`nc: ${strerror(e)}\n`);
        finish(1);
      });
      server.once('connection', (s: TcpSocket) => {
        // One connection: stop listening, as nc -l does.
        server.close();
        if (o.verbose) io.err(`Connection received on ${s.remoteAddress} ${s.remotePort}\n`);
        attach(s);
        start(s);
      });
      server.listen(o.port, formatIp4(o.addr), () => {
        if (o.verbose) io.err(`Listening on ${formatIp4(o.addr)} ${o.port}\n`);
      });
      return;
    }
    const s = stack.tcp.createConnection({
      host: formatIp4(o.addr),
      port: o.port,
      allowHalfOpen: true,
      localAddress: o.srcAddr !== undefined ? formatIp4(o.srcAddr) : undefined,
      localPort: o.srcPort,
    });
    io.onClose(() => {
      s.destroy();
      finish(1);
    });
    attach(s);
    s.once('connect', () => {
      if (o.verbose) {
        const name = ServicesDb.load().name(o.port, 'tcp') ?? '*';
        io.err(`Connection to ${formatIp4(o.addr)} ${o.port} port [tcp/${name}] succeeded!\n`);
      }
      start(s);
    });
  });
}
