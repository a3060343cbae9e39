import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SS_ALL, SS_CONN, SsState, parseSsFilter, runSsFilter, scanState, filterWords, type FilterContext, type SsFilter } from '../../src/control/ss-filter.js';
import { cG, formatSsTable, parseSsArgs, printMsTimer, SsExit, type SsLine } from '../../src/control/ss.js';
import { ServicesDb } from '../../src/control/etc-services.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/ss');

const SERVICES = new ServicesDb(['echo 7/tcp', 'echo 7/udp', 'ssh 22/tcp', 'domain 53/tcp', 'domain 53/udp', 'odd 99/udp', 'odd 98/tcp'].join('\n'));
const CTX: FilterContext = { tcp: true, udp: true, servicePort: (n, p) => SERVICES.port(n, p) };

const ip = (s: string): number => s.split('.').reduce((a, b) => a * 256 + Number(b), 0) >>> 0;
const sock = (l: string, lp: number, r: string, rp: number) => ({ laddr: ip(l), lport: lp, raddr: ip(r), rport: rp });
const EPH = (p: number): boolean => p >= 32768 && p <= 60999;

function matches(expr: string, s: ReturnType<typeof sock>, ctx = CTX): boolean {
  const f = parseSsFilter([expr], ctx) as SsFilter;
  return runSsFilter(f, s, EPH);
}

