/**
 * Leakage curves (`dlg study --defence …`, docs/defences.md): defence strength × B × optimizer.
 * For each configuration, S seeded scenarios are defended (seed = scenario seed) and attacked with
 * `attack()`; the reconstruction is scored against the true inputs. Rows go to results.jsonl
 * (format dlg-defence-study/1, rewritten atomically after each configuration, so --resume can
 * continue), results.csv, vega-lite plots and, for image data, a PNG grid of reconstructions.
 * Node only (files).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { attack } from '../attack/attack.js';
import { loadDataset } from './data-node.js';
import { DATASET_NAMES, type DatasetName, simulateScenario } from '../core/datasets.js';
import { type Defence, DEFENCE_SYNTAX, defenceLabel, defendScenario, parseDefenceSpec } from '../core/defence.js';
import { DlgInputError, describe } from '../core/errors.js';
import { checkOutputDir, checkWritable, ensureDir, writeFileAtomic } from './io.js';
import { inferLabels, isOneHot, sameLabelingUpToOrder } from '../analysis/labels.js';
import { predictNoiseLeakage } from '../analysis/leakage.js';
import { imageSide } from '../analysis/matching.js';
import { type VegaLiteSpec, writePlot } from './plots.js';
import { STUDY_REL_ERROR } from './study.js';

export const DEFENCE_STUDY_FORMAT = 'dlg-defence-study/1';

/** One swept defence: the spec without its last parameter (`noise:gaussian:rel`), and the strengths. */
export interface DefenceAxis {
  kind: string;
  strengths: (number | null)[];
}

export interface DefenceStudyConfig {
  dataset: DatasetName[];
  batch: number[];
  defences: DefenceAxis[];
  optimizer: ('adam' | 'gd' | 'lm')[];
  scenarios: number;
  /** Restarts and iterations per optimizer. */
  restarts: { firstOrder: number; lm: number };
  iterations: { firstOrder: number; lm: number };
  seed: number;
}

export const DEFAULT_DEFENCE_STUDY: Omit<DefenceStudyConfig, 'defences'> = {
  dataset: ['digits'],
  batch: [1, 2, 4, 8],
  optimizer: ['adam', 'lm'],
  scenarios: 3,
  restarts: { firstOrder: 8, lm: 8 },
  iterations: { firstOrder: 300, lm: 30 },
  seed: 1,
};

/** `noise:gaussian:rel:1e-6,1e-4` → { kind: 'noise:gaussian:rel', strengths: [1e-6, 1e-4] }; `quantize:fp16` has no strength. */
export function parseDefenceAxis(spec: string, field = '--defence'): DefenceAxis {
  if (spec === 'quantize:fp16') return { kind: spec, strengths: [null] };
  const i = spec.lastIndexOf(':');
  if (i < 0) throw new DlgInputError(field, `a defence with a comma-separated list of strengths as its last parameter (${DEFENCE_SYNTAX})`, describe(spec));
  const kind = spec.slice(0, i);
  const parts = spec.slice(i + 1).split(',');
  const strengths = parts.map((p) => {
    parseDefenceSpec(`${kind}:${p}`, 0, field); // validates
    return Number(p);
  });
  return { kind, strengths };
}

export function defenceOf(kind: string, strength: number | null, seed: number): Defence {
  return parseDefenceSpec(strength === null ? kind : `${kind}:${strength}`, seed);
}

export interface DefenceStudyRow {
  format: typeof DEFENCE_STUDY_FORMAT;
  key: string;
  dataset: DatasetName;
  B: number;
  D: number;
  K: number;
  defence: string;
  kind: string;
  strength: number | null;
  optimizer: string;
  settings: { scenarios: number; restarts: number; iterations: number; seed: number; polish: number };
  relErr: { q25: number; median: number; q75: number };
  psnrMedian: number | null;
  successRate: number;
  /** Share of scenarios where ∇b (after the defence) leaves exactly one labelling, the true one. */
  labelsExactRate: number;
  /** Gaussian noise only: the predicted rel. err. (median over scenarios), src/analysis/leakage.ts. */
  predictedRelErr: number | null;
  /** Per scenario: rel. err., PSNR, success. */
  perScenario: { seed: number; relErr: number; psnr: number | null; success: boolean; labelsExact: boolean }[];
  wallTimeMs: number;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const t = (s.length - 1) * q;
  const lo = Math.floor(t);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (t - lo);
}

