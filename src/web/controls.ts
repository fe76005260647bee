/**
 * The explorer page's controls: their limits, the defence control (one src/core/defence.ts spec per
 * kind and strength) and readSettings, which validates every control and reports problems by slot.
 */
import { DATASET_INFO, type DatasetName } from '../core/datasets.js';
import { type Defence, defenceLabel, parseDefenceSpec } from '../core/defence.js';
import { DlgInputError } from '../core/errors.js';
import type { ColorMapName, ScaleKind } from './colormap.js';
import { $, num } from './dom.js';

// ---------------------------------------------------------------- limits of the page's controls
export const LIMITS = {
  B: [1, 64],
  D: [1, 4096],
  K: [1, 64],
  res: [2, 2048],
  P: [1, 4096],
  iters: [1, 1_000_000],
  seed: [0, 4294967295],
} as const;

// ---------------------------------------------------------------- settings from the controls
export interface Settings {
  dataset: DatasetName;
  B: number;
  D: number;
  K: number;
  seed: number;
  plane: 'coords' | 'random' | 'filter' | 'swap' | 'attack';
  n1: number;
  d1: number;
  n2: number;
  d2: number;
  planeSeed: number;
  span: number;
  depth: number;
  res: number;
  scale: ScaleKind;
  cmap: ColorMapName;
  P: number;
  iters: number;
  optimizer: 'lm' | 'adam' | 'gd' | 'lbfgs';
  lr: number;
  defence: DefenceChoice;
}

// ---------------------------------------------------------------- the defence control
/**
 * The defence kinds the page offers: each builds one src/core/defence.ts command-line spec from the
 * strength (and, for DP-SGD, the clip norm c) and parses it with parseDefenceSpec, so the page applies
 * exactly what `dlg defend --defence SPEC --seed SEED` applies. The slider covers [lo, hi] (log where
 * `log`); the text box next to it shows the value and takes any value, validated by src/core/defence.ts.
 */
export type DefenceKind = 'none' | 'noise-gauss-rel' | 'noise-laplace-rel' | 'noise-gauss' | 'noise-laplace' | 'prune' | 'quantize-bits' | 'quantize-fp16' | 'clip' | 'dpsgd';
interface KindSpec {
  /** The strength's name, as the control shows it. */
  name: string;
  spec: (strength: string, c: string) => string;
  lo: number;
  hi: number;
  log: boolean;
  def: number;
  integer?: boolean;
  /** Draws from the seed. */
  random: boolean;
}
const DEFENCE_KINDS: Record<Exclude<DefenceKind, 'none' | 'quantize-fp16'>, KindSpec> = {
  'noise-gauss-rel': { name: 'σ / RMS(g)', spec: (v) => `noise:gaussian:rel:${v}`, lo: 1e-6, hi: 1, log: true, def: 1e-3, random: true },
  'noise-laplace-rel': { name: 'b / RMS(g)', spec: (v) => `noise:laplace:rel:${v}`, lo: 1e-6, hi: 1, log: true, def: 1e-3, random: true },
  'noise-gauss': { name: 'σ', spec: (v) => `noise:gaussian:${v}`, lo: 1e-8, hi: 1, log: true, def: 1e-4, random: true },
  'noise-laplace': { name: 'b', spec: (v) => `noise:laplace:${v}`, lo: 1e-8, hi: 1, log: true, def: 1e-4, random: true },
  prune: { name: 'p (zeroed)', spec: (v) => `prune:${v}`, lo: 0, hi: 0.99, log: false, def: 0.5, random: false },
  'quantize-bits': { name: 'bits k', spec: (v) => `quantize:bits:${v}`, lo: 1, hi: 16, log: false, def: 8, integer: true, random: false },
  clip: { name: 'norm c', spec: (v) => `clip:${v}`, lo: 1e-6, hi: 100, log: true, def: 1e-2, random: false },
  dpsgd: { name: 'σ (multiplier)', spec: (v, c) => `dpsgd:${c}:${v}`, lo: 1e-4, hi: 10, log: true, def: 0.1, random: true },
};
export const SLIDER_STEPS = 1000;

