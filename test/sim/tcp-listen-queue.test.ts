/**
 * Listener queues and TIME_WAIT under many connections, as Linux bounds them: the
 * accept queue (listen(2)'s backlog capped by net.core.somaxconn) drops SYNs and
 * handshake-completing ACKs when full and counts ListenOverflows/ListenDrops;
 * net.ipv4.tcp_max_tw_buckets caps TIME_WAIT (TcpExtTCPTimeWaitOverflow); connect(2)
 * takes over a TIME_WAIT 4-tuple as tcp_tw_reuse allows (TcpExtTWRecycled).
 * The peer is played by hand (helpers/tcp-segments.ts).
 */
import { describe, expect, it } from 'vitest';
import { PEER, Recorder, linuxSynOpts, tcpPeer, type TcpPeer } from '../helpers/tcp-segments.js';
import { ip } from '../helpers/sim.js';
import { TcpListener } from '../../src/tcp/listen.js';
import type { TcpConnection } from '../../src/tcp/connection.js';
import { TcpState } from '../../src/tcp/state.js';

const seq = (a: number, n: number): number => (a + n) >>> 0;

/** A listener whose user takes connections only while `taking.on` holds. */
function slowListener(p: TcpPeer, backlog: number): { l: TcpListener; accepted: TcpConnection[]; taking: { on: boolean } } {
  const accepted: TcpConnection[] = [];
  const taking = { on: false };
  const l = new TcpListener(p.stack.tcp, 0, 80, backlog, {
    incoming: (c) => {
      if (!taking.on) return false;
      c.user = new Recorder();
      accepted.push(c);
      return true;
    },
  });
  expect(p.stack.tcp.addListener(l)).toBeNull();
  return { l, accepted, taking };
}

/** SYN from sport, the stack's SYN-ACK; returns the SYN-ACK's sequence number. */
function syn(p: TcpPeer, sport: number): number {
  p.send({ sport, seq: sport * 1000, flags: 'S', opts: linuxSynOpts() });
  const sa = p.one();
  expect(sa.flags).toBe('SA');
  return sa.seq;
}

function ack(p: TcpPeer, sport: number, iss: number): void {
  p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 1), flags: 'A', wnd: 1000 });
}

describe('the accept queue (Linux sk_acceptq_is_full: more than backlog waiting)', () => {
  it('net.core.somaxconn caps the backlog; backlog + 1 connections wait, then SYNs are dropped unanswered and counted in ListenOverflows and ListenDrops', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.core.somaxconn', '3');
    const { l } = slowListener(p, 511);
    expect(l.backlog).toBe(3);
    for (let i = 0; i < 4; i++) ack(p, 41000 + i, syn(p, 41000 + i));
    expect(l.acceptQueue).toHaveLength(4);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(0);
    p.send({ sport: 41010, seq: 5, flags: 'S', opts: linuxSynOpts() });
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(1);
    expect(p.stack.mib.TcpExtListenDrops).toBe(1);
    expect(p.stack.tcp.lookup(0x0a000002, 80, 0x0a000001, 41010)).toBeNull();
  });

  it('tcp_check_req listen_overflow: the ACK completing a handshake into a full queue is dropped; the connection stays SYN-RECV and a later ACK to the retransmitted SYN-ACK brings it in', () => {
    const p = tcpPeer();
    const { l, accepted, taking } = slowListener(p, 4);
    for (let i = 0; i < 4; i++) ack(p, 42000 + i, syn(p, 42000 + i));
    const iss5 = syn(p, 42005);
    const iss6 = syn(p, 42006);
    ack(p, 42005, iss5);
    expect(l.acceptQueue).toHaveLength(5);
    ack(p, 42006, iss6);
    // Dropped: no RST, no state change; counted.
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(1);
    expect(p.stack.mib.TcpExtListenDrops).toBe(1);
    const c6 = p.lookup(42006)!;
    expect(c6.state).toBe(TcpState.SYN_RECEIVED);
    expect(l.synQueue).toBe(1);
    // The application accepts what waits; the SYN-ACK's retransmission (1 s) draws a new ACK.
    taking.on = true;
    l.drain();
    expect(accepted).toHaveLength(5);
    p.advance(1000);
    const re = p.take();
    expect(re.map((s) => [s.flags, s.dport, s.seq])).toEqual([['SA', 42006, iss6]]);
    ack(p, 42006, iss6);
    expect(accepted).toHaveLength(6);
    expect(c6.state).toBe(TcpState.ESTABLISHED);
    expect(l.synQueue).toBe(0);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(1);
  });

  it('tcp_abort_on_overflow=1: that ACK draws a RST and the half-open connection goes (EmbryonicRsts)', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_abort_on_overflow', '1');
    const { l } = slowListener(p, 1);
    ack(p, 43000, syn(p, 43000));
    const iss2 = syn(p, 43002);
    ack(p, 43001, syn(p, 43001));
    expect(l.acceptQueue).toHaveLength(2);
    ack(p, 43002, iss2);
    expect(p.take().map((s) => [s.flags, s.dport, s.seq])).toEqual([['R', 43002, seq(iss2, 1)]]);
    expect(p.lookup(43002)).toBeNull();
    expect(l.synQueue).toBe(0);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(1);
    expect(p.stack.mib.TcpExtEmbryonicRsts).toBe(1);
  });

  it('tcp_syncookies=2: a good cookie ACK into a full queue is dropped (no RST, nothing kept); the next one after accept gets in', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_syncookies', '2');
    const { l, accepted, taking } = slowListener(p, 1);
    const isn = [44000, 44001, 44002].map((sp) => syn(p, sp));
    ack(p, 44000, isn[0]);
    ack(p, 44001, isn[1]);
    expect(l.acceptQueue).toHaveLength(2);
    expect(p.stack.mib.TcpExtSyncookiesRecv).toBe(2);
    ack(p, 44002, isn[2]);
    expect(p.take()).toEqual([]);
    expect(p.stack.mib.TcpExtSyncookiesRecv).toBe(3);
    expect(p.stack.mib.TcpExtListenOverflows).toBe(1);
    expect(p.stack.mib.TcpExtListenDrops).toBe(1);
    expect(p.lookup(44002)).toBeNull();
    taking.on = true;
    l.drain();
    // The client, established on its side, sends data: the cookie in its ACK field is still good.
    p.send({ sport: 44002, seq: 44002 * 1000 + 1, ack: seq(isn[2], 1), flags: 'PA', data: 'hi' });
    expect(accepted).toHaveLength(3);
    expect((accepted[2].user as Recorder).text()).toBe('hi');
  });
});

