import { describe, expect, it } from 'vitest';
import { ACK, CtRig, FIN, PSH, RST, SYN, URG, tcp, type Seg } from '../helpers/ct.js';
import {
  CtEntry,
  IPS_ASSURED,
  IPS_SEEN_REPLY,
  IP_CT_ESTABLISHED,
  IP_CT_ESTABLISHED_REPLY,
  IP_CT_NEW,
} from '../../src/conntrack/entry.js';

/**
 * The TCP tracker against segment sequences, with the states and timeouts
 * nf_conntrack_proto_tcp.c gives (client 10.0.0.1:40000, server 10.0.1.2:80).
 */

const C = '10.0.0.1';
const S = '10.0.1.2';
const CP = 40000;
const SP = 80;
const ISN_C = 1000;
const ISN_S = 5_000_000;
/** Window scale 7 and SACK permitted (kind 3 len 3, NOP, kind 4 len 2, NOP NOP). */
const SYN_OPTS = [3, 3, 7, 1, 4, 2, 1, 1];

class Flow {
  readonly r = new CtRig();
  entry: CtEntry | null = null;
  /** ctinfo of the last packet, or -1 when it was INVALID (no entry). */
  info = -1;

  c(s: Seg): boolean {
    return this.send(tcp(C, CP, S, SP, s));
  }

  s(s: Seg): boolean {
    return this.send(tcp(S, SP, C, CP, s));
  }

  private send(p: ReturnType<typeof tcp>): boolean {
    const ok = this.r.forward(p);
    if (p.ct !== null) this.entry = p.ct as CtEntry;
    this.info = p.ct === null ? -1 : p.ctInfo;
    return ok;
  }

  get state(): string {
    return this.entry === null ? 'none' : this.r.ct.stateName(this.entry);
  }

  get left(): number {
    return this.r.ct.timeLeft(this.entry!);
  }

  get assured(): boolean {
    return (this.entry!.status & IPS_ASSURED) !== 0;
  }

  /** SYN, SYN-ACK, ACK with window scaling both ways. */
  handshake(): void {
    this.c({ seq: ISN_C, flags: SYN, opts: SYN_OPTS, win: 64240 });
    this.s({ seq: ISN_S, ack: ISN_C + 1, flags: SYN | ACK, opts: SYN_OPTS, win: 65160 });
    this.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK, win: 502 });
  }
}

