import { createHash } from 'node:crypto';
import type { VirtualTime } from '../../src/time/timers.js';

/** Lets Node run its queued callbacks (stream events, nextTicks, immediates). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * Advances virtual time by `ms` in steps of `stepMs`, letting Node's callbacks
 * run between steps, until `until()` holds (if given). Returns the virtual time spent.
 */
export async function runFor(time: VirtualTime, ms: number, opts: { stepMs?: number; until?: () => boolean } = {}): Promise<number> {
  const step = opts.stepMs ?? 1;
  const start = time.now();
  await settle();
  while (time.now() - start < ms) {
    if (opts.until?.()) break;
    time.advance(step);
    await settle();
  }
  return time.now() - start;
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
