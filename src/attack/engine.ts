/**
 * The WebGPU attack engine: totalRestarts = P × groups DLG restarts advancing together on the
 * device, many iterations per dispatch, read back only on request.
 *
 * Which kernel runs is the registry's choice (src/gpu/kernels.ts, `engineKernel`); docs/kernels.md has
 * each row and the measurement that earns it:
 *  - `pair` (attack/pair.wgsl): D = K = 1, B ≤ 2, gd/adam, l2: straight-line, four restarts per invocation
 *    as vec4 components, which gives lavapipe independent dependency chains to overlap.
 *  - `invocation` (attack/invocation.wgsl): one invocation per restart, everything in private arrays, for
 *    small problems (INVOCATION_CAPS) and for gd/adam mid sizes (MID_CAPS). Its loops run to B, D, K as
 *    override constants (CB, CD, CK) so the compiler unrolls them, the arrays stay in registers and no
 *    size guard is left; up to INVOCATION_ITERS_PER_DISPATCH iterations per dispatch.
 *  - `stream` (attack/stream.wgsl): one invocation per restart for large D with small B·K (STREAM_CAPS),
 *    x′ streamed as vec4s in three passes per iteration, W and the group's G in a uniform block; each
 *    group (scenario) is its own dispatch. Ranked on CPU adapters only.
 *  - `workgroup` (attack/workgroup.wgsl): one workgroup per restart; invocation tid owns rows
 *    d = tid + r·WG. Sums over d go through shared memory in a fixed order (identical bytes run to run).
 *  - `lm` (attack/lm.wgsl): src/attack/engine-lm.ts.
 * All follow the iteration order documented in engine-cpu.ts (evaluate → best → converged? →
 * non-finite? → step), in f32. Cold pipeline compiles are slow on lavapipe (seconds for the
 * unrolled kernels, about a minute for workgroup L-BFGS under load); Mesa caches them on disk.
 */
import { type EngineHandle, type EngineOptions, LBFGS_MAX_HISTORY, type ResolvedEngineOptions, resolveEngineOptions } from './engine-cpu.js';
import { DlgInputError } from '../core/errors.js';
import { checkBindingSize, dispatch2d, storageBuffer, uniformBuffer } from '../gpu/gpu.js';
import { deviceEngine, packGroups } from './device-engine.js';
import { type StructuredView, uniformView } from '../gpu/uniforms.js';
import { type KernelChoice, type KernelContext, chooseKernel, kernelLayout, kernelPipeline, lbfgsWorkgroupSize } from '../gpu/kernels.js';
import { streamColumns } from '../objective/objective.js';
import { type LmTuning, createLmEngine } from './engine-lm.js';

export * from './engine-cpu.js';
export { LM_CAPS, type LmTuning, createLmEngine, fitsLm } from './engine-lm.js';

export { INVOCATION_CAPS, MID_CAPS, STREAM_CAPS, WORKGROUP_CAPS } from '../gpu/kernels.js';

const INVOCATION_WG = 64;
const WORKGROUP_WG = 64;
/** Iterations per dispatch: long enough to amortise launches, short enough to keep a GPU responsive. */
const INVOCATION_ITERS_PER_DISPATCH = 512;
const WORKGROUP_ITERS_PER_DISPATCH = 16;
const STREAM_WG = 64;
const STREAM_ITERS_PER_DISPATCH = 16;
const PAIR_WG = 64;
/** attack/pair.wgsl advances 4·QUADS restarts per invocation (vec4 components: independent chains to overlap). */
const PAIR_QUADS = 1;
const PAIR_ITERS_PER_DISPATCH = 512;

/** The attack kernels (rows of the registry, src/gpu/kernels.ts). */
export type AttackKernel = 'pair' | 'invocation' | 'stream' | 'workgroup' | 'lm';

/** Benchmark knobs (defaults are the tuned values). */
export interface EngineTuning extends LmTuning {
  /** Run this kernel instead of auto's choice (it must fit: else a DlgInputError naming the cap). */
  kernel?: AttackKernel;
  pairWorkgroupSize?: number;
  pairItersPerDispatch?: number;
  /** Groups of 4 restarts per invocation in attack/pair.wgsl: 1 or 2. */
  pairQuads?: number;
}

/**
 * The kernel an engine for these options runs on this device (or adapter kind, for tests), and why:
 * the registry's choice (src/gpu/kernels.ts). Throws DlgInputError naming the field beyond every kernel's caps.
 */
export function engineKernel(
  o: Pick<ResolvedEngineOptions, 'B' | 'D' | 'K' | 'optimizer' | 'loss'>,
  ctx: GPUDevice | KernelContext,
  asked: AttackKernel | 'auto' = 'auto',
): KernelChoice<'attack'> {
  return chooseKernel('attack', { B: o.B, D: o.D, K: o.K, optimizer: o.optimizer, loss: o.loss }, ctx, asked);
}

