/**
 * The DLG attack, orchestrated: P restarts (per candidate labelling) advance together in the
 * attack engine (WebGPU, or the float64 CPU engine when the caller passes no device), the status
 * is read back only every `readbackEvery` iterations (progress, early stop once every restart has
 * converged or been frozen), then every restart's best point is scored against the truth.
 * Browser-safe: no file I/O here (the CLI writes the result and the PNG).
 */
import { ANALYTIC_B_EXPLANATION, analyticRecover } from '../analysis/analytic.js';
import { OPTIMIZERS, createAttackEngine, createCpuEngine, type EngineHandle, type EngineStatus, type Optimizer } from './engine.js';
import { lmMisfit } from './engine-lm.js';
import { DlgInputError, DlgRuntimeError, describe, requireFiniteArray, requireFiniteNumber, requireOneOf, requirePositiveInt } from '../core/errors.js';
import { type LabelInference, inferLabels, isOneHot } from '../analysis/labels.js';
import { type ReconstructionMetrics, imageSide, psnrPeak, reconstructionMetrics } from '../analysis/matching.js';
import { gradientNormSq, matchL2, matchLoss } from '../core/model.js';
import { Rng } from '../core/rng.js';
import type { Scenario } from '../core/scenario.js';
import { type PolishReport, finiteOrNull, layerFor, polishRestarts, rows, sameUpToOrder } from './polish.js';
import { isCpuDevice } from '../gpu/gpu.js';
import { type ReduceMode, type SubspaceReduction, type RegimeInfo, analyseScenario } from '../analysis/reduce.js';
import { solutionDimension } from '../analysis/diagnose.js';
import { runLoop } from './run-loop.js';

/**
 * 'normal': x′ ~ N(0, s²); 'uniform': x′ ~ U(−s, s); 'gradient': N(0, σ_p²) per coordinate with
 * σ_p = s·R/√D (R = ‖∇W‖/‖∇b‖, which estimates a row's norm: exact at B = 1), spread log-uniformly over
 * a decade around it across restarts (x_p ~ 10^{±½}); 'auto' (default): 'gradient' for lm, 'normal' for
 * the first-order optimizers (their behaviour as before).
 */
export type AttackInit = 'auto' | 'normal' | 'uniform' | 'gradient';
export type AttackLabels = 'known' | 'infer';
export type AttackMethod = 'optimize' | 'analytic';
export type RestartOutcome = 'converged' | 'stalled' | 'non-finite';
/** 'auto': lm where the problem is reduced or direct (and fits lm's caps), else adam. */
export type AttackOptimizer = Optimizer | 'auto';
export type EngineChoice = 'auto' | 'device' | 'host';

export interface AttackProgress {
  iteration: number;
  bestLoss: number;
  /** Restarts that met the tolerance so far. */
  converged: number;
}

export interface AttackOptions {
  /** Restarts per candidate labelling (P); default 64 for lm, 256 for the first-order optimizers. */
  restarts?: number;
  /** Iteration budget; default 100 for lm, 2000 for the first-order optimizers. */
  iterations?: number;
  /** Default 'auto': lm in the subspace or direct regime, adam otherwise. */
  optimizer?: AttackOptimizer;
  /**
   * The subspace reduction (x = C·Vᵀ, B² unknowns) where B ≤ K: 'auto' (default) where it holds,
   * 'on' (an error where it does not, naming the rank), 'off' (the raw B·D-unknown problem, as DLG).
   */
  reduce?: ReduceMode;
  /**
   * Learning rate. Defaults: adam 0.05, lbfgs 1 (the first trial step of its line search), gd 0.1.
   * For gd it is relative: the step used is lr / (‖∇W‖² + ‖∇b‖²), since L_r scales with the gradient's size.
   */
  lr?: number;
  init?: AttackInit;
  /** The scale s of the initial points (see AttackInit). Default 1. */
  initScale?: number;
  seed?: number;
  /** Relative tolerance: a restart converges when L_r ≤ tol·(‖∇W‖² + ‖∇b‖²) (cosine: when L_cos ≤ tol). Default 1e-10. */
  tol?: number;
  loss?: 'l2' | 'cosine';
  labels?: AttackLabels;
  method?: AttackMethod;
  /** Read the status back every this many iterations (progress, early stop). Default 10 for lm, 100 otherwise. */
  readbackEvery?: number;
  /** Save the best restart's loss and x′ every k iterations; 0 = off (default). */
  trajectory?: number;
  /** With labels 'infer', the most candidate labellings to attack (default 16). */
  maxLabelings?: number;
  /**
   * Refine the best `polish` restarts (by device loss, one per basin) on the host in float64, and keep
   * the best refined point (default 4; 0 = off): Levenberg–Marquardt to machine precision (L-BFGS for
   * the cosine loss, or beyond LM_POLISH_MAX_UNKNOWNS). f32 cannot resolve L_r below ~1e-13 relative,
   * which on flat surfaces still leaves x′ ~1e-3 off; float64 removes that floor.
   */
  polish?: number;
  /**
   * Stop the whole attack once this many restarts have converged (0 = off, the default: every
   * restart runs until it converges, is frozen, or the budget ends). An attacker who only wants a
   * solution stops at the first; the restart statistics then cover a shorter run.
   */
  stopAfter?: number;
  onProgress?: (p: AttackProgress) => void;
  signal?: AbortSignal;
}

/** Options as validated, before the scenario fixes the optimizer and the defaults that depend on it. */
export interface ValidatedAttackOptions extends Omit<ResolvedAttackOptions, 'restarts' | 'iterations' | 'optimizer' | 'lr' | 'readbackEvery' | 'stopAfter'> {
  restarts?: number;
  stopAfter?: number;
  iterations?: number;
  optimizer: AttackOptimizer;
  lr?: number;
  readbackEvery?: number;
}

