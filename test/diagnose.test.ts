import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { simulateScenario } from '../src/core/datasets.js';
import { diagnose, flattestDirections, jacobian, jacobianAtTruth, jacobianGram } from '../src/analysis/diagnose.js';
import { DlgInputError } from '../src/core/errors.js';
import { writeScenarioFile } from '../src/node/io.js';
import { gramCols, gramRows, numericalRank, rankThreshold, singularValues, symmetricEigen } from '../src/analysis/linalg.js';
import { matchL2, victimGradient } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';
import { makeScenario, type Scenario } from '../src/core/scenario.js';
import { expectClose } from './helpers.js';

function randomSym(n: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  return a;
}

function scen(B: number, D: number, K: number, seed: number, reduction: 'mean' | 'sum' = 'mean'): Scenario {
  return simulateScenario({ dataset: 'gaussian', B, D, K, seed, reduction, biasScale: 0.5 });
}

describe('linalg', () => {
  it('symmetricEigen: A v = λ v, orthonormal vectors, ascending, values-only path agrees', () => {
    for (const n of [1, 2, 7, 40]) {
      const a = randomSym(n, n);
      const { values, vectors } = symmetricEigen(a, n, { vectors: true });
      const vOnly = symmetricEigen(a, n).values;
      let scale = 0;
      for (const v of values) scale = Math.max(scale, Math.abs(v));
      expectClose(vOnly, values, { abs: 1e-12 * scale, rel: 0 }, `values-only n=${n}`);
      for (let j = 0; j < n; j++) {
        if (j > 0) expect(values[j]).toBeGreaterThanOrEqual(values[j - 1]);
        const v = vectors!.subarray(j * n, (j + 1) * n);
        const av = new Float64Array(n);
        for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) av[i] += a[i * n + k] * v[k];
        expectClose(av, Array.from(v, (x) => x * values[j]), { abs: 1e-12 * scale, rel: 0 }, `A v = λ v (n=${n}, j=${j})`);
        for (let l = 0; l <= j; l++) {
          let dot = 0;
          for (let i = 0; i < n; i++) dot += v[i] * vectors![l * n + i];
          expect(Math.abs(dot - (l === j ? 1 : 0))).toBeLessThan(1e-12);
        }
      }
    }
  });

  it('symmetricEigen: known spectrum (diagonal, a rotated diag(3,1), repeated eigenvalues)', () => {
    expectClose(symmetricEigen([2, 0, 0, 0, -1, 0, 0, 0, 5], 3).values, [-1, 2, 5], { abs: 1e-14, rel: 0 }, 'diagonal');
    expectClose(symmetricEigen([2, 1, 1, 2], 2).values, [1, 3], { abs: 1e-14, rel: 0 }, '[[2,1],[1,2]]');
    expectClose(symmetricEigen([1, 0, 0, 0, 1, 0, 0, 0, 1], 3).values, [1, 1, 1], { abs: 1e-14, rel: 0 }, 'identity');
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrow(DlgInputError);
  });

  it('singularValues: both Gram routes agree with each other and with ‖A‖_F², right vectors satisfy ‖Av‖ = σ', () => {
    const rng = new Rng(5);
    const m = 6;
    const n = 9;
    const a = Float64Array.from({ length: m * n }, () => rng.normal());
    const at = new Float64Array(n * m);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) at[j * m + i] = a[i * n + j];
    const s1 = singularValues(a, m, n, { rightVectors: true }); // through AAᵀ
    const s2 = singularValues(at, n, m).values; // through (Aᵀ)ᵀAᵀ = AAᵀ's twin, the cols ≤ rows route
    expectClose(s1.values, s2, { abs: 1e-12, rel: 1e-10 }, 'σ(A) = σ(Aᵀ)');
    let fro = 0;
    for (const v of a) fro += v * v;
    expect(Math.abs(s1.values.reduce((acc, s) => acc + s * s, 0) - fro)).toBeLessThan(1e-10 * fro);
    for (let i = 0; i < m; i++) {
      const v = s1.rightVectors!.subarray(i * n, (i + 1) * n);
      let av = 0;
      for (let r = 0; r < m; r++) {
        let acc = 0;
        for (let c = 0; c < n; c++) acc += a[r * n + c] * v[c];
        av += acc * acc;
      }
      expect(Math.abs(Math.sqrt(av) - s1.values[i])).toBeLessThan(1e-10);
    }
  });

  it('numericalRank: a product of thin factors has exactly their rank', () => {
    const rng = new Rng(9);
    const m = 12;
    const n = 10;
    const r = 4;
    const u = Float64Array.from({ length: m * r }, () => rng.normal());
    const v = Float64Array.from({ length: r * n }, () => rng.normal());
    const a = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let k = 0; k < r; k++) a[i * n + j] += u[i * r + k] * v[k * n + j];
    const sv = singularValues(a, m, n).values;
    expect(numericalRank(sv, rankThreshold(sv[0], m, n))).toBe(r);
  });
});

