import { describe, expect, it } from 'vitest';
import {
  type EngineHandle,
  type EngineOptions,
  type EngineTuning,
  createAttackEngine,
  createCpuEngine,
  engineKernel,
} from '../src/attack/engine.js';
import { DlgInputError } from '../src/core/errors.js';
import type { EngineStatus } from '../src/attack/engine.js';
import { type Layer, gradientNormSq, victimGradient } from '../src/core/model.js';
import { Rng } from '../src/core/rng.js';
import { expectClose, useGpu } from './helpers.js';
import { isCpuDevice, withErrorScopes } from '../src/gpu/gpu.js';
import { type AttackProblem, type KernelContext, KERNELS, kernelSource } from '../src/gpu/kernels.js';
import type { AdapterKind } from '../src/gpu/gpu.js';

/** WebGPU's default limits: what any adapter offers at least. */
const LIMITS = { maxStorageBufferBindingSize: 134217728, maxBufferSize: 268435456, maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
const on = (kind: AdapterKind): KernelContext => ({ kind, limits: LIMITS });
/** The attack kernel auto (or `asked`) picks for a problem on lavapipe (or another adapter kind). */
const kernelOf = (B: number, D: number, K: number, optimizer: AttackProblem['optimizer'] = 'adam', loss: AttackProblem['loss'] = 'l2', asked: EngineTuning['kernel'] = undefined, kind: AdapterKind = 'llvmpipe'): string =>
  engineKernel({ B, D, K, optimizer, loss }, on(kind), asked ?? 'auto').spec.name;

const gpu = useGpu();

interface Problem {
  layer: Layer;
  xTrue: Float64Array;
  target: ReturnType<typeof victimGradient>;
}

function problem(B: number, D: number, K: number, seed: number): Problem {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => rng.int(2));
  const xTrue = Float64Array.from({ length: B * D }, () => rng.normal());
  const layer: Layer = { B, D, K, W, b, y, reduction: 'mean' };
  return { layer, xTrue, target: victimGradient(layer, xTrue) };
}

/** P starting points: the truth plus Gaussian noise of size `noise`. */
function starts(p: Problem, P: number, noise: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const BD = p.layer.B * p.layer.D;
  const out = new Float64Array(P * BD);
  for (let r = 0; r < P; r++) for (let i = 0; i < BD; i++) out[r * BD + i] = p.xTrue[i] + noise * rng.normal();
  return out;
}

async function runBoth(opts: EngineOptions, x0: ArrayLike<number>, iterations: number, tuning: EngineTuning = {}) {
  const device = gpu();
  return withErrorScopes(device, 'engine test', async () => {
    const g = createAttackEngine(device, opts, tuning);
    const c = createCpuEngine(opts);
    try {
      g.setInputs(x0);
      c.setInputs(x0);
      g.run(iterations);
      c.run(iterations);
      return { gpu: { ...(await g.readStatus()), best: await g.readBest() }, cpu: { ...(await c.readStatus()), best: await c.readBest() } };
    } finally {
      g.destroy();
      c.destroy();
    }
  });
}

async function runGpu(engine: EngineHandle, x0: ArrayLike<number>, iterations: number) {
  engine.setInputs(x0);
  engine.run(iterations);
  return { ...(await engine.readStatus()), best: await engine.readBest() };
}

