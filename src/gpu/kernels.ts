/**
 * The kernel registry: one row per WGSL kernel, in one table (KERNELS), and the one pipeline cache.
 *
 * A row says what the kernel is (family, name, WGSL sources, bindings), what it can run
 * (`fits(problem, limits)` → a Misfit naming the field, or null), where `auto` ranks it on each kind of
 * adapter (absent: auto never picks it there, it runs only when asked for), and the WGSL constants that
 * size its arrays. Those constants are written in front of the sources from this table, so the host's
 * caps and the shader's array sizes cannot drift apart. `chooseKernel` is the only place a kernel is
 * chosen; it returns the row and a sentence saying why, which results carry as `engine.kernel` and
 * `engine.why`. docs/kernels.md has the measurement that earns each row its place.
 *
 * `kernelPipeline` is the one pipeline cache: one shader module per row and device, one explicit layout
 * per row and device, pipelines keyed by row, entry point and override constants.
 */
import sharedSrc from '../../shaders/common.wgsl';
import attackCommonSrc from '../../shaders/attack/common.wgsl';
import attackRowsSrc from '../../shaders/attack/rows.wgsl';
import attackPairSrc from '../../shaders/attack/pair.wgsl';
import attackInvocationSrc from '../../shaders/attack/invocation.wgsl';
import attackStreamSrc from '../../shaders/attack/stream.wgsl';
import attackWorkgroupSrc from '../../shaders/attack/workgroup.wgsl';
import attackLmSrc from '../../shaders/attack/lm.wgsl';
import attackRestartSrc from '../../shaders/attack/restart.wgsl';
import objectiveCommonSrc from '../../shaders/objective/common.wgsl';
import objectiveInvocationSrc from '../../shaders/objective/invocation.wgsl';
import objectiveStreamSrc from '../../shaders/objective/stream.wgsl';
import objectiveWorkgroupSrc from '../../shaders/objective/workgroup.wgsl';
import victimSrc from '../../shaders/victim/gradient.wgsl';
import surfaceSmallSrc from '../../shaders/surface/small.wgsl';
import surfaceUnrolledSrc from '../../shaders/surface/unrolled.wgsl';
import surfaceProjectedSrc from '../../shaders/surface/projected.wgsl';
import surfaceDirectSrc from '../../shaders/surface/direct.wgsl';
import { DlgInputError, describe } from '../core/errors.js';
import { LBFGS_ARMIJO_C1, LBFGS_CURVATURE_EPS, LBFGS_MAX_HALVINGS, LBFGS_MAX_HISTORY } from '../analysis/lbfgs.js';
import { LM_DIAG_FLOOR, LM_LAMBDA_MAX, LM_LAMBDA_MIN } from '../analysis/lm.js';
import { type AdapterKind, adapterProfile, computeBindGroupLayout, perDevice } from './gpu.js';

// ---------------------------------------------------------------- caps (the WGSL array sizes come from these)

/** attack `invocation`, all optimizers: every restart in private arrays. B·D·K bounds the unrolled code. */
export const INVOCATION_CAPS = { BD: 64, DK: 64, BK: 32, K: 16, BDK: 256 } as const;
/** attack `invocation`, gd/adam: the larger sizes its arrays hold (MAX_BD, MAX_DK, MAX_BK). */
export const MID_CAPS = { BD: 256, DK: 128, BK: 256, K: 16, BDK: 1024 } as const;
/** attack `stream`: MAX_BK, MAX_K, and W + G in one 64 KiB uniform block (16-byte header + 4095 vec4s). */
export const STREAM_CAPS = { BK: 256, K: 16, DK: 8188 } as const;
/** attack `workgroup`: MAX_B, MAX_K; rows per invocation × max(B, K) ≤ 128 (L-BFGS keeps rows in private arrays). */
export const WORKGROUP_CAPS = { B: 16, K: 16, rowsTimesBK: 128, maxWorkgroup: 256 } as const;
/** attack `lm`: n = B·D unknowns (MAX_N), K, D·K, B·K. */
export const LM_CAPS = { N: 256, K: 32, DK: 512, BK: 512 } as const;

