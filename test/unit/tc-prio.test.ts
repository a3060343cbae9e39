import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import '../../src/control/tc-filter.js';

/**
 * `tc` with prio, which this machine's kernel lacks: the lines q_prio.c prints
 * (prio_print_opt, tc_class.c's print_class) for what sch_prio.c dumps.
 */
describe('tc qdisc and class with prio', () => {
  const setup = () => {
    const time = new VirtualTime();
    const [d0] = simLink(time, { seed: 1, names: ['p0', 'peer'] });
    const s = new Stack({ time, seed: 2 });
    const i0 = s.addInterface('p0', d0, { mtu: 1500 });
    s.setUp(i0, true);
    const env = stackTcEnv(s);
    return (line: string) => runTc(env, line.split(' '));
  };

  it('adds, shows, grafts a leaf on a band and lists the classes', () => {
    const tc = setup();
    expect(tc('qdisc add dev p0 root handle 1: prio bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(tc('qdisc show dev p0').stdout).toBe('qdisc prio 1: root refcnt 2 bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n');
    expect(tc('-j qdisc show dev p0').stdout).toBe(
      '[{"kind":"prio","handle":"1:","root":true,"refcnt":2,"options":{"bands":4,"priomap":[3,2,2,2,1,2,0,0,1,1,1,1,1,1,1,1],"multiqueue":false}}]\n',
    );
    expect(tc('qdisc add dev p0 parent 1:2 handle 20: tbf rate 1mbit burst 2k latency 10ms').code).toBe(0);
    expect(tc('qdisc show dev p0').stdout).toBe(
      'qdisc prio 1: root refcnt 2 bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n' + 'qdisc tbf 20: parent 1:2 rate 1Mbit burst 2Kb lat 10ms \n',
    );
    expect(tc('class show dev p0').stdout).toBe(
      'class prio 1:1 parent 1: \n' + 'class prio 1:2 parent 1: leaf 20: \n' + 'class prio 1:3 parent 1: \n' + 'class prio 1:4 parent 1: \n' + 'class tbf 20:1 parent 20: \n',
    );
    expect(tc('qdisc add dev p0 parent 1:5 handle 30: pfifo')).toEqual({ code: 2, stdout: '', stderr: 'Error: Specified class not found.\n' });
    expect(tc('qdisc del dev p0 parent 1:2 handle 20:').code).toBe(0);
    expect(tc('qdisc show dev p0').stdout).toBe('qdisc prio 1: root refcnt 2 bands 4 priomap 3 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n');
    expect(tc('qdisc change dev p0 root handle 1: prio bands 2 priomap 3')).toEqual({ code: 1, stdout: '', stderr: '"priomap" element is out of bands\n' });
    expect(tc('qdisc change dev p0 root handle 1: prio bands 2 priomap 1 1 1 1 1 1 0 0 1 1 1 1 1 1 1 1').code).toBe(0);
    expect(tc('class show dev p0').stdout).toBe('class prio 1:1 parent 1: \nclass prio 1:2 parent 1: \n');
  });
});
