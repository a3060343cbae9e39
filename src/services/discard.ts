import type { Udp, UdpEndpoint, UdpReceiver } from '../udp/udp.js';
import type { RunningService } from './service.js';
import { bindOrThrow } from './service.js';

/** RFC 863 over UDP: every datagram is received and thrown away; nothing is sent. */
export class UdpDiscardService implements RunningService, UdpReceiver {
  private readonly ep: UdpEndpoint;

  constructor(
    private readonly udp: Udp,
    addr: number,
    port: number,
    label: string,
  ) {
    this.ep = udp.open(this);
    bindOrThrow(udp, this.ep, addr, port, label);
  }

  datagram(): boolean {
    return true;
  }

  icmpError(): void {
    /* nothing is sent, so nothing to hear about */
  }

  close(): void {
    this.udp.close(this.ep);
  }
}
