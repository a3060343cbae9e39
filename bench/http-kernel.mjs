// The kernel reference for the HTTP benchmark: node:http on a kernel socket with
// the handler examples/http-server.mjs serves over tapstack.
import http from 'node:http';

const [host, port, keepAlive] = process.argv.slice(2);
const web = http.createServer((req, res) => {
  let received = 0;
  req.on('data', (chunk) => (received += chunk.length));
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(`Hello from tapstack: ${req.method} ${req.url}, ${received} bytes from ${req.socket.remoteAddress}\n`);
  });
});
// KEEPALIVE_S (third argument): http.Server's keepAliveTimeout, as bench/http-stack.mjs takes it.
if (keepAlive) web.keepAliveTimeout = Number(keepAlive) * 1000;
web.listen(Number(port), host, () => console.log(`listening on http://${host}:${port}/`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
