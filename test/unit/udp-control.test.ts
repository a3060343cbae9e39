import { describe, expect, it } from 'vitest';
import { parseCommand, parseConfig } from '../../src/control/commands.js';
import { Controller } from '../../src/control/exec.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { formatNstat } from '../../src/control/format.js';
import { ip } from '../helpers/sim.js';

const words = (s: string) => s.split(' ');

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

/** A stack with one sim interface at 10.0.0.2/24 and a controller over it. */
function controlled(): { stack: Stack; ctl: Controller; run: (line: string) => string } {
  const time = new VirtualTime();
  const [d] = simLink(time, { names: ['s0', 'peer0'] });
  const stack = new Stack({ time, seed: 1 });
  const ctl = new Controller(stack, {
    open: () => {
      throw new Error('no devices here');
    },
  });
  const i = stack.addInterface('s0', d);
  stack.setUp(i, true);
  stack.addAddress(i, ip('10.0.0.2'), 24);
  return { stack, ctl, run: (line) => ctl.run(parseCommand(words(line))) };
}

describe('the service command', () => {
  it('parses add, del and list with :PORT or ADDR:PORT', () => {
    expect(parseCommand(words('service add echo udp :7'))).toEqual({ kind: 'service-add', name: 'echo', proto: 'udp', addr: 0, port: 7 });
    expect(parseCommand(words('service add discard udp 10.0.0.2:9'))).toEqual({
      kind: 'service-add',
      name: 'discard',
      proto: 'udp',
      addr: ip('10.0.0.2'),
      port: 9,
    });
    expect(parseCommand(words('service del echo udp :7'))).toMatchObject({ kind: 'service-del', name: 'echo', port: 7 });
    expect(parseCommand(['service'])).toEqual({ kind: 'service-list' });
    expect(parseCommand(words('service list'))).toEqual({ kind: 'service-list' });
  });

  it('names the word and what was expected', () => {
    expect(message(() => parseCommand(words('service add daytime udp :13')))).toMatch(/^word "daytime": expected a service \(echo, discard, chargen/);
    expect(message(() => parseCommand(words('service add chargen udp :19')))).toBe('word "udp": expected a protocol chargen is served over (tcp)');
    expect(message(() => parseCommand(words('service add echo sctp :7')))).toBe('word "sctp": expected a protocol echo is served over (udp, tcp)');
    expect(message(() => parseCommand(words('service add echo udp 7')))).toBe('word "7": expected ADDR:PORT or :PORT');
    expect(message(() => parseCommand(words('service add echo udp :0')))).toBe('word ":0": expected a port from 1 to 65535 after ":"');
    expect(message(() => parseCommand(words('service add echo udp :70000')))).toMatch(/expected a port from 1 to 65535/);
    expect(message(() => parseCommand(words('service add echo udp 10.0.0:7')))).toMatch(/word "10.0.0:7": expected an IPv4 address/);
    expect(message(() => parseCommand(words('service add echo udp')))).toMatch(/expected ADDR:PORT or :PORT, found end of line/);
    expect(message(() => parseCommand(words('service add echo udp :7 now')))).toBe('word "now": unexpected word at end of command');
    expect(message(() => parseCommand(words('service start echo')))).toMatch(/word "start": expected a service command/);
  });

  it('belongs in a config file, except for the listing', () => {
    const cmds = parseConfig('addr add 10.0.0.2/24 dev tap0\nservice add echo udp :7\nservice add discard udp :9\n');
    expect(cmds.map((c) => c.cmd.kind)).toEqual(['addr-add', 'service-add', 'service-add']);
    expect(message(() => parseConfig('service list\n', 'x.conf'))).toMatch(/x.conf: line 1: .*do not belong in a config file/);
  });

  it('runs services on the stack and lists them', () => {
    const { stack, run } = controlled();
    expect(run('service add echo udp :7')).toBe('');
    expect(run('service add discard udp 10.0.0.2:9')).toBe('');
    expect(run('service')).toBe('echo udp 0.0.0.0:7\ndiscard udp 10.0.0.2:9');
    expect(message(() => run('service add discard udp :7'))).toBe('service discard udp 0.0.0.0:7: Address already in use');
    expect(message(() => run('service add echo udp 10.1.1.1:7'))).toBe('service echo udp 10.1.1.1:7: Cannot assign requested address');
    run('service del echo udp :7');
    expect(message(() => run('service del echo udp :7'))).toBe('service echo udp 0.0.0.0:7: No such service');
    expect(run('service list')).toBe('discard udp 10.0.0.2:9');
    stack.close();
    expect(stack.services.list()).toEqual([]);
  });
});

describe('UDP through the control language', () => {
  it('sysctl prints the port range as Linux does and sets it from one word or two', () => {
    const { stack, run } = controlled();
    expect(run('sysctl net.ipv4.ip_local_port_range')).toBe('net.ipv4.ip_local_port_range = 32768\t60999');
    expect(run('sysctl -n net.ipv4.ip_local_port_range')).toBe('32768\t60999');
    // From the control socket the value is one argument; in a config line it is two words.
    expect(stack.sysctl.set('net.ipv4.ip_local_port_range', '1024 2047')).toBe('1024\t2047');
    const cmd = parseConfig('sysctl -w net.ipv4.ip_local_port_range=40000 40100\n')[0].cmd;
    expect(cmd).toEqual({ kind: 'sysctl-set', name: 'net.ipv4.ip_local_port_range', value: '40000 40100', quiet: false });
    const ctl = new Controller(stack, { open: () => { throw new Error('no'); } });
    expect(ctl.run(cmd)).toBe('net.ipv4.ip_local_port_range = 40000\t40100');
    expect(message(() => run('sysctl -w net.ipv4.ip_local_port_range=40100 40000'))).toMatch(/Invalid argument/);
    expect(message(() => parseCommand(words('sysctl -w net.ipv4.ip_local_port_range=1 x')))).toBe('word "x": expected one NAME=VALUE');
    expect(run('sysctl -a').split('\n')).toContain('net.ipv4.ip_local_port_range = 40000\t40100');
    expect(message(() => stack.sysctl.get('net.ipv4.ip_local_port_range'))).toMatch(/holds 2 integers/);
    // Scalars print as before.
    expect(run('sysctl net.ipv4.ip_default_ttl')).toBe('net.ipv4.ip_default_ttl = 64');
  });

  it('nstat shows the UDP counters by their Linux names', () => {
    const { stack } = controlled();
    const all = JSON.parse(formatNstat(stack, true, true)) as { kernel: Record<string, number> };
    for (const n of [
      'UdpInDatagrams',
      'UdpNoPorts',
      'UdpInErrors',
      'UdpOutDatagrams',
      'UdpRcvbufErrors',
      'UdpSndbufErrors',
      'UdpInCsumErrors',
      'UdpIgnoredMulti',
    ])
      expect(all.kernel[n]).toBe(0);
  });
});
