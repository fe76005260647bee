/** Canvas drawing for the explorer: colour bar, overlay (markers, trajectories), loss curve, digit images. */
import { type ColorMapName, type ScaleDomain, lut, tickLabel, ticks } from './colormap.js';

/** Sizes a canvas's backing store to its CSS box × devicePixelRatio; returns the 2-D context scaled to CSS px. */
export function fitCanvas(c: HTMLCanvasElement, cssW: number, cssH: number): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(cssW * dpr);
  const h = Math.round(cssH * dpr);
  if (c.width !== w || c.height !== h) {
    c.width = w;
    c.height = h;
  }
  c.style.width = `${cssW}px`;
  c.style.height = `${cssH}px`;
  const ctx = c.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  return ctx;
}

/** Vertical colour bar with tick values; `height` CSS px, bar drawn at the left. */
export function drawColorBar(c: HTMLCanvasElement, domain: ScaleDomain, cmap: ColorMapName, height: number): void {
  const W = 78;
  const ctx = fitCanvas(c, W, height);
  const table = lut(cmap);
  const barW = 18;
  const top = 6;
  const h = height - 12;
  for (let y = 0; y < h; y++) {
    const t = Math.round(255 * (1 - y / (h - 1)));
    const v = table[t];
    ctx.fillStyle = `rgb(${v & 255},${(v >> 8) & 255},${(v >> 16) & 255})`;
    ctx.fillRect(0, top + y, barW, 1);
  }
  ctx.strokeStyle = '#888';
  ctx.strokeRect(0.5, top + 0.5, barW - 1, h - 1);
  ctx.fillStyle = '#ddd';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  const span = domain.hi - domain.lo;
  for (const v of ticks(domain)) {
    const y = top + (1 - (v - domain.lo) / span) * (h - 1);
    ctx.fillRect(barW, Math.round(y), 4, 1);
    ctx.fillText(tickLabel(domain, v), barW + 7, y);
  }
}

export interface View {
  alpha: [number, number];
  beta: [number, number];
  res: number;
  size: number; // CSS px of the square plot
}

/** (α, β) → CSS px in the plot (β up), aligned to pixel centres of the res×res field image. */
export function toPx(v: View, a: number, b: number): [number, number] {
  const fa = (a - v.alpha[0]) / (v.alpha[1] - v.alpha[0]);
  const fb = (b - v.beta[0]) / (v.beta[1] - v.beta[0]);
  const s = v.size / v.res;
  return [(fa * (v.res - 1) + 0.5) * s, (v.res - 0.5 - fb * (v.res - 1)) * s];
}

/** CSS px → (α, β): the inverse of toPx. */
export function fromPx(v: View, x: number, y: number): [number, number] {
  const s = v.size / v.res;
  const fa = (x / s - 0.5) / (v.res - 1);
  const fb = (v.res - 0.5 - y / s) / (v.res - 1);
  return [v.alpha[0] + fa * (v.alpha[1] - v.alpha[0]), v.beta[0] + fb * (v.beta[1] - v.beta[0])];
}

export interface Marker {
  label: string;
  alpha: number;
  beta: number;
}

const TRAJ_COLOURS = ['#ff5a5a', '#5ad1ff', '#ffd65a', '#7dff7a', '#ff7ae6', '#ffa75a', '#b9a3ff', '#9fe3d0'];

