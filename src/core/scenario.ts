/**
 * The scenario file (`dlg-scenario/1`): what the attacker knows (layer, labels, shared gradient)
 * and, optionally, the victim's true inputs for metrics. Browser-safe: no file I/O here.
 */
import { DlgInputError, describe, requireOneOf } from './errors.js';
import { type Defence, applyDefences, defenceToJson, parseDefenceList } from './defence.js';
import { type Gradient, type Layer, type Reduction, victimGradient } from './model.js';

export const SCENARIO_FORMAT = 'dlg-scenario/1';

export interface Scenario extends Layer {
  W: Float64Array; // D×K, W[d*K+k]
  b: Float64Array; // K
  y: Float64Array; // B×K labels in [0,1]
  gradient: Gradient; // the shared (true) gradient
  inputs?: Float64Array; // B×D ground truth, when known
  /** The defences applied to `gradient`, in order (src/core/defence.ts); absent for an undefended gradient. */
  defence?: Defence[];
}

/** Shape of the JSON file, as users write it by hand (e.g. from PyTorch). */
export interface ScenarioJson {
  format: typeof SCENARIO_FORMAT;
  reduction: Reduction;
  weights: number[][];
  bias: number[];
  labels: number[][];
  gradient?: { weights: number[][]; bias: number[] };
  inputs?: number[][];
  defence?: Defence[];
}

/** Checks v is a list of finite numbers of the given length; returns it as Float64Array. */
export function parseVector(field: string, v: unknown, len?: number): Float64Array {
  if (!Array.isArray(v)) throw new DlgInputError(field, len === undefined ? 'an array of numbers' : `an array of ${len} numbers`, describe(v));
  if (len !== undefined && v.length !== len) throw new DlgInputError(field, `length ${len}`, `length ${v.length}`);
  if (v.length === 0) throw new DlgInputError(field, 'a non-empty array', 'an empty array');
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new DlgInputError(`${field}[${i}]`, 'a finite number', describe(x));
    out[i] = x;
  }
  return out;
}

/** Checks v is a rectangular rows×cols matrix of finite numbers; returns it flat, row-major. */
export function parseMatrix(field: string, v: unknown, rows?: number, cols?: number): { data: Float64Array; rows: number; cols: number } {
  const shape = `${rows ?? 'R'}×${cols ?? 'C'}`;
  if (!Array.isArray(v)) throw new DlgInputError(field, `a ${shape} array of arrays`, describe(v));
  if (v.length === 0) throw new DlgInputError(field, `a non-empty ${shape} array`, 'an empty array');
  if (rows !== undefined && v.length !== rows) throw new DlgInputError(field, `${rows} rows (${shape})`, `${v.length} rows`);
  const first = v[0];
  if (!Array.isArray(first)) throw new DlgInputError(`${field}[0]`, 'an array of numbers (a row)', describe(first));
  const c = cols ?? first.length;
  const data = new Float64Array(v.length * c);
  for (let r = 0; r < v.length; r++) {
    const row = v[r];
    if (!Array.isArray(row)) throw new DlgInputError(`${field}[${r}]`, `a row of ${c} numbers`, describe(row));
    if (row.length !== c) {
      throw new DlgInputError(`${field}[${r}]`, `a row of ${c} numbers (${v.length}×${c}; ragged rows are not allowed)`, `${row.length} numbers`);
    }
    data.set(parseVector(`${field}[${r}]`, row, c), r * c);
  }
  return { data, rows: v.length, cols: c };
}

/** Validates a parsed JSON value as a scenario. Throws DlgInputError naming the field. */
/** The keys a dlg-scenario/1 object may have. */
export const SCENARIO_KEYS = ['format', 'reduction', 'weights', 'bias', 'labels', 'gradient', 'inputs', 'defence'] as const;

/** Keys of a scenario object that dlg does not read (e.g. a misspelled "input"). */
export function unknownScenarioKeys(json: unknown): string[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return [];
  return Object.keys(json).filter((k) => !(SCENARIO_KEYS as readonly string[]).includes(k));
}

