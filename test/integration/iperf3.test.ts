import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed, waitFor } from '../helpers/harness.js';

/**
 * iperf3 both ways round: the kernel's iperf3 client (Debian's iperf3 3.x)
 * against the stack's built-in server, and `tapstack iperf3 -c` against the
 * kernel's `iperf3 -s`, over a TAP device with the kernel in a namespace.
 */

interface IperfSum {
  bytes: number;
  bits_per_second: number;
  seconds: number;
}

interface IperfJson {
  start: { connected: { socket: number }[]; cookie: string; test_start: { num_streams: number; reverse: number } };
  intervals: { streams: { bytes: number }[]; sum: IperfSum }[];
  end: {
    streams: { sender: { bytes: number }; receiver: { bytes: number } }[];
    sum_sent: IperfSum;
    sum_received: IperfSum;
    sum_sent_bidir_reverse?: IperfSum;
    sum_received_bidir_reverse?: IperfSum;
  };
  error?: string;
}

function mbps(s: IperfSum): string {
  return `${(s.bits_per_second / 1e6).toFixed(0)} Mbit/s`;
}

describe('iperf3 over a TAP device', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 43, extraConfig: ['service add iperf3 tcp'] });
  });
  afterAll(async () => {
    await tb?.close();
  });

  /**
   * Nothing of a test is left once it ends: no established connection, and
   * `ss -tn` (which leaves out listeners and TIME-WAIT) lists nothing.
   */
  async function settled(): Promise<void> {
    let left = '';
    try {
      await waitFor(async () => {
        left = (await tb.ctlRun('ss', '-tnH')).stdout;
        return (await tb.nstat()).TcpCurrEstab === 0 && left === '';
      }, 10_000);
    } catch (e) {
      throw new Error(`left over after the test:\n${left}`, { cause: e });
    }
  }

  async function client(opts: string): Promise<IperfJson> {
    const r = await tb.peerAsync(`iperf3 -c ${tb.stackIp} -J ${opts}`, 60_000);
    const j = JSON.parse(r.stdout) as IperfJson;
    if (j.error !== undefined || r.code !== 0) throw new Error(`iperf3 ${opts}: ${j.error ?? r.stderr}\n${tb.daemonLog}`);
    return j;
  }

  it('the kernel client sends to the service (-t 2 -J)', async () => {
    const before = await tb.nstat();
    const j = await client('-t 2');
    const after = await tb.nstat();
    console.log(`iperf3 -c: sent ${mbps(j.end.sum_sent)}, received ${mbps(j.end.sum_received)}`);
    expect(j.intervals.length).toBeGreaterThanOrEqual(2);
    expect(j.end.sum_sent.bytes).toBeGreaterThan(0);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    // The service's count is what the client prints as received: the stack's IP
    // layer took in at least that, and not much more than the client sent.
    expect(j.end.sum_received.bytes).toBeLessThanOrEqual(j.end.sum_sent.bytes);
    const inOctets = after.IpExtInOctets - before.IpExtInOctets;
    expect(inOctets).toBeGreaterThanOrEqual(j.end.sum_received.bytes);
    expect(inOctets).toBeLessThan(j.end.sum_sent.bytes * 1.2);
    await settled();
  });

  it('reverse: the service sends (-R)', async () => {
    const before = await tb.nstat();
    const j = await client('-t 2 -R');
    const after = await tb.nstat();
    console.log(`iperf3 -c -R: sent ${mbps(j.end.sum_sent)}, received ${mbps(j.end.sum_received)}`);
    expect(j.start.test_start.reverse).toBe(1);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    expect(j.end.sum_sent.bytes).toBeGreaterThanOrEqual(j.end.sum_received.bytes);
    // What the client received left the stack's IP layer; what the service wrote is at most a little less.
    const outOctets = after.IpExtOutOctets - before.IpExtOutOctets;
    expect(outOctets).toBeGreaterThanOrEqual(j.end.sum_received.bytes);
    expect(outOctets).toBeLessThan(j.end.sum_sent.bytes * 1.2);
    await settled();
  });

  it('four parallel streams (-P 4)', async () => {
    const j = await client('-t 2 -P 4');
    console.log(`iperf3 -c -P 4: received ${mbps(j.end.sum_received)}`);
    expect(j.start.connected).toHaveLength(4);
    expect(j.end.streams).toHaveLength(4);
    for (const s of j.end.streams) expect(s.receiver.bytes).toBeGreaterThan(0);
    const sum = j.end.streams.reduce((a, s) => a + s.receiver.bytes, 0);
    expect(j.end.sum_received.bytes).toBe(sum);
    await settled();
  });

  it('both directions at once (--bidir)', async () => {
    const j = await client('-t 2 --bidir');
    console.log(`iperf3 -c --bidir: up ${mbps(j.end.sum_received)}, down ${mbps(j.end.sum_received_bidir_reverse!)}`);
    expect(j.start.connected).toHaveLength(2);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    expect(j.end.sum_received_bidir_reverse!.bytes).toBeGreaterThan(0);
    await settled();
  });

  it('one test at a time: a second client is told the server is busy', async () => {
    const first = tb.peerAsync(`iperf3 -c ${tb.stackIp} -t 3 -J`, 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    const second = await tb.peerAsync(`iperf3 -c ${tb.stackIp} -t 1`, 30_000);
    expect(second.code).not.toBe(0);
    expect(second.stderr + second.stdout).toContain('the server is busy running a test. try again later');
    const j = JSON.parse((await first).stdout) as IperfJson;
    expect(j.error).toBeUndefined();
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    await settled();
  });

  it('a client that vanishes mid-test, or sends junk, frees the server for the next one', async () => {
    // Not a cookie: the connection ends at EOF without a test.
    await tb.peerAsync(`printf junk | nc -q 0 ${tb.stackIp} 5201`, 10_000);
    const p = tb.peerAsync(`timeout -s KILL 1.5 iperf3 -c ${tb.stackIp} -t 10 -P 2`, 30_000);
    await p;
    // SIGKILL: the kernel closes the client's sockets; the service notices and ends the test.
    await settled();
    const j = await client('-t 1');
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    await settled();
    expect(tb.exitCode).toBeNull();
  });

  it('tapstack iperf3 -c against the kernel server, and -R', async () => {
    for (const opt of [[], ['-R']]) {
      const srv = tb.peerAsync('iperf3 -s -1 -p 5301', 60_000);
      await waitFor(() => tb.peer('ss -tln').stdout.includes(':5301'), 5000);
      const r = await tb.ctlRun('iperf3', '-c', tb.peerIp, '-p', '5301', '-t', '2', ...opt);
      console.log(r.stdout);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Connecting to host ${tb.peerIp}, port 5301`);
      expect(r.stdout).toMatch(/\[ {2}5\] {3}0\.00-1\.\d\d {3}sec .* (Mbits|Gbits|Kbits)\/sec/);
      expect(r.stdout).toMatch(/\[ {2}5\] {3}0\.00-2\.\d\d\s+sec .* sender\n/);
      expect(r.stdout).toMatch(/\[ {2}5\] {3}0\.00-2\.\d\d\s+sec .* receiver\n/);
      expect(r.stdout).toContain('\niperf Done.\n');
      // The server prints its own side's summary: receiver, or sender with -R.
      const s = await srv;
      expect(s.stdout).toMatch(opt.length > 0 ? / sender\n/ : / receiver\n/);
    }
    await settled();
  });

  it('tapstack iperf3 -c -J -P 2 prints iperf3 JSON', async () => {
    const srv = tb.peerAsync('iperf3 -s -1 -p 5302', 60_000);
    await waitFor(() => tb.peer('ss -tln').stdout.includes(':5302'), 5000);
    const r = await tb.ctlRun('iperf3', '-c', tb.peerIp, '-p', '5302', '-t', '2', '-P', '2', '-J');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as IperfJson;
    expect(j.error).toBeUndefined();
    expect(j.start.connected.map((c) => c.socket)).toEqual([5, 7]);
    expect(j.end.sum_sent.bytes).toBeGreaterThan(0);
    expect(j.end.sum_received.bytes).toBeGreaterThan(0);
    console.log(`tapstack iperf3 -c -P 2: sent ${mbps(j.end.sum_sent)}, received ${mbps(j.end.sum_received)}`);
    await srv;
    await settled();
  });

  it('tapstack iperf3 -c reports a refused connection as iperf3 does', async () => {
    const r = await tb.ctlRun('iperf3', '-c', tb.peerIp, '-p', '5399', '-t', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('iperf3: error - unable to connect to server: Connection refused\n');
  });
});
