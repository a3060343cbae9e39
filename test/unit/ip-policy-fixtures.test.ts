import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import { ip } from '../helpers/sim.js';

/**
 * `ip route` and `ip rule` against what iproute2 printed for the same commands on
 * a kernel (test/fixtures/iproute2-policy/expected.txt, made by
 * scripts/capture-policy-routing.sh from commands.txt): the same output, byte
 * for byte, and the same errors.
 */
const FIXTURE = new URL('../fixtures/iproute2-policy/expected.txt', import.meta.url);

function cases(): { cmd: string; out: string[] }[] {
  const list: { cmd: string; out: string[] }[] = [];
  for (const line of fs.readFileSync(FIXTURE, 'utf8').split('\n')) {
    if (line.startsWith('$ ')) list.push({ cmd: line.slice(2), out: [] });
    else if (list.length > 0 && line !== '') list[list.length - 1].out.push(line);
  }
  return list;
}

function host(): Controller {
  const time = new VirtualTime();
  const s = new Stack({ time, seed: 1 });
  const [d0] = simLink(time, { names: ['e0', 'p0'] });
  const [d1] = simLink(time, { names: ['e1', 'p1'] });
  const e0 = s.addInterface('e0', d0);
  const e1 = s.addInterface('e1', d1);
  s.setUp(e0, true);
  s.setUp(e1, true);
  s.addAddress(e0, ip('10.0.0.2'), 24);
  s.addAddress(e1, ip('10.1.0.2'), 16);
  return new Controller(s, {
    open: () => {
      throw new Error('no devices here');
    },
  });
}

describe('ip route and ip rule as iproute2 prints them', () => {
  it('gives the kernel and iproute2 answer for every captured command, in order', () => {
    const c = host();
    const all = cases();
    expect(all.length).toBeGreaterThan(40);
    for (const { cmd, out } of all) {
      let got: string[];
      try {
        const text = c.run(parseCommand(cmd.split(' ')));
        got = text === '' ? [] : text.split('\n');
      } catch (e) {
        got = [(e as Error).message, '(exit 2)'];
      }
      expect({ cmd, out: got }).toEqual({ cmd, out });
    }
  });
});
