/**
 * bench/lane-memory: vec4 reads per second by access pattern (see bench/lane-memory.wgsl), the
 * figure that bounds the large-D attack and objective kernels on CPU adapters. Not a product
 * kernel: a measurement behind bench/RESULTS.md's explanation of the lavapipe targets.
 *
 *   node scripts/run-ts.mjs bench/lane-memory.ts [--invocations 16384] [--n 256]
 *
 * One JSON line per pattern: reads/s (vec4s; f32s for broadcast1) (one per invocation per loop step) and GB/s.
 */
import src from './lane-memory.wgsl';
import { benchArgs, benchDevice, emit, machine, timeGpu } from './common.js';
import { loadavg } from 'node:os';

const args = benchArgs();
const T = Number(args.invocations ?? 16384);
const N = Number(args.n ?? 256);
if (!Number.isInteger(T) || T < 64 || T % 64 !== 0) throw new Error(`--invocations: a multiple of 64, found ${args.invocations}`);
if (!Number.isInteger(N) || N < 8 || N % 8 !== 0) throw new Error(`--n: a positive multiple of 8, found ${args.n}`);

const dlg = await benchDevice();
const device = dlg.device;
try {
  if (T * N * 16 > device.limits.maxStorageBufferBindingSize) throw new Error(`invocations × n × 16 bytes must fit maxStorageBufferBindingSize (${device.limits.maxStorageBufferBindingSize})`);
  device.pushErrorScope('validation');
  const x = device.createBuffer({ label: 'laneMemory.x', size: T * N * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const out = device.createBuffer({ label: 'laneMemory.out', size: T * 16, usage: GPUBufferUsage.STORAGE });
  const u = device.createBuffer({ label: 'laneMemory.u', size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(x, 0, new Float32Array(T * N * 4).fill(1));
  device.queue.writeBuffer(u, 0, new Float32Array(16384).fill(1));
  // Textures for `texel` and `storageTexel`: N × T texels (a row per invocation), when the device allows.
  const texOk = N <= device.limits.maxTextureDimension2D && T <= device.limits.maxTextureDimension2D;
  const tex = texOk
    ? device.createTexture({ label: 'laneMemory.texture', size: [N, T], format: 'rgba32float', usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST })
    : null;
  if (tex) device.queue.writeTexture({ texture: tex }, new Float32Array(N * T * 4).fill(1), { bytesPerRow: N * 16 }, [N, T]);
  const module = device.createShaderModule({ label: 'laneMemory.module', code: src });
  for (const entry of ['lane', 'interleaved', 'broadcast', 'broadcast1', 'ubo', 'ubo1', 'texel', 'storageTexel']) {
    if (entry.endsWith('exel') && !tex) continue;
    const pipeline = device.createComputePipeline({ label: `laneMemory.${entry}Pipeline`, layout: 'auto', compute: { module, entryPoint: entry, constants: { N } } });
    const used = entry.startsWith('ubo') ? [1, 2] : entry === 'broadcast1' ? [1, 3] : entry === 'texel' ? [1, 4] : entry === 'storageTexel' ? [1, 5] : [0, 1];
    const bind = device.createBindGroup({
      label: `laneMemory.${entry}BindGroup`,
      layout: pipeline.getBindGroupLayout(0),
      entries: used.map((binding) => ({ binding, resource: binding >= 4 ? tex!.createView() : { buffer: [x, out, u, x][binding] } })),
    });
    const t = await timeGpu(device, (enc) => {
      const pass = enc.beginComputePass({ label: `laneMemory.${entry}Pass` });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(T / 64);
      pass.end();
    }, { warmup: 1, samples: 5 });
    const reads = T * N;
    emit('lane-memory', {
      pattern: entry, invocations: T, vec4PerInvocation: N, ms: t.medianMs, timing: t.method,
      vec4ReadsPerSec: reads / (t.medianMs / 1e3), gbPerSec: (reads * 16) / (t.medianMs / 1e3) / 1e9,
      adapter: dlg.adapterName, loadavg1: loadavg()[0], ...machine(),
    });
  }
  for (const b of [x, out, u]) b.destroy();
  tex?.destroy();
  const err = await device.popErrorScope();
  if (err) throw new Error(`validation: ${err.message}`);
} finally {
  dlg.destroy();
}
