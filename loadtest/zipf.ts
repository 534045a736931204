// Song choice like a venue at night: a few hits are sung in many rooms, a long tail once each.
// Zipf popularity over the library (rank k is chosen with weight 1/k^s) from a seeded generator,
// so two runs (ours and nginx's) see the same sequence of choices. Pure: no I/O, no clocks.

/** A small, fast, seedable PRNG (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Zipf {
  /** Cumulative probability of ranks 0..i. */
  private readonly cumulative: Float64Array;

  constructor(
    readonly count: number,
    /** The exponent: 0 is uniform, 1 the classic curve, larger concentrates on the top ranks. */
    readonly exponent: number,
  ) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('Zipf needs at least one item');
    if (!(exponent >= 0) || !Number.isFinite(exponent)) throw new RangeError('Zipf exponent must be a finite number ≥ 0');
    this.cumulative = new Float64Array(count);
    let sum = 0;
    for (let k = 0; k < count; k++) {
      sum += 1 / (k + 1) ** exponent;
      this.cumulative[k] = sum;
    }
    for (let k = 0; k < count; k++) this.cumulative[k]! /= sum;
    this.cumulative[count - 1] = 1;
  }

  /** Probability of rank k (0-based). */
  probability(k: number): number {
    return this.cumulative[k]! - (k > 0 ? this.cumulative[k - 1]! : 0);
  }

  /** A rank (0-based) for a uniform draw u in [0, 1). */
  sample(u: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