export interface ResolvedAttackOptions {
  restarts: number;
  iterations: number;
  optimizer: Optimizer;
  /** What the caller asked for ('auto' unless an optimizer was named). */
  requestedOptimizer: AttackOptimizer;
  reduce: ReduceMode;
  engine: EngineChoice;
  lr: number;
  init: AttackInit;
  initScale: number;
  seed: number;
  tol: number;
  loss: 'l2' | 'cosine';
  labels: AttackLabels;
  method: AttackMethod;
  readbackEvery: number;
  trajectory: number;
  maxLabelings: number;
  polish: number;
  stopAfter: number;
  onProgress?: (p: AttackProgress) => void;
  signal?: AbortSignal;
}

export const ATTACK_DEFAULTS = {
  restarts: 256,
  iterations: 2000,
  optimizer: 'auto' as AttackOptimizer,
  reduce: 'auto' as ReduceMode,
  engine: 'auto' as EngineChoice,
  init: 'auto' as AttackInit,
  initScale: 1,
  seed: 0,
  tol: 1e-10,
  loss: 'l2' as const,
  labels: 'known' as AttackLabels,
  method: 'optimize' as AttackMethod,
  readbackEvery: 100,
  trajectory: 0,
  maxLabelings: 16,
  polish: 4,
  stopAfter: 0,
};

/**
 * Defaults that differ for lm: it converges in tens of iterations, so fewer restarts, read back more
 * often, and the attack stops once a quarter of the restarts (per labelling) has converged: the polish
 * then takes the best of each basin to machine precision. `stopAfter: 0` runs every restart to the end.
 */
export const LM_DEFAULTS = { restarts: 32, iterations: 50, readbackEvery: 5, stopAfterFraction: 0.25 };
/** The first-order method 'auto' picks where lm does not apply. */
export const AUTO_FIRST_ORDER: Optimizer = 'adam';
/** Solution-manifold dimensions (B·D − rank J) are computed at the reconstruction up to this many Jacobian entries. */
const MAX_JACOBIAN_ENTRIES = 4_000_000;

export { LM_POLISH_ITERATIONS, LM_POLISH_MAX_UNKNOWNS, POLISH_ITERATIONS } from './polish.js';

export const DEFAULT_LR: Record<Optimizer, number> = { adam: 0.05, lbfgs: 1, gd: 0.1, lm: 1 };

/** Caps that keep memory and buffers sane (restarts are per labelling). */
const MAX_RESTARTS = 1 << 20;
const MAX_ITERATIONS = 100_000_000;
/** A trajectory keeps every restart's best point at every snapshot until the best restart is known. */
const MAX_TRAJECTORY_FLOATS = 1 << 25;

const OPTION_KEYS = new Set([
  'restarts', 'iterations', 'optimizer', 'reduce', 'engine', 'lr', 'init', 'initScale', 'seed', 'tol', 'loss', 'labels', 'method',
  'readbackEvery', 'trajectory', 'maxLabelings', 'polish', 'stopAfter', 'onProgress', 'signal',
]);

/**
 * Validates attack options; DlgInputError names the field. Defaults that depend on the optimizer
 * (restarts, iterations, lr, readbackEvery) stay undefined until `planAttack` resolves it.
 */
export function validateAttackOptions(o: unknown): ValidatedAttackOptions {
  if (o === undefined || o === null) o = {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new DlgInputError('options', 'an object', describe(o));
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!OPTION_KEYS.has(k)) throw new DlgInputError(k, `no such attack option (known: ${[...OPTION_KEYS].join(', ')})`, describe(r[k]));
  }
  const get = <T>(k: string, def: T): unknown => (r[k] === undefined ? def : r[k]);
  const opt = <T>(k: string, check: (v: unknown) => T): T | undefined => (r[k] === undefined ? undefined : check(r[k]));
  const restarts = opt('restarts', (v) => requirePositiveInt('restarts', v, MAX_RESTARTS));
  const iterations = opt('iterations', (v) => requirePositiveInt('iterations', v, MAX_ITERATIONS));
  const optimizer = requireOneOf('optimizer', get('optimizer', ATTACK_DEFAULTS.optimizer), ['auto', ...OPTIMIZERS] as const);
  const reduce = requireOneOf('reduce', get('reduce', ATTACK_DEFAULTS.reduce), ['auto', 'on', 'off'] as const);
  const engine = requireOneOf('engine', get('engine', ATTACK_DEFAULTS.engine), ['auto', 'device', 'host'] as const);
  const lr = opt('lr', (v) => {
    const x = requireFiniteNumber('lr', v);
    if (!(x > 0)) throw new DlgInputError('lr', 'a finite number > 0', describe(x));
    return x;
  });
  const init = requireOneOf('init', get('init', ATTACK_DEFAULTS.init), ['auto', 'normal', 'uniform', 'gradient'] as const);
  const initScale = requireFiniteNumber('initScale', get('initScale', ATTACK_DEFAULTS.initScale));
  if (!(initScale > 0)) throw new DlgInputError('initScale', 'a finite number > 0', describe(initScale));
  const seed = get('seed', ATTACK_DEFAULTS.seed);
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new DlgInputError('seed', 'an integer in [0, 4294967295]', describe(seed));
  }
  const tol = requireFiniteNumber('tol', get('tol', ATTACK_DEFAULTS.tol));
  if (!(tol > 0)) throw new DlgInputError('tol', 'a finite number > 0 (relative to ‖∇W‖² + ‖∇b‖²)', describe(tol));
  const loss = requireOneOf('loss', get('loss', ATTACK_DEFAULTS.loss), ['l2', 'cosine'] as const);
  if (optimizer === 'lm' && loss !== 'l2') {
    throw new DlgInputError('loss', "'l2' with optimizer 'lm' (Levenberg–Marquardt minimises a sum of squares)", `'${loss}'`);
  }
  const labels = requireOneOf('labels', get('labels', ATTACK_DEFAULTS.labels), ['known', 'infer'] as const);
  const method = requireOneOf('method', get('method', ATTACK_DEFAULTS.method), ['optimize', 'analytic'] as const);
  const readbackEvery = opt('readbackEvery', (v) => requirePositiveInt('readbackEvery', v, MAX_ITERATIONS));
  const trajectory = get('trajectory', ATTACK_DEFAULTS.trajectory);
  if (typeof trajectory !== 'number' || !Number.isInteger(trajectory) || trajectory < 0 || trajectory > MAX_ITERATIONS) {
    throw new DlgInputError('trajectory', `an integer in [0, ${MAX_ITERATIONS}] (0 = off)`, describe(trajectory));
  }
  const maxLabelings = requirePositiveInt('maxLabelings', get('maxLabelings', ATTACK_DEFAULTS.maxLabelings), 4096);
  const polish = get('polish', ATTACK_DEFAULTS.polish);
  if (typeof polish !== 'number' || !Number.isInteger(polish) || polish < 0 || polish > 4096) {
    throw new DlgInputError('polish', 'an integer in [0, 4096] (0 = off)', describe(polish));
  }
  const stopAfter = r.stopAfter;
  if (stopAfter !== undefined && (typeof stopAfter !== 'number' || !Number.isInteger(stopAfter) || stopAfter < 0 || stopAfter > MAX_RESTARTS)) {
    throw new DlgInputError('stopAfter', `an integer in [0, ${MAX_RESTARTS}] (0 = off)`, describe(stopAfter));
  }
  const onProgress = r.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new DlgInputError('onProgress', 'a function', describe(onProgress));
  const signal = r.signal;
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof (signal as AbortSignal).aborted !== 'boolean')) {
    throw new DlgInputError('signal', 'an AbortSignal', describe(signal));
  }
  return {
    restarts, iterations, optimizer, requestedOptimizer: optimizer, reduce, engine, lr, init, initScale, seed, tol, loss, labels, method, readbackEvery, trajectory, maxLabelings, polish,
    stopAfter: stopAfter as number | undefined,
    onProgress: onProgress as ResolvedAttackOptions['onProgress'],
    signal: signal as AbortSignal | undefined,
  };
}

