import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, shOk } from '../helpers/harness.js';
import { kernelCsumErrors, offloadStats } from '../helpers/offload-live.js';

// virtio-net offloads through a real TAP with the kernel on the other side (10.233.101.0/24 and
// 10.233.102.0/24), in a namespace or (TAPSTACK_TEST_PEER=local) in this one.

function iperfBits(out: string): number {
  const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second;
}

describe('offloads over a TAP with the kernel as peer', () => {
  for (const offload of [true, false]) {
    describe(offload ? 'offloads on' : 'offloads off (ethtool -K)', () => {
      let tb: Testbed;
      beforeAll(async () => {
        tb = await Testbed.start({
          type: 'tap',
          subnet: offload ? 101 : 102,
          net: '10.233',
          nsPrefix: 'tsofn',
          devPrefix: 'tsof',
          extraConfig: ['service add iperf3 tcp :5201', 'service add echo tcp :7'],
        });
        if (!offload) {
          const r = await tb.ctlRun('ethtool', '-K', tb.dev, 'lro', 'off', 'rx', 'off', 'tso', 'off', 'tx', 'off');
          expect(r.code).toBe(0);
        }
      }, 30_000);
      afterAll(async () => {
        await tb?.close();
      });

      it('iperf3 both ways; super-packets are used only with the offloads on', async () => {
        const up = tb.peer(`iperf3 -c ${tb.stackIp} -t 2 -J`, { timeoutMs: 30_000 });
        expect(up.code).toBe(0);
        const down = tb.peer(`iperf3 -c ${tb.stackIp} -t 2 -R -J`, { timeoutMs: 30_000 });
        expect(down.code).toBe(0);
        expect(iperfBits(up.stdout)).toBeGreaterThan(1e8);
        expect(iperfBits(down.stdout)).toBeGreaterThan(1e8);
        const s = await offloadStats((...a) => tb.ctlRun(...a), tb.dev);
        if (offload) {
          // The kernel handed over TSO super-packets and took ours whole.
          expect(s.rx_gso_packets).toBeGreaterThan(100);
          expect(s.rx_gso_segments).toBeGreaterThan(s.rx_gso_packets * 4);
          expect(s.tx_gso_packets).toBeGreaterThan(100);
          expect(s.tx_gso_sw_packets + s.tx_csum_sw).toBe(0);
        } else {
          expect(s.rx_gso_packets + s.tx_gso_packets).toBe(0);
          // TCP still builds super-packets (GSO on); they are cut, and checksummed, before the device.
          expect(s.tx_gso_sw_packets).toBeGreaterThan(100);
          expect(s.tx_gso_sw_segments).toBeGreaterThan(s.tx_gso_sw_packets);
        }
        // Every segment the kernel got had a right checksum.
        expect(kernelCsumErrors((c) => tb.peer(c))).toBe(0);
        expect((await tb.nstat()).TcpInCsumErrors).toBe(0);
      }, 60_000);

      it('echoes 8 MB byte for byte', async () => {
        const inFile = path.join(tb.dir, 'in');
        const outFile = path.join(tb.dir, 'out');
        shOk(`head -c 8388608 /dev/urandom > ${inFile}`);
        const r = await tb.peerAsync(`socat -t 30 -T 30 - TCP4:${tb.stackIp}:7 < ${inFile} > ${outFile}`, 60_000);
        expect(r.code).toBe(0);
        expect(fs.readFileSync(outFile).equals(fs.readFileSync(inFile))).toBe(true);
      }, 60_000);
    });
  }
});
