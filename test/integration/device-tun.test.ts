// TUN devices against a kernel peer: bare IPv4 packets, no link header. The
// kernel side is moved into a namespace of our own and pings an address this
// test answers for in JS. Needs root.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerSide, run, runAsync } from '../helpers/peer.js';
import { equalAt } from '../helpers/frames.js';
import { checksum } from '../../src/wire/checksum.js';
import { openTun, type TunDevice } from '../../src/link/tap.js';

const TAG = process.pid.toString(36);
const NS = `tsdevtun${TAG}`;
const peer = peerSide(NS);
// Private addresses, only ever on the test's own devices.
const KERNEL_IP = [10, 232, 3, 1];
const OUR_IP = [10, 232, 3, 2];
const ADDON = resolve(import.meta.dirname, '../../build/Release/tapstack_native.node');

/** Answers ICMP echo requests to OUR_IP; counts what arrives. */
class EchoResponder {
  ipv4 = 0;
  echoRequests = 0;
  badChecksums = 0;
  private out: Uint8Array[] = [];

  constructor(
    private readonly dev: TunDevice,
    private readonly ourIp: number[] = OUR_IP,
  ) {}

  frame(p: Uint8Array): void {
    if (p.length < 20 || p[0] >> 4 !== 4) return; // IPv6 router solicitations etc.
    this.ipv4++;
    const ihl = (p[0] & 0x0f) * 4;
    if (checksum(p, 0, ihl) !== 0) this.badChecksums++;
    if (p[9] !== 1 || !equalAt(p, 16, this.ourIp) || p.length < ihl + 8 || p[ihl] !== 8) return;
    this.echoRequests++;
    const r = p.slice(); // the receive slot is reused after batchEnd
    r.set(p.subarray(16, 20), 12);
    r.set(p.subarray(12, 16), 16);
    r[ihl] = 0;
    r[ihl + 2] = r[ihl + 3] = 0;
    const c = checksum(r, ihl, ((p[2] << 8) | p[3]) - ihl);
    r[ihl + 2] = c >> 8;
    r[ihl + 3] = c & 0xff;
    this.out.push(r);
  }

  batchEnd(): void {
    if (this.out.length > 0) {
      expect(this.dev.sendBatch(this.out, this.out.length)).toBe(this.out.length);
      this.out = [];
    }
  }
}

