import { describe, expect, it } from 'vitest';
import { NfLogger, formatLogLine } from '../../src/netfilter/env.js';
import type { Logger } from '../../src/log.js';
import { echoRequest } from '../helpers/frames.js';
import { concat, ethHeader } from '../helpers/frames.js';
import { Packet } from '../../src/packet/packet.js';
import type { Interface } from '../../src/link/interface.js';
import { eth0, pkt, tcpDatagram, udpDatagram } from '../helpers/nft.js';

describe('netfilter log lines', () => {
  // The expected lines are the kernel's for the same packets (test/integration/router-rules.netns.test.ts
  // compares with dmesg): every field ends with a space, the last one too.
  it('carry the fields Linux writes', () => {
    const syn = pkt(tcpDatagram('10.0.0.1', '10.0.0.2', 40000, 22, { tos: 0x10 }));
    syn.buf[syn.l3 + 6] = 0x40; // DF
    expect(formatLogLine('IN-DROP: ', syn, eth0, null)).toBe(
      'IN-DROP: IN=eth0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x10 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=65535 RES=0x00 SYN URGP=0 ',
    );
    const u = pkt(udpDatagram('10.0.0.1', '10.0.0.2', 5353, 53));
    u.mark = 0x2a;
    expect(formatLogLine('', u, null, eth0)).toBe(
      'IN= OUT=eth0 SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=4660 PROTO=UDP SPT=5353 DPT=53 LEN=8 MARK=0x2a ',
    );
    const e = pkt(echoRequest('10.0.0.1', '10.0.0.2', { ident: 7, seq: 3 }));
    expect(formatLogLine('', e, eth0, null)).toMatch(/PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=3 $/);
  });

  it('print the link header of a packet that came in on an Ethernet device (MAC=)', () => {
    const frame = concat(ethHeader('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800), udpDatagram('10.0.0.1', '10.0.0.2', 1, 2));
    const p = Packet.copyOf(frame);
    p.l3 = p.start + 14;
    const tap = { name: 'tap0', index: 2, linkType: 'ether' } as unknown as Interface;
    expect(formatLogLine('', p, tap, null)).toMatch(/^IN=tap0 OUT= MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 SRC=10\.0\.0\.1 /);
    // Going out (no in device) there is no MAC= at all.
    expect(formatLogLine('', p, null, tap)).toMatch(/^IN= OUT=tap0 SRC=/);
  });

  it('show the reserved TCP bits as Linux shifts them, and an ICMP error\'s quoted datagram in brackets', () => {
    const t = pkt(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 2, { flags: 0x12 }));
    t.buf[t.l3 + 20 + 12] |= 0x01;
    expect(formatLogLine('', t, null, null)).toContain(' RES=0x04 ACK SYN URGP=0 ');
    const quoted = udpDatagram('10.0.0.1', '10.0.0.9', 1000, 33434, { ttl: 1 });
    const icmp = new Uint8Array(8 + 28);
    icmp[0] = 11;
    icmp.set(quoted.subarray(0, 28), 8);
    const outer = pkt(concat(udpDatagram('10.0.0.2', '10.0.0.1', 0, 0).subarray(0, 20), icmp));
    outer.buf[outer.l3 + 9] = 1;
    outer.buf[outer.l3 + 3] = 56;
    expect(formatLogLine('', outer, null, null)).toBe(
      'IN= OUT= SRC=10.0.0.2 DST=10.0.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=4660 PROTO=ICMP TYPE=11 CODE=0 [SRC=10.0.0.1 DST=10.0.0.9 LEN=28 TOS=0x00 PREC=0x00 TTL=1 ID=4660 PROTO=UDP SPT=1000 DPT=33434 LEN=8 ] ',
    );
    // A quote cut short, and a TCP header too short to read.
    const short = pkt(concat(udpDatagram('10.0.0.2', '10.0.0.1', 0, 0).subarray(0, 20), icmp.subarray(0, 20)));
    short.buf[short.l3 + 9] = 1;
    expect(formatLogLine('', short, null, null)).toMatch(/TYPE=11 CODE=0 INCOMPLETE \[20 bytes\] $/);
    const cut = Packet.copyOf(tcpDatagram('10.0.0.1', '10.0.0.2', 1, 2).subarray(0, 30));
    cut.l3 = cut.start;
    expect(formatLogLine('', cut, null, null)).toMatch(/PROTO=TCP INCOMPLETE \[10 bytes\] $/);
  });

  it('are rate-limited: 10 in 5 s, then the count of those suppressed', () => {
    const lines: { obj: object; msg?: string }[] = [];
    const capture = (obj: object | string, msg?: string): void => {
      lines.push({ obj: typeof obj === 'string' ? { msg: obj } : obj, msg });
    };
    const logger: Logger = { debug: capture, info: capture, warn: capture, error: capture };
    let t = 0;
    const nl = new NfLogger(logger, () => t);
    const p = pkt(udpDatagram('10.0.0.1', '10.0.0.2', 1, 2));
    for (let i = 0; i < 25; i++) nl.log('x ', 'warn', p, eth0, null);
    expect(lines.length).toBe(10);
    t += 5000;
    nl.log('x ', 'info', p, eth0, null);
    expect(lines.length).toBe(11);
    expect(lines[10].obj).toMatchObject({ suppressed: 15 });
    expect(lines[10].msg).toMatch(/^x IN=eth0 /);
  });
});
