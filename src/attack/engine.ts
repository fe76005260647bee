/**
 * The WebGPU attack engine: totalRestarts = P × groups DLG restarts advancing together on the
 * device, many iterations per dispatch, read back only on request.
 *
 * Two kernels, chosen from the problem size:
 *  - attack/invocation.wgsl: one invocation per restart, everything in private arrays, for small
 *    problems (B·D ≤ 64, D·K ≤ 64, B·K ≤ 32, K ≤ 16, B·D·K ≤ 256; e.g. (2,1,1), (4,1,4), (2,16,4),
 *    (4,16,4)), and for gd/adam also mid sizes within MID_CAPS (B·D ≤ 256, D·K ≤ 128, B·K ≤ 256,
 *    B·D·K ≤ 1024; e.g. (8,16,4), (16,4,10)), where it beats the workgroup kernel ~5× on lavapipe
 *    (bench/attack-mid.ts; cold compiles stay under ~10 s). Its loops run to B, D, K as override
 *    constants (CB, CD, CK) so the compiler unrolls them, the arrays stay in registers (dynamically
 *    indexed private arrays are ~10× slower on lavapipe) and no size guard is left.
 *    Up to INVOCATION_ITERS_PER_DISPATCH iterations per dispatch with no memory traffic in between.
 *    Its headline special case D = K = 1, B ≤ 2 with gd/adam and the l2 loss runs on
 *    attack/pair.wgsl instead: the same algorithm straight-line, four restarts per invocation as
 *    vec4 components, which gives lavapipe independent dependency chains to overlap (usesPairKernel).
 *  - attack/stream.wgsl: one invocation per restart for large D with small B·K (gd/adam, l2 loss,
 *    D % 4 = 0, B·K ≤ 256, K ≤ 16, D·K ≤ 8188; e.g. (8,784,10), digits' (8,64,10)): x′ streamed from
 *    memory as vec4s in three passes per iteration, W and the group's G in a uniform block, B and K
 *    fixed per pipeline. Each group (scenario) is its own dispatch, with its own block. The default on
 *    CPU adapters only (isCpuDevice): on an H200 the workgroup kernel below was 1.5–30× faster.
 *  - attack/workgroup.wgsl: one workgroup per restart; invocation tid owns rows d = tid + r·WG.
 *    gd/adam stream each row from memory per phase (B ≤ 16, K ≤ 16, any D); L-BFGS keeps rows in
 *    private arrays (rows per invocation × max(B, K) ≤ 128, up to 256 invocations). Sums over d
 *    go through shared memory in a fixed order (identical bytes run to run).
 * Optimizer 'lm' (l2 loss) runs on its own kernel family instead: src/attack/engine-lm.ts and
 * shaders/attack/lm.wgsl (one invocation per restart, 'lm-private' or 'lm-scratch', within LM_CAPS).
 * All follow the iteration order documented in engine-cpu.ts (evaluate → best → converged? →
 * non-finite? → step), in f32. Cold pipeline compiles are slow on lavapipe (seconds for the
 * unrolled kernels, about a minute for workgroup L-BFGS under load); Mesa caches them on disk.
 */
import invocationSrc from '../../shaders/attack/invocation.wgsl';
import workgroupSrc from '../../shaders/attack/workgroup.wgsl';
import pairSrc from '../../shaders/attack/pair.wgsl';
import streamSrc from '../../shaders/attack/stream.wgsl';
import commonSrc from '../../shaders/attack/common.wgsl';
import rowsSrc from '../../shaders/attack/rows.wgsl';
import {
  type EngineHandle,
  type EngineOptions,
  type EngineStatus,
  LBFGS_ARMIJO_C1,
  LBFGS_CURVATURE_EPS,
  LBFGS_MAX_HALVINGS,
  LBFGS_MAX_HISTORY,
  type ResolvedEngineOptions,
  checkInputs,
  checkIterations,
  decodeStatus,
  initialStatus,
  resolveEngineOptions,
} from './engine-cpu.js';
import { DlgInputError } from '../core/errors.js';
import { Readback, checkBindingSize, computeBindGroupLayout, dispatch2d, isCpuDevice, perDevice, storageBuffer, uniformBuffer } from '../gpu/gpu.js';
import { streamColumns } from '../objective/objective.js';
import { type LmTuning, createLmEngine } from './engine-lm.js';

