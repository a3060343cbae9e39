import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterTestbed } from '../helpers/router.js';
import { CLI, sh, shAsync, shOk, type RunResult } from '../helpers/harness.js';

/**
 * `tapstack conntrack` against `conntrack` on a kernel router: the stack routes
 * between namespaces tsck-sa (10.231.61.1) and tsck-sb (10.231.62.1), a kernel
 * router tsck-kr does the same between tsck-ka and tsck-kb with the same
 * addresses, both with one nft ruleset that tracks connections, masquerades
 * tcp/5006 and udp/5007 and forwards 10.231.61.2:8080 to 10.231.62.1:80. The same
 * traffic goes through both; the tools' answers must be the same lines, but for
 * the seconds left (the two tables were not made at the same instant), the ids
 * and the port ids of userspace changes. Needs namespaces and conntrack(8): the
 * container run (TAPSTACK_TEST_PEER=local) leaves this file out.
 */
const RULES = `table ip filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    tcp dport 5001 ct mark set 42
    ct state established,related accept
    ct state new accept
  }
}
table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100;
    ip daddr 10.231.61.2 tcp dport 8080 dnat to 10.231.62.1:80
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    ip daddr 10.231.62.0/24 tcp dport 5006 masquerade
    ip daddr 10.231.62.0/24 udp dport 5007 masquerade
  }
}
`;

/** What the far side drops without an answer, so that those flows stay unreplied. */
const FAR_RULES = `table ip filter {
  chain input {
    type filter hook input priority 0;
    tcp dport 5002 drop
    udp dport 5005 drop
  }
}
`;

interface Side {
  name: 'stack' | 'kernel';
  nsA: string;
  nsB: string;
  /** Runs conntrack ARGS against this side's table. */
  conntrack(args: string): Promise<RunResult>;
  /** The argv that streams `conntrack -E ARGS` (SIGINT ends it). */
  events(args: string[]): string[];
}

