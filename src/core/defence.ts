/**
 * Defences: pure transforms of the shared gradient (∇W, ∇b), applied in order, each recorded in the
 * scenario (`defence`, docs/formats.md) so a defended scenario is self-describing and reproducible.
 * Browser-safe, float64, no GPU. Random defences draw from src/core/rng.ts: the same seed gives the same bytes.
 *
 * The gradient is treated as one vector v = (vec ∇W, ∇b) of n = D·K + K entries (∇W row-major first),
 * except `quantize:bits`, which quantises each tensor on its own range.
 */
import { DlgInputError, describe } from './errors.js';
import { type Gradient, type Layer, residuals } from './model.js';
import { Rng, ln } from './rng.js';
import type { Scenario } from './scenario.js';

export type NoiseDistribution = 'gaussian' | 'laplace';

/** One applied defence, as the scenario file records it. */
export type Defence =
  | {
      name: 'noise';
      distribution: NoiseDistribution;
      /** σ (gaussian) or b (laplace): absolute, or a multiple of the gradient's RMS when `relative`. */
      scale: number;
      relative: boolean;
      seed: number;
      /** The absolute σ or b that was applied (= scale·RMS when relative). Written on output; informative. */
      absoluteScale?: number;
    }
  | { name: 'prune'; p: number }
  | { name: 'quantize'; mode: 'fp16' }
  | { name: 'quantize'; mode: 'bits'; bits: number }
  | { name: 'clip'; c: number }
  | { name: 'dpsgd'; c: number; sigma: number; seed: number };

export const DEFENCE_NAMES = ['noise', 'prune', 'quantize', 'clip', 'dpsgd'] as const;

/** The command-line spellings, for messages. */
export const DEFENCE_SYNTAX =
  'noise:gaussian:σ, noise:gaussian:rel:σ, noise:laplace:b, noise:laplace:rel:b, prune:p, quantize:fp16, quantize:bits:k, clip:c or dpsgd:c:σ';

// ------------------------------------------------------------------ parsing

function num(field: string, s: string | undefined, lo: number, hi: number, loOpen = false, hiOpen = false, integer = false): number {
  const v = s === undefined || s.trim() === '' ? NaN : Number(s);
  const bad = !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || (hiOpen ? v >= hi : v > hi) || (integer && !Number.isInteger(v));
  if (bad) {
    const range = `${loOpen ? '(' : '['}${lo}, ${hi === Infinity ? '∞' : hi}${hiOpen || hi === Infinity ? ')' : ']'}`;
    throw new DlgInputError(field, `${integer ? 'an integer' : 'a number'} in ${range}`, describe(s ?? undefined));
  }
  return v;
}

/**
 * Parses one command-line defence (`prune:0.3`, `noise:gaussian:rel:1e-4`, …). `seed` is recorded in
 * random defences. Throws DlgInputError naming `field` (e.g. `--defence`).
 */
export function parseDefenceSpec(spec: string, seed: number, field = '--defence'): Defence {
  const parts = spec.split(':');
  const bad = () => new DlgInputError(field, `one of ${DEFENCE_SYNTAX}`, describe(spec));
  const arity = (n: number) => {
    if (parts.length !== n) throw bad();
  };
  switch (parts[0]) {
    case 'noise': {
      if (parts[1] !== 'gaussian' && parts[1] !== 'laplace') throw bad();
      const relative = parts[2] === 'rel';
      arity(relative ? 4 : 3);
      const what = parts[1] === 'gaussian' ? 'σ' : 'b';
      const scale = num(`${field} ${spec} (${what})`, parts[relative ? 3 : 2], 0, Infinity);
      return { name: 'noise', distribution: parts[1], scale, relative, seed };
    }
    case 'prune':
      arity(2);
      return { name: 'prune', p: num(`${field} ${spec} (p)`, parts[1], 0, 1, false, true) };
    case 'quantize':
      if (parts[1] === 'fp16') {
        arity(2);
        return { name: 'quantize', mode: 'fp16' };
      }
      if (parts[1] === 'bits') {
        arity(3);
        return { name: 'quantize', mode: 'bits', bits: num(`${field} ${spec} (bits)`, parts[2], 1, 32, false, false, true) };
      }
      throw bad();
    case 'clip':
      arity(2);
      return { name: 'clip', c: num(`${field} ${spec} (c)`, parts[1], 0, Infinity, true) };
    case 'dpsgd':
      arity(3);
      return { name: 'dpsgd', c: num(`${field} ${spec} (c)`, parts[1], 0, Infinity, true), sigma: num(`${field} ${spec} (σ)`, parts[2], 0, Infinity), seed };
    default:
      throw bad();
  }
}