describe('TUN device with a kernel peer in a namespace', () => {
  const opened: TunDevice[] = [];

  beforeAll(() => {
    peer.create();
  });

  afterAll(() => {
    for (const dev of opened) dev.close();
    try {
      peer.destroy();
    } catch {
      // never created
    }
  });

  for (const vnetHdr of [false, true]) {
    it(`answers the kernel's ping with raw IP from JS${vnetHdr ? ' with IFF_VNET_HDR' : ''}`, async () => {
      const dev = openTun(`tn${TAG}${vnetHdr ? 'v' : 'p'}%d`, { vnetHdr, batch: 8 });
      opened.push(dev);
      expect(dev.linkType).toBe('ip');
      expect(dev.maxFrameSize).toBe(65535);
      peer.moveIn(dev.name);
      peer.ip('addr', 'add', KERNEL_IP.join('.'), 'peer', OUR_IP.join('.'), 'dev', dev.name);
      peer.ip('link', 'set', dev.name, 'up');
      const responder = new EchoResponder(dev);
      dev.start(responder);
      const ping = await runAsync(...peer.command(['ping', '-c', '3', '-i', '0.2', '-W', '2', OUR_IP.join('.')]));
      expect(ping.out).toMatch(/3 received/);
      expect(ping.code).toBe(0);
      expect(responder.echoRequests).toBe(3);
      expect(responder.badChecksums).toBe(0);

      // JS -> kernel: an IPv4 packet written to the TUN is received by the
      // kernel side (counted even though nothing listens for it).
      const before = Number(peer.run('cat', `/sys/class/net/${dev.name}/statistics/rx_packets`));
      const udp = new Uint8Array(28);
      udp.set([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, ...OUR_IP, ...KERNEL_IP]);
      const c = checksum(udp, 0, 20);
      udp[10] = c >> 8;
      udp[11] = c & 0xff;
      udp.set([0x30, 0x39, 0, 9, 0, 8, 0, 0], 20); // UDP to the discard port, no checksum
      expect(dev.sendBatch([udp, udp, udp], 3)).toBe(3);
      const after = Number(peer.run('cat', `/sys/class/net/${dev.name}/statistics/rx_packets`));
      expect(after - before).toBe(3);
      dev.close();
    });
  }

  it('serves several devices at once, through stop and start', async () => {
    // Both devices share the addon's epoll set: one leaving it must not stall the other.
    const devs = [0, 1].map((i) => {
      const dev = openTun(`tn${TAG}m${i}%d`, { batch: 4 });
      opened.push(dev);
      peer.moveIn(dev.name);
      peer.ip('addr', 'add', `10.232.${4 + i}.1`, 'peer', `10.232.${4 + i}.2`, 'dev', dev.name);
      peer.ip('link', 'set', dev.name, 'up');
      const responder = new EchoResponder(dev, [10, 232, 4 + i, 2]);
      dev.start(responder);
      return { dev, responder };
    });
    const ping = (i: number, count: number) =>
      runAsync(...peer.command(['ping', '-c', String(count), '-i', '0.01', '-W', '1', `10.232.${4 + i}.2`]));
    const both = await Promise.all([ping(0, 20), ping(1, 20)]);
    expect(both.map((r) => r.code)).toEqual([0, 0]);
    expect(devs.map((d) => d.responder.echoRequests)).toEqual([20, 20]);
    devs[0].dev.stop();
    const [stopped, going] = await Promise.all([ping(0, 1), ping(1, 5)]);
    expect(stopped.code).not.toBe(0);
    expect(going.code).toBe(0);
    expect(devs.map((d) => d.responder.echoRequests)).toEqual([20, 25]);
    // Started again, it answers (the kernel may still hold the unanswered request).
    devs[0].dev.start(devs[0].responder);
    const again = await ping(0, 3);
    expect(again.code).toBe(0);
    expect(devs[0].responder.echoRequests).toBeGreaterThanOrEqual(23);
    for (const d of devs) d.dev.close();
  });

  it('serves every device that is ready in a wakeup in one callback, and a full one again on the next', async () => {
    // In a child process inside the namespace that holds the raw addon: the
    // kernel queues packets on two TUNs while the child's event loop is
    // blocked in execFileSync, so the next wakeup finds both devices ready.
    const script = `
      const a = require(${JSON.stringify(ADDON)});
      const { execFileSync } = require('node:child_process');
      const { writeFileSync } = require('node:fs');
      const slots = 4, size = 2048;
      const ready = new Uint32Array(3 * 8);
      const devs = [], bufs = [];
      // Per callback: [id, UDP packets in its slots, errno] of each device served.
      const calls = [];
      const udp = (id, count) => {
        const buf = bufs[id], lens = new Uint32Array(buf, 0, slots);
        let n = 0;
        for (let j = 0; j < count; j++) if (lens[j] >= 20 && new Uint8Array(buf, 4 * slots + j * size, lens[j])[9] === 17) n++;
        return n;
      };
      a.init((id, count, errno) => {
        const served = [];
        if (id >= 0) served.push([id, udp(id, count), errno]);
        else for (let i = 0; i < count; i++) served.push([ready[3 * i], udp(ready[3 * i], ready[3 * i + 1]), ready[3 * i + 2]]);
        if (served.some((s) => s[1] > 0)) calls.push({ direct: id >= 0, served });
      }, ready);
      for (const i of [0, 1]) {
        const buf = new ArrayBuffer(slots * (4 + size));
        const d = a.open('tm${TAG}' + i + '%d', false, false, buf, slots, size);
        bufs[d.id] = buf;
        // No IPv6 chatter (router solicitations, MLD) on the devices.
        try { writeFileSync('/proc/sys/net/ipv6/conf/' + d.name + '/disable_ipv6', '1'); } catch {}
        execFileSync('ip', ['addr', 'add', '10.232.' + (6 + i) + '.1', 'peer', '10.232.' + (6 + i) + '.2', 'dev', d.name]);
        a.setLinkUp(d.name, true);
        devs.push(d);
      }
      for (const d of devs) d.start();
      // 6 datagrams to the first device (more than its 4 slots), 3 to the second.
      execFileSync('/usr/bin/python3', ['-c', [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        'for a, n in (("10.232.6.2", 6), ("10.232.7.2", 3)):',
        '    for i in range(n): s.sendto(b"x", (a, 9))',
      ].join('\\n')]);
      setTimeout(() => {
        console.log(JSON.stringify({ ids: devs.map((d) => d.id), calls }));
        for (const d of devs) d.close();
      }, 200);
    `;
    const r = await runAsync(...peer.command([process.execPath, '-e', script]));
    expect(r.code, r.out).toBe(0);
    const { ids, calls } = JSON.parse(r.out) as {
      ids: number[];
      calls: { direct: boolean; served: [number, number, number][] }[];
    };
    const byId = (served: [number, number, number][]) => [...served].sort((x, y) => x[0] - y[0]);
    // First wakeup: both devices, in one call through the ready list, the
    // first one's slots full. Second: the rest of the first, as arguments.
    expect(calls.map((c) => ({ direct: c.direct, served: byId(c.served) }))).toEqual([
      { direct: false, served: byId([[ids[0], 4, 0], [ids[1], 3, 0]]) },
      { direct: true, served: [[ids[0], 2, 0]] },
    ]);
  });

  it('drops and counts packets larger than maxFrame, and keeps going', async () => {
    const dev = openTun(`tn${TAG}o%d`, { batch: 4, maxFrame: 1000 });
    opened.push(dev);
    peer.moveIn(dev.name);
    peer.ip('addr', 'add', KERNEL_IP.join('.'), 'peer', OUR_IP.join('.'), 'dev', dev.name);
    peer.ip('link', 'set', dev.name, 'up');
    const responder = new EchoResponder(dev);
    dev.start(responder);
    // 1200 bytes of payload: a 1228-byte packet, within the MTU but not the slot.
    const big = await runAsync(...peer.command(['ping', '-c', '1', '-W', '1', '-s', '1200', OUR_IP.join('.')]));
    expect(big.code).not.toBe(0);
    expect(dev.rxOversize).toBe(1);
    expect(responder.echoRequests).toBe(0);
    const small = await runAsync(...peer.command(['ping', '-c', '1', '-W', '2', '-s', '900', OUR_IP.join('.')]));
    expect(small.code).toBe(0);
    expect(responder.echoRequests).toBe(1);
    dev.close();
  });
});
