import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from '../../src/stack.js';
import { VirtualTime } from '../../src/time/timers.js';
import { simLink } from '../../src/link/sim.js';
import { Controller } from '../../src/control/exec.js';
import { parseCommand } from '../../src/control/commands.js';
import { splitWords } from '../../src/control/words.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ethtool');

/** A stack with one sim interface named as the kernel fixture's TAP, offloads as `offload`. */
function controlled(offload: boolean) {
  const time = new VirtualTime();
  const [d] = simLink(time, { names: ['tsofe0', 'peer0'], offload });
  const stack = new Stack({ time, seed: 1 });
  const ctl = new Controller(stack, {
    open: () => {
      throw new Error('no devices here');
    },
  });
  const i = stack.addInterface('tsofe0', d);
  stack.setUp(i, true);
  return { stack, i, run: (line: string) => ctl.run(parseCommand(splitWords(line))) };
}

const name = (l: string) => l.replace(/:.*/, '');
const changed = (a: string[], b: string[]) => a.filter((l, k) => l !== b[k]).map(name);

describe('ethtool -k / -K / -S', () => {
  const kernel = fs.readFileSync(path.join(FIX, 'tap-k.txt'), 'utf8').trimEnd().split('\n');
  const kernelOff = fs.readFileSync(path.join(FIX, 'tap-k-tso-gro-off.txt'), 'utf8').trimEnd().split('\n');

  it("lists the kernel TAP's features in its order and layout, with the offloads a TAP has on", () => {
    const { run } = controlled(true);
    const ours = run('ethtool -k tsofe0').split('\n');
    expect(ours.map(name)).toEqual(kernel.map(name));
    // What both have, the same way: transmit checksums, TSO, USO, GSO, GRO.
    for (const f of ['tx-checksumming', '\ttx-checksum-ip-generic', 'tcp-segmentation-offload', '\ttx-tcp-segmentation', 'tx-udp-segmentation', 'generic-segmentation-offload', 'generic-receive-offload'])
      expect(ours.find((l) => name(l) === f)).toBe(kernel.find((l) => name(l) === f));
  });

  it('-K tso off gro off changes the lines the kernel changes', () => {
    const { run, i } = controlled(true);
    const before = run('ethtool -k tsofe0').split('\n');
    expect(run('ethtool -K tsofe0 tso off gro off')).toBe('');
    const after = run('ethtool -k tsofe0').split('\n');
    expect(changed(after, before)).toEqual(changed(kernelOff, kernel));
    expect([i.offload.tso, i.offload.gro, i.offload.tx]).toEqual([false, false, true]);
  });

  it('-K tx-udp-segmentation off changes the line the kernel changes; rx off or tx off takes USO with it', () => {
    const kernelUsoOff = fs.readFileSync(path.join(FIX, 'tap-k-uso-off.txt'), 'utf8').trimEnd().split('\n');
    const { run, i } = controlled(true);
    expect(i.offload.uso).toBe(true);
    const before = run('ethtool -k tsofe0').split('\n');
    expect(run('ethtool -K tsofe0 tx-udp-segmentation off')).toBe('');
    expect(changed(run('ethtool -k tsofe0').split('\n'), before)).toEqual(changed(kernelUsoOff, kernel));
    expect([i.offload.uso, i.offload.tso, i.offload.lro]).toEqual([false, true, true]);
    run('link set tsofe0 offload uso on');
    expect(i.offload.uso).toBe(true);
    run('ethtool -K tsofe0 tx off');
    expect([i.offload.uso, i.offload.tso]).toEqual([false, false]);
    run('ethtool -K tsofe0 tx-udp-segmentation on');
    expect([i.offload.uso, i.offload.tx, i.offload.rx]).toEqual([true, true, true]);
    run('ethtool -K tsofe0 rx off');
    expect([i.offload.uso, i.offload.lro]).toEqual([false, false]);
  });

  it('link set DEV offload ... and gro on|off are the same switches; a device without the offload keeps it fixed off', () => {
    const { run, i } = controlled(false);
    run('link set tsofe0 gro off');
    expect(i.offload.gro).toBe(false);
    run('link set tsofe0 offload gro on gso off');
    expect([i.offload.gro, i.offload.gso]).toEqual([true, false]);
    expect(run('ethtool -k tsofe0').split('\n').find((l) => l.startsWith('tcp-segmentation-offload'))).toBe('tcp-segmentation-offload: off [fixed]');
    expect(() => run('ethtool -K tsofe0 tso on')).toThrow(/Could not change any device features/);
    expect(() => run('ethtool -K tsofe0 tx-udp-segmentation on')).toThrow(/Could not change any device features/);
    expect(run('ethtool -k tsofe0').split('\n').find((l) => l.startsWith('tx-udp-segmentation'))).toBe('tx-udp-segmentation: off [fixed]');
    expect(() => run('link set tsofe0 offload tso maybe')).toThrow(/expected on or off/);
    expect(() => run('ethtool -K tsofe0 sg off')).toThrow(/expected a feature/);
  });

  it('-S shows the offload counters as NIC statistics', () => {
    const { run } = controlled(true);
    const s = run('ethtool -S tsofe0').split('\n');
    expect(s[0]).toBe('NIC statistics:');
    expect(s).toContain('     tx_gso_packets: 0');
    expect(s).toContain('     rx_gro_packets: 0');
  });
});