const ns = (n: string, c: string): string => `ip netns exec ${n} sh -c '${c.replace(/'/g, `'\\''`)}'`;

/** One connection per line, sorted, the timeout (and ids, port ids) left out. */
function norm(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) =>
      l
        .replace(/^((?: *\[\w+\] )?(?:ipv4 +2 )?\w+ +\d+ )\d+ /, '$1T ')
        .replace(/ use=\d+ id=\d+/, ' use=N id=I')
        .replace(/(dport=\d+|mark=\d+) id=\d+/, '$1 id=I')
        .replace(/portid=\d+( progname=\S+)?/, 'portid=P'),
    )
    .sort();
}

describe('tapstack conntrack matches conntrack on a kernel router', () => {
  let tb: RouterTestbed;
  let sides: [Side, Side];
  const made: string[] = [];

  async function both<T>(f: (s: Side) => Promise<T>): Promise<[T, T]> {
    return Promise.all([f(sides[0]), f(sides[1])]);
  }

  /** The same command on both; [stack, kernel]. */
  async function ct(args: string): Promise<[RunResult, RunResult]> {
    return both((s) => s.conntrack(args));
  }

  async function traffic(s: Side): Promise<void> {
    const a = (c: string, t = 15_000): Promise<RunResult> => shAsync(ns(s.nsA, c), t);
    const py = (code: string): string => `python3 -c '${code.replace(/'/g, `'\\''`)}'`;
    const udp = (sport: number, dport: number): string =>
      py(`import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", ${sport}))
s.settimeout(1)
s.sendto(b"x", ("10.231.62.1", ${dport}))
try: s.recv(100)
except OSError: pass`);
    await a('socat -T 30 SYSTEM:"sleep 30" TCP:10.231.62.1:5001,sourceport=40001,reuseaddr >/dev/null 2>&1 & sleep 0.3');
    await a('socat -T 3 /dev/null TCP:10.231.62.1:5002,sourceport=40002,connect-timeout=1 >/dev/null 2>&1; true');
    // -t 5: after its FIN the client waits for the echo and the server's FIN (socat's
    // default 0.5 s can run out on a busy machine, and the late echo then draws a RST,
    // leaving CLOSE instead of TIME_WAIT on whichever router saw it).
    await a('echo hi | socat -t 5 - TCP:10.231.62.1:5003,sourceport=40003 >/dev/null');
    await a(udp(40004, 5004));
    await a(udp(40005, 5005));
    await a('socat -T 30 SYSTEM:"sleep 30" TCP:10.231.62.1:5006,sourceport=40006,reuseaddr >/dev/null 2>&1 & sleep 0.3');
    await a(udp(40007, 5007));
    await a('socat -T 30 SYSTEM:"sleep 30" TCP:10.231.61.2:8080,sourceport=40008,reuseaddr >/dev/null 2>&1 & sleep 0.3');
    await a(
      py(`import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
m = struct.pack("!BBHHH", 8, 0, 0, 4660, 1) + b"tapstack"
m = m[:2] + struct.pack("!H", csum(m)) + m[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
s.sendto(m, ("10.231.62.1", 0))
s.recv(200)`),
    );
  }

  beforeAll(async () => {
    tb = await RouterTestbed.start({ subnet: 61, dev: 'tsck-da', ns: 'tsck-sa' }, { subnet: 62, dev: 'tsck-db', ns: 'tsck-sb' }, ['sysctl -w net.ipv4.ip_forward=1']);
    for (const n of ['tsck-kr', 'tsck-ka', 'tsck-kb']) {
      sh(`ip netns del ${n} 2>/dev/null`);
      shOk(`ip netns add ${n}`);
      made.push(n);
      shOk(`ip -n ${n} link set lo up`);
    }
    for (const [sub, cns, cdev, rdev] of [
      [61, 'tsck-ka', 'tsck-ka0', 'tsck-kra'],
      [62, 'tsck-kb', 'tsck-kb0', 'tsck-krb'],
    ] as const) {
      shOk(`ip link add ${cdev} netns ${cns} type veth peer name ${rdev} netns tsck-kr`);
      shOk(`ip -n ${cns} addr add 10.231.${sub}.1/24 dev ${cdev} && ip -n ${cns} link set ${cdev} up`);
      shOk(`ip -n ${cns} route add default via 10.231.${sub}.2`);
      shOk(`ip -n tsck-kr addr add 10.231.${sub}.2/24 dev ${rdev} && ip -n tsck-kr link set ${rdev} up`);
    }
    shOk('ip netns exec tsck-kr sysctl -qw net.ipv4.ip_forward=1');
    const ctl = `${process.execPath} ${CLI} --ctl ${tb.ctl}`;
    sides = [
      {
        name: 'stack',
        nsA: tb.a.ns,
        nsB: tb.b.ns,
        conntrack: (args) => shAsync(`${ctl} conntrack ${args}`),
        events: (args) => [process.execPath, CLI, '--ctl', tb.ctl, 'conntrack', '-E', ...args],
      },
      {
        name: 'kernel',
        nsA: 'tsck-ka',
        nsB: 'tsck-kb',
        conntrack: (args) => shAsync(`ip netns exec tsck-kr conntrack ${args}`),
        events: (args) => ['ip', 'netns', 'exec', 'tsck-kr', 'conntrack', '-E', ...args],
      },
    ];
    shOk(`${ctl} nft -f - <<'EOF'\n${RULES}EOF`);
    shOk(`ip netns exec tsck-kr nft -f - <<'EOF'\n${RULES}EOF`);
    await both(async (s) => {
      shOk(`ip netns exec ${s.nsB} nft -f - <<'EOF'\n${FAR_RULES}EOF`);
      const b = (c: string): void => void shAsync(ns(s.nsB, c), 60_000);
      for (const port of [5001, 5006, 80]) b(`socat TCP-LISTEN:${port},reuseaddr,fork SYSTEM:"sleep 30" >/dev/null 2>&1`);
      b('socat TCP-LISTEN:5003,reuseaddr SYSTEM:cat >/dev/null 2>&1');
      for (const port of [5004, 5007])
        b(`python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", ${port}))
s.settimeout(30)
while True:
    d, a = s.recvfrom(100)
    s.sendto(d, a)' >/dev/null 2>&1`);
    });
    await new Promise((r) => setTimeout(r, 500));
    await both(traffic);
    await new Promise((r) => setTimeout(r, 500));
  }, 90_000);

  afterAll(async () => {
    await tb?.close();
    for (const n of made) {
      sh(`ip netns pids ${n} | xargs -r kill -9`);
      sh(`ip netns del ${n}`);
    }
  });

  it('-L lists the same connections, states, statuses and marks', async () => {
    const [s, k] = await ct('-L');
    expect(k.code).toBe(0);
    expect(norm(k.stdout).length).toBe(9);
    expect({ code: s.code, out: norm(s.stdout), err: s.stderr }).toEqual({ code: k.code, out: norm(k.stdout), err: k.stderr });
  });

  it('-L with filters and -o extended,id, -G and -C give the same answers', async () => {
    for (const args of [
      '-L -o extended,id',
      '-L -p tcp',
      '-L -p udp -u UNREPLIED',
      '-L -p tcp --state ESTABLISHED -m 42',
      '-L -s 10.231.61.1 -d 10.231.62.1 -p icmp',
      '-L -u ASSURED',
      '-L -n',
      '-L -g',
      '-L -j',
      '-L -n 10.231.62.2',
      '-L -g 10.231.62.1:80',
      '-L -q 10.231.62.2 -p udp',
      '-G -p tcp -s 10.231.61.1 -d 10.231.61.2 --sport 40008 --dport 8080',
      '-G -p tcp -s 10.231.61.1 -d 10.231.62.1 --sport 40001 --dport 5001',
      '-G -p udp -s 10.231.62.1 -d 10.231.61.1 --sport 5004 --dport 40004',
      '-G -p tcp -s 10.231.61.1 -d 10.231.62.1 --sport 40001 --dport 5009',
      '-C',
    ]) {
      const [s, k] = await ct(args);
      expect({ args, code: s.code, out: norm(s.stdout), err: s.stderr }).toEqual({ args, code: k.code, out: norm(k.stdout), err: k.stderr });
    }
  });

  /** Starts `conntrack -E ARGS` on both sides; `stop()` interrupts them and returns [stack, kernel]. */
  async function events(args: string[]) {
    const streams = sides.map((s) => {
      const argv = s.events(args);
      const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      const r = { out: '', err: '', code: null as number | null, done: new Promise<void>((res) => p.on('exit', (c) => ((r.code = c), res()))) };
      p.stdout.on('data', (b: Buffer) => (r.out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (r.err += b.toString()));
      return { p, r };
    });
    await new Promise((r) => setTimeout(r, 800));
    return {
      stop: async () => {
        await new Promise((r) => setTimeout(r, 800));
        for (const { p } of streams) p.kill('SIGINT');
        await Promise.all(streams.map((x) => x.r.done));
        return streams.map((x) => x.r);
      },
    };
  }

  it('-E streams the same events for a new flow, its reply, its deletion by -D and its next packet; ^C prints the summary', async () => {
    const ev = await events(['-p', 'udp', '--dport', '5004']);
    const send = (s: Side): Promise<RunResult> =>
      shAsync(
        ns(
          s.nsA,
          `python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40011))
s.settimeout(1)
s.sendto(b"x", ("10.231.62.1", 5004))
s.recv(100)'`,
        ),
      );
    await both(send);
    const [ds, dk] = await ct('-D -p udp --sport 40011');
    expect({ code: ds.code, out: norm(ds.stdout), err: ds.stderr }).toEqual({ code: dk.code, out: norm(dk.stdout), err: dk.stderr });
    // The flow's next datagram starts a new entry.
    await both(send);
    const [s, k] = await ev.stop();
    expect(norm(k.out).length).toBe(5);
    expect({ code: s.code, out: norm(s.out), err: s.err }).toEqual({ code: k.code, out: norm(k.out), err: k.err });
  }, 30_000);

  it('-E -o extended,timestamp follows a TCP connection through its states; -U --mark changes the mark, refused without an address family as the kernel refuses it', async () => {
    const ev = await events(['-p', 'tcp', '--orig-port-src', '40012', '-o', 'extended,timestamp']);
    await both(async (s) => {
      void shAsync(ns(s.nsB, 'socat TCP-LISTEN:5013,reuseaddr SYSTEM:cat >/dev/null 2>&1'), 20_000);
      await new Promise((r) => setTimeout(r, 300));
      return shAsync(ns(s.nsA, 'echo hi | socat - TCP:10.231.62.1:5013,sourceport=40012 >/dev/null'));
    });
    await new Promise((r) => setTimeout(r, 300));
    // Without an address (or -f) the update goes out as AF_UNSPEC and the kernel refuses it.
    for (const args of ['-U -p udp --sport 40004 -m 5', '-U -s 10.231.61.1 -p udp --sport 40004 -m 5', '-L -m 5']) {
      const [us, uk] = await ct(args);
      expect({ args, code: us.code, out: norm(us.stdout), err: us.stderr }).toEqual({ args, code: uk.code, out: norm(uk.stdout), err: uk.stderr });
    }
    const [s, k] = await ev.stop();
    expect(norm(k.out).length).toBeGreaterThan(3);
    // -o timestamp: the wall-clock time of each event first, then a tab.
    const stamped = (t: string): string[] => t.split('\n').filter((l) => l !== '').map((l) => l.replace(/^\[\d{10}\.\d{6}\]\t/, ''));
    expect(s.out.split('\n').filter((l) => l !== '').every((l) => /^\[\d{10}\.\d{6}\]\t/.test(l))).toBe(true);
    expect({ code: s.code, out: stamped(s.out).map((l) => norm(l)[0]), err: s.err }).toEqual({ code: k.code, out: stamped(k.out).map((l) => norm(l)[0]), err: k.err });
  }, 30_000);

  it('-D deletes with filters and -F empties the table, with the same messages', async () => {
    for (const args of ['-D -p udp --dport 5005', '-D -p udp --dport 5005', '-F', '-L', '-C']) {
      const [s, k] = await ct(args);
      expect({ args, code: s.code, out: norm(s.stdout), err: s.stderr }).toEqual({ args, code: k.code, out: norm(k.stdout), err: k.stderr });
    }
  });
});
