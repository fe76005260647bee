/**
 * Scoring a reconstruction against the truth. Rows of x′ may come out in any order, so
 * reconstructed rows are matched to true rows by the assignment with the least total squared
 * error (Hungarian), allowing only pairs whose labels are equal. Browser-safe.
 */

/** Success threshold on the relative error ‖x′_matched − x‖_F / ‖x‖_F. */
export const SUCCESS_REL_ERROR = 1e-3;

/** PSNR of an exact match would be +∞, which JSON cannot hold; it is capped here (dB). */
export const PSNR_CAP = 300;

export interface Assignment {
  /** assignment[i] = the true row matched to reconstructed row i. */
  assignment: number[];
  /** Total cost of the assignment (finite pairs only when feasible). */
  cost: number;
  /** False when every perfect assignment uses a forbidden pair. */
  feasible: boolean;
}

/**
 * Minimum-cost perfect assignment on an n×n cost matrix (row-major, length n²); `Infinity`
 * marks a forbidden pair. O(n³) Hungarian with potentials (shortest augmenting paths).
 * Ties are broken by index order, so the result is deterministic.
 */
export function hungarian(cost: ArrayLike<number>, n: number): Assignment {
  if (cost.length !== n * n) throw new Error(`hungarian: cost has length ${cost.length}, expected ${n * n}`);
  for (let i = 0; i < cost.length; i++) {
    if (Number.isNaN(cost[i]) || cost[i] === -Infinity) throw new Error(`hungarian: cost[${i}] is ${cost[i]}`);
  }
  if (n === 0) return { assignment: [], cost: 0, feasible: true };
  // Forbidden pairs get a penalty larger than any feasible total, so a feasible assignment always wins.
  let finiteSum = 0;
  for (let i = 0; i < cost.length; i++) if (Number.isFinite(cost[i])) finiteSum += Math.abs(cost[i]);
  const big = (finiteSum + 1) * (n + 1);
  const c = (i: number, j: number) => {
    const v = cost[i * n + j];
    return Number.isFinite(v) ? v : big;
  };
  // 1-based e-maxx formulation: p[j] = row assigned to column j.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1);
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Infinity);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = c(i0 - 1, j - 1) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const assignment = new Array<number>(n).fill(-1);
  for (let j = 1; j <= n; j++) assignment[p[j] - 1] = j - 1;
  let total = 0;
  let feasible = true;
  for (let i = 0; i < n; i++) {
    const v2 = cost[i * n + assignment[i]];
    if (!Number.isFinite(v2)) feasible = false;
    else total += v2;
  }
  return { assignment, cost: feasible ? total : Infinity, feasible };
}

function sameLabels(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, K: number): boolean {
  for (let k = 0; k < K; k++) if (a[i * K + k] !== b[j * K + k]) return false;
  return true;
}

export interface MatchRowsOptions {
  B: number;
  D: number;
  K?: number;
  /** Labels of the reconstructed rows (B×K) and of the true rows; pairs with different labels may not match. */
  reconLabels?: ArrayLike<number>;
  trueLabels?: ArrayLike<number>;
}

/**
 * Matches reconstructed rows (x′, B×D at offset `off`) to true rows (B×D).
 * If the labels admit no perfect matching (e.g. wrongly inferred labels), the rows are matched
 * without the label constraint and `labelConsistent` is false.
 */
export function matchRows(
  recon: ArrayLike<number>,
  truth: ArrayLike<number>,
  o: MatchRowsOptions,
  off = 0,
): Assignment & { labelConsistent: boolean } {
  const { B, D } = o;
  const cost = new Float64Array(B * B);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      let acc = 0;
      for (let d = 0; d < D; d++) {
        const diff = recon[off + i * D + d] - truth[j * D + d];
        acc += diff * diff;
      }
      cost[i * B + j] = Number.isNaN(acc) ? Infinity : acc;
    }
  }
  if (o.reconLabels && o.trueLabels && o.K !== undefined) {
    const constrained = Float64Array.from(cost);
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < B; j++) if (!sameLabels(o.reconLabels, i, o.trueLabels, j, o.K)) constrained[i * B + j] = Infinity;
    }
    const r = hungarian(constrained, B);
    if (r.feasible) return { ...r, labelConsistent: true };
    return { ...hungarian(cost, B), labelConsistent: false };
  }
  return { ...hungarian(cost, B), labelConsistent: true };
}

export interface ReconstructionMetrics {
  relativeError: number;
  mse: number;
  /** Only for image-like inputs (a PSNR peak was given). Capped at PSNR_CAP dB. */
  psnr?: number;
  success: boolean;
  /** assignment[i] = true row matched to reconstructed row i. */
  assignment: number[];
  /** False when the labels used admit no one-to-one matching with the true labels. */
  labelConsistent: boolean;
  /** With both label sets: the share of reconstructed rows whose label row equals that of the true row they are matched to. */
  labelAccuracy?: number;
}

/**
 * Relative error ‖x′_matched − x‖_F / ‖x‖_F, MSE (mean over B·D entries) and PSNR
 * = 10·log10(peak²/MSE), after the optimal label-respecting matching.
 * A non-finite reconstruction scores relativeError = mse = Infinity (attack() never scores such
 * points: non-finite restarts are rolled back to their best finite point).
 */
export function reconstructionMetrics(
  recon: ArrayLike<number>,
  truth: ArrayLike<number>,
  o: MatchRowsOptions & { psnrPeak?: number },
  off = 0,
): ReconstructionMetrics {
  const { B, D } = o;
  const m = matchRows(recon, truth, o, off);
  let num = 0;
  let den = 0;
  for (let i = 0; i < B; i++) {
    const j = m.assignment[i];
    for (let d = 0; d < D; d++) {
      const diff = recon[off + i * D + d] - truth[j * D + d];
      num += diff * diff;
    }
  }
  for (let i = 0; i < B * D; i++) den += truth[i] * truth[i];
  if (Number.isNaN(num)) num = Infinity;
  const relativeError = den > 0 ? Math.sqrt(num / den) : num === 0 ? 0 : Infinity;
  const mse = num / (B * D);
  const out: ReconstructionMetrics = {
    relativeError,
    mse,
    success: relativeError < SUCCESS_REL_ERROR && m.labelConsistent,
    assignment: m.assignment,
    labelConsistent: m.labelConsistent,
  };
  if (o.reconLabels && o.trueLabels && o.K !== undefined) {
    let same = 0;
    for (let i = 0; i < B; i++) if (sameLabels(o.reconLabels, i, o.trueLabels, m.assignment[i], o.K)) same++;
    out.labelAccuracy = same / B;
  }
  if (o.psnrPeak !== undefined) {
    out.psnr = mse > 0 ? Math.min(PSNR_CAP, 10 * Math.log10((o.psnrPeak * o.psnrPeak) / mse)) : PSNR_CAP;
  }
  return out;
}

/** Side length when D is an image (a square of side ≥ 8, e.g. 8×8 digits or 28×28), else undefined. */
export function imageSide(D: number): number | undefined {
  const s = Math.round(Math.sqrt(D));
  return s >= 8 && s * s === D ? s : undefined;
}

/** Peak for PSNR: the dynamic range of the true values (1 when they are all equal). */
export function psnrPeak(truth: ArrayLike<number>): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < truth.length; i++) {
    if (truth[i] < lo) lo = truth[i];
    if (truth[i] > hi) hi = truth[i];
  }
  return hi > lo ? hi - lo : 1;
}
