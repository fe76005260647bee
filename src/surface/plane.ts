/**
 * Planes through input space for loss surfaces: x′(α, β) = c + α·u + β·v, each B×D
 * (row-major, like x). Browser-safe: constructions and validation only, no file I/O.
 */
import { flattestDirections } from '../analysis/diagnose.js';
import { DlgInputError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Scenario } from '../core/scenario.js';
import { parseMatrix } from '../core/scenario.js';

export interface PlaneMarker {
  name: string;
  alpha: number;
  beta: number;
  /** ‖p − x′(α, β)‖ / max(‖p‖, 1e-300): 0 when the point lies in the plane (markers off the plane are projections). */
  offPlane?: number;
}

export interface Plane {
  center: Float64Array; // B·D
  u: Float64Array; // B·D
  v: Float64Array; // B·D
  alpha: [number, number];
  beta: [number, number];
  markers?: PlaneMarker[];
  /** Axis titles for rendering (default "α" and "β"). */
  labels?: { alpha: string; beta: string };
}

/** The JSON file for `--plane file`. */
export interface PlaneJson {
  center: number[][];
  u: number[][];
  v: number[][];
  alpha: [number, number];
  beta: [number, number];
}

/** α_i = α_min + i·(α_max − α_min)/(res − 1), both endpoints exact; the symmetric midpoint is exactly 0. */
export function gridCoord(lo: number, hi: number, res: number, i: number): number {
  if (i <= 0) return lo;
  if (i >= res - 1) return hi;
  return (lo * (res - 1 - i) + hi * i) / (res - 1);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function requireRange(field: string, r: unknown): [number, number] {
  if (!Array.isArray(r) || r.length !== 2) throw new DlgInputError(field, '[min, max]: two finite numbers', describe(r));
  const [lo, hi] = r;
  if (typeof lo !== 'number' || typeof hi !== 'number' || !Number.isFinite(lo) || !Number.isFinite(hi)) {
    throw new DlgInputError(field, '[min, max]: two finite numbers', `[${describe(lo)}, ${describe(hi)}]`);
  }
  if (!(lo < hi)) throw new DlgInputError(field, '[min, max] with min < max', `[${lo}, ${hi}]`);
  return [lo, hi];
}

/**
 * Checks shapes, finiteness, ranges and that u and v span a plane (both non-zero, not parallel).
 * Throws DlgInputError naming what is wrong.
 */
export function validatePlane(plane: Plane, B: number, D: number, what = 'plane'): void {
  const n = B * D;
  for (const key of ['center', 'u', 'v'] as const) {
    const a = plane[key];
    if (!(a instanceof Float64Array) || a.length !== n) {
      throw new DlgInputError(`${what}.${key}`, `${B}×${D} = ${n} numbers`, a instanceof Float64Array ? `${a.length}` : describe(a));
    }
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(a[i])) throw new DlgInputError(`${what}.${key}[${Math.floor(i / D)}][${i % D}]`, 'a finite number', describe(a[i]));
    }
  }
  requireRange(`${what}.alpha`, plane.alpha);
  requireRange(`${what}.beta`, plane.beta);
  const uu = dot(plane.u, plane.u);
  const vv = dot(plane.v, plane.v);
  if (!(uu > 0)) throw new DlgInputError(`${what}.u`, 'a non-zero direction', 'the zero vector');
  if (!(vv > 0)) throw new DlgInputError(`${what}.v`, 'a non-zero direction', 'the zero vector');
  const cos = Math.abs(dot(plane.u, plane.v)) / Math.sqrt(uu * vv);
  if (cos > 1 - 1e-9) throw new DlgInputError(`${what}.v`, 'a direction not parallel to u (the plane is degenerate)', `|cos(u, v)| = ${cos.toPrecision(12)}`);
}

/**
 * Least-squares coordinates of p in the plane: argmin ‖c + αu + βv − p‖, and the relative
 * distance of p from the plane.
 */
