import { describe, expect, it } from 'vitest';
import { ip, simPair, simPing } from '../helpers/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import type { Stack } from '../../src/stack.js';

function tc(s: Stack, line: string): string {
  const r = runTc(stackTcEnv(s), line.split(' '));
  if (r.code !== 0) throw new Error(`tc ${line}: ${r.code} ${r.stderr}`);
  return r.stdout;
}

describe('netem on a stack device', () => {
  it('ping RTT grows by the configured delay; tc shows it and counts the packets', () => {
    const { time, a } = simPair({ impair: { delayMs: 5 } });
    const before = simPing(time, a, ip('10.0.0.2'), 3);
    expect(before.rtts.slice(1)).toEqual([10, 10]);
    tc(a, 'qdisc add dev a0 root netem delay 20ms seed 1');
    expect(tc(a, 'qdisc show dev a0')).toBe('qdisc netem 8001: root refcnt 2 limit 1000 delay 20ms seed 1\n');
    const r = simPing(time, a, ip('10.0.0.2'), 20, { ident: 2 });
    expect(r.rtts.length).toBe(20);
    for (const t of r.rtts) expect(Math.abs(t - 30)).toBeLessThanOrEqual(1);
    const s = tc(a, '-s qdisc show dev a0');
    // The 20 echo requests, and the ARP frames of the neighbour's reconfirmation.
    expect(s).toMatch(/^qdisc netem 8001: root refcnt 2 limit 1000 delay 20ms seed 1\n Sent \d+ bytes (2\d) pkt \(dropped 0, overlimits 0 requeues 0\) \n backlog 0b 0p requeues 0\n$/);
    // Back to the default qdisc: back to the link's own delay.
    tc(a, 'qdisc del dev a0 root');
    expect(simPing(time, a, ip('10.0.0.2'), 3, { ident: 3 }).rtts).toEqual([10, 10, 10]);
  });

  it('loss: the share of pings lost matches the configured loss', () => {
    const { time, a } = simPair({ impair: { delayMs: 1 } });
    simPing(time, a, ip('10.0.0.2'), 1);
    tc(a, 'qdisc add dev a0 root netem loss 25% seed 99');
    const n = 2000;
    const r = simPing(time, a, ip('10.0.0.2'), n, { ident: 5, intervalMs: 10 });
    const lost = 1 - r.replies.length / n;
    // 3σ = 3·√(0.25·0.75/2000) ≈ 0.029
    expect(Math.abs(lost - 0.25)).toBeLessThan(0.03);
    expect(tc(a, '-s qdisc show dev a0')).toContain(`(dropped ${n - r.replies.length},`);
  });

  it('fq_codel and sfq as root qdiscs pass pings and show as tc shows them', () => {
    const { time, a } = simPair({ impair: { delayMs: 2 } });
    tc(a, 'qdisc replace dev a0 root fq_codel');
    expect(tc(a, 'qdisc show dev a0')).toMatch(
      /^qdisc fq_codel [0-9a-f]+: root refcnt 2 limit 10240p flows 1024 quantum 1514 target 5ms interval 100ms memory_limit 32Mb ecn drop_batch 64 \n$/,
    );
    expect(simPing(time, a, ip('10.0.0.2'), 3).replies.length).toBe(3);
    tc(a, 'qdisc replace dev a0 root handle 1: sfq perturb 10');
    expect(tc(a, 'qdisc show dev a0')).toBe('qdisc sfq 1: root refcnt 2 limit 127p quantum 1514b depth 127 divisor 1024 perturb 10sec \n');
    expect(simPing(time, a, ip('10.0.0.2'), 3, { ident: 9 }).replies.length).toBe(3);
    tc(a, 'qdisc replace dev a0 root codel');
    expect(simPing(time, a, ip('10.0.0.2'), 3, { ident: 10 }).replies.length).toBe(3);
    expect(tc(a, '-s qdisc show dev a0')).toMatch(/\n {2}count 0 lastcount 0 ldelay 0us drop_next 0us\n {2}maxpacket \d+ ecn_mark 0 drop_overlimit 0\n$/);
  });
});
