/**
 * Victim scenarios from the shipped data sets (or Gaussian noise). Browser-safe: the table
 * itself comes from the caller — src/node/data-node.ts in Node, a fetch in the browser demo —
 * and is parsed here by parseDatasetCsv.
 *
 * Draw order from Rng(seed), fixed so a seed names the same scenario everywhere:
 * W (D·K normals, row-major), then the batch (gaussian: B·D normals then B·K coin flips;
 * iris/digits: B distinct row indices), then b (K normals, only when biasScale > 0).
 */
import { DlgInputError, describe, requireFiniteNumber, requireOneOf, requirePositiveInt } from './errors.js';
import type { Layer, Reduction } from './model.js';
import { Rng } from './rng.js';
import { type Scenario, makeScenario } from './scenario.js';

export type DatasetName = 'gaussian' | 'iris' | 'digits';
export const DATASET_NAMES: readonly DatasetName[] = ['gaussian', 'iris', 'digits'];

/** A parsed data table: rows × cols features (raw values as in the file) and integer class labels. */
export interface DatasetRows {
  features: Float64Array; // rows×cols, features[r*cols + c]
  labels: Int32Array; // rows, each in [0, classes)
  cols: number;
  classes: number;
}

/** Fixed shapes and preprocessing of the real data sets; gaussian has none. */
export const DATASET_INFO: Record<'iris' | 'digits', { file: string; D: number; K: number; scale: number; gzip: boolean }> = {
  iris: { file: 'iris.csv', D: 4, K: 3, scale: 1, gzip: false },
  digits: { file: 'digits.csv.gz', D: 64, K: 10, scale: 1 / 16, gzip: true },
};

/**
 * Parses a shipped CSV (already decompressed): numeric lines of `cols` features then the class.
 * iris.csv starts with a header line `rows,cols,names...`; digits.csv has none.
 */
export function parseDatasetCsv(name: 'iris' | 'digits', text: string): DatasetRows {
  const info = DATASET_INFO[name];
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  // The header is `rows,cols,class names...`; line numbers in errors count it.
  const header = lines.length > 0 && /^\d+,\d+(,[A-Za-z][\w -]*)+$/.test(lines[0].trim()) ? 1 : 0;
  if (header) lines.shift();
  const cols = info.D;
  const features = new Float64Array(lines.length * cols);
  const labels = new Int32Array(lines.length);
  for (let r = 0; r < lines.length; r++) {
    const cells = lines[r].split(',');
    if (cells.length !== cols + 1) {
      throw new DlgInputError(`${info.file} line ${r + 1 + header}`, `${cols + 1} comma-separated values`, `${cells.length}`);
    }
    for (let c = 0; c < cols; c++) {
      const v = Number(cells[c]);
      if (cells[c].trim() === '' || !Number.isFinite(v)) throw new DlgInputError(`${info.file} line ${r + 1 + header} column ${c + 1}`, 'a finite number', describe(cells[c]));
      features[r * cols + c] = v;
    }
    const label = Number(cells[cols]);
    if (!Number.isInteger(label) || label < 0 || label >= info.K) {
      throw new DlgInputError(`${info.file} line ${r + 1 + header} label`, `an integer class in [0, ${info.K - 1}]`, describe(cells[cols]));
    }
    labels[r] = label;
  }
  if (lines.length === 0) throw new DlgInputError(info.file, 'at least one data row', 'none');
  return { features, labels, cols, classes: info.K };
}

export interface SimulateOptions {
  dataset: DatasetName;
  /** Batch size. */
  B: number;
  /** Features; free for gaussian (default 1), fixed for iris (4) and digits (64). */
  D?: number;
  /** Outputs; free for gaussian (default 1), fixed for iris (3) and digits (10). */
  K?: number;
  seed: number;
  reduction?: Reduction;
  /** b ~ N(0, biasScale²) when > 0; b = 0 otherwise. */
  biasScale?: number;
  /** The data table for iris/digits (loadDataset in Node, parseDatasetCsv in browsers). */
  data?: DatasetRows;
}

