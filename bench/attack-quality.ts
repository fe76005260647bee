/**
 * Attack quality on identifiable configurations (B·D ≤ D·K + K): for each (B,D,K), N seeded
 * gaussian scenarios, each attacked with P restarts on the GPU (adam, defaults otherwise).
 * Reports the fraction of scenarios whose best reconstruction reaches relative error < 1e-3
 * (target ≥ 99% at P = 1024) and the median wall time per scenario (target < 1 s), next to two
 * single-run baselines from x′ ~ N(0,1), expected to succeed in 45–75% of scenarios:
 *  - `dlg`: ONE run of the original DLG code's optimizer, torch.optim.LBFGS with its defaults
 *    (lr 1, max_iter 20 per step, history 100, tolerance_grad 1e-7, tolerance_change 1e-9,
 *    NO line search), 300 steps, replicated here in float64 (dlgLbfgs below);
 *  - `engine`: one run of our CPU engine's L-BFGS (backtracking line search), 300 iterations, no polish.
 *
 *   node scripts/run-ts.mjs bench/attack-quality.ts [--scenarios 100] [--restarts 1024]
 *     [--iterations 2000] [--baseline-iterations 300] [--configs 2,1,1:4,1,4] [--seed0 0] [--stop-after 0]
 *
 * JSON lines on stdout (one per configuration), then a markdown table.
 */
import { attack, initialPoints } from '../src/attack.js';
import { simulateScenario } from '../src/datasets.js';
import { reconstructionMetrics } from '../src/matching.js';
import { matchL2 } from '../src/model.js';
import type { Scenario } from '../src/scenario.js';
import { benchArgs, benchDevice, emit, machine, median } from './common.js';

const args = benchArgs();
const scenarios = Number(args.scenarios ?? 100);
const restarts = Number(args.restarts ?? 1024);
const iterations = Number(args.iterations ?? 2000);
// --stop-after n: each attack stops once n restarts have converged (attack option stopAfter; 0 = off)
const stopAfter = Number(args['stop-after'] ?? 0);
const baselineIterations = Number(args['baseline-iterations'] ?? 300);
const seed0 = Number(args.seed0 ?? 0);
const configs: [number, number, number][] = String(args.configs ?? '2,1,1:4,1,4:2,16,4:4,16,4')
  .split(':')
  .map((c) => c.split(',').map(Number) as [number, number, number]);
for (const [B, D, K] of configs) {
  if (![B, D, K].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`--configs: expected B,D,K:B,D,K..., found ${args.configs}`);
}

/**
 * torch.optim.LBFGS (PyTorch 2.x, line_search_fn=None) as DLG calls it: `for 300 steps:
 * optimizer.step(closure)`, state kept across steps. Float64. Returns the final x′.
 */
function dlgLbfgs(sc: Scenario, x0: Float64Array, steps = 300): Float64Array {
  const lr = 1, maxIter = 20, maxEval = Math.floor(maxIter * 1.25), history = 100, tolGrad = 1e-7, tolChange = 1e-9;
  const n = x0.length;
  const x = Float64Array.from(x0);
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, v, i) => acc + v * b[i], 0);
  const maxAbs = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  let d = new Float64Array(n);
  let t = lr;
  let oldDirs: Float64Array[] = [];
  let oldStps: Float64Array[] = [];
  let ro: number[] = [];
  let Hdiag = 1;
  let prevGrad: Float64Array | null = null;
  let globalIter = 0;
  for (let step = 0; step < steps; step++) {
    let { loss, grad: g } = matchL2(sc, sc.gradient, x);
    if (maxAbs(g) <= tolGrad) break;
    let nIter = 0;
    let evals = 1;
    while (nIter < maxIter) {
      nIter++;
      globalIter++;
      if (globalIter === 1) {
        d = g.map((v) => -v);
        oldDirs = [];
        oldStps = [];
        ro = [];
        Hdiag = 1;
      } else {
        const y = g.map((v, i) => v - prevGrad![i]);
        const s = d.map((v) => v * t);
        const ys = dot(y, s);
        if (ys > 1e-10) {
          if (oldDirs.length === history) {
            oldDirs.shift();
            oldStps.shift();
            ro.shift();
          }
          oldDirs.push(y);
          oldStps.push(s);
          ro.push(1 / ys);
          Hdiag = ys / dot(y, y);
        }
        const al = new Float64Array(oldDirs.length);
        const q = g.map((v) => -v);
        for (let i = oldDirs.length - 1; i >= 0; i--) {
          al[i] = dot(oldStps[i], q) * ro[i];
          for (let j = 0; j < n; j++) q[j] -= al[i] * oldDirs[i][j];
        }
        d = q.map((v) => v * Hdiag);
        for (let i = 0; i < oldDirs.length; i++) {
          const be = dot(oldDirs[i], d) * ro[i];
          for (let j = 0; j < n; j++) d[j] += oldStps[i][j] * (al[i] - be);
        }
      }
      prevGrad = Float64Array.from(g);
      const prevLoss = loss;
      t = globalIter === 1 ? Math.min(1, 1 / g.reduce((a, v) => a + Math.abs(v), 0)) * lr : lr;
      const gtd = dot(g, d);
      if (gtd > -tolChange) break;
      for (let j = 0; j < n; j++) x[j] += t * d[j];
      let optCond = false;
      if (nIter !== maxIter) {
        ({ loss, grad: g } = matchL2(sc, sc.gradient, x));
        optCond = maxAbs(g) <= tolGrad;
        evals++;
      }
      if (nIter === maxIter || evals >= maxEval || optCond) break;
      if (maxAbs(d.map((v) => v * t)) <= tolChange) break;
      if (Math.abs(loss - prevLoss) < tolChange) break;
    }
  }
  return x;
}