/** What `attack` will do with a scenario: the regime, the reduction, the optimizer and why. */
export interface AttackPlan {
  options: ResolvedAttackOptions;
  regime: RegimeInfo;
  /** Present when the attack runs on the reduced scenario. */
  reduction?: SubspaceReduction;
  /** Why this optimizer (and problem) was chosen, in one sentence. */
  why: string;
  /** Whether the restarts run on the host float64 engine (no device, engine 'host', or lm on a CPU adapter). */
  host: boolean;
}

/**
 * Resolves the optimizer ('auto'), the reduction and the defaults that depend on them. Throws
 * DlgInputError before any work: `reduce: 'on'` where the reduction does not hold (naming the rank),
 * lm beyond its caps. `lmFits(B, D, K)` says whether the lm engine that will run takes a problem
 * (default: the CPU engine's cap).
 */
export function planAttack(scenario: Scenario, options: AttackOptions | ValidatedAttackOptions = {}, device: GPUDevice | null = null): AttackPlan {
  const v = 'requestedOptimizer' in options ? (options as ValidatedAttackOptions) : validateAttackOptions(options);
  const sc = checkScenario(scenario);
  // Where lm would run: the WGSL kernel on a GPU (or when forced), else the host float64 engine.
  const { onDevice: lmOnDevice, misfit: fits } = lmPlacement(device, v.engine);
  const { info, reduction } = analyseScenario(sc, v.method === 'analytic' ? 'off' : v.reduce);
  const work = reduction?.scenario ?? sc;
  let optimizer: Optimizer;
  let why: string;
  const lmReason = fits(work.B, work.D, work.K);
  if (v.optimizer !== 'auto') {
    optimizer = v.optimizer;
    if (optimizer === 'lm' && lmReason) throw new DlgInputError('optimizer', `a problem within lm's caps for 'lm' (${lmReason})`, `'lm' with ${info.unknowns} unknowns`);
    why = `${optimizer} as asked; ${info.summary}`;
  } else if (v.loss !== 'l2') {
    optimizer = AUTO_FIRST_ORDER;
    why = `auto: ${optimizer}, since lm needs the l2 loss; ${info.summary}`;
  } else if ((info.regime === 'subspace' || info.regime === 'direct' || info.regime === 'rank-deficient') && !lmReason) {
    optimizer = 'lm';
    why = `auto: lm (Levenberg–Marquardt) on ${info.unknowns} unknowns; ${info.summary}`;
  } else {
    optimizer = AUTO_FIRST_ORDER;
    why =
      info.regime === 'unidentifiable'
        ? `auto: ${optimizer}, since no attack can single out x here; ${info.summary}`
        : `auto: ${optimizer}, since lm does not take this problem (${lmReason}); ${info.summary}`;
  }
  const lm = optimizer === 'lm';
  const host = device === null || v.engine === 'host' || (lm && !lmOnDevice);
  if (device !== null) {
    why += host
      ? v.engine === 'host'
        ? '; on the host float64 engine, as asked'
        : '; lm on the host float64 engine: on this CPU adapter the WGSL lm kernel is no faster and costs seconds of shader compile (bench/lm-kernel.ts)'
      : '; on the device';
  }
  const options_: ResolvedAttackOptions = {
    ...v,
    optimizer,
    restarts: v.restarts ?? (lm ? LM_DEFAULTS.restarts : ATTACK_DEFAULTS.restarts),
    iterations: v.iterations ?? (lm ? LM_DEFAULTS.iterations : ATTACK_DEFAULTS.iterations),
    readbackEvery: v.readbackEvery ?? (lm ? LM_DEFAULTS.readbackEvery : ATTACK_DEFAULTS.readbackEvery),
    lr: v.lr ?? DEFAULT_LR[optimizer],
    init: v.init === 'auto' ? (lm ? 'gradient' : 'normal') : v.init,
    stopAfter: 0,
  };
  options_.stopAfter = v.stopAfter ?? (lm ? Math.ceil(LM_DEFAULTS.stopAfterFraction * options_.restarts) : ATTACK_DEFAULTS.stopAfter);
  // stopAfter counts restarts: never more than run (known once the optimizer fixed the default P).
  const maxRestarts = v.labels === 'infer' ? options_.restarts * v.maxLabelings : options_.restarts;
  if (options_.stopAfter > maxRestarts) {
    const of = v.labels === 'infer' ? `restarts × maxLabelings = ${maxRestarts}` : `restarts = ${options_.restarts}`;
    throw new DlgInputError('stopAfter', `an integer in [0, ${maxRestarts}] (at most the restarts run: ${of})`, describe(options_.stopAfter));
  }
  return { options: options_, regime: info, ...(reduction ? { reduction } : {}), why, host };
}