export * from './engine-cpu.js';
export { LM_CAPS, LM_PRIVATE_N, type LmTuning, type LmVariant, checkLmCaps, createLmEngine, fitsLm } from './engine-lm.js';

/** Caps of the in-register kernel (const array sizes in attack/invocation.wgsl). */
export const INVOCATION_CAPS = { BD: 64, DK: 64, BK: 32, K: 16, BDK: 256 } as const;
/** Larger caps of the invocation kernel for gd/adam (array sizes MAX_BD, MAX_DK, MAX_BK in the shader). */
export const MID_CAPS = { BD: 256, DK: 128, BK: 256, K: 16, BDK: 1024 } as const;
/** Caps of the stream kernel (attack/stream.wgsl: MAX_BK, MAX_K, and W + G in 4095 vec4s). */
export const STREAM_CAPS = { BK: 256, K: 16, DK: 8188 } as const;
/** Caps of the workgroup kernel (attack/workgroup.wgsl): rows per invocation × B or K ≤ 128. */
export const WORKGROUP_CAPS = { B: 16, K: 16, rowsTimesBK: 128, maxWorkgroup: 256 } as const;

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

/** Benchmark knobs (defaults are the tuned values): pairKernel false forces the generic invocation kernel. */
export interface EngineTuning extends LmTuning {
  pairKernel?: boolean;
  pairWorkgroupSize?: number;
  pairItersPerDispatch?: number;
  /** Groups of 4 restarts per invocation in attack/pair.wgsl: 1 or 2. */
  pairQuads?: number;
  /** false: gd/adam beyond INVOCATION_CAPS run on the workgroup kernel instead of the invocation kernel (MID_CAPS). */
  midKernel?: boolean;
  /**
   * Whether problems within STREAM_CAPS run on the stream kernel rather than the workgroup kernel.
   * createAttackEngine's default: on CPU adapters only (isCpuDevice), where it is 2–9× faster; on an
   * H200 the workgroup kernel was 1.5–30× faster (bench/RESULTS.md). engineKernel alone treats unset as true.
   */
  streamKernel?: boolean;
}

export type EngineKernel = 'invocation' | 'stream' | 'workgroup';

/** Whether the stream kernel can run a problem (gd/adam, l2 loss, D % 4 = 0, within STREAM_CAPS). */
export function fitsStream(B: number, D: number, K: number, optimizer?: string, loss = 'l2'): boolean {
  const c = STREAM_CAPS;
  return (optimizer === 'gd' || optimizer === 'adam') && loss === 'l2' && D % 4 === 0 && B * K <= c.BK && K <= c.K && D * K <= c.DK;
}

/** Which kernel a problem runs on (throws DlgInputError beyond the workgroup kernel's caps). */
export function engineKernel(B: number, D: number, K: number, optimizer?: string, tuning: EngineTuning = {}, loss = 'l2'): EngineKernel {
  if (fitsInvocation(B, D, K)) return 'invocation';
  if (tuning.midKernel !== false && fitsMid(B, D, K, optimizer)) return 'invocation';
  if (tuning.streamKernel !== false && fitsStream(B, D, K, optimizer, loss)) return 'stream';
  if (B > WORKGROUP_CAPS.B) throw new DlgInputError('layer.B', `at most ${WORKGROUP_CAPS.B} for the GPU attack engine`, String(B));
  if (K > WORKGROUP_CAPS.K) throw new DlgInputError('layer.K', `at most ${WORKGROUP_CAPS.K} for the GPU attack engine`, String(K));
  return 'workgroup'; // (lbfgs also bounds D: see workgroupSize)
}

