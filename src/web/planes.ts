/**
 * The explorer's planes: the plane the settings name (through the true inputs), the slice direction
 * off it, and a cheap identity for caching renders.
 */
import { DlgInputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Scenario } from '../core/scenario.js';
import { type Plane, coordinatePlane, randomPlane, swapRows, threePointPlane } from '../surface/plane.js';
import type { Settings } from './controls.js';

export function defaultSpan(kind: Settings['plane']): number {
  return kind === 'coords' ? 2 : 1;
}

/** The plane from the settings (no view transform). */
export function buildPlane(s: Settings, sc: Scenario, attack: { startX: ArrayLike<number> | null; bestX: ArrayLike<number> | null }): Plane {
  const truth = sc.inputs!;
  const h = s.span;
  switch (s.plane) {
    case 'coords': {
      const p = coordinatePlane(sc, { a: [s.n1, s.d1], b: [s.n2, s.d2] });
      const ta = truth[s.n1 * sc.D + s.d1];
      const tb = truth[s.n2 * sc.D + s.d2];
      const lo = Math.min(ta, tb) - h;
      const hi = Math.max(ta, tb) + h;
      return { ...p, alpha: [lo, hi], beta: [lo, hi] };
    }
    case 'random':
    case 'filter':
      return randomPlane(sc, { seed: s.planeSeed, filterNormalize: s.plane === 'filter', span: h });
    case 'swap': {
      if (sc.B < 2) throw new DlgInputError('plane', 'B ≥ 2 for the plane through the truth and its row swap', `B = ${sc.B}`);
      const p = threePointPlane(truth, swapRows(truth, 0, 1, sc.B), new Float64Array(truth.length), { names: ['truth', 'swap01', 'origin'], alpha: [0.5 - h, 0.5 + h], beta: [0.5 - h, 0.5 + h] });
      return p;
    }
    case 'attack': {
      if (!attack.bestX || !attack.startX || attack.bestX.length !== truth.length) {
        throw new DlgInputError('plane', 'an attack on this scenario first (the plane goes through the truth, a restart start and its end)', 'no attack yet');
      }
      return threePointPlane(truth, attack.startX, attack.bestX, { names: ['truth', 'start', 'end'], alpha: [0.5 - h, 0.5 + h], beta: [0.5 - h, 0.5 + h] });
    }
  }
}

/** A fixed direction orthogonal to u and v (norm ‖u‖), for moving the slice centre off the plane. */
export function offPlaneDirection(p: Plane, seed: number): Float64Array | null {
  const n = p.center.length;
  if (n < 3) return null;
  const rng = new Rng(seed + 0x5eed);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal();
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, x, i) => acc + x * b[i], 0);
  // Gram–Schmidt against u and v (v is not orthogonal to u in general: orthogonalise it first).
  const u = p.u;
  const v2 = Float64Array.from(p.v);
  const fuv = dot(u, v2) / dot(u, u);
  for (let i = 0; i < n; i++) v2[i] -= fuv * u[i];
  for (let pass = 0; pass < 2; pass++) {
    for (const d of [u, v2]) {
      const f = dot(d, w) / dot(d, d);
      for (let i = 0; i < n; i++) w[i] -= f * d[i];
    }
  }
  const wn = Math.sqrt(dot(w, w));
  if (!(wn > 1e-12)) return null;
  const scale = Math.sqrt(dot(u, u)) / wn;
  for (let i = 0; i < n; i++) w[i] *= scale;
  return w;
}

export function planeSignature(p: Plane): string {
  // Cheap identity of a plane: ranges plus a checksum of the vectors.
  let h = 0;
  for (const a of [p.center, p.u, p.v]) for (let i = 0; i < a.length; i++) h = (h * 31 + a[i] * (i + 1)) % 1e12;
  return `${p.alpha.join(',')}|${p.beta.join(',')}|${h}`;
}
