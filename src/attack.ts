/**
 * The DLG attack, orchestrated: P restarts (per candidate labelling) advance together in the
 * attack engine (WebGPU, or the float64 CPU engine when the caller passes no device), the status
 * is read back only every `readbackEvery` iterations (progress, early stop once every restart has
 * converged or been frozen), then every restart's best point is scored against the truth.
 * Browser-safe: no file I/O here (the CLI writes the result and the PNG).
 */
import { ANALYTIC_B_EXPLANATION, analyticRecover } from './analytic.js';
import { createAttackEngine, createCpuEngine, type EngineHandle, type EngineStatus, type Optimizer } from './engine.js';
import { DlgInputError, DlgRuntimeError, describe, requireFiniteNumber, requireOneOf, requirePositiveInt } from './errors.js';
import { type LabelInference, inferLabels, isOneHot } from './labels.js';
import { type ReconstructionMetrics, imageSide, psnrPeak, reconstructionMetrics } from './matching.js';
import { type Layer, gradientNormSq, matchL2, matchLoss } from './model.js';
import { Rng } from './rng.js';
import type { Scenario } from './scenario.js';

export type AttackInit = 'normal' | 'uniform';
export type AttackLabels = 'known' | 'infer';
export type AttackMethod = 'optimize' | 'analytic';
export type RestartOutcome = 'converged' | 'stalled' | 'non-finite';

export interface AttackProgress {
  iteration: number;
  bestLoss: number;
  /** Restarts that met the tolerance so far. */
  converged: number;
}

