/**
 * `ethtool -k|-K|-S DEV` over an interface's offloads (link/offload.ts): the
 * feature list is the one ethtool 6.1 prints for a kernel TAP device (names,
 * order, sub-features indented by a tab, `[fixed]` for what can't change),
 * with the stack's values for the features it has; the rest are off and
 * fixed. test/fixtures/ethtool/ holds the kernel's answer
 * (scripts/capture-ethtool.sh).
 */
import type { Interface } from '../link/interface.js';
import type { OffloadFeature } from '../link/offload.js';
import { CommandError } from './words.js';

/** ethtool's feature lines: [name, our feature or null, indented]. */
const LINES: [string, OffloadFeature | null, boolean][] = [
  ['rx-checksumming', 'rx', false],
  ['tx-checksumming', 'tx', false],
  ['tx-checksum-ipv4', null, true],
  ['tx-checksum-ip-generic', 'tx', true],
  ['tx-checksum-ipv6', null, true],
  ['tx-checksum-fcoe-crc', null, true],
  ['tx-checksum-sctp', null, true],
  ['scatter-gather', null, false],
  ['tx-scatter-gather', null, true],
  ['tx-scatter-gather-fraglist', null, true],
  ['tcp-segmentation-offload', 'tso', false],
  ['tx-tcp-segmentation', 'tso', true],
  ['tx-tcp-ecn-segmentation', null, true],
  ['tx-tcp-mangleid-segmentation', null, true],
  ['tx-tcp6-segmentation', null, true],
  ['tx-tcp-accecn-segmentation', null, true],
  ['generic-segmentation-offload', 'gso', false],
  ['generic-receive-offload', 'gro', false],
  ['large-receive-offload', 'lro', false],
];
/** The rest of ethtool's list, off and fixed here but for the one marked with our feature. */
const FIXED_OFF = [
  'rx-vlan-offload', 'tx-vlan-offload', 'ntuple-filters', 'receive-hashing', 'highdma', 'rx-vlan-filter',
  'vlan-challenged', 'tx-gso-robust', 'tx-fcoe-segmentation', 'tx-gre-segmentation', 'tx-gre-csum-segmentation',
  'tx-ipxip4-segmentation', 'tx-ipxip6-segmentation', 'tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation',
  'tx-gso-partial', 'tx-tunnel-remcsum-segmentation', 'tx-sctp-segmentation', 'tx-esp-segmentation',
  'tx-udp-segmentation:uso', 'tx-gso-list', 'tx-nocache-copy', 'loopback', 'rx-fcs', 'rx-all', 'tx-vlan-stag-hw-insert',
  'rx-vlan-stag-hw-parse', 'rx-vlan-stag-filter', 'l2-fwd-offload', 'hw-tc-offload', 'esp-hw-offload',
  'esp-tx-csum-hw-offload', 'rx-udp_tunnel-port-offload', 'tls-hw-tx-offload', 'tls-hw-rx-offload', 'rx-gro-hw',
  'tls-hw-record', 'rx-gro-list', 'macsec-hw-offload', 'rx-udp-gro-forwarding', 'hsr-tag-ins-offload',
  'hsr-tag-rm-offload', 'hsr-fwd-offload', 'hsr-dup-offload',
];

/** What `ethtool -K` takes for each of our features: its short name and ethtool's feature names. */
const NAMES: Record<string, OffloadFeature> = {
  rx: 'rx',
  'rx-checksumming': 'rx',
  tx: 'tx',
  'tx-checksumming': 'tx',
  'tx-checksum-ip-generic': 'tx',
  tso: 'tso',
  'tcp-segmentation-offload': 'tso',
  'tx-tcp-segmentation': 'tso',
  gso: 'gso',
  'generic-segmentation-offload': 'gso',
  gro: 'gro',
  'generic-receive-offload': 'gro',
  lro: 'lro',
  'large-receive-offload': 'lro',
  uso: 'uso',
  'tx-udp-segmentation': 'uso',
};

