/**
 * Analytic recovery at B = 1 (docs/math.md): ∇W[:, k] = x·e_k and ∇b[k] = e_k, so
 * x = ∇W[:, k] / ∇b[k] for any k; the k with the largest |∇b[k]| is the best conditioned.
 * Exact and instant, in float64 on the host. Browser-safe.
 */
import { DlgInputError } from '../core/errors.js';
import type { Gradient } from '../core/model.js';

/** Why the formula needs B = 1, for error messages and reports. */
export const ANALYTIC_B_EXPLANATION =
  'analytic recovery needs B = 1: for B > 1, ∇W = Σ_n x_n e_nᵀ is a sum of B rank-one terms, and it cannot be split ' +
  'into the rows x_n without knowing the residuals e_n, which themselves depend on x (use --method optimize)';

export interface AnalyticRecovery {
  /** The recovered input, length D. */
  x: Float64Array;
  /** The column used: argmax_k |∇b[k]|. */
  column: number;
}

export function analyticRecover(shape: { B: number; D: number; K: number }, gradient: Gradient): AnalyticRecovery {
  const { B, D, K } = shape;
  if (B !== 1) throw new DlgInputError('method', `'optimize' for B = ${B} (${ANALYTIC_B_EXPLANATION})`, `'analytic' with B = ${B}`);
  if (gradient.W.length !== D * K) throw new DlgInputError('gradient.weights', `${D}×${K} values`, `${gradient.W.length}`);
  if (gradient.b.length !== K) throw new DlgInputError('gradient.bias', `${K} values`, `${gradient.b.length}`);
  let column = 0;
  for (let k = 1; k < K; k++) if (Math.abs(gradient.b[k]) > Math.abs(gradient.b[column])) column = k;
  const gk = gradient.b[column];
  // e_k ≠ 0 in exact arithmetic (σ ∈ (0,1), y ∈ {0,1}); a zero here means the gradient underflowed or labels are soft.
  if (gk === 0 || !Number.isFinite(gk)) {
    throw new DlgInputError('gradient.bias', 'at least one finite non-zero entry (analytic recovery divides by it)', 'all zero');
  }
  const x = new Float64Array(D);
  for (let d = 0; d < D; d++) x[d] = gradient.W[d * K + column] / gk;
  return { x, column };
}
