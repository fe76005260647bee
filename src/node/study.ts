/**
 * The convergence study (Node only): sweeps configurations (data set, B, D, K, optimizer); each
 * runs S seeded scenarios × P restarts in ONE engine launch (the S scenarios share the layer
 * W, b — the engine's `groups` — and differ in inputs and labels), then scores every restart
 * against the truth and diagnoses every scenario at the truth (rank, κ).
 *
 * Measurement rules (also in docs/study.md):
 * - Each scenario s stops a restart once L_r ≤ tol_s = (½·10⁻³·‖x_s‖·σ_min,s)², σ_min,s the smallest
 *   non-zero singular value of J at the truth. Near an isolated solution L_r ≥ σ_min²‖δ‖², so a
 *   stopped restart is within relative error ½·10⁻³ (to first order): the stopping iteration is
 *   the iteration count to reach relative error < 10⁻³. Every restart's best point is then scored
 *   exactly (Hungarian matching, labels fixed), so the stopping rule never decides success.
 * - Outcome of each restart: success (relative error < 10⁻³); non-finite (rolled back and frozen by
 *   the engine); other solution (L_r ≈ 0: stopped by tol_s or L_r ≤ 10⁻⁹·‖g‖², but x′ ≠ x);
 *   stalled (still running at the iteration cap with L_r clearly above 0: a flat valley or a
 *   local minimum).
 * - A scenario succeeds when any of its P restarts does; its iterations (wall time) to success are
 *   those of its first successful restart (wall time observed at the first read-back showing it,
 *   with all S·P restarts advancing together).
 * - The best L_r per iteration is sampled at read-back points (1, 2, 5, 10, 20, 50, 100, then every
 *   `readEvery`), as best-of-P per scenario divided by ‖g_s‖² = ‖∇W‖² + ‖∇b‖², then median and
 *   quartiles across scenarios.
 * - gd's step is 'auto' by default: 1/λ_max, λ_max the largest Hessian eigenvalue at the truth
 *   (median over the scenarios): the classic fixed step for which GD's local rate is set by κ.
 * - The problem (`reduce`): by default every optimizer solves what `dlg attack` would solve — the
 *   reduced problem (D → B, x = C·Vᵀ, src/analysis/reduce.ts) where `analyseScenario(s, 'auto')` reduces, else
 *   the raw one — so the methods are compared on one problem, and κ, σ_min and tol_s are those of that
 *   problem. `reduce: 'off'` runs every optimizer on the raw problem (the seed's setting).
 * - Reduced scenarios have different weights (VᵀW), so they cannot share one engine's groups: each
 *   runs in its own engine (P restarts, the same read-back points); scenarios left raw share one engine.
 *   Best points are lifted back (x = C·Vᵀ) and scored against the true inputs, and losses are those of
 *   the full problem (the reduced loss plus the constant ‖(I − VVᵀ)∇W‖²). Time to success is then
 *   measured within the scenario's own engine run.
 * - lm runs where its engine (`studyLmEngine`: the WebGPU lm kernel, or the float64 CPU engine without a
 *   device) takes the working problem; elsewhere the configuration is not run and the results say why
 *   (`StudyResult.notRun`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from './data-node.js';
import { DATASET_INFO, DATASET_NAMES, type DatasetName, simulateScenario } from '../core/datasets.js';
import { diagnose } from '../analysis/diagnose.js';
import { type EngineHandle, type EngineOptions, type EngineStatus, OPTIMIZERS, type Optimizer, createAttackEngine, createCpuEngine } from '../attack/engine.js';
import { DlgInputError, describe } from '../core/errors.js';
import { lmPlacement } from '../attack/attack.js';
import { checkOutputDir, checkWritable, ensureDir, writeFileAtomic } from './io.js';
import { reconstructionMetrics } from '../analysis/matching.js';
import { gradientNormSq } from '../core/model.js';
import { studyPlotSpecs, writePlot } from './plots.js';
import { Rng } from '../core/rng.js';
import { runLoop } from '../attack/run-loop.js';
import { type Regime, type SubspaceReduction, analyseScenario } from '../analysis/reduce.js';
import { type Scenario, makeScenario } from '../core/scenario.js';
import { studySummaryMarkdown } from './study-report.js';

export const STUDY_FORMAT = 'dlg-study/1';
/** Relative L_r below which a point counts as an exact solution of the matching equations. */
export const EXACT_REL_LOSS = 1e-9;
/** The success criterion, as in matching.ts. */
export const STUDY_REL_ERROR = 1e-3;

/** Which problem the optimizers solve: 'auto' = the attack's (reduced where it reduces), 'off' = raw. */
export type StudyReduce = 'auto' | 'off';
export const STUDY_REDUCE: readonly StudyReduce[] = ['auto', 'off'];

export interface StudyConfig {
  batch: number[];
  features: number[];
  outputs: number[];
  optimizer: Optimizer[];
  dataset: DatasetName[];
  /** Seeded scenarios per configuration (S). */
  scenarios: number;
  /** Restarts per scenario (P). */
  restarts: number;
  /** Iteration cap per restart. */
  iterations: number;
  /** Scenario s of every configuration uses seed + s; restarts' starting points derive from it too. */
  seed: number;
  /** Learning rate per optimizer; gd's 'auto' = 1/λ_max of the Hessian at the truth. */
  lr: { adam: number; gd: number | 'auto'; lbfgs: number; lm: number };
  /** Restarts start from N(0, initScale²). */
  initScale: number;
  /** Read back every this many iterations (after a geometric ramp 1, 2, 5, 10, 20, 50, 100). */
  readEvery: number;
  /** The problem every optimizer solves (see the header). */
  reduce: StudyReduce;
}

