import { isConfigCommand, parseCommand, type Command } from './commands.js';
import type { Device } from '../link/device.js';
import type { Stack } from '../stack.js';
import { formatAddrs, formatLinks, formatNeigh, formatNstat } from './format.js';
import { runRouteCommand } from './route-exec.js';
import { CommandError } from './words.js';
import { formatService } from '../services/registry.js';
import { runNft, stackNftIo } from './nft.js';
import { runIptables } from './iptables.js';
import { runConntrack, stackConntrackEnv } from './conntrack.js';
import { runTc, type TcEnv } from './tc.js';
import './tc-filter.js';
import { applyFeatures, formatFeatures, formatOffloadStats, parseEthtool } from './ethtool.js';

/** tc's view of a Stack: its interfaces by name. */
export function stackTcEnv(s: Stack): TcEnv {
  return { devices: () => s.interfaces(), device: (name) => s.iface(name), owner: s, nowNs: () => s.time.nowNs() };
}

/** Opens the device behind `link add`: TAP/TUN in the daemon, sim links in tests. */
export interface DeviceFactory {
  open(spec: { name: string; type: 'tap' | 'tun'; mtu?: number; vnetHdr: boolean; offload?: boolean; txThread?: boolean }): Device;
}

/**
 * Carries out commands on a Stack. Returns what the command prints; throws
 * CommandError (or the stack's own errors) with the message a user sees.
 */
export class Controller {
  constructor(
    readonly stack: Stack,
    private readonly devices: DeviceFactory,
  ) {}

  run(cmd: Command): string {
    const s = this.stack;
    switch (cmd.kind) {
      case 'link-add': {
        if (s.iface(cmd.name)) throw new CommandError(`device "${cmd.name}" exists already`);
        const spec: Parameters<DeviceFactory['open']>[0] = { name: cmd.name, type: cmd.type, mtu: cmd.mtu, vnetHdr: cmd.vnetHdr, offload: cmd.offload };
        if (cmd.txThread !== undefined) spec.txThread = cmd.txThread;
        const dev = this.devices.open(spec);
        let iface;
        try {
          iface = s.addInterface(cmd.name, dev, { mac: cmd.mac, mtu: cmd.mtu });
        } catch (e) {
          dev.close();
          throw e;
        }
        s.setUp(iface, true);
        return '';
      }
      case 'link-del':
        s.removeInterface(cmd.name);
        return '';
      case 'link-set': {
        const iface = s.requireIface(cmd.name);
        if (cmd.mtu !== undefined) s.setMtu(iface, cmd.mtu);
        if (cmd.features !== undefined) applyFeatures(iface, cmd.features);
        if (cmd.gsoMaxSize !== undefined) iface.offload.gsoMaxSize = cmd.gsoMaxSize;
        if (cmd.up !== undefined) s.setUp(iface, cmd.up);
        return '';
      }
      case 'addr-add':
        s.addAddress(s.requireIface(cmd.dev), cmd.addr, cmd.prefixLen);
        return '';
      case 'addr-del':
        s.delAddress(s.requireIface(cmd.dev), cmd.addr, cmd.prefixLen);
        return '';
      case 'route-add':
      case 'route-replace':
      case 'route-del':
      case 'route-flush':
      case 'route-show':
      case 'route-get':
      case 'rule-add':
      case 'rule-del':
      case 'rule-flush':
      case 'rule-show':
        return runRouteCommand(s, cmd);
      case 'neigh-add':
      case 'neigh-replace': {
        const n = this.neighTable(cmd.dev);
        if (cmd.kind === 'neigh-add' && n.get(cmd.ip)) throw new CommandError('RTNETLINK answers: File exists');
        n.set(cmd.ip, cmd.mac, cmd.nud);
        return '';
      }
      case 'neigh-del':
        if (!this.neighTable(cmd.dev).delete(cmd.ip)) throw new CommandError('RTNETLINK answers: No such file or directory');
        return '';
      case 'neigh-flush':
        for (const i of s.interfaces()) if (cmd.dev === undefined || i.name === cmd.dev) i.neigh?.flushAll();
        if (cmd.dev !== undefined) s.requireIface(cmd.dev);
        return '';
      case 'show': {
        const ifs = cmd.dev !== undefined ? [s.requireIface(cmd.dev)] : s.interfaces();
        switch (cmd.what) {
          case 'link':
            return formatLinks(ifs, cmd.stats, cmd.json);
          case 'addr':
            return formatAddrs(ifs, cmd.stats, cmd.json);
          case 'neigh':
            return formatNeigh(ifs, cmd.json);
        }
        break;
      }
      case 'nstat':
        return formatNstat(s, cmd.zeros, cmd.json);
      case 'ethtool': {
        const e = parseEthtool(cmd.argv);
        const iface = s.requireIface(e.dev);
        if (e.op === 'set') applyFeatures(iface, e.changes);
        else return e.op === 'show' ? formatFeatures(iface) : formatOffloadStats(iface);
        return '';
      }
      case 'sysctl-set': {
        const v = s.sysctl.set(cmd.name, cmd.value);
        return cmd.quiet ? '' : `${cmd.name.replace(/\//g, '.')} = ${v}`;
      }
      case 'sysctl-get': {
        const names = cmd.all ? s.sysctl.names() : cmd.names;
        return names.map((n) => (cmd.valueOnly ? s.sysctl.text(n) : `${n.replace(/\//g, '.')} = ${s.sysctl.text(n)}`)).join('\n');
      }
      case 'service-add':
      case 'service-del': {
        const spec = { name: cmd.name, proto: cmd.proto, addr: cmd.addr, port: cmd.port, ...(cmd.fastOpen !== undefined ? { fastOpen: cmd.fastOpen } : {}) };
        if (cmd.kind === 'service-add') s.services.add(spec, (argv) => this.show(argv));
        else s.services.del(spec);
        return '';
      }
      case 'service-list':
        return s.services.list().map(formatService).join('\n');
      case 'iptables': {
        const r = runIptables(s.nft, cmd.argv);
        if (r.code !== 0) throw new CommandError(r.stderr.trimEnd());
        return r.stdout;
      }
      case 'conntrack': {
        const r = runConntrack(stackConntrackEnv(s), cmd.argv);
        if (r.code !== 0) throw new CommandError(r.stderr.trimEnd());
        return r.stdout;
      }
      case 'tc': {
        const r = runTc(stackTcEnv(s), cmd.argv);
        if (r.code !== 0) throw new CommandError(r.stderr.trimEnd());
        return r.stdout;
      }
      case 'nft': {
        const r = runNft(s.nft, cmd.argv, stackNftIo(s));
        if (r.code !== 0) throw new CommandError(r.stderr.trimEnd());
        return r.stdout;
      }
    }
    return '';
  }

  /** Runs a show command given as words; refuses commands that change state. */
  show(argv: readonly string[]): string {
    const cmd = parseCommand(argv);
    if (isConfigCommand(cmd)) throw new CommandError('not a show command');
    return this.run(cmd);
  }

  private neighTable(dev: string) {
    const iface = this.stack.requireIface(dev);
    if (!iface.neigh) throw new CommandError(`device "${dev}" has no neighbour table (it is not Ethernet)`);
    return iface.neigh;
  }
}
