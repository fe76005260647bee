/**
 * Small WebGPU building blocks shared by every kernel host: per-device pipeline caches,
 * labelled buffers, one reusable MAP_READ staging buffer, validation scopes.
 */
import { DlgInputError, DlgRuntimeError } from '../core/errors.js';

/** Caches one value per device (pipelines, layouts). Keyed weakly, so devices can be collected. */
export function perDevice<T>(build: (device: GPUDevice) => T): (device: GPUDevice) => T {
  const cache = new WeakMap<GPUDevice, T>();
  return (device) => {
    let v = cache.get(device);
    if (v === undefined) {
      v = build(device);
      cache.set(device, v);
    }
    return v;
  };
}

/**
 * An explicit compute bind-group layout: binding i has buffer type types[i]
 * ('uniform', 'read-only-storage' or 'storage').
 */
export function computeBindGroupLayout(device: GPUDevice, label: string, types: readonly GPUBufferBindingType[]): GPUBindGroupLayout {
  return device.createBindGroupLayout({
    label,
    entries: types.map((type, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } })),
  });
}

export function storageBuffer(device: GPUDevice, label: string, size: number, extraUsage = 0): GPUBuffer {
  return device.createBuffer({
    label,
    size: Math.max(16, Math.ceil(size / 16) * 16),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage,
  });
}

export function uniformBuffer(device: GPUDevice, label: string, size: number): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(16, Math.ceil(size / 16) * 16), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
}

/** Writes an f64 array to a buffer as f32. */
export function writeF32(device: GPUDevice, buffer: GPUBuffer, data: ArrayLike<number>, offsetBytes = 0): void {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  device.queue.writeBuffer(buffer, offsetBytes, f.buffer, f.byteOffset, f.byteLength);
}

/**
 * A reusable MAP_READ staging buffer: copy into it, map, `.slice()`, unmap.
 * Grows only when a larger read is asked for.
 */
export class Readback {
  private staging: GPUBuffer | null = null;
  constructor(
    private device: GPUDevice,
    private label: string,
  ) {}

  private ensure(size: number): GPUBuffer {
    if (!this.staging || this.staging.size < size) {
      this.staging?.destroy();
      this.staging = this.device.createBuffer({ label: this.label, size: Math.ceil(size / 16) * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    return this.staging;
  }

  /** Copies `size` bytes of each (buffer, offset) region back, in one submit. */
  async read(regions: { buffer: GPUBuffer; offset?: number; size: number }[], encoder?: GPUCommandEncoder): Promise<ArrayBuffer[]> {
    const total = regions.reduce((a, r) => a + Math.ceil(r.size / 4) * 4, 0);
    const staging = this.ensure(total);
    const enc = encoder ?? this.device.createCommandEncoder({ label: `${this.label}.encoder` });
    let at = 0;
    const offsets: number[] = [];
    for (const r of regions) {
      offsets.push(at);
      enc.copyBufferToBuffer(r.buffer, r.offset ?? 0, staging, at, Math.ceil(r.size / 4) * 4);
      at += Math.ceil(r.size / 4) * 4;
    }
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ, 0, total);
    const mapped = staging.getMappedRange(0, total);
    const out = regions.map((r, i) => mapped.slice(offsets[i], offsets[i] + r.size));
    staging.unmap();
    return out;
  }

  destroy(): void {
    this.staging?.destroy();
    this.staging = null;
  }
}

/** Runs `fn` inside validation and out-of-memory error scopes; throws if either caught an error. */
export async function withErrorScopes<T>(device: GPUDevice, what: string, fn: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = await fn();
  } finally {
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    const err = validation ?? oom;
    if (err) throw new DlgRuntimeError(`${what}: WebGPU ${validation ? 'validation' : 'out-of-memory'} error: ${err.message}`);
  }
  return result;
}

/** Throws a clear input error if a buffer of `bytes` would exceed the device's binding or buffer limits. */
export function checkBindingSize(device: GPUDevice, what: string, bytes: number): void {
  const lim = device.limits;
  for (const [name, max] of [['maxStorageBufferBindingSize', lim.maxStorageBufferBindingSize], ['maxBufferSize', lim.maxBufferSize]] as const) {
    if (bytes > max) {
      throw new DlgInputError(what, `at most ${max} bytes (this device's ${name})`, `${bytes} bytes needed`);
    }
  }
}

/** Splits `count` workgroups into an x×y dispatch within maxComputeWorkgroupsPerDimension. */
export function dispatch2d(device: GPUDevice, count: number): [number, number] {
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  if (count <= max) return [count, 1];
  const y = Math.ceil(count / max);
  return [Math.ceil(count / y), y];
}

/**
 * What kind of adapter a device runs on, from device.adapterInfo: the one place that sniffs it.
 * - 'llvmpipe': Mesa's lavapipe (the Node tests' adapter);
 * - 'swiftshader': Chromium's CPU adapter;
 * - 'cpu': another software adapter (WARP, a fallback adapter);
 * - 'gpu': anything else that names itself; 'unknown' when there is no adapterInfo.
 */
export type AdapterKind = 'llvmpipe' | 'swiftshader' | 'cpu' | 'gpu' | 'unknown';

export interface AdapterProfile {
  kind: AdapterKind;
  /** Runs on the CPU: a lane is an invocation and per-lane loads are costly. */
  cpu: boolean;
}

export function adapterProfile(device: GPUDevice): AdapterProfile {
  const info = (device as { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  if (!info) return { kind: 'unknown', cpu: false };
  const s = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  let kind: AdapterKind = 'gpu';
  if (/llvmpipe/.test(info.description?.toLowerCase() ?? '') || (info.vendor === 'mesa' && info.architecture === 'software')) kind = 'llvmpipe';
  else if (/swiftshader/.test(s)) kind = 'swiftshader';
  else if (info.isFallbackAdapter || /llvmpipe|lavapipe|software|warp|basic render/.test(s)) kind = 'cpu';
  return { kind, cpu: kind !== 'gpu' };
}

/**
 * Whether the device runs on the CPU (lavapipe, SwiftShader, WARP). Some kernel choices flip there:
 * one restart per invocation streaming vec4s beats a workgroup per restart; on GPUs it is the other way round.
 */
export function isCpuDevice(device: GPUDevice): boolean {
  return adapterProfile(device).cpu;
}
