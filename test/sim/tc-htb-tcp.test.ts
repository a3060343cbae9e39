import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { runFor } from '../helpers/tcp-sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

/**
 * Two bulk TCP flows from a stack through htb on its own device: 1:10 at 7mbit and
 * 1:20 at 3mbit under a 10mbit parent, split by u32 on the destination port, in
 * virtual time. TCP builds super-packets (GSO is on by default, TSO with the
 * virtio-net wire); htb takes them as their segments, each of which must be
 * classified as its flow is. Returns each flow's goodput (Mbit/s over `secs`)
 * and the bytes htb sent per class.
 */
async function twoFlows(offload: boolean, secs: number) {
  const p = simPair({ seed: 5, offload, impair: { delayMs: 0.05 } });
  const env = stackTcEnv(p.a);
  const tc = (line: string): string => {
    const r = runTc(env, line.split(' '));
    if (r.code !== 0) throw new Error(`tc ${line}: ${r.stderr}`);
    return r.stdout;
  };
  tc('qdisc add dev a0 root handle 1: htb default 10');
  tc('class add dev a0 parent 1: classid 1:1 htb rate 10mbit');
  tc('class add dev a0 parent 1:1 classid 1:10 htb rate 7mbit ceil 10mbit');
  tc('class add dev a0 parent 1:1 classid 1:20 htb rate 3mbit ceil 10mbit');
  tc('filter add dev a0 parent 1: protocol ip prio 1 u32 match ip dport 5321 0xffff flowid 1:10');
  tc('filter add dev a0 parent 1: protocol ip prio 1 u32 match ip dport 5322 0xffff flowid 1:20');
  const got = [0, 0];
  const chunk = Buffer.alloc(128 * 1024);
  const socks: TcpSocket[] = [];
  [5321, 5322].forEach((port, k) => {
    p.b.tcp.createServer((s: TcpSocket) => s.on('data', (d: Buffer) => (got[k] += d.length))).listen(port);
    const c = p.a.tcp.connect(port, '10.0.0.2');
    socks.push(c);
    const fill = (): void => {
      while (c.write(chunk));
    };
    c.on('connect', fill);
    c.on('drain', fill);
  });
  await runFor(p.time, secs * 1000, { stepMs: 1 });
  const mbit = got.map((g) => (g * 8) / (secs * 1e6));
  const classSent = ['1:10', '1:20'].map((id) => Number(/Sent (\d+) bytes/.exec(tc(`-s class show dev a0 classid ${id}`))![1]));
  for (const s of socks) s.destroy();
  return { mbit, got, classSent, p };
}

describe('htb 7mbit + 3mbit of 10mbit on the sender\'s own device, two TCP flows with super-packets (sim, virtual time)', () => {
  for (const offload of [true, false]) {
    it(`each flow gets its share, every segment in its own class (${offload ? 'TSO on the wire' : 'GSO before the device'})`, async () => {
      const { mbit, got, classSent, p } = await twoFlows(offload, 5);
      // TCP built super-packets and htb took them as segments.
      expect(p.ia.offload.txSwGsoPackets).toBeGreaterThan(0);
      // Each flow within 10% of its share of the goodput (1448 of each 1514-byte frame).
      const g = 1448 / 1514;
      for (const [x, want] of [[mbit[0], 7 * g], [mbit[1], 3 * g]]) {
        expect(x).toBeGreaterThan(want * 0.9);
        expect(x).toBeLessThan(want * 1.1);
      }
      // A class carries its own flow only: what it sent is its flow's data in full-size
      // frames plus the handshake (a segment of the other flow there would add a whole frame).
      for (const k of [0, 1]) {
        expect(classSent[k]).toBeGreaterThanOrEqual(got[k] * (1514 / 1448));
        expect(classSent[k]).toBeLessThan(got[k] * (1514 / 1448) + 2 * 1514);
      }
      // One FIFO per flow: nothing reordered, so nothing retransmitted.
      expect(p.a.mib.TcpRetransSegs).toBe(0);
      expect(p.a.mib.TcpExtTCPSackRecovery).toBe(0);
    }, 60_000);
  }
});