describe('TIME_WAIT buckets (net.ipv4.tcp_max_tw_buckets)', () => {
  /** The stack closes first (as an HTTP/1.0 server does): FIN, the peer's ACK and FIN. */
  function closeFirst(p: TcpPeer, sport: number, l: TcpListener, accepted: TcpConnection[]): TcpConnection {
    const iss = syn(p, sport);
    ack(p, sport, iss);
    const c = accepted[accepted.length - 1];
    expect(c.remotePort).toBe(sport);
    p.stack.tcp.batched(() => c.close(false));
    p.advance(0);
    const fin = p.one();
    expect(fin.flags).toBe('FA');
    p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 2), flags: 'FA', wnd: 1000 });
    expect(p.one().flags).toBe('A');
    void l;
    return c;
  }

  it('beyond tcp_max_tw_buckets a closing connection skips TIME_WAIT (TCPTimeWaitOverflow) and a retransmitted FIN then draws a RST; the buckets empty after 60 s', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_max_tw_buckets', '3');
    const { listener, accepted } = p.listen(80, 128);
    const cs: TcpConnection[] = [];
    for (let i = 0; i < 5; i++) cs.push(closeFirst(p, 45000 + i, listener, accepted));
    // Every connection is released; TIME_WAIT records hold the first three 4-tuples.
    expect(cs.map((c) => c.state)).toEqual([TcpState.CLOSED, TcpState.CLOSED, TcpState.CLOSED, TcpState.CLOSED, TcpState.CLOSED]);
    expect(cs.map((c) => p.timeWait(c.remotePort) !== null)).toEqual([true, true, true, false, false]);
    expect(p.stack.tcp.timeWaitCount).toBe(3);
    // __inet_twsk_schedule counts TW as the timer is first set.
    expect(p.stack.mib.TcpExtTW).toBe(3);
    expect(p.stack.mib.TcpExtTCPTimeWaitOverflow).toBe(2);
    expect(p.stack.tcp.connections.size).toBe(0);
    // In TIME_WAIT a retransmitted FIN is acknowledged; without it, it meets a RST.
    p.send({ sport: 45000, seq: 45000 * 1000 + 1, ack: seq(cs[0].iss, 2), flags: 'FA', wnd: 1000 });
    expect(p.one().flags).toBe('A');
    p.send({ sport: 45004, seq: 45004 * 1000 + 1, ack: seq(cs[4].iss, 2), flags: 'FA', wnd: 1000 });
    expect(p.one().flags).toBe('R');
    p.advance(60_000);
    expect(p.stack.tcp.timeWaitCount).toBe(0);
    expect(p.stack.tcp.connections.size).toBe(0);
    // The buckets are free again.
    closeFirst(p, 45010, listener, accepted);
    expect(p.timeWait(45010)).not.toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(1);
  });

  it('tcp_max_tw_buckets=0: no connection enters TIME_WAIT; 300 closes leave the table empty, each FIN acknowledged', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_max_tw_buckets', '0');
    const { listener, accepted } = p.listen(80, 128);
    for (let i = 0; i < 300; i++) closeFirst(p, 20000 + i, listener, accepted);
    expect(p.stack.tcp.timeWaitCount).toBe(0);
    expect(p.stack.tcp.connections.size).toBe(0);
    expect(p.stack.mib.TcpExtTCPTimeWaitOverflow).toBe(300);
  });
});

