/**
 * Loss surfaces: L_r over a plane x′(α, β) = c + α·u + β·v on a res×res grid, on the GPU.
 * Host side in f64: an orthonormal basis Q of span{c_n, u_n, v_n} (r ≤ 3B), H = QᵀG, the
 * constant ‖G − QH‖², per-row affine z and r-vectors. The grid is rendered in tiles of rows
 * (within maxStorageBufferBindingSize / maxBufferSize) and streamed to a callback.
 * Field layout: row j ↔ β_j, column i ↔ α_i, field[j·res + i]. Browser-safe.
 */
import { DlgInputError, describe } from '../core/errors.js';
import { Readback, storageBuffer, uniformBuffer, withErrorScopes } from '../gpu/gpu.js';
import { uniformView } from '../gpu/uniforms.js';
import { SURFACE_CAPS, autoPrefersUnrolled, chooseKernel, hasKernelPipeline, kernelLayout as registryLayout, kernelPipeline, kernelSpec, sampleCap } from '../gpu/kernels.js';
import { matchL2, normaliser } from '../core/model.js';
import { type Plane, gridCoord, validatePlane } from './plane.js';
import type { Scenario } from '../core/scenario.js';

export const MAX_RESOLUTION = 16384;
/** Mirrors MAX_NB in shaders/surface/projected.wgsl and MAX_BK in shaders/surface/direct.wgsl. */
export const PROJECTED_MAX_B = SURFACE_CAPS.projectedMaxB;
export const DIRECT_MAX_BK = SURFACE_CAPS.directMaxBK;
const WG_X = 64;
/** Tiles stay below this even when the device allows more (keeps staging copies modest). */
const MAX_TILE_BYTES = 128 * 1024 * 1024;

export type SurfacePath = 'projected' | 'direct';
/**
 * Projected kernel: 'b2' (shaders/surface/small.wgsl: B ≤ 2, straight-line, constants in a
 * uniform buffer, 16 points per invocation), 'unrolled' (shaders/surface/unrolled.wgsl: B, K ≤ 16
 * fixed per pipeline, a per-row basis, constants in workgroup memory) or 'general'
 * (shaders/surface/projected.wgsl, any B ≤ 64). 'auto' (default) picks 'b2' where it applies, else 'general';
 * on llvmpipe (the registry ranks it there only) it picks 'unrolled' instead where that applies and is expected to
 * finish sooner, compile time included (see autoPrefersUnrolled).
 */
export type SurfaceKernel = 'auto' | 'b2' | 'unrolled' | 'general';

/** The unrolled kernel's caps (its loops are split for B, K ≤ 16 and up to 32 slots). */
export const UNROLLED_MAX_B = SURFACE_CAPS.unrolledMaxB;
export const UNROLLED_MAX_K = SURFACE_CAPS.unrolledMaxK;
export { autoPrefersUnrolled, sampleCap };

/** Bit n: sample n moves along α (u_n ≠ 0): it gets a U slot in the unrolled kernel. */
function uMask(plane: Plane, B: number, D: number): number {
  let mask = 0;
  for (let n = 0; n < B; n++) if (plane.u.subarray(n * D, (n + 1) * D).some((x) => x !== 0)) mask |= 1 << n;
  return mask;
}

const UNROLLED_WG_X = 128;

export interface SurfaceOptions {
  /** Default 'projected' (falls back to 'direct' only when asked). */
  path?: SurfacePath;
  /** Rows per tile (default: as many as the binding limits allow). */
  tileRows?: number;
  /** WG_X override (default 64). */
  workgroupSize?: number;
  /** Projected-path kernel (default 'auto'). */
  kernel?: SurfaceKernel;
  /** General projected kernel: read constants from a uniform copy when they fit 64 KiB (default true). */
  uniformConsts?: boolean;
  /**
   * Projected kernels: one exp per sample and output for 16 grid points, e^{−t} advanced geometrically
   * along α (default true; used only where the grid step keeps every factor within e^{±60}, and in the
   * general kernel only with its uniform constants).
   */
  geometric?: boolean;
  /** Small kernel: fix K and r as override constants (unrolled loops) where K·(r + 1) ≤ 256 (default true). */
  fixedLoops?: boolean;
  label?: string;
}

export interface SurfaceTile {
  rowStart: number;
  rows: number;
  data: Float32Array; // rows × res
}

export interface SurfaceHandle {
  readonly resolution: number;
  readonly path: SurfacePath;
  /** The projected kernel used ('b2', 'unrolled' or 'general'); null on the direct path. */
  readonly kernel: Exclude<SurfaceKernel, 'auto'> | null;
  /** Why that kernel runs (the registry's sentence, src/gpu/kernels.ts). */
  readonly why: string;
  /** Whether the kernel shares exps geometrically along α (see shaders/surface/small.wgsl, surface/projected.wgsl). */
  readonly geometric: boolean;
  /** Whether the small kernel runs with K and r fixed as override constants (unrolled loops). */
  readonly fixedLoops: boolean;
  readonly tileRows: number;
  readonly tiles: number;
  /** Invocations per workgroup along α (WG_X). */
  readonly workgroupSize: number;
  /** Rank of the basis Q (projected path). */
  readonly rank: number;
  /** ‖G − QH‖²: the part of L_r no point of the plane can reduce. */
  readonly constTerm: number;
  /**
   * Renders every tile in order. With onTile, each tile is handed over as it arrives and
   * null is returned (streaming); without, the full res×res field is returned.
   */
  render(onTile?: (tile: SurfaceTile) => void | Promise<void>): Promise<Float32Array | null>;
  /** For timing: uploads tile t's row data and records its dispatch (no readback). */
  encodeTile(encoder: GPUCommandEncoder, t?: number): void;
  destroy(): void;
}

