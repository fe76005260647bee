/**
 * Plots (Node only): a vega-lite spec is compiled to vega, rendered headless by a vega View to
 * SVG, and the SVG is rasterised to PNG by resvg with the DejaVu fonts shipped in
 * node_modules/dejavu-fonts-ttf (system fonts are not loaded, so output is the same on every
 * machine). No SVG is written by hand.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { DlgRuntimeError } from '../core/errors.js';
import { writeFileAtomic } from './io.js';

export type VegaLiteSpec = TopLevelSpec;

export const PLOT_FONT = 'DejaVu Sans';

let fontFilesCache: string[] | undefined;

/** DejaVu Sans regular and bold, resolved from the installed dejavu-fonts-ttf package. */
export function plotFontFiles(): string[] {
  if (fontFilesCache) return fontFilesCache;
  let dir: string;
  try {
    const require = createRequire(import.meta.url);
    dir = join(dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  } catch (err) {
    throw new DlgRuntimeError(`The plot fonts (package dejavu-fonts-ttf) are not installed: ${(err as Error).message}`);
  }
  fontFilesCache = [join(dir, 'DejaVuSans.ttf'), join(dir, 'DejaVuSans-Bold.ttf')];
  return fontFilesCache;
}

/** Shared look: white background, DejaVu Sans everywhere (vega's text metrics are estimates headless). */
const baseConfig = {
  font: PLOT_FONT,
  background: 'white',
  padding: 8,
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  header: { labelFontSize: 12, titleFontSize: 13 },
  title: { fontSize: 14 },
};

export interface RenderedPlot {
  svg: string;
  png: Uint8Array;
}

/** vega-lite spec → { svg, png }. `scale` multiplies the PNG resolution (default 2). */
export async function renderVegaLite(spec: VegaLiteSpec, opts: { scale?: number } = {}): Promise<RenderedPlot> {
  const withConfig = { ...spec, config: { ...baseConfig, ...(spec as { config?: object }).config } } as TopLevelSpec;
  // vega-lite warnings (e.g. about faceted scales) are not actionable for users: keep stderr clean.
  const vgSpec = compile(withConfig, { logger: vega.logger(vega.None) }).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const resvg = new Resvg(svg, {
    font: { loadSystemFonts: false, fontFiles: plotFontFiles(), defaultFontFamily: PLOT_FONT, sansSerifFamily: PLOT_FONT },
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    background: 'white',
  });
  const png = resvg.render().asPng();
  return { svg, png: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
}

/** Renders and writes `<base>.svg` and `<base>.png` atomically; returns both paths. */
export async function writePlot(base: string, spec: VegaLiteSpec, opts: { scale?: number } = {}): Promise<string[]> {
  const { svg, png } = await renderVegaLite(spec, opts);
  writeFileAtomic(`${base}.svg`, svg);
  writeFileAtomic(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}

// ---- The convergence study's figures (study.ts writes them) ----

/** Log axes cannot show 0: relative losses are floored here (f32 losses can round to exactly 0). */
export const LOSS_FLOOR = 1e-20;

/**
 * What the study plots read of one configuration's result. study.ts's ConfigResult has all of it;
 * declaring it here keeps plots.ts below study.ts (no import cycle).
 */
export interface StudyPlotRow {
  key: string;
  dataset: string;
  B: number;
  D: number;
  K: number;
  optimizer: string;
  successRate: number;
  restartSuccessRate: number;
  identifiable: boolean;
  itersToSuccess: { q25: number; median: number; q75: number } | null;
  /** Iterations to tolerance of a typical run (quartiles over solved scenarios); plot e prefers it. */
  itersTypical?: { q25: number; median: number; q75: number } | null;
  diagnosis: { kappa: { median: number } | null; smallestEigenvalue: { median: number } };
  history: { iteration: number[]; median: number[]; q25: number[]; q75: number[] };
  scenarios: readonly { success: boolean; kappa: number | null; itersMedianSuccessful: number | null }[];
}

function shapeLabel(r: StudyPlotRow): string {
  return r.dataset === 'gaussian' ? `D=${r.D}, K=${r.K}` : `${r.dataset} (D=${r.D}, K=${r.K})`;
}

function sortedUnique<T>(xs: T[], key: (x: T) => number[]): T[] {
  const seen = new Map<string, T>();
  for (const x of xs) seen.set(JSON.stringify(x), x);
  return [...seen.values()].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
    return 0;
  });
}

const DATASET_ORDER: Record<string, number> = { gaussian: 0, iris: 1, digits: 2 };
const shapeKey = (r: StudyPlotRow) => [DATASET_ORDER[r.dataset] ?? 9, r.D, r.K];

const log2Axis = (values: number[]) => ({ type: 'log' as const, base: 2, domain: [Math.min(...values), Math.max(...values)] });

/** The five study figures as vega-lite specs, keyed by file name (without extension). */
export function studyPlotSpecs(
  results: StudyPlotRow[],
): Record<'a_loss_vs_iteration' | 'b_success_vs_batch' | 'c_phase_diagram' | 'd_flatness_vs_batch' | 'd_iterations_vs_kappa' | 'e_iterations_vs_kappa_by_optimizer', VegaLiteSpec> {
  const shapeOrder = sortedUnique(results, shapeKey).map(shapeLabel).filter((v, i, a) => a.indexOf(v) === i);
  const optimizers = [...new Set(results.map((r) => r.optimizer))];
  const batches = [...new Set(results.map((r) => r.B))].sort((a, b) => a - b);
  const floor = (v: number | null | undefined) => (v === null || v === undefined || !(v > LOSS_FLOOR) ? LOSS_FLOOR : v);

  // (a) best L_r / ‖g‖² vs iteration, one curve per B, a panel per (shape, optimizer).
  const panelOrder: string[] = [];
  for (const opt of optimizers) for (const s of shapeOrder) panelOrder.push(`${s} · ${opt}`);
  const lossRows = results.flatMap((r) =>
    r.history.iteration.map((it, i) => ({
      panel: `${shapeLabel(r)} · ${r.optimizer}`,
      B: r.B,
      iteration: it,
      median: floor(r.history.median[i]),
      q25: floor(r.history.q25[i]),
      q75: floor(r.history.q75[i]),
    })),
  );
  const yLoss = { type: 'quantitative' as const, scale: { type: 'log' as const }, axis: { format: '.0e' } };
  const colorB = { field: 'B', type: 'ordinal' as const, title: 'batch B', scale: { scheme: 'viridis' } };
  const a: VegaLiteSpec = {
    title: { text: 'Best L_r / ‖g‖² vs iteration (median over scenarios, band = quartiles)', subtitle: `floored at ${LOSS_FLOOR} for the log axis` },
    data: { values: lossRows },
    facet: { field: 'panel', type: 'nominal', sort: panelOrder, title: null },
    columns: Math.min(4, panelOrder.length),
    spec: {
      width: 190,
      height: 130,
      layer: [
        {
          mark: { type: 'area', opacity: 0.15 },
          encoding: {
            x: { field: 'iteration', type: 'quantitative' },
            y: { ...yLoss, field: 'q25', title: 'best L_r / ‖g‖²' },
            y2: { field: 'q75' },
            color: colorB,
          },
        },
        {
          mark: { type: 'line', strokeWidth: 1.8 },
          encoding: {
            x: { field: 'iteration', type: 'quantitative' },
            y: { ...yLoss, field: 'median' },
            color: colorB,
          },
        },
      ],
    },
  } as VegaLiteSpec;

  // (b) success rate and iterations to converge vs B, per (D, K).
  const perConfig = results.map((r) => ({
    B: r.B,
    shape: shapeLabel(r),
    optimizer: r.optimizer,
    successRate: r.successRate,
    restartSuccessRate: r.restartSuccessRate,
    iters: r.itersToSuccess ? Math.max(1, r.itersToSuccess.median) : null,
    identifiable: r.identifiable ? 'yes' : 'no',
    kappa: r.diagnosis.kappa?.median ?? null,
    smallest: r.diagnosis.smallestEigenvalue.median,
  }));
  const colorShape = { field: 'shape', type: 'nominal' as const, title: '(D, K)', sort: shapeOrder };
  const bAxis = { field: 'B', type: 'quantitative' as const, title: 'batch size B', scale: log2Axis(batches), axis: { values: batches, format: 'd' } };
  const b: VegaLiteSpec = {
    title: 'Success and iterations to converge vs batch size',
    vconcat: [
      {
        data: { values: perConfig },
        facet: { column: { field: 'optimizer', type: 'nominal', title: null } },
        spec: {
          width: 260,
          height: 170,
          mark: { type: 'line', point: true },
          encoding: { x: bAxis, y: { field: 'successRate', type: 'quantitative', title: 'scenarios solved (rel. err < 1e-3)', scale: { domain: [0, 1] } }, color: colorShape },
        },
      },
      {
        data: { values: perConfig.filter((r) => r.iters !== null) },
        facet: { column: { field: 'optimizer', type: 'nominal', title: null } },
        spec: {
          width: 260,
          height: 170,
          mark: { type: 'line', point: true },
          encoding: { x: bAxis, y: { field: 'iters', type: 'quantitative', title: 'iterations to first success (median)', scale: { type: 'log' } }, color: colorShape },
        },
      },
    ],
  } as VegaLiteSpec;

  // (c) phase diagram: cells (B, D) per (data set, K) and optimizer, coloured by success, identifiable outlined.
  const phaseRows = results.map((r) => ({
    B: r.B,
    D: r.D,
    column: r.dataset === 'gaussian' ? `K=${r.K}` : `${r.dataset} (K=${r.K})`,
    optimizer: r.optimizer,
    successRate: r.successRate,
    label: `${Math.round(r.successRate * 100)}%`,
    identifiable: r.identifiable,
  }));
  const columnOrder = sortedUnique(results, shapeKey)
    .map((r) => (r.dataset === 'gaussian' ? `K=${r.K}` : `${r.dataset} (K=${r.K})`))
    .filter((v, i, arr) => arr.indexOf(v) === i);
  const c: VegaLiteSpec = {
    title: { text: 'Phase diagram: scenarios solved over (B, D, K)', subtitle: 'outlined cells are identifiable by counting (B·D ≤ D·K + K); text = success rate' },
    data: { values: phaseRows },
    facet: {
      row: { field: 'optimizer', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'right' } },
      column: { field: 'column', type: 'nominal', sort: columnOrder, title: null },
    },
    spec: {
      width: { step: 34 },
      height: { step: 30 },
      encoding: {
        x: { field: 'B', type: 'ordinal', title: 'batch B', sort: 'ascending', axis: { labelAngle: 0 } },
        y: { field: 'D', type: 'ordinal', title: 'D', sort: 'descending', axis: { titleAngle: 0 } },
      },
      layer: [
        { mark: { type: 'rect' }, encoding: { color: { field: 'successRate', type: 'quantitative', title: 'solved', scale: { domain: [0, 1], scheme: 'viridis' } } } },
        { transform: [{ filter: 'datum.identifiable' }], mark: { type: 'rect', fillOpacity: 0, stroke: '#d62728', strokeWidth: 2.5 } },
        {
          mark: { type: 'text', fontSize: 9 },
          encoding: {
            text: { field: 'label', type: 'nominal' },
            color: { condition: { test: 'datum.successRate > 0.6', value: 'black' }, value: 'white' },
          },
        },
      ],
    },
  } as VegaLiteSpec;

  // (d) flatness vs B (diagnosis does not depend on the optimizer: one row per scenario set).
  const flatRows = sortedUnique(
    results.map((r) => ({ B: r.B, shape: shapeLabel(r), smallest: r.diagnosis.smallestEigenvalue.median, kappa: r.diagnosis.kappa?.median ?? null, dk: shapeKey(r) })),
    (r) => [...r.dk, r.B],
  ).map(({ dk: _dk, ...rest }) => rest);
  const d1: VegaLiteSpec = {
    title: { text: 'Flatness at the truth vs batch size (median over scenarios)', subtitle: 'Hessian of L_r at the truth = 2JᵀJ' },
    data: { values: flatRows },
    hconcat: [
      {
        width: 300,
        height: 220,
        mark: { type: 'line', point: true },
        encoding: { x: bAxis, y: { field: 'smallest', type: 'quantitative', title: 'smallest non-zero eigenvalue', scale: { type: 'log' }, axis: { format: '.0e' } }, color: colorShape },
      },
      {
        width: 300,
        height: 220,
        transform: [{ filter: 'isValid(datum.kappa)' }],
        mark: { type: 'line', point: true },
        encoding: { x: bAxis, y: { field: 'kappa', type: 'quantitative', title: 'condition number κ', scale: { type: 'log' } }, color: colorShape },
      },
    ],
  } as VegaLiteSpec;

  // (d) observed iterations vs κ, one point per solved scenario, with the κ·ln(1/ε) line.
  const scen = results.flatMap((r) =>
    r.scenarios
      .filter((s) => s.success && s.kappa !== null && s.itersMedianSuccessful !== null && s.itersMedianSuccessful !== undefined)
      .map((s) => ({ kappa: s.kappa as number, iters: Math.max(1, s.itersMedianSuccessful as number), optimizer: r.optimizer, shape: shapeLabel(r), B: r.B })),
  );
  const ks = scen.map((s) => s.kappa);
  const kmin = ks.length ? Math.min(...ks) : 1;
  const kmax = ks.length ? Math.max(...ks) : 10;
  const its = scen.map((s) => s.iters);
  const yDomain = [Math.max(1, (its.length ? Math.min(...its) : 1) / 2), (its.length ? Math.max(...its) : 10) * 2];
  // The reference line stops where it leaves the points' range (it would stretch the axis).
  const ref = Array.from({ length: 48 }, (_, i) => {
    const k = kmin * Math.pow(kmax / kmin || 1, i / 47);
    return { kappa: k, iters: Math.max(1, k * Math.log(1e3)) };
  }).filter((p) => p.iters <= yDomain[1]);
  const e: VegaLiteSpec = {
    title: { text: 'Iterations observed vs condition number', subtitle: 'one point per solved scenario (median over its successful restarts); dashed: κ·ln(1/ε), ε = 1e-3' },
    width: 420,
    height: 300,
    layer: [
      {
        data: { values: scen },
        mark: { type: 'point', filled: true, opacity: 0.5, size: 22 },
        encoding: {
          x: { field: 'kappa', type: 'quantitative', title: 'condition number κ of 2JᵀJ at the truth', scale: { type: 'log' } },
          y: { field: 'iters', type: 'quantitative', title: 'iterations to relative error < 1e-3 (median run)', scale: { type: 'log', domain: yDomain } },
          color: { field: 'optimizer', type: 'nominal', title: 'optimizer' },
          shape: { field: 'optimizer', type: 'nominal' },
        },
      },
      {
        data: { values: ref },
        mark: { type: 'line', strokeDash: [5, 4], color: 'black', clip: true },
        encoding: { x: { field: 'kappa', type: 'quantitative' }, y: { field: 'iters', type: 'quantitative' } },
      },
    ],
  } as VegaLiteSpec;

  // (e) per configuration: median iterations to tolerance (typical run) against median κ, one line per optimizer.
  const cfgRows = results
    .map((r) => {
      const q = r.itersTypical ?? r.itersToSuccess;
      const k = r.diagnosis.kappa?.median;
      return q && k !== undefined && Number.isFinite(k)
        ? { kappa: k, iters: Math.max(1, q.median), q25: Math.max(1, q.q25), q75: Math.max(1, q.q75), optimizer: r.optimizer, configuration: r.key, solved: r.successRate }
        : null;
    })
    .filter((v): v is NonNullable<typeof v> => v !== null)
    .sort((x, y) => x.kappa - y.kappa);
  const eIts = cfgRows.flatMap((r) => [r.q25, r.q75]);
  const eDomain = [Math.max(1, (eIts.length ? Math.min(...eIts) : 1) / 2), (eIts.length ? Math.max(...eIts) : 10) * 2];
  const xK = { field: 'kappa', type: 'quantitative' as const, title: 'condition number κ of 2JᵀJ at the truth (median over scenarios)', scale: { type: 'log' as const }, axis: { format: '.0e' } };
  const colorOpt = { field: 'optimizer', type: 'nominal' as const, title: 'optimizer', sort: optimizers };
  const f: VegaLiteSpec = {
    title: { text: 'Iterations to tolerance vs κ, per optimizer', subtitle: 'one point per solved configuration: median over solved scenarios of their median successful restart; bars = quartiles' },
    width: 440,
    height: 300,
    data: { values: cfgRows },
    layer: [
      {
        mark: { type: 'rule', opacity: 0.6 },
        encoding: { x: xK, y: { field: 'q25', type: 'quantitative', scale: { type: 'log', domain: eDomain } }, y2: { field: 'q75' }, color: colorOpt },
      },
      {
        mark: { type: 'line', point: { filled: true, size: 40 }, strokeWidth: 1.5 },
        encoding: {
          x: xK,
          y: { field: 'iters', type: 'quantitative', title: 'iterations to relative error < 1e-3 (median)', scale: { type: 'log', domain: eDomain } },
          color: colorOpt,
          shape: { field: 'optimizer', type: 'nominal', title: 'optimizer', sort: optimizers },
          order: { field: 'kappa', type: 'quantitative' },
          tooltip: [{ field: 'configuration' }, { field: 'iters' }, { field: 'kappa' }, { field: 'solved' }],
        },
      },
    ],
  } as VegaLiteSpec;

  return { a_loss_vs_iteration: a, b_success_vs_batch: b, c_phase_diagram: c, d_flatness_vs_batch: d1, d_iterations_vs_kappa: e, e_iterations_vs_kappa_by_optimizer: f };
}
