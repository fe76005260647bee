/**
 * The attack engine's contract (types, option validation) and its float64 CPU implementation.
 * The WebGPU engine (engine.ts) follows exactly the same per-iteration semantics in f32, so the
 * two can be compared trajectory by trajectory.
 *
 * One ITERATION of a running restart (status 0), in this order:
 *   1. evaluate (f, g) = (loss, ∇ₓ loss) at x (closed form, model.ts matchL2 / matchCosine);
 *      L-BFGS reuses the value its line search already computed at the accepted point;
 *   2. best: if f < bestLoss then bestLoss = f, best = x (a NaN never compares less);
 *   3. loss = f; if f ≤ tolAbs[group] → status 1 (converged), frozen;
 *   4. if f or any g is NaN/±Inf → x = best, loss = bestLoss, status 2 (non-finite), frozen
 *      (rolled back, not re-seeded; other restarts are untouched);
 *   5. optimizer step, then iterations += 1.
 * So `iterations` counts the steps taken: a restart stopped at its (k+1)-th evaluation reports k.
 * `loss` is the value at the last evaluation (the step after it has not been evaluated yet);
 * `best`/`bestLoss` are the best evaluated point and its value (+Inf before the first evaluation).
 *
 * Optimizers (per restart):
 *   gd    v = μ·v + g;  x −= lr·v
 *   adam  m = β₁m + (1−β₁)g;  v = β₂v + (1−β₂)g²;  t = iterations + 1;
 *         x −= a₁·m / (sqrt(v·a₂) + ε) with a₁ = lr/(1−β₁ᵗ), a₂ = 1/(1−β₂ᵗ) (bias-corrected)
 *   lbfgs d = −H·g by the two-loop recursion over the last m pairs (s, y) with H₀ = γI,
 *         γ = sᵀy/yᵀy of the newest pair. With no pairs (or if d is not a descent direction, which
 *         also clears the history) d = −g and the first trial step is lr·min(1, 1/‖g‖₁); otherwise lr.
 *         Backtracking Armijo line search: trial x + t·d is accepted when f(x+td) is finite, its
 *         gradient is finite and f(x+td) ≤ f + 1e-4·t·gᵀd; else t ← t/2, at most LBFGS_MAX_HALVINGS
 *         halvings (every trial is one function+gradient evaluation inside the same iteration).
 *         If no trial is accepted the restart stays put and its history is cleared.
 *         A pair (s, y) is stored only when sᵀy > 1e-7·‖s‖‖y‖ (positive curvature).
 */
import type { Gradient, Layer, MatchLoss, ObjectiveValue } from '../core/model.js';
import { matchCosine, matchL2 } from '../core/model.js';
import { DlgInputError, describe, requireFiniteArray, requireFiniteNumber, requireOneOf, requirePositiveInt } from '../core/errors.js';
import { LM_LAMBDA0, type LmState, lmStep } from '../analysis/lm.js';

export type Optimizer = 'gd' | 'adam' | 'lbfgs' | 'lm';
export const OPTIMIZERS: readonly Optimizer[] = ['gd', 'adam', 'lbfgs', 'lm'];
/** The first-order optimizers (the seed's and DLG's kind): everything but lm. */
export const FIRST_ORDER: readonly Optimizer[] = ['gd', 'adam', 'lbfgs'];

import { LBFGS_ARMIJO_C1, LBFGS_CURVATURE_EPS, LBFGS_MAX_HALVINGS, LBFGS_MAX_HISTORY } from '../analysis/lbfgs.js';
export { LBFGS_ARMIJO_C1, LBFGS_CURVATURE_EPS, LBFGS_MAX_HALVINGS, LBFGS_MAX_HISTORY };

export interface EngineOptions {
  layer: Layer;
  target: Gradient;
  groups?: { y: ArrayLike<number>; target: Gradient }[];
  P: number;
  optimizer: Optimizer;
  lr: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  history?: number;
  loss?: MatchLoss;
  tolAbs?: number | number[];
  label?: string;
}

/**
 * 0 running (or stalled), 1 converged, 2 non-finite (rolled back to its best point and frozen),
 * 3 stalled and frozen at its best point (lm: λ beyond LM_LAMBDA_MAX, no damping reduces the loss).
 */
