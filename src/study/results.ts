/**
 * The convergence study's results (browser-safe): the record of one configuration (a results.jsonl line),
 * how the restarts of a run are scored and summarised into it, and the CSV view of the records.
 * Measurement rules: src/node/study.ts and docs/study.md.
 */
import type { diagnose } from '../analysis/diagnose.js';
import { reconstructionMetrics } from '../analysis/matching.js';
import type { Regime, SubspaceReduction } from '../analysis/reduce.js';
import type { Optimizer } from '../attack/engine-cpu.js';
import type { Scenario } from '../core/scenario.js';
import { EXACT_REL_LOSS, STUDY_FORMAT, STUDY_REL_ERROR, type StudyConfig, type StudyPoint, type StudyReduce } from './config.js';

export interface StudyQuartiles {
  q25: number;
  median: number;
  q75: number;
}

/** Linear-interpolation quantile of a sorted copy; null for an empty list. */
export function quantile(xs: ArrayLike<number>, q: number): number | null {
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

export function settingsOf(c: StudyConfig, opt: Optimizer): ConfigResult['settings'] {
  return { scenarios: c.scenarios, restarts: c.restarts, iterations: c.iterations, seed: c.seed, lr: c.lr[opt], initScale: c.initScale, reduce: c.reduce };
}

export function sameSettings(a: ConfigResult['settings'], b: ConfigResult['settings']): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
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

export interface ConfigurationPlan {
  scenarios: Scenario[];
  problems: StudyProblem[];
  /** Why the configuration cannot run (then nothing runs), e.g. beyond lm's caps. */
  skip?: string;
}

/** One configuration's record, from the scored restarts of its engine runs and the scenarios' diagnoses. */
export function summarise(
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
export function jsonLine(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x));
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
