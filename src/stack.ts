import { randomBytes } from 'node:crypto';
import type { Device } from './link/device.js';
import { Interface, type InterfaceHost, type InterfaceOptions } from './link/interface.js';
import { Packet, PacketPool } from './packet/packet.js';
import { clearList } from './packet/list.js';
import { Time, RealTime } from './time/timers.js';
import { IcmpMsgCounters, newMib, type Mib } from './mib.js';
import { Ipv4 } from './ip/ipv4.js';
import type { Flow } from './ip/fib.js';
import { Icmp } from './ip/icmp.js';
import { Forwarder } from './ip/forward.js';
import { Ipv4DevConf } from './ip/devconf.js';
import { RouteError, TABLE_MAIN, type AnyRoute, type Route, type RouteProto, type RouteType } from './ip/route.js';
import { Random, randomSeed } from './random.js';
import { silentLogger, type Logger } from './log.js';
import { Sysctl } from './sysctl.js';
import { prefixMask, formatIp4 } from './wire/addr.js';
import { ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED } from './wire/icmp.js';
import { LocalPortRange } from './ip/port-range.js';
import { Udp } from './udp/udp.js';
import { Services } from './services/registry.js';
import { Tcp } from './tcp/tcp.js';
import { registerTcpSysctls } from './tcp/sysctl.js';
import { Ruleset } from './netfilter/ruleset.js';
import { NfLogger } from './netfilter/env.js';
import { getU16, getU32 } from './wire/bytes.js';
import { fold, pseudoHeaderSum, sum16 } from './wire/checksum.js';
import { Conntrack } from './conntrack/conntrack.js';
import { Nat } from './conntrack/nat.js';

export interface StackOptions {
  /** Defaults to real time; tests pass a VirtualTime. */
  time?: Time;
  /** Seed for every random choice the stack makes (deterministic tests). */
  seed?: number;
  log?: Logger;
}

/** What `ip route add|replace` says. */
export interface RouteSpec {
  dst: number;
  prefixLen: number;
  gateway?: number;
  dev?: Interface;
  src?: number;
  metric?: number;
  replace?: boolean;
  table?: number;
  type?: RouteType;
  mtu?: number;
  proto?: RouteProto;
  nexthops?: { gateway?: number; dev?: Interface; weight?: number }[];
}

export class StackError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function boolKnob<T extends object>(obj: T, key: keyof T): { get(): number; set(v: number): void; min: number; max: number } {
  return {
    get: () => (obj[key] ? 1 : 0),
    set: (v) => {
      (obj[key] as unknown as boolean) = v !== 0;
    },
    min: 0,
    max: 1,
  };
}

/** One host: a clock, interfaces, routes, protocols and their counters. */
export class Stack implements InterfaceHost {
  readonly time: Time;
  readonly mib: Mib = newMib();
  readonly icmpMsg = new IcmpMsgCounters();
  readonly ip: Ipv4;
  readonly icmp: Icmp;
  /** net.ipv4.conf.{all,default,DEV}.* */
  readonly ipConf: Ipv4DevConf;
  /** RFC 1812 forwarding of datagrams not for us (off until ip_forward is set). */
  readonly forwarder: Forwarder;
  /** Recycled packets for replies the stack sends at once. */
  readonly packets = new PacketPool(2048, 1024);
  readonly udp: Udp;
  readonly tcp: Tcp;
  /** Built-in services (echo, discard) started by `service add`. */
  readonly services: Services;
  /** net.ipv4.ip_local_port_range */
  readonly localPorts = new LocalPortRange();
  readonly log: Logger;
  readonly sysctl = new Sysctl();
  /** The netfilter ruleset (nft tables); its base chains sit on `ip.hooks`. */
  readonly nft: Ruleset;
  /** Connection tracking; on the hooks while something needs it (`setNeeded`). */
  readonly conntrack: Conntrack;
  /** NAT: bindings on conntrack's entries, nat chains registered by the ruleset. */
  readonly nat: Nat;
  private readonly rng: Random;
  private readonly ifaces: Interface[] = [];
  private nextIndex = 1;
  /** Interfaces with frames queued during the current receive batch. */
  private readonly pendingTx: Interface[] = [];
  private batchDepth = 0;
  capture: ((iface: Interface, frame: Uint8Array) => void) | null = null;

