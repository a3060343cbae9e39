import type { Udp } from '../udp/udp.js';
import type { Tcp } from '../tcp/tcp.js';
import { TcpService } from './tcp-basic.js';
import { formatIp4 } from '../wire/addr.js';
import { UdpDiscardService } from './discard.js';
import { UdpEchoService } from './echo.js';
import { ServiceError, type RunningService } from './service.js';
import { HttpStatusService, type ShowFn } from './http.js';
import { Iperf3Service } from './iperf3/server.js';
import { DEFAULT_PORT as IPERF3_PORT } from './iperf3/protocol.js';
import { silentLogger, type Logger } from '../log.js';

export { ServiceError } from './service.js';

export const SERVICE_NAMES = ['echo', 'discard', 'chargen', 'http', 'iperf3'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];
export const SERVICE_PROTOS = ['udp', 'tcp'] as const;
export type ServiceProto = (typeof SERVICE_PROTOS)[number];

/** Where a service listens when `service add` names no port. */
export const SERVICE_DEFAULT_PORTS: Partial<Record<ServiceName, number>> = { iperf3: IPERF3_PORT };

/** The transports each service is offered over. */
export function serviceProtos(name: ServiceName): readonly ServiceProto[] {
  return name === 'echo' || name === 'discard' ? SERVICE_PROTOS : ['tcp'];
}

/** `service add echo udp :7`: a service, its transport, and where it listens (addr 0: any). */
export interface ServiceSpec {
  name: ServiceName;
  proto: ServiceProto;
  addr: number;
  port: number;
  /** TCP Fast Open queue of the service's listener (`fastopen QLEN`); absent or 0: none. */
  fastOpen?: number;
}

export function formatService(s: ServiceSpec): string {
  return `${s.name} ${s.proto} ${formatIp4(s.addr)}:${s.port}${s.fastOpen ? ` fastopen ${s.fastOpen}` : ''}`;
}

/** The built-in services a Stack runs. */
export class Services {
  private readonly running: { spec: ServiceSpec; svc: RunningService }[] = [];

  constructor(
    private readonly udp: Udp,
    private readonly tcp: Tcp,
    private readonly log: Logger = silentLogger,
  ) {}

  /** `show` runs a show command: the http status page needs it (the control layer has them). */
  add(spec: ServiceSpec, show?: ShowFn): void {
    const label = `service ${formatService(spec)}`;
    let svc: RunningService;
    if (spec.name === 'http') {
      if (spec.proto !== 'tcp') throw new ServiceError(`${label}: http is served over tcp only`, 'EPROTONOSUPPORT');
      if (show === undefined) throw new ServiceError(`${label}: the status page needs the show commands (add it with a command line)`, 'EINVAL');
      svc = new HttpStatusService(this.tcp, spec.addr, spec.port, label, show, spec.fastOpen ?? 0);
    } else if (spec.name === 'iperf3') {
      if (spec.proto !== 'tcp') throw new ServiceError(`${label}: iperf3 is served over tcp only`, 'EPROTONOSUPPORT');
      svc = new Iperf3Service(this.tcp, spec.addr, spec.port, label, this.log, spec.fastOpen ?? 0);
    } else if (spec.proto === 'tcp') svc = new TcpService(this.tcp, spec.name, spec.addr, spec.port, label, spec.fastOpen ?? 0);
    else
      switch (spec.name) {
      case 'echo':
        svc = new UdpEchoService(this.udp, spec.addr, spec.port, label);
        break;
      case 'discard':
        svc = new UdpDiscardService(this.udp, spec.addr, spec.port, label);
        break;
      case 'chargen':
        throw new ServiceError(`${label}: chargen is served over tcp only`, 'EPROTONOSUPPORT');
    }
    this.running.push({ spec: { ...spec }, svc });
  }

  del(spec: ServiceSpec): void {
    const i = this.running.findIndex(
      (r) => r.spec.name === spec.name && r.spec.proto === spec.proto && r.spec.addr === spec.addr && r.spec.port === spec.port,
    );
    if (i < 0) throw new ServiceError(`service ${formatService(spec)}: No such service`, 'ENOENT');
    const [r] = this.running.splice(i, 1);
    r.svc.close();
  }

  list(): ServiceSpec[] {
    return this.running.map((r) => ({ ...r.spec }));
  }

  closeAll(): void {
    for (const r of this.running.splice(0)) r.svc.close();
  }
}
