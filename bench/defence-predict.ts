/**
 * Predicted vs measured rel. err. of the attack under small Gaussian gradient noise
 * (docs/defences.md). For each scenario and relative noise level: the prediction from
 * predictNoiseLeakage, and the RMS rel. err. of `attack()` (host float64 lm) over T noise seeds.
 *   node scripts/run-ts.mjs bench/defence-predict.ts [--trials 8]
 */
import { attack } from '../src/attack/attack.js';
import { simulateScenario } from '../src/core/datasets.js';
import { loadDataset } from '../src/node/data-node.js';
import { defendScenario } from '../src/core/defence.js';
import { predictNoiseLeakage } from '../src/analysis/leakage.js';

const argv = process.argv.slice(2);
const T = Number(argv[argv.indexOf('--trials') + 1] || 8);
const digits = loadDataset('digits');
const cases = [
  ...[1, 2, 4, 8].map((B) => ({ name: `digits B=${B}`, s: simulateScenario({ dataset: 'digits', B, seed: 1, data: digits }) })),
  ...[1, 2, 3].map((seed) => ({ name: `gaussian (2,13,3) seed ${seed}`, s: simulateScenario({ dataset: 'gaussian', B: 2, D: 13, K: 3, seed }) })),
];
console.log('| scenario | rel. noise | predicted (attack\'s estimator) | full-J bound | measured RMS rel. err. | measured / predicted |');
console.log('|---|---|---|---|---|---|');
for (const { name, s } of cases) {
  const p = predictNoiseLeakage(s);
  for (const rel of [1e-6, 1e-4]) {
    const errs: number[] = [];
    for (let t = 0; t < T; t++) {
      const d = defendScenario(s, [{ name: 'noise', distribution: 'gaussian', scale: rel, relative: true, seed: 1000 + t }]);
      const r = await attack(null, d, { seed: t });
      errs.push(r.metrics!.relativeError);
    }
    const rmsErr = Math.sqrt(errs.reduce((a, b) => a + b * b, 0) / errs.length);
    const pred = p.relErrPerRelSigma * rel;
    console.log(`| ${name} | ${rel} | ${pred.toExponential(2)} | ${(p.full.relErrPerRelSigma * rel).toExponential(2)} | ${rmsErr.toExponential(2)} | ${(rmsErr / pred).toFixed(2)} |`);
  }
}
