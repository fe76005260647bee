/**
 * The convergence study's report (summary.md): iterations to tolerance against κ per optimizer, as a
 * table and as sentences generated from the results of this run (no number is written by hand).
 */
import type { StudyConfig } from './config.js';
import type { ConfigResult, NotRun } from './results.js';

/** One optimizer's measured trend of iterations to tolerance against κ. */
export interface KappaTrend {
  optimizer: string;
  /** Configurations with at least one solved scenario and a finite κ, sorted by κ (median). */
  points: { key: string; kappa: number; iters: number; restartSuccess: number; iterationCap: number }[];
  /** Least-squares slope of log(iterations) on log(κ) over the solved scenarios (null: < 2 points or no κ spread). */
  slope: number | null;
  scenarios: number;
  /** 'grow' | 'fall' | 'flat' from the configurations' medians (see trendOf), 'none' without points. */
  trend: 'grow' | 'fall' | 'flat' | 'none';
  minIters: number | null;
  maxIters: number | null;
}

/** Medians count as flat when they span at most this factor, or at most FLAT_SPREAD iterations. */
export const FLAT_FACTOR = 3;
export const FLAT_SPREAD = 10;

const typicalIters = (r: ConfigResult): number | null => r.itersTypical?.median ?? r.itersToSuccess?.median ?? null;

/**
 * `shapes`: only these configurations (data set/B/D/K), e.g. those every optimizer solved, so that the
 * optimizers' trends are measured over the same problems.
 */
export function kappaTrend(results: ConfigResult[], optimizer: string, shapes?: Set<string>): KappaTrend {
  const rs = results.filter((r) => r.optimizer === optimizer && (!shapes || shapes.has(shapeOf(r.key))));
  const points = rs
    .filter((r) => typicalIters(r) !== null && r.diagnosis.kappa && Number.isFinite(r.diagnosis.kappa.median))
    .map((r) => ({ key: r.key, kappa: r.diagnosis.kappa!.median, iters: typicalIters(r)!, restartSuccess: r.restartSuccessRate, iterationCap: r.settings.iterations }))
    .sort((a, b) => a.kappa - b.kappa || a.iters - b.iters);
  const xy = rs.flatMap((r) =>
    r.scenarios
      .filter((s) => s.success && s.kappa !== null && s.kappa > 0 && s.itersMedianSuccessful !== null)
      .map((s) => [Math.log(s.kappa!), Math.log(Math.max(1, s.itersMedianSuccessful!))]),
  );
  let slope: number | null = null;
  if (xy.length >= 2) {
    const mx = xy.reduce((a, p) => a + p[0], 0) / xy.length;
    const my = xy.reduce((a, p) => a + p[1], 0) / xy.length;
    let sxx = 0;
    let sxy = 0;
    for (const [x, y] of xy) {
      sxx += (x - mx) ** 2;
      sxy += (x - mx) * (y - my);
    }
    if (sxx > 1e-12 * xy.length) slope = sxy / sxx;
  }
  const its = points.map((p) => p.iters);
  const minIters = its.length ? Math.min(...its) : null;
  const maxIters = its.length ? Math.max(...its) : null;
  let trend: KappaTrend['trend'] = 'none';
  if (points.length === 1 || (minIters !== null && (maxIters! <= FLAT_FACTOR * Math.max(1, minIters) || maxIters! - minIters <= FLAT_SPREAD))) {
    trend = points.length ? 'flat' : 'none';
  }
  else if (points.length > 1) trend = points[points.length - 1].iters >= points[0].iters ? 'grow' : 'fall';
  return { optimizer, points, slope, scenarios: xy.length, trend, minIters, maxIters };
}