/** The command-line spelling of a defence (inverse of parseDefenceSpec, without the seed). */
export function defenceLabel(d: Defence): string {
  switch (d.name) {
    case 'noise':
      return `noise:${d.distribution}:${d.relative ? 'rel:' : ''}${d.scale}`;
    case 'prune':
      return `prune:${d.p}`;
    case 'quantize':
      return d.mode === 'fp16' ? 'quantize:fp16' : `quantize:bits:${d.bits}`;
    case 'clip':
      return `clip:${d.c}`;
    case 'dpsgd':
      return `dpsgd:${d.c}:${d.sigma}`;
  }
}

function reqNum(at: string, v: unknown, lo: number, hi: number, loOpen = false, hiOpen = false, integer = false): number {
  if (typeof v !== 'number') throw new DlgInputError(at, integer ? 'an integer' : 'a number', describe(v));
  return num(at, String(v), lo, hi, loOpen, hiOpen, integer);
}

function reqSeed(at: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new DlgInputError(at, 'an integer seed in [0, 4294967295]', describe(v));
  return v;
}

/** Validates the scenario's `defence` field (an array, in application order). Throws DlgInputError naming the entry. */
export function parseDefenceList(v: unknown, at = 'defence'): Defence[] {
  if (!Array.isArray(v)) throw new DlgInputError(at, 'an array of defences (objects with "name"), in application order', describe(v));
  return v.map((e, i) => parseDefenceObject(e, `${at}[${i}]`, i));
}

function parseDefenceObject(e: unknown, at: string, index: number): Defence {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new DlgInputError(at, 'an object {"name": …, parameters}', describe(e));
  const o = e as Record<string, unknown>;
  const allowed: Record<string, string[]> = {
    noise: ['name', 'distribution', 'scale', 'relative', 'seed', 'absoluteScale'],
    prune: ['name', 'p'],
    quantize: ['name', 'mode', 'bits'],
    clip: ['name', 'c'],
    dpsgd: ['name', 'c', 'sigma', 'seed'],
  };
  const name = o.name;
  if (typeof name !== 'string' || !(name in allowed)) throw new DlgInputError(`${at}.name`, `one of ${DEFENCE_NAMES.map((n) => `"${n}"`).join(', ')}`, describe(name));
  for (const k of Object.keys(o)) if (!allowed[name].includes(k)) throw new DlgInputError(`${at}.${k}`, `only the keys ${allowed[name].join(', ')} for "${name}"`, 'an unknown key');
  switch (name) {
    case 'noise': {
      const dist = o.distribution;
      if (dist !== 'gaussian' && dist !== 'laplace') throw new DlgInputError(`${at}.distribution`, '"gaussian" or "laplace"', describe(dist));
      if (typeof o.relative !== 'boolean') throw new DlgInputError(`${at}.relative`, 'true or false', describe(o.relative));
      const d: Defence = { name, distribution: dist, scale: reqNum(`${at}.scale`, o.scale, 0, Infinity), relative: o.relative, seed: reqSeed(`${at}.seed`, o.seed) };
      if (o.absoluteScale !== undefined) d.absoluteScale = reqNum(`${at}.absoluteScale`, o.absoluteScale, 0, Infinity);
      return d;
    }
    case 'prune':
      return { name, p: reqNum(`${at}.p`, o.p, 0, 1, false, true) };
    case 'quantize':
      if (o.mode === 'fp16') {
        if (o.bits !== undefined) throw new DlgInputError(`${at}.bits`, 'nothing with mode "fp16"', describe(o.bits));
        return { name, mode: 'fp16' };
      }
      if (o.mode === 'bits') return { name, mode: 'bits', bits: reqNum(`${at}.bits`, o.bits, 1, 32, false, false, true) };
      throw new DlgInputError(`${at}.mode`, '"fp16" or "bits"', describe(o.mode));
    case 'clip':
      return { name, c: reqNum(`${at}.c`, o.c, 0, Infinity, true) };
    default: {
      if (index !== 0) throw new DlgInputError(`${at}.name`, 'dpsgd only as the first defence (it builds the gradient from the per-example gradients)', '"dpsgd" after another defence');
      return { name: 'dpsgd', c: reqNum(`${at}.c`, o.c, 0, Infinity, true), sigma: reqNum(`${at}.sigma`, o.sigma, 0, Infinity), seed: reqSeed(`${at}.seed`, o.seed) };
    }
  }
}

/** The JSON form of a defence list (a copy with plain fields). */
export function defenceToJson(ds: readonly Defence[]): Defence[] {
  return ds.map((d) => ({ ...d }));
}

// ------------------------------------------------------------------ transforms

