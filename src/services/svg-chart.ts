/**
 * Line charts as SVG text, with no dependencies: one or two y axes (left and
 * right, each with its own scale), an x axis, ticks at 1/2/5 steps with their
 * labels, a legend, and each series as one polyline scaled into the view box.
 * Used by `tapstack trace tcp --svg`, the HTTP status page and the benchmark's plots.
 */

export interface ChartSeries {
  name: string;
  /** [x, y] points; x ascending. Non-finite y values break nothing: they are left out. */
  points: readonly (readonly [number, number])[];
  color: string;
  /** Which y axis the series is read against. */
  axis: 'left' | 'right';
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  leftLabel: string;
  rightLabel?: string;
  series: readonly ChartSeries[];
  width?: number;
  height?: number;
}

/** Plot area margins (px): room for the tick labels and axis titles. */
export const MARGIN = { left: 70, right: 70, top: 40, bottom: 50 };

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]);
}

/** Tick positions covering [lo, hi] with a 1, 2 or 5 times a power of ten step, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9) * step;
  for (let v = first; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return ticks;
}

/** The axis range: from 0 (or the lowest value if negative) to the highest tick at or above the data. */
export function axisRange(values: readonly number[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi === lo) hi = lo + 1;
  const ticks = niceTicks(lo, hi);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
}

/** A number as a tick label: short, no float noise. */
export function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return `${Number((v / 1e9).toPrecision(3))}G`;
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(4)));
}

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 800;
  const H = o.height ?? 400;
  const pw = W - MARGIN.left - MARGIN.right;
  const ph = H - MARGIN.top - MARGIN.bottom;
  const xs: number[] = [];
  const left: number[] = [];
  const right: number[] = [];
  for (const s of o.series)
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      xs.push(x);
      (s.axis === 'left' ? left : right).push(y);
    }
  let [x0, x1] = xs.length > 0 ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  const xTicks = niceTicks(x0, x1, 8).filter((t) => t >= x0 && t <= x1);
  const [l0, l1] = axisRange(left);
  const [r0, r1] = axisRange(right);
  const px = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number, axis: 'left' | 'right'): number => {
    const [a, b] = axis === 'left' ? [l0, l1] : [r0, r1];
    return MARGIN.top + ph - ((y - a) / (b - a)) * ph;
  };
  const f = (n: number): string => String(Math.round(n * 100) / 100);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(o.title)}</text>`);
  // Grid and ticks.
  const bottom = MARGIN.top + ph;
  for (const t of xTicks) {
    const x = f(px(t));
    out.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${bottom}" stroke="#e4e4e4"/>`);
    out.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" stroke="black"/>`);
    out.push(`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${escapeXml(tickLabel(t))}</text>`);
  }
  for (const t of niceTicks(l0, l1)) {
    if (t < l0 || t > l1) continue;
    const y = f(py(t, 'left'));
    out.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + pw}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left}" y2="${y}" stroke="black"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(tickLabel(t))}</text>`);
  }
  if (right.length > 0)
    for (const t of niceTicks(r0, r1)) {
      if (t < r0 || t > r1) continue;
      const y = f(py(t, 'right'));
      out.push(`<line x1="${MARGIN.left + pw}" y1="${y}" x2="${MARGIN.left + pw + 5}" y2="${y}" stroke="black"/>`);
      out.push(`<text x="${MARGIN.left + pw + 8}" y="${y}" dominant-baseline="middle">${escapeXml(tickLabel(t))}</text>`);
    }
  // Axes and their titles.
  out.push(`<polyline points="${MARGIN.left},${MARGIN.top} ${MARGIN.left},${bottom} ${MARGIN.left + pw},${bottom}" fill="none" stroke="black"/>`);
  if (right.length > 0) out.push(`<line x1="${MARGIN.left + pw}" y1="${MARGIN.top}" x2="${MARGIN.left + pw}" y2="${bottom}" stroke="black"/>`);
  out.push(`<text x="${MARGIN.left + pw / 2}" y="${H - 10}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.leftLabel)}</text>`);
  if (o.rightLabel !== undefined && right.length > 0)
    out.push(`<text transform="translate(${W - 12} ${MARGIN.top + ph / 2}) rotate(90)" text-anchor="middle">${escapeXml(o.rightLabel)}</text>`);
  // Series.
  for (const s of o.series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${f(px(x))},${f(py(y, s.axis))}`);
    if (pts.length > 0) out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="1.5"/>`);
  }
  // Legend, top left inside the plot.
  o.series.forEach((s, i) => {
    const y = MARGIN.top + 14 + i * 16;
    out.push(`<line x1="${MARGIN.left + 10}" y1="${y}" x2="${MARGIN.left + 30}" y2="${y}" stroke="${escapeXml(s.color)}" stroke-width="2"/>`);
    out.push(`<text x="${MARGIN.left + 36}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