describe('connect(2) over a TIME_WAIT (net.ipv4.tcp_tw_reuse, Linux tcp_twsk_unique)', () => {
  /** The stack connects to the peer's port 40000 and closes first: its side ends in TIME_WAIT. */
  function openAndClose(p: TcpPeer, lport = 0, ts = true): { c: TcpConnection; err: string | null } {
    const c = p.stack.tcp.newConnection();
    c.user = new Recorder();
    const err = p.stack.tcp.activeOpen(c, ip(PEER), 40000, 0, lport);
    if (err !== null) return { c, err };
    p.advance(0);
    const synSeg = p.one();
    p.useTs = ts;
    p.send({ sport: 40000, dport: c.localPort, seq: 9000, ack: seq(synSeg.seq, 1), flags: 'SA', opts: ts ? linuxSynOpts() : { mss: 1460, sackPermitted: true, wscale: 7, ts: null } });
    expect(p.one().flags).toBe('A');
    p.stack.tcp.batched(() => c.close(false));
    p.advance(0);
    const fin = p.one();
    expect(fin.flags).toBe('FA');
    p.send({ sport: 40000, dport: c.localPort, seq: 9001, ack: seq(fin.seq, 1), flags: 'FA', wnd: 1000 });
    expect(p.one().flags).toBe('A');
    expect(p.timeWait(40000, c.localPort)).not.toBeNull();
    return { c, err: null };
  }

  /** A fresh connect from the one-port range; its SYN if it went out. */
  function again(p: TcpPeer, lport = 0): { err: string | null; synSeq: number } {
    const c = p.stack.tcp.newConnection();
    c.user = new Recorder();
    const err = p.stack.tcp.activeOpen(c, ip(PEER), 40000, 0, lport);
    p.advance(0);
    const out = p.take();
    return { err, synSeq: err === null ? out[0].seq : -1 };
  }

  it('the port search passes over a TIME_WAIT unless tcp_tw_reuse=1 and tcp_tw_reuse_delay (1 s) has passed; the new ISN is the old snd_nxt + 65537', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.ip_local_port_range', '50000 50000');
    const { c: old } = openAndClose(p);
    const sndNxt = old.sndNxt;
    // tcp_tw_reuse=2 (the default) is for loopback only.
    expect(again(p).err).toBe('EADDRNOTAVAIL');
    p.stack.sysctl.set('net.ipv4.tcp_tw_reuse', '1');
    p.advance(1000);
    expect(again(p).err).toBe('EADDRNOTAVAIL');
    p.advance(1);
    const r = again(p);
    expect(r.err).toBeNull();
    expect(r.synSeq).toBe(seq(sndNxt, 65537));
    expect(p.timeWait(40000, 50000)).toBeNull();
    expect(p.stack.tcp.timeWaitCount).toBe(0);
    expect(p.stack.mib.TcpExtTWRecycled).toBe(1);
  });

  it('an explicitly bound port takes over a TIME_WAIT with timestamps at once, whatever tcp_tw_reuse says; without timestamps it is EADDRINUSE', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.tcp_tw_reuse', '0');
    openAndClose(p, 50001);
    expect(again(p, 50001).err).toBeNull();
    expect(p.stack.mib.TcpExtTWRecycled).toBe(1);
    const q = tcpPeer();
    openAndClose(q, 50002, false);
    expect(again(q, 50002).err).toBe('EADDRINUSE');
    expect(q.stack.tcp.timeWaitCount).toBe(1);
  });
});

