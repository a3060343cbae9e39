import net from 'node:net';
import type { ControlMessage } from './protocol.js';

export class ControlClientError extends Error {}

/**
 * Runs one command on the daemon at `path`, passing its output on as it comes.
 * Resolves to the command's exit code.
 */
export function runRemote(
  path: string,
  argv: string[],
  onOut: (s: string) => void = (s) => process.stdout.write(s),
  onErr: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let buf = '';
    let code: number | null = null;
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify({ argv }) + '\n'));
    c.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as ControlMessage;
        if (m.type === 'out') onOut(m.data);
        else if (m.type === 'err') onErr(m.data);
        else code = m.code;
      }
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
        reject(new ControlClientError(`no tapstack daemon is listening on ${path} (${e.code}); start one with "tapstack daemon -c FILE"`));
      else if (e.code === 'EACCES') reject(new ControlClientError(`permission denied on ${path}: run as root`));
      else reject(new ControlClientError(`control socket ${path}: ${e.message}`));
    });
    c.on('close', () => {
      if (code === null) reject(new ControlClientError('the daemon closed the connection without an answer'));
      else resolve(code);
    });
  });
}
