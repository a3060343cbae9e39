import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { concat, echoRequest, ethHeader } from '../helpers/frames.js';
import { formatMac } from '../../src/wire/addr.js';

// Echo replies come from a pool and go back to it once the device has sent
// them: replies in one batch must not share a buffer, and a reply that waits
// for ARP must not be overwritten by the replies recycled meanwhile.
describe('echo replies from the packet pool', () => {
  const PEER = '02:00:00:00:00:09';

  function request(to: string, seq: number, fill: number): Uint8Array {
    const r = echoRequest('10.0.0.9', '10.0.0.2', { seq, data: 40 });
    for (let i = 28; i < r.length; i++) r[i] = fill;
    // Data changed: recompute the ICMP checksum.
    r[22] = r[23] = 0;
    let s = 0;
    for (let i = 20; i < r.length; i += 2) s += (r[i] << 8) | (r[i + 1] ?? 0);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    r[22] = c >> 8;
    r[23] = c & 0xff;
    return concat(ethHeader(to, PEER, 0x0800), r);
  }

  function isEchoReply(f: Uint8Array): boolean {
    return f[12] === 8 && f[13] === 0 && f[23] === 1 && f[34] === 0;
  }

  function arpReplyFromPeer(to: Uint8Array): Uint8Array {
    const a = new Uint8Array(28);
    a.set([0, 1, 8, 0, 6, 4, 0, 2], 0);
    a.set([2, 0, 0, 0, 0, 9], 8);
    a.set([10, 0, 0, 9], 14);
    a.set(to, 18);
    a.set([10, 0, 0, 2], 24);
    return concat(ethHeader(formatMac(to), PEER, 0x0806), a);
  }

  it('answers each request of a batch with its own data, and reuses the packets afterwards', () => {
    const { b, ib } = simPair();
    const me = formatMac(ib.mac);
    ib.neigh!.learn(0x0a000009, new Uint8Array([2, 0, 0, 0, 0, 9]), true, true);
    // The capture hook sees received and sent frames: keep the echo replies.
    const out: Uint8Array[] = [];
    b.capture = (_i, f) => {
      if (isEchoReply(f)) out.push(f.slice());
    };
    for (let round = 0; round < 3; round++) {
      out.length = 0;
      for (let k = 0; k < 8; k++) ib.frame(request(me, k, 16 * round + k));
      ib.batchEnd();
      expect(out.length).toBe(8);
      out.forEach((f, k) => {
        expect(f[14 + 20 + 7]).toBe(k); // its sequence number
        expect(f.subarray(14 + 28).every((x) => x === 16 * round + k)).toBe(true);
      });
    }
    expect(b.packets.available).toBe(8);
    expect(b.mib.IcmpOutEchoReps).toBe(24);
  });

  it('keeps a reply that waits for ARP intact while later replies recycle buffers', () => {
    const { b, ib } = simPair();
    const me = formatMac(ib.mac);
    const out: Uint8Array[] = [];
    b.capture = (_i, f) => {
      if (isEchoReply(f)) out.push(f.slice());
    };
    // Unknown sender: the reply waits for ARP (a copy sits in the neighbour queue).
    ib.frame(request(me, 1, 0xaa));
    ib.batchEnd();
    expect(ib.neigh!.get(0x0a000009)?.state).toBe('INCOMPLETE');
    // The answer resolves it: the waiting reply goes out as it was built.
    out.length = 0;
    ib.frame(arpReplyFromPeer(ib.mac));
    ib.frame(request(me, 2, 0xbb));
    ib.batchEnd();
    const replies = out;
    expect(replies.map((f) => f[14 + 20 + 7])).toEqual([1, 2]);
    expect(replies[0].subarray(14 + 28).every((x) => x === 0xaa)).toBe(true);
    expect(replies[1].subarray(14 + 28).every((x) => x === 0xbb)).toBe(true);
  });
});
