import net from 'node:net';
import fs from 'node:fs';
import type { CommandOutput, ControlMessage, ControlRequest } from './protocol.js';
import type { Logger } from '../log.js';

export type CommandHandler = (argv: string[], out: CommandOutput) => Promise<number> | number;

/** Largest request accepted; a command line is never near this. */
const MAX_REQUEST = 64 * 1024;

export class ControlServerError extends Error {}

/**
 * The daemon's control socket. Refuses to start when another daemon answers on
 * the same path; removes a stale socket file left by one that died.
 */
export class ControlServer {
  private server: net.Server | null = null;

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
    let buf = '';
    let started = false;
    let closed = false;
    c.setEncoding('utf8');
    c.on('error', () => {
      closed = true;
    });
    c.on('close', () => {
      closed = true;
    });
    const send = (m: ControlMessage): void => {
      if (!closed) c.write(JSON.stringify(m) + '\n');
    };
    c.on('data', (chunk: string) => {
      if (started) return;
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        send({ type: 'err', data: 'request too large' });
        send({ type: 'exit', code: 2 });
        c.end();
        started = true;
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      started = true;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
        if (!Array.isArray(req.argv) || !req.argv.every((a) => typeof a === 'string')) throw new Error('argv');
      } catch {
        send({ type: 'err', data: 'malformed request: expected {"argv": [strings]}' });
        send({ type: 'exit', code: 2 });
        c.end();
        return;
      }
      const out: CommandOutput = {
        out: (t) => send({ type: 'out', data: t }),
        err: (t) => send({ type: 'err', data: t }),
        get closed() {
          return closed;
        },
      };
      Promise.resolve()
        .then(() => this.handler(req.argv, out))
        .catch((e: unknown) => {
          this.log.error({ err: (e as Error).message, argv: req.argv }, 'control command failed');
          out.err(`internal error: ${(e as Error).message}\n`);
          return 1;
        })
        .then((code) => {
          send({ type: 'exit', code });
          c.end();
        });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
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
