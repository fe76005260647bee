import { describe, expect, it } from 'vitest';
import {
  type EngineOptions,
  type EngineStatus,
  LM_CAPS,
  createAttackEngine,
  createCpuEngine,
  fitsLm,
} from '../src/attack/engine.js';
import { DlgInputError } from '../src/core/errors.js';
import { LM_LAMBDA0 } from '../src/analysis/lm.js';
import { type Layer, gradientNormSq, victimGradient } from '../src/core/model.js';
import { makeScenario } from '../src/core/scenario.js';
import { Rng } from '../src/core/rng.js';
import { withErrorScopes } from '../src/gpu/gpu.js';
import { expectClose, useGpu } from './helpers.js';

const gpu = useGpu();

interface Problem {
  layer: Layer;
  xTrue: Float64Array;
  target: ReturnType<typeof victimGradient>;
}

/** A gaussian scenario (makeScenario): W ~ N(0, 1/D), x ~ N(0, 1), hard labels. */
function problem(B: number, D: number, K: number, seed: number, reduction: Layer['reduction'] = 'mean'): Problem {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => rng.int(2));
  const xTrue = Float64Array.from({ length: B * D }, () => rng.normal());
  const sc = makeScenario({ B, D, K, W, b, y, reduction }, xTrue);
  return { layer: sc, xTrue, target: sc.gradient };
}

function starts(p: Problem, P: number, noise: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const n = p.layer.B * p.layer.D;
  const out = new Float32Array(P * n);
  for (let r = 0; r < P; r++) for (let i = 0; i < n; i++) out[r * n + i] = p.xTrue[i] + noise * rng.normal();
  return out;
}

type Run = EngineStatus & { best: Float32Array };

async function runGpu(opts: EngineOptions, x0: ArrayLike<number>, iterations: number, split = [iterations]): Promise<Run & { kernel: string }> {
  const device = gpu();
  return withErrorScopes(device, 'lm engine test', async () => {
    const e = createAttackEngine(device, opts);
    try {
      e.setInputs(x0);
      for (const s of split) e.run(s);
      return { ...(await e.readStatus()), best: await e.readBest(), kernel: e.kernel };
    } finally {
      e.destroy();
    }
  });
}

async function runCpu(opts: EngineOptions, x0: ArrayLike<number>, iterations: number): Promise<Run> {
  const c = createCpuEngine(opts);
  c.setInputs(x0);
  c.run(iterations);
  return { ...(await c.readStatus()), best: await c.readBest() };
}