export function defenceStudyKey(dataset: string, B: number, defence: string, optimizer: string): string {
  return `${dataset}/B=${B}/${defence}/${optimizer}`;
}

export interface DefenceStudyRunOptions {
  out?: string;
  resume?: boolean;
  overwrite?: boolean;
  plots?: boolean;
  onConfigDone?: (r: DefenceStudyRow, i: number, total: number) => void;
}

export interface DefenceStudyResult {
  results: DefenceStudyRow[];
  ran: string[];
  skipped: string[];
  files: string[];
  wallTimeMs: number;
  /** Reconstructions of scenario 0 per (dataset, B, kind, optimizer, strength), for the PNG grid. */
}

interface Point {
  dataset: DatasetName;
  B: number;
  kind: string;
  strength: number | null;
  optimizer: 'adam' | 'gd' | 'lm';
  key: string;
}

function points(c: DefenceStudyConfig): Point[] {
  const out: Point[] = [];
  for (const dataset of c.dataset) for (const B of c.batch) for (const ax of c.defences) for (const strength of ax.strengths) for (const optimizer of c.optimizer) {
    const defence = strength === null ? ax.kind : `${ax.kind}:${strength}`;
    out.push({ dataset, B, kind: ax.kind, strength, optimizer, key: defenceStudyKey(dataset, B, defence, optimizer) });
  }
  return out;
}

export function validateDefenceStudyConfig(c: DefenceStudyConfig): DefenceStudyConfig {
  for (const d of c.dataset) if (!DATASET_NAMES.includes(d)) throw new DlgInputError('--dataset', `data sets among ${DATASET_NAMES.join(',')}`, describe(d));
  if (c.dataset.includes('gaussian')) throw new DlgInputError('--dataset', 'iris or digits for a defence sweep (their shapes are fixed)', 'gaussian');
  for (const o of c.optimizer) if (!['adam', 'gd', 'lm'].includes(o)) throw new DlgInputError('--optimizer', 'optimizers among adam,gd,lm for a defence sweep', describe(o));
  if (c.defences.length === 0) throw new DlgInputError('--defence', 'at least one defence', 'none');
  return c;
}

function settingsOf(c: DefenceStudyConfig, optimizer: string) {
  const lm = optimizer === 'lm';
  return { scenarios: c.scenarios, restarts: lm ? c.restarts.lm : c.restarts.firstOrder, iterations: lm ? c.iterations.lm : c.iterations.firstOrder, seed: c.seed, polish: lm ? 4 : 0 };
}

function jsonLine(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x));
}

/** Recon grids: per (dataset, B, kind, optimizer) the truth and one reconstruction per strength, scenario 0. */
type Grid = { truth: Float64Array; D: number; B: number; columns: { strength: number | null; x: Float64Array }[] };