export interface DefenceChoice {
  kind: DefenceKind;
  /** What src/core/defence.ts applies (empty: undefended). */
  list: Defence[];
  /** The spec as the CLI spells it, with the seed where it matters ('none' when undefended). */
  label: string;
}

export function kindSpec(kind: DefenceKind): KindSpec | null {
  return kind === 'none' || kind === 'quantize-fp16' ? null : DEFENCE_KINDS[kind];
}
export function sliderToValue(k: KindSpec, pos: number): number {
  const t = Math.min(1, Math.max(0, pos / SLIDER_STEPS));
  if (k.log) return Number((10 ** (Math.log10(k.lo) + t * (Math.log10(k.hi) - Math.log10(k.lo)))).toPrecision(2));
  const v = k.lo + t * (k.hi - k.lo);
  return k.integer ? Math.round(v) : Number(v.toFixed(2));
}
export function valueToSlider(k: KindSpec, v: number): number {
  const t = k.log ? (Math.log10(Math.max(v, k.lo)) - Math.log10(k.lo)) / (Math.log10(k.hi) - Math.log10(k.lo)) : (v - k.lo) / (k.hi - k.lo);
  return Math.round(Math.min(1, Math.max(0, t)) * SLIDER_STEPS);
}

/** Shows the controls the chosen kind uses; moves the slider to the typed strength when it is valid. */
export function updateDefenceControls(): void {
  const kind = $<HTMLSelectElement>('defKind').value as DefenceKind;
  const k = kindSpec(kind);
  const slider = num('defSlider');
  const text = num('defStrength');
  slider.disabled = !k;
  text.disabled = !k;
  $('defStrengthName').textContent = k ? k.name : 'strength';
  document.querySelectorAll<HTMLElement>('.dpsgd-only').forEach((e) => (e.hidden = kind !== 'dpsgd'));
  num('defSeed').disabled = !k?.random;
  const v = Number(text.value);
  if (k && text.value.trim() !== '' && Number.isFinite(v)) {
    const pos = valueToSlider(k, v);
    if (Math.abs(pos - Number(slider.value)) > 1) slider.value = String(pos);
  }
}

/** A new kind starts at its default strength (the slider's middle ground). */
export function selectDefenceKind(kind: DefenceKind, strength?: number | string): void {
  $<HTMLSelectElement>('defKind').value = kind;
  const k = kindSpec(kind);
  num('defStrength').value = k ? String(strength ?? k.def) : '';
  if (k) num('defSlider').value = String(valueToSlider(k, Number(strength ?? k.def)));
  updateDefenceControls();
}

/** The defence the controls name, parsed by src/core/defence.ts; problems go to errs (defStrength, defC, defSeed). */
function readDefence(errs: Map<string, string>): DefenceChoice {
  const kind = $<HTMLSelectElement>('defKind').value as DefenceKind;
  const none: DefenceChoice = { kind: 'none', list: [], label: 'none' };
  if (kind === 'none') return none;
  const k = kindSpec(kind);
  const seed = k?.random ? readInt('defSeed', LIMITS.seed[0], LIMITS.seed[1], 'noise seed', errs) : 0;
  if (!Number.isFinite(seed)) return none;
  const strength = num('defStrength').value.trim();
  const c = num('defC').value.trim();
  // One value per field: a ':' would be read as another part of the spec.
  for (const [slot, what, raw] of [['defStrength', 'defence strength', strength], ['defC', 'clip norm c', c]] as const) {
    if (raw.includes(':')) {
      errs.set(slot, `${what}: expected a number, found ${JSON.stringify(raw)}`);
      return none;
    }
  }
  const spec = k ? k.spec(strength, c) : 'quantize:fp16';
  try {
    const d = parseDefenceSpec(spec, seed, 'defence strength');
    return { kind, list: [d], label: k?.random ? `${defenceLabel(d)} (seed ${seed})` : defenceLabel(d) };
  } catch (err) {
    if (!(err instanceof DlgInputError)) throw err;
    const isC = kind === 'dpsgd' && /\(c\)$/.test(err.field);
    errs.set(isC ? 'defC' : 'defStrength', isC ? err.message.replace(/^defence strength/, 'clip norm c') : err.message);
    return none;
  }
}

