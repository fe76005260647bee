/**
 * bench/surface: loss-surface grid points per second, GPU (projected kernel) against the f64
 * CPU path in the same run, plus end-to-end `dlg surface` at 4096² to PNG.
 * Run: node scripts/run-ts.mjs bench/surface.ts [--quick] [--wg 64] [--kernel auto|b2|unrolled|general] [--cold] [--fixed-loops off] [--skip-e2e]
 *        [--case "B,D,K,res[,target];..."]
 * Prints JSON lines. Targets (issue 4, 2-core lavapipe): (2,1,1) 4096² ≥ 3e8 points/s,
 * (2,64,10) 2048² ≥ 3e7, (8,784,10) 1024² ≥ 1e7; e2e 4096² PNG < 5 s.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs, benchDevice, emit, machine, timeGpu, timeWall } from './common.js';
import { coordinatePlane, randomPlane } from '../src/surface/plane.js';
import { Rng } from '../src/core/rng.js';
import { type Scenario, makeScenario, scenarioToJson } from '../src/core/scenario.js';
import { type SurfaceKernel, UNROLLED_MAX_B, UNROLLED_MAX_K, createSurface, surfaceCpuAt } from '../src/surface/surface.js';
import { adapterProfile } from '../src/gpu/gpu.js';
import { kernelSpec } from '../src/gpu/kernels.js';

const args = benchArgs();
const quick = Boolean(args.quick);
const wg = typeof args.wg === 'number' ? args.wg : undefined;
const kernelOpt = typeof args.kernel === 'string' ? (args.kernel as SurfaceKernel) : undefined;
// --fixed-loops off: loop bounds read at run time (the comparison for the fixed-K/r kernels)
const fixedLoops = args['fixed-loops'] !== 'off';
// --cold: no warm-up compile of the unrolled kernel ('auto' then counts its compile time).
const cold = Boolean(args.cold);

function scenario(B: number, D: number, K: number, seed = 1): Scenario {
  const rng = new Rng(seed);
  const W = Float64Array.from({ length: D * K }, () => rng.normal() / Math.sqrt(D));
  const b = Float64Array.from({ length: K }, () => 0.1 * rng.normal());
  const y = Float64Array.from({ length: B * K }, () => (rng.uniform() < 0.5 ? 0 : 1));
  const x = Float64Array.from({ length: B * D }, () => rng.normal());
  return makeScenario({ B, D, K, W, b, y, reduction: 'mean' }, x);
}

const DEFAULT_CASES = [
  { B: 2, D: 1, K: 1, res: 4096, target: 3e8, cpuPoints: 200_000 },
  { B: 2, D: 64, K: 10, res: 2048, target: 3e7, cpuPoints: 20_000 },
  { B: 8, D: 784, K: 10, res: 1024, target: 1e7, cpuPoints: 1_000 },
];
// --case "B,D,K,res[,target];..." replaces the default cases (e.g. "2,1,1,16384" for the GPU check).
const cases = String(args.case ?? '')
  .split(';')
  .filter((spec) => spec.length > 0)
  .map((spec) => {
    const [B, D, K, res, target] = spec.split(',').map(Number);
    if (![B, D, K, res].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`--case: expected B,D,K,res[,target], found ${spec}`);
    return { B, D, K, res, target: target ?? Number.NaN, cpuPoints: Math.max(1_000, Math.round(2e6 / (B * D * K))) };
  });
if (cases.length === 0) cases.push(...DEFAULT_CASES);

const dlg = await benchDevice();
const device = dlg.device;
try {
  for (const c of cases) {
    const res = quick ? Math.min(c.res, 1024) : c.res;
    const s = scenario(c.B, c.D, c.K);
    const planes = [
      { kind: 'random', plane: randomPlane(s, { seed: 3 }) }, // the general case: r = 3B (or D)
      { kind: 'coords', plane: coordinatePlane(s, { a: [0, 0], b: c.B > 1 ? [1, 0] : [0, 1] }) }, // r ≤ B + 2
    ];
    for (const { kind, plane } of planes) {
      // A warm device (unless --cold): the unrolled pipeline compiled first (timed), so that 'auto' weighs
      // the kernels per point, as for every render after the first.
      let unrolledCompileMs: number | null = null;
      if (!cold && kernelOpt === undefined && kernelSpec('surface', 'unrolled').rank[adapterProfile(device).kind] !== undefined && c.B <= UNROLLED_MAX_B && c.K <= UNROLLED_MAX_K) {
        const t0 = performance.now();
        createSurface(device, s, plane, res, { label: 'bench.surfaceCompile', workgroupSize: wg, kernel: 'unrolled' }).destroy();
        unrolledCompileMs = performance.now() - t0;
      }
      const h = createSurface(device, s, plane, res, { label: 'bench.surface', workgroupSize: wg, kernel: kernelOpt, fixedLoops });
      const points = res * res;
      // Kernel only (all tiles, no readback).
      const kernel = await timeGpu(
        device,
        (enc) => {
          for (let t = 0; t < h.tiles; t++) h.encodeTile(enc, t);
        },
        { warmup: 1, samples: quick ? 3 : 5 },
      );
      // Library call including upload and readback of the field.
      const full = await timeWall(() => h.render(() => {}), { warmup: 0, samples: quick ? 1 : 3 });
      h.destroy();
      // CPU f64 path on a subset of grid points, extrapolated.
      const rng = new Rng(9);
      const n = quick ? Math.ceil(c.cpuPoints / 10) : c.cpuPoints;
      const pts = Array.from({ length: n }, () => [rng.int(res), rng.int(res)] as [number, number]);
      const t0 = performance.now();
      surfaceCpuAt(s, plane, res, pts);
      const cpuMs = performance.now() - t0;
      const gpuRate = points / (kernel.medianMs / 1e3);
      const cpuRate = n / (cpuMs / 1e3);
      emit('surface', {
        B: c.B,
        D: c.D,
        K: c.K,
        plane: kind,
        rank: h.rank,
        kernel: h.kernel,
        fixedLoops: h.fixedLoops,
        geometric: h.geometric,
        res,
        points,
        kernelMs: kernel.medianMs,
        timing: kernel.method,
        renderMs: full.medianMs,
        gpuPointsPerSec: gpuRate,
        renderPointsPerSec: points / (full.medianMs / 1e3),
        cpuPointsPerSec: cpuRate,
        cpuPointsTimed: n,
        speedup: gpuRate / cpuRate,
        target: c.target,
        meetsTarget: gpuRate >= c.target,
        workgroupSize: h.workgroupSize,
        unrolledCompileMs,
        adapter: dlg.adapterName,
        loadavg1: loadavg()[0],
        ...machine(),
      });
    }
  }
} finally {
  dlg.destroy();
}

if (!args['skip-e2e']) {
  // End to end: `dlg surface` at 4096² to an annotated PNG (process start, device, kernel,
  // census, PNG encode), and the same with --backend cpu extrapolated is pointless: hours.
  const res = quick ? 1024 : 4096;
  const dir = mkdtempSync(join(tmpdir(), 'dlg-bench-surface-'));
  try {
    spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
    const scen = join(dir, 'seed.json');
    writeFileSync(scen, JSON.stringify(scenarioToJson(scenario(2, 1, 1))));
    const out = join(dir, 'surface.png');
    for (const plain of [false, true]) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['dist/node/cli.js', 'surface', scen, '--res', String(res), '--out', out, '--json', ...(plain ? ['--plain'] : [])], {
        encoding: 'utf8',
        env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
      });
      const wall = performance.now() - t0;
      if (r.status !== 0) throw new Error(`dlg surface failed: ${r.stderr}`);
      const j = JSON.parse(r.stdout);
      emit('surface-e2e', {
        res,
        plain,
        wallMs: wall,
        target: 5000,
        meetsTarget: wall < 5000,
        ...j.timing,
        pngBytes: statSync(out).size,
        image: [j.image.width, j.image.height],
        loadavg1: loadavg()[0],
        ...machine(),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
