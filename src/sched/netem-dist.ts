/**
 * netem's delay distribution tables, computed as iproute2's generators
 * (netem/normal.c, pareto.c, paretonormal.c) compute the .dist files that
 * `tc` loads: 4096 signed 16-bit values of the inverse CDF, scaled by
 * NETEM_DIST_SCALE (8192).
 */
export const NETEM_DIST_SCALE = 8192;
const TABLESIZE = 16384;

/** C's rint (round half to even). */
export function rint(x: number): number {
  const r = Math.round(x);
  if (Math.abs(x - Math.trunc(x)) === 0.5) return 2 * Math.round(x / 2);
  return r;
}

/**
 * erf(x) in double precision: the series 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!!,
 * whose terms are all positive (no cancellation).
 */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x > 6) return 1;
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

const normalCdf = (x: number): number => 0.5 + 0.5 * erf(x / Math.sqrt(2.0));

function normalInverse(): Float64Array {
  // normal.c: the last x whose CDF rounds to each of TABLESIZE+1 steps.
  const table = new Float64Array(TABLESIZE + 1);
  for (let x = -10.0; x < 10.05; x += 0.00005) {
    const i = rint(TABLESIZE * normalCdf(x));
    table[i] = x;
  }
  return table;
}

const clampS16 = (v: number): number => (v < -32768 ? -32768 : v > 32767 ? 32767 : v);

function normalTable(): Int16Array {
  const inv = normalInverse();
  const out = new Int16Array(TABLESIZE / 4);
  for (let i = 0, n = 0; i < TABLESIZE; i += 4) out[n++] = clampS16(rint(inv[i] * NETEM_DIST_SCALE));
  return out;
}

// pareto.c: shape a = 3, shifted and scaled to mean 0, unit spread.
function paretoValue(i: number): number {
  let d = i / 65536;
  d = 1.0 / Math.pow(d, 1.0 / 3.0);
  d -= 1.5;
  d *= (4.0 / 3.0) * NETEM_DIST_SCALE;
  if (d > 32767) d = 32767;
  return rint(d);
}

function paretoTable(): Int16Array {
  const out = new Int16Array(TABLESIZE / 4);
  for (let i = 65536, n = 0; i > 0; i -= 16) out[n++] = paretoValue(i);
  return out;
}

// paretonormal.c: (normal + 3·pareto) / 4, in C integer division.
function paretoNormalTable(): Int16Array {
  const inv = normalInverse();
  const out = new Int16Array(TABLESIZE / 4);
  for (let i = 0, n = 0; i < TABLESIZE; i += 4) {
    const norm = rint(inv[i] * NETEM_DIST_SCALE);
    const par = paretoValue(65536 - 4 * i);
    out[n++] = clampS16(Math.trunc((norm + 3 * par) / 4));
  }
  return out;
}

const cache = new Map<string, Int16Array>();

/** The table for `name` (normal, pareto, paretonormal), or null if there is none. */
export function distTable(name: string): Int16Array | null {
  let t = cache.get(name);
  if (t !== undefined) return t;
  if (name === 'normal') t = normalTable();
  else if (name === 'pareto') t = paretoTable();
  else if (name === 'paretonormal') t = paretoNormalTable();
  else return null;
  cache.set(name, t);
  return t;
}
