import net from 'node:net';
import { INPUT_CHUNK, INPUT_WINDOW, type ControlInput, type ControlMessage, type ControlRequest } from './protocol.js';

export class ControlClientError extends Error {}

export interface RemoteOptions {
  /** Sent along to the command as its standard input (nc), paced by the server's acks. */
  stdin?: NodeJS.ReadableStream;
  /** Where binary output goes (default process.stdout); the socket waits while it is full. */
  stdout?: NodeJS.WritableStream;
  /** The terminal width, when stdout is a terminal. */
  columns?: number;
  /** ^C is passed on to the command (which ends with its own summary); a second ^C quits at once. */
  interruptible?: boolean;
}

/**
 * Runs one command on the daemon at `path`, passing its output on as it comes.
 * Resolves to the command's exit code.
 */
export function runRemote(
  path: string,
  argv: string[],
  onOut: (s: string) => void = (s) => process.stdout.write(s),
  onErr: (s: string) => void = (s) => process.stderr.write(s),
  opts: RemoteOptions = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    const stdout = opts.stdout ?? process.stdout;
    const stdin = opts.stdin;
    let buf = '';
    let code: number | null = null;
    // Input read from stdin and not sent yet; input sent and not yet acknowledged.
    const pendingIn: Buffer[] = [];
    let inFlight = 0;
    let socketFull = false;
    let endPending = false;
    let inputDone = false;
    const sendIn = (m: ControlInput): void => {
      if (!c.write(JSON.stringify(m) + '\n')) socketFull = true;
    };
    /** Sends what the credit allows, and reads stdin only while nothing waits. */
    const flushIn = (): void => {
      if (stdin === undefined || inputDone) return;
      while (pendingIn.length > 0 && inFlight < INPUT_WINDOW && !socketFull) {
        const b = pendingIn[0];
        const part = b.subarray(0, INPUT_CHUNK);
        if (part.length === b.length) pendingIn.shift();
        else pendingIn[0] = b.subarray(INPUT_CHUNK);
        inFlight += part.length;
        sendIn({ type: 'in', data: part.toString('base64') });
      }
      if (pendingIn.length === 0 && endPending) {
        inputDone = true;
        sendIn({ type: 'in-end' });
        return;
      }
      if (pendingIn.length > 0 || inFlight >= INPUT_WINDOW || socketFull) stdin.pause();
      else stdin.resume();
    };
    const onStdinData = (chunk: Buffer | string): void => {
      pendingIn.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      flushIn();
    };
    const onStdinEnd = (): void => {
      endPending = true;
      flushIn();
    };
    const stopInput = (): void => {
      if (stdin === undefined) return;
      inputDone = true;
      pendingIn.length = 0;
      stdin.removeListener('data', onStdinData);
      stdin.removeListener('end', onStdinEnd);
      stdin.pause();
      const d = stdin as NodeJS.ReadableStream & { destroy?: () => void };
      d.destroy?.();
    };
    let onSigint: (() => void) | null = null;
    let interrupted = false;
    if (opts.interruptible) {
      onSigint = () => {
        if (interrupted || code !== null) process.exit(130);
        interrupted = true;
        c.write(JSON.stringify({ type: 'interrupt' } satisfies ControlInput) + '\n');
      };
      process.on('SIGINT', onSigint);
    }
    c.setEncoding('utf8');
    c.once('connect', () => {
      const req: ControlRequest = { argv };
      if (opts.columns !== undefined) req.columns = opts.columns;
      c.write(JSON.stringify(req) + '\n');
      if (stdin !== undefined) {
        stdin.on('data', onStdinData);
        stdin.once('end', onStdinEnd);
        stdin.once('error', onStdinEnd);
        stdin.resume();
      }
    });
    c.on('drain', () => {
      socketFull = false;
      flushIn();
    });
    let waitingForStdout = false;
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as ControlMessage;
        if (m.type === 'out') onOut(m.data);
        else if (m.type === 'err') onErr(m.data);
        else if (m.type === 'data') {
          if (!stdout.write(Buffer.from(m.data, 'base64')) && !waitingForStdout) {
            // Our reader is behind: stop reading the socket, so the daemon stops too (the
            // rest of this chunk's lines are already here and still go to stdout's buffer).
            waitingForStdout = true;
            c.pause();
            stdout.once('drain', () => {
              waitingForStdout = false;
              c.resume();
            });
          }
        } else if (m.type === 'ack') {
          inFlight -= m.bytes;
          flushIn();
        } else {
          code = m.code;
          stopInput();
        }
      }
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      stopInput();
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
        reject(new ControlClientError(`no tapstack daemon is listening on ${path} (${e.code}); start one with "tapstack daemon -c FILE"`));
      else if (e.code === 'EACCES') reject(new ControlClientError(`permission denied on ${path}: run as root`));
      else reject(new ControlClientError(`control socket ${path}: ${e.message}`));
    });
    c.on('close', () => {
      if (onSigint !== null) process.removeListener('SIGINT', onSigint);
      stopInput();
      // A command that does not take interrupts ends with the connection, as a process ends on SIGINT.
      if (code === null && interrupted) resolve(130);
      else if (code === null) reject(new ControlClientError('the daemon closed the connection without an answer'));
      else resolve(code);
    });
  });
}
