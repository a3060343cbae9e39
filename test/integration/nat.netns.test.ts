import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterPair, type RouterView } from '../helpers/router-pair.js';
import { shAsync } from '../helpers/harness.js';

// NAT through the stack and through a kernel router namespace side by side
// (RouterPair: same addresses, device names and MACs): LAN a = 10.231.70.0/24
// (client addresses .1 and .3), WAN b = 10.231.71.0/24, the router .2 on each.
// The same nft ruleset is loaded on both; b has no route back to the LAN, so
// only NAT gets answers there. What the far side sees, what the client gets and
// what `conntrack -L` lists must be the kernel's.
// Needs namespaces: the container run (TAPSTACK_TEST_PEER=local) leaves this file out.

const A = 70;
const B = 71;
const bHost = `10.231.${B}.1`;
const routerB = `10.231.${B}.2`;

/** A socat server in b's (or a's) namespace answering each connection/datagram with the peer it saw. */
function peerServer(v: RouterView, side: 'a' | 'b', spec: string, ms = 8000): Promise<unknown> {
  const run = side === 'a' ? v.onA : v.onB;
  return run(`timeout ${ms / 1000} socat ${spec},reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR $SOCAT_PEERPORT' || true`, ms + 2000);
}

/** An HTTP server answering one GET with the client address and port it saw. */
function httpScript(): string {
  const f = path.join(pair.stack.dir, 'peer-http.py');
  if (!fs.existsSync(f))
    fs.writeFileSync(
      f,
      [
        'import sys, http.server as h',
        'class H(h.BaseHTTPRequestHandler):',
        '    def do_GET(self):',
        '        self.send_response(200)',
        '        self.end_headers()',
        '        self.wfile.write(("%s %d\\n" % self.client_address).encode())',
        '    def log_message(self, *a):',
        '        pass',
        'h.HTTPServer(("", int(sys.argv[1])), H).handle_request()',
        '',
      ].join('\n'),
    );
  return f;
}

/** Waits until something listens on `port` in a's (or b's) namespace. */
async function listening(v: RouterView, side: 'a' | 'b', proto: 'tcp' | 'udp', port: number): Promise<void> {
  const run = side === 'a' ? v.onA : v.onB;
  for (let i = 0; i < 50; i++) {
    const r = await run(`ss -${proto === 'tcp' ? 't' : 'u'}lnH 'sport = :${port}'`);
    if (r.stdout.trim() !== '') return;
    await pause(100);
  }
  throw new Error(`${v.name}: nothing listens on ${proto} ${port} in ${side}`);
}

/** A UDP client: one datagram from bind address:port to dst:port, then the answer (up to 8 s). */
function udpAsk(v: RouterView, from: string, sport: number, dport: number): Promise<string> {
  const f = path.join(pair.stack.dir, 'udp-ask.py');
  if (!fs.existsSync(f))
    fs.writeFileSync(
      f,
      [
        'import socket, sys',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's.bind((sys.argv[1], int(sys.argv[2])))',
        's.settimeout(8)',
        's.sendto(b"x", (sys.argv[3], int(sys.argv[4])))',
        'try:',
        '    print(s.recv(2048).decode().strip())',
        'except OSError as e:',
        '    print(type(e).__name__)',
        '',
      ].join('\n'),
    );
  return v.onA(`/usr/bin/python3 ${f} ${from} ${sport} ${bHost} ${dport}`, 15_000).then((r) => r.stdout.trim());
}

