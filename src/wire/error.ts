/**
 * Thrown by the parse functions when `check()` fails. The receive path calls
 * `check()` on a view itself and counts the drop; parse is for the slow paths
 * (control, tests, replay), where a malformed header is a caller's mistake.
 */
export class WireError extends Error {
  constructor(
    readonly what: string,
    readonly reason: string,
  ) {
    super(`${what}: ${reason}`);
    this.name = 'WireError';
  }
}
