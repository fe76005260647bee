/**
 * Loss surfaces: L_r over a plane x′(α, β) = c + α·u + β·v on a res×res grid, on the GPU.
 * Host side in f64: an orthonormal basis Q of span{c_n, u_n, v_n} (r ≤ 3B), H = QᵀG, the
 * constant ‖G − QH‖², per-row affine z and r-vectors. The grid is rendered in tiles of rows
 * (within maxStorageBufferBindingSize / maxBufferSize) and streamed to a callback.
 * Field layout: row j ↔ β_j, column i ↔ α_i, field[j·res + i]. Browser-safe.
 */
import projectedSrc from '../shaders/surface.wgsl';
import directSrc from '../shaders/surface_direct.wgsl';
import { DlgInputError, describe } from './errors.js';
import { Readback, perDevice, storageBuffer, uniformBuffer, withErrorScopes } from './gpu.js';
import { matchL2, normaliser } from './model.js';
import { type Plane, gridCoord, validatePlane } from './plane.js';
import type { Scenario } from './scenario.js';

export const MAX_RESOLUTION = 16384;
/** Mirrors MAX_NB in shaders/surface.wgsl and MAX_BK in shaders/surface_direct.wgsl. */
export const PROJECTED_MAX_B = 64;
export const DIRECT_MAX_BK = 512;
const WG_X = 64;
/** Tiles stay below this even when the device allows more (keeps staging copies modest). */
const MAX_TILE_BYTES = 128 * 1024 * 1024;

export type SurfacePath = 'projected' | 'direct';

