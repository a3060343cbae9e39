import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { runTc } from '../../src/control/tc.js';
import { stackTcEnv } from '../../src/control/exec.js';
import '../../src/control/tc-filter.js';

interface Case {
  line: string;
  code: number;
  stdout: string;
  stderr: string;
}

/** test/fixtures/DIR/expected.txt: the real tc's answers (scripts/capture-tc.sh [DIR]). */
function loadCases(dir: string): Case[] {
  const text = readFileSync(new URL(`../fixtures/${dir}/expected.txt`, import.meta.url), 'utf8');
  const out: Case[] = [];
  const blocks = text.split(/^### tc /m).slice(1);
  for (const b of blocks) {
    const nl = b.indexOf('\n');
    const line = b.slice(0, nl);
    const rest = b.slice(nl + 1);
    const m = /^exit (\d+)\n--- stdout\n([\s\S]*?)--- stderr\n([\s\S]*)$/.exec(rest);
    if (m === null) throw new Error(`bad fixture block for ${line}`);
    out.push({ line, code: Number(m[1]), stdout: m[2], stderr: m[3] });
  }
  return out;
}

describe.each([
  ['tc', 100],
  ['tc-ext', 100],
])('tc against the real tc (test/fixtures/%s)', (dir, atLeast) => {
  it('answers every case of cases.txt as iproute2 6.1 over a kernel TAP device does', () => {
    const time = new VirtualTime();
    const [d0] = simLink(time, { seed: 1, names: ['tstc0', 'peer'] });
    const s = new Stack({ time, seed: 2 });
    const i0 = s.addInterface('tstc0', d0, { mtu: 1500 });
    s.setUp(i0, true);
    const env = stackTcEnv(s);
    const cases = loadCases(dir);
    expect(cases.length).toBeGreaterThan(atLeast);
    const got = cases.map((c) => {
      const r = runTc(env, c.line.split(' '));
      return { line: c.line, code: r.code, stdout: r.stdout, stderr: r.stderr };
    });
    expect(got).toEqual(cases.map((c) => ({ line: c.line, code: c.code, stdout: c.stdout, stderr: c.stderr })));
  });
});
