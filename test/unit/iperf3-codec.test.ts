import { describe, expect, it } from 'vitest';
import {
  COOKIE_SIZE,
  ControlReader,
  cookieText,
  cookiesEqual,
  defaultParams,
  encodeJson,
  makeCookie,
  paramsJson,
  parseParams,
  parseResults,
  resultsJson,
  serverErrorBytes,
  streamId,
} from '../../src/services/iperf3/protocol.js';
import { JsonObject, cjsonNumber, cjsonPrint, formatG } from '../../src/control/cjson.js';
import { cFixed, unitFormat } from '../../src/control/iperf3-report.js';
import { parseIperf3, Iperf3ArgError } from '../../src/control/iperf3.js';

/** The parameters Debian's iperf3 3.12 sent for `-c ... -t 2 -P 3 -R -l 64K` (read off the wire). */
const REAL_PARAMS =
  '{"tcp":true,"omit":0,"time":2,"num":0,"blockcount":0,"parallel":3,"reverse":true,"len":65536,"pacing_timer":1000,"client_version":"3.12"}';

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

describe('iperf3 control protocol codec', () => {
  it('makes cookies as iperf3 does: 36 characters of [a-z2-7] and a NUL', () => {
    const c = makeCookie();
    expect(c.length).toBe(COOKIE_SIZE);
    expect(c[36]).toBe(0);
    expect(cookieText(c)).toMatch(/^[a-z2-7]{36}$/);
    expect(cookiesEqual(c, c.slice())).toBe(true);
    expect(cookiesEqual(c, makeCookie())).toBe(false);
    // strcmp: what follows the NUL does not count.
    expect(cookiesEqual(bytes('abc\0xyz'), bytes('abc\0qqq'))).toBe(true);
  });

  it('reads a cookie, state bytes and length-prefixed JSON however the bytes are split', () => {
    const cookie = makeCookie();
    const json = encodeJson({ a: 1 });
    const stream = new Uint8Array([...cookie, 9, 0xff, 0xfe, ...json, 16]);
    for (let cut = 1; cut < stream.length; cut += 3) {
      const r = new ControlReader();
      const got: unknown[] = [];
      const drain = (): void => {
        for (;;) {
          if (got.length === 0) {
            const c = r.take(COOKIE_SIZE);
            if (c === null) return;
            got.push(cookieText(c));
          } else if (got.length >= 1 && got.length <= 3) {
            const s = r.takeState();
            if (s === null) return;
            got.push(s);
          } else if (got.length === 4) {
            const j = r.takeJson();
            if (j === undefined) return;
            got.push(j);
          } else {
            const s = r.takeState();
            if (s === null) return;
            got.push(s);
          }
        }
      };
      for (let i = 0; i < stream.length; i += cut) {
        r.push(stream.subarray(i, i + cut));
        drain();
      }
      expect(got).toEqual([cookieText(cookie), 9, -1, -2, { a: 1 }, 16]);
      expect(r.available).toBe(0);
    }
  });

  it('refuses absurd lengths and text that is not JSON', () => {
    const r = new ControlReader();
    r.push(new Uint8Array([0x7f, 0, 0, 0]));
    expect(r.takeJson()).toBeInstanceOf(Error);
    const r2 = new ControlReader();
    r2.push(new Uint8Array([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]));
    expect(r2.takeJson()).toBeInstanceOf(Error);
  });

  it('writes the parameters in send_parameters order, byte for byte as iperf3 3.12', () => {
    const p = defaultParams();
    p.time = 2;
    p.parallel = 3;
    p.reverse = true;
    p.len = 65536;
    const enc = encodeJson(paramsJson(p));
    expect(Buffer.from(enc.subarray(4)).toString()).toBe(REAL_PARAMS);
    expect(new DataView(enc.buffer).getUint32(0)).toBe(REAL_PARAMS.length);
  });

  it('reads the client parameters as get_parameters does', () => {
    const p = parseParams(JSON.parse(REAL_PARAMS));
    expect(p).toMatchObject({ protocol: 'tcp', time: 2, parallel: 3, reverse: true, bidirectional: false, len: 65536, clientVersion: '3.12' });
    // Flags count by presence; numbers are cJSON's valueint.
    expect(parseParams({ tcp: true, bidirectional: true, nodelay: false, time: 2.9 })).toMatchObject({ bidirectional: true, nodelay: true, time: 2 });
    expect(parseParams({ udp: true })).toEqual({ error: 131 });
    expect(parseParams({ tcp: true, parallel: 129 })).toEqual({ error: 6 });
    expect(parseParams({ tcp: true, len: 2 * 1024 * 1024 })).toEqual({ error: 7 });
    expect(parseParams({ tcp: true, time: 86401 })).toEqual({ error: 5 });
    expect(parseParams([1, 2])).toEqual({ error: 114 });
  });

  it('exchanges results with the keys get_results needs', () => {
    const r = {
      cpuUtil: [12.5, 2, 10.5] as [number, number, number],
      senderHasRetransmits: 1,
      congestionUsed: 'cubic',
      streams: [{ id: 1, bytes: 123456789, retransmits: 3, jitter: 0, errors: 0, packets: 0, startTime: 0, endTime: 2.000123 }],
    };
    const j = resultsJson(r);
    expect(Object.keys(j)).toEqual(['cpu_util_total', 'cpu_util_user', 'cpu_util_system', 'sender_has_retransmits', 'congestion_used', 'streams']);
    expect(parseResults(JSON.parse(JSON.stringify(j)))).toEqual(r);
    expect(parseResults({ cpu_util_total: 1, cpu_util_user: 1, cpu_util_system: 1, streams: [] })).toBeNull();
    expect(parseResults({ cpu_util_total: 1, cpu_util_user: 1, cpu_util_system: 1, sender_has_retransmits: 0, streams: [{ id: 1 }] })).toBeNull();
  });

  it('numbers streams 1, 3, 4, 5 like iperf_add_stream', () => {
    expect([0, 1, 2, 3].map(streamId)).toEqual([1, 3, 4, 5]);
  });

  it('sends SERVER_ERROR with the error number and errno', () => {
    expect([...serverErrorBytes(131, 0)]).toEqual([0xfe, 0, 0, 0, 131, 0, 0, 0, 0]);
  });
});

