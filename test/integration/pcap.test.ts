import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, sh } from '../helpers/harness.js';
import { readPcap } from '../../src/link/pcap.js';

describe('--pcap writes every frame in and out', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 15, pcap: true, mac: '02:00:00:00:15:02' });
    expect(tb.peer(`ping -c 4 -i 0.2 -W 2 ${tb.stackIp}`).code).toBe(0);
    // The capture is complete once the daemon has stopped.
    await tb.stopDaemon();
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('reads back with pcap-parser: both directions of every ping and the ARP exchange', async () => {
    const cap = await readPcap(tb.pcapPath!);
    expect(cap.linkType).toBe(1);
    const frames = cap.packets.map((p) => p.data);
    const isIcmp = (f: Uint8Array, type: number) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 1 && f[34] === type;
    expect(frames.filter((f) => isIcmp(f, 8)).length).toBe(4);
    expect(frames.filter((f) => isIcmp(f, 0)).length).toBe(4);
    // Replies leave from the stack's MAC.
    for (const f of frames.filter((x) => isIcmp(x, 0))) expect(Buffer.from(f.subarray(6, 12)).toString('hex')).toBe('020000001502');
    expect(frames.some((f) => f[12] === 0x08 && f[13] === 0x06)).toBe(true);
  });

  it('decodes in tshark with no malformed packets and good checksums', () => {
    const r = sh(`tshark -r ${tb.pcapPath} -o ip.check_checksum:TRUE -T fields -e frame.protocols -e ip.checksum.status -e icmp.checksum.status -Y "icmp or arp or _ws.malformed or _ws.expert.severity >= error"`);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.includes('icmp')).length).toBe(8);
    expect(r.stdout).not.toContain('malformed');
    for (const l of lines.filter((x) => x.includes('icmp'))) {
      const [, ipStatus, icmpStatus] = l.split('\t');
      // Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
      expect(ipStatus).toBe('1');
      expect(icmpStatus).toBe('1');
    }
  });
});
