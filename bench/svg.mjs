// A small SVG writer for the benchmark's charts: one panel per figure, a
// horizontal bar per target, each panel scaled to its largest value. No dependencies.

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);

const COLORS = ['#2f6db5', '#d9822b', '#6aa84f', '#8e6bbf', '#c0392b', '#7f8c8d'];

/**
 * groups: [{ label, unit, lowerIsBetter?, bars: [{ name, value }] }] (value null: not measured).
 * Returns the SVG document as a string.
 */
export function barChart({ title, subtitle = '', groups, names }) {
  const barH = 14;
  const gap = 4;
  const labelW = 110;
  const plotW = 420;
  const valueW = 110;
  const width = labelW + plotW + valueW + 20;
  const color = (name) => COLORS[names.indexOf(name) % COLORS.length];
  const out = [];
  let y = 60;
  for (const g of groups) {
    const max = Math.max(...g.bars.map((b) => b.value ?? 0), 1e-12);
    // The panel's title on a line of its own, the bars below it.
    out.push(`<text x="10" y="${y + 12}"><tspan font-weight="bold">${esc(g.label)}</tspan><tspan fill="#666"> (${esc(g.unit)}${g.lowerIsBetter ? ', lower is better' : ''})</tspan></text>`);
    y += 20;
    g.bars.forEach((b, i) => {
      const by = y + i * (barH + gap);
      const w = b.value == null ? 0 : Math.max(1, (b.value / max) * plotW);
      out.push(`<text x="${labelW - 6}" y="${by + barH - 3}" text-anchor="end">${esc(b.name)}</text>`);
      out.push(`<rect x="${labelW}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${color(b.name)}"/>`);
      out.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${by + barH - 3}">${esc(b.text ?? (b.value == null ? 'n/a' : b.value))}</text>`);
    });
    y += g.bars.length * (barH + gap) + 14;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="42" fill="#666">${esc(subtitle)}</text>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