export function parseScenario(json: unknown): Scenario {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new DlgInputError('scenario', 'a JSON object', describe(json));
  }
  const o = json as Record<string, unknown>;
  if (o.format !== SCENARIO_FORMAT) throw new DlgInputError('format', `"${SCENARIO_FORMAT}"`, describe(o.format));
  const reduction = o.reduction === undefined ? 'mean' : requireOneOf('reduction', o.reduction, ['mean', 'sum'] as const);
  const weights = parseMatrix('weights', o.weights);
  const D = weights.rows;
  const K = weights.cols;
  const bias = parseVector('bias', o.bias, K);
  const labels = parseMatrix('labels', o.labels, undefined, K);
  const B = labels.rows;
  for (let i = 0; i < labels.data.length; i++) {
    const v = labels.data[i];
    if (v < 0 || v > 1) {
      throw new DlgInputError(`labels[${Math.floor(i / K)}][${i % K}]`, 'a number in [0, 1]', String(v));
    }
  }
  let inputs: Float64Array | undefined;
  if (o.inputs !== undefined) inputs = parseMatrix('inputs', o.inputs, B, D).data;
  const layer: Layer = { B, D, K, W: weights.data, b: bias, y: labels.data, reduction };
  const defence = o.defence === undefined ? undefined : parseDefenceList(o.defence);
  let gradient: Gradient;
  if (o.gradient !== undefined) {
    if (typeof o.gradient !== 'object' || o.gradient === null || Array.isArray(o.gradient)) {
      throw new DlgInputError('gradient', 'an object {"weights": D×K, "bias": K}', describe(o.gradient));
    }
    const g = o.gradient as Record<string, unknown>;
    gradient = { W: parseMatrix('gradient.weights', g.weights, D, K).data, b: parseVector('gradient.bias', g.bias, K) };
  } else if (inputs) {
    // No gradient written: compute it, then apply the recorded defences (reproducible from their seeds).
    gradient = victimGradient(layer, inputs);
    if (defence) gradient = applyDefences(gradient, defence, { layer, inputs }).gradient;
  } else {
    throw new DlgInputError('gradient', 'the shared gradient {"weights", "bias"} (or "inputs" to compute it from)', 'neither');
  }
  return { ...layer, W: weights.data, b: bias, y: labels.data, gradient, inputs, ...(defence && defence.length > 0 ? { defence } : {}) };
}

function rows(data: ArrayLike<number>, r: number, c: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < r; i++) out.push(Array.from({ length: c }, (_, j) => data[i * c + j]));
  return out;
}

/** The JSON form of a scenario, ready for JSON.stringify. */
export function scenarioToJson(s: Scenario): ScenarioJson {
  const json: ScenarioJson = {
    format: SCENARIO_FORMAT,
    reduction: s.reduction,
    weights: rows(s.W, s.D, s.K),
    bias: Array.from(s.b),
    labels: rows(s.y, s.B, s.K),
    gradient: { weights: rows(s.gradient.W, s.D, s.K), bias: Array.from(s.gradient.b) },
  };
  if (s.inputs) json.inputs = rows(s.inputs, s.B, s.D);
  if (s.defence && s.defence.length > 0) json.defence = defenceToJson(s.defence);
  return json;
}

/** Builds a scenario from a layer and the victim's true inputs (computes the shared gradient). */
export function makeScenario(layer: Layer, inputs: ArrayLike<number>): Scenario {
  const x = Float64Array.from(inputs);
  return {
    ...layer,
    W: Float64Array.from(layer.W),
    b: Float64Array.from(layer.b),
    y: Float64Array.from(layer.y),
    gradient: victimGradient(layer, x),
    inputs: x,
  };
}

/**
 * Parses fake inputs for `eval`: a B×D array (P = 1) or a P×B×D array.
 * Returns them flat, P·B·D.
 */
export function parseFakeBatches(field: string, v: unknown, B: number, D: number): { P: number; x: Float64Array } {
  if (!Array.isArray(v) || v.length === 0) throw new DlgInputError(field, `a ${B}×${D} or P×${B}×${D} array`, describe(v));
  if (Array.isArray(v[0]) && Array.isArray((v[0] as unknown[])[0])) {
    const P = v.length;
    const x = new Float64Array(P * B * D);
    for (let p = 0; p < P; p++) x.set(parseMatrix(`${field}[${p}]`, v[p], B, D).data, p * B * D);
    return { P, x };
  }
  return { P: 1, x: parseMatrix(field, v, B, D).data };
}
