import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { concat, echoRequest, ethHeader, ipHeader } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';
import { Random } from '../../src/random.js';
import { checksum } from '../../src/wire/checksum.js';

/**
 * Makes the checksums of a mutated IPv4 frame right again, so the mutation reaches
 * the code past the checksum checks: IP header, ICMP, and UDP (set to none).
 */
function fixChecksums(f: Uint8Array): void {
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return;
  const hl = (f[14] & 0x0f) * 4;
  if (hl < 20 || 14 + hl > f.length) return;
  f[24] = 0;
  f[25] = 0;
  const c = checksum(f, 14, hl);
  f[24] = c >> 8;
  f[25] = c & 0xff;
  const l4 = 14 + hl;
  const end = Math.min(f.length, 14 + ((f[16] << 8) | f[17]));
  if (f[23] === 1 && end - l4 >= 4) {
    f[l4 + 2] = 0;
    f[l4 + 3] = 0;
    const ic = checksum(f, l4, end - l4);
    f[l4 + 2] = ic >> 8;
    f[l4 + 3] = ic & 0xff;
  } else if (f[23] === 17 && end - l4 >= 8) {
    f[l4 + 6] = 0;
    f[l4 + 7] = 0;
  }
}

describe('mutated frames', () => {
  it('never reach the internal-error path, and the stack still answers afterwards', () => {
    const p = simPair({ seed: 11 });
    const { b, ib, time } = p;
    b.udp.createSocket().bind(5000);
    const me = formatMac(ib.mac);
    const peer = formatMac(p.ia.mac);
    const eth = (type: number) => ethHeader(me, peer, type);
    const arp = new Uint8Array([0, 1, 8, 0, 6, 4, 0, 1, ...p.ia.mac, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    const udp = new Uint8Array(8 + 32);
    udp[1] = 99;
    udp[3] = 0x88; // to 5000
    udp[2] = 0x13;
    udp[5] = 40;
    const frag = ipHeader('10.0.0.1', '10.0.0.2', 17, 48);
    frag[6] = 0x20; // MF
    const seeds = [
      concat(eth(0x0800), echoRequest('10.0.0.1', '10.0.0.2', { data: 64 })),
      concat(eth(0x0806), arp),
      concat(eth(0x0800), ipHeader('10.0.0.1', '10.0.0.2', 17, udp.length), udp),
      concat(eth(0x0800), frag, new Uint8Array(48)),
      concat(eth(0x0800), ipHeader('10.0.0.1', '10.0.0.2', 1, 36), new Uint8Array([3, 3, 0, 0, 0, 0, 0, 0]), ipHeader('10.0.0.2', '10.0.0.1', 17, 8), udp.slice(0, 8)),
    ];
    const rng = new Random(2024);
    const r = (n: number) => Math.floor(rng.next() * n);
    for (let i = 0; i < 30_000; i++) {
      const f = seeds[r(seeds.length)].slice();
      // Flip a few bytes past the Ethernet header, sometimes cut or extend the frame.
      const flips = 1 + r(4);
      for (let k = 0; k < flips; k++) f[14 + r(f.length - 14)] = r(256);
      if (r(2) === 0) fixChecksums(f);
      let frame = f;
      const cut = r(10);
      if (cut === 0) frame = f.subarray(0, 14 + r(f.length - 14));
      else if (cut === 1) frame = concat(f, new Uint8Array(r(64)).map(() => r(256)));
      ib.frame(frame);
      if (i % 16 === 15) {
        ib.batchEnd();
        time.advance(r(50));
      }
    }
    ib.batchEnd();
    time.advance(60_000);
    expect(ib.drops['internal-error']).toBe(0);
    // Every counter is a finite number: no NaN crept in.
    for (const [k, v] of Object.entries(b.mib)) expect(Number.isFinite(v), k).toBe(true);
    const after = simPing(time, p.a, ip('10.0.0.2'), 3);
    expect(after.replies.length).toBe(3);
  });
});
