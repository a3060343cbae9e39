import fs from 'node:fs';

/**
 * Port names from /etc/services, as getservbyport(3) and getservbyname(3) give
 * them to ss: the first entry for a port and protocol wins; names include
 * the aliases.
 */
export class ServicesDb {
  private readonly byPort = new Map<string, string>();
  private readonly byName = new Map<string, number>();

  constructor(text: string) {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      if (line === '') continue;
      const [name, pp, ...aliases] = line.split(/\s+/);
      const m = /^(\d+)\/(\w+)$/.exec(pp ?? '');
      if (!m) continue;
      const port = Number(m[1]);
      const proto = m[2];
      const pk = `${port}/${proto}`;
      if (!this.byPort.has(pk)) this.byPort.set(pk, name);
      for (const n of [name, ...aliases]) {
        const nk = `${n}/${proto}`;
        if (!this.byName.has(nk)) this.byName.set(nk, port);
      }
    }
  }

  /** getservbyport: the name of `port` for `proto`, or null. */
  name(port: number, proto: string): string | null {
    return this.byPort.get(`${port}/${proto}`) ?? null;
  }

  /** getservbyname: the port called `name` for `proto`, or null. */
  port(name: string, proto: string): number | null {
    return this.byName.get(`${name}/${proto}`) ?? null;
  }

  private static system: ServicesDb | null = null;

  /** The machine's /etc/services, read once (empty when there is none). */
  static load(path = '/etc/services'): ServicesDb {
    if (ServicesDb.system === null) {
      let text = '';
      try {
        text = fs.readFileSync(path, 'utf8');
      } catch {
        /* no services database: every port prints as a number */
      }
      ServicesDb.system = new ServicesDb(text);
    }
    return ServicesDb.system;
  }
}
