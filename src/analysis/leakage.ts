/**
 * Predicted leakage under small gradient noise (docs/defences.md, "Predicting the error").
 * Browser-safe, float64.
 *
 * With noise δ of variance σ² per entry on (∇W, ∇b), a least-squares attack moves from the truth by
 * δx ≈ M·δ, with M the linearisation of the estimator the attack runs, so E‖δx‖² = σ²·‖M‖²_F.
 *
 * - Where the attack solves the problem as it is (regimes direct, rank-deficient, or --reduce off),
 *   M = J⁺ with J the (D·K+K)×(B·D) Jacobian at the truth: ‖M‖²_F = Σᵢ 1/σᵢ² over its non-zero
 *   singular values (the values `dlg diagnose` lists).
 * - In the subspace regime (B ≤ K < D) the attack does not solve that least-squares problem: it takes V
 *   from the noisy ∇W (so the subspace tilts), then solves the reduced problem in it. Rotating the
 *   rows of ∇W and the columns of x into (V, V⊥), J is block triangular, [[J_red, J_c], [0, J_⊥]]:
 *   the part of ∇W outside span V depends only on the part of x outside it (δx_⊥ᵀE). The attack is
 *   block back-substitution: δx_⊥ᵀ = P⊥δG·Eᵀ(EEᵀ)⁻¹ (the tilt), then δC = J_red⁺(δ_red − J_c·δx_⊥).
 *   So E‖δx‖²/σ² = ‖J_red⁺‖²_F + (D − B)·tr((EEᵀ)⁻¹) + tr(R·Σ_Z·Rᵀ), with J_red the Jacobian of the
 *   reduced problem at C = x·V, R = J_red⁺·J_z (J_z: a change δZ of the logits → the reduced
 *   residual) and Σ_Z = (EEᵀ)⁻¹ ⊗ WᵀP⊥W the covariance of the tilt's logit change δZ = δx_⊥·W.
 *   This is a left inverse of J, so by Gauss–Markov it is never below Σ 1/σᵢ²(J) (the full
 *   least-squares bound, reported alongside as `full`).
 */
import { Matrix, pseudoInverse } from 'ml-matrix';
import { DlgInputError } from '../core/errors.js';
import { jacobian, residuals, victimGradient } from '../core/model.js';
import { analyseScenario } from './reduce.js';
import type { Scenario } from '../core/scenario.js';
import { gradientRms } from '../core/defence.js';
import { numericalRank, rankThreshold, singularValues } from './linalg.js';

export interface NoisePrediction {
  /** Which estimator the prediction linearises: 'reduced' (subspace regime, what `dlg attack` runs) or 'full' (J⁺ of the unreduced problem). */
  jacobian: 'reduced' | 'full';
  /** Why that one. */
  why: string;
  /** E‖δx‖² / σ² (σ: the absolute noise per gradient entry). */
  errorSqPerVariance: number;
  /** Predicted relative error √(E‖δx‖²)/‖x‖ per unit absolute σ. */
  relErrPerSigma: number;
  /** The same per unit relative noise (σ = rel·RMS of the true gradient): multiply by `rel`. */
  relErrPerRelSigma: number;
  /** RMS over the entries of the true (undefended) gradient. */
  gradientRms: number;
  /** Subspace regime: the three terms of errorSqPerVariance (in-subspace, tilt, coupling). */
  terms?: { inSubspace: number; tilt: number; coupling: number };
  /** The full least-squares bound Σ 1/σᵢ²(J) (never above the reduced one). */
  full: { errorSqPerVariance: number; relErrPerSigma: number; relErrPerRelSigma: number };
  /** False where J has a null space (not identifiable): the error along the solution set is not bounded by the noise; the figures cover the rest. */
  identifiable: boolean;
}

function sumInvSq(sv: ArrayLike<number>, rank: number): number {
  let acc = 0;
  for (let i = 0; i < rank; i++) acc += 1 / (sv[i] * sv[i]);
  return acc;
}

function norm(v: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < v.length; i++) acc += v[i] * v[i];
  return Math.sqrt(acc);
}

/**
 * The predicted error of the attack under small noise, at the scenario's truth (the undefended gradient
 * is recomputed from the inputs). `fullSingularValues` (descending, with its rank) saves recomputing
 * J's singular values when the caller (diagnose) has them.
 */