describe('Jacobian at the truth', () => {
  it('matches central finite differences of victimGradient (mean and sum reductions)', () => {
    for (const [B, D, K, red] of [[2, 3, 2, 'mean'], [3, 1, 1, 'sum'], [1, 4, 3, 'mean'], [4, 2, 5, 'sum']] as const) {
      const s = scen(B, D, K, 11 + B, red);
      const x = s.inputs!;
      const J = jacobianAtTruth(s);
      const rows = D * K + K;
      const cols = B * D;
      const h = 1e-6;
      const fd = new Float64Array(rows * cols);
      for (let c = 0; c < cols; c++) {
        const xp = Float64Array.from(x);
        const xm = Float64Array.from(x);
        xp[c] += h;
        xm[c] -= h;
        const gp = victimGradient(s, xp);
        const gm = victimGradient(s, xm);
        for (let r = 0; r < D * K; r++) fd[r * cols + c] = (gp.W[r] - gm.W[r]) / (2 * h);
        for (let k = 0; k < K; k++) fd[(D * K + k) * cols + c] = (gp.b[k] - gm.b[k]) / (2 * h);
      }
      let scale = 0;
      for (const v of fd) scale = Math.max(scale, Math.abs(v));
      expectClose(J, fd, { abs: 1e-7 * scale, rel: 1e-6 }, `J (B=${B}, D=${D}, K=${K}, ${red})`);
    }
  });

  it('the closed-form Gram matrix (JᵀJ or JJᵀ, the smaller) equals the dense product', () => {
    for (const [B, D, K] of [[1, 3, 2], [2, 4, 4], [3, 2, 5], [4, 3, 1], [5, 2, 2], [2, 1, 1]]) {
      const s = scen(B, D, K, 200 + B + D + K, B % 2 ? 'sum' : 'mean');
      const x = Float64Array.from(s.inputs!, (v) => v * 0.9 + 0.05); // away from the truth too
      const J = jacobian(s, x);
      const rows = D * K + K;
      const cols = B * D;
      const g = jacobianGram(s, x);
      expect(g.side).toBe(cols <= rows ? 'cols' : 'rows');
      const dense = cols <= rows ? gramCols(J, rows, cols) : gramRows(J, rows, cols);
      let scale = 0;
      for (const v of dense) scale = Math.max(scale, Math.abs(v));
      expectClose(g.gram, dense, { abs: 1e-13 * scale, rel: 1e-11 }, `Gram (B=${B}, D=${D}, K=${K})`);
    }
  });

  it('needs the truth: a scenario without inputs is a DlgInputError naming "inputs"', () => {
    const s = scen(2, 2, 2, 1);
    const noTruth = { ...s, inputs: undefined };
    expect(() => diagnose(noTruth)).toThrow(/inputs/);
    expect(() => jacobianAtTruth(noTruth)).toThrow(DlgInputError);
  });
});

