import type {
  BaseChainSpec,
  ChainType,
  CmpOp,
  CtKey,
  NatExpr,
  NatFlag,
  Expr,
  Family,
  FibFlag,
  Field,
  HookName,
  KeyExpr,
  LogLevel,
  MarkValue,
  NamedSet,
  Rhs,
  SetElement,
  SetKeyType,
  TimeUnit,
  VerdictAst,
} from '../netfilter/ast.js';
import { FIB_FLAGS, PRIORITY } from '../netfilter/ast.js';
import { parseIp4 } from '../wire/addr.js';
import { ServicesDb } from './etc-services.js';
import { NftSyntaxError, tokenize, type Tok } from './nft-lex.js';
import { FLAG_TYPES, ICMP_REJECT, SET_KEY_TYPES, fieldType, keyTypes, parseTime, setTypeByName, symbolValue, type NftType } from './nft-names.js';

/**
 * The parser of nft's command language (the command line and `nft -f` files)
 * into commands on the rule AST. Set elements of `add element` are kept as
 * tokens until the set's type is known (it may be declared in the same batch):
 * `resolveElements` reads them then.
 */

export interface TableRef {
  family: Family;
  table: string;
}

/** Elements as written, read once the set's types are known. */
export interface RawElements {
  toks: Tok[];
}

export type ListWhat = 'ruleset' | 'tables' | 'chains' | 'sets' | 'maps' | 'counters' | 'table' | 'chain' | 'set' | 'map' | 'counter';

export type ChainDelCmd = { verb: 'delete' | 'destroy' | 'flush'; obj: 'chain'; chain?: string; handle?: number; tok: Tok } & TableRef;
export type RuleAddCmd = { verb: 'add' | 'insert'; obj: 'rule'; chain: string; exprs: Expr[]; comment?: string; position?: number; index?: number; tok: Tok } & TableRef;
export type SetDelCmd = { verb: 'delete' | 'destroy' | 'flush'; obj: 'set'; name: string; tok: Tok } & TableRef;

export type NftCommand =
  | ({ verb: 'add' | 'create' | 'delete' | 'destroy' | 'flush'; obj: 'table'; tok: Tok } & TableRef)
  | ({ verb: 'add' | 'create'; obj: 'chain'; chain: string; base?: BaseChainSpec; tok: Tok } & TableRef)
  | ChainDelCmd
  | RuleAddCmd
  | ({ verb: 'replace'; obj: 'rule'; chain: string; exprs: Expr[]; comment?: string; handle: number; tok: Tok } & TableRef)
  | ({ verb: 'delete' | 'destroy'; obj: 'rule'; chain: string; handle: number; tok: Tok } & TableRef)
  | ({ verb: 'add' | 'create'; obj: 'set'; set: NamedSet; raw?: RawElements; tok: Tok } & TableRef)
  | SetDelCmd
  | ({ verb: 'add' | 'create' | 'delete' | 'destroy'; obj: 'element'; set: string; raw: RawElements; tok: Tok } & TableRef)
  | ({ verb: 'add' | 'create'; obj: 'counter'; name: string; packets: number; bytes: number; tok: Tok } & TableRef)
  | ({ verb: 'delete' | 'destroy' | 'reset'; obj: 'counter'; name: string; tok: Tok } & TableRef)
  | { verb: 'list'; what: ListWhat; family?: Family; table?: string; name?: string; tok: Tok }
  | { verb: 'flush'; obj: 'ruleset'; family?: Family; tok: Tok }
  | { verb: 'reset'; obj: 'counters'; family?: Family; table?: string; tok: Tok };

const FAMILIES = ['ip', 'inet'] as const;
const UNSUPPORTED_FAMILIES = ['ip6', 'arp', 'bridge', 'netdev'];
const HOOKS: readonly HookName[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];
const VERBS = ['add', 'create', 'insert', 'replace', 'delete', 'destroy', 'flush', 'list', 'reset'] as const;
type Verb = (typeof VERBS)[number];

/** Names nft gives its tokens in "unexpected X" messages. */
function describe(t: Tok): string {
  switch (t.kind) {
    case 'eof':
      return 'end of file';
    case 'nl':
      return 'newline';
    case 'string':
      return 'quoted string';
    case 'punct':
      return t.text === ';' ? 'semicolon' : `'${t.text}'`;
    case 'word':
      return /^\d+$/.test(t.text) ? 'number' : KEYWORDS.has(t.text) ? t.text : 'string';
  }
}

/**
 * Words nft's scanner reads as keywords, not strings: nft refuses them as
 * table, chain, set and counter names unless quoted, and names them by their
 * text in "unexpected X" messages (the list is what this nft refuses in
 * `add table ip WORD`).
 */
const KEYWORDS = new Set([
  ...VERBS,
  'accept', 'add', 'ah', 'all', 'and', 'arp', 'bridge', 'cgroup', 'chain', 'comment', 'comp', 'constant',
  'continue', 'counter', 'cpu', 'create', 'ct', 'day', 'dccp', 'define', 'delete', 'describe', 'device',
  'devices', 'dnat', 'drop', 'dst', 'dup', 'dynamic', 'ecn', 'element', 'elements', 'eq', 'esp', 'ether',
  'exists', 'expires', 'export', 'exthdr', 'fib', 'flags', 'flow', 'flowtable', 'flush', 'frag', 'fwd',
  'gc-interval', 'ge', 'get', 'goto', 'gt', 'handle', 'hbh', 'hook', 'hour', 'ibriport', 'ibrname', 'icmp',
  'icmpv6', 'igmp', 'iif', 'iifgroup', 'iifname', 'iiftype', 'import', 'include', 'index', 'inet', 'insert',
  'interval', 'ip', 'ip6', 'ipsec', 'jhash', 'jump', 'le', 'limit', 'list', 'log', 'lt', 'map', 'mark',
  'masquerade', 'meta', 'meter', 'mh', 'missing', 'monitor', 'ne', 'netdev', 'nftrace', 'not', 'notrack',
  'numgen', 'obriport', 'obrname', 'offload', 'oif', 'oifgroup', 'oifname', 'oiftype', 'or', 'osf',
  'pkttype', 'policy', 'position', 'priority', 'queue', 'quota', 'random', 'redefine', 'redirect', 'reject',
  'rename', 'replace', 'reset', 'return', 'rt', 'rtclassid', 'rule', 'ruleset', 'sctp', 'secmark', 'set',
  'size', 'skgid', 'skuid', 'snat', 'socket', 'srh', 'symhash', 'synproxy', 'table', 'tcp', 'th', 'time',
  'timeout', 'tproxy', 'type', 'typeof', 'udp', 'udplite', 'undefine', 'update', 'vlan', 'vmap', 'xor', 'xt',
]);

export interface NftDefines {
  [name: string]: Tok[];
}

export class NftParser {
  private pos = 0;
  private readonly defines: NftDefines = {};
  /** The expressions of the rule being read (for nft's protocol context checks). */
  private ruleSoFar: Expr[] = [];

  constructor(private toks: Tok[]) {}

  static parse(text: string): NftCommand[] {
    return new NftParser(tokenize(text)).commands();
  }

  // ---------------------------------------------------------------- token helpers

  private peek(k = 0): Tok {
    const t = this.toks[this.pos];
    if (t !== undefined && t.kind === 'punct' && t.text === '$') this.expand();
    return this.toks[Math.min(this.pos + k, this.toks.length - 1)];
  }

  private next(): Tok {
    const t = this.peek();
    if (t.kind !== 'eof') this.pos++;
    return t;
  }

  private is(text: string, k = 0): boolean {
    const t = this.peek(k);
    return (t.kind === 'word' || t.kind === 'punct') && t.text === text;
  }

  private accept(text: string): boolean {
    if (this.is(text)) {
      this.pos++;
      return true;
    }
    return false;
  }

  private unexpected(t: Tok = this.peek(), expecting?: string): NftSyntaxError {
    return new NftSyntaxError(`syntax error, unexpected ${describe(t)}${expecting !== undefined ? `, expecting ${expecting}` : ''}`, t);
  }

  private expect(text: string): Tok {
    const t = this.peek();
    if (!this.is(text)) throw this.unexpected(t, text.length === 1 ? `'${text}'` : text);
    this.pos++;
    return t;
  }

