/**
 * The one colour scale for loss fields, shared by the PNG renderer (render.ts) and the explorer
 * (web/colormap.ts) so that a picture and the page agree: the colour maps (d3-scale-chromatic) and
 * the scale's domain. Browser-safe.
 */
import {
  interpolateCividis,
  interpolateInferno,
  interpolateMagma,
  interpolatePlasma,
  interpolateTurbo,
  interpolateViridis,
} from 'd3-scale-chromatic';

export const COLOR_MAPS = { viridis: interpolateViridis, magma: interpolateMagma, inferno: interpolateInferno, plasma: interpolatePlasma, cividis: interpolateCividis, turbo: interpolateTurbo } as const;
export type ColorMapName = keyof typeof COLOR_MAPS;
export type ScaleKind = 'log' | 'linear';

/** Parses '#rrggbb' or 'rgb(r, g, b)' (what d3 interpolators return). */
export function parseCss(c: string): [number, number, number] {
  if (c.startsWith('#') && c.length === 7) return [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];
  const m = /rgb\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)/.exec(c);
  if (!m) throw new Error(`unexpected colour string ${c}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

const rgbCache = new Map<ColorMapName, Uint8Array>();
/** 256 colours of a map as r, g, b bytes. */
export function colormapRgb(name: ColorMapName): Uint8Array {
  let t = rgbCache.get(name);
  if (!t) {
    t = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) t.set(parseCss(COLOR_MAPS[name](i / 255)), i * 3);
    rgbCache.set(name, t);
  }
  return t;
}

export interface FieldRange {
  /** Smallest and largest finite value (±Infinity when there is none). */
  min: number;
  max: number;
  /** Smallest positive finite value (log scale floor), or NaN if none. */
  minPositive: number;
  nonFinite: number;
}

export function fieldRange(f: ArrayLike<number>): FieldRange {
  let min = Infinity;
  let max = -Infinity;
  let minPositive = Infinity;
  let nonFinite = 0;
  for (let i = 0; i < f.length; i++) {
    const v = f[i];
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
    if (v > 0 && v < minPositive) minPositive = v;
  }
  return { min, max, minPositive: minPositive === Infinity ? NaN : minPositive, nonFinite };
}

/**
 * What the log scale needs of a float32 field (max and smallest positive), in one integer pass:
 * positive finite float32s order like their bit patterns. min and nonFinite are not computed.
 */
export function logFieldRange(f: Float32Array): FieldRange {
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  let bl = 0x7f800000;
  let bh = 0;
  let finite = false; // any finite value ≤ 0
  for (let p = 0; p < bits.length; p++) {
    const b = bits[p];
    if (b !== 0 && b < 0x7f800000) {
      if (b < bl) bl = b;
      if (b > bh) bh = b;
    } else if (b === 0 || (b >= 0x80000000 && b < 0xff800000)) finite = true; // ±0 or negative finite
  }
  if (bh === 0) return { min: NaN, max: finite ? 0 : -Infinity, minPositive: NaN, nonFinite: NaN };
  const v = new Float32Array(new Uint32Array([bl, bh]).buffer);
  return { min: NaN, max: v[1], minPositive: v[0], nonFinite: NaN };
}

/** The scale's domain in display units (log10 units for 'log'). */
export interface ScaleDomain {
  kind: ScaleKind;
  lo: number;
  hi: number;
}

/** Log floor: at most 14 decades below the maximum (f32 cannot resolve more, and exact zeros would be -∞). */
export const LOG_DECADES = 14;

export function scaleDomain(kind: ScaleKind, r: FieldRange): ScaleDomain {
  if (!Number.isFinite(r.max)) return { kind, lo: 0, hi: 1 }; // all non-finite
  if (kind === 'linear') return { kind, lo: r.min, hi: r.max > r.min ? r.max : r.min + 1 };
  const hi = Math.log10(r.max > 0 ? r.max : 1);
  const floor = hi - LOG_DECADES;
  const lo = Number.isFinite(r.minPositive) ? Math.max(Math.log10(r.minPositive), floor) : floor;
  return { kind, lo, hi: hi > lo ? hi : lo + 1 };
}
