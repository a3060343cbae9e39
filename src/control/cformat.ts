/** C's printf number formats (glibc's rounding), for output that must match C tools byte for byte. */

/**
 * Rounds `x` to `digits` decimals as glibc's printf does: on the exact binary
 * value, ties to even.
 */
export function cFixed(x: number, digits: number): string {
  const neg = x < 0;
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const intPart = exact.slice(0, dot);
  const frac = exact.slice(dot + 1);
  let keep = intPart + frac.slice(0, digits);
  const restDigits = frac.slice(digits);
  const first = restDigits.charCodeAt(0) - 48;
  const tail = restDigits.slice(1);
  let up = first > 5 || (first === 5 && (/[1-9]/.test(tail) || (Number(keep[keep.length - 1]) & 1) === 1));
  if (up) {
    const d = keep.split('').map(Number);
    let i = d.length - 1;
    while (up && i >= 0) {
      d[i]++;
      if (d[i] === 10) {
        d[i] = 0;
        i--;
      } else up = false;
    }
    keep = (up ? '1' : '') + d.join('');
  }
  const ip = keep.slice(0, keep.length - digits).replace(/^0+(?=\d)/, '') || '0';
  const fp = keep.slice(keep.length - digits);
  return (neg ? '-' : '') + ip + (digits > 0 ? '.' + fp : '');
}

/** C's %.<prec>g. */
export function cG(x: number, prec = 6): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  const p = prec === 0 ? 1 : prec;
  // The exponent after rounding to p significant digits.
  let e = Math.floor(Math.log10(Math.abs(x)));
  const mant = Math.abs(x) / 10 ** e;
  if (Number(cFixed(mant, p - 1)) >= 10) e++;
  if (e < -4 || e >= p) {
    let m = cFixed(x / 10 ** e, p - 1);
    if (Math.abs(Number(m)) >= 10) {
      e++;
      m = cFixed(x / 10 ** e, p - 1);
    }
    if (m.includes('.')) m = m.replace(/0+$/, '').replace(/\.$/, '');
    return `${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  let s = cFixed(x, Math.max(0, p - 1 - e));
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

