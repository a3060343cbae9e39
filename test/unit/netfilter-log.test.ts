import { describe, expect, it } from 'vitest';
import { NfLogger, formatLogLine } from '../../src/netfilter/env.js';
import type { Logger } from '../../src/log.js';
import { echoRequest } from '../helpers/frames.js';
import { eth0, pkt, tcpDatagram, udpDatagram } from '../helpers/nft.js';

describe('netfilter log lines', () => {
  it('carry the fields Linux writes', () => {
    const syn = pkt(tcpDatagram('10.0.0.1', '10.0.0.2', 40000, 22, { tos: 0x10 }));
    syn.buf[syn.l3 + 6] = 0x40; // DF
    expect(formatLogLine('IN-DROP: ', syn, eth0, null)).toBe(
      'IN-DROP: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x10 PREC=0x00 TTL=64 ID=4660 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=65535 RES=0x00 SYN URGP=0',
    );
    const u = pkt(udpDatagram('10.0.0.1', '10.0.0.2', 5353, 53));
    u.mark = 0x2a;
    expect(formatLogLine('', u, null, eth0)).toBe(
      'IN= OUT=eth0 SRC=10.0.0.1 DST=10.0.0.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=4660 PROTO=UDP SPT=5353 DPT=53 LEN=8 MARK=0x2a',
    );
    const e = pkt(echoRequest('10.0.0.1', '10.0.0.2', { ident: 7, seq: 3 }));
    expect(formatLogLine('', e, eth0, null)).toMatch(/PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=3$/);
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