export function projectOntoPlane(plane: Plane, p: ArrayLike<number>): { alpha: number; beta: number; offPlane: number } {
  const { center: c, u, v } = plane;
  const uu = dot(u, u);
  const uv = dot(u, v);
  const vv = dot(v, v);
  let ur = 0;
  let vr = 0;
  for (let i = 0; i < c.length; i++) {
    const d = p[i] - c[i];
    ur += u[i] * d;
    vr += v[i] * d;
  }
  const det = uu * vv - uv * uv;
  const alpha = (ur * vv - vr * uv) / det;
  const beta = (vr * uu - ur * uv) / det;
  let res = 0;
  let pn = 0;
  for (let i = 0; i < c.length; i++) {
    const d = c[i] + alpha * u[i] + beta * v[i] - p[i];
    res += d * d;
    pn += p[i] * p[i];
  }
  return { alpha, beta, offPlane: Math.sqrt(res) / Math.max(Math.sqrt(pn), 1e-300) };
}

/** Adds a marker for point p (projected by least squares). */
export function withMarker(plane: Plane, name: string, p: ArrayLike<number>): Plane {
  const m = projectOntoPlane(plane, p);
  return { ...plane, markers: [...(plane.markers ?? []), { name, alpha: m.alpha, beta: m.beta, offPlane: m.offPlane }] };
}

/** A copy of batch x (B×D) with rows i and j swapped: the same gradient, a different batch. */
export function swapRows(x: ArrayLike<number>, i: number, j: number, B: number): Float64Array {
  const out = Float64Array.from(x);
  if (!Number.isInteger(B) || B < 1 || out.length % B !== 0) throw new DlgInputError('swapRows.B', `the number of rows of x (${out.length} numbers)`, describe(B));
  for (const [name, r] of [['i', i], ['j', j]] as const) {
    if (!Number.isInteger(r) || r < 0 || r >= B) throw new DlgInputError(`swap.${name}`, `a row index in [0, ${B - 1}]`, describe(r));
  }
  const D = out.length / B;
  for (let d = 0; d < D; d++) {
    const t = out[i * D + d];
    out[i * D + d] = out[j * D + d];
    out[j * D + d] = t;
  }
  return out;
}

function truthOf(s: Scenario, what: string): Float64Array {
  if (!s.inputs) throw new DlgInputError(what, 'a scenario with "inputs" (the truth), or an explicit center', 'a scenario without inputs');
  return s.inputs;
}

function requireCoord(field: string, c: unknown, B: number, D: number): [number, number] {
  if (!Array.isArray(c) || c.length !== 2) throw new DlgInputError(field, '[sample n, feature d]', describe(c));
  const [n, d] = c;
  if (!Number.isInteger(n) || n < 0 || n >= B) throw new DlgInputError(`${field}[0]`, `a sample index in [0, ${B - 1}]`, describe(n));
  if (!Number.isInteger(d) || d < 0 || d >= D) throw new DlgInputError(`${field}[1]`, `a feature index in [0, ${D - 1}]`, describe(d));
  return [n, d];
}

export interface CoordinatePlaneOptions {
  /** (sample n₁, feature d₁) varied along α. */
  a: [number, number];
  /** (sample n₂, feature d₂) varied along β. */
  b: [number, number];
  /** Where the other coordinates stay (B·D); default the truth. */
  at?: Float64Array;
  /** Ranges of the two coordinates' absolute values; default [min − 2, max + 2] over both truth values. */
  alpha?: [number, number];
  beta?: [number, number];
}

/**
 * (a) Two coordinates: x′[n₁,d₁] = α and x′[n₂,d₂] = β (absolute values, not offsets), every other
 * coordinate at `at` (default the truth). The truth, and the batch with rows n₁, n₂ swapped when
 * that lies in the plane, are marked.
 */
export function coordinatePlane(s: Scenario, o: CoordinatePlaneOptions): Plane {
  const { B, D } = s;
  const [n1, d1] = requireCoord('coords.a', o.a, B, D);
  const [n2, d2] = requireCoord('coords.b', o.b, B, D);
  if (n1 === n2 && d1 === d2) throw new DlgInputError('coords.b', 'a coordinate different from coords.a (else the plane is degenerate)', `[${n2}, ${d2}] twice`);
  const base = o.at ?? truthOf(s, 'coords.at');
  if (base.length !== B * D) throw new DlgInputError('coords.at', `${B}×${D} numbers`, `${base.length}`);
  const center = Float64Array.from(base);
  const ia = n1 * D + d1;
  const ib = n2 * D + d2;
  const ta = center[ia];
  const tb = center[ib];
  center[ia] = 0;
  center[ib] = 0;
  const u = new Float64Array(B * D);
  const v = new Float64Array(B * D);
  u[ia] = 1;
  v[ib] = 1;
  const lo = Math.min(ta, tb) - 2;
  const hi = Math.max(ta, tb) + 2;
  const plane: Plane = {
    center,
    u,
    v,
    alpha: o.alpha ? requireRange('alpha', o.alpha) : [lo, hi],
    beta: o.beta ? requireRange('beta', o.beta) : [lo, hi],
    labels: { alpha: `x[${n1},${d1}]`, beta: `x[${n2},${d2}]` },
  };
  let out = plane;
  if (s.inputs) {
    out = withMarker(out, 'truth', s.inputs);
    if (n1 !== n2) {
      const sw = swapRows(s.inputs, n1, n2, B);
      const m = projectOntoPlane(out, sw);
      if (m.offPlane < 1e-12) out = { ...out, markers: [...(out.markers ?? []), { name: `swap${n1}${n2}`, alpha: m.alpha, beta: m.beta, offPlane: m.offPlane }] };
    }
  }
  validatePlane(out, B, D);
  return out;
}