/** The objective kernels' array sizes. */
export const OBJECTIVE_CAPS = {
  /** `invocation`: D ≤ this (MAX_D); any B. */
  invocationMaxD: 4,
  /** `invocation`: K ≤ this (MAX_K). */
  invocationMaxK: 4,
  /** `stream`: B·K ≤ this (MAX_BK). */
  streamMaxBK: 128,
  /** `stream`: K ≤ this (MAX_K). */
  streamMaxK: 16,
  /** `stream`: D·K ≤ this (W and G in one 64 KiB uniform block, MAX_COLS vec4s). */
  streamMaxDK: 8192,
  /** `workgroup`: K ≤ this (MAX_K). */
  workgroupMaxK: 64,
  /** `workgroup`: B·K ≤ this (MAX_BK). */
  workgroupMaxBK: 1024,
  /** `workgroup`: private accumulators per invocation (ACC); rows are handled in chunks of ACC / K. */
  workgroupAccumulators: 80,
} as const;

/** The surface kernels' sizes. */
export const SURFACE_CAPS = {
  /** `general`: B ≤ this (MAX_NB). */
  projectedMaxB: 64,
  /** `direct`: B·K ≤ this (MAX_BK). */
  directMaxBK: 512,
  /** `b2` and `general`: vec4s in the uniform constant block (MAX_C). */
  constVec4s: 4096,
  /** `unrolled`: B, K ≤ 16 (its loops are split for up to 32 slots). */
  unrolledMaxB: 16,
  unrolledMaxK: 16,
  /** `unrolled`: floats of workgroup memory per row block (MAX_S). */
  unrolledMaxFloats: 4096,
} as const;

// ---------------------------------------------------------------- problems

export interface AttackProblem {
  B: number;
  D: number;
  K: number;
  optimizer: 'gd' | 'adam' | 'lbfgs' | 'lm';
  loss: 'l2' | 'cosine';
}
export interface ObjectiveProblem {
  B: number;
  D: number;
  K: number;
}
export interface SurfaceProblem {
  B: number;
  K: number;
  /** Rank of the plane's projected basis (projected kernels), 0 for the direct path. */
  r: number;
  /** Grid points per axis. */
  res: number;
  /** Whether the unrolled pipeline these constants need is already compiled on the device (auto's cost model). */
  unrolledCompiled: boolean;
}
export type VictimProblem = Record<string, never>;

interface Problems {
  attack: AttackProblem;
  objective: ObjectiveProblem;
  surface: SurfaceProblem;
  victim: VictimProblem;
}
export type KernelFamily = keyof Problems;

/** Why a kernel cannot run a problem: the field, what the kernel takes, what was found. */
export interface Misfit {
  field: string;
  expected: string;
  found: string;
}

/** The limits `fits` reads (a GPUDevice's, or a table's in tests). */
export type KernelLimits = Pick<
  GPUSupportedLimits,
  'maxStorageBufferBindingSize' | 'maxBufferSize' | 'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup'
>;

export interface KernelSpec<F extends KernelFamily = KernelFamily> {
  readonly family: F;
  readonly name: string;
  /** WGSL, in order, after the constants this row injects. */
  readonly sources: readonly string[];
  /** Binding types of group 0, in binding order. */
  readonly bindings: readonly GPUBufferBindingType[];
  /** u32 constants written in front of the sources (the array sizes). */
  readonly u32: Readonly<Record<string, number>>;
  /** f32 constants written in front of the sources. */
  readonly f32?: Readonly<Record<string, number>>;
  fits(problem: Problems[F], limits: KernelLimits): Misfit | null;
  /** auto's order per adapter kind, lowest first; a kind that is absent never gets this kernel from auto. */
  readonly rank: Partial<Record<AdapterKind, number>>;
  /** Why it sits where it does in auto's order: the measurement (docs/kernels.md). */
  readonly earns: string;
  /** auto only: a reason to pass over this kernel although it fits (a cost model), or null. */
  skip?(problem: Problems[F], limits: KernelLimits): string | null;
}

// ---------------------------------------------------------------- helpers for the table

const KINDS: readonly AdapterKind[] = ['gpu', 'llvmpipe', 'swiftshader', 'cpu', 'unknown'];
const everywhere = (r: number): Partial<Record<AdapterKind, number>> => Object.fromEntries(KINDS.map((k) => [k, r]));
const cpuAdapters = (r: number): Partial<Record<AdapterKind, number>> => ({ llvmpipe: r, swiftshader: r, cpu: r });
const RO = 'read-only-storage' as const;

