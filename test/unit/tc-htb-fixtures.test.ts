import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';

/**
 * Replays test/fixtures/tc-htb/commands.txt (captured from the kernel by
 * scripts/capture-tc-htb.sh) against the stack and compares what tc prints
 * and its exit codes.
 */

function cases(): { cmd: string; out: string }[] {
  const text = readFileSync(new URL('../fixtures/tc-htb/expected.txt', import.meta.url), 'utf8');
  const out: { cmd: string; out: string }[] = [];
  for (const part of text.replace(/^#.*\n/, '').split(/^\$ /m).slice(1)) {
    const nl = part.indexOf('\n');
    out.push({ cmd: part.slice(0, nl), out: part.slice(nl + 1) });
  }
  return out;
}

describe('tc class/filter for htb against the kernel (test/fixtures/tc-htb)', () => {
  it('prints and refuses as the kernel and tc do', () => {
    const time = new VirtualTime();
    const [d0] = simLink(time, { seed: 1, names: ['e0', 'p0'] });
    const s = new Stack({ time, seed: 2 });
    const e0 = s.addInterface('e0', d0);
    s.setUp(e0, true);
    const env = stackTcEnv(s);
    const want: string[] = [];
    const got: string[] = [];
    for (const c of cases()) {
      const argv = c.cmd.split(' ').slice(1);
      const r = runTc(env, argv);
      let text = r.stderr + r.stdout;
      if (r.code !== 0) text += `(exit ${r.code})\n`;
      want.push(`$ ${c.cmd}\n${c.out}`);
      got.push(`$ ${c.cmd}\n${text}`);
    }
    expect(got.join('')).toBe(want.join(''));
  });
});
