/**
 * Diagnostics at the truth (see docs/math.md, "Diagnostics at the truth"):
 * - identifiability: the Jacobian J = ∂(vec ∇W, ∇b)/∂x, (D·K+K)×(B·D), its singular values and
 *   numerical rank; the solution set near x has dimension B·D − rank;
 * - flatness: at the truth the residual is 0, so ∇²L_r = 2JᵀJ exactly; its smallest non-zero
 *   eigenvalue and condition number κ bound first-order convergence (≈ κ·ln(1/ε) iterations).
 * Float64 on the CPU; browser-safe.
 */
import { DlgInputError } from '../core/errors.js';
import { type Layer, jacobian, residuals } from '../core/model.js';
import { normalise, numericalRank, rankThreshold, singularValues, symmetricEigen, gramCols } from './linalg.js';
import type { Scenario } from '../core/scenario.js';

/** The Jacobian lives in core/model.ts (leakage.ts needs it too); re-exported here where it was. */
export { jacobian };
import { type NoisePrediction, predictNoiseLeakage } from './leakage.js';

/** The accuracy that `predictedIterations` refers to: relative error 1e-3, the success criterion. */
export const PREDICTION_EPSILON = 1e-3;

export interface Diagnosis {
  B: number;
  D: number;
  K: number;
  jacobian: {
    rows: number; // D·K + K equations
    cols: number; // B·D unknowns
    /** min(rows, cols) singular values, descending. */
    singularValues: number[];
    rank: number;
    /** Singular values at or below this count as zero (relative to σ_max, see rankThreshold). */
    threshold: number;
  };
  /** Dimension of the solution set near the truth: B·D − rank (0 = locally identifiable). */
  solutionDim: number;
  /** The counting bound B·D ≤ D·K + K: necessary for identifiability (more unknowns than equations never are). */
  identifiableBound: boolean;
  hessian: {
    /** All B·D eigenvalues of 2JᵀJ, descending (2σᵢ², then zeros where B·D > rows). */
    eigenvalues: number[];
    /** The smallest eigenvalue above the rank threshold (2σ_rank²); 0 when rank = 0. */
    smallestNonZero: number;
    largest: number;
    /** largest / smallestNonZero: κ on the subspace the loss can see (null directions are exact flats). */
    conditionNumber: number;
  };
  /** κ·ln(1/ε) with ε = PREDICTION_EPSILON: iterations gradient descent needs at the local rate. */
  predictedIterations: number;
  /** Predicted rel. err. of the attack per unit of small Gaussian gradient noise (src/analysis/leakage.ts). */
  noise: NoisePrediction;
}

function truthOf(s: Scenario): Float64Array {
  if (!s.inputs) {
    throw new DlgInputError('inputs', 'the ground-truth inputs (diagnostics are evaluated at the truth)', 'a scenario without "inputs"');
  }
  return s.inputs;
}

/** J at the scenario's true inputs. */
export function jacobianAtTruth(scenario: Scenario): Float64Array {
  return jacobian(scenario, truthOf(scenario));
}

/**
 * The smaller Gram matrix of J at x, from closed forms (no J needed), O(B·D²·K²) or O(B²·D²·K)
 * instead of O(rows·cols·min(rows, cols)) for the dense product:
 * - JᵀJ (B·D ≤ D·K+K), entry ((n,d′),(m,d″)) = δ_{d′d″}(e_n·e_m) + x_m[d′]·Σ_k e_nk s_mk W[d″,k]
 *   + x_n[d″]·Σ_k s_nk e_mk W[d′,k] + (1 + x_n·x_m)·Σ_k s_nk s_mk W[d′,k] W[d″,k];
 * - JJᵀ otherwise, with C_n[k,k₂] = e_nk s_nk₂ and S_n[k,k₂] = s_nk s_nk₂ (W_kᵀW_k₂):
 *   ((d,k),(d₂,k₂)) = Σ_n δ_{dd₂} e_nk e_nk₂ + x_n[d₂] C_n[k,k₂] W[d,k₂] + x_n[d] C_n[k₂,k] W[d₂,k] + x_n[d] x_n[d₂] S_n[k,k₂]
 *   ((d,k),(b,k₂)) = Σ_n C_n[k,k₂] W[d,k₂] + x_n[d] S_n[k,k₂];   ((b,k),(b,k₂)) = Σ_n S_n[k,k₂].
 * Tested against the dense products in test/diagnose.test.ts.
 */