function num(v: number): string {
  if (!Number.isFinite(v)) return '∞';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  if (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-2) return v.toExponential(1);
  return v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

const shapeOf = (key: string) => key.split('/').slice(0, 4).join('/');

/** One sentence per optimizer: how its median iterations to tolerance move with κ. */
export function trendSentence(t: KappaTrend): string {
  if (t.trend === 'none') return `${t.optimizer} solved no configuration, so it has no iteration count.`;
  const first = t.points[0];
  const last = t.points[t.points.length - 1];
  const fit = t.slope === null ? '' : ` (a fit over its ${t.scenarios} solved scenarios gives iterations ∝ κ^${t.slope.toFixed(2)})`;
  // Restarts short of tolerance at the cap are not in the medians (censored): say how many there were.
  const cap =
    last.restartSuccess < first.restartSuccess
      ? `; the restarts reaching tolerance within the ${last.iterationCap}-iteration cap drop from ${pct(first.restartSuccess)} to ${pct(last.restartSuccess)}, so the slowest runs are not in these medians`
      : '';
  if (t.trend === 'flat') {
    const span = t.points.length === 1 ? `at κ ≈ ${num(first.kappa)} (${shapeOf(first.key)})` : `while κ goes from ${num(first.kappa)} to ${num(last.kappa)}`;
    const range = t.minIters === t.maxIters ? `${t.minIters}` : `${num(t.minIters!)}–${num(t.maxIters!)}`;
    return `${t.optimizer}'s median iterations to tolerance stay at ${range} ${span}${fit}${cap}.`;
  }
  const verb = t.trend === 'grow' ? 'grow' : 'fall';
  return (
    `${t.optimizer}'s median iterations to tolerance ${verb} from ${num(first.iters)} at κ ≈ ${num(first.kappa)} (${shapeOf(first.key)}) ` +
    `to ${num(last.iters)} at κ ≈ ${num(last.kappa)} (${shapeOf(last.key)}), ranging ${num(t.minIters!)}–${num(t.maxIters!)} over ${t.points.length} solved configurations${fit}${cap}.`
  );
}

/** Which configurations stay unsolved, split by identifiability: the study's third claim, as measured. */
export function unsolvedSentences(results: ConfigResult[]): string[] {
  const out: string[] = [];
  const nonId = results.filter((r) => !r.identifiable);
  if (nonId.length) {
    const solved = nonId.filter((r) => r.successRate > 0);
    const shapes = new Set(nonId.map((r) => shapeOf(r.key))).size;
    out.push(
      solved.length === 0
        ? `All ${nonId.length} non-identifiable runs (${shapes} configurations with B·D > D·K + K) stay unsolved: no scenario recovered by any optimizer.`
        : `Of ${nonId.length} non-identifiable runs (B·D > D·K + K), ${solved.length} recovered some scenario anyway: ${solved.map((r) => `${r.key} ${pct(r.successRate)}`).join(', ')}.`,
    );
  }
  const id = results.filter((r) => r.identifiable);
  const byOpt = new Map<string, ConfigResult[]>();
  for (const r of id) byOpt.set(r.optimizer, [...(byOpt.get(r.optimizer) ?? []), r]);
  for (const [opt, rs] of byOpt) {
    const short = rs.filter((r) => r.successRate < 1);
    out.push(
      short.length === 0
        ? `${opt} solved every scenario of all ${rs.length} identifiable configurations.`
        : `${opt} left identifiable scenarios unsolved in ${short.length} of ${rs.length} configurations: ${short.map((r) => `${shapeOf(r.key)} (${pct(r.successRate)} solved)`).join(', ')}.`,
    );
  }
  return out;
}

const pct = (v: number) => `${Math.round(v * 100)}%`;

/** Configurations (data set/B/D/K) that every optimizer of the results solved in at least one scenario. */
export function sharedSolvedShapes(results: ConfigResult[]): Set<string> {
  const optimizers = [...new Set(results.map((r) => r.optimizer))];
  const shapes = new Set(results.map((r) => shapeOf(r.key)));
  return new Set(
    [...shapes].filter((sh) => optimizers.every((o) => results.some((r) => r.optimizer === o && shapeOf(r.key) === sh && r.successRate > 0 && typicalIters(r) !== null))),
  );
}

/**
 * The measured sentences: per optimizer, its trend over the configurations every optimizer solved
 * (the same problems for all); then what only some optimizers solved; then the unsolved configurations.
 */
export function studyFindings(results: ConfigResult[]): string[] {
  const optimizers = [...new Set(results.map((r) => r.optimizer))];
  const shared = sharedSolvedShapes(results);
  const out: string[] = [];
  if (optimizers.length > 1) {
    out.push(`Over the ${shared.size} configurations every optimizer solved (in at least one scenario):`);
  }
  out.push(...optimizers.map((o) => trendSentence(kappaTrend(results, o, optimizers.length > 1 ? shared : undefined))));
  if (optimizers.length > 1) {
    for (const sh of new Set(results.map((r) => shapeOf(r.key)))) {
      if (shared.has(sh)) continue;
      const rs = results.filter((r) => shapeOf(r.key) === sh && r.successRate > 0);
      if (rs.length === 0) continue;
      const k = rs[0].diagnosis.kappa ? num(rs[0].diagnosis.kappa.median) : '∞';
      const others = results.filter((r) => shapeOf(r.key) === sh && r.successRate === 0).map((r) => r.optimizer);
      out.push(
        `Solved by ${rs.map((r) => r.optimizer).join(' and ')} only: ${sh} (κ ≈ ${k}), ${rs
          .map((r) => `${r.optimizer} ${pct(r.successRate)} of scenarios in ${num(typicalIters(r)!)} iterations`)
          .join(', ')}; ${others.join(' and ')} solved none.`,
      );
    }
  }
  return [...out, ...unsolvedSentences(results)];
}

/** The table: one row per shape, per optimizer the solved share and the median [quartiles] iterations to tolerance. */
export function studyMarkdownTable(results: ConfigResult[]): string {
  const optimizers = [...new Set(results.map((r) => r.optimizer))];
  const shapes: string[] = [];
  for (const r of results) if (!shapes.includes(shapeOf(r.key))) shapes.push(shapeOf(r.key));
  const head = ['configuration', 'regime', 'unknowns', 'identifiable', 'κ (median)', ...optimizers.map((o) => `${o}: solved · iterations median [q25–q75] · restarts at tol`)];
  const rows = shapes.map((sh) => {
    const rs = results.filter((r) => shapeOf(r.key) === sh);
    const r0 = rs[0];
    const cells = optimizers.map((o) => {
      const r = rs.find((x) => x.optimizer === o);
      if (!r) return '—';
      const q = r.itersTypical ?? r.itersToSuccess;
      return q ? `${pct(r.successRate)} · ${num(q.median)} [${num(q.q25)}–${num(q.q75)}] · ${pct(r.restartSuccessRate)}` : `${pct(r.successRate)} · — · ${pct(r.restartSuccessRate)}`;
    });
    const kappa = r0.diagnosis.kappa ? num(r0.diagnosis.kappa.median) : '∞';
    const unknowns = r0.problem ? `${r0.problem.unknowns}${r0.problem.reducedScenarios ? ' (reduced)' : ''}` : String(r0.B * r0.D);
    return [sh, r0.problem?.regime ?? '—', unknowns, r0.identifiable ? 'yes' : 'no', kappa, ...cells];
  });
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((c) => `| ${c.join(' | ')} |`)].join('\n');
}