/**
 * The default sweep: sized to finish in under 10 minutes on lavapipe (bench/RESULTS.md, "Convergence
 * study") while still showing the three claims: first-order iterations grow with κ (and κ with B), lm's
 * stay flat, and only non-identifiable configurations stay unsolved.
 */
export const DEFAULT_STUDY_CONFIG: StudyConfig = {
  batch: [1, 2, 4, 8],
  features: [1, 16],
  outputs: [1, 4, 10],
  optimizer: ['gd', 'adam', 'lm'],
  dataset: ['gaussian'],
  scenarios: 12,
  restarts: 48,
  iterations: 3000,
  seed: 1,
  lr: { adam: 0.05, gd: 'auto', lbfgs: 1, lm: 1 },
  initScale: 1,
  readEvery: 250,
  reduce: 'auto',
};

/**
 * The big sweep (`dlg study --full`): 5 × 4 × 3 shapes × {adam, gd}, 32 scenarios × 256 restarts ×
 * 5000 iterations, about 99 minutes on lavapipe. lm is left out: on the CPU lm engine its raw
 * non-identifiable shapes (up to 1024 unknowns, a dense Cholesky per step and restart) take hours;
 * add it with `--optimizer adam,gd,lm` where a GPU lm engine runs it.
 */
export const FULL_STUDY_CONFIG: StudyConfig = {
  ...DEFAULT_STUDY_CONFIG,
  batch: [1, 2, 4, 8, 16],
  features: [1, 4, 16, 64],
  outputs: [1, 4, 10],
  optimizer: ['adam', 'gd'],
  scenarios: 32,
  restarts: 256,
  iterations: 5000,
};

const MAX_AXIS = { batch: 16, features: 4096, outputs: 64 };

function axis(field: string, v: unknown, max: number): number[] {
  if (!Array.isArray(v)) throw new DlgInputError(field, 'a non-empty array of positive integers', describe(v));
  if (v.length === 0) throw new DlgInputError(field, 'a non-empty array of positive integers', 'an empty array');
  const seen = new Set<number>();
  return v.map((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > max) {
      throw new DlgInputError(`${field}[${i}]`, `an integer in [1, ${max}]`, describe(x));
    }
    if (seen.has(x)) throw new DlgInputError(`${field}[${i}]`, 'distinct values', `${x} twice`);
    seen.add(x);
    return x;
  });
}

function names<T extends string>(field: string, v: unknown, allowed: readonly T[]): T[] {
  const expected = `a non-empty array of ${allowed.map((a) => `'${a}'`).join(', ')}`;
  if (!Array.isArray(v)) throw new DlgInputError(field, expected, describe(v));
  if (v.length === 0) throw new DlgInputError(field, expected, 'an empty array');
  const seen = new Set<string>();
  return v.map((x, i) => {
    if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) {
      throw new DlgInputError(`${field}[${i}]`, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, describe(x));
    }
    if (seen.has(x)) throw new DlgInputError(`${field}[${i}]`, 'distinct values', `${JSON.stringify(x)} twice`);
    seen.add(x);
    return x as T;
  });
}

function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new DlgInputError(field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, describe(v));
  return v as T;
}

function posInt(field: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new DlgInputError(field, `an integer in [1, ${max}]`, describe(v));
  return v;
}

function posNum(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new DlgInputError(field, 'a finite number > 0', describe(v));
  return v;
}

/**
 * Validates a (partial) study configuration — as JSON or as built by the CLI — and fills in the
 * defaults. Throws DlgInputError naming the field (unknown keys included, to catch typos).
 */
export function validateStudyConfig(json: unknown, defaults: StudyConfig = DEFAULT_STUDY_CONFIG): StudyConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new DlgInputError('study config', 'a JSON object', describe(json));
  const o = json as Record<string, unknown>;
  const known = Object.keys(DEFAULT_STUDY_CONFIG);
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new DlgInputError(k, `a study setting (one of ${known.join(', ')})`, 'an unknown key');
  }
  const d = defaults;
  const pick = (k: keyof StudyConfig): unknown => (o[k] === undefined ? d[k] : o[k]);
  let lr = d.lr;
  if (o.lr !== undefined) {
    if (o.lr === null || typeof o.lr !== 'object' || Array.isArray(o.lr)) throw new DlgInputError('lr', 'an object {adam?, gd?, lbfgs?}', describe(o.lr));
    const l = o.lr as Record<string, unknown>;
    for (const k of Object.keys(l)) if (!OPTIMIZERS.includes(k as Optimizer)) throw new DlgInputError(`lr.${k}`, `one of ${OPTIMIZERS.join(', ')}`, 'an unknown optimizer');
    lr = {
      adam: l.adam === undefined ? d.lr.adam : posNum('lr.adam', l.adam),
      gd: l.gd === undefined || l.gd === 'auto' ? d.lr.gd : posNum('lr.gd', l.gd),
      lbfgs: l.lbfgs === undefined ? d.lr.lbfgs : posNum('lr.lbfgs', l.lbfgs),
      lm: d.lr.lm,
    };
  }
  const seed = pick('seed');
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff - 100000) {
    throw new DlgInputError('seed', `an integer in [0, ${0xffffffff - 100000}]`, describe(seed));
  }
  return {
    batch: axis('batch', pick('batch'), MAX_AXIS.batch),
    features: axis('features', pick('features'), MAX_AXIS.features),
    outputs: axis('outputs', pick('outputs'), MAX_AXIS.outputs),
    optimizer: names('optimizer', pick('optimizer'), OPTIMIZERS),
    dataset: names('dataset', pick('dataset'), DATASET_NAMES),
    scenarios: posInt('scenarios', pick('scenarios'), 100000),
    restarts: posInt('restarts', pick('restarts'), 1 << 20),
    iterations: posInt('iterations', pick('iterations'), 10_000_000),
    seed,
    lr,
    initScale: posNum('initScale', pick('initScale')),
    readEvery: posInt('readEvery', pick('readEvery'), 10_000_000),
    reduce: oneOf('reduce', pick('reduce'), STUDY_REDUCE),
  };
}