describe('attack engine: GPU (f32) against the float64 CPU engine', () => {
  // Both engines take the same steps from the same f32-representable starts; the only difference
  // is f32 rounding (≈1e-7 relative per operation), which these well-conditioned 50-step runs
  // amplify to well under 1e-3 relative on the loss and 1e-4 absolute on the point.
  // Shapes are shared between tests where possible: each distinct pipeline is a (slow, cold) LLVM compile on lavapipe.
  const cases: [string, number, number, number, EngineOptions['optimizer'], number, 'l2' | 'cosine'][] = [
    ['tiny (2,1,1) gd', 2, 1, 1, 'gd', 1, 'l2'],
    ['tiny (2,1,1) adam', 2, 1, 1, 'adam', 0.01, 'l2'],
    ['tiny (4,1,4) adam', 4, 1, 4, 'adam', 0.01, 'l2'],
    ['tiny (4,1,4) adam cosine', 4, 1, 4, 'adam', 0.01, 'cosine'],
    // sizes that are not powers of two: the loops run to B, D, K themselves, with no guards (EXACT)
    ['tiny (3,5,3) gd', 3, 5, 3, 'gd', 1, 'l2'],
    ['workgroup (2,40,3) gd', 2, 40, 3, 'gd', 2, 'l2'],
    ['workgroup (2,40,3) adam', 2, 40, 3, 'adam', 0.005, 'l2'],
    ['workgroup (2,70,3) adam cosine', 2, 70, 3, 'adam', 0.005, 'cosine'],
    // gd/adam mid sizes run on the invocation kernel with the larger MID_CAPS
    ['mid (8,16,4) adam', 8, 16, 4, 'adam', 0.01, 'l2'],
    ['mid (8,16,4) gd', 8, 16, 4, 'gd', 2, 'l2'],
    ['mid (16,4,10) adam cosine', 16, 4, 10, 'adam', 0.01, 'cosine'],
    ['mid (5,12,6) adam', 5, 12, 6, 'adam', 0.01, 'l2'],
    // large D with small B·K: the stream kernel (vec4 feature steps, B and K fixed per pipeline)
    ['stream (8,64,10) adam', 8, 64, 10, 'adam', 0.01, 'l2'],
    ['stream (3,36,5) gd', 3, 36, 5, 'gd', 2, 'l2'],
  ];
  for (const [name, B, D, K, optimizer, lr, loss] of cases) {
    it(`${name}: same trajectory over 50 iterations`, async () => {
      const p = problem(B, D, K, 11 + B * 100 + D * 10 + K);
      const P = 8;
      const x0 = Float32Array.from(starts(p, P, 0.5, 5));
      // the workgroup cases force that kernel (gd/adam at (2,40,3) would otherwise take the mid invocation kernel)
      const tuning: EngineTuning = name.startsWith('workgroup') ? { kernel: 'workgroup' } : name.startsWith('stream') ? { kernel: 'stream' } : {};
      const r = await runBoth({ layer: p.layer, target: p.target, P, optimizer, lr, loss }, x0, 50, tuning);
      const headline = D === 1 && K === 1 && B <= 2 && optimizer !== 'lbfgs' && loss === 'l2'; // attack/pair.wgsl
      expect(kernelOf(B, D, K, optimizer, loss, tuning.kernel)).toBe(headline ? 'pair' : name.split(' ')[0].replace('tiny', 'invocation').replace('mid', 'invocation'));
      if (name.startsWith('mid')) expect(kernelOf(B, D, K, 'lbfgs')).toBe('workgroup'); // beyond the small caps
      expect(Array.from(r.gpu.iterations)).toEqual(Array.from(r.cpu.iterations));
      expect(Array.from(r.gpu.status)).toEqual(Array.from(r.cpu.status));
      expectClose(r.gpu.bestLoss, r.cpu.bestLoss, { abs: 1e-9, rel: 2e-3 }, 'bestLoss');
      expectClose(r.gpu.loss, r.cpu.loss, { abs: 1e-9, rel: 2e-3 }, 'loss');
      expectClose(r.gpu.best, r.cpu.best, { abs: 2e-4, rel: 1e-3 }, 'best point');
      // the runs moved: the best loss is well below the start's
      const c0 = createCpuEngine({ layer: p.layer, target: p.target, P, optimizer, lr, loss });
      c0.setInputs(x0);
      c0.run(1);
      const s0 = await c0.readStatus();
      for (let i = 0; i < P; i++) expect(r.cpu.bestLoss[i]).toBeLessThan(s0.loss[i]);
    });
  }
});

