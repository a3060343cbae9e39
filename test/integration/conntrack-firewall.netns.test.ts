import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterPair, type RouterView } from '../helpers/router-pair.js';
import { shAsync } from '../helpers/harness.js';

// A stateful firewall on the stack and on a kernel router namespace side by side
// (RouterPair): LAN a = 10.231.88.0/24, outside b = 10.231.89.0/24. Forwarding
// lets a start connections and lets in only what conntrack calls established or
// related. The same probes go through both and must get the same answers; an
// entry that expires makes the next packet from outside new again, on both.
// Needs namespaces: the container run (TAPSTACK_TEST_PEER=local) leaves this file out.

const A = 88;
const B = 89;
const aHost = `10.231.${A}.1`;
const bHost = `10.231.${B}.1`;

let pair: RouterPair;

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP connect from one side to `host:port` (2 s), its outcome as the client sees it. */
async function connect(v: RouterView, from: 'a' | 'b', host: string, port: number): Promise<string> {
  const run = from === 'a' ? v.onA : v.onB;
  const r = await run(`timeout 4 socat -T 2 - TCP:${host}:${port},connect-timeout=2 </dev/null 2>&1; echo "rc=$?"`, 8000);
  if (r.stdout.includes('hello')) return 'answered';
  if (/Connection refused/.test(r.stdout)) return 'refused';
  if (/timed out|rc=124|Operation now in progress/.test(r.stdout)) return 'timeout';
  return r.stdout.trim();
}

/** A TCP server on one side that greets each connection, for `ms`. */
function server(v: RouterView, on: 'a' | 'b', port: number, ms: number): Promise<unknown> {
  const run = on === 'a' ? v.onA : v.onB;
  return run(`timeout ${ms / 1000} socat TCP-LISTEN:${port},reuseaddr,fork SYSTEM:'echo hello' || true`, ms + 3000);
}

/** Sends one UDP datagram from a (bound to sport, connected) to b:dport and waits `waitS` for an answer. */
function udpFromA(v: RouterView, sport: number, dport: number, waitS: number): Promise<string> {
  const py = [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("${aHost}", ${sport}))`,
    `s.settimeout(${waitS})`,
    // Connected, so that an ICMP error reaches the socket (as ECONNREFUSED).
    `s.connect(("${bHost}", ${dport}))`,
    's.send(b"x")',
    'try:',
    '    print("answer", s.recv(2048).decode())',
    'except OSError as e:',
    '    print(type(e).__name__)',
  ].join('\n');
  return v.onA(`/usr/bin/python3 -c '${py.replace(/'/g, `'\\''`)}'`, (waitS + 5) * 1000).then((r) => r.stdout.trim());
}

/** Sends one UDP datagram from b:sport to a:dport (as a late answer would come). */
function udpFromB(v: RouterView, sport: number, dport: number): Promise<unknown> {
  const py = `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("${bHost}", ${sport})); s.sendto(b"late", ("${aHost}", ${dport}))`;
  return v.onB(`/usr/bin/python3 -c '${py}'`);
}

/** Whether a's UDP socket on `port` gets a datagram within `waitS` (listening while `send` runs). */
async function udpArrives(v: RouterView, port: number, waitS: number, send: () => Promise<unknown>): Promise<boolean> {
  const py = `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("${aHost}", ${port})); s.settimeout(${waitS})
try:
    s.recv(2048); print("got")
except OSError:
    print("none")`;
  const listener = v.onA(`/usr/bin/python3 -c '${py}'`, (waitS + 5) * 1000);
  await pause(400);
  await send();
  return (await listener).stdout.trim() === 'got';
}

/** The router's `conntrack -L` lines for UDP to `dport` (stack: tapstack conntrack; kernel: conntrack in its namespace). */
async function udpEntries(v: RouterView, dport: number): Promise<string[]> {
  const r =
    v.name === 'stack'
      ? await pair.stack.ctlRun('conntrack', '-L', '-p', 'udp', '--dport', String(dport))
      : await shAsync(`ip netns exec ${pair.kr} conntrack -L -p udp --dport ${dport}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

function sysctl(v: RouterView, kv: string): Promise<unknown> {
  return v.name === 'stack' ? pair.stack.ctlRun('sysctl', '-w', kv) : shAsync(`ip netns exec ${pair.kr} sysctl -qw ${kv}`);
}

describe('a stateful firewall (ct state established,related accept; drop), as a kernel router does it', () => {
  beforeAll(async () => {
    pair = await RouterPair.start(A, B, [], 'tscf');
    await pair.load(`table ip filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "${pair.devA}" ct state new accept
	}
}
`);
  }, 60_000);
  afterAll(async () => {
    await pair?.both((v) => sysctl(v, 'net.netfilter.nf_conntrack_udp_timeout=30')).catch(() => undefined);
    await pair?.close();
  });

  it('connections from inside go out and their replies come back; new ones from outside are kept out', async () => {
    const [outS, outK] = await pair.both(async (v) => {
      const srv = server(v, 'b', 5201, 4000);
      await pause(500);
      const r = await connect(v, 'a', bHost, 5201);
      await srv;
      return r;
    });
    expect(outS).toBe('answered');
    expect(outK).toBe(outS);
    const [inS, inK] = await pair.both(async (v) => {
      const srv = server(v, 'a', 5202, 5000);
      await pause(500);
      const r = await connect(v, 'b', aHost, 5202);
      await srv;
      return r;
    });
    expect(inS).toBe('timeout');
    expect(inK).toBe(inS);
    const ping = await pair.both(async (v) => [(await v.onA(`ping -c 1 -W 2 ${bHost}`)).code, (await v.onB(`ping -c 1 -W 2 ${aHost}`)).code]);
    expect(ping[0]).toEqual([0, 1]);
    expect(ping[1]).toEqual(ping[0]);
  });

  it('an ICMP port unreachable about a flow from inside is related and gets in', async () => {
    const [s, k] = await pair.both((v) => udpFromA(v, 40001, 5203, 3));
    expect(s).toBe('ConnectionRefusedError');
    expect(k).toBe(s);
  });

  it('an entry that expires makes the late answer from outside new, and it is dropped', async () => {
    await pair.both((v) => sysctl(v, 'net.netfilter.nf_conntrack_udp_timeout=2'));
    const answer = (v: RouterView): Promise<boolean> => udpArrives(v, 40005, 2, () => udpFromB(v, 5206, 40005));
    const before = await pair.both(async (v) => {
      await udpFromA(v, 40005, 5206, 0.2);
      const listed = (await udpEntries(v, 5206)).length;
      return { listed, answered: await answer(v) };
    });
    // While the entry lives, b's answer is established and gets in.
    expect(before[0]).toEqual({ listed: 1, answered: true });
    expect(before[1]).toEqual(before[0]);
    await pause(3500);
    const after = await pair.both(async (v) => {
      const listed = (await udpEntries(v, 5206)).length;
      return { listed, answered: await answer(v) };
    });
    // Expired: gone from the listing, and the same datagram from b is a new flow from outside.
    expect(after[0]).toEqual({ listed: 0, answered: false });
    expect(after[1]).toEqual(after[0]);
  });
});
