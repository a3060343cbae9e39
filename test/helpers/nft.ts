import { Hooks, VERDICT_ACCEPT, type Verdict } from '../../src/ip/hooks.js';
import type { Interface } from '../../src/link/interface.js';
import { Packet } from '../../src/packet/packet.js';
import { Ruleset } from '../../src/netfilter/ruleset.js';
import type { CtProvider, NatProvider, NatRange, NfEnv } from '../../src/netfilter/compile.js';
import type { HookFn } from '../../src/ip/hooks.js';
import type { BaseChainSpec, Expr, Field, HookName, LogLevel, Rhs, VerdictAst } from '../../src/netfilter/ast.js';
import { concat, ipHeader } from './frames.js';
import { parseIp4 } from '../../src/wire/addr.js';

/** A programmatic builder for rule expressions (until the nft parser exists). */
export const f = {
  ip: (field: Extract<Field, { proto: 'ip' }>['field']): Field => ({ kind: 'payload', proto: 'ip', field }),
  tcp: (field: Extract<Field, { proto: 'tcp' }>['field']): Field => ({ kind: 'payload', proto: 'tcp', field }),
  udp: (field: Extract<Field, { proto: 'udp' }>['field']): Field => ({ kind: 'payload', proto: 'udp', field }),
  th: (field: 'sport' | 'dport'): Field => ({ kind: 'payload', proto: 'th', field }),
  icmp: (field: Extract<Field, { proto: 'icmp' }>['field']): Field => ({ kind: 'payload', proto: 'icmp', field }),
  meta: (key: Extract<Field, { kind: 'meta' }>['key']): Field => ({ kind: 'meta', key }),
  ct: (key: Extract<Field, { kind: 'ct' }>['key']): Field => ({ kind: 'ct', key }),
};

export function ip(s: string): number {
  const v = parseIp4(s);
  if (v === null) throw new Error(s);
  return v;
}

export const eq = (left: Field, value: number): Expr => ({ kind: 'match', left, op: 'eq', right: { kind: 'value', value } });
export const cmp = (left: Field, op: 'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge', right: Rhs | number, mask?: number): Expr => ({
  kind: 'match',
  left,
  op,
  mask,
  right: typeof right === 'number' ? { kind: 'value', value: right } : right,
});
export const verdict = (v: VerdictAst): Expr => ({ kind: 'verdict', verdict: v });
export const accept: Expr = verdict({ kind: 'accept' });
export const drop: Expr = verdict({ kind: 'drop' });
export const ret: Expr = verdict({ kind: 'return' });
export const cont: Expr = verdict({ kind: 'continue' });
export const jump = (chain: string): Expr => verdict({ kind: 'jump', chain });
export const goto = (chain: string): Expr => verdict({ kind: 'goto', chain });
export const counter: Expr = { kind: 'counter' };

export function base(hook: HookName, priority = 0, policy: 'accept' | 'drop' = 'accept'): BaseChainSpec {
  return { type: 'filter', hook, priority, policy };
}

export interface TestEnv extends NfEnv {
  t: number;
  rejects: { kind: 'icmp' | 'tcp'; type?: number; code?: number }[];
  logs: { prefix: string; level: LogLevel }[];
  rand: number[];
}

export function testRuleset(): { rs: Ruleset; hooks: Hooks; env: TestEnv } {
  const hooks = new Hooks();
  const env: TestEnv = {
    t: 1000,
    rejects: [],
    logs: [],
    rand: [],
    now() {
      return env.t;
    },
    random() {
      return env.rand.length > 0 ? env.rand.shift()! : 0;
    },
    rejectIcmp(_p, type, code) {
      env.rejects.push({ kind: 'icmp', type, code });
    },
    rejectTcpReset() {
      env.rejects.push({ kind: 'tcp' });
    },
    log(prefix, level) {
      env.logs.push({ prefix, level });
    },
    ct: null,
    nat: null,
    // No routes: every address unicast, no device for any lookup.
    fib: { addrType: () => 1, routeDev: () => null },
  };
  return { rs: new Ruleset(hooks, env), hooks, env };
}

export const eth0 = { name: 'eth0', index: 2 } as unknown as Interface;
export const wlan1 = { name: 'wlan1', index: 3 } as unknown as Interface;

