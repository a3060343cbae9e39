/**
 * `/metrics` of the HTTP status service: Prometheus text exposition with
 * node_exporter's conventions, filled from the stack's show commands at each
 * scrape, plus prom-client's own process metrics (CPU, memory, event-loop
 * lag, GC).
 *
 * - netstat: one metric per nstat counter, the name split into its
 *   /proc/net/snmp or /proc/net/netstat group and field as node_exporter does
 *   (`TcpExtSyncookiesSent` -> `tapstack_netstat_TcpExt_SyncookiesSent`).
 *   node_exporter exposes them untyped, since the groups mix counters with
 *   gauges (Tcp CurrEstab, RtoMin); prom-client has no untyped metric, so gauges.
 * - netdev: `tapstack_network_{receive,transmit}_*_total{device}` with
 *   node_exporter's field names (bytes, packets, errs, drop, multicast, colls,
 *   carrier), `tapstack_network_up`, `_mtu_bytes`, `_info`, and the stack's
 *   drops by reason.
 * - tcpstat: `tapstack_tcp_connection_states{state}` as node_exporter names the states.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Tcp } from '../tcp/tcp.js';
import { TcpState } from '../tcp/state.js';

const PREFIX = 'tapstack_';

/** The groups of /proc/net/snmp and /proc/net/netstat (and ours, Arp), longest first where one starts another. */
const NETSTAT_GROUPS = ['TcpExt', 'IpExt', 'IcmpMsg', 'Icmp', 'Tcp', 'Ip', 'UdpLite', 'Udp', 'Arp'];

/** `TcpExtSyncookiesSent` -> `TcpExt_SyncookiesSent` (node_exporter's netstat collector). */
export function netstatMetricName(nstatName: string): string {
  for (const g of NETSTAT_GROUPS) {
    if (nstatName.length > g.length && nstatName.startsWith(g) && /[A-Z0-9]/.test(nstatName[g.length])) return `${g}_${nstatName.slice(g.length)}`;
  }
  return nstatName;
}

/** node_exporter's tcpstat state names, by TcpState. */
const TCP_STATE_LABELS: readonly string[] = [
  'close',
  'listen',
  'syn_sent',
  'syn_recv',
  'established',
  'fin_wait1',
  'fin_wait2',
  'close_wait',
  'closing',
  'last_ack',
  'time_wait',
];

/** What `ip -j -s link` gives for one interface. */
interface LinkJson {
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  address?: string;
  stats64?: {
    rx: { bytes: number; packets: number; errors: number; dropped: number; multicast: number };
    tx: { bytes: number; packets: number; errors: number; dropped: number; carrier_errors: number; collisions: number };
  };
  drop_reasons?: Record<string, number>;
}

/** Runs a show command (`nstat -j -z`) and returns its output. */
export type ShowFn = (argv: readonly string[]) => string;

let processRegistry: Registry | null = null;

/** prom-client's default metrics are process-wide: one registry for every service in the process. */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

type DevField = [name: string, help: string, get: (l: LinkJson) => number];

const DEV_FIELDS: DevField[] = [
  ['receive_bytes_total', 'Network device statistic receive_bytes.', (l) => l.stats64!.rx.bytes],
  ['receive_packets_total', 'Network device statistic receive_packets.', (l) => l.stats64!.rx.packets],
  ['receive_errs_total', 'Network device statistic receive_errs.', (l) => l.stats64!.rx.errors],
  ['receive_drop_total', 'Network device statistic receive_drop.', (l) => l.stats64!.rx.dropped],
  ['receive_multicast_total', 'Network device statistic receive_multicast.', (l) => l.stats64!.rx.multicast],
  ['transmit_bytes_total', 'Network device statistic transmit_bytes.', (l) => l.stats64!.tx.bytes],
  ['transmit_packets_total', 'Network device statistic transmit_packets.', (l) => l.stats64!.tx.packets],
  ['transmit_errs_total', 'Network device statistic transmit_errs.', (l) => l.stats64!.tx.errors],
  ['transmit_drop_total', 'Network device statistic transmit_drop.', (l) => l.stats64!.tx.dropped],
  ['transmit_colls_total', 'Network device statistic transmit_colls.', (l) => l.stats64!.tx.collisions],
  ['transmit_carrier_total', 'Network device statistic transmit_carrier.', (l) => l.stats64!.tx.carrier_errors],
];

