import { describe, expect, it } from 'vitest';
import { basinCensus } from '../src/surface/census.js';
import { DlgInputError } from '../src/core/errors.js';
import { type Reduction, gradientNormSq, matchL2 } from '../src/core/model.js';
import {
  type Plane,
  coordinatePlane,
  explicitPlane,
  flattestPlane,
  gridCoord,
  projectOntoPlane,
  randomPlane,
  swapRows,
  threePointPlane,
  validatePlane,
} from '../src/surface/plane.js';
import { Rng } from '../src/core/rng.js';
import { type Scenario, makeScenario } from '../src/core/scenario.js';
import {
  type SurfaceKernel,
  autoPrefersUnrolled,
  checkResolution,
  createSurface,
  projectionBasis,
  surface,
  surfaceCpu,
  surfaceCpuAt,
  surfacePrecompute,
} from '../src/surface/surface.js';
import { useGpu } from './helpers.js';
import { adapterProfile } from '../src/gpu/gpu.js';
import { chooseKernel, kernelSpec } from '../src/gpu/kernels.js';

const gpu = useGpu();
/** Whether auto ranks the unrolled surface kernel on the test adapter (llvmpipe only). */
const unrolledRanked = (): boolean => kernelSpec('surface', 'unrolled').rank[adapterProfile(gpu()).kind] !== undefined;

function scenario(B: number, D: number, K: number, seed = 1, reduction: Reduction = 'mean', soft = false): Scenario {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => (soft ? rng.uniform() : rng.uniform() < 0.5 ? 0 : 1));
  const x = Float64Array.from({ length: B * D }, () => rng.normal());
  return makeScenario({ B, D, K, W, b, y, reduction }, x);
}

function randomPoints(rng: Rng, res: number, n: number): [number, number][] {
  return Array.from({ length: n }, () => [rng.int(res), rng.int(res)] as [number, number]);
}