/** Checks a resolution; the error says how much memory a too-large one would need. */
export function checkResolution(res: unknown, field = 'resolution'): number {
  if (typeof res !== 'number' || !Number.isInteger(res) || res < 2) {
    throw new DlgInputError(field, `an integer in [2, ${MAX_RESOLUTION}] (grid points per axis)`, describe(res));
  }
  if (res > MAX_RESOLUTION) {
    throw new DlgInputError(field, `at most ${MAX_RESOLUTION}`, `${res} (a ${res}² float32 field alone needs ${formatBytes(res * res * 4)})`);
  }
  return res;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} bytes`;
}

// ---------------------------------------------------------------- host precompute (f64)

export interface SurfacePrecompute {
  B: number;
  K: number;
  r: number;
  /** Q, D×r column-major by basis vector: Q[j·D + d]. */
  Q: Float64Array;
  /** Coordinates in Q of c_n, u_n, v_n: [j·B + n]. */
  ac: Float64Array;
  au: Float64Array;
  av: Float64Array;
  /** H = QᵀG, r×K. */
  H: Float64Array;
  /** ‖G − QH‖²_F. */
  constTerm: number;
  /** z0 = Wᵀc_n + b, zu = Wᵀu_n, zv = Wᵀv_n: B×K. */
  z0: Float64Array;
  zu: Float64Array;
  zv: Float64Array;
}

/**
 * Orthonormal basis of span{c_n, u_n, v_n} by modified Gram–Schmidt, twice (so Q is
 * orthonormal to working precision); directions within 1e-12 of the span are dropped.
 */
export function projectionBasis(plane: Plane, B: number, D: number): { Q: Float64Array; r: number } {
  const vecs: Float64Array[] = [];
  for (const src of [plane.center, plane.u, plane.v]) for (let n = 0; n < B; n++) vecs.push(src.subarray(n * D, (n + 1) * D));
  let scale = 0;
  for (const v of vecs) {
    let s = 0;
    for (let d = 0; d < D; d++) s += v[d] * v[d];
    scale = Math.max(scale, Math.sqrt(s));
  }
  const basis: Float64Array[] = [];
  for (const v of vecs) {
    if (basis.length >= D) break;
    const w = Float64Array.from(v);
    for (let pass = 0; pass < 2; pass++) {
      for (const q of basis) {
        let p = 0;
        for (let d = 0; d < D; d++) p += q[d] * w[d];
        for (let d = 0; d < D; d++) w[d] -= p * q[d];
      }
    }
    let nn = 0;
    for (let d = 0; d < D; d++) nn += w[d] * w[d];
    nn = Math.sqrt(nn);
    if (nn > 1e-12 * scale) {
      for (let d = 0; d < D; d++) w[d] /= nn;
      basis.push(w);
    }
  }
  const r = basis.length;
  const Q = new Float64Array(r * D);
  basis.forEach((q, j) => Q.set(q, j * D));
  return { Q, r };
}

export function surfacePrecompute(s: Scenario, plane: Plane): SurfacePrecompute {
  const { B, D, K, W, b } = s;
  const G = s.gradient.W;
  const { Q, r } = projectionBasis(plane, B, D);
  const coords = (src: Float64Array) => {
    const out = new Float64Array(r * B);
    for (let j = 0; j < r; j++) {
      for (let n = 0; n < B; n++) {
        let acc = 0;
        for (let d = 0; d < D; d++) acc += Q[j * D + d] * src[n * D + d];
        out[j * B + n] = acc;
      }
    }
    return out;
  };
  const H = new Float64Array(r * K);
  for (let j = 0; j < r; j++) {
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let d = 0; d < D; d++) acc += Q[j * D + d] * G[d * K + k];
      H[j * K + k] = acc;
    }
  }
  let constTerm = 0;
  for (let d = 0; d < D; d++) {
    for (let k = 0; k < K; k++) {
      let res = G[d * K + k];
      for (let j = 0; j < r; j++) res -= Q[j * D + d] * H[j * K + k];
      constTerm += res * res;
    }
  }
  const lin = (src: Float64Array, bias: boolean) => {
    const z = new Float64Array(B * K);
    for (let n = 0; n < B; n++) {
      for (let k = 0; k < K; k++) {
        let acc = bias ? b[k] : 0;
        for (let d = 0; d < D; d++) acc += src[n * D + d] * W[d * K + k];
        z[n * K + k] = acc;
      }
    }
    return z;
  };
  return {
    B,
    K,
    r,
    Q,
    ac: coords(plane.center),
    au: coords(plane.u),
    av: coords(plane.v),
    H,
    constTerm,
    z0: lin(plane.center, true),
    zu: lin(plane.u, false),
    zv: lin(plane.v, false),
  };
}

/**
 * The projected kernels' layout: samples padded to Bk ≥ B with zero rows (p = q = 0 ⇒ e = 0, and
 * zero coordinates), z sign-folded per (n, k) so that e = p·σ(t) + q (see shaders/surface/projected.wgsl).
 */
interface KernelLayout {
  Bk: number;
  /** ±1 per (n, k) in the padded B_k×K layout. */
  sign: Float64Array;
  /** zu, ac, av, z0, zv in the padded layout (trow = sign·(z0 + β·zv) per row). */
  zu: Float64Array;
  z0: Float64Array;
  zv: Float64Array;
  ac: Float64Array;
  av: Float64Array;
  /** tu (Bk·K) | p (Bk·K) | q (Bk·K) | au (r·Bk) | g (K) | H (r·K). */
  consts: Float32Array<ArrayBuffer>;
  stride: number;
}

function kernelLayout(pre: SurfacePrecompute, scenario: Scenario, Bk: number, invN: number): KernelLayout {
  const { B, K, r } = pre;
  const BkK = Bk * K;
  const rB = r * Bk;
  const sign = new Float64Array(BkK).fill(1);
  const zu = new Float64Array(BkK);
  const z0 = new Float64Array(BkK);
  const zv = new Float64Array(BkK);
  const ac = new Float64Array(rB);
  const av = new Float64Array(rB);
  const consts = new Float32Array(3 * BkK + rB + K + r * K);
  for (let n = 0; n < B; n++) {
    for (let k = 0; k < K; k++) {
      const q = n * K + k;
      const y = scenario.y[q];
      // σ(z) − y, or (1 − y) − σ(−z) for y > ½ (no digits lost at y = 1).
      const sg = y > 0.5 ? -1 : 1;
      sign[q] = sg;
      z0[q] = pre.z0[q];
      zu[q] = pre.zu[q];
      zv[q] = pre.zv[q];
      consts[q] = sg * pre.zu[q];
      consts[BkK + q] = sg * invN;
      consts[2 * BkK + q] = (y > 0.5 ? 1 - y : -y) * invN;
    }
  }
  for (let j = 0; j < r; j++) {
    for (let n = 0; n < B; n++) {
      ac[j * Bk + n] = pre.ac[j * B + n];
      av[j * Bk + n] = pre.av[j * B + n];
      consts[3 * BkK + j * Bk + n] = pre.au[j * B + n];
    }
  }
  consts.set(scenario.gradient.b, 3 * BkK + rB);
  consts.set(pre.H, 3 * BkK + rB + K);
  return { Bk, sign, zu, z0, zv, ac, av, consts, stride: BkK + rB };
}

/** ρ = e^{−tu·h} for entry q = n·K + k, from the f64 tu (sign·zu), so the powers carry no f32 error from tu. */
function rhoOf(lay: KernelLayout, q: number, step: number): number {
  return Math.exp(-lay.sign[q] * lay.zu[q] * step);
}

/**
 * The general kernel's uniform copy (one vec4 per load): [k·B + n] = (tu, p, q, 0),
 * [B·K + k·(1 + r)] = (−g_k, …), [B·K + k·(1 + r) + 1 + j] = (−H_jk, …), [B·K + K·(1 + r) + j·B + n] = (au_jn, …).
 * Null when it does not fit MAX_C vec4s.
 */
function generalUniform(lay: KernelLayout, K: number, r: number, step: number | null): Float32Array<ArrayBuffer> | null {
  const B = lay.Bk;
  const BK = B * K;
  const geo = BK + K * (1 + r) + r * B;
  if (geo + (step === null ? 0 : BK) > SMALL_MAX_C) return null;
  const c = lay.consts;
  const oG = 3 * BK + r * B;
  const out = new Float32Array(SMALL_MAX_C * 4);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < B; n++) out.set([c[n * K + k], c[BK + n * K + k], c[2 * BK + n * K + k]], 4 * (k * B + n));
    out[4 * (BK + k * (1 + r))] = -c[oG + k];
    for (let j = 0; j < r; j++) out[4 * (BK + k * (1 + r) + 1 + j)] = -c[oG + K + j * K + k];
  }
  for (let j = 0; j < r; j++) for (let n = 0; n < B; n++) out[4 * (BK + K * (1 + r) + j * B + n)] = c[3 * BK + j * B + n];
  if (step !== null) {
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < B; n++) {
        const rho = rhoOf(lay, n * K + k, step);
        out[4 * (k * B + n) + 3] = rho ** 4;
        out.set([1, rho, rho ** 2, rho ** 3], 4 * (geo + k * B + n));
      }
    }
  }
  return out;
}

/** The small kernel is specialised (FK, FR) for K·(r + 1) up to this: one pipeline per (K, r). */
const SMALL_FIXED_MAX = 256;
/** Mirrors MAX_C in shaders/surface/small.wgsl: vec4s in its 64 KiB uniform block. */
export const SMALL_MAX_C = SURFACE_CAPS.constVec4s;

/**
 * The small kernel's uniform block (B_k = 2), per k at k·(2 + r): (tu_0k, tu_1k, p_0k, p_1k),
 * (q_0k, q_1k, −g_k, 0), then (au_j0, au_j1, −H_jk, 0) for j < r.
 */
function smallConsts(lay: KernelLayout, K: number, r: number, step: number | null): Float32Array<ArrayBuffer> {
  const c = lay.consts;
  const BkK = 2 * K;
  const oAU = 3 * BkK;
  const oG = oAU + 2 * r;
  const oH = oG + K;
  const out = new Float32Array(SMALL_MAX_C * 4);
  for (let k = 0; k < K; k++) {
    const o = 4 * k * (5 + r);
    out.set([c[k], c[K + k], c[BkK + k], c[BkK + K + k], c[2 * BkK + k], c[2 * BkK + K + k], -c[oG + k], 0], o);
    if (step !== null) {
      const rho = [0, 1].map((n) => rhoOf(lay, n * K + k, step));
      for (let m = 0; m < 4; m++) {
        out[o + 8 + m] = rho[0] ** m;
        out[o + 12 + m] = rho[1] ** m;
      }
      out[o + 16] = rho[0] ** 4;
      out[o + 17] = rho[1] ** 4;
    }
    for (let j = 0; j < r; j++) out.set([c[oAU + 2 * j], c[oAU + 2 * j + 1], -c[oH + j * K + k], 0], o + 20 + 4 * j);
  }
  return out;
}

/** Per-row data for rows [rowStart, rowStart + rows): trow = sign·(z0 + β·zv), arow = ac + β·av (f64, then f32). */
function fillRowData(lay: KernelLayout, plane: Plane, res: number, rowStart: number, rows: number, out: Float32Array): void {
  const BK = lay.z0.length;
  const rB = lay.ac.length;
  const stride = lay.stride;
  for (let jl = 0; jl < rows; jl++) {
    const beta = gridCoord(plane.beta[0], plane.beta[1], res, rowStart + jl);
    const o = jl * stride;
    for (let q = 0; q < BK; q++) out[o + q] = lay.sign[q] * (lay.z0[q] + beta * lay.zv[q]);
    for (let q = 0; q < rB; q++) out[o + BK + q] = lay.ac[q] + beta * lay.av[q];
  }
}

/**
 * The unrolled kernel's per-row blocks (shaders/surface/unrolled.wgsl). Along row β the batch is
 * X_n + α·U_n (X_n = c_n + β·v_n, U_n = u_n), in coordinates of Q (r-vectors, f64). Per row:
 * an orthonormal basis P of X_0, U_0, X_1, U_1, … (U_n only for samples in `mask`; modified
 * Gram–Schmidt twice, dependent directions left as zero slots), then a = PᵀX, b = PᵀU,
 * Hr = PᵀH and c_row = ‖G − QH‖² + ‖H − P·Hr‖², summed element by element.
 */
class UnrolledRows {
  readonly B: number;
  readonly K: number;
  readonly slots: number;
  /** Bit n: sample n has a U slot (u_n ≠ 0). */
  readonly mask: number;
  /** Floats per row block. */
  readonly stride: number;
  private readonly head: Float32Array; // tu | p | q | (1, ρ, ρ², ρ³) | −g, after trow
  private readonly slotX: Int32Array;
  private readonly P: Float64Array; // slots × r: the row's orthonormal basis
  private readonly V: Float64Array; // slots × r: the row's slot vectors
  private readonly Hr: Float64Array; // slots × K

  constructor(
    private readonly pre: SurfacePrecompute,
    private readonly lay: KernelLayout,
    g: Float64Array,
    /** Bit n: sample n moves along α (see uMask). */
    mask: number,
    /** Grid step along α when the kernel shares exps geometrically (GEOM), else null. */
    step: number | null,
  ) {
    const { B, K } = pre;
    this.B = B;
    this.K = K;
    this.mask = mask;
    this.slotX = new Int32Array(B);
    let slots = 0;
    for (let n = 0; n < B; n++) {
      this.slotX[n] = slots;
      slots += (mask >> n) & 1 ? 2 : 1;
    }
    this.slots = slots;
    const BK = B * K;
    this.stride = 8 * BK + K + 2 * slots * B + slots * K + 1;
    this.head = new Float32Array(7 * BK + K);
    const c = lay.consts; // tu | p | q (Bk·K, [n·K + k]) with Bk = B
    for (let n = 0; n < B; n++) {
      for (let k = 0; k < K; k++) {
        this.head[k * B + n] = c[n * K + k];
        this.head[BK + k * B + n] = c[BK + n * K + k];
        this.head[2 * BK + k * B + n] = c[2 * BK + n * K + k];
        const rho = step === null ? 1 : rhoOf(lay, n * K + k, step);
        this.head.set([1, rho, rho * rho, rho * rho * rho], 3 * BK + 4 * (k * B + n));
      }
    }
    for (let k = 0; k < K; k++) this.head[7 * BK + k] = -g[k];
    this.P = new Float64Array(slots * pre.r);
    this.V = new Float64Array(slots * pre.r);
    this.Hr = new Float64Array(slots * K);
  }

  /** Row blocks for grid rows [rowStart, rowStart + rows) into out (rows × stride floats). */
  fill(plane: Plane, res: number, rowStart: number, rows: number, out: Float32Array): void {
    for (let jl = 0; jl < rows; jl++) {
      this.row(gridCoord(plane.beta[0], plane.beta[1], res, rowStart + jl), out.subarray(jl * this.stride, (jl + 1) * this.stride));
    }
  }

  private row(beta: number, out: Float32Array): void {
    const { B, K, slots, mask, P, V, Hr, pre, lay } = this;
    const r = pre.r;
    const BK = B * K;
    const { ac, av, au, H } = pre;
    // The slot vectors in order (X_n, then U_n where present), as r-vectors: V[j·r + i].
    let scale = 0;
    for (let n = 0; n < B; n++) {
      const jx = this.slotX[n];
      let sx = 0;
      let su = 0;
      const hasU = (mask >> n) & 1;
      for (let i = 0; i < r; i++) {
        const x = ac[i * B + n] + beta * av[i * B + n];
        V[jx * r + i] = x;
        sx += x * x;
        if (hasU) {
          const u = au[i * B + n];
          V[(jx + 1) * r + i] = u;
          su += u * u;
        }
      }
      scale = Math.max(scale, Math.sqrt(sx), Math.sqrt(su));
    }
    // Modified Gram–Schmidt, twice; a direction within 1e-12 of the earlier slots stays a zero slot.
    P.set(V);
    for (let j = 0; j < slots; j++) {
      const o = j * r;
      for (let pass = 0; pass < 2; pass++) {
        for (let q = 0; q < j; q++) {
          const oq = q * r;
          let d = 0;
          for (let i = 0; i < r; i++) d += P[oq + i] * P[o + i];
          if (d !== 0) for (let i = 0; i < r; i++) P[o + i] -= d * P[oq + i];
        }
      }
      let nn = 0;
      for (let i = 0; i < r; i++) nn += P[o + i] * P[o + i];
      nn = Math.sqrt(nn);
      if (nn > 1e-12 * scale) for (let i = 0; i < r; i++) P[o + i] /= nn;
      else for (let i = 0; i < r; i++) P[o + i] = 0;
    }
    out.set(this.head, BK);
    for (let n = 0; n < B; n++) {
      for (let k = 0; k < K; k++) {
        const q = n * K + k;
        out[k * B + n] = lay.sign[q] * (lay.z0[q] + beta * lay.zv[q]);
      }
    }
    // a = PᵀX and b = PᵀU: sample n has coordinates only up to its own slots (exact zeros after).
    const oA = 8 * BK + K;
    const oB = oA + slots * B;
    const oH = oB + slots * B;
    out.fill(0, oA, oH);
    for (let n = 0; n < B; n++) {
      const jx = this.slotX[n];
      const hasU = (mask >> n) & 1;
      for (let j = 0; j <= jx + hasU; j++) {
        let a = 0;
        let b = 0;
        for (let i = 0; i < r; i++) {
          a += P[j * r + i] * V[jx * r + i];
          if (hasU) b += P[j * r + i] * V[(jx + 1) * r + i];
        }
        out[oA + j * B + n] = a;
        out[oB + j * B + n] = b;
      }
    }
    for (let j = 0; j < slots; j++) {
      for (let k = 0; k < K; k++) {
        let h = 0;
        for (let i = 0; i < r; i++) h += P[j * r + i] * H[i * K + k];
        Hr[j * K + k] = h;
        out[oH + j * K + k] = -h;
      }
    }
    let cRow = pre.constTerm;
    for (let i = 0; i < r; i++) {
      for (let k = 0; k < K; k++) {
        let res = H[i * K + k];
        for (let j = 0; j < slots; j++) res -= P[j * r + i] * Hr[j * K + k];
        cRow += res * res;
      }
    }
    out[oH + slots * K] = cRow;
  }
}

export function gridAxis(range: [number, number], res: number): Float64Array {
  const out = new Float64Array(res);
  for (let i = 0; i < res; i++) out[i] = gridCoord(range[0], range[1], res, i);
  return out;
}

// ---------------------------------------------------------------- pipelines

type SurfaceKernelName = Exclude<SurfaceKernel, 'auto'> | 'direct';

/** Validates the options createSurface reads before any work; returns the path and the kernel asked for. */
function checkSurfaceOptions(device: GPUDevice, opts: SurfaceOptions): { path: SurfacePath; kernelOpt: SurfaceKernel } {
  const path = opts.path ?? 'projected';
  if (path !== 'projected' && path !== 'direct') throw new DlgInputError('path', "'projected' or 'direct'", describe(path));
  if (opts.workgroupSize !== undefined && (!Number.isInteger(opts.workgroupSize) || opts.workgroupSize < 1 || opts.workgroupSize > device.limits.maxComputeWorkgroupSizeX)) {
    throw new DlgInputError('workgroupSize', `an integer in [1, ${device.limits.maxComputeWorkgroupSizeX}]`, describe(opts.workgroupSize));
  }
  const kernelOpt = opts.kernel ?? 'auto';
  if (kernelOpt !== 'auto' && kernelOpt !== 'b2' && kernelOpt !== 'unrolled' && kernelOpt !== 'general') {
    throw new DlgInputError('kernel', "'auto', 'b2', 'unrolled' or 'general'", describe(kernelOpt));
  }
  return { path, kernelOpt };
}

/** Grid rows per tile: as many as the binding limits allow for the field and the row data (at most `asked`). */
function tileRowsFor(device: GPUDevice, res: number, stride: number, asked: number | undefined): number {
  const lim = device.limits;
  const maxBytes = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, MAX_TILE_BYTES);
  let maxRows = Math.floor(maxBytes / (4 * Math.ceil(res / 16) * 16));
  if (stride > 0) maxRows = Math.min(maxRows, Math.floor(maxBytes / (4 * stride)));
  if (maxRows < 1) {
    throw new DlgInputError('resolution', `a row of ${res} floats within this device's storage binding limit (${maxBytes} bytes)`, `${4 * res} bytes per row`);
  }
  if (asked !== undefined && (!Number.isInteger(asked) || asked < 1)) throw new DlgInputError('tileRows', 'a positive integer', describe(asked));
  return Math.min(res, maxRows, asked ?? Infinity);
}