// B·D·K bounds the size of the fully unrolled kernel (and its compile time).
type Caps = { readonly BD: number; readonly DK: number; readonly BK: number; readonly K: number; readonly BDK: number };
const fitsCaps = (c: Caps, b: number, d: number, k: number): boolean =>
  b * d <= c.BD && d * k <= c.DK && b * k <= c.BK && k <= c.K && b * d * k <= c.BDK;
const fitsInvocation = (b: number, d: number, k: number): boolean => fitsCaps(INVOCATION_CAPS, b, d, k);
/** gd/adam also run mid sizes on the invocation kernel (MID_CAPS): faster there than the workgroup kernel on lavapipe. */
const fitsMid = (b: number, d: number, k: number, optimizer?: string): boolean =>
  optimizer !== undefined && optimizer !== 'lbfgs' && b <= WORKGROUP_CAPS.B && fitsCaps(MID_CAPS, b, d, k);

/** Workgroup size for the workgroup kernel: the smallest power of two ≥ 32 giving ≤ maxRows rows each. */
function workgroupSize(B: number, D: number, K: number, maxInvocations: number): number {
  const maxRows = Math.floor(WORKGROUP_CAPS.rowsTimesBK / Math.max(B, K));
  let wg = 32;
  while (Math.ceil(D / wg) > maxRows && wg < Math.min(WORKGROUP_CAPS.maxWorkgroup, maxInvocations)) wg *= 2;
  if (Math.ceil(D / wg) > maxRows) {
    throw new DlgInputError('layer.D', `at most ${maxRows * wg} on this device (maxComputeInvocationsPerWorkgroup ${maxInvocations})`, String(D));
  }
  return wg;
}

const ATTACK_BINDINGS: GPUBufferBindingType[] = ['uniform', 'read-only-storage', 'read-only-storage', 'storage', 'storage', 'storage', 'storage'];

const layoutFor = perDevice((device: GPUDevice) => {
  const bindGroupLayout = computeBindGroupLayout(device, 'attack.bindGroupLayout', ATTACK_BINDINGS);
  const pipelineLayout = device.createPipelineLayout({ label: 'attack.pipelineLayout', bindGroupLayouts: [bindGroupLayout] });
  // the stream kernel adds binding 7: its group's uniform block (W and G columns)
  const streamBindGroupLayout = computeBindGroupLayout(device, 'attack.streamBindGroupLayout', [...ATTACK_BINDINGS, 'uniform']);
  const streamPipelineLayout = device.createPipelineLayout({ label: 'attack.streamPipelineLayout', bindGroupLayouts: [streamBindGroupLayout] });
  return {
    bindGroupLayout,
    pipelineLayout,
    streamBindGroupLayout,
    streamPipelineLayout,
    modules: new Map<ShaderKernel, GPUShaderModule>(),
    pipelines: new Map<string, GPUComputePipeline>(),
  };
});

type ShaderKernel = EngineKernel | 'pair';
/** The L-BFGS constants, defined once in engine-cpu.ts, in front of attack/common.wgsl. */
const LBFGS_WGSL = `const MAX_H: u32 = ${LBFGS_MAX_HISTORY}u;
const MAX_HALVINGS: u32 = ${LBFGS_MAX_HALVINGS}u;
const ARMIJO_C1: f32 = ${LBFGS_ARMIJO_C1};
const CURV_EPS: f32 = ${LBFGS_CURVATURE_EPS};
`;
const PRELUDE = LBFGS_WGSL + commonSrc;
const SHADERS: Record<ShaderKernel, string> = {
  invocation: PRELUDE + rowsSrc + invocationSrc,
  workgroup: PRELUDE + rowsSrc + workgroupSrc,
  pair: PRELUDE + rowsSrc + pairSrc,
  stream: PRELUDE + streamSrc,
};

/**
 * Whether the invocation kernel's straight-line special case (attack/pair.wgsl) runs this problem:
 * D = K = 1, B ≤ 2, gd or adam, l2 loss (same results as the generic kernel up to f32 rounding).
 */
