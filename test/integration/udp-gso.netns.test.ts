import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Testbed, sh, shAsync, shOk } from '../helpers/harness.js';
import { RouterTestbed } from '../helpers/router.js';
import { offloadStats } from '../helpers/offload-live.js';

// UDP_SEGMENT senders in the kernel (test/helpers/udp-gso.py): one 64 KB write reaches the
// stack's TAP as one UDP super-packet (TUN_F_USO4). To the stack's UDP echo service
// (10.233.192.0/24), and through the stack as a router to a kernel receiver
// (10.233.190.0/24 -> 10.233.191.0/24), with and without masquerade. Needs namespaces.

const SCRIPT = path.join(ROOT, 'test/helpers/udp-gso.py');
const TOTAL = 64000;
const GSO = 1400;
const SEGS = Math.ceil(TOTAL / GSO);

interface Checked {
  count: number;
  bad: number;
  distinct: number;
  peers: string[];
}

const lastJson = (out: string): Checked => JSON.parse(out.trim().split('\n').pop() ?? '{}') as Checked;

/** The kernel's Udp counters where `run` runs a shell command. */
function kernelUdp(run: (c: string) => { stdout: string }): Record<string, number> {
  const out = run('nstat -az Udp*').stdout;
  return Object.fromEntries([...out.matchAll(/^(Udp\w+)\s+(\d+)/gm)].map((m) => [m[1], Number(m[2])]));
}

describe('UDP super-packets from a kernel socket to the stack', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 192, net: '10.233', nsPrefix: 'usn', devPrefix: 'us', extraConfig: ['service add echo udp :7'] });
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  it('the TAP has tx-udp-segmentation on in the kernel, as the stack asked', () => {
    const k = tb.peer(`ethtool -k ${tb.dev}`).stdout;
    expect(k).toMatch(/^tx-udp-segmentation: on$/m);
  });

  it('one 64 KB UDP_SEGMENT write arrives as one super-packet and is echoed as 46 datagrams of gso_size', async () => {
    const before = await offloadStats((...a) => tb.ctlRun(...a), tb.dev);
    const nBefore = await tb.nstat();
    const r = tb.peer(`${SCRIPT} send ${tb.stackIp} 7 ${TOTAL} ${GSO} 5`, { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(lastJson(r.stdout)).toEqual({ count: SEGS, bad: 0, distinct: SEGS, peers: [`${tb.stackIp}:7`] });
    const after = await offloadStats((...a) => tb.ctlRun(...a), tb.dev);
    const n = await tb.nstat();
    expect(after.rx_gso_packets - before.rx_gso_packets).toBe(1);
    expect(after.rx_gso_segments - before.rx_gso_segments).toBe(SEGS);
    expect(n.UdpInDatagrams - nBefore.UdpInDatagrams).toBe(SEGS);
    expect(n.UdpOutDatagrams - nBefore.UdpOutDatagrams).toBe(SEGS);
    expect(n.UdpInErrors - nBefore.UdpInErrors).toBe(0);
  }, 30_000);

  it('with tx-udp-segmentation off the kernel cuts them itself: the same 46 datagrams, no super-packet', async () => {
    const off = await tb.ctlRun('ethtool', '-K', tb.dev, 'tx-udp-segmentation', 'off');
    expect(off.code).toBe(0);
    expect(tb.peer(`ethtool -k ${tb.dev}`).stdout).toMatch(/^tx-udp-segmentation: off$/m);
    const before = await offloadStats((...a) => tb.ctlRun(...a), tb.dev);
    const r = tb.peer(`${SCRIPT} send ${tb.stackIp} 7 ${TOTAL} ${GSO} 5`, { timeoutMs: 20_000 });
    expect(lastJson(r.stdout)).toEqual({ count: SEGS, bad: 0, distinct: SEGS, peers: [`${tb.stackIp}:7`] });
    const after = await offloadStats((...a) => tb.ctlRun(...a), tb.dev);
    expect(after.rx_gso_packets - before.rx_gso_packets).toBe(0);
    const on = await tb.ctlRun('ethtool', '-K', tb.dev, 'tx-udp-segmentation', 'on');
    expect(on.code).toBe(0);
    expect(tb.peer(`ethtool -k ${tb.dev}`).stdout).toMatch(/^tx-udp-segmentation: on$/m);
  }, 30_000);
});