describe('ss filter expressions (ssfilter.y, parse_hostcond, run_ssfilter)', () => {
  const est = sock('10.0.0.2', 7, '10.0.0.1', 41000);
  const out = sock('10.0.0.2', 40000, '192.168.1.5', 22);

  it('sport and dport with = and every spelling of the comparisons', () => {
    expect(matches('sport = :7', est)).toBe(true);
    expect(matches('sport = 7', est)).toBe(true);
    expect(matches('sport == :7', est)).toBe(true);
    expect(matches('sport eq :7', est)).toBe(true);
    expect(matches('sport :7', est)).toBe(true);
    expect(matches('sport = :8', est)).toBe(false);
    expect(matches('dport = :41000', est)).toBe(true);
    expect(matches('dport != :41000', est)).toBe(false);
    expect(matches('dport ne :22', est)).toBe(true);
    expect(matches('sport > :1024', out)).toBe(true);
    expect(matches('sport gt :1024', est)).toBe(false);
    expect(matches('sport < :1024', est)).toBe(true);
    expect(matches('sport lt :7', est)).toBe(false);
    expect(matches('sport >= :7', est)).toBe(true);
    expect(matches('sport geq :8', est)).toBe(false);
    expect(matches('dport <= :22', out)).toBe(true);
    expect(matches('dport le :21', out)).toBe(false);
    expect(matches('sport = 0x7', est)).toBe(true);
  });

  it('port names from the services database, for the tables shown', () => {
    expect(matches('dport = :ssh', out)).toBe(true);
    expect(matches('sport = :echo', est)).toBe(true);
    expect(() => parseSsFilter(['sport = :odd'], CTX)).toThrow(/ambiguous port "odd"/);
    expect(matches('sport = :odd', sock('1.1.1.1', 98, '2.2.2.2', 1), { ...CTX, udp: false })).toBe(true);
    expect(() => parseSsFilter(['dport = :nosuch'], CTX)).toThrow(/"nosuch" does not look like a port\.\nCannot parse dst\/src address\./);
  });

  it('src and dst: address, prefix, port, any', () => {
    expect(matches('src 10.0.0.2', est)).toBe(true);
    expect(matches('src = 10.0.0.2:7', est)).toBe(true);
    expect(matches('src 10.0.0.2:8', est)).toBe(false);
    expect(matches('dst 10.0.0.0/24', est)).toBe(true);
    expect(matches('dst 10/8', est)).toBe(true);
    expect(matches('dst 192.168.0.0/16', est)).toBe(false);
    expect(matches('dst 192.168.1.5:ssh', out)).toBe(true);
    expect(matches('dst *:22', out)).toBe(true);
    expect(matches('dst :22', out)).toBe(true);
    expect(matches('src *', est)).toBe(true);
    expect(matches('src 0.0.0.0', est)).toBe(false);
    expect(matches('src 0.0.0.0', sock('0.0.0.0', 7, '0.0.0.0', 0))).toBe(true);
    expect(matches('dst inet:10.0.0.1', est)).toBe(true);
    expect(matches('dst [::1]:22', out)).toBe(false);
    expect(() => parseSsFilter(['dst', 'example.com'], CTX)).toThrow(/an inet prefix is expected rather than "example.com"/);
    expect(() => parseSsFilter(['dst', '10.0.0.1/33'], CTX)).toThrow(/inet prefix is expected/);
  });

  it('not, and, or, juxtaposition and parentheses, left to right', () => {
    expect(matches('( sport = :7 or dport = :7 )', est)).toBe(true);
    expect(matches('! sport = :7', est)).toBe(false);
    expect(matches('not sport = :7', out)).toBe(true);
    expect(matches('sport = :7 dport = :41000', est)).toBe(true);
    expect(matches('sport = :7 and dport = :1', est)).toBe(false);
    expect(matches('sport = :7 && dport = :41000', est)).toBe(true);
    expect(matches('sport = :1 || dport = :41000', est)).toBe(true);
    // No precedence: (a or b) and c.
    expect(matches('sport = :7 or dport = :1 and dport = :2', est)).toBe(false);
    expect(matches('sport = :7 or ( dport = :1 and dport = :2 )', est)).toBe(true);
    expect(matches('autobound', out)).toBe(true);
    expect(matches('autobound', est)).toBe(false);
  });

  it('words are split again on blanks; a backslash escapes', () => {
    expect(filterWords(['sport = :7', 'or', ' dport\\ x '])).toEqual(['sport', '=', ':7', 'or', 'dport x']);
    expect(parseSsFilter([], CTX)).toBeNull();
    expect(parseSsFilter(['sport', '=', ':7'], CTX)).toEqual({ op: 'src', cond: { addr: 0, plen: 0, port: 7, v6: false } });
  });

  it('syntax errors as bison reports them; unsupported conditions named', () => {
    for (const bad of ['sport', '( sport = :7', 'sport = :7 )', '10.0.0.1', 'src != 1.2.3.4', 'and sport = :7']) {
      let err: unknown;
      try {
        parseSsFilter([bad], CTX);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toMatchObject({ code: 255, usage: true, message: 'ss: bison bellows (while parsing filter): "syntax error!" Sorry.' });
    }
    expect(() => parseSsFilter(['dev', 'eth0'], CTX)).toThrow(/"dev" condition is not supported/);
    expect(() => parseSsFilter(['src', 'unix:/run/x'], CTX)).toThrow(/"unix:" addresses are not supported/);
  });

  it('state names and groups (scan_state)', () => {
    expect(scanState('established')).toBe(1 << SsState.ESTABLISHED);
    expect(scanState('ESTABLISHED')).toBe(1 << SsState.ESTABLISHED);
    expect(scanState('syn-rcv')).toBe(1 << SsState.SYN_RECV);
    expect(scanState('closed')).toBe(1 << SsState.CLOSE);
    expect(scanState('unconnected')).toBe(1 << SsState.CLOSE);
    expect(scanState('listening')).toBe(1 << SsState.LISTEN);
    expect(scanState('time-wait')).toBe(1 << SsState.TIME_WAIT);
    expect(scanState('all')).toBe(SS_ALL);
    expect(scanState('connected')).toBe(SS_ALL & ~((1 << SsState.CLOSE) | (1 << SsState.LISTEN)));
    expect(scanState('synchronized')).toBe(SS_ALL & ~((1 << SsState.CLOSE) | (1 << SsState.LISTEN) | (1 << SsState.SYN_SENT)));
    expect(scanState('bucket')).toBe((1 << SsState.SYN_RECV) | (1 << SsState.TIME_WAIT));
    expect(scanState('big')).toBe(SS_ALL & ~((1 << SsState.SYN_RECV) | (1 << SsState.TIME_WAIT)));
    expect(scanState('listen')).toBeNull();
  });
});

describe('ss options (getopt_long, filter defaults)', () => {
  const p = (...a: string[]) => parseSsArgs(a, SERVICES);
  const exit = (...a: string[]) => {
    try {
      parseSsArgs(a, SERVICES);
    } catch (e) {
      if (e instanceof SsExit) return e.result;
      throw e;
    }
    throw new Error('no exit');
  };

  it('tables and states decide the Netid and State columns', () => {
    expect(p()).toMatchObject({ tcp: true, udp: true, netidColumn: true, stateColumn: true, states: SS_CONN });
    expect(p('-t')).toMatchObject({ tcp: true, udp: false, netidColumn: false, states: SS_CONN });
    expect(p('-u')).toMatchObject({ udp: true, tcp: false, states: 1 << SsState.ESTABLISHED, stateColumn: false });
    expect(p('-tu', '-a')).toMatchObject({ tcp: true, udp: true, netidColumn: true, states: SS_ALL });
    expect(p('-tl')).toMatchObject({ states: (1 << SsState.LISTEN) | (1 << SsState.CLOSE), stateColumn: true });
    expect(p('-t', 'state', 'established')).toMatchObject({ states: 1 << SsState.ESTABLISHED, stateColumn: false });
    expect(p('-t', 'state', 'established', 'state', 'fin-wait-1').states).toBe((1 << SsState.ESTABLISHED) | (1 << SsState.FIN_WAIT1));
    expect(p('-t', 'exclude', 'listening', '-a').states).toBe(SS_ALL & ~(1 << SsState.LISTEN));
    expect(p('-4')).toMatchObject({ tcp: true, udp: true, netidColumn: true });
    expect(p('-A', 'tcp,udp')).toMatchObject({ tcp: true, udp: true, states: SS_CONN });
    expect(p('--tcp', '--listening', '--num', '--info', '--memory', '--extended', '--no-header', '--oneline')).toMatchObject({
      tcp: true,
      numeric: true,
      info: true,
      mem: true,
      details: true,
      showOptions: true,
      header: false,
      oneline: true,
    });
  });

  it('options anywhere (GNU permutation), then the filter', () => {
    const o = p('sport', '=', ':7', '-tn');
    expect(o.tcp).toBe(true);
    expect(o.filter).toEqual({ op: 'src', cond: { addr: 0, plen: 0, port: 7, v6: false } });
  });

  it('-s alone is the summary only', () => {
    expect(p('-s').summaryOnly).toBe(true);
    expect(p('-s', '-t').summaryOnly).toBe(false);
  });

  it('errors and refusals with ss exit codes', () => {
    expect(exit('-q')).toMatchObject({ code: 255, stderr: expect.stringMatching(/^ss: invalid option -- 'q'\nUsage: ss/) });
    expect(exit('--bogus')).toMatchObject({ code: 255, stderr: expect.stringMatching(/^ss: unrecognized option '--bogus'/) });
    expect(exit('-t', 'state', 'bogus')).toEqual({ code: 255, stdout: '', stderr: 'ss: wrong state name: bogus\n' });
    expect(exit('-x')).toMatchObject({ code: 1, stderr: expect.stringMatching(/-x \(Unix domain sockets\) is not supported/) });
    expect(exit('-t', 'dst', 'nowhere.invalid')).toMatchObject({ code: 1 });
    expect(exit('-t', 'sport', '=')).toMatchObject({ code: 255 });
    expect(exit('-h')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^Usage: ss/) });
    // A state filter that ends up empty leaves the tables' own states, as in ss.
    expect(p('-t', 'exclude', 'all').states).toBe(SS_CONN);
  });
});

