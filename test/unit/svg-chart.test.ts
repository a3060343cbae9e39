/**
 * The SVG line chart writer: well-formed XML (every tag closed and nested,
 * attributes quoted, text escaped), ticks at 1/2/5 steps, and every point
 * scaled into the plot area of the view box, the extremes on its edges.
 */
import { describe, expect, it } from 'vitest';
import { MARGIN, lineChart, niceTicks, axisRange, tickLabel } from '../../src/services/svg-chart.js';
import { tcpTraceChart } from '../../src/services/tcp-chart.js';
import { traceSvg, parseTraceCsv } from '../../src/control/trace-files.js';
import { TRACE_COLUMNS, sampleToCsv, type TcpTraceSample } from '../../src/tcp/trace.js';

/** Checks XML well-formedness: one root, nesting, quoted attributes, escaped text. Returns the root's name. */
function checkXml(xml: string): string {
  const stack: string[] = [];
  let root = '';
  let i = 0;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(text)) throw new Error(`unescaped & in text: ${text}`);
    if (text.trim() !== '' && stack.length === 0) throw new Error(`text outside the root: ${text}`);
    if (lt < 0) break;
    const gt = xml.indexOf('>', lt);
    if (gt < 0) throw new Error('unclosed tag');
    const tag = xml.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`</${name}> does not close the open tag`);
    } else {
      const m = /^([A-Za-z][-\w:.]*)((?:\s+[A-Za-z_:][-\w:.]*="[^"<]*")*)\s*(\/?)$/.exec(tag);
      if (m === null) throw new Error(`bad tag <${tag}>`);
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(m[2])) throw new Error(`unescaped & in <${tag}>`);
      if (stack.length === 0) {
        if (root !== '') throw new Error('two roots');
        root = m[1];
      }
      if (m[3] !== '/') stack.push(m[1]);
    }
    i = gt + 1;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('> <')}>`);
  return root;
}

function polylines(svg: string): [number, number][][] {
  return [...svg.matchAll(/<polyline points="([^"]+)" fill="none" stroke="(?!black)[^"]+" stroke-width="1.5"\/>/g)].map((m) =>
    m[1].split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  );
}

describe('svg line chart', () => {
  it('ticks: 1, 2 or 5 times a power of ten, covering the range', () => {
    expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 0.7)).toEqual([0, 0.2, 0.4, 0.6]);
    expect(niceTicks(0, 1234)).toEqual([0, 500, 1000]);
    expect(axisRange([3, 87])).toEqual([0, 100]);
    expect(tickLabel(2_500_000)).toBe('2.5M');
    expect(tickLabel(0.30000000000000004)).toBe('0.3');
  });

  it('is well-formed XML with the text escaped', () => {
    const svg = lineChart({
      title: 'a <b> & "c"',
      xLabel: 'time (s)',
      leftLabel: 'cwnd',
      rightLabel: 'Mb/s',
      series: [
        { name: 'x&y', color: '#123456', axis: 'left', points: [[0, 1], [1, 2]] },
        { name: 'z', color: 'red', axis: 'right', points: [[0, 5], [1, NaN], [2, 7]] },
      ],
    });
    expect(checkXml(svg)).toBe('svg');
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(() => checkXml('<svg><g></svg>')).toThrow();
  });

  it('scales every point into the plot area, the extremes on its edges, each axis on its own scale', () => {
    const W = 600;
    const H = 300;
    const cwnd: [number, number][] = [];
    const tput: [number, number][] = [];
    for (let t = 0; t <= 50; t++) {
      cwnd.push([t / 10, 10 + ((t * 7) % 83)]);
      tput.push([t / 10, 0.5 + ((t * 13) % 41) * 100]);
    }
    const svg = lineChart({ title: 't', xLabel: 'x', leftLabel: 'l', rightLabel: 'r', width: W, height: H, series: [
      { name: 'cwnd', color: 'blue', axis: 'left', points: cwnd },
      { name: 'tput', color: 'red', axis: 'right', points: tput },
    ] });
    expect(svg).toMatch(new RegExp(`viewBox="0 0 ${W} ${H}"`));
    const [pc, pt] = polylines(svg);
    expect(pc).toHaveLength(cwnd.length);
    expect(pt).toHaveLength(tput.length);
    const left = MARGIN.left;
    const right = W - MARGIN.right;
    const top = MARGIN.top;
    const bottom = H - MARGIN.bottom;
    for (const [x, y] of [...pc, ...pt]) {
      expect(x).toBeGreaterThanOrEqual(left);
      expect(x).toBeLessThanOrEqual(right);
      expect(y).toBeGreaterThanOrEqual(top);
      expect(y).toBeLessThanOrEqual(bottom);
    }
    // x from the first to the last sample spans the plot.
    expect(pc[0][0]).toBe(left);
    expect(pc.at(-1)![0]).toBe(right);
    // Linear in y: cwnd 0..100 on the left axis (max 92 -> 8 % below the top).
    const yOf = (v: number): number => bottom - (v / 100) * (bottom - top);
    cwnd.forEach(([, v], i) => expect(pc[i][1]).toBeCloseTo(yOf(v), 1));
    // The right axis has its own range (0..5000 for 0.5..4000.5).
    const yR = (v: number): number => bottom - (v / 5000) * (bottom - top);
    tput.forEach(([, v], i) => expect(pt[i][1]).toBeCloseTo(yR(v), 1));
  });

  it('draws a trace: cwnd, ssthresh and throughput, several connections stacked, from the CSV', () => {
    const s = (t: number, peer: string, cwnd: number): TcpTraceSample => ({
      t, local: '10.0.0.1:5201', peer, state: 'ESTAB', cwnd, ssthresh: t > 1 ? 20 : null, srttMs: 1.5, inflightBytes: cwnd * 1448,
      delivered: t * 100, bytesAcked: t * 1e6, bytesReceived: 0, retrans: 0, lost: 0, pacingRateBps: 0, deliveryRateBps: 0, throughputBps: 8e6,
    });
    const samples = [s(0, '10.0.0.2:1', 10), s(0, '10.0.0.2:2', 10), s(1, '10.0.0.2:1', 20), s(1, '10.0.0.2:2', 15), s(2, '10.0.0.2:1', 30), s(2, '10.0.0.2:2', 16)];
    const csv = [TRACE_COLUMNS.join(','), ...samples.map(sampleToCsv)].join('\n') + '\n';
    const back = parseTraceCsv(csv);
    expect(back).toEqual(samples);
    const svg = traceSvg(back);
    expect(checkXml(svg)).toBe('svg');
    expect(svg.match(/<g transform="translate\(0 (\d+)\)">/g)).toHaveLength(2);
    const one = tcpTraceChart(back.filter((x) => x.peer === '10.0.0.2:1'), 'one');
    // cwnd (3 points), ssthresh (known for one sample), throughput (from the second sample on).
    expect(polylines(one).map((p) => p.length)).toEqual([3, 1, 2]);
  });
});