/** Overlay: axis ticks, the slice centre crosshair, markers and attack trajectories (each a list of (α, β)). */
export function drawOverlay(
  c: HTMLCanvasElement,
  v: View,
  centre: [number, number] | null,
  markers: Marker[],
  trajectories: [number, number][][],
  best: number,
): void {
  const ctx = fitCanvas(c, v.size, v.size);
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, 0, v.size, v.size);
  ctx.clip();
  trajectories.forEach((tr, p) => {
    if (tr.length === 0) return;
    const col = p === best ? '#ffffff' : TRAJ_COLOURS[p % TRAJ_COLOURS.length];
    ctx.strokeStyle = col;
    ctx.globalAlpha = p === best ? 1 : 0.55;
    ctx.lineWidth = p === best ? 2 : 1;
    ctx.beginPath();
    tr.forEach(([a, b], i) => {
      const [x, y] = toPx(v, a, b);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    const [sx, sy] = toPx(v, tr[0][0], tr[0][1]);
    ctx.fillStyle = col;
    ctx.fillRect(sx - 2, sy - 2, 4, 4);
    const [ex, ey] = toPx(v, tr[tr.length - 1][0], tr[tr.length - 1][1]);
    ctx.beginPath();
    ctx.arc(ex, ey, p === best ? 4 : 2.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
  if (centre) {
    const [x, y] = toPx(v, centre[0], centre[1]);
    ctx.strokeStyle = 'rgba(255,255,255,0.6)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x - 8, y);
    ctx.lineTo(x + 8, y);
    ctx.moveTo(x, y - 8);
    ctx.lineTo(x, y + 8);
    ctx.stroke();
  }
  ctx.font = '12px system-ui, sans-serif';
  ctx.textBaseline = 'bottom';
  for (const m of markers) {
    const [x, y] = toPx(v, m.alpha, m.beta);
    ctx.beginPath();
    ctx.arc(x, y, 5, 0, 2 * Math.PI);
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#000';
    ctx.stroke();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = '#fff';
    ctx.stroke();
    ctx.fillStyle = '#fff';
    ctx.strokeStyle = '#000';
    ctx.lineWidth = 3;
    ctx.strokeText(m.label, x + 7, y - 3);
    ctx.fillText(m.label, x + 7, y - 3);
  }
  ctx.restore();
}

/** Axis ticks beside the plot: `axisX` below (α), `axisY` left (β). */
export function drawAxes(xAxis: HTMLCanvasElement, yAxis: HTMLCanvasElement, v: View, names: [string, string]): void {
  const cx = fitCanvas(xAxis, v.size, 34);
  cx.fillStyle = '#ccc';
  cx.strokeStyle = '#ccc';
  cx.font = '11px system-ui, sans-serif';
  cx.textAlign = 'center';
  cx.textBaseline = 'top';
  const aDomain: ScaleDomain = { kind: 'linear', lo: v.alpha[0], hi: v.alpha[1] };
  for (const a of ticks(aDomain, 6)) {
    const [x] = toPx(v, a, v.beta[0]);
    cx.fillRect(Math.round(x), 0, 1, 4);
    cx.textAlign = x < 20 ? 'left' : x > v.size - 20 ? 'right' : 'center';
    cx.fillText(tickLabel(aDomain, a), x, 5);
  }
  cx.textAlign = 'center';
  cx.fillText(names[0], v.size / 2, 20);
  const cy = fitCanvas(yAxis, 56, v.size);
  cy.fillStyle = '#ccc';
  cy.font = '11px system-ui, sans-serif';
  cy.textAlign = 'right';
  cy.textBaseline = 'middle';
  const bDomain: ScaleDomain = { kind: 'linear', lo: v.beta[0], hi: v.beta[1] };
  for (const b of ticks(bDomain, 6)) {
    const [, y] = toPx(v, v.alpha[0], b);
    cy.fillRect(52, Math.round(y), 4, 1);
    cy.fillText(tickLabel(bDomain, b), 50, Math.min(Math.max(y, 8), v.size - 8));
  }
  cy.save();
  cy.translate(8, v.size / 2);
  cy.rotate(-Math.PI / 2);
  cy.textAlign = 'center';
  cy.fillText(names[1], 0, 0);
  cy.restore();
}

export interface LossSeries {
  iterations: number[];
  best: number[];
  median: number[];
}

/** Loss curve on a log10 y axis: best restart (solid) and median restart (dashed). */
export function drawLossCurve(c: HTMLCanvasElement, s: LossSeries, width: number, height: number, tolerance?: number): void {
  const ctx = fitCanvas(c, width, height);
  const L = 46;
  const R = 8;
  const T = 8;
  const Bm = 24;
  const w = width - L - R;
  const h = height - T - Bm;
  ctx.strokeStyle = '#666';
  ctx.strokeRect(L + 0.5, T + 0.5, w, h);
  ctx.fillStyle = '#ccc';
  ctx.font = '11px system-ui, sans-serif';
  const vals = [...s.best, ...s.median, ...(tolerance ? [tolerance] : [])].filter((x) => x > 0 && Number.isFinite(x));
  if (s.iterations.length === 0 || vals.length === 0) {
    ctx.fillText('run an attack to see its loss curve', L + 8, T + h / 2);
    return;
  }
  let lo = Math.floor(Math.log10(Math.min(...vals)));
  let hi = Math.ceil(Math.log10(Math.max(...vals)));
  if (hi <= lo) hi = lo + 1;
  if (hi - lo > 40) lo = hi - 40;
  const itMax = Math.max(1, s.iterations[s.iterations.length - 1]);
  const X = (it: number) => L + (it / itMax) * w;
  const Y = (v: number) => T + (1 - (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * h;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  const step = Math.max(1, Math.ceil((hi - lo) / 6));
  for (let d = lo; d <= hi; d += step) {
    ctx.fillText(`1e${d}`, L - 4, Y(10 ** d));
    ctx.fillStyle = '#333';
    ctx.fillRect(L + 1, Math.round(Y(10 ** d)), w - 1, 1);
    ctx.fillStyle = '#ccc';
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  ctx.fillText('0', L, T + h + 4);
  ctx.fillText(String(itMax), L + w - 10, T + h + 4);
  ctx.fillText('iteration', L + w / 2, T + h + 4);
  if (tolerance && tolerance > 0) {
    ctx.strokeStyle = '#7dff7a';
    ctx.setLineDash([2, 3]);
    ctx.beginPath();
    ctx.moveTo(L, Y(tolerance));
    ctx.lineTo(L + w, Y(tolerance));
    ctx.stroke();
  }
  const line = (ys: number[], colour: string, dash: number[]) => {
    ctx.strokeStyle = colour;
    ctx.setLineDash(dash);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ys.forEach((v, i) => {
      const x = X(s.iterations[i]);
      const y = Y(Number.isFinite(v) ? v : 10 ** hi);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(s.median, '#5ad1ff', [4, 3]);
  line(s.best, '#ff5a5a', []);
  ctx.setLineDash([]);
  ctx.textAlign = 'left';
  ctx.fillStyle = '#ff5a5a';
  ctx.fillText('best', L + 6, T + 4);
  ctx.fillStyle = '#5ad1ff';
  ctx.fillText('median', L + 40, T + 4);
}

/** One grey-scale image (side×side, values mapped from [lo, hi]) scaled up `scale` times. */
export function drawImage(c: HTMLCanvasElement, x: ArrayLike<number>, off: number, side: number, lo: number, hi: number, scale: number): void {
  c.width = side;
  c.height = side;
  c.style.width = `${side * scale}px`;
  c.style.height = `${side * scale}px`;
  c.style.imageRendering = 'pixelated';
  const ctx = c.getContext('2d')!;
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    const v = x[off + i];
    const g = Number.isFinite(v) ? Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo || 1)))) : 0;
    // Digits are dark strokes on white, as in the data set's scans.
    img.data[4 * i] = 255 - g;
    img.data[4 * i + 1] = Number.isFinite(v) ? 255 - g : 0;
    img.data[4 * i + 2] = 255 - g;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