describe('connect(2) over a FIN_WAIT_2 record', () => {
  it('the port search never takes one (tcp_twsk_unique: no reuse in FIN_WAIT2), an explicitly bound port does', () => {
    const p = tcpPeer();
    p.stack.sysctl.set('net.ipv4.ip_local_port_range', '50000 50000');
    p.stack.sysctl.set('net.ipv4.tcp_tw_reuse', '1');
    for (const lport of [0, 50000]) {
      const c = p.stack.tcp.newConnection();
      c.user = new Recorder();
      expect(p.stack.tcp.activeOpen(c, ip(PEER), 40000, 0, 0)).toBeNull();
      p.advance(0);
      const synSeg = p.one();
      p.send({ sport: 40000, dport: 50000, seq: 9000, ack: seq(synSeg.seq, 1), flags: 'SA', opts: linuxSynOpts() });
      p.take();
      p.stack.tcp.batched(() => c.close(false));
      p.advance(0);
      const fin = p.one();
      // The peer acknowledges our FIN and keeps its side open: a FIN_WAIT_2 record.
      p.send({ sport: 40000, dport: 50000, seq: 9001, ack: seq(fin.seq, 1), flags: 'A', wnd: 1000 });
      expect(p.timeWait(40000, 50000)?.substate).toBe(TcpState.FIN_WAIT_2);
      p.advance(5000);
      const n = p.stack.tcp.newConnection();
      n.user = new Recorder();
      const err = p.stack.tcp.activeOpen(n, ip(PEER), 40000, 0, lport);
      expect(err).toBe(lport === 0 ? 'EADDRNOTAVAIL' : null);
      if (lport === 0) {
        p.advance(60_000);
        expect(p.timeWait(40000, 50000)).toBeNull();
      } else expect(p.stack.mib.TcpExtTWRecycled).toBe(1);
      p.take();
    }
  });
});

describe('nothing left behind', () => {
  it('2,000 connections opened, used and closed (half by the peer first, half by us first) leave no table entry, port count, timer or queue behind', () => {
    const p = tcpPeer();
    const tcp = p.stack.tcp;
    const { listener, accepted } = p.listen(80, 128);
    const timers0 = p.time.pending;
    for (let i = 0; i < 2000; i++) {
      const sport = 10000 + i;
      const iss = syn(p, sport);
      ack(p, sport, iss);
      const c = accepted[i];
      p.send({ sport, seq: sport * 1000 + 1, ack: seq(iss, 1), flags: 'PA', data: 'GET / HTTP/1.1\r\n\r\n', wnd: 1000 });
      const n = 18;
      c.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
      tcp.batched(() => c.output());
      p.advance(0);
      p.take();
      if (i % 2 === 0) {
        // The peer closes first: CLOSE-WAIT, our FIN, LAST-ACK, its ACK.
        p.send({ sport, seq: sport * 1000 + 1 + n, ack: seq(iss, 20), flags: 'FA', wnd: 1000 });
        tcp.batched(() => c.close(false));
        p.advance(0);
        const fin = p.take().find((s) => s.flags.includes('F'))!;
        p.send({ sport, seq: sport * 1000 + 2 + n, ack: seq(fin.seq, 1), flags: 'A', wnd: 1000 });
      } else {
        // We close first: FIN-WAIT, the peer's FIN, TIME-WAIT.
        tcp.batched(() => c.close(false));
        p.advance(0);
        const fin = p.take().find((s) => s.flags.includes('F'))!;
        p.send({ sport, seq: sport * 1000 + 1 + n, ack: seq(fin.seq, 1), flags: 'FA', wnd: 1000 });
        p.take();
      }
    }
    expect(accepted).toHaveLength(2000);
    expect(tcp.timeWaitCount).toBe(1000);
    // The TIME_WAIT connections are released; records hold their 4-tuples.
    expect(tcp.connections.size).toBe(0);
    expect(accepted.every((c) => c.state === TcpState.CLOSED)).toBe(true);
    p.advance(61_000);
    expect(accepted.every((c) => c.state === TcpState.CLOSED)).toBe(true);
    expect(tcp.connections.size).toBe(0);
    expect(tcp.timeWaitCount).toBe(0);
    expect(tcp['table'].count).toBe(0);
    expect(tcp.timeWait['table'].count).toBe(0);
    expect(tcp.portsHeld).toBe(0);
    expect(listener.synQueue).toBe(0);
    expect(listener.acceptQueue).toHaveLength(0);
    expect(listener['pending'].size).toBe(0);
    expect(p.time.pending).toBe(timers0);
    expect(p.stack.mib.TcpCurrEstab).toBe(0);
  });
});
