import { describe, expect, it } from 'vitest';
import { runNft } from '../../src/control/nft.js';
import { VERDICT_ACCEPT, VERDICT_DROP } from '../../src/ip/hooks.js';
import { eth0, pkt, testRuleset, udpDatagram, wlan1 } from '../helpers/nft.js';

/**
 * Rules that start with an address test are passed over from the chain's
 * prefilter arrays (compile.ts `prefilter`) without running: the verdicts and
 * counters must be those of running every rule.
 */
describe('address prefilter', () => {
  function load(body: string) {
    const t = testRuleset();
    const r = runNft(t.rs, ['-f', '-'], {
      readFile: () => '',
      stdin: `table ip t {\n\tchain sub {\n\t\tip daddr 10.9.0.0/16 counter drop\n\t\tcounter\n\t}\n\n\tchain f {\n\t\ttype filter hook forward priority filter; policy accept;\n${body}\t}\n}\n`,
      now: () => 0,
    });
    expect(r.stderr).toBe('');
    const send = (src: string, dst: string): number => t.hooks.forward.run(pkt(udpDatagram(src, dst, 1, 2)), eth0, wlan1);
    const counts = (): number[] =>
      [...runNft(t.rs, ['list', 'ruleset'], { readFile: () => '', now: () => 0 }).stdout.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
    return { send, counts };
  }

  it('addresses, prefixes and ranges on saddr and daddr; != and masks run as they are', () => {
    const { send, counts } = load(
      [
        'ip saddr 10.0.0.1 counter',
        'ip saddr 10.1.0.0/16 counter',
        'ip daddr 10.2.0.5-10.2.0.9 counter',
        'ip saddr != 10.0.0.1 counter',
        'ip saddr & 255.0.0.0 == 10.0.0.0 counter',
        'ip daddr 10.9.0.0/16 jump sub',
        'ip saddr 10.0.0.7 counter drop',
        'counter',
      ]
        .map((l) => `\t\t${l}\n`)
        .join(''),
    );
    expect(send('10.0.0.1', '10.2.0.5')).toBe(VERDICT_ACCEPT);
    expect(send('10.1.2.3', '10.2.0.10')).toBe(VERDICT_ACCEPT);
    expect(send('10.0.0.7', '10.2.0.9')).toBe(VERDICT_DROP);
    expect(send('10.0.0.1', '10.9.1.1')).toBe(VERDICT_DROP);
    expect(send('10.0.0.2', '10.8.1.1')).toBe(VERDICT_ACCEPT);
    // sub's counters first (its rules come first in the listing), then f's.
    expect(counts()).toEqual([1, 0, 2, 1, 2, 3, 5, 1, 3]);
  });
});
