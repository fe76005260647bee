/**
 * The convergence study's configuration (browser-safe): the sweep's axes and settings, their
 * validation, and the configurations they expand to. src/node/study.ts runs them.
 */
import { DATASET_INFO, DATASET_NAMES, type DatasetName } from '../core/datasets.js';
import { DlgInputError, describe } from '../core/errors.js';
import { OPTIMIZERS, type Optimizer } from '../attack/engine-cpu.js';

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