export type RestartStatus = 0 | 1 | 2 | 3;

export interface EngineStatus {
  loss: Float32Array;
  bestLoss: Float32Array;
  status: Uint32Array;
  iterations: Uint32Array;
  /** lm only: each restart's damping λ (after its last step). */
  lambda?: Float32Array;
}

export interface EngineHandle {
  readonly totalRestarts: number;
  /** Which kernel advances the restarts: 'cpu', or the GPU kernel ('pair', 'invocation', 'stream', 'workgroup', 'lm'). */
  readonly kernel: string;
  /** Why that kernel runs (the registry's sentence for GPU kernels, src/gpu/kernels.ts). */
  readonly why: string;
  setInputs(x0: ArrayLike<number>): void;
  run(iterations: number): void;
  readStatus(): Promise<EngineStatus>;
  readBest(): Promise<Float32Array>;
  destroy(): void;
}

/**
 * The GPU engines' status buffer, 16 bytes per restart: loss (f32), bestLoss (f32), status (u32),
 * iterations (u32).
 */
export function decodeStatus(buf: ArrayBuffer, total: number): EngineStatus {
  const f = new Float32Array(buf);
  const u = new Uint32Array(buf);
  const out: EngineStatus = { loss: new Float32Array(total), bestLoss: new Float32Array(total), status: new Uint32Array(total), iterations: new Uint32Array(total) };
  for (let p = 0; p < total; p++) {
    out.loss[p] = f[4 * p];
    out.bestLoss[p] = f[4 * p + 1];
    out.status[p] = u[4 * p + 2];
    out.iterations[p] = u[4 * p + 3];
  }
  return out;
}

/** The status buffer before the first iteration: loss and bestLoss +∞, status and iterations 0. */
export function initialStatus(total: number): ArrayBuffer {
  const st = new ArrayBuffer(total * 16);
  const f = new Float32Array(st);
  for (let p = 0; p < total; p++) {
    f[4 * p] = Infinity;
    f[4 * p + 1] = Infinity;
  }
  return st;
}

/** Validated, defaulted options shared by the CPU and GPU engines. */
export interface ResolvedEngineOptions {
  B: number;
  D: number;
  K: number;
  W: Float64Array;
  b: Float64Array;
  reduction: Layer['reduction'];
  groups: { y: Float64Array; target: Gradient }[];
  P: number;
  total: number;
  optimizer: Optimizer;
  lr: number;
  momentum: number;
  beta1: number;
  beta2: number;
  eps: number;
  history: number;
  loss: MatchLoss;
  tolAbs: Float64Array; // per group; -Infinity = never converge
  label: string;
}

/** A validated float64 copy. */
function requireArray(field: string, v: unknown, n: number): Float64Array {
  return Float64Array.from(requireFiniteArray(field, v, n));
}