/** Floats of optimizer state per restart (layout shared by both kernels). */
export function optimizerStride(o: ResolvedEngineOptions): number {
  const BD = o.B * o.D;
  if (o.optimizer === 'gd') return BD;
  if (o.optimizer === 'adam') return 2 * BD;
  return 2 * LBFGS_MAX_HISTORY * BD + LBFGS_MAX_HISTORY + 4 + BD;
}

/** Params of attack/common.wgsl for one dispatch length, into the kernel's view of that struct. */
function packParams(view: StructuredView, o: ResolvedEngineOptions, iters: number, dispatchX: number, optStride: number, gStride: number): ArrayBuffer {
  const { B, D, K } = o;
  const N = o.reduction === 'mean' ? B * K : 1;
  view.set({
    B, D, K, BD: B * D, DK: D * K, BK: B * K, P: o.P, total: o.total, iters,
    lossKind: o.loss === 'cosine' ? 1 : 0, history: o.history, optStride, gStride, dispatchX,
    lr: o.lr, momentum: o.momentum, beta1: o.beta1, beta2: o.beta2, eps: o.eps, invN: 1 / N,
  });
  return view.arrayBuffer;
}

function checkTuning(device: GPUDevice, t: EngineTuning): void {
  const int = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (t.pairQuads !== undefined && !int(t.pairQuads, 1, 2)) throw new DlgInputError('tuning.pairQuads', '1 or 2', String(t.pairQuads));
  const maxWg = device.limits.maxComputeInvocationsPerWorkgroup;
  if (t.pairWorkgroupSize !== undefined && !int(t.pairWorkgroupSize, 1, Math.min(maxWg, device.limits.maxComputeWorkgroupSizeX))) {
    throw new DlgInputError('tuning.pairWorkgroupSize', `an integer in [1, ${Math.min(maxWg, device.limits.maxComputeWorkgroupSizeX)}]`, String(t.pairWorkgroupSize));
  }
  if (t.pairItersPerDispatch !== undefined && !int(t.pairItersPerDispatch, 1, 2 ** 20)) {
    throw new DlgInputError('tuning.pairItersPerDispatch', 'an integer in [1, 2^20]', String(t.pairItersPerDispatch));
  }
}