/** The float64 CPU lm engine's cap (a dense n×n Cholesky per step and restart). */
export const LM_CPU_MAX_UNKNOWNS = 1024;

/**
 * Where lm runs for a device and an engine choice, and why it cannot take a problem (null: it can):
 * the WGSL kernel on a GPU (or when forced), else the host float64 engine, which on a CPU adapter is
 * as fast and compiles nothing (bench/RESULTS.md, "Levenberg–Marquardt kernel").
 */
export function lmPlacement(device: GPUDevice | null, engine: EngineChoice = 'auto'): { onDevice: boolean; misfit: (B: number, D: number, K: number) => string | null } {
  const onDevice = device !== null && (engine === 'device' || (engine === 'auto' && !isCpuDevice(device)));
  return {
    onDevice,
    misfit: onDevice
      ? (B, D, K) => lmMisfit(B, D, K, device!)
      : (B, D) => (B * D <= LM_CPU_MAX_UNKNOWNS ? null : `the float64 lm engine takes at most ${LM_CPU_MAX_UNKNOWNS} unknowns, found B·D = ${B * D}`),
  };
}

export interface LossQuantiles {
  min: number | null;
  q10: number | null;
  q25: number | null;
  median: number | null;
  q75: number | null;
  q90: number | null;
  max: number | null;
}

export interface AttackResult {
  format: 'dlg-attack-result/1';
  /** Best reconstruction, B×D, in the order the attack produced (metrics.assignment maps rows to the truth). */
  reconstruction: number[][];
  /** Float64 L_r = ‖ΔW‖² + ‖Δb‖² at the reconstruction, with its labels. */
  loss: number;
  /** The objective the engine minimised, at the best restart (f32 value from the device for webgpu). */
  objective: { kind: 'l2' | 'cosine'; value: number };
  /** Labels used by the best restart (B×K, rows aligned with reconstruction). */
  labels: number[][];
  labelInference?: {
    exact: boolean;
    columns: { column: number; v: number; candidates: number[]; determined: boolean }[];
    countsDetermined: boolean;
    count: number;
    summary: string;
    labelings: number[][][];
    /** Index into labelings of the best restart's labelling. */
    chosen: number;
    /** Per labelling: best loss among its restarts, and (with ground truth) its restarts' success fraction. */
    perLabeling: { bestLoss: number | null; successFraction?: number }[];
    /** With ground truth: whether the chosen labelling equals the true one up to row order. */
    correct?: boolean;
  };
  method: AttackMethod;
  /** The optimizer that ran (options.requestedOptimizer says what was asked for, e.g. 'auto'). Absent for analytic. */
  optimizer?: Optimizer;
  /**
   * The regime of identifiability and the problem the attack solved: 'subspace' (reduced to B²
   * unknowns), 'direct', 'unidentifiable' (identifiable false, with manifoldDim) or 'rank-deficient'.
   */
  regime: Omit<RegimeInfo, 'singularValues'> & {
    singularValues: number[];
    /** Not identifiable: B·D − rank J at the reconstruction, the dimension of the exact solutions there (small problems only). */
    solutionDim?: number;
  };
  /** The kernel that advanced the restarts ('cpu' for the float64 engine) and why this optimizer and problem. */
  engine: { kernel: string; backend: 'webgpu' | 'cpu'; why: string };
  /** The best restart (the reconstruction's): its steps and, for lm, its final damping λ. */
  bestRestart?: { index: number; iterations: number; lambda?: number | null };
  /** Where the time went (ms): plan (regime, SVD, reduction), engine set-up (pipelines), run, polish. */
  timing: { planMs: number; engineSetupMs: number; runMs: number; polishMs: number };
  /** Iterations run (the loop stops early once every restart converged or was frozen). */
  iterations: number;
  stoppedBy: 'all-finished' | 'iterations' | 'aborted' | 'analytic' | 'stop-after';
  wallTimeMs: number;
  adapter: string;
  backend: 'webgpu' | 'cpu';
  restarts: {
    /** Total restarts: P × candidate labellings. */
    count: number;
    perLabeling: number;
    /** Each restart's best loss (the engine's objective; null where never finite). */
    finalLoss: (number | null)[];
    quantiles: LossQuantiles;
    outcome: RestartOutcome[];
    counts: { converged: number; stalled: number; nonFinite: number };
    /** Iterations each restart took. */
    iterations: number[];
    /** lm only: each restart's final damping λ. */
    lambda?: (number | null)[];
    /** Fraction of restarts whose best point reaches relative error < 1e-3 (ground truth only). */
    successFraction?: number;
    /** Which restart is the reconstruction. */
    best: number;
  };
  /**
   * Host float64 refinement of the best device restarts (absent when polish = 0).
   * The reconstruction is the best refined point; restarts.* describe the device restarts as they were.
   */
  polish?: PolishReport;
  metrics?: ReconstructionMetrics;
  /** Minimum best loss over restarts after each readback. */
  history: { iteration: number[]; bestLoss: (number | null)[] };
  trajectory?: {
    every: number;
    restart: number;
    iteration: number[];
    /** The best restart's best loss at each snapshot (iteration 0: its initial point, f64). */
    loss: (number | null)[];
    /** Its best point (B×D) at each snapshot. */
    points: number[][][];
  };
  /** The options that applied (--method analytic records only method, labels, loss and tolerances). */
  options: (Omit<ResolvedAttackOptions, 'onProgress' | 'signal'> & { lrEffective: number; tolAbs: number }) | AnalyticOptionsOut;
}

