/**
 * Attack engine throughput: restart-iterations per second with adam, GPU engine against the
 * float64 CPU engine in the same run. JSON lines on stdout.
 *   node scripts/run-ts.mjs bench/attack.ts [--only tiny|large] [--iters N] [--samples S]
 * (--iters applies to every selected config: pass --only with it.) Timing = wall time of run(N) plus one
 * status readback, after a warm-up run that includes the pipeline compile.
 * Targets (issue 3, lavapipe on 2 cores): (2,1,1) P=65536 ≥ 2e8; (8,784,10) P=256 ≥ 6e4.
 */
import { benchArgs, benchDevice, emit, machine, median } from './common.js';
import { type EngineHandle, createAttackEngine, createCpuEngine, engineKernel } from '../src/engine.js';
import { type Layer, victimGradient } from '../src/model.js';
import { Rng } from '../src/rng.js';
import { withErrorScopes } from '../src/gpu.js';

const args = benchArgs();
const samples = Number(args.samples ?? 3);

function problem(B: number, D: number, K: number, seed: number) {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => rng.int(2));
  const xTrue = Float64Array.from({ length: B * D }, () => rng.normal());
  const layer: Layer = { B, D, K, W, b, y, reduction: 'mean' };
  return { layer, target: victimGradient(layer, xTrue) };
}

function inputs(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** Median seconds of `run(iters)` followed by one status read (the readback is part of the cost). */
async function timeEngine(e: EngineHandle, x0: Float32Array, iters: number, reps: number): Promise<number> {
  e.setInputs(x0);
  e.run(Math.min(iters, 8)); // warm-up: pipeline compilation, first touch
  await e.readStatus();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    e.setInputs(x0);
    const t0 = performance.now();
    e.run(iters);
    await e.readStatus();
    out.push((performance.now() - t0) / 1000);
  }
  return median(out);
}

const dlg = await benchDevice();
const configs = [
  { name: 'tiny', B: 2, D: 1, K: 1, P: 65536, iters: Number(args.iters ?? 2048), cpuP: 256, cpuIters: 2048, target: 2e8 },
  { name: 'large', B: 8, D: 784, K: 10, P: 256, iters: Number(args.iters ?? 64), cpuP: 4, cpuIters: 16, target: 6e4 },
].filter((c) => !args.only || c.name === args.only);

for (const c of configs) {
  const { layer, target } = problem(c.B, c.D, c.K, 1);
  const base = { layer, target, optimizer: 'adam' as const, lr: 0.01 };
  // a validation error (limits, shader) must fail the bench, not time an empty pipeline
  const gpuS = await withErrorScopes(dlg.device, `bench ${c.name}`, async () => {
    const gpu = createAttackEngine(dlg.device, { ...base, P: c.P, label: `bench.${c.name}` });
    try {
      return await timeEngine(gpu, inputs(c.P * c.B * c.D, 2), c.iters, samples);
    } finally {
      gpu.destroy();
    }
  });
  const cpu = createCpuEngine({ ...base, P: c.cpuP });
  const cpuS = await timeEngine(cpu, inputs(c.cpuP * c.B * c.D, 2), c.cpuIters, 1);
  cpu.destroy();
  const gpuRate = (c.P * c.iters) / gpuS;
  const cpuRate = (c.cpuP * c.cpuIters) / cpuS;
  emit('attack', {
    B: c.B, D: c.D, K: c.K, optimizer: 'adam', kernel: engineKernel(c.B, c.D, c.K),
    gpu: { P: c.P, iterations: c.iters, seconds: gpuS, restartItersPerSec: gpuRate },
    cpu: { P: c.cpuP, iterations: c.cpuIters, seconds: cpuS, restartItersPerSec: cpuRate },
    speedup: gpuRate / cpuRate, target: c.target, meetsTarget: gpuRate >= c.target,
    adapter: dlg.adapterName, machine: machine(),
  });
}
dlg.destroy();