describe('attack engine: L-BFGS', () => {
  for (const [B, D, K] of [
    [1, 1, 1],
    [2, 1, 1],
    [3, 5, 3], // the invocation kernel at sizes that are not powers of two
    [2, 40, 3],
  ] as const) {
    it(`converges from near the truth at (${B},${D},${K}) on GPU and CPU, never non-finite`, async () => {
      const p = problem(B, D, K, 7 + B + D + K);
      const P = 16;
      const x0 = Float32Array.from(starts(p, P, 0.05, 3));
      const tolAbs = 1e-9 * gradientNormSq(p.target);
      const r = await runBoth({ layer: p.layer, target: p.target, P, optimizer: 'lbfgs', lr: 1, history: 5, tolAbs }, x0, 200);
      for (const side of [r.gpu, r.cpu]) {
        for (let i = 0; i < P; i++) {
          expect(side.status[i], `restart ${i} status`).toBe(1);
          expect(Number.isFinite(side.loss[i])).toBe(true);
          expect(side.bestLoss[i]).toBeLessThanOrEqual(Math.fround(tolAbs) * (1 + 1e-6));
        }
      }
      // converged points reproduce the target gradient: near the truth for identifiable B=1
      if (B === 1) expectClose(r.gpu.best, Array.from({ length: P }, () => Array.from(p.xTrue)).flat(), { abs: 1e-3, rel: 1e-3 }, 'x');
    });
  }

  it('line search keeps a huge first step finite', async () => {
    const p = problem(2, 1, 1, 99);
    const P = 8;
    const x0 = Float32Array.from(starts(p, P, 2, 4));
    const r = await runBoth({ layer: p.layer, target: p.target, P, optimizer: 'lbfgs', lr: 1e6 }, x0, 60);
    for (const side of [r.gpu, r.cpu]) {
      for (let i = 0; i < P; i++) {
        expect(side.status[i]).not.toBe(2);
        expect(Number.isFinite(side.loss[i]) && Number.isFinite(side.bestLoss[i])).toBe(true);
        expect(side.iterations[i]).toBe(60);
      }
    }
  });
});