describe('lm engine: GPU (f32) against the float64 CPU engine', () => {
  // Starts 0.5 from the truth and tolAbs = 1e-9·‖(G, g)‖², far above f32's floor (≈1e-13 of it):
  // both engines take the same accept/reject decisions until they converge, so iterations, status
  // and λ agree exactly (λ to f32 rounding) and the losses to f32 rounding amplified by a few steps.
  // A few shapes only: each is a cold pipeline compile (seconds on lavapipe).
  const cases: [number, number, number, number][] = [
    [2, 2, 3, 8],
    [4, 4, 4, 8],
    [3, 5, 3, 8],
    [2, 1, 1, 10],
    [8, 8, 10, 6],
  ];
  for (const [B, D, K, iters] of cases) {
    it(`(${B},${D},${K}): same trajectory over ${iters} iterations`, async () => {
      const p = problem(B, D, K, 31 + B * 100 + D * 10 + K);
      const P = 6;
      const x0 = starts(p, P, 0.5, 7);
      const tolAbs = 1e-9 * gradientNormSq(p.target);
      const opts: EngineOptions = { layer: p.layer, target: p.target, P, optimizer: 'lm', lr: 1, tolAbs };
      const g = await runGpu(opts, x0, iters, [1, iters - 1]);
      const c = await runCpu(opts, x0, iters);
      expect(g.kernel).toBe('lm');
      expect(Array.from(g.status)).toEqual(Array.from(c.status));
      expect(Array.from(g.iterations)).toEqual(Array.from(c.iterations));
      expectClose(g.lambda!, c.lambda!, { abs: 0, rel: 1e-4 }, 'lambda');
      // a loss a few times tolAbs is the difference of nearly equal gradients: f32 rounding shows there
      expectClose(g.loss, c.loss, { abs: 0.1 * tolAbs, rel: 0.1 }, 'loss');
      expectClose(g.bestLoss, c.bestLoss, { abs: 0.1 * tolAbs, rel: 0.1 }, 'bestLoss');
      // (3,5,3) has D > K: JᵀJ is nearly singular along directions out of the rows' span, where f32
      // and float64 points drift apart by ~1e-2 at equal loss; elsewhere the points agree closely
      if (D <= K || B * D <= 4) expectClose(g.best, c.best, { abs: 1e-3, rel: 1e-3 }, 'best point');
      // it moved: most well-conditioned restarts converge within these few iterations; all improve
      if (D <= K) expect(c.status.filter((s) => s === 1).length).toBeGreaterThanOrEqual(P / 2);
      const c1 = await runCpu(opts, x0, 1);
      for (let r = 0; r < P; r++) expect(c.bestLoss[r]).toBeLessThan(1e-2 * c1.loss[r]);
    });
  }

  it('several groups (each its own labels, target and tolAbs)', async () => {
    const p = problem(2, 2, 3, 77);
    const q = problem(2, 2, 3, 78); // other labels and truth, same layer shape
    const layer = { ...p.layer };
    const P = 4;
    const groups = [
      { y: p.layer.y, target: p.target },
      { y: q.layer.y, target: victimGradient({ ...p.layer, y: q.layer.y }, q.xTrue) },
    ];
    const tq = groups[1].target;
    const x0 = new Float32Array([...starts(p, P, 0.5, 1), ...starts({ ...q, target: tq }, P, 0.5, 2)]);
    expect(x0.length).toBe(2 * P * 4);
    const tolAbs = [1e-9 * gradientNormSq(p.target), 1e-9 * gradientNormSq(tq)];
    const opts: EngineOptions = { layer, target: p.target, groups, P, optimizer: 'lm', lr: 1, tolAbs };
    const c = await runCpu(opts, x0, 8);
    const g = await runGpu(opts, x0, 8, [3, 5]);
    expect(g.kernel).toBe('lm');
    expect(Array.from(g.status)).toEqual(Array.from(c.status));
    expect(Array.from(g.iterations)).toEqual(Array.from(c.iterations));
    expectClose(g.lambda!, c.lambda!, { abs: 0, rel: 1e-4 }, 'lambda');
    expectClose(g.bestLoss, c.bestLoss, { abs: 0.1 * Math.min(...tolAbs), rel: 2e-2 }, 'bestLoss');
    expectClose(g.best, c.best, { abs: 1e-3, rel: 1e-3 }, 'best point');
    expect(c.status.filter((s) => s === 1).length).toBeGreaterThanOrEqual(P);
  });
});