/** summary.md of a study folder (and the study section of the demo's summary, with `heading` level 2). */
export function studySummaryMarkdown(
  results: ConfigResult[],
  opts: { notRun?: NotRun[]; config?: StudyConfig; plots?: string[]; level?: number; title?: string } = {},
): string {
  const h = '#'.repeat(opts.level ?? 1);
  const lines: string[] = [`${h} ${opts.title ?? 'Convergence study: iterations to tolerance against κ, per optimizer'}`, ''];
  if (results.length === 0) {
    lines.push('No configuration ran.', '');
  } else {
    const c = opts.config;
    const backends = [...new Set(results.map((r) => `${r.optimizer}: ${r.backend}`))].join('; ');
    const wall = results.reduce((a, r) => a + r.wallTimeMs + r.diagnoseMs, 0);
    if (c) {
      lines.push(
        `${results.length} runs: ${c.scenarios} scenarios × ${c.restarts} restarts per configuration, at most ${c.iterations} iterations per restart; ` +
          `engines ${backends}; ${(wall / 1000).toFixed(1)} s of engine and diagnosis time.`,
        '',
        c.reduce === 'auto'
          ? 'Every optimizer solves the problem `dlg attack` would solve: the subspace-reduced one (D → B unknowns per row) where the reduction holds, else the raw one, so the methods are compared on the same problem, and κ is that problem\'s (2JᵀJ at the truth).'
          : 'Every optimizer solves the raw problem (`reduce: off`, the seed\'s setting), and κ is that of the raw problem (2JᵀJ at the truth).',
        '',
      );
    }
    lines.push(
      `An iteration is one step of the optimizer (an lm iteration solves one damped linear system). Iterations to tolerance: the median over a scenario's successful restarts of the iteration at which L_r fell below tol_s (relative error < 10⁻³ to first order), then the median [quartiles] over the solved scenarios. "Solved": scenarios with a restart within relative error 10⁻³; "restarts at tol": the share of all restarts that got there within the cap. Medians count as staying flat when they span at most ${FLAT_FACTOR}× or ${FLAT_SPREAD} iterations.`,
      '',
      `${h}# Measured`,
      '',
      ...studyFindings(results).map((s) => `- ${s}`),
      '',
      `${h}# Iterations to tolerance against κ`,
      '',
      studyMarkdownTable(results),
      '',
    );
    for (const p of opts.plots ?? []) lines.push(`![${p}](${p})`, '');
  }
  if (opts.notRun?.length) {
    lines.push(`${h}# Not run`, '', ...opts.notRun.map((n) => `- ${n.key}: ${n.reason}.`), '');
  }
  return lines.join('\n');
}
