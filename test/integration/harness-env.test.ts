// The environment the integration tests rely on: root (or CAP_NET_ADMIN), /dev/net/tun,
// the kernel-side tools, and the right to make TAP devices. When this file fails the
// others fail for the same reason, and this one says which.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

const peerIsLocal = process.env.TAPSTACK_TEST_PEER === 'local';

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function succeeds(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

describe('integration environment', () => {
  const created: string[] = [];
  afterEach(() => {
    for (const dev of created.splice(0)) spawnSync('ip', ['link', 'del', dev], { stdio: 'ignore' });
  });

  it('runs as root', () => {
    expect(process.getuid?.(), 'integration tests need root: sudo npm test').toBe(0);
  });

  it('has /dev/net/tun', () => {
    expect(existsSync('/dev/net/tun'), 'modprobe tun, or docker run --device /dev/net/tun').toBe(true);
  });

  it.each([
    ['ip', ['-V']],
    ['tc', ['-V']],
    ['bridge', ['-V']],
    ['ping', ['-V']],
    ['tcpdump', ['--version']],
    ['tshark', ['--version']],
    ['socat', ['-V']],
    ['iperf3', ['--version']],
    ['ethtool', ['--version']],
    // Debian's interpreter, the one python3-scapy is for: a pyenv or venv python3
    // earlier in PATH may not have scapy.
    ['/usr/bin/python3', ['-c', 'import scapy.all']],
  ] as const)('has %s', (cmd, args) => {
    expect(succeeds(cmd, [...args]), `${cmd} missing: run scripts/setup-system as root`).toBe(true);
  });

  it('has OpenBSD netcat', () => {
    // nc -h exits non-zero; look for the OpenBSD variant's name in its help text.
    const out = spawnSync('nc', ['-h'], { encoding: 'utf8' });
    expect(`${out.stdout}${out.stderr}`).toMatch(/OpenBSD netcat/);
  });

  it('can create and remove a TAP device', () => {
    const dev = `tsenv${process.pid % 100000}`;
    run('ip', ['tuntap', 'add', 'dev', dev, 'mode', 'tap']);
    created.push(dev);
    run('ip', ['link', 'set', dev, 'up']);
    const link = JSON.parse(run('ip', ['-j', '-d', 'link', 'show', dev])) as Array<{
      ifname: string;
      linkinfo?: { info_kind?: string; info_data?: { type?: string } };
    }>;
    expect(link[0]?.ifname).toBe(dev);
    expect(link[0]?.linkinfo?.info_data?.type).toBe('tap');
    run('ip', ['tuntap', 'del', 'dev', dev, 'mode', 'tap']);
    created.pop();
    expect(succeeds('ip', ['link', 'show', dev])).toBe(false);
  });

  // Namespaces for the peer, or (TAPSTACK_TEST_PEER=local, a container that may not
  // make them) links in the current namespace, where that peer then lives.
  it(peerIsLocal ? 'can make and remove a veth pair here, where the local peer lives' : 'can create and remove a network namespace', () => {
    if (peerIsLocal) {
      const a = `tsenv${process.pid % 100000}a`;
      run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', `${a}b`]);
      created.push(a);
      expect(run('ip', ['-br', 'link', 'show', `${a}b`])).toMatch(new RegExp(`^${a}b@${a}\\s`));
      run('ip', ['link', 'del', a]);
      created.pop();
      expect(succeeds('ip', ['link', 'show', `${a}b`])).toBe(false);
      return;
    }
    const ns = `tsenv${process.pid}`;
    run('ip', ['netns', 'add', ns]);
    try {
      expect(run('ip', ['netns', 'exec', ns, 'ip', '-br', 'link'])).toMatch(/^lo\s/m);
    } finally {
      run('ip', ['netns', 'del', ns]);
    }
    expect(run('ip', ['netns', 'list'])).not.toMatch(new RegExp(`^${ns}\\b`, 'm'));
  });
});
