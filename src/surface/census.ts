/**
 * Basin census of a loss-surface field: its 8-neighbour local minima, how many are (near)
 * exact solutions, and how flat the plane is around the best one. Browser-safe.
 * Field layout as everywhere: field[j·res + i], row j ↔ β_j, column i ↔ α_i.
 */
import { DlgInputError, describe } from '../core/errors.js';
import { gridCoord } from './plane.js';

export interface CensusMinimum {
  i: number;
  j: number;
  alpha: number;
  beta: number;
  value: number;
  /** value / scale (scale = ‖G‖² + ‖g‖² by default). */
  relative: number;
  /** On the edge of the grid: maybe only the lowest point of a slope leaving the plane. */
  border: boolean;
  /** Pixels in its plateau of exactly equal values (1 for an ordinary minimum). */
  plateau: number;
}

export interface Census {
  resolution: number;
  scale: number;
  /** All local minima found (plateaus of equal values count once). */
  count: number;
  radius: number;
  interior: number;
  /** Minima with value ≤ zeroThreshold: distinct near-exact solutions seen in this slice. */
  nearZero: number;
  zeroTol: number;
  zeroThreshold: number;
  /** The lowest minima, best first (at most `listed`). */
  minima: CensusMinimum[];
  min: { value: number; relative: number; alpha: number; beta: number; i: number; j: number };
  /** Fraction of grid points with L_r ≤ flatThreshold = flatFactor · max(min, noiseFloor). */
  flatFraction: number;
  flatFactor: number;
  flatThreshold: number;
  noiseFloor: number;
  nonFinite: number;
}

export interface CensusOptions {
  alpha?: [number, number];
  beta?: [number, number];
  /** ‖G‖² + ‖g‖² (what "relative" and zeroTol refer to); default 1. */
  scale?: number;
  /** Near-zero tolerance relative to scale; default 1e-6. */
  zeroTol?: number;
  /** Default 10 (the "within 10× of the minimum"). */
  flatFactor?: number;
  /** Values below noiseFloor·scale are f32 noise; flatness uses max(min, that). Default 1e-12. */
  noiseFloor?: number;
  /** How many minima to list; default 20. */
  listed?: number;
  /**
   * A minimum must also be ≤ every value within this many grid steps (default 3): pixel-scale
   * "minima" along a narrow valley that is not grid-aligned are sampling artefacts. 1 = plain 8-neighbour.
   */
  radius?: number;
}

/**
 * Finds local minima: value ≤ all existing 8 neighbours and ≤ everything within `radius` steps;
 * equal-valued connected ones are merged.
 */
