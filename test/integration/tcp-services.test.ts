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
