/**
 * Levenberg–Marquardt for L_r = ‖r(x′)‖², r = (vec ΔW, Δb): the float64 numerics that the CPU engine
 * runs and the WGSL lm kernel mirrors in f32 (shaders/attack/lm.wgsl). Browser-safe.
 *
 * Normal equations without forming J. With a_nk(d′) = s_nk·W[d′,k] (see docs/math.md, "Diagnostics at the truth"):
 *   A = JᵀJ,  A[(n,d′),(m,d″)] = δ_{d′d″}·(EEᵀ)_nm
 *                               + Σ_k e_nk s_mk x_m[d′] W[d″,k] + Σ_k e_mk s_nk x_n[d″] W[d′,k]
 *                               + (x_n·x_m + 1)·Σ_k s_nk s_mk W[d′,k] W[d″,k]
 *   g = Jᵀr = ½∇L_r (the closed-form gradient of model.ts).
 * That is O(n²K) for n = B·D unknowns instead of O(M·n²) through the dense (DK+K)×n Jacobian.
 *
 * One LM ITERATION of a running restart (status 0), in this order (engine-cpu.ts has the shared parts):
 *   1. evaluate f = L_r(x) and g (reusing the accepted trial's value), best update, converged?, non-finite?
 *   2. A = JᵀJ at x; scale D_ii = max(A_ii, LM_DIAG_FLOOR·max_j A_jj) (Moré);
 *   3. solve (A + λ·D) δ = −g by Cholesky; a non-positive pivot or a non-finite δ counts as a rejected step;
 *   4. trial f_t = L_r(x + δ); predicted reduction pred = δᵀ(λ·D·δ − g); ρ = (f − f_t)/pred;
 *   5. if f_t is finite, pred > 0 and ρ > 0: accept (x += δ), λ ← λ·max(1/3, 1 − (2ρ − 1)³), ν ← 2;
 *      else reject: λ ← λ·ν, ν ← 2ν (Nielsen 1999);
 *      λ is clamped below at LM_LAMBDA_MIN; once λ > LM_LAMBDA_MAX the restart is frozen at its best point
 *      with status 3 (stalled: no step of any damping reduces the loss);
 *   6. iterations += 1.
 * λ starts at LM_LAMBDA0 and ν at 2 for every restart.
 */
import { type Gradient, type Layer, matchL2, residuals } from '../core/model.js';

export const LM_LAMBDA0 = 1e-3;
export const LM_LAMBDA_MIN = 1e-15;
export const LM_LAMBDA_MAX = 1e16;
/** Scaling floor: D_ii never drops below this fraction of the largest diagonal of JᵀJ. */
export const LM_DIAG_FLOOR = 1e-10;

/**
 * A = JᵀJ (n×n, row-major, n = B·D, unknown index n·D + d) at x, from the structure above.
 * The result is exactly symmetric.
 */
export function normalMatrix(layer: Layer, x: ArrayLike<number>, off = 0, out?: Float64Array): Float64Array {
  const { B, D, K, W } = layer;
  const { e, s } = residuals(layer, x, off);
  const n = B * D;
  // every entry is written below (upper triangle by blocks, then the mirror), so `out` needs no clearing
  const A = out ?? new Float64Array(n * n);
  // Per block (bn, bm): a = W(e_n∘s_m), c = W(e_m∘s_n) (D-vectors) and W·diag(s_n∘s_m)·Wᵀ (D×D), so
  // A_block[d1,d2] = δ·(e_n·e_m) + x_m[d1]·a[d2] + x_n[d2]·c[d1] + (x_n·x_m + 1)·(W diag(q) Wᵀ)[d1,d2].
  const a = new Float64Array(D);
  const c = new Float64Array(D);
  const q = new Float64Array(K);
  for (let bn = 0; bn < B; bn++) {
    for (let bm = bn; bm < B; bm++) {
      let ee = 0;
      let xx = 1;
      for (let k = 0; k < K; k++) {
        ee += e[bn * K + k] * e[bm * K + k];
        q[k] = s[bn * K + k] * s[bm * K + k];
      }
      for (let d = 0; d < D; d++) xx += x[off + bn * D + d] * x[off + bm * D + d];
      for (let d = 0; d < D; d++) {
        let av = 0;
        let cv = 0;
        for (let k = 0; k < K; k++) {
          const w = W[d * K + k];
          av += w * e[bn * K + k] * s[bm * K + k];
          cv += w * e[bm * K + k] * s[bn * K + k];
        }
        a[d] = av;
        c[d] = cv;
      }
      const xm = off + bm * D;
      const xn = off + bn * D;
      for (let d1 = 0; d1 < D; d1++) {
        const r = (bn * D + d1) * n + bm * D;
        // inside a diagonal block only d2 ≥ d1 (the mirror below fills the rest)
        for (let d2 = bn === bm ? d1 : 0; d2 < D; d2++) {
          let wqw = 0;
          for (let k = 0; k < K; k++) wqw += W[d1 * K + k] * q[k] * W[d2 * K + k];
          A[r + d2] = (d1 === d2 ? ee : 0) + x[xm + d1] * a[d2] + x[xn + d2] * c[d1] + xx * wqw;
        }
      }
    }
  }
  // the lower triangle mirrors the upper one (exact symmetry, also inside the diagonal blocks)
  for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) A[i * n + j] = A[j * n + i];
  return A;
}

