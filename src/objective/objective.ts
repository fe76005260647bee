/**
 * WebGPU host for the DLG objective: L_r = ‖ΔW‖² + ‖Δb‖² and ∇ₓ′L_r for P independent fake
 * batches (restarts) at once, plus the victim's own gradient. f32 on the device; every sum runs in a
 * fixed order, so two evaluations give identical bytes. Factories build buffers and pipelines once.
 *
 * Two kernel regimes:
 * - 'invocation' (shaders/objective/invocation.wgsl): one invocation per restart, all state in private
 *   registers. For tiny layers: D ≤ OBJECTIVE_CAPS.invocationMaxD, K ≤ invocationMaxK, any B.
 * - 'stream' (shaders/objective/stream.wgsl): one invocation per restart, x′ streamed from memory
 *   four features at a time, B and K fixed per pipeline (override constants). For large D with small
 *   B·K: D a multiple of 4, B·K ≤ streamMaxBK, K ≤ streamMaxK.
 * - 'workgroup' (shaders/objective/workgroup.wgsl): one workgroup per restart, sums over the D input
 *   features reduced through workgroup memory. Needs K ≤ workgroupMaxK and B·K ≤ workgroupMaxBK.
 */
import { DlgInputError, describe, requireFiniteArray, requireOneOf, requirePositiveInt } from '../core/errors.js';
import { Readback, checkBindingSize, dispatch2d, storageBuffer, uniformBuffer, withErrorScopes, writeF32 } from '../gpu/gpu.js';
import { uniformView } from '../gpu/uniforms.js';
import { OBJECTIVE_CAPS, chooseKernel, kernelLayout, kernelPipeline, kernelSpec } from '../gpu/kernels.js';
import { type Gradient, type Layer, normaliser } from '../core/model.js';


export type ObjectiveRegime = 'invocation' | 'stream' | 'workgroup';

export { OBJECTIVE_CAPS };

/** Default workgroup sizes (WGSL `override WG`), tuned on lavapipe. */
export const OBJECTIVE_DEFAULT_WG: Record<ObjectiveRegime, number> = { invocation: 64, stream: 64, workgroup: 64 };

export interface ObjectiveOptions {
  layer: Layer;
  target: Gradient;
  P: number;
  regime?: 'auto' | ObjectiveRegime;
  label?: string;
  /** Tuning knob: the kernel's workgroup size (WGSL override WG). */
  workgroupSize?: number;
}

export interface ObjectiveHandle {
  readonly P: number;
  readonly regime: ObjectiveRegime;
  /** Why that kernel runs (the registry's sentence, src/gpu/kernels.ts). */
  readonly why: string;
  /** The WGSL entry point used (see objectiveEntryPoint; 'objectiveStream*' for the stream regime's three passes). */
  readonly entryPoint: string;
  /** Device buffers, for callers that chain their own kernels: x (P·B·D f32, read), loss (P f32), grad (P·B·D f32). */
  readonly buffers: { readonly x: GPUBuffer; readonly loss: GPUBuffer; readonly grad: GPUBuffer };
  /** P·B·D fake inputs, flat: x[p*B*D + n*D + d]. Validates length and finiteness. */
  setInputs(x: ArrayLike<number>): void;
  /** Records the evaluation into a compute pass of its own, `repeats` times (benchmarks). */
  encode(encoder: GPUCommandEncoder, repeats?: number): void;
  /** Records one evaluation into an open compute pass (sets this handle's pipeline and bind group). */
  dispatch(pass: GPUComputePassEncoder): void;
  /** Encodes, submits and reads back: loss[P] and grad[P·B·D]. */
  evaluate(): Promise<{ loss: Float32Array; grad: Float32Array }>;
  destroy(): void;
}

