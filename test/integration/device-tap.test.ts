// TAP devices against a kernel peer: the kernel side is moved into a
// namespace of our own (the fd keeps working across the move), the kernel
// pings an address that this test answers for in JS (ARP and ICMP echo), and
// frames sent from JS show up in the kernel's counters. Needs root.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerSide, run, runAsync } from '../helpers/peer.js';
import { equalAt } from '../helpers/frames.js';
import { checksum } from '../../src/wire/checksum.js';
import { openTap, type TapDevice } from '../../src/link/tap.js';
import { Packet } from '../../src/packet/packet.js';

const TAG = process.pid.toString(36);
const NS = `tsdevtap${TAG}`;
const peer = peerSide(NS);
// Private addresses, only ever on the test's own devices.
const KERNEL_IP = [10, 232, 1, 1];
const OUR_IP = [10, 232, 1, 2];
const OUR_MAC = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x02];
const ADDON = resolve(import.meta.dirname, '../../build/Release/tapstack_native.node');

function inNs(...args: string[]): string {
  return peer.run(...args);
}

/** Answers ARP for OUR_IP and ICMP echo requests to it; records what it saw. */
class Responder {
  arpRequests = 0;
  echoRequests = 0;
  badFrames = 0;
  private out: Uint8Array[] = [];

  constructor(private readonly dev: TapDevice) {}

  frame(f: Uint8Array): void {
    if (f.length < 14) {
      this.badFrames++;
      return;
    }
    const type = (f[12] << 8) | f[13];
    if (type === 0x0806 && f.length >= 42 && f[21] === 1 && equalAt(f, 38, OUR_IP)) {
      this.arpRequests++;
      const r = new Uint8Array(42);
      r.set(f.subarray(6, 12), 0); // to the asker
      r.set(OUR_MAC, 6);
      r.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2], 12);
      r.set(OUR_MAC, 22);
      r.set(OUR_IP, 28);
      r.set(f.subarray(22, 32), 32); // sender MAC + IP become target
      this.out.push(r);
    } else if (type === 0x0800 && f.length >= 34) {
      const ihl = (f[14] & 0x0f) * 4;
      const icmp = 14 + ihl;
      if (f[14] >> 4 !== 4 || f[23] !== 1 || !equalAt(f, 30, OUR_IP) || f.length < icmp + 8 || f[icmp] !== 8) return;
      if (checksum(f, 14, icmp - 14) !== 0) this.badFrames++;
      this.echoRequests++;
      const r = f.slice(); // the receive slot is reused after batchEnd
      r.set(f.subarray(6, 12), 0);
      r.set(OUR_MAC, 6);
      r.set(f.subarray(30, 34), 26);
      r.set(f.subarray(26, 30), 30);
      r[icmp] = 0;
      r[icmp + 2] = r[icmp + 3] = 0;
      const c = checksum(r, icmp, 14 + ((f[16] << 8) | f[17]) - icmp);
      r[icmp + 2] = c >> 8;
      r[icmp + 3] = c & 0xff;
      this.out.push(r);
    }
  }

  batchEnd(): void {
    if (this.out.length > 0) {
      const n = this.dev.sendBatch(this.out, this.out.length);
      expect(n).toBe(this.out.length);
      this.out = [];
    }
  }
}

function rxPackets(name: string): number {
  return Number(inNs('cat', `/sys/class/net/${name}/statistics/rx_packets`).trim());
}

