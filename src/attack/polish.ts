/**
 * The float64 polish of the best device restarts: Levenberg–Marquardt (l2 loss, up to
 * LM_POLISH_MAX_UNKNOWNS unknowns) or L-BFGS from each picked restart's point, one restart per basin,
 * on as many further basins as it takes to find an exact fit where one is possible.
 */
import { type Gradient, type Layer, matchL2, matchLoss } from '../core/model.js';
import type { Scenario } from '../core/scenario.js';
import { lmRefine } from '../analysis/lm.js';
import { reconstructionMetrics } from '../analysis/matching.js';
import { type EngineStatus, createCpuEngine } from './engine-cpu.js';

/** Largest problem (unknowns) the float64 LM polish takes on (a Cholesky of n×n per step); beyond, L-BFGS. */
export const LM_POLISH_MAX_UNKNOWNS = 512;
/** Polish looks at up to this many times `polish` basins until one fits exactly (LM polish only). */
const POLISH_SEARCH = 4;
/** Float64 LM steps per polished restart (quadratic convergence: a handful from a device point). */
export const LM_POLISH_ITERATIONS = 100;
/** The float64 LM polish stops at L_r ≤ this·(‖∇W‖² + ‖∇b‖²): machine precision. */
const LM_POLISH_TOL = 1e-30;
/** Float64 L-BFGS iterations per polished restart, and its stopping point (relative to ‖∇W‖²+‖∇b‖²). */
export const POLISH_ITERATIONS = 100;
const POLISH_TOL = 1e-26;
/** A polished point "fits exactly" below this relative L_r (f32 read-back of the point limits it to ~1e-15). */
const EXACT_REL_LOSS = 1e-14;
/** Two exact solutions are distinct when their matched relative distance exceeds this: the success scale, so
 * that points of one flat valley that the polish left apart do not count as two answers. */
const DISTINCT_REL = 1e-3;
/** Polish picks skip device points this close (matched relative distance) to an earlier pick: the same basin. */
const PICK_DISTINCT_REL = 1e-2;
/** Polish picks look this many times as deep as the number of picks into the restarts, by loss. */
const PICK_SCAN = 64;

/** What the polish did, as the attack result reports it. */
export interface PolishReport {
    /** 'lm': float64 Levenberg–Marquardt (the default for the l2 loss); 'lbfgs' for cosine or very large problems. */
    method: 'lm' | 'lbfgs';
    restarts: number[];
    iterations: number;
    lossBefore: (number | null)[];
    lossAfter: (number | null)[];
    chosen: number;
    /**
     * Distinct polished points that fit the gradient exactly (L_r ≤ 1e-14·(‖∇W‖²+‖∇b‖²) in float64),
     * each B×D. More than one means the gradient does not single out the input: several exact
     * solutions exist (beyond row swaps), and which one is returned is arbitrary.
     */
    exactSolutions: number[][][];
    ambiguous: boolean;
    /**
     * With ground truth only: whether one of exactSolutions is the truth (relative error < 1e-3, labels
     * consistent). Ambiguous and true: the attack found the input, up to a choice the gradient cannot make.
     */
    truthAmongExact?: boolean;
  }

/** Rows of a flat r×c array (from `off`). */
export function rows(data: ArrayLike<number>, r: number, c: number, off = 0): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < r; i++) {
    const row = new Array<number>(c);
    for (let j = 0; j < c; j++) row[j] = data[off + i * c + j];
    out.push(row);
  }
  return out;
}

export const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** The scenario's layer with labels y. */
export function layerFor(s: Scenario, y: Float64Array): Layer {
  return { B: s.B, D: s.D, K: s.K, W: s.W, b: s.b, y, reduction: s.reduction };
}

/** Whether two B×K labellings are the same up to the order of their rows. */
export function sameUpToOrder(a: ArrayLike<number>, b: ArrayLike<number>, B: number, K: number): boolean {
  const key = (y: ArrayLike<number>) => Array.from({ length: B }, (_, n) => Array.from({ length: K }, (_, k) => y[n * K + k]).join(',')).sort().join(';');
  return key(a) === key(b);
}

/**
 * Which restarts to polish: by best device loss, skipping points within PICK_DISTINCT_REL (matched) of
 * an earlier pick with the same labelling, so that distinct basins, and with them every exact solution
 * the restarts found, get polished (the best few restarts often sit on one solution); the best restarts
 * left over fill the remaining picks. Scans at most PICK_SCAN·n restarts.
 */
export function polishPicks(order: number[], pts: Float32Array, labelings: Float64Array[], P: number, B: number, D: number, K: number, n: number): number[] {
  const BD = B * D;
  const picks: number[] = [];
  const scan = order.slice(0, Math.min(order.length, PICK_SCAN * n));
  for (const p of scan) {
    if (picks.length === n) break;
    const y = labelings[Math.floor(p / P)];
    const x = pts.subarray(p * BD, (p + 1) * BD);
    if (!x.every(Number.isFinite)) continue;
    const near = picks.some((q) => {
      const yq = labelings[Math.floor(q / P)];
      if (!sameUpToOrder(yq, y, B, K)) return false;
      return reconstructionMetrics(x, pts.subarray(q * BD, (q + 1) * BD), { B, D, K, reconLabels: y, trueLabels: yq }).relativeError < PICK_DISTINCT_REL;
    });
    if (!near) picks.push(p);
  }
  for (const p of order) {
    if (picks.length === n) break;
    if (!picks.includes(p)) picks.push(p);
  }
  return picks;
}


