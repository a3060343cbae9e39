import type { Interface } from '../link/interface.js';
import { LINK_DROP_REASONS } from '../link/interface.js';
import type { Stack } from '../stack.js';
import { MIB_NAMES } from '../mib.js';
import { formatIp4, formatMac } from '../wire/addr.js';

/**
 * Output of the show commands, laid out like iproute2 and nstat print them
 * (text), and with iproute2's JSON field names for `-j`.
 */

function flags(i: Interface): string[] {
  const f = i.linkType === 'ether' ? ['BROADCAST', 'MULTICAST'] : ['POINTOPOINT', 'MULTICAST', 'NOARP'];
  // As iproute2 prints a link that is up without a carrier: <NO-CARRIER,...,UP>.
  if (i.up && !i.carrier) f.unshift('NO-CARRIER');
  if (i.up) f.push('UP');
  if (i.running) f.push('LOWER_UP');
  return f;
}

function linkHeader(i: Interface, withMode: boolean): string {
  const state = i.running ? 'UP' : 'DOWN';
  const mode = withMode ? ' mode DEFAULT' : '';
  return `${i.index}: ${i.name}: <${flags(i).join(',')}> mtu ${i.mtu} qdisc ${i.sched.root.kind} state ${state}${mode} group default qlen ${i.txQueueLen}`;
}

function linkLine(i: Interface): string {
  return i.linkType === 'ether' ? `    link/ether ${formatMac(i.mac)} brd ff:ff:ff:ff:ff:ff` : '    link/none ';
}

function linkJson(i: Interface): Record<string, unknown> {
  const o: Record<string, unknown> = {
    ifindex: i.index,
    ifname: i.name,
    flags: flags(i),
    mtu: i.mtu,
    qdisc: i.sched.root.kind,
    operstate: i.running ? 'UP' : 'DOWN',
    group: 'default',
    txqlen: i.txQueueLen,
    link_type: i.linkType === 'ether' ? 'ether' : 'none',
  };
  if (i.linkType === 'ether') {
    o.address = formatMac(i.mac);
    o.broadcast = 'ff:ff:ff:ff:ff:ff';
  }
  return o;
}

function statsJson(i: Interface): Record<string, unknown> {
  const s = i.stats;
  return {
    rx: { bytes: s.rxBytes, packets: s.rxPackets, errors: s.rxErrors, dropped: s.rxDropped, over_errors: 0, multicast: s.rxMulticast },
    tx: { bytes: s.txBytes, packets: s.txPackets, errors: s.txErrors, dropped: i.txDroppedTotal(), carrier_errors: 0, collisions: 0 },
  };
}

/** A right-aligned table row like iproute2's stats block. */
function row(cols: (string | number)[], widths: number[]): string {
  return '    ' + cols.map((c, k) => String(c).padStart(widths[k])).join(' ');
}

function statsText(i: Interface): string[] {
  const s = i.stats;
  const txDropped = i.txDroppedTotal();
  const drops = i.dropCounts();
  const w = [9, 7, 6, 7, 7, 7].map((n, k) =>
    Math.max(n, String([s.rxBytes, s.rxPackets, s.rxErrors, s.rxDropped, 0, s.rxMulticast][k]).length, String([s.txBytes, s.txPackets, s.txErrors, txDropped, 0, 0][k]).length),
  );
  const lines = [
    row(['RX:  bytes', 'packets', 'errors', 'dropped', 'missed', 'mcast'], w),
    row([s.rxBytes, s.rxPackets, s.rxErrors, s.rxDropped, 0, s.rxMulticast], w),
    row(['TX:  bytes', 'packets', 'errors', 'dropped', 'carrier', 'collsns'], w),
    row([s.txBytes, s.txPackets, s.txErrors, txDropped, 0, 0], w),
  ];
  const reasons = LINK_DROP_REASONS.filter((r) => drops[r] > 0).map((r) => `${r} ${drops[r]}`);
  if (reasons.length > 0) lines.push(`    drops: ${reasons.join(' ')}`);
  return lines;
}

export function formatLinks(ifs: readonly Interface[], stats: boolean, json: boolean): string {
  if (json) {
    return JSON.stringify(
      ifs.map((i) => {
        const o = linkJson(i);
        if (stats) {
          o.stats64 = statsJson(i);
          o.drop_reasons = { ...i.dropCounts() };
        }
        return o;
      }),
    );
  }
  const out: string[] = [];
  for (const i of ifs) {
    out.push(linkHeader(i, true), linkLine(i));
    if (stats) out.push(...statsText(i));
  }
  return out.join('\n');
}

export function formatAddrs(ifs: readonly Interface[], stats: boolean, json: boolean): string {
  if (json) {
    return JSON.stringify(
      ifs.map((i) => ({
        ...linkJson(i),
        ...(stats ? { stats64: statsJson(i), drop_reasons: { ...i.dropCounts() } } : {}),
        addr_info: i.addrs.map((a) => ({
          family: 'inet',
          local: formatIp4(a.addr),
          prefixlen: a.prefixLen,
          ...(a.broadcast ? { broadcast: formatIp4(a.broadcast) } : {}),
          scope: 'global',
          label: i.name,
          valid_life_time: 4294967295,
          preferred_life_time: 4294967295,
        })),
      })),
    );
  }
  const out: string[] = [];
  for (const i of ifs) {
    out.push(linkHeader(i, false), linkLine(i));
    if (stats) out.push(...statsText(i));
    for (const a of i.addrs) {
      const brd = a.broadcast ? ` brd ${formatIp4(a.broadcast)}` : '';
      out.push(`    inet ${formatIp4(a.addr)}/${a.prefixLen}${brd} scope global ${i.name}`);
      out.push('       valid_lft forever preferred_lft forever');
    }
  }
  return out.join('\n');
}

const NEIGH_ORDER = ['PERMANENT', 'REACHABLE', 'DELAY', 'PROBE', 'STALE', 'INCOMPLETE', 'FAILED'];

export function formatNeigh(ifs: readonly Interface[], json: boolean): string {
  const rows: { dst: string; dev: string; lladdr?: string; state: string }[] = [];
  for (const i of ifs) {
    if (!i.neigh) continue;
    const list = i.neigh.list().sort((a, b) => NEIGH_ORDER.indexOf(a.state) - NEIGH_ORDER.indexOf(b.state) || a.ip - b.ip);
    for (const e of list) {
      const lladdr = e.mac && e.state !== 'INCOMPLETE' && e.state !== 'FAILED' ? formatMac(e.mac) : undefined;
      rows.push({ dst: formatIp4(e.ip), dev: i.name, lladdr, state: e.state });
    }
  }
  if (json) return JSON.stringify(rows.map((r) => ({ dst: r.dst, dev: r.dev, ...(r.lladdr ? { lladdr: r.lladdr } : {}), state: [r.state] })));
  return rows.map((r) => `${r.dst} dev ${r.dev}${r.lladdr ? ` lladdr ${r.lladdr}` : ''} ${r.state}`).join('\n');
}

/** `nstat -a` output: `#kernel`, then name, value and a rate column. */
export function formatNstat(s: Stack, zeros: boolean, json: boolean): string {
  const entries: [string, number][] = MIB_NAMES.map((n) => [n, s.mib[n]]);
  entries.push(...s.icmpMsg.entries());
  const shown = entries.filter(([, v]) => zeros || v !== 0);
  if (json) return JSON.stringify({ kernel: Object.fromEntries(shown) });
  return ['#kernel', ...shown.map(([n, v]) => `${n.padEnd(32)}${String(v).padEnd(16)}${'0.0'.padStart(6)}`)].join('\n');
}
