/**
 * The GPU lm kernel (shaders/attack/lm.wgsl): restart-iterations/s per size, the cold pipeline
 * compile, and the float64 CPU engine's rate in the same run. JSON lines on stdout.
 *   node scripts/run-ts.mjs bench/lm-kernel.ts [--variant private|scratch] [--sizes 8,8,10,4096;...]
 */
import { benchArgs, benchDevice, emit, machine } from './common.js';
import { type EngineOptions, createAttackEngine, createCpuEngine } from '../src/attack/engine.js';
import { Rng } from '../src/core/rng.js';
import { makeScenario } from '../src/core/scenario.js';
import os from 'node:os';

const args = benchArgs();
// (B, D, K, P, iterations): reduced problems (D = B) and small direct ones
const SIZES: [number, number, number, number, number][] = typeof args.sizes === 'string'
  ? args.sizes.split(';').map((s) => s.split(',').map(Number) as [number, number, number, number, number])
  : [
      [2, 2, 3, 4096, 32],
      [4, 4, 4, 4096, 16],
      [8, 8, 10, 4096, 4],
      [10, 10, 10, 1024, 2],
      [16, 16, 20, 128, 1],
    ];

function scenario(B: number, D: number, K: number): ReturnType<typeof makeScenario> {
  const rng = new Rng(B * 1000 + D * 10 + K);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => rng.int(2));
  const x = Float64Array.from({ length: B * D }, () => rng.normal());
  return makeScenario({ B, D, K, W, b, y, reduction: 'mean' }, x);
}

const dev = await benchDevice();
const device = dev.device;
for (const [B, D, K, P, iters] of SIZES) {
  const sc = scenario(B, D, K);
  const opts: EngineOptions = { layer: sc, target: sc.gradient, P, optimizer: 'lm', lr: 1 };
  const rng = new Rng(7);
  // random starts (far from the truth): every restart keeps iterating
  const x0 = Float32Array.from({ length: P * B * D }, () => rng.normal());
  let t = performance.now();
  const e = createAttackEngine(device, opts);
  const compileMs = performance.now() - t;
  e.setInputs(x0);
  e.run(1); // warm-up: first dispatch
  await e.readStatus();
  const runs: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    e.setInputs(x0);
    await e.readStatus();
    t = performance.now();
    e.run(iters);
    await e.readStatus();
    runs.push((P * iters) / ((performance.now() - t) / 1000));
  }
  runs.sort((a, b) => a - b);
  const gpuRate = runs[1];
  const kernel = e.kernel;
  e.destroy();
  // the float64 CPU engine, same problem, fewer restarts
  const Pc = Math.max(4, Math.min(P, Math.round(4e6 / (B * D) ** 3)));
  const c = createCpuEngine({ ...opts, P: Pc });
  c.setInputs(x0.subarray(0, Pc * B * D));
  t = performance.now();
  c.run(iters);
  const cpuRate = (Pc * iters) / ((performance.now() - t) / 1000);
  emit('lm-kernel', {
    B, D, K, n: B * D, P, iterations: iters, kernel,
    gpuRestartItersPerS: Number(gpuRate.toPrecision(3)),
    gpuRuns: runs.map((r) => Number(r.toPrecision(3))),
    coldCompileMs: Math.round(compileMs),
    cpuRestartItersPerS: Number(cpuRate.toPrecision(3)),
    speedup: Number((gpuRate / cpuRate).toPrecision(3)),
    adapter: dev.adapterName,
    load: os.loadavg()[0].toFixed(2),
    ...machine(),
  });
}
dev.destroy();
process.exit(0);
