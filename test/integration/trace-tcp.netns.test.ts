/**
 * `tapstack trace tcp` on a live connection: the kernel's iperf3 client (-R,
 * so the stack sends) against the stack's iperf3 service, traced for two
 * seconds into CSV and SVG files; the status page's /tcp charts of the same;
 * also `ss -ti --watch`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Testbed, shAsync } from '../helpers/harness.js';
import { parseTraceCsv } from '../../src/control/trace-files.js';

describe('tapstack trace tcp', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', net: '10.233', subnet: 80, nsPrefix: 'tscv', devPrefix: 'tscv', extraConfig: ['service add iperf3 tcp :5201', 'service add http tcp :8080'] });
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  it('writes CSV and SVG of cwnd, srtt, bytes in flight, delivered and throughput every interval', async () => {
    // Paced at 200 Mb/s (--fq-rate), so the daemon's event loop, which also runs the
    // sampler, is not saturated by the transfer.
    const client = tb.peerAsync(`iperf3 -c ${tb.stackIp} -p 5201 -t 3 -R --fq-rate 200M`, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    const csv = path.join(tb.dir, 'trace.csv');
    const svg = path.join(tb.dir, 'trace.svg');
    const r = await shAsync(`${process.execPath} ${CLI} --ctl ${tb.ctl} trace tcp sport = :5201 --interval 100 --duration 2 --csv ${csv} --svg ${svg}`, 20_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const k = await client;
    expect(k.code).toBe(0);
    const samples = parseTraceCsv(fs.readFileSync(csv, 'utf8'));
    // Two connections (iperf3's control and data stream), about 20 samples each over 2 s.
    const most = samples.reduce((a, b) => (b.bytesAcked > a.bytesAcked ? b : a));
    expect(most.bytesAcked).toBeGreaterThan(1_000_000);
    const data = samples.filter((s) => s.peer === most.peer);
    expect(data.length).toBeGreaterThanOrEqual(12);
    expect(data.length).toBeLessThanOrEqual(21);
    for (const s of data) {
      expect(s.local).toBe(`${tb.stackIp}:5201`);
      expect(s.cwnd).toBeGreaterThan(0);
      expect(s.srttMs).toBeGreaterThan(0);
    }
    const t = data.map((s) => s.t);
    for (let i = 1; i < t.length; i++) expect(t[i] - t[i - 1]).toBeGreaterThan(0.05);
    expect(data.at(-1)!.delivered).toBeGreaterThan(data[0].delivered);
    const tput = data.slice(1).map((s) => s.throughputBps);
    expect(Math.max(...tput)).toBeGreaterThan(100e6);
    expect(Math.max(...tput)).toBeLessThan(260e6);
    const text = fs.readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg')).toBe(true);
    expect(text).toContain(`${tb.stackIp}:5201`);
    expect(text).toMatch(/<polyline points="[\d., ]+" fill="none" stroke="#1f77b4"/);
  }, 40_000);

  it('the HTTP status page draws live connections: /tcp (SVG) and /api/tcp/trace (samples)', async () => {
    const client = tb.peerAsync(`iperf3 -c ${tb.stackIp} -p 5201 -t 2 -R`, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    const page = tb.peer(`curl -s http://${tb.stackIp}:8080/tcp`);
    const api = tb.peer(`curl -s http://${tb.stackIp}:8080/api/tcp/trace`);
    expect((await client).code).toBe(0);
    expect(page.code).toBe(0);
    expect(page.stdout).toContain('<svg');
    expect(page.stdout).toContain(`${tb.stackIp}:5201`);
    const traces = JSON.parse(api.stdout) as { local: string; samples: { cwnd: number; bytesAcked: number }[] }[];
    const data = traces.find((t) => t.local === `${tb.stackIp}:5201` && t.samples.at(-1)!.bytesAcked > 1_000_000);
    expect(data).toBeDefined();
    // Sampled every 250 ms for over a second.
    expect(data!.samples.length).toBeGreaterThanOrEqual(4);
    expect(data!.samples.every((x) => x.cwnd > 0)).toBe(true);
  }, 30_000);

  it("iperf3 --fq-rate paces the stack's sending stream at that rate (SO_MAX_PACING_RATE), shown as pacing_rate .../20Mbps", async () => {
    const client = tb.peerAsync(`iperf3 -c ${tb.stackIp} -p 5201 -t 4 -R --fq-rate 20M -J`, 30_000);
    let ss = '';
    const end = Date.now() + 4000;
    while (!/\/20Mbps /.test(ss) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      ss = (await tb.ctlRun('ss', '-ti', 'sport', '=', ':5201')).stdout;
    }
    const k = await client;
    expect(k.code).toBe(0);
    expect(ss).toMatch(/ pacing_rate [\d.]+[kMG]?bps\/20Mbps /);
    const mbps = JSON.parse(k.stdout).end.sum_received.bits_per_second / 1e6;
    // At most the rate (iperf3 counts payload, as pacing does), and near it.
    expect(mbps, k.stdout.slice(-600)).toBeGreaterThan(15);
    expect(mbps).toBeLessThan(20.5);
  }, 40_000);

  it('ss -ti --watch MS prints the listing again every MS ms', async () => {
    const p = spawn(process.execPath, [CLI, '--ctl', tb.ctl, 'ss', '-tin', '--watch', '200'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const stampsOf = (): string[] => out.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/gm) ?? [];
    const end = Date.now() + 8000;
    while (stampsOf().length < 4 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGINT');
    await new Promise((r) => p.on('exit', r));
    const stamps = stampsOf().map((x) => Date.parse(x));
    expect(stamps.length).toBeGreaterThanOrEqual(4);
    // One listing per interval (plus the time a listing takes), each with its header.
    for (let i = 1; i < stamps.length; i++) {
      expect(stamps[i] - stamps[i - 1]).toBeGreaterThanOrEqual(200);
      expect(stamps[i] - stamps[i - 1]).toBeLessThan(1000);
    }
    expect(out.match(/^State /gm)?.length).toBe(stampsOf().length);
  }, 20_000);
});
