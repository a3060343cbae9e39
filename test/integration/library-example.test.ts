import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PEER_MODE, ROOT, sh, shAsync, shOk, uniqueName, waitFor } from '../helpers/harness.js';

/**
 * examples/http-server.mjs, the library's example, runs as its own program
 * (importing the built package by name): it opens a TAP device, configures it
 * with command lines and serves Node's http.createServer over the stack. Its
 * kernel side moves into a namespace and curl talks to it from there.
 */
interface Example {
  child: ChildProcess;
  out: () => string;
  exitCode: () => number | null;
  /** Wraps a shell command to run on the kernel side (its namespace, or here). */
  peerCmd: (cmd: string) => string;
  stop: () => Promise<void>;
}

/**
 * Starts the example on a TAP device `dev` with `args`, waits for its "listening"
 * line, then moves the device's kernel side into namespace `ns` (when there is one)
 * and gives it `peerIp`.
 */
async function startExample(dev: string, ns: string | null, peerIp: string, args: string[]): Promise<Example> {
  let out = '';
  let exitCode: number | null = null;
  const child = spawn(process.execPath, [path.join(ROOT, 'examples/http-server.mjs'), '--dev', dev, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  child.on('exit', (code, signal) => (exitCode = code ?? (signal ? 128 : -1)));
  const peerCmd = (cmd: string): string => (ns ? `ip netns exec ${ns} sh -c '${cmd.replace(/'/g, `'\\''`)}'` : cmd);
  const ex: Example = {
    child,
    out: () => out,
    exitCode: () => exitCode,
    peerCmd,
    stop: async () => {
      if (exitCode === null) {
        child.kill('SIGTERM');
        await waitFor(() => exitCode !== null, 5000).catch(() => child.kill('SIGKILL'));
      }
      if (ns) sh(`ip netns del ${ns}`);
      sh(`ip link del ${dev} 2>/dev/null`);
    },
  };
  try {
    await waitFor(() => {
      if (exitCode !== null) throw new Error(`the example exited with ${exitCode}: ${out}`);
      return out.includes('listening on');
    }, 10_000);
    if (ns) {
      shOk(`ip netns add ${ns}`);
      shOk(`ip link set ${dev} netns ${ns}`);
      shOk(peerCmd('ip link set lo up'));
    }
    shOk(peerCmd(`ip addr add ${peerIp}/24 dev ${dev}`));
    shOk(peerCmd(`ip link set ${dev} up`));
  } catch (e) {
    await ex.stop();
    throw e;
  }
  return ex;
}

describe('the library example serves HTTP over a TAP device', () => {
  const dev = uniqueName('tlx');
  const ns = PEER_MODE === 'netns' ? uniqueName('tlxns') : null;
  const stackIp = '10.231.45.2';
  const peerIp = '10.231.45.1';
  const port = 8045;
  let dir: string;
  let ex: Example | null = null;
  const peerCmd = (cmd: string): string => ex!.peerCmd(cmd);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-lib-'));
    ex = await startExample(dev, ns, peerIp, ['--addr', `${stackIp}/24`, '--port', String(port)]);
  });

  afterAll(async () => {
    await ex?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints where it listens', () => {
    expect(ex!.out()).toContain(`listening on http://${stackIp}:${port}/`);
  });

  it('answers curl from the namespace: status 200 and the body', async () => {
    const r = await shAsync(peerCmd(`curl -sS -m 10 -w '\\n%{http_code}' http://${stackIp}:${port}/hello?from=curl`), 20_000);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('200');
    expect(lines.join('\n')).toBe(`Hello from tapstack: GET /hello?from=curl, 0 bytes from ${peerIp}\n`);
  });

  it('takes a 2 MB POST', async () => {
    const file = path.join(dir, 'body');
    fs.writeFileSync(file, crypto.randomBytes(2 << 20));
    const r = await shAsync(peerCmd(`curl -sS -m 20 --data-binary @${file} -w '%{http_code}' http://${stackIp}:${port}/upload`), 30_000);
    expect(r.stdout).toBe(`Hello from tapstack: POST /upload, ${2 << 20} bytes from ${peerIp}\n200`);
  });

  it('keeps one connection alive for several requests', async () => {
    const urls = Array.from({ length: 5 }, (_, i) => `http://${stackIp}:${port}/k${i}`).join(' ');
    const r = await shAsync(peerCmd(`curl -sS -m 10 -w '%{num_connects}\\n' ${urls}`), 20_000);
    const connects = r.stdout.split('\n').filter((l) => /^\d+$/.test(l));
    expect(connects).toEqual(['1', '0', '0', '0', '0']);
  });

  it('stops on SIGTERM with exit code 0 and removes its device', async () => {
    ex!.child.kill('SIGTERM');
    await waitFor(() => ex!.exitCode() !== null, 5000);
    expect(ex!.exitCode()).toBe(0);
    expect(sh(peerCmd(`ip link show ${dev}`)).code).not.toBe(0);
  });
});

/**
 * The same example with --cert/--key: Node's https.createServer over the stack's
 * TCP, and curl from the kernel side doing TLS with it.
 */
describe('the library example serves HTTPS over a TAP device', () => {
  const dev = uniqueName('tlh');
  const ns = PEER_MODE === 'netns' ? uniqueName('tlhns') : null;
  const stackIp = '10.231.49.2';
  const peerIp = '10.231.49.1';
  const port = 8443;
  let dir: string;
  let ex: Example | null = null;
  const peerCmd = (cmd: string): string => ex!.peerCmd(cmd);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-tls-'));
    shOk(`openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=${stackIp} -days 1 -keyout ${dir}/key.pem -out ${dir}/cert.pem 2>/dev/null`);
    ex = await startExample(dev, ns, peerIp, ['--addr', `${stackIp}/24`, '--port', String(port), '--cert', `${dir}/cert.pem`, '--key', `${dir}/key.pem`]);
  });

  afterAll(async () => {
    await ex?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers curl over TLS with the certificate it was given', async () => {
    expect(ex!.out()).toContain(`listening on https://${stackIp}:${port}/`);
    const r = await shAsync(peerCmd(`curl -sS -m 10 --cacert ${dir}/cert.pem -w '\\n%{http_code} %{ssl_verify_result}' https://${stackIp}:${port}/secure`), 20_000);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('200 0');
    expect(lines.join('\n')).toBe(`Hello from tapstack: GET /secure, 0 bytes from ${peerIp}\n`);
  });

  it('takes a 1 MB POST over TLS', async () => {
    const file = path.join(dir, 'body');
    fs.writeFileSync(file, crypto.randomBytes(1 << 20));
    const r = await shAsync(peerCmd(`curl -sS -m 20 --cacert ${dir}/cert.pem --data-binary @${file} -w '%{http_code}' https://${stackIp}:${port}/up`), 30_000);
    expect(r.stdout).toBe(`Hello from tapstack: POST /up, ${1 << 20} bytes from ${peerIp}\n200`);
  });
});
