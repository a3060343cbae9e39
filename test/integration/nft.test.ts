import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Testbed, shAsync } from '../helpers/harness.js';

/** `tapstack nft` on a running daemon: a file loaded, listed, and a rule that drops the peer's pings. */
describe('tapstack nft', () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.start({ type: 'tap', subnet: 52, extraConfig: ['nft add table ip boot', 'nft add chain ip boot c'] });
  }, 30_000);
  afterAll(async () => {
    await tb?.close();
  });

  it('takes nft lines from the config file', async () => {
    const r = await tb.ctlRun('nft', 'list', 'tables');
    expect(r.stdout).toBe('table ip boot\n');
  });

  it('loads a file with -f and lists it as nft does; pings from the peer are dropped and counted', async () => {
    const file = path.join(tb.dir, 'rules.nft');
    fs.writeFileSync(
      file,
      `table ip f {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr ${tb.peerIp} icmp type echo-request counter drop\n\t}\n}\n`,
    );
    const load = await shAsync(`${process.execPath} ${CLI} --ctl ${tb.ctl} nft -f ${file}`);
    expect(load.stderr).toBe('');
    expect(load.code).toBe(0);
    const before = (await tb.ctlRun('nft', 'list', 'table', 'ip', 'f')).stdout;
    expect(before).toContain(`ip saddr ${tb.peerIp} icmp type echo-request counter packets 0 bytes 0 drop`);
    const ping = tb.peer(`ping -c 2 -i 0.2 -W 1 ${tb.stackIp}`);
    expect(ping.code).not.toBe(0);
    const after = await tb.ctlRun('nft', '-a', 'list', 'chain', 'ip', 'f', 'input');
    expect(after.stdout).toMatch(/counter packets 2 bytes 168 drop # handle \d+/);
    // Listed and loaded again, the ruleset is the same.
    const all = (await tb.ctlRun('nft', '-s', 'list', 'ruleset')).stdout;
    await tb.ctlRun('nft', 'flush', 'ruleset');
    const again = await shAsync(`${process.execPath} ${CLI} --ctl ${tb.ctl} nft -f - <<'EOF'\n${all}EOF`);
    expect(again.code).toBe(0);
    expect((await tb.ctlRun('nft', '-s', 'list', 'ruleset')).stdout).toBe(all);
    await tb.ctlRun('nft', 'delete', 'table', 'ip', 'f');
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
  });

  it('iif by the name of the stack\'s device', async () => {
    for (const line of [
      'add table ip g',
      'add chain ip g c { type filter hook input priority 0 ; }',
      `add rule ip g c iif ${tb.dev} icmp type echo-request counter`,
    ])
      expect((await tb.ctlRun('nft', ...line.split(' '))).stderr).toBe('');
    expect(tb.peer(`ping -c 1 -W 2 ${tb.stackIp}`).code).toBe(0);
    const out = (await tb.ctlRun('nft', 'list', 'chain', 'ip', 'g', 'c')).stdout;
    expect(out).toContain(`iif "${tb.dev}" icmp type echo-request counter packets 1 bytes 84`);
    await tb.ctlRun('nft', 'delete', 'table', 'ip', 'g');
  });

  it('reports errors as nft does, with exit code 1, changing nothing', async () => {
    const file = path.join(tb.dir, 'bad.nft');
    fs.writeFileSync(file, 'table ip g {\n\tchain c {\n\t\tip saddr 1.2.3.4 frob\n\t}\n}\n');
    const r = await shAsync(`${process.execPath} ${CLI} --ctl ${tb.ctl} nft -f ${file}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${file}:3:20-23: Error: syntax error, unexpected string\n\t\tip saddr 1.2.3.4 frob\n\t\t                 ^^^^\n`);
    expect((await tb.ctlRun('nft', 'list', 'tables')).stdout).toBe('table ip boot\n');
  });
});
