/**
 * `ss` over two Stacks on the sim link in virtual time: the states, queues,
 * timers and shutdown arrows the kernel's inet_diag would report for the same
 * moments of a connection's life.
 */
import { describe, expect, it } from 'vitest';
import { simPair } from '../helpers/sim.js';
import { pattern, runFor } from '../helpers/tcp-sim.js';
import { runSs } from '../../src/control/ss.js';
import type { Stack } from '../../src/stack.js';
import type { TcpSocket } from '../../src/tcp/socket.js';

function ss(stack: Stack, ...argv: string[]): string {
  const r = runSs(stack, argv);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

/** The socket lines without the header, blanks squeezed. */
function rows(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l !== '')
    .map((l) => l.replace(/ +/g, ' ').trim());
}

describe('ss on the stack in virtual time', () => {
  it('listener, connection, keepalive timer, queues and shutdown arrows through a connection\'s life', async () => {
    const p = simPair();
    let accepted: TcpSocket | null = null;
    const server = p.b.tcp.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => (accepted = s));
    server.listen(80);
    const client = p.a.tcp.createConnection({ host: '10.0.0.2', port: 80, allowHalfOpen: true, keepAlive: true, keepAliveInitialDelay: 10_000 });
    await runFor(p.time, 50, { until: () => accepted !== null });
    expect(accepted).not.toBeNull();

    // The server's side: a listener with Node's backlog, and the connection.
    expect(rows(ss(p.b, '-tln'))).toEqual(['LISTEN 0 511 0.0.0.0:80 0.0.0.0:*']);
    const est = rows(ss(p.b, '-tn'));
    expect(est).toHaveLength(1);
    expect(est[0]).toMatch(/^ESTAB 0 0 10\.0\.0\.2:80 10\.0\.0\.1:(\d+)$/);
    // The client's keepalive timer (setKeepAlive's initial delay), and the arrows of an open socket.
    expect(rows(ss(p.a, '-tno'))[0]).toMatch(/^ESTAB 0 0 10\.0\.0\.1:\d+ 10\.0\.0\.2:80 timer:\(keepalive,(9\.\d{3}ms|10sec),0\)$/);
    expect(rows(ss(p.a, '-tne'))[0]).toMatch(/ ino:0 sk:[0-9a-f]+ <->$/);

    // The server reads nothing: what arrives waits in Recv-Q, and what the window can't take in Send-Q.
    const data = pattern(2 * 1024 * 1024);
    client.write(data);
    await runFor(p.time, 3000);
    const [srv] = rows(ss(p.b, '-tn'));
    const [cli] = rows(ss(p.a, '-tno'));
    const rq = Number(srv.split(' ')[1]);
    const wq = Number(cli.split(' ')[2]);
    expect(rq).toBeGreaterThan(0);
    expect(wq).toBeGreaterThan(0);
    expect(rq + wq).toBeLessThanOrEqual(data.length);
    // The peer's window is shut: the persist timer probes it.
    // (print_ms_timer prints nothing for a timer due this very millisecond.)
    expect(cli).toMatch(/ timer:\(persist,([\d.]+(ms|sec))?,\d+\)$/);
    const info = ss(p.a, '-tni').split('\n')[2];
    expect(info).toMatch(/^\t cubic wscale:\d+,\d+ rto:\d+ (backoff:\d+ )?rtt:[\d.]+\/[\d.]+ mss:1448 pmtu:1500 rcvmss:\d+ advmss:1460 cwnd:\d+ /);
    expect(info).toMatch(/ bytes_sent:\d+ bytes_acked:\d+ segs_out:\d+ segs_in:\d+ data_segs_out:\d+ send [\d.]+[kMG]?bps lastsnd:\d+ lastrcv:\d+ lastack:\d+ pacing_rate [\d.]+[kMGT]?bps (delivery_rate [\d.]+[kMGT]?bps )?delivered:\d+ (app_limited )?busy:\d+ms rwnd_limited:\d+ms\([\d.]+%\) (unacked:\d+ )?rcv_space:\d+ notsent:\d+ minrtt:[\d.]+$/);
    const mem = ss(p.b, '-tnm').split('\n')[2];
    expect(mem).toBe(`\t skmem:(r${rq},rb${p.b.tcp.connections.values().next().value!.rcvBufSize},t0,tb${p.b.tcp.connections.values().next().value!.sndBufSize},f0,w0,o0,bl0,d0)`);

    // The server reads it all; the client ends its side: FIN-WAIT-2 "<--" and CLOSE-WAIT "-->".
    let got = 0;
    accepted!.on('data', (b: Buffer) => (got += b.length));
    accepted!.resume();
    client.end();
    await runFor(p.time, 3000, { until: () => got === data.length });
    await runFor(p.time, 100);
    expect(got).toBe(data.length);
    expect(rows(ss(p.a, '-tne'))[0]).toMatch(/^FIN-WAIT-2 0 0 .* ino:0 sk:[0-9a-f]+ <--$/);
    expect(rows(ss(p.b, '-tne'))[0]).toMatch(/^CLOSE-WAIT 0 0 .* ino:0 sk:[0-9a-f]+ -->$/);
    // The server closes too: the client holds the TIME-WAIT, with its timer and nothing under -i/-e but ino and sk.
    accepted!.end();
    await runFor(p.time, 100);
    expect(rows(ss(p.b, '-tan'))).toEqual(['LISTEN 0 511 0.0.0.0:80 0.0.0.0:*']);
    const tw = rows(ss(p.a, '-tanoe'));
    expect(tw).toHaveLength(1);
    expect(tw[0]).toMatch(/^TIME-WAIT 0 0 10\.0\.0\.1:\d+ 10\.0\.0\.2:80 timer:\(timewait,59sec,0\) ino:0 sk:[0-9a-f]+$/);
    expect(ss(p.a, '-tani').split('\n')[2].replace(/ +$/, '')).toBe('\t');
    expect(ss(p.a, '-s')).toMatch(/^Total: 0\nTCP:   1 \(estab 0, closed 1, orphaned 0, timewait 1\)\n/);
    server.close();
  });

  it('SYN-SENT to an address that never answers: Send-Q 1, timer:(on,...) with the retransmissions counted', async () => {
    const p = simPair();
    p.a.tcp.createConnection({ host: '10.0.0.2', port: 81 }).on('error', () => {});
    // b answers SYNs to a closed port with RST; drop what reaches b to make it silent.
    p.db.close();
    await runFor(p.time, 1500, { stepMs: 10 });
    const r = rows(ss(p.a, '-tno'));
    expect(r).toEqual([expect.stringMatching(/^SYN-SENT 0 1 10\.0\.0\.1:\d+ 10\.0\.0\.2:81 timer:\(on,\d+ms,1\)$/)]);
    expect(ss(p.a, '-tni').split('\n')[2]).toMatch(/^\t cubic rto:1000 mss:\d+ pmtu:1500 rcvmss:\d+ advmss:1460 cwnd:10 segs_out:2 lastsnd:\d+ lastrcv:\d+ lastack:\d+ unacked:1 retrans:0\/1$|^\t cubic rto:1000 mss:\d+ pmtu:1500 rcvmss:\d+ advmss:1460 cwnd:10 segs_out:2 unacked:1 retrans:0\/1$/);
  });
});