/** Reads `FEATURE on|off ...` pairs (ethtool -K and `link set DEV offload`). */
export function parseFeatures(words: readonly string[], at: number): [OffloadFeature, boolean][] {
  const out: [OffloadFeature, boolean][] = [];
  if (at >= words.length) throw new CommandError('expected a feature (rx, tx, tso, uso, gso, gro, lro) and on or off');
  for (let i = at; i < words.length; i += 2) {
    const f = NAMES[words[i]];
    if (f === undefined) throw new CommandError('expected a feature: rx, tx, tso, tx-udp-segmentation (uso), gso, gro or lro', null, words[i]);
    const v = words[i + 1];
    if (v !== 'on' && v !== 'off') throw new CommandError('expected on or off', null, v ?? '(end)');
    out.push([f, v === 'on']);
  }
  return out;
}

/** `ethtool -k`: the feature list as ethtool prints it. */
export function formatFeatures(iface: Interface): string {
  const off = iface.offload;
  const lines = [`Features for ${iface.name}:`];
  for (const [name, f, sub] of LINES) {
    const v = f === null ? 'off [fixed]' : `${off.get(f) ? 'on' : 'off'}${off.can[f] || off.get(f) ? '' : ' [fixed]'}`;
    lines.push(`${sub ? '\t' : ''}${name}: ${v}`);
  }
  for (const entry of FIXED_OFF) {
    // `name:feature`: a line of the fixed-off block that shows one of our features.
    const [name, f] = entry.split(':') as [string, OffloadFeature | undefined];
    lines.push(`${name}: ${f === undefined ? 'off [fixed]' : `${off.get(f) ? 'on' : 'off'}${off.can[f] || off.get(f) ? '' : ' [fixed]'}`}`);
  }
  return lines.join('\n');
}

/** `ethtool -S`: the offload counters, named and laid out as drivers' NIC statistics. */
export function formatOffloadStats(iface: Interface): string {
  const o = iface.offload;
  const rows: [string, number][] = [
    ['rx_gso_packets', o.rxGsoPackets],
    ['rx_gso_segments', o.rxGsoSegments],
    ['rx_gro_packets', o.groPackets],
    ['rx_gro_merged_segments', o.groMergedSegments],
    ['rx_csum_sw', o.rxSwCsum],
    ['rx_gso_bad', o.rxGsoBad],
    ['tx_gso_packets', o.txGsoPackets],
    ['tx_gso_segments', o.txGsoSegments],
    ['tx_gso_sw_packets', o.txSwGsoPackets],
    ['tx_gso_sw_segments', o.txSwGsoSegments],
    ['tx_csum_sw', o.txSwCsum],
  ];
  return ['NIC statistics:', ...rows.map(([k, v]) => `     ${k}: ${v}`)].join('\n');
}

/** Switches features; throws with ethtool's words when the device can't have one on. */
export function applyFeatures(iface: Interface, changes: readonly [OffloadFeature, boolean][]): void {
  for (const [f, on] of changes) {
    if (!iface.setOffload(f, on)) throw new CommandError(`Could not change any device features (${f} is fixed off on ${iface.name})`);
  }
}

export type EthtoolCommand = { op: 'show' | 'stats'; dev: string } | { op: 'set'; dev: string; changes: [OffloadFeature, boolean][] };

/** ethtool's arguments: -k DEV | -K DEV FEATURE on|off... | -S DEV. */
export function parseEthtool(argv: readonly string[]): EthtoolCommand {
  const o = argv[0];
  const dev = argv[1];
  if (dev === undefined || !['-k', '--show-features', '--show-offload', '-K', '--features', '--offload', '-S', '--statistics'].includes(o))
    throw new CommandError('expected -k DEV, -K DEV FEATURE on|off ... or -S DEV', null, o ?? '(end)');
  if (o === '-k' || o === '--show-features' || o === '--show-offload') {
    if (argv.length > 2) throw new CommandError('unexpected word', null, argv[2]);
    return { op: 'show', dev };
  }
  if (o === '-S' || o === '--statistics') {
    if (argv.length > 2) throw new CommandError('unexpected word', null, argv[2]);
    return { op: 'stats', dev };
  }
  return { op: 'set', dev, changes: parseFeatures(argv, 2) };
}