/** What applies to --method analytic: no restarts, iterations or optimizer run. */
export type AnalyticOptionsOut = Pick<ResolvedAttackOptions, 'method' | 'labels' | 'loss' | 'tol'> & { maxLabelings?: number; tolAbs: number };

/** Linear-interpolation quantiles over the finite values (null when there are none). */
export function lossQuantiles(values: ArrayLike<number>): LossQuantiles {
  const s = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  const q = (p: number): number | null => {
    if (s.length === 0) return null;
    const h = (s.length - 1) * p;
    const lo = Math.floor(h);
    const hi = Math.min(s.length - 1, lo + 1);
    return s[lo] + (h - lo) * (s[hi] - s[lo]);
  };
  return { min: q(0), q10: q(0.1), q25: q(0.25), median: q(0.5), q75: q(0.75), q90: q(0.9), max: q(1) };
}

/** Half-width, in decades, of the spread of 'gradient' init scales across restarts. */
export const INIT_SPREAD_DECADES = 0.5;

/**
 * Initial points for `total` restarts (total·B·D), from Rng(seed), in restart-major order. For
 * 'gradient', `scale` is the centre σ and restart p draws at σ·10^{h·(2·frac(p·φ) − 1)}, h = INIT_SPREAD_DECADES.
 */
export function initialPoints(total: number, B: number, D: number, init: Exclude<AttackInit, 'auto'>, scale: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const BD = B * D;
  const x = new Float64Array(total * BD);
  for (let p = 0; p < total; p++) {
    const phi = ((p * 0.6180339887498949) % 1) * 2 - 1;
    const sp = init === 'gradient' ? scale * 10 ** (INIT_SPREAD_DECADES * phi) : scale;
    for (let i = p * BD; i < (p + 1) * BD; i++) x[i] = init === 'uniform' ? sp * (2 * rng.uniform() - 1) : sp * rng.normal();
  }
  return x;
}

/** σ for 'gradient' init: R/√D with R = ‖∇W‖/‖∇b‖ (a row's norm, exact at B = 1); 1 where ∇b = 0. */
export function gradientInitScale(gradient: { W: ArrayLike<number>; b: ArrayLike<number> }, D: number): number {
  let w = 0;
  let b = 0;
  for (let i = 0; i < gradient.W.length; i++) w += gradient.W[i] * gradient.W[i];
  for (let i = 0; i < gradient.b.length; i++) b += gradient.b[i] * gradient.b[i];
  const R = Math.sqrt(w / b);
  return Number.isFinite(R) && R > 0 ? R / Math.sqrt(D) : 1;
}

function checkScenario(s: unknown): Scenario {
  if (s === null || typeof s !== 'object') throw new DlgInputError('scenario', 'a parsed scenario (parseScenario)', describe(s));
  const sc = s as Scenario;
  const { B, D, K } = sc;
  for (const [f, v] of [['B', B], ['D', D], ['K', K]] as const) requirePositiveInt(`scenario.${f}`, v);
  requireFiniteArray('scenario.W', sc.W, D * K);
  requireFiniteArray('scenario.b', sc.b, K);
  requireFiniteArray('scenario.y', sc.y, B * K);
  if (!sc.gradient || typeof sc.gradient !== 'object') throw new DlgInputError('scenario.gradient', 'the shared gradient {W, b}', describe(sc.gradient));
  requireFiniteArray('scenario.gradient.W', sc.gradient.W, D * K);
  requireFiniteArray('scenario.gradient.b', sc.gradient.b, K);
  if (sc.inputs !== undefined) requireFiniteArray('scenario.inputs', sc.inputs, B * D);
  requireOneOf('scenario.reduction', sc.reduction, ['mean', 'sum'] as const);
  return sc;
}

/** Everything the attack's phases share, fixed before any work: the plan, tolerances, labellings, scorers. */
type AttackContext = ReturnType<typeof prepareAttack>;