/** Round to nearest, ties to even, of a real t (exact for |t| < 2^52). */
function roundHalfEven(t: number): number {
  const f = Math.floor(t);
  const r = t - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The largest finite binary16 value. Values at or beyond 65520 round to ±∞. */
export const FP16_MAX = 65504;

/** Rounds x to the nearest binary16 value, ties to even (±∞ beyond the range; subnormals kept). */
export function roundFp16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity;
  // ulp: 2^(e−10) for normal numbers with 2^e ≤ a < 2^(e+1), 2^-24 below 2^-14.
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** Math.max(e - 10, -24);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

/** How many entries prune keeps: ⌈(1 − p)·n⌉ (with a 1e-9 allowance for the rounding of (1 − p)·n). */
export function pruneKeepCount(p: number, n: number): number {
  const t = (1 - p) * n;
  return Math.min(n, Math.max(0, Math.ceil(t - 1e-9 * Math.max(1, t))));
}

function flat(g: Gradient): Float64Array {
  const v = new Float64Array(g.W.length + g.b.length);
  v.set(g.W);
  v.set(g.b, g.W.length);
  return v;
}

function unflat(v: Float64Array, nW: number): Gradient {
  return { W: v.slice(0, nW), b: v.slice(nW) };
}

/** RMS over all entries of (∇W, ∇b). */
export function gradientRms(g: Gradient): number {
  let acc = 0;
  for (const t of g.W) acc += t * t;
  for (const t of g.b) acc += t * t;
  return Math.sqrt(acc / (g.W.length + g.b.length));
}

/** A Laplace(0, 1) draw by inversion, from exactly rounded arithmetic and rng.ln (same bits everywhere). */
function laplace(rng: Rng): number {
  for (;;) {
    const u = rng.uniform() - 0.5;
    if (u === -0.5) continue;
    const m = -ln(1 - 2 * Math.abs(u));
    return u < 0 ? -m : m;
  }
}

function quantizeTensor(v: Float64Array, bits: number): Float64Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of v) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  if (!(hi > lo)) return Float64Array.from(v);
  const levels = 2 ** bits - 1;
  const step = (hi - lo) / levels;
  return v.map((t) => Math.min(hi, lo + roundHalfEven((t - lo) / step) * step));
}

export interface DefenceContext {
  /** The layer (for dpsgd's per-example gradients). */
  layer?: Layer;
  /** The true inputs (for dpsgd). */
  inputs?: ArrayLike<number>;
}

/**
 * Applies one defence to a gradient; returns a new gradient and the defence as recorded (noise gains
 * `absoluteScale`). dpsgd ignores `g` and builds the gradient from the per-example gradients.
 */
export function applyDefence(g: Gradient, d: Defence, ctx: DefenceContext = {}, at = 'defence'): { gradient: Gradient; record: Defence } {
  const nW = g.W.length;
  switch (d.name) {
    case 'noise': {
      const v = flat(g);
      const abs = d.relative ? d.scale * gradientRms(g) : d.scale;
      const rng = new Rng(d.seed);
      if (abs > 0) {
        for (let i = 0; i < v.length; i++) v[i] += abs * (d.distribution === 'gaussian' ? rng.normal() : laplace(rng));
      }
      return { gradient: unflat(v, nW), record: { ...d, absoluteScale: abs } };
    }
    case 'prune': {
      const v = flat(g);
      const keep = pruneKeepCount(d.p, v.length);
      // Largest |v| first; ties keep the lower index (∇W row-major before ∇b).
      const order = Array.from(v.keys()).sort((i, j) => Math.abs(v[j]) - Math.abs(v[i]) || i - j);
      for (let r = keep; r < order.length; r++) v[order[r]] = 0;
      return { gradient: unflat(v, nW), record: { ...d } };
    }
    case 'quantize': {
      if (d.mode === 'fp16') {
        const v = flat(g).map(roundFp16);
        const i = v.findIndex((t) => !Number.isFinite(t));
        if (i >= 0) throw new DlgInputError(at, `gradient entries within the binary16 range (|v| < 65520)`, `entry ${i} = ${flat(g)[i]}`);
        return { gradient: unflat(v, nW), record: { ...d } };
      }
      return { gradient: { W: quantizeTensor(g.W, d.bits), b: quantizeTensor(g.b, d.bits) }, record: { ...d } };
    }
    case 'clip': {
      const v = flat(g);
      let nn = 0;
      for (const t of v) nn += t * t;
      const norm = Math.sqrt(nn);
      if (norm > d.c) for (let i = 0; i < v.length; i++) v[i] *= d.c / norm;
      return { gradient: unflat(v, nW), record: { ...d } };
    }
    case 'dpsgd': {
      const { layer, inputs } = ctx;
      if (!layer || !inputs) {
        throw new DlgInputError(at, 'dpsgd only where the inputs are known (dlg simulate --defence, or a scenario with "inputs"): it clips per-example gradients', 'no inputs');
      }
      return { gradient: dpsgdGradient(layer, inputs, d), record: { ...d } };
    }
  }
}