type SizeCaps = { readonly BD: number; readonly DK: number; readonly BK: number; readonly K: number; readonly BDK: number };
function sizeMisfit(c: SizeCaps, B: number, D: number, K: number): Misfit | null {
  if (B * D > c.BD) return { field: 'layer.B', expected: `B·D ≤ ${c.BD}`, found: `B·D = ${B * D}` };
  if (D * K > c.DK) return { field: 'layer.D', expected: `D·K ≤ ${c.DK}`, found: `D·K = ${D * K}` };
  if (B * K > c.BK) return { field: 'layer.B', expected: `B·K ≤ ${c.BK}`, found: `B·K = ${B * K}` };
  if (K > c.K) return { field: 'layer.K', expected: `K ≤ ${c.K}`, found: `K = ${K}` };
  if (B * D * K > c.BDK) return { field: 'layer.D', expected: `B·D·K ≤ ${c.BDK}`, found: `B·D·K = ${B * D * K}` };
  return null;
}
const firstOrder = (p: AttackProblem): Misfit | null =>
  p.optimizer === 'lm' ? { field: 'optimizer', expected: 'gd, adam or lbfgs', found: 'lm' } : null;
const gdOrAdamL2 = (p: AttackProblem): Misfit | null =>
  p.optimizer !== 'gd' && p.optimizer !== 'adam'
    ? { field: 'optimizer', expected: 'gd or adam', found: p.optimizer }
    : p.loss !== 'l2'
      ? { field: 'loss', expected: 'l2', found: p.loss }
      : null;

/** Invocations per workgroup of the attack `workgroup` kernel under L-BFGS: the smallest power of two ≥ 32 giving ≤ maxRows rows each, or null. */
export function lbfgsWorkgroupSize(B: number, D: number, K: number, maxInvocations: number): number | null {
  const maxRows = Math.floor(WORKGROUP_CAPS.rowsTimesBK / Math.max(B, K));
  let wg = 32;
  while (Math.ceil(D / wg) > maxRows && wg < Math.min(WORKGROUP_CAPS.maxWorkgroup, maxInvocations)) wg *= 2;
  return Math.ceil(D / wg) > maxRows ? null : wg;
}

/** The general surface kernel's sample-loop cap for B: the smallest power of two ≥ max(B, 2). */
export function sampleCap(B: number): number {
  let nb = 2;
  while (nb < B) nb *= 2;
  return nb;
}

/**
 * The lavapipe cost model behind the surface auto choice (seconds for a res² grid), fitted to bench/surface on
 * the 2-core dev machine. Per point: unrolled 8 + 0.115·W ns with W = K·B·(B + 1) multiply-adds; small
 * 2 + 0.72·K·r ns; general 20 + 0.2·K·r·NB ns (NB: B padded to a power of two). Compiling the unrolled
 * kernel's straight-line code takes 0.15 + 0.003·W + 1e-6·W² s (0.3 s at (2,·,10), 2.3 s at (8,·,10), 25 s at
 * (16,·,16)); it is not counted when the pipeline is already compiled on this device. Predicted against
 * measured one-shot renders: (8,·,10) 1024²: general 0.42 s against unrolled 2.4 s (measured 0.6 and 2.5).
 */
export function autoPrefersUnrolled(c: { res: number; B: number; K: number; r: number; small: boolean; compiled: boolean }): boolean {
  const W = c.K * c.B * (c.B + 1);
  const points = c.res * c.res;
  const unrolled = (c.compiled ? 0 : 0.15 + 0.003 * W + 1e-6 * W * W) + points * (8 + 0.115 * W) * 1e-9;
  const other = points * (c.small ? 2 + 0.72 * c.K * c.r : 20 + 0.2 * c.K * c.r * sampleCap(c.B)) * 1e-9;
  return unrolled < other;
}

/** Floats of workgroup memory the unrolled surface kernel needs per row block. */
const unrolledFloats = (B: number, K: number): number => 8 * B * K + K + 2 * (2 * B) * B + 2 * B * K + 1;

// ---------------------------------------------------------------- the table

const ATTACK_BINDINGS: GPUBufferBindingType[] = ['uniform', RO, RO, 'storage', 'storage', 'storage', 'storage'];
const OBJECTIVE_BINDINGS: GPUBufferBindingType[] = ['uniform', RO, RO, 'storage', 'storage'];
const LBFGS_F32 = { ARMIJO_C1: LBFGS_ARMIJO_C1, CURV_EPS: LBFGS_CURVATURE_EPS };
const LBFGS_U32 = { MAX_H: LBFGS_MAX_HISTORY, MAX_HALVINGS: LBFGS_MAX_HALVINGS };