/** Validates, plans (regime, reduction, optimizer, engine) and derives what every phase needs. */
function prepareAttack(device: GPUDevice | null, scenario: Scenario, options: AttackOptions) {
  const t0 = performance.now();
  const sc = checkScenario(scenario);
  const plan = planAttack(sc, options, device);
  const dev = plan.host ? null : device;
  const tPlan = performance.now();
  const o = plan.options;
  const red = plan.reduction;
  const work = red?.scenario ?? sc;
  const { B, K } = sc;
  const D = work.D;
  const lift = (x: ArrayLike<number>, count = 1): Float64Array => (red ? red.lift(x, count) : Float64Array.from(x));
  const target = work.gradient;
  const gNorm = gradientNormSq(sc.gradient);
  if (!(gNorm > 0)) throw new DlgInputError('scenario.gradient', 'a non-zero shared gradient', 'all zeros');
  // Tolerances refer to the original gradient's size; the reduced loss misses the constant outOfSubspaceEnergy.
  const outside = plan.regime.outOfSubspaceEnergy ?? 0;
  const tolAbs = o.loss === 'cosine' ? o.tol : o.tol * gNorm;
  const tolWork = o.loss === 'cosine' ? tolAbs : Math.max(tolAbs - outside, 0);
  const lrEffective = o.optimizer === 'gd' ? o.lr / gNorm : o.lr;
  const { onProgress, signal, ...plain } = o;
  void onProgress;
  void signal;
  const optionsOut: AttackResult['options'] = { ...plain, lrEffective, tolAbs };
  const truth = sc.inputs;
  const psnr = truth && imageSide(sc.D) !== undefined ? psnrPeak(truth) : undefined;
  const regimeOut = (x?: Float64Array, y?: Float64Array): AttackResult['regime'] => {
    const r: AttackResult['regime'] = { ...plan.regime };
    // Where x is not identifiable, measure the solution set at the reconstruction: B·D − rank J.
    if (x && y && !r.identifiable && B * sc.D * (sc.D * K + K) <= MAX_JACOBIAN_ENTRIES) {
      r.solutionDim = solutionDimension(layerFor(sc, y), x);
    }
    return r;
  };

  // Labels: known, or every candidate labelling ∇b leaves open.
  let inference: LabelInference | undefined;
  let labelings: Float64Array[];
  if (o.labels === 'infer') {
    inference = inferLabels(target.b, B, K, sc.reduction, o.maxLabelings, { oneHot: isOneHot(sc.y, B, K), nearest: (sc.defence?.length ?? 0) > 0 }); // the scenario's labels say whether rows are one-hot; a defended ∇b may fit no count
    if (inference.tooMany) {
      throw new DlgInputError(
        'labels',
        `at most ${o.maxLabelings} candidate labellings to attack (raise maxLabelings / --max-labelings, or use known labels)`,
        inference.summary,
      );
    }
    labelings = inference.labelings;
  } else {
    labelings = [Float64Array.from(sc.y)];
  }
  const labelInferenceOut = (chosen: number, perLabeling: { bestLoss: number | null; successFraction?: number }[]) =>
    inference
      ? {
          exact: inference.exact,
          columns: inference.columns,
          countsDetermined: inference.countsDetermined,
          count: labelings.length,
          summary: inference.summary,
          labelings: labelings.map((y) => rows(y, B, K)),
          chosen,
          perLabeling,
          ...(truth ? { correct: sameUpToOrder(labelings[chosen], sc.y, B, K) } : {}),
        }
      : undefined;
  /** Metrics of a full-space point against the truth. */
  const score = (x: ArrayLike<number>, y: Float64Array, off = 0) =>
    reconstructionMetrics(x, truth!, { B, D: sc.D, K, reconLabels: y, trueLabels: sc.y, psnrPeak: psnr }, off);
  /** Restart statistics in the working space (reduced: ‖C − C*‖ = ‖x − x*‖ since V is orthonormal). */
  const scoreWork = (x: ArrayLike<number>, y: Float64Array, off = 0) =>
    reconstructionMetrics(x, work.inputs!, { B, D, K, reconLabels: y, trueLabels: sc.y }, off);
  const metricsOf = (m: ReconstructionMetrics): ReconstructionMetrics => ({
    relativeError: m.relativeError, mse: m.mse, ...(m.psnr !== undefined ? { psnr: m.psnr } : {}), success: m.success, assignment: m.assignment, labelConsistent: m.labelConsistent,
    ...(m.labelAccuracy !== undefined ? { labelAccuracy: m.labelAccuracy } : {}),
  });

  return { device, t0, tPlan, sc, plan, dev, o, work, B, K, D, lift, target, gNorm, outside, tolAbs, tolWork, lrEffective, optionsOut, truth, labelings, regimeOut, labelInferenceOut, score, scoreWork, metricsOf };
}

/** --method analytic (B = 1): x = ∇W[:, k] / ∇b[k] exactly, no restarts. */
function analyticAttack(ctx: AttackContext): AttackResult {
  const { t0, tPlan, sc, o, B, K, tolAbs, truth, labelings, regimeOut, labelInferenceOut, score, metricsOf } = ctx;
  if (B !== 1) throw new DlgInputError('method', `'optimize' for B = ${B} (${ANALYTIC_B_EXPLANATION})`, `'analytic' with B = ${B}`);
  const { x } = analyticRecover(sc, sc.gradient);
  const y = labelings[0];
  const loss = matchL2(layerFor(sc, y), sc.gradient, x).loss;
  const objective = matchLoss(o.loss, layerFor(sc, y), sc.gradient, x).loss;
  const m = truth ? score(x, y) : undefined;
  const outcome: RestartOutcome = !Number.isFinite(objective) ? 'non-finite' : objective <= tolAbs ? 'converged' : 'stalled';
  const result: AttackResult = {
    format: 'dlg-attack-result/1',
    reconstruction: rows(x, B, sc.D),
    loss,
    objective: { kind: o.loss, value: objective },
    labels: rows(y, B, K),
    labelInference: labelInferenceOut(0, [{ bestLoss: finiteOrNull(objective), ...(m ? { successFraction: m.success ? 1 : 0 } : {}) }]),
    method: 'analytic',
    regime: regimeOut(),
    engine: { kernel: 'analytic', backend: 'cpu', why: 'B = 1: x = ∇W[:, k] / ∇b[k] exactly (no optimisation)' },
    iterations: 0,
    stoppedBy: 'analytic',
    wallTimeMs: 0,
    timing: { planMs: tPlan - t0, engineSetupMs: 0, runMs: 0, polishMs: 0 },
    adapter: 'host (analytic recovery, float64)',
    backend: 'cpu',
    restarts: {
      count: 1,
      perLabeling: 1,
      finalLoss: [finiteOrNull(objective)],
      quantiles: lossQuantiles([objective]),
      outcome: [outcome],
      counts: { converged: outcome === 'converged' ? 1 : 0, stalled: outcome === 'stalled' ? 1 : 0, nonFinite: outcome === 'non-finite' ? 1 : 0 },
      iterations: [0],
      ...(m ? { successFraction: m.success ? 1 : 0 } : {}),
      best: 0,
    },
    ...(m ? { metrics: metricsOf(m) } : {}),
    history: { iteration: [], bestLoss: [] },
    options: { method: o.method, labels: o.labels, ...(o.labels === 'infer' ? { maxLabelings: o.maxLabelings } : {}), loss: o.loss, tol: o.tol, tolAbs },
  };
  if (!result.labelInference) delete result.labelInference;
  result.wallTimeMs = performance.now() - t0;
  return result;
}

