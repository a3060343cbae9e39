import { describe, expect, it } from 'vitest';
import { CommandError, ConfigureError, Stack, VirtualTime, configure, simLink, type DeviceFactory } from '../../src/index.js';

/** `link add` lines open sim devices here instead of TAP/TUN. */
function simDevices(time: VirtualTime): DeviceFactory {
  return {
    open: (spec) => simLink(time, { linkType: spec.type === 'tap' ? 'ether' : 'ip', names: [spec.name, `${spec.name}-peer`] })[0],
  };
}

describe('configure: config lines applied with the daemon parser', () => {
  it('applies link, addr, route and sysctl lines (one string or a list; comments and blank lines)', () => {
    const time = new VirtualTime();
    const stack = new Stack({ time });
    configure(
      stack,
      `# a host
link add tap0 type tap mac 02:00:00:00:00:02 mtu 1400

addr add 10.0.0.2/24 dev tap0
route add default via 10.0.0.1
sysctl -w net.ipv4.ip_default_ttl=33`,
      { devices: simDevices(time) },
    );
    configure(stack, ['addr add 10.0.0.3/24 dev tap0', 'service add echo tcp :7'], { devices: simDevices(time) });
    const tap = stack.iface('tap0')!;
    expect(tap.mtu).toBe(1400);
    expect(tap.up).toBe(true);
    expect(tap.addrs.map((a) => a.addr)).toEqual([0x0a000002, 0x0a000003]);
    expect(stack.ip.routes.lookup(0x08080808)?.gateway).toBe(0x0a000001);
    expect(stack.sysctl.text('net.ipv4.ip_default_ttl')).toBe('33');
    expect(stack.services.list()).toHaveLength(1);
    stack.close();
  });

  it('checks every line before running any: a bad word names its line and changes nothing', () => {
    const time = new VirtualTime();
    const stack = new Stack({ time });
    const run = (): void => configure(stack, ['link add tap0 type tap', 'addr add 10.0.0.300/24 dev tap0'], { devices: simDevices(time), source: 'app' });
    expect(run).toThrow(CommandError);
    expect(run).toThrow(/^app: line 2: word "10.0.0.300\/24": expected an address/);
    expect(stack.interfaces()).toHaveLength(0);
  });

  it('a line that fails while running is reported with its line number', () => {
    const time = new VirtualTime();
    const stack = new Stack({ time });
    let err: unknown;
    try {
      configure(stack, ['addr add 10.0.0.2/24 dev nosuch0']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigureError);
    expect((err as ConfigureError).message).toBe('line 1: Cannot find device "nosuch0"');
    expect((err as ConfigureError).code).toBe('ENODEV');
  });

  it('show commands do not belong in config lines', () => {
    expect(() => configure(new Stack({ time: new VirtualTime() }), ['ip route'])).toThrow(/line 1: .*show commands/);
  });
});