/** The parts every first-order attack row shares: the shared fragments, the bindings, the L-BFGS constants. */
function firstOrderRow(name: string, source: string | string[], caps: Record<string, number>, opts: { rows?: boolean; columns?: boolean } = {}) {
  return {
    family: 'attack' as const,
    name,
    sources: [sharedSrc, attackCommonSrc, ...(opts.rows === false ? [] : [attackRowsSrc]), ...[source].flat()],
    bindings: opts.columns ? [...ATTACK_BINDINGS, 'uniform' as const] : ATTACK_BINDINGS,
    u32: { ...LBFGS_U32, ...caps },
    f32: LBFGS_F32,
  };
}

const pair: KernelSpec<'attack'> = {
  ...firstOrderRow('pair', attackPairSrc, {}),
  fits: (p) =>
    gdOrAdamL2(p) ?? (p.D !== 1 || p.K !== 1 || p.B > 2 ? { field: 'layer', expected: 'D = K = 1 and B ≤ 2', found: `(B, D, K) = (${p.B}, ${p.D}, ${p.K})` } : null),
  rank: everywhere(0),
  earns: 'straight-line code, four restarts per invocation as vec4 lanes: 2.3× invocation at (2,1,1) on lavapipe',
};

const invocation: KernelSpec<'attack'> = {
  ...firstOrderRow('invocation', [attackRestartSrc, attackInvocationSrc], { MAX_BD: MID_CAPS.BD, MAX_DK: MID_CAPS.DK, MAX_BK: MID_CAPS.BK, MAX_K: MID_CAPS.K, MAX_LBD: INVOCATION_CAPS.BD }),
  fits: (p) => {
    const m = firstOrder(p);
    if (m) return m;
    const small = sizeMisfit(INVOCATION_CAPS, p.B, p.D, p.K);
    if (!small || (p.optimizer !== 'lbfgs' && p.B <= WORKGROUP_CAPS.B && !sizeMisfit(MID_CAPS, p.B, p.D, p.K))) return null;
    return p.optimizer === 'lbfgs' ? small : (sizeMisfit(MID_CAPS, p.B, p.D, p.K) ?? { field: 'layer.B', expected: `B ≤ ${WORKGROUP_CAPS.B}`, found: `B = ${p.B}` });
  },
  rank: everywhere(1),
  earns: 'one restart per invocation in registers, B, D, K fixed per pipeline: 10–25× workgroup at mid sizes on lavapipe',
};

const stream: KernelSpec<'attack'> = {
  ...firstOrderRow('stream', attackStreamSrc, { MAX_BK: STREAM_CAPS.BK, MAX_K: STREAM_CAPS.K, MAX_COLS: 4095 }, { rows: false, columns: true }),
  fits: (p) =>
    gdOrAdamL2(p) ??
    (p.D % 4 !== 0
      ? { field: 'layer.D', expected: 'a multiple of 4', found: `D = ${p.D}` }
      : p.B * p.K > STREAM_CAPS.BK
        ? { field: 'layer.B', expected: `B·K ≤ ${STREAM_CAPS.BK}`, found: `B·K = ${p.B * p.K}` }
        : p.K > STREAM_CAPS.K
          ? { field: 'layer.K', expected: `K ≤ ${STREAM_CAPS.K}`, found: `K = ${p.K}` }
          : p.D * p.K > STREAM_CAPS.DK
            ? { field: 'layer.D', expected: `D·K ≤ ${STREAM_CAPS.DK}`, found: `D·K = ${p.D * p.K}` }
            : null),
  rank: cpuAdapters(2),
  earns: 'one restart per invocation streaming x′ as vec4s: 4.7–9.2× workgroup on lavapipe at (8,64,10) and (16,64,10); 7–31× slower than workgroup on an H200, so CPU adapters only',
};

