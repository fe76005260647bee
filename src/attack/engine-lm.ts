/**
 * The WebGPU Levenberg–Marquardt engine (optimizer 'lm', l2 loss): shaders/attack/lm.wgsl, one
 * invocation per restart, P × groups restarts side by side. One iteration is src/analysis/lm.ts's, in the
 * order of src/attack/engine-cpu.ts, in f32; createAttackEngine (engine.ts) hands lm problems here.
 *
 * The packed lower triangle of A + λ·D is factored in a storage buffer interleaved by restart, for
 * n ≤ LM_CAPS.N. The scratch holds one dispatch's restarts (≤ LM_SCRATCH_BYTES); larger P runs as several
 * dispatches over the same buffer. bench/lm-kernel.ts measures it against the float64 host engine.
 */
import type { EngineHandle, ResolvedEngineOptions } from './engine-cpu.js';
import { deviceEngine, packGroups } from './device-engine.js';
import { DlgInputError } from '../core/errors.js';
import { LM_LAMBDA0 } from '../analysis/lm.js';
import { checkBindingSize, dispatch2d, storageBuffer, uniformBuffer } from '../gpu/gpu.js';
import { uniformView } from '../gpu/uniforms.js';
import { type KernelSpec, LM_CAPS, chooseKernel, kernelLayout, kernelPipeline } from '../gpu/kernels.js';

export { LM_CAPS };
/** Scratch budget: restarts per dispatch are cut to fit it. */
export const LM_SCRATCH_BYTES = 64 * 2 ** 20;
const LM_WG = 64;
/** Iterations per dispatch: an LM iteration is O(n³/6 + n²K/2) per restart, so fewer than the first-order kernels. */
const LM_ITERS_PER_DISPATCH = 16;

export interface LmTuning {
  lmWorkgroupSize?: number;
  lmItersPerDispatch?: number;
}

/**
 * Why the GPU lm kernels cannot run (B, D, K), or null when one can: the registry's rows (src/gpu/kernels.ts)
 * asked on this device, or with no device on limits that fit any scratch.
 */
export function lmMisfit(B: number, D: number, K: number, device?: GPUDevice): string | null {
  const problem = { B, D, K, optimizer: 'lm', loss: 'l2' } as const;
  const ctx = device ?? { kind: 'gpu' as const, limits: UNBOUNDED };
  try {
    chooseKernel('attack', problem, ctx);
    return null;
  } catch (err) {
    if (err instanceof DlgInputError) return err.message;
    throw err;
  }
}
const UNBOUNDED = { maxStorageBufferBindingSize: Infinity, maxBufferSize: Infinity, maxComputeWorkgroupStorageSize: Infinity, maxComputeInvocationsPerWorkgroup: Infinity };

/** Whether the GPU lm kernel runs (B, D, K) (see lmMisfit). */
export function fitsLm(B: number, D: number, K: number, device?: GPUDevice): boolean {
  return lmMisfit(B, D, K, device) === null;
}