describe('UDP super-packets through the stack as a router to a kernel receiver', () => {
  let tb: RouterTestbed;
  beforeAll(async () => {
    tb = await RouterTestbed.start(
      { subnet: 190, net: '10.233', dev: 'usra', ns: 'us-ra' },
      { subnet: 191, net: '10.233', dev: 'usrb', ns: 'us-rb' },
      ['sysctl -w net.ipv4.ip_forward=1'],
    );
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  async function through(port: number): Promise<Checked> {
    const recv = tb.b.runAsync(`${SCRIPT} recv ${port} ${SEGS} 6 ${TOTAL} ${GSO}`, 20_000);
    await new Promise((r) => setTimeout(r, 400));
    const s = tb.a.run(`${SCRIPT} send ${tb.b.peerIp} ${port} ${TOTAL} ${GSO}`, { timeoutMs: 10_000 });
    expect(s.code).toBe(0);
    return lastJson((await recv).stdout);
  }

  it('passes the super-packet whole to the out TAP (USO there too); the receiver gets all 46 datagrams intact', async () => {
    const a0 = await offloadStats((...x) => tb.ctlRun(...x), 'usra');
    const b0 = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    const got = await through(6001);
    expect([got.count, got.bad, got.distinct]).toEqual([SEGS, 0, SEGS]);
    expect(got.peers).toHaveLength(1);
    expect(got.peers[0]).toMatch(new RegExp(`^${tb.a.peerIp.replace(/\./g, '\\.')}:\\d+$`));
    const a = await offloadStats((...x) => tb.ctlRun(...x), 'usra');
    const b = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    expect(a.rx_gso_packets - a0.rx_gso_packets).toBe(1);
    expect(b.tx_gso_packets - b0.tx_gso_packets).toBe(1);
    expect(b.tx_gso_segments - b0.tx_gso_segments).toBe(SEGS);
  }, 30_000);

  it('cuts it in software before an out TAP with tx-udp-segmentation and tx checksumming off; the kernel verifies every checksum', async () => {
    expect((await tb.ctlRun('ethtool', '-K', 'usrb', 'tx', 'off')).code).toBe(0);
    const errs = kernelUdp((c) => tb.b.run(c)).UdpInCsumErrors ?? 0;
    const b0 = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    const got = await through(6002);
    expect([got.count, got.bad, got.distinct]).toEqual([SEGS, 0, SEGS]);
    const b = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    expect(b.tx_gso_packets - b0.tx_gso_packets).toBe(0);
    expect(b.tx_gso_sw_segments - b0.tx_gso_sw_segments).toBe(SEGS);
    expect(kernelUdp((c) => tb.b.run(c)).UdpInCsumErrors ?? 0).toBe(errs);
    expect((await tb.ctlRun('ethtool', '-K', 'usrb', 'tx-udp-segmentation', 'on')).code).toBe(0);
  }, 30_000);

  it('through masquerade, whole and cut: every datagram intact from the stack address', async () => {
    for (const line of ['add table ip usnat', 'add chain ip usnat post { type nat hook postrouting priority srcnat ; }', 'add rule ip usnat post oifname usrb counter masquerade']) {
      const x = await tb.ctlRun('nft', ...line.split(' '));
      expect([line, x.code, x.stderr]).toEqual([line, 0, '']);
    }
    const b0 = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    const whole = await through(6003);
    expect([whole.count, whole.bad, whole.distinct]).toEqual([SEGS, 0, SEGS]);
    expect(whole.peers).toHaveLength(1);
    expect(whole.peers[0]).toMatch(new RegExp(`^${tb.b.stackIp.replace(/\./g, '\\.')}:\\d+$`));
    const b1 = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    expect(b1.tx_gso_packets - b0.tx_gso_packets).toBe(1);
    // Cut and finished by the stack: the kernel checks each NATed datagram's checksum.
    expect((await tb.ctlRun('ethtool', '-K', 'usrb', 'tx', 'off')).code).toBe(0);
    const errs = kernelUdp((c) => tb.b.run(c)).UdpInCsumErrors ?? 0;
    const cut = await through(6004);
    expect([cut.count, cut.bad, cut.distinct]).toEqual([SEGS, 0, SEGS]);
    expect(cut.peers[0]).toMatch(new RegExp(`^${tb.b.stackIp.replace(/\./g, '\\.')}:\\d+$`));
    expect(kernelUdp((c) => tb.b.run(c)).UdpInCsumErrors ?? 0).toBe(errs);
    const b2 = await offloadStats((...x) => tb.ctlRun(...x), 'usrb');
    expect(b2.tx_gso_sw_segments - b1.tx_gso_sw_segments).toBe(SEGS);
  }, 40_000);
});

describe('the same through a kernel router (the reference)', () => {
  // us-ka (10.233.193.1) -- us-kr (.193.2 / .194.2) -- us-kb (10.233.194.1), veth pairs.
  const ns = ['us-ka', 'us-kr', 'us-kb'];
  const inNs = (n: string, c: string) => sh(`ip netns exec ${n} sh -c '${c.replace(/'/g, `'\\''`)}'`);
  beforeAll(() => {
    for (const n of ns) shOk(`ip netns add ${n}`);
    shOk('ip link add usk0 netns us-ka type veth peer name usk1 netns us-kr');
    shOk('ip link add usk2 netns us-kr type veth peer name usk3 netns us-kb');
    for (const [n, c] of [
      ['us-ka', 'ip addr add 10.233.193.1/24 dev usk0 && ip link set usk0 up && ip link set lo up && ip route add default via 10.233.193.2'],
      ['us-kr', 'ip addr add 10.233.193.2/24 dev usk1 && ip addr add 10.233.194.2/24 dev usk2 && ip link set usk1 up && ip link set usk2 up && sysctl -qw net.ipv4.ip_forward=1'],
      ['us-kb', 'ip addr add 10.233.194.1/24 dev usk3 && ip link set usk3 up && ip link set lo up && ip route add default via 10.233.194.2'],
    ] as const)
      expect(inNs(n, c).code).toBe(0);
  });
  afterAll(() => {
    for (const n of ns) {
      sh(`ip netns pids ${n} | xargs -r kill -9`);
      sh(`ip netns del ${n}`);
    }
  });

  async function through(port: number): Promise<Checked> {
    const recv = shAsync(`ip netns exec us-kb ${SCRIPT} recv ${port} ${SEGS} 6 ${TOTAL} ${GSO}`, 20_000);
    await new Promise((r) => setTimeout(r, 400));
    expect(inNs('us-ka', `${SCRIPT} send 10.233.194.1 ${port} ${TOTAL} ${GSO}`).code).toBe(0);
    return lastJson((await recv).stdout);
  }

  it('delivers the same 46 intact datagrams, plain and through masquerade', async () => {
    const plain = await through(6101);
    expect([plain.count, plain.bad, plain.distinct]).toEqual([SEGS, 0, SEGS]);
    expect(plain.peers[0]).toMatch(/^10\.233\.193\.1:\d+$/);
    expect(inNs('us-kr', "nft add table ip usnat && nft add chain ip usnat post '{ type nat hook postrouting priority srcnat ; }' && nft add rule ip usnat post oifname usk2 masquerade").code).toBe(0);
    const nat = await through(6102);
    expect([nat.count, nat.bad, nat.distinct]).toEqual([SEGS, 0, SEGS]);
    expect(nat.peers[0]).toMatch(/^10\.233\.194\.2:\d+$/);
  }, 30_000);
});