describe('attack engine: stopping rules', () => {
  // B=1, D=1, K=2, sum reduction, W=(1,1), y=(0,1): far from 0 one sigmoid saturates with |e|=1,
  // so L_r grows like x² and plain gradient descent with lr=1.4 diverges geometrically, while
  // near the truth (curvature ≈ 1.3) the same step is stable.
  const layer: Layer = { B: 1, D: 1, K: 2, W: [1, 1], b: [0, 0], y: [0, 1], reduction: 'sum' };
  const target = victimGradient(layer, [0.3]);

  it('a restart that overflows is rolled back to its best point, frozen with status 2; the others go on (invocation kernel)', async () => {
    const device = gpu();
    await withErrorScopes(device, 'rollback', async () => {
      const e = createAttackEngine(device, { layer, target, P: 3, optimizer: 'gd', lr: 1.4, momentum: 0 });
      const r = await runGpu(e, [0.35, 10, 0.25], 400);
      expect(Array.from(r.status)).toEqual([0, 2, 0]);
      expect(r.iterations[1]).toBeGreaterThan(5);
      expect(r.iterations[1]).toBeLessThan(400);
      expect(Array.from(r.iterations.filter((_, i) => i !== 1))).toEqual([400, 400]);
      // frozen at its best evaluated point: the start (the loss only grew from there)
      expect(r.best[1]).toBe(10);
      expect(r.loss[1]).toBe(r.bestLoss[1]);
      expect(Number.isFinite(r.bestLoss[1])).toBe(true);
      expect(r.bestLoss[0]).toBeLessThan(1e-8);
      expect(r.bestLoss[2]).toBeLessThan(1e-8);
      // frozen: more iterations change nothing for it
      e.run(50);
      const s = await e.readStatus();
      expect(s.iterations[1]).toBe(r.iterations[1]);
      expect(s.iterations[0]).toBe(450);
      expect((await e.readBest())[1]).toBe(10);
      e.destroy();
    });
  });

  it('a restart whose gradient overflows mid-run is rolled back and frozen (stream kernel)', async () => {
    // The same dynamics in feature 0 of D = 68 (W's other rows are 0, so those features never move).
    const D = 68;
    const W = new Array(D * 2).fill(0);
    W[0] = 1;
    W[1] = 1;
    const wide: Layer = { B: 1, D, K: 2, W, b: [0, 0], y: [0, 1], reduction: 'sum' };
    const wideTarget = victimGradient(wide, [0.3, ...new Array(D - 1).fill(0)]);
    expect(kernelOf(1, D, 2, 'gd')).toBe('stream');
    const x0 = new Float32Array(3 * D);
    [x0[0], x0[D], x0[2 * D]] = [0.35, 10, 0.25];
    const device = gpu();
    await withErrorScopes(device, 'rollback stream', async () => {
      const e = createAttackEngine(device, { layer: wide, target: wideTarget, P: 3, optimizer: 'gd', lr: 1.4, momentum: 0 }, { kernel: 'stream' });
      expect(e.kernel).toBe('stream');
      const r = await runGpu(e, x0, 400);
      expect(Array.from(r.status)).toEqual([0, 2, 0]);
      expect(r.iterations[1]).toBeGreaterThan(5);
      expect(r.iterations[1]).toBeLessThan(400);
      expect(r.best[D]).toBe(10);
      expect(Array.from(r.best.slice(D + 1, 2 * D)).every((v) => v === 0)).toBe(true);
      expect(r.loss[1]).toBe(r.bestLoss[1]);
      expect(r.bestLoss[0]).toBeLessThan(1e-8);
      expect(r.bestLoss[2]).toBeLessThan(1e-8);
      e.run(50);
      const s = await e.readStatus();
      expect(s.iterations[1]).toBe(r.iterations[1]);
      expect(s.iterations[0]).toBe(450);
      e.destroy();
    });
  });

  for (const [kernel, tuning] of [['workgroup', { kernel: 'workgroup' }], ['stream', { kernel: 'stream' }], ['invocation', {}]] as [string, EngineTuning][]) {
    it(`a non-finite start is frozen at once with status 2 (${kernel} kernel)`, async () => {
      const p = problem(2, 40, 3, 5);
      const P = 3;
      const x0 = Float32Array.from(starts(p, P, 0.3, 8));
      x0.fill(1e20, 80, 160); // restart 1: ‖ΔW‖² overflows f32
      expect(kernelOf(2, 40, 3, 'adam', 'l2', tuning.kernel)).toBe(kernel);
      const device = gpu();
      await withErrorScopes(device, 'rollback wg', async () => {
        const e = createAttackEngine(device, { layer: p.layer, target: p.target, P, optimizer: 'adam', lr: 0.01 }, tuning);
        const r = await runGpu(e, x0, 30);
        expect(Array.from(r.status)).toEqual([0, 2, 0]);
        expect(Array.from(r.iterations)).toEqual([30, 0, 30]);
        expect(Array.from(r.best.slice(80, 160))).toEqual(Array.from(x0.slice(80, 160)));
        expect(r.bestLoss[1]).toBe(Infinity);
        expect(r.bestLoss[0]).toBeLessThan(r.bestLoss[1]);
        e.destroy();
      });
    });
  }

  it('converged restarts stop at tolAbs and stay frozen; per-group tolerances', async () => {
    const p = problem(1, 1, 1, 21);
    const q = problem(1, 1, 1, 22);
    const groups = [
      { y: p.layer.y, target: p.target },
      { y: q.layer.y, target: q.target },
    ];
    const tolAbs = [1e-8 * gradientNormSq(p.target), -1]; // group 1 can never converge
    const x0 = Float32Array.from([...starts(p, 4, 0.1, 1), ...starts(q, 4, 0.1, 2)]);
    const device = gpu();
    await withErrorScopes(device, 'convergence', async () => {
      const e = createAttackEngine(device, { layer: p.layer, target: p.target, groups, P: 4, optimizer: 'adam', lr: 0.01, tolAbs });
      const r = await runGpu(e, x0, 3000);
      for (let i = 0; i < 4; i++) {
        expect(r.status[i]).toBe(1);
        expect(r.loss[i]).toBeLessThanOrEqual(Math.fround(tolAbs[0]));
        expect(r.iterations[i]).toBeLessThan(3000);
        expect(r.status[4 + i]).toBe(0);
        expect(r.iterations[4 + i]).toBe(3000);
      }
      e.run(100);
      const s = await e.readStatus();
      expect(Array.from(s.iterations.slice(0, 4))).toEqual(Array.from(r.iterations.slice(0, 4)));
      e.destroy();
    });
  });
});