/** The direct kernel's bindings: grid coordinates, the plane, the model and G in storage (owned by the handle). */
function directBindGroup(device: GPUDevice, label: string, layout: GPUBindGroupLayout, scenario: Scenario, plane: Plane, res: number, [params, fieldBuf]: [GPUBuffer, GPUBuffer], owned: GPUBuffer[]): GPUBindGroup {
  const { B, D, K } = scenario;
  const coords = new Float32Array(2 * res);
  for (let i = 0; i < res; i++) {
    coords[i] = gridCoord(plane.alpha[0], plane.alpha[1], res, i);
    coords[res + i] = gridCoord(plane.beta[0], plane.beta[1], res, i);
  }
  const planeF = new Float32Array(3 * B * D);
  planeF.set(plane.center, 0);
  planeF.set(plane.u, B * D);
  planeF.set(plane.v, 2 * B * D);
  const model = new Float32Array(D * K + K + B * K + K);
  model.set(scenario.W, 0);
  model.set(scenario.b, D * K);
  model.set(scenario.y, D * K + K);
  model.set(scenario.gradient.b, D * K + K + B * K);
  const G = Float32Array.from(scenario.gradient.W);
  const bufs = [
    [coords, 'coords'],
    [planeF, 'plane'],
    [model, 'model'],
    [G, 'G'],
  ] as const;
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: params } }];
  bufs.forEach(([data, name], i) => {
    const buf = storageBuffer(device, `${label}.${name}`, data.byteLength);
    owned.push(buf);
    device.queue.writeBuffer(buf, 0, data);
    entries.push({ binding: i + 1, resource: { buffer: buf } });
  });
  entries.push({ binding: 5, resource: { buffer: fieldBuf } });
  return device.createBindGroup({ label: `${label}.directBindGroup`, layout, entries });
}

