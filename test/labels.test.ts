import { describe, expect, it } from 'vitest';
import { inferLabels, inferColumnCounts, sameLabelingUpToOrder } from '../src/analysis/labels.js';
import { victimGradient, type Layer, type Reduction } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';

function randomLayer(rng: Rng, B: number, D: number, K: number, reduction: Reduction): { layer: Layer; x: Float64Array } {
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => rng.normal());
  const y = Float64Array.from({ length: B * K }, () => (rng.uniform() < 0.5 ? 0 : 1));
  const x = Float64Array.from({ length: B * D }, () => 2 * rng.normal());
  return { layer: { B, D, K, W, b, y, reduction }, x };
}

function canonical(y: ArrayLike<number>, B: number, K: number): string {
  return Array.from({ length: B }, (_, n) => Array.from({ length: K }, (_, k) => y[n * K + k]).join('')).sort().join('|');
}

describe('label inference from ∇b', () => {
  it('is exact on 1000 random B=1 scenarios', () => {
    const rng = new Rng(2024);
    for (let t = 0; t < 1000; t++) {
      const D = 1 + rng.int(8);
      const K = 1 + rng.int(6);
      const { layer, x } = randomLayer(rng, 1, D, K, t % 2 ? 'sum' : 'mean');
      const g = victimGradient(layer, x);
      const inf = inferLabels(g.b, 1, K, layer.reduction);
      expect(inf.exact).toBe(true);
      expect(inf.countsDetermined, `scenario ${t}`).toBe(true);
      expect(inf.count).toBe(1);
      expect(Array.from(inf.labelings[0]), `scenario ${t}`).toEqual(Array.from(layer.y));
    }
  });

  it('B>1: every column count and the candidate labellings contain the truth', () => {
    const rng = new Rng(99);
    let determined = 0;
    let ambiguous = 0;
    let tooMany = 0;
    for (let t = 0; t < 200; t++) {
      const B = 2 + rng.int(3);
      const K = 1 + rng.int(3);
      const D = 1 + rng.int(4);
      const { layer, x } = randomLayer(rng, B, D, K, t % 3 ? 'mean' : 'sum');
      const g = victimGradient(layer, x);
      const inf = inferLabels(g.b, B, K, layer.reduction, 2000);
      for (let k = 0; k < K; k++) {
        let ones = 0;
        for (let n = 0; n < B; n++) ones += layer.y[n * K + k];
        expect(inf.columns[k].candidates, `scenario ${t} column ${k}`).toContain(ones);
        if (inf.columns[k].determined) determined++;
        else ambiguous++;
      }
      if (inf.tooMany) {
        tooMany++;
        continue;
      }
      expect(inf.count).toBe(inf.labelings.length);
      expect(inf.labelings.some((y) => sameLabelingUpToOrder(y, layer.y, B, K)), `scenario ${t}`).toBe(true);
      // Each candidate's column counts are candidates, and no two are the same up to row order.
      const keys = new Set(inf.labelings.map((y) => canonical(y, B, K)));
      expect(keys.size).toBe(inf.labelings.length);
      for (const y of inf.labelings) {
        for (let k = 0; k < K; k++) {
          let ones = 0;
          for (let n = 0; n < B; n++) ones += y[n * K + k];
          expect(inf.columns[k].candidates).toContain(ones);
        }
      }
    }
    // Both outcomes occur, so the test exercises ambiguity as well as determination.
    expect(determined).toBeGreaterThan(0);
    expect(ambiguous).toBeGreaterThan(0);
    expect(tooMany).toBeLessThan(20);
  });

  it('reads the counts off N·∇b exactly as docs/math.md says', () => {
    // sum (N = 1), B = 2: v = g. v = −1.5 ⇒ c₁ ∈ (1.5, 3.5) ∩ [0, 2] = {2}; v = −0.5 ⇒ {1, 2}; v = 0.5 ⇒ {0, 1}.
    const cols = inferColumnCounts([-1.5, -0.5, 0.5], 2, 3, 'sum');
    expect(cols.map((c) => c.candidates)).toEqual([[2], [1, 2], [0, 1]]);
    expect(cols.map((c) => c.determined)).toEqual([true, false, false]);
    // mean, B = 2, K = 3 ⇒ N = 6: g = −0.25 ⇒ v = −1.5.
    const mean = inferColumnCounts([-0.25, 0.01, 0.01], 2, 3, 'mean');
    expect(mean[0].v).toBeCloseTo(-1.5, 12);
    expect(mean[0].candidates).toEqual([2]);
    // Column counts {2}, {1,2}, {0,1} at B = 2: rows (1,a,c) with (Σa, Σc) ∈ {(1,0), (1,1)×2, (2,0), (2,1)} ⇒ 5 multisets.
    const inf = inferLabels([-1.5, -0.5, 0.5], 2, 3, 'sum');
    expect(inf.count).toBe(5);
    expect(() => inferColumnCounts([5], 2, 1, 'sum')).toThrow(/gradient.bias\[0\]/);
  });

  it('states when the candidate labellings are too many to attack', () => {
    const K = 10;
    const B = 8;
    const gb = new Float64Array(K).fill(0); // every count ambiguous: c₁ ∈ (0, 8) ⇒ 1..7
    const inf = inferLabels(gb, B, K, 'sum', 16);
    expect(inf.tooMany).toBe(true);
    expect(inf.count).toBeNull();
    expect(inf.labelings).toHaveLength(0);
    expect(inf.summary).toMatch(/more than 16/);
  });
});