describe('iperf3 output', () => {
  it('prints numbers as cJSON does', () => {
    expect(cjsonNumber(5)).toBe('5');
    expect(cjsonNumber(3785359360)).toBe('3785359360');
    expect(cjsonNumber(1.000047)).toBe('1.000047');
    // A C float's duration, widened to double (from a real iperf3 -J run).
    expect(cjsonNumber(Math.fround(1.000047))).toBe('1.000046968460083');
    expect(cjsonNumber(30281452606.801983)).toBe('30281452606.801983');
    expect(formatG(1e-7, 15)).toBe('1e-07');
    expect(formatG(1.5e20, 15)).toBe('1.5e+20');
  });

  it('lays JSON out as cJSON_Print', () => {
    const top = new JsonObject()
      .add('start', new JsonObject().add('connected', [JsonObject.of({ socket: 5, local_host: '10.0.0.2' })]).add('version', 'x'))
      .add('intervals', [])
      .add('end', new JsonObject());
    expect(cjsonPrint(top)).toBe(
      '{\n\t"start":\t{\n\t\t"connected":\t[{\n\t\t\t\t"socket":\t5,\n\t\t\t\t"local_host":\t"10.0.0.2"\n\t\t\t}],\n\t\t"version":\t"x"\n\t},\n\t"intervals":\t[],\n\t"end":\t{\n\t}\n}',
    );
  });

  it('formats sizes and rates as unit_snprintf', () => {
    expect(unitFormat(3.52 * 1024 ** 3, 'A')).toBe('3.52 GByte');
    expect(unitFormat(114 * 1024 ** 2, 'A')).toBe(' 114 MByte');
    expect(unitFormat(2.5 * 1024 ** 2, 'A')).toBe('2.50 MByte');
    expect(unitFormat(30.2e9 / 8, 'a')).toBe('30.2 Gbit');
    expect(unitFormat(954e6 / 8, 'a')).toBe(' 954 Mbit');
    expect(unitFormat(0, 'a')).toBe('0.00 bit');
    expect(unitFormat(1000, 'A')).toBe('1000 Byte');
  });

  it('rounds ties to even like printf', () => {
    expect(cFixed(0.125, 2)).toBe('0.12');
    expect(cFixed(0.375, 2)).toBe('0.38');
    expect(cFixed(2.5, 0)).toBe('2');
    expect(cFixed(1.005, 2)).toBe('1.00'); // 1.005 is 1.00499999... in binary
    expect(cFixed(2.016, 2)).toBe('2.02');
  });
});

describe('tapstack iperf3 arguments', () => {
  it('takes iperf3 spellings', () => {
    const o = parseIperf3(['-c', '10.0.0.1', '-p', '5301', '-t5', '-P', '4', '-l', '64K', '-R', '-J']);
    expect(o).toMatchObject({ host: '10.0.0.1', port: 5301, json: true });
    expect(o.params).toMatchObject({ time: 5, parallel: 4, len: 65536, reverse: true });
    expect(parseIperf3(['--client=10.0.0.1', '--bidir', '--time', '2']).params).toMatchObject({ bidirectional: true, time: 2 });
  });

  it('refuses what iperf3 refuses, and what this client does not run', () => {
    const err = (...a: string[]): string => {
      try {
        parseIperf3(a);
      } catch (e) {
        if (e instanceof Iperf3ArgError) return e.message;
        throw e;
      }
      return 'no error';
    };
    expect(err('-c', '10.0.0.1', '-P', '200')).toBe('parameter error - number of parallel streams too large (maximum = 128)');
    expect(err('-c', '10.0.0.1', '-R', '--bidir')).toBe('parameter error - cannot be both reverse and bidirectional');
    expect(err('-c')).toBe("option requires an argument -- 'c'");
    expect(err('-c', '10.0.0.1', '--foo')).toBe("unrecognized option '--foo'");
    expect(err('-c', '10.0.0.1', '-u')).toContain('UDP tests not supported');
    expect(err('-t', '3')).toBe('parameter error - must either be a client (-c) or server (-s)');
  });
});
