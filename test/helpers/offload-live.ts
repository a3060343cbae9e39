import { expect } from 'vitest';

/** `ethtool -S DEV` of the daemon (through `run`, its control socket) as numbers. */
export async function offloadStats(run: (...argv: string[]) => Promise<{ code: number; stdout: string }>, dev: string): Promise<Record<string, number>> {
  const r = await run('ethtool', '-S', dev);
  expect(r.code).toBe(0);
  return Object.fromEntries([...r.stdout.matchAll(/^\s+(\w+): (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

/** The kernel's TCP checksum errors (TcpInCsumErrors) where `run` runs a shell command, e.g. in a namespace. */
export function kernelCsumErrors(run: (c: string) => { stdout: string }): number {
  const m = /TcpInCsumErrors\s+(\d+)/.exec(run('nstat -az TcpInCsumErrors').stdout);
  return m ? Number(m[1]) : 0;
}
