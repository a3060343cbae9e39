/**
 * JSON laid out as iproute2's json_writer prints it (`tc -j`, `-j -p`):
 * compact without -p; with -p, four spaces per level, `"key": value`, and
 * arrays of plain values kept on one line.
 */
export type IpJson = number | string | boolean | null | IpJson[] | { [k: string]: IpJson };

export function iprouteJson(v: IpJson, pretty: boolean): string {
  let out = '';
  let depth = 0;
  let sep = '';
  const eol = (): void => {
    if (pretty) out += '\n' + '    '.repeat(depth);
  };
  const eor = (): void => {
    out += sep;
    sep = ',';
  };
  const str = (s: string): string =>
    '"' + s.replace(/[\t\n\r\f\b\\"]/g, (c) => ({ '\t': '\\t', '\n': '\\n', '\r': '\\r', '\f': '\\f', '\b': '\\b', '\\': '\\\\', '"': '\\"' })[c]!) + '"';
  const value = (x: IpJson): void => {
    if (Array.isArray(x)) {
      eor();
      out += pretty ? '[ ' : '[';
      depth++;
      sep = '';
      for (const e of x) value(e);
      // jsonw_end_array: a space before ']' when pretty and not empty, never a new line.
      if (pretty && sep !== '') out += ' ';
      depth--;
      out += ']';
      sep = ',';
    } else if (x !== null && typeof x === 'object') {
      eor();
      out += '{';
      depth++;
      sep = '';
      for (const [k, e] of Object.entries(x)) {
        eor();
        eol();
        sep = '';
        out += str(k) + (pretty ? ': ' : ':');
        value(e);
      }
      depth--;
      if (sep !== '') eol();
      out += '}';
      sep = ',';
    } else {
      eor();
      out += typeof x === 'string' ? str(x) : x === null ? 'null' : String(x);
    }
  };
  value(v);
  return out + '\n';
}
