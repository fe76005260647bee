/**
 * Attack engine throughput: restart-iterations per second with adam, GPU engine against the
 * float64 CPU engine in the same run. JSON lines on stdout.
 *   node scripts/run-ts.mjs bench/attack.ts [--only tiny|tiny-b1|tiny-gd|large] [--iters N] [--samples S] [--wg N] [--dispatch N] [--quads 1|2]
 *          [--tiny-p P] [--large-p P]   (restart counts; defaults 65536 and 256, the sizes)
 * For D = K = 1, B ≤ 2 the straight-line pair kernel is also timed against the generic invocation
 * kernel (tuning kernel: 'invocation'), samples interleaved so that machine load hits both alike.
 * (--iters applies to every selected config: pass --only with it.) Timing = wall time of run(N) plus one
 * status readback, after a warm-up run that includes the pipeline compile.
 * Targets (issue 3, lavapipe on 2 cores): (2,1,1) P=65536 ≥ 2e8; (8,784,10) P=256 ≥ 6e4.
 */
import { simulateScenario } from '../src/core/datasets.js';
import { initialPoints } from '../src/attack/attack.js';
import { benchArgs, benchDevice, emit, machine, median } from './common.js';
import { type EngineHandle, type EngineTuning, createAttackEngine, createCpuEngine, engineKernel } from '../src/attack/engine.js';
import os from 'node:os';
import { withErrorScopes } from '../src/gpu/gpu.js';

const args = benchArgs();
const samples = Number(args.samples ?? 3);

/** A gaussian victim (x ~ N(0,1), W ~ N(0, 1/D), random labels): throughput does not depend on the data. */
function problem(B: number, D: number, K: number, seed: number) {
  const layer = simulateScenario({ dataset: 'gaussian', B, D, K, seed });
  return { layer, target: layer.gradient };
}

/** n/(B·D) starting points x′ ~ N(0, 1). */
const inputs = (n: number, seed: number) => Float32Array.from(initialPoints(1, n, 1, 'normal', 1, seed));

/** Median seconds of `run(iters)` followed by one status read (the readback is part of the cost). */
async function timeEngine(e: EngineHandle, x0: Float32Array, iters: number, reps: number): Promise<number> {
  return median((await timeEngines([e], x0, iters, reps))[0]);
}

/** Seconds of each sample of each engine, samples interleaved engine by engine (after one warm-up each). */
async function timeEngines(es: EngineHandle[], x0: Float32Array, iters: number, reps: number): Promise<number[][]> {
  for (const e of es) {
    e.setInputs(x0);
    e.run(Math.min(iters, 8)); // warm-up: pipeline compilation, first touch
    await e.readStatus();
  }
  const out: number[][] = es.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (const [j, e] of es.entries()) {
      e.setInputs(x0);
      const t0 = performance.now();
      e.run(iters);
      await e.readStatus();
      out[j].push((performance.now() - t0) / 1000);
    }
  }
  return out;
}

const dlg = await benchDevice();
const configs = [
  { name: 'tiny', B: 2, D: 1, K: 1, optimizer: 'adam', P: Number(args['tiny-p'] ?? 65536), iters: Number(args.iters ?? 2048), cpuP: 256, cpuIters: 2048, target: 2e8 },
  { name: 'tiny-b1', B: 1, D: 1, K: 1, optimizer: 'adam', P: Number(args['tiny-p'] ?? 65536), iters: Number(args.iters ?? 2048), cpuP: 256, cpuIters: 2048, target: 2e8 },
  { name: 'tiny-gd', B: 2, D: 1, K: 1, optimizer: 'gd', P: Number(args['tiny-p'] ?? 65536), iters: Number(args.iters ?? 2048), cpuP: 256, cpuIters: 2048, target: 2e8 },
  { name: 'large', B: 8, D: 784, K: 10, optimizer: 'adam', P: Number(args['large-p'] ?? 256), iters: Number(args.iters ?? 64), cpuP: 4, cpuIters: 16, target: 6e4 },
].filter((c) => !args.only || c.name === args.only);

for (const c of configs) {
  const { layer, target } = problem(c.B, c.D, c.K, 1);
  const optimizer = c.optimizer as 'adam' | 'gd';
  // gd: a step small enough that the restarts keep running (the timing counts every restart-iteration)
  const base = { layer, target, optimizer, lr: optimizer === 'adam' ? 0.01 : 0.05 };
  const pair = engineKernel({ ...c, optimizer, loss: 'l2' }, dlg.device).spec.name === 'pair';
  const tuning: EngineTuning = {
    ...(args.wg ? { pairWorkgroupSize: Number(args.wg) } : {}),
    ...(args.dispatch ? { pairItersPerDispatch: Number(args.dispatch) } : {}),
    ...(args.quads ? { pairQuads: Number(args.quads) } : {}),
  };
  // a validation error (limits, shader) must fail the bench, not time an empty pipeline
  let kernel = '';
  const [gpuSamples, genericSamples] = await withErrorScopes(dlg.device, `bench ${c.name}`, async () => {
    const es = [createAttackEngine(dlg.device, { ...base, P: c.P, label: `bench.${c.name}` }, tuning)];
    if (pair) es.push(createAttackEngine(dlg.device, { ...base, P: c.P, label: `bench.${c.name}.generic` }, { kernel: 'invocation' }));
    kernel = es[0].kernel;
    try {
      return await timeEngines(es, inputs(c.P * c.B * c.D, 2), c.iters, samples);
    } finally {
      for (const e of es) e.destroy();
    }
  });
  const gpuS = median(gpuSamples);
  const cpu = createCpuEngine({ ...base, P: c.cpuP });
  const cpuS = await timeEngine(cpu, inputs(c.cpuP * c.B * c.D, 2), c.cpuIters, 1);
  cpu.destroy();
  const gpuRate = (c.P * c.iters) / gpuS;
  const cpuRate = (c.cpuP * c.cpuIters) / cpuS;
  const generic = genericSamples
    ? { seconds: median(genericSamples), restartItersPerSec: (c.P * c.iters) / median(genericSamples), pairSpeedup: median(genericSamples) / gpuS }
    : undefined;
  emit('attack', {
    B: c.B, D: c.D, K: c.K, optimizer, kernel,
    gpu: { P: c.P, iterations: c.iters, seconds: gpuS, restartItersPerSec: gpuRate, ...tuning },
    ...(generic ? { genericInvocationKernel: generic } : {}),
    cpu: { P: c.cpuP, iterations: c.cpuIters, seconds: cpuS, restartItersPerSec: cpuRate },
    speedup: gpuRate / cpuRate, target: c.target, meetsTarget: gpuRate >= c.target,
    adapter: dlg.adapterName, machine: machine(), loadAvg: os.loadavg().map((v) => Math.round(v * 100) / 100),
  });
}
dlg.destroy();