  /** A name (table, chain, set, counter): a bare word that is not one of nft's keywords (nft refuses quoted names too). */
  private name(what: string): Tok {
    const t = this.peek();
    if (t.kind === 'string' || (t.kind === 'word' && (KEYWORDS.has(t.text) || /^\d+$/.test(t.text)))) throw this.unexpected(t, 'string');
    return this.word(what);
  }

  private word(what: string): Tok {
    const t = this.peek();
    if (t.kind !== 'word' && t.kind !== 'string') throw this.unexpected(t, what);
    this.pos++;
    return t;
  }

  /** The end of a statement: newline, `;`, `}` or end of input (not consumed). */
  private atEnd(): boolean {
    const t = this.peek();
    return t.kind === 'nl' || t.kind === 'eof' || (t.kind === 'punct' && (t.text === ';' || t.text === '}'));
  }

  private skipSeparators(): void {
    while (this.peek().kind === 'nl' || this.is(';')) this.pos++;
  }

  private endStatement(): void {
    if (!this.atEnd()) throw this.unexpected(this.peek(), 'end of file or newline or semicolon');
    if (this.peek().kind === 'nl' || this.is(';')) this.pos++;
  }

  private number(what: string, max = 0xffffffff): number {
    const t = this.word(what);
    const n = parseNumber(t.text);
    if (n === null || n > max) throw new NftSyntaxError(`expected ${what}, not "${t.text}"`, t);
    return n;
  }

  /** Expands `$name` (a `define`) in place. */
  private expand(): void {
    for (;;) {
      const t0 = this.toks[this.pos];
      if (t0 === undefined || t0.kind !== 'punct' || t0.text !== '$') return;
      const d = this.toks[this.pos];
      const name = this.toks[this.pos + 1];
      if (name === undefined || name.kind !== 'word') throw this.unexpected(name ?? d);
      const val = this.defines[name.text];
      if (val === undefined) throw new NftSyntaxError(`unknown identifier '${name.text}'`, { line: d.line, col: d.col, len: name.len + 1 });
      this.toks = [...this.toks.slice(0, this.pos), ...val, ...this.toks.slice(this.pos + 2)];
    }
  }

  // ---------------------------------------------------------------- commands

  commands(): NftCommand[] {
    const out: NftCommand[] = [];
    for (;;) {
      this.skipSeparators();
      const t = this.peek();
      if (t.kind === 'eof') return out;
      if (t.kind === 'word' && t.text === 'define') {
        this.pos++;
        const name = this.word('a name');
        this.expect('=');
        const val: Tok[] = [];
        let depth = 0;
        while (!(depth === 0 && (this.peek().kind === 'nl' || this.is(';'))) && this.peek().kind !== 'eof') {
          const x = this.next();
          if (x.text === '{') depth++;
          if (x.text === '}') depth--;
          val.push(x);
        }
        this.defines[name.text] = val;
        continue;
      }
      if (t.kind === 'word' && (t.text === 'include' || t.text === 'redefine' || t.text === 'undefine'))
        throw new NftSyntaxError(`${t.text} is not supported here`, t);
      if (t.kind === 'word' && t.text === 'table' && this.peek(1).kind === 'word') {
        // A block at top level (`nft -f`): `table ip t { ... }` adds.
        out.push(...this.command('add'));
        continue;
      }
      const v = this.word('a command');
      if (!(VERBS as readonly string[]).includes(v.text)) throw this.unexpected(v);
      out.push(...this.command(v.text as Verb));
    }
  }

  private family(): Family {
    const t = this.peek();
    if (t.kind === 'word' && (FAMILIES as readonly string[]).includes(t.text) && this.peek(1).kind === 'word') {
      this.pos++;
      return t.text as Family;
    }
    if (t.kind === 'word' && UNSUPPORTED_FAMILIES.includes(t.text) && this.peek(1).kind === 'word')
      throw new NftSyntaxError(`family ${t.text} is not supported (ip and inet are)`, t);
    return 'ip';
  }

  private tableRef(): TableRef & { tok: Tok } {
    const family = this.family();
    const t = this.name('a table name');
    return { family, table: t.text, tok: t };
  }

  private command(verb: Verb): NftCommand[] {
    const o = this.word('an object (table, chain, rule, set, map, element, counter)');
    const obj = o.text;
    if (verb === 'list') return [this.list(o)];
    if (obj === 'ruleset') {
      if (verb !== 'flush') throw this.unexpected(o);
      let family: Family | undefined;
      const f = this.peek();
      if (f.kind === 'word' && (FAMILIES as readonly string[]).includes(f.text)) {
        this.pos++;
        family = f.text as Family;
      } else if (f.kind === 'word' && UNSUPPORTED_FAMILIES.includes(f.text)) throw new NftSyntaxError(`family ${f.text} is not supported (ip and inet are)`, f);
      this.endStatement();
      return [{ verb: 'flush', obj: 'ruleset', family, tok: o }];
    }
    if (obj === 'counters' && verb === 'reset') {
      let family: Family | undefined;
      let table: string | undefined;
      if (this.accept('table')) ({ family, table } = this.tableRef());
      else if (this.peek().kind === 'word') family = this.family();
      this.endStatement();
      return [{ verb: 'reset', obj: 'counters', family, table, tok: o }];
    }
    switch (obj) {
      case 'table':
        return this.tableCmd(verb, o);
      case 'chain': {
        if (verb !== 'add' && verb !== 'create' && verb !== 'delete' && verb !== 'destroy' && verb !== 'flush') throw this.unexpected(o);
        const ref = this.tableRef();
        if ((verb === 'delete' || verb === 'destroy') && this.accept('handle')) {
          const handle = this.number('a handle');
          this.endStatement();
          return [{ verb, obj: 'chain', ...ref, handle }];
        }
        const name = this.name('a chain name');
        if (verb === 'add' || verb === 'create') {
          let base: BaseChainSpec | undefined;
          const rules: NftCommand[] = [];
          if (this.accept('{')) base = this.chainBody(ref, name.text, rules);
          this.endStatement();
          return [{ verb, obj: 'chain', ...ref, chain: name.text, base, tok: name }, ...rules];
        }
        this.endStatement();
        return [{ verb, obj: 'chain', ...ref, chain: name.text, tok: name }];
      }
      case 'rule':
        return [this.ruleCmd(verb, o)];
      case 'set':
      case 'map': {
        const ref = this.tableRef();
        const name = this.word(`a ${obj} name`);
        if (verb === 'add' || verb === 'create') {
          this.expect('{');
          const { set, raw } = this.setBody(name, obj === 'map');
          this.endStatement();
          return [{ verb, obj: 'set', ...ref, set, raw, tok: name }];
        }
        if (verb !== 'delete' && verb !== 'destroy' && verb !== 'flush') throw this.unexpected(o);
        this.endStatement();
        return [{ verb, obj: 'set', ...ref, name: name.text, tok: name }];
      }
      case 'element': {
        if (verb !== 'add' && verb !== 'create' && verb !== 'delete' && verb !== 'destroy') throw this.unexpected(o);
        const ref = this.tableRef();
        const name = this.name('a set name');
        const raw = this.rawBraces();
        this.endStatement();
        return [{ verb, obj: 'element', ...ref, set: name.text, raw, tok: name }];
      }
      case 'counter': {
        const ref = this.tableRef();
        const name = this.name('a counter name');
        if (verb === 'add' || verb === 'create') {
          const c = this.counterBody();
          this.endStatement();
          return [{ verb, obj: 'counter', ...ref, name: name.text, ...c, tok: name }];
        }
        if (verb !== 'delete' && verb !== 'destroy' && verb !== 'reset') throw this.unexpected(o);
        this.endStatement();
        return [{ verb, obj: 'counter', ...ref, name: name.text, tok: name }];
      }
      case 'flowtable':
      case 'quota':
      case 'limit':
      case 'ct':
      case 'synproxy':
      case 'secmark':
        throw new NftSyntaxError(`${obj} objects are not supported`, o);
      default:
        throw this.unexpected(o);
    }
  }