const workgroup: KernelSpec<'attack'> = {
  ...firstOrderRow('workgroup', attackWorkgroupSrc, { MAX_RB: WORKGROUP_CAPS.rowsTimesBK, MAX_RK: WORKGROUP_CAPS.rowsTimesBK, MAX_BK: WORKGROUP_CAPS.B * WORKGROUP_CAPS.K, MAX_K: WORKGROUP_CAPS.K, MAX_B: WORKGROUP_CAPS.B }),
  fits: (p, limits) => {
    const m = firstOrder(p);
    if (m) return m;
    if (p.B > WORKGROUP_CAPS.B) return { field: 'layer.B', expected: `at most ${WORKGROUP_CAPS.B}`, found: String(p.B) };
    if (p.K > WORKGROUP_CAPS.K) return { field: 'layer.K', expected: `at most ${WORKGROUP_CAPS.K}`, found: String(p.K) };
    if (p.optimizer === 'lbfgs' && lbfgsWorkgroupSize(p.B, p.D, p.K, limits.maxComputeInvocationsPerWorkgroup) === null) {
      const maxRows = Math.floor(WORKGROUP_CAPS.rowsTimesBK / Math.max(p.B, p.K));
      const wg = Math.min(WORKGROUP_CAPS.maxWorkgroup, limits.maxComputeInvocationsPerWorkgroup);
      return { field: 'layer.D', expected: `at most ${maxRows * wg} with lbfgs on this device (maxComputeInvocationsPerWorkgroup ${limits.maxComputeInvocationsPerWorkgroup})`, found: String(p.D) };
    }
    return null;
  },
  rank: everywhere(3),
  earns: 'one workgroup per restart, sums over D in shared memory in a fixed order: any D; 1.5–31× stream on an H200',
};

const lmFits = (p: AttackProblem): Misfit | null => {
  if (p.optimizer !== 'lm') return { field: 'optimizer', expected: 'lm', found: p.optimizer };
  if (p.loss !== 'l2') return { field: 'loss', expected: "'l2' with optimizer 'lm'", found: p.loss };
  const c = LM_CAPS;
  const n = p.B * p.D;
  if (n > c.N) return { field: 'layer.B', expected: `B·D ≤ ${c.N} unknowns`, found: `B·D = ${p.B}·${p.D} = ${n}` };
  if (p.K > c.K) return { field: 'layer.K', expected: `at most ${c.K}`, found: String(p.K) };
  if (p.D * p.K > c.DK) return { field: 'layer.D', expected: `D·K ≤ ${c.DK}`, found: `D·K = ${p.D}·${p.K} = ${p.D * p.K}` };
  if (p.B * p.K > c.BK) return { field: 'layer.B', expected: `B·K ≤ ${c.BK}`, found: `B·K = ${p.B}·${p.K} = ${p.B * p.K}` };
  return null;
};
const LM_F32 = { LAMBDA_MIN: LM_LAMBDA_MIN, LAMBDA_MAX: LM_LAMBDA_MAX, DIAG_FLOOR: LM_DIAG_FLOOR };
const LM_BINDINGS: GPUBufferBindingType[] = [...ATTACK_BINDINGS, 'storage'];
const LM_U32 = { MAX_N: LM_CAPS.N, MAX_K: LM_CAPS.K, MAX_DK: LM_CAPS.DK, MAX_BK: LM_CAPS.BK };

const lm: KernelSpec<'attack'> = {
  family: 'attack',
  name: 'lm',
  sources: [sharedSrc, attackRestartSrc, attackLmSrc],
  bindings: LM_BINDINGS,
  u32: LM_U32,
  f32: LM_F32,
  fits: (p, limits) => {
    const m = lmFits(p);
    if (m) return m;
    const n = p.B * p.D;
    const bytes = ((n * (n + 1)) / 2) * 4;
    if (bytes > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) {
      return { field: 'layer.B', expected: `one restart's ${bytes}-byte scratch within this device's binding size`, found: `B·D = ${n}` };
    }
    return null;
  },
  rank: everywhere(4),
  earns: 'one restart per invocation, the packed factor of JᵀJ + λD in a storage scratch interleaved by restart: n up to 256',
};

const objective = (name: string, src: string, bindings: GPUBufferBindingType[], u32: Record<string, number>, rank: number, fits: KernelSpec<'objective'>['fits'], earns: string): KernelSpec<'objective'> => ({
  family: 'objective',
  name,
  sources: [objectiveCommonSrc, src],
  bindings,
  u32,
  fits,
  rank: everywhere(rank),
  earns,
});
const OC = OBJECTIVE_CAPS;
const sizes = (p: ObjectiveProblem): string => `B=${p.B}, D=${p.D}, K=${p.K}`;

