import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { configure } from '../../src/library.js';
import { parseCommand, parseConfig } from '../../src/control/commands.js';
import { Controller, stackTcEnv } from '../../src/control/exec.js';
import { runTc } from '../../src/control/tc.js';

describe('tc lines in a config file', () => {
  const stack = () => {
    const time = new VirtualTime();
    const [d0] = simLink(time, { seed: 1, names: ['c0', 'peer'] });
    const s = new Stack({ time, seed: 2 });
    s.setUp(s.addInterface('c0', d0), true);
    return s;
  };

  it('takes tc commands that change state and applies them in order', () => {
    const s = stack();
    configure(s, ['tc qdisc add dev c0 root handle 1: tbf rate 10mbit burst 10k latency 50ms', 'tc qdisc change dev c0 root handle 1: tbf rate 20mbit burst 10k latency 50ms']);
    expect(runTc(stackTcEnv(s), ['qdisc', 'show']).stdout).toBe('qdisc tbf 1: dev c0 root refcnt 2 rate 20Mbit burst 10Kb lat 50ms \n');
  });

  it('ip link shows the root qdisc the device has', () => {
    const s = stack();
    const link = () => new Controller(s, { open: () => { throw new Error('no devices'); } }).run(parseCommand(['ip', 'link', 'show', 'dev', 'c0']));
    expect(link()).toContain(' qdisc pfifo_fast state ');
    configure(s, ['tc qdisc add dev c0 root handle 1: tbf rate 10mbit burst 10k latency 50ms']);
    expect(link()).toContain(' qdisc tbf state ');
  });

  it('refuses a tc show line, and names the line of a tc command the kernel refuses', () => {
    expect(() => parseConfig('tc qdisc show dev c0')).toThrow(/show commands do not belong in a config file/);
    const s = stack();
    expect(() => configure(s, ['tc qdisc add dev c0 root handle 1: pfifo', 'tc qdisc add dev c0 root handle 1: pfifo'])).toThrow(
      'line 2: Error: Exclusivity flag on, cannot modify.',
    );
    expect(() => configure(s, ['tc qdisc add dev nope root pfifo'])).toThrow('line 1: Cannot find device "nope"');
  });

  it('a device taken down drops what its qdisc held', () => {
    const s = stack();
    const i = s.iface('c0')!;
    configure(s, ['tc qdisc add dev c0 root handle 1: tbf rate 1mbit burst 1600 limit 100000']);
    i.neigh!.set(0x0a000001, new Uint8Array([2, 0, 0, 0, 0, 1]), 'PERMANENT');
    s.addAddress(i, 0x0a000002, 24);
    const u = s.udp.createSocket('udp4');
    u.bind(5000);
    for (let k = 0; k < 10; k++) u.send(Buffer.alloc(1000), 9, '10.0.0.1');
    expect(i.sched.root.stats.qlen).toBeGreaterThan(5);
    s.setUp(i, false);
    i.flush();
    expect(i.sched.root.stats.qlen).toBe(0);
    expect(i.sched.root.stats.backlog).toBe(0);
  });
});