export function jacobianGram(layer: Layer, x: ArrayLike<number>): { side: 'cols' | 'rows'; n: number; gram: Float64Array } {
  const { B, D, K, W } = layer;
  const rows = D * K + K;
  const cols = B * D;
  const { e, s } = residuals(layer, x);
  if (cols <= rows) {
    const g = new Float64Array(cols * cols);
    for (let n = 0; n < B; n++) {
      for (let m = 0; m <= n; m++) {
        let ee = 0;
        let xx = 1;
        for (let k = 0; k < K; k++) ee += e[n * K + k] * e[m * K + k];
        for (let d = 0; d < D; d++) xx += x[n * D + d] * x[m * D + d];
        for (let d1 = 0; d1 < D; d1++) {
          for (let d2 = 0; d2 < D; d2++) {
            // a = Σ_k e_nk s_mk W[d2,k], b = Σ_k s_nk e_mk W[d1,k], c = Σ_k s_nk s_mk W[d1,k] W[d2,k]
            let a = 0;
            let b = 0;
            let c = 0;
            for (let k = 0; k < K; k++) {
              const snk = s[n * K + k];
              const smk = s[m * K + k];
              a += e[n * K + k] * smk * W[d2 * K + k];
              b += snk * e[m * K + k] * W[d1 * K + k];
              c += snk * smk * W[d1 * K + k] * W[d2 * K + k];
            }
            const v = (d1 === d2 ? ee : 0) + x[m * D + d1] * a + x[n * D + d2] * b + xx * c;
            g[(n * D + d1) * cols + m * D + d2] = v;
            g[(m * D + d2) * cols + n * D + d1] = v;
          }
        }
      }
    }
    return { side: 'cols', n: cols, gram: g };
  }
  const WW = new Float64Array(K * K);
  for (let k = 0; k < K; k++) for (let k2 = 0; k2 < K; k2++) for (let d = 0; d < D; d++) WW[k * K + k2] += W[d * K + k] * W[d * K + k2];
  const g = new Float64Array(rows * rows);
  const C = new Float64Array(K * K);
  const S = new Float64Array(K * K);
  for (let n = 0; n < B; n++) {
    const xn = n * D;
    for (let k = 0; k < K; k++) {
      for (let k2 = 0; k2 < K; k2++) {
        C[k * K + k2] = e[n * K + k] * s[n * K + k2];
        S[k * K + k2] = s[n * K + k] * s[n * K + k2] * WW[k * K + k2];
      }
    }
    for (let d = 0; d < D; d++) {
      const xd = x[xn + d];
      for (let k = 0; k < K; k++) {
        const r = (d * K + k) * rows;
        for (let d2 = 0; d2 < D; d2++) {
          const xd2 = x[xn + d2];
          for (let k2 = 0; k2 < K; k2++) {
            let v = xd2 * C[k * K + k2] * W[d * K + k2] + xd * C[k2 * K + k] * W[d2 * K + k] + xd * xd2 * S[k * K + k2];
            if (d === d2) v += e[n * K + k] * e[n * K + k2];
            g[r + d2 * K + k2] += v;
          }
        }
        for (let k2 = 0; k2 < K; k2++) {
          const v = C[k * K + k2] * W[d * K + k2] + xd * S[k * K + k2];
          g[r + D * K + k2] += v;
          g[(D * K + k2) * rows + d * K + k] += v;
        }
      }
    }
    for (let k = 0; k < K; k++) for (let k2 = 0; k2 < K; k2++) g[(D * K + k) * rows + D * K + k2] += S[k * K + k2];
  }
  return { side: 'rows', n: rows, gram: g };
}

/**
 * What diagnose() costs before it runs: the Gram matrix side n = min(D·K+K, B·D), the memory of
 * the Gram matrix and the eigen workspace (2n² float64), and a rough time (n³ ns, measured on one
 * core for the values-only eigen-decomposition).
 */
export function diagnoseCost(B: number, D: number, K: number): { n: number; bytes: number; seconds: number } {
  const n = Math.min(D * K + K, B * D);
  return { n, bytes: 16 * n * n + 8 * (B * D + D * K + B * K) * 4, seconds: n ** 3 * 1e-9 };
}