/** Every kernel, one row each: auto tries a family's rows by rank on this adapter kind. */
export const KERNELS: { readonly [F in KernelFamily]: readonly KernelSpec<F>[] } = {
  attack: [pair, invocation, stream, workgroup, lm],
  objective: [
    objective(
      'invocation',
      objectiveInvocationSrc,
      OBJECTIVE_BINDINGS,
      { MAX_D: OC.invocationMaxD, MAX_K: OC.invocationMaxK },
      0,
      (p) => (p.D <= OC.invocationMaxD && p.K <= OC.invocationMaxK ? null : { field: 'layer', expected: `D ≤ ${OC.invocationMaxD} (MAX_D) and K ≤ ${OC.invocationMaxK} (MAX_K)`, found: sizes(p) }),
      'all state in registers, D and K fixed per pipeline: +9–39% over the guarded loops at P = 65536 on lavapipe',
    ),
    objective(
      'stream',
      objectiveStreamSrc,
      [...OBJECTIVE_BINDINGS, 'storage', 'uniform'],
      { MAX_BK: OC.streamMaxBK, MAX_K: OC.streamMaxK, MAX_COLS: OC.streamMaxDK / 2 },
      1,
      (p) =>
        p.D % 4 === 0 && p.K <= OC.streamMaxK && p.B * p.K <= OC.streamMaxBK && p.D * p.K <= OC.streamMaxDK
          ? null
          : { field: 'layer', expected: `D a multiple of 4, K ≤ ${OC.streamMaxK} (MAX_K), B·K ≤ ${OC.streamMaxBK} (MAX_BK) and D·K ≤ ${OC.streamMaxDK} (MAX_COLS)`, found: sizes(p) },
      'x′ streamed four features at a time: 9.4× workgroup at (8,784,10) on lavapipe, 9× on an H200 at P = 4096',
    ),
    objective(
      'workgroup',
      objectiveWorkgroupSrc,
      OBJECTIVE_BINDINGS,
      { MAX_K: OC.workgroupMaxK, MAX_BK: OC.workgroupMaxBK, ACC: OC.workgroupAccumulators },
      2,
      (p) => (p.K <= OC.workgroupMaxK && p.B * p.K <= OC.workgroupMaxBK ? null : { field: 'layer', expected: `K ≤ ${OC.workgroupMaxK} (MAX_K) and B·K ≤ ${OC.workgroupMaxBK} (MAX_BK)`, found: sizes(p) }),
      'sums over D through workgroup memory: any D',
    ),
  ],
  victim: [
    {
      family: 'victim',
      name: 'gradient',
      sources: [victimSrc],
      bindings: OBJECTIVE_BINDINGS,
      u32: {},
      fits: () => null,
      rank: everywhere(0),
      earns: 'the victim gradient of P batches, one workgroup per batch',
    },
  ],
  surface: [
    {
      family: 'surface',
      name: 'unrolled',
      sources: [surfaceUnrolledSrc],
      bindings: ['uniform', RO, RO, 'storage'],
      u32: { MAX_S: SURFACE_CAPS.unrolledMaxFloats },
      fits: (p, limits) =>
        p.B > SURFACE_CAPS.unrolledMaxB || p.K > SURFACE_CAPS.unrolledMaxK
          ? { field: 'kernel', expected: `'unrolled' only for B ≤ ${SURFACE_CAPS.unrolledMaxB} and K ≤ ${SURFACE_CAPS.unrolledMaxK}`, found: `B = ${p.B}, K = ${p.K}` }
          : 4 * unrolledFloats(p.B, p.K) > Math.min(SURFACE_CAPS.unrolledMaxFloats * 4, limits.maxComputeWorkgroupStorageSize)
            ? { field: 'kernel', expected: "'unrolled' only where its row block fits workgroup memory", found: `${4 * unrolledFloats(p.B, p.K)} bytes` }
            : null,
      rank: { llvmpipe: 0 },
      earns: 'straight-line code, a per-row basis, constants in workgroup memory: 1.5–4.5× general and b2 on llvmpipe; 1.4–8× slower on SwiftShader, so llvmpipe only',
      skip: (p) =>
        autoPrefersUnrolled({ res: p.res, B: p.B, K: p.K, r: p.r, small: smallFits(p), compiled: p.unrolledCompiled })
          ? null
          : 'predicted to finish later at this resolution, its compile included',
    },
    {
      family: 'surface',
      name: 'b2',
      sources: [surfaceSmallSrc],
      bindings: ['uniform', RO, RO, 'uniform', 'storage'],
      u32: { MAX_C: SURFACE_CAPS.constVec4s },
      fits: (p) => (smallFits(p) ? null : { field: 'kernel', expected: `'b2' only for B ≤ 2 and K·(5 + r) ≤ ${SURFACE_CAPS.constVec4s}`, found: `B = ${p.B}, K = ${p.K}, r = ${p.r}` }),
      rank: everywhere(1),
      earns: 'B ≤ 2, 16 points per invocation, K and r fixed: 1.8–2× general on SwiftShader (digits B = 2), 2× unrolled at (2,1,1) on llvmpipe',
    },
    {
      family: 'surface',
      name: 'general',
      sources: [surfaceProjectedSrc],
      bindings: ['uniform', RO, RO, RO, 'storage', 'uniform'],
      u32: { MAX_C: SURFACE_CAPS.constVec4s, MAX_NB: SURFACE_CAPS.projectedMaxB },
      fits: (p) =>
        p.B > SURFACE_CAPS.projectedMaxB ? { field: 'scenario', expected: `B ≤ ${SURFACE_CAPS.projectedMaxB} for the projected surface kernel (use path 'direct')`, found: `B = ${p.B}` } : null,
      rank: everywhere(2),
      earns: 'any B ≤ 64, O(B²K) per point',
    },
    {
      family: 'surface',
      name: 'direct',
      sources: [surfaceDirectSrc],
      bindings: ['uniform', RO, RO, RO, RO, 'storage'],
      u32: { MAX_BK: SURFACE_CAPS.directMaxBK },
      fits: (p) =>
        p.B * p.K > SURFACE_CAPS.directMaxBK ? { field: 'scenario', expected: `B·K ≤ ${SURFACE_CAPS.directMaxBK} for the direct surface kernel`, found: `B·K = ${p.B * p.K}` } : null,
      rank: {},
      earns: 'the O(B·D·K) reference in input space, for cross-checks (only when asked)',
    },
  ],
};

