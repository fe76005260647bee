/**
 * Getting a GPUDevice from a `GPU` object (navigator.gpu in browsers; the Node entry passes
 * dawn.node's). Browser-safe. Library functions take a GPUDevice; this is only the thin helper.
 */
import { DlgRuntimeError } from '../core/errors.js';

export const LAVAPIPE_HELP = [
  'No WebGPU adapter was found.',
  'On Debian bookworm, install Mesa\'s lavapipe Vulkan driver from bookworm-backports (bookworm\'s own Mesa is too old for Dawn):',
  '  printf "Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n" | sudo tee /etc/apt/sources.list.d/bookworm-backports.sources',
  '  sudo apt-get update && sudo apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1',
  'On Ubuntu 24.04 or newer: sudo apt-get install -y mesa-vulkan-drivers libvulkan1',
  'Or run scripts/setup-system.sh as root. With a real GPU, install its Vulkan driver instead.',
  'To use the float64 CPU reference instead, pass --backend cpu explicitly.',
].join('\n');

/** Limits the kernels want as large as the adapter allows. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface DlgDevice {
  device: GPUDevice;
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 19.1.7, 256 bits)" or "SwiftShader Device". */
  adapterName: string;
  /** True when the device was created with 'timestamp-query'. */
  timestamps: boolean;
  /** Destroys the device (only ever a device this helper created). */
  destroy(): void;
}

export interface RequestDeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Called once if the device is lost for any reason other than destroy(). */
  onLost?: (info: GPUDeviceLostInfo) => void;
  /** Called for validation/out-of-memory errors nobody captured with an error scope. */
  onUncapturedError?: (err: GPUError) => void;
}

export function describeAdapter(info: GPUAdapterInfo | undefined): string {
  if (!info) return 'unknown adapter';
  const parts = [info.description || info.device || '', info.vendor ? `vendor ${info.vendor}` : '', info.architecture || '']
    .filter((s) => s && s.length > 0);
  return parts.length ? parts.join(', ') : 'unknown adapter';
}

export async function requestDeviceFrom(gpu: GPU | undefined, opts: RequestDeviceOptions = {}): Promise<DlgDevice> {
  if (!gpu) throw new DlgRuntimeError('WebGPU is not available here (navigator.gpu is undefined).\n' + LAVAPIPE_HELP);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference });
  } catch (err) {
    // Dawn throws (rather than returning null) for an unknown adapter= name and lists the real ones.
    throw new DlgRuntimeError(`Could not get a WebGPU adapter: ${(err as Error).message}`);
  }
  if (!adapter) throw new DlgRuntimeError(LAVAPIPE_HELP);
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k] as number;
  const timestamps = adapter.features.has('timestamp-query');
  const requiredFeatures: GPUFeatureName[] = timestamps ? ['timestamp-query'] : [];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ label: 'dlg.device', requiredFeatures, requiredLimits });
  } catch (err) {
    throw new DlgRuntimeError(`The adapter refused a device with the limits dlg-webgpu needs: ${(err as Error).message}`);
  }
  let destroyed = false;
  device.lost.then((info) => {
    if (destroyed || info.reason === 'destroyed') return;
    if (opts.onLost) opts.onLost(info);
    else console.error(`dlg: GPU device lost (${info.reason}): ${info.message}`);
  });
  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    if (opts.onUncapturedError) opts.onUncapturedError(err);
    else console.error(`dlg: uncaptured WebGPU error: ${err.message}`);
  });
  return {
    device,
    adapterName: describeAdapter(adapter.info),
    timestamps,
    destroy() {
      destroyed = true;
      device.destroy();
    },
  };
}

/** The browser helper: a device from navigator.gpu. */
export function requestBrowserDevice(opts: RequestDeviceOptions = {}): Promise<DlgDevice> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return requestDeviceFrom(nav?.gpu, opts);
}