describe('conntrack TCP tracker', () => {
  it('three-way handshake: SYN_SENT 120, SYN_RECV 60, ESTABLISHED 432000 and ASSURED', () => {
    const f = new Flow();
    f.c({ seq: ISN_C, flags: SYN, opts: SYN_OPTS, win: 64240 });
    expect(f.state).toBe('SYN_SENT');
    expect(f.info).toBe(IP_CT_NEW);
    expect(f.left).toBe(120);
    f.s({ seq: ISN_S, ack: ISN_C + 1, flags: SYN | ACK, opts: SYN_OPTS, win: 65160 });
    expect(f.state).toBe('SYN_RECV');
    // Every reply-direction packet is ESTABLISHED, the SYN-ACK too.
    expect(f.info).toBe(IP_CT_ESTABLISHED_REPLY);
    expect(f.left).toBe(60);
    expect(f.assured).toBe(false);
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK, win: 502 });
    expect(f.state).toBe('ESTABLISHED');
    expect(f.info).toBe(IP_CT_ESTABLISHED);
    expect(f.assured).toBe(true);
    expect(f.left).toBe(432000);
    expect(f.entry!.tcp!.seen[0].scale).toBe(7);
    expect(f.entry!.tcp!.seen[1].scale).toBe(7);
  });

  it('data in flight shortens the timeout to `unacknowledged` until it is acked', () => {
    const f = new Flow();
    f.handshake();
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 });
    expect(f.left).toBe(300);
    f.s({ seq: ISN_S + 1, ack: ISN_C + 101, flags: ACK, win: 509 });
    expect(f.left).toBe(432000);
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_unacknowledged', '45');
    f.c({ seq: ISN_C + 101, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 10 });
    expect(f.left).toBe(45);
  });

  it('close from the client: FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, then expiry after 120 s', () => {
    const f = new Flow();
    f.handshake();
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: FIN | ACK, win: 502 });
    expect(f.state).toBe('FIN_WAIT');
    expect(f.left).toBe(120);
    f.s({ seq: ISN_S + 1, ack: ISN_C + 2, flags: ACK, win: 509 });
    expect(f.state).toBe('CLOSE_WAIT');
    expect(f.left).toBe(60);
    f.s({ seq: ISN_S + 1, ack: ISN_C + 2, flags: FIN | ACK, win: 509 });
    expect(f.state).toBe('LAST_ACK');
    expect(f.left).toBe(30);
    f.c({ seq: ISN_C + 2, ack: ISN_S + 2, flags: ACK, win: 502 });
    expect(f.state).toBe('TIME_WAIT');
    expect(f.left).toBe(120);
    f.r.time.advance(119_000);
    expect(f.r.ct.count).toBe(1);
    f.r.time.advance(61_000);
    expect(f.r.ct.count).toBe(0);
  });

  it('close from the server side works the same way', () => {
    const f = new Flow();
    f.handshake();
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1, flags: FIN | ACK, win: 509 });
    expect(f.state).toBe('FIN_WAIT');
    f.c({ seq: ISN_C + 1, ack: ISN_S + 2, flags: FIN | ACK, win: 502 });
    expect(f.state).toBe('LAST_ACK');
    f.s({ seq: ISN_S + 2, ack: ISN_C + 2, flags: ACK, win: 509 });
    expect(f.state).toBe('TIME_WAIT');
  });

  it('a new SYN on a TIME_WAIT entry reopens the connection as a new entry', () => {
    const f = new Flow();
    f.handshake();
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: FIN | ACK, win: 502 });
    f.s({ seq: ISN_S + 1, ack: ISN_C + 2, flags: FIN | ACK, win: 509 });
    f.c({ seq: ISN_C + 2, ack: ISN_S + 2, flags: ACK, win: 502 });
    expect(f.state).toBe('TIME_WAIT');
    const old = f.entry!;
    f.c({ seq: ISN_C + 100000, flags: SYN, opts: SYN_OPTS, win: 64240 });
    expect(f.entry).not.toBe(old);
    expect(f.state).toBe('SYN_SENT');
    expect(f.info).toBe(IP_CT_NEW);
    expect(f.r.ct.count).toBe(1);
  });

  it('simultaneous open: SYN_SENT2, then SYN_RECV, then ESTABLISHED', () => {
    const f = new Flow();
    f.c({ seq: ISN_C, flags: SYN, opts: SYN_OPTS, win: 64240 });
    f.s({ seq: ISN_S, flags: SYN, opts: SYN_OPTS, win: 65160 });
    expect(f.state).toBe('SYN_SENT2');
    expect(f.left).toBe(120);
    f.c({ seq: ISN_C, ack: ISN_S + 1, flags: SYN | ACK, opts: SYN_OPTS, win: 64240 });
    expect(f.state).toBe('SYN_RECV');
    f.s({ seq: ISN_S, ack: ISN_C + 1, flags: SYN | ACK, opts: SYN_OPTS, win: 65160 });
    expect(f.state).toBe('SYN_RECV');
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1, flags: ACK, win: 509 });
    expect(f.state).toBe('ESTABLISHED');
    expect(f.assured).toBe(true);
  });

  it('RST in window closes (10 s); a RST answering the SYN removes the entry at once', () => {
    const f = new Flow();
    f.handshake();
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1, flags: RST | ACK, win: 0 });
    expect(f.state).toBe('CLOSE');
    expect(f.left).toBe(10);
    const g = new Flow();
    g.c({ seq: ISN_C, flags: SYN, win: 64240 });
    expect(g.r.ct.count).toBe(1);
    g.s({ seq: 0, ack: ISN_C + 1, flags: RST | ACK, win: 0 });
    expect(g.info).toBe(IP_CT_ESTABLISHED_REPLY);
    expect(g.r.ct.count).toBe(0);
  });

  it('RST out of window is INVALID and leaves the state alone', () => {
    const f = new Flow();
    f.handshake();
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1, flags: ACK, win: 509 });
    const invalid = f.r.ct.stats.invalid;
    // Below what the client has acked: RFC 5961 blind reset.
    f.s({ seq: ISN_S - 100000, flags: RST, win: 0 });
    expect(f.info).toBe(-1);
    expect(f.r.ct.stats.invalid).toBe(invalid + 1);
    expect(f.state).toBe('ESTABLISHED');
    // Far above the window: the sequence check fails.
    f.s({ seq: ISN_S + 50_000_000, flags: RST, win: 0 });
    expect(f.info).toBe(-1);
    expect(f.state).toBe('ESTABLISHED');
  });

  it('out-of-window data is INVALID with be_liberal 0 and accepted with be_liberal 1', () => {
    const f = new Flow();
    f.handshake();
    // The server advertised 65160 << 7; far beyond that is over the upper bound.
    const far = ISN_C + 1 + 200_000_000;
    f.c({ seq: far, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 });
    expect(f.info).toBe(-1);
    // ACK of data never sent is invalid too.
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1 + 5_000_000, flags: ACK, win: 509 });
    expect(f.info).toBe(-1);
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_be_liberal', '1');
    f.c({ seq: far, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 });
    expect(f.info).toBe(IP_CT_ESTABLISHED);
    expect(f.state).toBe('ESTABLISHED');
  });

  it('loose 1 picks up a connection mid-stream (short timeout until a reply); loose 0 does not', () => {
    const f = new Flow();
    f.c({ seq: 777, ack: 999, flags: ACK | PSH, win: 500, data: 50 });
    expect(f.state).toBe('ESTABLISHED');
    expect(f.info).toBe(IP_CT_NEW);
    expect(f.left).toBe(300);
    expect(f.assured).toBe(false);
    f.s({ seq: 999, ack: 827, flags: ACK, win: 500 });
    expect(f.entry!.status & IPS_SEEN_REPLY).not.toBe(0);
    f.c({ seq: 827, ack: 999, flags: ACK, win: 500 });
    expect(f.assured).toBe(true);
    expect(f.left).toBe(432000);
    const g = new Flow();
    g.r.sysctl.set('net.netfilter.nf_conntrack_tcp_loose', '0');
    g.c({ seq: 777, ack: 999, flags: ACK | PSH, win: 500, data: 50 });
    expect(g.info).toBe(-1);
    expect(g.r.ct.count).toBe(0);
  });

  it('a first packet that is not a SYN and not an ACK (FIN alone, SYN-ACK) opens nothing', () => {
    const f = new Flow();
    f.c({ seq: 1, ack: 1, flags: SYN | ACK, win: 500 });
    expect(f.info).toBe(-1);
    f.c({ seq: 1, ack: 1, flags: FIN | ACK, win: 500 });
    expect(f.info).toBe(-1);
    expect(f.r.ct.count).toBe(0);
  });

  it('invalid flag combinations (tcp_error) are INVALID', () => {
    const f = new Flow();
    f.handshake();
    for (const flags of [SYN | FIN, SYN | RST, FIN, 0, FIN | URG, SYN | FIN | ACK | RST | URG]) {
      f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags, win: 502 });
      expect(f.info).toBe(-1);
    }
    // PSH/ECE/CWR are always allowed on top of a valid combination.
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK | PSH | 0xc0, win: 502 });
    expect(f.info).toBe(IP_CT_ESTABLISHED);
  });

  it('a bad checksum in PREROUTING is INVALID (nf_conntrack_checksum 1), not with 0', () => {
    const f = new Flow();
    f.handshake();
    const p = tcp(C, CP, S, SP, { seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK, win: 502 });
    p.buf[p.l3 + 20 + 16] ^= 0xff;
    f.r.forward(p);
    expect(p.ct).toBeNull();
    f.r.sysctl.set('net.netfilter.nf_conntrack_checksum', '0');
    const q = tcp(C, CP, S, SP, { seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK, win: 502 });
    q.buf[q.l3 + 20 + 16] ^= 0xff;
    f.r.forward(q);
    expect(q.ct).toBe(f.entry);
  });

  it('retransmissions beyond max_retrans drop the timeout to timeout_max_retrans (300 s)', () => {
    const f = new Flow();
    f.handshake();
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 });
    f.s({ seq: ISN_S + 1, ack: ISN_C + 101, flags: ACK, win: 509 });
    expect(f.left).toBe(432000);
    // Unacked data keeps the unacknowledged timeout; make it long to see max_retrans apart.
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_unacknowledged', '1000');
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_max_retrans', '77');
    const seg = { seq: ISN_C + 101, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 };
    f.c(seg);
    expect(f.left).toBe(1000);
    f.c(seg);
    f.c(seg);
    expect(f.left).toBe(1000);
    // The third repeat reaches max_retrans (3).
    f.c(seg);
    expect(f.entry!.tcp!.retrans).toBe(3);
    expect(f.left).toBe(77);
  });

  it('SYN retransmissions do not renew the SYN_SENT timeout', () => {
    const f = new Flow();
    f.c({ seq: ISN_C, flags: SYN, win: 64240 });
    f.r.time.advance(60_000);
    f.c({ seq: ISN_C, flags: SYN, win: 64240 });
    expect(f.state).toBe('SYN_SENT');
    expect(f.left).toBe(60);
    f.r.time.advance(61_000);
    expect(f.r.ct.count).toBe(0);
  });

  it('the state timeouts follow their sysctls', () => {
    const f = new Flow();
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_syn_sent', '11');
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_syn_recv', '12');
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_timeout_established', '13');
    f.c({ seq: ISN_C, flags: SYN, opts: SYN_OPTS, win: 64240 });
    expect(f.left).toBe(11);
    f.s({ seq: ISN_S, ack: ISN_C + 1, flags: SYN | ACK, opts: SYN_OPTS, win: 65160 });
    expect(f.left).toBe(12);
    f.c({ seq: ISN_C + 1, ack: ISN_S + 1, flags: ACK, win: 502 });
    expect(f.left).toBe(13);
    f.r.time.advance(14_000);
    expect(f.r.ct.count).toBe(0);
  });

  it('a SYN in ESTABLISHED is ignored (accepted, state kept); the SYN-ACK answering it resyncs', () => {
    const f = new Flow();
    f.handshake();
    const e = f.entry!;
    f.c({ seq: 9_000_000, flags: SYN, opts: SYN_OPTS, win: 64240 });
    expect(f.entry).toBe(e);
    expect(f.info).toBe(IP_CT_ESTABLISHED);
    expect(f.state).toBe('ESTABLISHED');
    f.s({ seq: 123, ack: 9_000_001, flags: SYN | ACK, opts: SYN_OPTS, win: 65160 });
    expect(f.state).toBe('SYN_RECV');
  });

  it('nf_conntrack_log_invalid 6 logs invalid TCP packets with Linux\'s reason', () => {
    const lines: string[] = [];
    const log = { info: (_o: unknown, m: string) => lines.push(m), warn: () => {}, error: () => {}, debug: () => {} };
    const r = new CtRig({ logger: log as never });
    const seg = (s: Seg) => tcp(C, CP, S, SP, s);
    r.forward(seg({ seq: ISN_C, flags: SYN, win: 64240 }));
    r.forward(seg({ seq: ISN_C + 1, ack: 5, flags: FIN | ACK, win: 64240 }));
    expect(lines).toEqual([]);
    r.sysctl.set('net.netfilter.nf_conntrack_log_invalid', '6');
    r.forward(seg({ seq: ISN_C + 1, ack: 5, flags: FIN | ACK, win: 64240 }));
    r.forward(seg({ seq: ISN_C + 1, ack: 5, flags: SYN | FIN, win: 64240 }));
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(/^nf_ct_proto_6: packet \(index 2\) in dir 0 invalid, state SYN_SENT IN= OUT= SRC=10\.0\.0\.1 DST=10\.0\.1\.2 /);
    expect(lines[1]).toMatch(/^nf_ct_proto_6: invalid tcp flag combination IN=/);
  });

  it('tcp_ignore_invalid_rst lets a RST below the acked sequence through; tcp_no_window_check any window', () => {
    const f = new Flow();
    f.handshake();
    f.s({ seq: ISN_S + 1, ack: ISN_C + 1, flags: ACK, win: 509 });
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_no_window_check', '1');
    f.c({ seq: ISN_C + 1 + 200_000_000, ack: ISN_S + 1, flags: ACK | PSH, win: 502, data: 100 });
    expect(f.info).toBe(IP_CT_ESTABLISHED);
    f.r.sysctl.set('net.netfilter.nf_conntrack_tcp_ignore_invalid_rst', '1');
    f.s({ seq: ISN_S - 100000, flags: RST, win: 0 });
    expect(f.info).toBe(IP_CT_ESTABLISHED_REPLY);
    expect(f.r.sysctl.get('net.nf_conntrack_max')).toBe(262144);
  });
});
