// The kernel reference for the HTTP benchmark: node:http on a kernel socket with
// the handler examples/http-server.mjs serves over tapstack.
import { helloWeb } from './http-web.mjs';

const [host, port, keepAlive] = process.argv.slice(2);
// KEEPALIVE_S (third argument): http.Server's keepAliveTimeout, as bench/http-stack.mjs takes it.
const web = helloWeb(keepAlive);
web.listen(Number(port), host, () => console.log(`listening on http://${host}:${port}/`));
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
