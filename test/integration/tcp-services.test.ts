import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Testbed } from '../helpers/harness.js';

/**
 * The kernel's TCP clients (socat, nc, curl) reach the stack's built-in echo,
 * discard and chargen services over a TAP device.
 */
describe('TCP services answer the kernel over a TAP device', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({
      type: 'tap',
      subnet: 41,
      extraConfig: ['service add echo tcp :7', 'service add discard tcp :9', 'service add chargen tcp :19'],
    });
  });
  afterAll(async () => {
    await tb?.close();
  });

  function sha(file: string): string {
    return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }

  it('echoes 50 MB both ways byte for byte (socat, half-close on EOF)', async () => {
    const inFile = path.join(tb.dir, 'echo-in');
    const outFile = path.join(tb.dir, 'echo-out');
    fs.writeFileSync(inFile, crypto.randomBytes(50 * 1024 * 1024));
    const r = await tb.peerAsync(`socat -t 30 -T 60 - TCP4:${tb.stackIp}:7 < ${inFile} > ${outFile}`, 120_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.statSync(outFile).size).toBe(50 * 1024 * 1024);
    expect(sha(outFile)).toBe(sha(inFile));
  });

  it('discard takes 50 MB and sends nothing back', async () => {
    const inFile = path.join(tb.dir, 'discard-in');
    fs.writeFileSync(inFile, crypto.randomBytes(50 * 1024 * 1024));
    const before = await tb.nstat();
    const r = await tb.peerAsync(`socat -t 5 -T 60 - TCP4:${tb.stackIp}:9 < ${inFile}`, 120_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const after = await tb.nstat();
    expect(after.TcpPassiveOpens - before.TcpPassiveOpens).toBe(1);
    expect(after.TcpInSegs - before.TcpInSegs).toBeGreaterThan(50 * 1024 * 1024 / 65536);
  });

  it('chargen sends RFC 864 lines of 72 characters', async () => {
    const r = await tb.peerAsync(`timeout 5 nc ${tb.stackIp} 19 | head -c 74000`, 20_000);
    const lines = r.stdout.split('\r\n');
    expect(lines.length).toBeGreaterThan(900);
    expect(lines[0]).toBe(Array.from({ length: 72 }, (_, j) => String.fromCharCode(32 + (j % 95))).join(''));
    expect(lines[1]).toBe(Array.from({ length: 72 }, (_, j) => String.fromCharCode(32 + ((1 + j) % 95))).join(''));
  });

  it('a closed port answers RST: the client sees connection refused', async () => {
    const r = await tb.peerAsync(`nc -z -w 3 ${tb.stackIp} 4444; echo rc=$?`, 10_000);
    expect(r.stdout).toContain('rc=1');
    const after = await tb.nstat();
    expect(after.TcpOutRsts).toBeGreaterThan(0);
  });
});

/**
 * 3% of the segments each way are dropped by the kernel peer's nftables
 * (`numgen random mod 100 < 3 drop` on its input and output): the stack's
 * loss recovery and the kernel's bring 20 MB both ways through intact.
 */
describe('TCP through 3% loss each way (nft on the kernel side)', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 42, extraConfig: ['service add echo tcp :7'] });
    const rules = path.join(tb.dir, 'loss.nft');
    fs.writeFileSync(
      rules,
      [
        'table inet tsloss {',
        '  chain lossin { type filter hook input priority 0; tcp sport 7 numgen random mod 100 < 3 counter drop; }',
        '  chain lossout { type filter hook output priority 0; tcp dport 7 numgen random mod 100 < 3 counter drop; }',
        '}',
      ].join('\n') + '\n',
    );
    const r = tb.peer(`nft -f ${rules}`);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
  });
  afterAll(async () => {
    tb?.peer('nft delete table inet tsloss');
    await tb?.close();
  });

  it('echoes 20 MB byte for byte and counts its retransmissions', async () => {
    const size = 20 * 1024 * 1024;
    const inFile = path.join(tb.dir, 'loss-in');
    const outFile = path.join(tb.dir, 'loss-out');
    const release = path.join(tb.dir, 'loss-release');
    fs.writeFileSync(inFile, crypto.randomBytes(size));
    const before = await tb.nstat();
    // socat's input stays open after the data until the test has looked at the connection
    // (at most 60 s): the connection is still ESTABLISHED, with all its retransmissions
    // counted, however fast the data went. -T 30: a transfer that stalls fails in 30 s, not
    // after minutes (a lossy echo idles that long only if one segment is lost again and
    // again through the backed-off timeouts).
    const input = `{ cat ${inFile}; i=0; while [ ! -e ${release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; }`;
    const run = tb.peerAsync(`${input} | socat -t 60 -T 30 - TCP4:${tb.stackIp}:7 > ${outFile}`, 300_000);
    // While it runs, `ss -ti` shows the connection's retransmissions as the kernel's ss would.
    let done = false;
    void run.then(() => (done = true));
    let ssRetrans = 0;
    let ssLine = '';
    let afterData = '';
    const live = /^(ESTAB|CLOSE-WAIT|LAST-ACK)\s/m;
    while (!done) {
      const echoed = fs.existsSync(outFile) && fs.statSync(outFile).size >= size;
      const ss = await tb.ctlRun('ss', '-tin', 'sport', '=', ':7');
      const m = /bytes_retrans:(\d+)/.exec(ss.stdout);
      if (m && Number(m[1]) > ssRetrans && live.test(ss.stdout)) {
        ssRetrans = Number(m[1]);
        ssLine = ss.stdout;
      }
      if (echoed && afterData === '') {
        // Everything came back while the client's input is still open: one last look, then let socat end.
        afterData = ss.stdout;
        fs.writeFileSync(release, '');
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    const r = await run;
    expect(ssRetrans).toBeGreaterThan(0);
    expect(ssLine).toMatch(live);
    expect(ssLine).toMatch(/ retrans:\d+\/\d+ /);
    // Once all 20 MB were back, the connection was idle and established, its counts final.
    expect(afterData).toMatch(/^ESTAB\s/m);
    expect(afterData).toMatch(/ bytes_retrans:[1-9]\d* /);
    expect(afterData).toMatch(/ retrans:\d+\/[1-9]\d* /);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
    expect(fs.statSync(outFile).size).toBe(size);
    expect(sha(outFile)).toBe(sha(inFile));
    const after = await tb.nstat();
    // Our segments to the peer were dropped too: the stack retransmitted.
    expect(after.TcpRetransSegs - before.TcpRetransSegs).toBeGreaterThan(50);
    // Both rules dropped segments: the loss was real in each direction. Over the TAP's
    // offloads the kernel's rules see TSO super-packets, each up to 45 segments, so
    // fewer (and larger) packets are dropped than segments were lost.
    const counted = [...tb.peer('nft list table inet tsloss').stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
    expect(counted.length).toBe(2);
    for (const n of counted) expect(n).toBeGreaterThan(10);
  }, 300_000);
});