/** A UDP server in b answering each datagram with the address and port it came from (for `ms`). */
function udpPeerServer(v: RouterView, port: number, ms: number): Promise<unknown> {
  const f = path.join(pair.stack.dir, 'udp-peer.py');
  if (!fs.existsSync(f))
    fs.writeFileSync(
      f,
      [
        'import socket, sys',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's.bind(("", int(sys.argv[1])))',
        'while True:',
        '    d, a = s.recvfrom(2048)',
        '    s.sendto(("%s %d" % a).encode(), a)',
        '',
      ].join('\n'),
    );
  return v.onB(`timeout ${ms / 1000} /usr/bin/python3 ${f} ${port} || true`, ms + 5000);
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let pair: RouterPair;
let kernelEcho: Promise<unknown> | null = null;

describe('NAT: the stack as a kernel router namespace does it (differential)', () => {
  beforeAll(async () => {
    pair = await RouterPair.start(A, B, [`10.231.${A}.3`], 'tsnt');
    const dev = pair.devB;
    await pair.load(`table ip nat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "${dev}" tcp dport 8080 dnat to 10.231.${A}.1:80
		ip daddr ${routerB} tcp dport 8081 dnat to 10.231.${A}.3:81
		iifname "${pair.devA}" tcp dport 7777 redirect to :7
	}

	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.231.${A}.0/24 ip daddr 10.231.${A}.3 tcp dport 81 masquerade
		ip saddr 10.231.${A}.0/24 oifname "${dev}" udp dport 5003 snat to ${routerB}:20000-20009
		ip saddr 10.231.${A}.0/24 oifname "${dev}" masquerade
	}
}
`);
    // The far side knows no way back to the LAN.
    await pair.both((v) => v.onB('ip route del default'));
    // An echo service on each router, port 7.
    const echo = await pair.stack.ctlRun('service', 'add', 'echo', 'tcp', ':7');
    if (echo.code !== 0) throw new Error(`service add: ${echo.stderr}`);
    kernelEcho = shAsync(`ip netns exec ${pair.kr} timeout 120 socat TCP4-LISTEN:7,reuseaddr,fork EXEC:cat`, 125_000);
  }, 60_000);
  afterAll(async () => {
    await pair?.close();
    await kernelEcho;
  });

  it('ping through masquerade', async () => {
    const r = await pair.both((v) => v.onA(`ping -c 2 -i 0.3 -W 2 ${bHost}`));
    for (const x of r) expect(x.stdout).toContain('2 packets transmitted, 2 received');
  });

  it('TCP (curl) and UDP: the far side sees the router address and the client port', async () => {
    const out = await pair.both(async (v) => {
      const http = v.onB(`timeout 15 /usr/bin/python3 ${httpScript()} 8000 || true`, 20_000);
      const udp = udpPeerServer(v, 5000, 15000);
      await listening(v, 'b', 'tcp', 8000);
      await listening(v, 'b', 'udp', 5000);
      const c = await v.onA(`curl -sS --max-time 3 --local-port 41001 http://${bHost}:8000/ 2>&1`);
      const u = await udpAsk(v, '0.0.0.0', 40100, 5000);
      await http;
      void udp; // ends by its timeout; the namespace goes at the end
      return [c.stdout.trim(), u];
    });
    expect(out).toEqual([
      [`${routerB} 41001`, `${routerB} 40100`],
      [`${routerB} 41001`, `${routerB} 40100`],
    ]);
  }, 30_000);

  it('conntrack -L lists the masqueraded UDP flow as the kernel does', async () => {
    const lines = await pair.both(async (v) => {
      const r = v.name === 'stack' ? await pair.stack.ctlRun('conntrack', '-L', '-p', 'udp', '--orig-port-src', '40100') : await v.onA(`ip netns exec ${pair.kr} conntrack -L -p udp --orig-port-src 40100`);
      // The seconds left differ by when each was asked.
      return r.stdout.trim().replace(/^(udp\s+17\s+)\d+/gm, '$1T');
    });
    expect(lines[1]).toMatch(new RegExp(`src=10\\.231\\.${A}\\.1 dst=${bHost.replace(/\./g, '\\.')} sport=40100 dport=5000 src=${bHost.replace(/\./g, '\\.')} dst=${routerB.replace(/\./g, '\\.')} sport=5000 dport=40100`));
    expect(lines[0]).toBe(lines[1]);
  }, 20_000);

  it('two clients with the same UDP source port both get through; the second is remapped', async () => {
    const out = await pair.both(async (v) => {
      const udp = udpPeerServer(v, 5002, 15000);
      await listening(v, 'b', 'udp', 5002);
      const one = await udpAsk(v, `10.231.${A}.1`, 40000, 5002);
      const two = await udpAsk(v, `10.231.${A}.3`, 40000, 5002);
      void udp;
      return [one, two];
    });
    for (const [one, two] of out) {
      expect([one, two]).toEqual([`${routerB} 40000`, expect.stringMatching(/^10\.231\.71\.2 \d+$/)]);
      const m = /^10\.231\.71\.2 (\d+)$/.exec(two);
      expect(m).not.toBeNull();
      const port = Number(m![1]);
      expect(port).not.toBe(40000);
      expect(port).toBeGreaterThanOrEqual(1024);
    }
  }, 30_000);

  it('DNAT port forward: b reaches the server in a on the router address, which sees the real client', async () => {
    const out = await pair.both(async (v) => {
      const srv = peerServer(v, 'a', 'TCP4-LISTEN:80', 15000);
      await listening(v, 'a', 'tcp', 80);
      const c = await v.onB(`socat -T 3 - TCP4:${routerB}:8080,sourceport=42000 </dev/null`);
      void srv;
      return c.stdout.trim();
    });
    expect(out).toEqual([`${bHost} 42000`, `${bHost} 42000`]);
  }, 30_000);

  it('ICMP port unreachable and traceroute come back through NAT', async () => {
    const out = await pair.both(async (v) => {
      const u = await v.onA(`echo x | socat -t 2 -T 2 - UDP4:${bHost}:9999,sourceport=40200 2>&1; echo rc=$?`);
      const t = await v.onA(`traceroute -n -q 1 -w 2 -m 3 ${bHost}`, 30_000);
      const hops = t.stdout
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/).slice(0, 2).join(' '));
      return [/Connection refused/.test(u.stdout), u.stdout.trim().split('\n').pop(), ...hops];
    });
    expect(out[0][0]).toBe(true);
    expect(out[0]).toEqual(out[1]);
    expect(out[0].slice(2)).toEqual([`1 10.231.${A}.2`, `2 ${bHost}`, '']);
  }, 60_000);

  it('iperf3 through masquerade (the stack)', async () => {
    const v = pair.views[0];
    const srv = v.onB('timeout 15 iperf3 -s -1 -p 5201', 20_000);
    await listening(v, 'b', 'tcp', 5201);
    const c = await v.onA(`iperf3 -c ${bHost} -p 5201 -t 2 -J`, 20_000);
    await srv;
    const j = JSON.parse(c.stdout) as { end: { sum_received: { bytes: number } } };
    expect(j.end.sum_received.bytes).toBeGreaterThan(1_000_000);
  }, 40_000);

  it('SNAT to a port range: ports from the range, each flow its own', async () => {
    const out = await pair.both(async (v) => {
      const udp = udpPeerServer(v, 5003, 15000);
      await listening(v, 'b', 'udp', 5003);
      const got: string[] = [];
      for (let k = 0; k < 4; k++) got.push(await udpAsk(v, `10.231.${A}.1`, 40300 + k, 5003));
      void udp;
      return got;
    });
    for (const got of out) {
      const ports = got.map((g) => {
        const m = /^10\.231\.71\.2 (\d+)$/.exec(g);
        expect(m, g).not.toBeNull();
        return Number(m![1]);
      });
      expect(new Set(ports).size).toBe(4);
      for (const p of ports) expect(p >= 20000 && p <= 20009, String(p)).toBe(true);
    }
  }, 60_000);

  it('REDIRECT to the router own TCP service', async () => {
    const out = await pair.both(async (v) => (await v.onA(`echo redirected | socat -t 3 -T 3 - TCP4:${bHost}:7777`, 15_000)).stdout);
    expect(out).toEqual(['redirected\n', 'redirected\n']);
  }, 30_000);

  it('hairpin: a LAN client reaches a LAN server through the public address', async () => {
    const out = await pair.both(async (v) => {
      const srv = v.onA(`timeout 15 socat TCP4-LISTEN:81,bind=10.231.${A}.3,reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR' || true`, 20_000);
      await listening(v, 'a', 'tcp', 81);
      const c = await v.onA(`socat -T 3 - TCP4:${routerB}:8081,bind=10.231.${A}.1 </dev/null`, 15_000);
      void srv;
      return c.stdout.trim();
    });
    // The server saw the router's LAN address, so its answer went back through the router.
    expect(out).toEqual([`10.231.${A}.2`, `10.231.${A}.2`]);
  }, 40_000);
});