export interface AttackOptions {
  /** Restarts per candidate labelling (P), default 256. */
  restarts?: number;
  /** Iteration budget, default 2000. */
  iterations?: number;
  optimizer?: Optimizer;
  /**
   * Learning rate. Defaults: adam 0.05, lbfgs 1 (the first trial step of its line search), gd 0.1.
   * For gd it is relative: the step used is lr / (‖∇W‖² + ‖∇b‖²), since L_r scales with the gradient's size.
   */
  lr?: number;
  init?: AttackInit;
  /** normal: x′ ~ N(0, s²); uniform: x′ ~ U(−s, s). Default 1. */
  initScale?: number;
  seed?: number;
  /** Relative tolerance: a restart converges when L_r ≤ tol·(‖∇W‖² + ‖∇b‖²) (cosine: when L_cos ≤ tol). Default 1e-10. */
  tol?: number;
  loss?: 'l2' | 'cosine';
  labels?: AttackLabels;
  method?: AttackMethod;
  /** Read the status back every this many iterations (progress, early stop). Default 100. */
  readbackEvery?: number;
  /** Save the best restart's loss and x′ every k iterations; 0 = off (default). */
  trajectory?: number;
  /** With labels 'infer', the most candidate labellings to attack (default 16). */
  maxLabelings?: number;
  /**
   * Refine the best `polish` restarts (by device loss) on the host with float64 L-BFGS, and keep
   * the best refined point (default 4; 0 = off). f32 cannot resolve L_r below ~1e-13 relative,
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

export interface ResolvedAttackOptions {
  restarts: number;
  iterations: number;
  optimizer: Optimizer;
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
  optimizer: 'adam' as Optimizer,
  init: 'normal' as AttackInit,
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

export const DEFAULT_LR: Record<Optimizer, number> = { adam: 0.05, lbfgs: 1, gd: 0.1, lm: 1 };

/** Caps that keep memory and buffers sane (restarts are per labelling). */
const MAX_RESTARTS = 1 << 20;
const MAX_ITERATIONS = 100_000_000;
/** A trajectory keeps every restart's best point at every snapshot until the best restart is known. */
const MAX_TRAJECTORY_FLOATS = 1 << 25;

const OPTION_KEYS = new Set([
  'restarts', 'iterations', 'optimizer', 'lr', 'init', 'initScale', 'seed', 'tol', 'loss', 'labels', 'method',
  'readbackEvery', 'trajectory', 'maxLabelings', 'polish', 'stopAfter', 'onProgress', 'signal',
]);

/** Validates and defaults attack options; DlgInputError names the field. */
export function validateAttackOptions(o: unknown): ResolvedAttackOptions {
  if (o === undefined || o === null) o = {};
  if (typeof o !== 'object' || Array.isArray(o)) throw new DlgInputError('options', 'an object', describe(o));
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!OPTION_KEYS.has(k)) throw new DlgInputError(k, `no such attack option (known: ${[...OPTION_KEYS].join(', ')})`, describe(r[k]));
  }
  const get = <T>(k: string, def: T): unknown => (r[k] === undefined ? def : r[k]);
  const restarts = requirePositiveInt('restarts', get('restarts', ATTACK_DEFAULTS.restarts), MAX_RESTARTS);
  const iterations = requirePositiveInt('iterations', get('iterations', ATTACK_DEFAULTS.iterations), MAX_ITERATIONS);
  const optimizer = requireOneOf('optimizer', get('optimizer', ATTACK_DEFAULTS.optimizer), ['gd', 'adam', 'lbfgs'] as const);
  const lr = requireFiniteNumber('lr', get('lr', DEFAULT_LR[optimizer]));
  if (!(lr > 0)) throw new DlgInputError('lr', 'a finite number > 0', describe(lr));
  const init = requireOneOf('init', get('init', ATTACK_DEFAULTS.init), ['normal', 'uniform'] as const);
  const initScale = requireFiniteNumber('initScale', get('initScale', ATTACK_DEFAULTS.initScale));
  if (!(initScale > 0)) throw new DlgInputError('initScale', 'a finite number > 0', describe(initScale));
  const seed = get('seed', ATTACK_DEFAULTS.seed);
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new DlgInputError('seed', 'an integer in [0, 4294967295]', describe(seed));
  }
  const tol = requireFiniteNumber('tol', get('tol', ATTACK_DEFAULTS.tol));
  if (!(tol > 0)) throw new DlgInputError('tol', 'a finite number > 0 (relative to ‖∇W‖² + ‖∇b‖²)', describe(tol));
  const loss = requireOneOf('loss', get('loss', ATTACK_DEFAULTS.loss), ['l2', 'cosine'] as const);
  const labels = requireOneOf('labels', get('labels', ATTACK_DEFAULTS.labels), ['known', 'infer'] as const);
  const method = requireOneOf('method', get('method', ATTACK_DEFAULTS.method), ['optimize', 'analytic'] as const);
  const readbackEvery = requirePositiveInt('readbackEvery', get('readbackEvery', ATTACK_DEFAULTS.readbackEvery), MAX_ITERATIONS);
  const trajectory = get('trajectory', ATTACK_DEFAULTS.trajectory);
  if (typeof trajectory !== 'number' || !Number.isInteger(trajectory) || trajectory < 0 || trajectory > MAX_ITERATIONS) {
    throw new DlgInputError('trajectory', `an integer in [0, ${MAX_ITERATIONS}] (0 = off)`, describe(trajectory));
  }
  const maxLabelings = requirePositiveInt('maxLabelings', get('maxLabelings', ATTACK_DEFAULTS.maxLabelings), 4096);
  const polish = get('polish', ATTACK_DEFAULTS.polish);
  if (typeof polish !== 'number' || !Number.isInteger(polish) || polish < 0 || polish > 4096) {
    throw new DlgInputError('polish', 'an integer in [0, 4096] (0 = off)', describe(polish));
  }
  const stopAfter = get('stopAfter', ATTACK_DEFAULTS.stopAfter);
  if (typeof stopAfter !== 'number' || !Number.isInteger(stopAfter) || stopAfter < 0 || stopAfter > MAX_RESTARTS) {
    throw new DlgInputError('stopAfter', `an integer in [0, ${MAX_RESTARTS}] (0 = off)`, describe(stopAfter));
  }
  const maxRestarts = labels === 'infer' ? restarts * maxLabelings : restarts;
  if (stopAfter > maxRestarts) {
    const of = labels === 'infer' ? `restarts × maxLabelings = ${maxRestarts}` : `restarts = ${restarts}`;
    throw new DlgInputError('stopAfter', `an integer in [0, ${maxRestarts}] (at most the restarts run: ${of})`, describe(stopAfter));
  }
  const onProgress = r.onProgress;
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new DlgInputError('onProgress', 'a function', describe(onProgress));
  const signal = r.signal;
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof (signal as AbortSignal).aborted !== 'boolean')) {
    throw new DlgInputError('signal', 'an AbortSignal', describe(signal));
  }
  return {
    restarts, iterations, optimizer, lr, init, initScale, seed, tol, loss, labels, method, readbackEvery, trajectory, maxLabelings, polish, stopAfter,
    onProgress: onProgress as ResolvedAttackOptions['onProgress'],
    signal: signal as AbortSignal | undefined,
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
    /** Fraction of restarts whose best point reaches relative error < 1e-3 (ground truth only). */
    successFraction?: number;
    /** Which restart is the reconstruction. */
    best: number;
  };
  /**
   * Host float64 L-BFGS refinement of the best device restarts (absent when polish = 0).
   * The reconstruction is the best refined point; restarts.* describe the device restarts as they were.
   */
  polish?: {
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
  };
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

