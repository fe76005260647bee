/**
 * Colour-mapping a loss field (Float32Array, row j ↔ β_j, column i ↔ α_i) into RGBA pixels, and the
 * scale used for it (log10 by default: L_r spans many decades). Colour maps come from d3-scale-chromatic.
 */
import { type ColorMapName, type ScaleDomain, colormapRgb } from '../view/colorscale.js';

export { COLOR_MAPS, type ColorMapName, type FieldRange, LOG_DECADES, type ScaleDomain, type ScaleKind, fieldRange, parseCss, scaleDomain } from '../view/colorscale.js';

/** Colour for NaN/Inf cells, so they are visible rather than silently clamped. */
export const NON_FINITE_RGBA = 0xffff00ff; // magenta, little-endian ABGR

const lutCache = new Map<ColorMapName, Uint32Array>();
/** 256 colours packed as little-endian RGBA words (what an ImageData Uint32 view expects). */
export function lut(name: ColorMapName): Uint32Array {
  let t = lutCache.get(name);
  if (!t) {
    t = new Uint32Array(256);
    const rgb = colormapRgb(name);
    for (let i = 0; i < 256; i++) {
      const [r, g, b] = [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]];
      t[i] = (255 << 24) | (b << 16) | (g << 8) | r;
    }
    lutCache.set(name, t);
  }
  return t;
}

/**
 * Writes the field into `out` (res×res RGBA words), flipping rows so β grows upwards on screen.
 * Returns the number of non-finite cells (drawn magenta).
 *
 * Log scale over ≥ 2 decades goes through a 65536-entry table indexed by the top 16 bits of the f32
 * (sign, exponent, 7 mantissa bits: log10 resolved to 0.0012 decades, a sixth of one colour step at
 * worst), so a 2048² field costs one table lookup per cell instead of a log10.
 */
export function colorize(field: Float32Array, res: number, domain: ScaleDomain, name: ColorMapName, out: Uint32Array): number {
  const table = lut(name);
  const { lo, hi } = domain;
  const k = 255 / (hi - lo);
  const log = domain.kind === 'log';
  if (log && hi - lo >= 2) return colorizeByBits(field, res, domain, table, out);
  const floorValue = log ? 10 ** lo : 0;
  let bad = 0;
  for (let j = 0; j < res; j++) {
    const src = j * res;
    const dst = (res - 1 - j) * res;
    for (let i = 0; i < res; i++) {
      let v = field[src + i];
      if (!(v === v) || v === Infinity || v === -Infinity) {
        out[dst + i] = NON_FINITE_RGBA;
        bad++;
        continue;
      }
      if (log) v = Math.log10(v > floorValue ? v : floorValue);
      let t = ((v - lo) * k) | 0;
      t = t < 0 ? 0 : t > 255 ? 255 : t;
      out[dst + i] = table[t];
    }
  }
  return bad;
}

const bitsTable = new Uint32Array(65536);
const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

function colorizeByBits(field: Float32Array, res: number, domain: ScaleDomain, table: Uint32Array, out: Uint32Array): number {
  const { lo, hi } = domain;
  const k = 255 / (hi - lo);
  // Entry u covers the f32 values whose top 16 bits are u; it gets the colour of the bucket's centre.
  for (let u = 0; u < 65536; u++) {
    const exp = (u >>> 7) & 0xff;
    if (exp === 0xff) {
      bitsTable[u] = NON_FINITE_RGBA;
      continue;
    }
    if (u & 0x8000 || exp === 0) {
      bitsTable[u] = table[0]; // negative, zero or subnormal: at or below the log floor
      continue;
    }
    scratchU[0] = (u << 16) | 0x8000;
    let t = ((Math.log10(scratchF[0]) - lo) * k) | 0;
    t = t < 0 ? 0 : t > 255 ? 255 : t;
    bitsTable[u] = table[t];
  }
  const bits = new Uint32Array(field.buffer, field.byteOffset, field.length);
  let bad = 0;
  for (let j = 0; j < res; j++) {
    const src = j * res;
    const dst = (res - 1 - j) * res;
    for (let i = 0; i < res; i++) {
      const b = bits[src + i];
      if ((b & 0x7f800000) === 0x7f800000) bad++;
      out[dst + i] = bitsTable[b >>> 16];
    }
  }
  return bad;
}

/** Tick values (in display units) for a colour bar: integer decades for log, ~5 round numbers for linear. */
export function ticks(domain: ScaleDomain, maxTicks = 8): number[] {
  const { lo, hi } = domain;
  if (domain.kind === 'log') {
    const a = Math.ceil(lo);
    const b = Math.floor(hi);
    const n = b - a + 1;
    if (n < 3) {
      // Under three decades: 1, 2 and 5 times each power of ten.
      const out: number[] = [];
      for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
        for (const m of [1, 2, 5]) {
          const v = d + Math.log10(m);
          if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
        }
      }
      return out;
    }
    const step = Math.max(1, Math.ceil(n / maxTicks));
    const out: number[] = [];
    for (let d = b; d >= a; d -= step) out.push(d);
    return out.reverse();
  }
  const span = hi - lo;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= maxTicks) ?? 10 * mag;
  const out: number[] = [];
  // Multiples of the step (computed, not accumulated, so 0 comes out as exactly 0).
  for (let k = Math.ceil(lo / step); k * step <= hi + 1e-12 * span; k++) out.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
  return out;
}

export function tickLabel(domain: ScaleDomain, v: number): string {
  if (domain.kind === 'log') {
    const d = Math.floor(v + 1e-9);
    return `${Math.round(10 ** (v - d))}e${d}`;
  }
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}