/** The override constants of a surface kernel's pipeline. */
function surfaceConstants(kernel: SurfaceKernelName, wg: number, nb: number, uni: boolean, geometric: boolean, fixed: { K: number; r: number; mask?: number }): Record<string, number> {
  if (kernel === 'general') return { WG_X: wg, NB: nb, UNI: uni ? 1 : 0, GEOM: geometric ? 1 : 0 };
  if (kernel === 'b2') return { WG_X: wg, GEOM: geometric ? 1 : 0, FK: fixed.K, FR: fixed.r };
  if (kernel === 'unrolled') return { WG_X: wg, NB: nb, FK: fixed.K, UMASK: fixed.mask ?? 0, GEOM: geometric ? 1 : 0 };
  return { WG_X: wg };
}

// ---------------------------------------------------------------- handle

export function createSurface(device: GPUDevice, scenario: Scenario, plane: Plane, resolution: number, opts: SurfaceOptions = {}): SurfaceHandle {
  const res = checkResolution(resolution);
  const { B, D, K } = scenario;
  validatePlane(plane, B, D);
  const { path, kernelOpt } = checkSurfaceOptions(device, opts);
  const label = opts.label ?? 'surface';
  const invN = 1 / normaliser(B, K, scenario.reduction);
  // The general kernel's B cap comes first: the precompute below is O(B²) memory.
  if (path === 'projected' && B > PROJECTED_MAX_B) chooseKernel('surface', { B, K, r: 0, res, unrolledCompiled: false }, device, 'general');
  const pre = path === 'projected' ? surfacePrecompute(scenario, plane) : null;
  // Grid step along α (the shared-exp kernels advance e^{−t} by e^{−tu·step} along a row).
  const step = (plane.alpha[1] - plane.alpha[0]) / (res - 1);
  // Unrolled kernel: one exp per sample and output for its 4 points where every ρ^m (m ≤ 3) is within e^{±20}.
  const geoUFits = pre !== null && (opts.geometric ?? true) && pre.zu.every((zu) => Math.abs(zu * 3 * step) <= 20);
  const wgU = opts.workgroupSize ?? UNROLLED_WG_X;
  const maskU = uMask(plane, B, D);
  const unrolledCompiled = hasKernelPipeline(device, kernelSpec('surface', 'unrolled'), 'main', surfaceConstants('unrolled', wgU, B, true, geoUFits, { K, r: 0, mask: maskU }));
  const choice = chooseKernel('surface', { B, K, r: pre?.r ?? 0, res, unrolledCompiled }, device, path === 'direct' ? 'direct' : kernelOpt);
  const kernel = pre ? (choice.spec.name as Exclude<SurfaceKernel, 'auto'>) : null;
  // Samples padded with zero rows to the kernel's B: 2 (small), NB (general, guard-free loops) or B itself (unrolled).
  const lay = pre ? kernelLayout(pre, scenario, kernel === 'b2' ? 2 : kernel === 'unrolled' ? B : sampleCap(B), invN) : null;
  const geoU = kernel === 'unrolled' && geoUFits;
  const rowsU = kernel === 'unrolled' && pre && lay ? new UnrolledRows(pre, lay, scenario.gradient.b, maskU, geoU ? step : null) : null;
  // Small and general kernels: share one exp among 16 points where every ρ^m = e^{−tu·m·h} (m ≤ 15) is within
  // e^{±60} (the general kernel only with its uniform constants).
  const geoFits = kernel !== null && kernel !== 'unrolled' && (opts.geometric ?? true) && pre !== null && pre.zu.every((zu) => Math.abs(zu * 15 * step) <= 60);
  const uniGeo = kernel === 'general' && lay && pre && opts.uniformConsts !== false && geoFits ? generalUniform(lay, K, pre.r, step) : null;
  const uniData = uniGeo ?? (kernel === 'general' && lay && pre && opts.uniformConsts !== false ? generalUniform(lay, K, pre.r, null) : null);
  const geometric = geoU || (geoFits && (kernel === 'b2' || uniGeo !== null));
  const stride = rowsU ? rowsU.stride : lay ? lay.stride : 0;

  const tileRows = tileRowsFor(device, res, stride, opts.tileRows);
  const tiles = Math.ceil(res / tileRows);

  // The general kernel reads its constants from a 64 KiB uniform copy when they fit (uniData, above).
  const uni = uniData !== null;
  // The small kernel with K and r fixed (unrolled loops) where K·(r + 1) is small, else read from P.
  const fixed = kernel === 'b2' && pre && opts.fixedLoops !== false && K * (pre.r + 1) <= SMALL_FIXED_MAX ? { K, r: pre.r } : { K: 0, r: 0 };
  const wgX = rowsU ? wgU : (opts.workgroupSize ?? WG_X);
  const name: SurfaceKernelName = kernel ?? 'direct';
  const nb = rowsU ? B : sampleCap(B);
  const pipeline = kernelPipeline(device, choice.spec, 'main', surfaceConstants(name, wgX, nb, uni, geometric, rowsU ? { K, r: 0, mask: rowsU.mask } : fixed));
  const layout = registryLayout(device, choice.spec);
  const params = uniformBuffer(device, `${label}.params`, 32); // the largest Params block
  // The projected kernels write whole vec4s (small: groups of four): rows are padded to resPad floats.
  const resPad = path === 'projected' ? Math.ceil(res / 16) * 16 : res;
  const fieldBuf = storageBuffer(device, `${label}.field`, tileRows * resPad * 4);
  const owned: GPUBuffer[] = [params, fieldBuf];
  let bindGroup: GPUBindGroup;
  let rowBuf: GPUBuffer | null = null;
  let rowHost: Float32Array | null = null;
  // The kernel's Params block, laid out from its WGSL struct.
  const pv = uniformView(choice.spec, 'P');

  if (pre && lay) {
    // Projected kernels: α along the row (padded to whole vec4s) and a per-tile block of row data.
    const alphas = new Float32Array(resPad);
    for (let i = 0; i < res; i++) alphas[i] = gridCoord(plane.alpha[0], plane.alpha[1], res, i);
    const alphaBuf = storageBuffer(device, `${label}.alphas`, alphas.byteLength);
    rowBuf = storageBuffer(device, `${label}.rowData`, tileRows * stride * 4);
    rowHost = new Float32Array(tileRows * stride);
    owned.push(alphaBuf, rowBuf);
    device.queue.writeBuffer(alphaBuf, 0, alphas);
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: params } },
      { binding: 1, resource: { buffer: alphaBuf } },
      { binding: 2, resource: { buffer: rowBuf } },
    ];
    if (rowsU) {
      entries.push({ binding: 3, resource: { buffer: fieldBuf } });
      pv.set({ res4: resPad / 4, rows: 0, stride });
    } else {
      const consts = kernel === 'b2' ? smallConsts(lay, K, pre.r, geometric ? step : null) : lay.consts;
      const constBuf = kernel === 'b2' ? uniformBuffer(device, `${label}.smallConsts`, consts.byteLength) : storageBuffer(device, `${label}.consts`, consts.byteLength);
      owned.push(constBuf);
      device.queue.writeBuffer(constBuf, 0, consts);
      entries.push({ binding: 3, resource: { buffer: constBuf } }, { binding: 4, resource: { buffer: fieldBuf } });
      // General kernel: the uniform copy (or a placeholder when UNI is off: bound, never read).
      if (kernel === 'general') {
        const uniBuf = uniformBuffer(device, `${label}.constsUniform`, SMALL_MAX_C * 16);
        owned.push(uniBuf);
        if (uniData) device.queue.writeBuffer(uniBuf, 0, uniData);
        entries.push({ binding: 5, resource: { buffer: uniBuf } });
      }
      pv.set({ res4: resPad / 4, rows: 0, B: lay.Bk, K, r: pre.r, stride, constTerm: pre.constTerm });
    }
    bindGroup = device.createBindGroup({ label: `${label}.${kernel === 'b2' ? 'small' : kernel === 'unrolled' ? 'unrolled' : 'projected'}BindGroup`, layout, entries });
  } else {
    bindGroup = directBindGroup(device, label, layout, scenario, plane, res, [params, fieldBuf], owned);
    pv.set({ res, rows: 0, B, D, K, rowStart: 0, invN });
  }
  const readback = new Readback(device, `${label}.readback`);
  let destroyed = false;

  function encodeTile(enc: GPUCommandEncoder, rowStart: number, rows: number): void {
    pv.set({ rows });
    if (rowsU && rowBuf && rowHost) {
      rowsU.fill(plane, res, rowStart, rows, rowHost);
      device.queue.writeBuffer(rowBuf, 0, rowHost.buffer, 0, rows * stride * 4);
    } else if (lay && rowBuf && rowHost) {
      fillRowData(lay, plane, res, rowStart, rows, rowHost);
      device.queue.writeBuffer(rowBuf, 0, rowHost.buffer, 0, rows * stride * 4);
    } else {
      pv.set({ rowStart });
    }
    device.queue.writeBuffer(params, 0, pv.arrayBuffer);
    const pass = enc.beginComputePass({ label: `${label}.pass` });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    // Grid points per invocation: 1 (direct), 4 (unrolled), 16 (general and small).
    pass.dispatchWorkgroups(Math.ceil(resPad / (rowsU ? 4 : kernel ? 16 : 1) / wgX), rows);
    pass.end();
  }

  async function renderTile(rowStart: number, rows: number): Promise<Float32Array> {
    const enc = device.createCommandEncoder({ label: `${label}.encoder` });
    encodeTile(enc, rowStart, rows);
    const [buf] = await readback.read([{ buffer: fieldBuf, size: rows * resPad * 4 }], enc);
    const padded = new Float32Array(buf);
    if (resPad === res) return padded;
    const out = new Float32Array(rows * res);
    for (let r = 0; r < rows; r++) out.set(padded.subarray(r * resPad, r * resPad + res), r * res);
    return out;
  }

  return {
    resolution: res,
    path,
    kernel,
    why: choice.why,
    geometric,
    fixedLoops: fixed.K > 0,
    tileRows,
    tiles,
    workgroupSize: wgX,
    rank: pre ? pre.r : 0,
    constTerm: pre ? pre.constTerm : 0,
    async render(onTile) {
      if (destroyed) throw new DlgInputError('surface', 'a live surface handle', 'a destroyed one');
      const full = onTile ? null : new Float32Array(res * res);
      for (let t = 0; t < tiles; t++) {
        const rowStart = t * tileRows;
        const rows = Math.min(tileRows, res - rowStart);
        const data = await withErrorScopes(device, `${label}: tile ${t + 1}/${tiles}`, () => renderTile(rowStart, rows));
        if (full) full.set(data, rowStart * res);
        else if (onTile) await onTile({ rowStart, rows, data });
      }
      return full;
    },
    encodeTile(encoder, t = 0) {
      if (!Number.isInteger(t) || t < 0 || t >= tiles) throw new DlgInputError('tile', `an integer in [0, ${tiles - 1}]`, describe(t));
      const rowStart = t * tileRows;
      encodeTile(encoder, rowStart, Math.min(tileRows, res - rowStart));
    },
    destroy() {
      destroyed = true;
      for (const b of owned) b.destroy();
      readback.destroy();
    },
  };
}