  private list(o: Tok): NftCommand {
    const what = o.text;
    const plural = ['ruleset', 'tables', 'chains', 'sets', 'maps', 'counters'];
    const single = ['table', 'chain', 'set', 'map', 'counter'];
    if (plural.includes(what)) {
      let family: Family | undefined;
      let table: string | undefined;
      if (this.peek().kind === 'word') {
        if (this.is('table')) {
          this.pos++;
          ({ family, table } = this.tableRef());
        } else {
          const f = this.word('a family');
          if (!(FAMILIES as readonly string[]).includes(f.text)) {
            if (UNSUPPORTED_FAMILIES.includes(f.text)) throw new NftSyntaxError(`family ${f.text} is not supported (ip and inet are)`, f);
            throw this.unexpected(f);
          }
          family = f.text as Family;
        }
      }
      this.endStatement();
      return { verb: 'list', what: what as ListWhat, family, table, tok: o };
    }
    if (!single.includes(what)) {
      if (['flowtables', 'quotas', 'limits', 'meters', 'flowtable', 'hooks'].includes(what)) throw new NftSyntaxError(`list ${what} is not supported`, o);
      throw this.unexpected(o);
    }
    const ref = this.tableRef();
    let name: string | undefined;
    if (what !== 'table') name = this.word(`a ${what} name`).text;
    this.endStatement();
    return { verb: 'list', what: what as ListWhat, family: ref.family, table: ref.table, name, tok: o };
  }

  private counterBody(): { packets: number; bytes: number } {
    let packets = 0;
    let bytes = 0;
    if (this.accept('{')) {
      for (;;) {
        this.skipSeparators();
        if (this.accept('}')) break;
        const k = this.word('packets or bytes');
        if (k.text === 'packets') packets = this.number('a number', Number.MAX_SAFE_INTEGER);
        else if (k.text === 'bytes') bytes = this.number('a number', Number.MAX_SAFE_INTEGER);
        else if (k.text === 'comment') this.word('a comment');
        else throw this.unexpected(k);
      }
    }
    return { packets, bytes };
  }

  private tableCmd(verb: Verb, o: Tok): NftCommand[] {
    if (verb !== 'add' && verb !== 'create' && verb !== 'delete' && verb !== 'destroy' && verb !== 'flush') throw this.unexpected(o);
    const ref = this.tableRef();
    const out: NftCommand[] = [{ verb, obj: 'table', ...ref }];
    if ((verb === 'add' || verb === 'create') && this.accept('{')) {
      for (;;) {
        this.skipSeparators();
        if (this.accept('}')) break;
        const k = this.word('chain, set, map or counter');
        if (k.text === 'chain') {
          const name = this.name('a chain name');
          const rules: NftCommand[] = [];
          this.expect('{');
          const base = this.chainBody(ref, name.text, rules);
          out.push({ verb: 'add', obj: 'chain', ...ref, chain: name.text, base, tok: name }, ...rules);
        } else if (k.text === 'set' || k.text === 'map') {
          const name = this.word(`a ${k.text} name`);
          this.expect('{');
          const { set, raw } = this.setBody(name, k.text === 'map');
          out.push({ verb: 'add', obj: 'set', ...ref, set, raw, tok: name });
        } else if (k.text === 'counter') {
          const name = this.name('a counter name');
          out.push({ verb: 'add', obj: 'counter', ...ref, name: name.text, ...this.counterBody(), tok: name });
        } else if (k.text === 'flags' || k.text === 'comment') {
          this.word(k.text);
          if (k.text === 'flags') throw new NftSyntaxError('table flags are not supported', k);
        } else if (['flowtable', 'quota', 'limit', 'ct', 'synproxy', 'secmark'].includes(k.text))
          throw new NftSyntaxError(`${k.text} objects are not supported`, k);
        else throw this.unexpected(k);
      }
    }
    this.endStatement();
    return out;
  }

  /** After `{`: chain properties and rules; consumes the `}`. */
  private chainBody(ref: TableRef, chain: string, rules: NftCommand[]): BaseChainSpec | undefined {
    let base: BaseChainSpec | undefined;
    for (;;) {
      this.skipSeparators();
      if (this.accept('}')) return base;
      const t = this.peek();
      if (this.is('type') && this.peek(1).kind === 'word' && ['filter', 'nat', 'route'].includes(this.peek(1).text)) {
        this.pos++;
        const type = this.word('filter, nat or route').text as ChainType;
        this.expect('hook');
        const h = this.word('a hook');
        if (!(HOOKS as readonly string[]).includes(h.text)) {
          if (h.text === 'ingress' || h.text === 'egress') throw new NftSyntaxError(`hook ${h.text} is not supported`, h);
          throw this.unexpected(h, 'a hook');
        }
        let priority = 0;
        if (this.accept('device')) throw new NftSyntaxError('device is not supported', t);
        this.expect('priority');
        priority = this.priority();
        base = { type, hook: h.text as HookName, priority, policy: 'accept' };
        if (!this.is('}')) this.endStatement();
        continue;
      }
      if (this.is('type') && this.peek(1).kind === 'word') throw new NftSyntaxError(`chain type ${this.peek(1).text} is not supported`, this.peek(1));
      if (this.is('policy')) {
        this.pos++;
        const p = this.word('accept or drop');
        if (p.text !== 'accept' && p.text !== 'drop') throw this.unexpected(p, 'accept or drop');
        if (base === undefined) throw new NftSyntaxError('a policy needs a base chain (type ... hook ...)', p);
        base.policy = p.text;
        if (!this.is('}')) this.endStatement();
        continue;
      }
      if (this.is('comment') && this.peek(1).kind === 'string') {
        this.pos += 2;
        continue;
      }
      if (this.is('devices') || this.is('flags')) throw new NftSyntaxError(`chain ${t.text} is not supported`, t);
      const { exprs, comment } = this.rule();
      rules.push({ verb: 'add', obj: 'rule', ...ref, chain, exprs, comment, tok: t });
      if (!this.is('}')) this.endStatement();
    }
  }

  private priority(): number {
    const t = this.word('a priority');
    let base: number;
    const n = parseSigned(t.text);
    if (n !== null) return n;
    const named = (PRIORITY as Record<string, number>)[t.text];
    if (named === undefined) {
      if (t.text === 'out' || t.text === 'dstnat' || t.text === 'srcnat') throw new NftSyntaxError(`unknown priority ${t.text}`, t);
      throw new NftSyntaxError(`'${t.text}' is not a valid priority`, t);
    }
    base = named;
    // `filter + 5`, `filter - 5` (or `filter -5`).
    if (this.accept('+')) base += this.number('an offset');
    else if (this.is('-')) {
      this.pos++;
      base -= this.number('an offset');
    } else if (this.peek().kind === 'word' && /^-\d+$/.test(this.peek().text)) base += Number(this.next().text);
    return base;
  }

  /** After `{`: a set or map declaration; consumes the `}`. */
  private setBody(name: Tok, isMap: boolean): { set: NamedSet; raw?: RawElements } {
    const set: NamedSet = { name: name.text, handle: 0, type: [], elements: [] };
    let raw: RawElements | undefined;
    for (;;) {
      this.skipSeparators();
      if (this.accept('}')) break;
      const k = this.word('type, flags, elements, timeout or size');
      switch (k.text) {
        case 'type': {
          delete set.typeofKey;
          delete set.typeofData;
          set.type = [this.setKeyType()];
          while (this.accept('.')) set.type.push(this.setKeyType());
          if (isMap) {
            this.expect(':');
            const d = this.word('a data type');
            if (!['verdict', 'mark', 'ipv4_addr', 'inet_service', 'integer'].includes(d.text))
              throw new NftSyntaxError(`map data type ${d.text} is not supported`, d);
            set.map = d.text as NamedSet['map'];
            if (this.is('.')) {
              this.pos++;
              const d2 = this.word('a data type');
              if (d.text !== 'ipv4_addr' || d2.text !== 'inet_service') throw new NftSyntaxError(`map data type ${d.text} . ${d2.text} is not supported`, d2);
              set.map = 'ipv4_addr . inet_service';
            }
          } else if (this.is(':')) throw new NftSyntaxError('a set has no data type (use map)', this.peek());
          break;
        }
        case 'typeof': {
          // The types come from the expressions (nft lists the set with them again).
          const at = this.peek();
          const key = this.keyExpr();
          set.type = keyTypes(key).map((t) => {
            if (!(SET_KEY_TYPES as readonly string[]).includes(t)) throw new NftSyntaxError(`typeof with a key of type ${t} is not supported`, at);
            return t as SetKeyType;
          });
          set.typeofKey = key;
          delete set.typeofData;
          delete set.map;
          if (isMap) {
            this.expect(':');
            if (this.accept('verdict')) set.map = 'verdict';
            else {
              const dt = this.peek();
              const data = this.keyExpr();
              const types = keyTypes(data).join(' . ');
              if (!['mark', 'ipv4_addr', 'inet_service', 'integer', 'ipv4_addr . inet_service'].includes(types))
                throw new NftSyntaxError(`map data of type ${types} is not supported`, dt);
              set.map = types as NamedSet['map'];
              set.typeofData = data;
            }
          } else if (this.is(':')) throw new NftSyntaxError('a set has no data type (use map)', this.peek());
          break;
        }
        case 'flags': {
          set.flags = {};
          do {
            const f = this.word('a set flag');
            if (f.text === 'interval' || f.text === 'timeout' || f.text === 'constant' || f.text === 'dynamic') set.flags[f.text] = true;
            else throw new NftSyntaxError(`set flag ${f.text} is not supported`, f);
          } while (this.accept(','));
          break;
        }
        case 'timeout':
          set.timeoutMs = this.time();
          break;
        case 'size':
          set.size = this.number('a size');
          break;
        case 'elements':
          this.expect('=');
          raw = this.rawBraces();
          break;
        case 'comment':
          this.word('a comment');
          break;
        case 'policy':
          if (!['performance', 'memory'].includes(this.word('performance or memory').text)) throw this.unexpected(this.toks[this.pos - 1]);
          break;
        case 'gc-interval':
          this.time();
          break;
        case 'counter':
          throw new NftSyntaxError('set counters are not supported', k);
        default:
          throw this.unexpected(k);
      }
      if (!this.is('}')) this.endStatement();
    }
    if (set.type.length === 0) throw new NftSyntaxError(`set ${name.text} needs a type`, name);
    return { set, raw };
  }