export async function defenceStudy(device: GPUDevice | null, config: DefenceStudyConfig, run: DefenceStudyRunOptions = {}): Promise<DefenceStudyResult> {
  const c = validateDefenceStudyConfig(config);
  const t0 = performance.now();
  const pts = points(c);
  let previous: DefenceStudyRow[] = [];
  let jsonl: string | undefined;
  if (run.out !== undefined) {
    checkOutputDir('out', run.out);
    jsonl = join(run.out, 'results.jsonl');
    if (!run.resume && !run.overwrite && existsSync(jsonl)) {
      throw new DlgInputError('out', 'a folder without earlier results (--resume continues them, --overwrite replaces them)', `${run.out} (results.jsonl exists)`);
    }
    if (run.resume && existsSync(jsonl)) {
      previous = readFileSync(jsonl, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l, i) => {
        const v = JSON.parse(l) as DefenceStudyRow;
        if (v?.format !== DEFENCE_STUDY_FORMAT) throw new DlgInputError(`${jsonl} line ${i + 1}`, `a "${DEFENCE_STUDY_FORMAT}" line (a defence sweep's results)`, describe(v));
        return v;
      });
    }
    ensureDir(run.out, 'out');
    checkWritable('out', join(run.out, 'results.jsonl'));
  }
  const byKey = new Map(previous.map((r) => [r.key, r]));
  const results = [...previous];
  const ran: string[] = [];
  const skipped: string[] = [];
  const data = new Map<DatasetName, ReturnType<typeof loadDataset>>();
  const grids = new Map<string, Grid>();
  const todo = pts.filter((p) => {
    const prev = byKey.get(p.key);
    if (!prev) return true;
    if (JSON.stringify(prev.settings) !== JSON.stringify(settingsOf(c, p.optimizer))) {
      throw new DlgInputError('resume', `results in ${jsonl} made with the same settings (${JSON.stringify(settingsOf(c, p.optimizer))})`, `${p.key} with ${JSON.stringify(prev.settings)}`);
    }
    skipped.push(p.key);
    return false;
  });
  for (let i = 0; i < todo.length; i++) {
    const p = todo[i];
    const t1 = performance.now();
    if (!data.has(p.dataset)) data.set(p.dataset, loadDataset(p.dataset as 'iris' | 'digits'));
    const st = settingsOf(c, p.optimizer);
    const per: DefenceStudyRow['perScenario'] = [];
    const predicted: number[] = [];
    let D = 0;
    let K = 0;
    for (let s = 0; s < c.scenarios; s++) {
      const seed = c.seed + s;
      const sc = simulateScenario({ dataset: p.dataset, B: p.B, seed, data: data.get(p.dataset) });
      D = sc.D;
      K = sc.K;
      const def = defenceOf(p.kind, p.strength, seed);
      const d = defendScenario(sc, [def]);
      const r = await attack(device, d, { optimizer: p.optimizer, restarts: st.restarts, iterations: st.iterations, seed, polish: st.polish });
      const m = r.metrics!;
      const inf = inferLabels(d.gradient.b, p.B, K, d.reduction, 1, { oneHot: isOneHot(sc.y, p.B, K), nearest: true });
      const labelsExact = !inf.tooMany && inf.labelings.length === 1 && sameLabelingUpToOrder(inf.labelings[0], sc.y, p.B, K);
      per.push({ seed, relErr: m.relativeError, psnr: m.psnr ?? null, success: m.success, labelsExact });
      if (def.name === 'noise' && def.distribution === 'gaussian') {
        const pr = predictNoiseLeakage(sc);
        predicted.push(def.relative ? pr.relErrPerRelSigma * def.scale : pr.relErrPerSigma * def.scale);
      }
      if (s === 0 && imageSide(sc.D) !== undefined) {
        const gk = `${p.dataset}/B=${p.B}/${p.kind}/${p.optimizer}`;
        const g = grids.get(gk) ?? { truth: sc.inputs!, D: sc.D, B: p.B, columns: [] };
        // Rows in the truth's order (metrics.assignment maps reconstructed rows to true rows).
        const x = new Float64Array(p.B * sc.D);
        r.reconstruction.forEach((row, n) => x.set(row, m.assignment[n] * sc.D));
        g.columns.push({ strength: p.strength, x });
        grids.set(gk, g);
      }
    }
    const errs = per.map((q) => q.relErr);
    const ps = per.map((q) => q.psnr).filter((v): v is number => v !== null);
    const row: DefenceStudyRow = {
      format: DEFENCE_STUDY_FORMAT,
      key: p.key,
      dataset: p.dataset,
      B: p.B,
      D,
      K,
      defence: p.strength === null ? p.kind : `${p.kind}:${p.strength}`,
      kind: p.kind,
      strength: p.strength,
      optimizer: p.optimizer,
      settings: st,
      relErr: { q25: quantile(errs, 0.25), median: quantile(errs, 0.5), q75: quantile(errs, 0.75) },
      psnrMedian: ps.length > 0 ? quantile(ps, 0.5) : null,
      successRate: per.filter((q) => q.success).length / per.length,
      labelsExactRate: per.filter((q) => q.labelsExact).length / per.length,
      predictedRelErr: predicted.length > 0 ? quantile(predicted, 0.5) : null,
      perScenario: per,
      wallTimeMs: performance.now() - t1,
    };
    results.push(row);
    ran.push(p.key);
    if (jsonl) {
      writeFileAtomic(jsonl, results.map(jsonLine).join('\n') + '\n');
      writeFileAtomic(join(run.out!, 'results.csv'), defenceStudyCsv(results));
    }
    run.onConfigDone?.(row, i, todo.length);
  }
  const order = new Map(pts.map((p, i) => [p.key, i]));
  results.sort((a, b) => (order.get(a.key) ?? Infinity) - (order.get(b.key) ?? Infinity));
  const files: string[] = [];
  if (run.out !== undefined && jsonl) {
    if (results.length > 0) writeFileAtomic(jsonl, results.map(jsonLine).join('\n') + '\n');
    const csv = join(run.out, 'results.csv');
    writeFileAtomic(csv, defenceStudyCsv(results));
    const md = join(run.out, 'summary.md');
    writeFileAtomic(md, defenceStudySummary(results, performance.now() - t0));
    files.push(jsonl, csv, md);
    if (run.plots !== false && results.length > 0) {
      const specs = defenceStudyPlotSpecs(results);
      for (const [name, spec] of Object.entries(specs)) files.push(...(await writePlot(join(run.out, name), spec)));
      for (const [gk, g] of grids) {
        const path = join(run.out, `grid_${gk.replace(/[/:=]/g, '_')}.png`);
        writeFileAtomic(path, reconstructionGridPng(g));
        files.push(path);
      }
    }
  }
  return { results, ran, skipped, files, wallTimeMs: performance.now() - t0 };
}

