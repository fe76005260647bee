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
import { simulateScenario } from '../core/datasets.js';
import { diagnose } from '../analysis/diagnose.js';
import { type EngineHandle, type EngineOptions, type EngineStatus, createAttackEngine, createCpuEngine } from '../attack/engine.js';
import { DlgInputError, describe } from '../core/errors.js';
import { lmPlacement } from '../attack/attack.js';
import { checkOutputDir, checkWritable, ensureDir, writeFileAtomic } from './io.js';
import { gradientNormSq } from '../core/model.js';
import { studyPlotSpecs, writePlot } from './plots.js';
import { Rng } from '../core/rng.js';
import { runLoop } from '../attack/run-loop.js';
import { analyseScenario } from '../analysis/reduce.js';
import { type Scenario, makeScenario } from '../core/scenario.js';
import { studySummaryMarkdown } from '../study/report.js';
import { STUDY_FORMAT, STUDY_REL_ERROR, type StudyConfig, type StudyPoint, expandStudy, validateStudyConfig } from '../study/config.js';
import {
  type ConfigResult, type ConfigurationPlan, type NotRun, type StudyProblem, type StudyProgress,
  STUDY_PLOT_NAMES, jsonLine, quantile, sameSettings, settingsOf, studyResultsCsv, summarise,
} from '../study/results.js';

export * from '../study/config.js';
export * from '../study/results.js';

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