describe('planes', () => {
  it('grid coordinates include both endpoints and put 0 exactly in the middle of a symmetric odd grid', () => {
    expect(gridCoord(-2, 2, 5, 0)).toBe(-2);
    expect(gridCoord(-2, 2, 5, 4)).toBe(2);
    for (const res of [3, 65, 1025, 16383]) expect(gridCoord(-1.7, 1.7, res, (res - 1) / 2)).toBe(0);
    expect(gridCoord(-0.5, 1.5, 65, 16)).toBe(0);
  });

  it('coordinate plane: absolute coordinates, truth and (equal-label) swap marked; bad coordinates rejected', () => {
    const s = scenario(2, 1, 1);
    s.y[1] = s.y[0]; // equal labels: the swapped batch gives the same gradient
    const p = coordinatePlane(s, { a: [0, 0], b: [1, 0] });
    const truth = p.markers!.find((m) => m.name === 'truth')!;
    expect(truth.alpha).toBeCloseTo(s.inputs![0], 14);
    expect(truth.beta).toBeCloseTo(s.inputs![1], 14);
    const sw = p.markers!.find((m) => m.name === 'swap01')!;
    expect(sw.alpha).toBeCloseTo(s.inputs![1], 14);
    expect(() => coordinatePlane(s, { a: [0, 0], b: [2, 0] })).toThrow(/coords\.b\[0\].*\[0, 1\]/);
    expect(() => coordinatePlane(s, { a: [0, 1], b: [1, 0] })).toThrow(/coords\.a\[1\]/);
    expect(() => coordinatePlane(s, { a: [0, 0], b: [0, 0] })).toThrow(DlgInputError);
  });

  it('degenerate planes are rejected: u ∥ v, zero vectors, collinear points, bad ranges', () => {
    const s = scenario(2, 3, 2);
    const x = s.inputs!;
    const u = Float64Array.from(x, (_, i) => (i === 0 ? 1 : 0));
    const base: Plane = { center: x, u, v: Float64Array.from(u, (t) => -3 * t), alpha: [-1, 1], beta: [-1, 1] };
    expect(() => validatePlane(base, 2, 3)).toThrow(/parallel/);
    expect(() => validatePlane({ ...base, v: new Float64Array(6) }, 2, 3)).toThrow(/plane\.v.*zero/);
    expect(() => validatePlane({ ...base, u: new Float64Array(6) }, 2, 3)).toThrow(/plane\.u.*zero/);
    expect(() => validatePlane({ ...base, v: Float64Array.from(u, (_, i) => (i === 1 ? 1 : 0)), alpha: [1, 1] }, 2, 3)).toThrow(/alpha/);
    const p2 = Float64Array.from(x, (t, i) => t + (i === 0 ? 1 : 0));
    const p3 = Float64Array.from(x, (t, i) => t + (i === 0 ? 2 : 0));
    expect(() => threePointPlane(x, p2, p3)).toThrow(/degenerate/);
    expect(() => threePointPlane(x, x, p3)).toThrow(DlgInputError);
    expect(() => explicitPlane({ center: [[1, 2, 3], [4, 5]], u: [[1]], v: [[1]], alpha: [0, 1], beta: [0, 1] })).toThrow(/ragged/);
    expect(() => explicitPlane({ center: [[1, 2, 3]], u: [[1, 0, 0]], v: [[1, 0, 0]], alpha: [0, 1], beta: [0, 1] }, { B: 2, D: 3 })).toThrow(/plane\.center/);
    expect(() => explicitPlane({ center: [[1, 2, 3]], u: [[1, 0, 0]], v: [[2, 0, 0]], alpha: [0, 1], beta: [0, 1] })).toThrow(/parallel/);
  });

  it('random plane: v ⟂ u, filter-normalised rows match the center rows; projection recovers plane points', () => {
    const s = scenario(3, 5, 2);
    const plain = randomPlane(s, { seed: 7 });
    let uv = 0;
    let uu = 0;
    let cc = 0;
    for (let i = 0; i < 15; i++) {
      uv += plain.u[i] * plain.v[i];
      uu += plain.u[i] ** 2;
      cc += s.inputs![i] ** 2;
    }
    expect(Math.abs(uv)).toBeLessThan(1e-12 * uu);
    expect(uu).toBeCloseTo(cc, 10); // scaled to ‖c‖_F
    const p = randomPlane(s, { seed: 7, filterNormalize: true });
    for (let n = 0; n < 3; n++) {
      let un = 0;
      let cn = 0;
      for (let d = 0; d < 5; d++) {
        un += p.u[n * 5 + d] ** 2;
        cn += s.inputs![n * 5 + d] ** 2;
      }
      expect(Math.sqrt(un)).toBeCloseTo(Math.sqrt(cn), 12);
    }
    const q = Float64Array.from(p.center, (c, i) => c + 0.3 * p.u[i] - 0.7 * p.v[i]);
    const m = projectOntoPlane(p, q);
    expect(m.alpha).toBeCloseTo(0.3, 12);
    expect(m.beta).toBeCloseTo(-0.7, 12);
    expect(m.offPlane).toBeLessThan(1e-12);
    expect(swapRows(s.inputs!, 0, 2, 3).subarray(0, 5)).toEqual(s.inputs!.subarray(10, 15));
  });

  it('flattest plane: unit directions from diagnose.ts, centred at the truth', () => {
    const s = scenario(2, 3, 1);
    const p = flattestPlane(s, { span: 0.5 });
    let uu = 0;
    for (const t of p.u) uu += t * t;
    expect(uu).toBeCloseTo(1, 10);
    expect(p.center).toEqual(s.inputs);
    expect(p.alpha).toEqual([-0.5, 0.5]);
  });

  it('the projection basis is orthonormal and ‖G − QH‖² vanishes for a plane through the truth', () => {
    const s = scenario(4, 40, 3);
    const p = randomPlane(s, { seed: 1 });
    const { Q, r } = projectionBasis(p, 4, 40);
    expect(r).toBe(12);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        let d = 0;
        for (let k = 0; k < 40; k++) d += Q[a * 40 + k] * Q[b * 40 + k];
        expect(Math.abs(d - (a === b ? 1 : 0))).toBeLessThan(1e-13);
      }
    }
    const pre = surfacePrecompute(s, p);
    expect(pre.constTerm / gradientNormSq(s.gradient)).toBeLessThan(1e-28);
    // A plane away from the truth keeps a constant part, which is exactly what no point can reduce.
    const off = randomPlane(s, { seed: 1, center: new Float64Array(160).fill(0.1) });
    expect(surfacePrecompute(s, off).constTerm).toBeGreaterThan(0);
  });
});

