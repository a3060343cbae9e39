import type { Udp, UdpEndpoint } from '../udp/udp.js';
import type { Errno } from '../errors.js';

/** A built-in service that is running. */
export interface RunningService {
  close(): void;
}

export class ServiceError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const STRERROR: Partial<Record<Errno, string>> = {
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EINVAL: 'Invalid argument',
};

export function bindOrThrow(udp: Udp, ep: UdpEndpoint, addr: number, port: number, label: string): void {
  const err = udp.bind(ep, addr, port);
  if (err !== null) throw new ServiceError(`${label}: ${STRERROR[err] ?? err}`, err);
}

/**
 * Ports of services that answer whatever arrives (echo, daytime, quote of the
 * day, chargen, time). CERT CA-1996-01: two of them answering each other loop
 * forever, so a datagram from one of these ports, or from port 0, which can't
 * be answered, gets no reply.
 */
const LOOP_PORTS = new Set([0, 7, 13, 17, 19, 37]);

export function isLoopPort(port: number): boolean {
  return LOOP_PORTS.has(port);
}