describe('TAP device with a kernel peer in a namespace', () => {
  const opened: TapDevice[] = [];
  const persistent: string[] = [];

  beforeAll(() => {
    peer.create();
  });

  afterAll(() => {
    for (const dev of opened) dev.close();
    for (const name of persistent) {
      try {
        run('ip', 'tuntap', 'del', 'dev', name, 'mode', 'tap');
      } catch {
        // already gone
      }
    }
    try {
      peer.destroy();
    } catch {
      // never created
    }
  });

  function openInNs(suffix: string, vnetHdr: boolean): TapDevice {
    const dev = openTap(`tt${TAG}${suffix}%d`, { vnetHdr, batch: 16, maxFrame: 2048 });
    opened.push(dev);
    peer.moveIn(dev.name);
    peer.ip('addr', 'add', `${KERNEL_IP.join('.')}/24`, 'dev', dev.name);
    peer.ip('link', 'set', dev.name, 'up');
    return dev;
  }

  for (const vnetHdr of [false, true]) {
    it(`answers the kernel's ARP and ping from JS${vnetHdr ? ' with IFF_VNET_HDR' : ''}`, async () => {
      const dev = openInNs(vnetHdr ? 'v' : 'p', vnetHdr);
      expect(dev.linkType).toBe('ether');
      expect(dev.maxFrameSize).toBe(2048);
      const responder = new Responder(dev);
      dev.start(responder);
      const ping = await runAsync(...peer.command(['ping', '-c', '3', '-i', '0.2', '-W', '2', OUR_IP.join('.')]));
      expect(ping.out).toMatch(/3 received/);
      expect(ping.code).toBe(0);
      expect(responder.arpRequests).toBeGreaterThanOrEqual(1);
      expect(responder.echoRequests).toBe(3);
      expect(responder.badFrames).toBe(0);
      expect(dev.rxFrames).toBeGreaterThanOrEqual(4);

      // JS -> kernel: broadcast frames of a local experimental EtherType
      // (IEEE 802 0x88B5) land on the kernel side's receive counter.
      const before = rxPackets(dev.name);
      const frame = new Uint8Array(60);
      frame.fill(0xff, 0, 6);
      frame.set(OUR_MAC, 6);
      frame[12] = 0x88;
      frame[13] = 0xb5;
      expect(dev.sendBatch([frame, frame, frame, frame, frame], 5)).toBe(5);
      expect(rxPackets(dev.name) - before).toBe(5);
      dev.close();
    });
  }

  for (const vnetHdr of [false, true]) {
    it(`writes a frame from its head and payload views with one writev (sendBatchGather)${vnetHdr ? ' with IFF_VNET_HDR' : ''}`, async () => {
      const dev = openInNs(vnetHdr ? 'gv' : 'gp', vnetHdr);
      dev.start(new Responder(dev));
      const theirMac = inNs('cat', `/sys/class/net/${dev.name}/address`).trim().split(':').map((h) => parseInt(h, 16));
      // A UDP datagram to the kernel side, its checksum over all of it: the kernel drops
      // it unless the payload views arrive after the head, whole and in order.
      const parts = ['alpha-', 'beta-', 'gamma'].map((t) => Buffer.from(t));
      const payload = Buffer.concat([Buffer.from('head-'), ...parts]);
      const head = new Uint8Array(14 + 20 + 8 + 5);
      head.set(theirMac, 0);
      head.set(OUR_MAC, 6);
      head.set([0x08, 0x00], 12);
      const ipLen = 20 + 8 + payload.length;
      head.set([0x45, 0, ipLen >> 8, ipLen & 0xff, 0, 1, 0x40, 0, 64, 17, 0, 0, ...OUR_IP, ...KERNEL_IP], 14);
      const ic = checksum(head, 14, 20);
      head[24] = ic >> 8;
      head[25] = ic & 0xff;
      const udpLen = 8 + payload.length;
      head.set([0x9c, 0x40, 0x27, 0x0f, udpLen >> 8, udpLen & 0xff, 0, 0], 34);
      head.set(payload.subarray(0, 5), 42);
      const pseudo = new Uint8Array(12 + udpLen);
      pseudo.set([...OUR_IP, ...KERNEL_IP, 0, 17, udpLen >> 8, udpLen & 0xff], 0);
      pseudo.set(head.subarray(34, 42), 12);
      pseudo.set(payload, 20);
      const uc = checksum(pseudo, 0, pseudo.length);
      head[40] = uc >> 8;
      head[41] = uc & 0xff;
      const pkt = new Packet(new Uint8Array(head.length + 64), 0, head.length + 16);
      pkt.buf.set(head);
      parts.forEach((v, i) => (pkt.gatherList()[i] = v));
      pkt.setGather(head.length, parts.length);
      const got = runAsync(...peer.command(['timeout', '5', 'socat', '-u', `UDP-RECVFROM:9999,bind=${KERNEL_IP.join('.')}`, '-']));
      await new Promise((r) => setTimeout(r, 300));
      expect(dev.sendBatchGather).toBeTypeOf('function');
      expect(dev.sendBatchGather!([head], [pkt], 1)).toBe(1);
      const r = await got;
      expect(r.code).toBe(0);
      expect(r.out).toBe('head-alpha-beta-gamma');
      dev.close();
    });
  }

  it('serves two devices flooded at once', async () => {
    // Two TAPs on their own subnets, 10.232.2.128/26 and 10.232.2.192/26;
    // .130 and .194 are answered from JS.
    const a = openTap(`tt${TAG}a%d`, { batch: 8, maxFrame: 2048 });
    const b = openTap(`tt${TAG}b%d`, { batch: 8, maxFrame: 2048 });
    opened.push(a, b);
    const subnets: [TapDevice, number][] = [
      [a, 128],
      [b, 192],
    ];
    const replies = [0, 0];
    subnets.forEach(([dev, base], i) => {
      peer.moveIn(dev.name);
      peer.ip('addr', 'add', `10.232.2.${base + 1}/26`, 'dev', dev.name);
      peer.ip('link', 'set', dev.name, 'up');
      const me = [10, 232, 2, base + 2];
      const out: Uint8Array[] = [];
      dev.start({
        frame(f) {
          const type = (f[12] << 8) | f[13];
          if (type === 0x0806 && f[21] === 1 && equalAt(f, 38, me)) {
            const r = new Uint8Array(42);
            r.set(f.subarray(6, 12), 0);
            r.set(OUR_MAC, 6);
            r.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2], 12);
            r.set(OUR_MAC, 22);
            r.set(me, 28);
            r.set(f.subarray(22, 32), 32);
            out.push(r);
          } else if (type === 0x0800 && f[23] === 1 && equalAt(f, 30, me) && f[34] === 8) {
            const r = f.slice();
            r.set(f.subarray(6, 12), 0);
            r.set(OUR_MAC, 6);
            r.set(f.subarray(30, 34), 26);
            r.set(f.subarray(26, 30), 30);
            r[34] = 0;
            // RFC 1624: type 8 -> 0 adds 0x0800 to the one's complement checksum.
            const c = ((r[36] << 8) | r[37]) + 0x0800;
            const folded = (c & 0xffff) + (c >>> 16);
            r[36] = folded >> 8;
            r[37] = folded & 0xff;
            out.push(r);
            replies[i]++;
          }
        },
        batchEnd() {
          if (out.length > 0) dev.sendBatch(out, out.length);
          out.length = 0;
        },
      });
    });
    const pings = await Promise.all(
      subnets.map(([, base]) =>
        runAsync(...peer.command(['ping', '-q', '-f', '-c', '500', '-w', '10', `10.232.2.${base + 2}`])),
      ),
    );
    for (const p of pings) {
      expect(p.out).toMatch(/500 received/);
      expect(p.code).toBe(0);
    }
    expect(replies).toEqual([500, 500]);
    a.close();
    b.close();
  });

  it('delivers a burst larger than the batch over several wakeups', async () => {
    const dev = openInNs('b', false);
    let frames = 0;
    let batches = 0;
    let largest = 0;
    let inBatch = 0;
    dev.start({
      frame(f) {
        if (f.length >= 34 && f[12] === 0x08 && f[13] === 0x00 && f[23] === 17) frames++;
        inBatch++;
      },
      batchEnd() {
        batches++;
        largest = Math.max(largest, inBatch);
        inBatch = 0;
      },
    });
    // A static neighbour so the kernel sends UDP at once, no ARP.
    peer.ip('neigh', 'replace', OUR_IP.join('.'), 'lladdr', OUR_MAC.map((b) => b.toString(16).padStart(2, '0')).join(':'), 'dev', dev.name);
    // 200 datagrams in one burst from a process in the namespace.
    const sender = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    s.sendto(b"x" * 100, ("${OUR_IP.join('.')}", 9))`;
    const r = await runAsync(...peer.command(['/usr/bin/python3', '-c', sender]));
    expect(r.code).toBe(0);
    for (let i = 0; i < 50 && frames < 200; i++) await new Promise((done) => setTimeout(done, 20));
    expect(frames).toBe(200);
    expect(largest).toBeLessThanOrEqual(dev.batch);
    expect(batches).toBeGreaterThanOrEqual(Math.ceil(200 / dev.batch));
    dev.close();
  });

  it('runs nextTicks and promise jobs after each wakeup and routes a throwing receiver to uncaughtException', async () => {
    // In a child process inside the namespace, so the exception can be
    // observed without failing this test run. The child's own UDP socket sends
    // out through the TAP (static neighbour, no ARP) and reads the frames back.
    const script = `
      const a = require(${JSON.stringify(ADDON)});
      const { execFileSync } = require('node:child_process');
      const dgram = require('node:dgram');
      const slots = 8, size = 2048;
      // The frame lengths first, then the slots.
      const buf = new ArrayBuffer(slots * (4 + size)), lens = new Uint32Array(buf, 0, slots);
      const order = [];
      let frames = 0;
      process.on('uncaughtException', (e) => order.push('uncaught:' + e.message));
      a.init((id, count) => {
        for (let j = 0; j < count; j++) {
          const f = new Uint8Array(buf, 4 * slots + j * size, lens[j]);
          if (f[12] !== 8 || f[13] !== 0 || f[23] !== 17) continue;
          const k = ++frames;
          order.push('frame' + k);
          Promise.resolve().then(() => order.push('micro' + k));
          process.nextTick(() => order.push('tick' + k));
          if (k === 1) throw new Error('boom');
        }
      });
      const d = a.open('ue${TAG}%d', true, false, buf, slots, size);
      execFileSync('ip', ['addr', 'add', '203.0.113.1/24', 'dev', d.name]);
      a.setLinkUp(d.name, true);
      execFileSync('ip', ['neigh', 'replace', '203.0.113.9', 'lladdr', '02:00:5e:00:53:09', 'dev', d.name]);
      d.start();
      const s = dgram.createSocket('udp4');
      let sent = 0;
      const t = setInterval(() => {
        if (sent++ === 3) { clearInterval(t); s.close(); d.close(); console.log(JSON.stringify(order)); return; }
        s.send('x', 9, '203.0.113.9');
      }, 30);
    `;
    const r = await runAsync(...peer.command([process.execPath, '-e', script]));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual([
      'frame1', 'uncaught:boom', 'tick1', 'micro1',
      'frame2', 'tick2', 'micro2',
      'frame3', 'tick3', 'micro3',
    ]);
  });

  it('attaches to a persistent device made with ip tuntap and configures it', () => {
    const name = `tp${TAG}`;
    run('ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap');
    persistent.push(name);
    const dev = openTap(name, { batch: 4, maxFrame: 2048 });
    try {
      expect(dev.name).toBe(name);
      const line = run('ip', '-o', 'link', 'show', 'dev', name);
      expect(dev.ifindex).toBe(Number(line.split(':')[0]));
      dev.setMtu(1400);
      expect(dev.getMtu()).toBe(1400);
      dev.setUp();
      const shown = run('ip', '-o', 'link', 'show', 'dev', name);
      expect(shown).toMatch(/mtu 1400/);
      expect(shown).toMatch(/<[^>]*\bUP\b[^>]*>/);
      dev.setUp(false);
      expect(run('ip', '-o', 'link', 'show', 'dev', name)).not.toMatch(/<[^>]*\bUP\b[^>]*>/);
    } finally {
      dev.close();
    }
    // Persistent: still there after we let go, and can be attached again.
    expect(run('ip', '-o', 'link', 'show', 'dev', name)).toContain(name);
    openTap(name, { batch: 1, maxFrame: 2048 }).close();
  });

  it('reports EBADFD through onError when a persistent device is deleted under it', async () => {
    const name = `tq${TAG}`;
    run('ip', 'tuntap', 'add', 'dev', name, 'mode', 'tap');
    persistent.push(name);
    const dev = openTap(name, { batch: 4, maxFrame: 2048 });
    opened.push(dev);
    const errors: string[] = [];
    dev.onError = (err) => errors.push((err as NodeJS.ErrnoException).code ?? '');
    dev.start({ frame() {}, batchEnd() {} });
    run('ip', 'link', 'del', name);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((done) => setTimeout(done, 10));
    expect(errors).toEqual(['EBADFD']);
    dev.close();
  });
});