/** Makes a victim scenario (with its true inputs and shared gradient). Throws DlgInputError naming the field. */
export function simulateScenario(opts: SimulateOptions): Scenario {
  const dataset = requireOneOf('dataset', opts.dataset, DATASET_NAMES);
  const B = requirePositiveInt('B', opts.B);
  const seed = opts.seed;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new DlgInputError('seed', 'an integer in [0, 4294967295]', describe(seed));
  }
  const reduction = opts.reduction === undefined ? 'mean' : requireOneOf('reduction', opts.reduction, ['mean', 'sum'] as const);
  const biasScale = opts.biasScale === undefined ? 0 : requireFiniteNumber('biasScale', opts.biasScale, 0);

  let D: number;
  let K: number;
  if (dataset === 'gaussian') {
    D = opts.D === undefined ? 1 : requirePositiveInt('D', opts.D);
    K = opts.K === undefined ? 1 : requirePositiveInt('K', opts.K);
  } else {
    const info = DATASET_INFO[dataset];
    if (opts.D !== undefined && opts.D !== info.D) throw new DlgInputError('D', `${info.D} (${dataset} has ${info.D} features) or nothing`, describe(opts.D));
    if (opts.K !== undefined && opts.K !== info.K) throw new DlgInputError('K', `${info.K} (${dataset} has ${info.K} classes) or nothing`, describe(opts.K));
    D = info.D;
    K = info.K;
  }

  const rng = new Rng(seed);
  const sd = 1 / Math.sqrt(D);
  const W = new Float64Array(D * K);
  for (let i = 0; i < W.length; i++) W[i] = sd * rng.normal();

  const x = new Float64Array(B * D);
  const y = new Float64Array(B * K);
  if (dataset === 'gaussian') {
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    for (let i = 0; i < y.length; i++) y[i] = rng.uniform() < 0.5 ? 0 : 1;
  } else {
    const info = DATASET_INFO[dataset];
    const data = opts.data;
    if (!data) throw new DlgInputError('data', `the ${dataset} table (loadDataset('${dataset}') in Node)`, 'nothing (missing)');
    const rows = data.labels.length;
    if (data.cols !== D || data.classes !== K || data.features.length !== rows * D) {
      throw new DlgInputError('data', `a ${dataset} table with ${D} features and ${K} classes`, `${rows}×${data.cols} features, ${data.classes} classes`);
    }
    if (B > rows) throw new DlgInputError('B', `at most ${rows} (the rows in ${dataset})`, String(B));
    // Partial Fisher–Yates: B distinct rows.
    const idx = Int32Array.from({ length: rows }, (_, i) => i);
    for (let n = 0; n < B; n++) {
      const j = n + rng.int(rows - n);
      const t = idx[n];
      idx[n] = idx[j];
      idx[j] = t;
      const r = idx[n];
      const label = data.labels[r];
      if (!(label >= 0 && label < K)) throw new DlgInputError(`data.labels[${r}]`, `a class in [0, ${K - 1}]`, String(label));
      for (let d = 0; d < D; d++) x[n * D + d] = data.features[r * D + d] * info.scale;
      y[n * K + label] = 1;
    }
  }

  const b = new Float64Array(K);
  if (biasScale > 0) for (let k = 0; k < K; k++) b[k] = biasScale * rng.normal();

  const layer: Layer = { B, D, K, W, b, y, reduction };
  return makeScenario(layer, x);
}

/** The embedded default (used by `npm start`): B=2, D=1, K=1 gaussian, seed 1. */
export function defaultScenario(): Scenario {
  return simulateScenario({ dataset: 'gaussian', B: 2, D: 1, K: 1, seed: 1 });
}

/** Σ_n y_n: per output, how many rows have label 1 (class counts for one-hot targets). */
export function labelCounts(s: Pick<Scenario, 'B' | 'K' | 'y'>): number[] {
  const counts = new Array<number>(s.K).fill(0);
  for (let n = 0; n < s.B; n++) for (let k = 0; k < s.K; k++) counts[k] += s.y[n * s.K + k];
  return counts;
}