describe('attack engine: groups', () => {
  for (const [B, D, K] of [
    [2, 1, 1],
    [2, 40, 3],
    [3, 36, 5], // the stream kernel: one dispatch and one W/G block per group
  ] as const) {
    it(`groups give the same bytes as separate engines (${B},${D},${K})`, async () => {
      const base = problem(B, D, K, 31);
      const other = problem(B, D, K, 32);
      const layerB = { ...base.layer, y: other.layer.y };
      const targetB = victimGradient(layerB, other.xTrue);
      const P = 5;
      const xa = Float32Array.from(starts(base, P, 0.4, 1));
      const xb = Float32Array.from(starts(other, P, 0.4, 2));
      const device = gpu();
      await withErrorScopes(device, 'groups', async () => {
        const common = { P, optimizer: 'adam' as const, lr: 0.01, tolAbs: [1e-12, 1e-11] };
        const both = createAttackEngine(device, {
          ...common, layer: base.layer, target: base.target,
          groups: [{ y: base.layer.y, target: base.target }, { y: layerB.y, target: targetB }],
        });
        const a = createAttackEngine(device, { ...common, tolAbs: 1e-12, layer: base.layer, target: base.target });
        const b = createAttackEngine(device, { ...common, tolAbs: 1e-11, layer: layerB, target: targetB });
        const rAll = await runGpu(both, Float32Array.from([...xa, ...xb]), 40);
        const rA = await runGpu(a, xa, 40);
        const rB = await runGpu(b, xb, 40);
        expect(both.totalRestarts).toBe(2 * P);
        expect(kernelOf(B, D, K, 'adam')).toBe(D === 36 ? 'stream' : D === 1 && K === 1 ? 'pair' : 'invocation');
        expect(Array.from(rAll.best)).toEqual([...rA.best, ...rB.best]);
        expect(Array.from(rAll.bestLoss)).toEqual([...rA.bestLoss, ...rB.bestLoss]);
        expect(Array.from(rAll.iterations)).toEqual([...rA.iterations, ...rB.iterations]);
        for (const e of [both, a, b]) e.destroy();
      });
    });
  }
});