export function usesPairKernel(o: Pick<ResolvedEngineOptions, 'B' | 'D' | 'K' | 'optimizer' | 'loss'>): boolean {
  return o.D === 1 && o.K === 1 && o.B <= 2 && o.optimizer !== 'lbfgs' && o.loss === 'l2';
}

function pipelineFor(device: GPUDevice, kernel: ShaderKernel, entry: string, constants: Record<string, number>): GPUComputePipeline {
  const cache = layoutFor(device);
  const key = `${kernel}:${entry}:${JSON.stringify(constants)}`;
  let p = cache.pipelines.get(key);
  if (!p) {
    let module = cache.modules.get(kernel);
    if (!module) {
      module = device.createShaderModule({ label: `attack.${kernel}Module`, code: SHADERS[kernel] });
      cache.modules.set(kernel, module);
    }
    p = device.createComputePipeline({
      label: `attack.${kernel}.${entry}Pipeline`,
      layout: kernel === 'stream' ? cache.streamPipelineLayout : cache.pipelineLayout,
      compute: { module, entryPoint: entry, constants },
    });
    cache.pipelines.set(key, p);
  }
  return p;
}

/** Floats of optimizer state per restart (layout shared by both kernels). */
export function optimizerStride(o: ResolvedEngineOptions): number {
  const BD = o.B * o.D;
  if (o.optimizer === 'gd') return BD;
  if (o.optimizer === 'adam') return 2 * BD;
  return 2 * LBFGS_MAX_HISTORY * BD + LBFGS_MAX_HISTORY + 4 + BD;
}

const PARAMS_BYTES = 96;

function packParams(o: ResolvedEngineOptions, iters: number, dispatchX: number, optStride: number): ArrayBuffer {
  const buf = new ArrayBuffer(PARAMS_BYTES);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  const { B, D, K } = o;
  const N = o.reduction === 'mean' ? B * K : 1;
  u.set([B, D, K, B * D, D * K, B * K, o.P, o.total, iters, o.loss === 'cosine' ? 1 : 0, o.history, optStride, B * K + D * K + K + 2, dispatchX, 0, 0]);
  f.set([o.lr, o.momentum, o.beta1, o.beta2, o.eps, 1 / N, 0, 0], 16);
  return buf;
}

