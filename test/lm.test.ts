// The second-order attack on the float64 path: the structured normal equations, the LM step, the
// subspace reduction and the regimes, and exact recovery with default options.
import { describe, expect, it } from 'vitest';
import { type AttackResult, attack, planAttack } from '../src/attack/attack.js';
import { loadDataset } from '../src/node/data-node.js';
import { simulateScenario } from '../src/core/datasets.js';
import { diagnose, jacobian } from '../src/analysis/diagnose.js';
import { createCpuEngine } from '../src/attack/engine.js';
import { DlgInputError } from '../src/core/errors.js';
import { LM_LAMBDA0, LM_LAMBDA_MAX, choleskySolve, lmRefine, lmStep, normalMatrix } from '../src/analysis/lm.js';
import { gradientNormSq, matchL2 } from '../src/core/model.js';
import { analyseScenario, reduceScenario } from '../src/analysis/reduce.js';
import { Rng } from '../src/core/rng.js';
import { type Scenario, makeScenario } from '../src/core/scenario.js';
import { expectClose } from './helpers.js';

const gaussian = (B: number, D: number, K: number, seed: number, reduction: 'mean' | 'sum' = 'mean') =>
  simulateScenario({ dataset: 'gaussian', B, D, K, seed, reduction, biasScale: seed % 2 ? 0.5 : 0 });

function denseJtJ(s: Scenario, x: ArrayLike<number>): Float64Array {
  const J = jacobian(s, x);
  const rows = s.D * s.K + s.K;
  const n = s.B * s.D;
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let r = 0; r < rows; r++) acc += J[r * n + i] * J[r * n + j];
    A[i * n + j] = acc;
  }
  return A;
}

describe('structured normal equations', () => {
  it('JᵀJ in O(n²K) equals the dense product through the Jacobian, away from and at the truth', () => {
    const rng = new Rng(3);
    for (const [B, D, K, red] of [[1, 1, 1, 'mean'], [2, 3, 2, 'sum'], [3, 5, 4, 'mean'], [4, 2, 6, 'sum'], [5, 7, 3, 'mean']] as const) {
      const s = gaussian(B, D, K, B * 10 + D, red);
      for (const x of [s.inputs!, Float64Array.from({ length: B * D }, () => 2 * rng.normal())]) {
        const A = normalMatrix(s, x);
        const ref = denseJtJ(s, x);
        let scale = 0;
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        expectClose(A, ref, { abs: 1e-13 * scale, rel: 1e-12 }, `JᵀJ (${B},${D},${K})`);
        for (let i = 0; i < B * D; i++) for (let j = 0; j < B * D; j++) expect(A[i * B * D + j]).toBe(A[j * B * D + i]);
      }
    }
  });

  it('Cholesky solves an SPD system and refuses an indefinite one', () => {
    const M = Float64Array.from([4, 2, 0, 2, 5, 1, 0, 1, 3]);
    const z = new Float64Array(3);
    expect(choleskySolve(Float64Array.from(M), 3, [2, 3, 4], z)).toBe(true);
    const back = [0, 1, 2].map((i) => M[i * 3] * z[0] + M[i * 3 + 1] * z[1] + M[i * 3 + 2] * z[2]);
    expectClose(back, [2, 3, 4], { abs: 1e-14, rel: 1e-14 }, 'M·z');
    expect(choleskySolve(Float64Array.from([1, 2, 2, 1]), 2, [1, 1], new Float64Array(2))).toBe(false);
    expect(choleskySolve(Float64Array.from([0, 0, 0, 0]), 2, [1, 1], new Float64Array(2))).toBe(false);
  });
});

