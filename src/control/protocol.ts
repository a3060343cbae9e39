/**
 * The control socket speaks JSON lines. The client sends one request
 * `{"argv": [...]}`; the server answers with any number of `out`/`err` messages
 * (a long-running command streams) and ends with one `exit` message.
 */
export interface ControlRequest {
  argv: string[];
}

export type ControlMessage = { type: 'out'; data: string } | { type: 'err'; data: string } | { type: 'exit'; code: number };

export const DEFAULT_CTL_PATH = '/run/tapstack.sock';

/** What a command handler may write while it runs. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
  /** True once the client has gone (e.g. ^C on a streaming command). */
  readonly closed: boolean;
}