  constructor(opts: StackOptions = {}) {
    this.time = opts.time ?? new RealTime();
    this.rng = new Random(opts.seed ?? randomSeed());
    this.log = opts.log ?? silentLogger;
    this.ip = new Ipv4(this.mib, this.time, () => this.random());
    this.icmp = new Icmp(this.ip, this.mib, this.icmpMsg, () => this.time.now(), this.packets);
    // RFC 792: time exceeded, code 1 (fragment reassembly time exceeded); only
    // from the destination host (ip_expire: not for datagrams conntrack reassembles to forward).
    this.ip.reasm.onTimeout = (first) => {
      if (this.ip.isLocal(getU32(first.buf, first.l3 + 16))) this.icmp.sendError(first, ICMP_TIME_EXCEEDED, 1);
    };
    this.udp = new Udp(this.ip, this.icmp, this.mib, this.time, () => this.random(), this.localPorts);
    const stack = this;
    this.tcp = new Tcp(this.ip, this.icmp, this.mib, this.time, () => this.random(), this.localPorts, this.packets, {
      begin: () => this.batchBegin(),
      end: () => this.batchEnd(),
      get active() {
        return stack.batchDepth > 0;
      },
    }, (n) => (opts.seed !== undefined ? this.seededBytes(n) : new Uint8Array(randomBytes(n))));
    this.services = new Services(this.udp, this.tcp, this.log);
    this.ipConf = new Ipv4DevConf(this.sysctl);
    this.forwarder = new Forwarder(this.ip, this.ipConf, this.mib, this.icmp, () => this.time.now());
    this.forwarder.onMartian = (what, src, dst, iface) => this.logMartian(what, src, dst, iface);
    this.ip.forwarder = (pkt, iface, src, dst) => this.forwarder.input(pkt, iface, src, dst);
    this.conntrack = new Conntrack({
      now: () => this.time.now(),
      hooks: this.ip.hooks,
      sysctl: this.sysctl,
      random: () => this.random(),
      logger: this.log,
      time: this.time,
      setDefrag: (on) => {
        this.ip.defrag = on;
      },
    });
    this.nat = new Nat({
      ct: this.conntrack,
      hooks: this.ip.hooks,
      now: () => this.time.now(),
      random: () => this.random(),
      masqueradeAddress: (outIf, dst) => this.masqueradeAddress(outIf, dst),
      redirectAddress: (inIf) => this.redirectAddress(inIf),
    });
    this.ip.ifaceByName = (name) => this.iface(name);
    const nfLog = new NfLogger(this.log, () => this.time.now());
    this.nft = new Ruleset(this.ip.hooks, {
      now: () => this.time.now(),
      random: () => this.random(),
      rejectIcmp: (pkt, type, code) => {
        if (rejectChecksumOk(pkt)) this.icmp.sendError(pkt, type, code);
      },
      rejectTcpReset: (pkt) => this.rejectTcpReset(pkt),
      log: (prefix, level, pkt, inIf, outIf) => nfLog.log(prefix, level, pkt, inIf, outIf),
      ct: this.conntrack,
      nat: this.nat,
      fib: {
        addrType: (addr, dev) => this.ip.fib.addrType(addr, dev),
        routeDev: (dst, src, iif, mark, tos, via) => this.ip.fib.routeDev(dst, src, iif, mark, tos, via),
      },
    });
    this.registerSysctls();
  }

  private registerSysctls(): void {
    const k = this.sysctl;
    k.field('net.ipv4.ip_default_ttl', this.ip, 'defaultTtl', 1, 255);
    k.register('net.ipv4.icmp_echo_ignore_all', boolKnob(this.icmp, 'echoIgnoreAll'));
    k.register('net.ipv4.icmp_echo_ignore_broadcasts', boolKnob(this.icmp, 'echoIgnoreBroadcasts'));
    k.field('net.ipv4.icmp_ratelimit', this.icmp, 'ratelimitMs', 0, 2 ** 31 - 1);
    k.field('net.ipv4.icmp_ratemask', this.icmp, 'ratemask', 0, 2 ** 31 - 1);
    k.field('net.ipv4.icmp_msgs_per_sec', this.icmp, 'msgsPerSec', 0, 2 ** 31 - 1);
    k.field('net.ipv4.icmp_msgs_burst', this.icmp, 'msgsBurst', 0, 2 ** 31 - 1);
    k.field('net.ipv4.ipfrag_time', this.ip.reasm, 'timeoutSec', 1, 2_147_483);
    k.field('net.ipv4.ipfrag_high_thresh', this.ip.reasm, 'highThresh', 0, 2 ** 31 - 1);
    const ports = this.localPorts;
    k.registerVector('net.ipv4.ip_local_port_range', {
      count: 2,
      get: () => [ports.low, ports.high],
      set: ([low, high]) => {
        ports.low = low;
        ports.high = high;
      },
      // Linux ipv4_local_port_range: 1..65535, and the low end not above the high one.
      min: 1,
      max: 65535,
      check: ([low, high]) => (low > high ? 'the first port must not be above the second' : null),
    });
    k.field('net.ipv4.fib_multipath_hash_policy', this.ip.fib, 'hashPolicy', 0, 3);
    registerTcpSysctls(k, this.tcp.settings, this.tcp.fastOpen);
  }