export interface ThreePointOptions {
  names?: [string, string, string];
  /** Default [−0.5, 1.5]: p0 at (0, 0), p1 at (1, 0), p2 at (0, 1). */
  alpha?: [number, number];
  beta?: [number, number];
}

/** (b) Through three points: c = p0, u = p1 − p0, v = p2 − p0. */
export function threePointPlane(p0: ArrayLike<number>, p1: ArrayLike<number>, p2: ArrayLike<number>, o: ThreePointOptions = {}): Plane {
  const n = p0.length;
  if (p1.length !== n || p2.length !== n) throw new DlgInputError('points', `three points of ${n} numbers`, `${p0.length}, ${p1.length}, ${p2.length}`);
  const center = Float64Array.from(p0);
  const u = new Float64Array(n);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    u[i] = p1[i] - p0[i];
    v[i] = p2[i] - p0[i];
  }
  const names = o.names ?? ['p0', 'p1', 'p2'];
  const plane: Plane = {
    center,
    u,
    v,
    alpha: o.alpha ? requireRange('alpha', o.alpha) : [-0.5, 1.5],
    beta: o.beta ? requireRange('beta', o.beta) : [-0.5, 1.5],
    markers: [
      { name: names[0], alpha: 0, beta: 0, offPlane: 0 },
      { name: names[1], alpha: 1, beta: 0, offPlane: 0 },
      { name: names[2], alpha: 0, beta: 1, offPlane: 0 },
    ],
    labels: { alpha: `α (${names[0]} → ${names[1]})`, beta: `β (${names[0]} → ${names[2]})` },
  };
  const uu = dot(u, u);
  const vv = dot(v, v);
  if (!(uu > 0)) throw new DlgInputError('points[1]', `a point different from ${names[0]}`, `${names[1]} equal to ${names[0]}`);
  if (!(vv > 0)) throw new DlgInputError('points[2]', `a point different from ${names[0]}`, `${names[2]} equal to ${names[0]}`);
  const cos = Math.abs(dot(u, v)) / Math.sqrt(uu * vv);
  if (cos > 1 - 1e-9) throw new DlgInputError('points', 'three points not on one line (the plane is degenerate)', `collinear ${names.join(', ')}`);
  return plane;
}

export interface RandomPlaneOptions {
  seed?: number;
  /** Default the truth. */
  center?: Float64Array;
  /** Li et al. 2018: scale each row (one sample's input, the "filter") of u and v to the norm of the center's row. */
  filterNormalize?: boolean;
  /** α, β ∈ [−span, span]; default 1. */
  span?: number;
  alpha?: [number, number];
  beta?: [number, number];
}

/**
 * (c) Random Gaussian directions, v orthogonalised against u (so the plane is never degenerate).
 * Without filter normalisation u and v are scaled to ‖c‖_F (or to 1 when c = 0).
 */