function checkLmTuning(device: GPUDevice, t: LmTuning): void {
  const int = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  const maxWg = Math.min(device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
  if (t.lmWorkgroupSize !== undefined && !int(t.lmWorkgroupSize, 1, maxWg)) {
    throw new DlgInputError('tuning.lmWorkgroupSize', `an integer in [1, ${maxWg}]`, String(t.lmWorkgroupSize));
  }
  if (t.lmItersPerDispatch !== undefined && !int(t.lmItersPerDispatch, 1, 2 ** 16)) {
    throw new DlgInputError('tuning.lmItersPerDispatch', 'an integer in [1, 65536]', String(t.lmItersPerDispatch));
  }
}

/** The lm engine for resolved options on the registry's lm row (createAttackEngine chooses it). */
export function createLmEngine(device: GPUDevice, o: ResolvedEngineOptions, spec: KernelSpec<'attack'>, why: string, tuning: LmTuning = {}): EngineHandle {
  if (o.optimizer !== 'lm') throw new DlgInputError('optimizer', "'lm'", `'${o.optimizer}'`);
  if (spec.name !== 'lm') throw new DlgInputError('kernel', "'lm' for optimizer 'lm'", `'${spec.name}'`);
  const { B, D, K, total } = o;
  const n = B * D;
  checkLmTuning(device, tuning);
  const wg = tuning.lmWorkgroupSize ?? LM_WG;
  const itersPerDispatch = tuning.lmItersPerDispatch ?? LM_ITERS_PER_DISPATCH;
  const label = o.label;
  const np = (n * (n + 1)) / 2;
  const optFloats = total * (n + 4);
  checkBindingSize(device, 'P', optFloats * 4);
  checkBindingSize(device, 'P', total * n * 4);

  // restarts per dispatch: all of them, unless the scratch would exceed its budget or the binding limit
  const maxBytes = Math.min(LM_SCRATCH_BYTES, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const fit = Math.floor(maxBytes / (np * 4));
  if (fit < 1) throw new DlgInputError('layer.B', `B·D small enough for one restart's ${np * 4}-byte scratch (maxStorageBufferBindingSize ${maxBytes})`, `B·D = ${n}`);
  const chunk = Math.min(fit < total ? Math.max(wg, Math.floor(fit / wg) * wg) : total, total, fit);
  const chunks: { first: number; count: number }[] = [];
  for (let first = 0; first < total; first += chunk) chunks.push({ first, count: Math.min(chunk, total - first) });

  const pipeline = kernelPipeline(device, spec, 'main_lm', { WG: wg, CB: B, CD: D, CK: K });
  const layout = kernelLayout(device, spec);
  const { data: grpData, stride: gStride } = packGroups(o, false);
  const layBuf = storageBuffer(device, `${label}.lm.layer`, (D * K + K) * 4);
  const grpBuf = storageBuffer(device, `${label}.lm.groups`, grpData.byteLength);
  const xsBuf = storageBuffer(device, `${label}.lm.x`, total * n * 4);
  const bestBuf = storageBuffer(device, `${label}.lm.best`, total * n * 4);
  const statBuf = storageBuffer(device, `${label}.lm.status`, total * 16);
  const optBuf = storageBuffer(device, `${label}.lm.state`, optFloats * 4);
  const scrBuf = storageBuffer(device, `${label}.lm.scratch`, chunk * np * 4);
  const lay = new Float32Array(D * K + K);
  lay.set(o.W, 0);
  lay.set(o.b, D * K);
  device.queue.writeBuffer(layBuf, 0, lay);
  device.queue.writeBuffer(grpBuf, 0, grpData);
  const N = o.reduction === 'mean' ? B * K : 1;

  // one uniform block and bind group per (chunk, full | rest); the rest's iteration count is rewritten per run
  const pv = uniformView(spec, 'prm');
  const writeParams = (buf: GPUBuffer, c: { first: number; count: number }, iters: number, dispatchX: number): void => {
    pv.set({ total, P: o.P, iters, first: c.first, count: c.count, chunk, dispatchX, gStride, invN: 1 / N, lambda0: LM_LAMBDA0 });
    device.queue.writeBuffer(buf, 0, pv.arrayBuffer);
  };
  const slots = chunks.map((c, ci) => {
    const [dx, dy] = dispatch2d(device, Math.ceil(c.count / wg));
    const mk = (which: string, iters: number) => {
      const params = uniformBuffer(device, `${label}.lm.params.${which}${ci}`, pv.arrayBuffer.byteLength);
      writeParams(params, c, iters, dx);
      const bindGroup = device.createBindGroup({
        label: `${label}.lm.${which}BindGroup${ci}`,
        layout,
        entries: [params, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, scrBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      return { params, bindGroup };
    };
    return { c, dx, dy, full: mk('full', itersPerDispatch), rest: mk('rest', 1) };
  });
  return deviceEngine({
    device, o, label: `${label}.lm`, kernel: spec.name, why, unknowns: n, x: xsBuf, best: bestBuf, status: statBuf, itersPerDispatch,
    resetState() {
      // λ = λ₀, ν = 2, no cached value
      const state = new Float32Array(optFloats);
      state.fill(LM_LAMBDA0, 0, total);
      state.fill(2, total, 2 * total);
      device.queue.writeBuffer(optBuf, 0, state);
    },
    prepareRest(rest) {
      for (const s of slots) writeParams(s.rest.params, s.c, rest, s.dx);
    },
    record(pass, full, rest) {
      pass.setPipeline(pipeline);
      for (const s of slots) {
        pass.setBindGroup(0, s.full.bindGroup);
        for (let i = 0; i < full; i++) pass.dispatchWorkgroups(s.dx, s.dy);
        if (rest > 0) {
          pass.setBindGroup(0, s.rest.bindGroup);
          pass.dispatchWorkgroups(s.dx, s.dy);
        }
      }
    },
    lambda: optBuf,
    owned: [...slots.flatMap((s) => [s.full.params, s.rest.params]), layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, scrBuf],
  });
}