/** Runs every restart on the engine (device kernel or host float64 engine) through the run loop. */
async function runRestarts(ctx: AttackContext) {
  const { sc, dev, o, work, B, D, target, outside, tolWork, lrEffective, labelings } = ctx;
  const G = labelings.length;
  const P = o.restarts;
  const total = P * G;
  const BD = B * D;
  const snapshots = o.trajectory > 0 ? Math.ceil(o.iterations / o.trajectory) : 0;
  if (snapshots > 0 && snapshots * total * BD > MAX_TRAJECTORY_FLOATS) {
    throw new DlgInputError(
      'trajectory',
      `a snapshot interval k with ⌈iterations/k⌉·restarts·B·D ≤ ${MAX_TRAJECTORY_FLOATS} (every restart's point is kept until the best is known)`,
      `${o.trajectory} (${snapshots} snapshots × ${total} restarts × ${BD})`,
    );
  }
  const engineOpts = {
    layer: layerFor(work, labelings[0]),
    target,
    groups: labelings.map((y) => ({ y, target })),
    P,
    optimizer: o.optimizer,
    lr: lrEffective,
    loss: o.loss,
    tolAbs: tolWork,
    label: 'attack',
  };
  // Initial points in the original space, projected (the reduced init is the projection of the same draw
  // where it is cheap; for large D it draws in the subspace directly, which has the same distribution).
  const x0 = initialPoints(total, B, D, o.init as Exclude<AttackInit, 'auto'>, o.init === 'gradient' ? o.initScale * gradientInitScale(sc.gradient, D) : o.initScale, o.seed);
  const tSetup0 = performance.now();
  const engine: EngineHandle = dev ? createAttackEngine(dev, engineOpts) : createCpuEngine(engineOpts);
  const tSetup = performance.now() - tSetup0;
  const history = { iteration: [] as number[], bestLoss: [] as (number | null)[] };
  const traj = { iteration: [] as number[], bestLoss: [] as Float32Array[], points: [] as Float32Array[] };
  let status: EngineStatus | undefined;
  let bestPoints: Float32Array | undefined;
  let done = 0;
  let stoppedBy: AttackResult['stoppedBy'] = 'iterations';
  const tRun0 = performance.now();
  try {
    const loop = runLoop(engine, {
      inputs: x0,
      schedule: { kind: 'every', every: o.trajectory > 0 ? o.trajectory : o.readbackEvery, iterations: o.iterations },
      signal: o.signal,
      stopAfter: o.stopAfter,
      bestPoints: o.trajectory > 0,
    });
    for await (const snap of loop) {
      status = snap.status;
      history.iteration.push(snap.iteration);
      history.bestLoss.push(finiteOrNull(snap.best.loss + outside));
      if (snap.bestPoints) {
        traj.iteration.push(snap.iteration);
        traj.bestLoss.push(snap.status.bestLoss);
        traj.points.push(snap.bestPoints);
      }
      o.onProgress?.({ iteration: snap.iteration, bestLoss: snap.best.loss + outside, converged: snap.counts.converged });
    }
    done = loop.iteration;
    if (loop.stoppedBy === 'aborted' || loop.stoppedBy === 'all-finished' || loop.stoppedBy === 'stop-after') stoppedBy = loop.stoppedBy;
    if (!status) status = await engine.readStatus();
    bestPoints = await engine.readBest();
  } catch (err) {
    engine.destroy();
    if (err instanceof DlgInputError || err instanceof DlgRuntimeError) throw err;
    throw new DlgRuntimeError(`attack engine failed: ${(err as Error)?.message ?? String(err)}`);
  }
  const kernel = engine.kernel;
  const kernelWhy = engine.why;
  engine.destroy();
  const tRun = performance.now() - tRun0;
  if (!status || !bestPoints) throw new DlgRuntimeError('attack engine returned no status');
  const st = status;
  const pts = bestPoints;

  return { G, P, total, BD, x0, status: st, points: pts, done, stoppedBy, history, traj, kernel, kernelWhy, tSetup, tRun };
}

/**
 * Runs the attack. `device` null means the float64 CPU engine (only when the user asked for it).
 * Throws DlgInputError for bad options or scenarios, before any work is done.
 *
 * The plan (planAttack) fixes the regime: in the subspace regime every restart, the polish and the
 * restart statistics work on the reduced scenario (D = B), and the result is lifted back (x = C·Vᵀ);
 * the reconstruction's loss and metrics are always those of the original problem.
 */
