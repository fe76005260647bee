/**
 * The WebGPU Levenberg–Marquardt engine (optimizer 'lm', l2 loss): shaders/attack/lm.wgsl, one
 * invocation per restart, P × groups restarts side by side. One iteration is src/analysis/lm.ts's, in the
 * order of src/attack/engine-cpu.ts, in f32; createAttackEngine (engine.ts) hands lm problems here.
 *
 * Variants (kernel names), by where the packed lower triangle of A + λ·D is factored:
 *  - 'lm-private': a private array, for n = B·D ≤ LM_PRIVATE_N;
 *  - 'lm-scratch': a storage buffer interleaved by restart, for n ≤ LM_CAPS.N. The scratch holds one
 *    dispatch's restarts (≤ LM_SCRATCH_BYTES); larger P runs as several dispatches over the same buffer.
 * bench/lm-kernel.ts measures both (and bench/RESULTS.md-style numbers are in its JSON lines).
 */
import lmSrc from '../../shaders/attack/lm.wgsl';
import {
  type EngineHandle,
  type EngineStatus,
  type ResolvedEngineOptions,
  checkInputs,
  checkIterations,
  decodeStatus,
  initialStatus,
} from './engine-cpu.js';
import { DlgInputError } from '../core/errors.js';
import { LM_LAMBDA0 } from '../analysis/lm.js';
import { Readback, checkBindingSize, computeBindGroupLayout, dispatch2d, perDevice, storageBuffer, uniformBuffer } from '../gpu/gpu.js';

/** Largest sizes of attack/lm.wgsl (its MAX_N, MAX_K, MAX_DK, MAX_BK). */
export const LM_CAPS = { N: 256, K: 32, DK: 512, BK: 512 } as const;
/** Largest n = B·D of the private-array variant (PRIV_N in the shader). */
export const LM_PRIVATE_N = 64;
/** Scratch budget of the 'lm-scratch' variant: restarts per dispatch are cut to fit it. */
export const LM_SCRATCH_BYTES = 64 * 2 ** 20;
const LM_WG = 64;
/** Iterations per dispatch: an LM iteration is O(n³/6 + n²K/2) per restart, so fewer than the first-order kernels. */
const LM_ITERS_PER_DISPATCH = 16;

export type LmVariant = 'private' | 'scratch';

export interface LmTuning {
  /** Force a variant (default: private where n ≤ LM_PRIVATE_N, else scratch). */
  lmVariant?: LmVariant;
  lmWorkgroupSize?: number;
  lmItersPerDispatch?: number;
}

/** The first field beyond the lm kernel's caps, or null when (B, D, K) fits. */
function lmCapViolation(B: number, D: number, K: number): { field: string; cap: string; found: string } | null {
  const c = LM_CAPS;
  if (B * D > c.N) return { field: 'layer.B', cap: `B·D ≤ ${c.N} unknowns for the GPU lm kernel`, found: `B·D = ${B}·${D} = ${B * D}` };
  if (K > c.K) return { field: 'layer.K', cap: `at most ${c.K} for the GPU lm kernel`, found: String(K) };
  if (D * K > c.DK) return { field: 'layer.D', cap: `D·K ≤ ${c.DK} for the GPU lm kernel`, found: `D·K = ${D}·${K} = ${D * K}` };
  if (B * K > c.BK) return { field: 'layer.B', cap: `B·K ≤ ${c.BK} for the GPU lm kernel`, found: `B·K = ${B}·${K} = ${B * K}` };
  return null;
}

/**
 * Why the GPU lm kernel cannot run (B, D, K), or null when it can: within LM_CAPS on every adapter (the
 * matrix lives in a private array or in a storage scratch cut to the device's binding size, never in
 * workgroup memory), and with a device, a scratch column that fits its binding size.
 */
