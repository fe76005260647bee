/**
 * PNG rendering of a loss-surface field (Node only). The field area is exactly res×res pixels
 * at 1:1 (no resampling), β increasing upwards (PNG row 0 ↔ β_max). Annotations (title, axes,
 * ticks, colour bar, markers, trajectory) are an SVG overlay rendered by resvg with the bundled
 * DejaVu Sans, in horizontal bands, and composited row by row; rows stream through zlib, so a
 * 16384² render holds one field and one band, not several full images.
 */
import { once } from 'node:events';
import { closeSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { crc32, createDeflate } from 'node:zlib';
import { Resvg } from '@resvg/resvg-js';
import { colormapRgb, fieldRange, logFieldRange, scaleDomain } from '../view/colorscale.js';
import { DlgInputError } from '../core/errors.js';
import { commitTemp, discardTemp, openTempFile } from './io.js';
import type { Plane } from '../surface/plane.js';

export type Colormap = 'viridis' | 'magma';

export interface RenderOptions {
  /** Only the res×res field, no annotation (default false). */
  plain?: boolean;
  colormap?: Colormap;
  /** log10 (default) or linear colour scale. */
  scale?: 'log' | 'linear';
  /** Contour lines (default true; never in plain mode). */
  contours?: boolean;
  title?: string;
  /** Projected attack trajectory, in plane coordinates. */
  trajectory?: { alpha: number; beta: number }[];
  /** zlib level, default 3. */
  deflateLevel?: number;
}

export interface RenderInfo {
  width: number;
  height: number;
  /** Top-left pixel of the res×res field area. */
  fieldX: number;
  fieldY: number;
  /** Colour scale ends (log10 values in log mode). */
  lo: number;
  hi: number;
}

const require = createRequire(import.meta.url);
let fontPath: string | undefined;
function font(): string {
  fontPath ??= require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf');
  return fontPath;
}

/** 256-entry RGB lookup table of a d3 perceptual colour map. */
export function colormapLut(name: Colormap): Uint8Array {
  return colormapRgb(name);
}

/**
 * The colour-scale range, [lo, hi] in log10 units (log) or values (linear): the explorer's scale
 * (colorscale.ts), so that a PNG and the page colour a field alike.
 */
export function valueRange(field: ArrayLike<number>, scale: 'log' | 'linear'): [number, number] {
  const r = scale === 'log' && field instanceof Float32Array ? logFieldRange(field) : fieldRange(field);
  const d = scaleDomain(scale, r);
  return [d.lo, d.hi];
}

function niceTicks(lo: number, hi: number, target: number): number[] {
  const span = hi - lo;
  const raw = span / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

function fmt(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e4 || a < 1e-3) return x.toExponential(1).replace('e+', 'e');
  return String(Number(x.toPrecision(4)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Layout {
  width: number;
  height: number;
  fx: number;
  fy: number;
  s: number;
}

function layoutFor(res: number, plain: boolean): Layout {
  if (plain) return { width: res, height: res, fx: 0, fy: 0, s: 1 };
  const s = Math.max(1, res / 700);
  const left = Math.round(95 * s);
  const right = Math.round(150 * s);
  const top = Math.round(45 * s);
  const bottom = Math.round(75 * s);
  return { width: left + res + right, height: top + res + bottom, fx: left, fy: top, s };
}

/** The annotation overlay as SVG (full canvas coordinates). */
function overlaySvgBody(
  res: number,
  plane: Plane,
  L: Layout,
  lo: number,
  hi: number,
  o: RenderOptions,
  lut: Uint8Array,
): string {
  const { s, fx, fy } = L;
  const fs = 13 * s;
  const sw = Math.max(1, 1.2 * s);
  const ax = (a: number) => fx + ((a - plane.alpha[0]) / (plane.alpha[1] - plane.alpha[0])) * (res - 1) + 0.5;
  const by = (b: number) => fy + (res - 1) - ((b - plane.beta[0]) / (plane.beta[1] - plane.beta[0])) * (res - 1) + 0.5;
  const parts: string[] = [];
  // The frame sits just outside the field, so the res×res field pixels stay untouched.
  parts.push(`<rect x="${fx - sw / 2}" y="${fy - sw / 2}" width="${res + sw}" height="${res + sw}" fill="none" stroke="#000" stroke-width="${sw}"/>`);
  // α ticks (bottom), β ticks (left).
  const tl = 6 * s;
  for (const t of niceTicks(plane.alpha[0], plane.alpha[1], 6)) {
    const x = ax(t);
    parts.push(`<line x1="${x}" y1="${fy + res}" x2="${x}" y2="${fy + res + tl}" stroke="#000" stroke-width="${sw}"/>`);
    parts.push(`<text x="${x}" y="${fy + res + tl + fs * 1.1}" font-size="${fs}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(plane.beta[0], plane.beta[1], 6)) {
    const y = by(t);
    parts.push(`<line x1="${fx - tl}" y1="${y}" x2="${fx}" y2="${y}" stroke="#000" stroke-width="${sw}"/>`);
    parts.push(`<text x="${fx - tl - 3 * s}" y="${y + fs * 0.35}" font-size="${fs}" text-anchor="end">${fmt(t)}</text>`);
  }
  const labels = plane.labels ?? { alpha: 'α', beta: 'β' };
  parts.push(`<text x="${fx + res / 2}" y="${fy + res + tl + fs * 2.6}" font-size="${fs * 1.1}" text-anchor="middle">${esc(labels.alpha)}</text>`);
  parts.push(
    `<text x="${fx - tl - fs * 4.2}" y="${fy + res / 2}" font-size="${fs * 1.1}" text-anchor="middle" transform="rotate(-90 ${fx - tl - fs * 4.2} ${fy + res / 2})">${esc(labels.beta)}</text>`,
  );
  if (o.title) parts.push(`<text x="${fx + res / 2}" y="${fy - fs * 1.2}" font-size="${fs * 1.2}" text-anchor="middle">${esc(o.title)}</text>`);
  // Colour bar.
  const cbx = fx + res + 22 * s;
  const cbw = 22 * s;
  const stops: string[] = [];
  for (let q = 0; q <= 32; q++) {
    const c = Math.round((q / 32) * 255);
    stops.push(`<stop offset="${q / 32}" stop-color="rgb(${lut[c * 3]},${lut[c * 3 + 1]},${lut[c * 3 + 2]})"/>`);
  }
  parts.push(`<defs><linearGradient id="cb" x1="0" y1="1" x2="0" y2="0">${stops.join('')}</linearGradient></defs>`);
  parts.push(`<rect x="${cbx}" y="${fy}" width="${cbw}" height="${res}" fill="url(#cb)" stroke="#000" stroke-width="${sw}"/>`);
  const log = (o.scale ?? 'log') === 'log';
  const cbTicks = log && hi - lo >= 2 ? niceTicks(lo, hi, 8).filter((t) => Number.isInteger(Math.round(t * 1e9) / 1e9)) : niceTicks(lo, hi, 6);
  for (const t of cbTicks) {
    const y = fy + res - ((t - lo) / (hi - lo)) * res;
    parts.push(`<line x1="${cbx + cbw}" y1="${y}" x2="${cbx + cbw + tl}" y2="${y}" stroke="#000" stroke-width="${sw}"/>`);
    const label = log ? (Number.isInteger(Math.round(t * 1e9) / 1e9) ? `1e${Math.round(t)}` : fmt(10 ** t)) : fmt(t);
    parts.push(`<text x="${cbx + cbw + tl + 3 * s}" y="${y + fs * 0.35}" font-size="${fs}">${label}</text>`);
  }
  parts.push(`<text x="${cbx}" y="${fy - fs * 0.6}" font-size="${fs}">${log ? 'L_r (log10)' : 'L_r'}</text>`);
  // Trajectory (clipped to the field by hand: resvg panics on clip paths wholly outside a band),
  // then markers inside the field on top.
  const x0 = fx;
  const x1 = fx + res;
  const y0 = fy;
  const y1 = fy + res;
  const tr = (o.trajectory ?? []).map((p) => [ax(p.alpha), by(p.beta)] as const);
  const segs: string[] = [];
  for (let k = 0; k + 1 < tr.length; k++) {
    // Liang–Barsky
    const [ax0, ay0] = tr[k];
    const dx = tr[k + 1][0] - ax0;
    const dy = tr[k + 1][1] - ay0;
    let t0 = 0;
    let t1 = 1;
    let keep = true;
    for (const [pp, qq] of [
      [-dx, ax0 - x0],
      [dx, x1 - ax0],
      [-dy, ay0 - y0],
      [dy, y1 - ay0],
    ]) {
      if (pp === 0) {
        if (qq < 0) keep = false;
      } else {
        const r = qq / pp;
        if (pp < 0) t0 = Math.max(t0, r);
        else t1 = Math.min(t1, r);
      }
    }
    if (!keep || t0 > t1) continue;
    const f = (v: number) => v.toFixed(2);
    segs.push(`M${f(ax0 + t0 * dx)} ${f(ay0 + t0 * dy)}L${f(ax0 + t1 * dx)} ${f(ay0 + t1 * dy)}`);
  }
  const inside = (x: number, y: number) => x >= x0 && x <= x1 && y >= y0 && y <= y1;
  if (segs.length) parts.push(`<path d="${segs.join('')}" fill="none" stroke="#ff3030" stroke-width="${1.5 * sw}" stroke-opacity="0.9" stroke-linecap="round"/>`);
  if (tr.length > 1 && inside(tr[0][0], tr[0][1])) parts.push(`<circle cx="${tr[0][0]}" cy="${tr[0][1]}" r="${4 * s}" fill="#ff3030"/>`);
  const colors = ['#ffffff', '#ff8c00', '#00e5ff', '#ff3df2', '#7cff00'];
  (plane.markers ?? []).forEach((m, k) => {
    const x = ax(m.alpha);
    const y = by(m.beta);
    if (!inside(x, y)) return;
    const off = (m.offPlane ?? 0) > 1e-6;
    const c = colors[k % colors.length];
    parts.push(`<circle cx="${x}" cy="${y}" r="${5 * s}" fill="${off ? 'none' : c}" stroke="${off ? c : '#000'}" stroke-width="${sw}"/>`);
    parts.push(
      `<text x="${x + 7 * s}" y="${y - 7 * s}" font-size="${fs}" fill="${c}" stroke="#000" stroke-width="${0.25 * s}">${esc(m.name)}${off ? ' (projected)' : ''}</text>`,
    );
  });
  return parts.join('');
}

class PngStream {
  private fd: number;
  private tmp: string;
  private deflate: ReturnType<typeof createDeflate>;
  private failed: Error | null = null;

  constructor(
    private path: string,
    width: number,
    height: number,
    level: number,
  ) {
    this.deflate = createDeflate({ level, chunkSize: 1 << 20 });
    ({ tmp: this.tmp, fd: this.fd } = openTempFile(path));
    writeSync(this.fd, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // RGB
    this.chunk('IHDR', ihdr);
    this.deflate.on('data', (d: Buffer) => {
      try {
        this.chunk('IDAT', d);
      } catch (err) {
        this.failed = err as Error;
      }
    });
  }

  private chunk(type: string, data: Buffer): void {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0, 0);
    writeSync(this.fd, head);
    writeSync(this.fd, data);
    writeSync(this.fd, crc);
  }

  async write(rows: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.deflate.write(rows)) await once(this.deflate, 'drain');
  }

  async finish(): Promise<void> {
    const ended = once(this.deflate, 'end');
    this.deflate.end();
    await ended;
    if (this.failed) throw this.failed;
    this.chunk('IEND', Buffer.alloc(0));
    closeSync(this.fd);
    commitTemp(this.tmp, this.path, '--out');
  }

  abort(): void {
    this.deflate.destroy();
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
    discardTemp(this.tmp);
  }
}

/**
 * Writes the field (res×res, row j ↔ β_j) as a PNG at `path` (atomically).
 */
// log2(1 + m/2^23) at 4097 knots of the top 12 mantissa bits; linear in between (error ≈ 1e-8).
const LOG2_KNOTS = 4096;
let log2Table: Float64Array | undefined;

/**
 * log10 of a float32 from its bits (exponent + tabulated mantissa): ~10× faster than Math.log10
 * over 16384² pixels, and far more accurate than one 256-level colour step needs.
 * Zero and negative values give -Infinity, NaN gives NaN, ±Infinity gives ±Infinity.
 */
export function fastLog10Bits(bits: number): number {
  const t = (log2Table ??= Float64Array.from({ length: LOG2_KNOTS + 1 }, (_, i) => Math.log2(1 + i / LOG2_KNOTS)));
  const e = (bits >>> 23) & 0xff;
  const m = bits & 0x7fffff;
  if (e === 0xff) return m !== 0 ? NaN : bits >>> 31 ? -Infinity : Infinity;
  if (bits >>> 31) return -Infinity; // negative values (L_r never is) sit at the bottom of the scale
  if (e === 0) return m === 0 ? -Infinity : Math.log10(m * 2 ** -149); // zero, denormals
  const idx = m >>> 11;
  const frac = (m & 0x7ff) / 2048;
  return (e - 127 + t[idx] + (t[idx + 1] - t[idx]) * frac) * Math.LOG10E * Math.LN2;
}

export async function writeSurfacePng(path: string, field: Float32Array, res: number, plane: Plane, o: RenderOptions = {}): Promise<RenderInfo> {
  if (field.length !== res * res) throw new DlgInputError('field', `${res}×${res} values`, `${field.length}`);
  const plain = o.plain ?? false;
  const scale = o.scale ?? 'log';
  const lut = colormapLut(o.colormap ?? 'viridis');
  const [lo, hi] = valueRange(field, scale);
  const L = layoutFor(res, plain);
  const { width, height, fx, fy } = L;
  const inv = 255 / (hi - lo);
  const bits = new Uint32Array(field.buffer, field.byteOffset, field.length);
  const log = scale === 'log';
  // Contour levels: every decade (log, when the range spans ≥ 2), else 10 equal steps.
  const contours = !plain && (o.contours ?? true);
  const decades = log && hi - lo >= 2;
  const levelStep = decades ? inv : 25.5;
  const levelBase = decades ? (Math.ceil(lo) - lo) * inv : 0;
  // Per field row: colour index (0..255, 256 = NaN) and contour level.
  const NAN_INDEX = 256;
  const fillRow = (idx: Uint16Array, lvl: Int32Array, y: number) => {
    const off = (res - 1 - y) * res; // PNG row y shows β_j with j = res − 1 − y: β increases upwards
    for (let i = 0; i < res; i++) {
      const x = log ? fastLog10Bits(bits[off + i]) : field[off + i];
      if (Number.isNaN(x)) {
        idx[i] = NAN_INDEX;
        lvl[i] = -1;
        continue;
      }
      let q = (x - lo) * inv;
      q = q < 0 ? 0 : q > 255 ? 255 : q;
      idx[i] = q;
      lvl[i] = Math.floor((q - levelBase) / levelStep);
    }
  };

  // Annotation regions (margins, and the part of the field with markers or a trajectory),
  // each rendered by resvg cropped to the band being written.
  const body = plain ? '' : overlaySvgBody(res, plane, L, lo, hi, o, lut);
  const regions: { x: number; y: number; w: number; h: number; pixels?: Uint8Array }[] = [];
  if (!plain) {
    regions.push({ x: 0, y: 0, w: fx, h: height }, { x: fx + res, y: 0, w: width - fx - res, h: height });
    regions.push({ x: fx, y: 0, w: res, h: fy }, { x: fx, y: fy + res, w: res, h: height - fy - res });
    const inField = fieldOverlayBox(res, plane, L, o);
    if (inField) regions.push(inField);
  }
  const bandRows = plain ? height : Math.max(16, Math.min(height, Math.floor((96 * 2 ** 20) / (width * 4))));
  const png = new PngStream(path, width, height, o.deflateLevel ?? 3);
  const stride = 1 + 3 * width;
  let curIdx = new Uint16Array(res);
  let curLvl = new Int32Array(res);
  let nextIdx = new Uint16Array(res);
  let nextLvl = new Int32Array(res);
  const fontOpts = { fontFiles: [font()], loadSystemFonts: false, defaultFontFamily: 'DejaVu Sans' };
  try {
    fillRow(curIdx, curLvl, 0);
    for (let y0 = 0; y0 < height; y0 += bandRows) {
      const rows = Math.min(bandRows, height - y0);
      const buf = Buffer.alloc(rows * stride, 255);
      for (let r = 0; r < rows; r++) {
        const y = y0 + r;
        const rowOff = r * stride;
        buf[rowOff] = 0; // filter: none
        const fyRow = y - fy;
        if (fyRow < 0 || fyRow >= res) continue;
        const hasNext = fyRow + 1 < res;
        if (hasNext) fillRow(nextIdx, nextLvl, fyRow + 1);
        let o3 = rowOff + 1 + 3 * fx;
        for (let i = 0; i < res; i++, o3 += 3) {
          const q = curIdx[i];
          if (q === NAN_INDEX) {
            buf[o3] = 255;
            buf[o3 + 1] = 0;
            buf[o3 + 2] = 255;
            continue;
          }
          const c = q * 3;
          if (contours) {
            const lv = curLvl[i];
            const right = i + 1 < res ? curLvl[i + 1] : lv;
            const down = hasNext ? nextLvl[i] : lv;
            if ((right !== lv && right >= 0) || (down !== lv && down >= 0)) {
              const w = q < 128 ? 255 * 0.45 : 0;
              buf[o3] = lut[c] * 0.55 + w;
              buf[o3 + 1] = lut[c + 1] * 0.55 + w;
              buf[o3 + 2] = lut[c + 2] * 0.55 + w;
              continue;
            }
          }
          buf[o3] = lut[c];
          buf[o3 + 1] = lut[c + 1];
          buf[o3 + 2] = lut[c + 2];
        }
        if (hasNext) {
          [curIdx, nextIdx] = [nextIdx, curIdx];
          [curLvl, nextLvl] = [nextLvl, curLvl];
        }
      }
      for (const R of regions) {
        const ya = Math.max(R.y, y0);
        const yb = Math.min(R.y + R.h, y0 + rows);
        if (yb <= ya || R.w <= 0) continue;
        // Small regions are rendered once and reused by every band; big ones band by band.
        let over: Uint8Array;
        let oy: number;
        if (R.w * R.h * 4 <= 64 * 2 ** 20) {
          R.pixels ??= renderSvg(body, R.x, R.y, R.w, R.h, fontOpts);
          over = R.pixels;
          oy = R.y;
        } else {
          over = renderSvg(body, R.x, ya, R.w, yb - ya, fontOpts);
          oy = ya;
        }
        for (let yy = ya; yy < yb; yy++) {
          const ob = (yy - oy) * R.w * 4;
          let o3 = (yy - y0) * stride + 1 + 3 * R.x;
          for (let x = 0; x < R.w; x++, o3 += 3) {
            const a = over[ob + 4 * x + 3];
            if (a === 0) continue;
            const k = (255 - a) / 255;
            // resvg pixels are premultiplied RGBA
            buf[o3] = over[ob + 4 * x] + buf[o3] * k + 0.5;
            buf[o3 + 1] = over[ob + 4 * x + 1] + buf[o3 + 1] * k + 0.5;
            buf[o3 + 2] = over[ob + 4 * x + 2] + buf[o3 + 2] * k + 0.5;
          }
        }
      }
      await png.write(buf);
    }
    await png.finish();
  } catch (err) {
    png.abort();
    throw err;
  }
  return { width, height, fieldX: fx, fieldY: fy, lo, hi };
}

/** Renders the overlay's canvas rectangle (x, y, w, h) to premultiplied RGBA. */
function renderSvg(body: string, x: number, y: number, w: number, h: number, font: { fontFiles: string[]; loadSystemFonts: boolean; defaultFontFamily: string }): Uint8Array {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="${x} ${y} ${w} ${h}" font-family="DejaVu Sans">${body}</svg>`;
  return new Resvg(svg, { font, fitTo: { mode: 'original' } }).render().pixels;
}

/** Pixel box inside the field touched by markers and the trajectory (null when none). */
function fieldOverlayBox(res: number, plane: Plane, L: Layout, o: RenderOptions): { x: number; y: number; w: number; h: number } | null {
  const { fx, fy, s } = L;
  const ax = (a: number) => fx + ((a - plane.alpha[0]) / (plane.alpha[1] - plane.alpha[0])) * (res - 1) + 0.5;
  const by = (b: number) => fy + (res - 1) - ((b - plane.beta[0]) / (plane.beta[1] - plane.beta[0])) * (res - 1) + 0.5;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  const see = (x: number, y: number, padX: number, padY: number) => {
    x0 = Math.min(x0, x - padX);
    x1 = Math.max(x1, x + padX);
    y0 = Math.min(y0, y - padY);
    y1 = Math.max(y1, y + padY);
  };
  for (const p of o.trajectory ?? []) see(ax(p.alpha), by(p.beta), 8 * s, 8 * s);
  // Marker: circle plus a label up to ~30 characters to the right.
  for (const m of plane.markers ?? []) see(ax(m.alpha), by(m.beta), 7 * s + 30 * 13 * s * 0.62, 7 * s + 2 * 13 * s);
  if (!(x0 <= x1)) return null;
  const X0 = Math.max(fx, Math.floor(x0));
  const Y0 = Math.max(fy, Math.floor(y0));
  const X1 = Math.min(fx + res, Math.ceil(x1));
  const Y1 = Math.min(fy + res, Math.ceil(y1));
  return X1 > X0 && Y1 > Y0 ? { x: X0, y: Y0, w: X1 - X0, h: Y1 - Y0 } : null;
}
