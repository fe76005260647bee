import { describe, expect, it } from 'vitest';
import { DlgInputError } from '../src/core/errors.js';
import { type Gradient, type Layer, type Reduction, gradientNormSq, matchL2, matchL2Batched, residuals, victimGradient } from '../src/core/model.js';
import { OBJECTIVE_CAPS, type ObjectiveRegime, createObjective, createVictimGradient } from '../src/objective/objective.js';
import { chooseKernel } from '../src/gpu/kernels.js';
import { Rng } from '../src/core/rng.js';
import { expectClose, relError, useGpu } from './helpers.js';

const gpu = useGpu();

function randomLayer(rng: Rng, B: number, D: number, K: number, reduction: Reduction = 'mean', wScale = 1): Layer {
  return {
    B,
    D,
    K,
    reduction,
    W: Float64Array.from({ length: D * K }, () => (wScale * rng.normal()) / Math.sqrt(D)),
    b: Float64Array.from({ length: K }, () => 0.1 * rng.normal()),
    y: Float64Array.from({ length: B * K }, () => (rng.uniform() < 0.5 ? 0 : 1)),
  };
}
const randn = (rng: Rng, n: number) => Float64Array.from({ length: n }, () => rng.normal());

interface Case {
  layer: Layer;
  target: Gradient;
  x: Float64Array; // P·B·D fake inputs
  P: number;
}

/** A victim batch gives the target; P random fake batches are the points evaluated (well-conditioned: far from the truth). */
function makeCase(seed: number, B: number, D: number, K: number, P: number, reduction: Reduction = 'mean', wScale = 1): Case {
  const rng = new Rng(seed);
  const layer = randomLayer(rng, B, D, K, reduction, wScale);
  const target = victimGradient(layer, randn(rng, B * D));
  return { layer, target, x: randn(rng, P * B * D), P };
}

/**
 * The f32 error scale of each gradient element: the same formula evaluated on absolute values,
 * 2·Σ_k (A[d,k]·E_nk + |W[d,k]| s_nk U_nk), where
 * - Z_nk = Σ_d |x′_nd W_dk| + |b_k| (rounding in the logit), E_nk = |e_nk| + s_nk Z_nk (and its effect on e),
 * - A = Σ_m |x′_m| E_mᵀ + |G| (what ΔW cancels from), U_n = Aᵀ|x′_n| + Σ_m E_m + |g|.
 * Rounding is relative to this, not to the (possibly cancelled) result.
 */
function gradErrorScale(layer: Layer, target: Gradient, x: ArrayLike<number>, off: number): Float64Array {
  const { B, D, K, W } = layer;
  const { e, s } = residuals(layer, x, off);
  const E = new Float64Array(B * K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      let z = Math.abs(layer.b[k]);
      for (let d = 0; d < D; d++) z += Math.abs(x[off + n * D + d] * W[d * K + k]);
      E[n * K + k] = Math.abs(e[n * K + k]) + s[n * K + k] * z;
    }
  }
  const A = new Float64Array(D * K);
  const Ab = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    Ab[k] = Math.abs(target.b[k]);
    for (let n = 0; n < B; n++) Ab[k] += E[n * K + k];
    for (let d = 0; d < D; d++) {
      let acc = Math.abs(target.W[d * K + k]);
      for (let n = 0; n < B; n++) acc += Math.abs(x[off + n * D + d]) * E[n * K + k];
      A[d * K + k] = acc;
    }
  }
  const U = new Float64Array(B * K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      let acc = Ab[k];
      for (let d = 0; d < D; d++) acc += A[d * K + k] * Math.abs(x[off + n * D + d]);
      U[n * K + k] = acc;
    }
  }
  const out = new Float64Array(B * D);
  for (let n = 0; n < B; n++) {
    for (let d = 0; d < D; d++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += A[d * K + k] * E[n * K + k] + Math.abs(W[d * K + k]) * s[n * K + k] * U[n * K + k];
      out[n * D + d] = 2 * acc;
    }
  }
  return out;
}

