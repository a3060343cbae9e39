/**
 * ss's column layout (iproute2 misc/ss.c: out, field_next, render): every
 * field of every line is buffered as a token, each column's width is the
 * longest token seen in it, and the whole table is printed at the end with
 * the columns padded and aligned. Without a terminal the columns are as
 * narrow as their contents; on a terminal of `screenWidth` columns the spare
 * room is shared out between them.
 *
 * Two of ss's habits that scripts see are kept on purpose: the last token
 * printed (the extension field of the last line) does not count towards its
 * column's width, since ss measures a token when it moves past it; and the
 * extension column ("Process") holds the second lines of -i and -m, so its
 * header is padded to their length.
 */

export enum Col {
  NETID,
  STATE,
  RECVQ,
  SENDQ,
  ADDR,
  SERV,
  RADDR,
  RSERV,
  EXT,
  PROC,
}

const COL_MAX = 10;

type Align = 'left' | 'right';

interface Column {
  readonly align: Align;
  readonly header: string;
  readonly ldelim: string;
  disabled: boolean;
  width: number;
  maxLen: number;
}

export class SsTable {
  readonly columns: Column[] = [
    { align: 'left', header: 'Netid', ldelim: '', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'State', ldelim: ' ', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'Recv-Q', ldelim: ' ', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'Send-Q', ldelim: ' ', disabled: false, width: 0, maxLen: 0 },
    { align: 'right', header: 'Local Address:', ldelim: ' ', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'Port', ldelim: '', disabled: false, width: 0, maxLen: 0 },
    { align: 'right', header: 'Peer Address:', ldelim: ' ', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'Port', ldelim: '', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: 'Process', ldelim: '', disabled: false, width: 0, maxLen: 0 },
    { align: 'left', header: '', ldelim: '', disabled: false, width: 0, maxLen: 0 },
  ];
  private readonly tokens: string[] = [];
  private cur = '';
  private field = 0;
  private started = false;

  disable(c: Col): void {
    this.columns[c].disabled = true;
  }

  /** Appends to the current field. */
  out(s: string): void {
    if (this.columns[this.field].disabled) return;
    this.started = true;
    this.cur += s;
  }

  private flush(): void {
    const f = this.columns[this.field];
    if (f.disabled) return;
    if (this.cur.length > f.maxLen) f.maxLen = this.cur.length;
    this.tokens.push(this.cur);
    this.cur = '';
  }

  next(): void {
    this.flush();
    this.field = this.field === COL_MAX - 1 ? 0 : this.field + 1;
  }

  /** Moves on (flushing fields on the way) to column `c`. */
  set(c: Col): void {
    while (this.field !== c) this.next();
  }

  /** The header line: every enabled column's title. */
  header(): void {
    while (this.field !== COL_MAX - 1) {
      if (!this.columns[this.field].disabled) this.out(this.columns[this.field].header);
      this.next();
    }
  }

  /** The table as ss prints it; `screenWidth` when the output is a terminal. */
  render(screenWidth: number | null): string {
    if (!this.started) return '';
    const tokens = [...this.tokens, this.cur];
    this.calcWidth(screenWidth);
    const cols = this.columns;
    let f = 0;
    while (cols[f].width === 0) f++;
    let out = '';
    let lineStarted = false;
    for (const t of tokens) {
      const c = cols[f];
      let printed = 0;
      if (lineStarted) {
        out += c.ldelim;
        printed = c.ldelim.length;
      }
      lineStarted = true;
      if (c.width > 0 && c.align === 'right') {
        const s = c.width - t.length - printed;
        if (s > 0) {
          out += ' '.repeat(s);
          printed += s;
        }
      }
      out += t;
      printed += t.length;
      if (c.width > 0 && c.align === 'left') {
        const s = c.width - printed;
        if (s > 0) out += ' '.repeat(s);
      }
      do {
        if (f === COL_MAX - 1) {
          out += '\n';
          f = 0;
          lineStarted = false;
        } else f++;
      } while (cols[f].disabled);
    }
    if (lineStarted) out += '\n';
    return out;
  }

  private calcWidth(screenWidth: number | null): void {
    const cols = this.columns;
    const screen = screenWidth ?? Number.MAX_SAFE_INTEGER;
    let first = true;
    for (const c of cols) {
      if (c.disabled) continue;
      c.width = !first && c.maxLen > 0 ? c.maxLen + c.ldelim.length : c.maxLen;
      c.width = Math.min(c.width, screen);
      if (c.width > 0) first = false;
    }
    if (screenWidth === null) return;
    // Second pass: break lines where the columns don't fit, share out the spare room.
    let len = 0;
    let linecols = 0;
    let eol = -1;
    for (let i = 0; i < COL_MAX; i++) {
      if (cols[i].width === 0) continue;
      linecols++;
      len += cols[i].width;
      let last = true;
      for (let j = i + 1; j < COL_MAX; j++) {
        if (cols[j].width > 0) {
          last = false;
          break;
        }
      }
      if (!last && len < screen) continue;
      if (len !== screen) {
        if (len > screen) {
          len -= cols[i].width;
          i--;
          linecols--;
        }
        const pad = screen - len;
        const spacing = Math.floor(pad / linecols);
        let rem = pad % linecols;
        for (let j = i; j > eol; j--) {
          if (cols[j].width === 0) continue;
          cols[j].width += spacing;
          if (rem > 0) {
            cols[j].width++;
            rem--;
          }
        }
      }
      eol = i;
      len = 0;
      linecols = 0;
    }
  }
}
