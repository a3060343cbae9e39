// What every benchmark script needs to run as root on this machine: a shell
// runner, a work directory, network namespaces, and the cleanup of all of them
// (children killed, namespaces and links deleted, the directory removed) when
// the process exits, also on SIGINT/SIGTERM.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function sh(cmd, opts = {}) {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`failed: ${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A work directory named `prefix…` and the lists of what to clean up, cleaned at exit. */
export function harness(prefix) {
  const WORK = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const children = [];
  const namespaces = [];
  const links = [];
  function cleanup() {
    for (const c of children) {
      try {
        c.kill('SIGTERM');
      } catch {}
    }
    for (const ns of namespaces) sh(`ip netns del ${ns}`, { allowFail: true });
    for (const l of links) sh(`ip link del ${l} 2>/dev/null`, { allowFail: true });
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

  function netns(name) {
    sh(`ip netns del ${name} 2>/dev/null`, { allowFail: true });
    sh(`ip netns add ${name}`);
    namespaces.push(name);
    sh(`ip -n ${name} link set lo up`);
    return name;
  }
  return { WORK, children, namespaces, links, netns };
}

export async function waitFor(pred, ms, what = 'a responder') {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Moves the kernel side of `dev` into `ns` and gives it `addr`. */
export function peerSide(dev, ns, addr) {
  sh(`ip link set ${dev} netns ${ns}`);
  sh(`ip -n ${ns} addr add ${addr}/24 dev ${dev}`);
  sh(`ip -n ${ns} link set ${dev} up`);
}