/**
 * Checks restarts `which` of a GPU evaluation against the float64 oracle.
 * - loss: 1e-4 relative, plus 1e-6·(‖G‖² + ‖g‖²) absolute (ΔW = Σ x′e′ − G is formed in f32);
 * - gradient, element-wise: 1e-4 relative, plus 1e-5 × its f32 error scale (gradErrorScale: cancellation);
 * - gradient, normwise relative error ≤ 1e-4 on every well-conditioned restart (‖error scale‖ ≤ 1000·‖result‖;
 *   random fake batches give 1.4–250 typically; the bound is pessimistic: real errors are ~1e-7 relative);
 *   at least 90% of the restarts checked must be well-conditioned, so the strict check is never vacuous.
 */
function checkAgainstCpu(c: Case, out: { loss: Float32Array; grad: Float32Array }, which: Iterable<number>): number {
  const BD = c.layer.B * c.layer.D;
  expect(out.loss.length).toBe(c.P);
  expect(out.grad.length).toBe(c.P * BD);
  const lossAbs = 1e-6 * gradientNormSq(c.target);
  let wellConditioned = 0;
  let count = 0;
  for (const p of which) {
    count++;
    const ref = matchL2(c.layer, c.target, c.x, p * BD);
    expectClose([out.loss[p]], [ref.loss], { abs: lossAbs, rel: 1e-4 }, `loss[${p}]`);
    const g = out.grad.subarray(p * BD, (p + 1) * BD);
    const scale = gradErrorScale(c.layer, c.target, c.x, p * BD);
    // Element-wise, without one expect() per element (vitest's expect is slow at 10⁶ calls).
    for (let i = 0; i < BD; i++) {
      const allowed = 1e-4 * Math.abs(ref.grad[i]) + 1e-5 * scale[i];
      if (!(Math.abs(g[i] - ref.grad[i]) <= allowed)) {
        throw new Error(`grad[${p}][${i}]: got ${g[i]}, expected ${ref.grad[i]} (allowed |diff| ≤ ${allowed})`);
      }
    }
    let num = 0;
    let den = 0;
    for (let i = 0; i < BD; i++) {
      num += scale[i] ** 2;
      den += ref.grad[i] ** 2;
    }
    if (num <= 1e6 * den) {
      wellConditioned++;
      expect(relError(g, ref.grad), `grad[${p}] normwise relative error`).toBeLessThanOrEqual(1e-4);
    }
  }
  expect(wellConditioned, 'most restarts are well-conditioned').toBeGreaterThanOrEqual(0.9 * count);
  return wellConditioned;
}