describe('number formats', () => {
  it("C's %g", () => {
    expect(cG(0.036)).toBe('0.036');
    expect(cG(204)).toBe('204');
    expect(cG(1.8374)).toBe('1.8374');
    expect(cG(123456789)).toBe('1.23457e+08');
    expect(cG(0.00001234)).toBe('1.234e-05');
    expect(cG(72.75, 3)).toBe('72.8');
    expect(cG(72.25, 3)).toBe('72.2'); // ties to even on the exact binary value
    expect(cG(999.95, 3)).toBe('1e+03');
    expect(cG(100, 3)).toBe('100');
  });

  it('print_ms_timer', () => {
    expect(printMsTimer(59_000)).toBe('59sec');
    expect(printMsTimer(7_140_000)).toBe('119min');
    expect(printMsTimer(200)).toBe('200ms');
    expect(printMsTimer(1_234)).toBe('1.234ms');
    expect(printMsTimer(65_000)).toBe('1min5sec');
    expect(printMsTimer(0)).toBe('');
  });
});

/**
 * Lines the kernel's ss printed (test/fixtures/ss, captured from ss 6.1 on
 * this kind of machine), taken apart into their fields and laid out again:
 * the result must be the same bytes.
 */
function reparse(text: string, netid: boolean, state: boolean, header: boolean): SsLine[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (header) lines.shift();
  const re = new RegExp(`^${netid ? '(\\S+) +' : '()'}${state ? '(\\S+) +' : '()'}(\\d+) +(\\d+) +(\\S+):(\\S+) +(\\S+):(\\S+)(.*)$`);
  const out: SsLine[] = [];
  for (const l of lines) {
    if (l.startsWith('\t')) {
      out[out.length - 1].ext += '\n' + l.replace(/ +$/, '');
      continue;
    }
    const m = re.exec(l);
    if (!m) throw new Error(`cannot read: ${l}`);
    const rest = m[9].trim();
    out.push({ netid: m[1], state: m[2], rq: Number(m[3]), wq: Number(m[4]), local: m[5], lport: m[6], peer: m[7], rport: m[8], ext: rest ? ' ' + rest : '' });
  }
  return out;
}