export function createAttackEngine(device: GPUDevice, opts: EngineOptions, tuning: EngineTuning = {}): EngineHandle {
  const o = resolveEngineOptions(opts);
  const { spec, why } = engineKernel(o, device, tuning.kernel ?? 'auto');
  if (o.optimizer === 'lm') return createLmEngine(device, o, spec, why, tuning);
  const kernel = spec.name as AttackKernel;
  const { B, D, K, total } = o;
  const BD = B * D;
  const label = o.label;
  const optStride = optimizerStride(o);
  checkBindingSize(device, 'P', total * optStride * 4);
  checkBindingSize(device, 'P', total * BD * 4);

  checkTuning(device, tuning);
  const entry = kernel === 'pair' ? `pair_${o.optimizer}` : kernel === 'stream' ? 'stream_main' : `main_${o.optimizer}`;
  let wg: number;
  let constants: Record<string, number>;
  let workgroups: number;
  if (kernel === 'pair') {
    wg = tuning.pairWorkgroupSize ?? PAIR_WG;
    const quads = tuning.pairQuads ?? PAIR_QUADS;
    constants = { WG: wg, QUADS: quads };
    workgroups = Math.ceil(Math.ceil(total / (4 * quads)) / wg);
  } else if (kernel === 'invocation') {
    wg = INVOCATION_WG;
    // One pipeline per (B, D, K): the loops run to the sizes themselves and the size guards fold away.
    // Padding to powers of two shared pipelines between nearby sizes, but its guards cost 1.8–5× on
    // lavapipe (bench/RESULTS.md), and the exact pipelines compile faster.
    constants = { WG: wg, CB: B, CD: D, CK: K };
    workgroups = Math.ceil(total / wg);
  } else if (kernel === 'stream') {
    wg = STREAM_WG;
    constants = { WG: wg, FB: B, FK: K, ADAM: o.optimizer === 'adam' ? 1 : 0 };
    workgroups = Math.ceil(o.P / wg); // per group: each group is its own dispatch
  } else {
    // gd/adam stream rows from memory (any number of rows per invocation); lbfgs keeps rows in
    // private arrays, which bounds rows per invocation.
    // shared reduction buffer: WG × RC floats, within maxComputeWorkgroupStorageSize (minus the 4 KiB + 32 bytes of other shared arrays);
    // gd/adam reduce all B·K partial sums in one round (RC = B·K), so their WG shrinks until that fits.
    const room = Math.floor((device.limits.maxComputeWorkgroupStorageSize - 4352) / 4);
    if (o.optimizer === 'lbfgs') wg = lbfgsWorkgroupSize(B, D, K, device.limits.maxComputeInvocationsPerWorkgroup)!; // fits() checked it
    else {
      // no more invocations than rows (small D), and WG·B·K floats must fit in shared memory
      wg = Math.min(WORKGROUP_WG, Math.max(8, 2 ** Math.ceil(Math.log2(D))));
      while (wg > 8 && wg * Math.max(2, B * K) > room) wg /= 2;
    }
    const rc = o.optimizer === 'lbfgs' ? Math.max(2, Math.min(B * K, Math.floor(room / wg))) : Math.max(2, B * K);
    if (rc * wg * 4 + 4352 > device.limits.maxComputeWorkgroupStorageSize) {
      throw new DlgInputError('device', `maxComputeWorkgroupStorageSize ≥ ${rc * wg * 4 + 4352}`, String(device.limits.maxComputeWorkgroupStorageSize));
    }
    constants = o.optimizer === 'lbfgs' ? { WG: wg, RC: rc } : { WG: wg, RC: rc, CB: B, CK: K };
    workgroups = total;
  }
  const [dx, dy] = dispatch2d(device, workgroups);
  const pipeline = kernelPipeline(device, spec, entry, constants);
  const layout = kernelLayout(device, spec);
  const itersPerDispatch = kernel === 'pair'
    ? (tuning.pairItersPerDispatch ?? PAIR_ITERS_PER_DISPATCH)
    : kernel === 'invocation'
      ? INVOCATION_ITERS_PER_DISPATCH
      : kernel === 'stream'
        ? STREAM_ITERS_PER_DISPATCH
        : WORKGROUP_ITERS_PER_DISPATCH;

  const pv = uniformView(spec, 'prm');
  const paramsFull = uniformBuffer(device, `${label}.paramsFull`, pv.arrayBuffer.byteLength);
  const paramsRest = uniformBuffer(device, `${label}.paramsRest`, pv.arrayBuffer.byteLength);
  const layBuf = storageBuffer(device, `${label}.layer`, (D * K + K) * 4);
  const { data: grpData, stride: gStride } = packGroups(o, true);
  const grpBuf = storageBuffer(device, `${label}.groups`, grpData.byteLength);
  const xsBuf = storageBuffer(device, `${label}.x`, total * BD * 4);
  const bestBuf = storageBuffer(device, `${label}.best`, total * BD * 4);
  const statBuf = storageBuffer(device, `${label}.status`, total * 16);
  const optBuf = storageBuffer(device, `${label}.optimizerState`, total * optStride * 4);
  const lay = new Float32Array(D * K + K);
  lay.set(o.W, 0);
  lay.set(o.b, D * K);
  device.queue.writeBuffer(layBuf, 0, lay);
  device.queue.writeBuffer(grpBuf, 0, grpData);
  device.queue.writeBuffer(paramsFull, 0, packParams(pv, o, itersPerDispatch, dx, optStride, gStride));
  // stream: one uniform block per group, [group index, 0, 0, 0 | W columns | the group's G columns]
  const colBufs =
    kernel === 'stream'
      ? o.groups.map((g, i) => {
          const buf = uniformBuffer(device, `${label}.columns${i}`, 65536);
          const data = new ArrayBuffer(16 + 8 * D * K);
          new Uint32Array(data, 0, 4).set([i, 0, 0, 0]);
          new Float32Array(data, 16).set(streamColumns(o.W, g.target.W, D, K));
          device.queue.writeBuffer(buf, 0, data);
          return buf;
        })
      : [null];
  const bind = (params: GPUBuffer, which: string, cols: GPUBuffer | null): GPUBindGroup =>
    device.createBindGroup({
      label: `${label}.${which}BindGroup`,
      layout,
      entries: [params, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, ...(cols ? [cols] : [])].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  // one bind group per group for the stream kernel (its dispatches), else one in all
  const bgFull = colBufs.map((c, i) => bind(paramsFull, `full${i}`, c));
  const bgRest = colBufs.map((c, i) => bind(paramsRest, `rest${i}`, c));
  return deviceEngine({
    device, o, label, kernel, why, unknowns: BD, x: xsBuf, best: bestBuf, status: statBuf, itersPerDispatch,
    resetState() {
      const enc = device.createCommandEncoder({ label: `${label}.resetEncoder` });
      enc.clearBuffer(optBuf);
      device.queue.submit([enc.finish()]);
    },
    prepareRest(rest) {
      device.queue.writeBuffer(paramsRest, 0, packParams(pv, o, rest, dx, optStride, gStride));
    },
    record(pass, full, rest) {
      pass.setPipeline(pipeline);
      for (let i = 0; i < full; i++) {
        for (const bg of bgFull) {
          pass.setBindGroup(0, bg);
          pass.dispatchWorkgroups(dx, dy);
        }
      }
      if (rest > 0) {
        for (const bg of bgRest) {
          pass.setBindGroup(0, bg);
          pass.dispatchWorkgroups(dx, dy);
        }
      }
    },
    owned: [paramsFull, paramsRest, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, ...colBufs.filter((b): b is GPUBuffer => b !== null)],
  });
}
