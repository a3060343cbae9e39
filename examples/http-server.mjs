#!/usr/bin/env node
/**
 * A web server on tapstack: opens a TAP device, configures it with the
 * daemon's command lines, and serves Node's own http.createServer over the
 * stack's TCP. Run as root after `npm run build:ts`:
 *
 *   node examples/http-server.mjs --dev tap0 --addr 10.0.0.2/24 --port 8080 [--gateway 10.0.0.1]
 *
 * With --cert FILE --key FILE (PEM) it serves HTTPS instead, with Node's own https.
 *
 * then, from the host: ip addr add 10.0.0.1/24 dev tap0; curl http://10.0.0.2:8080/
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { Stack, configure, openTap } from 'tapstack';

const { values: opt } = parseArgs({
  options: {
    dev: { type: 'string', default: 'tap0' },
    addr: { type: 'string', default: '10.0.0.2/24' },
    port: { type: 'string', default: '8080' },
    gateway: { type: 'string' },
    mac: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});

const stack = new Stack();
openTap(stack, opt.dev, { mac: opt.mac });
configure(stack, [
  `addr add ${opt.addr} dev ${opt.dev}`,
  ...(opt.gateway ? [`route add default via ${opt.gateway}`] : []),
]);

const tls = opt.cert && opt.key ? { cert: fs.readFileSync(opt.cert), key: fs.readFileSync(opt.key) } : null;
const handler = (req, res) => {
  let received = 0;
  req.on('data', (chunk) => (received += chunk.length));
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    // Node's TLS over a stream that is not a kernel socket leaves remoteAddress unset on
    // the TLS socket; the stack's socket it wraps has it (reached through Node's wrapper).
    const peer = req.socket.remoteAddress ?? req.socket._handle?._parentWrap?.stream?.remoteAddress;
    res.end(`Hello from tapstack: ${req.method} ${req.url}, ${received} bytes from ${peer}\n`);
  });
};
const web = tls ? https.createServer(tls, handler) : http.createServer(handler);

// The stack's server is shaped like net.Server: each connection goes to Node's http server.
const server = stack.tcp.createServer((socket) => web.emit('connection', socket));
server.on('error', (err) => {
  console.error(`listen: ${err.message}`);
  process.exit(1);
});
const host = opt.addr.split('/')[0];
const scheme = tls ? 'https' : 'http';
server.listen(Number(opt.port), () => console.log(`listening on ${scheme}://${host}:${server.address().port}/`));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    web.close();
    stack.close();
    process.exit(0);
  });
}
