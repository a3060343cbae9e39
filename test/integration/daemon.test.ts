import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, Testbed, sh, shAsync, uniqueName } from '../helpers/harness.js';

function tmpConf(text: string): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapstack-conf-'));
  const file = path.join(dir, 'bad.conf');
  fs.writeFileSync(file, text);
  return { dir, file };
}

describe('daemon start-up and config errors', () => {
  it('refuses a bad config with the line, the word and what was expected', () => {
    const dev = uniqueName('tbad');
    const { dir, file } = tmpConf(`# a comment\nlink add ${dev} type tap\naddr add 10.0.0.300/24 dev ${dev}\n`);
    try {
      const r = sh(`node ${CLI} daemon -c ${file} --ctl ${dir}/ctl.sock`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file}: line 3: word "10.0.0.300/24": expected an address like 10.0.0.2/24`);
      // Nothing was created: the whole file is checked before anything runs.
      expect(sh(`ip link show ${dev}`).code).not.toBe(0);
      expect(fs.existsSync(`${dir}/ctl.sock`)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names an unknown keyword and what it expected', () => {
    const { dir, file } = tmpConf('link add x0 typo tap\n');
    try {
      const r = sh(`node ${CLI} daemon -c ${file} --ctl ${dir}/ctl.sock`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('line 1: word "typo": expected type, mac, mtu, vnet_hdr, offload on|off or txthread on|off');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the line when a command fails while running', () => {
    const dev = uniqueName('tbad');
    const { dir, file } = tmpConf(`link add ${dev} type tap\nroute add default via 192.0.2.1\n`);
    try {
      const r = sh(`node ${CLI} daemon -c ${file} --ctl ${dir}/ctl.sock`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${file}:2: Error: Nexthop has invalid gateway.`);
      expect(sh(`ip link show ${dev}`).code).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says there is no daemon when the socket is missing', () => {
    const r = sh(`node ${CLI} --ctl /nonexistent/tapstack.sock ip addr`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no tapstack daemon is listening on /nonexistent/tapstack.sock');
  });
});

describe('a running daemon', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 14, extraConfig: [] });
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('refuses a second daemon on the same socket', () => {
    const { dir, file } = tmpConf(`link add ${uniqueName('tdup')} type tap\n`);
    try {
      const r = sh(`node ${CLI} daemon -c ${file} --ctl ${tb.ctl}`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`another tapstack daemon is already running on ${tb.ctl}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // The first one is unharmed.
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });

  it('prints show commands like iproute2 through the CLI', async () => {
    const addr = await shAsync(`node ${CLI} --ctl ${tb.ctl} ip addr`);
    expect(addr.code).toBe(0);
    expect(addr.stdout).toMatch(new RegExp(`^1: ${tb.dev}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 `, 'm'));
    expect(addr.stdout).toContain(`    inet ${tb.stackIp}/24 brd 10.231.14.255 scope global ${tb.dev}`);
    const route = await shAsync(`node ${CLI} --ctl ${tb.ctl} ip route`);
    expect(route.stdout).toBe(`10.231.14.0/24 dev ${tb.dev} proto kernel scope link src ${tb.stackIp} \n`);
    const nstat = await shAsync(`node ${CLI} --ctl ${tb.ctl} nstat`);
    expect(nstat.stdout.split('\n')[0]).toBe('#kernel');
  });

  it('stops quietly with status 141 when its reader goes away, as a C tool killed by SIGPIPE', async () => {
    const r = await shAsync(`bash -c "set -o pipefail; node ${CLI} --ctl ${tb.ctl} nstat -j -z | head -c 0"`);
    expect(r.code).toBe(141);
    expect(r.stderr).toBe('');
  });

  it('takes addr and route changes at runtime, and del', async () => {
    expect((await tb.ctlRun('addr', 'add', '10.231.14.3/24', 'dev', tb.dev)).code).toBe(0);
    expect(tb.peer('ping -c 1 -W 2 10.231.14.3').code).toBe(0);
    expect((await tb.ctlRun('ip', 'route', 'add', '192.0.2.0/24', 'via', tb.peerIp)).code).toBe(0);
    const routes = await tb.ctlJson<{ dst: string; gateway?: string }[]>('ip', '-j', 'route');
    expect(routes).toContainEqual({ dst: '192.0.2.0/24', gateway: tb.peerIp, dev: tb.dev, flags: [] });
    const dup = await tb.ctlRun('route', 'add', '192.0.2.0/24', 'via', tb.peerIp);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain('File exists');
    expect((await tb.ctlRun('route', 'del', '192.0.2.0/24')).code).toBe(0);
    expect((await tb.ctlRun('addr', 'del', '10.231.14.3/24', 'dev', tb.dev)).code).toBe(0);
    expect(tb.peer('ping -c 1 -W 1 10.231.14.3').code).not.toBe(0);
    // The primary address and its subnet route are untouched.
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
    expect((await tb.ctlRun('ip', 'route')).stdout).toBe(`10.231.14.0/24 dev ${tb.dev} proto kernel scope link src ${tb.stackIp} \n`);
    const bad = await tb.ctlRun('addr', 'add', 'nonsense', 'dev', tb.dev);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('word "nonsense"');
  });

  it('keeps running when the kernel side of its device is deleted, showing NO-CARRIER', async () => {
    expect(tb.peer(`ip link del ${tb.dev}`).code).toBe(0);
    let links: { ifname: string; flags: string[]; operstate: string }[] = [];
    for (let i = 0; i < 50; i++) {
      links = await tb.ctlJson('ip', '-j', 'link');
      if (links[0]?.flags.includes('NO-CARRIER')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(links[0]).toMatchObject({ ifname: tb.dev, operstate: 'DOWN' });
    expect(links[0].flags).toContain('NO-CARRIER');
    const route = await tb.ctlRun('ip', 'route');
    expect(route.stdout).toContain('linkdown');
    // Logged through the daemon's logger, not thrown or printed as a Node warning.
    expect(tb.daemonLog).toContain('device failed: link has no carrier');
    expect(tb.daemonLog).not.toContain('Warning');
    expect(tb.exitCode).toBeNull();
  });

  it('closes its devices and removes its socket on SIGTERM', async () => {
    const code = await tb.stopDaemon();
    expect(code).toBe(0);
    expect(fs.existsSync(tb.ctl)).toBe(false);
    expect(tb.peer(`ip link show ${tb.dev}`).code).not.toBe(0);
  });
});