describe('Levenberg–Marquardt steps', () => {
  it('a step never increases the loss; λ follows Nielsen: ×max(1/3, 1 − (2ρ − 1)³) on accepted steps, ×ν on rejected ones', () => {
    const s = gaussian(3, 3, 4, 7);
    const rng = new Rng(1);
    const x = Float64Array.from({ length: 9 }, () => rng.normal());
    const state = { lambda: LM_LAMBDA0, nu: 2 };
    let v = matchL2(s, s.gradient, x);
    for (let it = 0; it < 30; it++) {
      const lam = state.lambda;
      const res = lmStep(s, s.gradient, x, v.loss, v.grad, state);
      if (res.accepted) {
        expect(res.accepted.loss).toBeLessThan(v.loss);
        expect(state.lambda).toBeLessThanOrEqual(2 * lam);
        expect(state.lambda).toBeGreaterThanOrEqual(Math.max(lam / 3, 1e-15) * (1 - 1e-12));
        expect(state.nu).toBe(2);
        v = res.accepted;
      } else {
        expect(state.lambda).toBeGreaterThan(lam);
      }
      expect(matchL2(s, s.gradient, x).loss).toBe(v.loss);
    }
  });

  it('from near the truth it converges quadratically to machine precision', () => {
    const s = gaussian(4, 4, 4, 11);
    const x = Float64Array.from(s.inputs!, (v, i) => v + 1e-3 * Math.sin(i + 1));
    const g = gradientNormSq(s.gradient);
    const r = lmRefine(s, s.gradient, x, 20, 1e-30 * g);
    expect(r.loss).toBeLessThan(1e-28 * g);
    expect(r.iterations).toBeLessThanOrEqual(8);
    let err = 0;
    for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - s.inputs![i]));
    expect(err).toBeLessThan(1e-10);
  });

  it('a restart with a singular system stalls alone: λ overflows, status 3, frozen at its best point', async () => {
    // All labels 1 and a start where every logit is ~1000: σ rounds to 1, so e = s = 0 and J = 0 while
    // L_r = ‖G‖² + ‖g‖² > 0. Every damped system is singular, every step is refused, λ grows past its cap.
    const base = gaussian(2, 2, 2, 5);
    const s = makeScenario({ ...base, y: new Float64Array(4).fill(1) }, base.inputs!);
    const [w00, w01, w10, w11] = s.W; // x·W = (1, 1) ⇒ x = (1, 1)·W⁻¹
    const det = w00 * w11 - w01 * w10;
    const row = [(w11 - w10) / det, (w00 - w01) / det].map((v) => 1000 * v);
    const tolAbs = 1e-28 * gradientNormSq(s.gradient);
    const rng = new Rng(2);
    const x0 = Float64Array.from({ length: 3 * 4 }, () => rng.normal());
    x0.set([...row, ...row], 0);
    const e = createCpuEngine({ layer: s, target: s.gradient, P: 3, optimizer: 'lm', lr: 1, tolAbs });
    e.setInputs(x0);
    e.run(200);
    const st = await e.readStatus();
    expect(st.status[0]).toBe(3);
    expect(st.lambda![0]).toBeGreaterThan(LM_LAMBDA_MAX);
    expect(st.iterations[0]).toBeLessThan(40);
    expect(Array.from((await e.readBest()).subarray(0, 4))).toEqual(Array.from(Float32Array.from(x0.subarray(0, 4))));
    // The other restarts are exactly what they are in an engine of their own.
    const alone = createCpuEngine({ layer: s, target: s.gradient, P: 2, optimizer: 'lm', lr: 1, tolAbs });
    alone.setInputs(x0.subarray(4));
    alone.run(200);
    const sa = await alone.readStatus();
    expect(Array.from(st.status.subarray(1))).toEqual(Array.from(sa.status));
    expect(Array.from(st.bestLoss.subarray(1))).toEqual(Array.from(sa.bestLoss));
    expect(Array.from(st.lambda!.subarray(1))).toEqual(Array.from(sa.lambda!));
    expect(Array.from((await e.readBest()).subarray(4))).toEqual(Array.from(await alone.readBest()));
  });

  it('lm needs the l2 loss', () => {
    const s = gaussian(2, 2, 2, 1);
    expect(() => createCpuEngine({ layer: s, target: s.gradient, P: 1, optimizer: 'lm', lr: 1, loss: 'cosine' })).toThrow(/^loss: expected 'l2'/);
  });
});

