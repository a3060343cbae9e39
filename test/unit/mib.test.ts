import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { MIB_NAMES, newMib } from '../../src/mib.js';

// Counters are bumped several times per packet: the MIB must be an object
// with fast (in-object/hidden-class) properties, not a V8 dictionary.
v8.setFlagsFromString('--allow-natives-syntax');
const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;

describe('MIB', () => {
  it('has every counter at zero, in a fast-properties object', () => {
    const m = newMib();
    expect(Object.keys(m)).toEqual([...MIB_NAMES]);
    expect(Object.values(m).every((v) => v === 0)).toBe(true);
    expect(hasFastProperties(m)).toBe(true);
  });
});
