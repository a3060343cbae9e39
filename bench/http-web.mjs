// The HTTP benchmarks' web server, the same for the stack (http-stack.mjs) and the
// kernel reference (http-kernel.mjs): node:http with the handler examples/http-server.mjs
// serves. keepAliveS (if given) sets http.Server's keepAliveTimeout (Node's default is 5 s).
import http from 'node:http';

export function helloWeb(keepAliveS) {
  const web = http.createServer((req, res) => {
    let received = 0;
    req.on('data', (chunk) => (received += chunk.length));
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(`Hello from tapstack: ${req.method} ${req.url}, ${received} bytes from ${req.socket.remoteAddress}\n`);
    });
  });
  if (keepAliveS) web.keepAliveTimeout = Number(keepAliveS) * 1000;
  return web;
}