describe("ss's layout, byte for byte against the kernel's ss", () => {
  const cases: [string, { netid: boolean; state: boolean; header: boolean }, number | null][] = [
    ['tan.txt', { netid: false, state: true, header: true }, null],
    ['ta.txt', { netid: false, state: true, header: true }, null],
    ['tln.txt', { netid: false, state: true, header: true }, null],
    ['tuanH.txt', { netid: true, state: true, header: false }, null],
    ['tanm.txt', { netid: false, state: true, header: true }, null],
    ['tn-estab.txt', { netid: false, state: false, header: true }, null],
    ['ua.txt', { netid: false, state: true, header: true }, null],
    ['tni.txt', { netid: false, state: true, header: true }, null],
    ['tw-tanio.txt', { netid: false, state: true, header: true }, null],
    ['tw-tane.txt', { netid: false, state: true, header: true }, null],
    ['tw-tanm.txt', { netid: false, state: true, header: true }, null],
    ['tty100-tan.txt', { netid: false, state: true, header: true }, 100],
    ['tty60-tan.txt', { netid: false, state: true, header: true }, 60],
    ['tty100-tni.txt', { netid: false, state: true, header: true }, 100],
  ];
  for (const [file, cols, width] of cases) {
    it(`${file}${width !== null ? ` (terminal of ${width} columns)` : ''}`, () => {
      const text = fs.readFileSync(path.join(FIX, file), 'utf8');
      expect(formatSsTable(reparse(text, cols.netid, cols.state, cols.header), cols, width)).toBe(text);
    });
  }

  it('only a header when there are no sockets; nothing at all with -H', () => {
    expect(formatSsTable([], { netid: false, state: true, header: true })).toBe('State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n');
    expect(formatSsTable([], { netid: true, state: true, header: true })).toBe('Netid State Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n');
    expect(formatSsTable([], { netid: false, state: true, header: false })).toBe('');
  });
});