describe('subspace reduction', () => {
  it('L_r(C·Vᵀ) = L_reduced(C) + ‖(I − VVᵀ)∇W‖², the lift of the reduced truth is the truth', () => {
    const rng = new Rng(9);
    for (const [B, D, K] of [[1, 5, 1], [2, 13, 3], [4, 16, 4], [8, 64, 10], [3, 40, 7]] as const) {
      const s = gaussian(B, D, K, B + D + K);
      const red = reduceScenario(s);
      expect(red.scenario.D).toBe(B);
      expect(red.info.regime).toBe('subspace');
      expect(red.info.unknowns).toBe(B * B);
      expect(red.info.rank).toBe(B);
      // V orthonormal
      for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) {
        let acc = 0;
        for (let d = 0; d < D; d++) acc += red.V[d * B + i] * red.V[d * B + j];
        expect(Math.abs(acc - (i === j ? 1 : 0))).toBeLessThan(1e-13);
      }
      const lifted = red.lift(red.scenario.inputs!);
      expectClose(lifted, s.inputs!, { abs: 1e-12, rel: 1e-12 }, `lift(C*) (${B},${D},${K})`);
      // A noisy gradient: the identity holds with the out-of-subspace energy as the constant.
      const noisy: Scenario = { ...s, gradient: { W: s.gradient.W.map((v) => v + 1e-3 * rng.normal()), b: s.gradient.b } };
      const rn = reduceScenario(noisy);
      expect(rn.info.outOfSubspaceEnergy!).toBeGreaterThan(0);
      for (let t = 0; t < 3; t++) {
        const C = Float64Array.from({ length: B * B }, () => rng.normal());
        const full = matchL2(noisy, noisy.gradient, rn.lift(C)).loss;
        const reduced = matchL2(rn.scenario, rn.scenario.gradient, C).loss + rn.info.outOfSubspaceEnergy!;
        expect(Math.abs(full - reduced)).toBeLessThan(1e-12 * full);
      }
    }
  });

  it('falls back to the unreduced problem when rank ∇W < B, and --reduce on then names the rank', () => {
    const base = gaussian(3, 20, 5, 4);
    const x = Float64Array.from(base.inputs!);
    x.set(x.subarray(0, 20), 20); // rows 0 and 1 equal: rank ∇W = 2 < B = 3 when their labels match too
    const y = Float64Array.from(base.y);
    y.set(y.subarray(0, 5), 5);
    const s = makeScenario({ ...base, y }, x);
    const { info, reduction } = analyseScenario(s);
    expect(info.regime).toBe('rank-deficient');
    expect(info.rank).toBe(2);
    expect(info.reduced).toBe(false);
    expect(reduction).toBeUndefined();
    expect(info.summary).toMatch(/rank ∇W = 2 < B = 3/);
    expect(() => analyseScenario(s, 'on')).toThrow(DlgInputError);
    expect(() => analyseScenario(s, 'on')).toThrow(/^reduce: .*rank ∇W = 2 < B = 3/);
    expect(() => planAttack(s, { reduce: 'on' })).toThrow(/^reduce:/);
    expect(planAttack(s).options.optimizer).toBe('lm'); // 60 unknowns: lm on the unreduced problem
  });

  it('the regimes: subspace, direct, unidentifiable with its manifold dimension', () => {
    expect(analyseScenario(gaussian(8, 784, 10, 1)).info).toMatchObject({ regime: 'subspace', unknowns: 64, identifiable: true, reduced: true });
    expect(analyseScenario(gaussian(8, 784, 10, 1), 'off').info).toMatchObject({ regime: 'subspace', unknowns: 6272, reduced: false });
    expect(analyseScenario(gaussian(2, 1, 1, 1)).info).toMatchObject({ regime: 'direct', unknowns: 2, identifiable: true });
    expect(analyseScenario(gaussian(4, 1, 4, 1)).info).toMatchObject({ regime: 'direct', unknowns: 4, identifiable: true });
    expect(analyseScenario(gaussian(16, 64, 10, 1)).info).toMatchObject({ regime: 'unidentifiable', identifiable: false, manifoldDim: Math.max(6 * 54, 16 * 64 - 650) });
    expect(() => analyseScenario(gaussian(16, 64, 10, 1), 'on')).toThrow(/^reduce: .*B = 16 > K = 10/);
  });

  it('not identifiable: the reported dimension equals B·D − rank J at the truth on small cases', async () => {
    for (const [B, D, K] of [[3, 3, 2], [4, 5, 2], [5, 4, 3], [3, 2, 1]] as const) {
      const s = gaussian(B, D, K, 31 + B);
      const { info } = analyseScenario(s);
      expect(info.identifiable).toBe(false);
      const d = diagnose(s);
      expect(info.manifoldDim).toBeLessThanOrEqual(d.solutionDim);
      // The attack runs (not an error), says identifiable: false, and measures the dimension at its solution.
      const r = await attack(null, s, { optimizer: 'lm', restarts: 8, iterations: 60, seed: 1 });
      expect(r.regime.identifiable).toBe(false);
      expect(r.optimizer).toBe('lm');
      expect(r.loss).toBeLessThan(1e-20 * gradientNormSq(s.gradient));
      expect(r.regime.solutionDim).toBe(d.solutionDim);
    }
  });
});

describe('exact recovery with default options (float64 engine)', () => {
  const check = (r: AttackResult, what: string) => {
    expect(r.optimizer, what).toBe('lm');
    expect(r.metrics!.relativeError, what).toBeLessThan(1e-6);
  };
  it('gaussian scenarios of the public set', async () => {
    for (const [B, D, K] of [[2, 1, 1], [4, 1, 4], [2, 13, 3], [4, 16, 4], [8, 64, 10], [8, 784, 10]] as const) {
      for (const seed of [0, 1]) {
        const s = simulateScenario({ dataset: 'gaussian', B, D, K, seed });
        const r = await attack(null, s, {});
        const what = `(${B},${D},${K}) seed ${seed}`;
        if (r.polish?.ambiguous) expect(r.polish.truthAmongExact, what).toBe(true);
        else check(r, what);
      }
    }
  });

  it('digits B = 1…10 and iris B ≤ 3', async () => {
    const digits = loadDataset('digits');
    for (let B = 1; B <= 10; B++) {
      const s = simulateScenario({ dataset: 'digits', B, seed: B, data: digits });
      const r = await attack(null, s, {});
      if (r.polish?.ambiguous) expect(r.polish.truthAmongExact, `digits B=${B}`).toBe(true);
      else check(r, `digits B=${B}`);
      expect(r.regime.regime).toBe('subspace');
    }
    const iris = loadDataset('iris');
    for (let B = 1; B <= 3; B++) {
      const s = simulateScenario({ dataset: 'iris', B, seed: B, data: iris });
      const r = await attack(null, s, {});
      if (r.polish?.ambiguous) expect(r.polish.truthAmongExact, `iris B=${B}`).toBe(true);
      else check(r, `iris B=${B}`);
    }
  });
});
