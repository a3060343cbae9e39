import { describe, expect, it } from 'vitest';
import { netstatMetricName } from '../../src/services/http-metrics.js';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import { simLink } from '../../src/link/sim.js';

describe('http status service', () => {
  it('splits nstat names into group and field as node_exporter does', () => {
    expect(netstatMetricName('TcpCurrEstab')).toBe('Tcp_CurrEstab');
    expect(netstatMetricName('TcpExtSyncookiesSent')).toBe('TcpExt_SyncookiesSent');
    expect(netstatMetricName('TcpExtTW')).toBe('TcpExt_TW');
    expect(netstatMetricName('IpInReceives')).toBe('Ip_InReceives');
    expect(netstatMetricName('IpExtInOctets')).toBe('IpExt_InOctets');
    expect(netstatMetricName('IcmpInMsgs')).toBe('Icmp_InMsgs');
    expect(netstatMetricName('IcmpMsgOutType0')).toBe('IcmpMsg_OutType0');
    expect(netstatMetricName('UdpNoPorts')).toBe('Udp_NoPorts');
    expect(netstatMetricName('ArpInRequests')).toBe('Arp_InRequests');
  });

  function controller(): Controller {
    const time = new VirtualTime();
    const stack = new Stack({ time });
    const c = new Controller(stack, { open: (spec) => simLink(time, { names: [spec.name, 'peer'] })[0] });
    for (const l of ['link add tap0 type tap', 'addr add 10.0.0.2/24 dev tap0']) c.run(parseCommand(l.split(' ')));
    return c;
  }

  it('is added, listed and deleted like the other services; tcp only; one per port', () => {
    const c = controller();
    c.run(parseCommand(['service', 'add', 'http', 'tcp', ':80']));
    expect(c.run(parseCommand(['service']))).toBe('http tcp 0.0.0.0:80');
    expect(() => c.run(parseCommand(['service', 'add', 'http', 'tcp', '10.0.0.2:80']))).toThrow(/Address already in use/);
    // Over udp it is refused as the line is read, before anything runs.
    expect(() => parseCommand(['service', 'add', 'http', 'udp', ':81'])).toThrow('word "udp": expected a protocol http is served over (tcp)');
    expect(() => c.run(parseCommand(['service', 'add', 'http', 'tcp', '10.9.9.9:81']))).toThrow(/Cannot assign requested address/);
    c.run(parseCommand(['service', 'del', 'http', 'tcp', ':80']));
    expect(c.run(parseCommand(['service']))).toBe('');
    c.run(parseCommand(['service', 'add', 'http', 'tcp', ':80']));
    c.stack.close();
  });

  it('the show function it gets refuses commands that change state', () => {
    const c = controller();
    expect(JSON.parse(c.show(['ip', '-j', 'addr']))).toHaveLength(1);
    expect(() => c.show(['addr', 'del', '10.0.0.2/24', 'dev', 'tap0'])).toThrow(/not a show command/);
    expect(c.stack.iface('tap0')!.addrs).toHaveLength(1);
  });
});