describe('rank and identifiability on cases with known rank', () => {
  it('B = 1 is full rank (rank D, solution dimension 0) for every D, K', () => {
    for (const [D, K] of [[1, 1], [4, 1], [16, 4], [64, 10]]) {
      const d = diagnose(scen(1, D, K, 3 + D));
      expect(d.jacobian.rank, `D=${D}, K=${K}`).toBe(D);
      expect(d.solutionDim).toBe(0);
      expect(d.identifiableBound).toBe(true);
      expect(d.hessian.eigenvalues).toHaveLength(D);
    }
  });

  it('K = 1 with B·D > D + 1 is rank-deficient: rank D + 1, solution set of dimension B·D − D − 1', () => {
    for (const [B, D] of [[3, 1], [4, 1], [2, 4], [4, 16], [16, 4]]) {
      const d = diagnose(scen(B, D, 1, 100 + B * D));
      expect(d.identifiableBound).toBe(false);
      expect(d.jacobian.rank, `B=${B}, D=${D}`).toBe(D + 1);
      expect(d.solutionDim).toBe(B * D - D - 1);
      expect(d.hessian.conditionNumber).toBeGreaterThanOrEqual(1);
      expect(Number.isFinite(d.hessian.conditionNumber)).toBe(true);
    }
  });

  it('identifiable counts (B=2, D=1, K=1 and B=2, D=4, K=4) are full rank; duplicate rows with equal labels lose D dimensions', () => {
    expect(diagnose(scen(2, 1, 1, 7)).jacobian.rank).toBe(2);
    const s = scen(2, 4, 4, 8);
    expect(diagnose(s).jacobian.rank).toBe(8);
    // Row 1 := row 0 with the same labels: the two rows' columns of J coincide, so rank = B·D − D.
    const x = Float64Array.from(s.inputs!);
    const y = Float64Array.from(s.y);
    for (let d = 0; d < 4; d++) x[4 + d] = x[d];
    for (let k = 0; k < 4; k++) y[4 + k] = y[k];
    const dup = makeScenario({ ...s, y }, x);
    const d = diagnose(dup);
    expect(d.jacobian.rank).toBe(4);
    expect(d.solutionDim).toBe(4);
    // The numerically-zero singular values sit far below the threshold, the others far above it.
    expect(d.jacobian.singularValues[4]).toBeLessThan(d.jacobian.threshold / 10);
    expect(d.jacobian.singularValues[3]).toBeGreaterThan(d.jacobian.threshold * 100);
  });
});

describe('Hessian at the truth', () => {
  it('2JᵀJ matches finite differences of ∇L_r (matchL2); diagnose reports its eigenvalues', () => {
    for (const [B, D, K] of [[2, 1, 1], [2, 3, 2], [3, 2, 1]]) {
      const s = scen(B, D, K, 40 + B + D + K);
      const x = s.inputs!;
      const n = B * D;
      const J = jacobianAtTruth(s);
      const H = gramCols(J, D * K + K, n).map((v) => 2 * v);
      const h = 1e-5;
      const fd = new Float64Array(n * n);
      for (let c = 0; c < n; c++) {
        const xp = Float64Array.from(x);
        const xm = Float64Array.from(x);
        xp[c] += h;
        xm[c] -= h;
        const gp = matchL2(s, s.gradient, xp).grad;
        const gm = matchL2(s, s.gradient, xm).grad;
        for (let r = 0; r < n; r++) fd[r * n + c] = (gp[r] - gm[r]) / (2 * h);
      }
      let scale = 0;
      for (const v of H) scale = Math.max(scale, Math.abs(v));
      expectClose(fd, H, { abs: 1e-6 * scale, rel: 1e-5 }, `Hessian (B=${B}, D=${D}, K=${K})`);
      const d = diagnose(s);
      const eig = symmetricEigen(H, n).values.reverse();
      expectClose(d.hessian.eigenvalues, eig, { abs: 1e-12 * scale, rel: 1e-9 }, 'eigenvalues');
      expect(d.hessian.largest).toBe(d.hessian.eigenvalues[0]);
      expect(d.hessian.smallestNonZero).toBe(d.hessian.eigenvalues[d.jacobian.rank - 1]);
      expect(d.hessian.conditionNumber).toBeCloseTo(d.hessian.largest / d.hessian.smallestNonZero, 10);
      expect(d.predictedIterations).toBe(Math.ceil(d.hessian.conditionNumber * Math.log(1e3)));
    }
  });

  it('jacobian(layer, x) is the same function away from the truth (used by the flattest plane)', () => {
    const s = scen(2, 2, 2, 77);
    const x = Float64Array.from(s.inputs!, (v) => v + 0.1);
    expect(jacobian(s, s.inputs!)).toEqual(jacobianAtTruth(s));
    expect(jacobian(s, x)).not.toEqual(jacobianAtTruth(s));
  });
});

