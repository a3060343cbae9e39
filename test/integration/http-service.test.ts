import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../helpers/harness.js';

/**
 * `service add http tcp :80`: the status page, /metrics and /api, served by
 * Node's http over the stack's TCP, fetched by curl and loaded by ab from the
 * kernel's side of a TAP device.
 */
describe('the HTTP status service over a TAP device', () => {
  let tb: Testbed;
  let base: string;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 46, extraConfig: ['service add http tcp :80'] });
    base = `http://${tb.stackIp}`;
  });
  afterAll(async () => {
    await tb?.close();
  });

  async function curl(path: string): Promise<{ status: number; type: string; body: string }> {
    const r = await tb.peerAsync(`curl -sS -m 10 -w '\\n%{http_code} %{content_type}' ${base}${path}`, 20_000);
    expect(r.stderr).toBe('');
    const i = r.stdout.lastIndexOf('\n');
    const [status, ...type] = r.stdout.slice(i + 1).split(' ');
    return { status: Number(status), type: type.join(' '), body: r.stdout.slice(0, i) };
  }

  /** Metric lines without comments: `name{labels}` -> value. */
  function parseMetrics(text: string): Map<string, number> {
    const m = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
    }
    return m;
  }

  it('/ is an HTML page with the interfaces, addresses, routes, neighbours, TCP connections and counters', async () => {
    const r = await curl('/');
    expect(r.status).toBe(200);
    expect(r.type).toBe('text/html; charset=utf-8');
    expect(r.body).toMatch(/^<!doctype html>/);
    expect(r.body).toContain(`: ${tb.dev}: &lt;BROADCAST,MULTICAST,UP,LOWER_UP&gt;`);
    expect(r.body).toContain(`inet ${tb.stackIp}/24 brd 10.231.46.255 scope global ${tb.dev}`);
    expect(r.body).toContain(`10.231.46.0/24 dev ${tb.dev} proto kernel scope link src ${tb.stackIp}`);
    expect(r.body).toMatch(new RegExp(`${tb.peerIp.replace(/\./g, '\\.')} dev ${tb.dev} lladdr [0-9a-f:]{17} (REACHABLE|STALE|DELAY)`));
    // The connection that carries this very request.
    expect(r.body).toMatch(new RegExp(`ESTAB\\s.*${tb.stackIp.replace(/\./g, '\\.')}:80\\s.*${tb.peerIp.replace(/\./g, '\\.')}:\\d+`));
    expect(r.body).toMatch(/TcpPassiveOpens\s+\d+/);
    expect(r.body).toContain('http tcp 0.0.0.0:80');
  });

  it('/metrics: Prometheus text with netstat, netdev, tcpstat and process metrics; counters move', async () => {
    const r1 = await curl('/metrics');
    expect(r1.status).toBe(200);
    expect(r1.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r1.body).toContain('# TYPE tapstack_netstat_Tcp_CurrEstab gauge');
    expect(r1.body).toContain('# HELP tapstack_netstat_TcpExt_SyncookiesSent Statistic TcpExtSyncookiesSent.');
    expect(r1.body).toContain(`# TYPE tapstack_network_receive_bytes_total counter`);
    const m1 = parseMetrics(r1.body);
    const dev = `{device="${tb.dev}"}`;
    for (const name of ['Ip_InReceives', 'IpExt_InOctets', 'Icmp_InMsgs', 'Udp_InDatagrams', 'Tcp_CurrEstab', 'Tcp_PassiveOpens', 'TcpExt_SyncookiesSent', 'Arp_InRequests'])
      expect(m1.has(`tapstack_netstat_${name}`), name).toBe(true);
    expect(m1.get('tapstack_netstat_Tcp_CurrEstab')).toBeGreaterThanOrEqual(1);
    for (const f of ['receive_bytes', 'receive_packets', 'receive_drop', 'receive_errs', 'transmit_bytes', 'transmit_packets', 'transmit_drop'])
      expect(m1.has(`tapstack_network_${f}_total${dev}`), f).toBe(true);
    expect(m1.get(`tapstack_network_receive_bytes_total${dev}`)).toBeGreaterThan(0);
    expect(m1.get(`tapstack_network_up${dev}`)).toBe(1);
    expect(m1.get(`tapstack_network_mtu_bytes${dev}`)).toBe(1500);
    expect(m1.get('tapstack_tcp_connection_states{state="listen"}')).toBeGreaterThanOrEqual(1);
    expect(m1.get('tapstack_tcp_connection_states{state="established"}')).toBeGreaterThanOrEqual(1);
    expect(m1.has('process_cpu_user_seconds_total')).toBe(true);
    expect(m1.has('nodejs_eventloop_lag_seconds')).toBe(true);
    expect(m1.has('process_resident_memory_bytes')).toBe(true);

    const r2 = await curl('/metrics');
    const m2 = parseMetrics(r2.body);
    // One more connection (this scrape) and more frames each way.
    expect(m2.get('tapstack_netstat_Tcp_PassiveOpens')).toBe(m1.get('tapstack_netstat_Tcp_PassiveOpens')! + 1);
    expect(m2.get('tapstack_netstat_Ip_InReceives')).toBeGreaterThan(m1.get('tapstack_netstat_Ip_InReceives')!);
    expect(m2.get(`tapstack_network_transmit_bytes_total${dev}`)).toBeGreaterThan(m1.get(`tapstack_network_transmit_bytes_total${dev}`)!);
  });

  it('/api/<show command> is that command\'s JSON', async () => {
    const addr = await curl('/api/ip/addr');
    expect(addr.status).toBe(200);
    expect(addr.type).toBe('application/json');
    const links = JSON.parse(addr.body) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[];
    const mine = links.find((l) => l.ifname === tb.dev)!;
    expect(mine.addr_info).toMatchObject([{ local: tb.stackIp, prefixlen: 24 }]);
    expect(addr.body).toBe((await tb.ctlRun('ip', '-j', 'addr')).stdout.trim());

    const routes = JSON.parse((await curl('/api/ip/route')).body) as { dst: string }[];
    expect(routes.map((r) => r.dst)).toContain('10.231.46.0/24');
    const get = JSON.parse((await curl(`/api/ip/route/get/${tb.peerIp}`)).body) as { dev: string }[];
    expect(get[0].dev).toBe(tb.dev);
    const nstat = JSON.parse((await curl('/api/nstat')).body) as { kernel: Record<string, number> };
    expect(nstat.kernel.TcpPassiveOpens).toBeGreaterThan(0);
    const stats = JSON.parse((await curl('/api/ip/-s/link')).body) as { stats64: { rx: { packets: number } } }[];
    expect(stats[0].stats64.rx.packets).toBeGreaterThan(0);
  });

  it('/api/ answers 404 for unknown commands and for commands that change state', async () => {
    expect((await curl('/api/nosuch')).status).toBe(404);
    expect((await curl('/api/ip/frobnicate')).status).toBe(404);
    expect((await curl('/api/sysctl/net.ipv4.ip_default_ttl')).status).toBe(404);
    const del = await curl(`/api/addr/del/${tb.stackIp}%2F24/dev/${tb.dev}`);
    expect(del.status).toBe(404);
    expect(JSON.parse(del.body)).toMatchObject({ error: expect.stringContaining('not a show command') });
    expect((await tb.ctlRun('ip', 'addr')).stdout).toContain(`inet ${tb.stackIp}/24`);
    expect((await curl('/nothing-here')).status).toBe(404);
  });

  function abSummary(out: string): Record<string, number> {
    const get = (re: RegExp): number => {
      const m = re.exec(out);
      return m ? Number(m[1]) : NaN;
    };
    return {
      complete: get(/Complete requests:\s+(\d+)/),
      failed: get(/Failed requests:\s+(\d+)/),
      non2xx: get(/Non-2xx responses:\s+(\d+)/),
      keepAlive: get(/Keep-Alive requests:\s+(\d+)/),
      rps: get(/Requests per second:\s+([\d.]+)/),
    };
  }

  it('ab -n 20000 -c 50 -k: every request answered on kept-alive connections', async () => {
    const r = await tb.peerAsync(`ab -q -n 20000 -c 50 -k ${base}/api/ip/route`, 180_000);
    const s = abSummary(r.stdout);
    console.log(`ab -k: ${s.rps} requests/s, ${s.failed} failed, ${s.keepAlive} kept alive`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(s.complete).toBe(20000);
    expect(s.failed).toBe(0);
    expect(Number.isNaN(s.non2xx)).toBe(true);
    expect(s.keepAlive).toBe(20000);
  }, 200_000);

  /** The peer kernel's TcpActiveOpens (its namespace's own counter). */
  function kernelActiveOpens(): number {
    const out = tb.peer('nstat -az TcpActiveOpens').stdout;
    return Number(/TcpActiveOpens\s+(\d+)/.exec(out)![1]);
  }

  it('ab -n 2000 -c 50 without keep-alive: a connection per request', async () => {
    const before = await tb.nstat();
    const kBefore = kernelActiveOpens();
    const r = await tb.peerAsync(`ab -q -n 2000 -c 50 ${base}/api/ip/route`, 120_000);
    const s = abSummary(r.stdout);
    console.log(`ab: ${s.rps} requests/s, ${s.failed} failed`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(s.complete).toBe(2000);
    expect(s.failed).toBe(0);
    const after = await tb.nstat();
    const opens = after.TcpPassiveOpens - before.TcpPassiveOpens;
    // ab opens a few connections more than it sends requests on (it closes them
    // unused at the end); every connection the kernel opened was accepted.
    expect(opens).toBeGreaterThanOrEqual(2000);
    if (tb.ns !== null) expect(opens).toBe(kernelActiveOpens() - kBefore);
    // The server closes first (HTTP/1.0 without keep-alive): its side waits in TIME-WAIT.
    expect(after.TcpExtTW - before.TcpExtTW).toBe(2000);
  }, 150_000);
});
