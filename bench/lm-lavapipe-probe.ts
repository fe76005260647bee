/**
 * What bounds an lm kernel on lavapipe (bench/probe_lavapipe.wgsl). A one-workgroup-per-restart lm kernel
 * (~2n barriers per LM iteration; built and measured at 0.14–0.34× lm-private, so not kept) pays for
 * barriers; every lm kernel pays for loop-indexed accesses, which lavapipe runs one lane at a time.
 * JSON lines on stdout:
 *  - barrier: µs per workgroupBarrier per workgroup, (with − without) / (2·STEPS), per workgroup size;
 *  - access: ns per lane and multiply-add of a loop-indexed private matrix, f32 against vec4 elements.
 *   node scripts/run-ts.mjs bench/lm-lavapipe-probe.ts
 */
import probeSrc from './probe_lavapipe.wgsl';
import { benchDevice, emit, machine } from './common.js';
import os from 'node:os';

const dev = await benchDevice();
const device = dev.device;
const module = device.createShaderModule({ label: 'bench.probe.module', code: probeSrc });
const STEPS = 64;
const N = 64;
const out = device.createBuffer({ label: 'bench.probe.out', size: 1024 * 256 * 4, usage: GPUBufferUsage.STORAGE });
const prm = device.createBuffer({ label: 'bench.probe.params', size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(prm, 0, new Uint32Array([N, 0, 0, 0]));

/** Median ms of a dispatch of `groups` workgroups (after one warm-up), and the cold pipeline ms. */
async function time(entryPoint: string, constants: Record<string, number>, groups: number): Promise<{ ms: number; compileMs: number }> {
  let t = performance.now();
  const pipeline = device.createComputePipeline({ label: `bench.probe.${entryPoint}`, layout: 'auto', compute: { module, entryPoint, constants } });
  const compileMs = performance.now() - t;
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: out } }, { binding: 1, resource: { buffer: prm } }],
  });
  const go = async (): Promise<number> => {
    t = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  await go();
  const runs = [await go(), await go(), await go()].sort((a, b) => a - b);
  return { ms: runs[1], compileMs };
}

const common = { adapter: dev.adapterName, ...machine() };
const GROUPS = 1024;
for (const wg of [8, 16, 32, 64, 72, 128]) {
  const withB = await time('main_barrier', { WG: wg, STEPS, BAR: 1 }, GROUPS);
  const without = await time('main_barrier', { WG: wg, STEPS, BAR: 0 }, GROUPS);
  emit('lm-lavapipe-probe', {
    probe: 'barrier',
    workgroupSize: wg,
    usPerBarrier: Number((((withB.ms - without.ms) * 1000) / GROUPS / (2 * STEPS)).toPrecision(3)),
    load: os.loadavg()[0].toFixed(2),
    ...common,
  });
}
const invocations = 64 * 64;
for (const entry of ['main_dot_f32', 'main_dot_vec4']) {
  const r = await time(entry, { WG: 64 }, invocations / 64);
  emit('lm-lavapipe-probe', {
    probe: 'access',
    kernel: entry,
    nsPerLaneMac: Number(((r.ms * 1e6) / (invocations * N * N)).toPrecision(3)),
    coldCompileMs: Math.round(r.compileMs),
    load: os.loadavg()[0].toFixed(2),
    ...common,
  });
}
out.destroy();
prm.destroy();
dev.destroy();
process.exit(0);
