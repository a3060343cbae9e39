import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Testbed, waitFor } from '../helpers/harness.js';

/**
 * Many connections to the daemon's HTTP service over a TAP: 2,000 concurrent
 * keep-alive connections from a kernel namespace (bench/conn-tool.c `hold`) all
 * answered, and once closed the connection table is back to the listeners and
 * memory does not grow from one round to the next; accept/close churn keeps
 * TIME_WAIT at net.ipv4.tcp_max_tw_buckets, the rest counted as
 * TcpExtTCPTimeWaitOverflow, every request answered.
 */
describe('many connections to the HTTP service', () => {
  let tb: Testbed;
  let tool: string;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 127, net: '10.233', devPrefix: 'tscn', nsPrefix: 'tscn', extraConfig: ['service add http tcp :80'] });
    tool = path.join(tb.dir, 'conn-tool');
    execFileSync('cc', ['-O2', '-o', tool, path.join(ROOT, 'bench/conn-tool.c')]);
    // Room for the clients' ports.
    tb.peer('sysctl -q -w net.ipv4.ip_local_port_range="1024 65000"');
  });
  afterAll(async () => {
    await tb?.close();
  });

  /** `ss -s`'s TCP line: total, estab, timewait. */
  async function ssSummary(): Promise<{ total: number; estab: number; timewait: number }> {
    const r = await tb.ctlRun('ss', '-s');
    const m = /^TCP:\s+(\d+) \(estab (\d+), closed \d+, orphaned \d+, timewait (\d+)\)/m.exec(r.stdout);
    if (!m) throw new Error(`ss -s: ${r.stdout}${r.stderr}`);
    return { total: Number(m[1]), estab: Number(m[2]), timewait: Number(m[3]) };
  }

  function rssKb(): number {
    const st = fs.readFileSync(`/proc/${tb.daemon!.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(st)![1]);
  }

  /** One round: N connections opened and answered, asked once more, closed. */
  async function round(n: number): Promise<{ open: number[]; again: number[]; estabHeld: number }> {
    const run = tb.peerAsync(`${tool} hold ${tb.stackIp} 80 ${n} 1 /nothing`, 60_000);
    // While they are held, the stack's table has them all.
    let estabHeld = 0;
    await waitFor(async () => {
      estabHeld = (await ssSummary()).estab;
      return estabHeld >= n;
    }, 30_000, 100);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    const open = /open (\d+) answered (\d+) errors (\d+)/.exec(r.stdout);
    const again = /again (\d+) errors (\d+)/.exec(r.stdout);
    expect(open, r.stdout).not.toBeNull();
    expect(again, r.stdout).not.toBeNull();
    return { open: open!.slice(1).map(Number), again: again!.slice(1).map(Number), estabHeld };
  }

  it('2,000 concurrent keep-alive connections are all answered twice; closed, the table empties and a second round grows memory little', async () => {
    const base = await ssSummary();
    // The listener is the only TCP socket.
    expect(base).toEqual({ total: 1, estab: 0, timewait: 0 });
    const r1 = await round(2000);
    expect(r1.open).toEqual([2000, 2000, 0]);
    expect(r1.again).toEqual([2000, 0]);
    expect(r1.estabHeld).toBe(2000);
    // The clients closed first: the stack's side goes through LAST-ACK to nothing.
    await waitFor(async () => (await ssSummary()).total === 1, 10_000, 100);
    expect(await ssSummary()).toEqual({ total: 1, estab: 0, timewait: 0 });
    const rss1 = rssKb();
    const r2 = await round(2000);
    expect(r2.open).toEqual([2000, 2000, 0]);
    expect(r2.again).toEqual([2000, 0]);
    await waitFor(async () => (await ssSummary()).total === 1, 10_000, 100);
    const rss2 = rssKb();
    // Nothing kept per connection: the second round mostly reuses what the first one grew
    // (RSS moves with V8's collections, so only a gross leak shows here; the tables are
    // checked exactly in test/sim/tcp-listen-queue.test.ts).
    expect(rss2).toBeLessThan(rss1 * 1.5);
    const nstat = await tb.nstat();
    expect(nstat.TcpPassiveOpens).toBeGreaterThanOrEqual(4000);
    expect(nstat.TcpExtListenOverflows).toBe(0);
    expect(nstat.TcpCurrEstab).toBe(0);
  }, 60_000);

  it('3,000 connections closed by the server (HTTP/1.0): TIME_WAIT stays at tcp_max_tw_buckets = 100, the rest counted as TCPTimeWaitOverflow', async () => {
    expect((await tb.ctlRun('sysctl', '-w', 'net.ipv4.tcp_max_tw_buckets=100')).code).toBe(0);
    const before = await tb.nstat();
    const tw0 = (await ssSummary()).timewait;
    const r = await tb.peerAsync(`ab -q -n 3000 -c 50 http://${tb.stackIp}/nothing`, 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(/Complete requests:\s+3000/.test(r.stdout), r.stdout).toBe(true);
    expect(/Failed requests:\s+0/.test(r.stdout), r.stdout).toBe(true);
    await waitFor(async () => (await ssSummary()).estab === 0, 10_000, 100);
    const after = await tb.nstat();
    const s = await ssSummary();
    expect(s.timewait).toBe(100);
    const entered = after.TcpExtTW - before.TcpExtTW;
    const overflow = after.TcpExtTCPTimeWaitOverflow - before.TcpExtTCPTimeWaitOverflow;
    // ab may open up to -c connections more than -n and close them unused.
    const opened = after.TcpPassiveOpens - before.TcpPassiveOpens;
    expect(opened).toBeGreaterThanOrEqual(3000);
    expect(opened).toBeLessThanOrEqual(3050);
    // The first records fill the table up to the cap. More can be counted: a client SYN
    // reusing the 4-tuple of a record ends it (tcp_timewait_state_process's TCP_TW_SYN),
    // and its slot goes to a later connection, counted again (__inet_twsk_schedule). A
    // kernel client reuses ports within the 60 s once its ip_local_port_range wraps (as the
    // default range can, or one left over from an earlier run). The kernel counts the same
    // (scripts/timewait-oracle.sh: a kernel server under this load from a client with a
    // 3,000-port range, TcpExtTW 283 while timewait stays at 100).
    expect(entered).toBeGreaterThanOrEqual(100 - tw0);
    // Every connection the server closed (all that carried a request) went to TIME_WAIT
    // or was turned away; ab's unused extras are closed by ab.
    expect(entered + overflow).toBeGreaterThanOrEqual(3000);
    expect(entered + overflow).toBeLessThanOrEqual(opened);
  }, 60_000);
});
