import { Stack } from '../../src/stack.js';
import { VirtualTime, type Time } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import type { Device, DeviceReceiver } from '../../src/link/device.js';
import type { Interface } from '../../src/link/interface.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import { ip } from './sim.js';

/** A shared segment: every frame reaches every other port (the Interfaces filter by MAC). */
export class SimHub {
  private readonly ports: HubPort[] = [];
  constructor(private readonly time: Time) {}

  port(name: string): Device {
    const p = new HubPort(name, this);
    this.ports.push(p);
    return p;
  }

  carry(from: HubPort, frame: Uint8Array): void {
    const copy = frame.slice();
    this.time.after(0, () => {
      for (const p of this.ports) if (p !== from) p.deliver(copy);
    });
  }
}

class HubPort implements Device {
  readonly linkType = 'ether' as const;
  readonly maxFrameSize = 1514;
  private rx: DeviceReceiver | null = null;
  private closed = false;
  onError: ((err: Error) => void) | null = null;
  constructor(
    readonly name: string,
    private readonly hub: SimHub,
  ) {}
  start(rx: DeviceReceiver): void {
    this.rx = rx;
  }
  sendBatch(frames: readonly Uint8Array[], count: number): number {
    for (let i = 0; i < count; i++) if (!this.closed) this.hub.carry(this, frames[i]);
    return count;
  }
  deliver(f: Uint8Array): void {
    if (this.closed || this.rx === null) return;
    this.rx.frame(f);
    this.rx.batchEnd();
  }
  close(): void {
    this.closed = true;
  }
}

export interface NatNet {
  time: VirtualTime;
  /** Clients and a server on the LAN 10.0.1.0/24 behind the router. */
  a: Stack;
  c: Stack;
  s: Stack;
  /** The router: r0 10.0.1.1 (LAN), r1 203.0.113.1 (WAN); forwarding on. */
  r: Stack;
  r0: Interface;
  r1: Interface;
  /** The far side 203.0.113.2, a router itself to d (198.51.100.2); no route to the LAN. */
  b: Stack;
  d: Stack;
}

/**
 * a 10.0.1.2, c 10.0.1.3, s 10.0.1.10 -- hub -- r0 10.0.1.1 [r] r1 203.0.113.1
 *   -- 203.0.113.2 [b] 198.51.100.1 -- 198.51.100.2 d
 */
export function natNet(seed = 21): NatNet {
  const time = new VirtualTime();
  const hub = new SimHub(time);
  const [dr1, db0] = simLink(time, { seed, names: ['r1', 'b0'] });
  const [db1, dd0] = simLink(time, { seed: seed + 1, names: ['b1', 'd0'] });
  const mk = (k: number): Stack => new Stack({ time, seed: seed * 10 + k });
  const a = mk(1);
  const c = mk(2);
  const s = mk(3);
  const r = mk(4);
  const b = mk(5);
  const d = mk(6);
  const up = (st: Stack, name: string, dev: Device, addr: string, len: number): Interface => {
    const i = st.addInterface(name, dev);
    st.setUp(i, true);
    st.addAddress(i, ip(addr), len);
    return i;
  };
  up(a, 'a0', hub.port('a0'), '10.0.1.2', 24);
  up(c, 'c0', hub.port('c0'), '10.0.1.3', 24);
  up(s, 's0', hub.port('s0'), '10.0.1.10', 24);
  const r0 = up(r, 'r0', hub.port('r0'), '10.0.1.1', 24);
  const r1 = up(r, 'r1', dr1, '203.0.113.1', 24);
  up(b, 'b0', db0, '203.0.113.2', 24);
  up(b, 'b1', db1, '198.51.100.1', 24);
  up(d, 'd0', dd0, '198.51.100.2', 24);
  for (const h of [a, c, s]) h.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  r.addRoute({ dst: 0, prefixLen: 0, gateway: ip('203.0.113.2') });
  d.addRoute({ dst: 0, prefixLen: 0, gateway: ip('198.51.100.1') });
  r.sysctl.set('net.ipv4.ip_forward', '1');
  b.sysctl.set('net.ipv4.ip_forward', '1');
  time.advance(1000);
  return { time, a, c, s, r, r0, r1, b, d };
}

/** Runs command lines (`nft ...`, `iptables ...`) on `s`, as the daemon would. */
export function cmd(s: Stack, ...lines: string[]): void {
  const ctl = new Controller(s, { open: () => { throw new Error('no devices here'); } });
  for (const l of lines) ctl.run(parseCommand(l.split(' ')));
}