  /** Linux nf_send_reset: a RST for `pkt` (IP header at l3), from its destination. */
  private rejectTcpReset(pkt: Packet): void {
    const b = pkt.buf;
    const o = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
    const hl = (b[o] & 0x0f) << 2;
    const t = o + hl;
    if (pkt.end - t < 20 || (getU16(b, o + 6) & 0x1fff) !== 0) return;
    const flags = b[t + 13];
    if (flags & 0x04 || !rejectChecksumOk(pkt)) return;
    const src = getU32(b, o + 12);
    const dst = getU32(b, o + 16);
    const sport = getU16(b, t);
    const dport = getU16(b, t + 2);
    if (flags & 0x10) {
      this.tcp.sendReset(dst, dport, src, sport, getU32(b, t + 8), 0, false);
    } else {
      const len = getU16(b, o + 2) - hl - ((b[t + 12] >>> 4) << 2) + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0);
      this.tcp.sendReset(dst, dport, src, sport, 0, (getU32(b, t + 4) + len) >>> 0, true);
    }
  }

  random(): number {
    return this.rng.next();
  }

  private readonly masqFlow: Flow = { dst: 0, src: 0, iif: null, oif: null, mark: 0, tos: 0, proto: 0, sport: 0, dport: 0 };

  /**
   * The address masquerade gives a flow leaving by `outIf` towards `dst`
   * (nf_nat_masquerade_ipv4: inet_select_addr for the next hop): `outIf`'s
   * address on the next hop's subnet, else its first; an interface without
   * one lends another interface's, as Linux does. 0 when the host has none.
   */
  masqueradeAddress(outIf: Interface, dst: number): number {
    const f = this.masqFlow;
    f.dst = dst;
    f.oif = outIf;
    const r = this.ip.routeFlow(f);
    f.oif = null;
    const nh = r.type === 'unicast' && r.route.dev === outIf && r.route.gateway !== 0 ? r.route.gateway : dst;
    if (outIf.addrs.length > 0) return outIf.sourceFor(nh);
    for (const i of this.ifaces) if (i.addrs.length > 0) return i.addrs[0].addr;
    return 0;
  }

  /** The address REDIRECT sends to (nf_nat_redirect_ipv4): the in interface's first address; 127.0.0.1 for our own packets. */
  redirectAddress(inIf: Interface | null): number {
    if (inIf === null) return 0x7f000001;
    return inIf.primaryAddr();
  }

  /** Bytes from the seeded generator: keys that must repeat from run to run in tests. */
  private seededBytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.rng.next() * 256);
    return b;
  }

  // ---- InterfaceHost ----

  ipInput(pkt: Packet, iface: Interface): void {
    this.ip.input(pkt, iface);
  }

  /**
   * Linux arp_error_report: a datagram whose next hop never answered gets an ICMP
   * host unreachable to its source, so a local sender (a connect) learns EHOSTUNREACH.
   */
  neighbourUnreachable(pkt: Packet): void {
    this.icmp.sendError(pkt, ICMP_DEST_UNREACH, 1);
  }

  private lastInternalLog = -Infinity;
  private lastMartianLog = -Infinity;

  /** log_martians: like Linux's net_ratelimit'ed "martian source/destination" lines. */
  private logMartian(what: 'source' | 'destination', src: number, dst: number, iface: Interface): void {
    const now = this.time.now();
    if (now - this.lastMartianLog < 1000) return;
    this.lastMartianLog = now;
    this.log.warn({ dev: iface.name, src: formatIp4(src), dst: formatIp4(dst) }, `martian ${what}`);
  }

  internalError(iface: Interface, err: unknown): void {
    // At most one report a second: a frame that trips a bug may come in floods.
    const now = this.time.now();
    if (now - this.lastInternalLog < 1000) return;
    this.lastInternalLog = now;
    this.log.error({ dev: iface.name, err: (err as Error).stack ?? String(err) }, 'frame dropped after internal error');
  }

  batchBegin(): void {
    // One clock reading serves the whole batch (Time.freeze).
    if (this.batchDepth++ === 0) this.time.freeze();
  }

  batchEnd(): void {
    // TCP's ACKs and output for the batch go out first, so they join its write; they
    // are stamped with the time they leave (tcp_write_xmit's tcp_mstamp_refresh).
    if (this.batchDepth === 1) {
      this.time.freeze();
      this.tcp.flushDeferred();
    }
    if (this.batchDepth > 0) this.batchDepth--;
    if (this.batchDepth === 0) {
      this.time.thaw();
      this.flushPending();
    }
  }

  /** During a receive batch, sends wait for its end; otherwise they go now. */
  txPending(iface: Interface): void {
    if (this.batchDepth > 0) this.pendingTx.push(iface);
    else this.flushOne(iface);
  }

  private flushPending(): void {
    const p = this.pendingTx;
    for (let i = 0; i < p.length; i++) this.flushOne(p[i]);
    clearList(p);
  }

  private flushOne(iface: Interface): void {
    try {
      if (iface.flush() > 0) this.tcp.roomFreed();
    } catch (e) {
      // A device error (e.g. the kernel side was deleted) must not stop the stack.
      iface.stats.txErrors++;
      this.log.warn({ dev: iface.name, err: (e as Error).message }, 'device write failed');
    }
  }

  // ---- interfaces ----

  interfaces(): readonly Interface[] {
    return this.ifaces;
  }

  iface(name: string): Interface | undefined {
    return this.ifaces.find((i) => i.name === name);
  }

  /** Looks an interface up by name, failing like iproute2 does. */
  requireIface(name: string): Interface {
    const i = this.iface(name);
    if (!i) throw new StackError(`Cannot find device "${name}"`, 'ENODEV');
    return i;
  }

  addInterface(name: string, device: Device, opts: InterfaceOptions = {}): Interface {
    if (this.iface(name)) throw new StackError(`RTNETLINK answers: File exists (device "${name}")`, 'EEXIST');
    if (opts.mtu !== undefined && (opts.mtu < 68 || opts.mtu > device.maxFrameSize - (device.linkType === 'ether' ? 14 : 0)))
      throw new StackError(`mtu ${opts.mtu} is out of range for ${name} (68..${device.maxFrameSize - (device.linkType === 'ether' ? 14 : 0)})`, 'EINVAL');
    const iface = new Interface(this.nextIndex++, name, device, this, opts);
    this.ifaces.push(iface);
    this.ipConf.add(iface);
    device.onError = (err) => this.deviceFailed(iface, err);
    iface.start();
    return iface;
  }

  removeInterface(name: string): void {
    const iface = this.requireIface(name);
    for (const a of [...iface.addrs]) this.delAddress(iface, a.addr, a.prefixLen);
    for (const id of this.ip.fib.tableIds()) this.ip.fib.table(id)!.flushDev(iface);
    this.ifaces.splice(this.ifaces.indexOf(iface), 1);
    this.ipConf.remove(iface);
    iface.close();
  }

  /** The device stopped working: the link loses its carrier and its routes go unused. */
  private deviceFailed(iface: Interface, err: Error): void {
    iface.carrier = false;
    iface.stats.rxErrors++;
    iface.neigh?.flushAll();
    this.ip.fib.changed();
    this.log.error({ dev: iface.name, err: err.message }, 'device failed: link has no carrier');
  }

  setUp(iface: Interface, up: boolean): void {
    if (iface.up === up) return;
    iface.up = up;
    this.ip.fib.changed();
    if (up) for (const a of iface.addrs) iface.announce(a.addr);
    else {
      iface.neigh?.flushAll();
      // Masquerade's netdevice notifier (NETDEV_DOWN).
      this.nat.deviceDown(iface);
    }
  }

  setMtu(iface: Interface, mtu: number): void {
    const max = iface.device.maxFrameSize - (iface.linkType === 'ether' ? 14 : 0);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > max)
      throw new StackError(`mtu ${mtu} is out of range for ${iface.name} (68..${max})`, 'EINVAL');
    iface.mtu = mtu;
  }

  // ---- addresses ----

  /**
   * `ip addr add A/LEN dev D`: also adds the routes Linux's fib_add_ifaddr makes:
   * `local A` in table local (source: the subnet's primary address), and for a
   * primary address the subnet's broadcast in table local and the connected
   * route in main. (The network address gets no broadcast route: Linux stopped
   * adding one in 5.19.)
   */
  addAddress(iface: Interface, addr: number, prefixLen: number): void {
    if (iface.addrs.some((a) => a.addr === addr)) throw new StackError('RTNETLINK answers: File exists', 'EEXIST');
    if (addr === 0 || addr >>> 28 >= 0xe) throw new StackError(`${formatIp4(addr)} is not a unicast address`, 'EINVAL');
    const mask = prefixMask(prefixLen);
    const net = (addr & mask) >>> 0;
    const broadcast = prefixLen >= 31 ? 0 : (net | ~mask) >>> 0;
    // An address on a subnet the interface already has is secondary (IFA_F_SECONDARY).
    const primary = iface.addrs.find((a) => a.prefixLen === prefixLen && ((a.addr & mask) >>> 0) === net);
    const prim = primary?.addr ?? addr;
    iface.addrs.push({ addr, prefixLen, broadcast });
    const local = this.ip.fib.local;
    const kernelRoute = (type: 'local' | 'broadcast', dst: number): void => {
      if (local.list().some((r) => r.type === type && r.dst === dst && r.prefixLen === 32 && r.dev === iface)) return;
      local.append({ dst, prefixLen: 32, gateway: 0, dev: iface, src: prim, proto: 'kernel', scope: type === 'local' ? 'host' : 'link', metric: 0, type });
    };
    kernelRoute('local', addr);
    if (primary === undefined) {
      if (broadcast !== 0) kernelRoute('broadcast', broadcast);
      if (prefixLen < 32) {
        const exists = this.ip.routes.list().some((r) => r.dst === net && r.prefixLen === prefixLen && r.dev === iface);
        if (!exists)
          this.ip.routes.add({
            dst: net,
            prefixLen,
            gateway: 0,
            dev: iface,
            src: addr,
            proto: 'kernel',
            scope: 'link',
            metric: 0,
          });
      }
    }
    iface.announce(addr);
  }

  delAddress(iface: Interface, addr: number, prefixLen?: number): void {
    const i = iface.addrs.findIndex((a) => a.addr === addr && (prefixLen === undefined || a.prefixLen === prefixLen));
    if (i < 0) throw new StackError('RTNETLINK answers: Cannot assign requested address', 'EADDRNOTAVAIL');
    const [a] = iface.addrs.splice(i, 1);
    const mask = prefixMask(a.prefixLen);
    const net = (a.addr & mask) >>> 0;
    const isConnected = (r: Route): boolean => r.proto === 'kernel' && r.dev === iface && r.dst === net && r.prefixLen === a.prefixLen;
    const local = this.ip.fib.local;
    const kernelHere = (r: Route): boolean => r.proto === 'kernel' && r.dev === iface && r.prefixLen === 32;
    // Another address on the same subnet keeps the connected route (as a secondary
    // address does in Linux), now with that address as its source.
    const heir = iface.addrs.find((b) => b.prefixLen === a.prefixLen && ((b.addr & mask) >>> 0) === net);
    if (heir !== undefined) {
      for (const r of this.ip.routes.list()) if (isConnected(r) && r.src === addr) r.src = heir.addr;
      this.ip.routes.changed();
      for (const r of local.list()) if (kernelHere(r) && r.src === addr) r.src = heir.addr;
    }
    // The subnet's broadcast stays while an address still gives it.
    const bcastKept = a.broadcast === 0 || iface.addrs.some((b) => b.broadcast === a.broadcast);
    local.removeWhere(
      (r) =>
        kernelHere(r) &&
        ((r.type === 'local' && r.dst === addr) || (r.type === 'broadcast' && r.dst === a.broadcast && !bcastKept)),
    );
    // Otherwise the connected route goes with its address; routes using it as source too.
    this.ip.routes.removeWhere((r) => (heir === undefined && isConnected(r)) || r.src === addr);
    // Masquerade's inetaddr notifier: flows masqueraded to this address are forgotten.
    this.nat.addressRemoved(iface, addr);
  }

  // ---- routes ----

  /**
   * `ip route add`: the device can be left out when the gateway is on a
   * connected subnet. Fails like Linux when the gateway isn't reachable.
   * `table` picks the table (created on first use), `type` a reject or local
   * route, `nexthops` a multipath route.
   */
  addRoute(spec: RouteSpec): AnyRoute {
    const table = this.ip.fib.table(spec.table ?? TABLE_MAIN, true)!;
    const type = spec.type ?? 'unicast';
    let route: AnyRoute;
    if (type === 'blackhole' || type === 'unreachable' || type === 'prohibit' || type === 'throw') {
      route = { type, dst: spec.dst, prefixLen: spec.prefixLen, metric: spec.metric ?? 0, proto: spec.proto ?? 'boot' };
    } else {
      const hops = spec.nexthops?.map((n) => ({ ...this.resolveHop(n.gateway ?? 0, n.dev), weight: n.weight ?? 1 }));
      const first = hops?.[0] ?? this.resolveHop(spec.gateway ?? 0, spec.dev);
      const r: Route = {
        dst: spec.dst,
        prefixLen: spec.prefixLen,
        gateway: first.gateway,
        dev: first.dev,
        src: spec.src ?? 0,
        proto: spec.proto ?? 'boot',
        // iproute2's iproute_modify: local is scope host; broadcast, anycast and multicast scope link.
        scope: type === 'local' ? 'host' : type !== 'unicast' || first.gateway === 0 ? 'link' : 'global',
        metric: spec.metric ?? 0,
      };
      if (type !== 'unicast') r.type = type;
      if (spec.mtu !== undefined) r.mtu = spec.mtu;
      if (hops !== undefined && hops.length > 1) {
        r.nexthops = hops;
        r.scope = 'global';
      }
      route = r;
    }
    if (spec.replace) table.replace(route);
    else table.add(route);
    return route;
  }

  /** A next hop's device: the one given, or the one of the connected route its gateway lies on. */
  private resolveHop(gateway: number, dev: Interface | undefined): { gateway: number; dev: Interface } {
    if (gateway !== 0) {
      const via = this.ip.routes.list().find(
        (r) => r.gateway === 0 && (dev === undefined || r.dev === dev) && ((gateway & prefixMask(r.prefixLen)) >>> 0) === r.dst,
      );
      if (!via) throw new RouteError('Error: Nexthop has invalid gateway.', 'ENETUNREACH');
      dev = dev ?? via.dev;
    }
    if (dev === undefined) throw new RouteError('Error: either "dev" or "via" is required.', 'EINVAL');
    return { gateway, dev };
  }

  close(): void {
    this.services.closeAll();
    this.tcp.closeAll();
    for (const i of [...this.ifaces]) {
      try {
        i.close();
      } catch (e) {
        this.log.warn({ dev: i.name, err: (e as Error).message }, 'closing device failed');
      }
    }
    this.ifaces.length = 0;
    if (this.time instanceof RealTime) this.time.stop();
  }
}