describe('surface kernel', () => {
  const cases: { B: number; D: number; K: number; reduction: Reduction; soft?: boolean }[] = [
    { B: 1, D: 3, K: 2, reduction: 'mean' },
    { B: 2, D: 1, K: 1, reduction: 'mean' },
    { B: 3, D: 7, K: 4, reduction: 'sum' },
    { B: 5, D: 20, K: 3, reduction: 'mean', soft: true },
    { B: 8, D: 784, K: 10, reduction: 'mean' },
  ];
  for (const c of cases) {
    it(`projected kernel matches the f64 CPU reference at random grid points (B=${c.B}, D=${c.D}, K=${c.K}, ${c.reduction}${c.soft ? ', soft labels' : ''})`, async () => {
      const s = scenario(c.B, c.D, c.K, 11 + c.B, c.reduction, c.soft);
      const scale = gradientNormSq(s.gradient);
      const rng = new Rng(5);
      // Every projected kernel that applies (auto picks among them).
      const kernels: SurfaceKernel[] = c.B <= 2 ? ['b2', 'unrolled', 'general'] : ['unrolled', 'general'];
      for (const [plane, kernel] of [randomPlane(s, { seed: 3, span: 2 }), randomPlane(s, { seed: 4, center: new Float64Array(c.B * c.D) })].flatMap((p) =>
        kernels.map((k) => [p, k] as const),
      )) {
        const res = 97;
        const field = await surface(gpu(), s, plane, res, { kernel });
        const pts = randomPoints(rng, res, 60);
        const ref = surfaceCpuAt(s, plane, res, pts);
        let checked = 0;
        pts.forEach(([i, j], q) => {
          const e = ref[q];
          const a = field[j * res + i];
          // Well-conditioned: L_r not tiny against ‖G‖² (there f32 resolution, not the kernel, decides).
          if (e > 1e-3 * scale) {
            checked++;
            expect(Math.abs(a - e) / e, `${kernel} (${i},${j}) got ${a}, want ${e}`).toBeLessThanOrEqual(1e-4);
          } else {
            expect(Math.abs(a - e)).toBeLessThanOrEqual(1e-7 * scale);
          }
        });
        expect(checked).toBeGreaterThan(20);
      }
    });
  }

  it('projected and direct paths agree everywhere, including right around the truth', async () => {
    for (const [B, D, K] of [
      [2, 1, 1],
      [3, 16, 5],
    ]) {
      const s = scenario(B, D, K, 21);
      const scale = gradientNormSq(s.gradient);
      for (const span of [2, 1e-3]) {
        const plane = randomPlane(s, { seed: 9, span });
        const res = 65;
        const proj = await surface(gpu(), s, plane, res, { path: 'projected' });
        const dir = await surface(gpu(), s, plane, res, { path: 'direct' });
        const cpu = surfaceCpu(s, plane, res);
        for (let p = 0; p < res * res; p++) {
          // Near the truth L_r → 0: compare on the ‖G‖² scale (the direct path cancels there).
          expect(Math.abs(proj[p] - dir[p]), `span ${span}, point ${p}`).toBeLessThanOrEqual(2e-6 * scale + 1e-4 * cpu[p]);
          expect(Math.abs(proj[p] - cpu[p]), `span ${span}, point ${p}`).toBeLessThanOrEqual(2e-7 * scale + 1e-4 * cpu[p]);
        }
      }
    }
  });

  it('minima stay clean: L_r at the truth renders ≤ 1e-12·‖G‖² (truth exactly on a grid point)', async () => {
    for (const [B, D, K] of [
      [1, 1, 1],
      [2, 1, 1],
      [2, 64, 10],
      [8, 784, 10],
    ]) {
      const s = scenario(B, D, K, 31);
      const scale = gradientNormSq(s.gradient);
      const res = 33;
      const mid = (res - 1) / 2;
      const planes: Plane[] = [];
      if (B * D >= 2) planes.push(randomPlane(s, { seed: 2, span: 3 }));
      if (B >= 2) planes.push(threePointPlane(s.inputs!, swapRows(s.inputs!, 0, 1, B), new Float64Array(B * D), { alpha: [-1, 1], beta: [-1, 1] }));
      if (B * D === 1) {
        planes.push({ center: s.inputs!, u: Float64Array.of(1), v: Float64Array.of(1), alpha: [-1, 1], beta: [-1, 1] });
      }
      for (const plane of planes) {
        if (B * D === 1) {
          // One input coordinate cannot span a plane.
          expect(() => createSurface(gpu(), s, plane, res)).toThrow(/parallel/);
          continue;
        }
        for (const kernel of B <= 2 ? (['b2', 'unrolled', 'general'] as const) : (['unrolled', 'general'] as const)) {
          const field = await surface(gpu(), s, plane, res, { kernel });
          const atTruth = field[mid * res + mid];
          expect(matchL2(s, s.gradient, s.inputs!).loss / scale).toBeLessThan(1e-28);
          expect(atTruth / scale, `${kernel} B=${B} D=${D} K=${K}`).toBeLessThanOrEqual(1e-12);
          // …and a strict local minimum of the rendered field (no f32 noise floor around it).
          for (const [di, dj] of [
            [-1, -1],
            [0, -1],
            [1, -1],
            [-1, 0],
            [1, 0],
            [-1, 1],
            [0, 1],
            [1, 1],
          ]) {
            expect(field[(mid + dj) * res + mid + di]).toBeGreaterThan(1e3 * atTruth);
          }
        }
      }
    }
  });

  it('tiles: a render split into ≥ 3 tiles equals the single-tile render bit for bit (both paths), streamed in order', async () => {
    const s = scenario(3, 9, 4, 41);
    const plane = randomPlane(s, { seed: 5 });
    const res = 101;
    for (const [path, kernel] of [
      ['projected', 'unrolled'],
      ['projected', 'general'],
      ['direct', 'auto'],
    ] as const) {
      const one = createSurface(gpu(), s, plane, res, { path, kernel });
      expect(one.tiles).toBe(1);
      expect(one.kernel).toBe(path === 'direct' ? null : kernel);
      const whole = (await one.render()) as Float32Array;
      one.destroy();
      const tiled = createSurface(gpu(), s, plane, res, { path, kernel, tileRows: 34 });
      expect(tiled.tiles).toBe(3);
      const got = new Float32Array(res * res);
      const starts: number[] = [];
      const ret = await tiled.render((t) => {
        starts.push(t.rowStart);
        expect(t.data.length).toBe(t.rows * res);
        got.set(t.data, t.rowStart * res);
      });
      tiled.destroy();
      expect(ret).toBeNull();
      expect(starts).toEqual([0, 34, 68]);
      expect(Buffer.from(got.buffer).equals(Buffer.from(whole.buffer)), path).toBe(true);
    }
  });

  it('kernel variants (small B ≤ 2 with shared or per-point exps and fixed or run-time loops, general with shared or per-point exps and uniform or storage constants) agree with each other and the CPU', async () => {
    for (const [B, D, K, reduction, soft] of [
      [1, 3, 2, 'mean', false],
      [2, 1, 1, 'mean', false],
      [2, 6, 3, 'sum', true],
    ] as const) {
      const s = scenario(B, D, K, 51, reduction, soft);
      const scale = gradientNormSq(s.gradient);
      const plane = randomPlane(s, { seed: 6, span: 2 });
      const res = 37; // not a multiple of 4 or 16: exercises the row padding
      const fields: Record<string, Float32Array> = {};
      for (const [name, o] of [
        ['small', { kernel: 'b2' }],
        ['smallExp', { kernel: 'b2', geometric: false }],
        ['smallRuntime', { kernel: 'b2', fixedLoops: false }],
        ['uniform', { kernel: 'general' }],
        ['uniformExp', { kernel: 'general', geometric: false }],
        ['storage', { kernel: 'general', uniformConsts: false }],
      ] as const) {
        const h = createSurface(gpu(), s, plane, res, o);
        expect(h.kernel).toBe(name.startsWith('small') ? 'b2' : 'general');
        expect(h.geometric).toBe(name === 'small' || name === 'smallRuntime' || name === 'uniform');
        expect(h.fixedLoops).toBe(name === 'small' || name === 'smallExp');
        fields[name] = (await h.render()) as Float32Array;
        h.destroy();
      }
      // auto: the small kernel, or on llvmpipe the unrolled one where it is expected to finish sooner.
      const auto = createSurface(gpu(), s, plane, res);
      expect(['b2', ...(unrolledRanked() ? ['unrolled'] : [])]).toContain(auto.kernel);
      auto.destroy();
      const cpu = surfaceCpu(s, plane, res);
      for (let p = 0; p < res * res; p++) {
        for (const name of ['small', 'smallExp', 'smallRuntime', 'uniform', 'uniformExp', 'storage']) {
          expect(Math.abs(fields[name][p] - cpu[p]), `${name} B=${B} point ${p}`).toBeLessThanOrEqual(2e-7 * scale + 1e-4 * cpu[p]);
        }
      }
      // Same arithmetic in the same order: K and r fixed (unrolled) or read at run time agree bit for bit,
      // and so do the general kernel's two constant sources.
      expect(Buffer.from(fields.small.buffer).equals(Buffer.from(fields.smallRuntime.buffer))).toBe(true);
      expect(Buffer.from(fields.uniformExp.buffer).equals(Buffer.from(fields.storage.buffer))).toBe(true);
    }
    // A grid too coarse for the shared exps (e^{−tu·15·h} beyond e^{±60}) falls back to per-point exps.
    const s2 = scenario(2, 3, 2, 53);
    const wide = randomPlane(s2, { seed: 2, span: 2000 });
    const coarse = createSurface(gpu(), s2, wide, 9);
    expect(coarse.geometric).toBe(false);
    const cf = (await coarse.render()) as Float32Array;
    coarse.destroy();
    const cc = surfaceCpu(s2, wide, 9);
    const sc2 = gradientNormSq(s2.gradient);
    for (let p = 0; p < 81; p++) expect(Math.abs(cf[p] - cc[p]), `coarse point ${p}`).toBeLessThanOrEqual(2e-7 * sc2 + 1e-4 * cc[p]);
    const s3 = scenario(3, 4, 2, 52);
    expect(() => createSurface(gpu(), s3, randomPlane(s3, { seed: 1 }), 9, { kernel: 'b2' })).toThrow(/kernel.*B ≤ 2/);
  });

  it('auto: on llvmpipe the unrolled kernel once its compile time pays off (grid large enough, or pipeline compiled); else small or general', async () => {
    // The cost model itself (seconds predicted for each choice; see autoPrefersUnrolled).
    const m = (res: number, B: number, K: number, r: number, small: boolean, compiled: boolean) => autoPrefersUnrolled({ res, B, K, r, small, compiled });
    expect(m(1024, 8, 10, 24, false, false)).toBe(false); // one-shot 1024²: 2.3 s of compile for 0.3 s saved
    expect(m(4096, 8, 10, 24, false, false)).toBe(true);
    expect(m(1024, 8, 10, 24, false, true)).toBe(true);
    expect(m(2048, 2, 10, 6, true, false)).toBe(false);
    expect(m(2048, 2, 10, 6, true, true)).toBe(true);
    expect(m(4096, 2, 1, 1, true, true)).toBe(false); // (2,1,1): the small kernel is 2–3× faster
    expect(m(1024, 16, 16, 48, false, true)).toBe(true); // 4352 multiply-adds a point, still ≈ 5× fewer ns than general…
    expect(m(2048, 16, 16, 48, false, false)).toBe(false); // …but about 25 s to compile
    // And what createSurface makes of it on this device: a small one-shot grid, then the same plane once
    // the unrolled pipeline exists.
    const s = scenario(6, 5, 3, 81);
    const plane = randomPlane(s, { seed: 2 });
    const cold = createSurface(gpu(), s, plane, 33);
    expect(cold.kernel).toBe('general');
    cold.destroy();
    const forced = createSurface(gpu(), s, plane, 33, { kernel: 'unrolled' });
    const fu = (await forced.render()) as Float32Array;
    forced.destroy();
    const warm = createSurface(gpu(), s, plane, 33);
    expect(warm.kernel).toBe(unrolledRanked() ? 'unrolled' : 'general');
    expect(warm.why).toMatch(unrolledRanked() ? /^auto on llvmpipe: straight-line code/ : /^auto on \w+: any B ≤ 64/);
    expect(cold.why).toMatch(/passed over .*unrolled \(predicted to finish later/);
    const fw = (await warm.render()) as Float32Array;
    warm.destroy();
    if (warm.kernel === 'unrolled') expect(Buffer.from(fw.buffer).equals(Buffer.from(fu.buffer))).toBe(true);
  });

  it("auto ranks the unrolled kernel exactly on llvmpipe (the tests' lavapipe adapter)", () => {
    const info = gpu().adapterInfo;
    expect(unrolledRanked()).toBe(/llvmpipe/.test(info.description) || (info.vendor === 'mesa' && info.architecture === 'software'));
    const fake = (adapterInfo: Partial<GPUAdapterInfo> | undefined) => ({ adapterInfo, limits: gpu().limits }) as unknown as GPUDevice;
    const warmAt = (d: GPUDevice) => chooseKernel('surface', { B: 8, K: 10, r: 24, res: 4096, unrolledCompiled: true }, d).spec.name;
    expect(warmAt(fake({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)' }))).toBe('unrolled');
    expect(warmAt(fake({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader Device (Subzero)' }))).toBe('general');
    expect(warmAt(fake({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H200' }))).toBe('general');
    expect(warmAt(fake(undefined))).toBe('general');
  });

  it('unrolled kernel (B, K ≤ 16 fixed, per-row basis): agrees with the general kernel and the CPU on random, coordinate and degenerate-row planes', async () => {
    for (const [B, D, K, reduction, soft] of [
      [3, 5, 1, 'mean', false],
      [5, 12, 7, 'sum', true],
      [8, 40, 10, 'mean', false],
      [16, 6, 2, 'mean', false],
      [3, 4, 16, 'sum', false],
      [1, 4, 2, 'mean', false],
    ] as const) {
      const s = scenario(B, D, K, 71, reduction, soft);
      const scale = gradientNormSq(s.gradient);
      const planes: [string, Plane][] = [['random', randomPlane(s, { seed: 4, span: 1.5 })]];
      // u and v each move one coordinate: a U slot for one sample only (UMASK with one bit).
      if (B > 1) planes.push(['coords', coordinatePlane(s, { a: [0, 0], b: [B - 1, 1] })]);
      // Rows 0 and 1 of the centre equal and v zero there: X_1 ∥ X_0 on every row (a zero slot).
      if (B > 1) {
        const c = Float64Array.from(s.inputs!);
        c.copyWithin(D, 0, D);
        const v = new Float64Array(B * D).map((_, q) => (q < 2 * D ? 0 : Math.sin(q)));
        const u = new Float64Array(B * D).map((_, q) => Math.cos(3 * q));
        planes.push(['dependent', { center: c, u, v, alpha: [-1, 1], beta: [-1, 1] }]);
      }
      for (const [name, plane] of planes) {
        const res = 41;
        const h = createSurface(gpu(), s, plane, res, { kernel: 'unrolled' });
        expect([h.kernel, h.geometric]).toEqual(['unrolled', true]);
        const fu = (await h.render()) as Float32Array;
        h.destroy();
        // Per-point exps instead of one shared by each invocation's four points (small B: compile time).
        const he = B <= 5 ? createSurface(gpu(), s, plane, res, { kernel: 'unrolled', geometric: false }) : null;
        expect(he?.geometric ?? false).toBe(false);
        const fe = he ? ((await he.render()) as Float32Array) : fu;
        he?.destroy();
        const fg = await surface(gpu(), s, plane, res, { kernel: 'general' });
        const cpu = surfaceCpu(s, plane, res);
        for (let p = 0; p < res * res; p++) {
          const tol = 2e-7 * scale + 1e-4 * cpu[p];
          expect(Math.abs(fu[p] - cpu[p]), `${name} B=${B} K=${K} point ${p}: ${fu[p]} vs ${cpu[p]}`).toBeLessThanOrEqual(tol);
          expect(Math.abs(fe[p] - cpu[p]), `${name} B=${B} K=${K} point ${p}, per-point exps`).toBeLessThanOrEqual(tol);
          expect(Math.abs(fu[p] - fg[p]), `${name} B=${B} K=${K} point ${p} against general`).toBeLessThanOrEqual(2 * tol);
        }
      }
    }
    // A grid too coarse for shared exps (e^{−tu·3·h} beyond e^{±20}) takes per-point exps.
    const s4 = scenario(4, 3, 2, 75);
    const coarse = createSurface(gpu(), s4, randomPlane(s4, { seed: 2, span: 2000 }), 9, { kernel: 'unrolled' });
    expect([coarse.kernel, coarse.geometric]).toEqual(['unrolled', false]);
    coarse.destroy();
    // Caps: B or K over 16 is refused when asked for, and auto falls back to the general kernel.
    const big = scenario(17, 3, 2, 72);
    expect(() => createSurface(gpu(), big, randomPlane(big, { seed: 1 }), 9, { kernel: 'unrolled' })).toThrow(/kernel.*B ≤ 16 and K ≤ 16.*B = 17/);
    expect(createSurface(gpu(), big, randomPlane(big, { seed: 1 }), 9).kernel).toBe('general');
    const wide = scenario(3, 3, 17, 73);
    expect(createSurface(gpu(), wide, randomPlane(wide, { seed: 1 }), 9).kernel).toBe('general');
    // Within the caps but 4352 multiply-adds a point (and a long compile): general.
    const heavy = scenario(16, 3, 16, 74);
    expect(createSurface(gpu(), heavy, randomPlane(heavy, { seed: 1 }), 9).kernel).toBe('general');
  });

  it('general kernel, B > 2 (padded samples): shared exps agree with per-point exps and the CPU', async () => {
    for (const [B, D, K, reduction, soft] of [
      [5, 7, 3, 'mean', false],
      [8, 40, 10, 'sum', true],
    ] as const) {
      const s = scenario(B, D, K, 61, reduction, soft);
      const scale = gradientNormSq(s.gradient);
      const plane = randomPlane(s, { seed: 4, span: 1.5 });
      const res = 45;
      const geo = createSurface(gpu(), s, plane, res, { kernel: 'general' });
      const exp = createSurface(gpu(), s, plane, res, { kernel: 'general', geometric: false });
      expect([geo.kernel, geo.geometric, exp.geometric]).toEqual(['general', true, false]);
      const fg = (await geo.render()) as Float32Array;
      const fe = (await exp.render()) as Float32Array;
      geo.destroy();
      exp.destroy();
      const cpu = surfaceCpu(s, plane, res);
      for (let p = 0; p < res * res; p++) {
        expect(Math.abs(fg[p] - cpu[p]), `shared exps B=${B} point ${p}`).toBeLessThanOrEqual(2e-7 * scale + 1e-4 * cpu[p]);
        expect(Math.abs(fe[p] - cpu[p]), `per-point exps B=${B} point ${p}`).toBeLessThanOrEqual(2e-7 * scale + 1e-4 * cpu[p]);
      }
    }
  });

  it('small kernel: tiles equal the single-tile render bit for bit', async () => {
    const s = scenario(2, 5, 3, 43);
    const plane = randomPlane(s, { seed: 8 });
    const res = 83;
    const whole = await surface(gpu(), s, plane, res, { kernel: 'b2' });
    const tiled = createSurface(gpu(), s, plane, res, { kernel: 'b2', tileRows: 20 });
    expect(tiled.kernel).toBe('b2');
    expect(tiled.tiles).toBe(5);
    const got = (await tiled.render()) as Float32Array;
    tiled.destroy();
    expect(Buffer.from(got.buffer).equals(Buffer.from(whole.buffer))).toBe(true);
  });

  it('bad resolutions are input errors that say how much memory a too-large one needs', () => {
    const s = scenario(2, 1, 1);
    const plane = randomPlane(s, { seed: 1 });
    for (const r of [0, -5, 1, 2.5, Number.NaN]) expect(() => createSurface(gpu(), s, plane, r)).toThrow(DlgInputError);
    expect(() => checkResolution(20000)).toThrow(/at most 16384.*1\.49 GiB/);
    expect(() => createSurface(gpu(), s, plane, 8, { tileRows: 0 })).toThrow(/tileRows/);
    expect(() => createSurface(gpu(), s, { ...plane, u: plane.v }, 8)).toThrow(/parallel/);
  });
});

describe('basin census', () => {
  it('finds the known minima of a synthetic field, merges plateaus, flags borders, counts near-zero ones', () => {
    const res = 101;
    const f = new Float64Array(res * res);
    // Two exact zeros at (20, 30) and (70, 60), a shallow minimum 0.5 at (50, 85), sloping to the border at i = 100.
    const bumps = [
      [20, 30, 0],
      [70, 60, 0],
      [50, 85, 0.5],
    ];
    for (let j = 0; j < res; j++) {
      for (let i = 0; i < res; i++) {
        let v = Infinity;
        for (const [bi, bj, base] of bumps) v = Math.min(v, base + ((i - bi) ** 2 + (j - bj) ** 2) / 100);
        f[j * res + i] = v;
      }
    }
    const c = basinCensus(f, res, { alpha: [-1, 1], beta: [-1, 1], zeroTol: 1e-9 });
    expect(c.count).toBe(3);
    expect(c.interior).toBe(3);
    expect(c.nearZero).toBe(2);
    expect(c.minima.map((m) => [m.i, m.j])).toEqual([
      [20, 30],
      [70, 60],
      [50, 85],
    ]);
    expect(c.minima[0].alpha).toBeCloseTo(-0.6, 12);
    expect(c.min.value).toBe(0);
    // Flatness: only the two zeros are within 10·max(0, 1e-12).
    expect(c.flatFraction).toBe(2 / (res * res));

    // A tilted plane: one border minimum; a flat plateau: one minimum, plateau size res².
    const tilt = Float64Array.from({ length: 25 }, (_, p) => 1 + (p % 5));
    const ct = basinCensus(tilt, 5);
    expect(ct.count).toBe(1);
    expect(ct.minima[0].border).toBe(true);
    expect(ct.minima[0].plateau).toBe(5); // the whole i = 0 column has value 1
    const flat = basinCensus(new Float64Array(16).fill(2), 4);
    expect(flat.count).toBe(1);
    expect(flat.minima[0].plateau).toBe(16);
    expect(flat.flatFraction).toBe(1);
  });

  it('a wider window drops pixel-scale artefacts next to a lower minimum', () => {
    const res = 21;
    const f = Float64Array.from({ length: res * res }, (_, p) => 1 + ((p % res) - 10) ** 2 + (Math.floor(p / res) - 10) ** 2);
    f[10 * res + 10] = 0; // the true minimum
    f[10 * res + 12] = 0.5; // a dip two steps away, lower than its 8 neighbours
    expect(basinCensus(f, res, { radius: 1 }).count).toBe(2);
    const c = basinCensus(f, res);
    expect(c.radius).toBe(3);
    expect(c.count).toBe(1);
    expect([c.minima[0].i, c.minima[0].j]).toEqual([10, 10]);
    expect(() => basinCensus(f, res, { radius: 0 })).toThrow(/radius/);
  });

  it('flatness counts the fraction within 10× of the minimum', () => {
    const res = 10;
    const f = Float64Array.from({ length: 100 }, (_, p) => (p < 25 ? 1 + p / 100 : 20));
    f[0] = 1;
    const c = basinCensus(f, res, { scale: 1 });
    expect(c.flatThreshold).toBe(10);
    expect(c.flatFraction).toBe(0.25);
    expect(() => basinCensus(f, 11)).toThrow(DlgInputError);
  });
});
