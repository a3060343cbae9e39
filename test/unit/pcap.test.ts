import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE_ETHERNET, PCAP_SNAPLEN, PcapWriter, readPcap } from '../../src/link/pcap.js';
import { emitIpv4, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { emitUdp } from '../../src/wire/udp.js';
import * as F from '../fixtures/wire-frames.js';

const dir = mkdtempSync(join(tmpdir(), 'tapstack-pcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const etherFrames = [
  F.ARP_REQUEST_FRAME,
  F.ARP_REPLY_FRAME,
  F.ECHO_REQUEST_FRAME,
  F.FRAG_FIRST_FRAME,
  F.FRAG_LAST_FRAME,
  F.RR_ECHO_REQUEST_FRAME,
  F.UDP_FRAME,
  F.PORT_UNREACH_FRAME,
  F.FRAG_NEEDED_FRAME,
  F.VLAN_ARP_FRAME,
  F.QINQ_ECHO_FRAME,
].map((h) => F.hex(h));

/** A minimal IPv6 header: no next header (59), no payload, ::1 -> ::1. */
const ipv6Packet = F.hex('6000000000003b40' + '00000000000000000000000000000001'.repeat(2));

/** The largest IPv4 datagram, UDP with a valid checksum: bigger than the writer's chunk. */
function bigUdpPacket(): Uint8Array {
  const p = new Uint8Array(65535);
  for (let i = 28; i < p.length; i++) p[i] = i & 0xff;
  const src = 0x0a4d0001;
  const dst = 0x0a4d0002;
  emitUdp({ srcPort: 5000, dstPort: 5001, payloadLen: 65535 - 28 }, p, 20, src, dst);
  emitIpv4(
    { src, dst, protocol: IPPROTO_UDP, ttl: 64, ident: 1, dontFrag: false, moreFrags: false, fragOffset: 0, payloadLen: 65515 },
    p,
    0,
  );
  return p;
}

const BAD_FILTER =
  '_ws.malformed || _ws.expert.severity >= "warning" || ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad"';

function tshark(path: string, ...args: string[]): string {
  // tshark is a required test tool (installed by scripts/setup-system); a missing one fails here.
  return execFileSync('tshark', ['-r', path, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

describe('PcapWriter', () => {
  const path = join(dir, 'mixed.pcap');
  const big = bigUdpPacket();
  // Ether frames, then bare IP frames (TUN) of both versions, then one bigger than 64 KiB.
  const records: { frame: Uint8Array; link: 'ether' | 'ip'; ts: number }[] = [
    ...etherFrames.map((frame, i) => ({ frame, link: 'ether' as const, ts: 1_700_000_000_000_000 + i * 1001 })),
    ...etherFrames.slice(2, 9).map((f, i) => ({ frame: f.subarray(14), link: 'ip' as const, ts: 1_700_000_001_999_999 + i })),
    { frame: ipv6Packet, link: 'ip', ts: 1_700_000_002_000_000 },
    { frame: big, link: 'ip', ts: 1_700_000_003_000_000 },
    { frame: etherFrames[0], link: 'ether', ts: 1_700_000_004_000_000 },
  ];
  const w = PcapWriter.open(path);
  for (const r of records) w.write(r.frame, r.link, r.ts);
  w.close();

  /** What each record should look like in the file. */
  const expected = records.map((r) => {
    if (r.link === 'ether') return r.frame;
    const e = new Uint8Array(14 + r.frame.length);
    e[12] = r.frame[0] >>> 4 === 6 ? 0x86 : 0x08;
    e[13] = r.frame[0] >>> 4 === 6 ? 0xdd : 0x00;
    e.set(r.frame, 14);
    return e;
  });

  it('writes the classic header: magic a1b2c3d4, v2.4, snaplen 262144, Ethernet', () => {
    const b = readFileSync(path);
    expect(b.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect([b.readUInt16LE(4), b.readUInt16LE(6)]).toEqual([2, 4]);
    expect(b.readUInt32LE(16)).toBe(PCAP_SNAPLEN);
    expect(b.readUInt32LE(20)).toBe(LINKTYPE_ETHERNET);
    const total = expected.reduce((n, e) => n + 16 + e.length, 24);
    expect(b.length).toBe(total);
  });

  it('reads back with pcap-parser: same bytes, same timestamps', async () => {
    const r = await readPcap(path);
    expect(r.linkType).toBe(LINKTYPE_ETHERNET);
    expect(r.packets.length).toBe(records.length);
    r.packets.forEach((p, i) => {
      expect(p.ts, `record ${i}`).toBe(records[i].ts);
      expect(p.data, `record ${i}`).toEqual(expected[i]);
    });
  });

  it('tshark reads every frame with the right length and EtherType', () => {
    const out = tshark(path, '-T', 'fields', '-e', 'frame.len', '-e', 'eth.type');
    const rows = out.trim().split('\n').map((l) => l.split('\t'));
    expect(rows.length).toBe(records.length);
    rows.forEach(([len, type], i) => {
      const e = expected[i];
      expect(Number(len), `frame ${i + 1}`).toBe(e.length);
      // The outermost EtherType / TPID (tshark lists tag TPIDs first for tagged frames).
      expect(parseInt(type.split(',')[0], 16), `frame ${i + 1}`).toBe((e[12] << 8) | e[13]);
    });
  });

  it('tshark finds no malformed packet and no bad checksum', () => {
    const bad = tshark(
      path,
      '-o', 'ip.check_checksum:TRUE',
      '-o', 'udp.check_checksum:TRUE',
      '-Y', BAD_FILTER,
    );
    expect(bad).toBe('');
    // The filter does catch damage: a header cut short and a flipped checksum byte.
    const broken = join(dir, 'broken.pcap');
    const bw = PcapWriter.open(broken);
    bw.write(etherFrames[2].subarray(14, 30), 'ip', 1);
    const flipped = etherFrames[6].slice();
    flipped[flipped.length - 1] ^= 1;
    bw.write(flipped, 'ether', 2);
    bw.close();
    const caught = tshark(broken, '-o', 'udp.check_checksum:TRUE', '-Y', BAD_FILTER, '-T', 'fields', '-e', 'frame.number');
    expect(caught.trim().split('\n')).toEqual(['1', '2']);
    // And it does decode the checksums as good (the filter is not vacuous).
    const good = tshark(path, '-o', 'udp.check_checksum:TRUE', '-Y', 'udp.checksum.status == "Good"', '-T', 'fields', '-e', 'frame.number');
    // UDP_FRAME and the UDP datagram quoted in PORT_UNREACH_FRAME, each as ether and as ip, and the 64 KiB one.
    expect(good.trim().split('\n').length).toBe(5);
  });

  it('reads a file that libpcap itself wrote (tcpdump -r ours -w theirs)', async () => {
    const theirs = join(dir, 'libpcap.pcap');
    execFileSync('tcpdump', ['-r', path, '-w', theirs], { stdio: 'ignore' });
    const a = await readPcap(path);
    const b = await readPcap(theirs);
    expect(b.linkType).toBe(LINKTYPE_ETHERNET);
    expect(b.packets).toEqual(a.packets);
  });
});

describe('PcapWriter buffering', () => {
  it('holds records until flush, flushes itself at 64 KiB, and close flushes the rest', () => {
    const path = join(dir, 'buffered.pcap');
    const w = PcapWriter.open(path);
    const f = etherFrames[2]; // 98 bytes -> 114 per record
    w.write(f, 'ether', 1);
    w.write(f, 'ether', 2);
    expect(statSync(path).size).toBe(24);
    w.flush();
    expect(statSync(path).size).toBe(24 + 2 * 114);
    // 600 records = 68400 bytes: one automatic flush along the way, the rest buffered.
    for (let i = 0; i < 600; i++) w.write(f, 'ether', 3 + i);
    const mid = statSync(path).size;
    expect(mid).toBeGreaterThan(24 + 2 * 114);
    expect(mid).toBeLessThan(24 + 602 * 114);
    w.close();
    expect(statSync(path).size).toBe(24 + 602 * 114);
    w.close(); // twice is harmless
    expect(() => w.write(f, 'ether', 0)).toThrow();
  });

  it('truncates frames beyond the snaplen but records their original length', async () => {
    const path = join(dir, 'snap.pcap');
    const w = PcapWriter.open(path);
    const huge = new Uint8Array(PCAP_SNAPLEN + 100).fill(7);
    w.write(huge, 'ether', 5);
    w.write(huge.subarray(0, 60), 'ip', 6); // version nibble 0: EtherType IPv4 by default
    w.close();
    const b = readFileSync(path);
    expect(b.readUInt32LE(24 + 8)).toBe(PCAP_SNAPLEN);
    expect(b.readUInt32LE(24 + 12)).toBe(PCAP_SNAPLEN + 100);
    const r = await readPcap(path);
    expect(r.packets.map((p) => p.data.length)).toEqual([PCAP_SNAPLEN, 74]);
    expect(r.packets[1].data[12]).toBe(0x08);
  });

  it('splits timestamps into seconds and microseconds', async () => {
    const path = join(dir, 'ts.pcap');
    const w = PcapWriter.open(path);
    w.write(etherFrames[0], 'ether', 1_234_567_890_123_456);
    w.close();
    const b = readFileSync(path);
    expect([b.readUInt32LE(24), b.readUInt32LE(28)]).toEqual([1_234_567_890, 123_456]);
  });
});