export function resolveEngineOptions(opts: EngineOptions): ResolvedEngineOptions {
  if (opts === null || typeof opts !== 'object') throw new DlgInputError('options', 'an object', describe(opts));
  const layer = opts.layer;
  if (layer === null || typeof layer !== 'object') throw new DlgInputError('layer', 'an object', describe(layer));
  const B = requirePositiveInt('layer.B', layer.B);
  const D = requirePositiveInt('layer.D', layer.D);
  const K = requirePositiveInt('layer.K', layer.K);
  const W = requireArray('layer.W', layer.W, D * K);
  const b = requireArray('layer.b', layer.b, K);
  const reduction = requireOneOf('layer.reduction', layer.reduction, ['mean', 'sum'] as const);
  const rawGroups = opts.groups ?? [{ y: layer.y, target: opts.target }];
  if (!Array.isArray(rawGroups) || rawGroups.length < 1) throw new DlgInputError('groups', 'a non-empty array', describe(rawGroups));
  const groups = rawGroups.map((g, i) => {
    const f = opts.groups ? `groups[${i}]` : '';
    if (g === null || typeof g !== 'object') throw new DlgInputError(f || 'target', 'an object', describe(g));
    const y = requireArray(f ? `${f}.y` : 'layer.y', g.y, B * K);
    const t = g.target;
    if (t === null || typeof t !== 'object') throw new DlgInputError(f ? `${f}.target` : 'target', 'a gradient {W, b}', describe(t));
    const tW = requireArray(f ? `${f}.target.W` : 'target.W', t.W, D * K);
    const tb = requireArray(f ? `${f}.target.b` : 'target.b', t.b, K);
    return { y, target: { W: tW, b: tb } };
  });
  const P = requirePositiveInt('P', opts.P);
  const total = P * groups.length;
  const optimizer = requireOneOf('optimizer', opts.optimizer, OPTIMIZERS);
  const lr = requireFiniteNumber('lr', opts.lr);
  if (!(lr > 0)) throw new DlgInputError('lr', 'a finite number > 0', describe(lr));
  const momentum = requireFiniteNumber('momentum', opts.momentum ?? 0.9, 0, 1);
  const beta1 = requireFiniteNumber('beta1', opts.beta1 ?? 0.9, 0, 1);
  const beta2 = requireFiniteNumber('beta2', opts.beta2 ?? 0.999, 0, 1);
  if (beta1 >= 1) throw new DlgInputError('beta1', 'a finite number in [0, 1)', describe(beta1));
  if (beta2 >= 1) throw new DlgInputError('beta2', 'a finite number in [0, 1)', describe(beta2));
  const eps = requireFiniteNumber('eps', opts.eps ?? 1e-8, 0);
  const history = requirePositiveInt('history', opts.history ?? 5, LBFGS_MAX_HISTORY);
  const loss = requireOneOf('loss', opts.loss ?? 'l2', ['l2', 'cosine'] as const);
  if (optimizer === 'lm' && loss !== 'l2') {
    throw new DlgInputError('loss', "'l2' with optimizer 'lm' (Levenberg–Marquardt needs the least-squares residual)", `'${loss}'`);
  }
  const tolAbs = new Float64Array(groups.length).fill(-Infinity);
  if (opts.tolAbs !== undefined) {
    if (typeof opts.tolAbs === 'number') {
      if (Number.isNaN(opts.tolAbs)) throw new DlgInputError('tolAbs', 'a number (not NaN)', 'NaN');
      tolAbs.fill(opts.tolAbs);
    } else {
      if (!Array.isArray(opts.tolAbs) || opts.tolAbs.length !== groups.length) {
        throw new DlgInputError('tolAbs', `a number or an array of ${groups.length} numbers (one per group)`, describe(opts.tolAbs));
      }
      opts.tolAbs.forEach((t, i) => {
        if (typeof t !== 'number' || Number.isNaN(t)) throw new DlgInputError(`tolAbs[${i}]`, 'a number (not NaN)', describe(t));
        tolAbs[i] = t;
      });
    }
  }
  return {
    B, D, K, W, b, reduction, groups, P, total, optimizer, lr, momentum, beta1, beta2, eps, history, loss, tolAbs,
    label: typeof opts.label === 'string' ? opts.label : 'attack',
  };
}

/** Checks x0's length (total·B·D) and that it is all finite. */
export function checkInputs(o: ResolvedEngineOptions, x0: ArrayLike<number>): void {
  const n = o.total * o.B * o.D;
  if (x0 === null || typeof x0 !== 'object' || typeof x0.length !== 'number') throw new DlgInputError('x0', `an array of ${n} numbers`, describe(x0));
  if (x0.length !== n) throw new DlgInputError('x0', `${n} numbers (restarts ${o.total} × B ${o.B} × D ${o.D})`, `length ${x0.length}`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x0[i])) throw new DlgInputError(`x0[${i}]`, 'a finite number', describe(x0[i]));
  }
}

export function checkIterations(n: number): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new DlgInputError('iterations', 'an integer ≥ 0', describe(n));
  return n;
}