  private setKeyType(): SetKeyType {
    const t = this.word('a type');
    const k = setTypeByName(t.text);
    if (k === undefined) throw new NftSyntaxError(`set type ${t.text} is not supported`, t);
    return k;
  }

  private time(): number {
    const t = this.word('a time');
    const ms = parseTime(t.text);
    if (ms === null) throw new NftSyntaxError(`wrong time format "${t.text}"`, t);
    return ms;
  }

  /** `{ ... }` kept as tokens (the braces included). */
  private rawBraces(): RawElements {
    const start = this.expect('{');
    const toks: Tok[] = [start];
    let depth = 1;
    while (depth > 0) {
      this.expand();
      const t = this.next();
      if (t.kind === 'eof') throw this.unexpected(t, "'}'");
      if (t.text === '{' && t.kind === 'punct') depth++;
      if (t.text === '}' && t.kind === 'punct') depth--;
      toks.push(t);
    }
    return { toks };
  }

  private ruleCmd(verb: Verb, o: Tok): NftCommand {
    const ref = this.tableRef();
    const chain = this.name('a chain name');
    if (verb === 'delete' || verb === 'destroy') {
      this.expect('handle');
      const handle = this.number('a handle');
      this.endStatement();
      return { verb, obj: 'rule', ...ref, chain: chain.text, handle, tok: chain };
    }
    if (verb === 'replace') {
      this.expect('handle');
      const handle = this.number('a handle');
      const r = this.rule();
      this.endStatement();
      return { verb, obj: 'rule', ...ref, chain: chain.text, handle, ...r, tok: chain };
    }
    if (verb !== 'add' && verb !== 'insert' && verb !== 'create') throw this.unexpected(o);
    let position: number | undefined;
    let index: number | undefined;
    if (this.accept('position') || this.accept('handle')) position = this.number('a handle');
    else if (this.accept('index')) index = this.number('an index');
    const r = this.rule();
    this.endStatement();
    const v: 'add' | 'insert' = verb === 'insert' ? 'insert' : 'add';
    return { verb: v, obj: 'rule', ...ref, chain: chain.text, position, index, ...r, tok: chain };
  }

  // ---------------------------------------------------------------- rules

  /** A rule's expressions up to the end of the statement. */
  rule(): { exprs: Expr[]; comment?: string } {
    const exprs: Expr[] = [];
    this.ruleSoFar = exprs;
    let comment: string | undefined;
    this.expand();
    if (this.atEnd()) throw this.unexpected(this.peek());
    while (!this.atEnd()) {
      this.expand();
      if (this.is('comment')) {
        this.pos++;
        comment = this.word('a comment').text;
        continue;
      }
      exprs.push(...this.expr());
      mergeRange(exprs);
    }
    return { exprs, comment };
  }

  private expr(): Expr[] {
    const t = this.peek();
    if (t.kind !== 'word') throw this.unexpected(t);
    switch (t.text) {
      case 'accept':
      case 'drop':
      case 'continue':
      case 'return':
        this.pos++;
        return [{ kind: 'verdict', verdict: { kind: t.text } }];
      case 'jump':
      case 'goto':
        this.pos++;
        return [{ kind: 'verdict', verdict: { kind: t.text, chain: this.word('a chain name').text } }];
      case 'counter':
        return [this.counterStmt()];
      case 'log':
        return [this.logStmt()];
      case 'limit':
        return [this.limitStmt()];
      case 'reject':
        return [this.rejectStmt()];
      case 'notrack':
        this.pos++;
        return [{ kind: 'notrack' }];
      case 'add':
      case 'update':
        return [this.setAddStmt()];
      case 'iifname':
      case 'oifname':
        this.pos++;
        return [this.ifname(t.text)];
      case 'fib': {
        const save = this.pos;
        const head = this.fibHead();
        if (head.result === 'oifname') {
          if (this.is('vmap') || this.is('map')) throw new NftSyntaxError('fib ... oifname is supported only compared with names (fib daddr oifname "eth0")', t);
          if (this.is('exists') || this.is('missing') || ((this.is('==') || this.is('!=')) && (this.is('exists', 1) || this.is('missing', 1))))
            throw new NftSyntaxError('Could not process rule: Invalid argument', head.span);
          const e = this.ifname('oifname') as Extract<Expr, { kind: 'ifname' }>;
          return [{ kind: 'fib-name', flags: head.flags, op: e.op, names: e.names }];
        }
        this.pos = save;
        break;
      }
      case 'mark':
        if (this.is('set', 1)) {
          this.pos += 2;
          return [this.markSet()];
        }
        break;
      case 'meta':
        if ((this.is('iifname', 1) || this.is('oifname', 1)) && this.peek(1).kind === 'word') {
          this.pos++;
          return [this.ifname(this.next().text as 'iifname' | 'oifname')];
        }
        if (this.is('mark', 1) && this.is('set', 2)) {
          this.pos += 3;
          return [this.markSet()];
        }
        break;
      case 'ip':
        if ((this.is('dscp', 1) || this.is('ttl', 1)) && this.is('set', 2)) {
          this.pos += 3;
          const field = this.toks[this.pos - 2].text as 'dscp' | 'ttl';
          const v = this.value(field === 'dscp' ? 'dscp' : 'integer', this.word('a value'));
          return [{ kind: 'payload-set', proto: 'ip', field, value: v }];
        }
        break;
      case 'masquerade':
      case 'snat':
      case 'dnat':
      case 'redirect':
        return [this.natStmt(t.text)];
      case 'ct':
        if (this.is('count', 1)) {
          this.pos += 2;
          return [{ kind: 'connlimit', ...this.connlimit() }];
        }
        if (this.is('mark', 1) && this.is('set', 2)) {
          this.pos += 3;
          const m = this.markSet() as Extract<Expr, { kind: 'meta-set' }>;
          return [{ kind: 'ct-set', key: 'mark', value: m.value }];
        }
        break;
      case 'queue':
      case 'quota':
      case 'fwd':
      case 'dup':
      case 'tproxy':
      case 'synproxy':
      case 'flow':
        throw new NftSyntaxError(`the ${t.text} statement is not supported`, t);
    }
    return [this.relational()];
  }

  /** After `ct count`: `[over] N`. */
  private connlimit(): { count: number; over?: boolean } {
    const over = this.accept('over');
    const count = this.number('number');
    return over ? { count, over } : { count };
  }