export function lmMisfit(B: number, D: number, K: number, device?: GPUDevice): string | null {
  const v = lmCapViolation(B, D, K);
  if (v) return `${v.field}: expected ${v.cap}, found ${v.found}`;
  const n = B * D;
  if (device && n > LM_PRIVATE_N && ((n * (n + 1)) / 2) * 4 > Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)) {
    return `the GPU lm kernel's scratch for B·D = ${n} unknowns exceeds this device's binding size`;
  }
  return null;
}

/** Whether the GPU lm kernel runs (B, D, K) (see lmMisfit). */
export function fitsLm(B: number, D: number, K: number, device?: GPUDevice): boolean {
  return lmMisfit(B, D, K, device) === null;
}

/** Throws DlgInputError naming the field, the cap and what was found when (B, D, K) is beyond LM_CAPS. */
export function checkLmCaps(B: number, D: number, K: number): void {
  const v = lmCapViolation(B, D, K);
  if (v) throw new DlgInputError(v.field, v.cap, v.found);
}

const LM_BINDINGS: GPUBufferBindingType[] = ['uniform', 'read-only-storage', 'read-only-storage', 'storage', 'storage', 'storage', 'storage', 'storage'];
/**
 * LmParams of attack/lm.wgsl: twelve 4-byte scalars in declaration order (no padding). Packed by hand:
 * webgpu-utils 2.x (makeShaderDataDefinitions) needs Float16Array, which Node 20 lacks.
 */
const LM_PARAMS_U32 = ['total', 'P', 'iters', 'first', 'count', 'chunk', 'dispatchX', 'gStride'] as const;
const LM_PARAMS_BYTES = 48;
function packLmParams(v: Record<(typeof LM_PARAMS_U32)[number], number> & { invN: number }): ArrayBuffer {
  const buf = new ArrayBuffer(LM_PARAMS_BYTES);
  new Uint32Array(buf, 0, 8).set(LM_PARAMS_U32.map((k) => v[k]));
  new Float32Array(buf, 32, 4).set([v.invN, LM_LAMBDA0, 0, 0]);
  return buf;
}

const lmCache = perDevice((device: GPUDevice) => {
  const bindGroupLayout = computeBindGroupLayout(device, 'attack.lm.bindGroupLayout', LM_BINDINGS);
  const pipelineLayout = device.createPipelineLayout({ label: 'attack.lm.pipelineLayout', bindGroupLayouts: [bindGroupLayout] });
  return { bindGroupLayout, pipelineLayout, module: null as GPUShaderModule | null, pipelines: new Map<string, GPUComputePipeline>() };
});

function lmPipeline(device: GPUDevice, constants: Record<string, number>): GPUComputePipeline {
  const cache = lmCache(device);
  const key = JSON.stringify(constants);
  let p = cache.pipelines.get(key);
  if (!p) {
    cache.module ??= device.createShaderModule({ label: 'attack.lm.module', code: lmSrc });
    p = device.createComputePipeline({
      label: `attack.lm.step.${constants.PRIV ? 'private' : 'scratch'}`,
      layout: cache.pipelineLayout,
      compute: { module: cache.module, entryPoint: 'main_lm', constants },
    });
    cache.pipelines.set(key, p);
  }
  return p;
}

/** Per group: y (B×K), G (D×K), g (K), tolAbs — as f32 (the kernel's grp layout). */
function packLmGroups(o: ResolvedEngineOptions): { data: Float32Array<ArrayBuffer>; stride: number } {
  const { B, D, K } = o;
  const stride = B * K + D * K + K + 1;
  const data = new Float32Array(stride * o.groups.length);
  o.groups.forEach((g, i) => {
    const at = i * stride;
    data.set(g.y, at);
    data.set(g.target.W, at + B * K);
    data.set(g.target.b, at + B * K + D * K);
    data[at + B * K + D * K + K] = o.tolAbs[i];
  });
  return { data, stride };
}