/** Validates the layer's sizes and arrays (labels in [0,1]). */
export function validateLayer(layer: Layer, field = 'layer'): void {
  if (typeof layer !== 'object' || layer === null) throw new DlgInputError(field, 'a layer {B, D, K, W, b, y, reduction}', describe(layer));
  const B = requirePositiveInt(`${field}.B`, layer.B);
  const D = requirePositiveInt(`${field}.D`, layer.D);
  const K = requirePositiveInt(`${field}.K`, layer.K);
  requireOneOf(`${field}.reduction`, layer.reduction, ['mean', 'sum'] as const);
  requireFiniteArray(`${field}.W (D×K = ${D}×${K})`, layer.W, D * K);
  requireFiniteArray(`${field}.b (K = ${K})`, layer.b, K);
  requireFiniteArray(`${field}.y (B×K = ${B}×${K})`, layer.y, B * K);
  for (let i = 0; i < B * K; i++) {
    if (layer.y[i] < 0 || layer.y[i] > 1) throw new DlgInputError(`${field}.y[${i}]`, 'a label in [0, 1]', String(layer.y[i]));
  }
}

function requireWorkgroupSize(device: GPUDevice, regime: ObjectiveRegime, wg: number): void {
  const lim = device.limits;
  const max = Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX);
  requirePositiveInt('workgroupSize', wg, max);
  if (regime === 'workgroup') {
    const c = OBJECTIVE_CAPS;
    const bytes = 4 * (wg * c.workgroupAccumulators + 2 * c.workgroupMaxBK + c.workgroupMaxK);
    if (bytes > lim.maxComputeWorkgroupStorageSize) {
      throw new DlgInputError(
        'workgroupSize',
        `a size whose workgroup memory fits this device's maxComputeWorkgroupStorageSize (${lim.maxComputeWorkgroupStorageSize} bytes)`,
        `${wg} (needs ${bytes} bytes)`,
      );
    }
  }
}

/** The stream regime's passes, in dispatch order (shaders/objective/stream.wgsl). */
export const STREAM_ENTRY_POINTS = ['objectiveStreamLogits', 'objectiveStreamResidual', 'objectiveStreamGradient'] as const;

/** The entry point a regime runs for these sizes: the invocation family has a straight-line D = K = 1, B ≤ 2 path. */
export function objectiveEntryPoint(regime: ObjectiveRegime, B: number, D: number, K: number): string {
  if (regime === 'workgroup') return 'objectiveWorkgroup';
  if (regime === 'stream') return 'objectiveStream*';
  return D === 1 && K === 1 && B <= 2 ? 'objectivePair' : 'objectiveInvocation';
}

function objectivePipeline(device: GPUDevice, regime: ObjectiveRegime, entryPoint: string, wg: number, B: number, D: number, K: number): GPUComputePipeline {
  // The stream kernel is specialised for (B, K): its loops over rows and outputs unroll. The invocation
  // kernel for (D, K): its size guards fold away.
  const fixed: Record<string, number> =
    regime === 'stream' ? { FB: B, FK: K } : entryPoint === 'objectiveInvocation' ? { FD: D, FK: K } : {};
  return kernelPipeline(device, kernelSpec('objective', regime), entryPoint, { WG: wg, ...fixed });
}

/** The stream kernels' column block (objective and attack): W then G, each as vec4s over four features, [d4·K + k]. */
export function streamColumns(W: ArrayLike<number>, G: ArrayLike<number>, D: number, K: number): Float32Array {
  const out = new Float32Array(2 * D * K);
  for (const [m, M] of [[0, W], [1, G]] as const) {
    for (let d = 0; d < D; d++) {
      for (let k = 0; k < K; k++) out[m * D * K + 4 * ((d >> 2) * K + k) + (d & 3)] = M[d * K + k];
    }
  }
  return out;
}

