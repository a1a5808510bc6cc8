/**
 * A small deterministic pseudo-random generator (mulberry32) for seeded test data and fuzzing:
 * the same seed gives the same sequence, so a failure reproduces from the seed in its report.
 * Returns numbers in [0, 1), like Math.random (tests only).
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