describe('lm engine: recovery and isolation', () => {
  it('recovers a reduced-size (4,4,4) gaussian scenario from random starts within tens of iterations', async () => {
    const p = problem(4, 4, 4, 2024);
    const P = 32;
    const rng = new Rng(9);
    const x0 = Float32Array.from({ length: P * 16 }, () => rng.normal());
    const tolAbs = 1e-8 * gradientNormSq(p.target);
    const g = await runGpu({ layer: p.layer, target: p.target, P, optimizer: 'lm', lr: 1, tolAbs }, x0, 60);
    const converged = Array.from(g.status).filter((s) => s === 1).length;
    expect(converged).toBeGreaterThanOrEqual(P / 2);
    for (let r = 0; r < P; r++) {
      expect(g.status[r]).not.toBe(2);
      if (g.status[r] === 1) expect(g.iterations[r]).toBeLessThan(60);
    }
  });

  it('a restart that starts huge stalls or freezes alone; the others are bit-identical to a run without it', async () => {
    const p = problem(4, 4, 4, 2025);
    const P = 8;
    const x0 = starts(p, P, 0.5, 3);
    const bad = Float32Array.from(x0);
    for (let i = 0; i < 16; i++) bad[3 * 16 + i] = (i % 2 ? -1 : 1) * 3e37; // z overflows: non-finite L_r
    const opts: EngineOptions = { layer: p.layer, target: p.target, P, optimizer: 'lm', lr: 1 };
    const a = await runGpu(opts, x0, 40, [7, 33]);
    const b = await runGpu(opts, bad, 40, [7, 33]);
    expect([2, 3]).toContain(b.status[3]);
    expect(b.iterations[3]).toBeLessThan(40);
    expect(Array.from(b.best.subarray(48, 64))).toEqual(Array.from(bad.subarray(48, 64))); // frozen at its start
    for (let r = 0; r < P; r++) {
      if (r === 3) continue;
      expect(b.status[r]).toBe(a.status[r]);
      expect(b.iterations[r]).toBe(a.iterations[r]);
      expect(Object.is(b.loss[r], a.loss[r]) && Object.is(b.bestLoss[r], a.bestLoss[r]) && Object.is(b.lambda![r], a.lambda![r])).toBe(true);
      expect(Array.from(b.best.subarray(r * 16, r * 16 + 16))).toEqual(Array.from(a.best.subarray(r * 16, r * 16 + 16)));
    }
    // the CPU engine freezes it too (in float64 the start's L_r is finite, so it may stall rather than roll back)
    const c = await runCpu(opts, bad, 40);
    expect([2, 3]).toContain(c.status[3]);
  });

  it('λ starts at LM_LAMBDA0 and status 3 freezes a restart that no damping helps', async () => {
    // target = the gradient at the start itself plus an unreachable offset in ∇b: L_r has a floor > 0
    // near the start; LM converges there (status 1 impossible with tolAbs −∞) and then stalls.
    const p = problem(2, 1, 1, 5);
    const P = 2;
    const x0 = starts(p, P, 0.3, 4);
    const opts: EngineOptions = { layer: p.layer, target: { W: p.target.W, b: Float64Array.from(p.target.b, (v) => v + 10) }, P, optimizer: 'lm', lr: 1 };
    const g = await runGpu(opts, x0, 200, [0, 1, 199]);
    const c = await runCpu(opts, x0, 200);
    expect(Array.from(g.status)).toEqual([3, 3]);
    expect(Array.from(c.status)).toEqual([3, 3]);
    for (let r = 0; r < P; r++) {
      expect(g.iterations[r]).toBeLessThan(200);
      expect(g.loss[r]).toBe(g.bestLoss[r]);
      expect(g.lambda![r]).toBeGreaterThan(1e16);
    }
    const fresh = await runGpu(opts, x0, 0);
    expect(Array.from(fresh.lambda!)).toEqual([Math.fround(LM_LAMBDA0), Math.fround(LM_LAMBDA0)]);
  });
});

describe('lm engine: caps', () => {
  const layerOf = (B: number, D: number, K: number): Layer => ({
    B, D, K, W: new Float64Array(D * K), b: new Float64Array(K), y: new Float64Array(B * K), reduction: 'mean',
  });
  const opts = (B: number, D: number, K: number): EngineOptions => ({
    layer: layerOf(B, D, K), target: { W: new Float64Array(D * K), b: new Float64Array(K) }, P: 1, optimizer: 'lm', lr: 1,
  });
  it('fitsLm follows LM_CAPS', () => {
    expect(fitsLm(16, 16, 20)).toBe(true);
    expect(fitsLm(16, 16, 32)).toBe(true);
    expect(fitsLm(17, 16, 20)).toBe(false);
    expect(fitsLm(2, 2, LM_CAPS.K + 1)).toBe(false);
    expect(fitsLm(16, 16, 20, gpu())).toBe(true);
  });
  for (const [B, D, K, field] of [
    [17, 16, 20, 'layer.B'],
    [16, 16, 33, 'layer.K'],
    [1, 20, 30, 'layer.D'],
  ] as const) {
    it(`(${B},${D},${K}) throws DlgInputError naming ${field}`, () => {
      let err: unknown;
      try {
        createAttackEngine(gpu(), opts(B, D, K));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DlgInputError);
      expect((err as DlgInputError).field).toBe(field);
      expect((err as DlgInputError).message).toMatch(/GPU attack kernels \('lm'\)/);
    });
  }
  it("a first-order kernel is refused for lm, and lm + cosine by the options", () => {
    expect(() => createAttackEngine(gpu(), opts(2, 2, 2), { kernel: 'invocation' })).toThrow(/optimizer: expected gd, adam or lbfgs for the 'invocation' attack kernel, found lm/);
    expect(() => createAttackEngine(gpu(), { ...opts(2, 2, 2), loss: 'cosine' })).toThrow(/loss/);
  });
});