/** W | b | y | G | g as f32, the `layer` buffer both objective kernels read. */
function packLayer(layer: Layer, target: Gradient | null): Float32Array {
  const { B, D, K } = layer;
  const DK = D * K;
  const out = new Float32Array(target ? 2 * DK + 2 * K + B * K : DK + K + B * K);
  out.set(Float32Array.from(layer.W), 0);
  out.set(Float32Array.from(layer.b), DK);
  out.set(Float32Array.from(layer.y), DK + K);
  if (target) {
    out.set(Float32Array.from(target.W), DK + K + B * K);
    out.set(Float32Array.from(target.b), 2 * DK + K + B * K);
  }
  return out;
}

export function createObjective(device: GPUDevice, opts: ObjectiveOptions): ObjectiveHandle {
  if (typeof opts !== 'object' || opts === null) throw new DlgInputError('options', 'an object {layer, target, P}', describe(opts));
  const label = opts.label ?? 'objective';
  validateLayer(opts.layer);
  const { B, D, K } = opts.layer;
  const P = requirePositiveInt('P', opts.P);
  if (typeof opts.target !== 'object' || opts.target === null) throw new DlgInputError('target', 'a gradient {W, b}', describe(opts.target));
  requireFiniteArray(`target.W (D×K = ${D}×${K})`, opts.target.W, D * K);
  requireFiniteArray(`target.b (K = ${K})`, opts.target.b, K);
  const asked = opts.regime === undefined ? 'auto' : requireOneOf('regime', opts.regime, ['auto', 'invocation', 'stream', 'workgroup'] as const);
  const { spec, why } = chooseKernel('objective', { B, D, K }, device, asked);
  const regime = spec.name as ObjectiveRegime;
  const wg = opts.workgroupSize ?? OBJECTIVE_DEFAULT_WG[regime];
  requireWorkgroupSize(device, regime, wg);

  const BD = B * D;
  checkBindingSize(device, `x (P·B·D = ${P}·${B}·${D} f32 fake inputs)`, P * BD * 4);
  const pv = uniformView(spec, 'prm');
  const invN = 1 / normaliser(B, K, opts.layer.reduction);
  const packed = packLayer(opts.layer, opts.target);
  pv.set({ B, D, K, P, BD, BK: B * K, DK: D * K, invN, ob: D * K, oy: D * K + K, oG: D * K + K + B * K, og: 2 * D * K + K + B * K });
  if (D === 1 && K === 1 && B <= 2) {
    const L = opts.layer;
    pv.set({ pairLayer: [L.W[0], L.b[0], L.y[0], B > 1 ? L.y[1] : 0], pairTarget: [opts.target.W[0], opts.target.b[0], 0, 0] });
  }
  checkBindingSize(device, `layer constants (W, b, y, G, g: ${packed.length} f32)`, packed.length * 4);
  // objectivePair advances four restarts per invocation.
  const perInvocation = objectiveEntryPoint(regime, B, D, K) === 'objectivePair' ? 4 : 1;
  const groups = regime === 'workgroup' ? P : Math.ceil(P / (wg * perInvocation));
  const [gx, gy] = dispatch2d(device, groups);
  const maxDim = device.limits.maxComputeWorkgroupsPerDimension;
  if (gy > maxDim) {
    throw new DlgInputError('P', `at most ${maxDim * maxDim * (regime === 'workgroup' ? 1 : wg)} restarts (this device's maxComputeWorkgroupsPerDimension², ${maxDim})`, String(P));
  }

  const entryPoint = objectiveEntryPoint(regime, B, D, K);
  const stream = regime === 'stream';
  const pipelines = (stream ? STREAM_ENTRY_POINTS : [entryPoint]).map((ep) => objectivePipeline(device, regime, ep, wg, B, D, K));
  const params = uniformBuffer(device, `${label}.params`, pv.arrayBuffer.byteLength);
  const layerBuf = storageBuffer(device, `${label}.layer`, packed.byteLength);
  const xBuf = storageBuffer(device, `${label}.x`, P * BD * 4);
  const lossBuf = storageBuffer(device, `${label}.loss`, P * 4);
  const gradBuf = storageBuffer(device, `${label}.grad`, P * BD * 4);
  // stream: e and s/t (2·B·K floats) per restart, between its three passes
  const scratchBuf = stream ? storageBuffer(device, `${label}.scratch`, P * 2 * B * K * 4) : null;
  // stream: W and G by vec4 of features (see shaders/objective/stream.wgsl), in a 64 KiB uniform block
  const colsBuf = stream ? uniformBuffer(device, `${label}.columns`, 4 * 4 * 4096) : null;
  if (colsBuf) writeF32(device, colsBuf, streamColumns(opts.layer.W, opts.target.W, D, K));
  device.queue.writeBuffer(params, 0, pv.arrayBuffer);
  writeF32(device, layerBuf, packed);
  const bindGroup = device.createBindGroup({
    label: `${label}.bindGroup`,
    layout: kernelLayout(device, spec),
    entries: [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: layerBuf } },
      { binding: 2, resource: { buffer: xBuf } },
      { binding: 3, resource: { buffer: lossBuf } },
      { binding: 4, resource: { buffer: gradBuf } },
      ...(scratchBuf && colsBuf ? [{ binding: 5, resource: { buffer: scratchBuf } }, { binding: 6, resource: { buffer: colsBuf } }] : []),
    ],
  });
  const readback = new Readback(device, `${label}.readback`);
  let hasInputs = false;
  let destroyed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const dispatch = (pass: GPUComputePassEncoder): void => {
    pass.setBindGroup(0, bindGroup);
    for (const pipeline of pipelines) {
      pass.setPipeline(pipeline);
      pass.dispatchWorkgroups(gx, gy);
    }
  };
  const encode = (encoder: GPUCommandEncoder, repeats = 1): void => {
    requirePositiveInt('repeats', repeats);
    const pass = encoder.beginComputePass({ label: `${label}.pass` });
    for (let r = 0; r < repeats; r++) dispatch(pass);
    pass.end();
  };

  return {
    P,
    regime,
    why,
    entryPoint,
    buffers: { x: xBuf, loss: lossBuf, grad: gradBuf },
    setInputs(x) {
      requireFiniteArray(`x (P·B·D = ${P}·${B}·${D} fake inputs)`, x, P * BD);
      writeF32(device, xBuf, x);
      hasInputs = true;
    },
    encode,
    dispatch,
    evaluate() {
      if (destroyed) return Promise.reject(new DlgInputError('objective', 'a live handle', 'a destroyed one'));
      if (!hasInputs) return Promise.reject(new DlgInputError('x', 'fake inputs set with setInputs() before evaluate()', 'none'));
      // One readback at a time: the staging buffer is shared.
      const run = queue.then(() =>
        withErrorScopes(device, `${label}.evaluate`, async () => {
          const enc = device.createCommandEncoder({ label: `${label}.encoder` });
          encode(enc, 1);
          const [l, g] = await readback.read([{ buffer: lossBuf, size: P * 4 }, { buffer: gradBuf, size: P * BD * 4 }], enc);
          return { loss: new Float32Array(l), grad: new Float32Array(g) };
        }),
      );
      queue = run.catch(() => undefined);
      return run;
    },
    destroy() {
      destroyed = true;
      for (const b of [params, layerBuf, xBuf, lossBuf, gradBuf, scratchBuf, colsBuf]) b?.destroy();
      readback.destroy();
    },
  };
}