export interface PolishInput {
  /** Basins to polish (the attack's `polish` option). */
  count: number;
  loss: 'l2' | 'cosine';
  /** The scenario the restarts solved (the reduced one in the subspace regime) and its shared gradient. */
  work: Scenario;
  target: Gradient;
  labelings: Float64Array[];
  /** Restarts per labelling. */
  P: number;
  /** Restarts by best device loss, first index on ties. */
  order: number[];
  /** Every restart's best point (total·B·D, working space). */
  points: Float32Array;
  /** lm only: each restart's final λ, where the LM polish starts. */
  lambda?: EngineStatus['lambda'];
  /** ‖∇W‖² + ‖∇b‖² of the original gradient, and the constant the reduced loss misses. */
  gNorm: number;
  outside: number;
  /** An exact solution as the result reports it (lifted to the original space, B×D rows). */
  exactSolution: (x: Float64Array) => number[][];
  /** With ground truth: whether a working-space point with labels y is the truth. */
  isTruth?: (x: Float64Array, y: Float64Array) => boolean;
}

/** Polishes the picked restarts in float64; returns the restart and point that become the reconstruction. */
export async function polishRestarts(input: PolishInput): Promise<{ best: number; point: Float64Array; report: PolishReport }> {
  const { count, loss, work, target, labelings, P, order, points: pts, gNorm, outside, exactSolution, isTruth } = input;
  const { B, D, K } = work;
  const BD = B * D;
  const total = order.length;
  const lambda = input.lambda;
  const useLm = loss === 'l2' && BD <= LM_POLISH_MAX_UNKNOWNS;
  // Where an exact fit is possible, keep polishing further basins (up to POLISH_SEARCH× as many) until
  // one fits exactly: the lowest device losses can all sit in spurious local minima.
  const exactPossible = loss === 'l2' && outside <= EXACT_REL_LOSS * gNorm;
  const candidates = polishPicks(order, pts, labelings, P, B, D, K, Math.min(count * (exactPossible ? POLISH_SEARCH : 1), total));
  const fitsExactly = (x: Float64Array, y: Float64Array): boolean => matchL2(layerFor(work, y), target, x).loss + outside <= EXACT_REL_LOSS * gNorm;
  let foundExact = false;
  const before: (number | null)[] = [];
  const after: (number | null)[] = [];
  let bestAfter = Infinity;
  let bestIdx = 0;
  let polishIterations = 0;
  const polished: Float64Array[] = [];
  for (let i = 0; i < candidates.length && (i < count || !foundExact); i++) {
    const p = candidates[i];
    const y = labelings[Math.floor(p / P)];
    const layer = layerFor(work, y);
    const start = Float64Array.from(pts.subarray(p * BD, (p + 1) * BD));
    let x = Float64Array.from(start);
    if (useLm) {
      const lambda0 = lambda && Number.isFinite(lambda[p]) ? lambda[p] : undefined;
      polishIterations = Math.max(polishIterations, lmRefine(layer, target, x, LM_POLISH_ITERATIONS, LM_POLISH_TOL * gNorm, lambda0).iterations);
    } else {
      const cpu = createCpuEngine({
        layer, target, P: 1, optimizer: 'lbfgs', lr: 1, loss,
        tolAbs: loss === 'cosine' ? 0 : POLISH_TOL * gNorm, label: 'attack.polish',
      });
      cpu.setInputs(start);
      cpu.run(POLISH_ITERATIONS);
      // The engine keeps its best point in float64 and hands it back as f32: far below the 1e-3 success scale.
      x = Float64Array.from(await cpu.readBest());
      cpu.destroy();
      polishIterations = POLISH_ITERATIONS;
    }
    const vBefore = matchLoss(loss, layer, target, start).loss;
    let vAfter = matchLoss(loss, layer, target, x).loss;
    // Never worse than where it started (the f32 read-back could in principle lose the gain).
    if (!(vAfter <= vBefore)) {
      x.set(start);
      vAfter = vBefore;
    }
    before.push(finiteOrNull(vBefore + (loss === 'l2' ? outside : 0)));
    after.push(finiteOrNull(vAfter + (loss === 'l2' ? outside : 0)));
    polished.push(x);
    if (useLm && fitsExactly(x, y)) foundExact = true;
    if (vAfter < bestAfter) {
      bestAfter = vAfter;
      bestIdx = i;
    }
  }
  const picks = candidates.slice(0, polished.length);
  // Distinct exact solutions among the polished points (row order and equal-label swaps aside).
  const exact: { x: Float64Array; y: Float64Array; i: number }[] = [];
  for (let i = 0; i < picks.length; i++) {
    const y = labelings[Math.floor(picks[i] / P)];
    if (!fitsExactly(polished[i], y)) continue;
    const isNew = exact.every((e) => {
      if (!sameUpToOrder(e.y, y, B, K)) return true;
      const m = reconstructionMetrics(polished[i], e.x, { B, D, K, reconLabels: y, trueLabels: e.y });
      return !(m.relativeError < DISTINCT_REL);
    });
    if (isNew) exact.push({ x: polished[i], y, i });
  }
  // Several exact solutions fit equally well (their float64 losses differ at roundoff): return the
  // one from the best device restart, a choice that does not hang on that roundoff.
  if (exact.length > 0) bestIdx = exact[0].i;
  const report: PolishReport = {
    method: useLm ? 'lm' : 'lbfgs',
    restarts: picks, iterations: polishIterations, lossBefore: before, lossAfter: after, chosen: bestIdx,
    exactSolutions: exact.map((e) => exactSolution(e.x)),
    ambiguous: exact.length > 1,
    ...(isTruth ? { truthAmongExact: exact.some((e) => isTruth(e.x, e.y)) } : {}),
  };
  return { best: picks[bestIdx], point: polished[bestIdx], report };
}