/** Full diagnosis at the truth. Cost: the Gram matrix (see jacobianGram) plus O(min(m,n)³) eigenvalues. */
export function diagnose(scenario: Scenario, opts: { epsilon?: number; onProgress?: (fraction: number) => void } = {}): Diagnosis {
  const { B, D, K } = scenario;
  const rows = D * K + K;
  const cols = B * D;
  const { gram, n: gn } = jacobianGram(scenario, truthOf(scenario));
  const lambda = symmetricEigen(gram, gn, { onProgress: opts.onProgress }).values;
  const sv = new Float64Array(gn);
  for (let i = 0; i < gn; i++) sv[i] = Math.sqrt(Math.max(lambda[gn - 1 - i], 0));
  const sigmaMax = sv.length > 0 ? sv[0] : 0;
  const threshold = rankThreshold(sigmaMax, rows, cols);
  const rank = numericalRank(sv, threshold);
  const eigenvalues = new Array<number>(cols).fill(0);
  for (let i = 0; i < sv.length; i++) eigenvalues[i] = 2 * sv[i] * sv[i];
  const largest = eigenvalues[0] ?? 0;
  const smallestNonZero = rank > 0 ? eigenvalues[rank - 1] : 0;
  const conditionNumber = smallestNonZero > 0 ? largest / smallestNonZero : Infinity;
  const eps = opts.epsilon ?? PREDICTION_EPSILON;
  return {
    B,
    D,
    K,
    jacobian: { rows, cols, singularValues: Array.from(sv), rank, threshold },
    solutionDim: cols - rank,
    identifiableBound: cols <= rows,
    hessian: { eigenvalues, smallestNonZero, largest, conditionNumber },
    predictedIterations: Math.ceil(conditionNumber * Math.log(1 / eps)),
    noise: predictNoiseLeakage(scenario, { singularValues: sv, rank }),
  };
}

/**
 * The two flattest directions of L_r at the truth that L_r can actually see: the eigenvectors
 * of the Hessian 2JᵀJ with the smallest NON-ZERO eigenvalues (u the flattest, v the next), each
 * of length B·D, unit norm, laid out like x.
 *
 * Why not the zero eigenvalues: a null direction of J is tangent to the solution set (a
 * continuous family of inputs with the same shared gradient: an exact symmetry, second order).
 * Along it L_r stays ≈ 0, so a surface plot over it is a flat floor that shows nothing about
 * convergence; the slowest non-trivial directions are where gradient descent crawls. Only when
 * fewer than two non-zero eigenvalues exist (rank < 2) is the plane completed with null
 * directions, flattest first.
 */
export function flattestDirections(scenario: Scenario): { u: Float64Array; v: Float64Array } {
  const { B, D, K } = scenario;
  const rows = D * K + K;
  const cols = B * D;
  if (cols < 2) {
    throw new DlgInputError('scenario', 'B·D ≥ 2 (a plane of directions needs two input coordinates)', `B·D = ${cols}`);
  }
  const J = jacobianAtTruth(scenario);
  const svd = singularValues(J, rows, cols, { rightVectors: true });
  const sv = svd.values;
  const threshold = rankThreshold(sv[0], rows, cols);
  const rank = numericalRank(sv, threshold);
  const picks: Float64Array[] = [];
  for (let i = rank - 1; i >= 0 && picks.length < 2; i--) picks.push(Float64Array.from(svd.rightVectors!.subarray(i * cols, (i + 1) * cols)));
  if (picks.length < 2) {
    // rank < 2: complete with null directions of JᵀJ (its smallest eigenvalues).
    const eig = symmetricEigen(gramCols(J, rows, cols), cols, { vectors: true });
    for (let j = 0; j < cols && picks.length < 2; j++) {
      const w = Float64Array.from(eig.vectors!.subarray(j * cols, (j + 1) * cols));
      // Orthogonalise against what was picked (the chosen non-zero direction), then normalise.
      for (const p of picks) {
        let dot = 0;
        for (let i = 0; i < cols; i++) dot += w[i] * p[i];
        for (let i = 0; i < cols; i++) w[i] -= dot * p[i];
      }
      let nn = 0;
      for (const t of w) nn += t * t;
      if (nn < 1e-12) continue;
      normalise(w);
      picks.push(w);
    }
  }
  return { u: picks[0], v: picks[1] };
}

/**
 * B·D − rank J at x: the dimension of the set of exact solutions through x (when x fits exactly),
 * from the singular values of the (D·K+K)×(B·D) Jacobian.
 */
export function solutionDimension(layer: Layer, x: ArrayLike<number>): number {
  const { B, D, K } = layer;
  const rows = D * K + K;
  const cols = B * D;
  const sv = singularValues(jacobian(layer, x), rows, cols);
  const rank = numericalRank(sv.values, rankThreshold(sv.values[0] ?? 0, rows, cols));
  return cols - rank;
}