export const DEFENCE_STUDY_CSV_COLUMNS = [
  'key', 'dataset', 'B', 'D', 'K', 'defence', 'kind', 'strength', 'optimizer', 'scenarios', 'restarts', 'iterations',
  'rel_err_q25', 'rel_err_median', 'rel_err_q75', 'psnr_median', 'success_rate', 'labels_exact_rate', 'predicted_rel_err', 'wall_time_ms',
] as const;

export function defenceStudyCsv(rows: DefenceStudyRow[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  const lines = rows.map((r) =>
    [r.key, r.dataset, r.B, r.D, r.K, r.defence, r.kind, r.strength, r.optimizer, r.settings.scenarios, r.settings.restarts, r.settings.iterations,
      r.relErr.q25, r.relErr.median, r.relErr.q75, r.psnrMedian, r.successRate, r.labelsExactRate, r.predictedRelErr, Math.round(r.wallTimeMs)].map(cell).join(','),
  );
  return [DEFENCE_STUDY_CSV_COLUMNS.join(','), ...lines].join('\n') + '\n';
}

/** The weakest strength at which no scenario is recovered (success 0), per (kind, B, optimizer): generated sentences. */
export function defenceStudySummary(rows: DefenceStudyRow[], wallTimeMs?: number): string {
  const lines = ['# Defence sweep', ''];
  if (wallTimeMs !== undefined) lines.push(`${rows.length} configurations; this run took ${(wallTimeMs / 1000).toFixed(1)} s.`, '');
  lines.push('| defence | B | optimizer | median rel. err. | success | predicted (Gaussian noise) |', '|---|---|---|---|---|---|');
  for (const r of rows) {
    lines.push(`| ${r.defence} | ${r.B} | ${r.optimizer} | ${r.relErr.median.toExponential(2)} | ${(100 * r.successRate).toFixed(0)}% | ${r.predictedRelErr === null ? '' : r.predictedRelErr.toExponential(2)} |`);
  }
  lines.push('', '## Where each defence stops the attack', '');
  const groups = new Map<string, DefenceStudyRow[]>();
  for (const r of rows) {
    const g = `${r.kind}|${r.optimizer}`;
    groups.set(g, [...(groups.get(g) ?? []), r]);
  }
  for (const [g, rs] of groups) {
    const [kind, opt] = g.split('|');
    const byB = new Map<number, DefenceStudyRow[]>();
    for (const r of rs) byB.set(r.B, [...(byB.get(r.B) ?? []), r]);
    const parts: string[] = [];
    for (const [B, rb] of [...byB].sort((a, b) => a[0] - b[0])) {
      const ordered = [...rb].sort((a, b) => strengthOrder(kind, a.strength) - strengthOrder(kind, b.strength));
      const stop = ordered.find((r) => r.successRate === 0);
      const worst = ordered[ordered.length - 1];
      parts.push(
        stop
          ? `B=${B}: no success from ${stop.defence} on (median rel. err. ${stop.relErr.median.toExponential(1)})`
          : `B=${B}: still recovered at ${worst.defence} (${(100 * worst.successRate).toFixed(0)}% of scenarios, median rel. err. ${worst.relErr.median.toExponential(1)})`,
      );
    }
    lines.push(`- **${kind}**, ${opt}: ${parts.join('; ')}.`);
  }
  return lines.join('\n') + '\n';
}

/** Stronger defence = larger value, except quantize:bits, where fewer bits are stronger. */
function strengthOrder(kind: string, s: number | null): number {
  if (s === null) return 0;
  return kind === 'quantize:bits' ? -s : s;
}

/** Per defence kind: median rel. err. and success against strength, one line per B and optimizer (predicted dashed for Gaussian noise). */
export function defenceStudyPlotSpecs(rows: DefenceStudyRow[]): Record<string, VegaLiteSpec> {
  const kinds = [...new Set(rows.map((r) => r.kind))];
  const values = rows.map((r) => ({
    kind: r.kind,
    strength: r.strength ?? 0,
    B: `B=${r.B}`,
    optimizer: r.optimizer,
    series: `B=${r.B}, ${r.optimizer}`,
    relErr: Math.max(r.relErr.median, 1e-17),
    q25: Math.max(r.relErr.q25, 1e-17),
    q75: Math.max(r.relErr.q75, 1e-17),
    success: r.successRate,
    predicted: r.predictedRelErr,
  }));
  const xScale = (kind: string) => {
    const s = rows.filter((r) => r.kind === kind && r.strength !== null).map((r) => r.strength as number);
    const pos = s.filter((v) => v > 0);
    const ratio = pos.length > 1 ? Math.max(...pos) / Math.min(...pos) : 1;
    return ratio >= 100 ? { type: 'log' as const } : { type: 'linear' as const };
  };
  const chart = (kind: string, y: 'relErr' | 'success') => {
    // A log axis cannot show strength 0 (the undefended baseline): it stays in the CSV, not in that panel.
    const logX = xScale(kind).type === 'log';
    const data = values.filter((v) => v.kind === kind && (!logX || v.strength > 0));
    const x = { field: 'strength', type: 'quantitative' as const, title: `${kind} strength`, scale: xScale(kind) };
    const layers: object[] = [
      {
        mark: { type: 'line', point: true },
        encoding: {
          x,
          y: y === 'relErr'
            ? { field: 'relErr', type: 'quantitative', title: 'median rel. err.', scale: { type: 'log' } }
            : { field: 'success', type: 'quantitative', title: 'scenarios recovered', scale: { domain: [0, 1] } },
          color: { field: 'B', type: 'nominal', title: 'batch' },
          strokeDash: { field: 'optimizer', type: 'nominal', title: 'attack' },
        },
      },
    ];
    if (y === 'relErr' && data.some((v) => v.predicted !== null)) {
      layers.push({
        transform: [{ filter: 'datum.predicted !== null && datum.predicted > 0 && datum.optimizer === "lm"' }],
        mark: { type: 'line', color: 'black', strokeDash: [2, 2], opacity: 0.7 },
        encoding: { x, y: { field: 'predicted', type: 'quantitative' }, detail: { field: 'B', type: 'nominal' } },
      });
    }
    return { title: kind, width: 220, height: 180, data: { values: data }, layer: layers };
  };
  const spec = (y: 'relErr' | 'success', title: string): VegaLiteSpec =>
    ({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title,
      hconcat: kinds.map((k) => chart(k, y)),
      resolve: { scale: { color: 'shared', strokeDash: 'shared' } },
    }) as unknown as VegaLiteSpec;
  return {
    f_relerr_vs_strength: spec('relErr', 'Median rel. err. against defence strength (dotted black: predicted from J, Gaussian noise)'),
    g_success_vs_strength: spec('success', `Share of scenarios recovered (rel. err. < ${STUDY_REL_ERROR}) against defence strength`),
  };
}

/** A PNG grid: one row per example, the truth then one column per strength (grey levels on the truth's range). */
export function reconstructionGridPng(g: Grid, scale = 6, gap = 4): Buffer {
  const side = imageSide(g.D)!;
  const cols = 1 + g.columns.length;
  const cell = side * scale;
  const width = gap + cols * (cell + gap);
  const height = gap + g.B * (cell + gap);
  const png = new PNG({ width, height, colorType: 2 });
  png.data.fill(200);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of g.truth) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (!(hi > lo)) hi = lo + 1;
  const draw = (img: ArrayLike<number>, n: number, col: number) => {
    for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) {
      const v = img[n * g.D + r * side + c];
      const t = Number.isFinite(v) ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : -1;
      const grey = Math.round(255 * (1 - t));
      const rgb = t < 0 ? [255, 0, 0] : [grey, grey, grey];
      for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) {
        const p = 4 * ((gap + n * (cell + gap) + r * scale + dy) * width + gap + col * (cell + gap) + c * scale + dx);
        png.data[p] = rgb[0];
        png.data[p + 1] = rgb[1];
        png.data[p + 2] = rgb[2];
        png.data[p + 3] = 255;
      }
    }
  };
  for (let n = 0; n < g.B; n++) {
    draw(g.truth, n, 0);
    g.columns.forEach((col, j) => draw(col.x, n, j + 1));
  }
  return PNG.sync.write(png, { colorType: 2 });
}

export { defenceLabel };
