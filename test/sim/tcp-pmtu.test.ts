import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { concat, ethHeader, ipHeader } from '../helpers/frames.js';
import { runFor, pattern, sha256 } from '../helpers/tcp-sim.js';
import { checksum } from '../../src/wire/checksum.js';
import { formatMac } from '../../src/wire/addr.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

/**
 * RFC 1191 path MTU discovery: a hop between the stacks carries at most 1000
 * bytes. Frames larger than that from a are dropped there and answered with an
 * ICMP "fragmentation needed" carrying the next-hop MTU, as a router would; the
 * connection must cut its segments to fit and resend what was lost.
 */
describe('TCP path MTU discovery (RFC 1191)', () => {
  it('shrinks the MSS on fragmentation needed and delivers everything', async () => {
    const p = simPair({ impair: { delayMs: 2 } });
    const HOP_MTU = 1000;
    let icmpSent = 0;
    let bigAfter = 0;
    const sizes: number[] = [];
    const send = p.da.sendBatch.bind(p.da);
    p.da.sendBatch = (frames, count) => {
      const keep: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const f = frames[i];
        const ipLen = f.length - 14;
        if (f[23] === 6) sizes.push(ipLen);
        if (ipLen <= HOP_MTU) {
          keep.push(f);
          continue;
        }
        if (icmpSent > 0) bigAfter++;
        // The "router" drops it and reports the next-hop MTU, quoting the IP header and 8 bytes.
        const quote = f.subarray(14, 14 + 28);
        const icmp = new Uint8Array(8 + quote.length);
        icmp[0] = 3;
        icmp[1] = 4;
        icmp[6] = HOP_MTU >> 8;
        icmp[7] = HOP_MTU & 0xff;
        icmp.set(quote, 8);
        const c = checksum(icmp, 0, icmp.length);
        icmp[2] = c >> 8;
        icmp[3] = c & 0xff;
        const dgram = concat(ipHeader('10.0.0.2', '10.0.0.1', 1, icmp.length), icmp);
        const frame = concat(ethHeader(formatMac(p.ia.mac), formatMac(p.ib.mac), 0x0800), dgram);
        icmpSent++;
        p.time.after(1, () => {
          p.ia.frame(frame);
          p.ia.batchEnd();
        });
      }
      send(keep, keep.length);
      return count;
    };
    const data = pattern(2_000_000, 5);
    const got: Buffer[] = [];
    let ended = false;
    p.b.tcp
      .createServer((s: TcpSocket) => {
        s.on('data', (d: Buffer) => got.push(d));
        s.on('end', () => {
          ended = true;
          s.end();
        });
      })
      .listen(7001);
    const c = p.a.tcp.connect(7001, '10.0.0.2');
    c.on('connect', () => {
      c.write(data);
      c.end();
    });
    c.resume();
    await runFor(p.time, 60_000, { until: () => ended });
    expect(ended).toBe(true);
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
    expect(icmpSent).toBeGreaterThan(0);
    // Only what was in flight when the first report came was too big.
    expect(bigAfter).toBeLessThan(40);
    // Segments after the report fit the hop: 1000 bytes of IP, 948 bytes of data with timestamps.
    const tail = sizes.slice(-200);
    expect(Math.max(...tail)).toBeLessThanOrEqual(HOP_MTU);
    expect(tail).toContain(HOP_MTU);
    expect(p.a.mib.IcmpInDestUnreachs).toBe(icmpSent);
  });
});