  /** Whether the rule so far fixes the transport protocol (nft's protocol context). */
  private transportKnown(exprs: readonly Expr[]): boolean {
    return exprs.some((e) => {
      if (e.kind !== 'match') return false;
      const fs = e.left.kind === 'concat' ? e.left.fields : [e.left];
      return fs.some(
        (f) =>
          (f.kind === 'payload' && (f.proto === 'tcp' || f.proto === 'udp' || f.proto === 'th')) ||
          (e.op === 'eq' && e.right.kind === 'value' && ((f.kind === 'meta' && f.key === 'l4proto') || (f.kind === 'payload' && f.proto === 'ip' && f.field === 'protocol'))),
      );
    });
  }

  /** A port or `lo-hi` after `:` in a nat statement. */
  private natPorts(stmt: Tok, e: NatExpr): void {
    const w = this.word('a port');
    const d = splitRange(w.text);
    if (!this.transportKnown(this.ruleSoFar))
      throw new NftSyntaxError('transport protocol mapping is only valid after transport protocol match', w, stmt);
    if (d !== null) {
      e.port = valueOf('inet_service', { ...w, text: d[0] });
      e.portEnd = valueOf('inet_service', { ...w, text: d[1] });
    } else e.port = valueOf('inet_service', w);
  }

  /** `snat|dnat [ip] [to] ADDR[-ADDR][:PORT[-PORT]] | KEY map {...}`, `masquerade|redirect [to [:]PORT[-PORT]]`, then flags. */
  private natStmt(type: string): Expr {
    const stmt = this.next();
    const e: NatExpr = { kind: 'nat', type: type as NatExpr['type'] };
    let withPort = false;
    if (type === 'snat' || type === 'dnat') {
      if (this.is('ip') && (this.is('to', 1) || this.is('addr', 1) || /^\d/.test(this.peek(1).text))) {
        this.pos++;
        e.ip = true;
        // `dnat ip addr . port to KEY map { k : a . p }`.
        if (this.is('addr') && this.is('.', 1) && this.is('port', 2)) {
          this.pos += 3;
          withPort = true;
        }
      }
      this.accept('to');
      if (this.atEnd()) throw this.unexpected(this.peek());
      const t = this.peek();
      if (t.kind === 'word' && /^[a-z]/.test(t.text)) {
        const key = this.keyExpr();
        this.expect('map');
        // Data written `a . p` is an address and a port, with or without `addr . port` before.
        if (!withPort && this.is('{')) {
          let depth = 0;
          for (let k = this.pos; k < this.toks.length; k++) {
            const x = this.toks[k];
            if (x.kind === 'punct' && x.text === '{') depth++;
            if (x.kind === 'punct' && x.text === '}' && --depth === 0) break;
            if (x.kind === 'punct' && x.text === ':' && this.toks[k + 2]?.kind === 'word' && this.toks[k + 2].text === '.') withPort = true;
          }
        }
        const map = this.mapRef(keyTypes(key), withPort ? 'ipv4_addr . inet_service' : 'ipv4_addr');
        e.addrMap = withPort ? { key, map, withPort } : { key, map };
      } else if (this.accept(':')) this.natPorts(stmt, e);
      else {
        const w = this.word('an address');
        const d = splitRange(w.text);
        if (w.text.includes('/')) {
          // A prefix is the range of its addresses.
          const r = rhsOf('ipv4_addr', w, true);
          if (r.kind !== 'prefix') throw new NftSyntaxError(`syntax error, unexpected string, expecting number`, w);
          const mask = r.len === 0 ? 0 : (0xffffffff << (32 - r.len)) >>> 0;
          e.addr = (r.addr & mask) >>> 0;
          e.addrEnd = ((r.addr & mask) | ~mask) >>> 0;
        } else if (d !== null) {
          e.addr = valueOf('ipv4_addr', { ...w, text: d[0] });
          e.addrEnd = valueOf('ipv4_addr', { ...w, text: d[1] });
        } else e.addr = valueOf('ipv4_addr', w);
        if (this.accept(':')) this.natPorts(stmt, e);
      }
    } else if (this.accept('to')) {
      if (type === 'masquerade' && !this.is(':')) throw this.unexpected(this.peek(), 'colon');
      this.accept(':');
      this.natPorts(stmt, e);
    }
    const flags: NatFlag[] = [];
    while (this.is('random') || this.is('fully-random') || this.is('persistent')) {
      const f = this.next().text as NatFlag;
      if (!flags.includes(f)) flags.push(f);
      if (!this.accept(',')) break;
    }
    if (flags.length > 0) e.flags = flags;
    return e;
  }

  private counterStmt(): Expr {
    this.pos++;
    if (this.accept('name')) return { kind: 'counter', name: this.word('a counter name').text };
    if (this.accept('packets')) {
      this.number('a number', Number.MAX_SAFE_INTEGER);
      this.expect('bytes');
      this.number('a number', Number.MAX_SAFE_INTEGER);
    }
    return { kind: 'counter' };
  }

