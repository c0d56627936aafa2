/**
 * A small deterministic PRNG (generated checkpoints, seeded sampling): xoshiro128** seeded through
 * splitmix32, plus Box-Muller normals. Only 32-bit integer math, so it is fast in JS
 * and gives the same stream on every platform.
 */

/** FNV-1a over a string's UTF-16 code units, mixed with a seed. */
export function hashString(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number) {
    const st = { s: seed >>> 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** Stream for one named object (e.g. a tensor), independent of generation order. */
  static forName(seed: number, name: string): Rng {
    return new Rng(hashString(name, Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x5bd1e995));
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in (0, 1), never 0 (safe for log). */
  nextFloat(): number {
    return ((this.nextU32() >>> 8) + 0.5) / 16777216;
  }

  /** Standard normal (Box-Muller, caching the second value). */
  nextNormal(): number {
    const s = this.spare;
    if (s !== undefined) {
      this.spare = undefined;
      return s;
    }
    const u1 = this.nextFloat();
    const u2 = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * u2;
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  /** Fills `out` with mean + std * N(0, 1). */
  fillNormal(out: Float32Array, mean: number, std: number): void {
    const n = out.length;
    let i = 0;
    if (this.spare !== undefined && n > 0) {
      out[i++] = mean + std * this.spare;
      this.spare = undefined;
    }
    for (; i + 1 < n; i += 2) {
      const u1 = this.nextFloat();
      const u2 = this.nextFloat();
      const r = Math.sqrt(-2 * Math.log(u1));
      const th = 2 * Math.PI * u2;
      out[i] = mean + std * r * Math.cos(th);
      out[i + 1] = mean + std * r * Math.sin(th);
    }
    if (i < n) out[i] = mean + std * this.nextNormal();
  }

  /** Integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
