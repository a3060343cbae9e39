import net from 'node:net';
import fs from 'node:fs';
import { INPUT_WINDOW, type CommandStream, type ControlInput, type ControlMessage, type ControlRequest } from './protocol.js';
import type { Logger } from '../log.js';

export type CommandHandler = (argv: string[], io: CommandStream) => Promise<number> | number;

/** Largest request accepted; a command line is never near this. */
const MAX_REQUEST = 64 * 1024;
/** Largest input line (a base64 chunk and its envelope). */
const MAX_INPUT_LINE = 1024 * 1024;

export class ControlServerError extends Error {}

/**
 * The daemon's control socket. Refuses to start when another daemon answers on
 * the same path; removes a stale socket file left by one that died.
 */
export class ControlServer {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();

  constructor(
    readonly path: string,
    private readonly handler: CommandHandler,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    if (await isAlive(this.path)) {
      throw new ControlServerError(`another tapstack daemon is already running on ${this.path}`);
    }
    try {
      fs.unlinkSync(this.path);
    } catch {
      /* no stale socket */
    }
    const server = net.createServer((c) => this.serve(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new ControlServerError(`cannot listen on ${this.path}: ${e.code ?? e.message}`)),
      );
      server.listen(this.path, () => resolve());
    });
    fs.chmodSync(this.path, 0o600);
    this.server = server;
  }

  private serve(c: net.Socket): void {
    this.conns.add(c);
    c.on('close', () => this.conns.delete(c));
    let buf = '';
    let started = false;
    let closed = false;
    let columns: number | undefined;
    // Input that came before the command asked for it, and where it goes once it does.
    const early: ControlInput[] = [];
    let onIn: ((chunk: Buffer) => void) | null = null;
    let onInEnd: (() => void) | null = null;
    let unacked = 0;
    const drainCbs: (() => void)[] = [];
    const closeCbs: (() => void)[] = [];
    const interruptCbs: (() => void)[] = [];
    c.setEncoding('utf8');
    const gone = (): void => {
      if (closed) return;
      closed = true;
      for (const cb of closeCbs.splice(0)) cb();
    };
    c.on('error', gone);
    c.on('close', gone);
    c.on('drain', () => {
      for (const cb of drainCbs.splice(0)) cb();
    });
    const send = (m: ControlMessage): boolean => {
      if (closed) return true;
      return c.write(JSON.stringify(m) + '\n');
    };
    const input = (m: ControlInput): void => {
      if (onIn === null || onInEnd === null) {
        early.push(m);
        return;
      }
      if (m.type === 'in') onIn(Buffer.from(m.data, 'base64'));
      else onInEnd();
    };
    const inputLine = (line: string): void => {
      let m: ControlInput;
      try {
        m = JSON.parse(line) as ControlInput;
      } catch {
        c.destroy();
        return;
      }
      if (m.type === 'in' && typeof m.data === 'string') {
        // A client that ignores its credit is cut off rather than buffered without bound.
        unacked += Math.floor((m.data.length * 3) / 4);
        if (unacked > 2 * INPUT_WINDOW) {
          this.log.warn('control client sent input beyond its window; closing');
          c.destroy();
          return;
        }
        input(m);
      } else if (m.type === 'in-end') input(m);
      else if (m.type === 'interrupt') {
        if (interruptCbs.length === 0) c.destroy();
        else for (const cb of interruptCbs.splice(0)) cb();
      }
    };
    c.on('data', (chunk: string) => {
      buf += chunk;
      if (!started) {
        if (buf.length > MAX_REQUEST && buf.indexOf('\n') < 0) {
          send({ type: 'err', data: 'request too large' });
          send({ type: 'exit', code: 2 });
          c.end();
          started = true;
          buf = '';
          return;
        }
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        started = true;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: ControlRequest;
        try {
          req = JSON.parse(line) as ControlRequest;
          if (!Array.isArray(req.argv) || !req.argv.every((a) => typeof a === 'string')) throw new Error('argv');
        } catch {
          send({ type: 'err', data: 'malformed request: expected {"argv": [strings]}' });
          send({ type: 'exit', code: 2 });
          c.end();
          return;
        }
        if (typeof req.columns === 'number' && Number.isInteger(req.columns) && req.columns > 0) columns = req.columns;
        this.run(req.argv, {
          out: (t) => void send({ type: 'out', data: t }),
          err: (t) => void send({ type: 'err', data: t }),
          get closed() {
            return closed;
          },
          columns,
          write: (d) => send({ type: 'data', data: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64') }),
          onDrain: (cb) => {
            if (closed || !c.writableNeedDrain) queueMicrotask(cb);
            else drainCbs.push(cb);
          },
          onInput: (d, e) => {
            onIn = d;
            onInEnd = e;
            for (const m of early.splice(0)) input(m);
          },
          ack: (bytes) => {
            unacked = Math.max(0, unacked - bytes);
            send({ type: 'ack', bytes });
          },
          onClose: (cb) => {
            if (closed) queueMicrotask(cb);
            else closeCbs.push(cb);
          },
          onInterrupt: (cb) => {
            interruptCbs.push(cb);
          },
        }, send, c);
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        inputLine(line);
      }
      if (buf.length > MAX_INPUT_LINE) c.destroy();
    });
  }

  private run(argv: string[], io: CommandStream, send: (m: ControlMessage) => boolean, c: net.Socket): void {
    Promise.resolve()
      .then(() => this.handler(argv, io))
      .catch((e: unknown) => {
        this.log.error({ err: (e as Error).message, argv }, 'control command failed');
        io.err(`internal error: ${(e as Error).message}\n`);
        return 1;
      })
      .then((code) => {
        send({ type: 'exit', code });
        c.end();
      });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    // Commands still running (ping, nc) end with the daemon.
    for (const c of this.conns) c.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
    try {
      fs.unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

/** True when something accepts connections on the socket at `path`. */
function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
