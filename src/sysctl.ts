/**
 * The stack's tunables under their Linux sysctl names, so `sysctl -w
 * net.ipv4.ipfrag_time=2` means here what it means on a Linux host. Each layer
 * registers the knobs it owns; values are integers, as most of Linux's are.
 */
export interface SysctlKnob {
  get(): number;
  set(v: number): void;
  min: number;
  max: number;
}

/**
 * A knob of several integers, like net.ipv4.ip_local_port_range. Linux reads
 * them separated by white space and prints them separated by tabs.
 */
export interface SysctlVectorKnob {
  count: number;
  get(): number[];
  set(v: number[]): void;
  min: number;
  max: number;
  /** Rejects a combination of values (e.g. low above high), else null. */
  check?(v: number[]): string | null;
}

/** A knob that holds a word, like net.ipv4.tcp_congestion_control. */
export interface SysctlTextKnob {
  get(): string;
  /** Returns an error message for a value it refuses, else null. */
  set(v: string): string | null;
  /** Read-only knobs (tcp_available_congestion_control) refuse every write. */
  readOnly?: boolean;
}

export class SysctlError extends Error {}

export class Sysctl {
  private readonly knobs = new Map<string, SysctlKnob>();
  private readonly vectors = new Map<string, SysctlVectorKnob>();
  private readonly texts = new Map<string, SysctlTextKnob>();

  register(name: string, knob: SysctlKnob): void {
    this.knobs.set(name, knob);
  }

  registerVector(name: string, knob: SysctlVectorKnob): void {
    this.vectors.set(name, knob);
  }

  registerText(name: string, knob: SysctlTextKnob): void {
    this.texts.set(name, knob);
  }

  /** Removes a knob (its device went away, as /proc/sys/net/ipv4/conf/DEV does). */
  unregister(name: string): void {
    this.knobs.delete(name);
    this.vectors.delete(name);
    this.texts.delete(name);
  }

  /** A yes/no knob (0 or 1) backed by a boolean property. */
  flag<T extends object, K extends keyof T & string>(name: string, obj: T, key: K): void {
    this.register(name, {
      get: () => ((obj[key] as unknown as boolean) ? 1 : 0),
      set: (v) => {
        (obj[key] as unknown as boolean) = v !== 0;
      },
      min: 0,
      max: 1,
    });
  }

  /** A knob backed by a property of `obj`. */
  field<T extends object, K extends keyof T & string>(name: string, obj: T, key: K, min: number, max: number, scale = 1): void {
    this.register(name, {
      get: () => (obj[key] as unknown as number) / scale,
      set: (v) => {
        (obj[key] as unknown as number) = v * scale;
      },
      min,
      max,
    });
  }

  names(): string[] {
    return [...this.knobs.keys(), ...this.vectors.keys(), ...this.texts.keys()].sort();
  }

  has(name: string): boolean {
    const n = normalise(name);
    return this.knobs.has(n) || this.vectors.has(n) || this.texts.has(n);
  }

  /** A one-integer knob's value. */
  get(name: string): number {
    const n = normalise(name);
    const k = this.knobs.get(n);
    if (!k) {
      if (this.vectors.has(n)) throw new SysctlError(`sysctl: ${n} holds ${this.vectors.get(n)!.count} integers`);
      throw notFound(n);
    }
    return k.get();
  }

  /** The value as sysctl(8) prints it (several integers separated by tabs). */
  text(name: string): string {
    const n = normalise(name);
    const t = this.texts.get(n);
    if (t) return t.get();
    const v = this.vectors.get(n);
    return v ? v.get().join('\t') : String(this.get(n));
  }

  /** Sets a knob from its text and returns the new value as `text` prints it. */
  set(name: string, value: string): string {
    const n = normalise(name);
    const txt = this.texts.get(n);
    if (txt) {
      if (txt.readOnly) throw new SysctlError(`sysctl: permission denied on key "${n}"`);
      const why = txt.set(value.trim());
      if (why !== null) throw new SysctlError(`sysctl: setting key "${n}": ${why}`);
      return this.text(n);
    }
    const vec = this.vectors.get(n);
    if (vec) {
      const parts = value.trim().split(/\s+/);
      const nums = parts.map(Number);
      const bad = `sysctl: setting key "${n}": Invalid argument (expected ${vec.count} integers from ${vec.min} to ${vec.max})`;
      if (parts.length !== vec.count || parts.some((p) => !/^-?\d+$/.test(p)) || nums.some((x) => x < vec.min || x > vec.max))
        throw new SysctlError(bad);
      const why = vec.check?.(nums) ?? null;
      if (why !== null) throw new SysctlError(`sysctl: setting key "${n}": Invalid argument (${why})`);
      vec.set(nums);
      return this.text(n);
    }
    const k = this.knobs.get(n);
    if (!k) throw notFound(n);
    const v = Number(value.trim());
    if (!/^-?\d+$/.test(value.trim()) || v < k.min || v > k.max)
      throw new SysctlError(`sysctl: setting key "${n}": Invalid argument (expected an integer from ${k.min} to ${k.max})`);
    k.set(v);
    return this.text(n);
  }
}

function notFound(n: string): SysctlError {
  return new SysctlError(`sysctl: cannot stat /proc/sys/${n.replace(/\./g, '/')}: No such file or directory`);
}

/** `net/ipv4/ipfrag_time` and `net.ipv4.ipfrag_time` are the same key, as in sysctl(8). */
function normalise(name: string): string {
  return name.replace(/\//g, '.');
}
