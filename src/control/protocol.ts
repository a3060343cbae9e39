/**
 * The control socket speaks JSON lines. The client sends one request
 * `{"argv": [...]}`; the server answers with any number of `out`/`err`
 * messages (a long-running command streams) and ends with one `exit` message.
 *
 * A command that reads the client's standard input (nc) gets it as `in`
 * messages after the request, ending with one `in-end`; its binary output
 * comes back as `data` messages. Both carry bytes in base64. Input is paced by
 * credit: the client keeps at most INPUT_WINDOW bytes sent and not yet
 * acknowledged, and the server sends an `ack` for the bytes a command has
 * taken. Output is paced by the socket itself: a client that can't write its
 * stdout stops reading, and the command waits for the socket to drain.
 */
export interface ControlRequest {
  argv: string[];
  /** The width of the client's terminal when its stdout is one (ss lays its columns out to it). */
  columns?: number;
}

export type ControlMessage =
  | { type: 'out'; data: string }
  | { type: 'err'; data: string }
  | { type: 'data'; data: string }
  | { type: 'ack'; bytes: number }
  | { type: 'exit'; code: number };

/** `interrupt`: the user pressed ^C on a command that ends on it (conntrack -E prints its summary). */
export type ControlInput = { type: 'in'; data: string } | { type: 'in-end' } | { type: 'interrupt' };

/** Input bytes the client may have in flight. */
export const INPUT_WINDOW = 256 * 1024;
/** Largest input message, in bytes before base64. */
export const INPUT_CHUNK = 64 * 1024;

export const DEFAULT_CTL_PATH = '/run/tapstack.sock';

/** What a command handler may write while it runs. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
  /** True once the client has gone (e.g. ^C on a streaming command). */
  readonly closed: boolean;
  /** The client's terminal width, when its stdout is a terminal. */
  readonly columns?: number;
}

/** What a command that streams bytes both ways (nc) has besides its text output. */
export interface CommandStream extends CommandOutput {
  /** Bytes for the client's stdout; false once the client is behind (then wait for onDrain). */
  write(data: Uint8Array): boolean;
  onDrain(cb: () => void): void;
  /** The client's stdin, chunk by chunk, then its end. */
  onInput(onData: (chunk: Buffer) => void, onEnd: () => void): void;
  /** The command has taken `bytes` of input: the client may send as much again. */
  ack(bytes: number): void;
  /** The client has gone. */
  onClose(cb: () => void): void;
  /** The user interrupted the command (^C); without a callback the connection is closed. */
  onInterrupt(cb: () => void): void;
}