function smallFits(p: SurfaceProblem): boolean {
  return p.B <= 2 && p.K * (5 + p.r) <= SURFACE_CAPS.constVec4s;
}

// ---------------------------------------------------------------- choosing

/** What a choice depends on besides the problem: the adapter kind and the device's limits. */
export interface KernelContext {
  kind: AdapterKind;
  limits: KernelLimits;
}

export function kernelContext(device: GPUDevice): KernelContext {
  return { kind: adapterProfile(device).kind, limits: device.limits };
}

export interface KernelChoice<F extends KernelFamily> {
  spec: KernelSpec<F>;
  /** One sentence: why this kernel runs (asked for, or auto's rank and the measurement behind it). */
  why: string;
}

export function misfitText(m: Misfit): string {
  return `${m.field}: ${m.expected}, found ${m.found}`;
}

/** The names a family's rows answer to. */
export function kernelNames(family: KernelFamily): string[] {
  return KERNELS[family].map((s) => s.name);
}

export function kernelSpec<F extends KernelFamily>(family: F, name: string): KernelSpec<F> {
  const spec = (KERNELS[family] as readonly KernelSpec<F>[]).find((s) => s.name === name);
  if (!spec) throw new DlgInputError('kernel', `'auto' or one of ${kernelNames(family).map((n) => `'${n}'`).join(', ')}`, describe(name));
  return spec;
}

/**
 * The kernel a problem runs on. `asked` names a row (it must fit: else a DlgInputError naming the field,
 * the kernel's cap and what was found); 'auto' tries the family's rows that rank on this adapter kind,
 * lowest rank first, and takes the first that fits and is not passed over by its cost model. Nothing
 * fitting throws the most general kernel's misfit.
 */
export function chooseKernel<F extends KernelFamily>(family: F, problem: Problems[F], ctx: GPUDevice | KernelContext, asked = 'auto'): KernelChoice<F> {
  const { kind, limits } = 'kind' in ctx ? ctx : kernelContext(ctx);
  if (asked !== 'auto') {
    const spec = kernelSpec(family, asked);
    const m = spec.fits(problem, limits);
    if (m) throw new DlgInputError(m.field, `${m.expected} for the '${spec.name}' ${family} kernel`, m.found);
    return { spec, why: `asked for` };
  }
  const rows = (KERNELS[family] as readonly KernelSpec<F>[]).filter((s) => s.rank[kind] !== undefined).sort((a, b) => a.rank[kind]! - b.rank[kind]!);
  const passed: string[] = [];
  let last: { spec: KernelSpec<F>; m: Misfit } | null = null;
  for (const spec of rows) {
    const m = spec.fits(problem, limits);
    if (m) {
      // a kernel for another optimizer is not a candidate worth naming
      if (m.field !== 'optimizer') passed.push(`${spec.name} (${m.expected})`);
      if (m.field !== 'optimizer' && m.field !== 'loss') last = { spec, m };
      continue;
    }
    const skip = spec.skip?.(problem, limits) ?? null;
    if (skip) {
      passed.push(`${spec.name} (${skip})`);
      continue;
    }
    return { spec, why: `auto on ${kind}: ${spec.earns}${passed.length ? `; passed over ${passed.join(', ')}` : ''}` };
  }
  if (!last) throw new DlgInputError('kernel', `a ${family} kernel for this problem on ${kind}`, 'none');
  throw new DlgInputError(last.m.field, `${last.m.expected} for the GPU ${family} kernels ('${last.spec.name}')`, last.m.found);
}