export function predictNoiseLeakage(s: Scenario, full?: { singularValues: ArrayLike<number>; rank: number }): NoisePrediction {
  if (!s.inputs) throw new DlgInputError('inputs', 'the ground-truth inputs (the prediction linearises at the truth)', 'a scenario without "inputs"');
  const x = s.inputs;
  const { B, D, K } = s;
  const truth: Scenario = { B, D, K, W: s.W, b: s.b, y: s.y, reduction: s.reduction, inputs: x, gradient: victimGradient(s, x) };
  const xNorm = norm(x);
  const rms = gradientRms(truth.gradient);
  let fullSv = full;
  if (!fullSv) {
    const rows = D * K + K;
    const cols = B * D;
    const sv = singularValues(jacobian(truth, x), rows, cols).values;
    fullSv = { singularValues: sv, rank: numericalRank(sv, rankThreshold(sv[0] ?? 0, rows, cols)) };
  }
  const fullSq = sumInvSq(fullSv.singularValues, fullSv.rank);
  const fullOut = { errorSqPerVariance: fullSq, relErrPerSigma: Math.sqrt(fullSq) / xNorm, relErrPerRelSigma: (Math.sqrt(fullSq) * rms) / xNorm };
  const identifiable = fullSv.rank === B * D;
  const { info, reduction } = analyseScenario(truth, 'auto');
  if (!reduction) {
    return {
      jacobian: 'full',
      why: `regime ${info.regime}: the attack solves the unreduced least-squares problem, so δx ≈ J⁺δ with J the ${D * K + K}×${B * D} Jacobian at the truth`,
      ...fullOut,
      gradientRms: rms,
      full: fullOut,
      identifiable,
    };
  }
  const rs = reduction.scenario;
  const C = rs.inputs!;
  const V = reduction.V;
  // In-subspace: ‖J_red⁺‖²_F.
  const Jr = jacobian(rs, C);
  const rRows = B * K + K;
  const rCols = B * B;
  const JrM = new Matrix(rRows, rCols);
  for (let i = 0; i < rRows; i++) for (let j = 0; j < rCols; j++) JrM.set(i, j, Jr[i * rCols + j]);
  const pinv = pseudoInverse(JrM); // rCols × rRows
  let inSubspace = 0;
  for (let i = 0; i < rCols; i++) for (let j = 0; j < rRows; j++) inSubspace += pinv.get(i, j) ** 2;
  // Tilt: (D − B)·tr((EEᵀ)⁻¹).
  const { e, s: sig } = residuals(truth, x);
  const EEt = new Matrix(B, B);
  for (let n = 0; n < B; n++) for (let m = 0; m < B; m++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += e[n * K + k] * e[m * K + k];
    EEt.set(n, m, acc);
  }
  const A = pseudoInverse(EEt);
  let trA = 0;
  for (let n = 0; n < B; n++) trA += A.get(n, n);
  const tilt = (D - B) * trA;
  // Coupling: tr(R Σ_Z Rᵀ), R = J_red⁺ J_z, Σ_Z = A ⊗ WᵀP⊥W.
  const VtW = new Float64Array(B * K);
  for (let d = 0; d < D; d++) for (let j = 0; j < B; j++) for (let k = 0; k < K; k++) VtW[j * K + k] += V[d * B + j] * s.W[d * K + k];
  const PW = new Float64Array(D * K);
  for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) {
    let acc = s.W[d * K + k];
    for (let j = 0; j < B; j++) acc -= V[d * B + j] * VtW[j * K + k];
    PW[d * K + k] = acc;
  }
  const Bm = new Float64Array(K * K);
  for (let k = 0; k < K; k++) for (let l = 0; l < K; l++) {
    let acc = 0;
    for (let d = 0; d < D; d++) acc += PW[d * K + k] * PW[d * K + l];
    Bm[k * K + l] = acc;
  }
  // J_z (rRows × B·K): δE[n,k] = s_nk·δZ[n,k]; reduced ∇W row j·K+k gets Σ_n C[n,j]·δE[n,k]; ∇b row B·K+k gets Σ_n δE[n,k].
  const Jz = new Matrix(rRows, B * K);
  for (let n = 0; n < B; n++) for (let k = 0; k < K; k++) {
    const snk = sig[n * K + k];
    for (let j = 0; j < B; j++) Jz.set(j * K + k, n * K + k, C[n * B + j] * snk);
    Jz.set(B * K + k, n * K + k, snk);
  }
  const R = pinv.mmul(Jz); // rCols × B·K
  const SZ = new Matrix(B * K, B * K);
  for (let n = 0; n < B; n++) for (let m = 0; m < B; m++) for (let k = 0; k < K; k++) for (let l = 0; l < K; l++) SZ.set(n * K + k, m * K + l, A.get(n, m) * Bm[k * K + l]);
  const RS = R.mmul(SZ);
  let coupling = 0;
  for (let i = 0; i < rCols; i++) for (let j = 0; j < B * K; j++) coupling += RS.get(i, j) * R.get(i, j);
  const sq = inSubspace + tilt + coupling;
  return {
    jacobian: 'reduced',
    why:
      `regime subspace: the attack takes V from the noisy ∇W and solves the reduced problem in it, so its error is the reduced Jacobian's ` +
      `(${rRows}×${rCols}) plus the subspace tilt and its coupling, not J⁺ of the full problem (a lower bound: reported as full)`,
    errorSqPerVariance: sq,
    relErrPerSigma: Math.sqrt(sq) / xNorm,
    relErrPerRelSigma: (Math.sqrt(sq) * rms) / xNorm,
    gradientRms: rms,
    terms: { inSubspace, tilt, coupling },
    full: fullOut,
    identifiable,
  };
}