export interface VictimGradientHandle {
  compute(x: ArrayLike<number>): Promise<{ W: Float32Array; b: Float32Array }>;
  destroy(): void;
}

const VICTIM_WG = 64;

function victimPipelines(device: GPUDevice): { bindGroupLayout: GPUBindGroupLayout; residuals: GPUComputePipeline; gradient: GPUComputePipeline } {
  const spec = kernelSpec('victim', 'gradient');
  const make = (entryPoint: string): GPUComputePipeline => kernelPipeline(device, spec, entryPoint, { WG: VICTIM_WG });
  return { bindGroupLayout: kernelLayout(device, spec), residuals: make('residuals'), gradient: make('gradient') };
}

/** The victim's (∇W, ∇b) for one B×D batch, on the device. */
export function createVictimGradient(device: GPUDevice, layer: Layer): VictimGradientHandle {
  validateLayer(layer);
  const { B, D, K } = layer;
  const label = 'victimGradient';
  checkBindingSize(device, `x (B·D = ${B}·${D} f32 inputs)`, B * D * 4);
  const packed = packLayer(layer, null);
  checkBindingSize(device, `layer constants (W, b, y: ${packed.length} f32)`, packed.length * 4);
  checkBindingSize(device, `victim gradient (D·K + K = ${D * K + K} f32)`, (D * K + K) * 4);
  const maxCount = Math.max(B * K, D * K + K);
  const [gxMax] = dispatch2d(device, Math.ceil(maxCount / VICTIM_WG));
  const dimsResiduals = [gxMax, Math.ceil(Math.ceil((B * K) / VICTIM_WG) / gxMax)] as const;
  const dimsGradient = [gxMax, Math.ceil(Math.ceil((D * K + K) / VICTIM_WG) / gxMax)] as const;

  const c = victimPipelines(device);
  const params = uniformBuffer(device, `${label}.params`, 32);
  const layerBuf = storageBuffer(device, `${label}.layer`, packed.byteLength);
  const xBuf = storageBuffer(device, `${label}.x`, B * D * 4);
  const eBuf = storageBuffer(device, `${label}.e`, B * K * 4);
  const outBuf = storageBuffer(device, `${label}.out`, (D * K + K) * 4);
  const pv = uniformView(kernelSpec('victim', 'gradient'), 'prm');
  pv.set({ B, D, K, groupsX: gxMax, ob: D * K, oy: D * K + K, invN: 1 / normaliser(B, K, layer.reduction) });
  device.queue.writeBuffer(params, 0, pv.arrayBuffer);
  writeF32(device, layerBuf, packed);
  const bindGroup = device.createBindGroup({
    label: `${label}.bindGroup`,
    layout: c.bindGroupLayout,
    entries: [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: layerBuf } },
      { binding: 2, resource: { buffer: xBuf } },
      { binding: 3, resource: { buffer: eBuf } },
      { binding: 4, resource: { buffer: outBuf } },
    ],
  });
  const readback = new Readback(device, `${label}.readback`);
  let queue: Promise<unknown> = Promise.resolve();

  return {
    compute(x) {
      try {
        requireFiniteArray(`x (B·D = ${B}·${D} inputs)`, x, B * D);
      } catch (err) {
        return Promise.reject(err);
      }
      const run = queue.then(() =>
        withErrorScopes(device, `${label}.compute`, async () => {
          writeF32(device, xBuf, x);
          const enc = device.createCommandEncoder({ label: `${label}.encoder` });
          const pass = enc.beginComputePass({ label: `${label}.pass` });
          pass.setBindGroup(0, bindGroup);
          pass.setPipeline(c.residuals);
          pass.dispatchWorkgroups(dimsResiduals[0], dimsResiduals[1]);
          pass.setPipeline(c.gradient);
          pass.dispatchWorkgroups(dimsGradient[0], dimsGradient[1]);
          pass.end();
          const [gW, gb] = await readback.read(
            [
              { buffer: outBuf, size: D * K * 4 },
              { buffer: outBuf, offset: D * K * 4, size: K * 4 },
            ],
            enc,
          );
          return { W: new Float32Array(gW), b: new Float32Array(gb) };
        }),
      );
      queue = run.catch(() => undefined);
      return run;
    },
    destroy() {
      for (const b of [params, layerBuf, xBuf, eBuf, outBuf]) b.destroy();
      readback.destroy();
    },
  };
}
