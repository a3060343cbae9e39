import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { ROOT, Testbed, pingSummary, shOk, sh } from '../helpers/harness.js';
import { concat, ethHeader, hex } from '../helpers/frames.js';
import { checksum } from '../../src/wire/checksum.js';
import { parseIp4 } from '../../src/wire/addr.js';

const STACK_MAC = '02:00:00:00:16:02';
const PROBE = path.join(ROOT, 'test/helpers/icmp-probe.py');

interface IcmpMsg {
  src: string;
  type: number;
  code: number;
  len: number;
  id?: number;
  seq?: number;
  data?: string;
  quote?: string;
}

describe('IP fragments between the kernel and the stack', () => {
  let tb: Testbed;
  let peerMac: string;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 16, mac: STACK_MAC, pcap: true });
    peerMac = tb.peer(`cat /sys/class/net/${tb.dev}/address`).stdout.trim();
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });
  afterAll(async () => {
    await tb?.close();
  });

  /** An echo request of `dataLen` bytes cut into fragments of `fragData` bytes (multiple of 8). */
  function echoFragments(ident: number, dataLen: number, fragData: number, ipId: number): Uint8Array[] {
    const icmp = new Uint8Array(8 + dataLen);
    icmp[0] = 8;
    icmp[4] = ident >> 8;
    icmp[5] = ident & 0xff;
    icmp[7] = 1;
    for (let i = 0; i < dataLen; i++) icmp[8 + i] = (i * 7) & 0xff;
    const c = checksum(icmp, 0, icmp.length);
    icmp[2] = c >> 8;
    icmp[3] = c & 0xff;
    const frames: Uint8Array[] = [];
    for (let off = 0; off < icmp.length; off += fragData) {
      const part = icmp.subarray(off, Math.min(off + fragData, icmp.length));
      const more = off + part.length < icmp.length;
      frames.push(concat(ethHeader(STACK_MAC, peerMac, 0x0800), ipFrag(part, off, more, ipId)));
    }
    return frames;
  }

  function ipFrag(payload: Uint8Array, offset: number, more: boolean, ipId: number): Uint8Array {
    const h = new Uint8Array(20);
    const total = 20 + payload.length;
    h[0] = 0x45;
    h[2] = total >> 8;
    h[3] = total & 0xff;
    h[4] = ipId >> 8;
    h[5] = ipId & 0xff;
    const fo = offset / 8;
    h[6] = (more ? 0x20 : 0) | (fo >> 8);
    h[7] = fo & 0xff;
    h[8] = 64;
    h[9] = 1;
    const s = parseIp4(tb.peerIp)!;
    const d = parseIp4(tb.stackIp)!;
    for (let i = 0; i < 4; i++) {
      h[12 + i] = (s >>> (24 - 8 * i)) & 0xff;
      h[16 + i] = (d >>> (24 - 8 * i)) & 0xff;
    }
    const c = checksum(h, 0, 20);
    h[10] = c >> 8;
    h[11] = c & 0xff;
    return concat(h, payload);
  }

  function probe(frames: Uint8Array[], waitS: number): IcmpMsg[] {
    const out = shOk(tb.peerCmd(`/usr/bin/python3 ${PROBE} ${tb.dev} ${waitS} ${frames.map(hex).join(' ')}`), { timeoutMs: 30_000 });
    return out
      .trim()
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as IcmpMsg)
      .filter((m) => m.src === tb.stackIp);
  }

  it('the kernel pings with -s 4000 and -s 65000 (fragments both ways)', async () => {
    for (const size of [4000, 65000]) {
      const r = await tb.peerAsync(`ping -c 3 -i 0.3 -W 3 -s ${size} ${tb.stackIp}`, 30_000);
      expect(pingSummary(r.stdout), `ping -s ${size}`).toEqual({ sent: 3, received: 3, loss: 0 });
      expect(r.stdout).toContain(`${size + 8} bytes from ${tb.stackIp}`);
    }
  });

  it('tapstack ping -s 4000, 30000 and 65000 reach the kernel, and -M do refuses to fragment', async () => {
    for (const size of [4000, 30000, 65000]) {
      const r = await tb.ctlRun('ping', tb.peerIp, '-c', '3', '-i', '0.3', '-s', String(size));
      expect(r.code, `tapstack ping -s ${size}`).toBe(0);
      expect(r.stdout).toContain('3 packets transmitted, 3 received, 0% packet loss');
      expect(r.stdout).toContain(`${size + 8} bytes from ${tb.peerIp}: icmp_seq=1 ttl=64`);
    }
    const df = await tb.ctlRun('ping', tb.peerIp, '-c', '1', '-s', '1473', '-M', 'do');
    expect(df.stdout).toContain('ping: local error: message too long, mtu=1500');
    expect(df.code).not.toBe(0);
  });

  it('reassembles fragments sent out of order and duplicated', async () => {
    const n0 = await tb.nstat();
    const f = echoFragments(0x5151, 3000, 800, 0x7001);
    const shuffled = [f[3], f[1], f[1], f[0], f[2], f[0]];
    const got = probe(shuffled, 1.5);
    const replies = got.filter((m) => m.type === 0 && m.id === 0x5151);
    expect(replies).toHaveLength(1);
    expect(replies[0].len).toBe(3008);
    const n1 = await tb.nstat();
    expect(n1.IpReasmOKs - n0.IpReasmOKs).toBe(1);
    expect(n1.IpReasmReqds - n0.IpReasmReqds).toBe(6);
  });

  it('discards a datagram with overlapping fragments and counts it', async () => {
    const n0 = await tb.nstat();
    const f = echoFragments(0x5252, 2400, 800, 0x7002);
    // A second fragment at offset 400: overlaps the first and the second.
    const icmpPart = new Uint8Array(800).fill(0xee);
    const overlap = concat(ethHeader(STACK_MAC, peerMac, 0x0800), ipFrag(icmpPart, 400, true, 0x7002));
    const got = probe([f[0], overlap, f[1], f[2], f[3]], 1.5);
    expect(got.filter((m) => m.type === 0 && m.id === 0x5252)).toHaveLength(0);
    const n1 = await tb.nstat();
    expect(n1.IpExtReasmOverlaps - n0.IpExtReasmOverlaps).toBe(1);
    expect(n1.IpReasmFails - n0.IpReasmFails).toBeGreaterThanOrEqual(1);
    expect(n1.IpReasmOKs - n0.IpReasmOKs).toBe(0);
  });

  it('answers a datagram whose last fragment never comes with time exceeded after ipfrag_time', async () => {
    expect((await tb.ctlRun('sysctl', '-w', 'net.ipv4.ipfrag_time=2')).stdout).toBe('net.ipv4.ipfrag_time = 2\n');
    const n0 = await tb.nstat();
    const f = echoFragments(0x5353, 2400, 800, 0x7003);
    const t0 = Date.now();
    const got = probe(f.slice(0, 3), 4);
    const exceeded = got.filter((m) => m.type === 11);
    expect(exceeded).toHaveLength(1);
    expect(exceeded[0].code).toBe(1);
    // The quote starts with the first fragment's IP header.
    expect(exceeded[0].quote!.slice(0, 40)).toBe(hex(f[0].subarray(14, 34)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    const n1 = await tb.nstat();
    expect(n1.IpReasmTimeout - n0.IpReasmTimeout).toBe(1);
    expect(n1.IcmpOutTimeExcds - n0.IcmpOutTimeExcds).toBe(1);
    // Without the first fragment there is nothing to quote: no ICMP (RFC 792).
    const none = probe(f.slice(1, 3), 3.5);
    expect(none.filter((m) => m.type === 11)).toHaveLength(0);
    await tb.ctlRun('sysctl', '-w', 'net.ipv4.ipfrag_time=30');
  });

  it('writes a capture that tshark decodes with no malformed packets and no bad checksums', async () => {
    await tb.stopDaemon();
    // The overlapping datagram (IP ID 0x7002) was made bad on purpose; nothing else may be flagged.
    const bad = sh(
      `tshark -r ${tb.pcapPath} -o ip.check_checksum:TRUE -o ip.defragment:TRUE -Y "(_ws.malformed or _ws.expert.severity >= error or ip.checksum.status == 0 or icmp.checksum.status == 0) and not ip.id == 0x7002" -T fields -e frame.number -e _ws.col.Info`,
    );
    expect(bad.code).toBe(0);
    expect(bad.stdout.trim()).toBe('');
    const frags = sh(`tshark -r ${tb.pcapPath} -Y "ip.flags.mf == 1 || ip.frag_offset > 0" -T fields -e frame.number`);
    expect(frags.stdout.trim().split('\n').length).toBeGreaterThan(100);
  });
});
