/**
 * A cursor over the words of one command, producing errors that name the line,
 * the word and what was expected.
 */
export class CommandError extends Error {
  constructor(
    readonly detail: string,
    readonly line: number | null = null,
    readonly word: string | null = null,
  ) {
    super(formatError(detail, line, word));
  }

  /** The same error placed at a config file line. */
  at(line: number, file?: string): CommandError {
    const e = new CommandError(this.detail, line, this.word);
    if (file) e.message = `${file}: ${e.message}`;
    return e;
  }
}

function formatError(detail: string, line: number | null, word: string | null): string {
  const where = line !== null ? `line ${line}: ` : '';
  const at = word !== null ? `word "${word}": ` : '';
  return `${where}${at}${detail}`;
}

export class Words {
  private i = 0;
  constructor(readonly words: readonly string[]) {}

  get done(): boolean {
    return this.i >= this.words.length;
  }

  peek(): string | undefined {
    return this.words[this.i];
  }

  /** The next word; `what` names what was expected if there is none. */
  next(what: string): string {
    const w = this.words[this.i];
    if (w === undefined) throw new CommandError(`expected ${what}, found end of line`, null, this.words[this.i - 1] ?? null);
    this.i++;
    return w;
  }

  /** Consumes the next word if it (or, like iproute2, a prefix of it) is `kw`. */
  accept(kw: string): boolean {
    const w = this.words[this.i];
    if (w !== undefined && w === kw) {
      this.i++;
      return true;
    }
    return false;
  }

  /** The next word, which must be one of `options` or an abbreviation of one. */
  choose<T extends string>(options: readonly T[], what: string): T {
    const w = this.next(what);
    const exact = options.find((o) => o === w);
    if (exact) return exact;
    // Like iproute2's matches(): the first option the word abbreviates wins.
    const pre = options.find((o) => o.startsWith(w));
    if (pre !== undefined) return pre;
    throw this.error(`expected ${what} (${options.join(', ')})`, w);
  }

  /** Fails if words are left over. */
  end(): void {
    const w = this.words[this.i];
    if (w !== undefined) throw this.error('unexpected word at end of command', w);
  }

  error(detail: string, word?: string): CommandError {
    return new CommandError(detail, null, word ?? this.words[this.i - 1] ?? null);
  }
}

/** Splits a line into words; `#` starts a comment. Quotes are not part of the language. */
export function splitWords(line: string): string[] {
  const hash = line.search(/(^|\s)#/);
  const text = hash >= 0 ? line.slice(0, hash) : line;
  return text.split(/\s+/).filter((w) => w.length > 0);
}
