import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../helpers/harness.js';
import { KernelPair, Oracle, option, optionKinds, type Answer, type Both, type ConnResult, type ProbeOption, type ProbeSegment } from '../helpers/oracle.js';

/**
 * The kernel is the oracle: each crafted segment goes to the stack (over its TAP
 * device) and to a Linux listener (over a veth, in namespaces of its own), and
 * both must answer alike: flags, sequence and acknowledgment numbers relative to
 * the probe, the options' kinds and order and values, the window where Linux's
 * rule fixes it, an answer or none, and the counters the rule names.
 */
const ECHO = 7;
const CLOSED = 4444;
/** The options of a Linux SYN, in its order. */
const LINUX_SYN: ProbeOption[] = [['mss', 1460], ['sackok'], ['ts', 0x01020304, 0], ['nop'], ['ws', 7]];
/** Timestamps on a probe into a connection: TSval one past the client's last, TSecr the server's last. */
const TS: ProbeOption[] = [['nop'], ['nop'], ['ts', 1]];

describe('TCP probes: the stack answers as the Linux kernel does', () => {
  let tb: Testbed | undefined;
  let kp: KernelPair | undefined;
  let o: Oracle;
  let nextPort = 21000;
  const sport = (): number => nextPort++;

  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 47, extraConfig: [`service add echo tcp :${ECHO}`] });
    kp = await KernelPair.start(47, [ECHO]);
    o = new Oracle(tb, kp);
    // Neighbours resolved both ways first, so no answer waits for ARP.
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });
  afterAll(async () => {
    try {
      kp?.close();
    } finally {
      await tb?.close();
    }
  });

  function map<T, U>(r: Both<T>, f: (x: T) => U): Both<U> {
    return { stack: f(r.stack), kernel: f(r.kernel) };
  }

  /** The one answer to a raw probe, relative to it. */
  function rawAnswer(answers: Answer[], p: ProbeSegment): object | null {
    if (answers.length === 0) return null;
    expect(answers.length).toBe(1);
    const a = answers[0];
    return {
      flags: a.flagsStr,
      // RST to an ACK: <SEQ=SEG.ACK>; everything else answers from its own ISN (0 for a RST/ACK).
      seq: a.flagsStr === 'SA' ? 'isn' : (a.seq - (a.flagsStr === 'R' ? (p.ack ?? 0) : 0)) >>> 0,
      ackRel: a.flagsStr === 'R' ? a.ack : (a.ack - (p.seq ?? 0)) >>> 0,
      window: a.window,
      options: a.options.map((x) => (x[0] === 8 ? [8, 'val', x[2]] : x)),
      len: a.len,
    };
  }

  /**
   * An answer inside a connection: numbers relative to the connection's state as the
   * probe found it. The window is left out: after the handshake no rule fixes it (Linux
   * grows it from rcv_ssthresh, 64 << 10 after this little data; the stack offers its
   * free buffer, 128 << 10).
   */
  function connAnswers(r: ConnResult): object[] {
    const c = r.conn;
    return r.answers.map((a) => ({
      flags: a.flagsStr,
      seqRel: a.seqRel,
      ackRel: a.ackRel,
      options: optionKinds(a),
      tsEcrRel: option(a, 8) ? (((option(a, 8)![2] as number) - (c.clientTs ?? 0)) | 0) : null,
      sack: option(a, 5) ? (option(a, 5)!.slice(1) as number[]).map((v) => (v - c.clientNxt) | 0) : null,
      len: a.len,
    }));
  }

  async function connProbe(probe: ProbeSegment, counters: string[]): Promise<{ answers: Both<object[]>; after: Both<unknown>; counters: Both<Record<string, number>> }> {
    const before = await o.counters();
    const r = await o.conn(ECHO, probe);
    return { answers: map(r, connAnswers), after: map(r, (x) => x.after), counters: await o.deltas(before, counters) };
  }

  const same = <T>(v: T): Both<T> => ({ stack: v, kernel: v });
  const ACK_NOW = { flags: 'A', seqRel: 0, ackRel: 0, options: [1, 1, 8], tsEcrRel: 0, sack: null, len: 0 };
  const ECHOED = same({ data: 'after' });

  describe('a closed port (RFC 9293 §3.10.7.1)', () => {
    it('a SYN gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>: SYN alone, SYN with data, SYN+FIN', async () => {
      const probes: ProbeSegment[] = [
        { sport: sport(), dport: CLOSED, flags: 'S', seq: 5000, options: LINUX_SYN },
        { sport: sport(), dport: CLOSED, flags: 'S', seq: 6000, data: 'hello' },
        { sport: sport(), dport: CLOSED, flags: 'SF', seq: 7000 },
      ];
      const r = await o.raw(probes);
      const got = map(r, (side) => side.map((a, i) => rawAnswer(a, probes[i])));
      const rst = (len: number): object => ({ flags: 'RA', seq: 0, ackRel: len, window: 0, options: [], len: 0 });
      expect(got).toEqual(same([rst(1), rst(6), rst(2)]));
    });

    it('an ACK gets <SEQ=SEG.ACK><CTL=RST>', async () => {
      const probes: ProbeSegment[] = [
        { sport: sport(), dport: CLOSED, flags: 'A', seq: 5000, ack: 777777 },
        { sport: sport(), dport: CLOSED, flags: 'PA', seq: 5000, ack: 0xfffffff0, data: 'data' },
      ];
      const r = await o.raw(probes);
      const got = map(r, (side) => side.map((a, i) => rawAnswer(a, probes[i])));
      const rst = { flags: 'R', seq: 0, ackRel: 0, window: 0, options: [], len: 0 };
      expect(got).toEqual(same([rst, rst]));
    });

    it('a RST gets nothing, with ACK or SYN too, and is no error', async () => {
      const probes: ProbeSegment[] = [
        { sport: sport(), dport: CLOSED, flags: 'R', seq: 5000 },
        { sport: sport(), dport: CLOSED, flags: 'RA', seq: 5000, ack: 1 },
        { sport: sport(), dport: CLOSED, flags: 'SR', seq: 5000 },
      ];
      const before = await o.counters();
      const r = await o.raw(probes);
      expect(map(r, (side) => side.map((a) => a.length))).toEqual(same([0, 0, 0]));
      expect(await o.deltas(before, ['TcpInErrs'])).toEqual(same({ TcpInErrs: 0 }));
    });
  });

  describe('a listener (RFC 9293 §3.10.7.2)', () => {
    it('RFC 7323 §1.3, RFC 2018 §2: a SYN-ACK carries what the SYN offered, in the kernel layout, with its MSS, window scale and window', async () => {
      const offers: ProbeOption[][] = [
        LINUX_SYN,
        [],
        [['mss', 536], ['sackok'], ['nop'], ['ws', 2]],
        [['mss', 1460], ['nop'], ['nop'], ['ts', 5, 0]],
        [['mss', 9000], ['sackok'], ['ts', 77, 0], ['nop'], ['ws', 14]],
        [['nop'], ['ws', 0]],
      ];
      const probes: ProbeSegment[] = offers.map((options) => ({ sport: sport(), dport: ECHO, flags: 'S', seq: 1000, options }));
      // A SYN with data: the SYN is acknowledged, the data is not (Linux queues no data from a SYN).
      probes.push({ sport: sport(), dport: ECHO, flags: 'S', seq: 3000, options: LINUX_SYN, data: 'hello' });
      const r = await o.raw(probes);
      const got = map(r, (side) => side.map((a, i) => rawAnswer(a, probes[i])));
      expect(got.stack).toEqual(got.kernel);
      // The kernel's answers are what the rules say (so the comparison compares something).
      const k = r.kernel.map((a) => a[0]);
      expect(k.map((a) => a.flagsStr)).toEqual(Array(probes.length).fill('SA'));
      expect(k.map((a) => (a.ack - probes[0].seq!) >>> 0)).toEqual([1, 1, 1, 1, 1, 1, 2001]);
      expect(optionKinds(k[0])).toEqual([2, 4, 8, 1, 3]);
      expect(optionKinds(k[1])).toEqual([2]);
      expect(option(k[0], 8)![2]).toBe(0x01020304);
      expect(k[0].window).toBe(65160);
      expect(k[1].window).toBe(64240);
    });

    it('an ACK that completes no handshake gets <SEQ=SEG.ACK><CTL=RST>', async () => {
      const p: ProbeSegment = { sport: sport(), dport: ECHO, flags: 'A', seq: 1000, ack: 424242 };
      const r = await o.raw([p]);
      expect(map(r, (side) => rawAnswer(side[0], p))).toEqual(same({ flags: 'R', seq: 0, ackRel: 0, window: 0, options: [], len: 0 }));
    });

    it('a SYN with FIN, or with RST, is dropped (Linux tcp_rcv_state_process): no answer, nothing counted as an error', async () => {
      const before = await o.counters();
      const r = await o.raw([
        { sport: sport(), dport: ECHO, flags: 'SF', seq: 1000, options: LINUX_SYN },
        { sport: sport(), dport: ECHO, flags: 'SR', seq: 1000, options: LINUX_SYN },
      ]);
      expect(map(r, (side) => side.map((a) => a.length))).toEqual(same([0, 0]));
      expect(await o.deltas(before, ['TcpInErrs', 'TcpPassiveOpens'])).toEqual(same({ TcpInErrs: 0, TcpPassiveOpens: 0 }));
    });
  });

  describe('broken headers (RFC 9293 §3.1)', () => {
    it('a bad checksum: dropped unanswered, counted in TcpInCsumErrors and TcpInErrs', async () => {
      const before = await o.counters();
      const r = await o.raw([{ sport: sport(), dport: ECHO, flags: 'S', seq: 1000, options: LINUX_SYN, badChecksum: true }]);
      expect(map(r, (side) => side[0].length)).toEqual(same(0));
      expect(await o.deltas(before, ['TcpInCsumErrors', 'TcpInErrs'])).toEqual(same({ TcpInCsumErrors: 1, TcpInErrs: 1 }));
    });

    it('a data offset below 5 words: dropped unanswered, counted in TcpInErrs only', async () => {
      const before = await o.counters();
      const r = await o.raw([{ sport: sport(), dport: ECHO, flags: 'S', seq: 1000, dataOffset: 4 }]);
      expect(map(r, (side) => side[0].length)).toEqual(same(0));
      expect(await o.deltas(before, ['TcpInCsumErrors', 'TcpInErrs'])).toEqual(same({ TcpInCsumErrors: 0, TcpInErrs: 1 }));
    });

    it('a data offset beyond the segment, or a segment shorter than 20 bytes: dropped unanswered and uncounted (Linux discard_it)', async () => {
      const before = await o.counters();
      const r = await o.raw([
        { sport: sport(), dport: ECHO, flags: 'S', seq: 1000, dataOffset: 15 },
        { sport: sport(), dport: ECHO, flags: 'S', seq: 1000, truncate: 12 },
      ]);
      expect(map(r, (side) => side.map((a) => a.length))).toEqual(same([0, 0]));
      expect(await o.deltas(before, ['TcpInCsumErrors', 'TcpInErrs', 'TcpPassiveOpens'])).toEqual(same({ TcpInCsumErrors: 0, TcpInErrs: 0, TcpPassiveOpens: 0 }));
    });
  });

  describe('an established connection (RFC 9293 §3.10.7.4, RFC 5961, RFC 7323)', () => {
    it('RFC 5961 §3.2: a RST in the window but not at RCV.NXT draws a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>; the connection lives on', async () => {
      // With SYN as well it is still a RST to Linux (RST is checked before SYN).
      for (const flags of ['R', 'SR']) {
        const r = await connProbe({ flags, seq: 1 }, ['TcpExtTCPChallengeACK', 'TcpEstabResets', 'TcpInErrs']);
        expect({ flags, ...r }).toEqual({
          flags,
          answers: same([ACK_NOW]),
          counters: same({ TcpExtTCPChallengeACK: 1, TcpEstabResets: 0, TcpInErrs: 0 }),
          after: ECHOED,
        });
      }
    });

    it('RFC 5961 §3.2: a RST exactly at RCV.NXT resets the connection: no answer, the client then meets ECONNRESET', async () => {
      for (const flags of ['R', 'SR']) {
        const r = await connProbe({ flags, seq: 0 }, ['TcpEstabResets', 'TcpExtTCPChallengeACK']);
        expect({ flags, ...r }).toEqual({
          flags,
          answers: same([]),
          counters: same({ TcpEstabResets: 1, TcpExtTCPChallengeACK: 0 }),
          after: same({ error: 'ECONNRESET' }),
        });
      }
    });

    it('RFC 5961 §4.2: a SYN draws a challenge ACK (TcpExtTCPSYNChallenge, TcpInErrs) wherever it lies, with FIN too, and failing PAWS too', async () => {
      const probes: Record<string, ProbeSegment> = {
        'in the window': { flags: 'S', seq: 5, options: TS },
        'with FIN': { flags: 'SF', seq: 5 },
        'out of the window': { flags: 'S', seq: 1 << 30, options: TS },
        'with an old TSval': { flags: 'S', seq: 5, options: [['nop'], ['nop'], ['ts', -100000]] },
      };
      for (const [name, p] of Object.entries(probes)) {
        const r = await connProbe(p, ['TcpExtTCPChallengeACK', 'TcpExtTCPSYNChallenge', 'TcpInErrs', 'TcpExtPAWSEstab']);
        expect({ name, ...r }).toEqual({
          name,
          answers: same([ACK_NOW]),
          counters: same({ TcpExtTCPChallengeACK: 1, TcpExtTCPSYNChallenge: 1, TcpInErrs: 1, TcpExtPAWSEstab: 0 }),
          after: ECHOED,
        });
      }
    });

    it('first check: data beyond the window draws a duplicate ACK and is dropped', async () => {
      const r = await connProbe({ flags: 'PA', seq: 1 << 30, data: 'XXXXXXXXXX', options: TS }, ['TcpExtTCPChallengeACK']);
      expect(r.answers).toEqual(same([ACK_NOW]));
      expect(r.counters).toEqual(same({ TcpExtTCPChallengeACK: 0 }));
      expect(r.after).toEqual(ECHOED);
    });

    it('RFC 2883: data already received draws an ACK with a D-SACK block for it', async () => {
      // The last 5 bytes again ("hello", ending at RCV.NXT: acceptable, so its TSval becomes
      // TS.Recent and is echoed, RFC 7323 §4.3), then 3 of them ending before it (unacceptable).
      for (const [p, block, tsEcrRel] of [
        [{ flags: 'PA', seq: -5, data: 'hello', options: TS }, [-5, 0], 1],
        [{ flags: 'PA', seq: -5, data: 'hel', options: TS }, [-5, -2], 0],
      ] as [ProbeSegment, number[], number][]) {
        const r = await connProbe(p, []);
        expect(r.answers).toEqual(same([{ ...ACK_NOW, options: [1, 1, 8, 1, 1, 5], sack: block, tsEcrRel }]));
        expect(r.after).toEqual(ECHOED);
      }
    });

    it('RFC 7323 §5.3 (PAWS): a segment with an old TSval is dropped with an ACK (TcpExtPAWSEstab)', async () => {
      const r = await connProbe({ flags: 'PA', seq: 0, data: 'PAWS!', options: [['nop'], ['nop'], ['ts', -100000]] }, ['TcpExtPAWSEstab']);
      expect(r.answers).toEqual(same([ACK_NOW]));
      expect(r.counters).toEqual(same({ TcpExtPAWSEstab: 1 }));
      // The data was dropped: the echo brings back only what came after.
      expect(r.after).toEqual(ECHOED);
    });

    it('fifth check: an ACK of data never sent draws an ACK (a challenge ACK, as Linux tcp_ack sends) and the segment is dropped, its TSval too', async () => {
      for (const p of [
        { flags: 'A', seq: 0, ack: 100000, options: TS },
        { flags: 'PA', seq: 0, ack: 100000, data: 'evil', options: TS },
        // A TSval far ahead must not become TS.Recent: PAWS would then drop the client's real segments.
        { flags: 'PA', seq: 0, ack: 100000, data: 'evil', options: [['nop'], ['nop'], ['ts', 1 << 30]] },
      ] as ProbeSegment[]) {
        const r = await connProbe(p, ['TcpExtTCPChallengeACK']);
        expect(r.answers).toEqual(same([ACK_NOW]));
        expect(r.counters).toEqual(same({ TcpExtTCPChallengeACK: 1 }));
        expect(r.after).toEqual(ECHOED);
      }
    });

    it('RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND draws a challenge ACK and its data is dropped', async () => {
      const r = await connProbe({ flags: 'PA', seq: 0, ack: -(1 << 20), data: 'evil', options: TS }, ['TcpExtTCPChallengeACK']);
      expect(r.answers).toEqual(same([ACK_NOW]));
      expect(r.counters).toEqual(same({ TcpExtTCPChallengeACK: 1 }));
      expect(r.after).toEqual(ECHOED);
    });

    it('Linux tcp_ack: an ACK older than anything ever acknowledged (below SND.UNA - min(MAX.SND.WND, bytes acked)) draws a challenge ACK, its data dropped', async () => {
      // Only 5 bytes were acknowledged so far: 100 below SND.UNA is inside MAX.SND.WND, yet older than any ACK could be.
      const r = await connProbe({ flags: 'PA', seq: 0, ack: -100, data: 'evil', options: TS }, ['TcpExtTCPChallengeACK']);
      expect(r.answers).toEqual(same([ACK_NOW]));
      expect(r.counters).toEqual(same({ TcpExtTCPChallengeACK: 1 }));
      expect(r.after).toEqual(ECHOED);
    });

    it("RFC 7323 §5.3 with Linux's TCP_PAWS_WINDOW: a TSval one tick behind TS.Recent passes, and the data is taken", async () => {
      const r = await connProbe({ flags: 'PA', seq: 0, data: 'PAWS1', options: [['nop'], ['nop'], ['ts', -1]] }, ['TcpExtPAWSEstab']);
      expect(r.counters).toEqual(same({ TcpExtPAWSEstab: 0 }));
      // Taken by both: the injected bytes are acknowledged (and echoed back), TS.Recent
      // stays where it was (RFC 7323 §4.3: an older TSval never replaces it), and both answer
      // the same way. (How often each then resends the echo is left out: no rule fixes it.)
      const firstTwo = (a: object[]) => a.slice(0, 2);
      expect(firstTwo(r.answers.stack)).toEqual(firstTwo(r.answers.kernel));
      expect(r.answers.stack[0]).toMatchObject({ ackRel: 5, tsEcrRel: 0 });
      expect(r.after.stack).toEqual(r.after.kernel);
    });

    it('a segment with none of ACK, RST and SYN is dropped unanswered, in the window or not (Linux tcp_rcv_established)', async () => {
      for (const p of [
        { flags: 'F', seq: 1 << 30 },
        { flags: 'F', seq: 0 },
        { flags: 'P', seq: 0, data: 'noack' },
      ] as ProbeSegment[]) {
        const r = await connProbe(p, []);
        expect({ p, answers: r.answers, after: r.after }).toEqual({ p, answers: same([]), after: ECHOED });
      }
    });
  });

  describe('robustness', () => {
    it('10,000 random segments at the echo port (half with good checksums, half into a live connection): no internal error, the service still echoes', async () => {
      const bed = tb!;
      const n0 = await bed.nstat();
      const r = await o.flood(ECHO, 10_000, 47);
      expect(r.sent).toBe(10_000);
      await new Promise((res) => setTimeout(res, 1000));
      expect(bed.exitCode).toBeNull();
      const n1 = await bed.nstat();
      // Nearly all of them reached TCP (a few may be dropped on the way under load).
      expect(n1.TcpInSegs - n0.TcpInSegs).toBeGreaterThan(9000);
      expect(n1.TcpInCsumErrors - n0.TcpInCsumErrors).toBeGreaterThan(4000);
      expect((await bed.linkDrops())['internal-error'] ?? 0).toBe(0);
      const e = await bed.peerAsync(`printf 'still here' | socat -t 3 - TCP4:${bed.stackIp}:${ECHO}`, 20_000);
      expect(e.stdout).toBe('still here');
      expect(bed.exitCode).toBeNull();
    }, 180_000);
  });
});