export interface SurfaceOptions {
  /** Default 'projected' (falls back to 'direct' only when asked). */
  path?: SurfacePath;
  /** Rows per tile (default: as many as the binding limits allow). */
  tileRows?: number;
  /** WG_X override (default 64). */
  workgroupSize?: number;
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
  readonly tileRows: number;
  readonly tiles: number;
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

/** Per-row data for rows [rowStart, rowStart + rows): zrow = z0 + β·zv, arow = ac + β·av (f64, then f32). */
function fillRowData(pre: SurfacePrecompute, plane: Plane, res: number, rowStart: number, rows: number, out: Float32Array): void {
  const BK = pre.B * pre.K;
  const rB = pre.r * pre.B;
  const stride = BK + rB;
  for (let jl = 0; jl < rows; jl++) {
    const beta = gridCoord(plane.beta[0], plane.beta[1], res, rowStart + jl);
    const o = jl * stride;
    for (let q = 0; q < BK; q++) out[o + q] = pre.z0[q] + beta * pre.zv[q];
    for (let q = 0; q < rB; q++) out[o + BK + q] = pre.ac[q] + beta * pre.av[q];
  }
}

export function gridAxis(range: [number, number], res: number): Float64Array {
  const out = new Float64Array(res);
  for (let i = 0; i < res; i++) out[i] = gridCoord(range[0], range[1], res, i);
  return out;
}

// ---------------------------------------------------------------- pipelines

interface Pipelines {
  projectedLayout: GPUBindGroupLayout;
  projected: Map<number, GPUComputePipeline>;
  directLayout: GPUBindGroupLayout;
  direct: Map<number, GPUComputePipeline>;
  projectedModule: GPUShaderModule;
  directModule: GPUShaderModule;
}

function layoutOf(device: GPUDevice, label: string, storageRead: number): GPUBindGroupLayout {
  const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
  for (let i = 1; i <= storageRead; i++) entries.push({ binding: i, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
  entries.push({ binding: storageRead + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } });
  return device.createBindGroupLayout({ label, entries });
}

const pipelines = perDevice((device): Pipelines => {
  const projectedLayout = layoutOf(device, 'surface.projectedLayout', 3);
  const directLayout = layoutOf(device, 'surface.directLayout', 4);
  return {
    projectedLayout,
    directLayout,
    projected: new Map(),
    direct: new Map(),
    projectedModule: device.createShaderModule({ label: 'surface.projectedModule', code: projectedSrc }),
    directModule: device.createShaderModule({ label: 'surface.directModule', code: directSrc }),
  };
});

/** The projected kernel's sample-loop cap for B: the smallest power of two ≥ max(B, 2). */
export function sampleCap(B: number): number {
  let nb = 2;
  while (nb < B) nb *= 2;
  return nb;
}

function pipelineFor(device: GPUDevice, path: SurfacePath, wg: number, nb: number): { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout } {
  const p = pipelines(device);
  const cache = path === 'projected' ? p.projected : p.direct;
  const layout = path === 'projected' ? p.projectedLayout : p.directLayout;
  const key = wg * 1024 + nb;
  let pipeline = cache.get(key);
  if (!pipeline) {
    const constants: Record<string, number> = path === 'projected' ? { WG_X: wg, NB: nb } : { WG_X: wg };
    pipeline = device.createComputePipeline({
      label: `surface.${path}Pipeline`,
      layout: device.createPipelineLayout({ label: `surface.${path}PipelineLayout`, bindGroupLayouts: [layout] }),
      compute: { module: path === 'projected' ? p.projectedModule : p.directModule, entryPoint: 'main', constants },
    });
    cache.set(key, pipeline);
  }
  return { pipeline, layout };
}

// ---------------------------------------------------------------- handle

export function createSurface(device: GPUDevice, scenario: Scenario, plane: Plane, resolution: number, opts: SurfaceOptions = {}): SurfaceHandle {
  const res = checkResolution(resolution);
  const { B, D, K } = scenario;
  validatePlane(plane, B, D);
  const path = opts.path ?? 'projected';
  if (path !== 'projected' && path !== 'direct') throw new DlgInputError('path', "'projected' or 'direct'", describe(path));
  const label = opts.label ?? 'surface';
  if (path === 'projected' && B > PROJECTED_MAX_B) {
    throw new DlgInputError('scenario', `B ≤ ${PROJECTED_MAX_B} for the projected surface kernel (use path 'direct')`, `B = ${B}`);
  }
  if (opts.workgroupSize !== undefined && (!Number.isInteger(opts.workgroupSize) || opts.workgroupSize < 1 || opts.workgroupSize > device.limits.maxComputeWorkgroupSizeX)) {
    throw new DlgInputError('workgroupSize', `an integer in [1, ${device.limits.maxComputeWorkgroupSizeX}]`, describe(opts.workgroupSize));
  }
  if (path === 'direct' && B * K > DIRECT_MAX_BK) {
    throw new DlgInputError('scenario', `B·K ≤ ${DIRECT_MAX_BK} for the direct surface kernel`, `B·K = ${B * K}`);
  }
  const invN = 1 / normaliser(B, K, scenario.reduction);
  const pre = path === 'projected' ? surfacePrecompute(scenario, plane) : null;
  const stride = pre ? B * K + pre.r * B : 0;

  const lim = device.limits;
  const maxBytes = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, MAX_TILE_BYTES);
  let maxRows = Math.floor(maxBytes / (4 * Math.ceil(res / 4) * 4));
  if (stride > 0) maxRows = Math.min(maxRows, Math.floor(maxBytes / (4 * stride)));
  if (maxRows < 1) {
    throw new DlgInputError('resolution', `a row of ${res} floats within this device's storage binding limit (${maxBytes} bytes)`, `${4 * res} bytes per row`);
  }
  let tileRows = Math.min(res, maxRows);
  if (opts.tileRows !== undefined) {
    if (!Number.isInteger(opts.tileRows) || opts.tileRows < 1) throw new DlgInputError('tileRows', 'a positive integer', describe(opts.tileRows));
    tileRows = Math.min(tileRows, opts.tileRows);
  }
  const tiles = Math.ceil(res / tileRows);

  const { pipeline, layout } = pipelineFor(device, path, opts.workgroupSize ?? WG_X, sampleCap(B));
  const wgX = opts.workgroupSize ?? WG_X;
  const params = uniformBuffer(device, `${label}.params`, 32);
  // The projected kernel writes whole vec4s: its rows are padded to resPad floats.
  const resPad = path === 'projected' ? Math.ceil(res / 4) * 4 : res;
  const fieldBuf = storageBuffer(device, `${label}.field`, tileRows * resPad * 4);
  const owned: GPUBuffer[] = [params, fieldBuf];
  let bindGroup: GPUBindGroup;
  let rowBuf: GPUBuffer | null = null;
  let rowHost: Float32Array | null = null;
  const paramsHost = new ArrayBuffer(32);
  const pu = new Uint32Array(paramsHost);
  const pf = new Float32Array(paramsHost);

  if (pre) {
    const alphas = new Float32Array(resPad);
    for (let i = 0; i < res; i++) alphas[i] = gridCoord(plane.alpha[0], plane.alpha[1], res, i);
    const BK = B * K;
    const rB = pre.r * B;
    const consts = new Float32Array(2 * BK + rB + K + pre.r * K);
    consts.set(pre.zu, 0);
    consts.set(scenario.y, BK);
    consts.set(pre.au, 2 * BK);
    consts.set(scenario.gradient.b, 2 * BK + rB);
    consts.set(pre.H, 2 * BK + rB + K);
    const alphaBuf = storageBuffer(device, `${label}.alphas`, alphas.byteLength);
    const constBuf = storageBuffer(device, `${label}.consts`, consts.byteLength);
    rowBuf = storageBuffer(device, `${label}.rowData`, tileRows * stride * 4);
    rowHost = new Float32Array(tileRows * stride);
    owned.push(alphaBuf, constBuf, rowBuf);
    device.queue.writeBuffer(alphaBuf, 0, alphas);
    device.queue.writeBuffer(constBuf, 0, consts);
    bindGroup = device.createBindGroup({
      label: `${label}.projectedBindGroup`,
      layout,
      entries: [
        { binding: 0, resource: { buffer: params } },
        { binding: 1, resource: { buffer: alphaBuf } },
        { binding: 2, resource: { buffer: rowBuf } },
        { binding: 3, resource: { buffer: constBuf } },
        { binding: 4, resource: { buffer: fieldBuf } },
      ],
    });
    pu.set([resPad / 4, 0, B, K, pre.r, stride]);
    pf[6] = pre.constTerm;
    pf[7] = invN;
  } else {
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
    bindGroup = device.createBindGroup({ label: `${label}.directBindGroup`, layout, entries });
    pu.set([res, 0, B, D, K, 0]);
    pf[6] = invN;
  }
  const readback = new Readback(device, `${label}.readback`);
  let destroyed = false;

  function encodeTile(enc: GPUCommandEncoder, rowStart: number, rows: number): void {
    pu[1] = rows;
    if (pre && rowBuf && rowHost) {
      fillRowData(pre, plane, res, rowStart, rows, rowHost);
      device.queue.writeBuffer(rowBuf, 0, rowHost.buffer, 0, rows * stride * 4);
    } else {
      pu[5] = rowStart;
    }
    device.queue.writeBuffer(params, 0, paramsHost);
    const pass = enc.beginComputePass({ label: `${label}.pass` });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(resPad / (pre ? 4 : 1) / wgX), rows);
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
    tileRows,
    tiles,
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