/** One point of the sweep. */
export interface StudyPoint {
  key: string;
  dataset: DatasetName;
  B: number;
  D: number;
  K: number;
  optimizer: Optimizer;
}

export function configKey(p: Omit<StudyPoint, 'key'>): string {
  return `${p.dataset}/B${p.B}/D${p.D}/K${p.K}/${p.optimizer}`;
}

/** The configurations of a study, in run order. iris and digits fix D and K (the B × optimizer axes remain). */
export function expandStudy(c: StudyConfig): StudyPoint[] {
  const out: StudyPoint[] = [];
  const seen = new Set<string>();
  for (const dataset of c.dataset) {
    const shapes =
      dataset === 'gaussian'
        ? c.features.flatMap((D) => c.outputs.map((K) => [D, K]))
        : [[DATASET_INFO[dataset].D, DATASET_INFO[dataset].K]];
    for (const optimizer of c.optimizer) {
      for (const [D, K] of shapes) {
        for (const B of c.batch) {
          const p = { dataset, B, D, K, optimizer };
          const key = configKey(p);
          if (seen.has(key)) continue;
          seen.add(key);
          out.push({ key, ...p });
        }
      }
    }
  }
  return out;
}

export interface StudyQuartiles {
  q25: number;
  median: number;
  q75: number;
}

