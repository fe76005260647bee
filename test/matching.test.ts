import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { hungarian, imageSide, matchRows, psnrPeak, reconstructionMetrics } from '../src/analysis/matching.js';
import { renderDigitsPng } from '../src/node/digits-png.js';
import { Rng } from '../src/core/rng.js';

/** Brute force over all permutations: the minimum total cost (Infinity if every one is forbidden). */
function bruteForce(cost: number[], n: number): number {
  let best = Infinity;
  const perm = Array.from({ length: n }, (_, i) => i);
  const rec = (i: number, acc: number) => {
    if (i === n) {
      best = Math.min(best, acc);
      return;
    }
    for (let j = i; j < n; j++) {
      [perm[i], perm[j]] = [perm[j], perm[i]];
      rec(i + 1, acc + cost[i * n + perm[i]]);
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
  };
  rec(0, 0);
  return best;
}

describe('hungarian', () => {
  it('solves a known 3×3 case', () => {
    // Optimum: 0→1 (1), 1→0 (2), 2→2 (2) = 5.
    const r = hungarian([4, 1, 3, 2, 0, 5, 3, 2, 2], 3);
    expect(r.assignment).toEqual([1, 0, 2]);
    expect(r.cost).toBe(5);
    expect(r.feasible).toBe(true);
  });

  it('matches brute force on random matrices, with and without forbidden pairs', () => {
    const rng = new Rng(7);
    for (let t = 0; t < 300; t++) {
      const n = 1 + rng.int(6);
      const cost = Array.from({ length: n * n }, () => (rng.uniform() < 0.25 ? Infinity : Math.round(rng.uniform() * 100) / 10));
      const r = hungarian(cost, n);
      const best = bruteForce(cost, n);
      expect(new Set(r.assignment).size, 'assignment is a permutation').toBe(n);
      expect(r.feasible).toBe(Number.isFinite(best));
      if (r.feasible) expect(r.cost).toBeCloseTo(best, 9);
    }
  });

  it('rejects NaN costs and wrong sizes', () => {
    expect(() => hungarian([NaN], 1)).toThrow(/NaN/);
    expect(() => hungarian([1, 2, 3], 2)).toThrow(/length 3/);
  });
});

describe('matchRows and metrics', () => {
  it('undoes a row permutation', () => {
    const truth = [1, 2, 3, 4, 5, 6]; // 3 rows × 2
    const recon = [5, 6, 1, 2, 3, 4];
    const m = reconstructionMetrics(recon, truth, { B: 3, D: 2 });
    expect(m.assignment).toEqual([2, 0, 1]);
    expect(m.relativeError).toBe(0);
    expect(m.mse).toBe(0);
    expect(m.success).toBe(true);
  });

  it('does not swap rows whose labels differ, even when the swap is cheaper', () => {
    const truth = [0, 10];
    const recon = [10.1, 0.1]; // a swap would fit almost exactly
    const y = [1, 0];
    const free = matchRows(recon, truth, { B: 2, D: 1 });
    expect(free.assignment).toEqual([1, 0]);
    const m = reconstructionMetrics(recon, truth, { B: 2, D: 1, K: 1, reconLabels: y, trueLabels: y });
    expect(m.assignment).toEqual([0, 1]);
    expect(m.labelConsistent).toBe(true);
    expect(m.relativeError).toBeCloseTo(Math.sqrt((10.1 ** 2 + 9.9 ** 2) / 100), 12);
    expect(m.success).toBe(false);
    // Equal labels may swap.
    const same = reconstructionMetrics(recon, truth, { B: 2, D: 1, K: 1, reconLabels: [1, 1], trueLabels: [1, 1] });
    expect(same.assignment).toEqual([1, 0]);
  });

  it('flags labellings that admit no one-to-one matching and never calls them a success', () => {
    const truth = [0, 10];
    const m = reconstructionMetrics([0, 10], truth, { B: 2, D: 1, K: 1, reconLabels: [1, 1], trueLabels: [1, 0] });
    expect(m.labelConsistent).toBe(false);
    expect(m.relativeError).toBe(0);
    expect(m.success).toBe(false);
  });

  it('computes relative error, MSE and PSNR', () => {
    const truth = [0, 1, 0, 1];
    const recon = [0, 0.9, 0, 1];
    const m = reconstructionMetrics(recon, truth, { B: 1, D: 4, psnrPeak: psnrPeak(truth) });
    expect(m.mse).toBeCloseTo(0.01 / 4, 15);
    expect(m.relativeError).toBeCloseTo(0.1 / Math.sqrt(2), 15);
    expect(m.psnr).toBeCloseTo(10 * Math.log10(1 / 0.0025), 12);
    expect(reconstructionMetrics(truth, truth, { B: 1, D: 4, psnrPeak: 1 }).psnr).toBe(300);
    expect(imageSide(64)).toBe(8);
    expect(imageSide(784)).toBe(28);
    expect(imageSide(16)).toBeUndefined();
    expect(imageSide(65)).toBeUndefined();
  });
});

describe('digits PNG', () => {
  it('draws true and reconstructed 8×8 images side by side', () => {
    const B = 2;
    const truth = Array.from({ length: B * 64 }, (_, i) => (i % 64) / 63);
    const recon = truth.map((v) => 1 - v);
    const png = PNG.sync.read(renderDigitsPng({ B, D: 64, truth, reconstruction: recon, scale: 2 }));
    expect(png.width).toBe(4 + 2 * (16 + 4));
    expect(png.height).toBe(4 + B * (16 + 4));
    const px = (x: number, y: number) => png.data[4 * (y * png.width + x)];
    // Top-left pixel of the first true image is value 0 → white; of the reconstruction → 1 → black.
    expect(px(4, 4)).toBe(255);
    expect(px(4 + 20, 4)).toBe(0);
    expect(() => renderDigitsPng({ B: 1, D: 5, reconstruction: [1, 2, 3, 4, 5] })).toThrow(/square images/);
  });
});
