/**
 * `service add iperf3 tcp [ADDR]:PORT`: an iperf3 server inside the stack
 * (iperf_server_api.c). It runs one test at a time: while a test holds it,
 * a new connection is a data stream of that test if it brings the test's
 * cookie, and anything else is told ACCESS_DENIED and closed.
 */
import type { Tcp } from '../../tcp/tcp.js';
import type { TcpConnection } from '../../tcp/connection.js';
import { TcpListener, type ListenUser } from '../../tcp/listen.js';
import type { Logger } from '../../log.js';
import type { Errno } from '../../errors.js';
import { formatIp4 } from '../../wire/addr.js';
import { ServiceError, type RunningService } from '../service.js';
import { ServerTest, type TestHost } from './server-test.js';
import { deny } from './control.js';

const STRERROR: Partial<Record<Errno, string>> = {
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
};

export class Iperf3Service implements RunningService, ListenUser, TestHost {
  private readonly listener: TcpListener;
  private test: ServerTest | null = null;
  /** Tests run so far (iperf's "test #N"). */
  testsRun = 0;

  constructor(
    readonly tcp: Tcp,
    addr: number,
    readonly port: number,
    label: string,
    readonly log: Logger,
    fastOpen = 0,
  ) {
    this.listener = new TcpListener(tcp, addr, port, 511, this);
    if (fastOpen > 0) this.listener.enableFastOpen(fastOpen);
    const err = tcp.addListener(this.listener);
    if (err !== null) throw new ServiceError(`${label}: ${STRERROR[err] ?? err}`, err);
  }

  /** The test under way, if any (tests look at it). */
  get current(): ServerTest | null {
    return this.test;
  }

  incoming(c: TcpConnection): boolean {
    const t = this.test;
    if (t === null) {
      this.testsRun++;
      this.log.info({ peer: formatIp4(c.remoteAddr), port: c.remotePort, test: this.testsRun }, 'iperf3: accepted connection');
      this.test = new ServerTest(this, c);
    } else if (t.acceptingStreams) t.addStream(c);
    else deny(this.tcp, c);
    return true;
  }

  /** The test is over; the server takes the next client. */
  testEnded(t: ServerTest, why: string | null): void {
    if (this.test !== t) return;
    this.test = null;
    if (why !== null) this.log.info({ test: this.testsRun, why }, 'iperf3: test ended early');
  }

  close(): void {
    this.listener.close();
    this.test?.end('the server is stopping', true);
    this.test = null;
  }
}
