import type { Interface } from '../link/interface.js';
import type { Sysctl } from '../sysctl.js';

/** The per-interface IPv4 settings of `net.ipv4.conf.DEV.*` (Linux's ipv4_devconf). */
export interface DevConfValues {
  forwarding: number;
  rp_filter: number;
  send_redirects: number;
  accept_redirects: number;
  log_martians: number;
}

type Key = keyof DevConfValues;

const KEYS: readonly Key[] = ['forwarding', 'rp_filter', 'send_redirects', 'accept_redirects', 'log_martians'];
const MAX: Record<Key, number> = { forwarding: 1, rp_filter: 2, send_redirects: 1, accept_redirects: 1, log_martians: 1 };

/** Linux's defaults (ipv4_devconf and ipv4_devconf_dflt): forwarding off, rp_filter 0. */
function linuxDefaults(): DevConfValues {
  return { forwarding: 0, rp_filter: 0, send_redirects: 1, accept_redirects: 1, log_martians: 0 };
}

/** One interface's values, and which of them were written (not to be overwritten from `default`). */
class DevEntry {
  readonly v: DevConfValues;
  readonly written = new Set<Key>();
  constructor(v: DevConfValues) {
    this.v = v;
  }
}

/**
 * `net.ipv4.conf.{all,default,DEV}` with Linux's semantics (net/ipv4/devinet.c):
 * - writing `all.forwarding` (or `net.ipv4.ip_forward`, the same knob) sets it on
 *   `default` and on every interface (inet_forward_change);
 * - writing another `default` knob reaches every interface that has not had it
 *   written itself (devinet_copy_dflt_conf);
 * - a new interface starts from `default`;
 * - the value in force for an interface is its own forwarding, the larger of
 *   `all` and its own rp_filter, and either of the two for the others (IN_DEV_*CONF).
 */
export class Ipv4DevConf {
  readonly all = linuxDefaults();
  readonly dflt = linuxDefaults();
  private readonly devs = new Map<Interface, DevEntry>();

  constructor(private readonly sysctl: Sysctl) {
    for (const k of KEYS) {
      sysctl.register(`net.ipv4.conf.all.${k}`, this.knob(k, (v) => this.setAll(k, v), () => this.all[k]));
      sysctl.register(`net.ipv4.conf.default.${k}`, this.knob(k, (v) => this.setDefault(k, v), () => this.dflt[k]));
    }
    sysctl.register('net.ipv4.ip_forward', this.knob('forwarding', (v) => this.setAll('forwarding', v), () => this.all.forwarding));
  }

  private knob(k: Key, set: (v: number) => void, get: () => number): { get(): number; set(v: number): void; min: number; max: number } {
    return { get, set, min: 0, max: MAX[k] };
  }

  /** A new interface: its knobs start as `default`'s. */
  add(iface: Interface): void {
    const e = new DevEntry({ ...this.dflt });
    this.devs.set(iface, e);
    for (const k of KEYS)
      this.sysctl.register(
        `net.ipv4.conf.${iface.name}.${k}`,
        this.knob(k, (v) => {
          e.v[k] = v;
          e.written.add(k);
        }, () => e.v[k]),
      );
  }

  remove(iface: Interface): void {
    this.devs.delete(iface);
    for (const k of KEYS) this.sysctl.unregister(`net.ipv4.conf.${iface.name}.${k}`);
  }

  private setAll(k: Key, v: number): void {
    this.all[k] = v;
    if (k === 'forwarding') {
      // inet_forward_change: all, default and every device.
      this.dflt.forwarding = v;
      for (const e of this.devs.values()) e.v.forwarding = v;
    }
  }

  private setDefault(k: Key, v: number): void {
    this.dflt[k] = v;
    if (k === 'forwarding') return;
    for (const e of this.devs.values()) if (!e.written.has(k)) e.v[k] = v;
  }

  private dev(iface: Interface): DevConfValues {
    return this.devs.get(iface)?.v ?? this.dflt;
  }

  /** IN_DEV_FORWARD: the interface's own value. */
  forwarding(iface: Interface): boolean {
    return this.dev(iface).forwarding !== 0;
  }

  /** IN_DEV_RPFILTER: the larger of all and the interface's (0 off, 1 strict, 2 loose). */
  rpFilter(iface: Interface): number {
    return Math.max(this.all.rp_filter, this.dev(iface).rp_filter);
  }

  /** IN_DEV_TX_REDIRECTS: all or the interface's. */
  sendRedirects(iface: Interface): boolean {
    return this.all.send_redirects !== 0 || this.dev(iface).send_redirects !== 0;
  }

  /** IN_DEV_LOG_MARTIANS: all or the interface's. */
  logMartians(iface: Interface): boolean {
    return this.all.log_martians !== 0 || this.dev(iface).log_martians !== 0;
  }
}
