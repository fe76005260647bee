/**
 * Float16Array where the runtime lacks it (Node 20): webgpu-utils' type table names it when it loads.
 * Import this module before webgpu-utils. Browsers with WebGPU have their own, which is kept.
 */
import { Float16Array as Float16ArrayPolyfill } from '@petamoriken/float16';

const g = globalThis as { Float16Array?: unknown };
g.Float16Array ??= Float16ArrayPolyfill;
