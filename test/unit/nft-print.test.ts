import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeNat, testRuleset } from '../helpers/nft.js';
import { runNft } from '../../src/control/nft.js';

/**
 * Our `nft list ruleset` against the kernel's for the same input: the *.out
 * files are what nft printed after loading each *.nft into the kernel
 * (scripts/nft-fixtures.sh regenerates them).
 */
const dir = path.join(import.meta.dirname, '../fixtures/nft');
const inputs = fs.readdirSync(dir).filter((f) => f.endsWith('.nft'));

function load(file: string) {
  const { rs, env } = testRuleset();
  env.nat = fakeNat();
  const io = { readFile: (p: string) => fs.readFileSync(p, 'utf8'), now: () => env.t };
  const r = runNft(rs, ['-f', path.join(dir, file)], io);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return (...argv: string[]) => runNft(rs, argv, io);
}

describe('nft list ruleset as the kernel prints it', () => {
  for (const f of inputs) {
    const base = f.replace(/\.nft$/, '');
    for (const [flag, suffix] of [[null, 'out'], ['-s', 's.out'], ['-t', 't.out'], ['-a', 'a.out'], ['-j', 'j.out'], ['-n', 'n.out'], ['-y', 'y.out'], ['-p', 'p.out']] as const) {
      it(`${f} ${flag ?? ''}`, () => {
        const nft = load(f);
        const r = nft(...(flag !== null ? [flag] : []), 'list', 'ruleset');
        expect(r.stdout).toBe(fs.readFileSync(path.join(dir, `${base}.${suffix}`), 'utf8'));
      });
    }
  }

  it('a listed ruleset loads again to the same listing', () => {
    for (const f of inputs) {
      const nft = load(f);
      const first = nft('list', 'ruleset').stdout;
      const { rs, env } = testRuleset();
      env.nat = fakeNat();
      const r = runNft(rs, ['-f', '-'], { readFile: () => '', stdin: first, now: () => env.t });
      expect(r.stderr).toBe('');
      expect(runNft(rs, ['list', 'ruleset'], { readFile: () => '', now: () => env.t }).stdout).toBe(first);
    }
  });
});

describe('a sequence of nft command lines', () => {
  it('leaves the ruleset the kernel has after the same lines (with handles)', () => {
    const { rs, env } = testRuleset();
    const io = { readFile: () => '', now: () => env.t };
    for (const line of fs.readFileSync(path.join(dir, 'commands.txt'), 'utf8').split('\n')) {
      if (line === '') continue;
      const r = runNft(rs, line.split(' '), io);
      expect(r.stderr, line).toBe('');
    }
    expect(runNft(rs, ['-a', 'list', 'ruleset'], io).stdout).toBe(fs.readFileSync(path.join(dir, 'commands.a.out'), 'utf8'));
  });
});
