/**
 * Node's device helper: dawn.node from the `webgpu` package. Kept out of the browser bundle.
 * DLG_ADAPTER (or --adapter) picks an adapter by name; DLG_BACKEND (or --backend-api) a Dawn backend.
 */
import { create, globals } from 'webgpu';
import { type DlgDevice, type RequestDeviceOptions, requestDeviceFrom } from '../gpu/device.js';
import { DlgRuntimeError } from '../core/errors.js';

let installed = false;
// dawn.node crashes (ProcessEvents on a freed instance) if the GPU object is garbage-collected
// while its devices live: keep every instance this process created reachable.
const liveInstances: GPU[] = [];

export interface NodeDeviceOptions extends RequestDeviceOptions {
  /** Adapter name as Dawn lists it, e.g. "llvmpipe (LLVM 19.1.7, 256 bits)". */
  adapter?: string;
  /** Dawn backend, e.g. "vulkan". */
  backend?: string;
}

export async function requestNodeDevice(opts: NodeDeviceOptions = {}): Promise<DlgDevice> {
  // Mesa warns when XDG_RUNTIME_DIR is unset; it reads it when the driver loads.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  if (!installed) {
    Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in browsers
    installed = true;
  }
  const flags: string[] = [];
  const adapter = opts.adapter ?? process.env.DLG_ADAPTER;
  const backend = opts.backend ?? process.env.DLG_BACKEND;
  if (adapter) flags.push(`adapter=${adapter}`);
  if (backend) flags.push(`backend=${backend}`);
  let gpu: GPU;
  try {
    gpu = create(flags);
    liveInstances.push(gpu);
  } catch (err) {
    throw new DlgRuntimeError(`Could not start Dawn with ${flags.join(' ') || 'default options'}: ${(err as Error).message}`);
  }
  try {
    return await requestDeviceFrom(gpu, opts);
  } catch (err) {
    if (adapter && err instanceof DlgRuntimeError) throw new DlgRuntimeError(`adapter ${JSON.stringify(adapter)}: ${err.message}`);
    throw err;
  }
}