export async function attack(device: GPUDevice | null, scenario: Scenario, options: AttackOptions = {}, adapterName?: string): Promise<AttackResult> {
  const ctx = prepareAttack(device, scenario, options);
  if (ctx.o.method === 'analytic') return analyticAttack(ctx);
  const { t0, tPlan, sc, plan, dev, o, work, B, K, lift, target, gNorm, outside, labelings, regimeOut, labelInferenceOut, score, scoreWork, metricsOf, optionsOut, truth } = ctx;
  const { G, P, total, BD, x0, status: st, points: pts, done, stoppedBy, history, traj, kernel, kernelWhy, tSetup, tRun } = await runRestarts(ctx);

  // Restarts by best loss, first index on ties (deterministic); the best one, unless polishing finds better.
  const order = Array.from({ length: total }, (_, p) => p).sort((a, b) => {
    const la = Number.isFinite(st.bestLoss[a]) ? st.bestLoss[a] : Infinity;
    const lb = Number.isFinite(st.bestLoss[b]) ? st.bestLoss[b] : Infinity;
    return la < lb ? -1 : la > lb ? 1 : a - b;
  });
  let bestP = order[0];
  let recon: Float64Array = Float64Array.from(pts.subarray(bestP * BD, (bestP + 1) * BD));
  let polishOut: AttackResult['polish'];
  const tPolish0 = performance.now();
  if (o.polish > 0) {
    const polished = await polishRestarts({
      count: o.polish, loss: o.loss, work, target, labelings, P, order, points: pts, lambda: st.lambda, gNorm, outside,
      exactSolution: (x: Float64Array) => rows(lift(x), B, sc.D),
      ...(truth ? { isTruth: (x: Float64Array, y: Float64Array) => score(lift(x), y).success } : {}),
    });
    bestP = polished.best;
    recon = polished.point;
    polishOut = polished.report;
  }
  const tPolish = performance.now() - tPolish0;
  const chosen = Math.floor(bestP / P);
  const yBest = labelings[chosen];
  const reconFull = lift(recon);
  const loss = matchL2(layerFor(sc, yBest), sc.gradient, reconFull).loss;

  const outcome: RestartOutcome[] = Array.from(st.status, (s) => (s === 1 ? 'converged' : s === 2 ? 'non-finite' : 'stalled'));
  const counts = { converged: 0, stalled: 0, nonFinite: 0 };
  for (const oc of outcome) {
    if (oc === 'converged') counts.converged++;
    else if (oc === 'stalled') counts.stalled++;
    else counts.nonFinite++;
  }

  // Score every restart's best point (each against its own labelling).
  let successFraction: number | undefined;
  const perLabeling: { bestLoss: number | null; successFraction?: number }[] = labelings.map((_, gi) => {
    let bl = Infinity;
    for (let p = gi * P; p < (gi + 1) * P; p++) if (st.bestLoss[p] < bl) bl = st.bestLoss[p];
    return { bestLoss: finiteOrNull(bl + outside) };
  });
  let metrics: AttackResult['metrics'];
  if (truth) {
    let ok = 0;
    for (let gi = 0; gi < G; gi++) {
      let okG = 0;
      for (let p = gi * P; p < (gi + 1) * P; p++) if (scoreWork(pts, labelings[gi], p * BD).success) okG++;
      perLabeling[gi].successFraction = okG / P;
      ok += okG;
    }
    successFraction = ok / total;
    metrics = metricsOf(score(reconFull, yBest));
  }

  let trajectory: AttackResult['trajectory'];
  if (o.trajectory > 0) {
    const start = x0.subarray(bestP * BD, (bestP + 1) * BD);
    const startLoss = matchLoss(o.loss, layerFor(work, yBest), target, start).loss + (o.loss === 'l2' ? outside : 0);
    trajectory = {
      every: o.trajectory,
      restart: bestP,
      iteration: [0, ...traj.iteration],
      loss: [finiteOrNull(startLoss), ...traj.bestLoss.map((bl) => finiteOrNull(bl[bestP] + (o.loss === 'l2' ? outside : 0)))],
      points: [rows(lift(start), B, sc.D), ...traj.points.map((tp) => rows(lift(tp.subarray(bestP * BD, (bestP + 1) * BD)), B, sc.D))],
    };
  }

  const result: AttackResult = {
    format: 'dlg-attack-result/1',
    reconstruction: rows(reconFull, B, sc.D),
    loss,
    objective: { kind: o.loss, value: st.bestLoss[bestP] + (o.loss === 'l2' ? outside : 0) },
    labels: rows(yBest, B, K),
    labelInference: labelInferenceOut(chosen, perLabeling),
    method: 'optimize',
    optimizer: o.optimizer,
    regime: regimeOut(reconFull, yBest),
    engine: { kernel, backend: dev ? 'webgpu' : 'cpu', why: kernel === 'cpu' ? plan.why : `${plan.why}; kernel ${kernel}, ${kernelWhy}` },
    iterations: done,
    stoppedBy,
    wallTimeMs: 0,
    timing: { planMs: tPlan - t0, engineSetupMs: tSetup, runMs: tRun, polishMs: tPolish },
    adapter: dev ? (adapterName ?? 'unknown adapter') : device ? `host float64 engine (device: ${adapterName ?? 'unknown adapter'})` : 'cpu (float64 reference engine)',
    backend: dev ? 'webgpu' : 'cpu',
    restarts: {
      count: total,
      perLabeling: P,
      finalLoss: Array.from(st.bestLoss, finiteOrNull),
      quantiles: lossQuantiles(st.bestLoss),
      outcome,
      counts,
      iterations: Array.from(st.iterations),
      ...(st.lambda ? { lambda: Array.from(st.lambda, finiteOrNull) } : {}),
      ...(successFraction !== undefined ? { successFraction } : {}),
      best: bestP,
    },
    bestRestart: {
      index: bestP,
      iterations: st.iterations[bestP],
      ...(st.lambda ? { lambda: finiteOrNull(st.lambda[bestP]) } : {}),
    },
    ...(polishOut ? { polish: polishOut } : {}),
    ...(metrics ? { metrics } : {}),
    history,
    ...(trajectory ? { trajectory } : {}),
    options: optionsOut,
  };
  if (!result.labelInference) delete result.labelInference;
  result.wallTimeMs = performance.now() - t0;
  return result;}
