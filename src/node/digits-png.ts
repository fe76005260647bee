/**
 * A PNG of true vs reconstructed images (8×8 digits, or any square D), one sample per row:
 * true on the left, reconstruction on the right. Node only (pngjs).
 * Grey levels: ink dark on white, both images on the same scale (the truth's range), clamped.
 */
import { PNG } from 'pngjs';
import { DlgInputError } from '../core/errors.js';
import { imageSide } from '../analysis/matching.js';
import { writeFileAtomic } from './io.js';

export interface DigitsPngOptions {
  B: number;
  D: number;
  /** Reconstruction, B×D, rows already matched to the truth's order when truth is given. */
  reconstruction: ArrayLike<number>;
  /** True inputs B×D; when missing only the reconstruction column is drawn. */
  truth?: ArrayLike<number>;
  /** Screen pixels per image pixel (default 8). */
  scale?: number;
}

const GAP = 4; // pixels between images and around the border

export function renderDigitsPng(o: DigitsPngOptions): Buffer {
  const side = imageSide(o.D);
  if (side === undefined) throw new DlgInputError('png', 'a scenario whose inputs are square images (D = s², s ≥ 8, e.g. 64 for digits)', `D = ${o.D}`);
  const scale = o.scale ?? 8;
  const { B, D } = o;
  if (o.reconstruction.length !== B * D) throw new DlgInputError('reconstruction', `${B}×${D} values`, `${o.reconstruction.length}`);
  if (o.truth && o.truth.length !== B * D) throw new DlgInputError('inputs', `${B}×${D} values`, `${o.truth.length}`);
  const ref = o.truth ?? o.reconstruction;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isFinite(ref[i])) {
      lo = Math.min(lo, ref[i]);
      hi = Math.max(hi, ref[i]);
    }
  }
  if (!(hi > lo)) {
    lo = Math.min(0, Number.isFinite(lo) ? lo : 0);
    hi = lo + 1;
  }
  const panels = o.truth ? 2 : 1;
  const cell = side * scale;
  const width = GAP + panels * (cell + GAP);
  const height = GAP + B * (cell + GAP);
  const png = new PNG({ width, height, colorType: 2 });
  // Light grey frame so the white image background stays visible.
  for (let i = 0; i < width * height; i++) {
    png.data[4 * i] = 200;
    png.data[4 * i + 1] = 200;
    png.data[4 * i + 2] = 200;
    png.data[4 * i + 3] = 255;
  }
  const draw = (img: ArrayLike<number>, n: number, panel: number) => {
    const x0 = GAP + panel * (cell + GAP);
    const y0 = GAP + n * (cell + GAP);
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) {
        const v = img[n * D + r * side + c];
        // Non-finite values show as red, so they are never mistaken for ink.
        const t = Number.isFinite(v) ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : -1;
        const grey = Math.round(255 * (1 - t));
        const rgb = t < 0 ? [255, 0, 0] : [grey, grey, grey];
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const p = 4 * ((y0 + r * scale + dy) * width + x0 + c * scale + dx);
            png.data[p] = rgb[0];
            png.data[p + 1] = rgb[1];
            png.data[p + 2] = rgb[2];
          }
        }
      }
    }
  };
  for (let n = 0; n < B; n++) {
    if (o.truth) draw(o.truth, n, 0);
    draw(o.reconstruction, n, panels - 1);
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Renders and writes the PNG atomically. */
export function writeDigitsPng(path: string, o: DigitsPngOptions): void {
  writeFileAtomic(path, renderDigitsPng(o));
}