describe('attack engine: straight-line pair kernel (D = K = 1, B ≤ 2, gd/adam, l2)', () => {
  type Read = EngineStatus & { best: Float32Array };
  /**
   * GPU pair kernel (dispatches of 16 iterations, so state crosses dispatch and run() boundaries),
   * the same with 8 restarts per invocation (must give the same bytes), generic GPU kernel, CPU.
   */
  async function runThree(opts: EngineOptions, x0: ArrayLike<number>, runs: number[]): Promise<{ pair: Read; generic: Read; cpu: Read }> {
    const device = gpu();
    return withErrorScopes(device, 'pair kernel', async () => {
      const tunings: EngineTuning[] = [{ pairItersPerDispatch: 16 }, { kernel: 'invocation' }, { pairItersPerDispatch: 16, pairQuads: 2 }];
      const es = [...tunings.map((t) => createAttackEngine(device, opts, t)), createCpuEngine(opts)];
      try {
        const out: Read[] = [];
        for (const e of es) {
          e.setInputs(x0);
          for (const n of runs) e.run(n);
          out.push({ ...(await e.readStatus()), best: await e.readBest() });
        }
        const [pair, generic, quads2, cpu] = out;
        for (const k of ['best', 'bestLoss', 'loss', 'status', 'iterations'] as const) expect(Array.from(quads2[k]), `pairQuads 2: ${k}`).toEqual(Array.from(pair[k]));
        return { pair, generic, cpu };
      } finally {
        for (const e of es) e.destroy();
      }
    });
  }

  // P = 13: the kernel advances 4 restarts per invocation, so the last invocation is partly empty.
  const cases: [number, EngineOptions['optimizer'], number, Partial<EngineOptions>][] = [
    [1, 'gd', 1, { momentum: 0.9 }],
    [1, 'adam', 0.01, {}],
    [1, 'adam', 0.01, { beta1: 0 }],
    [2, 'gd', 2, { momentum: 0.5 }],
    [2, 'adam', 0.02, {}],
  ];
  for (const [B, optimizer, lr, extra] of cases) {
    it(`(${B},1,1) ${optimizer} ${JSON.stringify(extra)}: same trajectory as the generic kernel and the CPU engine over 60 iterations`, async () => {
      const p = problem(B, 1, 1, 40 + B);
      const P = 13;
      const x0 = Float32Array.from(starts(p, P, 0.5, 6));
      const opts: EngineOptions = { layer: p.layer, target: p.target, P, optimizer, lr, ...extra };
      expect(kernelOf(B, 1, 1, optimizer as AttackProblem['optimizer'])).toBe('pair');
      expect(kernelOf(B, 1, 1, optimizer as AttackProblem['optimizer'], 'cosine')).toBe('invocation');
      const r = await runThree(opts, x0, [37, 23]);
      for (const [other, what] of [[r.cpu, 'CPU'], [r.generic, 'generic kernel']] as const) {
        expect(Array.from(r.pair.iterations), what).toEqual(Array.from(other.iterations));
        expect(Array.from(r.pair.status), what).toEqual(Array.from(other.status));
        expectClose(r.pair.bestLoss, other.bestLoss, { abs: 1e-9, rel: 2e-3 }, `bestLoss vs ${what}`);
        expectClose(r.pair.loss, other.loss, { abs: 1e-9, rel: 2e-3 }, `loss vs ${what}`);
        expectClose(r.pair.best, other.best, { abs: 2e-4, rel: 1e-3 }, `best point vs ${what}`);
      }
      expect(Array.from(r.pair.iterations)).toEqual(new Array(P).fill(60));
      // the runs moved: every restart improved on its start
      const c0 = createCpuEngine(opts);
      c0.setInputs(x0);
      c0.run(1);
      const s0 = await c0.readStatus();
      for (let i = 0; i < P; i++) expect(r.cpu.bestLoss[i]).toBeLessThan(s0.loss[i]);
    });
  }

  it('converges and freezes at tolAbs like the CPU engine (2,1,1) adam', async () => {
    const p = problem(2, 1, 1, 45);
    const P = 8;
    const x0 = Float32Array.from(starts(p, P, 0.05, 2));
    const tolAbs = 1e-6 * gradientNormSq(p.target);
    const r = await runThree({ layer: p.layer, target: p.target, P, optimizer: 'adam', lr: 0.005, tolAbs }, x0, [100, 300]);
    expect(Array.from(r.pair.status)).toEqual(Array.from(r.cpu.status));
    expect(r.pair.status.some((s) => s === 1)).toBe(true);
    for (let i = 0; i < P; i++) {
      if (r.pair.status[i] !== 1) continue;
      expect(r.pair.loss[i]).toBeLessThanOrEqual(Math.fround(tolAbs));
      expect(r.pair.iterations[i]).toBeLessThan(400);
      // the converging iteration is the same up to f32 rounding of the last steps
      expect(Math.abs(r.pair.iterations[i] - r.cpu.iterations[i])).toBeLessThanOrEqual(2);
      expect(r.pair.iterations[i]).toBe(r.generic.iterations[i]);
    }
  });

  it('non-finite: a step to +Inf rolls back to the best point (status 2), an overflowing start freezes at once', async () => {
    // W = 1, b = 0, y = 1, sum: from x = −3 the gradient is ≈ −6.5, so lr = 1e38 steps to +Inf, where
    // ∇W′ = x·e = Inf·0 is NaN; from x = −1e20, ∇W′ ≈ 1e20 and its square overflows f32.
    const layer: Layer = { B: 1, D: 1, K: 1, W: [1], b: [0], y: [1], reduction: 'sum' };
    const target = victimGradient(layer, [0.3]);
    const opts: EngineOptions = { layer, target, P: 2, optimizer: 'gd', lr: 1e38, momentum: 0 };
    const device = gpu();
    await withErrorScopes(device, 'pair rollback', async () => {
      for (const tuning of [{}, { kernel: 'invocation' }] as EngineTuning[]) {
        const e = createAttackEngine(device, opts, tuning);
        const r = await runGpu(e, [-3, -1e20], 20);
        expect(Array.from(r.status)).toEqual([2, 2]);
        expect(Array.from(r.iterations)).toEqual([1, 0]);
        expect(Array.from(r.best)).toEqual([-3, -1e20].map(Math.fround));
        expect(Number.isFinite(r.bestLoss[0])).toBe(true);
        expect(r.loss[0]).toBe(r.bestLoss[0]);
        expect(r.bestLoss[1]).toBe(Infinity);
        e.run(30);
        const s = await e.readStatus();
        expect(Array.from(s.iterations)).toEqual([1, 0]);
        e.destroy();
      }
    });
  });

  it('B = 2: a diverging restart freezes while the others go on, as in the generic kernel', async () => {
    const p = problem(2, 1, 1, 46);
    const P = 4;
    const x0 = Float32Array.from(starts(p, P, 0.3, 3));
    x0[2] = -1e20; // restart 1, row 0: overflows at the first evaluation
    x0[3] = 1e20;
    const r = await runThree({ layer: p.layer, target: p.target, P, optimizer: 'adam', lr: 0.01 }, x0, [40]);
    expect(Array.from(r.pair.status)).toEqual([0, 2, 0, 0]);
    expect(Array.from(r.pair.iterations)).toEqual([40, 0, 40, 40]);
    expect(Array.from(r.generic.status)).toEqual([0, 2, 0, 0]);
    expect(Array.from(r.pair.best.slice(2, 4))).toEqual([-1e20, 1e20].map(Math.fround));
    expect(r.pair.bestLoss[1]).toBe(Infinity);
    expectClose(r.pair.bestLoss.filter((_, i) => i !== 1), r.generic.bestLoss.filter((_, i) => i !== 1), { abs: 1e-9, rel: 2e-3 }, 'bestLoss');
  });
});