export function randomPlane(s: Scenario, o: RandomPlaneOptions = {}): Plane {
  const { B, D } = s;
  const n = B * D;
  if (n < 2) throw new DlgInputError('plane', 'B·D ≥ 2 for a random plane', `B·D = ${n}`);
  const center = Float64Array.from(o.center ?? truthOf(s, 'center'));
  if (center.length !== n) throw new DlgInputError('center', `${B}×${D} numbers`, `${center.length}`);
  const rng = new Rng(o.seed ?? 0);
  const u = new Float64Array(n);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) u[i] = rng.normal();
  for (let i = 0; i < n; i++) v[i] = rng.normal();
  // v ⟂ u (twice, for stability).
  for (let pass = 0; pass < 2; pass++) {
    const f = dot(u, v) / dot(u, u);
    for (let i = 0; i < n; i++) v[i] -= f * u[i];
  }
  if (o.filterNormalize) {
    for (const dir of [u, v]) {
      for (let r = 0; r < B; r++) {
        let dn = 0;
        let cn = 0;
        for (let d = 0; d < D; d++) {
          dn += dir[r * D + d] ** 2;
          cn += center[r * D + d] ** 2;
        }
        const f = dn > 0 ? Math.sqrt(cn) / Math.sqrt(dn) : 0;
        for (let d = 0; d < D; d++) dir[r * D + d] *= cn > 0 ? f : 1 / Math.sqrt(dn || 1);
      }
    }
  } else {
    const cn = Math.sqrt(dot(center, center)) || 1;
    for (const dir of [u, v]) {
      const f = cn / Math.sqrt(dot(dir, dir));
      for (let i = 0; i < n; i++) dir[i] *= f;
    }
  }
  const span = o.span ?? 1;
  if (!(Number.isFinite(span) && span > 0)) throw new DlgInputError('span', 'a positive finite number', describe(span));
  let plane: Plane = {
    center,
    u,
    v,
    alpha: o.alpha ? requireRange('alpha', o.alpha) : [-span, span],
    beta: o.beta ? requireRange('beta', o.beta) : [-span, span],
    labels: { alpha: `α (random u${o.filterNormalize ? ', filter-normalised' : ''})`, beta: `β (random v)` },
  };
  if (s.inputs) plane = withMarker(plane, 'truth', s.inputs);
  validatePlane(plane, B, D);
  return plane;
}

export interface FlattestPlaneOptions {
  /** α, β ∈ [−span, span] along the unit directions; default 1. */
  span?: number;
  alpha?: [number, number];
  beta?: [number, number];
}

/**
 * The two flattest directions of L_r at the truth (smallest non-zero curvatures of
 * ∇²L_r = 2JᵀJ, from diagnose.ts), centred at the truth, which is marked.
 */
export function flattestPlane(s: Scenario, o: FlattestPlaneOptions = {}): Plane {
  const truth = truthOf(s, 'plane flattest');
  const { u, v } = flattestDirections(s);
  const span = o.span ?? 1;
  if (!(Number.isFinite(span) && span > 0)) throw new DlgInputError('span', 'a positive finite number', describe(span));
  let plane: Plane = {
    center: Float64Array.from(truth),
    u: Float64Array.from(u),
    v: Float64Array.from(v),
    alpha: o.alpha ? requireRange('alpha', o.alpha) : [-span, span],
    beta: o.beta ? requireRange('beta', o.beta) : [-span, span],
    labels: { alpha: 'α (flattest direction)', beta: 'β (second flattest)' },
  };
  plane = withMarker(plane, 'truth', truth);
  validatePlane(plane, s.B, s.D);
  return plane;
}

/** (d) Explicit vectors from JSON: {"center": B×D, "u": B×D, "v": B×D, "alpha": [min, max], "beta": [min, max]}. */
export function explicitPlane(json: unknown, shape?: { B: number; D: number }): Plane {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new DlgInputError('plane file', 'a JSON object {"center", "u", "v", "alpha", "beta"}', describe(json));
  }
  const o = json as Record<string, unknown>;
  const c = parseMatrix('plane.center', o.center, shape?.B, shape?.D);
  const u = parseMatrix('plane.u', o.u, c.rows, c.cols);
  const v = parseMatrix('plane.v', o.v, c.rows, c.cols);
  const plane: Plane = {
    center: c.data,
    u: u.data,
    v: v.data,
    alpha: requireRange('plane.alpha', o.alpha),
    beta: requireRange('plane.beta', o.beta),
  };
  validatePlane(plane, c.rows, c.cols);
  return plane;
}

/** The JSON form of a plane (for --plane file round trips). */
export function planeToJson(plane: Plane, B: number, D: number): PlaneJson {
  const rows = (a: Float64Array) => Array.from({ length: B }, (_, n) => Array.from(a.subarray(n * D, (n + 1) * D)));
  return { center: rows(plane.center), u: rows(plane.u), v: rows(plane.v), alpha: [...plane.alpha], beta: [...plane.beta] };
}