function rows(data: ArrayLike<number>, r: number, c: number, off = 0): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < r; i++) {
    const row = new Array<number>(c);
    for (let j = 0; j < c; j++) row[j] = data[off + i * c + j];
    out.push(row);
  }
  return out;
}

const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

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

/** Initial points for `total` restarts (total·B·D), from Rng(seed), in restart-major order. */
export function initialPoints(total: number, B: number, D: number, init: AttackInit, scale: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const x = new Float64Array(total * B * D);
  for (let i = 0; i < x.length; i++) x[i] = init === 'normal' ? scale * rng.normal() : scale * (2 * rng.uniform() - 1);
  return x;
}

function checkScenario(s: unknown): Scenario {
  if (s === null || typeof s !== 'object') throw new DlgInputError('scenario', 'a parsed scenario (parseScenario)', describe(s));
  const sc = s as Scenario;
  const { B, D, K } = sc;
  for (const [f, v] of [['B', B], ['D', D], ['K', K]] as const) requirePositiveInt(`scenario.${f}`, v);
  const len = (f: string, a: unknown, n: number) => {
    if (a === null || typeof a !== 'object' || (a as ArrayLike<number>).length !== n) {
      throw new DlgInputError(f, `${n} numbers`, a && typeof a === 'object' ? `length ${(a as ArrayLike<number>).length}` : describe(a));
    }
    const arr = a as ArrayLike<number>;
    for (let i = 0; i < n; i++) if (typeof arr[i] !== 'number' || !Number.isFinite(arr[i])) throw new DlgInputError(`${f}[${i}]`, 'a finite number', describe(arr[i]));
  };
  len('scenario.W', sc.W, D * K);
  len('scenario.b', sc.b, K);
  len('scenario.y', sc.y, B * K);
  if (!sc.gradient || typeof sc.gradient !== 'object') throw new DlgInputError('scenario.gradient', 'the shared gradient {W, b}', describe(sc.gradient));
  len('scenario.gradient.W', sc.gradient.W, D * K);
  len('scenario.gradient.b', sc.gradient.b, K);
  if (sc.inputs !== undefined) len('scenario.inputs', sc.inputs, B * D);
  requireOneOf('scenario.reduction', sc.reduction, ['mean', 'sum'] as const);
  return sc;
}

/**
 * Which restarts to polish: by best device loss, skipping points within PICK_DISTINCT_REL (matched) of
 * an earlier pick with the same labelling, so that distinct basins, and with them every exact solution
 * the restarts found, get polished (the best few restarts often sit on one solution); the best restarts
 * left over fill the remaining picks. Scans at most PICK_SCAN·n restarts.
 */