/**
 * Linux answers a rejected datagram only if its transport checksum is right
 * (nf_reject_ipv4.c: nf_send_unreach and nf_reject_ip_tcphdr_get check it with
 * nf_ip_checksum; nf_reject_verify_csum leaves out UDP without a checksum).
 * TCP and UDP sums cover the pseudo-header, ICMP's its message; other
 * protocols are not checked here.
 */
function rejectChecksumOk(pkt: Packet): boolean {
  // nf_ip_checksum: CHECKSUM_UNNECESSARY (or a partial one) is taken as right.
  if (pkt.ipSummed !== 0) return true;
  const b = pkt.buf;
  const o = pkt.l3 >= 0 ? pkt.l3 : pkt.start;
  const hl = (b[o] & 0x0f) << 2;
  const proto = b[o + 9];
  const len = Math.min(getU16(b, o + 2), pkt.end - o) - hl;
  if (len < 0) return false;
  if (proto === 17) {
    if (len >= 8 && getU16(b, o + hl + 6) === 0) return true;
  } else if (proto !== 6 && proto !== 1) return true;
  const acc = proto === 1 ? 0 : pseudoHeaderSum(getU32(b, o + 12), getU32(b, o + 16), proto, len);
  return fold(sum16(b, o + hl, len, acc)) === 0xffff;
}