/** Linear-interpolation quantile of a sorted copy; null for an empty list. */
function quantile(xs: ArrayLike<number>, q: number): number | null {
  if (xs.length === 0) return null;
  const s = Array.from(xs).sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function quartiles(xs: ArrayLike<number>): StudyQuartiles | null {
  if (xs.length === 0) return null;
  return { q25: quantile(xs, 0.25)!, median: quantile(xs, 0.5)!, q75: quantile(xs, 0.75)! };
}

export interface StudyOutcomes {
  success: number;
  stalled: number;
  otherSolution: number;
  nonFinite: number;
}

export interface ScenarioResult {
  seed: number;
  /** The scenario's regime (src/analysis/reduce.ts) and the unknowns of the problem the optimizer solved. */
  regime?: Regime;
  unknowns?: number;
  reduced?: boolean;
  /** Of the full Jacobian at the truth (identifiability does not depend on the reduction). */
  rank: number;
  solutionDim: number;
  /** κ, λ_min, λ_max of 2JᵀJ at the truth of the problem the optimizer solved (reduced or raw). */
  kappa: number | null; // null = ∞ (JSON)
  smallestEigenvalue: number;
  largestEigenvalue: number;
  tolAbs: number;
  success: boolean;
  /** Relative error of its best-scored restart. */
  relativeError: number | null;
  /** Iterations of its first successful restart (what an attacker running P restarts waits). */
  itersToSuccess: number | null;
  /** Median iterations over its successful restarts (a typical run: what κ predicts). */
  itersMedianSuccessful: number | null;
  timeToSuccessMs: number | null;
  outcomes: StudyOutcomes;
}

/** One line of results.jsonl. */
export interface ConfigResult extends StudyPoint {
  format: typeof STUDY_FORMAT;
  /** What must match for --resume to reuse the line. */
  settings: { scenarios: number; restarts: number; iterations: number; seed: number; lr: number | 'auto'; initScale: number; reduce: StudyReduce };
  backend: string;
  /**
   * The problem the optimizer solved: the regime (the most common over the scenarios, with the counts),
   * the median unknowns, how many scenarios ran reduced, and how many engine runs that took.
   * (Absent, like kappaUnreduced, itersTypical and the scenarios' regime, in lines written before lm joined the study.)
   */
  problem?: { regime: Regime; regimes: Partial<Record<Regime, number>>; unknowns: number; reducedScenarios: number; engineRuns: number };
  /** The learning rate actually used (gd 'auto' resolved). */
  lrUsed: number;
  identifiable: boolean; // B·D ≤ D·K + K
  diagnosis: {
    rankMedian: number;
    solutionDimMedian: number;
    /** Of the problem solved (reduced where it was). */
    kappa: StudyQuartiles | null;
    /** Of the raw problem (the same as kappa where nothing was reduced). */
    kappaUnreduced?: StudyQuartiles | null;
    smallestEigenvalue: StudyQuartiles;
    largestEigenvalue: StudyQuartiles;
    predictedIterations: number | null; // κ_median·ln(1/ε)
  };
  successRate: number; // scenarios with a successful restart
  restartSuccessRate: number; // successful restarts / (S·P)
  outcomes: StudyOutcomes; // over all S·P restarts
  itersToSuccess: StudyQuartiles | null; // over the scenarios that succeeded
  /** Iterations to tolerance of a typical run: quartiles over the solved scenarios of their median successful restart. */
  itersTypical?: StudyQuartiles | null;
  timeToSuccessMs: StudyQuartiles | null;
  history: { iteration: number[]; median: number[]; q25: number[]; q75: number[] };
  iterationsRun: number;
  wallTimeMs: number;
  diagnoseMs: number;
  scenarios: ScenarioResult[];
}

export interface StudyProgress {
  index: number; // configuration index in this run (0-based, among those not skipped)
  total: number;
  key: string;
  iteration: number;
  iterations: number;
  /** Engine run within the configuration (reduced scenarios run one by one) and their number. */
  run: number;
  runs: number;
}

/** A configuration the study could not run, and why (e.g. beyond lm's caps). */
export interface NotRun {
  key: string;
  reason: string;
}

export interface StudyHooks {
  onProgress?(p: StudyProgress): void;
  onConfigDone?(r: ConfigResult, index: number, total: number): void;
  /** A configuration the study cannot run (e.g. beyond lm's caps): reported, not an error. */
  onNotRun?(n: NotRun, index: number, total: number): void;
}

export interface StudyRunOptions extends StudyHooks {
  /** Output folder: results.jsonl (one line per finished configuration), results.csv, plots. */
  out?: string;
  /** Skip configurations already in out/results.jsonl with the same settings. */
  resume?: boolean;
  /** Replace earlier results in `out` (without it, or `resume`, a folder with results.jsonl is refused). */
  overwrite?: boolean;
  /** Write the plots at the end (default true when `out` is given). */
  plots?: boolean;
  /** Name of the backend for the records (e.g. the adapter); default 'webgpu' or 'cpu'. */
  backend?: string;
}

export interface StudyResult {
  /** Every configuration in the output (resumed ones included), in run order. */
  results: ConfigResult[];
  ran: string[];
  skipped: string[];
  /** Configurations not run, with the reason (not errors: the rest of the sweep ran). */
  notRun: NotRun[];
  files: string[];
  wallTimeMs: number;
}

function settingsOf(c: StudyConfig, opt: Optimizer): ConfigResult['settings'] {
  return { scenarios: c.scenarios, restarts: c.restarts, iterations: c.iterations, seed: c.seed, lr: c.lr[opt], initScale: c.initScale, reduce: c.reduce };
}

function sameSettings(a: ConfigResult['settings'], b: ConfigResult['settings']): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** FNV-1a of a string: per-configuration seeds for the restarts' starting points. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The S scenarios of a configuration: seeds seed+s, all sharing the layer (W, b) of the first. */
export function studyScenarios(point: StudyPoint, S: number, seed: number): Scenario[] {
  const data = point.dataset === 'gaussian' ? undefined : loadDataset(point.dataset);
  const base = (s: number) =>
    simulateScenario({ dataset: point.dataset, B: point.B, D: point.D, K: point.K, seed: seed + s, data });
  const first = base(0);
  const out = [first];
  for (let s = 1; s < S; s++) {
    const sc = base(s);
    out.push(makeScenario({ B: sc.B, D: sc.D, K: sc.K, W: first.W, b: first.b, y: sc.y, reduction: sc.reduction }, sc.inputs!));
  }
  return out;
}

/** Read-back points: 1, 2, 5, 10, 20, 50, 100, then every readEvery, and the cap. */
export function readbackPoints(iterations: number, readEvery: number): number[] {
  const pts = [1, 2, 5, 10, 20, 50, 100].filter((v) => v < readEvery && v < iterations);
  for (let v = readEvery; v < iterations; v += readEvery) pts.push(v);
  pts.push(iterations);
  return pts;
}

/** The problem one scenario is attacked on: reduced where `reduce` allows and the reduction holds, else raw. */
export interface StudyProblem {
  /** The working scenario (D = B when reduced), with its inputs (C = x·V) for the diagnosis. */
  scenario: Scenario;
  regime: Regime;
  reduction?: SubspaceReduction;
  /** ‖(I − VVᵀ)∇W‖² (0 unless reduced): L_r of the full problem = L_r of the working one + this. */
  outside: number;
}

/** Where the study runs lm, under which name, and what it takes (null = fits, else why not). */
export interface StudyLmEngine {
  gpu: boolean;
  backend: string;
  fits(B: number, D: number, K: number): string | null;
}

/**
 * The lm engine of the study: the WebGPU lm kernel on a hardware adapter (within LM_CAPS and the
 * device's binding sizes), else the float64 CPU engine (within LM_CPU_MAX_UNKNOWNS). On a CPU adapter
 * (lavapipe) the CPU engine runs lm: there the kernel took 2–41 s per configuration of the default
 * sweep (its per-shape pipeline compile dominates) against 0.0–0.2 s on the CPU engine (bench/RESULTS.md,
 * "Convergence study"). A problem beyond the engine's caps is not moved to another backend: the
 * configuration is reported as not run.
 */
export function studyLmEngine(device: GPUDevice | null): StudyLmEngine {
  const { onDevice, misfit } = lmPlacement(device);
  return {
    gpu: onDevice,
    backend: onDevice ? 'webgpu' : device ? 'cpu (float64 reference; lm on a CPU adapter)' : 'cpu (float64 reference)',
    fits: misfit,
  };
}

export interface ConfigurationPlan {
  scenarios: Scenario[];
  problems: StudyProblem[];
  /** Why the configuration cannot run (then nothing runs), e.g. beyond lm's caps. */
  skip?: string;
}

/** The scenarios of a configuration, the problem each is attacked on, and whether it can run at all. */
export function planConfiguration(device: GPUDevice | null, point: StudyPoint, c: StudyConfig): ConfigurationPlan {
  const scenarios = studyScenarios(point, c.scenarios, c.seed);
  const problems = scenarios.map((s): StudyProblem => {
    const { info, reduction } = analyseScenario(s, c.reduce);
    return { scenario: reduction?.scenario ?? s, regime: info.regime, ...(reduction ? { reduction } : {}), outside: info.outOfSubspaceEnergy ?? 0 };
  });
  if (point.optimizer === 'lm') {
    const lm = studyLmEngine(device);
    for (const pr of problems) {
      const why = lm.fits(pr.scenario.B, pr.scenario.D, pr.scenario.K);
      if (why) return { scenarios, problems, skip: `${why} (${pr.regime} regime${pr.reduction ? ', reduced' : ', not reduced'})` };
    }
  }
  return { scenarios, problems };
}

/**
 * Runs one configuration: S scenarios × P restarts. Scenarios left raw share ONE engine (its groups);
 * each reduced scenario runs in its own engine (its weights VᵀW differ), at the same read-back points.
 */
export async function runConfiguration(
  device: GPUDevice | null,
  point: StudyPoint,
  c: StudyConfig,
  opts: { backend?: string; plan?: ConfigurationPlan; onProgress?: (iteration: number, run: number, runs: number) => void } = {},
): Promise<ConfigResult> {
  const S = c.scenarios;
  const P = c.restarts;
  const { B, D } = point;
  const BD = B * D;
  const plan = opts.plan ?? planConfiguration(device, point, c);
  if (plan.skip) throw new DlgInputError('configuration', `one the study can run (${point.key})`, plan.skip);
  const { scenarios, problems } = plan;

  const t0 = performance.now();
  const diags = scenarios.map((s) => diagnose(s));
  const workDiags = problems.map((pr, i) => (pr.reduction ? diagnose(pr.scenario) : diags[i]));
  const diagnoseMs = performance.now() - t0;

  const gNorm = scenarios.map((s) => gradientNormSq(s.gradient));
  // tol_s on the working problem: near its isolated solution L_r ≥ σ_min²‖δ‖², and ‖δC‖ = ‖δx‖ (V orthonormal).
  const tolAbs = problems.map((pr, i) => {
    const sigmaMin = Math.sqrt(workDiags[i].hessian.smallestNonZero / 2);
    let xx = 0;
    for (const v of pr.scenario.inputs!) xx += v * v;
    return (0.5 * STUDY_REL_ERROR * Math.sqrt(xx) * sigmaMin) ** 2;
  });
  const lrSetting = c.lr[point.optimizer];
  const lrUsed = lrSetting === 'auto' ? 1 / quantile(workDiags.map((d) => d.hessian.largest), 0.5)! : lrSetting;

  const lm = point.optimizer === 'lm' ? studyLmEngine(device) : undefined;
  const onGpu = device !== null && (lm === undefined || lm.gpu);
  const backend = onGpu ? (opts.backend ?? 'webgpu') : (lm?.backend ?? opts.backend ?? 'cpu');

  // Starting points in the full space (the same for every optimizer); reduced runs start from C = x0·V.
  const rng = new Rng(hash32(`${c.seed}/${point.key}`));
  const x0 = new Float64Array(S * P * BD);
  for (let i = 0; i < x0.length; i++) x0[i] = c.initScale * rng.normal();

  const raw = problems.flatMap((pr, i) => (pr.reduction ? [] : [i]));
  const runs: number[][] = [...(raw.length ? [raw] : []), ...problems.flatMap((pr, i) => (pr.reduction ? [[i]] : []))];

  const total = S * P;
  const bestLoss = new Float64Array(total); // L_r of the full problem
  const status = new Uint32Array(total);
  const iterations = new Uint32Array(total);
  const best = new Float64Array(total * BD); // full-space points
  const convergedAt = new Float64Array(total).fill(NaN);
  const runWallMs = new Float64Array(S);
  const trace: number[][] = scenarios.map(() => []); // best relative L_r per scenario at each read-back reached
  const pts = readbackPoints(c.iterations, c.readEvery);
  let wallTimeMs = 0;
  let maxDone = 0;
  for (let ri = 0; ri < runs.length; ri++) {
    const idx = runs[ri];
    const work = problems[idx[0]].scenario;
    const red = problems[idx[0]].reduction;
    const bw = work.B * work.D;
    const engineOpts: EngineOptions = {
      layer: work,
      target: work.gradient,
      groups: idx.map((i) => ({ y: problems[i].scenario.y, target: problems[i].scenario.gradient })),
      P,
      optimizer: point.optimizer,
      lr: lrUsed,
      tolAbs: idx.map((i) => tolAbs[i]),
      label: 'study',
    };
    const x0r = new Float64Array(idx.length * P * bw);
    idx.forEach((si, g) => {
      const slice = x0.subarray(si * P * BD, (si + 1) * P * BD);
      x0r.set(red ? red.project(slice, P) : slice, g * P * bw);
    });
    let engine: EngineHandle | undefined;
    const tRun = performance.now();
    try {
      engine = onGpu ? createAttackEngine(device!, engineOpts) : createCpuEngine(engineOpts);
      let st: EngineStatus | undefined;
      const loop = runLoop(engine, { inputs: x0r, schedule: { kind: 'points', points: pts }, startTime: tRun });
      for await (const snap of loop) {
        st = snap.status;
        idx.forEach((si, g) => {
          let b = Infinity;
          for (let q = 0; q < P; q++) {
            const p = g * P + q;
            if (st!.bestLoss[p] < b) b = st!.bestLoss[p];
            if (st!.status[p] !== 0 && Number.isNaN(convergedAt[si * P + q])) convergedAt[si * P + q] = snap.elapsedMs;
          }
          trace[si].push((b + problems[si].outside) / gNorm[si]);
        });
        opts.onProgress?.(snap.iteration, ri, runs.length);
      }
      const done = loop.iteration;
      const pointsOut = await engine.readBest();
      const ms = performance.now() - tRun;
      wallTimeMs += ms;
      maxDone = Math.max(maxDone, done);
      const full = red ? red.lift(pointsOut, P) : pointsOut;
      idx.forEach((si, g) => {
        runWallMs[si] = ms;
        for (let q = 0; q < P; q++) {
          bestLoss[si * P + q] = st!.bestLoss[g * P + q] + problems[si].outside;
          status[si * P + q] = st!.status[g * P + q];
          iterations[si * P + q] = st!.iterations[g * P + q];
        }
        best.set(full.subarray(g * P * BD, (g + 1) * P * BD), si * P * BD);
      });
    } finally {
      engine?.destroy();
    }
  }
  // History over the read-backs any run reached; a run that ended early (all restarts frozen) keeps its last value.
  const reached = Math.max(...trace.map((t) => t.length));
  const history = { iteration: pts.slice(0, reached), median: [] as number[], q25: [] as number[], q75: [] as number[] };
  for (let j = 0; j < reached; j++) {
    const at = trace.map((t) => t[Math.min(j, t.length - 1)]);
    history.median.push(quantile(at, 0.5)!);
    history.q25.push(quantile(at, 0.25)!);
    history.q75.push(quantile(at, 0.75)!);
  }
  return summarise(point, c, plan, diags, workDiags, tolAbs, gNorm, { bestLoss, status, iterations }, best, convergedAt, runWallMs, wallTimeMs, {
    lrUsed, done: maxDone, diagnoseMs, history, backend, engineRuns: runs.length,
  });
}

function summarise(
  point: StudyPoint,
  c: StudyConfig,
  plan: ConfigurationPlan,
  diags: ReturnType<typeof diagnose>[],
  workDiags: ReturnType<typeof diagnose>[],
  tolAbs: number[],
  gNorm: number[],
  status: { bestLoss: Float64Array; status: Uint32Array; iterations: Uint32Array },
  best: Float64Array,
  convergedAt: Float64Array,
  runWallMs: Float64Array,
  wallTimeMs: number,
  extra: { lrUsed: number; done: number; diagnoseMs: number; history: ConfigResult['history']; backend: string; engineRuns: number },
): ConfigResult {
  const { B, D, K } = point;
  const BD = B * D;
  const P = c.restarts;
  const { scenarios, problems } = plan;
  const totals: StudyOutcomes = { success: 0, stalled: 0, otherSolution: 0, nonFinite: 0 };
  const scen: ScenarioResult[] = scenarios.map((s, si) => {
    const o: StudyOutcomes = { success: 0, stalled: 0, otherSolution: 0, nonFinite: 0 };
    let bestRel = Infinity;
    let iters: number | null = null;
    let time: number | null = null;
    const okIters: number[] = [];
    for (let p = si * P; p < (si + 1) * P; p++) {
      const m = reconstructionMetrics(best, s.inputs!, { B, D, K, reconLabels: s.y, trueLabels: s.y }, p * BD);
      if (m.relativeError < bestRel) bestRel = m.relativeError;
      const st = status.status[p];
      if (m.success) {
        o.success++;
        const it = status.iterations[p];
        // A success still running at the cap has no stopping time: its iterations are the cap (an upper bound).
        const tm = Number.isNaN(convergedAt[p]) ? runWallMs[si] : convergedAt[p];
        okIters.push(it);
        if (iters === null || it < iters) iters = it;
        if (time === null || tm < time) time = tm;
      } else if (st === 2) o.nonFinite++;
      else if (st === 1 || status.bestLoss[p] <= EXACT_REL_LOSS * gNorm[si]) o.otherSolution++;
      else o.stalled++;
    }
    (Object.keys(o) as (keyof StudyOutcomes)[]).forEach((k) => (totals[k] += o[k]));
    const d = diags[si];
    const w = workDiags[si];
    const pr = problems[si];
    return {
      seed: c.seed + si,
      regime: pr.regime,
      unknowns: pr.scenario.B * pr.scenario.D,
      reduced: pr.reduction !== undefined,
      rank: d.jacobian.rank,
      solutionDim: d.solutionDim,
      kappa: Number.isFinite(w.hessian.conditionNumber) ? w.hessian.conditionNumber : null,
      smallestEigenvalue: w.hessian.smallestNonZero,
      largestEigenvalue: w.hessian.largest,
      tolAbs: tolAbs[si],
      success: o.success > 0,
      relativeError: Number.isFinite(bestRel) ? bestRel : null,
      itersToSuccess: iters,
      itersMedianSuccessful: quantile(okIters, 0.5),
      timeToSuccessMs: time,
      outcomes: o,
    };
  });
  const ok = scen.filter((s) => s.success);
  const finite = (xs: number[]) => xs.filter((v) => Number.isFinite(v));
  const kq = quartiles(scen.map((s) => s.kappa).filter((v): v is number => v !== null));
  const regimes: Partial<Record<Regime, number>> = {};
  for (const pr of problems) regimes[pr.regime] = (regimes[pr.regime] ?? 0) + 1;
  const regime = (Object.keys(regimes) as Regime[]).reduce((a, r) => (regimes[r]! > regimes[a]! ? r : a));
  return {
    format: STUDY_FORMAT,
    ...point,
    settings: settingsOf(c, point.optimizer),
    backend: extra.backend,
    problem: {
      regime,
      regimes,
      unknowns: quantile(problems.map((pr) => pr.scenario.B * pr.scenario.D), 0.5)!,
      reducedScenarios: scen.filter((s) => s.reduced).length,
      engineRuns: extra.engineRuns,
    },
    lrUsed: extra.lrUsed,
    identifiable: BD <= D * K + K,
    diagnosis: {
      rankMedian: quantile(scen.map((s) => s.rank), 0.5)!,
      solutionDimMedian: quantile(scen.map((s) => s.solutionDim), 0.5)!,
      kappa: kq,
      kappaUnreduced: quartiles(finite(diags.map((d) => d.hessian.conditionNumber))),
      smallestEigenvalue: quartiles(scen.map((s) => s.smallestEigenvalue))!,
      largestEigenvalue: quartiles(scen.map((s) => s.largestEigenvalue))!,
      predictedIterations: kq ? Math.ceil(kq.median * Math.log(1 / STUDY_REL_ERROR)) : null,
    },
    successRate: ok.length / scen.length,
    restartSuccessRate: totals.success / (scen.length * P),
    outcomes: totals,
    itersToSuccess: quartiles(ok.map((s) => s.itersToSuccess!)),
    itersTypical: quartiles(ok.map((s) => s.itersMedianSuccessful!)),
    timeToSuccessMs: quartiles(ok.map((s) => s.timeToSuccessMs!)),
    history: extra.history,
    iterationsRun: extra.done,
    wallTimeMs,
    diagnoseMs: extra.diagnoseMs,
    scenarios: scen,
  };
}

/** JSON has no ±∞/NaN: they become null. */
function jsonLine(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x));
}