/** The stack's metrics in one registry, refreshed from the show commands at each scrape. */
export class StackMetrics {
  private readonly registry = new Registry();
  private readonly netstat = new Map<string, Gauge>();
  private readonly dev: [Counter<'device'>, DevField[2]][];
  private readonly devDrops: Counter<'device' | 'reason'>;
  private readonly devUp: Gauge<'device'>;
  private readonly devMtu: Gauge<'device'>;
  private readonly devInfo: Gauge<'device' | 'address' | 'operstate'>;
  private readonly tcpStates: Gauge<'state'>;

  constructor(
    private readonly show: ShowFn,
    private readonly tcp: Tcp,
  ) {
    const registers = [this.registry];
    this.dev = DEV_FIELDS.map(([name, help, get]) => [new Counter({ name: `${PREFIX}network_${name}`, help, labelNames: ['device'], registers }), get]);
    this.devDrops = new Counter({
      name: `${PREFIX}network_receive_drop_reason_total`,
      help: 'Frames the stack dropped on an interface, by reason (ip -s link).',
      labelNames: ['device', 'reason'],
      registers,
    });
    this.devUp = new Gauge({ name: `${PREFIX}network_up`, help: 'Value is 1 if operstate is \'up\', 0 otherwise.', labelNames: ['device'], registers });
    this.devMtu = new Gauge({ name: `${PREFIX}network_mtu_bytes`, help: 'Network device property: mtu_bytes', labelNames: ['device'], registers });
    this.devInfo = new Gauge({
      name: `${PREFIX}network_info`,
      help: 'Non-numeric data of an interface, value is always 1.',
      labelNames: ['device', 'address', 'operstate'],
      registers,
    });
    this.tcpStates = new Gauge({ name: `${PREFIX}tcp_connection_states`, help: 'Number of connection states.', labelNames: ['state'], registers });
    processMetrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text: the stack's metrics, then the process's. */
  async text(): Promise<string> {
    this.refresh();
    return (await this.registry.metrics()) + (await processMetrics().metrics());
  }

  private refresh(): void {
    const counters = (JSON.parse(this.show(['nstat', '-j', '-z'])) as { kernel: Record<string, number> }).kernel;
    for (const [name, value] of Object.entries(counters)) {
      let g = this.netstat.get(name);
      if (g === undefined) {
        g = new Gauge({ name: `${PREFIX}netstat_${netstatMetricName(name)}`, help: `Statistic ${name}.`, registers: [this.registry] });
        this.netstat.set(name, g);
      }
      g.set(value);
    }
    const links = JSON.parse(this.show(['ip', '-j', '-s', 'link'])) as LinkJson[];
    for (const [m] of this.dev) m.reset();
    this.devDrops.reset();
    this.devUp.reset();
    this.devMtu.reset();
    this.devInfo.reset();
    for (const l of links) {
      const device = l.ifname;
      if (l.stats64 !== undefined) for (const [m, get] of this.dev) m.inc({ device }, get(l));
      for (const [reason, n] of Object.entries(l.drop_reasons ?? {})) if (n > 0) this.devDrops.inc({ device, reason }, n);
      this.devUp.set({ device }, l.operstate === 'UP' ? 1 : 0);
      this.devMtu.set({ device }, l.mtu);
      this.devInfo.set({ device, address: l.address ?? '', operstate: l.operstate.toLowerCase() }, 1);
    }
    const states = new Array<number>(TCP_STATE_LABELS.length).fill(0);
    for (const c of this.tcp.connections) states[c.state]++;
    states[TcpState.LISTEN] += this.tcp.listenerList().length;
    this.tcpStates.reset();
    for (let s = TcpState.LISTEN; s < TCP_STATE_LABELS.length; s++) this.tcpStates.set({ state: TCP_STATE_LABELS[s] }, states[s]);
  }
}