  private logStmt(): Expr {
    this.pos++;
    const e: Extract<Expr, { kind: 'log' }> = { kind: 'log' };
    for (;;) {
      if (this.accept('prefix')) e.prefix = this.word('a prefix').text;
      else if (this.accept('level')) {
        const l = this.word('a log level');
        const levels: LogLevel[] = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];
        if (!(levels as string[]).includes(l.text)) throw new NftSyntaxError(`invalid log level "${l.text}"`, l);
        e.level = l.text as LogLevel;
      } else if (this.is('group') || this.is('snaplen') || this.is('queue-threshold') || this.is('flags'))
        throw new NftSyntaxError(`log ${this.peek().text} is not supported`, this.peek());
      else return e;
    }
  }

  private limitStmt(): Expr {
    this.pos++;
    this.expect('rate');
    const over = this.accept('over');
    if (this.accept('until')) {
      /* `until` is the default */
    }
    // `10/second`, or `1 mbytes/second`.
    const a = this.word('a rate');
    let rate: number;
    let unitText: string;
    let per: 'packets' | 'bytes' = 'packets';
    let m = /^(\d+)\/(\w+)$/.exec(a.text);
    if (m) {
      rate = Number(m[1]);
      unitText = m[2];
    } else {
      if (!/^\d+$/.test(a.text)) throw new NftSyntaxError(`expected a rate like 10/second, not "${a.text}"`, a);
      const u = this.word('a unit like bytes/second');
      m = /^(bytes|kbytes|mbytes)\/(\w+)$/.exec(u.text);
      if (!m) throw new NftSyntaxError(`expected a unit like kbytes/second, not "${u.text}"`, u);
      rate = Number(a.text) * (m[1] === 'kbytes' ? 1024 : m[1] === 'mbytes' ? 1024 * 1024 : 1);
      unitText = m[2];
      per = 'bytes';
    }
    const units: TimeUnit[] = ['second', 'minute', 'hour', 'day', 'week'];
    if (!(units as string[]).includes(unitText)) throw new NftSyntaxError(`wrong rate unit "${unitText}"`, a);
    const e: Extract<Expr, { kind: 'limit' }> = { kind: 'limit', rate, unit: unitText as TimeUnit, per };
    if (over) e.over = true;
    if (this.accept('burst')) {
      const b = this.number('a burst');
      const u = this.word('packets or bytes');
      const mult = { packets: 1, bytes: 1, kbytes: 1024, mbytes: 1024 * 1024 }[u.text];
      if (mult === undefined || (u.text === 'packets') !== (per === 'packets')) throw this.unexpected(u, per === 'packets' ? 'packets' : 'bytes');
      e.burst = b * mult;
    }
    return e;
  }

  private rejectStmt(): Expr {
    this.pos++;
    if (!this.accept('with')) return { kind: 'reject' };
    const w = this.word('icmp or tcp');
    if (w.text === 'tcp') {
      this.expect('reset');
      return { kind: 'reject', with: { type: 'tcp-reset' } };
    }
    if (w.text !== 'icmp' && w.text !== 'icmpx') throw new NftSyntaxError(`reject with ${w.text} is not supported`, w);
    this.accept('type');
    const c = this.word('an icmp code');
    if (w.text === 'icmpx') {
      // nft's abstract codes, as the ICMP codes they become for IPv4.
      const x = ({ 'no-route': 0, 'port-unreachable': 3, 'host-unreachable': 1, 'admin-prohibited': 13 } as Record<string, number>)[c.text];
      if (x === undefined) throw new NftSyntaxError(`invalid icmpx code "${c.text}"`, c);
      return { kind: 'reject', with: { type: 'icmp', code: x, icmpx: true } };
    }
    const code = ICMP_REJECT.find(([n]) => n === c.text)?.[1] ?? parseNumber(c.text);
    if (code === undefined || code === null || code > 15) throw new NftSyntaxError(`invalid icmp code "${c.text}"`, c);
    return { kind: 'reject', with: { type: 'icmp', code } };
  }

  private setAddStmt(): Expr {
    const op = this.next().text as 'add' | 'update';
    this.expect('@');
    const set = this.word('a set name').text;
    this.expect('{');
    const key = this.keyExpr();
    let timeoutMs: number | undefined;
    if (this.accept('timeout')) timeoutMs = this.time();
    let connlimit: { count: number; over?: boolean } | undefined;
    if (this.is('ct') && this.is('count', 1)) {
      this.pos += 2;
      connlimit = this.connlimit();
    }
    if (this.is('counter') || this.is('limit')) throw new NftSyntaxError(`${this.peek().text} in a set element is not supported`, this.peek());
    this.expect('}');
    return { kind: 'set-add', op, set, key, timeoutMs, ...(connlimit !== undefined ? { connlimit } : {}) };
  }

  private ifname(dir: 'iifname' | 'oifname'): Expr {
    let op: 'eq' | 'ne' = 'eq';
    if (this.accept('!=')) op = 'ne';
    else this.accept('==');
    const names: string[] = [];
    if (this.accept('{')) {
      do {
        this.skipNl();
        names.push(this.word('an interface name').text);
        this.skipNl();
      } while (this.accept(','));
      this.expect('}');
    } else names.push(this.word('an interface name').text);
    return { kind: 'ifname', dir, op, names };
  }

  private skipNl(): void {
    while (this.peek().kind === 'nl') this.pos++;
  }

  private markSet(): Expr {
    // after `meta mark set`
    const t = this.peek();
    if (t.kind === 'word' && parseNumber(t.text) !== null) {
      this.pos++;
      return { kind: 'meta-set', key: 'mark', value: parseNumber(t.text)! };
    }
    if (this.is('fib')) throw this.unexpected(this.peek());
    const key = this.keyExpr();
    if (this.accept('map')) {
      const map = this.mapRef(keyTypes(key), 'mark');
      return { kind: 'meta-set', key: 'mark', value: { kind: 'map', key, map } };
    }
    if (key.kind === 'concat') throw this.unexpected(this.peek());
    const v: MarkValue = { kind: 'field', field: key };
    // `meta mark and 0xff`, `or 0x10`, `xor 1`, `& 0xff`, `| 0x10`, `^ 1`.
    const t2 = this.peek();
    const op = { and: '&', '&': '&', or: '|', '|': '|', xor: '^', '^': '^' }[t2.text];
    if (op !== undefined) {
      this.pos++;
      const n = this.number('a number');
      if (op === '&') v.mask = n;
      else if (op === '|') {
        v.mask = ~n >>> 0;
        v.xor = n;
      } else v.xor = n;
    }
    return { kind: 'meta-set', key: 'mark', value: v };
  }

  /** `{ k : v, ... }` or `@name` after `map`/`vmap`. */
  private mapRef(types: NftType[], data: 'verdict' | 'mark' | 'ipv4_addr' | 'ipv4_addr . inet_service'): { kind: 'set'; elements: SetElement[] } | { kind: 'setref'; name: string } {
    if (this.accept('@')) return { kind: 'setref', name: this.word('a map name').text };
    const raw = this.rawBraces();
    return { kind: 'set', elements: resolveElements(raw, types, data) };
  }

  private field(): Field {
    const t = this.next();
    const f2 = (what: string): Tok => this.word(what);
    switch (t.text) {
      case 'ip': {
        const f = f2('an ip field');
        const ok = ['saddr', 'daddr', 'protocol', 'length', 'ttl', 'dscp', 'ecn', 'id', 'version', 'hdrlength'];
        if (!ok.includes(f.text)) throw new NftSyntaxError(`ip ${f.text} is not supported`, f);
        return { kind: 'payload', proto: 'ip', field: f.text as Extract<Field, { proto: 'ip' }>['field'] };
      }
      case 'tcp': {
        const f = f2('a tcp field');
        const ok = ['sport', 'dport', 'flags', 'sequence', 'ackseq', 'window'];
        if (!ok.includes(f.text)) throw new NftSyntaxError(`tcp ${f.text} is not supported`, f);
        return { kind: 'payload', proto: 'tcp', field: f.text as Extract<Field, { proto: 'tcp' }>['field'] };
      }
      case 'udp': {
        const f = f2('a udp field');
        if (!['sport', 'dport', 'length'].includes(f.text)) throw new NftSyntaxError(`udp ${f.text} is not supported`, f);
        return { kind: 'payload', proto: 'udp', field: f.text as 'sport' | 'dport' | 'length' };
      }
      case 'th': {
        const f = f2('sport or dport');
        if (!['sport', 'dport'].includes(f.text)) throw new NftSyntaxError(`th ${f.text} is not supported`, f);
        return { kind: 'payload', proto: 'th', field: f.text as 'sport' | 'dport' };
      }
      case 'icmp': {
        const f = f2('an icmp field');
        if (!['type', 'code', 'id', 'sequence'].includes(f.text)) throw new NftSyntaxError(`icmp ${f.text} is not supported`, f);
        return { kind: 'payload', proto: 'icmp', field: f.text as 'type' | 'code' | 'id' | 'sequence' };
      }
      case 'meta': {
        const f = f2('a meta key');
        return this.metaKey(f);
      }
      case 'l4proto':
      case 'nfproto':
      case 'mark':
      case 'pkttype':
      case 'iif':
      case 'oif':
        return this.metaKey(t);
      case 'ct': {
        const ctTok = t;
        let f = f2('a ct key');
        if (f.text === 'original' || f.text === 'reply') {
          const dir = f.text;
          let ip = false;
          f = f2('a ct key');
          if (f.text === 'ip' && (this.is('saddr') || this.is('daddr'))) {
            ip = true;
            f = f2('saddr or daddr');
          }
          if (!['saddr', 'daddr', 'proto-src', 'proto-dst', 'protocol'].includes(f.text)) throw new NftSyntaxError(`ct ${dir} ${f.text} is not supported`, f);
          // nft keeps no direction for the protocol (the same both ways).
          if (f.text === 'protocol') return { kind: 'ct', key: 'protocol' };
          return { kind: 'ct', key: f.text as CtKey, dir, ...(ip ? { ip } : {}) };
        }
        // Without a direction the kernel refuses the tuple keys (nft_ct_get_init: EINVAL).
        if (['saddr', 'daddr', 'proto-src', 'proto-dst'].includes(f.text))
          throw new NftSyntaxError('Could not process rule: Invalid argument', { line: ctTok.line, col: ctTok.col, len: f.col + f.len - ctTok.col });
        if (!['state', 'status', 'mark', 'direction', 'expiration', 'protocol'].includes(f.text)) throw new NftSyntaxError(`ct ${f.text} is not supported`, f);
        return { kind: 'ct', key: f.text as CtKey };
      }
      case 'fib': {
        this.pos--;
        const head = this.fibHead();
        if (head.result === 'oifname') throw new NftSyntaxError('fib ... oifname is supported only compared with names (fib daddr oifname "eth0")', t);
        return { kind: 'fib', flags: head.flags, result: head.result };
      }
      case 'numgen': {
        const m = this.word('random or inc');
        if (m.text !== 'random' && m.text !== 'inc') throw this.unexpected(m, 'random or inc');
        this.expect('mod');
        const mod = this.number('a modulus');
        let offset: number | undefined;
        if (this.accept('offset')) offset = this.number('an offset');
        return { kind: 'numgen', mode: m.text, mod, ...(offset !== undefined ? { offset } : {}) };
      }
      case 'ip6':
      case 'icmpv6':
      case 'sctp':
      case 'dccp':
      case 'ether':
      case 'vlan':
      case 'arp':
      case 'rt':
      case 'socket':
      case 'osf':
      case 'exthdr':
      case 'tcpopt':
      case 'ipsec':
      case 'jhash':
      case 'symhash':
      case 'hash':
      case 'rtclass':
      case 'cgroup':
      case 'dst':
      case 'frag':
      case 'ah':
      case 'esp':
      case 'comp':
      case 'udplite':
      case 'gre':
      case 'igmp':
        throw new NftSyntaxError(`${t.text} expressions are not supported`, t);
    }
    throw this.unexpected(t);
  }

  /** Where the last fib expression was written (from `fib` to its result), for the kernel's errors. */
  private lastFibSpan: Tok | null = null;

  /**
   * `fib FLAG [. FLAG]... oif|oifname|type`: the flags in nft's order, once
   * each, checked as nft's evaluation and the kernel's nft_fib_init check them.
   */
  private fibHead(): { flags: FibFlag[]; result: 'oif' | 'oifname' | 'type'; span: Tok } {
    const fibTok = this.next();
    const seen = new Set<string>();
    const first = this.peek();
    for (;;) {
      const w = this.peek();
      if (w.kind !== 'word' || !(FIB_FLAGS as readonly string[]).includes(w.text)) throw this.unexpected(w, 'saddr or daddr or mark or iif or oif');
      seen.add(w.text);
      this.pos++;
      if (!this.accept('.')) break;
    }
    const last = this.toks[this.pos - 1];
    const r = this.peek();
    if (r.kind !== 'word' || !['oif', 'oifname', 'type'].includes(r.text)) {
      const what = r.kind === 'word' && (FIB_FLAGS as readonly string[]).includes(r.text) ? r.text : describe(r);
      throw new NftSyntaxError(`syntax error, unexpected ${what}, expecting type or oif or oifname`, r);
    }
    this.pos++;
    const flagSpan: Tok = { ...first, len: last.col + last.len - first.col };
    // nft's fib evaluation.
    if (seen.has('saddr') && seen.has('daddr')) throw new NftSyntaxError('fib: saddr and daddr are mutually exclusive', flagSpan);
    if (seen.has('iif') && seen.has('oif')) throw new NftSyntaxError('fib: iif and oif are mutually exclusive', flagSpan);
    if (!seen.has('saddr') && !seen.has('daddr')) throw new NftSyntaxError('fib: need either saddr or daddr', flagSpan);
    const span: Tok = { ...fibTok, len: r.col + r.len - fibTok.col };
    this.lastFibSpan = span;
    const result = r.text as 'oif' | 'oifname' | 'type';
    // nft_fib_init: the device a route goes out of is not asked about the output device.
    if (result !== 'type' && seen.has('oif')) throw new NftSyntaxError('Could not process rule: Invalid argument', span);
    return { flags: FIB_FLAGS.filter((f) => seen.has(f)), result, span };
  }

  private metaKey(f: Tok): Field {
    const ok = ['l4proto', 'protocol', 'nfproto', 'mark', 'length', 'pkttype', 'iif', 'oif'];
    if (!ok.includes(f.text)) throw new NftSyntaxError(`meta ${f.text} is not supported`, f);
    return { kind: 'meta', key: f.text as Extract<Field, { kind: 'meta' }>['key'] };
  }

  private keyExpr(): KeyExpr {
    const first = this.field();
    if (!this.is('.')) return first;
    const fields = [first];
    while (this.accept('.')) fields.push(this.field());
    return { kind: 'concat', fields };
  }

  /** `KEY [& MASK] [OP] RHS`, `KEY vmap ...`. */
  private relational(): Expr {
    const first = this.peek();
    const left = this.keyExpr();
    const types = keyTypes(left);
    if (this.accept('vmap')) return { kind: 'vmap', key: left, map: this.mapRef(types, 'verdict') };
    let mask: number | undefined;
    const type = types[0];
    if (this.accept('&') || this.accept('and')) {
      if (left.kind === 'concat') throw this.unexpected(this.toks[this.pos - 1]);
      mask = this.flagOrValue(type);
    }
    const opTok = this.peek();
    const ops: Record<string, CmpOp> = { '==': 'eq', eq: 'eq', '!=': 'ne', ne: 'ne', '<': 'lt', lt: 'lt', '>': 'gt', gt: 'gt', '<=': 'le', le: 'le', '>=': 'ge', ge: 'ge' };
    let op: CmpOp | undefined = ops[opTok.text];
    if (op !== undefined && (opTok.kind === 'punct' || opTok.kind === 'word')) this.pos++;
    else op = undefined;
    if (this.atEnd()) throw this.unexpected(this.peek());
    if (left.kind === 'fib' && (this.is('exists') || this.is('missing'))) {
      // `fib ... oif exists|missing`: the lookup's present flag (NFTA_FIB_F_PRESENT); the kernel takes it with oif only.
      if (left.result !== 'oif' || mask !== undefined || (op !== undefined && op !== 'eq' && op !== 'ne'))
        throw new NftSyntaxError('Could not process rule: Invalid argument', this.lastFibSpan ?? first);
      const value = this.next().text === 'exists' ? 1 : 0;
      return { kind: 'match', left: { ...left, present: true }, op: op ?? 'eq', right: { kind: 'value', value } };
    }
    if (this.accept('@')) {
      const name = this.word('a set name').text;
      return { kind: 'match', left, op: op ?? 'eq', right: { kind: 'setref', name }, ...(mask !== undefined ? { mask } : {}) };
    }
    if (this.is('{')) {
      if (left.kind === 'ct' && (left.key === 'saddr' || left.key === 'daddr') && left.ip !== true)
        throw new NftSyntaxError('specify either ip or ip6 for address matching', { line: first.line, col: first.col, len: this.toks[this.pos - (op !== undefined ? 2 : 1)].col + this.toks[this.pos - (op !== undefined ? 2 : 1)].len - first.col });
      const raw = this.rawBraces();
      const elements = resolveElements(raw, types, null);
      return { kind: 'match', left, op: op ?? 'eq', right: { kind: 'set', elements }, ...(mask !== undefined ? { mask } : {}) };
    }
    if (left.kind === 'concat') throw new NftSyntaxError('a concatenation is matched against a set', this.peek());
    if (FLAG_TYPES.has(type) && op === undefined && mask === undefined) {
      // `tcp flags syn,ack` (any of), `tcp flags syn / syn,ack` (these of those).
      const v = this.flagList(type);
      if (this.accept('/')) {
        const m = this.flagList(type);
        return { kind: 'match', left, mask: m, op: 'eq', right: { kind: 'value', value: v } };
      }
      return { kind: 'match', left, mask: v, op: 'ne', right: { kind: 'value', value: 0 } };
    }
    const t = this.peek();
    if (FLAG_TYPES.has(type)) {
      const v = this.flagOrValue(type);
      return { kind: 'match', left, op: op ?? 'eq', right: { kind: 'value', value: v }, ...(mask !== undefined ? { mask } : {}) };
    }
    const w = this.word('a value');
    const right = rhsOf(type, w, op === undefined || op === 'eq' || op === 'ne');
    if (right.kind !== 'value' && op !== undefined && op !== 'eq' && op !== 'ne') throw new NftSyntaxError('a range or prefix takes == or !=', t);
    return { kind: 'match', left, op: op ?? 'eq', right, ...(mask !== undefined ? { mask } : {}) };
  }

  /** `syn,ack` → the bits or-ed. */
  private flagList(type: NftType): number {
    let v = 0;
    do v |= this.value(type, this.word('a flag'));
    while (this.accept(','));
    return v;
  }

  /** A number, a name, `a|b`, or `(a|b)`. */
  private flagOrValue(type: NftType): number {
    const paren = this.accept('(');
    let v = this.value(type, this.word('a value'));
    while (this.accept('|')) v |= this.value(type, this.word('a value'));
    if (paren) this.expect(')');
    return v;
  }

  value(type: NftType, t: Tok): number {
    return valueOf(type, t);
  }
}

