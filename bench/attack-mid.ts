/**
 * Mid-size attack engine throughput (gd/adam): restart-iterations per second of the current
 * kernel choice against the workgroup kernel (tuning kernel: 'workgroup') and the float64 CPU
 * engine, same run, GPU samples interleaved. Also the cold pipeline build time of each GPU
 * engine (run with MESA_SHADER_CACHE_DISABLE=true for a truly cold compile). JSON lines.
 *   node scripts/run-ts.mjs bench/attack-mid.ts [--only B,D,K] [--opt adam|gd] [--P N] [--iters N] [--samples S] [--current-only]
 */
import { simulateScenario } from '../src/core/datasets.js';
import { initialPoints } from '../src/attack/attack.js';
import os from 'node:os';
import { benchArgs, benchDevice, emit, machine, median } from './common.js';
import { type EngineHandle, type EngineTuning, createAttackEngine, createCpuEngine } from '../src/attack/engine.js';
import { withErrorScopes } from '../src/gpu/gpu.js';

const args = benchArgs();
const samples = Number(args.samples ?? 3);
const sizes: [number, number, number][] = args.only
  ? [String(args.only).split(',').map(Number) as [number, number, number]]
  : [[4, 16, 4], [8, 16, 4], [8, 8, 8], [16, 4, 8], [16, 4, 10], [8, 64, 10]];
const optimizers = args.opt ? [String(args.opt)] : ['adam', 'gd'];

/** A gaussian victim (x ~ N(0,1), W ~ N(0, 1/D), random labels): throughput does not depend on the data. */
function problem(B: number, D: number, K: number, seed: number) {
  const layer = simulateScenario({ dataset: 'gaussian', B, D, K, seed });
  return { layer, target: layer.gradient };
}

/** n/(B·D) starting points x′ ~ N(0, 1). */
const inputs = (n: number, seed: number) => Float32Array.from(initialPoints(1, n, 1, 'normal', 1, seed));

async function warm(e: EngineHandle, x0: Float32Array): Promise<number> {
  const t0 = performance.now();
  e.setInputs(x0);
  e.run(1);
  await e.readStatus();
  return (performance.now() - t0) / 1000;
}

async function sample(e: EngineHandle, x0: Float32Array, iters: number): Promise<number> {
  e.setInputs(x0);
  const t0 = performance.now();
  e.run(iters);
  await e.readStatus();
  return (performance.now() - t0) / 1000;
}

const dlg = await benchDevice();
for (const [B, D, K] of sizes) {
  for (const optimizer of optimizers as ('adam' | 'gd')[]) {
    const { layer, target } = problem(B, D, K, 1);
    const base = { layer, target, optimizer, lr: optimizer === 'adam' ? 0.01 : 0.05 };
    const P = Number(args.P ?? 1024);
    const iters = Number(args.iters ?? 256);
    const x0 = inputs(P * B * D, 2);
    const variants: { name: string; tuning: EngineTuning }[] = [
      { name: 'current', tuning: {} },
      { name: 'workgroup', tuning: { kernel: 'workgroup' as const } },
    ].filter((v) => !(args['current-only'] && v.name === 'workgroup'));
    const res = await withErrorScopes(dlg.device, `bench ${B},${D},${K}`, async () => {
      const es = variants.map((v) => createAttackEngine(dlg.device, { ...base, P, label: `bench.mid.${v.name}` }, v.tuning));
      try {
        const compile: number[] = [];
        for (const e of es) compile.push(await warm(e, x0));
        const secs: number[][] = es.map(() => []);
        for (let s = 0; s < samples; s++) for (const [j, e] of es.entries()) secs[j].push(await sample(e, x0, iters));
        return { compile, secs, kernels: es.map((e) => e.kernel) };
      } finally {
        for (const e of es) e.destroy();
      }
    });
    const cpuP = 16;
    const cpuIters = 64;
    const cpu = createCpuEngine({ ...base, P: cpuP });
    const cpuX = inputs(cpuP * B * D, 2);
    await warm(cpu, cpuX);
    const cpuS = median([await sample(cpu, cpuX, cpuIters), await sample(cpu, cpuX, cpuIters)]);
    cpu.destroy();
    const cpuRate = (cpuP * cpuIters) / cpuS;
    const out: Record<string, unknown> = { B, D, K, optimizer, P, iterations: iters };
    for (const [j, v] of variants.entries()) {
      const s = median(res.secs[j]);
      out[v.name] = { kernel: res.kernels[j], firstRunSeconds: res.compile[j], seconds: s, restartItersPerSec: (P * iters) / s };
    }
    const cur = out.current as { restartItersPerSec: number };
    const wg = out.workgroup as { restartItersPerSec: number } | undefined;
    emit('attack-mid', {
      ...out,
      cpu: { P: cpuP, iterations: cpuIters, seconds: cpuS, restartItersPerSec: cpuRate },
      ...(wg ? { speedupVsWorkgroup: cur.restartItersPerSec / wg.restartItersPerSec } : {}),
      speedupVsCpu: cur.restartItersPerSec / cpuRate,
      shaderCacheDisabled: process.env.MESA_SHADER_CACHE_DISABLE === 'true',
      adapter: dlg.adapterName, machine: machine(), loadAvg: os.loadavg().map((v) => Math.round(v * 100) / 100),
    });
  }
}
dlg.destroy();