/** Parses results.jsonl; a damaged line is reported with its number. */
export function readStudyResults(path: string): ConfigResult[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const out: ConfigResult[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new DlgInputError(`${path} line ${i + 1}`, 'a JSON line written by dlg study', (err as Error).message);
    }
    const r = v as Partial<ConfigResult>;
    if (r === null || typeof r !== 'object' || r.format !== STUDY_FORMAT || typeof r.key !== 'string' || typeof r.settings !== 'object') {
      throw new DlgInputError(`${path} line ${i + 1}`, `a "${STUDY_FORMAT}" result line`, describe(v));
    }
    out.push(r as ConfigResult);
  });
  return out;
}

export const STUDY_CSV_COLUMNS = [
  'key', 'dataset', 'B', 'D', 'K', 'optimizer', 'scenarios', 'restarts', 'iterations', 'lr', 'backend',
  'regime', 'unknowns_median', 'reduced_scenarios',
  'identifiable', 'rank_median', 'solution_dim_median', 'kappa_median', 'kappa_unreduced_median', 'smallest_eigenvalue_median', 'largest_eigenvalue_median',
  'predicted_iterations', 'success_rate', 'restart_success_rate', 'iters_to_success_q25', 'iters_to_success_median',
  'iters_to_success_q75', 'iters_typical_median', 'time_to_success_ms_median', 'success', 'stalled', 'other_solution', 'non_finite',
  'final_rel_loss_median', 'iterations_run', 'wall_time_ms', 'diagnose_ms',
] as const;

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function studyResultsCsv(results: ConfigResult[]): string {
  const rows = results.map((r) => {
    const h = r.history.median;
    const cells: unknown[] = [
      r.key, r.dataset, r.B, r.D, r.K, r.optimizer, r.settings.scenarios, r.settings.restarts, r.settings.iterations, r.lrUsed, r.backend,
      r.problem?.regime, r.problem?.unknowns, r.problem?.reducedScenarios,
      r.identifiable, r.diagnosis.rankMedian, r.diagnosis.solutionDimMedian, r.diagnosis.kappa?.median, r.diagnosis.kappaUnreduced?.median,
      r.diagnosis.smallestEigenvalue.median, r.diagnosis.largestEigenvalue.median, r.diagnosis.predictedIterations, r.successRate, r.restartSuccessRate,
      r.itersToSuccess?.q25, r.itersToSuccess?.median, r.itersToSuccess?.q75, r.itersTypical?.median, r.timeToSuccessMs?.median, r.outcomes.success, r.outcomes.stalled,
      r.outcomes.otherSolution, r.outcomes.nonFinite, h[h.length - 1], r.iterationsRun, r.wallTimeMs, r.diagnoseMs,
    ];
    return cells.map(csvCell).join(',');
  });
  return [STUDY_CSV_COLUMNS.join(','), ...rows].join('\n') + '\n';
}