/** `x >= a x <= b` is the range `x a-b`, as nft's optimizer makes it. */
function mergeRange(exprs: Expr[]): void {
  const b = exprs[exprs.length - 1];
  const a = exprs[exprs.length - 2];
  if (a === undefined || a.kind !== 'match' || b.kind !== 'match' || a.mask !== undefined || b.mask !== undefined) return;
  if (JSON.stringify(a.left) !== JSON.stringify(b.left) || a.op !== 'ge' || b.op !== 'le') return;
  if (a.right.kind !== 'value' || b.right.kind !== 'value') return;
  exprs.splice(exprs.length - 2, 2, { kind: 'match', left: a.left, op: 'eq', right: { kind: 'range', lo: a.right.value, hi: b.right.value } });
}

// ---------------------------------------------------------------- values

export function parseNumber(s: string): number | null {
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s, 16);
  if (/^\d+$/.test(s)) return Number(s);
  return null;
}

function parseSigned(s: string): number | null {
  if (/^-\d+$/.test(s)) return Number(s);
  return parseNumber(s);
}

/**
 * Interface names of `iif`/`oif`, resolved while a batch is read (nft looks
 * them up the same way, when the rule is added).
 */
let ifindexOf: ((name: string) => number | null) | null = null;

export function withInterfaces<T>(lookup: ((name: string) => number | null) | undefined, fn: () => T): T {
  const prev = ifindexOf;
  ifindexOf = lookup ?? null;
  try {
    return fn();
  } finally {
    ifindexOf = prev;
  }
}