async function evaluate(c: Case, regime: 'auto' | ObjectiveRegime = 'auto', workgroupSize?: number) {
  const h = createObjective(gpu(), { layer: c.layer, target: c.target, P: c.P, regime, workgroupSize, label: 'test.objective' });
  try {
    h.setInputs(c.x);
    return { regime: h.regime, ...(await h.evaluate()) };
  } finally {
    h.destroy();
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('objective kernels vs the float64 reference', () => {
  for (const reduction of ['mean', 'sum'] as const) {
    for (const regime of ['invocation', 'stream', 'workgroup'] as const) {
      it(`B=1 D=${regime === 'stream' ? 4 : 1} K=1, ${regime}, ${reduction}`, async () => {
        const c = makeCase(11, 1, regime === 'stream' ? 4 : 1, 1, 5, reduction);
        const out = await evaluate(c, regime);
        expect(out.regime).toBe(regime);
        checkAgainstCpu(c, out, range(c.P));
      });
    }
  }

  for (const [reduction, subset] of [['mean', false], ['sum', true]] as const) {
    it(`B=2 D=1 K=1 P=65536 (auto → invocation), ${subset ? 'a random 4096 of the' : 'all'} restarts, ${reduction}`, async () => {
      const c = makeCase(21, 2, 1, 1, 65536, reduction);
      const out = await evaluate(c);
      expect(out.regime).toBe('invocation');
      const rng = new Rng(22);
      checkAgainstCpu(c, out, subset ? Array.from({ length: 4096 }, () => rng.int(c.P)) : range(c.P));
    });
  }

  it('B=8 D=784 K=10 P=256 (auto → stream; and the workgroup regime), mean', async () => {
    const c = makeCase(31, 8, 784, 10, 256, 'mean');
    const out = await evaluate(c);
    expect(out.regime).toBe('stream');
    checkAgainstCpu(c, out, range(c.P));
    const wg = await evaluate(c, 'workgroup');
    expect(wg.regime).toBe('workgroup');
    checkAgainstCpu(c, wg, range(c.P));
  });

  for (const [B, D, K, P, reduction] of [
    [3, 37, 5, 9, 'sum'],
    [5, 100, 7, 6, 'mean'],
    [64, 50, 10, 3, 'mean'], // 8 row chunks of ACC/K = 8 rows
    [2, 130, 64, 3, 'sum'], // K = MAX_K: one row per chunk
    [7, 1, 3, 300, 'mean'], // invocation kernel, rows past ROWS_CACHED recomputed
    [3, 1, 1, 50, 'sum'], // D = K = 1 but B > 2: the general invocation kernel
    [2, 1, 1, 7, 'mean'], // objectivePair, four restarts per invocation: a partly empty last invocation
    [1, 1, 1, 5, 'sum'], // objectivePair with B = 1 (row 1 masked) and P % 4 = 1
    [2, 1, 1, 1, 'sum'], // objectivePair: one restart, three idle lanes
    [13, 20, 17, 5, 'mean'], // workgroup (K > 16): 3 row chunks of ACC / K = 4 rows
    [9, 36, 14, 67, 'sum'], // stream: B·K = 126, P not a multiple of the workgroup size
    [9, 33, 14, 5, 'mean'], // the same with D % 4 ≠ 0: workgroup
    [2, 1028, 8, 3, 'mean'], // D·K = 8224 > 8192 (the stream column block): workgroup
    [100, 9, 3, 2, 'sum'], // workgroup: 4 row chunks
  ] as const) {
    it(`non-power-of-two B=${B} D=${D} K=${K} P=${P}, ${reduction}`, async () => {
      const c = makeCase(100 + B + D + K, B, D, K, P, reduction);
      const out = await evaluate(c);
      checkAgainstCpu(c, out, range(c.P));
    });
  }

  for (const reduction of ['mean', 'sum'] as const) {
    it(`the three regimes agree on B=5 D=4 K=4 (${reduction}) and match the reference`, async () => {
      const c = makeCase(41, 5, 4, 4, 200, reduction);
      const inv = await evaluate(c, 'invocation');
      const st = await evaluate(c, 'stream');
      const wg = await evaluate(c, 'workgroup');
      for (const out of [inv, st, wg]) checkAgainstCpu(c, out, range(c.P));
      for (const out of [st, wg]) {
        expect(relError(inv.loss, out.loss)).toBeLessThan(1e-5);
        expect(relError(inv.grad, out.grad)).toBeLessThan(1e-5);
      }
    });
  }

  it('large logits stay finite and accurate (stable sigmoid)', async () => {
    // |z| up to ~100: σ saturates, e ≈ ±1/N, s ≈ e^−|z|. Logit rounding (|z|·2⁻²⁴) dominates here, so the
    // element-wise error model above does not apply; check finiteness, the loss and the normwise gradient.
    const c = makeCase(51, 4, 20, 3, 8, 'sum', 40);
    const out = await evaluate(c);
    const BD = c.layer.B * c.layer.D;
    const ref = matchL2Batched(c.layer, c.target, c.x, c.P);
    expect(out.grad.every(Number.isFinite) && out.loss.every(Number.isFinite)).toBe(true);
    expectClose(out.loss, ref.loss, { abs: 0, rel: 1e-4 }, 'loss');
    for (let p = 0; p < c.P; p++) {
      const g = out.grad.subarray(p * BD, (p + 1) * BD);
      expect(relError(g, ref.grad.subarray(p * BD, (p + 1) * BD)), `grad[${p}] normwise`).toBeLessThanOrEqual(1e-4);
    }
  });

  it('workgroupSize is a tuning knob: other sizes give the same answer', async () => {
    const c = makeCase(61, 6, 200, 10, 4, 'mean');
    checkAgainstCpu(c, await evaluate(c, 'workgroup', 16), range(c.P));
    checkAgainstCpu(c, await evaluate(c, 'stream', 16), range(c.P));
    const ci = makeCase(62, 2, 1, 1, 1000, 'mean');
    checkAgainstCpu(ci, await evaluate(ci, 'invocation', 256), range(ci.P));
  });
});

describe('determinism and handle behaviour', () => {
  for (const [B, D, K, P] of [
    [8, 784, 10, 16],
    [2, 1, 1, 4096],
  ] as const) {
    it(`two evaluations give identical bytes (B=${B} D=${D} K=${K} P=${P})`, async () => {
      const c = makeCase(71, B, D, K, P);
      const h = createObjective(gpu(), { layer: c.layer, target: c.target, P });
      try {
        h.setInputs(c.x);
        const a = await h.evaluate();
        // Repeated dispatches in one pass overwrite, never accumulate.
        const enc = gpu().createCommandEncoder({ label: 'test.objective.repeats' });
        h.encode(enc, 3);
        gpu().queue.submit([enc.finish()]);
        const b = await h.evaluate();
        expect(Buffer.from(b.loss.buffer).equals(Buffer.from(a.loss.buffer))).toBe(true);
        expect(Buffer.from(b.grad.buffer).equals(Buffer.from(a.grad.buffer))).toBe(true);
        // A second handle (fresh buffers, cached pipeline) gives the same bytes too.
        const again = await evaluate(c);
        expect(Buffer.from(again.grad.buffer).equals(Buffer.from(a.grad.buffer))).toBe(true);
      } finally {
        h.destroy();
      }
    });
  }

  it('setInputs replaces the fake batches', async () => {
    const c = makeCase(81, 3, 37, 5, 4);
    const h = createObjective(gpu(), { layer: c.layer, target: c.target, P: c.P });
    try {
      h.setInputs(c.x);
      await h.evaluate();
      const x2 = randn(new Rng(82), c.x.length);
      h.setInputs(x2);
      checkAgainstCpu({ ...c, x: x2 }, await h.evaluate(), range(c.P));
    } finally {
      h.destroy();
    }
  });

  it('auto picks invocation, then stream (D % 4 = 0, small B·K, D·K ≤ 8192), then workgroup', () => {
    const limits = gpu().limits;
    const chooseRegime = (B: number, D: number, K: number) => chooseKernel('objective', { B, D, K }, { kind: 'llvmpipe', limits }).spec.name;
    expect(chooseRegime(2, 1, 1)).toBe('invocation');
    expect(chooseRegime(8, 784, 10)).toBe('stream');
    expect(chooseRegime(16, 64, 8)).toBe('stream');
    expect(chooseRegime(8, 786, 10)).toBe('workgroup'); // D % 4 ≠ 0
    expect(chooseRegime(16, 64, 10)).toBe('workgroup'); // B·K = 160 > 128
    expect(chooseRegime(2, 1028, 8)).toBe('workgroup'); // D·K > 8192
    expect(chooseRegime(2, 64, 17)).toBe('workgroup'); // K > 16
    expect(chooseKernel('objective', { B: 2, D: 1028, K: 8 }, { kind: 'gpu', limits }).why).toMatch(/^auto on gpu: sums over D.*passed over invocation \(D ≤ 4 \(MAX_D\)/);
    expect(OBJECTIVE_CAPS.streamMaxDK).toBe(8192);
  });
});

describe('victim gradient kernel', () => {
  for (const [B, D, K, reduction] of [
    [1, 1, 1, 'mean'],
    [2, 1, 1, 'sum'],
    [5, 100, 7, 'mean'],
    [8, 784, 10, 'sum'],
    [64, 33, 3, 'mean'],
  ] as const) {
    it(`matches victimGradient, B=${B} D=${D} K=${K} ${reduction}`, async () => {
      const rng = new Rng(200 + B + D + K);
      const layer = randomLayer(rng, B, D, K, reduction);
      const x = randn(rng, B * D);
      const ref = victimGradient(layer, x);
      const h = createVictimGradient(gpu(), layer);
      try {
        const out = await h.compute(x);
        for (const [name, a, e] of [['W', out.W, ref.W], ['b', out.b, ref.b]] as const) {
          expect(relError(a, e), `∇${name} normwise`).toBeLessThanOrEqual(1e-4);
          let scale = 0;
          for (const v of e) scale = Math.max(scale, Math.abs(v));
          expectClose(a, e, { abs: 1e-4 * scale, rel: 1e-4 }, `∇${name}`);
        }
        const again = await h.compute(x);
        expect(Buffer.from(again.W.buffer).equals(Buffer.from(out.W.buffer))).toBe(true);
      } finally {
        h.destroy();
      }
    });
  }
});

describe('bad input', () => {
  const c = makeCase(91, 2, 3, 2, 4);
  const base = { layer: c.layer, target: c.target, P: c.P };
  const expectInputError = (fn: () => unknown, field: RegExp, message: RegExp) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DlgInputError);
    expect((err as DlgInputError).field).toMatch(field);
    expect((err as DlgInputError).message).toMatch(message);
  };

  it('P must be a positive integer', () => {
    for (const P of [0, -3, 1.5, Number.NaN, '4' as unknown as number]) {
      expectInputError(() => createObjective(gpu(), { ...base, P }), /^P$/, /integer/);
    }
  });

  it('B, D, K must be positive integers and arrays must have their shapes', () => {
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, B: 0 } }), /layer\.B/, /integer/);
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, D: 2.5 } }), /layer\.D/, /integer/);
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, K: -1 } }), /layer\.K/, /integer/);
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, W: [1, 2] } }), /layer\.W/, /length 6.*length 2/);
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, y: [0, 1, 2, 0] } }), /layer\.y\[2\]/, /\[0, 1\]/);
    expectInputError(() => createObjective(gpu(), { ...base, layer: { ...c.layer, b: [0, Number.NaN] } }), /layer\.b.*\[1\]/, /finite.*NaN/);
    expectInputError(
      () => createObjective(gpu(), { ...base, layer: { ...c.layer, reduction: 'max' as Reduction } }),
      /reduction/,
      /'mean', 'sum'/,
    );
    expectInputError(() => createObjective(gpu(), { ...base, target: { W: new Float64Array(5), b: c.target.b } }), /target\.W/, /length 6/);
    expectInputError(() => createObjective(gpu(), { ...base, regime: 'warp' as ObjectiveRegime }), /regime/, /'invocation'/);
  });

  it('fake inputs must have length P·B·D and be finite; evaluate needs inputs', async () => {
    const h = createObjective(gpu(), base);
    try {
      expectInputError(() => h.setInputs(new Float64Array(c.x.length - 1)), /^x /, /length 24.*length 23/);
      const bad = c.x.slice();
      bad[5] = Number.POSITIVE_INFINITY;
      expectInputError(() => h.setInputs(bad), /^x .*\[5\]/, /finite/);
      await expect(h.evaluate()).rejects.toBeInstanceOf(DlgInputError);
    } finally {
      h.destroy();
    }
    const v = createVictimGradient(gpu(), c.layer);
    try {
      await expect(v.compute(new Float64Array(5))).rejects.toThrow(/length 6/);
    } finally {
      v.destroy();
    }
  });

  it('sizes beyond the kernels\' caps or the device limits name the limit', () => {
    const big = makeCase(92, 2, 5, 1, 1); // D = 5 > MAX_D
    expectInputError(() => createObjective(gpu(), { layer: big.layer, target: big.target, P: 1, regime: 'invocation' }), /^layer$/, /MAX_D.*'invocation' objective kernel, found B=2, D=5, K=1/);
    const wideK = makeCase(93, 1, 2, 65, 1); // K > MAX_K
    expectInputError(() => createObjective(gpu(), { layer: wideK.layer, target: wideK.target, P: 1 }), /^layer$/, /MAX_K.*'workgroup'.*B=1, D=2, K=65/);
    const tall = makeCase(94, 200, 2, 10, 1); // B·K = 2000 > MAX_BK
    expectInputError(() => createObjective(gpu(), { layer: tall.layer, target: tall.target, P: 1 }), /^layer$/, /MAX_BK.*'workgroup'/);
    const limit = gpu().limits.maxStorageBufferBindingSize;
    const P = Math.ceil(limit / (4 * 2 * 3)) + 1;
    expectInputError(() => createObjective(gpu(), { ...base, P }), /^x \(P·B·D/, /maxStorageBufferBindingSize/);
    expectInputError(() => createObjective(gpu(), { ...base, regime: 'workgroup', workgroupSize: 4096 }), /workgroupSize/, /integer in \[1, \d+\]/);
    expectInputError(() => createObjective(gpu(), { ...base, regime: 'workgroup', workgroupSize: 256 }), /workgroupSize/, /maxComputeWorkgroupStorageSize/);
  });
});