describe('flattestDirections', () => {
  it('gives two orthonormal eigenvectors of 2JᵀJ with its two smallest non-zero eigenvalues', () => {
    for (const [B, D, K] of [[2, 1, 1], [4, 1, 1], [2, 4, 4], [4, 4, 1]]) {
      const s = scen(B, D, K, 60 + B * D * K);
      const n = B * D;
      const d = diagnose(s);
      const { u, v } = flattestDirections(s);
      expect(u).toHaveLength(n);
      expect(v).toHaveLength(n);
      const H = gramCols(jacobianAtTruth(s), D * K + K, n).map((t) => 2 * t);
      const quad = (a: Float64Array, b: Float64Array) => {
        let acc = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) acc += a[i] * H[i * n + j] * b[j];
        return acc;
      };
      const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, t, i) => acc + t * b[i], 0);
      expect(Math.abs(dot(u, u) - 1)).toBeLessThan(1e-10);
      expect(Math.abs(dot(v, v) - 1)).toBeLessThan(1e-10);
      expect(Math.abs(dot(u, v))).toBeLessThan(1e-8);
      const r = d.jacobian.rank;
      const scale = d.hessian.largest;
      expect(Math.abs(quad(u, u) - d.hessian.eigenvalues[r - 1])).toBeLessThan(1e-8 * scale);
      expect(Math.abs(quad(v, v) - d.hessian.eigenvalues[r - 2])).toBeLessThan(1e-8 * scale);
      // Not a null (symmetry) direction: L_r curves along it.
      expect(quad(u, u)).toBeGreaterThan(d.hessian.smallestNonZero * 0.5);
    }
  });

  it('refuses B·D = 1 (no plane) with a DlgInputError', () => {
    expect(() => flattestDirections(scen(1, 1, 1, 1))).toThrow(DlgInputError);
  });
});

describe('dlg diagnose (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlg-diagnose-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cli = (args: string[]) => spawnSync(process.execPath, ['dist/node/cli.js', ...args], { encoding: 'utf8' });

  it('prints a table and --json with the library values', () => {
    const s = scen(4, 1, 1, 5);
    const file = join(dir, 's.json');
    writeScenarioFile(file, s);
    const table = execFileSync(process.execPath, ['dist/node/cli.js', 'diagnose', file], { encoding: 'utf8' });
    expect(table).toMatch(/rank 2/);
    expect(table).toMatch(/NOT identifiable: a 2-dimensional family/);
    expect(table).toMatch(/condition number κ/);
    const r = cli(['diagnose', file, '--json']);
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    const d = diagnose(s);
    expect(j.jacobian.rank).toBe(2);
    expect(j.solutionDim).toBe(2);
    expect(j.identifiableBound).toBe(false);
    expectClose(j.hessian.eigenvalues, d.hessian.eigenvalues, { abs: 1e-15, rel: 1e-12 }, 'eigenvalues via JSON');
  });

  it('exits 2 with a clear message on a scenario without inputs or a missing file', () => {
    const s = scen(2, 1, 1, 5);
    const file = join(dir, 'no-truth.json');
    writeScenarioFile(file, { ...s, inputs: undefined });
    const r = cli(['diagnose', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/inputs: expected the ground-truth inputs/);
    const m = cli(['diagnose', join(dir, 'missing.json')]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/no such file/);
  });
});