const dlg = await benchDevice();
const rows: string[] = [];
try {
  for (const [B, D, K] of configs) {
    let ok = 0;
    let baseOk = 0;
    let dlgOk = 0;
    let dlgNonFinite = 0;
    const wall: number[] = [];
    const baseWall: number[] = [];
    const restartSuccess: number[] = [];
    const failures: number[] = [];
    let ambiguousFailures = 0;
    for (let i = 0; i < scenarios; i++) {
      const seed = seed0 + i;
      const sc = simulateScenario({ dataset: 'gaussian', B, D, K, seed });
      const r = await attack(dlg.device, sc, { restarts, iterations, seed, stopAfter }, dlg.adapterName);
      wall.push(r.wallTimeMs);
      restartSuccess.push(r.restarts.successFraction ?? 0);
      if (r.metrics?.success) ok++;
      else {
        failures.push(seed);
        // A failure the gradient cannot resolve: several exact solutions, the truth among them.
        if (r.polish?.ambiguous && r.polish.truthAmongExact) ambiguousFailures++;
      }
      const base = await attack(null, sc, { restarts: 1, iterations: baselineIterations, optimizer: 'lbfgs', seed, polish: 0 });
      const xd = dlgLbfgs(sc, initialPoints(1, B, D, 'normal', 1, seed), baselineIterations);
      if (!xd.every(Number.isFinite)) dlgNonFinite++;
      else if (reconstructionMetrics(xd, sc.inputs!, { B, D, K, reconLabels: sc.y, trueLabels: sc.y }).success) dlgOk++;
      baseWall.push(base.wallTimeMs);
      if (base.metrics?.success) baseOk++;
      process.stderr.write(`\r(${B},${D},${K}) ${i + 1}/${scenarios}: ${ok} ok, DLG L-BFGS ${dlgOk} ok, engine L-BFGS ${baseOk} ok, last ${r.wallTimeMs.toFixed(0)} ms   `);
    }
    process.stderr.write('\n');
    const line = {
      B, D, K, scenarios, restarts, iterations, stopAfter, optimizer: 'adam',
      successFraction: ok / scenarios,
      medianWallMs: median(wall),
      meanRestartSuccessFraction: restartSuccess.reduce((a, b) => a + b, 0) / scenarios,
      failedSeeds: failures,
      ambiguousFailures,
      baseline: {
        dlg: { method: 'one torch.optim.LBFGS run as in DLG (lr 1, max_iter 20, history 100, no line search), float64', steps: baselineIterations, successFraction: dlgOk / scenarios, nonFinite: dlgNonFinite },
        engine: { method: 'one CPU-engine L-BFGS run (backtracking line search), float64, no polish', iterations: baselineIterations, successFraction: baseOk / scenarios, medianWallMs: median(baseWall) },
      },
      adapter: dlg.adapterName,
      machine: machine(),
    };
    emit('attack-quality', line);
    rows.push(
      `| (${B},${D},${K}) | ${scenarios} | ${restarts} | ${(100 * line.successFraction).toFixed(1)}% | ${line.medianWallMs.toFixed(0)} ms | ` +
        `${(100 * line.meanRestartSuccessFraction).toFixed(1)}% | ${(100 * line.baseline.dlg.successFraction).toFixed(1)}% | ${(100 * line.baseline.engine.successFraction).toFixed(1)}% | ${failures.length} (${ambiguousFailures}) |`,
    );
  }
} finally {
  dlg.destroy();
}
process.stdout.write(
  [
    '',
    `Attack quality (${dlg.adapterName}; GPU: adam, ${iterations} iterations max, float64 polish of the best 4; baselines: one run from N(0,1), ${baselineIterations} steps)`,
    '',
    '| (B,D,K) | scenarios | P | success (rel. err. < 1e-3) | median wall / scenario | mean restart success (device, unpolished) | one DLG L-BFGS run | one engine L-BFGS run | failures (of which ambiguous: a second exact solution found, truth among them) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n'),
);