export const STUDY_PLOT_NAMES = [
  'a_loss_vs_iteration', 'b_success_vs_batch', 'c_phase_diagram', 'd_flatness_vs_batch', 'd_iterations_vs_kappa', 'e_iterations_vs_kappa_by_optimizer',
] as const;

/**
 * Writes results.csv, summary.md (the measured picture, generated from `results`) and the plots
 * (PNG + SVG) into `dir`; returns the paths.
 */
export async function writeStudyOutputs(
  dir: string,
  results: ConfigResult[],
  opts: { plots?: boolean; notRun?: NotRun[]; config?: StudyConfig } = {},
): Promise<string[]> {
  const files: string[] = [];
  const csv = join(dir, 'results.csv');
  writeFileAtomic(csv, studyResultsCsv(results));
  files.push(csv);
  const plots = opts.plots !== false && results.length > 0;
  const summary = join(dir, 'summary.md');
  writeFileAtomic(summary, studySummaryMarkdown(results, { notRun: opts.notRun ?? [], config: opts.config, plots: plots ? ['e_iterations_vs_kappa_by_optimizer.png', 'd_iterations_vs_kappa.png'] : [] }));
  files.push(summary);
  if (plots) {
    const specs = studyPlotSpecs(results);
    for (const name of STUDY_PLOT_NAMES) files.push(...(await writePlot(join(dir, name), specs[name])));
  }
  return files;
}

