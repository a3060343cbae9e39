/**
 * The iperf3 control connection, worked on the TcpConnection directly: what
 * arrives collects in a ControlReader until the owner's state machine takes
 * it; what the owner sends goes out with TCP_NODELAY, as iperf3 sets it on
 * its control socket (iperf_server_api.c iperf_accept, iperf_client_api.c
 * iperf_connect).
 */
import type { Tcp } from '../../tcp/tcp.js';
import type { TcpConnection, TcpUser } from '../../tcp/connection.js';
import { TcpState } from '../../tcp/state.js';
import type { Errno } from '../../errors.js';
import { ACCESS_DENIED, ControlReader, stateByte } from './protocol.js';

export interface ControlOwner {
  controlConnected(): void;
  /** New bytes wait in the reader. */
  controlInput(): void;
  /** The peer closed its side (EOF). */
  controlEof(): void;
  /** The connection is gone: null when it ended cleanly, else why. */
  controlClosed(err: Errno | null): void;
}

export class ControlChannel implements TcpUser {
  readonly reader = new ControlReader();
  private open = true;

  constructor(
    private readonly tcp: Tcp,
    readonly conn: TcpConnection,
    private readonly owner: ControlOwner,
  ) {
    conn.user = this;
    conn.noDelay = true;
  }

  onConnected(): void {
    this.owner.controlConnected();
  }

  onData(data: Uint8Array): void {
    this.reader.push(data);
    this.owner.controlInput();
    if (this.open) this.conn.consumed();
  }

  onEof(): void {
    this.owner.controlEof();
  }

  onRoom(): void {}

  onClosed(err: Errno | null): void {
    this.open = false;
    this.owner.controlClosed(err);
  }

  /** Bytes read but not yet taken hold receive-window space. */
  rcvQueued(): number {
    return this.reader.available;
  }

  send(bytes: Uint8Array): void {
    const st = this.conn.state;
    if (!this.open || (st !== TcpState.ESTABLISHED && st !== TcpState.CLOSE_WAIT)) return;
    this.conn.write(bytes);
    this.tcp.defer(this.conn);
  }

  /** close(2): FIN after what is queued; the connection lives on without us. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.tcp.batched(() => this.conn.close(false));
  }

  /** Ends the connection with a RST (a peer that went silent holds nothing of ours). */
  abort(): void {
    if (!this.open) return;
    this.open = false;
    const c = this.conn;
    c.user = null;
    c.orphan = true;
    this.tcp.batched(() => c.abort());
  }
}

/**
 * iperf_accept with a test under way: "Don't try to read from the socket.
 * It could block an ongoing test. Just send ACCESS_DENIED." (and close).
 */
export function deny(tcp: Tcp, c: TcpConnection): void {
  c.user = null;
  tcp.batched(() => {
    if (c.state === TcpState.ESTABLISHED || c.state === TcpState.CLOSE_WAIT) c.write(stateByte(ACCESS_DENIED));
    c.close(false);
  });
}