function checkLmTuning(device: GPUDevice, t: LmTuning, n: number): void {
  const int = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (t.lmVariant !== undefined && t.lmVariant !== 'private' && t.lmVariant !== 'scratch') {
    throw new DlgInputError('tuning.lmVariant', "'private' or 'scratch'", String(t.lmVariant));
  }
  if (t.lmVariant === 'private' && n > LM_PRIVATE_N) {
    throw new DlgInputError('tuning.lmVariant', `'scratch' for n = B·D > ${LM_PRIVATE_N}`, `'private' at n = ${n}`);
  }
  const maxWg = Math.min(device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
  if (t.lmWorkgroupSize !== undefined && !int(t.lmWorkgroupSize, 1, maxWg)) {
    throw new DlgInputError('tuning.lmWorkgroupSize', `an integer in [1, ${maxWg}]`, String(t.lmWorkgroupSize));
  }
  if (t.lmItersPerDispatch !== undefined && !int(t.lmItersPerDispatch, 1, 2 ** 16)) {
    throw new DlgInputError('tuning.lmItersPerDispatch', 'an integer in [1, 65536]', String(t.lmItersPerDispatch));
  }
}

/** The lm engine for resolved options (createAttackEngine calls this for optimizer 'lm'). */
export function createLmEngine(device: GPUDevice, o: ResolvedEngineOptions, tuning: LmTuning = {}): EngineHandle {
  if (o.optimizer !== 'lm') throw new DlgInputError('optimizer', "'lm'", `'${o.optimizer}'`);
  if (o.loss !== 'l2') throw new DlgInputError('loss', "'l2' with optimizer 'lm'", `'${o.loss}'`);
  const { B, D, K, total } = o;
  checkLmCaps(B, D, K);
  const n = B * D;
  checkLmTuning(device, tuning, n);
  const variant: LmVariant = tuning.lmVariant ?? (n <= LM_PRIVATE_N ? 'private' : 'scratch');
  const wg = tuning.lmWorkgroupSize ?? LM_WG;
  const itersPerDispatch = tuning.lmItersPerDispatch ?? LM_ITERS_PER_DISPATCH;
  const label = o.label;
  const np = (n * (n + 1)) / 2;
  const optFloats = total * (n + 4);
  checkBindingSize(device, 'P', optFloats * 4);
  checkBindingSize(device, 'P', total * n * 4);

  // restarts per dispatch: all of them, unless the scratch would exceed its budget or the binding limit
  let chunk = total;
  if (variant === 'scratch') {
    const maxBytes = Math.min(LM_SCRATCH_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const fit = Math.floor(maxBytes / (np * 4));
    if (fit < 1) throw new DlgInputError('layer.B', `B·D small enough for one restart's ${np * 4}-byte scratch (maxStorageBufferBindingSize ${maxBytes})`, `B·D = ${n}`);
    if (fit < total) chunk = Math.max(wg, Math.floor(fit / wg) * wg);
    chunk = Math.min(chunk, total, fit);
  }
  const chunks: { first: number; count: number }[] = [];
  for (let first = 0; first < total; first += chunk) chunks.push({ first, count: Math.min(chunk, total - first) });

  const pipeline = lmPipeline(device, { WG: wg, CB: B, CD: D, CK: K, PRIV: variant === 'private' ? 1 : 0 });
  const cache = lmCache(device);
  const { data: grpData, stride: gStride } = packLmGroups(o);
  const layBuf = storageBuffer(device, `${label}.lm.layer`, (D * K + K) * 4);
  const grpBuf = storageBuffer(device, `${label}.lm.groups`, grpData.byteLength);
  const xsBuf = storageBuffer(device, `${label}.lm.x`, total * n * 4);
  const bestBuf = storageBuffer(device, `${label}.lm.best`, total * n * 4);
  const statBuf = storageBuffer(device, `${label}.lm.status`, total * 16);
  const optBuf = storageBuffer(device, `${label}.lm.state`, optFloats * 4);
  const scrBuf = storageBuffer(device, `${label}.lm.scratch`, variant === 'scratch' ? chunk * np * 4 : 16);
  const lay = new Float32Array(D * K + K);
  lay.set(o.W, 0);
  lay.set(o.b, D * K);
  device.queue.writeBuffer(layBuf, 0, lay);
  device.queue.writeBuffer(grpBuf, 0, grpData);
  const N = o.reduction === 'mean' ? B * K : 1;

  // one uniform block and bind group per (chunk, full | rest); the rest's iteration count is rewritten per run
  const writeParams = (buf: GPUBuffer, c: { first: number; count: number }, iters: number, dispatchX: number): void => {
    device.queue.writeBuffer(buf, 0, packLmParams({ total, P: o.P, iters, first: c.first, count: c.count, chunk, dispatchX, gStride, invN: 1 / N }));
  };
  const slots = chunks.map((c, ci) => {
    const [dx, dy] = dispatch2d(device, Math.ceil(c.count / wg));
    const mk = (which: string, iters: number) => {
      const params = uniformBuffer(device, `${label}.lm.params.${which}${ci}`, LM_PARAMS_BYTES);
      writeParams(params, c, iters, dx);
      const bindGroup = device.createBindGroup({
        label: `${label}.lm.${which}BindGroup${ci}`,
        layout: cache.bindGroupLayout,
        entries: [params, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, scrBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      return { params, bindGroup };
    };
    return { c, dx, dy, full: mk('full', itersPerDispatch), rest: mk('rest', 1) };
  });
  const readback = new Readback(device, `${label}.lm.readback`);
  let hasInputs = false;
  let destroyed = false;
  const alive = (): void => {
    if (destroyed) throw new DlgInputError('engine', 'a live engine', 'one that was destroyed');
  };

  return {
    totalRestarts: total,
    kernel: `lm-${variant}`,
    setInputs(x0: ArrayLike<number>): void {
      alive();
      checkInputs(o, x0);
      const x = Float32Array.from(x0);
      device.queue.writeBuffer(xsBuf, 0, x);
      device.queue.writeBuffer(bestBuf, 0, x);
      device.queue.writeBuffer(statBuf, 0, initialStatus(total));
      // λ = λ₀, ν = 2, no cached value
      const state = new Float32Array(optFloats);
      state.fill(LM_LAMBDA0, 0, total);
      state.fill(2, total, 2 * total);
      device.queue.writeBuffer(optBuf, 0, state);
      hasInputs = true;
    },
    run(iterations: number): void {
      alive();
      checkIterations(iterations);
      if (!hasInputs) throw new DlgInputError('x0', 'setInputs(x0) before run()', 'no inputs');
      if (iterations === 0) return;
      const full = Math.floor(iterations / itersPerDispatch);
      const rest = iterations - full * itersPerDispatch;
      if (rest > 0) for (const s of slots) writeParams(s.rest.params, s.c, rest, s.dx);
      const enc = device.createCommandEncoder({ label: `${label}.lm.runEncoder` });
      const pass = enc.beginComputePass({ label: `${label}.lm.runPass` });
      pass.setPipeline(pipeline);
      for (const s of slots) {
        pass.setBindGroup(0, s.full.bindGroup);
        for (let i = 0; i < full; i++) pass.dispatchWorkgroups(s.dx, s.dy);
        if (rest > 0) {
          pass.setBindGroup(0, s.rest.bindGroup);
          pass.dispatchWorkgroups(s.dx, s.dy);
        }
      }
      pass.end();
      device.queue.submit([enc.finish()]);
    },
    async readStatus(): Promise<EngineStatus> {
      alive();
      const [buf, lam] = await readback.read([
        { buffer: statBuf, size: total * 16 },
        { buffer: optBuf, size: total * 4 },
      ]);
      return { ...decodeStatus(buf, total), lambda: new Float32Array(lam) };
    },
    async readBest(): Promise<Float32Array> {
      alive();
      const [buf] = await readback.read([{ buffer: bestBuf, size: total * n * 4 }]);
      return new Float32Array(buf);
    },
    destroy(): void {
      if (destroyed) return;
      destroyed = true;
      readback.destroy();
      for (const s of slots) {
        s.full.params.destroy();
        s.rest.params.destroy();
      }
      for (const b of [layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, scrBuf]) b.destroy();
    },
  };
}
