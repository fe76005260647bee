/**
 * (L_r, ∇ₓ′L_r) restart-evaluations per second: WebGPU kernels vs the float64 CPU path
 * (matchL2Batched), measured in the same run. One JSON line per case.
 *
 *   node scripts/run-ts.mjs bench/objective.ts [--case B,D,K,P[,target]] [--regime auto|invocation|workgroup]
 *          [--wg N] [--samples N] [--seconds S]
 *
 * Many evaluations are encoded per submit (`repeats`, sized so a sample takes about --seconds);
 * GPU time is timestamp-query when the device has it, else wall time around onSubmittedWorkDone.
 */
import { benchArgs, benchDevice, emit, machine, timeGpu, timeWall } from './common.js';
import { type Layer, matchL2Batched, victimGradient } from '../src/core/model.js';
import { type ObjectiveRegime, createObjective } from '../src/objective/objective.js';
import { Rng } from '../src/core/rng.js';

interface BenchCase {
  B: number;
  D: number;
  K: number;
  P: number;
  target: number; // evals/s
}

const DEFAULT_CASES: BenchCase[] = [
  { B: 2, D: 1, K: 1, P: 65536, target: 1e8 },
  { B: 8, D: 784, K: 10, P: 256, target: 6e4 },
];

const args = benchArgs();
const cases: BenchCase[] = [];
for (const spec of String(args.case ?? '').split(';').filter((s) => s.length > 0)) {
  const [B, D, K, P, target] = spec.split(',').map(Number);
  cases.push({ B, D, K, P, target: target ?? Number.NaN });
}
if (cases.length === 0) cases.push(...DEFAULT_CASES);
const regime = String(args.regime ?? 'auto') as 'auto' | ObjectiveRegime;
const wg = typeof args.wg === 'number' ? args.wg : undefined;
const samples = typeof args.samples === 'number' ? args.samples : 7;
const seconds = typeof args.seconds === 'number' ? args.seconds : 0.3;

const dlg = await benchDevice();
const { device } = dlg;
try {
  for (const c of cases) {
    const rng = new Rng(1000 + c.B * 7 + c.D + c.K);
    const layer: Layer = {
      B: c.B,
      D: c.D,
      K: c.K,
      reduction: 'mean',
      W: Float64Array.from({ length: c.D * c.K }, () => rng.normal() / Math.sqrt(c.D)),
      b: Float64Array.from({ length: c.K }, () => 0.1 * rng.normal()),
      y: Float64Array.from({ length: c.B * c.K }, () => (rng.uniform() < 0.5 ? 0 : 1)),
    };
    const target = victimGradient(layer, Float64Array.from({ length: c.B * c.D }, () => rng.normal()));
    const x = Float64Array.from({ length: c.P * c.B * c.D }, () => rng.normal());

    const h = createObjective(device, { layer, target, P: c.P, regime, workgroupSize: wg, label: 'bench.objective' });
    h.setInputs(x);
    await h.evaluate(); // compile + first run
    // Calibrate repeats so one sample takes about `seconds`.
    const probe = await timeGpu(device, (enc) => h.encode(enc, 4), { warmup: 1, samples: 3 });
    const repeats = Math.max(1, Math.min(20000, Math.round((seconds * 1000 * 4) / Math.max(probe.medianMs, 1e-3))));
    const gpu = await timeGpu(device, (enc) => h.encode(enc, repeats), { warmup: 1, samples });
    const gpuRate = (repeats * c.P) / (gpu.medianMs / 1000);

    // CPU path: the float64 reference over the same P restarts (a prefix when one pass would be very long).
    const cpuP = Math.min(c.P, Math.max(1, Math.round(2e8 / (c.B * c.D * c.K * 8 + 1))));
    const cpu = await timeWall(() => matchL2Batched(layer, target, x, cpuP), { warmup: 1, samples: 3 });
    const cpuRate = cpuP / (cpu.medianMs / 1000);

    emit('objective', {
      B: c.B,
      D: c.D,
      K: c.K,
      P: c.P,
      regime: h.regime,
      workgroupSize: wg ?? 'default',
      webgpu: { evalsPerSec: gpuRate, medianMs: gpu.medianMs, repeatsPerSubmit: repeats, method: gpu.method },
      cpu: { evalsPerSec: cpuRate, medianMs: cpu.medianMs, restarts: cpuP, path: 'matchL2Batched (float64)' },
      speedup: gpuRate / cpuRate,
      target: c.target,
      pass: Number.isFinite(c.target) ? gpuRate >= c.target : null,
      adapter: dlg.adapterName,
      machine: machine(),
    });
    h.destroy();
  }
} finally {
  dlg.destroy();
}