function allFinite(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

interface CpuRestart {
  x: Float64Array;
  best: Float64Array;
  loss: number;
  bestLoss: number;
  status: RestartStatus;
  iterations: number;
  // gd: a = velocity; adam: a = m, c = v
  a: Float64Array;
  c: Float64Array;
  // lbfgs
  S: Float64Array[];
  Y: Float64Array[];
  rho: number[];
  cached: ObjectiveValue | null;
  // lm
  lm: LmState;
}

/** The float64 CPU engine: the same semantics as the GPU engine, one restart after another. */
export function createCpuEngine(opts: EngineOptions): EngineHandle {
  const o = resolveEngineOptions(opts);
  const BD = o.B * o.D;
  const layers: Layer[] = o.groups.map((g) => ({ B: o.B, D: o.D, K: o.K, W: o.W, b: o.b, y: g.y, reduction: o.reduction }));
  const evaluate = (gi: number, x: Float64Array): ObjectiveValue =>
    o.loss === 'cosine' ? matchCosine(layers[gi], o.groups[gi].target, x) : matchL2(layers[gi], o.groups[gi].target, x);
  let restarts: CpuRestart[] = [];
  let destroyed = false;
  const alive = (): void => {
    if (destroyed) throw new DlgInputError('engine', 'a live engine', 'one that was destroyed');
  };

  const step = (r: CpuRestart, gi: number, f: number, g: Float64Array): void => {
    const { x } = r;
    if (o.optimizer === 'gd') {
      for (let i = 0; i < BD; i++) {
        r.a[i] = o.momentum * r.a[i] + g[i];
        x[i] -= o.lr * r.a[i];
      }
    } else if (o.optimizer === 'adam') {
      const t = r.iterations + 1;
      const a1 = o.lr / (1 - Math.pow(o.beta1, t));
      const a2 = 1 / (1 - Math.pow(o.beta2, t));
      for (let i = 0; i < BD; i++) {
        r.a[i] = o.beta1 * r.a[i] + (1 - o.beta1) * g[i];
        r.c[i] = o.beta2 * r.c[i] + (1 - o.beta2) * g[i] * g[i];
        x[i] -= (a1 * r.a[i]) / (Math.sqrt(r.c[i] * a2) + o.eps);
      }
    } else if (o.optimizer === 'lbfgs') {
      lbfgsStep(r, gi, f, g);
    } else {
      const res = lmStep(layers[gi], o.groups[gi].target, x, f, g, r.lm);
      r.cached = res.accepted;
      if (res.stalled) {
        x.set(r.best);
        r.loss = r.bestLoss;
        r.status = 3;
      }
    }
  };

  const lbfgsStep = (r: CpuRestart, gi: number, f: number, g: Float64Array): void => {
    const count = r.S.length;
    const d = new Float64Array(BD);
    let gtd = 0;
    if (count > 0) {
      const q = Float64Array.from(g);
      const alpha = new Float64Array(count);
      for (let j = count - 1; j >= 0; j--) {
        let sq = 0;
        for (let i = 0; i < BD; i++) sq += r.S[j][i] * q[i];
        alpha[j] = r.rho[j] * sq;
        for (let i = 0; i < BD; i++) q[i] -= alpha[j] * r.Y[j][i];
      }
      let sy = 0;
      let yy = 0;
      for (let i = 0; i < BD; i++) {
        sy += r.S[count - 1][i] * r.Y[count - 1][i];
        yy += r.Y[count - 1][i] * r.Y[count - 1][i];
      }
      const gamma = sy / yy;
      for (let i = 0; i < BD; i++) q[i] *= gamma;
      for (let j = 0; j < count; j++) {
        let yr = 0;
        for (let i = 0; i < BD; i++) yr += r.Y[j][i] * q[i];
        const beta = r.rho[j] * yr;
        for (let i = 0; i < BD; i++) q[i] += r.S[j][i] * (alpha[j] - beta);
      }
      for (let i = 0; i < BD; i++) {
        d[i] = -q[i];
        gtd += g[i] * d[i];
      }
    }
    let t = o.lr;
    if (!(gtd < 0)) {
      // no history, or not a descent direction: steepest descent with a cautious first step
      r.S = [];
      r.Y = [];
      r.rho = [];
      gtd = 0;
      let g1 = 0;
      for (let i = 0; i < BD; i++) {
        d[i] = -g[i];
        gtd -= g[i] * g[i];
        g1 += Math.abs(g[i]);
      }
      t = o.lr * Math.min(1, 1 / g1);
    }
    const xt = new Float64Array(BD);
    for (let h = 0; h <= LBFGS_MAX_HALVINGS; h++) {
      for (let i = 0; i < BD; i++) xt[i] = r.x[i] + t * d[i];
      const trial = evaluate(gi, xt);
      if (Number.isFinite(trial.loss) && allFinite(trial.grad) && trial.loss <= f + LBFGS_ARMIJO_C1 * t * gtd) {
        const s = new Float64Array(BD);
        const y = new Float64Array(BD);
        let sy = 0;
        let ss = 0;
        let yy = 0;
        for (let i = 0; i < BD; i++) {
          s[i] = xt[i] - r.x[i];
          y[i] = trial.grad[i] - g[i];
          sy += s[i] * y[i];
          ss += s[i] * s[i];
          yy += y[i] * y[i];
        }
        if (sy > LBFGS_CURVATURE_EPS * Math.sqrt(ss * yy)) {
          if (r.S.length === o.history) {
            r.S.shift();
            r.Y.shift();
            r.rho.shift();
          }
          r.S.push(s);
          r.Y.push(y);
          r.rho.push(1 / sy);
        }
        r.x.set(xt);
        r.cached = trial;
        return;
      }
      t *= 0.5;
    }
    // no acceptable step: stay, forget the curvature model
    r.S = [];
    r.Y = [];
    r.rho = [];
    r.cached = { loss: f, grad: g };
  };

  return {
    totalRestarts: o.total,
    kernel: 'cpu',
    why: 'the float64 host engine',
    setInputs(x0: ArrayLike<number>): void {
      alive();
      checkInputs(o, x0);
      restarts = [];
      for (let p = 0; p < o.total; p++) {
        const x = new Float64Array(BD);
        for (let i = 0; i < BD; i++) x[i] = x0[p * BD + i];
        restarts.push({
          x, best: Float64Array.from(x), loss: Infinity, bestLoss: Infinity, status: 0, iterations: 0,
          a: new Float64Array(BD), c: new Float64Array(BD), S: [], Y: [], rho: [], cached: null,
          lm: { lambda: LM_LAMBDA0, nu: 2 },
        });
      }
    },
    run(iterations: number): void {
      alive();
      checkIterations(iterations);
      if (restarts.length === 0) throw new DlgInputError('x0', 'setInputs(x0) before run()', 'no inputs');
      restarts.forEach((r, p) => {
        const gi = Math.floor(p / o.P);
        for (let it = 0; it < iterations && r.status === 0; it++) {
          const v = r.cached ?? evaluate(gi, r.x);
          r.cached = null;
          const f = v.loss;
          if (f < r.bestLoss) {
            r.bestLoss = f;
            r.best.set(r.x);
          }
          r.loss = f;
          if (f <= o.tolAbs[gi]) {
            r.status = 1;
            break;
          }
          if (!Number.isFinite(f) || !allFinite(v.grad)) {
            r.x.set(r.best);
            r.loss = r.bestLoss;
            r.status = 2;
            break;
          }
          step(r, gi, f, v.grad);
          r.iterations++;
          if (r.status !== 0) break;
        }
      });
    },
    async readStatus(): Promise<EngineStatus> {
      alive();
      const n = o.total;
      const out: EngineStatus = { loss: new Float32Array(n), bestLoss: new Float32Array(n), status: new Uint32Array(n), iterations: new Uint32Array(n) };
      const lambda = o.optimizer === 'lm' ? new Float32Array(n) : undefined;
      restarts.forEach((r, p) => {
        out.loss[p] = r.loss;
        out.bestLoss[p] = r.bestLoss;
        out.status[p] = r.status;
        out.iterations[p] = r.iterations;
        if (lambda) lambda[p] = r.lm.lambda;
      });
      if (lambda) out.lambda = lambda;
      return out;
    },
    async readBest(): Promise<Float32Array> {
      alive();
      const out = new Float32Array(o.total * BD);
      restarts.forEach((r, p) => out.set(r.best, p * BD));
      return out;
    },
    destroy(): void {
      destroyed = true;
      restarts = [];
    },
  };
}