// ---------------------------------------------------------------- the one pipeline cache

/** The WGSL a row compiles: its constants, then its sources. */
export function kernelSource(spec: KernelSpec): string {
  const lines = [`// constants from src/gpu/kernels.ts (${spec.family}/${spec.name})`];
  for (const [k, v] of Object.entries(spec.u32)) lines.push(`const ${k}: u32 = ${v}u;`);
  for (const [k, v] of Object.entries(spec.f32 ?? {})) lines.push(`const ${k}: f32 = ${Number.isInteger(v) ? v.toFixed(1) : String(v)};`);
  return lines.join('\n') + '\n' + spec.sources.join('\n');
}

interface DeviceKernels {
  modules: Map<KernelSpec, GPUShaderModule>;
  layouts: Map<KernelSpec, { bindGroupLayout: GPUBindGroupLayout; pipelineLayout: GPUPipelineLayout }>;
  pipelines: Map<string, GPUComputePipeline>;
}
const deviceKernels = perDevice((): DeviceKernels => ({ modules: new Map(), layouts: new Map(), pipelines: new Map() }));

function pipelineKey(spec: KernelSpec, entryPoint: string, constants: Record<string, number>): string {
  const c = Object.keys(constants)
    .sort()
    .map((k) => `${k}=${constants[k]}`)
    .join(',');
  return `${spec.family}/${spec.name}/${entryPoint}/${c}`;
}

/** The explicit bind-group layout of a row on a device (group 0, compute stage). */
export function kernelLayout(device: GPUDevice, spec: KernelSpec): GPUBindGroupLayout {
  return layoutsOf(device, spec).bindGroupLayout;
}

function layoutsOf(device: GPUDevice, spec: KernelSpec): { bindGroupLayout: GPUBindGroupLayout; pipelineLayout: GPUPipelineLayout } {
  const dk = deviceKernels(device);
  let l = dk.layouts.get(spec);
  if (!l) {
    const label = `${spec.family}.${spec.name}`;
    const bindGroupLayout = computeBindGroupLayout(device, `${label}.bindGroupLayout`, spec.bindings);
    l = { bindGroupLayout, pipelineLayout: device.createPipelineLayout({ label: `${label}.pipelineLayout`, bindGroupLayouts: [bindGroupLayout] }) };
    dk.layouts.set(spec, l);
  }
  return l;
}

/** The pipeline for a row's entry point and override constants on a device, compiled once. */
export function kernelPipeline(device: GPUDevice, spec: KernelSpec, entryPoint: string, constants: Record<string, number>): GPUComputePipeline {
  const dk = deviceKernels(device);
  const key = pipelineKey(spec, entryPoint, constants);
  let p = dk.pipelines.get(key);
  if (!p) {
    let module = dk.modules.get(spec);
    if (!module) {
      module = device.createShaderModule({ label: `${spec.family}.${spec.name}.module`, code: kernelSource(spec) });
      dk.modules.set(spec, module);
    }
    p = device.createComputePipeline({
      label: `${spec.family}.${spec.name}.${entryPoint}`,
      layout: layoutsOf(device, spec).pipelineLayout,
      compute: { module, entryPoint, constants },
    });
    dk.pipelines.set(key, p);
  }
  return p;
}

/** Whether that pipeline is already compiled on the device (cost models count the compile otherwise). */
export function hasKernelPipeline(device: GPUDevice, spec: KernelSpec, entryPoint: string, constants: Record<string, number>): boolean {
  return deviceKernels(device).pipelines.has(pipelineKey(spec, entryPoint, constants));
}
