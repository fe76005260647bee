/**
 * The subspace reduction and the three regimes of identifiability (docs/math.md, "The subspace
 * reduction" and "Three regimes"). Browser-safe, float64.
 *
 * G = xᵀE (D×K). When E has rank B (generic for B ≤ K) the columns of G span the row space of x,
 * so x = C·Vᵀ with V (D×B) the top-B left singular vectors of G. The reduced problem is the same
 * problem with D replaced by B: weights VᵀW, gradient (VᵀG, g), unknowns C (B×B), and
 *   ‖xᵀE − G‖² = ‖CᵀE − VᵀG‖² + ‖(I − VVᵀ)G‖²   (the last term is a constant).
 * So every engine, kernel and diagnostic runs on the reduced scenario unchanged, and lift(C) = C·Vᵀ.
 */
import { SVD } from 'ml-matrix';
import { DlgInputError } from '../core/errors.js';
import type { Scenario } from '../core/scenario.js';

/**
 * - 'subspace': B ≤ K, D > B and rank ∇W ≥ B: B² unknowns after the reduction;
 * - 'direct': D ≤ K: at most B·D ≤ B·K unknowns, solved as they are;
 * - 'unidentifiable': B > K and D > K: the exact solutions form a manifold of dimension ≥ (B − K)(D − K);
 * - 'rank-deficient': B ≤ K < D but rank ∇W < B: the reduction does not hold; the unreduced problem.
 */
export type Regime = 'subspace' | 'direct' | 'unidentifiable' | 'rank-deficient';
export type ReduceMode = 'auto' | 'on' | 'off';

export interface RegimeInfo {
  regime: Regime;
  /** Numerical rank of ∇W (D×K), and its singular values (descending). */
  rank: number;
  singularValues: number[];
  /** Whether the attack works on the reduced problem (x = C·Vᵀ). */
  reduced: boolean;
  /** Unknowns of the problem the attack solves: B² reduced, else B·D. */
  unknowns: number;
  /**
   * false where no attack can identify x: B > K and D > K, or more unknowns than equations
   * (B·D > D·K + K); true otherwise (locally, for generic data).
   */
  identifiable: boolean;
  /**
   * Not identifiable only: a lower bound on the dimension of the exact solutions through the truth,
   * max((B − K)(D − K), B·D − D·K − K) (the attack result replaces it by B·D − rank J at its solution where it can).
   */
  manifoldDim?: number;
  /** ‖(I − VVᵀ)∇W‖²: the part of the gradient outside the subspace (0 for an exact gradient). Reduced only. */
  outOfSubspaceEnergy?: number;
  /** One sentence a user reads: what the regime means for this attack. */
  summary: string;
}

export interface SubspaceReduction {
  /** The reduced scenario: D = B, W = VᵀW, gradient (VᵀG, g), inputs C = x·V when the truth is known. */
  scenario: Scenario;
  /** V (D×B, row-major V[d·B + j]), orthonormal columns. */
  V: Float64Array;
  /** x = C·Vᵀ for `count` stacked B×B blocks C (count·B·D values out). */
  lift(C: ArrayLike<number>, count?: number): Float64Array;
  /** The inverse map on points: C = x·V. */
  project(x: ArrayLike<number>, count?: number): Float64Array;
  info: RegimeInfo;
}

/** σ counts as zero below max(D, K)·ε·σ_max·10 (an SVD of G itself, not of a Gram matrix). */
function rankOf(values: number[], D: number, K: number): number {
  const thr = 10 * Math.max(D, K) * 2 ** -52 * (values[0] ?? 0);
  let r = 0;
  while (r < values.length && values[r] > thr) r++;
  return r;
}

function svdOf(s: Scenario): { values: number[]; U: number[][] } {
  const { D, K } = s;
  const rows: number[][] = [];
  for (let d = 0; d < D; d++) rows.push(Array.from(s.gradient.W.subarray(d * K, (d + 1) * K)));
  const svd = new SVD(rows, { computeLeftSingularVectors: true, computeRightSingularVectors: false, autoTranspose: true });
  return { values: svd.diagonal.slice(0, Math.min(D, K)), U: svd.leftSingularVectors.to2DArray() };
}

function describeRegime(i: Omit<RegimeInfo, 'summary'>, B: number, D: number, K: number): string {
  switch (i.regime) {
    case 'subspace':
      return `B = ${B} ≤ K = ${K}: the inputs lie in the ${B}-dimensional column space of ∇W, so D drops out: ${i.unknowns} unknowns instead of ${B * D}`;
    case 'direct':
      return i.identifiable
        ? `D = ${D} ≤ K = ${K}: ${i.unknowns} unknowns, solved directly`
        : `D = ${D} ≤ K = ${K} but ${B * D} unknowns against ${D * K + K} equations: not identifiable (exact solutions form a manifold of dimension ≥ ${i.manifoldDim})`;
    case 'unidentifiable':
      return `B = ${B} > K = ${K} and D = ${D} > K: not identifiable; the exact solutions form a manifold of dimension ≥ ${i.manifoldDim} through the truth, so any attack can only return a point of it`;
    case 'rank-deficient':
      return `rank ∇W = ${i.rank} < B = ${B}: the subspace reduction does not hold (duplicate rows or a degenerate residual); attacking the unreduced problem (${i.unknowns} unknowns)`;
  }
}

