#!/usr/bin/env node
/**
 * A web server on tapstack: opens a TAP device, configures it with the
 * daemon's command lines, and serves Node's own http.createServer over the
 * stack's TCP. Run as root after `npm run build:ts`:
 *
 *   node examples/http-server.mjs --dev tap0 --addr 10.0.0.2/24 --port 8080 [--gateway 10.0.0.1]
 *
 * then, from the host: ip addr add 10.0.0.1/24 dev tap0; curl http://10.0.0.2:8080/
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Stack, configure, openTap } from 'tapstack';

const { values: opt } = parseArgs({
  options: {
    dev: { type: 'string', default: 'tap0' },
    addr: { type: 'string', default: '10.0.0.2/24' },
    port: { type: 'string', default: '8080' },
    gateway: { type: 'string' },
    mac: { type: 'string' },
  },
});

const stack = new Stack();
openTap(stack, opt.dev, { mac: opt.mac });
configure(stack, [
  `addr add ${opt.addr} dev ${opt.dev}`,
  ...(opt.gateway ? [`route add default via ${opt.gateway}`] : []),
]);

const web = http.createServer((req, res) => {
  let received = 0;
  req.on('data', (chunk) => (received += chunk.length));
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(`Hello from tapstack: ${req.method} ${req.url}, ${received} bytes from ${req.socket.remoteAddress}\n`);
  });
});

// The stack's server is shaped like net.Server: each connection goes to Node's http server.
const server = stack.tcp.createServer((socket) => web.emit('connection', socket));
server.on('error', (err) => {
  console.error(`listen: ${err.message}`);
  process.exit(1);
});
const host = opt.addr.split('/')[0];
server.listen(Number(opt.port), () => console.log(`listening on http://${host}:${server.address().port}/`));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    web.close();
    stack.close();
    process.exit(0);
  });
}
