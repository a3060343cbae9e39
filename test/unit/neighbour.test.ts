import { describe, expect, it } from 'vitest';
import { VirtualTime } from '../../src/time/timers.js';
import { NeighbourTable, type NeighOwner } from '../../src/link/neighbour.js';
import { Packet } from '../../src/packet/packet.js';

const MAC_A = new Uint8Array([2, 0, 0, 0, 0, 0xa]);
const MAC_B = new Uint8Array([2, 0, 0, 0, 0, 0xb]);

function setup(params = {}) {
  const time = new VirtualTime();
  const log = { requests: [] as { ip: number; unicast: boolean; at: number }[], sent: [] as number[], dropped: [] as string[] };
  const owner: NeighOwner = {
    sendArpRequest: (ip, to) => log.requests.push({ ip, unicast: to !== null, at: time.now() }),
    sendResolved: (pkt) => log.sent.push(pkt.length),
    dropUnresolved: (_p, why) => log.dropped.push(why),
  };
  const table = new NeighbourTable(time, owner, params, () => 0.5);
  return { time, log, table };
}

const pkt = (n: number) => Packet.copyOf(new Uint8Array(n));

describe('neighbour table', () => {
  it('queues while INCOMPLETE, retries 3 times a second apart, then FAILS and drops the queue', () => {
    const { time, log, table } = setup();
    expect(table.resolve(7, pkt(100))).toBeNull();
    expect(table.resolve(7, pkt(200))).toBeNull();
    expect(table.get(7)?.state).toBe('INCOMPLETE');
    time.advance(2999);
    expect(log.requests.map((r) => r.at)).toEqual([0, 1000, 2000]);
    time.advance(1);
    expect(table.get(7)?.state).toBe('FAILED');
    expect(log.dropped).toEqual(['failed', 'failed']);
    // A new packet starts resolution again.
    expect(table.resolve(7, pkt(10))).toBeNull();
    expect(table.get(7)?.state).toBe('INCOMPLETE');
  });

  it('sends the queue in order when the reply comes, and becomes REACHABLE', () => {
    const { time, log, table } = setup();
    table.resolve(7, pkt(100));
    table.resolve(7, pkt(200));
    time.advance(500);
    table.learn(7, MAC_A, true, false);
    expect(log.sent).toEqual([100, 200]);
    expect(table.get(7)?.state).toBe('REACHABLE');
    expect(table.resolve(7, pkt(1))).toEqual(MAC_A);
  });

  it('goes REACHABLE -> STALE -> DELAY -> PROBE -> FAILED without confirmation', () => {
    const { time, log, table } = setup();
    table.resolve(7, pkt(1));
    table.learn(7, MAC_A, true, false);
    // reachable_time = 30 s * (0.5 + 0.5) with this table's fixed random().
    time.advance(29_999);
    expect(table.get(7)?.state).toBe('REACHABLE');
    time.advance(1);
    expect(table.get(7)?.state).toBe('STALE');
    expect(table.resolve(7, pkt(1))).toEqual(MAC_A); // STALE still sends
    expect(table.get(7)?.state).toBe('DELAY');
    time.advance(5000);
    expect(table.get(7)?.state).toBe('PROBE');
    expect(log.requests.at(-1)?.unicast).toBe(true);
    time.advance(3000);
    expect(table.get(7)?.state).toBe('FAILED');
    expect(log.requests.filter((r) => r.unicast).length).toBe(3);
  });

  it('a confirmation during PROBE makes it REACHABLE again', () => {
    const { time, table } = setup();
    table.resolve(7, pkt(1));
    table.learn(7, MAC_A, true, false);
    time.advance(30_000);
    table.resolve(7, pkt(1));
    time.advance(5000);
    expect(table.get(7)?.state).toBe('PROBE');
    table.learn(7, MAC_A, true, false);
    expect(table.get(7)?.state).toBe('REACHABLE');
  });

  it('learns from requests (STALE) but creates no entry from unsolicited replies', () => {
    const { table } = setup();
    table.learn(8, MAC_B, false, false);
    expect(table.get(8)).toBeUndefined();
    table.learn(8, MAC_B, false, true);
    expect(table.get(8)?.state).toBe('STALE');
    expect(table.get(8)?.mac).toEqual(MAC_B);
    // A changed MAC from a request updates the entry, still STALE.
    table.learn(8, MAC_A, false, false);
    expect(table.get(8)?.mac).toEqual(MAC_A);
  });

  it('bounds the unresolved queue by bytes, dropping the oldest', () => {
    const { log, table } = setup({ unresQlenBytes: 1000 });
    for (let i = 0; i < 5; i++) table.resolve(7, pkt(300));
    expect(table.get(7)?.queue.length).toBe(3);
    expect(log.dropped).toEqual(['overflow', 'overflow']);
  });

  it('keeps to its size limit, evicting FAILED, then least recently used STALE', () => {
    const { time, table } = setup({ gcThresh3: 4 });
    table.set(1, MAC_A, 'PERMANENT');
    table.learn(2, MAC_A, false, true); // STALE
    time.advance(10);
    table.learn(3, MAC_A, false, true); // STALE, newer
    table.resolve(4, pkt(1));
    time.advance(3000); // 4 -> FAILED
    expect(table.get(4)?.state).toBe('FAILED');
    table.resolve(5, pkt(1));
    expect(table.get(4)).toBeUndefined();
    table.resolve(6, pkt(1));
    expect(table.get(2)).toBeUndefined();
    expect(table.get(3)).toBeDefined();
    expect(table.get(1)?.state).toBe('PERMANENT');
    expect(table.size).toBe(4);
    expect(table.evictions).toBe(2);
  });

  it('collects FAILED and long-unused STALE entries', () => {
    const { time, table } = setup();
    table.learn(2, MAC_A, false, true);
    table.resolve(3, pkt(1));
    time.advance(3000);
    expect(table.get(3)?.state).toBe('FAILED');
    time.advance(120_000);
    expect(table.size).toBe(0);
  });
});
