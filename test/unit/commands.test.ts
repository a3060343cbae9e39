import { describe, expect, it } from 'vitest';
import { parseCommand, parseConfig, parseLine } from '../../src/control/commands.js';
import { ip } from '../helpers/sim.js';

const words = (s: string) => s.split(' ');

describe('command language', () => {
  it('parses the config lines of the contract', () => {
    const cmds = parseConfig(
      [
        '# comment line',
        'link add tap0 type tap mac 02:00:00:00:00:02 mtu 1500',
        'link add tun0 type tun   # trailing comment',
        'addr add 10.0.0.2/24 dev tap0',
        'route add default via 10.0.0.1 dev tap0',
        'route add 192.168.7.0/24 via 10.0.0.254',
        '',
        'ip route add 10.9.0.0/16 dev tun0 metric 5',
        'sysctl -w net.ipv4.ip_default_ttl=32',
      ].join('\n'),
    );
    expect(cmds.map((c) => c.line)).toEqual([2, 3, 4, 5, 6, 8, 9]);
    expect(cmds[0].cmd).toEqual({ kind: 'link-add', name: 'tap0', type: 'tap', mac: new Uint8Array([2, 0, 0, 0, 0, 2]), mtu: 1500, vnetHdr: false });
    expect(cmds[1].cmd).toMatchObject({ kind: 'link-add', name: 'tun0', type: 'tun' });
    expect(cmds[2].cmd).toEqual({ kind: 'addr-add', addr: ip('10.0.0.2'), prefixLen: 24, dev: 'tap0' });
    expect(cmds[3].cmd).toEqual({ kind: 'route-add', dst: 0, prefixLen: 0, via: ip('10.0.0.1'), dev: 'tap0' });
    expect(cmds[4].cmd).toEqual({ kind: 'route-add', dst: ip('192.168.7.0'), prefixLen: 24, via: ip('10.0.0.254') });
    expect(cmds[5].cmd).toMatchObject({ kind: 'route-add', metric: 5, dev: 'tun0' });
    expect(cmds[6].cmd).toEqual({ kind: 'sysctl-set', name: 'net.ipv4.ip_default_ttl', value: '32', quiet: false });
  });

  it('names the line, the word and what was expected', () => {
    const bad = (text: string) => {
      try {
        parseConfig(text, 'x.conf');
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(bad('link add tap0 type tap\naddr add 10.0.0.2/33 dev tap0')).toBe(
      'x.conf: line 2: word "10.0.0.2/33": expected a prefix length from 0 to 32',
    );
    expect(bad('link add tap0 type tap mtu big')).toBe('x.conf: line 1: word "big": expected an MTU (a number)');
    expect(bad('link add tap0 type tap mtu 20')).toBe('x.conf: line 1: word "20": expected an MTU from 68 to 65535');
    expect(bad('link add tap0 type bridge')).toBe('x.conf: line 1: word "bridge": expected a device type (tap, tun)');
    expect(bad('link add tap0')).toBe('x.conf: line 1: word "tap0": expected "type tap" or "type tun"');
    expect(bad('frobnicate')).toContain('line 1: word "frobnicate": expected an object');
    expect(bad('addr add 10.0.0.2/24')).toBe('x.conf: line 1: word "10.0.0.2/24": expected dev NAME');
    expect(bad('route add 10.0.0.1/24 via 10.0.0.9')).toContain('Error: Invalid prefix for given prefix length.');
    expect(bad('route add default')).toContain('expected via GATEWAY or dev NAME');
    expect(bad('link add tap0 type tap mac ff:ff:ff:ff:ff:ff')).toContain('expected a unicast MAC address');
    expect(bad('ip addr')).toBe('x.conf: line 1: word "ip": show commands do not belong in a config file');
    expect(bad('link add tap0 type tap txthread yes')).toBe('x.conf: line 1: word "yes": expected on or off (on, off)');
  });

  it('takes txthread on|off on link add', () => {
    expect(parseCommand(words('link add tap0 type tap txthread on'))).toEqual({ kind: 'link-add', name: 'tap0', type: 'tap', mac: undefined, mtu: undefined, vnetHdr: false, txThread: true });
    expect(parseCommand(words('link add tun0 txthread off type tun offload off'))).toMatchObject({ type: 'tun', offload: false, txThread: false });
    expect(parseCommand(words('link add tap0 type tap'))).not.toHaveProperty('txThread');
  });

  it('takes iproute2 show forms, abbreviations and -j/-s', () => {
    expect(parseCommand(words('ip a'))).toEqual({ kind: 'show', what: 'addr', stats: false, json: false });
    expect(parseCommand(words('ip -j -s link'))).toEqual({ kind: 'show', what: 'link', stats: true, json: true });
    expect(parseCommand(words('ip n'))).toMatchObject({ kind: 'show', what: 'neigh' });
    expect(parseCommand(words('ip -j route show'))).toMatchObject({ kind: 'route-show', json: true });
    expect(parseCommand(words('ip addr show dev tap0'))).toMatchObject({ dev: 'tap0' });
    expect(parseCommand(words('ip link show tap0'))).toMatchObject({ dev: 'tap0' });
    expect(parseCommand(words('nstat -az'))).toEqual({ kind: 'nstat', json: false, zeros: true });
    expect(parseCommand(words('nstat -j'))).toEqual({ kind: 'nstat', json: true, zeros: false });
    expect(parseCommand(words('ip route get 10.0.0.1'))).toEqual({ kind: 'route-get', dst: ip('10.0.0.1'), json: false });
    expect(parseCommand(words('link del tap0'))).toEqual({ kind: 'link-del', name: 'tap0' });
    expect(parseCommand(words('ip link set dev tap0 mtu 9000 down'))).toEqual({ kind: 'link-set', name: 'tap0', mtu: 9000, up: false });
    expect(parseCommand(words('neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev tap0'))).toMatchObject({ kind: 'neigh-add', nud: 'PERMANENT' });
    expect(parseCommand(words('sysctl net.ipv4.ipfrag_time'))).toEqual({ kind: 'sysctl-get', names: ['net.ipv4.ipfrag_time'], valueOnly: false, all: false });
    expect(parseCommand(words('sysctl net.ipv4.ipfrag_time=2'))).toMatchObject({ kind: 'sysctl-set', value: '2' });
    expect(parseLine('   # only a comment')).toBeNull();
    expect(() => parseCommand(words('ip -x link'))).toThrow('unknown option');
  });
});