describe('attack engine: kernel choice', () => {
  it('picks the stream kernel for gd/adam with the l2 loss, D % 4 = 0 and small B·K on CPU adapters', () => {
    expect(kernelOf(8, 784, 10, 'adam')).toBe('stream');
    expect(kernelOf(16, 64, 10, 'gd')).toBe('stream');
    expect(kernelOf(8, 784, 10, 'adam', 'cosine')).toBe('workgroup');
    expect(kernelOf(8, 784, 10, 'lbfgs')).toBe('workgroup');
    expect(kernelOf(8, 786, 10, 'adam')).toBe('workgroup'); // D % 4 ≠ 0
    expect(kernelOf(2, 1028, 8, 'adam')).toBe('workgroup'); // D·K > 8188
    expect(kernelOf(8, 784, 10, 'adam', 'l2', 'workgroup')).toBe('workgroup');
    expect(kernelOf(8, 16, 4, 'adam')).toBe('invocation'); // mid sizes stay on the unrolled kernel
    // on a GPU and SwiftShader's kind alike: the rank table
    expect(kernelOf(8, 784, 10, 'adam', 'l2', undefined, 'gpu')).toBe('workgroup');
    expect(kernelOf(8, 784, 10, 'adam', 'l2', undefined, 'swiftshader')).toBe('stream');
    expect(kernelOf(2, 1, 1, 'adam', 'l2', undefined, 'gpu')).toBe('pair');
    expect(kernelOf(8, 8, 10, 'lm', 'l2', undefined, 'gpu')).toBe('lm');
  });

  it('says why a kernel runs, and names the field and the cap when none can', () => {
    const c = engineKernel({ B: 8, D: 784, K: 10, optimizer: 'adam', loss: 'l2' }, on('llvmpipe'));
    expect(c.why).toMatch(/^auto on llvmpipe: .*4\.7–9\.2× workgroup.*; passed over pair \(D = K = 1 and B ≤ 2\), invocation \(B·D ≤ 256\)$/);
    expect(engineKernel({ B: 8, D: 784, K: 10, optimizer: 'adam', loss: 'l2' }, on('llvmpipe'), 'workgroup').why).toBe('asked for');
    const refused = (f: () => unknown, field: string, re: RegExp) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(DlgInputError);
        expect((err as DlgInputError).field).toBe(field);
        expect((err as Error).message).toMatch(re);
        return;
      }
      throw new Error('expected a DlgInputError');
    };
    refused(() => kernelOf(17, 5, 3), 'layer.B', /at most 16 for the GPU attack kernels \('workgroup'\), found 17/);
    refused(() => kernelOf(2, 4, 17, 'lbfgs'), 'layer.K', /at most 16/);
    refused(() => kernelOf(8, 784, 10, 'adam', 'l2', 'invocation'), 'layer.B', /B·D ≤ 256 for the 'invocation' attack kernel, found B·D = 6272/);
    refused(() => kernelOf(8, 786, 10, 'adam', 'l2', 'stream'), 'layer.D', /a multiple of 4 for the 'stream' attack kernel/);
    refused(() => kernelOf(17, 16, 10, 'lm'), 'layer.B', /B·D ≤ 256 unknowns.*'lm'.*272/);
    refused(() => kernelOf(2, 1, 1, 'adam', 'l2', 'nope' as EngineTuning['kernel']), 'kernel', /'pair', 'invocation', 'stream', 'workgroup', 'lm'/);
  });

  it('injects each row\'s caps into its WGSL: the source compiles with the sizes the host checks', async () => {
    const device = gpu();
    for (const spec of Object.values(KERNELS).flat()) {
      const code = kernelSource(spec);
      for (const [k, v] of Object.entries(spec.u32)) expect(code).toContain(`const ${k}: u32 = ${v}u;`);
      device.pushErrorScope('validation');
      const m = device.createShaderModule({ code });
      const info = await m.getCompilationInfo();
      expect(await device.popErrorScope(), `${spec.family}/${spec.name}`).toBeNull();
      expect(info.messages.filter((x) => x.type === 'error'), `${spec.family}/${spec.name}`).toEqual([]);
    }
  });

  it('createAttackEngine defaults to the stream kernel on CPU adapters only, and says which kernel runs', () => {
    const device = gpu();
    const p = problem(3, 36, 5, 3); // beyond the mid caps (D·K = 180)
    const e = createAttackEngine(device, { layer: p.layer, target: p.target, P: 4, optimizer: 'adam', lr: 0.01 });
    expect(e.kernel).toBe(isCpuDevice(device) ? 'stream' : 'workgroup');
    e.destroy();
    const fake = (info: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean }) => ({ adapterInfo: { vendor: '', architecture: '', device: '', description: '', ...info } }) as unknown as GPUDevice;
    expect(isCpuDevice(fake({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }))).toBe(true);
    expect(isCpuDevice(fake({ vendor: 'google', architecture: 'swiftshader' }))).toBe(true);
    expect(isCpuDevice(fake({ isFallbackAdapter: true }))).toBe(true);
    expect(isCpuDevice(fake({ vendor: 'nvidia', description: 'NVIDIA: 580.159.04 580.159.4.0' }))).toBe(false);
    expect(isCpuDevice({} as GPUDevice)).toBe(false);
    expect(createCpuEngine({ layer: p.layer, target: p.target, P: 1, optimizer: 'gd', lr: 0.1 }).kernel).toBe('cpu');
  });
});