/**
 * In-place Cholesky of the n×n SPD matrix M (lower factor in the lower triangle) and solve
 * M·z = rhs into z. Returns false on a non-positive or non-finite pivot (z is then garbage).
 */
export function choleskySolve(M: Float64Array, n: number, rhs: ArrayLike<number>, z: Float64Array): boolean {
  for (let j = 0; j < n; j++) {
    let d = M[j * n + j];
    for (let k = 0; k < j; k++) d -= M[j * n + k] * M[j * n + k];
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const ljj = Math.sqrt(d);
    M[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let v = M[i * n + j];
      for (let k = 0; k < j; k++) v -= M[i * n + k] * M[j * n + k];
      M[i * n + j] = v / ljj;
    }
  }
  for (let i = 0; i < n; i++) {
    let v = rhs[i];
    for (let k = 0; k < i; k++) v -= M[i * n + k] * z[k];
    z[i] = v / M[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let v = z[i];
    for (let k = i + 1; k < n; k++) v -= M[k * n + i] * z[k];
    z[i] = v / M[i * n + i];
  }
  return true;
}

export interface LmState {
  lambda: number;
  nu: number;
  /** Scratch of lmStep, kept across a restart's steps (allocated on first use). */
  work?: { A: Float64Array; Dg: Float64Array; rhs: Float64Array; delta: Float64Array; xt: Float64Array };
}

export interface LmStepResult {
  /** The trial point's value when the step was accepted (x was moved there), else null. */
  accepted: { loss: number; grad: Float64Array } | null;
  /** λ exceeded LM_LAMBDA_MAX: no damping reduces the loss any more. */
  stalled: boolean;
}

/**
 * Steps 2–5 of one LM iteration at x (f = L_r(x), grad = ∇L_r(x) = 2g): moves x when the step is
 * accepted and updates λ, ν in `state`.
 */
export function lmStep(layer: Layer, target: Gradient, x: Float64Array, f: number, grad: ArrayLike<number>, state: LmState): LmStepResult {
  const n = layer.B * layer.D;
  if (!state.work || state.work.Dg.length !== n) {
    state.work = { A: new Float64Array(n * n), Dg: new Float64Array(n), rhs: new Float64Array(n), delta: new Float64Array(n), xt: new Float64Array(n) };
  }
  const { Dg, rhs, delta, xt } = state.work;
  const A = normalMatrix(layer, x, 0, state.work.A);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, A[i * n + i]);
  for (let i = 0; i < n; i++) Dg[i] = Math.max(A[i * n + i], LM_DIAG_FLOOR * maxDiag);
  for (let i = 0; i < n; i++) A[i * n + i] += state.lambda * Dg[i];
  for (let i = 0; i < n; i++) rhs[i] = -0.5 * grad[i];
  let accepted: LmStepResult['accepted'] = null;
  if (choleskySolve(A, n, rhs, delta) && delta.every(Number.isFinite)) {
    let pred = 0;
    for (let i = 0; i < n; i++) pred += delta[i] * (state.lambda * Dg[i] * delta[i] + rhs[i]);
    for (let i = 0; i < n; i++) xt[i] = x[i] + delta[i];
    const trial = matchL2(layer, target, xt);
    const rho = (f - trial.loss) / pred;
    if (Number.isFinite(trial.loss) && pred > 0 && rho > 0) {
      x.set(xt);
      const t = 2 * rho - 1;
      state.lambda = Math.max(LM_LAMBDA_MIN, state.lambda * Math.max(1 / 3, 1 - t * t * t));
      state.nu = 2;
      accepted = trial;
    }
  }
  if (!accepted) {
    state.lambda *= state.nu;
    state.nu *= 2;
  }
  return { accepted, stalled: !(state.lambda <= LM_LAMBDA_MAX) };
}

/**
 * Float64 LM from x (in place) until L_r ≤ tolAbs, λ stalls, or `iterations` steps: the polish that
 * takes a device point (f32) to machine precision. λ starts at lambda0 (clamped to [LM_LAMBDA_MIN, LM_LAMBDA0]). Returns the final loss and the steps taken.
 */
export function lmRefine(
  layer: Layer,
  target: Gradient,
  x: Float64Array,
  iterations: number,
  tolAbs: number,
  lambda0 = LM_LAMBDA0,
): { loss: number; iterations: number; lambda: number } {
  // Starting from a converged device point, its own λ (already small) saves the ~log₃(λ₀/λ) steps
  // that λ would otherwise take to come down before Gauss–Newton resolves the flat directions.
  const state: LmState = { lambda: Math.min(Math.max(lambda0, LM_LAMBDA_MIN), LM_LAMBDA0), nu: 2 };
  let v = matchL2(layer, target, x);
  let it = 0;
  while (it < iterations && Number.isFinite(v.loss) && v.loss > tolAbs) {
    const res = lmStep(layer, target, x, v.loss, v.grad, state);
    it++;
    if (res.accepted) v = res.accepted;
    if (res.stalled) break;
  }
  return { loss: v.loss, iterations: it, lambda: state.lambda };
}