/**
 * Runs the study. `device` null ⇒ the float64 CPU engine. With `out`, every finished
 * configuration is appended to out/results.jsonl (the file is rewritten atomically, so it never
 * holds a partial line), results.csv is refreshed, and the plots are drawn at the end.
 * An existing results.jsonl is refused unless `resume` (continue it) or `overwrite` (replace it once the
 * first configuration finishes).
 */
export async function study(device: GPUDevice | null, config: unknown, run: StudyRunOptions = {}): Promise<StudyResult> {
  const c = validateStudyConfig(config);
  const t0 = performance.now();
  const points = expandStudy(c);
  let previous: ConfigResult[] = [];
  let jsonl: string | undefined;
  if (run.out !== undefined) {
    checkOutputDir('out', run.out);
    jsonl = join(run.out, 'results.jsonl');
    if (!run.resume && !run.overwrite && existsSync(jsonl)) {
      const n = readFileSync(jsonl, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
      throw new DlgInputError('out', 'a folder without earlier results (--resume continues them, --overwrite replaces them)', `${run.out} (results.jsonl holds ${n} configuration(s))`);
    }
    if (run.resume) previous = readStudyResults(jsonl);
    ensureDir(run.out, 'out');
    for (const f of ['results.jsonl', 'results.csv', ...(run.plots === false ? [] : STUDY_PLOT_NAMES.flatMap((p) => [`${p}.png`, `${p}.svg`]))]) {
      checkWritable('out', join(run.out, f));
    }
  }
  const byKey = new Map(previous.map((r) => [r.key, r]));
  const skipped: string[] = [];
  const todo: StudyPoint[] = [];
  for (const p of points) {
    const prev = byKey.get(p.key);
    if (prev) {
      if (!sameSettings(prev.settings, settingsOf(c, p.optimizer))) {
        throw new DlgInputError(
          'resume',
          `results in ${jsonl} made with the same settings (${JSON.stringify(settingsOf(c, p.optimizer))})`,
          `${p.key} with ${JSON.stringify(prev.settings)}; use another --out, or drop --resume to start over`,
        );
      }
      skipped.push(p.key);
    } else {
      todo.push(p);
    }
  }
  const results = [...previous];
  const ran: string[] = [];
  const notRun: NotRun[] = [];
  for (let i = 0; i < todo.length; i++) {
    const p = todo[i];
    const plan = planConfiguration(device, p, c);
    if (plan.skip) {
      const n = { key: p.key, reason: plan.skip };
      notRun.push(n);
      run.onNotRun?.(n, i, todo.length);
      continue;
    }
    const r = await runConfiguration(device, p, c, {
      backend: run.backend,
      plan,
      onProgress: (iteration, ri, runs) => run.onProgress?.({ index: i, total: todo.length, key: p.key, iteration, iterations: c.iterations, run: ri, runs }),
    });
    results.push(r);
    ran.push(p.key);
    if (jsonl) {
      writeFileAtomic(jsonl, results.map((x) => jsonLine(x)).join('\n') + '\n');
      writeFileAtomic(join(run.out!, 'results.csv'), studyResultsCsv(results));
    }
    run.onConfigDone?.(r, i, todo.length);
  }
  // Results in sweep order (resumed lines of other sweeps stay, after them).
  const order = new Map(points.map((p, i) => [p.key, i]));
  results.sort((a, b) => (order.get(a.key) ?? Infinity) - (order.get(b.key) ?? Infinity));
  const files: string[] = [];
  if (run.out !== undefined && jsonl) {
    if (results.length > 0) writeFileAtomic(jsonl, results.map((x) => jsonLine(x)).join('\n') + '\n');
    files.push(jsonl, ...(await writeStudyOutputs(run.out, results, { plots: run.plots, notRun, config: c })));
  }
  return { results, ran, skipped, notRun, files, wallTimeMs: performance.now() - t0 };
}