describe('attack engine: bad options', () => {
  const p = problem(2, 1, 1, 1);
  const ok: EngineOptions = { layer: p.layer, target: p.target, P: 4, optimizer: 'adam', lr: 0.1 };
  const bad: [string, Partial<EngineOptions>][] = [
    ['P', { P: 0 }],
    ['P', { P: -3 }],
    ['P', { P: 2.5 }],
    ['optimizer', { optimizer: 'sgd' as never }],
    ['lr', { lr: 0 }],
    ['lr', { lr: -1 }],
    ['lr', { lr: NaN }],
    ['lr', { lr: Infinity }],
    ['history', { history: 100 }],
    ['loss', { loss: 'l1' as never }],
    ['tolAbs', { tolAbs: [1, 2] }],
    ['target.W', { target: { W: new Float64Array(3), b: new Float64Array(1) } }],
  ];
  for (const [field, patch] of bad) {
    it(`${field} = ${JSON.stringify(Object.values(patch)[0]) ?? String(Object.values(patch)[0])} is a DlgInputError naming ${field}`, () => {
      for (const make of [() => createCpuEngine({ ...ok, ...patch }), () => createAttackEngine(gpu(), { ...ok, ...patch })]) {
        let err: unknown;
        try {
          make().destroy();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(DlgInputError);
        expect((err as DlgInputError).field).toBe(field);
      }
    });
  }
  it('bad tuning knobs are DlgInputErrors naming the knob', () => {
    for (const [field, t] of [
      ['tuning.pairQuads', { pairQuads: 3 }],
      ['tuning.pairWorkgroupSize', { pairWorkgroupSize: 0 }],
      ['tuning.pairItersPerDispatch', { pairItersPerDispatch: 1.5 }],
    ] as [string, EngineTuning][]) {
      expect(() => createAttackEngine(gpu(), ok, t).destroy()).toThrow(DlgInputError);
      expect(() => createAttackEngine(gpu(), ok, t).destroy()).toThrow(field);
    }
  });
  it('x0 of the wrong length, or non-finite, and run() before setInputs are rejected', () => {
    for (const e of [createCpuEngine(ok), createAttackEngine(gpu(), ok)]) {
      expect(() => e.run(1)).toThrow(DlgInputError);
      expect(() => e.setInputs(new Float32Array(7))).toThrow(/x0/);
      expect(() => e.setInputs(new Float32Array(8).fill(NaN))).toThrow(/x0\[0\]/);
      e.setInputs(new Float32Array(8));
      expect(() => e.run(-1)).toThrow(/iterations/);
      e.destroy();
    }
  });
});