/** The full res×res field (row j ↔ β_j, column i ↔ α_i). */
export async function surface(device: GPUDevice, scenario: Scenario, plane: Plane, resolution: number, opts: SurfaceOptions = {}): Promise<Float32Array> {
  const h = createSurface(device, scenario, plane, resolution, opts);
  try {
    return (await h.render()) as Float32Array;
  } finally {
    h.destroy();
  }
}

/** x′(α_i, β_j) as a B·D batch. */
export function planePoint(plane: Plane, res: number, i: number, j: number): Float64Array {
  const a = gridCoord(plane.alpha[0], plane.alpha[1], res, i);
  const b = gridCoord(plane.beta[0], plane.beta[1], res, j);
  const x = new Float64Array(plane.center.length);
  for (let q = 0; q < x.length; q++) x[q] = plane.center[q] + a * plane.u[q] + b * plane.v[q];
  return x;
}

/** f64 reference L_r at grid points (i, j), via model.ts matchL2. */
export function surfaceCpuAt(scenario: Scenario, plane: Plane, resolution: number, points: ArrayLike<readonly [number, number]>): Float64Array {
  const res = checkResolution(resolution);
  validatePlane(plane, scenario.B, scenario.D);
  const out = new Float64Array(points.length);
  for (let p = 0; p < points.length; p++) {
    const [i, j] = points[p];
    out[p] = matchL2(scenario, scenario.gradient, planePoint(plane, res, i, j)).loss;
  }
  return out;
}

/** f64 reference for the whole res×res field (row j ↔ β_j, column i ↔ α_i). */
export function surfaceCpu(scenario: Scenario, plane: Plane, resolution: number): Float64Array {
  const res = checkResolution(resolution);
  validatePlane(plane, scenario.B, scenario.D);
  const out = new Float64Array(res * res);
  for (let j = 0; j < res; j++) {
    for (let i = 0; i < res; i++) out[j * res + i] = matchL2(scenario, scenario.gradient, planePoint(plane, res, i, j)).loss;
  }
  return out;
}
