import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../helpers/harness.js';

/** Per-packet round trips (ms) from iputils ping's `time=X ms` lines. */
function rtts(out: string): number[] {
  return [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
};

describe('netem on the stack device, seen by a kernel ping', () => {
  let tb: Testbed | undefined;

  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 100, nsPrefix: 'tstcq-' });
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('tc qdisc add dev D root netem delay 20ms adds 20 ms (±1 ms) to every round trip', async () => {
    const t = tb as Testbed;
    const base = rtts(t.peer(`ping -c 20 -i 0.05 -W 2 ${t.stackIp}`).stdout);
    expect(base.length).toBe(20);
    const add = await t.ctlRun('tc', 'qdisc', 'add', 'dev', t.dev, 'root', 'netem', 'delay', '20ms');
    expect(add).toEqual({ code: 0, stdout: '', stderr: '' });
    const show = await t.ctlRun('tc', 'qdisc', 'show', 'dev', t.dev);
    expect(show.stdout).toMatch(/^qdisc netem [0-9a-f]+: root refcnt 2 limit 1000 delay 20ms seed \d+\n$/);
    const delayed = rtts(t.peer(`ping -c 40 -i 0.05 -W 2 ${t.stackIp}`).stdout);
    expect(delayed.length).toBe(40);
    const extra = median(delayed) - median(base);
    expect(Math.abs(extra - 20)).toBeLessThanOrEqual(1);
    // No reply comes before the delay; most come within 1 ms of it. The rest are late
    // by the machine's scheduling: a Node timer fires when the loop next runs, and with
    // the rest of the suite busy on both cores that was up to 5 ms late for a quarter
    // of the replies.
    for (const r of delayed) expect(r).toBeGreaterThanOrEqual(20);
    const close = delayed.filter((r) => Math.abs(r - median(base) - 20) <= 1).length;
    expect(close / delayed.length, delayed.join(' ')).toBeGreaterThanOrEqual(0.6);
    const stats = await t.ctlRun('tc', '-s', 'qdisc', 'show', 'dev', t.dev);
    const m = / Sent (\d+) bytes (\d+) pkt \(dropped 0, overlimits 0 requeues 0\) \n backlog 0b 0p requeues 0\n$/.exec(stats.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThanOrEqual(40);
    expect(await t.ctlRun('tc', 'qdisc', 'del', 'dev', t.dev, 'root')).toEqual({ code: 0, stdout: '', stderr: '' });
    const after = rtts(t.peer(`ping -c 10 -i 0.05 -W 2 ${t.stackIp}`).stdout);
    expect(median(after)).toBeLessThan(median(base) + 1);
  });

  it('netem loss 30% loses about 30% of the replies', async () => {
    const t = tb as Testbed;
    expect((await t.ctlRun('tc', 'qdisc', 'replace', 'dev', t.dev, 'root', 'netem', 'loss', '30%')).code).toBe(0);
    const out = t.peer(`ping -c 400 -i 0.005 -W 1 ${t.stackIp}`).stdout;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    expect(m).not.toBeNull();
    const lost = 1 - Number(m![2]) / Number(m![1]);
    // 3σ = 3·√(0.3·0.7/400) ≈ 0.069
    expect(Math.abs(lost - 0.3)).toBeLessThan(0.07);
    const stats = await t.ctlRun('tc', '-s', 'qdisc', 'show', 'dev', t.dev);
    const d = /dropped (\d+),/.exec(stats.stdout);
    // Every lost reply is a netem drop; the stack's own ARP frames may be lost too.
    const lostReplies = Number(m![1]) - Number(m![2]);
    expect(Number(d![1])).toBeGreaterThanOrEqual(lostReplies);
    expect(Number(d![1])).toBeLessThanOrEqual(lostReplies + 5);
    expect((await t.ctlRun('tc', 'qdisc', 'del', 'dev', t.dev, 'root')).code).toBe(0);
  });

  it('tc refuses bad netem arguments with tc exit codes', async () => {
    const t = tb as Testbed;
    const r = await t.ctlRun('tc', 'qdisc', 'add', 'dev', t.dev, 'root', 'netem', 'delay', 'soon');
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'Illegal "latency"\n' });
    const r2 = await t.ctlRun('tc', 'qdisc', 'add', 'dev', t.dev, 'root', 'netem', 'delay');
    expect(r2.code).toBe(255);
  });
});

describe('fq_codel under an htb shaper on the stack device', () => {
  let tb: Testbed | undefined;

  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 101, nsPrefix: 'tstcq-', extraConfig: ['service add echo udp :7'] });
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });
  afterAll(async () => {
    await tb?.close();
  });

  it("keeps a ping's round trip near target while the stack echoes an unresponsive UDP flood", async () => {
    const t = tb as Testbed;
    const base = median(rtts(t.peer(`ping -c 10 -i 0.05 -W 2 ${t.stackIp}`).stdout));
    for (const line of [
      `qdisc add dev ${t.dev} root handle 1: htb default 10`,
      `class add dev ${t.dev} parent 1: classid 1:10 htb rate 10mbit`,
      `qdisc add dev ${t.dev} parent 1:10 handle 10: fq_codel`,
    ]) {
      const r = await t.ctlRun('tc', ...line.split(' '));
      expect(r, line).toEqual({ code: 0, stdout: '', stderr: '' });
    }
    // About 24 Mbit/s of 1000-byte datagrams to the stack's UDP echo for 4 s: the
    // echoes fill the 10 Mbit/s class, and nothing slows the sender down.
    const flood =
      `node -e "const d=require('dgram').createSocket('udp4');const b=Buffer.alloc(1000);` +
      `const t=setInterval(()=>{for(let i=0;i<3;i++)d.send(b,7,'${t.stackIp}')},1);` +
      `setTimeout(()=>{clearInterval(t);d.close()},4000)"`;
    const running = t.peerAsync(flood, 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    const during = rtts((await t.peerAsync(`ping -c 15 -i 0.1 -W 2 ${t.stackIp}`, 10_000)).stdout);
    await running;
    // (With a pfifo leaf instead, replies are lost behind the flood or wait for it.)
    expect(during.length).toBeGreaterThanOrEqual(14);
    const stats = (await t.ctlRun('tc', '-s', 'qdisc', 'show', 'dev', t.dev)).stdout;
    const fq = stats.slice(stats.indexOf('qdisc fq_codel'));
    const dropped = Number(/dropped (\d+),/.exec(fq)![1]);
    const sent = Number(/Sent \d+ bytes (\d+) pkt/.exec(fq)![1]);
    // The class was congested: CoDel dropped part of the flood ...
    expect(dropped, stats).toBeGreaterThan(100);
    expect(sent).toBeGreaterThan(2000);
    expect(fq).toMatch(/\n {2}maxpacket \d+ drop_overlimit \d+ new_flow_count \d+ ecn_mark 0/);
    // ... and the ping's flow, sparse, stayed within target (5 ms) + a few ms.
    expect(median(during) - base, during.join(' ')).toBeLessThan(8);
    expect(await t.ctlRun('tc', 'qdisc', 'del', 'dev', t.dev, 'root')).toEqual({ code: 0, stdout: '', stderr: '' });
  });
});
