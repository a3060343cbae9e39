import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import type { Interface } from '../../src/link/interface.js';
import type { IcmpErrorInfo } from '../../src/ip/icmp.js';
import { VERDICT_ACCEPT } from '../../src/ip/hooks.js';
import { ip, simPing } from '../helpers/sim.js';
import { concat, echoRequest, ethHeader, fixIpChecksum } from '../helpers/frames.js';
import { checksum } from '../../src/wire/checksum.js';
import { formatMac } from '../../src/wire/addr.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';

interface Routed {
  time: VirtualTime;
  a: Stack;
  r: Stack;
  b: Stack;
  r0: Interface;
  r1: Interface;
}

/** a (10.0.1.2) -- r0 (10.0.1.1) router r1 (10.0.2.1) -- b (10.0.2.2); r1's link has MTU `mtu1`. */
function routed(opts: { forward?: boolean; mtu1?: number } = {}): Routed {
  const time = new VirtualTime();
  const [da, dr0] = simLink(time, { seed: 3, names: ['a0', 'r0'] });
  const [dr1, db] = simLink(time, { seed: 4, names: ['r1', 'b0'], mtu: opts.mtu1 });
  const a = new Stack({ time, seed: 11 });
  const r = new Stack({ time, seed: 12 });
  const b = new Stack({ time, seed: 13 });
  const ia = a.addInterface('a0', da);
  const r0 = r.addInterface('r0', dr0);
  const r1 = r.addInterface('r1', dr1, { mtu: opts.mtu1 });
  const ib = b.addInterface('b0', db, { mtu: opts.mtu1 });
  for (const [s, i] of [[a, ia], [r, r0], [r, r1], [b, ib]] as const) s.setUp(i, true);
  a.addAddress(ia, ip('10.0.1.2'), 24);
  r.addAddress(r0, ip('10.0.1.1'), 24);
  r.addAddress(r1, ip('10.0.2.1'), 24);
  b.addAddress(ib, ip('10.0.2.2'), 24);
  a.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.1.1') });
  b.addRoute({ dst: 0, prefixLen: 0, gateway: ip('10.0.2.1') });
  if (opts.forward !== false) r.sysctl.set('net.ipv4.ip_forward', '1');
  time.advance(1000);
  return { time, a, r, b, r0, r1 };
}

function errorsAt(s: Stack): IcmpErrorInfo[] {
  const seen: IcmpErrorInfo[] = [];
  s.icmp.onError((e) => seen.push(e));
  return seen;
}

