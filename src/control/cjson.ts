/**
 * JSON laid out the way cJSON's cJSON_Print lays it out (tabs, `"key":<TAB>value`,
 * arrays on one line as `[a, b]`, numbers as `%1.15g` unless that loses the
 * value, then `%1.17g`), for tools whose `-J` output is cJSON's (iperf3).
 * Objects keep their keys in insertion order and may repeat a key, as cJSON
 * objects can.
 */
export type JsonValue = number | string | boolean | null | JsonObject | JsonValue[];

export class JsonObject {
  readonly items: [string, JsonValue][] = [];

  add(key: string, value: JsonValue): this {
    this.items.push([key, value]);
    return this;
  }

  get(key: string): JsonValue | undefined {
    for (let i = this.items.length - 1; i >= 0; i--) if (this.items[i][0] === key) return this.items[i][1];
    return undefined;
  }

  static of(fields: Record<string, JsonValue>): JsonObject {
    const o = new JsonObject();
    for (const [k, v] of Object.entries(fields)) o.add(k, v);
    return o;
  }
}

/** C's `%.<p>g` for a finite number. */
export function formatG(x: number, p: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const e = x.toExponential(p - 1);
  const exp = Number(e.slice(e.indexOf('e') + 1));
  if (exp < -4 || exp >= p) {
    let [m, ex] = e.split('e');
    if (m.includes('.')) m = m.replace(/0+$/, '').replace(/\.$/, '');
    const n = Number(ex);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  let f = x.toFixed(Math.max(0, p - 1 - exp));
  if (f.includes('.')) f = f.replace(/0+$/, '').replace(/\.$/, '');
  return f;
}

/** cJSON's compare_double: equal within DBL_EPSILON of the larger. */
function closeEnough(a: number, b: number): boolean {
  const max = Math.max(Math.abs(a), Math.abs(b));
  return Math.abs(a - b) <= max * Number.EPSILON;
}

/** cJSON print_number (iperf's copy keeps valueint as a 64-bit integer). */
export function cjsonNumber(d: number): string {
  if (!Number.isFinite(d)) return 'null';
  if (Number.isInteger(d) && Math.abs(d) < 2 ** 63) return BigInt(d).toString();
  const s = formatG(d, 15);
  return closeEnough(Number(s), d) ? s : formatG(d, 17);
}

function cjsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 32) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** cJSON_Print: the formatted text of `v`. */
export function cjsonPrint(v: JsonValue): string {
  return print(v, 0);
}

function print(v: JsonValue, depth: number): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return cjsonNumber(v);
  if (typeof v === 'string') return cjsonString(v);
  if (Array.isArray(v)) return '[' + v.map((x) => print(x, depth + 1)).join(', ') + ']';
  const inner = depth + 1;
  let out = '{\n';
  const n = v.items.length;
  v.items.forEach(([k, x], i) => {
    out += '\t'.repeat(inner) + cjsonString(k) + ':\t' + print(x, inner) + (i < n - 1 ? ',' : '') + '\n';
  });
  return out + '\t'.repeat(depth) + '}';
}
