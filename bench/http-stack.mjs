#!/usr/bin/env node
// The stack's side of the HTTP benchmarks: examples/http-server.mjs's handler
// (node:http over tapstack on a TAP device), with what a benchmark needs besides:
//
//   node bench/http-stack.mjs DEV ADDR/PREFIX PORT [KEEPALIVE_S] [SYSCTL=VALUE ...]
//
// KEEPALIVE_S sets http.Server's keepAliveTimeout (Node's default is 5 s; the
// kernel reference, http-kernel.mjs, takes the same argument). Each line on stdin
// is answered with one JSON line on stdout: the process's RSS and heap, the
// stack's TCP connections by state, TIME_WAIT count and listen/TIME_WAIT counters.
// "gc" first runs a full collection when Node was started with --expose-gc.
import readline from 'node:readline';
import { Stack, configure, openTap } from 'tapstack';
import { helloWeb } from './http-web.mjs';

const STATE_NAMES = ['CLOSED', 'LISTEN', 'SYN-SENT', 'SYN-RECV', 'ESTAB', 'FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSE-WAIT', 'CLOSING', 'LAST-ACK', 'TIME-WAIT'];
const [dev, addr, port, keepAlive, ...sysctls] = process.argv.slice(2);
const stack = new Stack();
// BENCH_TXTHREAD=on|off: openTap's txThread (the addon's transmit thread); unset, the default.
const tx = process.env.BENCH_TXTHREAD;
openTap(stack, dev, tx === 'on' || tx === 'off' ? { txThread: tx === 'on' } : {});
configure(stack, [`addr add ${addr} dev ${dev}`, ...sysctls.map((s) => `sysctl -w ${s}`)]);

const web = helloWeb(keepAlive);
const server = stack.tcp.createServer((socket) => web.emit('connection', socket));
server.listen(Number(port), () => console.log(`listening on http://${addr.split('/')[0]}:${port}/`));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'gc' && typeof globalThis.gc === 'function') globalThis.gc();
  const states = {};
  for (const c of stack.tcp.connections) states[STATE_NAMES[c.state]] = (states[STATE_NAMES[c.state]] ?? 0) + 1;
  const m = stack.mib;
  const mem = process.memoryUsage();
  console.log(
    JSON.stringify({
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      connections: stack.tcp.connections.size,
      states,
      timeWait: stack.tcp.timeWaitCount,
      TcpExtTW: m.TcpExtTW,
      TcpExtTCPTimeWaitOverflow: m.TcpExtTCPTimeWaitOverflow,
      TcpExtListenOverflows: m.TcpExtListenOverflows,
      TcpExtListenDrops: m.TcpExtListenDrops,
      TcpPassiveOpens: m.TcpPassiveOpens,
      TcpCurrEstab: m.TcpCurrEstab,
    }),
  );
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