function polishPicks(order: number[], pts: Float32Array, labelings: Float64Array[], P: number, B: number, D: number, K: number, n: number): number[] {
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

function sameUpToOrder(a: ArrayLike<number>, b: ArrayLike<number>, B: number, K: number): boolean {
  const key = (y: ArrayLike<number>) => Array.from({ length: B }, (_, n) => Array.from({ length: K }, (_, k) => y[n * K + k]).join(',')).sort().join(';');
  return key(a) === key(b);
}

/**
 * Runs the attack. `device` null means the float64 CPU engine (only when the user asked for it).
 * Throws DlgInputError for bad options or scenarios, before any work is done.
 */
export async function attack(device: GPUDevice | null, scenario: Scenario, options: AttackOptions = {}, adapterName?: string): Promise<AttackResult> {
  const t0 = performance.now();
  const o = validateAttackOptions(options);
  const sc = checkScenario(scenario);
  const { B, D, K } = sc;
  const target = sc.gradient;
  const gNorm = gradientNormSq(target);
  if (!(gNorm > 0)) throw new DlgInputError('scenario.gradient', 'a non-zero shared gradient', 'all zeros');
  const tolAbs = o.loss === 'cosine' ? o.tol : o.tol * gNorm;
  const lrEffective = o.optimizer === 'gd' ? o.lr / gNorm : o.lr;
  const { onProgress, signal, ...plain } = o;
  void onProgress;
  void signal;
  const optionsOut = { ...plain, lrEffective, tolAbs };
  const truth = sc.inputs;
  const psnr = truth && imageSide(D) !== undefined ? psnrPeak(truth) : undefined;

  // Labels: known, or every candidate labelling ∇b leaves open.
  let inference: LabelInference | undefined;
  let labelings: Float64Array[];
  if (o.labels === 'infer') {
    inference = inferLabels(target.b, B, K, sc.reduction, o.maxLabelings, { oneHot: isOneHot(sc.y, B, K) }); // the scenario's labels say whether rows are one-hot
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
  const layerFor = (y: Float64Array): Layer => ({ B, D, K, W: sc.W, b: sc.b, y, reduction: sc.reduction });
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
  const score = (x: ArrayLike<number>, y: Float64Array, off = 0) =>
    reconstructionMetrics(x, truth!, { B, D, K, reconLabels: y, trueLabels: sc.y, psnrPeak: psnr }, off);

  if (o.method === 'analytic') {
    if (B !== 1) throw new DlgInputError('method', `'optimize' for B = ${B} (${ANALYTIC_B_EXPLANATION})`, `'analytic' with B = ${B}`);
    const { x } = analyticRecover(sc, target);
    const y = labelings[0];
    const loss = matchL2(layerFor(y), target, x).loss;
    const objective = matchLoss(o.loss, layerFor(y), target, x).loss;
    const m = truth ? score(x, y) : undefined;
    const outcome: RestartOutcome = !Number.isFinite(objective) ? 'non-finite' : objective <= tolAbs ? 'converged' : 'stalled';
    const result: AttackResult = {
      format: 'dlg-attack-result/1',
      reconstruction: rows(x, B, D),
      loss,
      objective: { kind: o.loss, value: objective },
      labels: rows(y, B, K),
      labelInference: labelInferenceOut(0, [{ bestLoss: finiteOrNull(objective), ...(m ? { successFraction: m.success ? 1 : 0 } : {}) }]),
      method: 'analytic',
      iterations: 0,
      stoppedBy: 'analytic',
      wallTimeMs: 0,
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
      ...(m ? { metrics: { relativeError: m.relativeError, mse: m.mse, ...(m.psnr !== undefined ? { psnr: m.psnr } : {}), success: m.success, assignment: m.assignment, labelConsistent: m.labelConsistent } } : {}),
      history: { iteration: [], bestLoss: [] },
      options: { method: o.method, labels: o.labels, ...(o.labels === 'infer' ? { maxLabelings: o.maxLabelings } : {}), loss: o.loss, tol: o.tol, tolAbs },
    };
    if (!result.labelInference) delete result.labelInference;
    result.wallTimeMs = performance.now() - t0;
    return result;
  }

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
    layer: layerFor(labelings[0]),
    target,
    groups: labelings.map((y) => ({ y, target })),
    P,
    optimizer: o.optimizer,
    lr: lrEffective,
    loss: o.loss,
    tolAbs,
    label: 'attack',
  };
  const engine: EngineHandle = device ? createAttackEngine(device, engineOpts) : createCpuEngine(engineOpts);
  const x0 = initialPoints(total, B, D, o.init, o.initScale, o.seed);
  const history = { iteration: [] as number[], bestLoss: [] as (number | null)[] };
  const traj = { iteration: [] as number[], bestLoss: [] as Float32Array[], points: [] as Float32Array[] };
  let status: EngineStatus | undefined;
  let bestPoints: Float32Array | undefined;
  let done = 0;
  let stoppedBy: AttackResult['stoppedBy'] = 'iterations';
  try {
    engine.setInputs(x0);
    const chunk = o.trajectory > 0 ? o.trajectory : o.readbackEvery;
    for (;;) {
      if (o.signal?.aborted) {
        stoppedBy = 'aborted';
        break;
      }
      const n = Math.min(chunk, o.iterations - done);
      engine.run(n);
      done += n;
      status = await engine.readStatus();
      let best = Infinity;
      let converged = 0;
      let finished = 0;
      for (let p = 0; p < total; p++) {
        if (status.bestLoss[p] < best) best = status.bestLoss[p];
        if (status.status[p] === 1) converged++;
        if (status.status[p] !== 0) finished++;
      }
      history.iteration.push(done);
      history.bestLoss.push(finiteOrNull(best));
      if (o.trajectory > 0) {
        traj.iteration.push(done);
        traj.bestLoss.push(status.bestLoss);
        traj.points.push(await engine.readBest());
      }
      o.onProgress?.({ iteration: done, bestLoss: best, converged });
      if (finished === total) {
        stoppedBy = 'all-finished';
        break;
      }
      if (o.stopAfter > 0 && converged >= o.stopAfter) {
        stoppedBy = 'stop-after';
        break;
      }
      if (done >= o.iterations) break;
    }
    if (!status) status = await engine.readStatus();
    bestPoints = await engine.readBest();
  } catch (err) {
    engine.destroy();
    if (err instanceof DlgInputError || err instanceof DlgRuntimeError) throw err;
    throw new DlgRuntimeError(`attack engine failed: ${(err as Error)?.message ?? String(err)}`);
  }
  engine.destroy();
  if (!status || !bestPoints) throw new DlgRuntimeError('attack engine returned no status');
  const st = status;
  const pts = bestPoints;

  // Restarts by best loss, first index on ties (deterministic); the best one, unless polishing finds better.
  const order = Array.from({ length: total }, (_, p) => p).sort((a, b) => {
    const la = Number.isFinite(st.bestLoss[a]) ? st.bestLoss[a] : Infinity;
    const lb = Number.isFinite(st.bestLoss[b]) ? st.bestLoss[b] : Infinity;
    return la < lb ? -1 : la > lb ? 1 : a - b;
  });
  let bestP = order[0];
  let recon: Float64Array = Float64Array.from(pts.subarray(bestP * BD, (bestP + 1) * BD));
  let polishOut: AttackResult['polish'];
  if (o.polish > 0) {
    const picks = polishPicks(order, pts, labelings, P, B, D, K, Math.min(o.polish, total));
    const before: (number | null)[] = [];
    const after: (number | null)[] = [];
    let bestAfter = Infinity;
    let bestIdx = 0;
    const polished: Float64Array[] = [];
    for (let i = 0; i < picks.length; i++) {
      const p = picks[i];
      const y = labelings[Math.floor(p / P)];
      const cpu = createCpuEngine({
        layer: layerFor(y), target, P: 1, optimizer: 'lbfgs', lr: 1, loss: o.loss,
        tolAbs: o.loss === 'cosine' ? 0 : POLISH_TOL * gNorm, label: 'attack.polish',
      });
      const start = Float64Array.from(pts.subarray(p * BD, (p + 1) * BD));
      cpu.setInputs(start);
      cpu.run(POLISH_ITERATIONS);
      // The engine keeps its best point in float64 and hands it back as f32: far below the 1e-3 success scale.
      const x = Float64Array.from(await cpu.readBest());
      cpu.destroy();
      const vBefore = matchLoss(o.loss, layerFor(y), target, start).loss;
      let vAfter = matchLoss(o.loss, layerFor(y), target, x).loss;
      // Never worse than where it started (the f32 read-back could in principle lose the gain).
      if (!(vAfter <= vBefore)) {
        x.set(start);
        vAfter = vBefore;
      }
      before.push(finiteOrNull(vBefore));
      after.push(finiteOrNull(vAfter));
      polished.push(x);
      if (vAfter < bestAfter) {
        bestAfter = vAfter;
        bestIdx = i;
      }
    }
    // Distinct exact solutions among the polished points (row order and equal-label swaps aside).
    const exact: { x: Float64Array; y: Float64Array; i: number }[] = [];
    for (let i = 0; i < picks.length; i++) {
      const y = labelings[Math.floor(picks[i] / P)];
      const l2 = matchL2(layerFor(y), target, polished[i]).loss;
      if (!(l2 <= EXACT_REL_LOSS * gNorm)) continue;
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
    bestP = picks[bestIdx];
    recon = polished[bestIdx];
    polishOut = {
      restarts: picks, iterations: POLISH_ITERATIONS, lossBefore: before, lossAfter: after, chosen: bestIdx,
      exactSolutions: exact.map((e) => rows(e.x, B, D)),
      ambiguous: exact.length > 1,
      ...(truth ? { truthAmongExact: exact.some((e) => score(e.x, e.y).success) } : {}),
    };
  }
  const chosen = Math.floor(bestP / P);
  const yBest = labelings[chosen];
  const loss = matchL2(layerFor(yBest), target, recon).loss;

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
    return { bestLoss: finiteOrNull(bl) };
  });
  let metrics: AttackResult['metrics'];
  if (truth) {
    let ok = 0;
    for (let gi = 0; gi < G; gi++) {
      let okG = 0;
      for (let p = gi * P; p < (gi + 1) * P; p++) if (score(pts, labelings[gi], p * BD).success) okG++;
      perLabeling[gi].successFraction = okG / P;
      ok += okG;
    }
    successFraction = ok / total;
    const m = score(recon, yBest);
    metrics = { relativeError: m.relativeError, mse: m.mse, ...(m.psnr !== undefined ? { psnr: m.psnr } : {}), success: m.success, assignment: m.assignment, labelConsistent: m.labelConsistent };
  }

  let trajectory: AttackResult['trajectory'];
  if (o.trajectory > 0) {
    const start = x0.subarray(bestP * BD, (bestP + 1) * BD);
    const startLoss = matchLoss(o.loss, layerFor(yBest), target, start).loss;
    trajectory = {
      every: o.trajectory,
      restart: bestP,
      iteration: [0, ...traj.iteration],
      loss: [finiteOrNull(startLoss), ...traj.bestLoss.map((bl) => finiteOrNull(bl[bestP]))],
      points: [rows(start, B, D), ...traj.points.map((pts) => rows(pts, B, D, bestP * BD))],
    };
  }

  const result: AttackResult = {
    format: 'dlg-attack-result/1',
    reconstruction: rows(recon, B, D),
    loss,
    objective: { kind: o.loss, value: st.bestLoss[bestP] },
    labels: rows(yBest, B, K),
    labelInference: labelInferenceOut(chosen, perLabeling),
    method: 'optimize',
    iterations: done,
    stoppedBy,
    wallTimeMs: 0,
    adapter: device ? (adapterName ?? 'unknown adapter') : 'cpu (float64 reference engine)',
    backend: device ? 'webgpu' : 'cpu',
    restarts: {
      count: total,
      perLabeling: P,
      finalLoss: Array.from(st.bestLoss, finiteOrNull),
      quantiles: lossQuantiles(st.bestLoss),
      outcome,
      counts,
      iterations: Array.from(st.iterations),
      ...(successFraction !== undefined ? { successFraction } : {}),
      best: bestP,
    },
    ...(polishOut ? { polish: polishOut } : {}),
    ...(metrics ? { metrics } : {}),
    history,
    ...(trajectory ? { trajectory } : {}),
    options: optionsOut,
  };
  if (!result.labelInference) delete result.labelInference;
  result.wallTimeMs = performance.now() - t0;
  return result;
}