export function basinCensus(field: ArrayLike<number>, res: number, opts: CensusOptions = {}): Census {
  if (!Number.isInteger(res) || res < 2 || field.length !== res * res) {
    throw new DlgInputError('field', `res×res values with res ≥ 2`, `${field.length} values for res = ${describe(res)}`);
  }
  const alpha = opts.alpha ?? [0, res - 1];
  const beta = opts.beta ?? [0, res - 1];
  const scale = opts.scale ?? 1;
  const zeroTol = opts.zeroTol ?? 1e-6;
  const flatFactor = opts.flatFactor ?? 10;
  const noiseFloor = (opts.noiseFloor ?? 1e-12) * scale;
  const listed = opts.listed ?? 20;
  const radius = opts.radius ?? 3;
  if (!Number.isInteger(radius) || radius < 1) throw new DlgInputError('radius', 'an integer ≥ 1', describe(radius));
  const zeroThreshold = zeroTol * scale;

  const candidates: number[] = [];
  let nonFinite = 0;
  let best = -1;
  for (let j = 0; j < res; j++) {
    const edgeRow = j === 0 || j === res - 1;
    for (let i = 0; i < res; i++) {
      const p = j * res + i;
      const v = field[p];
      if (!(v === v) || v === Infinity || v === -Infinity) {
        nonFinite++;
        continue;
      }
      if (best < 0 || v < field[best]) best = p;
      // Interior fast path: reject as soon as one neighbour is smaller (NaN neighbours never are).
      if (!edgeRow && i > 0 && i < res - 1) {
        const u = p - res;
        const d = p + res;
        if (field[p - 1] < v || field[p + 1] < v || field[u] < v || field[d] < v || field[u - 1] < v || field[u + 1] < v || field[d - 1] < v || field[d + 1] < v) continue;
        candidates.push(p);
        continue;
      }
      let isMin = true;
      for (let dj = -1; dj <= 1 && isMin; dj++) {
        const jj = j + dj;
        if (jj < 0 || jj >= res) continue;
        for (let di = -1; di <= 1; di++) {
          const ii = i + di;
          if ((di === 0 && dj === 0) || ii < 0 || ii >= res) continue;
          if (field[jj * res + ii] < v) {
            isMin = false;
            break;
          }
        }
      }
      if (isMin) candidates.push(p);
    }
  }
  // Wider window: drop candidates with a lower value within `radius` steps.
  if (radius > 1) {
    const kept: number[] = [];
    for (const p of candidates) {
      const v = field[p];
      const i = p % res;
      const j = (p - i) / res;
      let ok = true;
      for (let jj = Math.max(0, j - radius); jj <= Math.min(res - 1, j + radius) && ok; jj++) {
        for (let ii = Math.max(0, i - radius); ii <= Math.min(res - 1, i + radius); ii++) {
          if (field[jj * res + ii] < v) {
            ok = false;
            break;
          }
        }
      }
      if (ok) kept.push(p);
    }
    candidates.length = 0;
    candidates.push(...kept);
  }
  // Merge plateaus: connected candidates with exactly the same value are one minimum.
  const cand = new Set(candidates);
  const seen = new Set<number>();
  const minima: CensusMinimum[] = [];
  for (const p of candidates) {
    if (seen.has(p)) continue;
    const v = field[p];
    const stack = [p];
    seen.add(p);
    let size = 0;
    let border = false;
    while (stack.length) {
      const q = stack.pop() as number;
      size++;
      const qi = q % res;
      const qj = (q - qi) / res;
      if (qi === 0 || qj === 0 || qi === res - 1 || qj === res - 1) border = true;
      for (let dj = -1; dj <= 1; dj++) {
        for (let di = -1; di <= 1; di++) {
          const ii = qi + di;
          const jj = qj + dj;
          if (ii < 0 || jj < 0 || ii >= res || jj >= res) continue;
          const nq = jj * res + ii;
          if (!seen.has(nq) && cand.has(nq) && field[nq] === v) {
            seen.add(nq);
            stack.push(nq);
          }
        }
      }
    }
    const i = p % res;
    const j = (p - i) / res;
    minima.push({
      i,
      j,
      alpha: gridCoord(alpha[0], alpha[1], res, i),
      beta: gridCoord(beta[0], beta[1], res, j),
      value: v,
      relative: v / scale,
      border,
      plateau: size,
    });
  }
  minima.sort((a, b) => a.value - b.value || a.j - b.j || a.i - b.i);
  const nearZero = minima.filter((m) => m.value <= zeroThreshold).length;

  const minValue = best >= 0 ? field[best] : NaN;
  const flatThreshold = flatFactor * Math.max(minValue, noiseFloor);
  let flat = 0;
  for (let p = 0; p < res * res; p++) if (field[p] <= flatThreshold) flat++;
  const bi = best >= 0 ? best % res : -1;
  const bj = best >= 0 ? (best - bi) / res : -1;
  return {
    resolution: res,
    scale,
    count: minima.length,
    radius,
    interior: minima.filter((m) => !m.border).length,
    nearZero,
    zeroTol,
    zeroThreshold,
    minima: minima.slice(0, listed),
    min: {
      value: minValue,
      relative: minValue / scale,
      alpha: best >= 0 ? gridCoord(alpha[0], alpha[1], res, bi) : NaN,
      beta: best >= 0 ? gridCoord(beta[0], beta[1], res, bj) : NaN,
      i: bi,
      j: bj,
    },
    flatFraction: flat / (res * res),
    flatFactor,
    flatThreshold,
    noiseFloor,
    nonFinite,
  };
}

/** A few human-readable lines. */
export function formatCensus(c: Census): string {
  const g = (x: number) => x.toPrecision(3);
  const lines = [
    `basin census (${c.resolution}²): ${c.count} local minima (${c.interior} interior), ${c.nearZero} near zero (L_r ≤ ${g(c.zeroTol)}·‖G‖²)`,
    `  lowest: L_r = ${g(c.min.value)} (${g(c.min.relative)}·‖G‖²) at α = ${g(c.min.alpha)}, β = ${g(c.min.beta)}`,
    `  flatness: ${(100 * c.flatFraction).toPrecision(3)}% of the plane has L_r ≤ ${c.flatFactor}× the minimum (≤ ${g(c.flatThreshold)})`,
  ];
  for (const m of c.minima.slice(0, 5)) {
    lines.push(`  min L_r = ${g(m.value)} (${g(m.relative)}·‖G‖²) at α = ${g(m.alpha)}, β = ${g(m.beta)}${m.border ? ' [border]' : ''}`);
  }
  if (c.nonFinite) lines.push(`  ${c.nonFinite} non-finite values`);
  return lines.join('\n');
}
