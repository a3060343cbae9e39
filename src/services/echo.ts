import type { Udp, UdpEndpoint, UdpReceiver } from '../udp/udp.js';
import type { RunningService } from './service.js';
import { bindOrThrow, isLoopPort } from './service.js';

/** RFC 862 over UDP: each datagram is sent back to where it came from. */
export class UdpEchoService implements RunningService, UdpReceiver {
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

  datagram(data: Uint8Array, src: number, srcPort: number, dst: number): boolean {
    if (isLoopPort(srcPort)) return true;
    // A datagram to a broadcast or multicast address gets no answer: one request
    // must not draw a reply from every host on the subnet.
    if (!this.udp.isLocal(dst)) return true;
    // RFC 862: "the data from it is sent back in an answering datagram", from the
    // address the request was sent to, so a connected client accepts it.
    this.udp.send(this.ep, [data], src, srcPort, dst);
    return true;
  }

  icmpError(): void {
    /* unconnected: errors about answers have no one to go to */
  }

  close(): void {
    this.udp.close(this.ep);
  }
}