/**
 * Example n's own gradient, scaled so that their mean is the batch gradient: g_n = B·(x_n e_nᵀ, e_n).
 * (For the mean reduction this is ∇ of example n's mean BCE; for sum, B times its sum-BCE gradient.)
 */
export function perExampleGradients(layer: Layer, x: ArrayLike<number>): Gradient[] {
  const { B, D, K } = layer;
  const { e } = residuals(layer, x);
  const out: Gradient[] = [];
  for (let n = 0; n < B; n++) {
    const W = new Float64Array(D * K);
    const b = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      const enk = B * e[n * K + k];
      b[k] = enk;
      for (let d = 0; d < D; d++) W[d * K + k] = x[n * D + d] * enk;
    }
    out.push({ W, b });
  }
  return out;
}

/** DP-SGD (Abadi et al. 2016): (Σ_n clip_c(g_n) + N(0, σ²c²I)) / B. With c large and σ = 0 it is the batch gradient. */
export function dpsgdGradient(layer: Layer, x: ArrayLike<number>, d: { c: number; sigma: number; seed: number }): Gradient {
  const per = perExampleGradients(layer, x);
  const B = layer.B;
  const nW = layer.D * layer.K;
  const sum = new Float64Array(nW + layer.K);
  for (const g of per) {
    const v = flat(g);
    let nn = 0;
    for (const t of v) nn += t * t;
    const f = Math.sqrt(nn) > d.c ? d.c / Math.sqrt(nn) : 1;
    for (let i = 0; i < v.length; i++) sum[i] += f * v[i];
  }
  const rng = new Rng(d.seed);
  const sd = d.sigma * d.c;
  for (let i = 0; i < sum.length; i++) {
    if (sd > 0) sum[i] += sd * rng.normal();
    sum[i] /= B;
  }
  return unflat(sum, nW);
}

/** Applies defences in order. dpsgd must be first (it starts from the per-example gradients). */
export function applyDefences(g: Gradient, ds: readonly Defence[], ctx: DefenceContext = {}, at = 'defence'): { gradient: Gradient; records: Defence[] } {
  let cur = g;
  const records: Defence[] = [];
  ds.forEach((d, i) => {
    if (d.name === 'dpsgd' && i !== 0) {
      throw new DlgInputError(`${at}[${i}]`, 'dpsgd only as the first defence (it builds the gradient from the per-example gradients)', `dpsgd after ${defenceLabel(ds[0])}`);
    }
    const r = applyDefence(cur, d, ctx, `${at}[${i}]`);
    cur = r.gradient;
    records.push(r.record);
  });
  return { gradient: cur, records };
}

/**
 * Parses several command-line defences; the i-th random one records the seed `seed + i` (mod 2³²), so
 * two noise defences never share a stream.
 */
export function parseDefenceSpecs(specs: readonly string[], seed: number, field = '--defence'): Defence[] {
  const ds = specs.map((s, i) => parseDefenceSpec(s, (seed + i) >>> 0, field));
  const late = ds.findIndex((d, i) => d.name === 'dpsgd' && i > 0);
  if (late > 0) throw new DlgInputError(field, 'dpsgd only as the first defence (it builds the gradient from the per-example gradients)', describe(specs[late]));
  return ds;
}

/**
 * A defended copy of a scenario: its gradient transformed, `defence` extended. dpsgd needs the true
 * inputs and an undefended scenario (it rebuilds the gradient from the per-example gradients).
 */
export function defendScenario(s: Scenario, ds: readonly Defence[], field = '--defence'): Scenario {
  if (ds.length === 0) return s;
  const prior = s.defence ?? [];
  if (ds[0].name === 'dpsgd') {
    if (!s.inputs) {
      throw new DlgInputError(field, 'dpsgd only where the inputs are known (dlg simulate --defence, or a scenario with "inputs"): it clips per-example gradients', `${defenceLabel(ds[0])} on a scenario without "inputs"`);
    }
    if (prior.length > 0) {
      throw new DlgInputError(field, 'dpsgd only on an undefended scenario (it rebuilds the gradient from the per-example gradients)', `a scenario already defended by ${prior.map(defenceLabel).join(', ')}`);
    }
  }
  const { gradient, records } = applyDefences(s.gradient, ds, { layer: s, inputs: s.inputs }, field);
  return { ...s, gradient, defence: [...prior, ...records] };
}
