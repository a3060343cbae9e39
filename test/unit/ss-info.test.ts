/**
 * tcp_info as ss prints it: the kernel's own `ss -tin` lines for a live CUBIC
 * transfer (test/fixtures/ss/kernel-ti-cubic.txt, scripts/capture-ss-ti.sh)
 * are read into tcp_info's fields and printed again by the stack's formatter,
 * which must give the same bytes: field order, which fields are left out, %g
 * times, sprint_bw rates, busy/limited times and ss's own "send" computation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { emptyTcpInfo, formatTcpInfo, parseTcpInfoText } from '../../src/control/ss-info.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ss/kernel-ti-cubic.txt');
const lines = fs
  .readFileSync(FIX, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('\t'));

describe('ss -ti: tcp_info as iproute2 6.1 prints it', () => {
  it('the fixture holds the sender and the receiver of a CUBIC transfer', () => {
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/ cubic .*bytes_sent:\d+ .*pacing_rate \d+bps delivery_rate \d+bps delivered:\d+ .*busy:\d+ms/);
    expect(lines[1]).toMatch(/ bytes_received:\d+ .*rcv_rtt:[\d.]+ rcv_space:\d+ rcv_ssthresh:\d+/);
  });

  for (const [i, name] of ['sender', 'receiver'].entries()) {
    it(`prints the kernel's ${name} line again byte for byte`, () => {
      const info = parseTcpInfoText(lines[i]);
      expect(info.ccName).toBe('cubic');
      expect(`\t${formatTcpInfo(info, { numeric: true, showOptions: false })}`).toBe(lines[i]);
    });
  }

  it('computes send from cwnd * mss * 8 / rtt, and prints rates with units without -n', () => {
    const i = emptyTcpInfo();
    i.ccName = 'cubic';
    i.sndCwnd = 10;
    i.sndMss = 1448;
    i.rtt = 20_000;
    i.pacingRate = 1_448_000;
    i.maxPacingRate = 1_250_000;
    i.busyTime = 3_000_000;
    i.rwndLimited = 1_000_000;
    i.sndbufLimited = 500_000;
    i.lost = 2;
    i.sacked = 5;
    i.reordering = 9;
    expect(formatTcpInfo(i, { numeric: false, showOptions: true })).toBe(
      ' cubic rtt:20/0 mss:1448 cwnd:10 send 5.79Mbps pacing_rate 11.6Mbps/10Mbps busy:3000ms rwnd_limited:1000ms(33.3%) sndbuf_limited:500ms(16.7%) lost:2 sacked:5 reordering:9',
    );
  });

  it('refuses a word ss does not print', () => {
    expect(() => parseTcpInfoText(' cubic wscale:7,7 frobs:3')).toThrow(/frobs/);
  });
});