/** Per group: y (B×K), G (D×K), g (K), tolAbs, ‖(G, g)‖ — as f32. */
function packGroups(o: ResolvedEngineOptions): Float32Array<ArrayBuffer> {
  const { B, D, K } = o;
  const stride = B * K + D * K + K + 2;
  const out = new Float32Array(stride * o.groups.length);
  o.groups.forEach((g, i) => {
    const at = i * stride;
    out.set(g.y, at);
    out.set(g.target.W, at + B * K);
    out.set(g.target.b, at + B * K + D * K);
    let tt = 0;
    for (const v of g.target.W) tt += v * v;
    for (const v of g.target.b) tt += v * v;
    out[at + B * K + D * K + K] = o.tolAbs[i];
    out[at + B * K + D * K + K + 1] = Math.sqrt(tt);
  });
  return out;
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

export function createAttackEngine(device: GPUDevice, opts: EngineOptions, tuningIn: EngineTuning = {}): EngineHandle {
  const o = resolveEngineOptions(opts);
  if (o.optimizer === 'lm') return createLmEngine(device, o, tuningIn);
  const tuning: EngineTuning = { ...tuningIn, streamKernel: tuningIn.streamKernel ?? isCpuDevice(device) };
  const { B, D, K, total } = o;
  const BD = B * D;
  const kernel = engineKernel(B, D, K, o.optimizer, tuning, o.loss);
  const label = o.label;
  const optStride = optimizerStride(o);
  checkBindingSize(device, 'P', total * optStride * 4);
  checkBindingSize(device, 'P', total * BD * 4);

  checkTuning(device, tuning);
  const pair = kernel === 'invocation' && usesPairKernel(o) && tuning.pairKernel !== false;
  const shader: ShaderKernel = pair ? 'pair' : kernel;
  const entry = pair ? `pair_${o.optimizer}` : kernel === 'stream' ? 'stream_main' : `main_${o.optimizer}`;
  let wg: number;
  let constants: Record<string, number>;
  let workgroups: number;
  if (pair) {
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
    if (o.optimizer === 'lbfgs') wg = workgroupSize(B, D, K, device.limits.maxComputeInvocationsPerWorkgroup);
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
  const pipeline = pipelineFor(device, shader, entry, constants);
  const itersPerDispatch = pair
    ? (tuning.pairItersPerDispatch ?? PAIR_ITERS_PER_DISPATCH)
    : kernel === 'invocation'
      ? INVOCATION_ITERS_PER_DISPATCH
      : kernel === 'stream'
        ? STREAM_ITERS_PER_DISPATCH
        : WORKGROUP_ITERS_PER_DISPATCH;

  const cache = layoutFor(device);
  const paramsFull = uniformBuffer(device, `${label}.paramsFull`, PARAMS_BYTES);
  const paramsRest = uniformBuffer(device, `${label}.paramsRest`, PARAMS_BYTES);
  const layBuf = storageBuffer(device, `${label}.layer`, (D * K + K) * 4);
  const grpData = packGroups(o);
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
  device.queue.writeBuffer(paramsFull, 0, packParams(o, itersPerDispatch, dx, optStride));
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
      layout: cols ? cache.streamBindGroupLayout : cache.bindGroupLayout,
      entries: [params, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, ...(cols ? [cols] : [])].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  // one bind group per group for the stream kernel (its dispatches), else one in all
  const bgFull = colBufs.map((c, i) => bind(paramsFull, `full${i}`, c));
  const bgRest = colBufs.map((c, i) => bind(paramsRest, `rest${i}`, c));
  const readback = new Readback(device, `${label}.readback`);
  let hasInputs = false;
  let destroyed = false;
  const alive = (): void => {
    if (destroyed) throw new DlgInputError('engine', 'a live engine', 'one that was destroyed');
  };

  return {
    totalRestarts: total,
    kernel: shader,
    setInputs(x0: ArrayLike<number>): void {
      alive();
      checkInputs(o, x0);
      const x = Float32Array.from(x0);
      device.queue.writeBuffer(xsBuf, 0, x);
      device.queue.writeBuffer(bestBuf, 0, x);
      device.queue.writeBuffer(statBuf, 0, initialStatus(total));
      const enc = device.createCommandEncoder({ label: `${label}.resetEncoder` });
      enc.clearBuffer(optBuf);
      device.queue.submit([enc.finish()]);
      hasInputs = true;
    },
    run(iterations: number): void {
      alive();
      checkIterations(iterations);
      if (!hasInputs) throw new DlgInputError('x0', 'setInputs(x0) before run()', 'no inputs');
      if (iterations === 0) return;
      const full = Math.floor(iterations / itersPerDispatch);
      const rest = iterations - full * itersPerDispatch;
      if (rest > 0) device.queue.writeBuffer(paramsRest, 0, packParams(o, rest, dx, optStride));
      const enc = device.createCommandEncoder({ label: `${label}.runEncoder` });
      const pass = enc.beginComputePass({ label: `${label}.runPass` });
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
      pass.end();
      device.queue.submit([enc.finish()]);
    },
    async readStatus(): Promise<EngineStatus> {
      alive();
      const [buf] = await readback.read([{ buffer: statBuf, size: total * 16 }]);
      return decodeStatus(buf, total);
    },
    async readBest(): Promise<Float32Array> {
      alive();
      const [buf] = await readback.read([{ buffer: bestBuf, size: total * BD * 4 }]);
      return new Float32Array(buf);
    },
    destroy(): void {
      if (destroyed) return;
      destroyed = true;
      readback.destroy();
      for (const b of [paramsFull, paramsRest, layBuf, grpBuf, xsBuf, bestBuf, statBuf, optBuf, ...colBufs]) b?.destroy();
    },
  };
}