/** The regime of a scenario and, where it applies, its reduction (mode 'off' never reduces). */
export function analyseScenario(s: Scenario, mode: ReduceMode = 'auto'): { info: RegimeInfo; reduction?: SubspaceReduction } {
  const { B, D, K } = s;
  const { values, U } = svdOf(s);
  const rank = rankOf(values, D, K);
  let regime: Regime;
  if (B <= K && D > B && rank >= B) regime = 'subspace';
  else if (D <= K) regime = 'direct';
  else if (B > K) regime = 'unidentifiable';
  else regime = 'rank-deficient';
  if (mode === 'on' && regime !== 'subspace') {
    const why =
      B > K
        ? `B = ${B} > K = ${K}: the inputs need not lie in the column space of ∇W`
        : D <= B
          ? `D = ${D} ≤ B = ${B}: nothing to reduce`
          : `rank ∇W = ${rank} < B = ${B}`;
    throw new DlgInputError('reduce', `'auto' or 'off' here (the subspace reduction needs B ≤ K, D > B and rank ∇W = B)`, `'on' with ${why}`);
  }
  const reduced = regime === 'subspace' && mode !== 'off';
  // Counting: B·D unknowns against D·K + K equations; beyond that the solutions form a manifold.
  const countBound = Math.max(0, B * D - (D * K + K));
  const dimBound = regime === 'unidentifiable' ? Math.max(countBound, (B - K) * (D - K)) : countBound;
  const base = {
    regime,
    rank,
    singularValues: values,
    reduced,
    unknowns: reduced ? B * B : B * D,
    identifiable: dimBound === 0,
    ...(dimBound > 0 ? { manifoldDim: dimBound } : {}),
  };
  if (!reduced) {
    const info: RegimeInfo = { ...base, summary: describeRegime(base, B, D, K) };
    if (regime === 'subspace') info.summary += ' (--reduce off: attacking all of them)';
    return { info };
  }
  // V: the top-B left singular vectors (D×B).
  const V = new Float64Array(D * B);
  for (let d = 0; d < D; d++) for (let j = 0; j < B; j++) V[d * B + j] = U[d][j];
  const matTV = (M: Float64Array, cols: number): Float64Array => {
    // Vᵀ·M for M (D×cols) → B×cols
    const out = new Float64Array(B * cols);
    for (let d = 0; d < D; d++) for (let j = 0; j < B; j++) {
      const v = V[d * B + j];
      if (v === 0) continue;
      for (let c = 0; c < cols; c++) out[j * cols + c] += v * M[d * cols + c];
    }
    return out;
  };
  const T = matTV(s.gradient.W, K);
  // ‖(I − VVᵀ)G‖² directly (no cancellation): G − V·T.
  let outside = 0;
  for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) {
    let acc = s.gradient.W[d * K + k];
    for (let j = 0; j < B; j++) acc -= V[d * B + j] * T[j * K + k];
    outside += acc * acc;
  }
  const project = (x: ArrayLike<number>, count = 1): Float64Array => {
    const out = new Float64Array(count * B * B);
    for (let p = 0; p < count; p++) for (let n = 0; n < B; n++) {
      const xo = (p * B + n) * D;
      const co = (p * B + n) * B;
      for (let d = 0; d < D; d++) {
        const xv = x[xo + d];
        if (xv === 0) continue;
        for (let j = 0; j < B; j++) out[co + j] += xv * V[d * B + j];
      }
    }
    return out;
  };
  const lift = (C: ArrayLike<number>, count = 1): Float64Array => {
    const out = new Float64Array(count * B * D);
    for (let p = 0; p < count; p++) for (let n = 0; n < B; n++) {
      const xo = (p * B + n) * D;
      const co = (p * B + n) * B;
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = 0; j < B; j++) acc += C[co + j] * V[d * B + j];
        out[xo + d] = acc;
      }
    }
    return out;
  };
  const scenario: Scenario = {
    B, D: B, K,
    W: matTV(s.W, K),
    b: Float64Array.from(s.b),
    y: Float64Array.from(s.y),
    reduction: s.reduction,
    gradient: { W: T, b: Float64Array.from(s.gradient.b) },
    ...(s.inputs ? { inputs: project(s.inputs) } : {}),
  };
  const withEnergy = { ...base, outOfSubspaceEnergy: outside };
  const info: RegimeInfo = { ...withEnergy, summary: describeRegime(withEnergy, B, D, K) };
  return { info, reduction: { scenario, V, lift, project, info } };
}

/**
 * `reduceScenario(scenario) → {scenario, lift, …}`: the subspace reduction (throws DlgInputError
 * naming the rank where it does not apply: B > K, D ≤ B, or rank ∇W < B).
 */
export function reduceScenario(s: Scenario): SubspaceReduction {
  return analyseScenario(s, 'on').reduction!;
}
