/**
 * nft's lexical layer: words (identifiers, numbers, addresses, prefixes,
 * ranges and times stay one word, as `10.0.0.0/8` or `1000-2000`), quoted
 * strings, punctuation, and newlines (which separate commands like `;`).
 * `#` starts a comment; a backslash before a newline joins lines.
 */
export type TokKind = 'word' | 'string' | 'punct' | 'nl' | 'eof';

export interface Tok {
  kind: TokKind;
  text: string;
  line: number;
  /** 1-based column of the first character. */
  col: number;
  len: number;
}

const PUNCT2 = ['==', '!=', '<=', '>=', '<<', '>>'];
const PUNCT1 = '{}();,:@$&|^<>=!+';
const WORD = /[A-Za-z0-9_.\-/*\\]/;

export class NftSyntaxError extends Error {
  constructor(
    readonly detail: string,
    readonly tok: Pick<Tok, 'line' | 'col' | 'len'>,
    /** The expression the error is about, marked with `~` (on the same line). */
    readonly context?: Pick<Tok, 'line' | 'col' | 'len'>,
  ) {
    super(detail);
  }
}

export function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  const push = (kind: TokKind, t: string, start: number): void => {
    out.push({ kind, text: t, line, col: start - lineStart + 1, len: Math.max(1, t.length) });
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      push('nl', '\n', i);
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '\\' && text[i + 1] === '\n') {
      i += 2;
      line++;
      lineStart = i;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"') {
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"' && text[i] !== '\n') i++;
      if (text[i] !== '"') throw new NftSyntaxError('unterminated string', { line, col: start - lineStart + 1, len: i - start });
      push('string', text.slice(start + 1, i), start);
      out[out.length - 1].len = i - start + 1;
      i++;
      continue;
    }
    const two = text.slice(i, i + 2);
    if (PUNCT2.includes(two)) {
      push('punct', two, i);
      i += 2;
      continue;
    }
    if (PUNCT1.includes(c)) {
      push('punct', c, i);
      i++;
      continue;
    }
    if (WORD.test(c)) {
      const start = i;
      while (i < text.length && WORD.test(text[i]) && !(text[i] === '\\' && text[i + 1] === '\n')) i++;
      push('word', text.slice(start, i), start);
      continue;
    }
    throw new NftSyntaxError(`syntax error, unexpected junk`, { line, col: i - lineStart + 1, len: 1 });
  }
  push('eof', '', i);
  return out;
}

/** nft's error layout: the message, the offending line, and carets under the token. */
export function formatNftError(text: string, err: NftSyntaxError, file: string | null): string {
  const lines = text.split('\n');
  const src = lines[err.tok.line - 1] ?? '';
  const where = file !== null ? `${file}:${err.tok.line}:${err.tok.col}-${err.tok.col + err.tok.len - 1}: ` : '';
  const pad = src.slice(0, err.tok.col - 1).replace(/[^\t]/g, ' ');
  let marks = `${pad}${'^'.repeat(err.tok.len)}`;
  const c = err.context;
  if (c !== undefined && c.line === err.tok.line && c.col + c.len <= err.tok.col) {
    const chars = [...marks];
    for (let k = c.col - 1; k < c.col - 1 + c.len; k++) chars[k] = '~';
    marks = chars.join('');
  }
  return `${where}Error: ${err.detail}\n${src}\n${marks}\n`;
}