describe('IPv4 forwarding (RFC 1812)', () => {
  it('is off by default, as in Linux: the datagram is dropped and counted', () => {
    const t = routed({ forward: false });
    expect(t.r.sysctl.get('net.ipv4.ip_forward')).toBe(0);
    expect(t.r.sysctl.get('net.ipv4.conf.r0.forwarding')).toBe(0);
    const { replies } = simPing(t.time, t.a, ip('10.0.2.2'), 2);
    expect(replies).toHaveLength(0);
    expect(t.r.mib.IpInAddrErrors).toBe(2);
    expect(t.r.mib.IpForwDatagrams).toBe(0);
  });

  it('forwards a ping both ways, decrementing the TTL with a valid checksum', () => {
    const t = routed();
    const { replies } = simPing(t.time, t.a, ip('10.0.2.2'), 3);
    expect(replies.map((x) => x.seq)).toEqual([1, 2, 3]);
    // b answered with TTL 64; one hop took one off.
    expect(replies[0].ttl).toBe(63);
    expect(t.r.mib.IpForwDatagrams).toBe(6);
    expect(t.b.mib.IpInHdrErrors + t.a.mib.IpInHdrErrors + t.b.mib.IpExtInCsumErrors).toBe(0);
    const back = simPing(t.time, t.b, ip('10.0.1.2'), 1);
    expect(back.replies).toHaveLength(1);
  });

  it('answers TTL 1 with time exceeded code 0 from the ingress address', () => {
    const t = routed();
    const seen = errorsAt(t.a);
    t.a.icmp.sendEcho(ip('10.0.2.2'), 7, 1, new Uint8Array(16), { ttl: 1 });
    t.time.advance(100);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ type: 11, code: 0, reporter: ip('10.0.1.1'), origDst: ip('10.0.2.2') });
    expect(t.r.mib.IpInHdrErrors).toBe(1);
    expect(t.r.mib.IcmpOutTimeExcds).toBe(1);
    expect(t.r.mib.IpForwDatagrams).toBe(0);
  });

  it('answers DF and too big for the next link with fragmentation needed and its MTU', () => {
    const t = routed({ mtu1: 1400 });
    const seen = errorsAt(t.a);
    t.a.icmp.sendEcho(ip('10.0.2.2'), 7, 1, new Uint8Array(1472), { dontFrag: true });
    t.time.advance(100);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ type: 3, code: 4, mtu: 1400, reporter: ip('10.0.1.1') });
    expect(t.r.mib.IpFragFails).toBe(1);
  });

  it('fragments a datagram without DF for the smaller link; b reassembles and answers', () => {
    const t = routed({ mtu1: 1400 });
    const { replies } = simPing(t.time, t.a, ip('10.0.2.2'), 1, { size: 1472 });
    expect(replies).toHaveLength(1);
    expect(replies[0].data.length).toBe(1472);
    expect(t.r.mib.IpFragOKs).toBe(1);
    expect(t.r.mib.IpFragCreates).toBe(2);
    expect(t.b.mib.IpReasmOKs).toBe(1);
  });

  it('answers a destination with no route with net unreachable (IpExtInNoRoutes)', () => {
    const t = routed();
    const seen = errorsAt(t.a);
    t.a.icmp.sendEcho(ip('192.0.2.9'), 7, 1, new Uint8Array(8));
    t.time.advance(100);
    expect(seen).toMatchObject([{ type: 3, code: 0, origDst: ip('192.0.2.9') }]);
    expect(t.r.mib.IpExtInNoRoutes).toBe(1);
  });

  it('drops a spoofed source with strict rp_filter, forwards it with rp_filter 0', () => {
    const t = routed();
    const spoof = (): void => {
      t.a.icmp.sendEcho(ip('10.0.2.2'), 7, 1, new Uint8Array(8), { src: ip('10.0.2.99') });
      t.time.advance(100);
    };
    spoof();
    expect(t.r.mib.IpForwDatagrams).toBe(1);
    t.r.sysctl.set('net.ipv4.conf.all.rp_filter', '1');
    spoof();
    expect(t.r.mib.IpForwDatagrams).toBe(1);
    expect(t.r.mib.TcpExtIPReversePathFilter).toBe(1);
    // Loose mode only asks for some route back.
    t.r.sysctl.set('net.ipv4.conf.all.rp_filter', '0');
    t.r.sysctl.set('net.ipv4.conf.r0.rp_filter', '2');
    spoof();
    expect(t.r.mib.IpForwDatagrams).toBe(2);
  });

  it('does not forward martian sources or destinations', () => {
    const t = routed();
    t.a.icmp.sendEcho(ip('10.0.2.2'), 7, 1, new Uint8Array(8), { src: ip('127.0.0.1') });
    t.a.addRoute({ dst: ip('240.0.0.0'), prefixLen: 4, gateway: ip('10.0.1.1') });
    t.a.icmp.sendEcho(ip('240.0.0.1'), 7, 1, new Uint8Array(8));
    t.time.advance(100);
    expect(t.r.mib.IpInAddrErrors).toBe(2);
    expect(t.r.mib.IpForwDatagrams).toBe(0);
  });

  it('sends a redirect when the datagram leaves the way it came to a next hop on the source subnet', () => {
    const t = routed();
    // a sends through r what it could have sent straight to 10.0.1.77.
    t.a.addRoute({ dst: ip('10.0.1.77'), prefixLen: 32, gateway: ip('10.0.1.1') });
    t.a.icmp.sendEcho(ip('10.0.1.77'), 7, 1, new Uint8Array(8));
    t.time.advance(100);
    expect(t.r.mib.IcmpOutRedirects).toBe(1);
    expect(t.a.icmpMsg.in[5]).toBe(1);
    t.r.sysctl.set('net.ipv4.conf.all.send_redirects', '0');
    t.r.sysctl.set('net.ipv4.conf.r0.send_redirects', '0');
    t.time.advance(30_000);
    t.a.icmp.sendEcho(ip('10.0.1.77'), 7, 2, new Uint8Array(8));
    t.time.advance(100);
    expect(t.r.mib.IcmpOutRedirects).toBe(1);
  });

  it('sends the frame on from the receive buffer it arrived in, without a copy', () => {
    const t = routed();
    const received: ArrayBufferLike[] = [];
    const rx = t.r0.frame.bind(t.r0);
    t.r0.frame = (f: Uint8Array) => {
      received.push(f.buffer);
      rx(f);
    };
    const sent: ArrayBufferLike[] = [];
    const dev = t.r1.device;
    const tx = dev.sendBatch.bind(dev);
    dev.sendBatch = (frames: readonly Uint8Array[], n: number) => {
      for (let i = 0; i < n; i++) if (frames[i][12] === 8 && frames[i][13] === 0) sent.push(frames[i].buffer);
      return tx(frames, n);
    };
    // The first datagram waits for ARP (as a copy); the second goes straight on.
    simPing(t.time, t.a, ip('10.0.2.2'), 2);
    expect(sent).toHaveLength(2);
    expect(received).not.toContain(sent[0]);
    expect(received).toContain(sent[1]);
  });

  /** An echo request from a to b with `options` (a multiple of 4 bytes) in its header, sent into r0. */
  function sendWithOptions(t: Routed, options: number[]): Uint8Array[] {
    const plain = echoRequest('10.0.1.2', '10.0.2.2');
    const d = concat(plain.slice(0, 20), new Uint8Array(options), plain.slice(20));
    d[0] = 0x40 | ((20 + options.length) >> 2);
    d[3] += options.length;
    fixIpChecksum(d);
    const atB: Uint8Array[] = [];
    const ib = t.b.interfaces()[0];
    const rx = ib.frame.bind(ib);
    ib.frame = (f: Uint8Array) => {
      if (f[12] === 8 && f[13] === 0 && f[23] === 1 && f[14 + (f[14] & 15) * 4] === 8) atB.push(f.slice(14));
      rx(f);
    };
    const ia = t.a.interfaces()[0];
    t.r0.frame(concat(ethHeader(formatMac(t.r0.mac), formatMac(ia.mac), 0x0800), d));
    t.r0.batchEnd();
    t.time.advance(2000);
    return atB;
  }

  it('records its outgoing address in a record route option (RFC 791)', () => {
    const t = routed();
    // RR with room for two addresses, then END padding.
    const got = sendWithOptions(t, [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(got).toHaveLength(1);
    const h = got[0];
    expect(h[22]).toBe(8);
    expect([...h.slice(23, 27)]).toEqual([10, 0, 2, 1]);
    expect(checksum(h, 0, 32)).toBe(0);
    expect(t.b.mib.IcmpInEchos).toBe(1);
  });

  it('drops a source-routed datagram, as Linux with accept_source_route 0', () => {
    const t = routed();
    // LSRR naming one more hop.
    const got = sendWithOptions(t, [131, 7, 4, 10, 0, 2, 2, 0]);
    expect(got).toHaveLength(0);
    expect(t.r.mib.IpForwDatagrams).toBe(0);
  });

  it('runs the FORWARD hook with both interfaces', () => {
    const t = routed();
    const seen: [string, string][] = [];
    t.r.ip.hooks.forward.register((_p, inIf, outIf) => {
      seen.push([inIf!.name, outIf!.name]);
      return VERDICT_ACCEPT;
    });
    simPing(t.time, t.a, ip('10.0.2.2'), 1);
    expect(seen).toEqual([
      ['r0', 'r1'],
      ['r1', 'r0'],
    ]);
  });

  it('has Linux semantics for all, default and per-device knobs', () => {
    const t = routed({ forward: false });
    const k = t.r.sysctl;
    k.set('net.ipv4.conf.default.forwarding', '1');
    expect(k.get('net.ipv4.conf.r0.forwarding')).toBe(0);
    k.set('net.ipv4.conf.all.forwarding', '1');
    expect([k.get('net.ipv4.ip_forward'), k.get('net.ipv4.conf.r0.forwarding'), k.get('net.ipv4.conf.r1.forwarding')]).toEqual([1, 1, 1]);
    k.set('net.ipv4.conf.r1.forwarding', '0');
    expect(k.get('net.ipv4.ip_forward')).toBe(1);
    k.set('net.ipv4.ip_forward', '0');
    expect([k.get('net.ipv4.conf.all.forwarding'), k.get('net.ipv4.conf.default.forwarding'), k.get('net.ipv4.conf.r0.forwarding')]).toEqual([0, 0, 0]);
    k.set('net.ipv4.conf.default.rp_filter', '2');
    const [d] = simLink(t.time, { names: ['r2', 'x'] });
    t.r.addInterface('r2', d);
    expect(k.get('net.ipv4.conf.r2.rp_filter')).toBe(2);
    expect(k.names()).toContain('net.ipv4.conf.r2.send_redirects');
    expect(() => k.set('net.ipv4.conf.r2.rp_filter', '3')).toThrow();
    t.r.removeInterface('r2');
    expect(k.has('net.ipv4.conf.r2.rp_filter')).toBe(false);
  });

  it('is set and listed through the sysctl command, per device too', () => {
    const t = routed({ forward: false });
    const ctl = new Controller(t.r, { open: () => { throw new Error('no devices here'); } });
    const run = (line: string): string => ctl.run(parseCommand(line.split(' ')));
    expect(run('sysctl -w net.ipv4.conf.all.forwarding=1')).toBe('net.ipv4.conf.all.forwarding = 1');
    const all = run('sysctl -a').split('\n');
    for (const l of [
      'net.ipv4.ip_forward = 1',
      'net.ipv4.conf.all.forwarding = 1',
      'net.ipv4.conf.default.forwarding = 1',
      'net.ipv4.conf.r0.forwarding = 1',
      'net.ipv4.conf.r1.rp_filter = 0',
      'net.ipv4.conf.r1.send_redirects = 1',
      'net.ipv4.conf.default.accept_redirects = 1',
      'net.ipv4.conf.all.log_martians = 0',
    ])
      expect(all).toContain(l);
    expect(run('sysctl -n net/ipv4/conf/r1/forwarding')).toBe('1');
    expect(simPing(t.time, t.a, ip('10.0.2.2'), 1).replies).toHaveLength(1);
  });
});