/** Reads an integer control; reports out-of-range inline. */
function readInt(id: string, lo: number, hi: number, what: string, errs: Map<string, string>, slot = id): number {
  const el = num(id);
  const raw = el.value.trim();
  const v = Number(raw);
  if (raw === '' || !Number.isInteger(v) || v < lo || v > hi) {
    errs.set(slot, `${what}: expected an integer in [${lo}, ${hi}], found ${raw === '' ? 'nothing' : JSON.stringify(raw)}`);
    return NaN;
  }
  return v;
}

export function readSettings(): { s: Settings; errs: Map<string, string> } {
  const errs = new Map<string, string>();
  const dataset = $<HTMLSelectElement>('dataset').value as DatasetName;
  const fixed = dataset === 'gaussian' ? null : DATASET_INFO[dataset];
  const B = readInt('B', LIMITS.B[0], LIMITS.B[1], 'B (batch size)', errs);
  const D = fixed ? fixed.D : readInt('D', LIMITS.D[0], LIMITS.D[1], 'D (features)', errs);
  const K = fixed ? fixed.K : readInt('K', LIMITS.K[0], LIMITS.K[1], 'K (outputs)', errs);
  const seed = readInt('seed', LIMITS.seed[0], LIMITS.seed[1], 'seed', errs);
  const n1 = readInt('n1', 0, LIMITS.B[1], 'sample index', errs, 'coords');
  const d1 = readInt('d1', 0, LIMITS.D[1], 'feature index', errs, 'coords');
  const n2 = readInt('n2', 0, LIMITS.B[1], 'sample index', errs, 'coords');
  const d2 = readInt('d2', 0, LIMITS.D[1], 'feature index', errs, 'coords');
  const planeSeed = readInt('planeSeed', 0, LIMITS.seed[1], 'plane seed', errs, 'coords');
  const res = readInt('res', LIMITS.res[0], LIMITS.res[1], 'resolution', errs);
  const P = readInt('P', LIMITS.P[0], LIMITS.P[1], 'restarts P', errs);
  const iters = readInt('iters', LIMITS.iters[0], LIMITS.iters[1], 'iterations', errs);
  const span = Number(num('span').value);
  if (!(Number.isFinite(span) && span > 0 && span <= 1e6)) errs.set('span', `half-width: expected a number in (0, 1e6], found ${JSON.stringify(num('span').value)}`);
  const lr = Number(num('lr').value);
  if (!(Number.isFinite(lr) && lr > 0 && lr <= 1e3)) errs.set('lr', `learning rate: expected a number in (0, 1000], found ${JSON.stringify(num('lr').value)}`);
  const defence = readDefence(errs);
  if (Number.isFinite(B) && Number.isFinite(D) && Number.isFinite(P) && P * B * D > 1 << 22) {
    errs.set('P', `restarts P: P·B·D must be at most ${1 << 22} (GPU memory for the page), found ${P}·${B}·${D} = ${P * B * D}`);
  }
  return {
    s: {
      dataset,
      B,
      D,
      K,
      seed,
      plane: $<HTMLSelectElement>('plane').value as Settings['plane'],
      n1,
      d1,
      n2,
      d2,
      planeSeed,
      span,
      depth: Number(num('depth').value),
      res,
      scale: $<HTMLSelectElement>('scale').value as ScaleKind,
      cmap: $<HTMLSelectElement>('cmap').value as ColorMapName,
      P,
      iters,
      optimizer: $<HTMLSelectElement>('optimizer').value as Settings['optimizer'],
      lr,
      defence,
    },
    errs,
  };
}