export function tcpDatagram(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  opts: { flags?: number; data?: number; ttl?: number; tos?: number } = {},
): Uint8Array {
  const t = new Uint8Array(20 + (opts.data ?? 0));
  t[0] = sport >> 8;
  t[1] = sport & 0xff;
  t[2] = dport >> 8;
  t[3] = dport & 0xff;
  t[7] = 1; // seq 1
  t[12] = 5 << 4;
  t[13] = opts.flags ?? 0x02;
  t[14] = 0xff;
  t[15] = 0xff;
  return withIp(ipHeader(src, dst, 6, t.length), t, opts);
}

export function udpDatagram(src: string, dst: string, sport: number, dport: number, opts: { data?: number; ttl?: number; tos?: number } = {}): Uint8Array {
  const u = new Uint8Array(8 + (opts.data ?? 0));
  u[0] = sport >> 8;
  u[1] = sport & 0xff;
  u[2] = dport >> 8;
  u[3] = dport & 0xff;
  u[4] = u.length >> 8;
  u[5] = u.length & 0xff;
  return withIp(ipHeader(src, dst, 17, u.length), u, opts);
}

function withIp(h: Uint8Array, payload: Uint8Array, opts: { ttl?: number; tos?: number }): Uint8Array {
  if (opts.ttl !== undefined) h[8] = opts.ttl;
  if (opts.tos !== undefined) h[1] = opts.tos;
  return concat(h, payload);
}

/** A packet as the IP layer hands it to a hook: data and l3 at the IP header. */
export function pkt(datagram: Uint8Array): Packet {
  const p = Packet.copyOf(datagram);
  p.l3 = p.start;
  return p;
}

export function runInput(hooks: Hooks, datagram: Uint8Array | Packet, inIf: Interface | null = eth0): Verdict {
  return hooks.input.run(datagram instanceof Packet ? datagram : pkt(datagram), inIf, null);
}

export const ACCEPTED = VERDICT_ACCEPT;

/** A NatProvider that records what the chain engine asks of it. */
export interface FakeNat extends NatProvider {
  calls: { kind: number; range: NatRange; inIf: string | null; outIf: string | null }[];
  chains: { hook: string; priority: number; fn: HookFn; live: boolean }[];
  /** What setup returns. */
  result: boolean;
}

export function fakeNat(): FakeNat {
  const n: FakeNat = {
    calls: [],
    chains: [],
    result: true,
    setup(_p, kind, range, inIf, outIf) {
      n.calls.push({ kind, range: { ...range }, inIf: inIf?.name ?? null, outIf: outIf?.name ?? null });
      return n.result;
    },
    registerChain(hook, priority, fn) {
      const c = { hook, priority, fn, live: true };
      n.chains.push(c);
      return () => {
        c.live = false;
      };
    },
  };
  return n;
}

/** A CtProvider over one fake entry per packet (`pkt.ct`), recording setNeeded calls. */
export interface FakeCtEntry {
  state: number;
  status: number;
  mark: number;
  dir: number;
  tuple: number[][];
  expires: number;
  alive: boolean;
}

export interface FakeCt extends CtProvider {
  needed: [string, boolean][];
}

export function fakeCt(): FakeCt {
  const e = (p: Packet): FakeCtEntry | null => (p.ct !== null && typeof p.ct === 'object' && 'tuple' in p.ct ? (p.ct as unknown as FakeCtEntry) : null);
  const c: FakeCt = {
    needed: [],
    state: (p) => e(p)?.state ?? 1,
    status: (p) => e(p)?.status ?? -1,
    mark: (p) => e(p)?.mark ?? -1,
    direction: (p) => e(p)?.dir ?? -1,
    setMark(p, m) {
      const x = e(p);
      if (x !== null) x.mark = m;
    },
    tuple: (p, dir, field) => e(p)?.tuple[dir][field] ?? -1,
    expiration: (p) => e(p)?.expires ?? -1,
    entry: (p) => e(p),
    alive: (x) => (x as FakeCtEntry).alive,
    setNeeded(who, on) {
      c.needed.push([who, on]);
    },
  };
  return c;
}

export function ctEntry(over: Partial<FakeCtEntry> = {}): FakeCtEntry {
  return {
    state: 8,
    status: 0,
    mark: 0,
    dir: 0,
    tuple: [
      [0, 0, 0, 0, 6],
      [0, 0, 0, 0, 6],
    ],
    expires: 100,
    alive: true,
    ...over,
  };
}