describe('forwarding through a qdisc that holds packets', () => {
  it('copies a forwarded frame still queued when the receive batch ends, as the receive buffer is reused', () => {
    const t = routed();
    // Neighbours resolved first, so no request waits (as a copy) for ARP.
    expect(simPing(t.time, t.a, ip('10.0.2.2'), 1).replies).toHaveLength(1);
    // r1 sends one 98-byte frame each 7.84 ms (100 kbit/s, two at most at once): echo requests wait in its tbf.
    new Controller(t.r, { open: () => { throw new Error('no devices'); } }).run(parseCommand(['tc', 'qdisc', 'add', 'dev', 'r1', 'root', 'handle', '1:', 'tbf', 'rate', '100kbit', 'burst', '200', 'latency', '1s']));
    // A device reuses its receive buffer once the batch ends: scribble over every frame r0 received.
    const frame = t.r0.frame.bind(t.r0);
    const batchEnd = t.r0.batchEnd.bind(t.r0);
    const seen: Uint8Array[] = [];
    t.r0.frame = (f: Uint8Array) => {
      seen.push(f);
      frame(f);
    };
    t.r0.batchEnd = () => {
      batchEnd();
      for (const f of seen) f.fill(0xee);
      seen.length = 0;
    };
    // Ten requests at once (one batch each): most wait in the tbf past their batch's end.
    const replies: number[] = [];
    t.a.icmp.listenEcho(0x77, (r) => replies.push(r.seq));
    for (let i = 0; i < 10; i++) t.a.icmp.sendEcho(ip('10.0.2.2'), 0x77, i, new Uint8Array(56));
    t.time.advance(1000);
    // Most requests left r1 long after their batch ended.
    expect(t.r.iface('r1')!.sched.root.stats.overlimits).toBeGreaterThan(5);
    expect(replies.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

