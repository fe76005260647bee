/**
 * bench/study: the convergence study's sweep, timed on the WebGPU adapter and on the float64 CPU
 * path. JSON lines on stdout: one per configuration and backend, then a summary per backend.
 *
 *   node scripts/run-ts.mjs bench/study.ts                         # the full default sweep (5×4×3×2, S=32, P=256, 5000 it)
 *   node scripts/run-ts.mjs bench/study.ts --batch 1,2 --features 1 --outputs 1 --cpu-restarts 8
 *
 * Flags: --batch --features --outputs --optimizer --dataset (lists), --scenarios --restarts
 * --iterations, --cpu-restarts P′ (default 8), --cpu-batch/--cpu-features/--cpu-outputs (the CPU
 * subset; default the same axes), --skip-gpu, --skip-cpu, --out dir (default out/bench-study),
 * --resume (the WebGPU sweep skips configurations already in <out>/webgpu/results.jsonl).
 *
 * The CPU path runs the same configurations with the same S and iteration cap but only P′ restarts
 * per scenario; its time is EXTRAPOLATED linearly to P (restarts are independent and the CPU engine
 * runs them one after another, so its cost is proportional to the number of restarts). The summary
 * says which numbers are measured and which are extrapolated.
 */
import { join } from 'node:path';
import { benchArgs, benchDevice, emit, machine } from './common.js';
import { type ConfigResult, DEFAULT_STUDY_CONFIG, expandStudy, study, validateStudyConfig } from '../src/node/study.js';

const args = benchArgs();
const list = (v: unknown): number[] | string[] | undefined =>
  v === undefined ? undefined : String(v).split(',').map((s) => (/^\d+$/.test(s.trim()) ? Number(s) : s.trim())) as number[] | string[];

const base: Record<string, unknown> = {};
for (const [flag, key] of [['batch', 'batch'], ['features', 'features'], ['outputs', 'outputs'], ['optimizer', 'optimizer'], ['dataset', 'dataset']] as const) {
  const v = list(args[flag]);
  if (v) base[key] = v;
}
for (const key of ['scenarios', 'restarts', 'iterations', 'seed'] as const) if (args[key] !== undefined) base[key] = args[key];
const config = validateStudyConfig(base);
const cpuConfig = validateStudyConfig({
  ...base,
  ...(args['cpu-batch'] !== undefined ? { batch: list(args['cpu-batch']) } : {}),
  ...(args['cpu-features'] !== undefined ? { features: list(args['cpu-features']) } : {}),
  ...(args['cpu-outputs'] !== undefined ? { outputs: list(args['cpu-outputs']) } : {}),
  restarts: Number(args['cpu-restarts'] ?? 8),
});
const out = String(args.out ?? 'out/bench-study');
const fullSweep = expandStudy(validateStudyConfig({}));
const points = expandStudy(config);
const isFull =
  points.length === fullSweep.length &&
  config.scenarios === DEFAULT_STUDY_CONFIG.scenarios &&
  config.restarts === DEFAULT_STUDY_CONFIG.restarts &&
  config.iterations === DEFAULT_STUDY_CONFIG.iterations;

function line(backend: string, r: ConfigResult, extra: Record<string, unknown> = {}): void {
  const S = r.settings.scenarios;
  const P = r.settings.restarts;
  emit('study', {
    backend,
    key: r.key,
    S,
    P,
    iterationsRun: r.iterationsRun,
    wallTimeMs: Math.round(r.wallTimeMs),
    diagnoseMs: Math.round(r.diagnoseMs),
    restartIterationsPerSec: (S * P * r.iterationsRun) / (r.wallTimeMs / 1000),
    successRate: r.successRate,
    restartSuccessRate: r.restartSuccessRate,
    kappa: r.diagnosis.kappa?.median ?? null,
    ...extra,
  });
}

const gpuByKey = new Map<string, ConfigResult>();
let gpuTotalMs = 0;
let adapter = 'none';
if (!args['skip-gpu']) {
  const dlg = await benchDevice();
  adapter = dlg.adapterName;
  try {
    const t0 = performance.now();
    const r = await study(dlg.device, config, {
      out: join(out, 'webgpu'),
      backend: adapter,
      resume: Boolean(args.resume),
      onConfigDone: (c) => {
        gpuByKey.set(c.key, c);
        line('webgpu', c, { adapter });
      },
    });
    gpuTotalMs = performance.now() - t0;
    emit('study-summary', {
      backend: 'webgpu',
      adapter,
      machine: machine(),
      configurations: r.ran.length,
      ofDefaultSweep: fullSweep.length,
      fullDefaultSweep: isFull,
      scenarios: config.scenarios,
      restarts: config.restarts,
      iterations: config.iterations,
      wallTimeMs: Math.round(gpuTotalMs),
      sweepOnlyMs: Math.round(r.results.reduce((a, c) => a + c.wallTimeMs + c.diagnoseMs, 0)),
      targetMs: 600_000,
      measured: true,
    });
  } finally {
    dlg.destroy();
  }
}

if (!args['skip-cpu']) {
  const scale = config.restarts / cpuConfig.restarts;
  let measuredMs = 0;
  let extrapolatedMs = 0;
  let gpuSameMs = 0;
  const r = await study(null, cpuConfig, {
    out: join(out, 'cpu'),
    plots: false,
    backend: 'cpu (float64 reference)',
    onConfigDone: (c) => {
      const est = c.wallTimeMs * scale + c.diagnoseMs;
      measuredMs += c.wallTimeMs + c.diagnoseMs;
      extrapolatedMs += est;
      const g = gpuByKey.get(c.key);
      if (g) gpuSameMs += g.wallTimeMs + g.diagnoseMs;
      line('cpu', c, { extrapolatedToP: config.restarts, extrapolatedWallTimeMs: Math.round(est), speedupWebgpuVsCpu: g ? est / (g.wallTimeMs + g.diagnoseMs) : null });
    },
  });
  emit('study-summary', {
    backend: 'cpu',
    machine: machine(),
    configurations: r.ran.length,
    scenarios: cpuConfig.scenarios,
    restartsMeasured: cpuConfig.restarts,
    restartsExtrapolatedTo: config.restarts,
    iterations: cpuConfig.iterations,
    measuredWallTimeMs: Math.round(measuredMs),
    extrapolatedWallTimeMs: Math.round(extrapolatedMs),
    webgpuWallTimeMsSameConfigs: gpuSameMs > 0 ? Math.round(gpuSameMs) : null,
    speedupWebgpuVsCpu: gpuSameMs > 0 ? extrapolatedMs / gpuSameMs : null,
    measured: false,
    note: `CPU time measured with ${cpuConfig.restarts} restarts per scenario and extrapolated linearly to ${config.restarts}`,
  });
}
