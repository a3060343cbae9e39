#!/usr/bin/env node
// node-responder: the floor for a responder written in Node on tapstack's addon.
//
// bench/c-responder.c's rules, in JavaScript over the same TAP device class the
// stack uses (dist/link/tap.js: one uv_poll wakeup, one JS call a batch, frames
// read into one buffer, one write a reply): it answers ARP requests for IP with
// MAC and ICMP echo requests to IP, rewriting each frame in place; everything
// else is ignored. No stack behind it (no routing, neighbour table, counters or
// qdisc), so a ping flood against it measures what Node and the addon cost by
// themselves: the stack's figure minus this one is what the stack adds.
//
//   node bench/node-responder.mjs IFNAME IPV4 [MAC]     (run `npm run build:ts` first)
//
// Prints "ready" once the device is open; counters on SIGINT/SIGTERM, then exits 0.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { openTap } = await import(pathToFileURL(path.join(ROOT, 'dist/link/tap.js')).href);
// RFC 1071 and RFC 1624 (eqn. 3) as the stack computes them.
const { checksum, updateChecksum16 } = await import(pathToFileURL(path.join(ROOT, 'dist/wire/checksum.js')).href);

const [name, ipArg, macArg = '02:00:00:00:00:01'] = process.argv.slice(2);
const ip = (ipArg ?? '').split('.').map(Number);
const mac = macArg.split(':').map((x) => parseInt(x, 16));
if (!name || ip.length !== 4 || ip.some((x) => !(x >= 0 && x <= 255)) || mac.length !== 6 || mac.some((x) => !(x >= 0 && x <= 255))) {
  process.stderr.write('usage: node-responder.mjs IFNAME IPV4 [MAC]\n');
  process.exit(2);
}

const ETH_HLEN = 14;
let rx = 0, arp = 0, echo = 0, ignored = 0, txErrors = 0;

/** Rewrites f into the ARP reply (RFC 826); returns its length, or 0 to ignore. */
function arpReply(f) {
  const a = ETH_HLEN;
  if (f.length < a + 28) return 0;
  if (f[a] !== 0 || f[a + 1] !== 1 || f[a + 2] !== 8 || f[a + 3] !== 0 || f[a + 4] !== 6 || f[a + 5] !== 4) return 0;
  if (f[a + 6] !== 0 || f[a + 7] !== 1) return 0;
  for (let i = 0; i < 4; i++) if (f[a + 24 + i] !== ip[i]) return 0;
  for (let i = 0; i < 6; i++) {
    f[i] = f[6 + i];
    f[6 + i] = mac[i];
  }
  f[a + 7] = 2;
  f.copyWithin(a + 18, a + 8, a + 18);
  for (let i = 0; i < 6; i++) f[a + 8 + i] = mac[i];
  for (let i = 0; i < 4; i++) f[a + 14 + i] = ip[i];
  return a + 28;
}

/** Rewrites f into the echo reply (RFC 792); returns its length, or 0 to ignore. */
function icmpReply(f) {
  const h = ETH_HLEN;
  if (f.length < h + 20 || f[h] >> 4 !== 4) return 0;
  const ihl = (f[h] & 0x0f) * 4;
  const tot = (f[h + 2] << 8) | f[h + 3];
  if (ihl < 20 || tot < ihl + 8 || h + tot > f.length) return 0;
  if (f[h + 9] !== 1) return 0;
  for (let i = 0; i < 4; i++) if (f[h + 16 + i] !== ip[i]) return 0;
  if ((((f[h + 6] << 8) | f[h + 7]) & 0x3fff) !== 0) return 0;
  if (checksum(f, h, ihl) !== 0) return 0;
  const c = h + ihl;
  if (f[c] !== 8 || f[c + 1] !== 0) return 0;
  for (let i = 0; i < 6; i++) {
    f[i] = f[6 + i];
    f[6 + i] = mac[i];
  }
  // Swapping the addresses leaves the IP checksum as it is.
  for (let i = 0; i < 4; i++) {
    const t = f[h + 12 + i];
    f[h + 12 + i] = f[h + 16 + i];
    f[h + 16 + i] = t;
  }
  f[c] = 0;
  const sum = updateChecksum16((f[c + 2] << 8) | f[c + 3], 0x0800, 0x0000);
  f[c + 2] = sum >> 8;
  f[c + 3] = sum & 0xff;
  return h + tot;
}

const tap = openTap(name);
const one = [null];
tap.start({
  frame(f) {
    rx++;
    let n = 0;
    if (f.length >= ETH_HLEN) {
      const type = (f[12] << 8) | f[13];
      if (type === 0x0806 && (n = arpReply(f)) !== 0) arp++;
      else if (type === 0x0800 && (n = icmpReply(f)) !== 0) echo++;
    }
    if (n === 0) {
      ignored++;
      return;
    }
    one[0] = n === f.length ? f : f.subarray(0, n);
    if (tap.sendBatch(one, 1) !== 1) txErrors++;
  },
  batchEnd() {},
});
const stop = () => {
  process.stderr.write(`node-responder: rx ${rx} arp ${arp} echo ${echo} ignored ${ignored} tx_errors ${txErrors}\n`);
  tap.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.stdout.write('ready\n');
