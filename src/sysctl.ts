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

export class SysctlError extends Error {}

export class Sysctl {
  private readonly knobs = new Map<string, SysctlKnob>();

  register(name: string, knob: SysctlKnob): void {
    this.knobs.set(name, knob);
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
    return [...this.knobs.keys()].sort();
  }

  has(name: string): boolean {
    return this.knobs.has(normalise(name));
  }

  get(name: string): number {
    const k = this.knobs.get(normalise(name));
    if (!k) throw new SysctlError(`sysctl: cannot stat /proc/sys/${normalise(name).replace(/\./g, '/')}: No such file or directory`);
    return k.get();
  }

  set(name: string, value: string): number {
    const n = normalise(name);
    const k = this.knobs.get(n);
    if (!k) throw new SysctlError(`sysctl: cannot stat /proc/sys/${n.replace(/\./g, '/')}: No such file or directory`);
    const v = Number(value.trim());
    if (!/^-?\d+$/.test(value.trim()) || v < k.min || v > k.max)
      throw new SysctlError(`sysctl: setting key "${n}": Invalid argument (expected an integer from ${k.min} to ${k.max})`);
    k.set(v);
    return k.get();
  }
}

/** `net/ipv4/ipfrag_time` and `net.ipv4.ipfrag_time` are the same key, as in sysctl(8). */
function normalise(name: string): string {
  return name.replace(/\//g, '.');
}
