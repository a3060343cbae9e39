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
 * a kernel (test/fixtures/SET/expected.txt, made by
 * scripts/capture-policy-routing.sh from commands.txt on a host addressed as its
 * `# host:` line says): the same output, byte for byte, and the same errors.
 */
const fixture = (set: string, file: string) => new URL(`../fixtures/${set}/${file}`, import.meta.url);

function cases(set: string): { cmd: string; out: string[] }[] {
  const list: { cmd: string; out: string[] }[] = [];
  for (const line of fs.readFileSync(fixture(set, 'expected.txt'), 'utf8').split('\n')) {
    if (line.startsWith('$ ')) list.push({ cmd: line.slice(2), out: [] });
    else if (list.length > 0 && line !== '') list[list.length - 1].out.push(line);
  }
  return list;
}

/** Two links, e0 and e1, addressed as the commands file's `# host: e0 A/LEN e1 B/LEN` says. */
function host(set: string): Controller {
  const time = new VirtualTime();
  const s = new Stack({ time, seed: 1 });
  const spec = /^# host: (.*)$/m.exec(fs.readFileSync(fixture(set, 'commands.txt'), 'utf8'));
  if (spec === null) throw new Error(`${set}/commands.txt has no "# host:" line`);
  const words = spec[1].split(' ');
  const [d0] = simLink(time, { names: ['e0', 'p0'] });
  const [d1] = simLink(time, { names: ['e1', 'p1'] });
  s.setUp(s.addInterface('e0', d0), true);
  s.setUp(s.addInterface('e1', d1), true);
  for (let i = 0; i + 1 < words.length; i += 2) {
    const [a, len] = words[i + 1].split('/');
    s.addAddress(s.requireIface(words[i]), ip(a), Number(len));
  }
  return new Controller(s, {
    open: () => {
      throw new Error('no devices here');
    },
  });
}

describe('ip route and ip rule as iproute2 prints them', () => {
  it.each(['iproute2-policy', 'iproute2-local'])('gives the kernel and iproute2 answer for every command of %s, in order', (set) => {
    const c = host(set);
    const all = cases(set);
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