/** One value of `type` written as `t`. */
export function valueOf(type: NftType, t: Tok): number {
  const s = t.text;
  if (type === 'ifindex' && (t.kind === 'string' || parseNumber(s) === null)) {
    const i = ifindexOf?.(s) ?? null;
    if (i === null) throw new NftSyntaxError('Interface does not exist', t);
    return i;
  }
  if (type === 'time') {
    const ms = parseTime(s);
    if (ms === null) throw new NftSyntaxError(`wrong time format "${s}"`, t);
    return ms;
  }
  if (type === 'ipv4_addr') {
    const a = parseIp4(s);
    if (a === null) throw new NftSyntaxError(`Could not resolve hostname: ${s} is not an IPv4 address`, t);
    return a;
  }
  const n = parseNumber(s);
  if (n !== null) return n;
  if (type === 'inet_service') {
    const p = ServicesDb.load().port(s, 'tcp') ?? ServicesDb.load().port(s, 'udp');
    if (p === null) throw new NftSyntaxError(`Could not resolve service: Servname not supported for ai_socktype`, t);
    return p;
  }
  const v = symbolValue(type, s);
  if (v === undefined && type === 'fib_addrtype') throw new NftSyntaxError('Could not parse fib address type', t);
  if (v === undefined) throw new NftSyntaxError(`Could not parse ${type.replace('_', ' ')} expression`, t);
  return v;
}

/** A value, `lo-hi` range or `addr/len` prefix. */
function rhsOf(type: NftType, t: Tok, rangeOk: boolean): Rhs {
  const s = t.text;
  if (rangeOk && type === 'ipv4_addr' && s.includes('/')) {
    const [a, l] = s.split('/');
    const addr = valueOf(type, { ...t, text: a });
    const len = Number(l);
    if (!/^\d+$/.test(l) || len > 32) throw new NftSyntaxError(`invalid prefix length ${l}`, t);
    return { kind: 'prefix', addr, len };
  }
  const dash = splitRange(s);
  if (rangeOk && dash !== null) {
    const lo = valueOf(type, { ...t, text: dash[0] });
    const hi = valueOf(type, { ...t, text: dash[1] });
    return { kind: 'range', lo, hi };
  }
  return { kind: 'value', value: valueOf(type, t) };
}

/** `a-b` where neither side is empty; names with dashes (echo-request) are not ranges. */
function splitRange(s: string): [string, string] | null {
  const m = /^(\d[\d.x]*|0x[0-9a-fA-F]+)-(\d[\d.x]*|0x[0-9a-fA-F]+)$/.exec(s);
  if (m) return [m[1], m[2]];
  const i = s.indexOf('-');
  if (i > 0 && /^[a-z]+-[a-z]+$/.test(s) === false && s.split('-').length === 2) return [s.slice(0, i), s.slice(i + 1)];
  return null;
}

/**
 * Reads set elements written as `{ a, b-c, d/n, k . k2, k : data, k timeout 1m }`
 * for keys of `types` and data of `data` (null for a plain set).
 */
export function resolveElements(
  raw: RawElements,
  types: NftType[],
  data: 'verdict' | 'mark' | 'ipv4_addr' | 'inet_service' | 'integer' | 'ipv4_addr . inet_service' | null,
): SetElement[] {
  const toks = raw.toks.filter((t) => t.kind !== 'nl');
  let i = 1; // after `{`
  const out: SetElement[] = [];
  const peek = (): Tok => toks[i];
  const need = (what: string): Tok => {
    const t = toks[i];
    if (t === undefined || (t.kind !== 'word' && t.kind !== 'string')) throw new NftSyntaxError(`syntax error, unexpected ${t === undefined ? 'end of file' : describe(t)}, expecting ${what}`, t ?? toks[toks.length - 1]);
    i++;
    return t;
  };
  const isP = (s: string): boolean => peek()?.kind === 'punct' && peek().text === s;
  if (isP('}')) return out;
  for (;;) {
    const parts: Rhs[] = [];
    for (let k = 0; ; k++) {
      const ty = types[k];
      if (ty === undefined) throw new NftSyntaxError('too many fields in this element', peek());
      const w = need('a value');
      parts.push(rhsOf(ty, w, true));
      if (peek()?.kind === 'word' && peek().text === '.') {
        i++;
        continue;
      }
      if (k + 1 !== types.length) throw new NftSyntaxError(`this element has ${k + 1} fields, the set ${types.length}`, w);
      break;
    }
    const el = elementOf(parts, toks[i - 1]);
    out.push(el);
    while (peek()?.kind === 'word' && (peek().text === 'timeout' || peek().text === 'expires' || peek().text === 'comment')) {
      const k = toks[i++].text;
      const v = need('a value');
      if (k === 'timeout') {
        const ms = parseTime(v.text);
        if (ms === null) throw new NftSyntaxError(`wrong time format "${v.text}"`, v);
        el.timeoutMs = ms;
      } else if (k === 'comment') el.comment = v.text;
    }
    if (data !== null) {
      if (!isP(':')) throw new NftSyntaxError(`syntax error, unexpected ${peek() ? describe(peek()) : 'end of file'}, expecting ':'`, peek());
      i++;
      const d = need(data === 'verdict' ? 'a verdict' : 'a value');
      if (data === 'verdict') {
        const v = d.text;
        let verdict: VerdictAst;
        if (v === 'accept' || v === 'drop' || v === 'continue' || v === 'return') verdict = { kind: v };
        else if (v === 'jump' || v === 'goto') verdict = { kind: v, chain: need('a chain name').text };
        else throw new NftSyntaxError(`syntax error, unexpected ${describe(d)}, expecting a verdict`, d);
        el.data = verdict;
      } else if (data === 'ipv4_addr . inet_service') {
        const a = valueOf('ipv4_addr', d);
        if (!(peek()?.kind === 'word' && peek().text === '.')) throw new NftSyntaxError("syntax error, expecting '.' and a port", peek() ?? d);
        i++;
        el.data = a * 65536 + valueOf('inet_service', need('a port'));
      } else el.data = valueOf(data === 'integer' ? 'integer' : data, d);
    }
    if (isP(',')) {
      i++;
      if (isP('}')) break;
      continue;
    }
    if (isP('}')) break;
    throw new NftSyntaxError(`syntax error, unexpected ${peek() ? describe(peek()) : 'end of file'}, expecting comma or '}'`, peek() ?? toks[toks.length - 1]);
  }
  return out;
}

function elementOf(parts: Rhs[], t: Tok): SetElement {
  if (parts.length === 1) {
    const p = parts[0];
    switch (p.kind) {
      case 'value':
        return { key: p.value };
      case 'range':
        return { key: p.lo, end: p.hi };
      case 'prefix': {
        const mask = p.len === 0 ? 0 : (0xffffffff << (32 - p.len)) >>> 0;
        return { key: (p.addr & mask) >>> 0, end: ((p.addr & mask) | (~mask >>> 0)) >>> 0 };
      }
      default:
        throw new NftSyntaxError('unexpected element', t);
    }
  }
  const key: number[] = [];
  let end: number[] | undefined;
  for (const p of parts) {
    if (p.kind === 'value') {
      key.push(p.value);
      end?.push(p.value);
    } else if (p.kind === 'range' || p.kind === 'prefix') {
      throw new NftSyntaxError('ranges in concatenations are not supported', t);
    }
  }
  return end === undefined ? { key } : { key, end };
}

/** Parses a whole input (command line joined by spaces, or a file). */
export function parseNft(text: string): NftCommand[] {
  return NftParser.parse(text);
}

export { fieldType };
