import { describe, expect, it } from 'vitest';
import { type Layer, bceLoss, matchCosine, matchL2, victimGradient, softplus, sigmoid } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';

function randomLayer(rng: Rng, B: number, D: number, K: number, reduction: 'mean' | 'sum' = 'mean'): Layer {
  return {
    B, D, K, reduction,
    W: Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D)),
    b: Float64Array.from({ length: K }, () => 0.1 * rng.normal()),
    y: Float64Array.from({ length: B * K }, () => (rng.uniform() < 0.5 ? 0 : 1)),
  };
}
const randn = (rng: Rng, n: number) => Float64Array.from({ length: n }, () => rng.normal());

/** Central difference of f at x along every coordinate. */
function centralDiff(f: (x: Float64Array) => number, x: Float64Array, h: number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice(); xp[i] += h;
    const xm = x.slice(); xm[i] -= h;
    g[i] = (f(xp) - f(xm)) / (2 * h);
  }
  return g;
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i] - b[i])); den = Math.max(den, Math.abs(b[i])); }
  return num / den;
}

describe('float64 reference', () => {
  it('softplus and sigmoid are stable at extreme logits', () => {
    expect(softplus(1000)).toBe(1000);
    expect(softplus(-1000)).toBe(0);
    expect(sigmoid(-1000)).toBe(0);
    expect(sigmoid(1000)).toBe(1);
    expect(softplus(0)).toBeCloseTo(Math.LN2, 15);
  });

  for (const reduction of ['mean', 'sum'] as const) {
    for (const [B, D, K] of [[1, 1, 1], [2, 1, 1], [3, 5, 2], [4, 7, 3]]) {
      it(`victim gradient = finite differences of BCE in W and b (${reduction}, B=${B} D=${D} K=${K})`, () => {
        const rng = new Rng(B * 100 + D * 10 + K);
        const layer = randomLayer(rng, B, D, K, reduction);
        const x = randn(rng, B * D);
        const g = victimGradient(layer, x);
        const fdW = centralDiff((W) => bceLoss({ ...layer, W }, x), Float64Array.from(layer.W), 1e-5);
        const fdb = centralDiff((b) => bceLoss({ ...layer, b }, x), Float64Array.from(layer.b), 1e-5);
        expect(maxRel(g.W, fdW)).toBeLessThan(1e-7);
        expect(maxRel(g.b, fdb)).toBeLessThan(1e-7);
      });

      it(`∇ₓ′L_r closed form = finite differences (${reduction}, B=${B} D=${D} K=${K})`, () => {
        const rng = new Rng(7 + B * 100 + D * 10 + K);
        const layer = randomLayer(rng, B, D, K, reduction);
        const target = victimGradient(layer, randn(rng, B * D));
        const xf = randn(rng, B * D);
        const { grad, loss } = matchL2(layer, target, xf);
        expect(loss).toBeGreaterThan(0);
        const fd = centralDiff((x) => matchL2(layer, target, x).loss, xf, 1e-5);
        expect(maxRel(grad, fd)).toBeLessThan(1e-6);
      });

      it(`cosine matching gradient = finite differences (${reduction}, B=${B} D=${D} K=${K})`, () => {
        const rng = new Rng(11 + B * 100 + D * 10 + K);
        const layer = randomLayer(rng, B, D, K, reduction);
        const target = victimGradient(layer, randn(rng, B * D));
        const xf = randn(rng, B * D);
        const { grad } = matchCosine(layer, target, xf);
        const fd = centralDiff((x) => matchCosine(layer, target, x).loss, xf, 1e-5);
        expect(maxRel(grad, fd)).toBeLessThan(1e-6);
      });
    }
  }

  it('L_r is exactly zero at the truth', () => {
    const rng = new Rng(3);
    const layer = randomLayer(rng, 3, 4, 2);
    const x = randn(rng, 12);
    const r = matchL2(layer, victimGradient(layer, x), x);
    expect(r.loss).toBe(0);
    expect(Math.max(...r.grad.map(Math.abs))).toBe(0);
  });
});
